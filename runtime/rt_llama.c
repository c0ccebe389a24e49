/* rt_llama.c — the composition of pipert.h's llama_block (LlamaDecoderLayer,
 * Qwen2DecoderLayer), written once for both runtimes as rt_tf.c is for the
 * GPT-2 and BERT blocks: every matrix product goes through rt_gemm,
 * rt_linear_* or rt_dev_tf_heads_gemm, the norms through rt_rmsnorm_*, the
 * softmax through rt_softmax_*, and the element-wise pieces are rt_dev.h's
 * primitives (rt_llama_cpu.c on the CPU, cuda/rt_llama.cu on a GPU).
 * rt_tf_layout.h's llama_* describe the weights, save, stash and work.
 */
#include <math.h>

#include "rt_dev.h"
#include "rt_tf_layout.h"

/* pipert.h's name for rt_tf_layout.h's llama_inv_freq, which the devices'
 * rotations (rt_llama_cpu.c, cuda/rt_llama.cu) call themselves. */
void rt_llama_inv_freq(const rt_tf *L, float *inv_freq)
{
	llama_inv_freq(L, inv_freq);
}

/* ---- Grouped-query attention ----
 * Query head hh reads key/value head hh / g, g = heads / kv_heads: the
 * products run per key/value head over its g query heads (the key's head
 * stride 0).  q rows ldq apart (a sample sq floats after the previous
 * one's), keys and values rows ldk apart (sk); scores and probabilities
 * [B, heads, T, Lk], ctx [B·T, d].  Query i is at position pos0 + i (or
 * *dpos + i), key j at j: causal, with the padding mask if given. */
static void gqa_attend(const rt_tf *L, const float *q, int64_t ldq, int64_t sq, const float *k,
                       const float *v, int64_t ldk, int64_t sk, const int32_t *mask, float *s,
                       float *p, float *ctx, int64_t B, int64_t T, int64_t Lk, int64_t pos0,
                       const int64_t *dpos)
{
	int64_t d = L->d, h = L->heads, hk = L->kv_heads, g = h / hk, dh = d / h, tl = T * Lk;
	float scale = (float)(1.0 / sqrt((double)dh));
	if (T == 1 && !dpos) {
		/* a decode step: the device's one-query attention, on every
		 * sample's heads at once when there are no groups, else head by
		 * head (its heads read keys at their own columns) */
		if (g == 1 && rt_dev_tf_attend_one(q, sq, k, v, ldk, sk, mask, 1, s, p, ctx, B, h, dh,
		                                   Lk, pos0, scale))
			return;
		int done = g > 1;
		for (int64_t b = 0; b < B && done; b++)
			for (int64_t hh = 0; hh < h && done; hh++)
				done = rt_dev_tf_attend_one(q + b * sq + hh * dh, sq, k + b * sk + hh / g * dh,
				                            v + b * sk + hh / g * dh, ldk, sk,
				                            mask ? mask + b * Lk : NULL, 1,
				                            s + (b * h + hh) * Lk, p + (b * h + hh) * Lk,
				                            ctx + b * d + hh * dh, 1, 1, dh, Lk, pos0, scale);
		if (done)
			return;
	}
	/* S = scale · q · kᵀ */
	for (int64_t j = 0; j < hk; j++)
		rt_dev_tf_heads_gemm(0, 1, T, Lk, dh, scale, q + j * g * dh, ldq, sq, dh, k + j * dh, ldk,
		                     sk, 0, s + j * g * tl, Lk, h * tl, tl, B, g);
	rt_dev_tf_mask_scores(s, mask, 1, B, h, T, Lk, pos0, dpos);
	rt_softmax_fwd(s, p, B * h * T, Lk);
	/* ctx = P · v */
	for (int64_t j = 0; j < hk; j++)
		rt_dev_tf_heads_gemm(0, 0, T, dh, Lk, 1.0f, p + j * g * tl, Lk, h * tl, tl, v + j * dh,
		                     ldk, sk, 0, ctx + j * g * dh, d, T * d, dh, B, g);
}

/* Its gradient on the saved q, k, v (rows ld apart, q at column 0, k at
 * d, v at d + kvw) and probabilities p: dq, dk, dv in the same columns of
 * rows ldg apart; dp, ds two [B, heads, T, T] scratch buffers.  A key
 * head's gradient sums its g query heads' (one product each, added in
 * head order). */
static void gqa_bwd(const rt_tf *L, const float *qkv, int64_t ld, const float *p,
                    const float *dctx, float *dp, float *ds, float *dqkv, int64_t ldg,
                    int64_t B, int64_t T)
{
	int64_t d = L->d, h = L->heads, hk = L->kv_heads, g = h / hk, dh = d / h, tt = T * T;
	int64_t kvw = hk * dh;
	const float *q = qkv, *k = qkv + d, *v = qkv + d + kvw;
	float *dq = dqkv, *dk = dqkv + d, *dv = dqkv + d + kvw;
	float scale = (float)(1.0 / sqrt((double)dh));
	/* dP = dctx · vᵀ; dv = Σ Pᵀ · dctx */
	for (int64_t j = 0; j < hk; j++)
		rt_dev_tf_heads_gemm(0, 1, T, T, dh, 1.0f, dctx + j * g * dh, d, T * d, dh, v + j * dh,
		                     ld, T * ld, 0, dp + j * g * tt, T, h * tt, tt, B, g);
	for (int64_t hh = 0; hh < h; hh++)
		rt_gemm(1, 0, T, dh, T, 1.0f, p + hh * tt, T, h * tt, dctx + hh * dh, d, T * d,
		        hh % g ? 1.0f : 0.0f, dv + hh / g * dh, ldg, T * ldg, B);
	rt_softmax_bwd(p, dp, ds, B * h * T, T);
	/* the causal mask replaced those scores: no gradient passes */
	rt_dev_tf_causal_zero(ds, B * h * T, T);
	/* dq = scale · dS · k; dk = scale · Σ dSᵀ · q */
	for (int64_t j = 0; j < hk; j++)
		rt_dev_tf_heads_gemm(0, 0, T, dh, T, scale, ds + j * g * tt, T, h * tt, tt, k + j * dh,
		                     ld, T * ld, 0, dq + j * g * dh, ldg, T * ldg, dh, B, g);
	for (int64_t hh = 0; hh < h; hh++)
		rt_gemm(1, 0, T, dh, T, scale, ds + hh * tt, T, h * tt, q + hh * dh, ld, T * ld,
		        hh % g ? 1.0f : 0.0f, dk + hh / g * dh, ldg, T * ldg, B);
}

/* ---- LlamaDecoderLayer ---- */

/* What follows the attention, shared by the full-sequence and the cached
 * forward: h1 = x + o_proj(ctx), h2 = post_attention_layernorm(h1),
 * y = h1 + down(silu(gate(h2))·up(h2)). */
static void llama_post_attn(const rt_tf *L, const float *w, const float *x, const float *ctx,
                            float *y, float *h1, float *h2, float *gu, float *act, float *rs2,
                            int64_t n)
{
	int64_t d = L->d, f = L->ffn;
	llama_w o = llama_w_at(L);
	rt_linear_fwd(ctx, w + o.wo, NULL, h1, n, d, d);
	rt_dev_tf_add(h1, x, n * d);
	rt_rmsnorm_fwd(h1, w + o.ln2, h2, rs2, n, d, L->eps);
	rt_linear_fwd(h2, w + o.wgu, NULL, gu, n, d, 2 * f);
	rt_dev_llama_swiglu_fwd(gu, act, n, f);
	rt_linear_fwd(act, w + o.wdown, NULL, y, n, f, d);
	rt_dev_tf_add(y, h1, n * d);
}

/* h0 = input_layernorm(x), qkv = its q, k, v projections with q and k
 * rotated to positions pos0 (dpos) on. */
static void llama_qkv(const rt_tf *L, const float *w, const float *x, float *h0, float *rs1,
                      float *qkv, int64_t B, int64_t T, int64_t pos0, const int64_t *dpos)
{
	int64_t d = L->d, n = B * T, qw = d + 2 * llama_kvw(L);
	llama_w o = llama_w_at(L);
	rt_rmsnorm_fwd(x, w + o.ln1, h0, rs1, n, d, L->eps);
	rt_linear_fwd(h0, w + o.wqkv, o.bqkv >= 0 ? w + o.bqkv : NULL, qkv, n, d, qw);
	/* q's heads and k's lie side by side from column 0: one call turns both */
	rt_dev_llama_rope(L, qkv, qw, L->heads + L->kv_heads, B, T, pos0, dpos, 0);
}

void rt_llama_block_fwd(const rt_tf *L, const float *w, const float *x, const int32_t *mask,
                        float *y, float *save, float *work, int64_t B, int64_t T)
{
	int64_t d = L->d, n = B * T, qw = d + 2 * llama_kvw(L);
	llama_work k = llama_work_at(L, B, T, T);
	float *h0, *qkv, *p, *ctx, *h1, *h2, *gu, *act, *rs1, *rs2;
	if (n <= 0 || !rt_dev_tf_begin())
		return;
	if (save) {
		llama_save s = llama_save_at(L, B, T);
		h0 = save + s.h0, qkv = save + s.qkv, p = save + s.p, ctx = save + s.ctx;
		h1 = save + s.h1, h2 = save + s.h2, gu = save + s.gu, act = save + s.act;
		rs1 = save + s.rs1, rs2 = save + s.rs2;
	} else {
		/* Inference: h0 in A, dead once qkv (Q) is made, then h2; the
		 * context in B, h1 in C; both norms' rstd in D. */
		h0 = work + k.a, qkv = work + k.q, p = work + k.s2, ctx = work + k.b;
		h1 = work + k.c, h2 = work + k.a, gu = work + k.f2, act = work + k.f1;
		rs1 = rs2 = work + k.d;
	}
	llama_qkv(L, w, x, h0, rs1, qkv, B, T, 0, NULL);
	gqa_attend(L, qkv, qw, T * qw, qkv + d, qkv + d + llama_kvw(L), qw, T * qw, mask,
	           work + k.s1, p, ctx, B, T, T, 0, NULL);
	llama_post_attn(L, w, x, ctx, y, h1, h2, gu, act, rs2, n);
	rt_dev_tf_end();
}

void rt_llama_block_bwd(const rt_tf *L, const float *w, float *g, const float *x,
                        const float *save, const float *dy, float *dx, float *stash,
                        float *work, int64_t B, int64_t T)
{
	int64_t d = L->d, f = L->ffn, n = B * T, qw = d + 2 * llama_kvw(L);
	llama_w o = llama_w_at(L);
	llama_save s = llama_save_at(L, B, T);
	llama_work k = llama_work_at(L, B, T, T);
	int keep = !g && stash;     /* zero-bubble's B: stash for the W */
	llama_stash st = llama_stash_at(L, B, T);
	/* Without a stash: dh2 in A, then dh0 there; dh1 in B; dqkv in Q;
	 * dgu in F2.  Always in work: dact F1, dctx C, the norm's dx D. */
	float *dgu = keep ? stash + st.dgu : work + k.f2;
	float *dh2 = keep ? stash + st.dh2 : work + k.a;
	float *dh1 = keep ? stash + st.dh1 : work + k.b;
	float *dqkv = keep ? stash + st.dqkv : work + k.q;
	float *dh0 = keep ? stash + st.dh0 : work + k.a;
	float *dact = work + k.f1, *dctx = work + k.c, *dln1 = work + k.d;
	if (n <= 0 || !rt_dev_tf_begin())
		return;

	if (keep)
		rt_copy(stash + st.dy, dy, (size_t)(n * d) * sizeof *dy);
	/* y = h1 + down(silu(gate(h2))·up(h2)) */
	if (g)
		rt_linear_bwd_weight(save + s.act, dy, g + o.wdown, NULL, n, f, d);
	rt_linear_bwd_data(dy, w + o.wdown, dact, n, f, d);
	rt_dev_llama_swiglu_bwd(save + s.gu, dact, dgu, n, f);
	if (g)
		rt_linear_bwd_weight(save + s.h2, dgu, g + o.wgu, NULL, n, d, 2 * f);
	rt_linear_bwd_data(dgu, w + o.wgu, dh2, n, d, 2 * f);
	if (g)
		rt_rmsnorm_bwd_weight(save + s.h1, save + s.rs2, dh2, g + o.ln2, n, d);
	rt_rmsnorm_bwd_data(save + s.h1, w + o.ln2, save + s.rs2, dh2, dh1, n, d);
	rt_dev_tf_add(dh1, dy, n * d);
	/* h1 = x + o_proj(attn(rope(q), rope(k), v)) */
	if (g)
		rt_linear_bwd_weight(save + s.ctx, dh1, g + o.wo, NULL, n, d, d);
	rt_linear_bwd_data(dh1, w + o.wo, dctx, n, d, d);
	if (dx)
		rt_copy(dx, dh1, (size_t)(n * d) * sizeof *dx);
	gqa_bwd(L, save + s.qkv, qw, save + s.p, dctx, work + k.s1, work + k.s2, dqkv, qw, B, T);
	/* the rotation's transpose: the gradients of q and k as projected */
	rt_dev_llama_rope(L, dqkv, qw, L->heads + L->kv_heads, B, T, 0, NULL, 1);
	if (g)
		rt_linear_bwd_weight(save + s.h0, dqkv, g + o.wqkv, o.bqkv >= 0 ? g + o.bqkv : NULL, n,
		                     d, qw);
	rt_linear_bwd_data(dqkv, w + o.wqkv, dh0, n, d, qw);
	if (g)
		rt_rmsnorm_bwd_weight(x, save + s.rs1, dh0, g + o.ln1, n, d);
	if (dx) {
		rt_rmsnorm_bwd_data(x, w + o.ln1, save + s.rs1, dh0, dln1, n, d);
		rt_dev_tf_add(dx, dln1, n * d);
	}
	rt_dev_tf_end();
}

void rt_llama_block_wgt(const rt_tf *L, float *g, const float *x, const float *save,
                        const float *stash, float *work, int64_t B, int64_t T)
{
	int64_t d = L->d, f = L->ffn, n = B * T, qw = d + 2 * llama_kvw(L);
	llama_w o = llama_w_at(L);
	llama_save s = llama_save_at(L, B, T);
	llama_stash st = llama_stash_at(L, B, T);
	(void)work;
	if (n <= 0 || !rt_dev_tf_begin())
		return;
	/* The calls of rt_llama_block_bwd's `if (g)` branches, on the stash. */
	rt_linear_bwd_weight(save + s.act, stash + st.dy, g + o.wdown, NULL, n, f, d);
	rt_linear_bwd_weight(save + s.h2, stash + st.dgu, g + o.wgu, NULL, n, d, 2 * f);
	rt_rmsnorm_bwd_weight(save + s.h1, save + s.rs2, stash + st.dh2, g + o.ln2, n, d);
	rt_linear_bwd_weight(save + s.ctx, stash + st.dh1, g + o.wo, NULL, n, d, d);
	rt_linear_bwd_weight(save + s.h0, stash + st.dqkv, g + o.wqkv,
	                     o.bqkv >= 0 ? g + o.bqkv : NULL, n, d, qw);
	rt_rmsnorm_bwd_weight(x, save + s.rs1, stash + st.dh0, g + o.ln1, n, d);
	rt_dev_tf_end();
}

/* ---- LlamaDecoderLayer with a key/value cache (generation) ----
 * rt_llama_block_fwd's inference on a group's packed new tokens (pipert.h's
 * rt_gen_rows), as rt_gpt2_block_fwd_kv: slot r's n[r] tokens at positions
 * pos[r] .. are rotated at those positions, their keys and values join
 * its cache kc, vc [rows, cap, kvw], and its queries attend to its cached
 * positions 0 .. pos[r]+n[r]-1.  The norms and every linear run once over
 * all ntok tokens; rotation, the cache's stores and attention slot by
 * slot.  work: llama_work_rows (one slot's scores at a time). */
void rt_llama_block_fwd_kv(const rt_tf *L, const float *w, const float *x, float *y,
                           void *kc, void *vc, int64_t cap, float *work,
                           const rt_gen_rows *g)
{
	int64_t d = L->d, n = g->ntok, kvw = llama_kvw(L), qw = d + 2 * kvw, sq = 0;
	llama_w o = llama_w_at(L);
	for (int64_t r = 0; r < g->rows; r++)
		if ((int64_t)g->n[r] * (g->pos[r] + g->n[r]) > sq)
			sq = (int64_t)g->n[r] * (g->pos[r] + g->n[r]);
	llama_work k = llama_work_rows(L, n, L->heads * sq);
	float *qkv = work + k.q, *kf = work + k.f1 + n * L->ffn, *vf = kf + cap * kvw;
	if (n <= 0 || !rt_dev_tf_begin())
		return;
	rt_rmsnorm_fwd(x, w + o.ln1, work + k.a, work + k.d, n, d, L->eps);
	rt_linear_fwd(work + k.a, w + o.wqkv, o.bqkv >= 0 ? w + o.bqkv : NULL, qkv, n, d, qw);
	for (int64_t r = 0; r < g->rows; r++) {
		int64_t nr = g->n[r], p0 = g->pos[r];
		float *q = qkv + (int64_t)g->off[r] * qw;
		void *kr = kv_slot(L, kc, r, cap, kvw), *vr = kv_slot(L, vc, r, cap, kvw);
		if (nr <= 0)
			continue;
		(void)rt_dev_tf_kv_pos(cap, nr, p0);    /* checks that they fit */
		rt_dev_llama_rope(L, q, qw, L->heads + L->kv_heads, 1, nr, p0, NULL, 0);
		rt_dev_llama_kv_store(q, qw, d, d + kvw, kr, vr, cap, 1, nr, p0, NULL, kvw,
		                      L->kv_prec);
		gqa_attend(L, q, qw, nr * qw, kv_read(L, kr, kf, p0 + nr, kvw),
		           kv_read(L, vr, vf, p0 + nr, kvw), kvw, cap * kvw, NULL, work + k.s1,
		           work + k.s2, work + k.b + (int64_t)g->off[r] * d, 1, nr, p0 + nr, p0, NULL);
	}
	llama_post_attn(L, w, x, work + k.b, y, work + k.c, work + k.a, work + k.f2, work + k.f1,
	                work + k.d, n);
	rt_dev_tf_end();
}

/* The token embedding has no positions: every packed token at once. */
void rt_llama_emb_fwd_rows(const rt_tf *L, const float *w, const int32_t *ids, float *y,
                           const rt_gen_rows *g)
{
	rt_llama_emb_fwd(L, w, ids, y, 1, g->ntok);
}
