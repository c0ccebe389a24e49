/* sched_interp.h — the one interpreter of lowered schedules.
 *
 * It runs every rank's action list with the emitted programs' blocking
 * semantics: a SEND never waits; a RECV waits until its message (the
 * SchedMsg of schedule.h, keyed by kind and sched_msg_key) is posted; an
 * ALLREDUCE of stage s waits until every replica's ALLREDUCE of s has
 * arrived.  A rank runs until it blocks; a SEND wakes its receiver and the
 * last arrival at a barrier wakes all its replicas (a run queue, so the
 * run is linear in the number of actions).  Ranks still blocked when the
 * queue empties are a deadlock.
 *
 * With global_optim set, an OPTIM is a barrier of every rank too (the
 * n-th OPTIM of each rank meets the n-th of all others), as when the
 * optimizer step computes a global gradient norm (clip_grad_norm): the
 * verifier runs pipedream-2bw's stream so as well.
 *
 * The client sees the run as events, in the order they happen:
 *   SCHED_EV_START  the action begins: at once for a compute, OPTIM or
 *                   SEND; for a RECV once its message is posted; for an
 *                   ALLREDUCE at the rank's arrival at the barrier
 *                   (`arrived` counts the replicas there, itself included);
 *   SCHED_EV_SEND   a SEND posts its message (after its START);
 *   SCHED_EV_RECV   a RECV takes its message (after its START);
 *   SCHED_EV_END    the action completes and the rank moves on;
 *   SCHED_EV_BLOCK  the rank waits at the action: a RECV whose message is
 *                   not posted, an ALLREDUCE whose replicas have not all
 *                   arrived (it may block there again after a wake-up).
 * The verifier (sched_verify.c) proves deadlock freedom on it; the
 * simulator (sched_sim.c) times each action from the events.
 */
#ifndef PIPEC_SCHED_INTERP_H
#define PIPEC_SCHED_INTERP_H

#include "schedule.h"

typedef enum {
	SCHED_EV_START,
	SCHED_EV_SEND,
	SCHED_EV_RECV,
	SCHED_EV_END,
	SCHED_EV_BLOCK
} SchedEvKind;

typedef struct SchedEvent {
	SchedEvKind ev;
	int rank, at;           /* the rank and the index of its action */
	const Action *a;
	const SchedMsg *msg;    /* a SEND_* or RECV_*: its message; else NULL */
	int key;                /* sched_msg_key(msg), or -1 */
	int arrived;            /* an ALLREDUCE's START: replicas at the barrier */
} SchedEvent;

typedef void (*SchedEventFn)(void *ctx, const SchedEvent *e);

typedef struct SchedInterp {
	const Schedule *s;
	int *pc;                /* [nranks] next action; rank[k].n when done */
	int *arrived;           /* [nranks] waiting in its current ALLREDUCE */
	int *ar_count;          /* [S] arrivals at stage s's ALLREDUCE */
	unsigned char *posted[SCHED_MSG_KINDS];  /* [SCHED_NSLOTS] per kind */
	int nslots;
	int *queue, *queued;    /* circular run queue of runnable ranks */
	int head, tail, nq;
	int global_optim;       /* set by the client before the run */
	int *optim_done;        /* [nranks] OPTIMs passed */
	int optim_arrived, optim_passed;    /* at the current barrier; barriers done */
} SchedInterp;

/* Every rank at its first action, all runnable. */
SchedInterp *sched_interp_new(const Schedule *s);
/* Runs until no rank can move, calling fn (may be NULL) at each event;
 * returns the number of ranks left blocked (0: every program finished). */
int sched_interp_run(SchedInterp *it, SchedEventFn fn, void *ctx);
/* After a run: the rank that blocked rank k waits for, -1 if none (a RECV:
 * its sender; an ALLREDUCE: the first replica not yet arrived; a global
 * OPTIM: the first rank not yet there). */
int sched_interp_waits_for(const SchedInterp *it, int k);

#endif
