/* pipert_ops.h — the schedule's operations and message tags: one definition
 * that the runtime, the programs pipec emits and pipec itself share.
 *
 * Part of the runtime's public interface (installed beside pipert.h, which
 * includes it).  The compiler includes it too, so an operation's number,
 * its name in a CSV or trace, whether it computes and how a message is
 * tagged are written exactly once.  Nothing here depends on anything else.
 */
#ifndef PIPERT_OPS_H
#define PIPERT_OPS_H

/* X(NAME, "csv name", torch letter or 0, computes)
 *   F, B, W    forward, backward (input gradient; with W split off, only
 *              that), weight gradient
 *   R          recompute a stage's forward before its backward
 *   SEND_/RECV_F, _B   activations forward, gradients backward
 *   ALLREDUCE  sum a stage's gradients over its data-parallel replicas
 *   OPTIM      the optimizer step of the rank
 *   SEND_/RECV_TOK     generation: a picked token from the last stage to the first
 *   SEND_/RECV_KV      generation, disaggregated: a group's key/value caches
 * The order is the numbering: RT_OP_F = 0, ... */
#define PIPERT_OPS(X) \
	X(F,         "F",         'F', 1) \
	X(B,         "B",         'B', 1) \
	X(W,         "W",         'W', 1) \
	X(R,         "R",         0,   1) \
	X(SEND_F,    "SEND_F",    0,   0) \
	X(RECV_F,    "RECV_F",    0,   0) \
	X(SEND_B,    "SEND_B",    0,   0) \
	X(RECV_B,    "RECV_B",    0,   0) \
	X(ALLREDUCE, "ALLREDUCE", 0,   0) \
	X(OPTIM,     "OPTIM",     0,   0) \
	X(SEND_TOK,  "SEND_TOK",  0,   0) \
	X(RECV_TOK,  "RECV_TOK",  0,   0) \
	X(SEND_KV,   "SEND_KV",   0,   0) \
	X(RECV_KV,   "RECV_KV",   0,   0)

enum {
#define PIPERT_OP_ENUM(name, str, torch, compute) RT_OP_##name,
	PIPERT_OPS(PIPERT_OP_ENUM)
#undef PIPERT_OP_ENUM
	RT_NOPS
};

/* 1 for the operations that compute (F, B, W, R): what a trace counts as
 * busy time and a schedule's chart draws as work. */
static inline int rt_op_is_compute(int op)
{
	switch (op) {
#define PIPERT_OP_COMPUTE(name, str, torch, compute) case RT_OP_##name: return compute;
	PIPERT_OPS(PIPERT_OP_COMPUTE)
#undef PIPERT_OP_COMPUTE
	default:
		return 0;
	}
}

/* A message's identity on the wire: the tag of (stage, micro-batch,
 * direction).  `stage` is the stage that receives the message; mb <
 * RT_TAG_MB_LIMIT.  Directions: 0 forward, 1 backward, RT_TAG_DIR_EVAL the
 * forward of an evaluation step (eval_step), whose messages therefore never
 * match a training step's; 3 is unused.  Generation's token ring uses stage
 * 0 and the group, its cache hand-over the stage, the group and direction
 * 1.  Four directions and 32768 keys give a stage the same range of tags
 * as two and 65536 did: (stage + 1) * 131072, within MPI_TAG_UB for the
 * same stage counts.  Decoded by RT_TAG_STAGE / _MB / _DIR. */
#define RT_TAG_MB_LIMIT 32768
#define RT_TAG_NDIR 4
#define RT_TAG_DIR_EVAL 2
#define RT_TAG(stage, mb, dir) ((((stage) * RT_TAG_MB_LIMIT) + (mb)) * RT_TAG_NDIR + (dir))
#define RT_TAG_STAGE(tag) ((tag) / RT_TAG_NDIR / RT_TAG_MB_LIMIT)
#define RT_TAG_MB(tag) ((tag) / RT_TAG_NDIR % RT_TAG_MB_LIMIT)
#define RT_TAG_DIR(tag) ((tag) % RT_TAG_NDIR)

#endif
