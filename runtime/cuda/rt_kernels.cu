/* rt_kernels.cu — pipert.h's kernels on the GPU.
 *
 * Every function enqueues on the rank's compute stream (rt_cu.stream) and
 * returns at once; pointers are device pointers.  GEMMs go to cuBLAS through
 * one row-major interface, rt_cu_gemm_rm; everything else is a kernel of
 * its own, written to compute what rt_kernels.c computes, in the same order
 * where that is cheap:
 *   - element-wise math is the CPU's expressions, compiled with --fmad=false
 *     so no multiply-add is contracted that the CPU does not contract;
 *   - row reductions (layernorm, softmax, losses) accumulate in double, as
 *     the CPU does, one block per row;
 *   - column sums (bias and layernorm weight gradients) run one thread per
 *     column down the rows in order: the CPU's order, so the same bits;
 *   - the per-micro-batch loss is summed row by row in order by one thread,
 *     then added to the rank's device accumulator: the CPU's order again;
 *   - dropout masks come from the CPU's counter-based hash (rt_math.h).
 * What differs: the GEMMs' summation order, and expf/erff/tanhf of the CUDA
 * math library (within 2 ulp of the CPU's).  t/runtime-cuda-kernels.c
 * compares every kernel with the CPU's.
 */
#include <math.h>
#include <stdint.h>

#include "rt_cuda.h"
#include "rt_math.h"
#include "rt_launch.cuh"
#include "rt_reduce.cuh"

static int fits_int(int64_t v)
{
	return v >= 0 && v <= 2147483647;
}

/* Block reductions: rt_reduce.cuh (rt_tf.cu's too). */

/* ---- GEMM. ---- */

/* The one place where row-major meets cuBLAS's column-major.
 *
 * A row-major matrix X with leading dimension ld, read column-major with
 * the same ld, is Xᵀ.  The row-major product C = op(A)·op(B) (m × n, inner
 * dimension k) is therefore, column-major, Cᵀ = op(B)ᵀ·op(A)ᵀ (n × m).  The
 * column-major view of B's memory is Bᵀ, so op(B)ᵀ is that view with the
 * SAME transpose flag as op (N: op(B)ᵀ = Bᵀ = the view; T: op(B)ᵀ = B = the
 * view transposed), likewise for A.  Hence
 *     cublas gemm(op_b, op_a, n, m, k, alpha, B, ldb, A, lda, beta, C, ldc)
 * with every leading dimension as the row-major caller gave it.
 *
 * Strided batches (pipert.h's rt_gemm, the attention of rt_tf.cu): entry i
 * is the same product on a + i·sa, b + i·sb, c + i·sc, and the swap above
 * carries the strides with their matrices (B's stride goes with B).  One
 * entry is the plain cublasGemmEx call, as before batches existed. */
extern "C" void rt_cu_gemm_rm_batched(int trans_a, int trans_b, int64_t m, int64_t n,
                                      int64_t k, float alpha, const float *a, int64_t lda,
                                      int64_t sa, const float *b, int64_t ldb, int64_t sb,
                                      float beta, float *c, int64_t ldc, int64_t sc,
                                      int64_t batch)
{
	cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
	cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
	cublasComputeType_t ct = rt_cu.tf32 || (rt_cu.tf32_16 && !rt_cu.inner)
	                         ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
	if (m <= 0 || n <= 0 || batch <= 0)
		return;
	if (!fits_int(m) || !fits_int(n) || !fits_int(k) || !fits_int(lda) || !fits_int(ldb) ||
	    !fits_int(ldc) || !fits_int(batch))
		rt_cu_fail("a GEMM of %lld x %lld x %lld (batch %lld) is too large for cuBLAS's int "
		           "sizes", (long long)m, (long long)n, (long long)k, (long long)batch);
	if (batch == 1)
		RT_CUBLAS(cublasGemmEx(rt_cu.blas, op_b, op_a, (int)n, (int)m, (int)k, &alpha,
		                       b, CUDA_R_32F, (int)ldb, a, CUDA_R_32F, (int)lda, &beta, c,
		                       CUDA_R_32F, (int)ldc, ct, CUBLAS_GEMM_DEFAULT));
	else
		RT_CUBLAS(cublasGemmStridedBatchedEx(rt_cu.blas, op_b, op_a, (int)n, (int)m, (int)k,
		                                     &alpha, b, CUDA_R_32F, (int)ldb, (long long)sb,
		                                     a, CUDA_R_32F, (int)lda, (long long)sa, &beta,
		                                     c, CUDA_R_32F, (int)ldc, (long long)sc,
		                                     (int)batch, ct, CUBLAS_GEMM_DEFAULT));
}

extern "C" void rt_cu_gemm_rm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                              float alpha, const float *a, int64_t lda, const float *b,
                              int64_t ldb, float beta, float *c, int64_t ldc)
{
	rt_cu_gemm_rm_batched(trans_a, trans_b, m, n, k, alpha, a, lda, 0, b, ldb, 0, beta, c,
	                      ldc, 0, 1);
}

/* ---- Linear: y = x·Wᵀ + b, W is [out, in]. ---- */

__global__ static void k_bias_rows(const float *__restrict__ b, float *__restrict__ y,
                                   int64_t rows, int64_t out)
{
	int64_t n = rows * out;
	for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
	     i += (int64_t)gridDim.x * blockDim.x)
		y[i] = b[i % out];
}

/* db[j] += Σ_r dy[r, j], rows in order (rt_kernels.c's order). */
__global__ static void k_colsum_acc(const float *__restrict__ dy, float *__restrict__ db,
                                    int64_t rows, int64_t out)
{
	for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < out;
	     j += (int64_t)gridDim.x * blockDim.x) {
		float acc = db[j];
		for (int64_t r = 0; r < rows; r++)
			acc += dy[r * out + j];
		db[j] = acc;
	}
}

extern "C" void rt_linear_fwd(const float *x, const float *w, const float *b, float *y,
                              int64_t rows, int64_t in, int64_t out)
{
	if (rt_cu.dry || rows <= 0 || out <= 0)
		return;
	if (b) {
		k_bias_rows<<<grid_for(rows * out), TPB, 0, rt_cu.stream>>>(b, y, rows, out);
		RT_CU_LAUNCHED("rt_linear_fwd (bias)");
	}
	rt_cu_gemm_rm(0, 1, rows, out, in, 1.0f, x, in, w, in, b ? 1.0f : 0.0f, y, out);
}

extern "C" void rt_linear_bwd_data(const float *dy, const float *w, float *dx,
                                   int64_t rows, int64_t in, int64_t out)
{
	if (rt_cu.dry || rows <= 0 || in <= 0)
		return;
	/* dx[rows, in] = dy[rows, out] · W[out, in] */
	rt_cu_gemm_rm(0, 0, rows, in, out, 1.0f, dy, out, w, in, 0.0f, dx, in);
}

extern "C" void rt_linear_bwd_weight(const float *x, const float *dy, float *dw, float *db,
                                     int64_t rows, int64_t in, int64_t out)
{
	if (rt_cu.dry || rows <= 0)
		return;
	/* dW[out, in] += dyᵀ[out, rows] · x[rows, in] */
	rt_cu_gemm_rm(1, 0, out, in, rows, 1.0f, dy, out, x, in, 1.0f, dw, in);
	if (db) {
		k_colsum_acc<<<grid_for(out), TPB, 0, rt_cu.stream>>>(dy, db, rows, out);
		RT_CU_LAUNCHED("rt_linear_bwd_weight (bias)");
	}
}

/* ---- Element-wise. ---- */

#define ELEMENTWISE(name, args, body)                                                     \
	__global__ static void k_##name args                                                  \
	{                                                                                     \
		for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;           \
		     i += (int64_t)gridDim.x * blockDim.x) {                                      \
			body;                                                                         \
		}                                                                                 \
	}

ELEMENTWISE(relu_fwd, (const float *__restrict__ x, float *__restrict__ y, int64_t n),
            y[i] = x[i] > 0.0f ? x[i] : 0.0f)
ELEMENTWISE(relu_bwd, (const float *__restrict__ y, const float *__restrict__ dy,
                       float *__restrict__ dx, int64_t n),
            dx[i] = y[i] > 0.0f ? dy[i] : 0.0f)
ELEMENTWISE(gelu_fwd, (const float *__restrict__ x, float *__restrict__ y, int64_t n),
            y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f)))
ELEMENTWISE(gelu_bwd, (const float *__restrict__ x, const float *__restrict__ dy,
                       float *__restrict__ dx, int64_t n),
            float cdf = 0.5f * (1.0f + erff(x[i] * 0.70710678118654752f));
            float pdf = 0.3989422804014327f * expf(-0.5f * x[i] * x[i]);
            dx[i] = dy[i] * (cdf + x[i] * pdf))
ELEMENTWISE(tanh_fwd, (const float *__restrict__ x, float *__restrict__ y, int64_t n),
            y[i] = tanhf(x[i]))
ELEMENTWISE(tanh_bwd, (const float *__restrict__ y, const float *__restrict__ dy,
                       float *__restrict__ dx, int64_t n),
            dx[i] = dy[i] * (1.0f - y[i] * y[i]))
ELEMENTWISE(sigmoid_fwd, (const float *__restrict__ x, float *__restrict__ y, int64_t n),
            float e = expf(-fabsf(x[i]));
            float s = 1.0f / (1.0f + e);
            y[i] = x[i] >= 0.0f ? s : e * s)
ELEMENTWISE(sigmoid_bwd, (const float *__restrict__ y, const float *__restrict__ dy,
                          float *__restrict__ dx, int64_t n),
            dx[i] = dy[i] * y[i] * (1.0f - y[i]))
ELEMENTWISE(silu_fwd, (const float *__restrict__ x, float *__restrict__ y, int64_t n),
            float e = expf(-fabsf(x[i]));
            float s = 1.0f / (1.0f + e);
            y[i] = x[i] * (x[i] >= 0.0f ? s : e * s))
ELEMENTWISE(silu_bwd, (const float *__restrict__ x, const float *__restrict__ dy,
                       float *__restrict__ dx, int64_t n),
            float e = expf(-fabsf(x[i]));
            float s = 1.0f / (1.0f + e);
            s = x[i] >= 0.0f ? s : e * s;
            dx[i] = dy[i] * s * (1.0f + x[i] * (1.0f - s)))

#define LAUNCH_FWD(name)                                                                  \
	extern "C" void rt_##name(const float *x, float *y, int64_t n)                        \
	{                                                                                     \
		if (rt_cu.dry || n <= 0)                                                          \
			return;                                                                       \
		k_##name<<<grid_for(n), TPB, 0, rt_cu.stream>>>(x, y, n);                         \
		RT_CU_LAUNCHED("rt_" #name);                                                      \
	}
#define LAUNCH_BWD(name)                                                                  \
	extern "C" void rt_##name(const float *a, const float *dy, float *dx, int64_t n)      \
	{                                                                                     \
		if (rt_cu.dry || n <= 0)                                                          \
			return;                                                                       \
		k_##name<<<grid_for(n), TPB, 0, rt_cu.stream>>>(a, dy, dx, n);                    \
		RT_CU_LAUNCHED("rt_" #name);                                                      \
	}
LAUNCH_FWD(relu_fwd)
LAUNCH_BWD(relu_bwd)
LAUNCH_FWD(gelu_fwd)
LAUNCH_BWD(gelu_bwd)
LAUNCH_FWD(tanh_fwd)
LAUNCH_BWD(tanh_bwd)
LAUNCH_FWD(sigmoid_fwd)
LAUNCH_BWD(sigmoid_bwd)
LAUNCH_FWD(silu_fwd)
LAUNCH_BWD(silu_bwd)

/* ---- Dropout. ---- */

/* The step comes as the argument plus *step_off: a replayed CUDA graph
 * keeps the step it was captured with, and rt_dev_step sets the offset. */
__global__ static void k_dropout(const float *__restrict__ x, float *__restrict__ y,
                                 int64_t rows, int64_t width, uint64_t thresh, float scale,
                                 uint64_t seed, uint64_t key, int64_t step,
                                 const int64_t *__restrict__ step_off, int64_t row0)
{
	int64_t n = rows * width, st = step + *step_off;
	for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
	     i += (int64_t)gridDim.x * blockDim.x) {
		int64_t r = i / width, col = i - r * width;
		uint64_t base = rt_dropout_row_base(seed, key, st, row0 + r);
		y[i] = rt_dropout_keep(base, col, thresh) ? x[i] * scale : 0.0f;
	}
}

extern "C" void rt_dropout_fwd(const float *x, float *y, int64_t rows, int64_t width, double p,
                               uint64_t seed, uint64_t key, int64_t step, int64_t row0)
{
	uint64_t th = (uint64_t)ceil(p * 0x1p53);
	float scale = p < 1.0 ? (float)(1.0 / (1.0 - p)) : 0.0f;
	if (rt_cu.dry || rows <= 0 || width <= 0)
		return;
	if (p <= 0.0) {
		rt_copy(y, x, (size_t)(rows * width) * sizeof *y);
		return;
	}
	k_dropout<<<grid_for(rows * width), TPB, 0, rt_cu.stream>>>(
		x, y, rows, width, th, scale, seed, key, step, rt_cu.d_step_off, row0);
	RT_CU_LAUNCHED("rt_dropout_fwd");
}

extern "C" void rt_dropout_bwd(const float *dy, float *dx, int64_t rows, int64_t width, double p,
                               uint64_t seed, uint64_t key, int64_t step, int64_t row0)
{
	/* The same mask and scale as forward: dropout is linear in x. */
	rt_dropout_fwd(dy, dx, rows, width, p, seed, key, step, row0);
}

/* ---- LayerNorm over the last dimension (biased variance). ---- */

__global__ static void k_layernorm_fwd(const float *__restrict__ x, const float *__restrict__ g,
                                       const float *__restrict__ b, float *__restrict__ y,
                                       float *__restrict__ mean, float *__restrict__ rstd,
                                       int64_t d, double eps)
{
	__shared__ double sh[32];
	const float *xr = x + blockIdx.x * d;
	float *yr = y + blockIdx.x * d;
	double s = 0.0, ss = 0.0, mu;
	float m, rs;
	for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
		s += xr[j];
	mu = block_sum(s, sh) / (double)d;
	for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
		ss += ((double)xr[j] - mu) * ((double)xr[j] - mu);
	ss = block_sum(ss, sh);
	m = (float)mu;
	rs = (float)(1.0 / sqrt(ss / (double)d + eps));
	if (threadIdx.x == 0) {
		mean[blockIdx.x] = m;
		rstd[blockIdx.x] = rs;
	}
	for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
		yr[j] = (xr[j] - m) * rs * (g ? g[j] : 1.0f) + (b ? b[j] : 0.0f);
}

__global__ static void k_layernorm_bwd_data(const float *__restrict__ x,
                                            const float *__restrict__ g,
                                            const float *__restrict__ mean,
                                            const float *__restrict__ rstd,
                                            const float *__restrict__ dy, float *__restrict__ dx,
                                            int64_t d)
{
	__shared__ double sh[32];
	const float *xr = x + blockIdx.x * d, *dyr = dy + blockIdx.x * d;
	float *dxr = dx + blockIdx.x * d;
	float m = mean[blockIdx.x], rs = rstd[blockIdx.x], ma, mb;
	double a = 0.0, bsum = 0.0;
	for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
		float gh = dyr[j] * (g ? g[j] : 1.0f);
		float xh = (xr[j] - m) * rs;
		a += gh;
		bsum += (double)gh * xh;
	}
	ma = (float)(block_sum(a, sh) / (double)d);
	mb = (float)(block_sum(bsum, sh) / (double)d);
	for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
		float gh = dyr[j] * (g ? g[j] : 1.0f);
		float xh = (xr[j] - m) * rs;
		dxr[j] = rs * (gh - ma - xh * mb);
	}
}

/* dg[j] += Σ_r dy·x̂, db[j] += Σ_r dy: one thread per column, rows in order. */
__global__ static void k_layernorm_bwd_weight(const float *__restrict__ x,
                                              const float *__restrict__ mean,
                                              const float *__restrict__ rstd,
                                              const float *__restrict__ dy, float *dg,
                                              float *db, int64_t rows, int64_t d)
{
	for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < d;
	     j += (int64_t)gridDim.x * blockDim.x) {
		float ag = dg ? dg[j] : 0.0f, ab = db ? db[j] : 0.0f;
		for (int64_t r = 0; r < rows; r++) {
			float v = dy[r * d + j];
			ag += v * ((x[r * d + j] - mean[r]) * rstd[r]);
			ab += v;
		}
		if (dg)
			dg[j] = ag;
		if (db)
			db[j] = ab;
	}
}

static void rows_ok(int64_t rows, const char *what)
{
	if (rows > 2147483647)
		rt_cu_fail("%s: %lld rows is too many for one launch", what, (long long)rows);
}

extern "C" void rt_layernorm_fwd(const float *x, const float *g, const float *b, float *y,
                                 float *mean, float *rstd, int64_t rows, int64_t d, double eps)
{
	if (rt_cu.dry || rows <= 0 || d <= 0)
		return;
	rows_ok(rows, "rt_layernorm_fwd");
	k_layernorm_fwd<<<(unsigned)rows, TPB, 0, rt_cu.stream>>>(x, g, b, y, mean, rstd, d, eps);
	RT_CU_LAUNCHED("rt_layernorm_fwd");
}

extern "C" void rt_layernorm_bwd_data(const float *x, const float *g, const float *mean,
                                      const float *rstd, const float *dy, float *dx,
                                      int64_t rows, int64_t d)
{
	if (rt_cu.dry || rows <= 0 || d <= 0)
		return;
	rows_ok(rows, "rt_layernorm_bwd_data");
	k_layernorm_bwd_data<<<(unsigned)rows, TPB, 0, rt_cu.stream>>>(x, g, mean, rstd, dy, dx, d);
	RT_CU_LAUNCHED("rt_layernorm_bwd_data");
}

extern "C" void rt_layernorm_bwd_weight(const float *x, const float *mean, const float *rstd,
                                        const float *dy, float *dg, float *db, int64_t rows,
                                        int64_t d)
{
	if (rt_cu.dry || rows <= 0 || d <= 0 || (!dg && !db))
		return;
	k_layernorm_bwd_weight<<<grid_for(d), TPB, 0, rt_cu.stream>>>(x, mean, rstd, dy, dg, db,
	                                                               rows, d);
	RT_CU_LAUNCHED("rt_layernorm_bwd_weight");
}

/* ---- Softmax over the last dimension. ---- */

__global__ static void k_softmax_fwd(const float *__restrict__ x, float *__restrict__ y,
                                     int64_t d)
{
	__shared__ double sh[32];
	__shared__ float shf[32];
	const float *xr = x + blockIdx.x * d;
	float *yr = y + blockIdx.x * d;
	float mx = -INFINITY, inv;
	double s = 0.0;
	for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
		mx = xr[j] > mx ? xr[j] : mx;
	mx = block_max(mx, shf);
	for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
		yr[j] = expf(xr[j] - mx);   /* max subtracted: no overflow */
		s += yr[j];
	}
	inv = (float)(1.0 / block_sum(s, sh));
	for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
		yr[j] *= inv;
}

__global__ static void k_softmax_bwd(const float *__restrict__ y, const float *__restrict__ dy,
                                     float *__restrict__ dx, int64_t d)
{
	__shared__ double sh[32];
	const float *yr = y + blockIdx.x * d, *dyr = dy + blockIdx.x * d;
	float *dxr = dx + blockIdx.x * d;
	double dot = 0.0;
	float fd;
	for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
		dot += (double)dyr[j] * yr[j];
	fd = (float)block_sum(dot, sh);
	for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
		dxr[j] = yr[j] * (dyr[j] - fd);
}

extern "C" void rt_softmax_fwd(const float *x, float *y, int64_t rows, int64_t d)
{
	if (rt_cu.dry || rows <= 0 || d <= 0)
		return;
	rows_ok(rows, "rt_softmax_fwd");
	k_softmax_fwd<<<(unsigned)rows, TPB, 0, rt_cu.stream>>>(x, y, d);
	RT_CU_LAUNCHED("rt_softmax_fwd");
}

extern "C" void rt_softmax_bwd(const float *y, const float *dy, float *dx, int64_t rows, int64_t d)
{
	if (rt_cu.dry || rows <= 0 || d <= 0)
		return;
	rows_ok(rows, "rt_softmax_bwd");
	k_softmax_bwd<<<(unsigned)rows, TPB, 0, rt_cu.stream>>>(y, dy, dx, d);
	RT_CU_LAUNCHED("rt_softmax_bwd");
}

/* ---- Losses. ---- */

/* One block per row: the row's loss into rowloss[r], its gradient into
 * dlogits (when given), as rt_kernels.c computes them. */
__global__ static void k_cross_entropy(const float *__restrict__ logits,
                                       const int32_t *__restrict__ t, float *dlogits,
                                       double *__restrict__ rowloss, int64_t classes,
                                       double scale)
{
	__shared__ double sh[32];
	__shared__ float shf[32];
	const float *z = logits + blockIdx.x * classes;
	float mx = -INFINITY;
	double s = 0.0, lse;
	int32_t c = t[blockIdx.x];
	for (int64_t j = threadIdx.x; j < classes; j += blockDim.x)
		mx = z[j] > mx ? z[j] : mx;
	mx = block_max(mx, shf);
	for (int64_t j = threadIdx.x; j < classes; j += blockDim.x)
		s += exp((double)z[j] - mx);
	lse = mx + log(block_sum(s, sh));
	if (threadIdx.x == 0)
		rowloss[blockIdx.x] = (c >= 0 && c < classes) ? lse - z[c] : (double)NAN;
	if (dlogits) {
		float *dz = dlogits + blockIdx.x * classes;
		for (int64_t j = threadIdx.x; j < classes; j += blockDim.x) {
			float v = (float)(exp((double)z[j] - lse) * scale);
			if (j == c)
				v -= (float)scale;
			dz[j] = v;
		}
	}
}

/* *acc += Σ part[0..n), in order, by one thread: the CPU's order. */
__global__ static void k_sum_into(const double *__restrict__ part, int64_t n, double *acc)
{
	double total = 0.0;
	for (int64_t i = 0; i < n; i++)
		total += part[i];
	*acc += total;
}

/* Fixed grid, fixed order: partial sums per block, summed by k_sum_into. */
#define MSE_BLOCKS 512
__global__ static void k_mse(const float *__restrict__ y, const float *__restrict__ t, float *dy,
                             double *__restrict__ part, int64_t n, float s2)
{
	__shared__ double sh[32];
	double total = 0.0;
	for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
	     i += (int64_t)gridDim.x * blockDim.x) {
		float e = y[i] - t[i];
		total += (double)e * e;
		if (dy)
			dy[i] = s2 * e;
	}
	total = block_sum(total, sh);
	if (threadIdx.x == 0)
		part[blockIdx.x] = total;
}

static void ce_into(const float *logits, const int32_t *t, float *dlogits, int64_t rows,
                    int64_t classes, double scale, double *acc)
{
	rows_ok(rows, "the cross-entropy loss");
	rt_cu_scratch(rows);
	k_cross_entropy<<<(unsigned)rows, TPB, 0, rt_cu.stream>>>(logits, t, dlogits,
	                                                         rt_cu.d_scratch, classes, scale);
	RT_CU_LAUNCHED("the cross-entropy loss");
	k_sum_into<<<1, 1, 0, rt_cu.stream>>>(rt_cu.d_scratch, rows, acc);
	RT_CU_LAUNCHED("the cross-entropy loss (sum)");
}

static void mse_into(const float *y, const float *t, float *dy, int64_t rows, int64_t width,
                     double scale, double *acc)
{
	rt_cu_scratch(MSE_BLOCKS);
	k_mse<<<MSE_BLOCKS, TPB, 0, rt_cu.stream>>>(y, t, dy, rt_cu.d_scratch, rows * width,
	                                           (float)(2.0 * scale));
	RT_CU_LAUNCHED("the MSE loss");
	k_sum_into<<<1, 1, 0, rt_cu.stream>>>(rt_cu.d_scratch, MSE_BLOCKS, acc);
	RT_CU_LAUNCHED("the MSE loss (sum)");
}

/* The returning forms wait for the device: kept for programs emitted
 * before rt_loss_ce existed.  A step that calls them runs without a graph. */
static double wait_ret(const char *what)
{
	if (rt_cu.capturing)
		rt_cu_fail("%s returns its sum to the host, which a CUDA graph cannot: run with "
		           "--cuda-graph off, or recompile the model (programs use rt_loss_ce)", what);
	RT_CU(cudaMemcpyAsync(rt_cu.h_ret, rt_cu.d_ret, sizeof(double), cudaMemcpyDeviceToHost,
	                      rt_cu.stream));
	RT_CU(cudaStreamSynchronize(rt_cu.stream));
	return *rt_cu.h_ret;
}

extern "C" double rt_loss_cross_entropy(const float *logits, const int32_t *t, float *dlogits,
                                        int64_t rows, int64_t classes, double scale)
{
	rt_cu.sync_loss_calls++;
	if (rt_cu.dry || rows <= 0)
		return 0.0;
	RT_CU(cudaMemsetAsync(rt_cu.d_ret, 0, sizeof(double), rt_cu.stream));
	ce_into(logits, t, dlogits, rows, classes, scale, rt_cu.d_ret);
	return wait_ret("rt_loss_cross_entropy");
}

extern "C" double rt_loss_mse(const float *y, const float *t, float *dy, int64_t rows,
                              int64_t width, double scale)
{
	rt_cu.sync_loss_calls++;
	if (rt_cu.dry || rows <= 0 || width <= 0)
		return 0.0;
	RT_CU(cudaMemsetAsync(rt_cu.d_ret, 0, sizeof(double), rt_cu.stream));
	mse_into(y, t, dy, rows, width, scale, rt_cu.d_ret);
	return wait_ret("rt_loss_mse");
}

extern "C" void rt_loss_ce(rt_ctx *c, const float *logits, const int32_t *t, float *dlogits,
                           int64_t rows, int64_t classes, double scale)
{
	(void)c;
	if (rt_cu.dry || rows <= 0)
		return;
	ce_into(logits, t, dlogits, rows, classes, scale, rt_cu.d_loss);
}

extern "C" void rt_loss_mse_acc(rt_ctx *c, const float *y, const float *t, float *dy,
                                int64_t rows, int64_t width, double scale)
{
	(void)c;
	if (rt_cu.dry || rows <= 0 || width <= 0)
		return;
	mse_into(y, t, dy, rows, width, scale, rt_cu.d_loss);
}

/* ---- Copies. ---- */

extern "C" void rt_copy(void *dst, const void *src, size_t bytes)
{
	const char *d = (const char *)dst, *s = (const char *)src;
	if (rt_cu.dry || dst == src || bytes == 0)
		return;
	/* The memory plan gives live tensors disjoint ranges: an overlap is a
	 * planning error, not a case to handle. */
	if (d < s + bytes && s < d + bytes)
		rt_cu_fail("rt_copy of %zu bytes between overlapping buffers", bytes);
	RT_CU(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, rt_cu.stream));
}

/* ---- 16-bit values (rt_math.h). ---- */

/* y[i] = x[i] rounded; y == x allowed (each element read, then written) */
__global__ static void k_round_into(float *y, const float *x, int64_t n, int prec)
{
	for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
	     i += (int64_t)gridDim.x * blockDim.x)
		y[i] = prec == RT_PREC_BF16 ? rt_round_bf16(x[i]) : rt_round_f16(x[i]);
}

extern "C" void rt_round(rt_ctx *c, float *x, int64_t n)
{
	int prec = c->p->precision;
	if (rt_cu.dry || n <= 0 || prec == RT_PREC_F32)
		return;
	k_round_into<<<grid_for(n), TPB, 0, rt_cu.stream>>>(x, x, n, prec);
	RT_CU_LAUNCHED("rt_round");
}

extern "C" void rt_zero(void *dst, size_t bytes)
{
	if (rt_cu.dry || bytes == 0)
		return;
	RT_CU(cudaMemsetAsync(dst, 0, bytes, rt_cu.stream));
}

/* ---- Optimizer primitives (rt_dev.h; rt_optim.c composes them). ---- */

/* rt_optim_cpu.c's loops, one element a thread.  The scalars come by value,
 * or from the device (ds) in a step being captured: a replayed graph reads
 * the ones rt_dev_step uploads before each launch. */
__global__ static void k_optim(float *__restrict__ w, const float *__restrict__ g,
                               float *__restrict__ m, float *__restrict__ v, int64_t n,
                               rt_osc sv, const rt_osc *__restrict__ ds, int decay)
{
	const rt_osc s = ds ? *ds : sv;
	int l2 = decay && s.l2, decoupled = decay && s.kind == RT_OPTIM_ADAMW;
	for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
	     i += (int64_t)gridDim.x * blockDim.x) {
		float gi = g[i], wi = w[i];
		if (s.clipped)
			gi = gi * s.clip;
		if (l2)
			gi = gi + s.wd * wi;
		if (s.kind == RT_OPTIM_SGD) {
			if (m) {
				float b = s.momentum * m[i] + gi;
				m[i] = b;
				gi = s.nesterov ? gi + s.momentum * b : b;
			}
			w[i] = wi - s.lr * gi;
		} else {
			float mi, vi;
			if (decoupled)
				wi = wi * s.decay;
			mi = m[i] + s.omb1 * (gi - m[i]);
			vi = s.b2 * v[i] + s.omb2 * gi * gi;
			m[i] = mi;
			v[i] = vi;
			w[i] = wi - s.step_size * (mi / (sqrtf(vi) / s.bc2 + s.eps));
		}
	}
}

extern "C" void rt_dev_optim_update(rt_ctx *c, const rt_osc *s, int decay, int64_t off,
                                    int64_t n)
{
	float *w = c->master ? c->master : c->w;
	if (rt_cu.dry || n <= 0)
		return;
	k_optim<<<grid_for(n), TPB, 0, rt_cu.stream>>>(
		w + off, c->g + off, c->opt_m ? c->opt_m + off : NULL, c->opt_v ? c->opt_v + off : NULL,
		n, *s, rt_cu.capturing ? rt_cu.d_osc : NULL, decay);
	RT_CU_LAUNCHED("rt_optim_step (update)");
}

/* Σ g² of one range: block b of SUMSQ_BLOCKS adds elements b·TPB + i,
 * striding by the grid, into part[b]; the grid is fixed, so the order is. */
enum { SUMSQ_BLOCKS = 256 };

__global__ static void k_sumsq(const float *__restrict__ g, int64_t n, double *part)
{
	__shared__ double sh[32];
	double acc = 0.0;
	for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
	     i += (int64_t)gridDim.x * blockDim.x)
		acc += (double)g[i] * (double)g[i];
	acc = block_sum(acc, sh);
	if (threadIdx.x == 0)
		part[blockIdx.x] += acc;
}

__global__ static void k_sum_parts(const double *part, int n, double *out)
{
	__shared__ double sh[32];
	double acc = 0.0;
	for (int i = threadIdx.x; i < n; i += blockDim.x)
		acc += part[i];
	acc = block_sum(acc, sh);
	if (threadIdx.x == 0)
		*out = acc;
}

extern "C" double rt_dev_optim_sumsq(rt_ctx *c, const rt_orange *r, int n)
{
	double *part = rt_cu.d_scratch, *out = rt_cu.d_scratch + SUMSQ_BLOCKS;
	if (rt_cu.dry)
		return 0.0;
	/* rt_dev_start sized the scratch for at least 1024 doubles */
	RT_CU(cudaMemsetAsync(part, 0, SUMSQ_BLOCKS * sizeof(double), rt_cu.stream));
	for (int k = 0; k < n; k++)
		if (r[k].len > 0) {
			k_sumsq<<<SUMSQ_BLOCKS, TPB, 0, rt_cu.stream>>>(c->g + r[k].off, r[k].len, part);
			RT_CU_LAUNCHED("rt_optim_step (gradient norm)");
		}
	k_sum_parts<<<1, TPB, 0, rt_cu.stream>>>(part, SUMSQ_BLOCKS, out);
	RT_CU_LAUNCHED("rt_optim_step (gradient norm)");
	RT_CU(cudaMemcpyAsync(rt_cu.h_ret, out, sizeof(double), cudaMemcpyDeviceToHost,
	                      rt_cu.stream));
	rt_xp_sync(c);      /* as rt_cu_tied_sum: progresses the transport while it waits */
	return *rt_cu.h_ret;
}

extern "C" void rt_dev_optim_finish(rt_ctx *c)
{
	const rt_program *p = c->p;
	int64_t n = p->nweights;
	if (rt_cu.dry || n <= 0)
		return;
	if (c->master) {    /* the weights the kernels read: the update, rounded */
		k_round_into<<<grid_for(n), TPB, 0, rt_cu.stream>>>(c->w, c->master, n, p->precision);
		RT_CU_LAUNCHED("rt_optim_step (16-bit weights)");
	}
	/* The next step's backward passes accumulate from zero. */
	RT_CU(cudaMemsetAsync(c->g, 0, (size_t)n * sizeof(float), rt_cu.stream));
}

extern "C" void rt_dev_tied_sum(rt_ctx *c)
{
	rt_cu_tied_sum(c);      /* tied copies: summed gradients (rt_optim.c says why) */
}
