/* rt_tf.cu — pipert.h's transformer layers and rt_gemm on the GPU.
 *
 * The blocks (BertLayer, GPT2Block, the cached GPT-2 forward) are composed
 * once, in rt_tf.c, for both runtimes; this file holds what the GPU does in
 * its own terms: rt_gemm (cuBLAS, strided-batched, by
 * rt_cu_gemm_rm_batched, the one row-major mapping), rt_dev.h's
 * transformer primitives (residual adds, Conv1D's bias rows and column
 * sums, attention's batched products and masks, the cache's stores), and
 * the layers that are kernels of their own: embeddings, rt_take_last,
 * pooling, L2 normalisation, tanh gelu, the next-token loss.
 *
 * Every function enqueues on the compute stream (rt_cu.stream) and returns
 * at once: nothing waits for the device, nothing is allocated (work is
 * given), so a step of them can be captured as one CUDA graph.  Tensor
 * pointers are device pointers; the rt_tf description L is host memory (the
 * emitted program's static data).  While rt_cu.dry is set nothing is done.
 *
 * Element-wise math is rt_math.h's (shared with rt_tf_cpu.c), compiled
 * with --fmad=false; column sums and scatters add rows in the CPU's order,
 * so bias gradients and embedding gradients are the CPU's bits given the
 * same inputs; row reductions accumulate in double, as the CPU does.  What
 * differs from the CPU: the GEMMs' summation order (cuBLAS), the order of
 * the double row sums, and tanhf/erff/expf of the CUDA math library.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>

#include "rt_cuda.h"
#include "rt_math.h"
#include "rt_launch.cuh"
#include "rt_reduce.cuh"
#include "rt_scatter.cuh"

/* Block reductions: rt_reduce.cuh, rt_kernels.cu's too, so that a row
 * reduced here (the fused embedding layernorm) gives the bits
 * rt_layernorm_fwd gives. */

/* ---- GEMM ---- */

extern "C" void rt_gemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                        const float *a, int64_t lda, int64_t sa, const float *b, int64_t ldb,
                        int64_t sb, float beta, float *c, int64_t ldc, int64_t sc, int64_t batch)
{
	if (rt_cu.dry || m <= 0 || n <= 0 || batch <= 0)
		return;
	rt_cu_gemm_rm_batched(trans_a, trans_b, m, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c,
	                      ldc, sc, batch);
}

/* ---- Transformer primitives (rt_dev.h) ----
 * rt_tf.c composes the blocks out of these and the kernels of pipert.h;
 * each enqueues on the compute stream. */

/* A 16-bit program's TF32 (rt_cu.tf32_16) is exact only on its layers'
 * 16-bit inputs, so the inner GEMMs of a composed layer stay f32: rt_cu.inner
 * counts the layers begun and not ended. */
extern "C" int rt_dev_tf_begin(void)
{
	if (rt_cu.dry)
		return 0;
	rt_cu.inner++;
	return 1;
}

extern "C" void rt_dev_tf_end(void)
{
	rt_cu.inner--;
}

__global__ static void k_add_to(float *__restrict__ y, const float *__restrict__ x, int64_t n)
{
	GRID_STRIDE(i, n)
		y[i] += x[i];
}

extern "C" void rt_dev_tf_add(float *y, const float *x, int64_t n)
{
	if (n <= 0)
		return;
	k_add_to<<<grid_for(n), TPB, 0, rt_cu.stream>>>(y, x, n);
	RT_CU_LAUNCHED("a transformer layer (residual add)");
}

__global__ static void k_bias_rows(const float *__restrict__ b, float *__restrict__ y,
                                   int64_t rows, int64_t out)
{
	GRID_STRIDE(i, rows * out)
		y[i] = b[i % out];
}

extern "C" void rt_dev_tf_bias_rows(const float *b, float *y, int64_t rows, int64_t out)
{
	if (rows <= 0 || out <= 0)
		return;
	k_bias_rows<<<grid_for(rows * out), TPB, 0, rt_cu.stream>>>(b, y, rows, out);
	RT_CU_LAUNCHED("a GPT-2 block (Conv1D bias)");
}

/* db[j] += Σ_r dy[r, j], rows in order (rt_tf_cpu.c's order: the CPU's bits). */
__global__ static void k_colsum_acc(const float *__restrict__ dy, float *__restrict__ db,
                                    int64_t rows, int64_t out)
{
	GRID_STRIDE(j, out) {
		float acc = db[j];
		for (int64_t r = 0; r < rows; r++)
			acc += dy[r * out + j];
		db[j] = acc;
	}
}

extern "C" void rt_dev_tf_colsum_acc(const float *dy, float *db, int64_t rows, int64_t out)
{
	if (rows <= 0 || out <= 0)
		return;
	k_colsum_acc<<<grid_for(out), TPB, 0, rt_cu.stream>>>(dy, db, rows, out);
	RT_CU_LAUNCHED("a GPT-2 block (Conv1D bias gradient)");
}

/* Per sample over its heads, or per head over the samples, whichever makes
 * fewer strided-batched calls (the matrices of one call must be one stride
 * apart, and a sample's heads and a head's samples are, but not both). */
extern "C" void rt_dev_tf_heads_gemm(int ta, int tb, int64_t m, int64_t n, int64_t k,
                                     float alpha, const float *a, int64_t lda, int64_t sa,
                                     int64_t ha, const float *b, int64_t ldb, int64_t sb,
                                     int64_t hb, float *c, int64_t ldc, int64_t sc, int64_t hc,
                                     int64_t B, int64_t h)
{
	if (B <= h)
		for (int64_t i = 0; i < B; i++)
			rt_gemm(ta, tb, m, n, k, alpha, a + i * sa, lda, ha, b + i * sb, ldb, hb, 0.0f,
			        c + i * sc, ldc, hc, h);
	else
		for (int64_t i = 0; i < h; i++)
			rt_gemm(ta, tb, m, n, k, alpha, a + i * ha, lda, sa, b + i * hb, ldb, sb, 0.0f,
			        c + i * hc, ldc, sc, B);
}

/* Scores [B, h, T, Lk]: query i at position pos0 + i, key j at position j
 * (rt_tf_cpu.c's mask_scores). */
__global__ static void k_mask_scores(float *__restrict__ s, const int32_t *__restrict__ mask,
                                     int causal, int64_t h, int64_t T, int64_t Lk, int64_t pos0,
                                     const int64_t *__restrict__ dpos, int64_t n)
{
	GRID_STRIDE(i, n) {
		int64_t row = i / Lk, j = i - row * Lk, b = row / (h * T);
		int64_t qi = (dpos ? *dpos : pos0) + row % T;
		s[i] = rt_attn_mask_hd(s[i], causal && j > qi, mask && !mask[b * Lk + j]);
	}
}

extern "C" void rt_dev_tf_mask_scores(float *s, const int32_t *mask, int causal, int64_t B,
                                      int64_t h, int64_t T, int64_t Lk, int64_t pos0,
                                      const int64_t *dpos)
{
	int64_t n = B * h * T * Lk;
	if ((!mask && !causal) || n <= 0)
		return;
	k_mask_scores<<<grid_for(n), TPB, 0, rt_cu.stream>>>(s, mask, causal, h, T, Lk, pos0, dpos,
	                                                      n);
	RT_CU_LAUNCHED("attention (masks)");
}

__global__ static void k_causal_zero(float *__restrict__ ds, int64_t T, int64_t n)
{
	GRID_STRIDE(i, n) {
		int64_t row = i / T, j = i - row * T;
		if (j > row % T)
			ds[i] = 0.0f;
	}
}

extern "C" void rt_dev_tf_causal_zero(float *ds, int64_t rows, int64_t T)
{
	int64_t n = rows * T;
	if (n <= 0)
		return;
	k_causal_zero<<<grid_for(n), TPB, 0, rt_cu.stream>>>(ds, T, n);
	RT_CU_LAUNCHED("attention (causal gradient)");
}

/* A decode step's one query goes through the GEMMs as any other. */
extern "C" int rt_dev_tf_attend_one(const float *q, int64_t sq, const float *k, const float *v,
                                    int64_t ldk, int64_t sk, const int32_t *mask, int causal,
                                    float *s, float *p, float *ctx, int64_t B, int64_t h,
                                    int64_t dh, int64_t Lk, int64_t pos0, float scale)
{
	(void)q, (void)sq, (void)k, (void)v, (void)ldk, (void)sk, (void)mask, (void)causal;
	(void)s, (void)p, (void)ctx, (void)B, (void)h, (void)dh, (void)Lk, (void)pos0, (void)scale;
	return 0;
}

/* A write past cap lands in the next sample's cache, or past the buffer:
 * refuse it, dry run included, so the first step says so.  A captured
 * decode round reads its position from the device (rt_cuda.h, gen_graph). */
extern "C" const int64_t *rt_dev_tf_kv_pos(int64_t cap, int64_t T, int64_t pos0)
{
	if (pos0 < 0 || pos0 + T > cap)
		rt_cu_fail("rt_gpt2_block_fwd_kv: positions %lld .. %lld do not fit a cache of %lld",
		           (long long)pos0, (long long)(pos0 + T - 1), (long long)cap);
	return rt_cu.gen_graph && T == 1 ? rt_cu.d_gen_pos : NULL;
}

/* One value into a cache at value at (rt_dev.h: floats, or the 16 bits
 * of the program's dtype). */
__device__ __forceinline__ void kv_put1(void *c, int64_t at, float x, int prec)
{
	if (prec == RT_PREC_F32)
		((float *)c)[at] = x;
	else
		((uint16_t *)c)[at] = prec == RT_PREC_BF16 ? rt_bf16_bits(x) : rt_f16_bits(x);
}

/* The keys and values of qkv's n = B·T rows (columns d .. 3d) into the
 * caches at positions pos0 .. pos0+T-1 of their samples. */
__global__ static void k_kv_store(const float *__restrict__ qkv, void *kc, void *vc,
                                  int64_t cap, int64_t T, int64_t pos0,
                                  const int64_t *__restrict__ dpos, int64_t d, int64_t n,
                                  int prec)
{
	GRID_STRIDE(i, n * d) {
		int64_t bt = i / d, j = i - bt * d, b = bt / T, t = bt - b * T;
		int64_t at = (b * cap + (dpos ? *dpos : pos0) + t) * d + j;
		kv_put1(kc, at, qkv[bt * 3 * d + d + j], prec);
		kv_put1(vc, at, qkv[bt * 3 * d + 2 * d + j], prec);
	}
}

extern "C" void rt_dev_tf_kv_store(const float *qkv, void *kc, void *vc, int64_t cap,
                                   int64_t B, int64_t T, int64_t pos0, const int64_t *dpos,
                                   int64_t d, int prec)
{
	int64_t n = B * T;
	if (n <= 0 || d <= 0)
		return;
	k_kv_store<<<grid_for(n * d), TPB, 0, rt_cu.stream>>>(qkv, kc, vc, cap, T, pos0, dpos, d, n,
	                                                      prec);
	RT_CU_LAUNCHED("rt_gpt2_block_fwd_kv (cache)");
}

/* A 16-bit cache's values as floats, for attention's GEMMs. */
__global__ static void k_kv_unpack(const uint16_t *__restrict__ c, float *__restrict__ x,
                                   int64_t n, int prec)
{
	GRID_STRIDE(i, n)
		x[i] = prec == RT_PREC_BF16 ? rt_bf16_value(c[i]) : rt_f16_value(c[i]);
}

extern "C" void rt_dev_kv_unpack(const uint16_t *c, float *x, int64_t n, int prec)
{
	if (rt_cu.dry || n <= 0)
		return;
	k_kv_unpack<<<grid_for(n), TPB, 0, rt_cu.stream>>>(c, x, n, prec);
	RT_CU_LAUNCHED("a key/value cache (16-bit read)");
}

/* rt_take_last in place, by one block.  Rows move down only: row b's
 * source is row b·T + T-1.  So with T > 1 the rows b of [lo, hi), hi =
 * lo·T + T-1 (at most B), read rows at or past hi, none of them one the
 * group writes, nor one an earlier group wrote (all below lo); the groups
 * go in order, a barrier apart, and grow about T-fold, so a few barriers
 * cover any B. */
__global__ static void k_take_last(float *x, int64_t B, int64_t T, int64_t d)
{
	for (int64_t lo = 0; lo < B;) {
		int64_t hi = lo * T + T - 1 < B ? lo * T + T - 1 : B;
		for (int64_t i = threadIdx.x; i < (hi - lo) * d; i += blockDim.x) {
			int64_t b = lo + i / d, j = i - (i / d) * d;
			x[b * d + j] = x[(b * T + T - 1) * d + j];
		}
		__syncthreads();
		lo = hi;
	}
}

extern "C" void rt_take_last(float *x, int64_t B, int64_t T, int64_t d)
{
	if (rt_cu.dry || B <= 0 || T <= 1 || d <= 0)
		return;
	k_take_last<<<1, 1024, 0, rt_cu.stream>>>(x, B, T, d);
	RT_CU_LAUNCHED("rt_take_last");
}

/* ---- Embeddings ----
 * As rt_tf_cpu.c: an id outside its table reads nothing (the row comes out
 * NaN) and backward skips its row. */

/* Which rows of [B·T] an embedding reads, and the row of each table. */
typedef struct emb_rows {
	const int32_t *ids, *types;     /* types NULL: all 0 */
	int64_t T, vocab, positions, ntypes;
	int64_t pos0;                   /* row bt's position: pos0 + bt % T */
	const int64_t *dpos;            /* or *dpos + bt % T (a captured decode round) */
	int bert;                       /* the token types count (BERT) */
} emb_rows;

static emb_rows emb_rows_of(const rt_tf *L, const int32_t *ids, const int32_t *types,
                            int64_t T, int bert)
{
	emb_rows e;
	e.ids = ids;
	e.types = types;
	e.T = T;
	e.vocab = L->vocab;
	e.positions = L->positions;
	e.ntypes = L->types;
	e.pos0 = 0;
	e.dpos = NULL;
	e.bert = bert;
	return e;
}

enum { EMB_WORD, EMB_POS, EMB_TYPE };

__device__ static int64_t emb_key(const emb_rows &e, int which, int64_t bt)
{
	return which == EMB_WORD ? (int64_t)e.ids[bt]
	     : which == EMB_POS ? (e.dpos ? *e.dpos : e.pos0) + bt % e.T
	     : (e.types ? (int64_t)e.types[bt] : 0);
}

__device__ static bool emb_valid(const emb_rows &e, int64_t bt)
{
	int64_t id = e.ids[bt], ty = e.types ? e.types[bt] : 0;
	int64_t t = (e.dpos ? *e.dpos : e.pos0) + bt % e.T;
	if (id < 0 || id >= e.vocab || t < 0 || t >= e.positions)
		return false;
	return !e.bert || (ty >= 0 && ty < e.ntypes);
}

/* word[ids] + pos[t] (+ type[types]) of row bt, column j: rt_tf_cpu.c's sum. */
__device__ static float emb_value(const emb_rows &e, const float *__restrict__ w, int64_t bt,
                                  int64_t j, int64_t d)
{
	const float *pos = w + e.vocab * d, *type = pos + e.positions * d;
	float v;
	if (!emb_valid(e, bt))
		return NAN;
	v = w[(int64_t)e.ids[bt] * d + j] + pos[((e.dpos ? *e.dpos : e.pos0) + bt % e.T) * d + j];
	if (e.bert)
		v = v + type[(e.types ? (int64_t)e.types[bt] : 0) * d + j];
	return v;
}

__global__ static void k_emb_sum(emb_rows e, const float *__restrict__ w, float *__restrict__ y,
                                 int64_t n, int64_t d)
{
	GRID_STRIDE(i, n * d) {
		int64_t bt = i / d;
		y[i] = emb_value(e, w, bt, i - bt * d, d);
	}
}

/* Inference's bert_embeddings: the sum and its layernorm, one block per
 * row, never stored: k_layernorm_fwd's arithmetic (rt_kernels.cu) on the
 * sums, so the bits of rt_layernorm_fwd on a stored sum. */
__global__ static void k_bert_emb_ln(emb_rows e, const float *__restrict__ w,
                                     const float *__restrict__ g, const float *__restrict__ b,
                                     float *__restrict__ y, int64_t d, double eps)
{
	__shared__ double sh[32];
	int64_t bt = blockIdx.x;
	float *yr = y + bt * d;
	double s = 0.0, ss = 0.0, mu;
	float m, rs;
	for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
		s += emb_value(e, w, bt, j, d);
	mu = block_sum(s, sh) / (double)d;
	for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
		double v = (double)emb_value(e, w, bt, j, d) - mu;
		ss += v * v;
	}
	ss = block_sum(ss, sh);
	m = (float)mu;
	rs = (float)(1.0 / sqrt(ss / (double)d + eps));
	for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
		yr[j] = (emb_value(e, w, bt, j, d) - m) * rs * g[j] + b[j];
}

/* The key of row bt in one of the tables (-1: an invalid row), for
 * rt_scatter.cuh. */
struct emb_key_of {
	emb_rows e;
	int which;
	__device__ int64_t operator()(int64_t bt) const
	{
		return emb_valid(e, bt) ? emb_key(e, which, bt) : -1;
	}
};

__global__ static void k_emb_scatter(emb_rows e, int which, const float *__restrict__ src,
                                     float *__restrict__ table, int64_t n, int64_t d)
{
	emb_scatter_row(emb_key_of{ e, which }, src, table, n, d);
}

static void emb_scatter(const emb_rows &e, int which, const float *src, float *table,
                        int64_t n, int64_t d)
{
	k_emb_scatter<<<row_grid(n, "an embedding gradient"), TPB, 0, rt_cu.stream>>>(
		e, which, src, table, n, d);
	RT_CU_LAUNCHED("an embedding gradient");
}

extern "C" void rt_bert_emb_fwd(const rt_tf *L, const float *w, const int32_t *ids,
                                const int32_t *types, float *y, float *save, int64_t B,
                                int64_t T)
{
	int64_t d = L->d, n = B * T;
	const float *lg = w + (L->vocab + L->positions + L->types) * d, *lb = lg + d;
	emb_rows e = emb_rows_of(L, ids, types, T, 1);
	if (rt_cu.dry || n <= 0 || d <= 0)
		return;
	if (save) {
		float *es = save, *mu = save + n * d, *rs = mu + n;
		k_emb_sum<<<grid_for(n * d), TPB, 0, rt_cu.stream>>>(e, w, es, n, d);
		RT_CU_LAUNCHED("rt_bert_emb_fwd (sum)");
		rt_layernorm_fwd(es, lg, lb, y, mu, rs, n, d, L->eps);
		return;
	}
	/* Inference: no buffer for the sums (rt_tf_cpu.c goes through the stack). */
	k_bert_emb_ln<<<row_grid(n, "rt_bert_emb_fwd"), TPB, 0, rt_cu.stream>>>(e, w, lg, lb, y, d,
	                                                                          L->eps);
	RT_CU_LAUNCHED("rt_bert_emb_fwd");
}

extern "C" void rt_bert_emb_bwd(const rt_tf *L, const float *w, float *g, const int32_t *ids,
                                const int32_t *types, const float *save, const float *dy,
                                float *work, int64_t B, int64_t T)
{
	int64_t d = L->d, n = B * T;
	int64_t pos = L->vocab * d, type = pos + L->positions * d;
	int64_t lg = type + L->types * d, lb = lg + d;
	const float *es = save, *mu = save + n * d, *rs = mu + n;
	float *de = work;
	emb_rows e = emb_rows_of(L, ids, types, T, 1);
	if (rt_cu.dry || n <= 0 || d <= 0)
		return;
	rt_layernorm_bwd_weight(es, mu, rs, dy, g + lg, g + lb, n, d);
	rt_layernorm_bwd_data(es, w + lg, mu, rs, dy, de, n, d);
	emb_scatter(e, EMB_WORD, de, g, n, d);
	emb_scatter(e, EMB_POS, de, g + pos, n, d);
	emb_scatter(e, EMB_TYPE, de, g + type, n, d);
}

extern "C" void rt_gpt2_emb_fwd(const rt_tf *L, const float *w, const int32_t *ids, float *y,
                                int64_t B, int64_t T)
{
	rt_gpt2_emb_fwd_at(L, w, ids, y, B, T, 0);
}

/* Generation embeds T positions from pos0 on (a position past the table
 * reads nothing, as rt_tf_cpu.c's). */
extern "C" void rt_gpt2_emb_fwd_at(const rt_tf *L, const float *w, const int32_t *ids,
                                   float *y, int64_t B, int64_t T, int64_t pos0)
{
	int64_t d = L->d, n = B * T;
	emb_rows e = emb_rows_of(L, ids, NULL, T, 0);
	if (rt_cu.dry || n <= 0 || d <= 0)
		return;
	e.pos0 = pos0;
	e.dpos = rt_cu.gen_graph && T == 1 ? rt_cu.d_gen_pos : NULL;     /* see fwd_kv */
	k_emb_sum<<<grid_for(n * d), TPB, 0, rt_cu.stream>>>(e, w, y, n, d);
	RT_CU_LAUNCHED("rt_gpt2_emb_fwd");
}

extern "C" void rt_gpt2_emb_bwd(const rt_tf *L, float *g, const int32_t *ids, const float *dy,
                                int64_t B, int64_t T)
{
	int64_t d = L->d, n = B * T;
	emb_rows e = emb_rows_of(L, ids, NULL, T, 0);
	if (rt_cu.dry || n <= 0 || d <= 0)
		return;
	emb_scatter(e, EMB_WORD, dy, g, n, d);
	emb_scatter(e, EMB_POS, dy, g + L->vocab * d, n, d);
}

/* ---- Pooling and normalisation ---- */

/* 1 / max(count of tokens, 1e-9) of sample b (rt_tf_cpu.c's pool_scale): the
 * count is a sum of integers, exact in double in any order. */
__device__ static float pool_scale(const int32_t *__restrict__ mask, int64_t b, int64_t T,
                                   double *sh)
{
	double cnt = 0.0;
	for (int64_t t = threadIdx.x; t < T; t += blockDim.x)
		cnt += mask ? (double)mask[b * T + t] : 1.0;
	cnt = block_sum(cnt, sh);
	return (float)(1.0 / (cnt > 1e-9 ? cnt : 1e-9));
}

/* Block (b, chunk): sample b's columns chunk·TPB ..; one thread per column
 * down the positions in order (rt_tf_cpu.c's order: its bits). */
__global__ static void k_mean_pool_fwd(const float *__restrict__ x,
                                       const int32_t *__restrict__ mask, float *__restrict__ y,
                                       int64_t T, int64_t d)
{
	__shared__ double sh[32];
	int64_t b = blockIdx.x;
	float inv = pool_scale(mask, b, T, sh);
	for (int64_t j = blockIdx.y * (int64_t)blockDim.x + threadIdx.x; j < d;
	     j += (int64_t)gridDim.y * blockDim.x) {
		float acc = 0.0f;
		for (int64_t t = 0; t < T; t++) {
			float m = mask ? (float)mask[b * T + t] : 1.0f;
			if (m == 0.0f)
				continue;
			acc += x[(b * T + t) * d + j] * m;
		}
		y[b * d + j] = acc * inv;
	}
}

__global__ static void k_mean_pool_bwd(const int32_t *__restrict__ mask,
                                       const float *__restrict__ dy, float *__restrict__ dx,
                                       int64_t T, int64_t d)
{
	__shared__ double sh[32];
	int64_t b = blockIdx.x;
	float inv = pool_scale(mask, b, T, sh);
	for (int64_t i = blockIdx.y * (int64_t)blockDim.x + threadIdx.x; i < T * d;
	     i += (int64_t)gridDim.y * blockDim.x) {
		int64_t t = i / d, j = i - t * d;
		float s = (mask ? (float)mask[b * T + t] : 1.0f) * inv;
		dx[b * T * d + i] = dy[b * d + j] * s;
	}
}

static dim3 pool_grid(int64_t B, int64_t per, const char *what)
{
	int64_t c = (per + TPB - 1) / TPB;
	if (B > 2147483647)
		rt_cu_fail("%s: %lld samples is too many for one launch", what, (long long)B);
	return dim3((unsigned)B, (unsigned)(c > 64 ? 64 : c < 1 ? 1 : c), 1);
}

extern "C" void rt_mean_pool_fwd(const float *x, const int32_t *mask, float *y, int64_t B,
                                 int64_t T, int64_t d)
{
	if (rt_cu.dry || B <= 0 || d <= 0)
		return;
	k_mean_pool_fwd<<<pool_grid(B, d, "rt_mean_pool_fwd"), TPB, 0, rt_cu.stream>>>(x, mask, y,
	                                                                               T, d);
	RT_CU_LAUNCHED("rt_mean_pool_fwd");
}

extern "C" void rt_mean_pool_bwd(const int32_t *mask, const float *dy, float *dx, int64_t B,
                                 int64_t T, int64_t d)
{
	if (rt_cu.dry || B <= 0 || T <= 0 || d <= 0)
		return;
	k_mean_pool_bwd<<<pool_grid(B, T * d, "rt_mean_pool_bwd"), TPB, 0, rt_cu.stream>>>(
		mask, dy, dx, T, d);
	RT_CU_LAUNCHED("rt_mean_pool_bwd");
}

/* One block per row; the squares and the dot product summed in double
 * (in another order than the CPU's). */
__global__ static void k_l2_fwd(const float *__restrict__ x, float *__restrict__ y, int64_t d)
{
	__shared__ double sh[32];
	const float *xr = x + blockIdx.x * d;
	float *yr = y + blockIdx.x * d;
	double ss = 0.0, nrm;
	float inv;
	for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
		ss += (double)xr[j] * xr[j];
	nrm = sqrt(block_sum(ss, sh));
	inv = (float)(1.0 / (nrm > 1e-12 ? nrm : 1e-12));
	for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
		yr[j] = xr[j] * inv;
}

__global__ static void k_l2_bwd(const float *__restrict__ x, const float *__restrict__ dy,
                                float *__restrict__ dx, int64_t d)
{
	__shared__ double sh[32];
	const float *xr = x + blockIdx.x * d, *dyr = dy + blockIdx.x * d;
	float *dxr = dx + blockIdx.x * d;
	double ss = 0.0, dot = 0.0, nrm;
	float inv, c;
	for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
		ss += (double)xr[j] * xr[j];
		dot += (double)xr[j] * dyr[j];
	}
	nrm = sqrt(block_sum(ss, sh));
	dot = block_sum(dot, sh);
	if (nrm <= 1e-12) {
		/* The clamp is constant there: y = x / 1e-12. */
		for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
			dxr[j] = (float)(dyr[j] * 1e12);
		return;
	}
	/* dx = (dy - y·(y·dy)) / ||x|| */
	inv = (float)(1.0 / nrm);
	c = (float)(dot / (nrm * nrm));
	for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
		dxr[j] = inv * (dyr[j] - xr[j] * c);
}

extern "C" void rt_l2_normalize_fwd(const float *x, float *y, int64_t rows, int64_t d)
{
	if (rt_cu.dry || rows <= 0 || d <= 0)
		return;
	k_l2_fwd<<<row_grid(rows, "rt_l2_normalize_fwd"), TPB, 0, rt_cu.stream>>>(x, y, d);
	RT_CU_LAUNCHED("rt_l2_normalize_fwd");
}

extern "C" void rt_l2_normalize_bwd(const float *x, const float *dy, float *dx, int64_t rows,
                                    int64_t d)
{
	if (rt_cu.dry || rows <= 0 || d <= 0)
		return;
	k_l2_bwd<<<row_grid(rows, "rt_l2_normalize_bwd"), TPB, 0, rt_cu.stream>>>(x, dy, dx, d);
	RT_CU_LAUNCHED("rt_l2_normalize_bwd");
}

/* ---- gelu, tanh form (rt_math.h) ---- */

__global__ static void k_gelu_tanh_fwd(const float *__restrict__ x, float *__restrict__ y,
                                       int64_t n)
{
	GRID_STRIDE(i, n)
		y[i] = rt_gelu_tanh_hd(x[i]);
}

__global__ static void k_gelu_tanh_bwd(const float *__restrict__ x, const float *__restrict__ dy,
                                       float *__restrict__ dx, int64_t n)
{
	GRID_STRIDE(i, n)
		dx[i] = rt_gelu_tanh_grad_hd(x[i], dy[i]);
}

extern "C" void rt_gelu_tanh_fwd(const float *x, float *y, int64_t n)
{
	if (rt_cu.dry || n <= 0)
		return;
	k_gelu_tanh_fwd<<<grid_for(n), TPB, 0, rt_cu.stream>>>(x, y, n);
	RT_CU_LAUNCHED("rt_gelu_tanh_fwd");
}

extern "C" void rt_gelu_tanh_bwd(const float *x, const float *dy, float *dx, int64_t n)
{
	if (rt_cu.dry || n <= 0)
		return;
	k_gelu_tanh_bwd<<<grid_for(n), TPB, 0, rt_cu.stream>>>(x, dy, dx, n);
	RT_CU_LAUNCHED("rt_gelu_tanh_bwd");
}

/* ---- Next-token loss ----
 * One block per position (b, t): t < T-1 is the cross-entropy row of
 * logits[b, t] against ids[b, t+1], computed as rt_kernels.cu's
 * k_cross_entropy computes a row (its loss into rowloss[b·(T-1) + t]);
 * t = T-1 only zeroes its gradient row. */
__global__ static void k_next_token(const float *__restrict__ logits,
                                    const int32_t *__restrict__ ids, float *dlogits,
                                    double *__restrict__ rowloss, int64_t T, int64_t vocab,
                                    double scale)
{
	__shared__ double sh[32];
	__shared__ float shf[32];
	int64_t r = blockIdx.x, b = r / T, t = r - b * T;
	const float *z = logits + r * vocab;
	float mx = -INFINITY;
	double s = 0.0, lse;
	int32_t c;
	if (t == T - 1) {
		if (dlogits)
			for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x)
				dlogits[r * vocab + j] = 0.0f;
		return;                 /* the whole block */
	}
	c = ids[r + 1];
	for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x)
		mx = z[j] > mx ? z[j] : mx;
	mx = block_max(mx, shf);
	for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x)
		s += exp((double)z[j] - mx);
	lse = mx + log(block_sum(s, sh));
	if (threadIdx.x == 0)
		rowloss[b * (T - 1) + t] = (c >= 0 && c < vocab) ? lse - z[c] : (double)NAN;
	if (dlogits) {
		float *dz = dlogits + r * vocab;
		for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) {
			float v = (float)(exp((double)z[j] - lse) * scale);
			if (j == c)
				v -= (float)scale;
			dz[j] = v;
		}
	}
}

/* *acc += Σ_b (Σ_t rowloss), by one thread in rt_tf_cpu.c's order: a sum per
 * sample (rt_loss_cross_entropy's), the samples' sums added in order. */
__global__ static void k_next_token_sum(const double *__restrict__ rowloss, int64_t B,
                                        int64_t rows, double *acc)
{
	double total = 0.0;
	for (int64_t b = 0; b < B; b++) {
		double s = 0.0;
		for (int64_t t = 0; t < rows; t++)
			s += rowloss[b * rows + t];
		total += s;
	}
	*acc += total;
}

extern "C" void rt_loss_next_token(rt_ctx *c, const float *logits, const int32_t *ids,
                                   float *dlogits, int64_t B, int64_t T, int64_t vocab,
                                   double scale)
{
	int64_t rows = B * (T - 1);
	(void)c;                    /* the sum stays on the device: rt_cu.d_loss */
	if (rt_cu.dry || B <= 0 || T <= 0)
		return;
	if (rows > 0)
		rt_cu_scratch(rows);    /* grows only outside a capture (eager steps) */
	k_next_token<<<row_grid(B * T, "the next-token loss"), TPB, 0, rt_cu.stream>>>(
		logits, ids, dlogits, rt_cu.d_scratch, T, vocab, scale);
	RT_CU_LAUNCHED("the next-token loss");
	if (rows > 0) {
		k_next_token_sum<<<1, 1, 0, rt_cu.stream>>>(rt_cu.d_scratch, B, T - 1, rt_cu.d_loss);
		RT_CU_LAUNCHED("the next-token loss (sum)");
	}
}
