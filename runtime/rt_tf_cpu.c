/* rt_tf_cpu.c — the CPU's side of pipert.h's transformer layers: rt_gemm
 * (the strided-batched GEMM attention runs on, over CBLAS), the transformer
 * primitives of rt_dev.h that rt_tf.c composes the blocks from (residual
 * adds, Conv1D's bias rows and column sums, the attention masks, the
 * one-query attention of a decode step, the key/value cache's stores), and
 * the layers that are kernels of their own rather than compositions:
 * embeddings, rt_take_last, mean pooling, L2 normalisation, tanh gelu and
 * the next-token loss.  rt_tf.c's comment describes the buffers. */
#include <cblas.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "rt_internal.h"
#include "rt_math.h"
#include "rt_small_gemm.h"
#include "rt_vec.h"

/* ---- GEMM ---- */

void rt_gemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
             const float *a, int64_t lda, int64_t sa, const float *b, int64_t ldb, int64_t sb,
             float beta, float *c, int64_t ldc, int64_t sc, int64_t batch)
{
	if (m <= 0 || n <= 0)
		return;
	if (batch == 1 && !trans_a && alpha == 1.0f
	    && rt_small_gemm(trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc) == 0)
		return;         /* one to eight rows (a decode step): rt_small_gemm.h */
	/* One call per entry: OpenBLAS's batched interface is recent and not
	 * in every CBLAS; the batches here are heads, a few dozen at most. */
	for (int64_t i = 0; i < batch; i++)
		cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
		            trans_b ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k,
		            alpha, a + i * sa, (int)lda, b + i * sb, (int)ldb,
		            beta, c + i * sc, (int)ldc);
}

/* ---- Transformer primitives (rt_dev.h) ---- */

int rt_dev_tf_begin(void)
{
	return 1;
}

void rt_dev_tf_end(void)
{
}

RT_VEC_CLONES
void rt_dev_tf_add(float *restrict y, const float *restrict x, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		y[i] += x[i];
}

void rt_dev_tf_bias_rows(const float *b, float *y, int64_t rows, int64_t out)
{
	for (int64_t r = 0; r < rows; r++)
		memcpy(y + r * out, b, (size_t)out * sizeof *y);
}

RT_VEC_CLONES
void rt_dev_tf_colsum_acc(const float *dy, float *db, int64_t rows, int64_t out)
{
	for (int64_t r = 0; r < rows; r++) {
		const float *restrict d = dy + r * out;
		float *restrict o = db;
		for (int64_t j = 0; j < out; j++)
			o[j] += d[j];
	}
}

/* One batched call per sample, over its heads (one cblas_sgemm each). */
void rt_dev_tf_heads_gemm(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha,
                          const float *a, int64_t lda, int64_t sa, int64_t ha,
                          const float *b, int64_t ldb, int64_t sb, int64_t hb,
                          float *c, int64_t ldc, int64_t sc, int64_t hc, int64_t B, int64_t h)
{
	for (int64_t i = 0; i < B; i++)
		rt_gemm(ta, tb, m, n, k, alpha, a + i * sa, lda, ha, b + i * sb, ldb, hb, 0.0f,
		        c + i * sc, ldc, hc, h);
}

/* transformers adds finfo(float32).min to the score of a padded key
 * (BERT's extended attention mask), and GPT-2 first replaces the scores of
 * future keys by it (torch.where) and then adds the padding mask, so a
 * future padded key reaches -inf.  Both are kept as they are: a row whose
 * every key is masked then gives what transformers gives.  Scores are
 * [B, h, T, Lk]: query i is at position pos0 + i, key j at position j
 * (Lk = T and pos0 = 0 but for the key/value cache, which has no mask). */
RT_VEC_CLONES
void rt_dev_tf_mask_scores(float *s, const int32_t *mask, int causal, int64_t B, int64_t h,
                           int64_t T, int64_t Lk, int64_t pos0, const int64_t *dpos)
{
	(void)dpos;                 /* a captured decode round's: CUDA only */
	if (!mask && !causal)
		return;
	/* The same values as rt_attn_mask_hd, in loops without a branch or a
	 * test of mask per element, which vectorise. */
	for (int64_t b = 0; b < B; b++)
		for (int64_t r = 0; r < h * T; r++) {
			float *restrict row = s + (b * h * T + r) * Lk;
			const int32_t *restrict mb = mask ? mask + b * Lk : NULL;
			int64_t i = pos0 + r % T;
			int64_t j0 = causal && i + 1 < Lk ? i + 1 : Lk;    /* the first future key */
			if (mb) {
				for (int64_t j = 0; j < j0; j++)
					row[j] = mb[j] ? row[j] : row[j] + -FLT_MAX;
				for (int64_t j = j0; j < Lk; j++)
					row[j] = mb[j] ? -FLT_MAX : -INFINITY;
			} else {
				for (int64_t j = j0; j < Lk; j++)
					row[j] = -FLT_MAX;
			}
		}
}

void rt_dev_tf_causal_zero(float *ds, int64_t rows, int64_t T)
{
	for (int64_t r = 0; r < rows; r++)
		for (int64_t j = r % T + 1; j < T; j++)
			ds[r * T + j] = 0.0f;
}

/* One query per sample (a decode step): per head, a dot product with each
 * key and a weighted sum of the values, in loops.  As GEMMs these are B·h
 * calls of one row each, whose call overhead was most of a small model's
 * decode step.  Four partial sums let the compiler use vector registers
 * without reassociating anything it was not told to. */
static float dot4(const float *restrict x, const float *restrict y, int64_t n)
{
	float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
	int64_t e = 0;
	for (; e + 4 <= n; e += 4) {
		a0 += x[e] * y[e];
		a1 += x[e + 1] * y[e + 1];
		a2 += x[e + 2] * y[e + 2];
		a3 += x[e + 3] * y[e + 3];
	}
	for (; e < n; e++)
		a0 += x[e] * y[e];
	return (a0 + a1) + (a2 + a3);
}

RT_VEC_CLONES
int rt_dev_tf_attend_one(const float *q, int64_t sq, const float *k, const float *v,
                         int64_t ldk, int64_t sk, const int32_t *mask, int causal, float *s,
                         float *p, float *ctx, int64_t B, int64_t h, int64_t dh, int64_t Lk,
                         int64_t pos0, float scale)
{
	int64_t d = h * dh;
	for (int64_t b = 0; b < B; b++)
		for (int64_t hh = 0; hh < h; hh++) {
			const float *qh = q + b * sq + hh * dh;
			float *sr = s + (b * h + hh) * Lk;
			for (int64_t j = 0; j < Lk; j++)
				sr[j] = scale * dot4(qh, k + b * sk + j * ldk + hh * dh, dh);
		}
	rt_dev_tf_mask_scores(s, mask, causal, B, h, 1, Lk, pos0, NULL);
	rt_softmax_fwd(s, p, B * h, Lk);
	for (int64_t b = 0; b < B; b++)
		for (int64_t hh = 0; hh < h; hh++) {
			float *restrict ch = ctx + b * d + hh * dh;
			const float *pr = p + (b * h + hh) * Lk;
			memset(ch, 0, (size_t)dh * sizeof *ch);
			for (int64_t j = 0; j < Lk; j++) {
				const float *restrict vj = v + b * sk + j * ldk + hh * dh;
				const float pj = pr[j];
				for (int64_t e = 0; e < dh; e++)
					ch[e] += pj * vj[e];
			}
		}
	return 1;
}

const int64_t *rt_dev_tf_kv_pos(int64_t cap, int64_t T, int64_t pos0)
{
	(void)cap;
	(void)T;
	(void)pos0;
	return NULL;
}

void rt_dev_tf_kv_store(const float *qkv, void *kc, void *vc, int64_t cap, int64_t B,
                        int64_t T, int64_t pos0, const int64_t *dpos, int64_t d, int prec)
{
	(void)dpos;
	for (int64_t b = 0; b < B; b++)
		for (int64_t t = 0; t < T; t++) {
			const float *r = qkv + (b * T + t) * 3 * d;
			int64_t at = (b * cap + pos0 + t) * d;
			rt_kv_put(kc, at, r + d, d, prec);
			rt_kv_put(vc, at, r + 2 * d, d, prec);
		}
}

void rt_dev_kv_unpack(const uint16_t *c, float *x, int64_t n, int prec)
{
	if (prec == RT_PREC_BF16)
		for (int64_t i = 0; i < n; i++)
			x[i] = rt_bf16_value(c[i]);
	else
		for (int64_t i = 0; i < n; i++)
			x[i] = rt_f16_value(c[i]);
}

/* Sample b's last position to row b.  Rows move down only (b·T + T-1 >=
 * b), and each source lies past every destination written before it, so
 * rows in order are safe in place. */
void rt_take_last(float *x, int64_t B, int64_t T, int64_t d)
{
	if (T == 1)
		return;
	for (int64_t b = 0; b < B; b++)
		memmove(x + b * d, x + (b * T + T - 1) * d, (size_t)d * sizeof *x);
}

/* ---- Embeddings ----
 * An id outside its table reads nothing: the row comes out NaN (as a bad
 * class id in rt_loss_cross_entropy) and backward skips it. */

static const float *table_row(const float *table, int64_t rows, int64_t id, int64_t d)
{
	return id >= 0 && id < rows ? table + id * d : NULL;
}

/* e[b, t] = word[ids] + pos[t] + type[types], for rows r0 .. r0+nr of
 * [B·T]. */
static void bert_emb_sum(const rt_tf *L, const float *w, const int32_t *ids,
                         const int32_t *types, float *e, int64_t T, int64_t r0, int64_t nr)
{
	int64_t d = L->d;
	const float *word = w, *pos = word + L->vocab * d, *type = pos + L->positions * d;
	for (int64_t r = 0; r < nr; r++) {
		int64_t bt = r0 + r;
		const float *restrict a = table_row(word, L->vocab, ids[bt], d);
		const float *restrict p = table_row(pos, L->positions, bt % T, d);
		const float *restrict c = table_row(type, L->types, types ? types[bt] : 0, d);
		float *restrict er = e + r * d;
		if (!a || !p || !c) {
			for (int64_t j = 0; j < d; j++)
				er[j] = NAN;
			continue;
		}
		for (int64_t j = 0; j < d; j++)
			er[j] = a[j] + p[j] + c[j];
	}
}

void rt_bert_emb_fwd(const rt_tf *L, const float *w, const int32_t *ids, const int32_t *types,
                     float *y, float *save, int64_t B, int64_t T)
{
	int64_t d = L->d, n = B * T;
	const float *lg = w + (L->vocab + L->positions + L->types) * d, *lb = lg + d;
	if (save) {
		float *e = save, *mu = save + n * d, *rs = mu + n;
		bert_emb_sum(L, w, ids, types, e, T, 0, n);
		rt_layernorm_fwd(e, lg, lb, y, mu, rs, n, d, L->eps);
		return;
	}
	/* Inference: this call has no work buffer, and rt_layernorm_fwd does
	 * not run in place, so the sums go through the stack a few rows at a
	 * time (about 16 KiB; one row when d is wider). */
	{
		int64_t rows = d < 4096 ? 4096 / d : 1;
		float e[rows * d], mu[rows], rs[rows];
		for (int64_t r0 = 0; r0 < n; r0 += rows) {
			int64_t nr = n - r0 < rows ? n - r0 : rows;
			bert_emb_sum(L, w, ids, types, e, T, r0, nr);
			rt_layernorm_fwd(e, lg, lb, y + r0 * d, mu, rs, nr, d, L->eps);
		}
	}
}

void rt_bert_emb_bwd(const rt_tf *L, const float *w, float *g, const int32_t *ids,
                     const int32_t *types, const float *save, const float *dy, float *work,
                     int64_t B, int64_t T)
{
	int64_t d = L->d, n = B * T;
	int64_t pos = L->vocab * d, type = pos + L->positions * d;
	int64_t lg = type + L->types * d, lb = lg + d;
	const float *e = save, *mu = save + n * d, *rs = mu + n;
	float *de = work;
	rt_layernorm_bwd_weight(e, mu, rs, dy, g + lg, g + lb, n, d);
	rt_layernorm_bwd_data(e, w + lg, mu, rs, dy, de, n, d);
	for (int64_t bt = 0; bt < n; bt++) {
		int64_t id = ids[bt], t = bt % T, ty = types ? types[bt] : 0;
		const float *restrict src = de + bt * d;
		float *restrict ga, *restrict gp, *restrict gc;
		if (id < 0 || id >= L->vocab || t >= L->positions || ty < 0 || ty >= L->types)
			continue;
		ga = g + id * d, gp = g + pos + t * d, gc = g + type + ty * d;
		for (int64_t j = 0; j < d; j++)
			ga[j] += src[j];
		for (int64_t j = 0; j < d; j++)
			gp[j] += src[j];
		for (int64_t j = 0; j < d; j++)
			gc[j] += src[j];
	}
}

void rt_gpt2_emb_fwd(const rt_tf *L, const float *w, const int32_t *ids, float *y,
                     int64_t B, int64_t T)
{
	rt_gpt2_emb_fwd_at(L, w, ids, y, B, T, 0);
}

/* Generation embeds T positions from pos0 on: a position past the table
 * reads nothing (NaN), as an id outside it does. */
void rt_gpt2_emb_fwd_at(const rt_tf *L, const float *w, const int32_t *ids, float *y,
                        int64_t B, int64_t T, int64_t pos0)
{
	int64_t d = L->d;
	const float *wte = w, *wpe = w + L->vocab * d;
	for (int64_t bt = 0; bt < B * T; bt++) {
		const float *restrict a = table_row(wte, L->vocab, ids[bt], d);
		const float *restrict p = table_row(wpe, L->positions, pos0 + bt % T, d);
		float *restrict yr = y + bt * d;
		if (!a || !p) {
			for (int64_t j = 0; j < d; j++)
				yr[j] = NAN;
			continue;
		}
		for (int64_t j = 0; j < d; j++)
			yr[j] = a[j] + p[j];
	}
}

void rt_gpt2_emb_bwd(const rt_tf *L, float *g, const int32_t *ids, const float *dy,
                     int64_t B, int64_t T)
{
	int64_t d = L->d;
	float *wpe = g + L->vocab * d;
	for (int64_t bt = 0; bt < B * T; bt++) {
		int64_t id = ids[bt], t = bt % T;
		const float *restrict src = dy + bt * d;
		float *restrict ga, *restrict gp;
		if (id < 0 || id >= L->vocab || t >= L->positions)
			continue;
		ga = g + id * d, gp = wpe + t * d;
		for (int64_t j = 0; j < d; j++)
			ga[j] += src[j];
		for (int64_t j = 0; j < d; j++)
			gp[j] += src[j];
	}
}

/* ---- Pooling and normalisation ---- */

/* 1 / max(count of tokens, 1e-9), as sentence-transformers divides. */
static float pool_scale(const int32_t *mask, int64_t b, int64_t T)
{
	double cnt = 0.0;
	for (int64_t t = 0; t < T; t++)
		cnt += mask ? (double)mask[b * T + t] : 1.0;
	return (float)(1.0 / (cnt > 1e-9 ? cnt : 1e-9));
}

RT_VEC_CLONES
void rt_mean_pool_fwd(const float *x, const int32_t *mask, float *y, int64_t B, int64_t T,
                      int64_t d)
{
	for (int64_t b = 0; b < B; b++) {
		float *restrict yr = y + b * d;
		float inv = pool_scale(mask, b, T);
		memset(yr, 0, (size_t)d * sizeof *yr);
		for (int64_t t = 0; t < T; t++) {
			const float *restrict xr = x + (b * T + t) * d;
			float m = mask ? (float)mask[b * T + t] : 1.0f;
			if (m == 0.0f)
				continue;
			for (int64_t j = 0; j < d; j++)
				yr[j] += xr[j] * m;
		}
		for (int64_t j = 0; j < d; j++)
			yr[j] *= inv;
	}
}

void rt_mean_pool_bwd(const int32_t *mask, const float *dy, float *dx, int64_t B, int64_t T,
                      int64_t d)
{
	for (int64_t b = 0; b < B; b++) {
		float inv = pool_scale(mask, b, T);
		for (int64_t t = 0; t < T; t++) {
			const float *restrict dyr = dy + b * d;
			float *restrict dxr = dx + (b * T + t) * d;
			float s = (mask ? (float)mask[b * T + t] : 1.0f) * inv;
			for (int64_t j = 0; j < d; j++)
				dxr[j] = dyr[j] * s;
		}
	}
}

static double row_norm(const float *restrict x, int64_t d)
{
	return sqrt(rt_vec_dot(x, x, d));
}

RT_VEC_CLONES
void rt_l2_normalize_fwd(const float *x, float *y, int64_t rows, int64_t d)
{
	for (int64_t r = 0; r < rows; r++) {
		const float *restrict xr = x + r * d;
		float *restrict yr = y + r * d;
		double nrm = row_norm(xr, d);
		float inv = (float)(1.0 / (nrm > 1e-12 ? nrm : 1e-12));
		for (int64_t j = 0; j < d; j++)
			yr[j] = xr[j] * inv;
	}
}

void rt_l2_normalize_bwd(const float *x, const float *dy, float *dx, int64_t rows, int64_t d)
{
	for (int64_t r = 0; r < rows; r++) {
		const float *restrict xr = x + r * d, *restrict dyr = dy + r * d;
		float *restrict dxr = dx + r * d;
		double nrm = row_norm(xr, d), dot = 0.0;
		float inv, c;
		if (nrm <= 1e-12) {
			/* The clamp is constant there: y = x / 1e-12. */
			for (int64_t j = 0; j < d; j++)
				dxr[j] = (float)(dyr[j] * 1e12);
			continue;
		}
		/* dx = (dy - y·(y·dy)) / ||x|| */
		for (int64_t j = 0; j < d; j++)
			dot += (double)xr[j] * dyr[j];
		inv = (float)(1.0 / nrm);
		c = (float)(dot / (nrm * nrm));
		for (int64_t j = 0; j < d; j++)
			dxr[j] = inv * (dyr[j] - xr[j] * c);
	}
}

/* ---- gelu, tanh form ---- */

RT_VEC_CLONES
void rt_gelu_tanh_fwd(const float *restrict x, float *restrict y, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		y[i] = rt_gelu_tanh_hd(x[i]);
}

RT_VEC_CLONES
void rt_gelu_tanh_bwd(const float *restrict x, const float *restrict dy, float *restrict dx,
                      int64_t n)
{
	/* rt_math.h: the derivative of ½x(1 + tanh u). */
	for (int64_t i = 0; i < n; i++)
		dx[i] = rt_gelu_tanh_grad_hd(x[i], dy[i]);
}

/* ---- Next-token loss ---- */

/* Sample b's positions 0 .. T-2 are rows of logits whose targets are
 * ids[b, 1 .. T-1], contiguous: one cross-entropy call per sample. */
static double next_token_sum(const float *logits, const int32_t *ids, float *dlogits,
                             int64_t B, int64_t T, int64_t vocab, double scale)
{
	double total = 0.0;
	if (T < 1)
		return 0.0;
	for (int64_t b = 0; b < B; b++) {
		total += rt_loss_cross_entropy(logits + b * T * vocab, ids + b * T + 1,
		                               dlogits ? dlogits + b * T * vocab : NULL,
		                               T - 1, vocab, scale);
		if (dlogits)
			memset(dlogits + (b * T + T - 1) * vocab, 0, (size_t)vocab * sizeof *dlogits);
	}
	return total;
}

void rt_loss_next_token(rt_ctx *c, const float *logits, const int32_t *ids, float *dlogits,
                        int64_t B, int64_t T, int64_t vocab, double scale)
{
	rt_loss_add(c, next_token_sum(logits, ids, dlogits, B, T, vocab, scale));
}
