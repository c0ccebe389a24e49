/* rt_eval.c — the loss over a whole evaluation set (docs/training.md,
 * "Evaluation").
 *
 * The compiled eval_step (pipert.h) runs one batch forward only on the
 * training placement, dropout off; with c->evaluating set, the data
 * accessors read the evaluation set's batch c->eval_batch (rt_data.c), and
 * its last, padded batch reports its real rows through rt_rows_valid, so
 * the padding adds nothing to the loss.  The sum over every batch and every
 * last-stage rank, divided by the set's rows (per row, element or predicted
 * position, as the training loss is), is the evaluation loss.
 */
#include "rt_internal.h"

double rt_eval_run(rt_ctx *c)
{
	const rt_program *p = c->p;
	int64_t nb = (c->eval.rows + p->batch - 1) / p->batch;
	/* What the step loop keeps across steps: eval_step's actions must not
	 * count as the step's (fault injection, busy time) or its loss. */
	double loss_sum = c->loss_sum, busy = c->busy, sum, denom;
	int action_index = c->action_index;

	if (!p->eval_step || c->eval.rows < 1)
		rt_die(c, RT_EXIT_RUNTIME, "rt_eval_run: %s", !p->eval_step
		       ? "this program has no evaluation step" : "no evaluation set was loaded");
	c->evaluating = 1;
	c->loss_sum = 0.0;
	for (int64_t b = 0; b < nb; b++) {
		c->eval_batch = b;
		c->action_index = 0;
		rt_dev_eval(c, (int)b);
	}
	c->evaluating = 0;
	c->eval_batch = 0;
	sum = rt_reduce_loss(c);
	c->loss_sum = loss_sum;
	c->busy = busy;
	c->action_index = action_index;
	denom = p->loss == RT_LOSS_MSE ? (double)c->eval.rows * (double)p->target_width
	      : p->loss == RT_LOSS_NEXT_TOKEN ? (double)c->eval.rows * (double)(c->seq_len - 1)
	      : (double)c->eval.rows;
	return c->rank == c->reporter && denom > 0 ? sum / denom : 0.0;
}
