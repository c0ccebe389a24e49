/* sched_async.c — pipedream and pipedream-2bw: training with no flush.
 *
 * PipeDream (Narayanan et al., SOSP 2019) runs 1F1B forever: rank p keeps
 * lag[p] + 1 micro-batches in flight (default P - p, VPipe's `inflight`
 * knob lowers it), and after each backward applies that micro-batch's
 * gradient at once.  A micro-batch's backward must see the weights its
 * forward saw, so each rank stashes the versions its in-flight micro-batches
 * were computed with: lag[p] + 1 buffers.  PipeDream-2BW (Narayanan et al.,
 * ICML 2021) accumulates a step's gradient and applies it once, the step
 * after computing with weights one update old: two buffers.
 *
 * A run of T steps is one stream of T*M micro-batches.  The program of a
 * rank is sched_async_step(t) for t = 0..T: step t does the forwards of its
 * own M micro-batches and the backwards that 1F1B order puts beside them,
 * lag[p] keys behind; the extra step T (the drain) only finishes the last
 * lag[p] backwards.  Since lag[p] < M (sema requires it), a step's
 * backwards belong to it or to the step before, and the same unguarded
 * step (sched_async_template) describes every step of the stream: the
 * emitted program is that step with guards, planned once.
 *
 * The order is deadlock-free as 1F1B is: rank p+1's backward of key k
 * follows its forward of k + lag[p+1], which needs rank p's forward of
 * that key, and lag[p+1] <= lag[p] (sema) puts it before rank p's
 * backward of k.  sched_verify() proves it for the stream it is given.
 */
#include "schedule.h"

static int floordiv(int a, int b)
{
	return a >= 0 ? a / b : -((-a + b - 1) / b);
}

int sched_async_slot(const Schedule *s, int p, int v)
{
	int n = s->nver[p];
	return ((v % n) + n) % n;
}

int sched_async_version(const Schedule *s, int p, int k)
{
	if (s->kind == SK_2BW)
		return floordiv(k, s->M) - 1;
	return k - s->lag[p];
}

static void push(ActList *l, int op, int stage, int mb, int peer, int ver)
{
	actlist_push(l, op, stage, mb, peer);
	l->a[l->n - 1].ver = ver;
}

void sched_async_step(const Schedule *s, int p, int t, int guard, ActList *l)
{
	int P = s->P, M = s->M, K = s->M * s->ntok, d = s->lag[p];
	int base = guard ? t * M : 0;        /* unguarded: keys relative to the step */
	const unsigned char *rc = s->rc;
	for (int m = 0; m < M; m++) {
		int kf = base + m, kb = base + m - d;
		if (!guard || kf < K) {
			if (p > 0)
				push(l, OP_RECV_F, p, kf, p - 1, 0);
			push(l, OP_F, p, kf, -1, sched_async_version(s, p, kf));
			if (p < P - 1)
				push(l, OP_SEND_F, p, kf, p + 1, 0);
		}
		if (guard && (kb < 0 || kb >= K))
			continue;
		int vb = sched_async_version(s, p, kb);
		if (p < P - 1)
			push(l, OP_RECV_B, p, kb, p + 1, 0);
		if (rc && rc[p])
			push(l, OP_R, p, kb, -1, vb);
		push(l, OP_B, p, kb, -1, vb);
		if (p > 0)
			push(l, OP_SEND_B, p, kb, p - 1, 0);
		/* the update, writing the version after the newest: pipedream
		 * after every backward, 2bw after a step's last */
		if (s->kind == SK_PIPEDREAM)
			push(l, OP_OPTIM, -1, kb, -1, kb + 1);
		else if (((kb % M) + M) % M == M - 1)
			push(l, OP_OPTIM, -1, kb, -1, floordiv(kb, M) + 1);
	}
}

Schedule *sched_async_template(const Schedule *s)
{
	Schedule *r = sched_new(s->kind, s->P, 1, s->M, 1, 1, 0);
	r->async = 1;
	r->ntok = 1;
	r->label = s->label;
	r->lag = s->lag;
	r->nver = s->nver;
	r->rc = s->rc;
	for (int p = 0; p < s->P; p++)
		sched_async_step(r, p, 0, 0, &r->rank[p]);
	r->lowered = 1;
	return r;
}

/* The whole run: steps 0..T-1 and the drain. */
Schedule *sched_async(const SchedSpec *spec)
{
	int P = spec->P, M = spec->M;
	if (spec->R != 1 || spec->V != 1 || !spec->training || spec->steps < 1)
		die("asynchronous schedule asked for R=%d V=%d training=%d steps=%d",
		    spec->R, spec->V, spec->training, spec->steps);
	Schedule *s = sched_new(spec->kind, P, 1, M, 1, 1, 0);
	s->async = 1;
	s->run_steps = spec->steps;
	s->ntok = spec->steps < SCHED_ASYNC_STEPS ? spec->steps : SCHED_ASYNC_STEPS;
	s->lag = xalloc((size_t)P * sizeof *s->lag);
	s->nver = xalloc((size_t)P * sizeof *s->nver);
	s->rc = spec->recompute;
	for (int p = 0; p < P; p++) {
		int inflight = spec->inflight ? spec->inflight[p] : P - p;
		if (inflight < 1 || inflight > P - p || inflight > M
		    || (p > 0 && inflight - 1 > s->lag[p - 1]))
			die("asynchronous schedule: rank %d cannot keep %d in flight", p, inflight);
		s->lag[p] = inflight - 1;
		s->nver[p] = spec->kind == SK_2BW ? 2 : inflight;
	}
	for (int p = 0; p < P; p++)
		for (int t = 0; t <= s->ntok; t++)
			sched_async_step(s, p, t, 1, &s->rank[p]);
	s->lowered = 1;
	return s;
}
