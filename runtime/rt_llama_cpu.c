/* rt_llama_cpu.c — the CPU's side of the Llama family (pipert.h): the
 * kernels of their own (RMSNorm, the token embedding) and rt_dev.h's Llama
 * primitives that rt_llama.c composes llama_block from (the rotary
 * embedding, SwiGLU, the key/value cache's stores).  cuda/rt_llama.cu is
 * the GPU's side of the same functions. */
#include <math.h>
#include <string.h>

#include "rt_internal.h"
#include "rt_dev.h"
#include "rt_math.h"
#include "rt_tf_layout.h"
#include "rt_vec.h"

/* ---- RMSNorm (LlamaRMSNorm) ----
 * transformers computes it in float32 whatever the model's dtype:
 * variance = mean(x²), x·rsqrt(variance + eps), then times the weight.
 * The sum of squares is accumulated in double (as rt_layernorm_fwd's sums
 * are): within float32's rounding of torch's float32 mean. */

RT_VEC_CLONES
void rt_rmsnorm_fwd(const float *x, const float *w, float *y, float *rstd, int64_t rows,
                    int64_t d, double eps)
{
	for (int64_t r = 0; r < rows; r++) {
		const float *restrict xr = x + r * d;
		float *restrict yr = y + r * d;
		double ss = rt_vec_dot(xr, xr, d);      /* rt_vec.h: in vector lanes */
		float rs = (float)(1.0 / sqrt(ss / (double)d + eps));
		if (rstd)
			rstd[r] = rs;
		if (w)              /* apart: a test inside the loop keeps it scalar */
			for (int64_t j = 0; j < d; j++)
				yr[j] = w[j] * (xr[j] * rs);
		else
			for (int64_t j = 0; j < d; j++)
				yr[j] = xr[j] * rs;
	}
}

/* One row of rt_rmsnorm_bwd_data; w NULL reads as ones.  Inlined where w is
 * known NULL and where it is not, so that no loop tests it per element. */
static inline __attribute__((always_inline))
void rmsnorm_bwd_row(const float *restrict xr, const float *restrict w,
                     const float *restrict dyr, float *restrict dxr, float rs, int64_t d)
{
	double b[RT_VEC_LANES] = {0}, bt = 0.0;
	int64_t j = 0;
	for (; j + RT_VEC_LANES <= d; j += RT_VEC_LANES)
		for (int k = 0; k < RT_VEC_LANES; k++)
			b[k] += (double)(dyr[j + k] * (w ? w[j + k] : 1.0f)) * (xr[j + k] * rs);
	for (; j < d; j++)
		bt += (double)(dyr[j] * (w ? w[j] : 1.0f)) * (xr[j] * rs);
	for (int k = 0; k < RT_VEC_LANES; k++)
		bt += b[k];
	float mb = (float)(bt / (double)d);
	for (j = 0; j < d; j++) {
		float gh = dyr[j] * (w ? w[j] : 1.0f);
		dxr[j] = rs * (gh - (xr[j] * rs) * mb);
	}
}

RT_VEC_CLONES
void rt_rmsnorm_bwd_data(const float *x, const float *w, const float *rstd, const float *dy,
                         float *dx, int64_t rows, int64_t d)
{
	/* With x̂ = x·rstd and ĝ = dy·w: dx = rstd · (ĝ - x̂ · mean(ĝ · x̂)). */
	for (int64_t r = 0; r < rows; r++) {
		if (w)
			rmsnorm_bwd_row(x + r * d, w, dy + r * d, dx + r * d, rstd[r], d);
		else
			rmsnorm_bwd_row(x + r * d, NULL, dy + r * d, dx + r * d, rstd[r], d);
	}
}

RT_VEC_CLONES
void rt_rmsnorm_bwd_weight(const float *x, const float *rstd, const float *dy, float *dw,
                           int64_t rows, int64_t d)
{
	for (int64_t r = 0; r < rows; r++) {
		const float *restrict xr = x + r * d, *restrict dyr = dy + r * d;
		float *restrict dwr = dw;
		float rs = rstd[r];
		for (int64_t j = 0; j < d; j++)
			dwr[j] += dyr[j] * (xr[j] * rs);
	}
}

/* ---- The token embedding (embed_tokens) ----
 * An id outside the table reads nothing (the row comes out NaN, as
 * rt_gpt2_emb_fwd's) and backward skips it.  No positions: the blocks
 * rotate q and k by position. */

void rt_llama_emb_fwd(const rt_tf *L, const float *w, const int32_t *ids, float *y,
                      int64_t B, int64_t T)
{
	int64_t d = L->d;
	for (int64_t bt = 0; bt < B * T; bt++) {
		float *restrict yr = y + bt * d;
		int64_t id = ids[bt];
		if (id < 0 || id >= L->vocab) {
			for (int64_t j = 0; j < d; j++)
				yr[j] = NAN;
			continue;
		}
		memcpy(yr, w + id * d, (size_t)d * sizeof *yr);
	}
}

void rt_llama_emb_fwd_at(const rt_tf *L, const float *w, const int32_t *ids, float *y,
                         int64_t B, int64_t T, int64_t pos0)
{
	(void)pos0;
	rt_llama_emb_fwd(L, w, ids, y, B, T);
}

void rt_llama_emb_bwd(const rt_tf *L, float *g, const int32_t *ids, const float *dy,
                      int64_t B, int64_t T)
{
	int64_t d = L->d;
	for (int64_t bt = 0; bt < B * T; bt++) {
		int64_t id = ids[bt];
		if (id < 0 || id >= L->vocab)
			continue;
		const float *restrict src = dy + bt * d;
		float *restrict gr = g + id * d;
		for (int64_t j = 0; j < d; j++)
			gr[j] += src[j];
	}
}

/* ---- Llama primitives (rt_dev.h) ---- */

/* transformers: cos and sin of the float32 angle inv_freq · position,
 * computed in float32; here in double and rounded, the nearest float to
 * the same angle's.  x' = x·cos + rotate_half(x)·sin, rotate_half(x) =
 * (-x2, x1): the first half's element i pairs with element i + dh/2. */
RT_VEC_CLONES
void rt_dev_llama_rope(const rt_tf *L, float *x, int64_t ld, int64_t nh, int64_t B,
                       int64_t T, int64_t pos0, const int64_t *dpos, int inverse)
{
	int64_t dh = L->d / L->heads, half = dh / 2;
	float inv[half > 0 ? half : 1], cs[half > 0 ? half : 1], sn[half > 0 ? half : 1];
	(void)dpos;                 /* a captured decode round's: CUDA only */
	llama_inv_freq(L, inv);
	for (int64_t t = 0; t < T; t++) {
		float pos = (float)(pos0 + t);
		for (int64_t i = 0; i < half; i++) {
			float a = inv[i] * pos;
			cs[i] = (float)cos((double)a);
			sn[i] = (float)sin((double)a);
		}
		for (int64_t b = 0; b < B; b++)
			for (int64_t hh = 0; hh < nh; hh++) {
				float *restrict x1 = x + (b * T + t) * ld + hh * dh, *restrict x2 = x1 + half;
				if (!inverse)
					for (int64_t i = 0; i < half; i++) {
						float u = x1[i], v = x2[i];
						x1[i] = u * cs[i] - v * sn[i];
						x2[i] = v * cs[i] + u * sn[i];
					}
				else
					for (int64_t i = 0; i < half; i++) {
						float u = x1[i], v = x2[i];
						x1[i] = u * cs[i] + v * sn[i];
						x2[i] = v * cs[i] - u * sn[i];
					}
			}
	}
}

RT_VEC_CLONES
void rt_dev_llama_swiglu_fwd(const float *gu, float *a, int64_t rows, int64_t f)
{
	for (int64_t r = 0; r < rows; r++) {
		const float *restrict g = gu + r * 2 * f, *restrict u = g + f;
		float *restrict ar = a + r * f;
		for (int64_t j = 0; j < f; j++)
			ar[j] = rt_swiglu_hd(g[j], u[j]);
	}
}

RT_VEC_CLONES
void rt_dev_llama_swiglu_bwd(const float *gu, const float *da, float *dgu, int64_t rows,
                             int64_t f)
{
	for (int64_t r = 0; r < rows; r++) {
		const float *restrict g = gu + r * 2 * f, *restrict u = g + f, *restrict dar = da + r * f;
		float *restrict dg = dgu + r * 2 * f, *restrict du = dg + f;
		for (int64_t j = 0; j < f; j++) {
			dg[j] = rt_swiglu_dgate_hd(g[j], u[j], dar[j]);
			du[j] = rt_swiglu_dup_hd(g[j], dar[j]);
		}
	}
}

void rt_dev_llama_kv_store(const float *qkv, int64_t ld, int64_t ck, int64_t cv, void *kc,
                           void *vc, int64_t cap, int64_t B, int64_t T, int64_t pos0,
                           const int64_t *dpos, int64_t kvw, int prec)
{
	(void)dpos;
	for (int64_t b = 0; b < B; b++)
		for (int64_t t = 0; t < T; t++) {
			const float *r = qkv + (b * T + t) * ld;
			int64_t at = (b * cap + pos0 + t) * kvw;
			rt_kv_put(kc, at, r + ck, kvw, prec);
			rt_kv_put(vc, at, r + cv, kvw, prec);
		}
}
