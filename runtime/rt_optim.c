/* rt_optim.c — SGD (with momentum) and Adam with torch.optim's semantics.
 *
 * The rank's parameters fill [0, nweights) of the weight buffer and the
 * gradients the same offsets of the gradient buffer, so one elementwise pass
 * over the buffer updates every parameter; gaps between parameters (if the
 * compiler leaves any) have zero gradients and stay as they are.
 *
 * torch.optim.SGD (no dampening, no nesterov, no weight decay):
 *   buf = g                        on the first step (PyTorch clones the grad)
 *   buf = momentum·buf + g         afterwards — identical when buf starts at 0
 *   w  -= lr·buf                   (w -= lr·g without momentum)
 * torch.optim.Adam (amsgrad off, single-tensor path):
 *   t += 1
 *   m  = m + (1-β1)(g - m)          (exp_avg.lerp_(grad, 1-β1))
 *   v  = β2·v + (1-β2)·g·g
 *   step_size = lr / (1 - β1^t);  bc2 = sqrt(1 - β2^t)
 *   w -= step_size · m / (sqrt(v)/bc2 + eps)
 * Scalars are computed in double (they are Python floats in PyTorch) and
 * applied in float32, as the tensors are.
 */
#include <math.h>
#include <string.h>

#include "rt_internal.h"

int rt_optim_alloc(rt_ctx *c)
{
	const rt_program *p = c->p;
	size_t bytes = (size_t)p->nweights * sizeof(float);
	if (p->precision != RT_PREC_F32 && p->optim != RT_OPTIM_NONE
	    && !(c->master = rt_alloc(bytes)))
		return -1;
	if (p->optim == RT_OPTIM_SGD && p->momentum != 0.0)
		c->opt_m = rt_alloc(bytes);
	else if (p->optim == RT_OPTIM_ADAM) {
		c->opt_m = rt_alloc(bytes);
		c->opt_v = rt_alloc(bytes);
		if (!c->opt_v)
			return -1;
	} else
		return 0;
	return c->opt_m ? 0 : -1;
}

static void sgd(float *restrict w, const float *restrict g, float *restrict buf, int64_t n,
                float lr, float mom)
{
	if (buf) {
		for (int64_t i = 0; i < n; i++) {
			buf[i] = mom * buf[i] + g[i];
			w[i] -= lr * buf[i];
		}
	} else {
		for (int64_t i = 0; i < n; i++)
			w[i] -= lr * g[i];
	}
}

static void adam(float *restrict w, const float *restrict g, float *restrict m,
                 float *restrict v, int64_t n, double lr, double b1, double b2,
                 double eps, int64_t t)
{
	float omb1 = (float)(1.0 - b1), fb2 = (float)b2, omb2 = (float)(1.0 - b2);
	float step_size = (float)(lr / (1.0 - pow(b1, (double)t)));
	float bc2 = (float)sqrt(1.0 - pow(b2, (double)t));
	float feps = (float)eps;
	for (int64_t i = 0; i < n; i++) {
		m[i] += omb1 * (g[i] - m[i]);
		v[i] = fb2 * v[i] + omb2 * g[i] * g[i];
		w[i] -= step_size * (m[i] / (sqrtf(v[i]) / bc2 + feps));
	}
}

void rt_optim_step(rt_ctx *c)
{
	const rt_program *p = c->p;
	int64_t n = p->nweights;
	float *w = c->master ? c->master : c->w;    /* 16-bit: update the master weights */
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
	 * An asynchronous schedule that updates mid-step (pipedream) would
	 * break that argument: tied weights need the compiler to refuse it. */
	if (p->optim != RT_OPTIM_NONE && c->ntied)
		rt_tied_sum(c, c->g);
	switch (p->optim) {
	case RT_OPTIM_SGD:
		sgd(w, c->g, c->opt_m, n, (float)p->lr, (float)p->momentum);
		break;
	case RT_OPTIM_ADAM:
		c->opt_t++;
		adam(w, c->g, c->opt_m, c->opt_v, n, p->lr, p->beta1, p->beta2, p->eps, c->opt_t);
		break;
	default:
		return;     /* inference: nothing to update, nothing accumulated */
	}
	if (c->master)      /* the weights the kernels read: the update, rounded */
		rt_round_into_host(p->precision, c->w, c->master, n);
	/* The next step's backward passes accumulate from zero. */
	memset(c->g, 0, (size_t)n * sizeof *c->g);
}

void rt_optim_version(rt_ctx *c, int dst)
{
	const rt_program *p = c->p;
	if (!p->async || !c->wv || dst < 0 || dst >= p->nversions)
		rt_die(c, RT_EXIT_RUNTIME, "rt_optim_version: slot %d of %d", dst, p->nversions);
	if (dst != c->newest && !c->master)     /* master: rt_optim_step writes all of it */
		memcpy(c->wv[dst], c->wv[c->newest], (size_t)p->nweights * sizeof(float));
	c->w = c->wv[dst];
	c->newest = dst;
	c->w_use = NULL;
	rt_optim_step(c);
}
