/* rt_optim_cpu.c — the optimizer primitives of rt_dev.h on host memory,
 * in loops the compiler vectorises.  rt_optim.c composes them and says what
 * torch.optim computes; the loops below are that, in float32, one variant
 * per case (a flag tested inside a loop keeps gcc from vectorising it). */
#include <string.h>

#include "rt_internal.h"

/* The gradient as the update uses it, written over g (the step zeroes g
 * after the update): clip_grad_norm_'s g·clip first, as torch scales the
 * .grad tensors in place, then SGD's and Adam's L2 term g + wd·w. */
static void grad_terms(float *restrict g, const float *restrict w, int64_t n, const rt_osc *s,
                       int l2)
{
	float cl = s->clip, wd = s->wd;
	if (s->clipped && l2)
		for (int64_t i = 0; i < n; i++) {
			float gc = g[i] * cl;
			g[i] = gc + wd * w[i];
		}
	else if (s->clipped)
		for (int64_t i = 0; i < n; i++)
			g[i] *= cl;
	else if (l2)
		for (int64_t i = 0; i < n; i++)
			g[i] += wd * w[i];
}

static void sgd(float *restrict w, const float *restrict g, float *restrict buf, int64_t n,
                const rt_osc *s)
{
	float lr = s->lr, mom = s->momentum;
	if (buf && s->nesterov) {
		for (int64_t i = 0; i < n; i++) {
			buf[i] = mom * buf[i] + g[i];
			w[i] -= lr * (g[i] + mom * buf[i]);
		}
	} else if (buf) {
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
                 float *restrict v, int64_t n, const rt_osc *s, int decoupled)
{
	float step_size = s->step_size, bc2 = s->bc2, dec = s->decay;
	float omb1 = s->omb1, fb2 = s->b2, omb2 = s->omb2, feps = s->eps;
	if (decoupled)          /* AdamW: w *= 1 - lr·wd before the step */
		for (int64_t i = 0; i < n; i++)
			w[i] *= dec;
	for (int64_t i = 0; i < n; i++) {
		m[i] += omb1 * (g[i] - m[i]);
		v[i] = fb2 * v[i] + omb2 * g[i] * g[i];
		w[i] -= step_size * (m[i] / (sqrtf(v[i]) / bc2 + feps));
	}
}

void rt_dev_optim_update(rt_ctx *c, const rt_osc *s, int decay, int64_t off, int64_t n)
{
	float *w = (c->master ? c->master : c->w) + off, *g = c->g + off;
	if (n <= 0)
		return;
	grad_terms(g, w, n, s, decay && s->l2);
	switch (s->kind) {
	case RT_OPTIM_SGD:
		sgd(w, g, c->opt_m ? c->opt_m + off : NULL, n, s);
		break;
	case RT_OPTIM_ADAM:
	case RT_OPTIM_ADAMW:
		/* AdamW with weight_decay 0 multiplies by 1: no pass needed */
		adam(w, g, c->opt_m + off, c->opt_v + off, n, s,
		     decay && s->kind == RT_OPTIM_ADAMW && s->decay != 1.0f);
		break;
	}
}

double rt_dev_optim_sumsq(rt_ctx *c, const rt_orange *r, int n)
{
	double total = 0.0;
	for (int k = 0; k < n; k++) {
		/* eight running sums: the loop vectorises without reassociating
		 * anything the order below does not fix */
		double acc[8] = { 0 };
		const float *g = c->g + r[k].off;
		int64_t len = r[k].len, i = 0;
		for (; i + 8 <= len; i += 8)
			for (int j = 0; j < 8; j++)
				acc[j] += (double)g[i + j] * (double)g[i + j];
		for (; i < len; i++)
			acc[0] += (double)g[i] * (double)g[i];
		for (int j = 0; j < 8; j++)
			total += acc[j];
	}
	return total;
}

void rt_dev_optim_finish(rt_ctx *c)
{
	const rt_program *p = c->p;
	if (c->master)      /* the weights the kernels read: the update, rounded */
		rt_round_into_host(p->precision, c->w, c->master, p->nweights);
	/* The next step's backward passes accumulate from zero. */
	memset(c->g, 0, (size_t)p->nweights * sizeof *c->g);
}

void rt_dev_tied_sum(rt_ctx *c)
{
	rt_tied_sum(c, c->g);
}
