/* step.h — the step program: one rank's step() as data, built from its
 * schedule and memory plan, verified, then printed by the emitter.
 *
 * A step program is the straight-line list of what the emitted step()
 * does, in the order it does it:
 *
 *   STEP_POST  post a receive (rt_irecv) into its request slot
 *   STEP_ACT   one action of the schedule, numbered as there: F, B, W, R,
 *              ALLREDUCE, OPTIM; a RECV waits for its posted receive, a
 *              SEND starts its message (rt_isend) in its slot
 *   STEP_WAIT  complete a send: its receiver has the message, so the slot
 *              and the buffer are free again
 *   STEP_SPLIT a new function: a long step is cut into parts of STEP_PART
 *              actions, called in order
 *
 * Every instruction carries its guard (when it runs: always, in some
 * rounds of generation, or for a live key of an asynchronous step), and
 * a message its identity: peer, tag (stage, micro-batch, direction),
 * request slot, arena offset and size.  Nothing about the step is
 * decided while printing it.
 */
#ifndef PIPEC_STEP_H
#define PIPEC_STEP_H

#include "ir.h"
#include "memplan.h"
#include "schedule.h"

enum { STEP_PART = 256 };       /* actions per part of a long step function */

typedef enum { STEP_POST, STEP_ACT, STEP_WAIT, STEP_SPLIT } StepKind;

typedef enum { STEP_PLAIN, STEP_GEN, STEP_ASYNC } StepMode;

/* A message: who, which, where and how large. */
typedef struct StepMsg {
	int peer;               /* the other rank */
	int peer_t1;            /* generation: the peer in round 1 where it differs
	                         * (the decode pipeline's first token), else -1 */
	int tag_stage, tag_mb, tag_dir;         /* RT_TAG(stage, mb, dir) */
	int tokens;             /* generation's token ring: the group's tokens
	                         * (rt_gen_tokens(c, tag_mb)), ROWS int32 values */
	int64_t off;            /* else the arena byte offset of the message */
	int64_t pack_off;       /* a 16-bit send: packed there, 2 bytes a value; -1 */
	int half;               /* values travel as 2 bytes each (16-bit programs) */
	int64_t hdr;            /* header bytes (side tensors), or the whole of a
	                         * message of fixed size (per_row 0: the caches) */
	int64_t per_row;        /* 4-byte values per row after the header ... */
	int seq;                /* ... per position of the run's sequence length T */
	int64_t values_max;     /* values after the header at the longest sequence
	                         * (ROWS·per_row·T): the arena it may cover is
	                         * hdr + 4·values_max bytes from off, and a packed
	                         * send's hdr + 2·values_max from pack_off */
} StepMsg;

typedef struct StepInstr {
	StepKind kind;
	int q;                  /* the schedule action it belongs to; SPLIT: the part */
	int op, stage, key;     /* that action's op, stage and micro-batch key
	                         * (asynchronous: relative to the step, -LAG .. M-1;
	                         * generation: the group) */
	int mb;                 /* the micro-batch of its buffers and tags: the key
	                         * within its step */
	int prev;               /* asynchronous: the key is the previous step's */
	SchedGuard guard;       /* SG_LIVE: the key exists in the run */
	int slot;               /* request slot of a POST, WAIT, RECV, SEND; else -1 */
	StepMsg msg;            /* POST, RECV, SEND: the message */
} StepInstr;

typedef struct StepProgram {
	int rank, prank, nranks;
	StepMode mode;
	int eval;               /* the evaluation step (sched_eval): emitted as
	                         * eval_step(c, batch), its forwards s<g>_eval */
	int role;               /* generation: 1 ring (colocated), 2 prefill rank,
	                         * 3 decode rank; 0 otherwise */
	SchedGuard rank_guard;  /* generation: the rounds the rank runs at all */
	int nactions;           /* actions of the schedule */
	int nparts;             /* functions the step is written as */
	int nslots;             /* request slots: the plan's, then generation's */
	int ntok;               /* generation: rounds (NTOK) */
	int n;
	StepInstr *in;
} StepProgram;

/* Ops that move a message, and which of them send it. */
#define step_op_sends(op) ((op) == OP_SEND_F || (op) == OP_SEND_B || (op) == OP_SEND_TOK \
                           || (op) == OP_SEND_KV)
#define step_op_recvs(op) ((op) == OP_RECV_F || (op) == OP_RECV_B || (op) == OP_RECV_TOK \
                           || (op) == OP_RECV_KV)
#define step_op_msg(op) (step_op_sends(op) || step_op_recvs(op))

/* Builds rank `rank`'s step program from the schedule the emitter writes
 * (one round of generation, one step of an asynchronous stream: the
 * template schedules) and the rank's memory plan. */
StepProgram *step_build(const IrModel *m, const Schedule *s, const RankPlan *p, int rank);

/* `pipec -dP`: one instruction a line. */
void step_dump(FILE *out, const StepProgram *sp);

/* A guard as the emitted C tests it ("t > 0", "LIVE(KEY(-1))" for key
 * -1), or NULL for none. */
const char *step_guard_c(SchedGuard g, int key);

/* One instruction in words ("POST RECV_F stage 1 mb 3 slot 2"), for dumps
 * and the verifier's reports. */
const char *step_instr_desc(const StepInstr *in);

/* The verifier (step_verify.c): runs every rank's step program under each
 * value its guards can take (generation: rounds 0, 1, a middle one and the
 * last; asynchronous: a run's first, middle and last step and its drain),
 * checking each rank's request slots (a wait has a post; no slot reused
 * while in flight; none left at the step's end), that a received buffer is
 * waited on before the action that reads it and a sent one written before
 * it is sent, and, across ranks with MPI's matching, that every send meets
 * its receive with the same tag, size and key in a deadlock-free order.
 * Returns 0, or -1 after reporting the first violation through report as
 * "rank R, instruction I (...): REASON". */
int step_verify(StepProgram *const *progs, int nranks, const Schedule *s,
                void (*report)(const char *fmt, ...));

/* The C text of the step (step_emit.c): the step's definitions and
 * step() itself, or step_part0 .. and step(), passed piece by piece to
 * write(ctx, text). */
void step_emit_c(const StepProgram *sp, const IrModel *m, const Schedule *s,
                 void (*write)(void *ctx, const char *text), void *ctx);

#endif
