/* rt_llama.cu — the GPU's side of the Llama family: rt_llama_cpu.c's
 * functions on the device.  RMSNorm, the token embedding and rt_dev.h's
 * Llama primitives (the rotary embedding, SwiGLU, the key/value cache's
 * stores); the block itself is rt_llama.c's composition, compiled into
 * libpipert_cuda.a as it is into libpipert.a, over these and rt_tf.cu's.
 *
 * As rt_tf.cu: every function enqueues on the compute stream and returns
 * at once, allocates nothing (a step of them is captured as one CUDA
 * graph), does nothing while rt_cu.dry is set; tensor pointers are device
 * pointers, the rt_tf description L is host memory.
 *
 * What the CPU computes, how close this comes (t/runtime-cuda-kernels.c
 * checks each against rt_cpu_*):
 *   - RMSNorm: the squares summed in double as rt_llama_cpu.c sums them,
 *     in another order (a block reduction, rt_reduce.cuh); the weight
 *     gradient down the rows in order, one thread per column: the CPU's
 *     bits given the same rstd;
 *   - the embedding and the cache's stores are copies; the embedding's
 *     gradient adds rows in the CPU's order: its bits;
 *   - SwiGLU: rt_math.h's expressions, --fmad=false, expf of the CUDA
 *     math library (2 ulp; the CPU's vectorised loops call glibc's vector
 *     expf, 4 ulp);
 *   - the rotary embedding: the same float inv_freq (rt_tf_layout.h's
 *     llama_inv_freq, computed on the host and passed by value), the same
 *     float angle, cos and sin in double rounded to float as the CPU
 *     rounds glibc's; CUDA's double cos and sin are within 2 ulp of
 *     double, so the floats agree but where a double result lies that
 *     close to a float's rounding boundary.
 */
#include <math.h>
#include <stdint.h>

#include "rt_cuda.h"
#include "rt_math.h"
#include "rt_launch.cuh"
#include "rt_reduce.cuh"
#include "rt_scatter.cuh"
#include "rt_tf_layout.h"       /* llama_inv_freq */

/* ---- RMSNorm (LlamaRMSNorm) ----
 * One block per row; the sums in double, as rt_llama_cpu.c's (the same
 * products, added in another order). */

__global__ static void k_rmsnorm_fwd(const float *x, const float *__restrict__ w,
                                     float *y, float *__restrict__ rstd, int64_t d, double eps)
{
	__shared__ double sh[32];
	const float *xr = x + blockIdx.x * d;
	float *yr = y + blockIdx.x * d;
	double ss = 0.0;
	float rs;
	for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
		ss += (double)xr[j] * xr[j];
	rs = (float)(1.0 / sqrt(block_sum(ss, sh) / (double)d + eps));
	if (rstd && threadIdx.x == 0)
		rstd[blockIdx.x] = rs;
	/* each thread reads and writes only its own columns: y may be x */
	for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
		yr[j] = (w ? w[j] : 1.0f) * (xr[j] * rs);
}

/* With x̂ = x·rstd and ĝ = dy·w: dx = rstd · (ĝ - x̂ · mean(ĝ · x̂)). */
__global__ static void k_rmsnorm_bwd_data(const float *__restrict__ x,
                                          const float *__restrict__ w,
                                          const float *__restrict__ rstd,
                                          const float *__restrict__ dy, float *__restrict__ dx,
                                          int64_t d)
{
	__shared__ double sh[32];
	const float *xr = x + blockIdx.x * d, *dyr = dy + blockIdx.x * d;
	float *dxr = dx + blockIdx.x * d;
	float rs = rstd[blockIdx.x], mb;
	double b = 0.0;
	for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
		b += (double)(dyr[j] * (w ? w[j] : 1.0f)) * (xr[j] * rs);
	mb = (float)(block_sum(b, sh) / (double)d);
	for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
		float gh = dyr[j] * (w ? w[j] : 1.0f);
		dxr[j] = rs * (gh - (xr[j] * rs) * mb);
	}
}

/* dw[j] += Σ_r dy·x̂: one thread per column, rows in order (the CPU's). */
__global__ static void k_rmsnorm_bwd_weight(const float *__restrict__ x,
                                            const float *__restrict__ rstd,
                                            const float *__restrict__ dy, float *__restrict__ dw,
                                            int64_t rows, int64_t d)
{
	GRID_STRIDE(j, d) {
		float acc = dw[j];
		for (int64_t r = 0; r < rows; r++)
			acc += dy[r * d + j] * (x[r * d + j] * rstd[r]);
		dw[j] = acc;
	}
}

extern "C" void rt_rmsnorm_fwd(const float *x, const float *w, float *y, float *rstd,
                               int64_t rows, int64_t d, double eps)
{
	if (rt_cu.dry || rows <= 0 || d <= 0)
		return;
	k_rmsnorm_fwd<<<row_grid(rows, "rt_rmsnorm_fwd"), TPB, 0, rt_cu.stream>>>(x, w, y, rstd, d,
	                                                                          eps);
	RT_CU_LAUNCHED("rt_rmsnorm_fwd");
}

extern "C" void rt_rmsnorm_bwd_data(const float *x, const float *w, const float *rstd,
                                    const float *dy, float *dx, int64_t rows, int64_t d)
{
	if (rt_cu.dry || rows <= 0 || d <= 0)
		return;
	k_rmsnorm_bwd_data<<<row_grid(rows, "rt_rmsnorm_bwd_data"), TPB, 0, rt_cu.stream>>>(
		x, w, rstd, dy, dx, d);
	RT_CU_LAUNCHED("rt_rmsnorm_bwd_data");
}

extern "C" void rt_rmsnorm_bwd_weight(const float *x, const float *rstd, const float *dy,
                                      float *dw, int64_t rows, int64_t d)
{
	if (rt_cu.dry || rows <= 0 || d <= 0 || !dw)
		return;
	k_rmsnorm_bwd_weight<<<grid_for(d), TPB, 0, rt_cu.stream>>>(x, rstd, dy, dw, rows, d);
	RT_CU_LAUNCHED("rt_rmsnorm_bwd_weight");
}

/* ---- The token embedding (embed_tokens) ----
 * As rt_llama_cpu.c: an id outside the table reads nothing (the row comes
 * out NaN) and backward skips its row.  No positions: the blocks rotate q
 * and k by position. */

__global__ static void k_llama_emb(const float *__restrict__ w, const int32_t *__restrict__ ids,
                                   float *__restrict__ y, int64_t vocab, int64_t n, int64_t d)
{
	GRID_STRIDE(i, n * d) {
		int64_t bt = i / d, j = i - bt * d, id = ids[bt];
		y[i] = id >= 0 && id < vocab ? w[id * d + j] : NAN;
	}
}

/* A row's key is its token id where the table has it (rt_scatter.cuh). */
struct llama_id_of {
	const int32_t *ids;
	int64_t vocab;
	__device__ int64_t operator()(int64_t bt) const
	{
		int64_t id = ids[bt];
		return id >= 0 && id < vocab ? id : -1;
	}
};

__global__ static void k_llama_emb_scatter(const int32_t *__restrict__ ids, int64_t vocab,
                                           const float *__restrict__ src,
                                           float *__restrict__ table, int64_t n, int64_t d)
{
	emb_scatter_row(llama_id_of{ ids, vocab }, src, table, n, d);
}

extern "C" void rt_llama_emb_fwd(const rt_tf *L, const float *w, const int32_t *ids, float *y,
                                 int64_t B, int64_t T)
{
	int64_t d = L->d, n = B * T;
	if (rt_cu.dry || n <= 0 || d <= 0)
		return;
	k_llama_emb<<<grid_for(n * d), TPB, 0, rt_cu.stream>>>(w, ids, y, L->vocab, n, d);
	RT_CU_LAUNCHED("rt_llama_emb_fwd");
}

extern "C" void rt_llama_emb_fwd_at(const rt_tf *L, const float *w, const int32_t *ids,
                                    float *y, int64_t B, int64_t T, int64_t pos0)
{
	(void)pos0;                 /* positions are the blocks' */
	rt_llama_emb_fwd(L, w, ids, y, B, T);
}

extern "C" void rt_llama_emb_bwd(const rt_tf *L, float *g, const int32_t *ids, const float *dy,
                                 int64_t B, int64_t T)
{
	int64_t d = L->d, n = B * T;
	if (rt_cu.dry || n <= 0 || d <= 0)
		return;
	k_llama_emb_scatter<<<row_grid(n, "rt_llama_emb_bwd"), TPB, 0, rt_cu.stream>>>(
		ids, L->vocab, dy, g, n, d);
	RT_CU_LAUNCHED("rt_llama_emb_bwd");
}

/* ---- Llama primitives (rt_dev.h) ---- */

/* The rotary frequencies travel by value with the launch (a captured graph
 * keeps them): head sizes up to 2·ROPE_MAX_HALF, 2 KiB of parameters. */
#define ROPE_MAX_HALF 512
typedef struct rope_freq {
	float inv[ROPE_MAX_HALF];
} rope_freq;

/* One thread per pair (i, i + half) of a head of a row: the pair turns by
 * f32(inv[i] · position), cos and sin of it in double rounded to float,
 * as rt_llama_cpu.c computes them. */
__global__ static void k_rope(rope_freq f, float *x, int64_t ld, int64_t nh, int64_t half,
                              int64_t T, int64_t pos0, const int64_t *__restrict__ dpos,
                              int inverse, int64_t n)
{
	GRID_STRIDE(e, n) {
		int64_t i = e % half, r = e / half, hh = r % nh, bt = r / nh;
		float pos = (float)((dpos ? *dpos : pos0) + bt % T);
		float a = f.inv[i] * pos;
		float cs = (float)cos((double)a), sn = (float)sin((double)a);
		float *x1 = x + bt * ld + hh * 2 * half, *x2 = x1 + half;
		float u = x1[i], v = x2[i];
		if (!inverse) {
			x1[i] = u * cs - v * sn;
			x2[i] = v * cs + u * sn;
		} else {
			x1[i] = u * cs + v * sn;
			x2[i] = v * cs - u * sn;
		}
	}
}

extern "C" void rt_dev_llama_rope(const rt_tf *L, float *x, int64_t ld, int64_t nh, int64_t B,
                                  int64_t T, int64_t pos0, const int64_t *dpos, int inverse)
{
	int64_t half = L->d / L->heads / 2, n = B * T * nh * half;
	rope_freq f;
	if (rt_cu.dry || n <= 0)
		return;
	if (half > ROPE_MAX_HALF)
		rt_cu_fail("rt_dev_llama_rope: a head of %lld features is more than the %d this "
		           "kernel takes", (long long)(2 * half), 2 * ROPE_MAX_HALF);
	llama_inv_freq(L, f.inv);   /* rt_tf_layout.h's, not rt_llama.c's: no call loop */
	k_rope<<<grid_for(n), TPB, 0, rt_cu.stream>>>(f, x, ld, nh, half, T, pos0, dpos, inverse,
	                                               n);
	RT_CU_LAUNCHED("a llama_block (rotary embedding)");
}

__global__ static void k_swiglu_fwd(const float *__restrict__ gu, float *__restrict__ a,
                                    int64_t f, int64_t n)
{
	GRID_STRIDE(i, n) {
		int64_t r = i / f, j = i - r * f;
		const float *g = gu + r * 2 * f;
		a[i] = rt_swiglu_hd(g[j], g[f + j]);
	}
}

__global__ static void k_swiglu_bwd(const float *__restrict__ gu, const float *__restrict__ da,
                                    float *__restrict__ dgu, int64_t f, int64_t n)
{
	GRID_STRIDE(i, n) {
		int64_t r = i / f, j = i - r * f;
		const float *g = gu + r * 2 * f;
		float *dg = dgu + r * 2 * f;
		dg[j] = rt_swiglu_dgate_hd(g[j], g[f + j], da[i]);
		dg[f + j] = rt_swiglu_dup_hd(g[j], da[i]);
	}
}

extern "C" void rt_dev_llama_swiglu_fwd(const float *gu, float *a, int64_t rows, int64_t f)
{
	int64_t n = rows * f;
	if (rt_cu.dry || n <= 0)
		return;
	k_swiglu_fwd<<<grid_for(n), TPB, 0, rt_cu.stream>>>(gu, a, f, n);
	RT_CU_LAUNCHED("a llama_block (SwiGLU)");
}

extern "C" void rt_dev_llama_swiglu_bwd(const float *gu, const float *da, float *dgu,
                                        int64_t rows, int64_t f)
{
	int64_t n = rows * f;
	if (rt_cu.dry || n <= 0)
		return;
	k_swiglu_bwd<<<grid_for(n), TPB, 0, rt_cu.stream>>>(gu, da, dgu, f, n);
	RT_CU_LAUNCHED("a llama_block (SwiGLU gradient)");
}

/* The keys (column ck) and values (cv) of qkv's n = B·T rows into the
 * caches at positions pos0 .. pos0+T-1 of their samples (rt_dev_tf_kv_pos
 * has checked that they fit). */
__global__ static void k_llama_kv_store(const float *__restrict__ qkv, int64_t ld, int64_t ck,
                                        int64_t cv, void *kc, void *vc, int64_t cap, int64_t T,
                                        int64_t pos0, const int64_t *__restrict__ dpos,
                                        int64_t kvw, int64_t n, int prec)
{
	GRID_STRIDE(i, n * kvw) {
		int64_t bt = i / kvw, j = i - bt * kvw, b = bt / T, t = bt - b * T;
		int64_t at = (b * cap + (dpos ? *dpos : pos0) + t) * kvw + j;
		float k = qkv[bt * ld + ck + j], v = qkv[bt * ld + cv + j];
		if (prec == RT_PREC_F32) {
			((float *)kc)[at] = k;
			((float *)vc)[at] = v;
		} else {
			int bf = prec == RT_PREC_BF16;
			((uint16_t *)kc)[at] = bf ? rt_bf16_bits(k) : rt_f16_bits(k);
			((uint16_t *)vc)[at] = bf ? rt_bf16_bits(v) : rt_f16_bits(v);
		}
	}
}

extern "C" void rt_dev_llama_kv_store(const float *qkv, int64_t ld, int64_t ck, int64_t cv,
                                      void *kc, void *vc, int64_t cap, int64_t B, int64_t T,
                                      int64_t pos0, const int64_t *dpos, int64_t kvw, int prec)
{
	int64_t n = B * T;
	if (rt_cu.dry || n <= 0 || kvw <= 0)
		return;
	k_llama_kv_store<<<grid_for(n * kvw), TPB, 0, rt_cu.stream>>>(qkv, ld, ck, cv, kc, vc, cap,
	                                                               T, pos0, dpos, kvw, n, prec);
	RT_CU_LAUNCHED("rt_llama_block_fwd_kv (cache)");
}
