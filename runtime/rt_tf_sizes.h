/* rt_tf_sizes.h — per-sample buffer sizes of the transformer kernels.
 *
 * The one source of truth shared by the compiler (which plans these
 * buffers in each rank's arena at the declared maximum sequence length)
 * and the runtime (whose kernels lay their saved activations, stashed
 * gradients and scratch out inside them at the run's length).  Sizes are
 * in floats per sample of T positions; a kernel called on B samples gets
 * B times as much and may lay it out as it likes.  Plain C: no runtime
 * dependencies, so the compiler includes it as is.
 *
 * What a block keeps (bert_layer and gpt2_block alike, d wide, h heads,
 * f the feed-forward width): q, k, v (3Td), the attention probabilities
 * (hT²), the context (Td), both layernorms' inputs and outputs (4Td) with
 * their mean and rstd (4T), the feed-forward pre- and post-activation (2Tf).
 */
#ifndef PIPERT_TF_SIZES_H
#define PIPERT_TF_SIZES_H

#include <stdint.h>

static inline int64_t rt_tf_block_save(int64_t T, int64_t d, int64_t h, int64_t f)
{
	return 8 * T * d + h * T * T + 2 * T * f + 4 * T;
}

static inline int64_t rt_tf_block_stash(int64_t T, int64_t d, int64_t h, int64_t f)
{
	(void)h;
	return 8 * T * d + 2 * T * f;
}

static inline int64_t rt_tf_block_work(int64_t T, int64_t d, int64_t h, int64_t f)
{
	return 4 * T * d + 2 * h * T * T + 2 * T * f;
}

/* gpt2_block with a key/value cache (rt_gpt2_block_fwd_kv) on a group's
 * packed tokens: four [d] and two [f] slots per token, and the scores and
 * probabilities of one sequence slot at a time (heads × its new tokens ×
 * its keys: at most T·T in a prefill of T, cap in a decode step).  Per
 * sample, T the longest prompt and cap the cached positions; a group of B
 * gets B times as much, more than any of its rounds needs. */
static inline int64_t rt_gpt2_kv_work(int64_t T, int64_t cap, int64_t d, int64_t h, int64_t f)
{
	int64_t sq = T * T > cap ? T * T : cap;
	return 4 * T * d + 2 * T * f + 2 * h * sq;
}

/* A 16-bit key/value cache (bf16 / f16 program): the f32 copies of one
 * slot's keys and values that attention reads (cap positions of the layer's
 * kv width, kvw), past rt_gpt2_kv_work's or rt_llama_kv_work's scratch. */
static inline int64_t rt_kv16_work(int64_t cap, int64_t kvw)
{
	return 2 * cap * kvw;
}

/* Generation's descriptor of a group's rows (pipert.h's rt_gen_rows) as
 * it travels at the end of each activation message's header: int32
 * values [flags, ntok, 0, 0, n[rows], pos[rows], req[rows], gen[rows]],
 * in 64-byte pieces like the header's other parts. */
static inline int64_t rt_gen_hdr_bytes(int64_t rows)
{
	return (16 + 16 * rows + 63) / 64 * 64;
}

/* llama_block (d wide, h query heads, hk key/value heads, f the SwiGLU
 * width; kvw = hk·d/h the keys' and values' width, qw = d + 2 kvw): it
 * saves rmsnorm 1's output (Td) and rstd (T), q k v with q and k rotated
 * (T qw), the attention probabilities (hT²), the context, the residual h1
 * and rmsnorm 2's output (3Td) with its rstd (T), gate and up before the
 * activation (2Tf) and silu(gate)·up (Tf). */
static inline int64_t rt_llama_qw(int64_t d, int64_t h, int64_t hk)
{
	return d + 2 * hk * (d / h);
}

static inline int64_t rt_llama_block_save(int64_t T, int64_t d, int64_t h, int64_t hk,
                                          int64_t f)
{
	return 4 * T * d + T * rt_llama_qw(d, h, hk) + h * T * T + 3 * T * f + 2 * T;
}

/* The stash: the output gradients of every linear and rmsnorm (dy, dh1,
 * dh2, dh0 [Td each], dqkv [T qw], dgate|dup [2Tf]). */
static inline int64_t rt_llama_block_stash(int64_t T, int64_t d, int64_t h, int64_t hk,
                                           int64_t f)
{
	return 4 * T * d + T * rt_llama_qw(d, h, hk) + 2 * T * f;
}

/* Scratch: four [T, d] slots, one [T, qw], two [h, T, Lk] (scores and
 * probabilities, or their gradients), one [T, 2f] and one [T, f]; Lk = T
 * but with a key/value cache (rt_llama_kv_work). */
static inline int64_t rt_llama_kv_work(int64_t T, int64_t Lk, int64_t d, int64_t h,
                                       int64_t hk, int64_t f)
{
	return 4 * T * d + T * rt_llama_qw(d, h, hk) + 2 * h * T * Lk + 3 * T * f;
}

static inline int64_t rt_llama_block_work(int64_t T, int64_t d, int64_t h, int64_t hk,
                                          int64_t f)
{
	return rt_llama_kv_work(T, T, d, h, hk, f);
}

/* bert_embeddings: the sum before its layernorm, with mean and rstd. */
static inline int64_t rt_bert_emb_save(int64_t T, int64_t d)
{
	return T * d + 2 * T;
}

static inline int64_t rt_bert_emb_work(int64_t T, int64_t d)
{
	return 2 * T * d;
}

#endif /* PIPERT_TF_SIZES_H */
