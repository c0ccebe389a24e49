/* sched_sim.c — timing a lowered schedule on a cost model, and its memory.
 *
 * The simulator runs the ranks the way the verifier does (each rank until
 * it blocks; a SEND or the last ALLREDUCE arrival wakes the ranks waiting
 * for it) and gives every action a start and an end:
 *   F, B, W, R      take their cost from the rank's clock;
 *   SEND_*          take no time on the sender; the message arrives at the
 *                   send time plus its transfer cost;
 *   RECV_*          start when the rank reaches them and end at
 *                   max(that + the message's copy, its arrival): the wait
 *                   is idle time (the copy: c->copy_f/copy_b, the part of
 *                   the transfer the receiver does itself);
 *   ALLREDUCE(s)    every replica of stage s ends it together, at the last
 *                   arrival plus c->allreduce (c->allreduce_s[s]);
 *   OPTIM           costs c->optim (c->optim_p[pipeline rank]);
 *   generate        a decode round's F costs c->f_dec (its activations
 *                   c->msg_f_dec), and a token takes c->msg_tok round the
 *                   ring (SEND_TOK / RECV_TOK as SEND_F / RECV_F), a
 *                   disaggregated prefill's caches c->msg_kv[stage].
 * Each action starts when the previous one on its rank ended, so the result
 * does not depend on the order ranks are visited in.
 */
#include "schedule.h"

#include <string.h>

SimCost *simcost_uniform(const Schedule *s)
{
	SimCost *c = xalloc(sizeof *c);
	int S = s->S;
	double V = s->V;
	c->name = "uniform";
	c->f = xalloc((size_t)S * sizeof *c->f);
	c->b = xalloc((size_t)S * sizeof *c->b);
	c->w = xalloc((size_t)S * sizeof *c->w);
	c->r = xalloc((size_t)S * sizeof *c->r);
	c->msg_f = xalloc((size_t)S * sizeof *c->msg_f);
	c->msg_b = xalloc((size_t)S * sizeof *c->msg_b);
	for (int k = 0; k < S; k++) {
		c->f[k] = 1.0 / V;
		c->b[k] = (s->split ? 1.0 : 2.0) / V;
		c->w[k] = s->split ? 1.0 / V : 0.0;
		c->r[k] = c->f[k];
	}
	if (s->V == 1)
		c->describe = s->split
			? "uniform: F = 1, B = 1, W = 1 (split backward), R = F, no comm cost"
			: "uniform: F = 1, B = 2, R = F, no comm cost";
	else if (s->split)
		c->describe = xprintf("uniform: per chunk (V = %d) F = %g, B = %g, W = %g, R = F, "
		                      "no comm cost", s->V, c->f[0], c->b[0], c->w[0]);
	else
		c->describe = xprintf("uniform: per chunk (V = %d) F = %g, B = %g, R = F, "
		                      "no comm cost", s->V, c->f[0], c->b[0]);
	return c;
}

static double at(const double *v, int i, double dflt)
{
	return v ? v[i] : dflt;
}

SimResult *sched_simulate(const Schedule *s, const SimCost *c)
{
	if (!s->lowered)
		die("simulating a schedule that was not lowered");
	int n = s->nranks, P = s->P, S = s->S, M = SCHED_KEYS(s);
	int nkeys = s->R * S * M;
	SimResult *res = xalloc(sizeof *res);
	res->start = xalloc((size_t)n * sizeof *res->start);
	res->end = xalloc((size_t)n * sizeof *res->end);
	res->busy = xalloc((size_t)n * sizeof *res->busy);
	res->idle = xalloc((size_t)n * sizeof *res->idle);
	res->us_per_unit = c->name && strcmp(c->name, "uniform") == 0 ? 1000.0 : 1e6;
	for (int k = 0; k < n; k++) {
		size_t m = (size_t)(s->rank[k].n ? s->rank[k].n : 1);
		res->start[k] = xalloc(m * sizeof **res->start);
		res->end[k] = xalloc(m * sizeof **res->end);
	}
	double *t = xalloc((size_t)n * sizeof *t);
	int *pc = xalloc((size_t)n * sizeof *pc);
	int *arrived = xalloc((size_t)n * sizeof *arrived);
	int *queue = xalloc((size_t)n * sizeof *queue);
	int *queued = xalloc((size_t)n * sizeof *queued);
	double *arr_f = xalloc((size_t)(nkeys + 1) * sizeof *arr_f);
	double *arr_b = xalloc((size_t)(nkeys + 1) * sizeof *arr_b);
	unsigned char *posted_f = xalloc((size_t)nkeys + 1);
	unsigned char *posted_b = xalloc((size_t)nkeys + 1);
	unsigned char *posted_t = xalloc((size_t)nkeys + 1);
	double *arr_t = xalloc((size_t)(nkeys + 1) * sizeof *arr_t);
	unsigned char *posted_kv = xalloc((size_t)nkeys + 1);
	double *arr_kv = xalloc((size_t)(nkeys + 1) * sizeof *arr_kv);
	int *ar_count = xalloc((size_t)S * sizeof *ar_count);
	double *ar_last = xalloc((size_t)S * sizeof *ar_last);
	int head = 0, tail = 0, nq = n;
	for (int k = 0; k < n; k++) {
		queue[k] = k;
		queued[k] = 1;
	}
#define KEY(rep, st, mb) (((rep) * S + (st)) * M + (mb))
#define WAKE(r) do { int r_ = (r); if (!queued[r_]) { queued[r_] = 1; \
	queue[tail] = r_; tail = (tail + 1) % n; nq++; } } while (0)
	while (nq > 0) {
		int k = queue[head];
		head = (head + 1) % n;
		nq--;
		queued[k] = 0;
		int rep = s->disagg ? 0 : k / P;
		const ActList *l = &s->rank[k];
		while (pc[k] < l->n) {
			int i = pc[k];
			const Action *a = &l->a[i];
			int st = a->stage;
			double dur = 0, now = t[k], end;
			switch (a->op) {
			case OP_F:
				dur = a->mb >= s->M && c->f_dec ? c->f_dec[st] : c->f[st];
				break;
			case OP_B: dur = c->b[st]; break;
			case OP_W: dur = at(c->w, st, 0); break;
			case OP_R: dur = at(c->r, st, c->f[st]); break;
			case OP_OPTIM: dur = c->optim_p ? c->optim_p[k % P] : c->optim; break;
			case OP_SEND_F: {
				int kk = KEY(rep, st, a->mb);
				posted_f[kk] = 1;
				arr_f[kk] = now + (a->mb >= s->M && c->msg_f_dec ? c->msg_f_dec[st]
				                   : at(c->msg_f, st, 0));
				WAKE(a->peer);
				break;
			}
			case OP_SEND_B: {
				int kk = KEY(rep, st, a->mb);
				posted_b[kk] = 1;
				arr_b[kk] = now + at(c->msg_b, st, 0);
				WAKE(a->peer);
				break;
			}
			case OP_SEND_TOK: {
				int kk = KEY(rep, st, a->mb);
				posted_t[kk] = 1;
				arr_t[kk] = now + c->msg_tok;
				WAKE(a->peer);
				break;
			}
			case OP_RECV_TOK: {
				int kk = KEY(rep, S - 1, a->mb);
				if (!posted_t[kk])
					goto blocked;
				res->start[k][i] = now;
				res->end[k][i] = t[k] = arr_t[kk] > now ? arr_t[kk] : now;
				pc[k]++;
				continue;
			}
			case OP_SEND_KV: {
				int kk = KEY(rep, st, a->mb);
				posted_kv[kk] = 1;
				arr_kv[kk] = now + at(c->msg_kv, st, 0);
				WAKE(a->peer);
				break;
			}
			case OP_RECV_KV: {
				int kk = KEY(rep, st, a->mb);
				if (!posted_kv[kk])
					goto blocked;
				res->start[k][i] = now;
				res->end[k][i] = t[k] = arr_kv[kk] > now ? arr_kv[kk] : now;
				pc[k]++;
				continue;
			}
			case OP_RECV_F:
			case OP_RECV_B: {
				int f = a->op == OP_RECV_F;
				int kk = KEY(rep, f ? st - 1 : st + 1, a->mb);
				if (!(f ? posted_f : posted_b)[kk])
					goto blocked;
				double arr = (f ? arr_f : arr_b)[kk];
				res->start[k][i] = now;
				/* a message that arrived before its receive is still
				 * copied out in it (shared-memory MPI copies at the
				 * receive): at least that long */
				double copy = at(f ? c->copy_f : c->copy_b, f ? st - 1 : st + 1, 0);
				res->end[k][i] = t[k] = arr > now + copy ? arr : now + copy;
				pc[k]++;
				continue;
			}
			case OP_ALLREDUCE:
				if (!arrived[k]) {
					arrived[k] = 1;
					res->start[k][i] = now;
					if (ar_count[st] == 0 || now > ar_last[st])
						ar_last[st] = now;
					if (++ar_count[st] == s->R)
						for (int r = 0; r < s->R; r++)
							WAKE(SCHED_RANK(s, r, s->stage_rank[st]));
				}
				if (ar_count[st] < s->R)
					goto blocked;
				arrived[k] = 0;
				end = ar_last[st] + at(c->allreduce_s, st, c->allreduce);
				res->end[k][i] = end;
				t[k] = end;
				pc[k]++;
				continue;
			default:
				die("simulating op %d", a->op);
			}
			end = now + dur;
			res->start[k][i] = now;
			res->end[k][i] = end;
			if (a->op <= OP_R)
				res->busy[k] += dur;
			t[k] = end;
			pc[k]++;
		}
	blocked:;
	}
#undef WAKE
#undef KEY
	for (int k = 0; k < n; k++)
		if (pc[k] < s->rank[k].n)
			die("simulation deadlocked at rank %d action %d (the schedule was "
			    "not verified)", k, pc[k]);
	double maxbusy = 0, idle = 0;
	for (int k = 0; k < n; k++) {
		if (t[k] > res->step_time)
			res->step_time = t[k];
		if (res->busy[k] > maxbusy)
			maxbusy = res->busy[k];
	}
	for (int k = 0; k < n; k++) {
		res->idle[k] = res->step_time - res->busy[k];
		idle += res->idle[k];
	}
	res->bubble_fraction = res->step_time > 0 ? idle / (n * res->step_time) : 0;
	res->bubble_overhead = maxbusy > 0 ? (res->step_time - maxbusy) / maxbusy : 0;
	return res;
}

/* A micro-batch of stage s is in flight on its rank from its F until its B
 * (its W when the backward is split) completes; forward-only, from its F
 * until its SEND_F hands it on (until the F ends when no SEND_F follows:
 * the last stage, or a next stage on the same rank, whose F counts it
 * again).  Counts follow program order: a rank does one thing at a time. */
void sched_memory(const Schedule *s, const double *act_bytes,
                  double *peak_bytes, int *peak_mbs)
{
	int S = s->S, M = SCHED_KEYS(s);
	unsigned char *state = xalloc((size_t)S * M);  /* bit 1: in flight, 2: SEND_F follows */
	for (int k = 0; k < s->nranks; k++) {
		const ActList *l = &s->rank[k];
		int cnt = 0, pk = 0;
		double bytes = 0, pb = 0;
		memset(state, 0, (size_t)S * M);
		if (!s->training)
			for (int i = 0; i < l->n; i++)
				if (l->a[i].op == OP_SEND_F)
					state[l->a[i].stage * M + l->a[i].mb] |= 2;
		for (int i = 0; i < l->n; i++) {
			const Action *a = &l->a[i];
			int st = a->stage;
			double ab;
			if (a->op != OP_F && a->op != OP_B && a->op != OP_W && a->op != OP_SEND_F)
				continue;
			unsigned char *m = &state[st * M + a->mb];
			ab = act_bytes ? act_bytes[st] : 0;
			if (a->op == OP_F) {
				*m |= 1;
				cnt++;
				bytes += ab;
				if (cnt > pk)
					pk = cnt;
				if (bytes > pb)
					pb = bytes;
				if (!s->training && !(*m & 2)) {
					*m &= (unsigned char)~1;
					cnt--;
					bytes -= ab;
				}
				continue;
			}
			int release = s->training
				? (a->op == OP_W || (a->op == OP_B && !s->split))
				: a->op == OP_SEND_F;
			if (release && (*m & 1)) {
				*m &= (unsigned char)~1;
				cnt--;
				bytes -= ab;
			}
		}
		if (peak_mbs)
			peak_mbs[k] = pk;
		if (peak_bytes)
			peak_bytes[k] = pb;
	}
}
