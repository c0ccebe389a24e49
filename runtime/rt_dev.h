/* rt_dev.h — where the two runtimes differ: libpipert.a computes on the
 * CPU, libpipert_cuda.a on a GPU.
 *
 * The host modules (rt_main, rt_opts, rt_comm, rt_data, rt_weights,
 * rt_trace, the file formats) are compiled into both libraries, the second
 * time with -DRT_CUDA.  Every place where they touch the step's buffers or
 * run the step goes through the functions below:
 *   rt_dev_cpu.c         plain memory: a buffer is its own host view, a step
 *                        is a call of program->step
 *   cuda/rt_dev_cuda.cu  device memory, the rank's streams, the transport,
 *                        CUDA graphs, device timing of each action
 * Functions that return a status return 0 or an exit status (RT_EXIT_*)
 * after leaving the reason with rt_defer, for rt_agree_report.
 */
#ifndef PIPERT_DEV_H
#define PIPERT_DEV_H

#include <stddef.h>
#include <stdint.h>

#include "pipert.h"

#ifdef __cplusplus
extern "C" {
#endif

/* After options and MPI, before any buffer: the CUDA runtime picks the
 * rank's device, creates its streams and cuBLAS handle; says 'no CUDA
 * device' when none is visible.  CPU: nothing. */
int rt_dev_init(rt_ctx *c);

/* Before the step's buffers are allocated: room for `bytes` of them in one
 * piece (the compiler's predicted peak).  CPU: one mapping of their own,
 * packed as the memory plan counts them, so that the host's peak resident
 * memory measures them and not how the heap's pages fall; an allocation
 * that does not fit comes from the heap as before.  CUDA: nothing. */
int rt_dev_reserve(rt_ctx *c, size_t bytes);

/* Memory for the step's buffers (weights, gradients, optimizer state,
 * arena): zeroed; NULL if there is none. */
void *rt_dev_alloc(rt_ctx *c, size_t bytes);
void rt_dev_free(rt_ctx *c, void *buf);

/* Host access to `bytes` of a step buffer.  rt_dev_map returns a host
 * pointer holding the buffer's contents (RT_MAP_READ) or to be filled
 * (RT_MAP_WRITE); rt_dev_unmap writes it back (RT_MAP_WRITE) and releases
 * it.  CPU: the buffer itself, no copy.  NULL if out of memory. */
enum { RT_MAP_READ = 1, RT_MAP_WRITE = 2 };
void *rt_dev_map(rt_ctx *c, void *buf, size_t bytes, int mode);
void rt_dev_unmap(rt_ctx *c, void *buf, void *host, size_t bytes, int mode);

/* Generation's greedy pick on the device, where a captured decode round
 * needs it (CUDA with graphs): 1 if it picked group g's tokens from logits
 * into tok (device memory), 0 if the caller picks on the host.  After each
 * round, rt_dev_gen_collect copies the round's picked tokens of the whole
 * replica batch into tokens ([rows]) and returns 1, or returns 0 if the
 * host picked them. */
int rt_dev_gen_pick(rt_ctx *c, int g, const float *logits, int32_t *tok);
int rt_dev_gen_collect(rt_ctx *c, int32_t *tokens);

/* 0 while the CUDA runtime runs the step only to learn its messages (its
 * dry run): host code called from the step then does nothing.  CPU: 1. */
int rt_dev_computing(rt_ctx *c);

/* After weights and data, before the first step; collective.  CUDA: the
 * data is uploaded, the step is run once without computing to learn its
 * messages, the transport is set up and CUDA graphs are decided. */
int rt_dev_start(rt_ctx *c);

/* Runs step t of the program and returns when its work is done. */
void rt_dev_step(rt_ctx *c, int t);
/* Runs program->eval_step on evaluation batch b (c->evaluating set: the
 * data accessors read that batch) and returns when its work is done, its
 * loss added to c->loss_sum (rt_eval.c). */
void rt_dev_eval(rt_ctx *c, int b);

/* The device memory the model's buffers took, in bytes; -1 where the
 * host's peak resident memory is the measure (CPU). */
double rt_dev_peak_bytes(rt_ctx *c);

/* The backend's lines of the run summary, printed by the reporter. */
void rt_dev_summary(rt_ctx *c);

/* Releases what rt_dev_init and rt_dev_start made. */
void rt_dev_fini(rt_ctx *c);

/* rt_begin (end = 0) and rt_end (end = 1) call this: the CUDA runtime
 * times each action on the device. */
#ifdef RT_CUDA
void rt_dev_mark(rt_ctx *c, int end);
#else
#define rt_dev_mark(c, end) ((void)0)
#endif

/* Math on host memory in host code (the synthetic targets): the CPU
 * kernels.  In libpipert_cuda.a the kernels of pipert.h take device
 * pointers, and the CPU ones are built a second time as rt_cpu_*
 * (cuda/rt_cpu_kernels.c). */
#ifdef RT_CUDA
void rt_cpu_linear_fwd(const float *x, const float *w, const float *b, float *y,
                       int64_t rows, int64_t in, int64_t out);
#define rt_host_linear_fwd rt_cpu_linear_fwd
#else
#define rt_host_linear_fwd rt_linear_fwd
#endif

/* ---- Transformer primitives ----
 * rt_tf.c composes pipert.h's transformer layers once, for both
 * libraries, out of the kernels of pipert.h (rt_gemm, rt_linear_*,
 * rt_layernorm_*, rt_softmax_*, gelu, rt_copy) and the pieces below, which
 * each device writes in its own terms: rt_tf_cpu.c in loops over host
 * memory, cuda/rt_tf.cu as kernels enqueued on the compute stream.
 * Pointers are the device's (host memory on the CPU). */

/* Around a layer's composition: 0 if there is nothing to compute (the
 * CUDA runtime's dry run), else 1, and the layer's inner GEMMs stay f32
 * until rt_dev_tf_end (CUDA's 16-bit programs).  CPU: 1, nothing. */
int rt_dev_tf_begin(void);
void rt_dev_tf_end(void);

/* y[i] += x[i] for i < n: the residual adds. */
void rt_dev_tf_add(float *y, const float *x, int64_t n);

/* Conv1D's bias: every row of y [rows, out] set to b [out]. */
void rt_dev_tf_bias_rows(const float *b, float *y, int64_t rows, int64_t out);

/* db[j] += Σ_r dy[r, j], the rows added in order (Conv1D's bias gradient). */
void rt_dev_tf_colsum_acc(const float *dy, float *db, int64_t rows, int64_t out);

/* C = alpha·op(A)·op(B) (beta 0) for every sample i < B and head hh < h:
 * a sample's matrices s? floats after the previous sample's, a head's h?
 * after the previous head's.  Attention's products. */
void rt_dev_tf_heads_gemm(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha,
                          const float *a, int64_t lda, int64_t sa, int64_t ha,
                          const float *b, int64_t ldb, int64_t sb, int64_t hb,
                          float *c, int64_t ldc, int64_t sc, int64_t hc, int64_t B, int64_t h);

/* Attention's masks on scores s [B, h, T, Lk]: query i at position
 * pos0 + i (or *dpos + i, dpos from rt_dev_tf_kv_pos), key j at j; mask
 * [B, Lk] the padding (NULL: none), causal hides later keys. */
void rt_dev_tf_mask_scores(float *s, const int32_t *mask, int causal, int64_t B, int64_t h,
                           int64_t T, int64_t Lk, int64_t pos0, const int64_t *dpos);

/* Zeroes the gradient of the scores the causal mask replaced: ds's rows
 * of T keys, row r's query at r % T. */
void rt_dev_tf_causal_zero(float *ds, int64_t rows, int64_t T);

/* One query per sample (T = 1) where the device has a faster way than the
 * GEMMs: 1 if it computed s, p and ctx as the general attention does, 0
 * if the caller runs the general one.  CUDA: 0. */
int rt_dev_tf_attend_one(const float *q, int64_t sq, const float *k, const float *v,
                         int64_t ldk, int64_t sk, const int32_t *mask, int causal, float *s,
                         float *p, float *ctx, int64_t B, int64_t h, int64_t dh, int64_t Lk,
                         int64_t pos0, float scale);

/* The key/value cache: rt_dev_tf_kv_pos checks that positions pos0 ..
 * pos0+T-1 fit a cache of cap (CUDA) and returns the queries' first
 * position as a device scalar where a captured decode round reads it
 * there (the round then attends over the whole cache), else NULL.
 * rt_dev_tf_kv_store copies the keys and values of qkv's B·T rows
 * (columns d .. 3d) into kc, vc [B, cap, d] at those positions. */
const int64_t *rt_dev_tf_kv_pos(int64_t cap, int64_t T, int64_t pos0);
void rt_dev_tf_kv_store(const float *qkv, void *kc, void *vc, int64_t cap, int64_t B,
                        int64_t T, int64_t pos0, const int64_t *dpos, int64_t d, int prec);
/* The caches' values: floats with prec RT_PREC_F32, else the 16 bits of
 * a bf16 / f16 value (the stores round to nearest even: a block's keys and
 * values are f32 internals, off that grid).  rt_dev_kv_unpack reads n of
 * them back as floats into x. */
void rt_dev_kv_unpack(const uint16_t *c, float *x, int64_t n, int prec);

/* ---- Llama primitives ----
 * rt_llama.c composes llama_block, for both libraries, from pipert.h's
 * kernels, the transformer primitives above and these: rt_llama_cpu.c's
 * loops, cuda/rt_llama.cu's kernels. */

/* The rotary embedding (transformers' rotate-half), in place on B·T rows
 * of x, ld floats apart: nh heads of dh = L->d / L->heads features from
 * column 0; row b·T + t is at position pos0 + t (*dpos + t where
 * rt_dev_tf_kv_pos gave dpos).  Pair (i, i + dh/2) of a head turns by
 * angle = f32(inv_freq[i] · position), inv_freq of rt_llama_inv_freq(L);
 * inverse turns it back (the transpose: backward's). */
void rt_dev_llama_rope(const rt_tf *L, float *x, int64_t ld, int64_t nh, int64_t B,
                       int64_t T, int64_t pos0, const int64_t *dpos, int inverse);

/* SwiGLU on gu [rows, 2f] (gate | up): a[r, j] = silu(gate) · up; and its
 * gradient dgu [rows, 2f] from da [rows, f]. */
void rt_dev_llama_swiglu_fwd(const float *gu, float *a, int64_t rows, int64_t f);
void rt_dev_llama_swiglu_bwd(const float *gu, const float *da, float *dgu, int64_t rows,
                             int64_t f);

/* rt_dev_tf_kv_store for llama_block: the B·T rows of qkv (ld floats
 * apart; keys at column ck, values at cv, kvw wide) into kc, vc
 * [B, cap, kvw] at positions pos0 .. pos0+T-1. */
void rt_dev_llama_kv_store(const float *qkv, int64_t ld, int64_t ck, int64_t cv, void *kc,
                           void *vc, int64_t cap, int64_t B, int64_t T, int64_t pos0,
                           const int64_t *dpos, int64_t kvw, int prec);

/* ---- Optimizer primitives ----
 * rt_optim.c composes the optimizer step once, for both libraries: the
 * learning rate of the step, the clipping factor and the update's other
 * scalars are computed on the host in double (PyTorch's Python floats) and
 * rounded to float32 here; the pieces below are the elementwise work,
 * rt_optim_cpu.c's loops and cuda/rt_kernels.cu's kernels. */

/* One update's scalars, as float32 values the way torch.optim applies them. */
typedef struct rt_osc {
	int kind;                   /* RT_OPTIM_SGD, _ADAM, _ADAMW */
	int nesterov;               /* sgd */
	int l2;                     /* sgd, adam: weight decay added to the gradient */
	int clipped;                /* gradients scaled by clip first */
	float clip;                 /* X/(G + 1e-6) where that is below 1 */
	float lr;                   /* sgd: the step's learning rate */
	float momentum;             /* sgd; 0: no momentum buffer */
	float wd;                   /* sgd, adam: the L2 coefficient */
	float decay;                /* adamw: w *= 1 - lr·wd first */
	float step_size, bc2;       /* adam: lr / (1 - β1^t), sqrt(1 - β2^t) */
	float omb1, b2, omb2, eps;  /* adam: 1 - β1, β2, 1 - β2, eps */
} rt_osc;

/* Updates floats [off, off + n) of the weights the optimizer owns (the
 * master weights of a 16-bit program, else c->w) from the same range of
 * c->g and the optimizer's buffers.  decay 0: this range has no weight
 * decay (decay = matrices' biases and norm weights). */
void rt_dev_optim_update(rt_ctx *c, const rt_osc *s, int decay, int64_t off, int64_t n);

/* A range of the weight (and gradient) buffer: floats [off, off + len). */
typedef struct rt_orange {
	int64_t off, len;
	int decay;                  /* weight decay applies to it */
} rt_orange;

/* Σ g[i]² in double over the gradient ranges r[0..n), added in an order
 * that depends only on the ranges (the same bits every run, for a resume's
 * bit-for-bit promise).  Returns it on the host. */
double rt_dev_optim_sumsq(rt_ctx *c, const rt_orange *r, int n);

/* After the update: a 16-bit program's weights := the master weights
 * rounded; the gradients zeroed for the next step's accumulation. */
void rt_dev_optim_finish(rt_ctx *c);

/* The tied parameters' gradient sums (rt_tied_sum) on the device's buffers. */
void rt_dev_tied_sum(rt_ctx *c);

#ifdef __cplusplus
}
#endif

#endif /* PIPERT_DEV_H */
