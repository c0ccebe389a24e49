/* rt_tf.c — the composition of pipert.h's transformer blocks (BertLayer,
 * GPT2Block, GPT-2's generation with a key/value cache), written once for
 * both runtimes: libpipert.a compiles it over the CPU's kernels,
 * libpipert_cuda.a over the GPU's (and a third time as its CPU twins,
 * cuda/rt_cpu_tf.c).
 *
 * Every matrix product goes through rt_gemm, rt_linear_* or rt_dev.h's
 * rt_dev_tf_heads_gemm, every layernorm and softmax through
 * rt_layernorm_* and rt_softmax_*; the few element-wise pieces (residual
 * adds, the attention masks, Conv1D's bias rows and column sums, the
 * cache's stores) are rt_dev.h's transformer primitives, written per
 * device: rt_tf_cpu.c (which also holds the CPU's embeddings, pooling and
 * the other layers that are kernels of their own) and cuda/rt_tf.cu.
 * So the two runtimes run the same calls in the same order on the same
 * buffers, and t/runtime-cuda-kernels.c compares them piece by piece.
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
#include <stddef.h>

#include "rt_dev.h"
#include "rt_tf_layout.h"

/* ---- Conv1D (GPT-2's linear): y = x·W + b with W [in, out] ---- */

static void conv1d_fwd(const float *x, const float *w, const float *b, float *y,
                       int64_t rows, int64_t in, int64_t out)
{
	rt_dev_tf_bias_rows(b, y, rows, out);
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
	rt_dev_tf_colsum_acc(dy, db, rows, out);
}

/* ---- Attention ----
 * q, k, v are column blocks of rows ld floats apart (bert keeps three
 * [N, d] buffers, GPT-2 one [N, 3d]); head hh is columns hh·dh ..
 * (hh+1)·dh.  Scores and probabilities are [B, heads, T, T]; each product
 * covers every sample's heads (rt_dev_tf_heads_gemm). */

/* T queries per sample against Lk keys and values: a sample's queries
 * start sq floats after the previous sample's, rows ldq apart; its keys and
 * values sk floats after, rows ldk apart (the cache's rows are not the
 * queries').  s and p are [B, heads, T, Lk], ctx [B·T, d].  Query i is at
 * position pos0 + i (or *dpos + i, rt_dev_tf_kv_pos). */
static void attend(const rt_tf *L, const float *q, int64_t ldq, int64_t sq, const float *k,
                   const float *v, int64_t ldk, int64_t sk, const int32_t *mask, int causal,
                   float *s, float *p, float *ctx, int64_t B, int64_t T, int64_t Lk,
                   int64_t pos0, const int64_t *dpos)
{
	int64_t d = L->d, h = L->heads, dh = d / h, tl = T * Lk;
	float scale = (float)(1.0 / sqrt((double)dh));
	if (T == 1 && rt_dev_tf_attend_one(q, sq, k, v, ldk, sk, mask, causal, s, p, ctx, B, h,
	                                   dh, Lk, pos0, scale))
		return;
	/* S = scale · q · kᵀ */
	rt_dev_tf_heads_gemm(0, 1, T, Lk, dh, scale, q, ldq, sq, dh, k, ldk, sk, dh, s, Lk, h * tl,
	                     tl, B, h);
	rt_dev_tf_mask_scores(s, mask, causal, B, h, T, Lk, pos0, dpos);
	rt_softmax_fwd(s, p, B * h * T, Lk);
	/* ctx = P · v */
	rt_dev_tf_heads_gemm(0, 0, T, dh, Lk, 1.0f, p, Lk, h * tl, tl, v, ldk, sk, dh, ctx, d,
	                     T * d, dh, B, h);
}

static void attn_fwd(const rt_tf *L, const float *q, const float *k, const float *v,
                     int64_t ld, const int32_t *mask, int causal, float *s, float *p,
                     float *ctx, int64_t B, int64_t T)
{
	attend(L, q, ld, T * ld, k, v, ld, T * ld, mask, causal, s, p, ctx, B, T, T, 0, NULL);
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
	/* dP = dctx · vᵀ; dv = Pᵀ · dctx */
	rt_dev_tf_heads_gemm(0, 1, T, T, dh, 1.0f, dctx, d, T * d, dh, v, ld, T * ld, dh, dp, T,
	                     h * tt, tt, B, h);
	rt_dev_tf_heads_gemm(1, 0, T, dh, T, 1.0f, p, T, h * tt, tt, dctx, d, T * d, dh, dv, ldg,
	                     T * ldg, dh, B, h);
	rt_softmax_bwd(p, dp, ds, B * h * T, T);
	/* A score torch.where replaced passes no gradient back; an added mask
	 * does (it only matters in a row whose keys are all masked). */
	if (causal)
		rt_dev_tf_causal_zero(ds, B * h * T, T);
	/* dq = scale · dS · k; dk = scale · dSᵀ · q */
	rt_dev_tf_heads_gemm(0, 0, T, dh, T, scale, ds, T, h * tt, tt, k, ld, T * ld, dh, dq, ldg,
	                     T * ldg, dh, B, h);
	rt_dev_tf_heads_gemm(1, 0, T, dh, T, scale, ds, T, h * tt, tt, q, ld, T * ld, dh, dk, ldg,
	                     T * ldg, dh, B, h);
}

/* ---- BertLayer (post-layernorm) ---- */

void rt_bert_layer_fwd(const rt_tf *L, const float *w, const float *x, const int32_t *mask,
                       float *y, float *save, float *work, int64_t B, int64_t T)
{
	int64_t d = L->d, f = L->ffn, n = B * T;
	bert_w o = bert_w_at(L);
	tf_work k = work_at(L, B, T);
	float *q, *kk, *v, *p, *ctx, *r1, *a, *r2, *hpre, *hact, *mu1, *rs1, *mu2, *rs2;
	if (n <= 0 || !rt_dev_tf_begin())
		return;
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
	rt_dev_tf_add(r1, x, n * d);
	rt_layernorm_fwd(r1, w + o.ln1g, w + o.ln1b, a, mu1, rs1, n, d, L->eps);
	rt_linear_fwd(a, w + o.wi, w + o.bi, hpre, n, d, f);
	rt_gelu_fwd(hpre, hact, n * f);
	rt_linear_fwd(hact, w + o.wout, w + o.bout, r2, n, f, d);
	rt_dev_tf_add(r2, a, n * d);
	rt_layernorm_fwd(r2, w + o.ln2g, w + o.ln2b, y, mu2, rs2, n, d, L->eps);
	rt_dev_tf_end();
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
	if (n <= 0 || !rt_dev_tf_begin())
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
	rt_dev_tf_add(da, dr2, n * d);
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
	rt_dev_tf_end();
}

void rt_bert_layer_wgt(const rt_tf *L, float *g, const float *x, const float *save,
                       const float *stash, float *work, int64_t B, int64_t T)
{
	int64_t d = L->d, f = L->ffn, n = B * T;
	bert_w o = bert_w_at(L);
	bert_save s = bert_save_at(L, B, T);
	bert_stash st = bert_stash_at(L, B, T);
	(void)work;
	if (n <= 0 || !rt_dev_tf_begin())
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
	rt_dev_tf_end();
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
	rt_dev_tf_add(h1, x, n * d);
	rt_layernorm_fwd(h1, w + o.ln2g, w + o.ln2b, h2, mu2, rs2, n, d, L->eps);
	conv1d_fwd(h2, w + o.wfc, w + o.bfc, f1, n, d, f);
	rt_gelu_tanh_fwd(f1, g1, n * f);
	conv1d_fwd(g1, w + o.wmp, w + o.bmp, y, n, f, d);
	rt_dev_tf_add(y, h1, n * d);
}

void rt_gpt2_block_fwd(const rt_tf *L, const float *w, const float *x, const int32_t *mask,
                       float *y, float *save, float *work, int64_t B, int64_t T)
{
	int64_t d = L->d, n = B * T;
	gpt2_w o = gpt2_w_at(L);
	tf_work k = work_at(L, B, T);
	float *h0, *qkv, *p, *ctx, *h1, *h2, *f1, *g1, *mu1, *rs1, *mu2, *rs2;
	if (n <= 0 || !rt_dev_tf_begin())
		return;
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
	rt_dev_tf_end();
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
	if (n <= 0 || !rt_dev_tf_begin())
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
	rt_dev_tf_add(dh1, dy, n * d);
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
		rt_dev_tf_add(dx, dln1, n * d);
	}
	rt_dev_tf_end();
}

void rt_gpt2_block_wgt(const rt_tf *L, float *g, const float *x, const float *save,
                       const float *stash, float *work, int64_t B, int64_t T)
{
	int64_t d = L->d, f = L->ffn, n = B * T;
	gpt2_w o = gpt2_w_at(L);
	gpt2_save s = gpt2_save_at(L, B, T);
	gpt2_stash st = gpt2_stash_at(L, B, T);
	(void)work;
	if (n <= 0 || !rt_dev_tf_begin())
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
	rt_dev_tf_end();
}

/* ---- GPT2Block with a key/value cache (generation) ----
 * rt_gpt2_block_fwd's inference on a group's packed new tokens (pipert.h's
 * rt_gen_rows): sequence slot r's n[r] tokens at positions pos[r] ..
 * pos[r]+n[r]-1 join its cache kc, vc [rows, cap, d] before its queries
 * attend to its cached positions 0 .. pos[r]+n[r]-1 (the causal mask, at
 * absolute positions, hides the later ones of a prefill).  work (n = ntok
 * packed rows; rt_gpt2_kv_work bounds it):
 *   A-D [n, d] · F1, F2 [n, ffn] · S, P [heads, n[r], pos[r]+n[r]]
 * used as the full block's inference uses them: h0 in A (ln_1's
 * statistics in B, C) then the context, qkv over B-D, then h1 in B and h2
 * in C (ln_2's statistics in D, A); one slot's scores in S and
 * probabilities in P; c_fc's output in F1, its gelu in F2.  Layernorms and
 * every linear run once over all n tokens; a slot's keys and values are
 * read from its cache, not from qkv: one attention per busy slot covers
 * its old positions and its new. */
static int64_t rows_scores(const rt_gen_rows *g)
{
	int64_t sq = 0;
	for (int64_t r = 0; r < g->rows; r++) {
		int64_t s = (int64_t)g->n[r] * (g->pos[r] + g->n[r]);
		if (s > sq)
			sq = s;
	}
	return sq;
}

void rt_gpt2_block_fwd_kv(const rt_tf *L, const float *w, const float *x, float *y,
                          void *kc, void *vc, int64_t cap, float *work,
                          const rt_gen_rows *g)
{
	int64_t d = L->d, n = g->ntok;
	gpt2_w o = gpt2_w_at(L);
	tf_work k = kv_work_rows(L, n, L->heads * rows_scores(g));
	float *h0 = work + k.a, *qkv = work + k.b, *ctx = work + k.a;
	float *kf = work + k.r2 + L->heads * rows_scores(g), *vf = kf + cap * d;
	if (n <= 0 || !rt_dev_tf_begin())
		return;
	rt_layernorm_fwd(x, w + o.ln1g, w + o.ln1b, h0, work + k.b, work + k.c, n, d, L->eps);
	conv1d_fwd(h0, w + o.wattn, w + o.battn, qkv, n, d, 3 * d);
	for (int64_t r = 0; r < g->rows; r++) {
		int64_t nr = g->n[r], p0 = g->pos[r], at = g->off[r];
		if (nr <= 0)
			continue;
		void *kr = kv_slot(L, kc, r, cap, d), *vr = kv_slot(L, vc, r, cap, d);
		(void)rt_dev_tf_kv_pos(cap, nr, p0);    /* checks that they fit */
		rt_dev_tf_kv_store(qkv + at * 3 * d, kr, vr, cap, 1, nr, p0, NULL, d, L->kv_prec);
		attend(L, qkv + at * 3 * d, 3 * d, nr * 3 * d, kv_read(L, kr, kf, p0 + nr, d),
		       kv_read(L, vr, vf, p0 + nr, d), d, cap * d, NULL, 1, work + k.r1, work + k.r2,
		       ctx + at * d, 1, nr, p0 + nr, p0, NULL);
	}
	gpt2_post_attn(L, w, x, ctx, y, work + k.b, work + k.c, work + k.f1, work + k.f2,
	               work + k.d, work + k.a, n);
	rt_dev_tf_end();
}

/* The embedding of each busy slot's new tokens at its positions. */
void rt_gpt2_emb_fwd_rows(const rt_tf *L, const float *w, const int32_t *ids, float *y,
                          const rt_gen_rows *g)
{
	for (int64_t r = 0; r < g->rows; r++)
		if (g->n[r] > 0)
			rt_gpt2_emb_fwd_at(L, w, ids + g->off[r], y + (int64_t)g->off[r] * L->d, 1,
			                   g->n[r], g->pos[r]);
}

/* Slot r's last new token to row r.  A row moving down (r <= its source)
 * never lands on a source still to be read when they go in increasing
 * order, nor one moving up (r > its source) in decreasing order after
 * them: sources increase with r and every destination differs. */
void rt_take_last_rows(float *x, const rt_gen_rows *g, int64_t d)
{
	size_t bytes = (size_t)d * sizeof *x;
	for (int64_t r = 0; r < g->rows; r++) {
		int64_t src = (int64_t)g->off[r] + g->n[r] - 1;
		if (g->n[r] > 0 && src > r)
			rt_copy(x + r * d, x + src * d, bytes);
	}
	for (int64_t r = g->rows - 1; r >= 0; r--) {
		int64_t src = (int64_t)g->off[r] + g->n[r] - 1;
		if (g->n[r] > 0 && src < r)
			rt_copy(x + r * d, x + src * d, bytes);
	}
}
