/* two_rank.c — a hand-written "emitted" program for the runtime's tests.
 *
 * The model is a 2-stage MLP, trained with 1F1B on P = 2 pipeline ranks
 * and M = 4 micro-batches (replicas R = 1 or 2):
 *     stage 0 (rank 0):  fc1 = linear(8, 16); act1 = relu
 *     stage 1 (rank 1):  fc2 = linear(16, 4); loss cross_entropy (-DMSE: mse)
 * It is written the way pipec will emit it: static rt_program data, an
 * arena with fixed offsets, per-stage forward/backward functions, and a step
 * function that is the rank's schedule unrolled into runtime calls.  As in
 * pipec's emitter, a message's tag names the stage that receives it:
 * RT_TAG(s + 1, mb, 0) for a SEND_F of stage s, RT_TAG(s - 1, mb, 1) for a
 * SEND_B.
 *
 * Build one binary per rank:
 *     mpicc -DPRANK=0|1 -DREPLICA=j -DREPLICAS=R [-DADAM] [-DMSE] [-DINFER] ...
 * (-DINFER: inference, forward only, no optimizer, no loss).
 * Data (t/508-runtime-data.t): -DINDIMS declares the input [2, 4] per row
 * and -DOUTDIMS the output [2, 2]; -DEVAL adds an eval_step (forward only,
 * the loss over rt_rows_valid rows), and -DEVAL_IN_STEP runs rt_eval_run
 * after the last step and prints `eval loss L` (a driver until the step
 * loop calls it).
 * and start them in rank order (rank = replica * 2 + prank), MPMD.
 */
#include "pipert.h"

#ifndef PRANK
#error "define PRANK (0 or 1)"
#endif
#ifndef REPLICA
#define REPLICA 0
#endif
#ifndef REPLICAS
#define REPLICAS 1
#endif
/* -DADAM: Adam (lr 0.01); else SGD with momentum 0.9 (lr 0.1).  (A macro,
 * not the RT_OPTIM_* enum: #if cannot see enum constants.) */
#ifdef ADAM
#define OPTIM RT_OPTIM_ADAM
#define LR 0.01
#define OPTIM_STATE 2
#else
#define OPTIM RT_OPTIM_SGD
#define LR 0.1
#define OPTIM_STATE 1
#endif

/* Sizes; -DHID=... makes a larger model for measuring (the tests' numpy
 * reference assumes these defaults). */
#ifndef BATCH
#define BATCH 16
#endif
#define NMB 4
#define MBR (BATCH / (REPLICAS * NMB))        /* rows per micro-batch */
#define IN 8
#ifndef HID
#define HID 16
#endif
#define OUT 4


/* ---- Arena plan: float offsets, one buffer per micro-batch where it lives
 * across actions.  (pipec's planner would reuse dead buffers; this plan is
 * simple on purpose.) ---- */
#if PRANK == 0
#define H1(mb)  ((mb) * MBR * HID)                  /* fc1 output */
#define A1(mb)  ((NMB + (mb)) * MBR * HID)            /* relu output, sent */
#define DA1(mb) ((2 * NMB + (mb)) * MBR * HID)        /* gradient received */
#define DH1     (3 * NMB * MBR * HID)                 /* scratch */
#define ARENA_FLOATS (3 * NMB * MBR * HID + MBR * HID)
#else
#define A1(mb)   ((mb) * MBR * HID)                 /* activation received */
#define LOG(mb)  (NMB * MBR * HID + (mb) * MBR * OUT) /* logits */
#define DLOG     (NMB * MBR * HID + NMB * MBR * OUT)    /* scratch */
#define DA1(mb)  (DLOG + MBR * OUT + (mb) * MBR * HID)   /* gradient sent */
#define ARENA_FLOATS (DLOG + MBR * OUT + NMB * MBR * HID)
#endif

#if PRANK == 0
static const rt_param params[] = {
	{ "fc1.weight", 2, { HID, IN }, 0, HID * IN, RT_INIT_UNIFORM_FANIN, IN, 0, 0.0, 0 },
	{ "fc1.bias", 1, { HID }, HID * IN, HID, RT_INIT_UNIFORM_FANIN, IN, 0, 0.0, 0 },
};
#define NWEIGHTS (HID * IN + HID)
#else
static const rt_param params[] = {
	{ "fc2.weight", 2, { OUT, HID }, 0, OUT * HID, RT_INIT_UNIFORM_FANIN, HID, 1, 0.0, 0 },
	{ "fc2.bias", 1, { OUT }, OUT * HID, OUT, RT_INIT_UNIFORM_FANIN, HID, 1, 0.0, 0 },
};
#define NWEIGHTS (OUT * HID + OUT)
#endif

static float *arena(rt_ctx *c) { return (float *)rt_arena(c); }

/* The backward half is unused in the -DINFER build. */
#define BACKWARD __attribute__((unused))

#if PRANK == 0
/* ---- Stage 0: fc1, act1. ---- */
static void stage0_fwd(rt_ctx *c, int mb)
{
	float *a = arena(c), *w = rt_weights(c);
	rt_linear_fwd(rt_input(c, mb), w + 0, w + HID * IN, a + H1(mb), MBR, IN, HID);
	rt_relu_fwd(a + H1(mb), a + A1(mb), MBR * HID);
}

BACKWARD static void stage0_bwd(rt_ctx *c, int mb)
{
	float *a = arena(c), *g = rt_grads(c);
	rt_relu_bwd(a + A1(mb), a + DA1(mb), a + DH1, MBR * HID);
	/* First layer: no input gradient to compute. */
	rt_linear_bwd_weight(rt_input(c, mb), a + DH1, g + 0, g + HID * IN, MBR, IN, HID);
}

static const char *what_send_f[NMB] = { "SEND_F stage 0 mb 0", "SEND_F stage 0 mb 1",
                                      "SEND_F stage 0 mb 2", "SEND_F stage 0 mb 3" };
BACKWARD static const char *what_recv_b[NMB] = { "RECV_B stage 0 mb 0", "RECV_B stage 0 mb 1",
                                      "RECV_B stage 0 mb 2", "RECV_B stage 0 mb 3" };
#define PEER (REPLICA * 2 + 1)
/* -DSWAP_TAGS: a compiler bug for the tests — micro-batches 2 and 3 are sent
 * under each other's tags, which MPI matches silently; --check-messages must
 * catch it. */
#ifdef SWAP_TAGS
#define TAG_MB(mb) ((mb) == 2 ? 3 : (mb) == 3 ? 2 : (mb))
#else
#define TAG_MB(mb) (mb)
#endif
/* -DSHORT_SEND: micro-batch 1's activation is sent 4 bytes short. */
#ifdef SHORT_SEND
#define SEND_BYTES(mb) (BYTES - ((mb) == 1 ? 4 : 0))
#else
#define SEND_BYTES(mb) BYTES
#endif
#define BYTES (MBR * HID * sizeof(float))

static void F(rt_ctx *c, int mb)
{
	rt_begin(c, RT_OP_F, 0, mb);
	stage0_fwd(c, mb);
	rt_end(c);
	rt_begin(c, RT_OP_SEND_F, 0, mb);
	rt_isend(c, mb, arena(c) + A1(mb), SEND_BYTES(mb), PEER, RT_TAG(1, TAG_MB(mb), 0),
	         what_send_f[mb]);
	rt_end(c);
}

BACKWARD static void Bk(rt_ctx *c, int mb)
{
	rt_begin(c, RT_OP_RECV_B, 0, mb);
	rt_wait(c, NMB + mb);
	rt_end(c);
	rt_begin(c, RT_OP_B, 0, mb);
	stage0_bwd(c, mb);
	rt_end(c);
	rt_wait(c, mb);     /* the forward send of this micro-batch is long done */
}

#ifdef INFER
/* Inference: micro-batches stream forward, nothing comes back. */
static void step(rt_ctx *c, int s)
{
	(void)s;
	for (int mb = 0; mb < NMB; mb++)
		F(c, mb);
	for (int mb = 0; mb < NMB; mb++)
		rt_wait(c, mb);
}
#else
static void step(rt_ctx *c, int s)
{
	(void)s;
	/* Every gradient receive is posted up front: the buffers are distinct. */
	for (int mb = 0; mb < NMB; mb++)
		rt_irecv(c, NMB + mb, arena(c) + DA1(mb), BYTES, PEER, RT_TAG(0, mb, 1), what_recv_b[mb]);
	/* 1F1B warm-up: F(0, mb 0) */
	F(c, 0);
	/* 1F1B steady */
	F(c, 1);
	Bk(c, 0);
	F(c, 2);
	Bk(c, 1);
	F(c, 3);
	Bk(c, 2);
	/* 1F1B drain */
	Bk(c, 3);
#if REPLICAS > 1
	rt_begin(c, RT_OP_ALLREDUCE, 0, -1);
	rt_allreduce(c, 0);
	rt_end(c);
#endif
	rt_begin(c, RT_OP_OPTIM, -1, -1);
	rt_optim_step(c);
	rt_end(c);
}
#endif
#ifdef EVAL
/* Forward only over an evaluation batch: the inference step's actions. */
static void eval_step(rt_ctx *c, int b)
{
	(void)b;
	for (int mb = 0; mb < NMB; mb++)
		F(c, mb);
	for (int mb = 0; mb < NMB; mb++)
		rt_wait(c, mb);
}
#endif
#define FIRST 1
#define LAST 0
#define NSLOTS (2 * NMB)
#define NACTIONS (4 * NMB + 1 + (REPLICAS > 1))

#else
/* ---- Stage 1: fc2, cross-entropy. ---- */
static void stage1_fwd(rt_ctx *c, int mb)
{
	float *a = arena(c), *w = rt_weights(c);
	rt_linear_fwd(a + A1(mb), w + 0, w + OUT * HID, a + LOG(mb), MBR, HID, OUT);
	rt_output(c, mb, a + LOG(mb));
}

BACKWARD static void stage1_bwd(rt_ctx *c, int mb)
{
	float *a = arena(c), *w = rt_weights(c), *g = rt_grads(c);
#ifdef MSE
	/* Mean over all B·OUT elements: scale 1/(B·OUT). */
	double loss = rt_loss_mse(a + LOG(mb), rt_target_dense(c, mb), a + DLOG, MBR, OUT,
	                          1.0 / (BATCH * OUT));
#else
	/* The loss's gradient is of the global batch's mean: scale 1/B. */
	double loss = rt_loss_cross_entropy(a + LOG(mb), rt_target_class(c, mb), a + DLOG,
	                                    MBR, OUT, 1.0 / BATCH);
#endif
	rt_loss_add(c, loss);
	rt_linear_bwd_weight(a + A1(mb), a + DLOG, g + 0, g + OUT * HID, MBR, HID, OUT);
	rt_linear_bwd_data(a + DLOG, w + 0, a + DA1(mb), MBR, HID, OUT);
}

static const char *what_recv_f[NMB] = { "RECV_F stage 1 mb 0", "RECV_F stage 1 mb 1",
                                      "RECV_F stage 1 mb 2", "RECV_F stage 1 mb 3" };
BACKWARD static const char *what_send_b[NMB] = { "SEND_B stage 1 mb 0", "SEND_B stage 1 mb 1",
                                      "SEND_B stage 1 mb 2", "SEND_B stage 1 mb 3" };
#define PEER (REPLICA * 2 + 0)
#define BYTES (MBR * HID * sizeof(float))

/* -DWAIT_WRONG: the RECV_F of micro-batch 2 waits on micro-batch 3's slot
 * (and the other way round). */
#ifdef WAIT_WRONG
#define WAIT_SLOT(mb) ((mb) == 2 ? 3 : (mb) == 3 ? 2 : (mb))
#else
#define WAIT_SLOT(mb) (mb)
#endif

static void F(rt_ctx *c, int mb)
{
	rt_begin(c, RT_OP_RECV_F, 1, mb);
	rt_wait(c, WAIT_SLOT(mb));
	rt_end(c);
	rt_begin(c, RT_OP_F, 1, mb);
	stage1_fwd(c, mb);
	rt_end(c);
}

BACKWARD static void Bk(rt_ctx *c, int mb)
{
	rt_begin(c, RT_OP_B, 1, mb);
	stage1_bwd(c, mb);
	rt_end(c);
	rt_begin(c, RT_OP_SEND_B, 1, mb);
	rt_isend(c, NMB + mb, arena(c) + DA1(mb), BYTES, PEER, RT_TAG(0, mb, 1), what_send_b[mb]);
	rt_end(c);
}

#ifdef INFER
static void step(rt_ctx *c, int s)
{
	(void)s;
	for (int mb = 0; mb < NMB; mb++)
		rt_irecv(c, mb, arena(c) + A1(mb), BYTES, PEER, RT_TAG(1, mb, 0), what_recv_f[mb]);
	for (int mb = 0; mb < NMB; mb++)
		F(c, mb);
}
#else
static void step(rt_ctx *c, int s)
{
	(void)s;
	for (int mb = 0; mb < NMB; mb++)
		rt_irecv(c, mb, arena(c) + A1(mb), BYTES, PEER, RT_TAG(1, mb, 0), what_recv_f[mb]);
	/* 1F1B on the last rank: no warm-up, F and B alternate. */
	F(c, 0);
	Bk(c, 0);
	F(c, 1);
	Bk(c, 1);
	F(c, 2);
	Bk(c, 2);
	F(c, 3);
	Bk(c, 3);
	for (int mb = 0; mb < NMB; mb++)
		rt_wait(c, NMB + mb);
#if REPLICAS > 1
	rt_begin(c, RT_OP_ALLREDUCE, 1, -1);
	rt_allreduce(c, 1);
	rt_end(c);
#endif
	rt_begin(c, RT_OP_OPTIM, -1, -1);
	rt_optim_step(c);
	rt_end(c);
}
#endif
#ifdef EVAL
/* Forward only, each micro-batch's loss over its real rows (the padding of
 * the last evaluation batch left out), no gradient. */
static void eval_step(rt_ctx *c, int b)
{
	(void)b;
	for (int mb = 0; mb < NMB; mb++)
		rt_irecv(c, mb, arena(c) + A1(mb), BYTES, PEER, RT_TAG(1, mb, 0), what_recv_f[mb]);
	for (int mb = 0; mb < NMB; mb++) {
		int64_t rows = rt_rows_valid(c, mb);
		F(c, mb);
#ifdef MSE
		rt_loss_add(c, rt_loss_mse(arena(c) + LOG(mb), rt_target_dense(c, mb), NULL, rows,
		                           OUT, 1.0));
#else
		rt_loss_add(c, rt_loss_cross_entropy(arena(c) + LOG(mb), rt_target_class(c, mb), NULL,
		                                     rows, OUT, 1.0));
#endif
	}
}
#endif
#define FIRST 0
#define LAST 1
#define NSLOTS (2 * NMB)
#define NACTIONS (4 * NMB + 1 + (REPLICAS > 1))
#endif

#ifdef EVAL_IN_STEP
#include <stdio.h>
#include "rt_internal.h"        /* rt_eval_run, the reporter, the steps */
static void step_then_eval(rt_ctx *c, int s)
{
	step(c, s);
	if (s == c->o.steps - 1) {
		double loss = rt_eval_run(c);
		if (c->rank == c->reporter) {
			printf("eval loss %.9g\n", loss);
			fflush(stdout);
		}
	}
}
#define STEP step_then_eval
#else
#define STEP step
#endif
#ifdef INDIMS
static const int64_t in_dims[] = { 2, 4 };
#endif
#ifdef OUTDIMS
static const int64_t out_dims[] = { 2, 2 };
#endif

static const rt_program program = {
	.model = "two_rank",
	.source = "t/rt-fixtures/two_rank.c",
	.schedule = "1f1b",
	.rank = REPLICA * 2 + PRANK,
	.nranks = 2 * REPLICAS,
	.P = 2, .R = REPLICAS, .V = 1,
	.replica = REPLICA,
	.batch = BATCH, .M = NMB, .mb_rows = MBR,
	.first_stage = FIRST, .last_stage = LAST,
	.in_width = IN, .out_width = OUT,
#if defined(INFER)
	.loss = RT_LOSS_NONE, .target_dtype = RT_DT_I32, .target_width = 1,
#elif defined(MSE)
	.loss = RT_LOSS_MSE, .target_dtype = RT_DT_F32, .target_width = OUT,
#else
	.loss = RT_LOSS_CROSS_ENTROPY, .target_dtype = RT_DT_I32, .target_width = 1,
#endif
#ifdef INFER
	.optim = RT_OPTIM_NONE,
#else
	.optim = OPTIM, .lr = LR, .momentum = 0.9,
#endif
	.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
	.steps = 3, .seed = 7,
	.params = params, .nparams = 2, .nweights = NWEIGHTS,
	.arena_bytes = ARENA_FLOATS * sizeof(float),
	.nslots = NSLOTS,
	.predicted_bubble = 0.2,
	.predicted_peak_bytes = (2 + OPTIM_STATE) * NWEIGHTS * sizeof(float) +
	                        ARENA_FLOATS * sizeof(float),
	.step = STEP,
	.nactions = NACTIONS,
#ifdef EVAL
	.eval_step = eval_step,
	.eval_nactions = 2 * NMB,
#endif
#ifdef INDIMS
	.in_dims = in_dims, .in_ndim = 2,
#endif
#ifdef OUTDIMS
	.out_dims = out_dims, .out_ndim = 2,
#endif
};

int main(int argc, char **argv)
{
	return rt_main(&program, argc, argv);
}
