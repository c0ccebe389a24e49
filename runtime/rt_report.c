/* rt_report.c — what a training run says while it runs (docs/training.md,
 * "Logs and metrics"), all of it on the reporter rank:
 *   `step N loss L`        every --log-every N steps and at the last step;
 *   `eval step N loss L`   after each evaluation;
 *   --metrics FILE.jsonl   one JSON object per step and per evaluation,
 *                          each line flushed as it is written, so that a
 *                          run that dies leaves every finished step's line;
 *   a progress line        on a terminal (stderr), rewritten in place.
 * Steps are global (a resumed run continues the numbers).  Numbers in the
 * metrics are printed with 17 significant digits, so that they read back
 * as the same doubles; JSON has no NaN or infinity, so those are null.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rt_internal.h"

/* The progress line is redrawn at most this often (seconds). */
static const double PROGRESS_EVERY = 0.2;

int rt_report_open(rt_ctx *c)
{
	c->rep_t0 = rt_now();
	c->rep_drawn = 0;
	c->rep_progress = 0;
	if (c->rank != c->reporter)
		return 0;
	/* under the launcher stderr is a pipe: run says when it is a terminal */
	{
		const char *e = getenv("PIPERT_PROGRESS");
		c->rep_progress = isatty(STDERR_FILENO) || (e && !strcmp(e, "1"));
	}
	if (c->o.metrics && !(c->rep_metrics = fopen(c->o.metrics, "w"))) {
		rt_defer(c, "cannot write --metrics %s: %s", c->o.metrics, strerror(errno));
		return RT_EXIT_INPUT;
	}
	return 0;
}

/* A JSON number, or null for what JSON cannot hold. */
static void json_num(FILE *f, const char *key, double x)
{
	if (isfinite(x))
		fprintf(f, ", \"%s\": %.17g", key, x);
	else
		fprintf(f, ", \"%s\": null", key);
}

static void metrics_end(rt_ctx *c)
{
	fputs("}\n", c->rep_metrics);
	if (fflush(c->rep_metrics) != 0 && !c->rep_failed) {
		c->rep_failed = errno ? errno : EIO;
		rt_msg(c->rank, "cannot write --metrics %s: %s (the run goes on without it)",
		       c->o.metrics, strerror(c->rep_failed));
	}
}

static void progress_clear(rt_ctx *c)
{
	if (c->rep_drawn) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
		c->rep_drawn = 0;
	}
}

/* "step n/N  x samples/s  ETA mm:ss", over what it replaces. */
static void progress_draw(rt_ctx *c, int64_t done, int64_t of)
{
	double now = rt_now(), el = now - c->rep_t0, rate, left;
	long s;
	if (done < of && now - c->rep_last_draw < PROGRESS_EVERY)
		return;
	c->rep_last_draw = now;
	rate = el > 0 ? (double)done * (double)c->p->batch / el : 0.0;
	left = done > 0 ? el / (double)done * (double)(of - done) : 0.0;
	s = (long)(left + 0.5);
	fprintf(stderr, "\rstep %lld/%lld  %.6g samples/s  ETA %02ld:%02ld\033[K",
	        (long long)(c->step0 + done), (long long)(c->step0 + of), rate, s / 60, s % 60);
	fflush(stderr);
	c->rep_drawn = 1;
}

void rt_report_step(rt_ctx *c, int64_t global_step, double loss, double step_time)
{
	const rt_program *p = c->p;
	int64_t last = c->step0 + c->o.steps, every = c->o.log_every > 0 ? c->o.log_every : 1;
	if (c->rank != c->reporter)
		return;
	if (p->loss != RT_LOSS_NONE && (global_step % every == 0 || global_step >= last)) {
		progress_clear(c);
		printf("step %lld loss %.9g\n", (long long)global_step, loss);
		fflush(stdout);
	}
	/* once: a diverged run says so, and where f16 is the likely cause, why */
	if (p->loss != RT_LOSS_NONE && !isfinite(loss) && !c->rep_nonfinite) {
		c->rep_nonfinite = 1;
		progress_clear(c);
		rt_msg(c->rank, "note: step %lld's loss is %s%s", (long long)global_step,
		       isnan(loss) ? "NaN" : "infinite",
		       p->precision == RT_PREC_F16
		       ? ": with dtype = f16 a value beyond 65504 overflows to "
		         "infinity (bf16 has f32's range; docs/precision.md)"
		       : ": the training diverged (a smaller learning rate?)");
	}
	if (c->rep_metrics && !c->rep_failed) {
		fprintf(c->rep_metrics, "{\"step\": %lld", (long long)global_step);
		if (p->loss != RT_LOSS_NONE)
			json_num(c->rep_metrics, "loss", loss);
		if (p->optim != RT_OPTIM_NONE)
			json_num(c->rep_metrics, "lr", c->lr_now);
		if (c->grad_norm >= 0.0 || isnan(c->grad_norm))
			json_num(c->rep_metrics, "grad_norm", c->grad_norm);
		json_num(c->rep_metrics, "step_time", step_time);
		json_num(c->rep_metrics, "samples_per_s",
		         step_time > 0 ? (double)p->batch / step_time : NAN);
		metrics_end(c);
	}
	if (c->rep_progress)
		progress_draw(c, global_step - c->step0, c->o.steps);
}

void rt_report_eval(rt_ctx *c, int64_t global_step, double eval_loss)
{
	if (c->rank != c->reporter)
		return;
	progress_clear(c);
	printf("eval step %lld loss %.9g\n", (long long)global_step, eval_loss);
	fflush(stdout);
	if (c->rep_metrics && !c->rep_failed) {
		fprintf(c->rep_metrics, "{\"step\": %lld", (long long)global_step);
		json_num(c->rep_metrics, "eval_loss", eval_loss);
		metrics_end(c);
	}
}

int rt_report_close(rt_ctx *c)
{
	int rc = 0;
	progress_clear(c);
	c->rep_progress = 0;
	if (c->rep_metrics) {
		if (fclose(c->rep_metrics) != 0 && !c->rep_failed) {
			rt_msg(c->rank, "cannot write --metrics %s: %s", c->o.metrics, strerror(errno));
			rc = RT_EXIT_INPUT;
		}
		if (c->rep_failed)
			rc = RT_EXIT_INPUT;
		c->rep_metrics = NULL;
	}
	return rc;
}
