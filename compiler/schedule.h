/* schedule.h — schedules as data (named so as not to shadow the system's <sched.h>).
 *
 * A schedule is, for every rank, the ordered list of actions it executes in
 * one training (or inference) step.  It is built in three steps:
 *
 *   sched_generate()  one generator per schedule kind writes the COMPUTE
 *                     order (F, B, W) of each pipeline rank, nothing else;
 *                     or sched_read_file() reads a hand-written order;
 *   sched_lower()     the one lowering pass: adds R before recomputed
 *                     backwards, SEND/RECV between stages on different ranks,
 *                     ALLREDUCE and OPTIM, and copies the program onto every
 *                     data-parallel replica;
 *   sched_verify()    proves the lowered program sound (matching, inputs,
 *                     exactly-once, deadlock freedom, OPTIM last).
 *
 * sched_simulate() then times it on a cost model, sched_memory() computes
 * the peak activation memory, and sched_write_*() print it.  The verifier's
 * deadlock check and the simulator run the ranks on one interpreter
 * (sched_interp.h); every pass names a message as sched_msg() does.
 *
 * Ranks: rank = replica * P + prank, prank = 0..P-1 the pipeline position.
 * Stages: global (virtual) stage index 0..S-1, S = P*V; stage_rank[s] is the
 * pipeline rank holding stage s (Megatron: s mod P; zb-v, dualpipev: a V shape; file:
 * read from the file).
 */
#ifndef PIPEC_SCHEDULE_H
#define PIPEC_SCHEDULE_H

#include "diag.h"

/* The operations an action performs: the runtime's list (pipert_ops.h,
 * part of its public interface), so op numbers, names, what computes and
 * message tags are one definition for pipec, the runtime and the emitted
 * programs.  OP_X == RT_OP_X. */
#include "pipert_ops.h"

typedef enum {
#define X(name, str, torch, compute) OP_##name = RT_OP_##name,
	PIPERT_OPS(X)
#undef X
	OP_COUNT = RT_NOPS
} Op;

#define op_is_compute(op) rt_op_is_compute(op)

const char *op_name(int op);
int op_from_name(const char *s);        /* -1 if unknown */

typedef struct Action {
	int32_t op;             /* Op */
	int32_t stage;          /* global stage, -1 for OPTIM */
	int32_t mb;             /* micro-batch 0..M-1, -1 for ALLREDUCE/OPTIM;
	                         * generate: t*M + g, group g's token round t
	                         * (SCHED_GROUP, SCHED_ROUND) */
	int32_t peer;           /* other rank of a SEND/RECV, else -1 */
	int32_t ver;            /* asynchronous schedules: the weight version an F,
	                         * R or B computes with, or the one an OPTIM
	                         * writes (sched_async_version); 0 otherwise */
	int32_t whole;          /* a B of a split schedule whose W is the next
	                         * compute action: the two are one full backward
	                         * (PyTorch's B beside I and W in dualpipev), so
	                         * --format torch writes them as one B cell */
} Action;

typedef struct ActList {
	Action *a;
	int n, cap;
} ActList;

void actlist_push(ActList *l, int op, int stage, int mb, int peer);

/* X(enum, name as written in .pipe, needs V argument) */
#define SCHED_KINDS(X) \
	X(SK_NAIVE,       "naive",         0) \
	X(SK_GPIPE,       "gpipe",         0) \
	X(SK_1F1B,        "1f1b",          0) \
	X(SK_INTERLEAVED, "interleaved",   1) \
	X(SK_ZBH1,        "zb-h1",         0) \
	X(SK_ZBV,         "zb-v",          0) \
	X(SK_PIPEDREAM,   "pipedream",     0) \
	X(SK_2BW,         "pipedream-2bw", 0) \
	X(SK_INFERENCE,   "inference",     0) \
	X(SK_GENERATE,    "generate",      0) \
	X(SK_FILE,        "file",          0) \
	X(SK_ZBH2,        "zb-h2",         0) \
	X(SK_ZBAUTO,      "zb-auto",       0) \
	X(SK_INTERLEAVED_ZB, "interleaved-zb", 1) \
	X(SK_LOOPED_BFS,  "looped-bfs",    1) \
	X(SK_DUALPIPEV,   "dualpipev",     0)

typedef enum {
#define X(e, s, v) e,
	SCHED_KINDS(X)
#undef X
	SK_COUNT
} SchedKind;

const char *sched_kind_name(int kind);
int sched_kind_from_name(const char *s);   /* -1 if unknown */
/* The schedule as written in a pipeline block: "interleaved(2)",
 * "file(\"order.csv\")" (just "file" when path is NULL), else the name. */
const char *sched_label_of(int kind, int V, const char *path);

typedef struct SchedSpec {
	SchedKind kind;
	int P;                  /* pipeline ranks */
	int V;                  /* virtual stages per rank (1 unless interleaved,
	                         * interleaved-zb, looped-bfs, zb-v, dualpipev, file) */
	int M;                  /* micro-batches per replica */
	int R;                  /* data-parallel replicas */
	int training;           /* 0: forward only (inference) */
	int ntok;               /* SK_GENERATE: tokens generated, one round each */
	int disagg;             /* SK_GENERATE: prefill on ranks of its own */
	const unsigned char *recompute;  /* [S] or NULL: stage s recomputes some layers */
	const char *path;       /* SK_FILE: file to read, already resolved */
	int steps;              /* asynchronous: steps in the run (the stream is
	                         * steps * M micro-batches); else unused */
	const int *inflight;    /* pipedream: [P] micro-batches in flight per rank
	                         * (1..P-r), or NULL: P-r */
	/* zb-auto (sched_auto.c): the costs the order is searched for, and the
	 * activation memory limit as a multiple of what 1F1B keeps on rank 0 */
	double zb_memory;       /* R of zb-auto(memory = R) */
	const struct SimCost *cost;     /* the costs in use (per stage) */
	const double *mem_b;    /* [S] bytes a micro-batch keeps from F to B, or NULL: 1 */
	const double *mem_w;    /* [S] bytes it keeps from B to W, or NULL: mem_b / 2 */
	double zb_effort;       /* zb-auto's local search budget as a share of the
	                         * default (about 4e7 actions timed); 0: 1.  A
	                         * planner weighing many candidates may ask less */
} SchedSpec;

typedef struct Schedule {
	SchedKind kind;
	int P, V, S, M, R, nranks;
	int training;
	int split;              /* backward split into B and W */
	int ntok;               /* generate: rounds (tokens per sequence); else 1.
	                         * Micro-batch keys then run 0 .. M*ntok-1 */
	int disagg;             /* generate with disaggregated prefill: ranks
	                         * 0..P-1 run round 0 (the prefill) and hand each
	                         * group's key/value caches (SEND_KV / RECV_KV) and
	                         * first token to ranks P..2P-1, which decode;
	                         * nranks = 2P, R = 1 */
	int async;              /* pipedream, pipedream-2bw: no flush.  The program
	                         * is one stream of ntok steps: keys t*M + m run
	                         * 0 .. M*ntok-1 (SCHED_ROUND is the step), and
	                         * every rank runs sched_async_step for t = 0 ..
	                         * ntok (the last, a drain, only finishes the
	                         * backward work still in flight) */
	int run_steps;          /* async: the run's steps; the stream holds
	                         * ntok = min(run_steps, SCHED_ASYNC_STEPS) of them */
	int *lag;               /* async: [P] rank p runs B(k - lag[p]) after F(k) */
	int *nver;              /* async: [P] weight versions rank p keeps */
	const unsigned char *rc;/* async: [S] stages that recompute, or NULL */
	int *stage_rank;        /* [S] pipeline rank of each stage */
	ActList *rank;          /* [nranks] actions of each rank */
	int lowered;            /* communication already present (lowered or read so) */
	int eval;               /* the evaluation program of a training schedule
	                         * (sched_eval): forward only, its messages tagged
	                         * with RT_TAG_DIR_EVAL */
	const char *label;      /* the schedule as the user wrote it, for titles
	                         * ("interleaved(2)", "file(\"o.csv\")"); NULL: the kind */
	/* SK_FILE only (NULL otherwise): the CSV, and for every action the byte
	 * offset of the row or cell it came from (an action the lowering added
	 * carries the offset of the compute action it serves).  The verifier
	 * then reports a violation as an input error at that place. */
	const SrcFile *src;
	uint32_t **src_off;     /* [nranks][n], parallel to rank[r].a */
} Schedule;

/* Builds the compute order for spec (not for SK_FILE).  Reports an input
 * error (diag_error at `where`) and returns NULL when the spec's constraints
 * do not hold (interleaved needs M % P == 0, ...). */
Schedule *sched_generate(const SchedSpec *spec, Loc where);

/* The evaluation program of training schedule train (any kind, lowered or
 * not, asynchronous too): forward only over train's placement, P, V, M
 * and R.  Every rank runs, for each stage it holds in increasing stage
 * order, F of micro-batches 0..M-1; lowered here (RECV_F before an F whose
 * previous stage is elsewhere, SEND_F after one whose next stage is), no
 * recompute, ALLREDUCE or OPTIM.  Every message goes to a higher stage
 * and each rank's stages run in ascending order, so it cannot deadlock.
 * kind SK_INFERENCE, training 0, eval 1; the label is train's. */
Schedule *sched_eval(const Schedule *train);

/* zb-auto's compute order for spec's costs and memory limit (sched_auto.c);
 * s is sched_new's, V = 1, split.  -1 after an input error at `where`
 * (one micro-batch alone is over the limit). */
int sched_gen_zbauto(Schedule *s, const SchedSpec *spec, Loc where);

/* zb-v's (and dualpipev's) V-shaped placement: rank r holds stages r and
 * 2P-1-r. */
void sched_zbv_placement(int P, int *stage_rank);

/* Reads a custom order (pipec's CSV with or without communication rows, or
 * PyTorch's action CSV).  Errors name FILE:LINE:COL of the CSV; returns NULL
 * after reporting them. */
Schedule *sched_read_file(const SchedSpec *spec, Loc where);

/* Inserts R, SEND/RECV, ALLREDUCE, OPTIM and replicates onto every replica.
 * A schedule read with communication rows is left as it is. */
void sched_lower(Schedule *s, const SchedSpec *spec);

/* 0 if sound.  Otherwise prints, for the first violation,
 * "rank R, action I (OP stage S mb M): REASON" through report() and returns -1.
 * report is diag_plain-like; a custom schedule's failure is an input error,
 * a built-in schedule's is a bug (the caller decides the exit status).
 * A schedule read from a file (s->src set) is reported instead through
 * diag_error() at the CSV row or cell of the failing action, so the message
 * reads "order.csv:LINE:COL: error: rank R, action I (...): REASON" with the
 * line and a caret; report is then not called (it may be NULL). */
int sched_verify(const Schedule *s, void (*report)(const char *fmt, ...));

/* ---- cost model and simulation ---- */
typedef struct SimCost {
	const char *name;       /* "uniform" or "model" */
	const char *describe;   /* the constants used, one line, printed in summaries */
	double *f, *b, *w, *r;  /* [S] seconds (or units) per micro-batch; b excludes w if split */
	double *msg_f;          /* [S] transfer time of stage s's activations to s+1 */
	double *msg_b;          /* [S] transfer time of stage s's input gradient to s-1 */
	double *copy_f, *copy_b;/* [S] the part of msg_f / msg_b the receiver spends
	                         * copying it in its receive, even when the message
	                         * arrived long before (shared-memory MPI) */
	double allreduce, optim;/* per occurrence */
	double *allreduce_s;    /* [S] ALLREDUCE of stage s, or NULL: allreduce */
	double *optim_p;        /* [P] OPTIM on pipeline rank p, or NULL: optim */
	double *f_dec;          /* generate: [S] a decode round's F, or NULL: f */
	double *msg_f_dec;      /* generate: [S] its activations' transfer, or NULL */
	double msg_tok;         /* generate: a token from the last stage to the first */
	double *msg_kv;         /* generate, disaggregated: [S] one group's caches of a stage */
} SimCost;                      /* f, b required; w, r, msg_*, copy_*, *_s, *_p may be NULL */

/* A cost named `name` with its per-stage f, b, w, r, msg_f and msg_b
 * allocated for S stages, all zero; the other arrays NULL. */
SimCost *simcost_new(const char *name, int S);

/* The uniform cost: F = 1/V, B = 2/V (split: B = W = 1/V), R = F, comm free. */
SimCost *simcost_uniform(const Schedule *s);

typedef struct SimResult {
	double **start, **end;  /* [nranks][n actions] */
	double step_time;
	double *busy;           /* [nranks] compute time */
	double *idle;           /* [nranks] step_time - busy */
	double bubble_fraction; /* sum idle / (nranks * step_time) */
	double bubble_overhead; /* (step_time - ideal) / ideal, ideal = max busy */
	double bubble_rate;     /* the zero-bubble paper's: (S - C) / S of the rank
	                         * whose span S (its first compute's start to its
	                         * last compute's end) is the longest, C its busy
	                         * time */
	double us_per_unit;     /* microseconds per cost unit, for traces: 1000 for
	                         * "uniform" (1 unit = 1 ms), 1e6 otherwise (seconds) */
} SimResult;

/* `pipec schedule --requests N`: continuous batching's timeline and metrics
 * for N requests of random prompt lengths (1 .. T) and new tokens (1 .. K),
 * drawn from seed, through generate schedule s (rows slots a group, batch
 * in all) on cost c, beside the same workload in static batches
 * (sched_cb.c).  0, or -1 for a schedule it cannot simulate. */
int sched_write_cb(FILE *out, const Schedule *s, const SimCost *c, int rows, int T, int K,
                   int batch, int nreq, unsigned long long seed, int width);

SimResult *sched_simulate(const Schedule *s, const SimCost *c);

/* Peak activation memory: act_bytes[s] is what one micro-batch of stage s
 * keeps from its F until its B (or W when split) completes.  Fills
 * peak_bytes[nranks] and peak_mbs[nranks] (micro-batches in flight). */
void sched_memory(const Schedule *s, const double *act_bytes,
                  double *peak_bytes, int *peak_mbs);

/* ---- helpers shared by the sched_*.c files ---- */
/* A schedule with empty action lists for nranks = P*R ranks and Megatron's
 * placement (stage s on pipeline rank s mod P); S = P*V. */
Schedule *sched_new(SchedKind kind, int P, int V, int M, int R, int training, int split);
/* "F stage 3 mb 1", "OPTIM", "ALLREDUCE stage 2" into buf (>= 64 bytes). */
const char *sched_action_desc(char *buf, size_t size, const Action *a);
/* Generate: the group and the token round of an action's micro-batch key
 * (round 0 is the prefill of the group's prompts, later rounds decode one
 * token each); other schedules have one round. */
#define SCHED_GROUP(s, mb) ((mb) % (s)->M)
#define SCHED_ROUND(s, mb) ((mb) / (s)->M)
/* The rank that runs stage st for micro-batch key mb in replica rep:
 * stage_rank[st] moved to the replica, or with disaggregated prefill to
 * the decode ranks for rounds after the first. */
int sched_holder(const Schedule *s, int rep, int st, int mb);
/* Keys of (stage, micro-batch) pairs per replica and stage: M * ntok. */
#define SCHED_KEYS(s) ((s)->M * (s)->ntok)
/* When an action of a program that repeats runs: in which rounds t of
 * generation's ntok, or (SG_LIVE) for the keys of an asynchronous step
 * that the run has.  The generator applies the round guards and the
 * emitted step tests them (step.h). */
typedef enum {
	SG_ALWAYS,
	SG_ROUND_POS,           /* t > 0 */
	SG_ROUND_ONE,           /* t == 1 */
	SG_ROUND_NOT_LAST,      /* t < ntok - 1 */
	SG_ROUND_ZERO,          /* t == 0 */
	SG_ROUND_NONZERO,       /* t != 0 */
	SG_GEN_RUNS,            /* the group takes part in round t (it has not
	                         * ended: always, in the compiled program) */
	SG_LIVE                 /* asynchronous: the action's key exists in the run */
} SchedGuard;
/* Whether round guard g holds in round t of ntok (SG_LIVE: always). */
int sched_guard_holds(SchedGuard g, int t, int ntok);
/* Generate: the rounds rank k of the template runs at all: a
 * disaggregated prefill rank round 0, a decode rank the others. */
SchedGuard sched_generate_rank_guard(const Schedule *s, int rank);
/* Generate: the rounds template action a runs in (RECV_TOK
 * from round 1, RECV_KV in round 1, SEND_TOK and SEND_KV but in the last
 * round), and in *peer_t1 its peer in round 1 where that differs from
 * a->peer (the decode pipeline's first token comes from the prefill),
 * else -1. */
SchedGuard sched_generate_guard(const Schedule *s, const Action *a, int *peer_t1);
/* Generate: pipeline rank p's actions of round t, appended to l (the full
 * program is rounds 0 .. ntok-1 in order): the template's actions of the
 * rank holding p in round t whose guards hold in round t, keyed t*M + g
 * (a received token or the caches by the round that made them). */
void sched_generate_round(const Schedule *s, int p, int t, ActList *l);
/* Generate: one round as the emitted program runs it, for every round:
 * micro-batch keys are the groups 0..M-1, every action any round has is
 * present, and the program guards them by the round (sched_generate_guard).
 * ntok = 1.  The memory plan and the step program work on this; the
 * verifier and the simulator on the whole program. */
Schedule *sched_generate_template(const Schedule *s);
/* "DECODE" for a generate schedule's F after round 0, else op_name(op). */
const char *sched_op_label(const Schedule *s, const Action *a);
/* The global rank of pipeline rank prank in replica rep. */
#define SCHED_RANK(s, rep, prank) ((rep) * (s)->P + (prank))

/* ---- messages: one identity for the verifier, the simulator, the
 * interpreter (sched_interp.h) and the memory plan ----
 * Every SEND_X has exactly one RECV_X, and both describe the same message:
 *   kind   F (activations), B (gradients), TOK (generation's token ring),
 *          KV (disaggregated prefill's caches);
 *   stage  the stage that RECEIVES it, RT_TAG's stage: a SEND_F of stage s
 *          and the RECV_F of stage s+1 carry stage s+1; SEND_B of s and
 *          RECV_B of s-1: s-1; a token goes to stage 0; caches stay on
 *          their stage (decode ranks hold the same stages);
 *   src    the stage that sends it (s, s, S-1 and the stage);
 *   mb     the micro-batch key, the same at both ends (a token: the key of
 *          the last stage's F that picked it, group g round t = t*M + g);
 *   dir    RT_TAG's direction: 0 for F and TOK, 1 for B and KV, and
 *          RT_TAG_DIR_EVAL (2) for F in an evaluation program (s->eval),
 *          so that no evaluation message can match a training one;
 *   from, to  the sending and the receiving rank (the action's rank and
 *          its peer);
 *   rep    the replica (0 with disaggregated prefill, whose R is 1).
 * On the wire the message is RT_TAG(stage, mb, dir), mb as the emitted
 * program numbers keys (the group for generation, one step's slot for
 * asynchronous schedules).  (stage 0, dir 0) never carries activations, so
 * the token ring has it; KV shares (stage, dir 1) with gradients, which a
 * forward-only schedule never sends.  The memory plan's per-receiver
 * stream is 2*stage + (op == RECV_B), and its peer lookup
 * (an action of the peer by its op, its own stage and mb) is the action
 * on the other end whose message has the same kind, stage and mb: the
 * peer's SEND has stage src, its RECV stage `stage`. */
typedef enum { SCHED_MSG_F, SCHED_MSG_B, SCHED_MSG_TOK, SCHED_MSG_KV,
               SCHED_MSG_KINDS } SchedMsgKind;
typedef struct SchedMsg {
	int kind;               /* SchedMsgKind */
	int stage, src;         /* receiving and sending stage */
	int mb, dir;
	int from, to;           /* sending and receiving rank */
	int rep;
} SchedMsg;
enum { SCHED_MSG_NONE, SCHED_MSG_SENDS, SCHED_MSG_RECEIVES };
/* Fills *m for rank k's action a: SCHED_MSG_SENDS for a SEND_*,
 * SCHED_MSG_RECEIVES for a RECV_*, SCHED_MSG_NONE (m untouched) for the
 * rest.  Fields are taken as the action states them, unchecked. */
int sched_msg(const Schedule *s, int k, const Action *a, SchedMsg *m);
/* The slot of (replica, stage, micro-batch key) in a table of
 * SCHED_NSLOTS(s) entries: what happened to each F, B, ... and, by the
 * receiving stage, to each message of one kind. */
#define SCHED_SLOT(s, rep, stage, mb) \
	((((rep) * (s)->S) + (stage)) * SCHED_KEYS(s) + (mb))
#define SCHED_NSLOTS(s) ((s)->R * (s)->S * SCHED_KEYS(s))
/* The message's slot among those of its kind: SCHED_SLOT(rep, stage, mb),
 * in 0 .. SCHED_NSLOTS(s)-1 for an action the verifier's first pass
 * accepted. */
int sched_msg_key(const Schedule *s, const SchedMsg *m);

/* ---- asynchronous schedules (sched_async.c) ----
 * Rank p's step t, in program order: for m = 0..M-1, the forward of key
 * k = t*M + m (RECV_F, F, SEND_F) and then the backward of key k - lag[p]
 * (RECV_B, R, B, SEND_B) followed by its OPTIM (pipedream: after every
 * backward; pipedream-2bw: after a step's last micro-batch).  With guard
 * set, only the actions whose key exists in a run of ntok steps are
 * appended (t = ntok is the drain); without, all of them, with keys
 * relative to t*M (a backward's may be negative: the previous step's).
 *
 * Versions: a weight version v is held in slot v mod nver[p] (the floor
 * modulus) of the rank's nver[p] weight buffers, all of which start equal
 * to the initial weights, so a negative v also reads the initial weights.
 *   pipedream: key k computes with v = k - lag[p], OPTIM of key k writes
 *              v = k + 1 (from the newest, k) — the spec's max(0, k-(P-s)+1)
 *              updates at the default lag P-1-s;
 *   2bw:       key k computes with v = floor(k/M) - 1, the OPTIM of step u
 *              writes v = u + 1 from u: W(t+1) = W(t) - update(step t).
 * The verifier proves that no OPTIM overwrites a slot an in-flight
 * micro-batch still reads (sched_verify.c). */
/* The most steps of an asynchronous run that pipec builds, verifies,
 * simulates and prints: every step after the first is the same program
 * (the emitter writes one), so a longer stream says nothing new and would
 * cost memory in proportion to the run. */
#define SCHED_ASYNC_STEPS 64

/* The lowered stream of a run of spec->steps steps (at most
 * SCHED_ASYNC_STEPS of them); the constraints
 * (R = 1, lag[p] < M, in-flight depths) are sema's to report. */
Schedule *sched_async(const SchedSpec *spec);
void sched_async_step(const Schedule *s, int p, int t, int guard, ActList *l);
/* One step of every rank, unguarded, keys relative to the step: the
 * program the emitter writes and the memory plan lays out. */
Schedule *sched_async_template(const Schedule *s);
/* The version key k computes with on rank p (k may be relative: the
 * formula is linear in t*M). */
int sched_async_version(const Schedule *s, int p, int k);
/* The slot of version v on rank p: v mod nver[p], in 0..nver[p]-1. */
int sched_async_slot(const Schedule *s, int p, int v);

/* ---- output ---- */
void sched_write_csv(FILE *out, const Schedule *s);
/* NULL if PyTorch's compute-only CSV can express s, else why not (one line). */
const char *sched_torch_refusal(const Schedule *s);
int  sched_write_torch(FILE *out, const Schedule *s);  /* -1 + message if inexpressible */
/* Every line of the text output fits in `width` columns (clamped to 80..160). */
void sched_write_text(FILE *out, const Schedule *s, const SimResult *r, const SimCost *c,
                      const double *peak_bytes, const int *peak_mbs, int width);
void sched_write_chrome(FILE *out, const Schedule *s, const SimResult *r);
void sched_write_svg(FILE *out, const Schedule *s, const SimResult *r, const char *title);

#endif
