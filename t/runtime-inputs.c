/* runtime-inputs.c — a hand-written two-rank "emitted" sequence program
 * for t/506-runtime-inputs.t: several named inputs, the run's sequence
 * length, per-position outputs, a next-token loss, RT_INIT_NORMAL and a
 * tied weight held by both ranks.
 *
 * The model (vocabulary V = 50, width D = 4, positions up to SEQ = 8):
 *     stage 0 (rank 0):  h[b,t] = (E[ids[b,t]] + 0.1·types[b,t]) · mask[b,t]
 *     stage 1 (rank 1):  logits[b,t] = h[b,t] · Eᵀ       (E tied: a copy)
 *                        loss next_token
 * E is "emb.weight" on both ranks (tied = 1): each rank's gradient is only
 * its half (the scatter of dh on rank 0, dlogitsᵀ·h on rank 1) until
 * rt_optim_step sums them.  Rank 1 also holds "stat.weight" [64, 64], N(0,
 * 0.25²), used by nothing: its gradient is zero, so SGD keeps its initial
 * values for the test's statistics.  SGD, lr 0.5, no momentum.
 *
 * The schedule is GPipe: rank 0 sends [ids | h] of each micro-batch (the ids
 * travel with the activation, as the emitter sends side inputs in the
 * message's header), rank 1 sends dh back.  Message sizes follow the run's T.
 * The fixture prints, on stdout, what the test checks:
 *     seq_len rank R: T                         (step 1, every rank)
 *     data rank 0 step 1: ids A..B hash H, mask ones N/M, types zeros N/M
 *     tied rank R step S: grad SUM HASH weight HASH   (grad before OPTIM,
 *                                                    weight after)
 *
 * -DEVAL adds an eval_step (forward only, the next-token loss over the
 * rt_rows_valid rows of each micro-batch) and runs rt_eval_run after the
 * last step, printing `eval loss L` (a driver until the step loop calls it).
 *
 * Build one binary per rank: mpicc -DPRANK=0|1 [-DREPLICA=j -DREPLICAS=R].
 */
#include <stdio.h>
#include <string.h>

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

#define BATCH 4
#define NMB 2
#define MBR (BATCH / (REPLICAS * NMB))
#define SEQ 8
#define VOCAB 50
#define D 4
#define STAT 64
#define LR 0.5

static const rt_input_desc inputs[] = {
	{ "ids", RT_DT_I32, SEQ, 1, VOCAB, "token id" },
	{ "mask", RT_DT_I32, SEQ, 1, 2, "mask value" },
	{ "types", RT_DT_I32, SEQ, 1, 2, "token type" },
};

/* Arena, in 4-byte units.  MSG(mb): [ids MBR·T | h MBR·T·D], packed at the
 * run's T inside room for SEQ. */
#define MSG_N (MBR * SEQ * (1 + D))
#define MSG(mb) ((mb) * MSG_N)
#define DH_N (MBR * SEQ * D)
#define DH(mb) (NMB * MSG_N + (mb) * DH_N)
#define LOG (NMB * MSG_N + NMB * DH_N)          /* rank 1: logits, one mb */
#define DLOG (LOG + MBR * SEQ * VOCAB)              /* rank 1: their gradient */
#define ARENA_N (DLOG + MBR * SEQ * VOCAB)

static const rt_param params[] = {
	{ "emb.weight", 2, { VOCAB, D }, 0, VOCAB * D, RT_INIT_NORMAL, 0, PRANK, 0.5, 1 },
#if PRANK == 1
	{ "stat.weight", 2, { STAT, STAT }, VOCAB * D, STAT * STAT, RT_INIT_NORMAL, 0, 1, 0.25, 0 },
#endif
};
#define NPARAMS ((int)(sizeof params / sizeof params[0]))
#define NWEIGHTS (VOCAB * D + (PRANK == 1) * STAT * STAT)

static char *A(rt_ctx *c, int64_t at) { return rt_arena(c) + at * 4; }

static uint64_t fnv(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

/* The tied gradient as this rank has it before OPTIM (its own half), and
 * the tied weight after: one whole line, so ranks' lines do not mix. */
static void optim(rt_ctx *c, int s)
{
	double sum = 0;
	uint64_t gh;
#if REPLICAS > 1
	rt_begin(c, RT_OP_ALLREDUCE, PRANK, -1);
	rt_allreduce(c, PRANK);
	rt_end(c);
#endif
	gh = fnv(rt_grads(c), VOCAB * D * sizeof(float));
	for (int i = 0; i < VOCAB * D; i++)
		sum += rt_grads(c)[i];
	rt_begin(c, RT_OP_OPTIM, -1, -1);
	rt_optim_step(c);
	rt_end(c);
	printf("tied rank %d step %d: grad %a %016llx weight %016llx\n", REPLICA * 2 + PRANK,
	       s + 1, sum, (unsigned long long)gh,
	       (unsigned long long)fnv(rt_weights(c), VOCAB * D * sizeof(float)));
	fflush(stdout);
}

#if PRANK == 0
#define PEER (REPLICA * 2 + 1)
static const char *send_f[NMB] = { "SEND_F stage 0 mb 0", "SEND_F stage 0 mb 1" };
static const char *recv_b[NMB] = { "RECV_B stage 0 mb 0", "RECV_B stage 0 mb 1" };

/* What the synthetic-data test reads: ranges, hash, ones and zeros. */
static void data_summary(rt_ctx *c, int64_t T)
{
	int lo = 1 << 30, hi = -1, ones = 0, zeros = 0, n = NMB * MBR * (int)T;
	uint64_t h = 0;
	for (int mb = 0; mb < NMB; mb++) {
		const int32_t *ids = rt_data(c, 0, mb), *mask = rt_data(c, 1, mb),
		              *types = rt_data(c, 2, mb);
		for (int i = 0; i < MBR * T; i++) {
			lo = ids[i] < lo ? ids[i] : lo;
			hi = ids[i] > hi ? ids[i] : hi;
			ones += mask[i] == 1;
			zeros += types[i] == 0;
		}
		h ^= fnv(ids, (size_t)(MBR * T) * 4) + (uint64_t)mb;
	}
	printf("data rank 0 step 1: ids %d..%d hash %016llx, mask ones %d/%d, types zeros %d/%d\n",
	       lo, hi, (unsigned long long)h, ones, n, zeros, n);
}

static void F(rt_ctx *c, int mb, int64_t T)
{
	const int32_t *ids = rt_data(c, 0, mb), *mask = rt_data(c, 1, mb), *types = rt_data(c, 2, mb);
	int32_t *mids = (int32_t *)A(c, MSG(mb));
	float *h = (float *)A(c, MSG(mb) + MBR * T);
	const float *w = rt_weights(c);
	rt_begin(c, RT_OP_F, 0, mb);
	memcpy(mids, ids, (size_t)(MBR * T) * 4);
	for (int i = 0; i < MBR * T; i++)
		for (int j = 0; j < D; j++)
			h[i * D + j] = (w[ids[i] * D + j] + 0.1f * (float)types[i]) * (float)mask[i];
	rt_end(c);
	rt_begin(c, RT_OP_SEND_F, 0, mb);
	rt_isend(c, mb, mids, (size_t)(MBR * T * (1 + D)) * 4, PEER, RT_TAG(1, mb, 0), send_f[mb]);
	rt_end(c);
}

static void B(rt_ctx *c, int mb, int64_t T)
{
	const int32_t *ids = rt_data(c, 0, mb), *mask = rt_data(c, 1, mb);
	const float *dh = (const float *)A(c, DH(mb));
	float *g = rt_grads(c);
	rt_begin(c, RT_OP_RECV_B, 0, mb);
	rt_wait(c, NMB + mb);
	rt_end(c);
	rt_begin(c, RT_OP_B, 0, mb);
	for (int i = 0; i < MBR * T; i++)
		for (int j = 0; j < D; j++)
			g[ids[i] * D + j] += dh[i * D + j] * (float)mask[i];
	rt_end(c);
}

static void step(rt_ctx *c, int s)
{
	const int64_t T = rt_seq_len(c);
	if (s == 0) {
		printf("seq_len rank %d: %lld\n", REPLICA * 2 + PRANK, (long long)T);
		data_summary(c, T);
	}
	for (int mb = 0; mb < NMB; mb++)
		rt_irecv(c, NMB + mb, A(c, DH(mb)), (size_t)(MBR * T * D) * 4, PEER, RT_TAG(0, mb, 1),
		         recv_b[mb]);
	for (int mb = 0; mb < NMB; mb++)
		F(c, mb, T);
	for (int mb = 0; mb < NMB; mb++)
		B(c, mb, T);
	for (int mb = 0; mb < NMB; mb++)
		rt_wait(c, mb);
	optim(c, s);
}
#ifdef EVAL
static void eval_step(rt_ctx *c, int b)
{
	const int64_t T = rt_seq_len(c);
	(void)b;
	for (int mb = 0; mb < NMB; mb++)
		F(c, mb, T);
	for (int mb = 0; mb < NMB; mb++)
		rt_wait(c, mb);
}
#endif
#define FIRST 1
#define LAST 0

#else
#define PEER (REPLICA * 2 + 0)
static const char *recv_f[NMB] = { "RECV_F stage 1 mb 0", "RECV_F stage 1 mb 1" };
static const char *send_b[NMB] = { "SEND_B stage 1 mb 0", "SEND_B stage 1 mb 1" };

static void FB(rt_ctx *c, int mb, int64_t T)
{
	const int32_t *ids = (const int32_t *)A(c, MSG(mb));
	const float *h = (const float *)A(c, MSG(mb) + MBR * T), *w = rt_weights(c);
	float *logits = (float *)A(c, LOG), *dlog = (float *)A(c, DLOG), *dh = (float *)A(c, DH(mb));
	rt_begin(c, RT_OP_RECV_F, 1, mb);
	rt_wait(c, mb);
	rt_end(c);
	rt_begin(c, RT_OP_F, 1, mb);
	rt_linear_fwd(h, w, NULL, logits, MBR * T, D, VOCAB);
	rt_output(c, mb, logits);
	rt_end(c);
	rt_begin(c, RT_OP_B, 1, mb);
	rt_loss_next_token(c, logits, ids, dlog, MBR, T, VOCAB, 1.0 / ((double)BATCH * (double)(T - 1)));
	rt_linear_bwd_weight(h, dlog, rt_grads(c), NULL, MBR * T, D, VOCAB);
	rt_linear_bwd_data(dlog, w, dh, MBR * T, D, VOCAB);
	rt_end(c);
	rt_begin(c, RT_OP_SEND_B, 1, mb);
	rt_isend(c, NMB + mb, dh, (size_t)(MBR * T * D) * 4, PEER, RT_TAG(0, mb, 1), send_b[mb]);
	rt_end(c);
}

static void step(rt_ctx *c, int s)
{
	const int64_t T = rt_seq_len(c);
	if (s == 0)
		printf("seq_len rank %d: %lld\n", REPLICA * 2 + PRANK, (long long)T);
	for (int mb = 0; mb < NMB; mb++)
		rt_irecv(c, mb, A(c, MSG(mb)), (size_t)(MBR * T * (1 + D)) * 4, PEER, RT_TAG(1, mb, 0),
		         recv_f[mb]);
	for (int mb = 0; mb < NMB; mb++)
		FB(c, mb, T);
	for (int mb = 0; mb < NMB; mb++)
		rt_wait(c, NMB + mb);
	optim(c, s);
}
#ifdef EVAL
static void eval_step(rt_ctx *c, int b)
{
	const int64_t T = rt_seq_len(c);
	float *logits = (float *)A(c, LOG);
	(void)b;
	for (int mb = 0; mb < NMB; mb++)
		rt_irecv(c, mb, A(c, MSG(mb)), (size_t)(MBR * T * (1 + D)) * 4, PEER, RT_TAG(1, mb, 0),
		         recv_f[mb]);
	for (int mb = 0; mb < NMB; mb++) {
		const int32_t *ids = (const int32_t *)A(c, MSG(mb));
		const float *h = (const float *)A(c, MSG(mb) + MBR * T);
		rt_begin(c, RT_OP_RECV_F, 1, mb);
		rt_wait(c, mb);
		rt_end(c);
		rt_begin(c, RT_OP_F, 1, mb);
		rt_linear_fwd(h, rt_weights(c), NULL, logits, MBR * T, D, VOCAB);
		rt_loss_next_token(c, logits, ids, NULL, rt_rows_valid(c, mb), T, VOCAB, 1.0);
		rt_end(c);
	}
}
#endif
#define FIRST 0
#define LAST 1
#endif

#ifdef EVAL
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

static const rt_program program = {
	.model = "tied_seq",
	.source = "t/runtime-inputs.c",
	.schedule = "gpipe",
	.rank = REPLICA * 2 + PRANK,
	.nranks = 2 * REPLICAS,
	.P = 2, .R = REPLICAS, .V = 1,
	.replica = REPLICA,
	.batch = BATCH, .M = NMB, .mb_rows = MBR,
	.first_stage = FIRST, .last_stage = LAST,
	.in_width = SEQ, .out_width = SEQ * VOCAB,
	.loss = RT_LOSS_NEXT_TOKEN, .target_dtype = RT_DT_I32, .target_width = 0,
	.optim = RT_OPTIM_SGD, .lr = LR, .momentum = 0.0,
	.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
	.steps = 2, .seed = 11,
	.params = params, .nparams = NPARAMS, .nweights = NWEIGHTS,
	.arena_bytes = ARENA_N * 4,
	.nslots = 2 * NMB,
	.predicted_bubble = 0.5,
	.predicted_peak_bytes = 2 * NWEIGHTS * 4 + ARENA_N * 4,
	.step = STEP,
#ifdef EVAL
	.eval_step = eval_step, .eval_nactions = 3 * NMB,
#endif
	.inputs = inputs, .ninputs = 3, .seq_max = SEQ, .out_seq = 1,
};

int main(int argc, char **argv)
{
	return rt_main(&program, argc, argv);
}
