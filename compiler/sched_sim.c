/* sched_sim.c — timing a lowered schedule on a cost model, and its memory.
 *
 * The simulator runs the ranks on the schedule interpreter (sched_interp.h,
 * the one the verifier proves deadlock freedom on) and gives every action
 * a start and an end from the interpreter's events:
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
#include "sched_interp.h"

#include <string.h>

SimCost *simcost_new(const char *name, int S)
{
	SimCost *c = xalloc(sizeof *c);
	c->name = name;
	c->f = xalloc((size_t)S * sizeof *c->f);
	c->b = xalloc((size_t)S * sizeof *c->b);
	c->w = xalloc((size_t)S * sizeof *c->w);
	c->r = xalloc((size_t)S * sizeof *c->r);
	c->msg_f = xalloc((size_t)S * sizeof *c->msg_f);
	c->msg_b = xalloc((size_t)S * sizeof *c->msg_b);
	return c;
}

SimCost *simcost_uniform(const Schedule *s)
{
	int S = s->S;
	double V = s->V;
	SimCost *c = simcost_new("uniform", S);
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

/* The simulator's side of the interpreter's run. */
typedef struct Sim {
	const Schedule *s;
	const SimCost *c;
	SimResult *res;
	double *t;              /* [nranks] each rank's clock */
	double *arr[SCHED_MSG_KINDS];  /* [SCHED_NSLOTS] arrival of a posted message */
	double *ar_last;        /* [S] the last arrival at stage s's ALLREDUCE */
} Sim;

/* A message's transfer time, from its send to its arrival. */
static double transfer(const Sim *sim, const Action *a, const SchedMsg *m)
{
	const SimCost *c = sim->c;
	switch (m->kind) {
	case SCHED_MSG_F:
		return a->mb >= sim->s->M && c->msg_f_dec ? c->msg_f_dec[m->src]
		       : at(c->msg_f, m->src, 0);
	case SCHED_MSG_B:
		return at(c->msg_b, m->src, 0);
	case SCHED_MSG_TOK:
		return c->msg_tok;
	default:
		return at(c->msg_kv, m->src, 0);
	}
}

/* An action's time: it starts on its rank's clock; computes, OPTIM and
 * SENDs end after their cost, a RECV when its message is in and copied,
 * an ALLREDUCE after the last replica's arrival and its cost. */
static void sim_event(void *ctx, const SchedEvent *e)
{
	Sim *sim = ctx;
	const SimCost *c = sim->c;
	SimResult *res = sim->res;
	const Action *a = e->a;
	int k = e->rank, i = e->at, st = a->stage;
	double now = sim->t[k], dur = 0, end;
	switch (e->ev) {
	case SCHED_EV_START:
		res->start[k][i] = now;
		if (a->op == OP_ALLREDUCE && (e->arrived == 1 || now > sim->ar_last[st]))
			sim->ar_last[st] = now;
		return;
	case SCHED_EV_SEND:
		sim->arr[e->msg->kind][e->key] = now + transfer(sim, a, e->msg);
		return;
	case SCHED_EV_END:
		break;
	default:
		return;
	}
	switch (a->op) {
	case OP_F:
		dur = a->mb >= sim->s->M && c->f_dec ? c->f_dec[st] : c->f[st];
		break;
	case OP_B: dur = c->b[st]; break;
	case OP_W: dur = at(c->w, st, 0); break;
	case OP_R: dur = at(c->r, st, c->f[st]); break;
	case OP_OPTIM: dur = c->optim_p ? c->optim_p[k % sim->s->P] : c->optim; break;
	case OP_SEND_F: case OP_SEND_B: case OP_SEND_TOK: case OP_SEND_KV:
		break;
	case OP_RECV_F:
	case OP_RECV_B: {
		double arr = sim->arr[e->msg->kind][e->key];
		/* a message that arrived before its receive is still copied out
		 * in it (shared-memory MPI copies at the receive): at least that
		 * long */
		double copy = at(a->op == OP_RECV_F ? c->copy_f : c->copy_b, e->msg->src, 0);
		res->end[k][i] = sim->t[k] = arr > now + copy ? arr : now + copy;
		return;
	}
	case OP_RECV_TOK:
	case OP_RECV_KV: {
		double arr = sim->arr[e->msg->kind][e->key];
		res->end[k][i] = sim->t[k] = arr > now ? arr : now;
		return;
	}
	case OP_ALLREDUCE:
		end = sim->ar_last[st] + at(c->allreduce_s, st, c->allreduce);
		res->end[k][i] = end;
		sim->t[k] = end;
		return;
	default:
		die("simulating op %d", a->op);
	}
	end = now + dur;
	res->end[k][i] = end;
	if (op_is_compute(a->op))
		res->busy[k] += dur;
	sim->t[k] = end;
}

SimResult *sched_simulate(const Schedule *s, const SimCost *c)
{
	if (!s->lowered)
		die("simulating a schedule that was not lowered");
	int n = s->nranks;
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
	Sim sim = { .s = s, .c = c, .res = res };
	sim.t = xalloc((size_t)n * sizeof *sim.t);
	for (int kind = 0; kind < SCHED_MSG_KINDS; kind++)
		sim.arr[kind] = xalloc((size_t)(SCHED_NSLOTS(s) + 1) * sizeof *sim.arr[kind]);
	sim.ar_last = xalloc((size_t)s->S * sizeof *sim.ar_last);
	SchedInterp *it = sched_interp_new(s);
	if (sched_interp_run(it, sim_event, &sim) > 0)
		for (int k = 0; k < n; k++)
			if (it->pc[k] < s->rank[k].n)
				die("simulation deadlocked at rank %d action %d (the schedule was "
				    "not verified)", k, it->pc[k]);
	double maxbusy = 0, idle = 0;
	for (int k = 0; k < n; k++) {
		if (sim.t[k] > res->step_time)
			res->step_time = sim.t[k];
		if (res->busy[k] > maxbusy)
			maxbusy = res->busy[k];
	}
	for (int k = 0; k < n; k++) {
		res->idle[k] = res->step_time - res->busy[k];
		idle += res->idle[k];
	}
	res->bubble_fraction = res->step_time > 0 ? idle / (n * res->step_time) : 0;
	/* the paper's bubble rate: a rank's span runs from its first compute to
	 * its last, so neither the wait for the first input nor the optimizer
	 * counts */
	double span_max = 0;
	int kmax = -1;
	for (int k = 0; k < n; k++) {
		double first = -1, last = 0;
		for (int i = 0; i < s->rank[k].n; i++)
			if (op_is_compute(s->rank[k].a[i].op)) {
				if (first < 0)
					first = res->start[k][i];
				last = res->end[k][i];
			}
		if (first >= 0 && last - first > span_max) {
			span_max = last - first;
			kmax = k;
		}
	}
	res->bubble_rate = kmax >= 0 && span_max > 0 ? (span_max - res->busy[kmax]) / span_max : 0;
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
