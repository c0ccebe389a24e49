/* rt_tf.cu — pipert.h's transformer layers and rt_gemm on the GPU: what
 * rt_tf.c computes, with the same composition and the same buffers.
 *
 * Every function enqueues on the compute stream (rt_cu.stream) and returns
 * at once: nothing waits for the device, nothing is allocated (work is
 * given), so a step of them can be captured as one CUDA graph.  Tensor
 * pointers are device pointers; the rt_tf description L is host memory (the
 * emitted program's static data).  While rt_cu.dry is set nothing is done.
 *
 * The composition is rt_tf.c's, call for call: every matrix product goes
 * through rt_gemm (cuBLAS, strided-batched, by rt_cu_gemm_rm_batched, the
 * one row-major mapping) or the GPU's rt_linear_*, every layernorm and
 * softmax through the GPU's rt_layernorm_* and rt_softmax_*, gelu through
 * rt_gelu_*; rt_tf.c's loops (residual adds, the masks, Conv1D's bias rows
 * and column sums, gathers, scatters, pooling, normalisation, tanh gelu,
 * the next-token loss) are the kernels below.  So:
 *   - save, stash and work hold what rt_tf.c's hold, where it puts them
 *     (the layout functions below are rt_tf.c's, copied: keep them equal;
 *     t/runtime-cuda-kernels.c compares save and stash piece by piece);
 *   - the zero-bubble split (_bwd without g, then _wgt) makes the weight-
 *     gradient calls _bwd makes with g, on the same values;
 *   - element-wise math is rt_math.h's (shared with rt_tf.c), compiled with
 *     --fmad=false; column sums and scatters add rows in the CPU's order, so
 *     bias gradients and embedding gradients are the CPU's bits given the
 *     same inputs; row reductions accumulate in double, as the CPU does.
 * What differs from the CPU: the GEMMs' summation order (cuBLAS), the order
 * of the double row sums, and tanhf/erff/expf of the CUDA math library.
 *
 * Attention runs per sample over its heads, or per head over the samples,
 * whichever makes fewer strided-batched calls (the matrices of one call
 * must be one stride apart, and a sample's heads and a head's samples are,
 * but not both at once).
 */
#include <float.h>
#include <math.h>
#include <stdint.h>

#include "rt_cuda.h"
#include "rt_math.h"
#include "rt_tf_layout.h"

#define TPB 256

static unsigned grid_for(int64_t n)
{
	int64_t b = (n + TPB - 1) / TPB;
	return (unsigned)(b > 8192 ? 8192 : b < 1 ? 1 : b);
}

/* One block per row: the row count must fit a grid. */
static unsigned row_grid(int64_t rows, const char *what)
{
	if (rows > 2147483647)
		rt_cu_fail("%s: %lld rows is too many for one launch", what, (long long)rows);
	return (unsigned)rows;
}

#define GRID_STRIDE(i, n)                                                                 \
	for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n);             \
	     i += (int64_t)gridDim.x * blockDim.x)

/* ---- Block reductions (blockDim.x a multiple of 32, at most 1024): the
 * same as rt_kernels.cu's, so that a row reduced here (the fused embedding
 * layernorm) gives the bits rt_layernorm_fwd gives. ---- */

__device__ static double block_sum(double v, double *sh)
{
	int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
	for (int o = 16; o; o >>= 1)
		v += __shfl_down_sync(0xffffffffu, v, o);
	__syncthreads();            /* sh may still be read from a previous call */
	if (lane == 0)
		sh[wid] = v;
	__syncthreads();
	if (wid == 0) {
		v = lane < nw ? sh[lane] : 0.0;
		for (int o = 16; o; o >>= 1)
			v += __shfl_down_sync(0xffffffffu, v, o);
		if (lane == 0)
			sh[0] = v;
	}
	__syncthreads();
	return sh[0];
}

__device__ static float block_max(float v, float *sh)
{
	int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
	for (int o = 16; o; o >>= 1) {
		float u = __shfl_down_sync(0xffffffffu, v, o);
		v = u > v ? u : v;
	}
	__syncthreads();
	if (lane == 0)
		sh[wid] = v;
	__syncthreads();
	if (wid == 0) {
		v = lane < nw ? sh[lane] : -INFINITY;
		for (int o = 16; o; o >>= 1) {
			float u = __shfl_down_sync(0xffffffffu, v, o);
			v = u > v ? u : v;
		}
		if (lane == 0)
			sh[0] = v;
	}
	__syncthreads();
	return sh[0];
}

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

/* ---- Element-wise pieces ---- */

__global__ static void k_add_to(float *__restrict__ y, const float *__restrict__ x, int64_t n)
{
	GRID_STRIDE(i, n)
		y[i] += x[i];
}

static void add_to(float *y, const float *x, int64_t n)
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

/* db[j] += Σ_r dy[r, j], rows in order (rt_tf.c's order: the CPU's bits). */
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

/* Conv1D (GPT-2's linear): y = x·W + b with W [in, out]. */
static void conv1d_fwd(const float *x, const float *w, const float *b, float *y,
                       int64_t rows, int64_t in, int64_t out)
{
	if (rows <= 0 || out <= 0)
		return;
	k_bias_rows<<<grid_for(rows * out), TPB, 0, rt_cu.stream>>>(b, y, rows, out);
	RT_CU_LAUNCHED("a GPT-2 block (Conv1D bias)");
	rt_gemm(0, 0, rows, out, in, 1.0f, x, in, 0, w, out, 0, 1.0f, y, out, 0, 1);
}

static void conv1d_bwd_data(const float *dy, const float *w, float *dx,
                            int64_t rows, int64_t in, int64_t out)
{
	/* dx[rows, in] = dy[rows, out] · Wᵀ */
	rt_gemm(0, 1, rows, in, out, 1.0f, dy, out, 0, w, out, 0, 0.0f, dx, in, 0, 1);
}

static void conv1d_bwd_weight(const float *x, const float *dy, float *dw, float *db,
                              int64_t rows, int64_t in, int64_t out)
{
	/* dW[in, out] += xᵀ · dy; db as rt_linear_bwd_weight sums it. */
	rt_gemm(1, 0, in, out, rows, 1.0f, x, in, 0, dy, out, 0, 1.0f, dw, out, 0, 1);
	if (rows <= 0 || out <= 0)
		return;
	k_colsum_acc<<<grid_for(out), TPB, 0, rt_cu.stream>>>(dy, db, rows, out);
	RT_CU_LAUNCHED("a GPT-2 block (Conv1D bias gradient)");
}

/* ---- Attention ----
 * As rt_tf.c: q, k, v are column blocks of rows ld floats apart; head hh
 * is columns hh·dh .. (hh+1)·dh; scores and probabilities are
 * [B, heads, T, T]. */

/* C = alpha·op(A)·op(B) for every sample b < B and head hh < h, where a
 * sample's matrices are s? floats after the previous sample's and a head's
 * h? after the previous head's (beta 0: attention overwrites). */
static void heads_gemm(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha,
                       const float *a, int64_t lda, int64_t sa, int64_t ha,
                       const float *b, int64_t ldb, int64_t sb, int64_t hb,
                       float *c, int64_t ldc, int64_t sc, int64_t hc, int64_t B, int64_t h)
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
 * (rt_tf.c: Lk = T and pos0 = 0 but for the key/value cache). */
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

/* dpos: the queries' first position as a device scalar (a captured decode
 * round), else pos0. */
static void mask_scores(float *s, const int32_t *mask, int causal, int64_t B, int64_t h,
                        int64_t T, int64_t Lk, int64_t pos0, const int64_t *dpos)
{
	int64_t n = B * h * T * Lk;
	if ((!mask && !causal) || n <= 0)
		return;
	k_mask_scores<<<grid_for(n), TPB, 0, rt_cu.stream>>>(s, mask, causal, h, T, Lk, pos0, dpos,
	                                                      n);
	RT_CU_LAUNCHED("attention (masks)");
}

/* A score torch.where replaced passes no gradient back (rt_tf.c). */
__global__ static void k_causal_zero(float *__restrict__ ds, int64_t T, int64_t n)
{
	GRID_STRIDE(i, n) {
		int64_t row = i / T, j = i - row * T;
		if (j > row % T)
			ds[i] = 0.0f;
	}
}

/* T queries per sample against Lk keys and values (rt_tf.c's attend): a
 * sample's queries start sq floats after the previous sample's, rows ldq
 * apart; its keys and values sk floats after, rows ldk apart. */
static void attend(const rt_tf *L, const float *q, int64_t ldq, int64_t sq, const float *k,
                   const float *v, int64_t ldk, int64_t sk, const int32_t *mask, int causal,
                   float *s, float *p, float *ctx, int64_t B, int64_t T, int64_t Lk,
                   int64_t pos0, const int64_t *dpos)
{
	int64_t d = L->d, h = L->heads, dh = d / h, tl = T * Lk;
	float scale = (float)(1.0 / sqrt((double)dh));
	/* S = scale · q · kᵀ */
	heads_gemm(0, 1, T, Lk, dh, scale, q, ldq, sq, dh, k, ldk, sk, dh, s, Lk, h * tl, tl, B, h);
	mask_scores(s, mask, causal, B, h, T, Lk, pos0, dpos);
	rt_softmax_fwd(s, p, B * h * T, Lk);
	/* ctx = P · v */
	heads_gemm(0, 0, T, dh, Lk, 1.0f, p, Lk, h * tl, tl, v, ldk, sk, dh, ctx, d, T * d, dh,
	           B, h);
}

static void attn_fwd(const rt_tf *L, const float *q, const float *k, const float *v,
                     int64_t ld, const int32_t *mask, int causal, float *s, float *p,
                     float *ctx, int64_t B, int64_t T)
{
	attend(L, q, ld, T * ld, k, v, ld, T * ld, mask, causal, s, p, ctx, B, T, T, 0, NULL);
}

static void attn_bwd(const rt_tf *L, const float *q, const float *k, const float *v,
                     int64_t ld, const float *p, const float *dctx, int causal,
                     float *dp, float *ds, float *dq, float *dk, float *dv, int64_t ldg,
                     int64_t B, int64_t T)
{
	int64_t d = L->d, h = L->heads, dh = d / h, tt = T * T, n = B * h * tt;
	float scale = (float)(1.0 / sqrt((double)dh));
	/* dP = dctx · vᵀ; dv = Pᵀ · dctx */
	heads_gemm(0, 1, T, T, dh, 1.0f, dctx, d, T * d, dh, v, ld, T * ld, dh, dp, T, h * tt, tt,
	           B, h);
	heads_gemm(1, 0, T, dh, T, 1.0f, p, T, h * tt, tt, dctx, d, T * d, dh, dv, ldg, T * ldg, dh,
	           B, h);
	rt_softmax_bwd(p, dp, ds, B * h * T, T);
	if (causal && n > 0) {
		k_causal_zero<<<grid_for(n), TPB, 0, rt_cu.stream>>>(ds, T, n);
		RT_CU_LAUNCHED("attention (causal gradient)");
	}
	/* dq = scale · dS · k; dk = scale · dSᵀ · q */
	heads_gemm(0, 0, T, dh, T, scale, ds, T, h * tt, tt, k, ld, T * ld, dh, dq, ldg, T * ldg, dh,
	           B, h);
	heads_gemm(1, 0, T, dh, T, scale, ds, T, h * tt, tt, q, ld, T * ld, dh, dk, ldg, T * ldg, dh,
	           B, h);
}

/* ---- BertLayer (post-layernorm) ---- */

/* The layers below compute on f32 intermediates: a 16-bit program's
 * TF32 (rt_cu.tf32_16) is exact only on its layers' 16-bit inputs, so
 * their inner GEMMs stay f32 (an object of this type marks the scope). */
struct inner_scope {
	inner_scope() { rt_cu.inner++; }
	~inner_scope() { rt_cu.inner--; }
};

extern "C" void rt_bert_layer_fwd(const rt_tf *L, const float *w, const float *x,
                                  const int32_t *mask, float *y, float *save, float *work,
                                  int64_t B, int64_t T)
{
	inner_scope inner;
	int64_t d = L->d, f = L->ffn, n = B * T;
	bert_w o = bert_w_at(L);
	tf_work k = work_at(L, B, T);
	float *q, *kk, *v, *p, *ctx, *r1, *a, *r2, *hpre, *hact, *mu1, *rs1, *mu2, *rs2;
	if (rt_cu.dry || n <= 0)
		return;
	if (save) {
		bert_save s = bert_save_at(L, B, T);
		q = save + s.q, kk = save + s.k, v = save + s.v, p = save + s.p;
		ctx = save + s.ctx, r1 = save + s.r1, a = save + s.a, r2 = save + s.r2;
		hpre = save + s.hpre, hact = save + s.hact;
		mu1 = save + s.mu1, rs1 = save + s.rs1, mu2 = save + s.mu2, rs2 = save + s.rs2;
	} else {
		/* Inference: rt_tf.c's reuse of the work slots. */
		q = work + k.a, kk = work + k.b, v = work + k.c, ctx = work + k.d;
		p = work + k.r2;
		r1 = work + k.a, a = work + k.b, r2 = work + k.a;
		mu1 = mu2 = work + k.c, rs1 = rs2 = work + k.d;
		hpre = work + k.f1, hact = work + k.f2;
	}
	rt_linear_fwd(x, w + o.wq, w + o.bq, q, n, d, d);
	rt_linear_fwd(x, w + o.wk, w + o.bk, kk, n, d, d);
	rt_linear_fwd(x, w + o.wv, w + o.bv, v, n, d, d);
	attn_fwd(L, q, kk, v, d, mask, 0, work + k.r1, p, ctx, B, T);
	rt_linear_fwd(ctx, w + o.wo, w + o.bo, r1, n, d, d);
	add_to(r1, x, n * d);
	rt_layernorm_fwd(r1, w + o.ln1g, w + o.ln1b, a, mu1, rs1, n, d, L->eps);
	rt_linear_fwd(a, w + o.wi, w + o.bi, hpre, n, d, f);
	rt_gelu_fwd(hpre, hact, n * f);
	rt_linear_fwd(hact, w + o.wout, w + o.bout, r2, n, f, d);
	add_to(r2, a, n * d);
	rt_layernorm_fwd(r2, w + o.ln2g, w + o.ln2b, y, mu2, rs2, n, d, L->eps);
}

extern "C" void rt_bert_layer_bwd(const rt_tf *L, const float *w, float *g, const float *x,
                                  const float *save, const float *dy, float *dx, float *stash,
                                  float *work, int64_t B, int64_t T)
{
	inner_scope inner;
	int64_t d = L->d, f = L->ffn, n = B * T;
	bert_w o = bert_w_at(L);
	bert_save s = bert_save_at(L, B, T);
	tf_work k = work_at(L, B, T);
	int keep = !g && stash;     /* zero-bubble's B: stash for the W */
	bert_stash st = bert_stash_at(L, B, T);
	/* rt_tf.c's slots: without a stash, A dr2 -> dq, B da -> dk, C dr1 -> dv,
	 * D dctx. */
	float *dr2 = keep ? stash + st.dr2 : work + k.a;
	float *da = keep ? stash + st.da : work + k.b;
	float *dr1 = keep ? stash + st.dr1 : work + k.c;
	float *dq = keep ? stash + st.dq : work + k.a;
	float *dk = keep ? stash + st.dk : work + k.b;
	float *dv = keep ? stash + st.dv : work + k.c;
	float *dhpre = keep ? stash + st.dhpre : work + k.f2;
	float *dctx = work + k.d, *dhact = work + k.f1;
	const float *r1 = save + s.r1, *a = save + s.a, *r2 = save + s.r2;
	if (rt_cu.dry || n <= 0)
		return;

	if (keep)
		rt_copy(stash + st.dy, dy, (size_t)(n * d) * sizeof *dy);
	/* y = LN2(r2), r2 = a + out(hact) */
	rt_layernorm_bwd_data(r2, w + o.ln2g, save + s.mu2, save + s.rs2, dy, dr2, n, d);
	if (g) {
		rt_layernorm_bwd_weight(r2, save + s.mu2, save + s.rs2, dy, g + o.ln2g, g + o.ln2b, n, d);
		rt_linear_bwd_weight(save + s.hact, dr2, g + o.wout, g + o.bout, n, f, d);
	}
	rt_linear_bwd_data(dr2, w + o.wout, dhact, n, f, d);
	rt_gelu_bwd(save + s.hpre, dhact, dhpre, n * f);
	if (g)
		rt_linear_bwd_weight(a, dhpre, g + o.wi, g + o.bi, n, d, f);
	rt_linear_bwd_data(dhpre, w + o.wi, da, n, d, f);
	add_to(da, dr2, n * d);
	/* a = LN1(r1), r1 = x + attention */
	if (g)
		rt_layernorm_bwd_weight(r1, save + s.mu1, save + s.rs1, da, g + o.ln1g, g + o.ln1b, n, d);
	rt_layernorm_bwd_data(r1, w + o.ln1g, save + s.mu1, save + s.rs1, da, dr1, n, d);
	if (g)
		rt_linear_bwd_weight(save + s.ctx, dr1, g + o.wo, g + o.bo, n, d, d);
	rt_linear_bwd_data(dr1, w + o.wo, dctx, n, d, d);
	if (dx)
		rt_copy(dx, dr1, (size_t)(n * d) * sizeof *dx);
	attn_bwd(L, save + s.q, save + s.k, save + s.v, d, save + s.p, dctx, 0,
	         work + k.r1, work + k.r2, dq, dk, dv, d, B, T);
	if (g) {
		rt_linear_bwd_weight(x, dq, g + o.wq, g + o.bq, n, d, d);
		rt_linear_bwd_weight(x, dk, g + o.wk, g + o.bk, n, d, d);
		rt_linear_bwd_weight(x, dv, g + o.wv, g + o.bv, n, d, d);
	}
	if (dx) {
		/* dx += dq·Wq + dk·Wk + dv·Wv */
		rt_gemm(0, 0, n, d, d, 1.0f, dq, d, 0, w + o.wq, d, 0, 1.0f, dx, d, 0, 1);
		rt_gemm(0, 0, n, d, d, 1.0f, dk, d, 0, w + o.wk, d, 0, 1.0f, dx, d, 0, 1);
		rt_gemm(0, 0, n, d, d, 1.0f, dv, d, 0, w + o.wv, d, 0, 1.0f, dx, d, 0, 1);
	}
}

extern "C" void rt_bert_layer_wgt(const rt_tf *L, float *g, const float *x, const float *save,
                                  const float *stash, float *work, int64_t B, int64_t T)
{
	inner_scope inner;
	int64_t d = L->d, f = L->ffn, n = B * T;
	bert_w o = bert_w_at(L);
	bert_save s = bert_save_at(L, B, T);
	bert_stash st = bert_stash_at(L, B, T);
	(void)work;
	if (rt_cu.dry || n <= 0)
		return;
	/* The calls of rt_bert_layer_bwd's `if (g)` branches, on the stash. */
	rt_layernorm_bwd_weight(save + s.r2, save + s.mu2, save + s.rs2, stash + st.dy,
	                        g + o.ln2g, g + o.ln2b, n, d);
	rt_linear_bwd_weight(save + s.hact, stash + st.dr2, g + o.wout, g + o.bout, n, f, d);
	rt_linear_bwd_weight(save + s.a, stash + st.dhpre, g + o.wi, g + o.bi, n, d, f);
	rt_layernorm_bwd_weight(save + s.r1, save + s.mu1, save + s.rs1, stash + st.da,
	                        g + o.ln1g, g + o.ln1b, n, d);
	rt_linear_bwd_weight(save + s.ctx, stash + st.dr1, g + o.wo, g + o.bo, n, d, d);
	rt_linear_bwd_weight(x, stash + st.dq, g + o.wq, g + o.bq, n, d, d);
	rt_linear_bwd_weight(x, stash + st.dk, g + o.wk, g + o.bk, n, d, d);
	rt_linear_bwd_weight(x, stash + st.dv, g + o.wv, g + o.bv, n, d, d);
}

/* ---- GPT2Block (pre-layernorm) ---- */

/* What follows the attention, shared by the full-sequence and the cached
 * forward (rt_tf.c): h1 = x + c_proj(ctx), h2 = ln_2(h1), y = h1 + mlp(h2). */
static void gpt2_post_attn(const rt_tf *L, const float *w, const float *x, const float *ctx,
                           float *y, float *h1, float *h2, float *f1, float *g1, float *mu2,
                           float *rs2, int64_t n)
{
	int64_t d = L->d, f = L->ffn;
	gpt2_w o = gpt2_w_at(L);
	conv1d_fwd(ctx, w + o.wproj, w + o.bproj, h1, n, d, d);
	add_to(h1, x, n * d);
	rt_layernorm_fwd(h1, w + o.ln2g, w + o.ln2b, h2, mu2, rs2, n, d, L->eps);
	conv1d_fwd(h2, w + o.wfc, w + o.bfc, f1, n, d, f);
	rt_gelu_tanh_fwd(f1, g1, n * f);
	conv1d_fwd(g1, w + o.wmp, w + o.bmp, y, n, f, d);
	add_to(y, h1, n * d);
}

extern "C" void rt_gpt2_block_fwd(const rt_tf *L, const float *w, const float *x,
                                  const int32_t *mask, float *y, float *save, float *work,
                                  int64_t B, int64_t T)
{
	inner_scope inner;
	int64_t d = L->d, n = B * T;
	gpt2_w o = gpt2_w_at(L);
	tf_work k = work_at(L, B, T);
	float *h0, *qkv, *p, *ctx, *h1, *h2, *f1, *g1, *mu1, *rs1, *mu2, *rs2;
	if (rt_cu.dry || n <= 0)
		return;
	if (save) {
		gpt2_save s = gpt2_save_at(L, B, T);
		h0 = save + s.h0, qkv = save + s.qkv, p = save + s.p, ctx = save + s.ctx;
		h1 = save + s.h1, h2 = save + s.h2, f1 = save + s.f1, g1 = save + s.g1;
		mu1 = save + s.mu1, rs1 = save + s.rs1, mu2 = save + s.mu2, rs2 = save + s.rs2;
	} else {
		/* Inference: rt_tf.c's reuse of the work slots. */
		h0 = work + k.a, qkv = work + k.b, ctx = work + k.a, p = work + k.r2;
		mu1 = work + k.b, rs1 = work + k.c;
		h1 = work + k.b, h2 = work + k.c, mu2 = work + k.d, rs2 = work + k.a;
		f1 = work + k.f1, g1 = work + k.f2;
	}
	rt_layernorm_fwd(x, w + o.ln1g, w + o.ln1b, h0, mu1, rs1, n, d, L->eps);
	conv1d_fwd(h0, w + o.wattn, w + o.battn, qkv, n, d, 3 * d);
	attn_fwd(L, qkv, qkv + d, qkv + 2 * d, 3 * d, mask, 1, work + k.r1, p, ctx, B, T);
	gpt2_post_attn(L, w, x, ctx, y, h1, h2, f1, g1, mu2, rs2, n);
}

extern "C" void rt_gpt2_block_bwd(const rt_tf *L, const float *w, float *g, const float *x,
                                  const float *save, const float *dy, float *dx, float *stash,
                                  float *work, int64_t B, int64_t T)
{
	inner_scope inner;
	int64_t d = L->d, f = L->ffn, n = B * T;
	gpt2_w o = gpt2_w_at(L);
	gpt2_save s = gpt2_save_at(L, B, T);
	tf_work k = work_at(L, B, T);
	int keep = !g && stash;     /* zero-bubble's B: stash for the W */
	gpt2_stash st = gpt2_stash_at(L, B, T);
	/* rt_tf.c's slots: without a stash, A dh2, B dh1, then dqkv over A-C
	 * (dh1 is copied to dx first); D dctx, then dh0; A for ln_1's dx. */
	float *dh2 = keep ? stash + st.dh2 : work + k.a;
	float *dh1 = keep ? stash + st.dh1 : work + k.b;
	float *dqkv = keep ? stash + st.dqkv : work + k.a;
	float *dh0 = keep ? stash + st.dh0 : work + k.d;
	float *df1 = keep ? stash + st.df1 : work + k.f2;
	float *dctx = work + k.d, *dg1 = work + k.f1, *dln1 = work + k.a;
	const float *qkv = save + s.qkv;
	if (rt_cu.dry || n <= 0)
		return;

	if (keep)
		rt_copy(stash + st.dy, dy, (size_t)(n * d) * sizeof *dy);
	/* y = h1 + mlp_c_proj(gelu(c_fc(ln_2(h1)))) */
	if (g)
		conv1d_bwd_weight(save + s.g1, dy, g + o.wmp, g + o.bmp, n, f, d);
	conv1d_bwd_data(dy, w + o.wmp, dg1, n, f, d);
	rt_gelu_tanh_bwd(save + s.f1, dg1, df1, n * f);
	if (g)
		conv1d_bwd_weight(save + s.h2, df1, g + o.wfc, g + o.bfc, n, d, f);
	conv1d_bwd_data(df1, w + o.wfc, dh2, n, d, f);
	if (g)
		rt_layernorm_bwd_weight(save + s.h1, save + s.mu2, save + s.rs2, dh2,
		                        g + o.ln2g, g + o.ln2b, n, d);
	rt_layernorm_bwd_data(save + s.h1, w + o.ln2g, save + s.mu2, save + s.rs2, dh2, dh1, n, d);
	add_to(dh1, dy, n * d);
	/* h1 = x + c_proj(attn(ln_1(x))) */
	if (g)
		conv1d_bwd_weight(save + s.ctx, dh1, g + o.wproj, g + o.bproj, n, d, d);
	conv1d_bwd_data(dh1, w + o.wproj, dctx, n, d, d);
	if (dx)
		rt_copy(dx, dh1, (size_t)(n * d) * sizeof *dx);
	attn_bwd(L, qkv, qkv + d, qkv + 2 * d, 3 * d, save + s.p, dctx, 1,
	         work + k.r1, work + k.r2, dqkv, dqkv + d, dqkv + 2 * d, 3 * d, B, T);
	if (g)
		conv1d_bwd_weight(save + s.h0, dqkv, g + o.wattn, g + o.battn, n, d, 3 * d);
	conv1d_bwd_data(dqkv, w + o.wattn, dh0, n, d, 3 * d);
	if (g)
		rt_layernorm_bwd_weight(x, save + s.mu1, save + s.rs1, dh0, g + o.ln1g, g + o.ln1b, n, d);
	if (dx) {
		rt_layernorm_bwd_data(x, w + o.ln1g, save + s.mu1, save + s.rs1, dh0, dln1, n, d);
		add_to(dx, dln1, n * d);
	}
}

extern "C" void rt_gpt2_block_wgt(const rt_tf *L, float *g, const float *x, const float *save,
                                  const float *stash, float *work, int64_t B, int64_t T)
{
	inner_scope inner;
	int64_t d = L->d, f = L->ffn, n = B * T;
	gpt2_w o = gpt2_w_at(L);
	gpt2_save s = gpt2_save_at(L, B, T);
	gpt2_stash st = gpt2_stash_at(L, B, T);
	(void)work;
	if (rt_cu.dry || n <= 0)
		return;
	/* The calls of rt_gpt2_block_bwd's `if (g)` branches, on the stash. */
	conv1d_bwd_weight(save + s.g1, stash + st.dy, g + o.wmp, g + o.bmp, n, f, d);
	conv1d_bwd_weight(save + s.h2, stash + st.df1, g + o.wfc, g + o.bfc, n, d, f);
	rt_layernorm_bwd_weight(save + s.h1, save + s.mu2, save + s.rs2, stash + st.dh2,
	                        g + o.ln2g, g + o.ln2b, n, d);
	conv1d_bwd_weight(save + s.ctx, stash + st.dh1, g + o.wproj, g + o.bproj, n, d, d);
	conv1d_bwd_weight(save + s.h0, stash + st.dqkv, g + o.wattn, g + o.battn, n, d, 3 * d);
	rt_layernorm_bwd_weight(x, save + s.mu1, save + s.rs1, stash + st.dh0,
	                        g + o.ln1g, g + o.ln1b, n, d);
}

/* ---- GPT2Block with a key/value cache (generation) ----
 * rt_tf.c's rt_gpt2_block_fwd_kv, call for call, in the same work slots
 * (rt_tf_layout.h's kv_work_at): A [N, d] · B-D [N, 3d] · S, P [B, heads,
 * T, Lk] · F1, F2 [N, ffn], Lk = pos0 + T (a captured round: the cache). */
/* The keys and values of qkv's n = B·T rows (columns d .. 3d) into the
 * caches at positions pos0 .. pos0+T-1 of their samples. */
__global__ static void k_kv_store(const float *__restrict__ qkv, float *__restrict__ kc,
                                  float *__restrict__ vc, int64_t cap, int64_t T, int64_t pos0,
                                  const int64_t *__restrict__ dpos, int64_t d, int64_t n)
{
	GRID_STRIDE(i, n * d) {
		int64_t bt = i / d, j = i - bt * d, b = bt / T, t = bt - b * T;
		int64_t at = (b * cap + (dpos ? *dpos : pos0) + t) * d + j;
		kc[at] = qkv[bt * 3 * d + d + j];
		vc[at] = qkv[bt * 3 * d + 2 * d + j];
	}
}

extern "C" void rt_gpt2_block_fwd_kv(const rt_tf *L, const float *w, const float *x, float *y,
                                     float *kc, float *vc, int64_t cap, float *work, int64_t B,
                                     int64_t T, int64_t pos0)
{
	inner_scope inner;
	/* a captured decode round reads its position from the device and
	 * attends over the whole cache, the positions after it masked, so that
	 * every round launches the same work (rt_cuda.h, gen_graph) */
	const int64_t *dpos = rt_cu.gen_graph && T == 1 ? rt_cu.d_gen_pos : NULL;
	int64_t d = L->d, n = B * T, lk = dpos ? cap : pos0 + T;
	gpt2_w o = gpt2_w_at(L);
	tf_work k = kv_work_at(L, B, T, lk);
	float *h0 = work + k.a, *qkv = work + k.b, *ctx = work + k.a;
	/* A write past cap lands in the next sample's cache, or past the
	 * buffer: refuse it, dry run included, so the first step says so. */
	if (pos0 < 0 || pos0 + T > cap)
		rt_cu_fail("rt_gpt2_block_fwd_kv: positions %lld .. %lld do not fit a cache of %lld",
		           (long long)pos0, (long long)(pos0 + T - 1), (long long)cap);
	if (rt_cu.dry || n <= 0)
		return;
	rt_layernorm_fwd(x, w + o.ln1g, w + o.ln1b, h0, work + k.b, work + k.c, n, d, L->eps);
	conv1d_fwd(h0, w + o.wattn, w + o.battn, qkv, n, d, 3 * d);
	if (d > 0) {
		k_kv_store<<<grid_for(n * d), TPB, 0, rt_cu.stream>>>(qkv, kc, vc, cap, T, pos0, dpos,
		                                                      d, n);
		RT_CU_LAUNCHED("rt_gpt2_block_fwd_kv (cache)");
	}
	attend(L, qkv, 3 * d, T * 3 * d, kc, vc, d, cap * d, NULL, 1, work + k.r1, work + k.r2,
	       ctx, B, T, lk, pos0, dpos);
	gpt2_post_attn(L, w, x, ctx, y, work + k.b, work + k.c, work + k.f1, work + k.f2,
	               work + k.d, work + k.a, n);
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
 * As rt_tf.c: an id outside its table reads nothing (the row comes out
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

/* word[ids] + pos[t] (+ type[types]) of row bt, column j: rt_tf.c's sum. */
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

/* table[key(r)] += src[r] over the valid rows r, for one table, in row
 * order: the CPU's order, deterministic, no atomics.  One block per row
 * r: unless an earlier valid row has its key, the block owns the key and
 * adds the rows r' >= r that share it, in order, a block-wide chunk of
 * candidates at a time (a thread owns its columns throughout, so its
 * read-add-writes follow one another).  Quadratic in the rows' count in id
 * comparisons (B·T, a micro-batch's tokens), linear in the additions. */
__global__ static void k_emb_scatter(emb_rows e, int which, const float *__restrict__ src,
                                     float *__restrict__ table, int64_t n, int64_t d)
{
	__shared__ int64_t list[TPB];
	__shared__ int wcount[TPB / 32];
	int64_t bt = blockIdx.x, key;
	int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
	float *row;
	if (!emb_valid(e, bt))
		return;                 /* the whole block: bt is the block's */
	key = emb_key(e, which, bt);
	for (int64_t c0 = 0; c0 < bt; c0 += blockDim.x) {
		int64_t o = c0 + threadIdx.x;
		int hit = o < bt && emb_valid(e, o) && emb_key(e, which, o) == key;
		if (__syncthreads_or(hit))
			return;             /* an earlier row owns the key */
	}
	row = table + key * d;
	for (int64_t c0 = bt; c0 < n; c0 += blockDim.x) {
		int64_t o = c0 + threadIdx.x;
		int hit = o < n && emb_valid(e, o) && emb_key(e, which, o) == key;
		unsigned bal = __ballot_sync(0xffffffffu, hit);
		int before = 0, total = 0;
		if (lane == 0)
			wcount[wid] = __popc(bal);
		__syncthreads();
		for (int k = 0; k < nw; k++) {
			before += k < wid ? wcount[k] : 0;
			total += wcount[k];
		}
		if (hit)
			list[before + __popc(bal & ((1u << lane) - 1u))] = o;
		__syncthreads();
		for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
			float acc = row[j];
			for (int k = 0; k < total; k++)
				acc += src[list[k] * d + j];
			row[j] = acc;
		}
		__syncthreads();        /* list and wcount are refilled */
	}
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
	/* Inference: no buffer for the sums (rt_tf.c goes through the stack). */
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
 * reads nothing, as rt_tf.c's). */
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

/* 1 / max(count of tokens, 1e-9) of sample b (rt_tf.c's pool_scale): the
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
 * down the positions in order (rt_tf.c's order: its bits). */
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

/* *acc += Σ_b (Σ_t rowloss), by one thread in rt_tf.c's order: a sum per
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
