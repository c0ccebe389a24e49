/* rt_optim.c — the optimizer step of both runtimes, torch.optim's semantics:
 * SGD (momentum, weight decay, nesterov), Adam (L2 weight decay), AdamW
 * (decoupled weight decay), the learning-rate schedule and global gradient
 * clipping (docs/training.md).
 *
 * The rank's parameters fill [0, nweights) of the weight buffer and the
 * gradients the same offsets of the gradient buffer, so the update is
 * elementwise over ranges of the buffer: one range, or with
 * `decay = matrices` one per run of parameters with the same decay.  This
 * file computes everything that is not elementwise on the host, once for
 * both libraries; the elementwise work is rt_dev.h's optimizer primitives
 * (rt_optim_cpu.c, cuda/rt_kernels.cu).
 *
 * torch.optim.SGD (no dampening), d = g (+ wd·w):
 *   buf = d                        on the first step (PyTorch clones it)
 *   buf = momentum·buf + d         afterwards — identical when buf starts at 0
 *   d = d + momentum·buf (nesterov) or buf;  w -= lr·d
 * torch.optim.Adam (amsgrad off, single-tensor path), g (+ wd·w):
 *   t += 1
 *   m  = m + (1-β1)(g - m)          (exp_avg.lerp_(grad, 1-β1))
 *   v  = β2·v + (1-β2)·g·g
 *   step_size = lr / (1 - β1^t);  bc2 = sqrt(1 - β2^t)
 *   w -= step_size · m / (sqrt(v)/bc2 + eps)
 * torch.optim.AdamW: w *= 1 - lr·wd, then Adam's step without the L2 term.
 * Scalars are computed in double (they are Python floats in PyTorch) and
 * applied in float32, as the tensors are.
 *
 * torch.nn.utils.clip_grad_norm_(params, X): G = ‖(‖g_p‖)_p‖₂ over every
 * parameter, every g *= min(1, X/(G + 1e-6)).  Here G is one sum of squares
 * in double: each rank adds its parameters' (replica 0 only: after the
 * data-parallel allreduce every replica holds the same gradients; a tied
 * parameter on its lowest holder only: after rt_tied_sum every holder has
 * the same sum), then one MPI allreduce of one double over the job.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rt_internal.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* ---- Learning-rate schedule. ---- */

double rt_lr_at(const rt_program *p, int64_t t)
{
	double lr = p->lr, m = p->min_lr;
	int64_t W = p->lr_warmup > 0 ? p->lr_warmup : 0;
	/* total defaults to the pipeline's steps as compiled */
	int64_t T = p->lr_total > 0 ? p->lr_total : p->steps;
	if (W > 0 && t <= W)
		return lr * (double)t / (double)W;
	switch (p->lr_schedule) {
	case RT_LR_COSINE:
		if (t >= T)     /* at T the formula is m too; T <= W never divides by 0 */
			return m;
		return m + (lr - m) * 0.5 * (1.0 + cos(M_PI * (double)(t - W) / (double)(T - W)));
	case RT_LR_LINEAR:
		if (t >= T)
			return m;
		return m + (lr - m) * (double)(T - t) / (double)(T - W);
	default:
		return lr;
	}
}

/* ---- Ranges of the buffer. ---- */

static int cmp_range(const void *a, const void *b)
{
	const rt_orange *x = a, *y = b;
	return (x->off > y->off) - (x->off < y->off);
}

/* The parameters for which keep(i) holds, sorted by offset, adjacent ones
 * with the same decay merged.  NULL with *n = 0 when none (or no memory:
 * the caller says so). */
static rt_orange *param_ranges(const rt_program *p, const int *keep, int by_ndim, int *n)
{
	rt_orange *r = malloc(((size_t)p->nparams + 1) * sizeof *r);
	int k = 0, m = 0;
	*n = 0;
	if (!r)
		return NULL;
	for (int i = 0; i < p->nparams; i++)
		if (!keep || keep[i]) {
			r[k].off = p->params[i].offset;
			r[k].len = p->params[i].numel;
			r[k].decay = !by_ndim || p->params[i].ndim >= 2;
			k++;
		}
	qsort(r, (size_t)k, sizeof *r, cmp_range);
	for (int i = 0; i < k; i++) {
		if (m && r[m - 1].decay == r[i].decay && r[m - 1].off + r[m - 1].len == r[i].off)
			r[m - 1].len += r[i].len;
		else
			r[m++] = r[i];
	}
	*n = m;
	return r;
}

/* Every parameter this rank counts in the global norm. */
static int norm_ranges(rt_ctx *c)
{
	const rt_program *p = c->p;
	int *keep = calloc((size_t)p->nparams + 1, sizeof *keep);
	if (!keep)
		return -1;
	for (int i = 0; i < p->nparams && p->replica == 0; i++) {
		keep[i] = 1;
		for (int j = 0; j < c->ntied; j++) {
			int r = 0;
			if (c->tied[j].off != p->params[i].offset || c->tied[j].comm == MPI_COMM_NULL)
				continue;
			/* the holders are split by world rank: 0 is the lowest */
			MPI_Comm_rank(c->tied[j].comm, &r);
			keep[i] = r == 0;
		}
	}
	c->nrng = param_ranges(p, keep, 0, &c->nnrng);
	free(keep);
	return c->nrng || !p->nparams ? 0 : -1;
}

int rt_optim_alloc(rt_ctx *c)
{
	const rt_program *p = c->p;
	size_t bytes = (size_t)p->nweights * sizeof(float);
	int by_ndim = p->decay_matrices && p->weight_decay != 0.0;
	c->grad_norm = -1.0;
	c->nnrng = -1;
	c->before_replay = rt_optim_prepare;
	if (p->optim == RT_OPTIM_NONE)
		return 0;
	if (p->precision != RT_PREC_F32 && !(c->master = rt_dev_alloc(c, bytes)))
		return -1;
	if (by_ndim) {
		if (!(c->orng = param_ranges(p, NULL, 1, &c->norng)) && p->nparams)
			return -1;
	} else {
		if (!(c->orng = malloc(sizeof *c->orng)))
			return -1;
		c->orng[0] = (rt_orange){ 0, p->nweights, 1 };
		c->norng = 1;
	}
	if (p->optim == RT_OPTIM_SGD && p->momentum != 0.0)
		return (c->opt_m = rt_dev_alloc(c, bytes)) ? 0 : -1;
	if (p->optim == RT_OPTIM_ADAM || p->optim == RT_OPTIM_ADAMW) {
		c->opt_m = rt_dev_alloc(c, bytes);
		c->opt_v = rt_dev_alloc(c, bytes);
		return c->opt_m && c->opt_v ? 0 : -1;
	}
	return 0;
}

void rt_optim_free(rt_ctx *c)
{
	free(c->orng);
	free(c->nrng);
	c->orng = c->nrng = NULL;
	c->norng = 0;
	c->nnrng = -1;
}

/* ---- The step. ---- */

void rt_optim_prepare(rt_ctx *c)
{
	const rt_program *p = c->p;
	rt_osc *s = &c->osc;
	int64_t t;
	double lr;
	c->opt_updates++;
	c->opt_t++;
	/* pipedream updates once per micro-batch, in key order: the update's
	 * step is the one holding its micro-batch */
	if (p->async && p->schedule && !strcmp(p->schedule, "pipedream") && p->M > 0)
		t = c->step0 + (c->opt_updates - 1) / p->M + 1;
	else
		t = c->step0 + c->opt_updates;
	c->lr_now = lr = rt_lr_at(p, t);
	s->kind = p->optim;
	s->nesterov = p->nesterov;
	s->lr = (float)lr;
	s->momentum = (float)p->momentum;
	s->l2 = p->optim != RT_OPTIM_ADAMW && p->weight_decay != 0.0;
	s->wd = (float)p->weight_decay;
	s->decay = (float)(1.0 - lr * p->weight_decay);
	s->step_size = (float)(lr / (1.0 - pow(p->beta1, (double)c->opt_t)));
	s->bc2 = (float)sqrt(1.0 - pow(p->beta2, (double)c->opt_t));
	s->omb1 = (float)(1.0 - p->beta1);
	s->b2 = (float)p->beta2;
	s->omb2 = (float)(1.0 - p->beta2);
	s->eps = (float)p->eps;
	s->clipped = 0;         /* clip() decides, after the step's norm */
	s->clip = 1.0f;
}

/* The global norm of the step's gradients, and the factor that clips them. */
static void clip(rt_ctx *c)
{
	double local = 0.0, sum = 0.0, G, scale;
	MPI_Request r;
	if (c->nnrng < 0 && norm_ranges(c) != 0)
		rt_die(c, RT_EXIT_RUNTIME, "out of memory");
	if (c->nnrng > 0)
		local = rt_dev_optim_sumsq(c, c->nrng, c->nnrng);
	/* One double over the job: every rank's OPTIM is the last action of
	 * its step, so every rank gets here (rt_optim_step's argument). */
	if (MPI_Iallreduce(&local, &sum, 1, MPI_DOUBLE, MPI_SUM, c->comm, &r) != MPI_SUCCESS)
		rt_die(c, RT_EXIT_RUNTIME, "MPI_Iallreduce of the gradient norm failed");
	rt_wait_req(c, &r, "OPTIM: the allreduce of the gradient norm", "every rank");
	c->grad_norm = G = sqrt(sum);
	scale = c->p->clip_grad_norm / (G + 1e-6);
	/* torch multiplies by min(scale, 1): NaN stays NaN, so a non-finite
	 * norm makes the gradients non-finite as it does there */
	c->osc.clipped = !(scale >= 1.0);
	c->osc.clip = (float)scale;
}

void rt_optim_step(rt_ctx *c)
{
	const rt_program *p = c->p;
	if (p->optim == RT_OPTIM_NONE || !rt_dev_computing(c))
		return;     /* inference: nothing to update; the CUDA dry run: nothing */
	/* Tied copies (a token embedding and its lm_head on other stages)
	 * each hold part of the weight's gradient: the sum of both is the
	 * gradient of the one shared weight, and applying the same sum to
	 * equal copies keeps them equal (Megatron's embedding all-reduce).  It
	 * runs after the step's data-parallel rt_allreduce, so the sum covers
	 * every replica.
	 * It cannot deadlock in a synchronous schedule: OPTIM is every rank's
	 * last action of the step (docs/schedules.md), so a rank that waits here has
	 * posted every message of its step and waits on nothing else; each
	 * other holder needs only messages that ranks post before their own
	 * OPTIM, so it gets here too.  (The wait keeps MPI progressing the
	 * posted sends; --timeout still names the peer if one never comes.)
	 * The same holds for the clipping norm's allreduce over every rank.
	 * An asynchronous schedule that updates mid-step (pipedream) would
	 * break that argument: tied weights and clipping need the compiler to
	 * refuse it. */
	if (c->ntied)
		rt_dev_tied_sum(c);
	rt_optim_prepare(c);
	c->grad_norm = -1.0;
	if (p->clip_grad_norm > 0.0)
		clip(c);
	for (int i = 0; i < c->norng; i++)
		rt_dev_optim_update(c, &c->osc, c->orng[i].decay, c->orng[i].off, c->orng[i].len);
	rt_dev_optim_finish(c);
}

void rt_optim_version(rt_ctx *c, int dst)
{
	const rt_program *p = c->p;
	if (!p->async || !c->wv || dst < 0 || dst >= p->nversions)
		rt_die(c, RT_EXIT_RUNTIME, "rt_optim_version: slot %d of %d", dst, p->nversions);
	if (!rt_dev_computing(c))       /* the CUDA dry run moves no weights */
		return;
	/* master: rt_optim_step writes all of it */
	if (dst != c->newest && !c->master)
		rt_copy(c->wv[dst], c->wv[c->newest], (size_t)p->nweights * sizeof(float));
	c->w = c->wv[dst];
	c->newest = dst;
	c->w_use = NULL;
	rt_optim_step(c);
}
