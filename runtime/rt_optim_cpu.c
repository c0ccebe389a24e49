/* rt_optim_cpu.c — the optimizer primitives of rt_dev.h on host memory:
 * loops the compiler vectorises.  rt_optim.c composes them and says what
 * torch.optim computes; each loop below is that, one element at a time, in
 * float32.  A flag that does not apply selects the unchanged value, which
 * keeps the loops branch-free and the bits those of skipping the term. */
#include <string.h>

#include "rt_internal.h"

static void sgd(float *restrict w, float *restrict g, float *restrict buf, int64_t n,
                const rt_osc *s, int l2)
{
	float cl = s->clip, wd = s->wd, lr = s->lr, mom = s->momentum;
	int clipped = s->clipped, nesterov = s->nesterov;
	if (buf) {
		for (int64_t i = 0; i < n; i++) {
			float d = g[i], dc = d * cl, b, dn;
			d = clipped ? dc : d;
			dc = d + wd * w[i];
			d = l2 ? dc : d;
			b = mom * buf[i] + d;
			buf[i] = b;
			dn = d + mom * b;
			w[i] -= lr * (nesterov ? dn : b);
		}
	} else {
		for (int64_t i = 0; i < n; i++) {
			float d = g[i], dc = d * cl;
			d = clipped ? dc : d;
			dc = d + wd * w[i];
			d = l2 ? dc : d;
			w[i] -= lr * d;
		}
	}
}

static void adam(float *restrict w, float *restrict g, float *restrict m, float *restrict v,
                 int64_t n, const rt_osc *s, int l2, int decoupled)
{
	float cl = s->clip, wd = s->wd, dec = s->decay;
	float step_size = s->step_size, bc2 = s->bc2;
	float omb1 = s->omb1, fb2 = s->b2, omb2 = s->omb2, feps = s->eps;
	int clipped = s->clipped;
	for (int64_t i = 0; i < n; i++) {
		float gi = g[i], gc = gi * cl, wi = w[i], wc;
		gi = clipped ? gc : gi;
		gc = gi + wd * wi;
		gi = l2 ? gc : gi;
		wc = wi * dec;
		wi = decoupled ? wc : wi;
		m[i] += omb1 * (gi - m[i]);
		v[i] = fb2 * v[i] + omb2 * gi * gi;
		w[i] = wi - step_size * (m[i] / (sqrtf(v[i]) / bc2 + feps));
	}
}

void rt_dev_optim_update(rt_ctx *c, const rt_osc *s, int decay, int64_t off, int64_t n)
{
	float *w = (c->master ? c->master : c->w) + off, *g = c->g + off;
	if (n <= 0)
		return;
	switch (s->kind) {
	case RT_OPTIM_SGD:
		sgd(w, g, c->opt_m ? c->opt_m + off : NULL, n, s, decay && s->l2);
		break;
	case RT_OPTIM_ADAM:
	case RT_OPTIM_ADAMW:
		adam(w, g, c->opt_m + off, c->opt_v + off, n, s, decay && s->l2,
		     decay && s->kind == RT_OPTIM_ADAMW);
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
