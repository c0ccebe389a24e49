/* rt_tf.c — transformer layers of pipert.h (BertLayer, GPT2Block, their
 * embeddings, mean pooling, L2 normalisation, tanh gelu, the next-token
 * loss, GPT-2's generation with a key/value cache) and rt_gemm, the
 * strided-batched GEMM their attention runs on.
 *
 * Every matrix product goes through rt_gemm or rt_linear_*, every
 * layernorm and softmax through rt_layernorm_* and rt_softmax_*; what is
 * left here is the composition plus a few element-wise loops (residual
 * adds, the attention mask, Conv1D's bias rows, gathers and scatters), so
 * a GPU port replaces those loops and keeps the composition.
 *
 * Buffers (rt_tf_sizes.h gives their planned sizes; N = B·T rows, P the
 * attention probabilities [B, heads, T, T], every piece B samples long):
 *   bert_layer save   q k v ctx r1 a r2 [N, d] · P · hpre hact [N, ffn] ·
 *                     mu1 rs1 mu2 rs2 [N]       (r1 = x + attn, a = LN1(r1),
 *                     r2 = a + out(hact), y = LN2(r2))
 *   bert_layer stash  dy dr2 da dr1 dq dk dv [N, d] · dhpre [N, ffn]
 *   gpt2_block save   h0 [N, d] · qkv [N, 3d] · ctx h1 h2 [N, d] · P ·
 *                     f1 g1 [N, ffn] · mu1 rs1 mu2 rs2 [N]
 *                     (h0 = ln_1(x), h1 = x + attn, h2 = ln_2(h1),
 *                     g1 = gelu(f1), y = h1 + mlp_c_proj(g1))
 *   gpt2_block stash  dy dh2 dh1 [N, d] · dqkv [N, 3d] · dh0 [N, d] ·
 *                     df1 [N, ffn]
 *   work              four [N, d] slots A-D · two [B, heads, T, T] · two
 *                     [N, ffn], reused as the comments of each function say
 * Both blocks save 7Td + hT² + 2Tf + 4T floats per sample, a Td less than
 * planned (the last layernorm's output is y, which backward does not
 * read; GPT-2's first layernorm reads x), and stash 7Td + Tf of 8Td + 2Tf.
 * Attention runs on every sample's heads with batched GEMMs; its scores
 * are a temporary in work, its probabilities are saved.
 *
 * The stash holds the output gradient of every linear and layernorm, so
 * _wgt makes exactly the weight-gradient calls _bwd makes when g is given,
 * on the same values: the split gives the same gradients bit for bit.
 */
#include <cblas.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "rt_internal.h"
#include "rt_math.h"
#include "rt_tf_layout.h"
#include "rt_small_gemm.h"

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

/* ---- Element-wise pieces ---- */

static void add_to(float *restrict y, const float *restrict x, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		y[i] += x[i];
}

/* Conv1D (GPT-2's linear): y = x·W + b with W [in, out]. */
static void conv1d_fwd(const float *x, const float *w, const float *b, float *y,
                       int64_t rows, int64_t in, int64_t out)
{
	for (int64_t r = 0; r < rows; r++)
		memcpy(y + r * out, b, (size_t)out * sizeof *y);
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
	for (int64_t r = 0; r < rows; r++) {
		const float *restrict d = dy + r * out;
		float *restrict o = db;
		for (int64_t j = 0; j < out; j++)
			o[j] += d[j];
	}
}

/* ---- Attention ----
 * q, k, v are column blocks of rows ld floats apart (bert keeps three
 * [N, d] buffers, GPT-2 one [N, 3d]); head hh is columns hh·dh ..
 * (hh+1)·dh.  Scores and probabilities are [B, heads, T, T]: one batched
 * GEMM per sample covers its heads. */

/* transformers adds finfo(float32).min to the score of a padded key
 * (BERT's extended attention mask), and GPT-2 first replaces the scores of
 * future keys by it (torch.where) and then adds the padding mask, so a
 * future padded key reaches -inf.  Both are kept as they are: a row whose
 * every key is masked then gives what transformers gives.  Scores are
 * [B, h, T, Lk]: query i is at position pos0 + i, key j at position j
 * (Lk = T and pos0 = 0 but for the key/value cache, which has no mask). */
static void mask_scores(float *s, const int32_t *mask, int causal, int64_t B, int64_t h,
                        int64_t T, int64_t Lk, int64_t pos0)
{
	if (!mask && !causal)
		return;
	for (int64_t b = 0; b < B; b++)
		for (int64_t r = 0; r < h * T; r++) {
			float *restrict row = s + (b * h * T + r) * Lk;
			int64_t i = pos0 + r % T;
			for (int64_t j = 0; j < Lk; j++)
				row[j] = rt_attn_mask_hd(row[j], causal && j > i,
				                         mask && !mask[b * Lk + j]);
		}
}

/* T queries per sample against Lk keys and values: a sample's queries
 * start sq floats after the previous sample's, rows ldq apart; its keys and
 * values sk floats after, rows ldk apart (the cache's rows are not the
 * queries').  s and p are [B, heads, T, Lk], ctx [B·T, d]. */
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

static void attend_one(const float *q, int64_t sq, const float *k, const float *v, int64_t ldk,
                       int64_t sk, const int32_t *mask, int causal, float *s, float *p,
                       float *ctx, int64_t B, int64_t h, int64_t dh, int64_t Lk, int64_t pos0,
                       float scale)
{
	int64_t d = h * dh;
	for (int64_t b = 0; b < B; b++)
		for (int64_t hh = 0; hh < h; hh++) {
			const float *qh = q + b * sq + hh * dh;
			float *sr = s + (b * h + hh) * Lk;
			for (int64_t j = 0; j < Lk; j++)
				sr[j] = scale * dot4(qh, k + b * sk + j * ldk + hh * dh, dh);
		}
	mask_scores(s, mask, causal, B, h, 1, Lk, pos0);
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
}

static void attend(const rt_tf *L, const float *q, int64_t ldq, int64_t sq, const float *k,
                   const float *v, int64_t ldk, int64_t sk, const int32_t *mask, int causal,
                   float *s, float *p, float *ctx, int64_t B, int64_t T, int64_t Lk,
                   int64_t pos0)
{
	int64_t d = L->d, h = L->heads, dh = d / h, tl = T * Lk;
	float scale = (float)(1.0 / sqrt((double)dh));
	if (T == 1) {
		attend_one(q, sq, k, v, ldk, sk, mask, causal, s, p, ctx, B, h, dh, Lk, pos0, scale);
		return;
	}
	for (int64_t b = 0; b < B; b++)
		rt_gemm(0, 1, T, Lk, dh, scale, q + b * sq, ldq, dh, k + b * sk, ldk, dh,
		        0.0f, s + b * h * tl, Lk, tl, h);
	mask_scores(s, mask, causal, B, h, T, Lk, pos0);
	rt_softmax_fwd(s, p, B * h * T, Lk);
	for (int64_t b = 0; b < B; b++)
		rt_gemm(0, 0, T, dh, Lk, 1.0f, p + b * h * tl, Lk, tl, v + b * sk, ldk, dh,
		        0.0f, ctx + b * T * d, d, dh, h);
}

static void attn_fwd(const rt_tf *L, const float *q, const float *k, const float *v,
                     int64_t ld, const int32_t *mask, int causal, float *s, float *p,
                     float *ctx, int64_t B, int64_t T)
{
	attend(L, q, ld, T * ld, k, v, ld, T * ld, mask, causal, s, p, ctx, B, T, T, 0);
}

/* dq, dk, dv: column blocks of rows ldg apart, like q, k, v.  dp and ds
 * are two [B, heads, T, T] scratch buffers (rt_softmax_bwd is not in place). */
static void attn_bwd(const rt_tf *L, const float *q, const float *k, const float *v,
                     int64_t ld, const float *p, const float *dctx, int causal,
                     float *dp, float *ds, float *dq, float *dk, float *dv, int64_t ldg,
                     int64_t B, int64_t T)
{
	int64_t d = L->d, h = L->heads, dh = d / h, tt = T * T;
	float scale = (float)(1.0 / sqrt((double)dh));
	for (int64_t b = 0; b < B; b++) {
		/* dP = dctx · vᵀ; dv = Pᵀ · dctx */
		rt_gemm(0, 1, T, T, dh, 1.0f, dctx + b * T * d, d, dh, v + b * T * ld, ld, dh,
		        0.0f, dp + b * h * tt, T, tt, h);
		rt_gemm(1, 0, T, dh, T, 1.0f, p + b * h * tt, T, tt, dctx + b * T * d, d, dh,
		        0.0f, dv + b * T * ldg, ldg, dh, h);
	}
	rt_softmax_bwd(p, dp, ds, B * h * T, T);
	/* A score torch.where replaced passes no gradient back; an added mask
	 * does (it only matters in a row whose keys are all masked). */
	if (causal)
		for (int64_t r = 0; r < B * h * T; r++)
			for (int64_t j = r % T + 1; j < T; j++)
				ds[r * T + j] = 0.0f;
	for (int64_t b = 0; b < B; b++) {
		/* dq = scale · dS · k; dk = scale · dSᵀ · q */
		rt_gemm(0, 0, T, dh, T, scale, ds + b * h * tt, T, tt, k + b * T * ld, ld, dh,
		        0.0f, dq + b * T * ldg, ldg, dh, h);
		rt_gemm(1, 0, T, dh, T, scale, ds + b * h * tt, T, tt, q + b * T * ld, ld, dh,
		        0.0f, dk + b * T * ldg, ldg, dh, h);
	}
}

/* ---- BertLayer (post-layernorm) ---- */

void rt_bert_layer_fwd(const rt_tf *L, const float *w, const float *x, const int32_t *mask,
                       float *y, float *save, float *work, int64_t B, int64_t T)
{
	int64_t d = L->d, f = L->ffn, n = B * T;
	bert_w o = bert_w_at(L);
	tf_work k = work_at(L, B, T);
	float *q, *kk, *v, *p, *ctx, *r1, *a, *r2, *hpre, *hact, *mu1, *rs1, *mu2, *rs2;
	if (save) {
		bert_save s = bert_save_at(L, B, T);
		q = save + s.q, kk = save + s.k, v = save + s.v, p = save + s.p;
		ctx = save + s.ctx, r1 = save + s.r1, a = save + s.a, r2 = save + s.r2;
		hpre = save + s.hpre, hact = save + s.hact;
		mu1 = save + s.mu1, rs1 = save + s.rs1, mu2 = save + s.mu2, rs2 = save + s.rs2;
	} else {
		/* Inference: slots are reused as their values die (q, k, v after
		 * the context; the statistics right after each layernorm). */
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

void rt_bert_layer_bwd(const rt_tf *L, const float *w, float *g, const float *x,
                       const float *save, const float *dy, float *dx, float *stash,
                       float *work, int64_t B, int64_t T)
{
	int64_t d = L->d, f = L->ffn, n = B * T;
	bert_w o = bert_w_at(L);
	bert_save s = bert_save_at(L, B, T);
	tf_work k = work_at(L, B, T);
	int keep = !g && stash;     /* zero-bubble's B: stash for the W */
	bert_stash st = bert_stash_at(L, B, T);
	/* Without a stash the gradients live in work: A dr2 -> dq, B da -> dk,
	 * C dr1 -> dv (each dies before the next takes its slot), D dctx. */
	float *dr2 = keep ? stash + st.dr2 : work + k.a;
	float *da = keep ? stash + st.da : work + k.b;
	float *dr1 = keep ? stash + st.dr1 : work + k.c;
	float *dq = keep ? stash + st.dq : work + k.a;
	float *dk = keep ? stash + st.dk : work + k.b;
	float *dv = keep ? stash + st.dv : work + k.c;
	float *dhpre = keep ? stash + st.dhpre : work + k.f2;
	float *dctx = work + k.d, *dhact = work + k.f1;
	const float *r1 = save + s.r1, *a = save + s.a, *r2 = save + s.r2;

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

void rt_bert_layer_wgt(const rt_tf *L, float *g, const float *x, const float *save,
                       const float *stash, float *work, int64_t B, int64_t T)
{
	int64_t d = L->d, f = L->ffn, n = B * T;
	bert_w o = bert_w_at(L);
	bert_save s = bert_save_at(L, B, T);
	bert_stash st = bert_stash_at(L, B, T);
	(void)work;
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
 * forward: h1 = x + c_proj(ctx), h2 = ln_2(h1), y = h1 + mlp(h2). */
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

void rt_gpt2_block_fwd(const rt_tf *L, const float *w, const float *x, const int32_t *mask,
                       float *y, float *save, float *work, int64_t B, int64_t T)
{
	int64_t d = L->d, n = B * T;
	gpt2_w o = gpt2_w_at(L);
	tf_work k = work_at(L, B, T);
	float *h0, *qkv, *p, *ctx, *h1, *h2, *f1, *g1, *mu1, *rs1, *mu2, *rs2;
	if (save) {
		gpt2_save s = gpt2_save_at(L, B, T);
		h0 = save + s.h0, qkv = save + s.qkv, p = save + s.p, ctx = save + s.ctx;
		h1 = save + s.h1, h2 = save + s.h2, f1 = save + s.f1, g1 = save + s.g1;
		mu1 = save + s.mu1, rs1 = save + s.rs1, mu2 = save + s.mu2, rs2 = save + s.rs2;
	} else {
		/* Inference: h0 in A (dead once qkv is made) then the context;
		 * qkv in B-D, then h1 in B and h2 in C; statistics in whichever
		 * slot is free at the time. */
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

void rt_gpt2_block_bwd(const rt_tf *L, const float *w, float *g, const float *x,
                       const float *save, const float *dy, float *dx, float *stash,
                       float *work, int64_t B, int64_t T)
{
	int64_t d = L->d, f = L->ffn, n = B * T;
	gpt2_w o = gpt2_w_at(L);
	gpt2_save s = gpt2_save_at(L, B, T);
	tf_work k = work_at(L, B, T);
	int keep = !g && stash;     /* zero-bubble's B: stash for the W */
	gpt2_stash st = gpt2_stash_at(L, B, T);
	/* Without a stash: A dh2, B dh1, then dqkv over A-C (dh1 is copied to
	 * dx first); D dctx, then dh0; A again for ln_1's input gradient. */
	float *dh2 = keep ? stash + st.dh2 : work + k.a;
	float *dh1 = keep ? stash + st.dh1 : work + k.b;
	float *dqkv = keep ? stash + st.dqkv : work + k.a;
	float *dh0 = keep ? stash + st.dh0 : work + k.d;
	float *df1 = keep ? stash + st.df1 : work + k.f2;
	float *dctx = work + k.d, *dg1 = work + k.f1, *dln1 = work + k.a;
	const float *qkv = save + s.qkv;

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

void rt_gpt2_block_wgt(const rt_tf *L, float *g, const float *x, const float *save,
                       const float *stash, float *work, int64_t B, int64_t T)
{
	int64_t d = L->d, f = L->ffn, n = B * T;
	gpt2_w o = gpt2_w_at(L);
	gpt2_save s = gpt2_save_at(L, B, T);
	gpt2_stash st = gpt2_stash_at(L, B, T);
	(void)work;
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
 * rt_gpt2_block_fwd's inference on T new positions pos0 .. pos0+T-1 of
 * each sample, whose keys and values join the cache kc, vc [B, cap, d]
 * before the queries attend to cache positions 0 .. Lk-1, Lk = pos0 + T
 * (the causal mask, at absolute positions, hides the later ones of a
 * prefill).  work, B·rt_gpt2_kv_work(T, Lk, ...) floats, N = B·T rows:
 *   A [N, d] · B-D [N, 3d] · S, P [B, heads, T, Lk] · F1, F2 [N, ffn]
 * work_at's slots with Lk-wide scores, used as the full block's inference
 * uses them: h0 in A (ln_1's statistics in B, C) then the context, qkv
 * over B-D, then h1 in B and h2 in C (ln_2's statistics in D, A); scores
 * in S, probabilities in P; c_fc's output in F1, its gelu in F2.  The new
 * keys and values are read from the cache, not from qkv: one GEMM per
 * sample covers the old positions and the new. */
void rt_gpt2_block_fwd_kv(const rt_tf *L, const float *w, const float *x, float *y,
                          float *kc, float *vc, int64_t cap, float *work, int64_t B,
                          int64_t T, int64_t pos0)
{
	int64_t d = L->d, n = B * T, lk = pos0 + T;
	gpt2_w o = gpt2_w_at(L);
	tf_work k = kv_work_at(L, B, T, lk);
	float *h0 = work + k.a, *qkv = work + k.b, *ctx = work + k.a;
	if (n <= 0)
		return;
	rt_layernorm_fwd(x, w + o.ln1g, w + o.ln1b, h0, work + k.b, work + k.c, n, d, L->eps);
	conv1d_fwd(h0, w + o.wattn, w + o.battn, qkv, n, d, 3 * d);
	for (int64_t b = 0; b < B; b++)
		for (int64_t t = 0; t < T; t++) {
			const float *r = qkv + (b * T + t) * 3 * d;
			int64_t at = (b * cap + pos0 + t) * d;
			memcpy(kc + at, r + d, (size_t)d * sizeof *kc);
			memcpy(vc + at, r + 2 * d, (size_t)d * sizeof *vc);
		}
	attend(L, qkv, 3 * d, T * 3 * d, kc, vc, d, cap * d, NULL, 1, work + k.r1, work + k.r2,
	       ctx, B, T, lk, pos0);
	gpt2_post_attn(L, w, x, ctx, y, work + k.b, work + k.c, work + k.f1, work + k.f2,
	               work + k.d, work + k.a, n);
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
	double ss = 0.0;
	for (int64_t j = 0; j < d; j++)
		ss += (double)x[j] * x[j];
	return sqrt(ss);
}

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

void rt_gelu_tanh_fwd(const float *restrict x, float *restrict y, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		y[i] = rt_gelu_tanh_hd(x[i]);
}

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
