/* rt_trace.c — timing of every action and the Chrome trace of a run.
 *
 * rt_begin/rt_end bracket each action of the step.  They always run: the
 * busy time of compute actions gives the measured bubble whether or not a
 * trace is written.  Events go into a buffer allocated before the step loop
 * (no allocation while a step runs); --trace gathers every rank's events to
 * rank 0, which writes one {"traceEvents": [...]} file with ranks as
 * processes, the format `pipec schedule --format chrome` writes for the
 * simulated timeline, so the two can be laid side by side.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rt_internal.h"

int rt_trace_alloc(rt_ctx *c, size_t events)
{
	c->ev = malloc((events ? events : 1) * sizeof *c->ev);
	c->cap_ev = c->ev ? events : 0;
	return c->ev ? 0 : -1;
}

int rt_trace_grow(rt_ctx *c, size_t events)
{
	rt_event *ev;
	if (events <= c->cap_ev)
		return 0;
	ev = realloc(c->ev, events * sizeof *ev);
	if (!ev)
		return -1;
	c->ev = ev;
	c->cap_ev = events;
	return 0;
}

/* PIPERT_FAULT: a test makes this rank misbehave at one action. */
static void fault(rt_ctx *c)
{
	rt_msg(c->rank, "injected fault (%s) at step %d, action %d",
	       c->fault_kind == 1 ? "kill" : c->fault_kind == 2 ? "exit" : "stall",
	       c->step + 1, c->action_index);
	if (c->fault_kind == 1)
		raise(SIGKILL);
	if (c->fault_kind == 2)
		_exit(1);
	for (;;)
		sleep(1000);
}

void rt_begin(rt_ctx *c, int op, int stage, int mb)
{
	if (c->fault_kind && c->step == c->fault_step && c->action_index == c->fault_action)
		fault(c);
	c->action_index++;
	c->cur.op = op;
	c->cur.stage = stage;
	c->cur.mb = mb;
	c->cur.step = c->step;
	c->in_action = 1;
	c->cur.t0 = rt_now() - c->t_origin;
	rt_dev_mark(c, 0);
}

void rt_end(rt_ctx *c)
{
	double t1 = rt_now() - c->t_origin;
	if (!c->in_action)
		return;
	c->in_action = 0;
	c->cur.t1 = t1;
	if (rt_op_is_compute(c->cur.op))
		c->busy += t1 - c->cur.t0;
	if (c->nev < c->cap_ev)
		c->ev[c->nev++] = c->cur;
	else
		c->dropped_ev++;
	rt_dev_mark(c, 1);
}

/* gen: a generating program, whose steps are rounds: an F after round 0 is
 * a decode step, and every slice carries its round (as pipec schedule's). */
static void write_events(FILE *f, int rank, const rt_event *ev, size_t n, int *first, int gen)
{
	fprintf(f, "%s\n{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":0,"
	        "\"args\":{\"name\":\"rank %d\"}}", *first ? "" : ",", rank, rank);
	fprintf(f, ",\n{\"name\":\"process_sort_index\",\"ph\":\"M\",\"pid\":%d,\"tid\":0,"
	        "\"args\":{\"sort_index\":%d}}", rank, rank);
	*first = 0;
	for (size_t i = 0; i < n; i++) {
		const rt_event *e = &ev[i];
		const char *op = gen && e->op == RT_OP_F && e->step > 0 ? "DECODE" : rt_op_name(e->op);
		char name[64], round[32] = "";
		if (gen)
			snprintf(round, sizeof round, ",\"round\":%d", e->step);
		if (e->mb >= 0)
			snprintf(name, sizeof name, "%s s%d mb%d", op, e->stage, e->mb);
		else if (e->stage >= 0)
			snprintf(name, sizeof name, "%s s%d", op, e->stage);
		else
			snprintf(name, sizeof name, "%s", op);
		fprintf(f, ",\n{\"name\":\"%s\",\"cat\":\"%s\",\"ph\":\"X\",\"pid\":%d,\"tid\":0,"
		        "\"ts\":%.3f,\"dur\":%.3f,\"args\":{\"op\":\"%s\",\"stage\":%d,\"microbatch\":%d%s}}",
		        name, rt_op_is_compute(e->op) ? "compute" : "comm", rank, e->t0 * 1e6,
		        (e->t1 - e->t0) * 1e6, op, e->stage, e->mb, round);
	}
}

int rt_trace_write(rt_ctx *c, const char *path)
{
	int *counts = NULL, *displs = NULL, mine, rc = 0;
	rt_event *all = NULL;
	MPI_Request r;
	long long total = 0;

	if (c->nev * sizeof(rt_event) > INT_MAX)
		c->nev = INT_MAX / sizeof(rt_event);
	mine = (int)(c->nev * sizeof(rt_event));
	if (c->dropped_ev)
		rt_msg(c->rank, "note: the trace lacks %zu actions of the first step", c->dropped_ev);
	if (c->rank == 0) {
		counts = calloc((size_t)c->nranks, sizeof *counts);
		displs = calloc((size_t)c->nranks, sizeof *displs);
		if (!counts || !displs)
			rt_die(c, RT_EXIT_RUNTIME, "out of memory gathering the trace");
	}
	MPI_Igather(&mine, 1, MPI_INT, counts, 1, MPI_INT, 0, c->comm, &r);
	rt_wait_req(c, &r, "the trace gather", "all ranks");
	if (c->rank == 0) {
		for (int i = 0; i < c->nranks; i++) {
			displs[i] = (int)total;
			total += counts[i];
		}
		if (total > INT_MAX || !(all = malloc((size_t)total + 1)))
			rt_die(c, RT_EXIT_RUNTIME, "the trace is too large to gather (%lld bytes)", total);
	}
	/* Events are plain data of one layout on every rank: sent as bytes. */
	MPI_Igatherv(c->ev, mine, MPI_BYTE, all, counts, displs, MPI_BYTE, 0, c->comm, &r);
	rt_wait_req(c, &r, "the trace gather", "all ranks");
	if (c->rank == 0) {
		char *tmp;
		FILE *f = rt_atomic_open(path, &tmp);
		int first = 1;
		if (!f) {
			rt_msg(-1, "%s: cannot write: %s", path, strerror(errno));
			rc = RT_EXIT_INPUT;
		} else {
			fprintf(f, "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[");
			for (int i = 0; i < c->nranks; i++)
				write_events(f, i, all + displs[i] / (int)sizeof(rt_event),
				             (size_t)counts[i] / sizeof(rt_event), &first, c->p->gen_tokens > 0);
			fprintf(f, "\n]}\n");
			if (rt_atomic_close(f, tmp, path) != 0) {
				rt_msg(-1, "%s: cannot write: %s", path, strerror(errno));
				rc = RT_EXIT_INPUT;
			}
		}
	}
	free(all);
	free(counts);
	free(displs);
	return rc;
}
