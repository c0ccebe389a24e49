/* rt_kernels.c — compute kernels of pipert.h.
 *
 * GEMMs go to CBLAS (OpenBLAS); everything else is a plain loop over
 * contiguous float arrays with `restrict` pointers and no calls in the
 * body where avoidable, so gcc -O2/-O3 vectorises it.  Row reductions
 * (softmax, layernorm, losses) accumulate in double: their results feed
 * every later layer, and double sums make the kernels agree with a numpy
 * float64 reference to float32 rounding regardless of width.
 *
 * Gradient kernels ACCUMULATE into weight gradients (dw, db, dg) and
 * OVERWRITE input gradients (dx), as pipert.h states.
 */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "rt_internal.h"
#include "rt_math.h"
#include "rt_small_gemm.h"
#include "rt_vec.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_F16C_PATH 1
#endif

/* ---- Linear: y = x·Wᵀ + b, W is [out, in] (PyTorch's layout). ---- */

void rt_linear_fwd(const float *x, const float *w, const float *b, float *y,
                   int64_t rows, int64_t in, int64_t out)
{
	float beta = 0.0f;
	if (rows <= 0 || out <= 0)
		return;
	if (b) {
		for (int64_t r = 0; r < rows; r++)
			memcpy(y + r * out, b, (size_t)out * sizeof *y);
		beta = 1.0f;
	}
	if (rt_small_gemm(1, rows, out, in, x, in, w, in, beta, y, out) == 0)
		return;         /* one to eight rows (a decode step): rt_small_gemm.h */
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)out, (int)in,
	            1.0f, x, (int)in, w, (int)in, beta, y, (int)out);
}

void rt_linear_bwd_data(const float *dy, const float *w, float *dx,
                        int64_t rows, int64_t in, int64_t out)
{
	if (rows <= 0 || in <= 0)
		return;
	/* dx[rows, in] = dy[rows, out] · W[out, in] */
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)in, (int)out,
	            1.0f, dy, (int)out, w, (int)in, 0.0f, dx, (int)in);
}

void rt_linear_bwd_weight(const float *x, const float *dy, float *dw, float *db,
                          int64_t rows, int64_t in, int64_t out)
{
	if (rows <= 0)
		return;
	/* dW[out, in] += dyᵀ[out, rows] · x[rows, in] */
	cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)out, (int)in, (int)rows,
	            1.0f, dy, (int)out, x, (int)in, 1.0f, dw, (int)in);
	if (db) {
		/* Row by row: each inner loop is a contiguous vector add. */
		for (int64_t r = 0; r < rows; r++) {
			const float *restrict d = dy + r * out;
			float *restrict o = db;
			for (int64_t j = 0; j < out; j++)
				o[j] += d[j];
		}
	}
}

/* ---- Pointwise activations. ---- */

void rt_relu_fwd(const float *restrict x, float *restrict y, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void rt_relu_bwd(const float *restrict y, const float *restrict dy, float *restrict dx, int64_t n)
{
	/* y > 0 exactly where x > 0; PyTorch's threshold_backward also gives 0 at x = 0. */
	for (int64_t i = 0; i < n; i++)
		dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

RT_VEC_CLONES
void rt_gelu_fwd(const float *restrict x, float *restrict y, int64_t n)
{
	/* nn.GELU(): x·Φ(x) with the exact normal CDF. */
	for (int64_t i = 0; i < n; i++)
		y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

RT_VEC_CLONES
void rt_gelu_bwd(const float *restrict x, const float *restrict dy, float *restrict dx, int64_t n)
{
	/* d/dx x·Φ(x) = Φ(x) + x·φ(x). */
	const float k = 0.3989422804014327f;    /* 1/sqrt(2π) */
	for (int64_t i = 0; i < n; i++) {
		float cdf = 0.5f * (1.0f + erff(x[i] * 0.70710678118654752f));
		float pdf = k * expf(-0.5f * x[i] * x[i]);
		dx[i] = dy[i] * (cdf + x[i] * pdf);
	}
}

RT_VEC_CLONES
void rt_tanh_fwd(const float *restrict x, float *restrict y, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		y[i] = tanhf(x[i]);
}

void rt_tanh_bwd(const float *restrict y, const float *restrict dy, float *restrict dx, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		dx[i] = dy[i] * (1.0f - y[i] * y[i]);
}

RT_VEC_CLONES
void rt_sigmoid_fwd(const float *restrict x, float *restrict y, int64_t n)
{
	/* exp of a non-positive argument only: no overflow for large |x|. */
	for (int64_t i = 0; i < n; i++) {
		float e = expf(-fabsf(x[i]));
		float s = 1.0f / (1.0f + e);
		y[i] = x[i] >= 0.0f ? s : e * s;
	}
}

void rt_sigmoid_bwd(const float *restrict y, const float *restrict dy, float *restrict dx, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		dx[i] = dy[i] * y[i] * (1.0f - y[i]);
}

RT_VEC_CLONES
void rt_silu_fwd(const float *restrict x, float *restrict y, int64_t n)
{
	/* nn.SiLU(): x·σ(x), σ as rt_sigmoid_fwd computes it. */
	for (int64_t i = 0; i < n; i++) {
		float e = expf(-fabsf(x[i]));
		float s = 1.0f / (1.0f + e);
		y[i] = x[i] * (x[i] >= 0.0f ? s : e * s);
	}
}

RT_VEC_CLONES
void rt_silu_bwd(const float *restrict x, const float *restrict dy, float *restrict dx, int64_t n)
{
	/* d/dx x·σ(x) = σ(x)·(1 + x·(1 - σ(x))). */
	for (int64_t i = 0; i < n; i++) {
		float e = expf(-fabsf(x[i]));
		float s = 1.0f / (1.0f + e);
		s = x[i] >= 0.0f ? s : e * s;
		dx[i] = dy[i] * s * (1.0f + x[i] * (1.0f - s));
	}
}

/* ---- Dropout. ---- */

/* The keep decision of one element: 53 uniform bits against p, computed
 * from the element's global coordinates only. */
static inline uint64_t row_base(uint64_t seed, uint64_t key, int64_t step, int64_t row)
{
	uint64_t h = rt_mix64(seed ^ 0x6a09e667f3bcc909ull);
	h = rt_mix64(h ^ key * 0x9e3779b97f4a7c15ull);
	h = rt_mix64(h ^ (uint64_t)step * 0xc2b2ae3d27d4eb4full);
	return rt_mix64(h ^ (uint64_t)row * 0x165667b19e3779f9ull);
}

static inline int keep(uint64_t base, int64_t col, uint64_t thresh)
{
	return (rt_mix64(base + (uint64_t)col * 0x9e3779b97f4a7c15ull) >> 11) >= thresh;
}

static uint64_t threshold(double p)
{
	/* keep iff u >= p with u = bits·2^-53, i.e. bits >= ceil(p·2^53). */
	return (uint64_t)ceil(p * 0x1p53);
}

int64_t rt_dropout_step0;

void rt_dropout_fwd(const float *x, float *y, int64_t rows, int64_t width, double p,
                    uint64_t seed, uint64_t key, int64_t step, int64_t row0)
{
	uint64_t th = threshold(p);
	float scale = p < 1.0 ? (float)(1.0 / (1.0 - p)) : 0.0f;
	if (p <= 0.0) {
		if (x != y)
			memmove(y, x, (size_t)(rows * width) * sizeof *y);
		return;
	}
	for (int64_t r = 0; r < rows; r++) {
		uint64_t base = row_base(seed, key, step + rt_dropout_step0, row0 + r);
		const float *xr = x + r * width;
		float *yr = y + r * width;
		for (int64_t j = 0; j < width; j++)
			yr[j] = keep(base, j, th) ? xr[j] * scale : 0.0f;
	}
}

void rt_dropout_bwd(const float *dy, float *dx, int64_t rows, int64_t width, double p,
                    uint64_t seed, uint64_t key, int64_t step, int64_t row0)
{
	/* The same mask and scale as forward: dropout is linear in x. */
	rt_dropout_fwd(dy, dx, rows, width, p, seed, key, step, row0);
}

/* ---- LayerNorm over the last dimension (biased variance, as PyTorch). ---- */

RT_VEC_CLONES
void rt_layernorm_fwd(const float *x, const float *g, const float *b, float *y,
                      float *mean, float *rstd, int64_t rows, int64_t d, double eps)
{
	for (int64_t r = 0; r < rows; r++) {
		const float *restrict xr = x + r * d;
		float *restrict yr = y + r * d;
		double mu, var;
		float m, rs;
		mu = rt_vec_sum(xr, d) / (double)d;
		/* Two passes: the centred sum of squares does not cancel. */
		var = rt_vec_sqdev(xr, mu, d) / (double)d;
		m = (float)mu;
		rs = (float)(1.0 / sqrt(var + eps));
		mean[r] = m;
		rstd[r] = rs;
		if (g && b)         /* apart: a test inside the loop keeps it scalar */
			for (int64_t j = 0; j < d; j++)
				yr[j] = (xr[j] - m) * rs * g[j] + b[j];
		else
			for (int64_t j = 0; j < d; j++)
				yr[j] = (xr[j] - m) * rs * (g ? g[j] : 1.0f) + (b ? b[j] : 0.0f);
	}
}

/* One row of rt_layernorm_bwd_data; g NULL reads as ones.  Inlined at two
 * call sites, g known NULL at one and non-NULL at the other, so neither
 * loop tests it per element (a conditional load keeps a loop scalar). */
static inline __attribute__((always_inline))
void layernorm_bwd_row(const float *restrict xr, const float *restrict g,
                       const float *restrict dyr, float *restrict dxr, float m, float rs, int64_t d)
{
	double a[RT_VEC_LANES] = {0}, bs[RT_VEC_LANES] = {0}, at = 0.0, bt = 0.0;
	float ma, mb;
	int64_t j = 0;
	/* Both sums in rt_vec.h's lanes. */
	for (; j + RT_VEC_LANES <= d; j += RT_VEC_LANES)
		for (int k = 0; k < RT_VEC_LANES; k++) {
			float gh = dyr[j + k] * (g ? g[j + k] : 1.0f);
			float xh = (xr[j + k] - m) * rs;
			a[k] += gh;
			bs[k] += (double)gh * xh;
		}
	for (; j < d; j++) {
		float gh = dyr[j] * (g ? g[j] : 1.0f);
		float xh = (xr[j] - m) * rs;
		at += gh;
		bt += (double)gh * xh;
	}
	for (int k = 0; k < RT_VEC_LANES; k++) {
		at += a[k];
		bt += bs[k];
	}
	ma = (float)(at / (double)d);
	mb = (float)(bt / (double)d);
	for (j = 0; j < d; j++) {
		float gh = dyr[j] * (g ? g[j] : 1.0f);
		float xh = (xr[j] - m) * rs;
		dxr[j] = rs * (gh - ma - xh * mb);
	}
}

RT_VEC_CLONES
void rt_layernorm_bwd_data(const float *x, const float *g, const float *mean,
                           const float *rstd, const float *dy, float *dx,
                           int64_t rows, int64_t d)
{
	/* With x̂ = (x - μ)·rstd and ĝ = dy·g:
	 * dx = rstd · (ĝ - mean(ĝ) - x̂ · mean(ĝ · x̂)). */
	for (int64_t r = 0; r < rows; r++) {
		if (g)
			layernorm_bwd_row(x + r * d, g, dy + r * d, dx + r * d, mean[r], rstd[r], d);
		else
			layernorm_bwd_row(x + r * d, NULL, dy + r * d, dx + r * d, mean[r], rstd[r], d);
	}
}

RT_VEC_CLONES
void rt_layernorm_bwd_weight(const float *x, const float *mean, const float *rstd,
                             const float *dy, float *dg, float *db, int64_t rows, int64_t d)
{
	for (int64_t r = 0; r < rows; r++) {
		const float *restrict xr = x + r * d, *restrict dyr = dy + r * d;
		float m = mean[r], rs = rstd[r];
		if (dg)
			for (int64_t j = 0; j < d; j++)
				dg[j] += dyr[j] * ((xr[j] - m) * rs);
		if (db)
			for (int64_t j = 0; j < d; j++)
				db[j] += dyr[j];
	}
}

/* ---- Softmax over the last dimension. ---- */

/* The maximum, the exponentials and their double sum in rt_vec.h's
 * vectorised loops. */
RT_VEC_CLONES
void rt_softmax_fwd(const float *x, float *y, int64_t rows, int64_t d)
{
	for (int64_t r = 0; r < rows; r++) {
		const float *restrict xr = x + r * d;
		float *restrict yr = y + r * d;
		float mx = rt_vec_max(xr, d), inv;
		for (int64_t j = 0; j < d; j++)
			yr[j] = rt_exp_vec(xr[j] - mx);     /* max subtracted: no overflow */
		inv = (float)(1.0 / rt_vec_sum(yr, d));
		for (int64_t j = 0; j < d; j++)
			yr[j] *= inv;
	}
}

RT_VEC_CLONES
void rt_softmax_bwd(const float *y, const float *dy, float *dx, int64_t rows, int64_t d)
{
	/* dx = y ⊙ (dy - Σ dy·y) */
	for (int64_t r = 0; r < rows; r++) {
		const float *restrict yr = y + r * d, *restrict dyr = dy + r * d;
		float *restrict dxr = dx + r * d;
		float fd = (float)rt_vec_dot(dyr, yr, d);
		for (int64_t j = 0; j < d; j++)
			dxr[j] = yr[j] * (dyr[j] - fd);
	}
}

/* ---- Losses. ---- */

RT_VEC_CLONES
double rt_loss_cross_entropy(const float *logits, const int32_t *t, float *dlogits,
                             int64_t rows, int64_t classes, double scale)
{
	double total = 0.0;
	for (int64_t r = 0; r < rows; r++) {
		const float *restrict z = logits + r * classes;
		float mx = -INFINITY;
		double s = 0.0, lse;
		int32_t c = t[r];
		for (int64_t j = 0; j < classes; j++)
			mx = z[j] > mx ? z[j] : mx;
		for (int64_t j = 0; j < classes; j++)
			s += exp((double)z[j] - mx);
		/* log-sum-exp around the max: finite for any finite logits. */
		lse = mx + log(s);
		/* Targets are validated when loaded; a bad one here gives NaN, not
		 * an out-of-bounds read. */
		total += (c >= 0 && c < classes) ? lse - z[c] : NAN;
		if (dlogits) {
			float *restrict dz = dlogits + r * classes;
			for (int64_t j = 0; j < classes; j++)
				dz[j] = (float)(exp((double)z[j] - lse) * scale);
			if (c >= 0 && c < classes)
				dz[c] -= (float)scale;
		}
	}
	return total;
}

double rt_loss_mse(const float *y, const float *t, float *dy,
                   int64_t rows, int64_t width, double scale)
{
	int64_t n = rows * width;
	double total = 0.0;
	float s2 = (float)(2.0 * scale);
	for (int64_t i = 0; i < n; i++) {
		float e = y[i] - t[i];
		total += (double)e * e;
		if (dy)
			dy[i] = s2 * e;
	}
	return total;
}

void rt_copy(void *dst, const void *src, size_t bytes)
{
	if (dst != src)
		memmove(dst, src, bytes);
}

void rt_zero(void *dst, size_t bytes)
{
	memset(dst, 0, bytes);
}

/* f16 rounding, 8 values at a time, where the CPU converts in hardware
 * (x86's F16C, every x86-64 core since 2012: IEEE round-to-nearest-even
 * both ways, so the same values as rt_round_f16, which the scalar version
 * branches through at 3x the time; t/runtime-kernels.c checks the two
 * agree). */
#ifdef HAVE_F16C_PATH
__attribute__((target("f16c,avx")))
static void round_f16_f16c(float *dst, const float *src, int64_t n)
{
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(src + i),
		                                                           _MM_FROUND_TO_NEAREST_INT)));
	for (; i < n; i++)
		dst[i] = rt_round_f16(src[i]);
}
#endif

static void round_f16_scalar(float *dst, const float *src, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		dst[i] = rt_round_f16(src[i]);
}

static void round_bf16(float *dst, const float *src, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		dst[i] = rt_round_bf16(src[i]);
}

void rt_round_into_host(int prec, float *dst, const float *src, int64_t n)
{
#ifdef HAVE_F16C_PATH
	static int f16c = -1;
	if (f16c < 0)
		f16c = __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx");
#endif
	if (prec == RT_PREC_BF16) {
		round_bf16(dst, src, n);
	} else if (prec == RT_PREC_F16) {
#ifdef HAVE_F16C_PATH
		if (f16c) {
			round_f16_f16c(dst, src, n);
			return;
		}
#endif
		round_f16_scalar(dst, src, n);
	} else if (dst != src) {
		memmove(dst, src, (size_t)n * sizeof *dst);
	}
}

void rt_round_host(int prec, float *x, int64_t n)
{
	rt_round_into_host(prec, x, x, n);
}

void rt_round(rt_ctx *c, float *x, int64_t n)
{
	rt_round_host(c->p->precision, x, n);
}

int rt_blas_threads(int n)
{
#ifdef OPENBLAS_VERSION
	/* OpenBLAS would start one thread per core in every rank; with several
	 * ranks per node they would fight over the cores. */
	openblas_set_num_threads(n);
	return n;
#else
	(void)n;
	return 0;
#endif
}
