/* pipert.h — the pipec runtime's public interface.
 *
 * A program emitted by `pipec compile` is one C file per rank.  It holds, as
 * static data, an rt_program describing the rank (its parameters, its arena
 * size, the model's data shapes, the optimizer) and a step function that is
 * the rank's verified schedule unrolled: straight-line calls to the functions
 * below.  rt_main() owns everything else: MPI start-up, options, weights,
 * data, the step loop, loss printing, tracing, outputs and failure handling.
 *
 * Conventions: every tensor is float32, row-major, rows = samples of one
 * micro-batch.  Gradient kernels ACCUMULATE (+=) into weight gradients and
 * OVERWRITE input gradients.  Prefix: rt_ (functions), RT_ (constants).
 */
#ifndef PIPERT_H
#define PIPERT_H

#include <stddef.h>
#include <stdint.h>

#include "rt_tf_sizes.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RT_ABI_VERSION 1

typedef struct rt_ctx rt_ctx;          /* opaque per-process state */

/* How a parameter is initialised when no --weights-in is given.  The
 * distributions are PyTorch's defaults; the generator is seeded from
 * (program seed, parameter name), so every partition of a model gets the
 * same initial weights. */
enum {
	RT_INIT_UNIFORM_FANIN,  /* U(-1/sqrt(fan_in), 1/sqrt(fan_in)): nn.Linear weight and bias */
	RT_INIT_ONES,           /* nn.LayerNorm weight */
	RT_INIT_ZEROS,          /* nn.LayerNorm bias */
	RT_INIT_NORMAL          /* N(0, std²): transformers' weights and embeddings */
};

enum { RT_LOSS_NONE, RT_LOSS_CROSS_ENTROPY, RT_LOSS_MSE, RT_LOSS_NEXT_TOKEN };
enum { RT_OPTIM_NONE, RT_OPTIM_SGD, RT_OPTIM_ADAM, RT_OPTIM_ADAMW };
/* Learning-rate schedules (docs/training.md): lr at optimizer step t. */
enum { RT_LR_CONSTANT, RT_LR_COSINE, RT_LR_LINEAR };
enum { RT_DT_F32, RT_DT_I32 };
/* The program's dtype (docs/language.md's `dtype`, docs/precision.md). */
enum { RT_PREC_F32, RT_PREC_BF16, RT_PREC_F16 };

/* Trace / schedule operation codes (RT_OP_*), rt_op_is_compute and the
 * message tags (RT_TAG): one definition shared with pipec. */
#include "pipert_ops.h"

typedef struct rt_param {
	const char *name;       /* PyTorch name: "fc1.weight" */
	int ndim;
	int64_t dims[4];        /* PyTorch layout: linear weight is [out, in] */
	int64_t offset;         /* in floats, into this rank's weight (and gradient) buffer */
	int64_t numel;
	int init;               /* RT_INIT_* */
	int64_t fan_in;         /* for RT_INIT_UNIFORM_FANIN */
	int stage;              /* the (virtual) stage that owns it: used by rt_allreduce */
	/* Added for transformers (0 keeps the old meaning). */
	double std;             /* RT_INIT_NORMAL */
	int tied;               /* 1: another pipeline rank holds this parameter too
	                         * (a token embedding and its tied lm_head on other
	                         * stages): before every optimizer step the copies'
	                         * gradients are summed, so the copies stay equal */
} rt_param;

/* A model input (the program's `inputs`): the first stage reads each from
 * its own file (--input NAME=FILE.npy).  A sequence input (i32) is
 * [rows, T] with T <= width, the same T for every sequence input of a run;
 * its values must lie in [0, limit) when limit > 0 (token ids below the
 * vocabulary, token types below their count, masks 0 or 1). */
typedef struct rt_input_desc {
	const char *name;
	int dtype;              /* RT_DT_F32 or RT_DT_I32 */
	int64_t width;          /* features, or the maximum length of a sequence */
	int seq;                /* 1: a sequence (i32 [rows, T]) */
	int64_t limit;          /* values must be < limit (0: no check) */
	const char *what;       /* "token id", "token type", "mask value": for messages */
} rt_input_desc;

typedef struct rt_program {
	const char *model;      /* model name */
	const char *source;     /* the .pipe file it came from */
	const char *schedule;   /* schedule name, for the summary */
	int rank, nranks;       /* this rank; ranks in the job (P * R) */
	int P, R, V;            /* pipeline ranks, replicas, virtual stages per rank */
	int replica;            /* rank / P */
	int64_t batch;          /* global batch B */
	int M;                  /* micro-batches per replica per step */
	int64_t mb_rows;        /* rows per micro-batch = B / (R * M) */

	/* Data.  Only the ranks holding the first stage read the input, only
	 * those holding the last stage read targets and write outputs. */
	int first_stage, last_stage;    /* does this rank hold stage 0 / stage S-1 */
	int64_t in_width;               /* features per input row */
	int64_t out_width;              /* features per output row */
	int loss;                       /* RT_LOSS_* */
	int target_dtype;               /* RT_DT_I32 (class ids) or RT_DT_F32 */
	int64_t target_width;           /* 1 for class ids */

	/* Training. */
	int optim;                      /* RT_OPTIM_*; NONE = inference */
	double lr, momentum;            /* sgd */
	double beta1, beta2, eps;       /* adam (PyTorch defaults) */
	int steps;                      /* default number of steps */
	uint64_t seed;

	/* Parameters held by this rank. */
	const rt_param *params;
	int nparams;
	int64_t nweights;               /* floats in the weight buffer */

	/* The arena: every activation, gradient and message buffer of the step
	 * at the compiler's offsets.  rt_main allocates it once. */
	int64_t arena_bytes;
	int nslots;                     /* communication request slots used by step */

	/* The compiler's predictions, printed beside the measurements. */
	double predicted_bubble;        /* simulated idle / (ranks * step time) */
	int64_t predicted_peak_bytes;   /* weights + grads + optimizer state + arena */

	/* The rank's schedule, unrolled.  `step` counts from 0. */
	void (*step)(rt_ctx *c, int step);

	/* Added after ABI 1's first draft; 0 (a designated initialiser that
	 * leaves them out) keeps the old behaviour. */
	int nactions;                   /* rt_begin calls per step: sizes the trace
	                                 * buffer up front; 0 = count the first step */

	/* Sequence models (docs/transformers.md).  ninputs 0: one f32 input of
	 * in_width features, as before. */
	const rt_input_desc *inputs;
	int ninputs;
	int64_t seq_max;                /* declared sequence length; 0: none */
	int out_seq;                    /* the output is per position: out_width is
	                                 * seq_max positions' worth, a run writes T's */

	/* schedule = generate (docs/transformers.md): `step` is one round of
	 * the token ring, called for rounds 0, 1, .. until every group has
	 * ended (rt_gen_runs), without a barrier between them.  gen_tokens 0:
	 * not a generating program; the gen_ settings are the compiled
	 * defaults of the run-time options. */
	int gen_tokens;                 /* max_new_tokens */
	int gen_sample;                 /* 0 greedy, 1 sample */
	double gen_temperature;
	int gen_top_k;                  /* 0: every token */
	uint64_t gen_seed;
	int64_t gen_eos;                /* -1: none */
	int64_t gen_vocab;              /* the lm_head's width */
	int64_t kv_cap;                 /* positions the caches hold: seq_max + gen_tokens */
	int64_t kv_bytes;               /* this rank's key/value caches (in the arena) */
	int gen_disagg;                 /* prefill on ranks 0..P-1, decode on P..2P-1
	                                 * (nranks = 2P, R = 1, replica 0) */

	/* schedule = pipedream, pipedream-2bw: `step` is one step of a stream
	 * that never flushes, called for steps 0 .. steps (the last one only
	 * drains the backwards in flight) without a barrier between them; the
	 * rank keeps nversions copies of its weights (weight stashing). */
	int async;
	int nversions;

	/* dtype = bf16 / f16 (docs/precision.md): activations, their gradients,
	 * f32 inputs and the weights the kernels read hold 16-bit values (the
	 * step rounds each layer's output with rt_round); a training rank also
	 * keeps f32 master weights, which the optimizer updates and
	 * --weights-out writes.  RT_PREC_F32 (0): none of it. */
	int precision;

	/* Training for real (docs/training.md).  0 keeps the old behaviour.
	 * optim RT_OPTIM_ADAMW: decoupled weight decay (torch.optim.AdamW). */
	double weight_decay;            /* sgd, adam: L2 added to the gradient */
	int nesterov;                   /* sgd */
	int decay_matrices;             /* 1: decay only parameters of ndim >= 2 */
	int lr_schedule;                /* RT_LR_* */
	int64_t lr_warmup;              /* W: lr·t/W for t <= W */
	int64_t lr_total;               /* T: the horizon of cosine / linear */
	double min_lr;
	double clip_grad_norm;          /* 0: no clipping; else the max global L2 norm */
	int shuffle;                    /* shuffle = true: --shuffle by default */
	/* Forward only (dropout off) over one batch of an evaluation set: the
	 * same stages on the same ranks, every stage's micro-batches in stage
	 * order.  The last stage adds each micro-batch's loss over its
	 * rt_rows_valid rows with the loss functions, dlogits NULL.  NULL: the
	 * program cannot evaluate (inference programs, old programs). */
	void (*eval_step)(rt_ctx *c, int batch);
	int eval_nactions;              /* rt_begin calls of eval_step */
	/* Declared per-sample shapes, after the batch axis (docs/training.md,
	 * "Data"): the input's (a program without `inputs`) and the output's.
	 * An input file may have the declared shape [N, d1, d2, ...] or the
	 * flattened [N, in_width]; --output is written [N, d1, ...].  ndim 0:
	 * the flat [in_width] / [out_width] only. */
	const int64_t *in_dims;
	int in_ndim;
	const int64_t *out_dims;
	int out_ndim;
} rt_program;

/* Parses the options of the emitted program (--help, --weights-in,
 * --weights-out, --input, --target, --output, --steps, --trace, --timeout,
 * --check-messages), runs the job and returns the process exit status.
 * The emitted main() is `return rt_main(&program, argc, argv);`. */
int rt_main(const rt_program *p, int argc, char **argv);

/* ---- Buffers the step function addresses by fixed offsets. ---- */
char  *rt_arena(rt_ctx *c);
float *rt_weights(rt_ctx *c);
float *rt_grads(rt_ctx *c);            /* NULL when optim is RT_OPTIM_NONE (inference) */

/* ---- Data of the current step, for this replica's rows. ---- */
const float   *rt_input(rt_ctx *c, int mb);          /* [mb_rows, in_width] */
/* Input k (of program->inputs) of micro-batch mb: f32 [mb_rows, width] or
 * i32 [mb_rows, T]. */
const void    *rt_data(rt_ctx *c, int k, int mb);
/* The run's sequence length T (every rank knows it from the start): the
 * sequence inputs' columns, or seq_max with synthetic data; 0 if none.
 * Generating: the prompts' width T0 (the longest prompt). */
int64_t rt_seq_len(rt_ctx *c);
/* ---- Generation (rt_gen.c, docs/transformers.md) ---- */
typedef struct rt_gen_rows {
	int64_t rows;               /* the group's sequence slots */
	int64_t ntok;               /* new tokens of all its slots this round */
	const int32_t *n;           /* [rows] slot r's new tokens (0: idle) */
	const int32_t *pos;         /* [rows] the position of its first */
	const int32_t *off;         /* [rows] its first's row in the packed tokens */
} rt_gen_rows;
/* Group g's rows this round, and every stage learns them the same way: the
 * first stage decides them (rt_gen_rows_at with in = NULL: finished slots
 * take the next prompts, the others decode the token the ring brought) and
 * each stage passes them on in the header of its output message (out, the
 * descriptor's place in it; NULL on the last stage), where the next stage
 * reads them (in). */
const rt_gen_rows *rt_gen_rows_at(rt_ctx *c, int g, const void *in, void *out);
/* The first stage's token ids of group g this round, packed as its rows
 * are: prompts, and the tokens picked last round. */
const int32_t *rt_gen_ids(rt_ctx *c, int g);
/* Group g takes part in round t (it has not ended earlier), and its tokens
 * go round the ring after round t (it did not end in round t): the guards
 * of the emitted step. */
int rt_gen_runs(rt_ctx *c, int g, int t);
int rt_gen_ring(rt_ctx *c, int g, int t);
/* Group g's activation message this round: hdr header bytes, then one row
 * of row_bytes per token (16-bit: rt_gen_values values), and the receive
 * of one, which takes any size up to the longest prompts' and checks it
 * against the descriptor in its header. */
size_t rt_gen_msg(rt_ctx *c, int g, int64_t hdr, int64_t row_bytes);
int64_t rt_gen_values(rt_ctx *c, int g, int64_t per_row);
void rt_gen_irecv(rt_ctx *c, int slot, void *buf, int64_t hdr, int64_t row_bytes, int peer,
                  int tag, const char *what);
void rt_gen_irecv16(rt_ctx *c, int slot, void *buf, int64_t hdr, int64_t per_row, int peer,
                    int tag, const char *what);
/* Group g's token buffer, int32 [mb_rows]: the last stage writes the
 * tokens it picks there (-1 for an idle slot) and sends them; the first
 * stage receives them there. */
int32_t *rt_gen_tokens(rt_ctx *c, int g);
/* Generating, on the last stage: picks the next token of each busy slot of
 * group g from logits [mb_rows, gen_vocab] (greedy: the first largest;
 * sampled: logits / temperature, top-k, top-p, a draw keyed by (seed, the
 * prompt's row in the input, position), so a row's tokens do not depend
 * on the other prompts, P or M), records them for --output and writes them
 * to rt_gen_tokens(c, g). */
void rt_gen_pick(rt_ctx *c, int g, const float *logits);
const int32_t *rt_target_class(rt_ctx *c, int mb);   /* [mb_rows] */
const float   *rt_target_dense(rt_ctx *c, int mb);   /* [mb_rows, target_width] */
void rt_output(rt_ctx *c, int mb, const float *y);   /* last stage: keep rows for --output */
void rt_loss_add(rt_ctx *c, double sum);             /* add a micro-batch's loss sum */
/* Rows of micro-batch mb that hold data: mb_rows, except in the padded
 * last batch of an evaluation set or of an inference run over a file,
 * where the padding rows (the micro-batch's last ones) are left out of
 * the loss and the output. */
int64_t rt_rows_valid(rt_ctx *c, int mb);

/* ---- Point-to-point transport: non-blocking; slot indexes a request
 * table of program->nslots entries.  `what` names the action for error
 * messages ("RECV_F stage 2 mb 5").  Waits give up after --timeout.
 * Post a send inside its SEND action's rt_begin/rt_end and wait for a
 * receive inside its RECV action's: --check-messages compares every message
 * with those actions (a SEND_F of stage s, mb m feeds the RECV_F of stage
 * s+1, mb m; a SEND_B of stage s the RECV_B of stage s-1).  Every posted
 * slot must be waited on before the step returns. ---- */
void rt_irecv(rt_ctx *c, int slot, void *buf, size_t bytes, int peer, int tag, const char *what);
void rt_isend(rt_ctx *c, int slot, const void *buf, size_t bytes, int peer, int tag, const char *what);
void rt_wait(rt_ctx *c, int slot);
/* A 16-bit program's messages (docs/precision.md): `hdr` bytes as they are
 * (the side tensors), then n floats holding values of the dtype.  The CPU
 * runtime sends those 2 bytes each: rt_isend16 packs buf into `pack` (the
 * compiler's buffer of hdr + 2n bytes, untouched until the wait) and
 * rt_wait of an rt_irecv16 slot unpacks in place (buf has hdr + 4n bytes).
 * libpipert_cuda.a sends the hdr + 4n bytes of buf as they are. */
void rt_irecv16(rt_ctx *c, int slot, void *buf, size_t hdr, int64_t n, int peer, int tag,
                const char *what);
void rt_isend16(rt_ctx *c, int slot, const void *buf, void *pack, size_t hdr, int64_t n,
                int peer, int tag, const char *what);
/* Message tags: RT_TAG(stage, micro-batch, direction) in pipert_ops.h. */

/* ---- Data parallelism and optimizer. ---- */
void rt_allreduce(rt_ctx *c, int stage);   /* sum the stage's gradients over its replicas */
void rt_optim_step(rt_ctx *c);             /* update every parameter of the rank, zero grads */
/* Asynchronous schedules.  The keys of a run: steps * M micro-batches. */
int64_t rt_run_keys(rt_ctx *c);
/* Before a compute action of key k: its data are micro-batch k mod M of
 * step k / M, and it computes with the weights in version slot `slot`. */
void rt_async_use(rt_ctx *c, int64_t k, int slot);
/* The optimizer step into slot dst: the newest weights plus this update
 * (copied first if dst is another slot), gradients zeroed; dst is then the
 * newest. */
void rt_optim_version(rt_ctx *c, int dst);

/* ---- Trace: brackets each action of the step. ---- */
void rt_begin(rt_ctx *c, int op, int stage, int mb);
void rt_end(rt_ctx *c);

/* ---- Kernels.  rows = samples; widths per sample. ---- */
void rt_linear_fwd(const float *x, const float *w, const float *b, float *y,
                   int64_t rows, int64_t in, int64_t out);
void rt_linear_bwd_data(const float *dy, const float *w, float *dx,
                        int64_t rows, int64_t in, int64_t out);
void rt_linear_bwd_weight(const float *x, const float *dy, float *dw, float *db,
                          int64_t rows, int64_t in, int64_t out);   /* db may be NULL */

void rt_relu_fwd(const float *x, float *y, int64_t n);
void rt_relu_bwd(const float *y, const float *dy, float *dx, int64_t n);
void rt_gelu_fwd(const float *x, float *y, int64_t n);             /* exact (erf), nn.GELU() */
void rt_gelu_bwd(const float *x, const float *dy, float *dx, int64_t n);
void rt_tanh_fwd(const float *x, float *y, int64_t n);
void rt_tanh_bwd(const float *y, const float *dy, float *dx, int64_t n);
void rt_sigmoid_fwd(const float *x, float *y, int64_t n);
void rt_sigmoid_bwd(const float *y, const float *dy, float *dx, int64_t n);
void rt_silu_fwd(const float *x, float *y, int64_t n);             /* x·sigmoid(x), nn.SiLU() */
void rt_silu_bwd(const float *x, const float *dy, float *dx, int64_t n);

/* Dropout with a counter-based generator: element (row, col) of layer
 * `key` in step `step` is kept iff hash(seed, key, step, row0 + row, col)
 * >= p, so the mask depends on the global row, never on the schedule.
 * Kept elements are scaled by 1/(1-p).  Backward regenerates the mask. */
void rt_dropout_fwd(const float *x, float *y, int64_t rows, int64_t width, double p,
                    uint64_t seed, uint64_t key, int64_t step, int64_t row0);
void rt_dropout_bwd(const float *dy, float *dx, int64_t rows, int64_t width, double p,
                    uint64_t seed, uint64_t key, int64_t step, int64_t row0);

/* LayerNorm over the last dimension; mean and rstd ([rows] each) are saved
 * by forward for backward. */
void rt_layernorm_fwd(const float *x, const float *g, const float *b, float *y,
                      float *mean, float *rstd, int64_t rows, int64_t d, double eps);
void rt_layernorm_bwd_data(const float *x, const float *g, const float *mean,
                           const float *rstd, const float *dy, float *dx,
                           int64_t rows, int64_t d);
void rt_layernorm_bwd_weight(const float *x, const float *mean, const float *rstd,
                             const float *dy, float *dg, float *db, int64_t rows, int64_t d);

void rt_softmax_fwd(const float *x, float *y, int64_t rows, int64_t d);
void rt_softmax_bwd(const float *y, const float *dy, float *dx, int64_t rows, int64_t d);

/* Losses: return the micro-batch's SUM of per-sample (CE) or per-element
 * (MSE) losses and write dL/dlogits = scale * d(sum)/dlogits (dlogits
 * NULL: the loss only, as an evaluation step asks), where the
 * emitter passes scale = 1/B (CE) or 1/(B*width) (MSE) so gradients are of
 * the global batch's mean loss. */
double rt_loss_cross_entropy(const float *logits, const int32_t *t, float *dlogits,
                             int64_t rows, int64_t classes, double scale);
double rt_loss_mse(const float *y, const float *t, float *dy,
                   int64_t rows, int64_t width, double scale);
/* The same, adding the sum to the rank's loss (rt_loss_add) instead of
 * returning it.  Emitted programs use these: on a GPU the sum stays on the
 * device, and the host reads it once per step, not once per micro-batch. */
void rt_loss_ce(rt_ctx *c, const float *logits, const int32_t *t, float *dlogits,
                int64_t rows, int64_t classes, double scale);
void rt_loss_mse_acc(rt_ctx *c, const float *y, const float *t, float *dy,
                     int64_t rows, int64_t width, double scale);

/* ---- GEMM: the runtime's one row-major matrix product (CBLAS on the
 * CPU, cuBLAS on a GPU, where the column-major mapping lives in one
 * function).  For i < batch:
 *     C_i = alpha · op(A_i) · op(B_i) + beta · C_i
 * op(X) = X, or Xᵀ when trans_x; op(A) is [m, k], op(B) is [k, n], C is
 * [m, n]; lda, ldb, ldc are row strides (of the matrices as stored); sa,
 * sb, sc the distance between consecutive batch entries, in floats. ---- */
void rt_gemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
             const float *a, int64_t lda, int64_t sa, const float *b, int64_t ldb, int64_t sb,
             float beta, float *c, int64_t ldc, int64_t sc, int64_t batch);

/* ---- Transformer layers (rt_tf.c; docs/transformers.md).
 *
 * Sequences: B samples of T positions; a hidden state is [B, T, d]
 * row-major; ids, mask and token types are int32 [B, T] (mask 1 = token,
 * 0 = padding; NULL = every position is a token; types NULL = all 0).
 * Position ids are 0 .. T-1.
 *
 * `w` (and `g`, its gradient) points at the layer's first parameter; the
 * layer's parameters follow one another in the order below, each in the
 * layout Hugging Face stores it:
 *   bert_embeddings  word_embeddings [vocab, d], position_embeddings
 *                    [positions, d], token_type_embeddings [types, d],
 *                    LayerNorm.weight [d], LayerNorm.bias [d]
 *   bert_layer       attention.self.query.weight [d, d], .bias [d], key.weight,
 *                    key.bias, value.weight, value.bias, attention.output.dense
 *                    .weight [d, d], .bias, attention.output.LayerNorm.weight,
 *                    .bias, intermediate.dense.weight [ffn, d], .bias [ffn],
 *                    output.dense.weight [d, ffn], .bias [d],
 *                    output.LayerNorm.weight, .bias        (Linear: [out, in])
 *   gpt2_embeddings  wte [vocab, d], wpe [positions, d]
 *   gpt2_block       ln_1.weight, ln_1.bias, attn.c_attn.weight [d, 3d],
 *                    attn.c_attn.bias [3d], attn.c_proj.weight [d, d],
 *                    attn.c_proj.bias, ln_2.weight, ln_2.bias, mlp.c_fc.weight
 *                    [d, ffn], mlp.c_fc.bias [ffn], mlp.c_proj.weight [ffn, d],
 *                    mlp.c_proj.bias [d]                   (Conv1D: [in, out])
 * bert_layer: post-layernorm, padding-masked attention, erf gelu (BertLayer).
 * gpt2_block: pre-layernorm, causal (and padding-masked) attention, tanh
 * gelu (GPT2Block).  Attention scores are q·kᵀ/sqrt(d/heads); a masked key
 * gets the score -inf-like (the most negative float, as transformers does).
 *
 * Buffers, each of B times the per-sample floats of rt_tf_sizes.h at the
 * run's T (the compiler plans them at the declared maximum T):
 *   save   written by _fwd, read by _bwd and _wgt (what backward needs);
 *   stash  written by _bwd when g is NULL (the output gradients of the
 *          layer's linears and layernorms), read by _wgt: zero-bubble's
 *          split of the backward into B (input gradient) and W (weights);
 *   work   scratch for the call's temporaries; nothing survives the call.
 * _bwd writes dx (overwrites; NULL = not needed) and, when g is not NULL,
 * accumulates the weight gradients into g; _wgt accumulates them from the
 * stash.  _fwd with save NULL is inference: nothing kept. ---- */
typedef struct rt_tf {
	int64_t d, heads, ffn;
	double eps;
	int64_t vocab, positions, types;    /* embeddings */
	/* llama_block (0 elsewhere): key/value heads (GQA; heads % kv_heads
	 * == 0), the rotary base, q/k/v biases (Qwen2), and Llama 3's rotary
	 * frequency scaling (rope_factor 0: none) */
	int64_t kv_heads;
	double rope_theta;
	int qkv_bias;
	double rope_factor, rope_low, rope_high;
	int64_t rope_orig;
	/* gpt2_block, llama_block generating in a 16-bit program: the key/value
	 * caches hold 16-bit values (RT_PREC_BF16 / _F16, 2 bytes each; the
	 * stores round the block's f32 keys and values to them); RT_PREC_F32
	 * (0): floats */
	int kv_prec;
} rt_tf;

void rt_bert_layer_fwd(const rt_tf *L, const float *w, const float *x, const int32_t *mask,
                       float *y, float *save, float *work, int64_t B, int64_t T);
void rt_bert_layer_bwd(const rt_tf *L, const float *w, float *g, const float *x,
                       const float *save, const float *dy, float *dx, float *stash,
                       float *work, int64_t B, int64_t T);
void rt_bert_layer_wgt(const rt_tf *L, float *g, const float *x, const float *save,
                       const float *stash, float *work, int64_t B, int64_t T);

void rt_gpt2_block_fwd(const rt_tf *L, const float *w, const float *x, const int32_t *mask,
                       float *y, float *save, float *work, int64_t B, int64_t T);
void rt_gpt2_block_bwd(const rt_tf *L, const float *w, float *g, const float *x,
                       const float *save, const float *dy, float *dx, float *stash,
                       float *work, int64_t B, int64_t T);
void rt_gpt2_block_wgt(const rt_tf *L, float *g, const float *x, const float *save,
                       const float *stash, float *work, int64_t B, int64_t T);

/* Embeddings have no input gradient: _bwd accumulates the weight
 * gradients (a scatter-add over the ids). */
void rt_bert_emb_fwd(const rt_tf *L, const float *w, const int32_t *ids, const int32_t *types,
                     float *y, float *save, int64_t B, int64_t T);
void rt_bert_emb_bwd(const rt_tf *L, const float *w, float *g, const int32_t *ids,
                     const int32_t *types, const float *save, const float *dy, float *work,
                     int64_t B, int64_t T);
void rt_gpt2_emb_fwd(const rt_tf *L, const float *w, const int32_t *ids, float *y,
                     int64_t B, int64_t T);
void rt_gpt2_emb_bwd(const rt_tf *L, float *g, const int32_t *ids, const float *dy,
                     int64_t B, int64_t T);

/* ---- The Llama family (rt_llama.c; docs/transformers.md) ----
 *   llama_embeddings  embed_tokens.weight [vocab, d]  (no positions: rotary)
 *   llama_block       input_layernorm.weight [d], self_attn.q_proj.weight
 *                     [d, d], self_attn.k_proj.weight [kvw, d], self_attn
 *                     .v_proj.weight [kvw, d], (with qkv_bias: q_proj.bias
 *                     [d], k_proj.bias [kvw], v_proj.bias [kvw]),
 *                     self_attn.o_proj.weight [d, d], post_attention_layernorm
 *                     .weight [d], mlp.gate_proj.weight [ffn, d], mlp.up_proj
 *                     .weight [ffn, d], mlp.down_proj.weight [d, ffn]
 *                     (Linear: [out, in]; kvw = kv_heads·d/heads, so q, k, v
 *                     are one [d + 2 kvw, d] matrix and gate, up one
 *                     [2 ffn, d])
 * llama_block: pre-RMSNorm causal decoder layer (LlamaDecoderLayer,
 * Qwen2DecoderLayer): h1 = x + o_proj(attn(rope(q), rope(k), v)) with
 * q, k, v of input_layernorm(x); y = h1 + down(silu(gate(h2))·up(h2)),
 * h2 = post_attention_layernorm(h1).  Rotary embedding in transformers'
 * rotate-half convention, inv_freq[i] = 1/theta^(2i/dh) (dh = d/heads)
 * with Llama 3's scaling, position ids 0 .. T-1 (pos0 .. with a cache);
 * query head j reads key/value head j / (heads/kv_heads).  Buffers as
 * for the other blocks (rt_llama_block_save / _stash / _work of
 * rt_tf_sizes.h), the same contract: _bwd with g NULL and a stash is
 * zero-bubble's B, _wgt its W.  The mask (NULL: none) hides padded keys
 * as gpt2_block's does. */
void rt_llama_block_fwd(const rt_tf *L, const float *w, const float *x, const int32_t *mask,
                        float *y, float *save, float *work, int64_t B, int64_t T);
void rt_llama_block_bwd(const rt_tf *L, const float *w, float *g, const float *x,
                        const float *save, const float *dy, float *dx, float *stash,
                        float *work, int64_t B, int64_t T);
void rt_llama_block_wgt(const rt_tf *L, float *g, const float *x, const float *save,
                        const float *stash, float *work, int64_t B, int64_t T);
/* The key/value cache on a group's packed rows, as rt_gpt2_block_fwd_kv's:
 * kc, vc [rows, cap, kvw] (keys stored rotated); work as the compiler
 * plans it for generation (rt_llama_kv_work at the longest prompt, one
 * slot's scores at a time).  rt_llama_emb_fwd_rows: the packed tokens'
 * rows of the table. */
void rt_llama_block_fwd_kv(const rt_tf *L, const float *w, const float *x, float *y,
                           void *kc, void *vc, int64_t cap, float *work,
                           const rt_gen_rows *g);
void rt_llama_emb_fwd_rows(const rt_tf *L, const float *w, const int32_t *ids, float *y,
                           const rt_gen_rows *g);
/* The token table's rows (pos0 unused: positions are the blocks'). */
void rt_llama_emb_fwd(const rt_tf *L, const float *w, const int32_t *ids, float *y,
                      int64_t B, int64_t T);
void rt_llama_emb_fwd_at(const rt_tf *L, const float *w, const int32_t *ids, float *y,
                         int64_t B, int64_t T, int64_t pos0);
void rt_llama_emb_bwd(const rt_tf *L, float *g, const int32_t *ids, const float *dy,
                      int64_t B, int64_t T);
/* The rotary frequencies inv_freq[0 .. dh/2) of a llama_block as
 * transformers computes them in float32 (Llama 3's scaling included). */
void rt_llama_inv_freq(const rt_tf *L, float *inv_freq);

/* RMSNorm over the last dimension (LlamaRMSNorm, in f32): y = w ·
 * (x · rstd), rstd = 1/sqrt(mean(x²) + eps) saved per row ([rows]). */
void rt_rmsnorm_fwd(const float *x, const float *w, float *y, float *rstd, int64_t rows,
                    int64_t d, double eps);
void rt_rmsnorm_bwd_data(const float *x, const float *w, const float *rstd, const float *dy,
                         float *dx, int64_t rows, int64_t d);
void rt_rmsnorm_bwd_weight(const float *x, const float *rstd, const float *dy, float *dw,
                           int64_t rows, int64_t d);

/* Mean over the positions whose mask is 1 (sentence-transformers' mean
 * pooling: sum(x·mask) / max(sum(mask), 1e-9)): x [B, T, d] -> y [B, d]. */
void rt_mean_pool_fwd(const float *x, const int32_t *mask, float *y, int64_t B, int64_t T,
                      int64_t d);
void rt_mean_pool_bwd(const int32_t *mask, const float *dy, float *dx, int64_t B, int64_t T,
                      int64_t d);
/* y = x / max(||x||₂, 1e-12) per row (torch.nn.functional.normalize). */
void rt_l2_normalize_fwd(const float *x, float *y, int64_t rows, int64_t d);
void rt_l2_normalize_bwd(const float *x, const float *dy, float *dx, int64_t rows, int64_t d);

/* gelu's tanh form (nn.GELU(approximate='tanh'), GPT-2's gelu_new). */
void rt_gelu_tanh_fwd(const float *x, float *y, int64_t n);
void rt_gelu_tanh_bwd(const float *x, const float *dy, float *dx, int64_t n);

/* Next-token cross-entropy: logits [B, T, vocab]; position t < T-1 is
 * scored against ids[t+1]; adds the micro-batch's loss sum to the rank's
 * loss (rt_loss_add) and writes dlogits = scale · d(sum)/dlogits (zero at
 * t = T-1; the emitter passes scale = 1 / (global batch · (T-1))).
 * dlogits NULL: the loss only. */
void rt_loss_next_token(rt_ctx *c, const float *logits, const int32_t *ids, float *dlogits,
                        int64_t B, int64_t T, int64_t vocab, double scale);

/* ---- Generation (schedule = generate): GPT-2 with a key/value cache ----
 * A sequence group holds `rows` slots.  In a round each slot runs its own
 * number of new tokens at its own positions (docs/transformers.md,
 * "Continuous batching"): a slot starting a prompt its whole prompt at
 * positions 0 .., a decoding slot one token at the position after its
 * cached ones, an idle slot nothing.  The rows' tokens lie packed in the
 * activations, slot after slot: [ntok, d], slot r's at rows off[r] ..
 * off[r] + n[r] - 1.  Every GEMM runs over all ntok rows at once; only
 * attention and the cache's stores go slot by slot (each slot has its own
 * cache and length).  The arrays are host memory on both runtimes. */
/* Each gpt2_block keeps, per group, a key cache kc and a value cache vc of
 * [rows, cap, d] values (floats, or 16-bit ones where rt_tf's kv_prec says
 * so: attention then reads a slot's through f32 scratch in work) (slot r's position j at (r·cap + j)·d, heads side
 * by side as in c_attn's output): _fwd_kv writes the keys and values of
 * slot r's positions pos[r] .. pos[r]+n[r]-1 there and lets each query
 * attend to every cached position of its slot up to its own, so no past
 * token is recomputed.  pos[r] + n[r] <= cap.  work holds
 * rt_gpt2_kv_rows_work(g, ...) floats (rt_tf_sizes.h); x and y are the
 * packed [ntok, d] tokens. */
void rt_gpt2_emb_fwd_rows(const rt_tf *L, const float *w, const int32_t *ids, float *y,
                          const rt_gen_rows *g);
void rt_gpt2_block_fwd_kv(const rt_tf *L, const float *w, const float *x, float *y,
                          void *kc, void *vc, int64_t cap, float *work,
                          const rt_gen_rows *g);
/* The embedding of B samples of T tokens at positions pos0 .. pos0+T-1
 * (rt_gpt2_emb_fwd is pos0 = 0). */
void rt_gpt2_emb_fwd_at(const rt_tf *L, const float *w, const int32_t *ids, float *y,
                        int64_t B, int64_t T, int64_t pos0);
/* x [B, T, d] -> [B, d]: each sample's last position, in place (the head
 * of a generating model scores the last position only). */
void rt_take_last(float *x, int64_t B, int64_t T, int64_t d);
/* The packed tokens [ntok, d] -> [rows, d]: slot r's last new token to row
 * r, in place; an idle slot's row is left as it was (nothing picks it). */
void rt_take_last_rows(float *x, const rt_gen_rows *g, int64_t d);

void rt_copy(void *dst, const void *src, size_t bytes);
/* x[0..n) to the nearest value of the program's 16-bit dtype (ties to
 * even), in place; nothing for f32 (rt_math.h's rt_round_bf16/_f16). */
void rt_round(rt_ctx *c, float *x, int64_t n);
void rt_zero(void *dst, size_t bytes);

#ifdef __cplusplus
}
#endif

#endif /* PIPERT_H */
