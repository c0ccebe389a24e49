/* sched_interp.c — the one interpreter of lowered schedules: ranks that
 * block on receives and on the ALLREDUCE barrier, run from a run queue,
 * reporting each event to their client (sched_interp.h). */
#include "sched_interp.h"

SchedInterp *sched_interp_new(const Schedule *s)
{
	int n = s->nranks;
	SchedInterp *it = xalloc(sizeof *it);
	it->s = s;
	it->pc = xalloc((size_t)n * sizeof *it->pc);
	it->arrived = xalloc((size_t)n * sizeof *it->arrived);
	it->ar_count = xalloc((size_t)s->S * sizeof *it->ar_count);
	it->nslots = SCHED_NSLOTS(s);
	for (int kind = 0; kind < SCHED_MSG_KINDS; kind++)
		it->posted[kind] = xalloc((size_t)it->nslots + 1);
	it->queue = xalloc((size_t)n * sizeof *it->queue);
	it->queued = xalloc((size_t)n * sizeof *it->queued);
	it->optim_done = xalloc((size_t)n * sizeof *it->optim_done);
	for (int k = 0; k < n; k++) {
		it->queue[k] = k;
		it->queued[k] = 1;
	}
	it->nq = n;
	return it;
}

static void wake(SchedInterp *it, int k)
{
	if (it->queued[k])
		return;
	it->queued[k] = 1;
	it->queue[it->tail] = k;
	it->tail = (it->tail + 1) % it->s->nranks;
	it->nq++;
}

static void event(SchedEventFn fn, void *ctx, SchedEvent *e, SchedEvKind ev)
{
	if (fn) {
		e->ev = ev;
		fn(ctx, e);
	}
}

/* Runs rank k until it blocks or finishes. */
static void run_rank(SchedInterp *it, int k, SchedEventFn fn, void *ctx)
{
	const Schedule *s = it->s;
	const ActList *l = &s->rank[k];
	while (it->pc[k] < l->n) {
		const Action *a = &l->a[it->pc[k]];
		SchedMsg m;
		int io = sched_msg(s, k, a, &m);
		SchedEvent e = { SCHED_EV_START, k, it->pc[k], a, NULL, -1, 0 };
		if (io != SCHED_MSG_NONE) {
			e.msg = &m;
			e.key = sched_msg_key(s, &m);
			if (e.key < 0 || e.key >= it->nslots)
				die("rank %d action %d: message out of range (the schedule was not "
				    "verified)", k, e.at);
		}
		if (io == SCHED_MSG_RECEIVES) {
			if (!it->posted[m.kind][e.key]) {
				event(fn, ctx, &e, SCHED_EV_BLOCK);
				return;
			}
			event(fn, ctx, &e, SCHED_EV_START);
			event(fn, ctx, &e, SCHED_EV_RECV);
		} else if (a->op == OP_ALLREDUCE) {
			int st = a->stage;
			if (!it->arrived[k]) {
				it->arrived[k] = 1;
				e.arrived = ++it->ar_count[st];
				event(fn, ctx, &e, SCHED_EV_START);
				if (it->ar_count[st] == s->R)
					for (int r = 0; r < s->R; r++)
						wake(it, SCHED_RANK(s, r, s->stage_rank[st]));
			}
			if (it->ar_count[st] < s->R) {
				event(fn, ctx, &e, SCHED_EV_BLOCK);
				return;
			}
		} else if (a->op == OP_OPTIM && it->global_optim) {
			/* every rank's n-th OPTIM is one barrier: the last to
			 * arrive opens it for all */
			if (!it->arrived[k]) {
				it->arrived[k] = 1;
				e.arrived = ++it->optim_arrived;
				event(fn, ctx, &e, SCHED_EV_START);
				if (it->optim_arrived == s->nranks) {
					it->optim_arrived = 0;
					it->optim_passed++;
					for (int r = 0; r < s->nranks; r++)
						if (r != k)
							wake(it, r);
				}
			}
			if (it->optim_passed <= it->optim_done[k]) {
				event(fn, ctx, &e, SCHED_EV_BLOCK);
				return;
			}
			it->optim_done[k]++;
		} else {
			event(fn, ctx, &e, SCHED_EV_START);
			if (io == SCHED_MSG_SENDS) {
				it->posted[m.kind][e.key] = 1;
				event(fn, ctx, &e, SCHED_EV_SEND);
				wake(it, a->peer);
			}
		}
		it->arrived[k] = 0;
		it->pc[k]++;
		event(fn, ctx, &e, SCHED_EV_END);
	}
}

int sched_interp_run(SchedInterp *it, SchedEventFn fn, void *ctx)
{
	const Schedule *s = it->s;
	int n = s->nranks, blocked = 0;
	while (it->nq > 0) {
		int k = it->queue[it->head];
		it->head = (it->head + 1) % n;
		it->nq--;
		it->queued[k] = 0;
		run_rank(it, k, fn, ctx);
	}
	for (int k = 0; k < n; k++)
		blocked += it->pc[k] < s->rank[k].n;
	return blocked;
}

int sched_interp_waits_for(const SchedInterp *it, int k)
{
	const Schedule *s = it->s;
	if (it->pc[k] >= s->rank[k].n)
		return -1;
	const Action *a = &s->rank[k].a[it->pc[k]];
	SchedMsg m;
	if (sched_msg(s, k, a, &m) == SCHED_MSG_RECEIVES)
		return m.from;
	if (a->op == OP_OPTIM && it->global_optim)
		for (int o = 0; o < s->nranks; o++)
			if (o != k && !it->arrived[o])
				return o;
	if (a->op == OP_ALLREDUCE)
		for (int rep = 0; rep < s->R; rep++) {
			int o = SCHED_RANK(s, rep, s->stage_rank[a->stage]);
			if (!it->arrived[o])
				return o;
		}
	return -1;
}
