/* rt_tf_layout.h — where things lie inside the transformer kernels'
 * weights, save, stash and work buffers (pipert.h, rt_tf_sizes.h).
 *
 * Offsets in floats, so one description serves const and writable
 * buffers alike.  Shared by the CPU kernels (rt_tf.c) and the GPU ones
 * (cuda/rt_tf.cu): a save or stash written by one runtime is what the
 * other would write, and t/runtime-cuda-kernels.c compares them piece by
 * piece.  Plain C that nvcc compiles too; private to the runtime.
 */
#ifndef PIPERT_TF_LAYOUT_H
#define PIPERT_TF_LAYOUT_H

#include <math.h>

#include "pipert.h"
#include "rt_dev.h"

typedef struct tf_work {
	int64_t a, b, c, d;         /* [N, d] */
	int64_t r1, r2;             /* [B, heads, T, T] */
	int64_t f1, f2;             /* [N, ffn] */
} tf_work;

static inline tf_work work_at(const rt_tf *L, int64_t B, int64_t T)
{
	int64_t nd = B * T * L->d, nf = B * T * L->ffn, ns = B * L->heads * T * T;
	tf_work k;
	k.a = 0;
	k.b = nd;
	k.c = 2 * nd;
	k.d = 3 * nd;
	k.r1 = 4 * nd;
	k.r2 = k.r1 + ns;
	k.f1 = k.r2 + ns;
	k.f2 = k.f1 + nf;
	return k;
}

/* GPT2Block with a key/value cache (rt_gpt2_block_fwd_kv) on n packed
 * tokens: work_at's [n, d] and [n, ffn] slots, and scores and
 * probabilities of sq floats each (one sequence slot's at a time;
 * rt_tf_sizes.h's rt_gpt2_kv_work bounds the whole). */
static inline tf_work kv_work_rows(const rt_tf *L, int64_t n, int64_t sq)
{
	tf_work k = work_at(L, n, 1);
	k.f1 = k.r1;
	k.f2 = k.f1 + n * L->ffn;
	k.r1 = k.f2 + n * L->ffn;
	k.r2 = k.r1 + sq;
	return k;
}

/* A 16-bit key/value cache (rt_tf's kv_prec): slot r of cache c
 * ([rows, cap, w] values) and the f32 copy of its first np positions that
 * attention reads, in kf (2 · cap · w floats past the cached forward's
 * other scratch: rt_tf_sizes.h's rt_kv16_work); a float cache is read in
 * place. */
static inline void *kv_slot(const rt_tf *L, void *c, int64_t r, int64_t cap, int64_t w)
{
	return (char *)c + r * cap * w * (L->kv_prec ? 2 : 4);
}

static inline const float *kv_read(const rt_tf *L, const void *c, float *kf, int64_t np,
                                   int64_t w)
{
	if (!L->kv_prec)
		return (const float *)c;
	rt_dev_kv_unpack((const uint16_t *)c, kf, np * w, L->kv_prec);
	return kf;
}

/* BertLayer's parameters, in pipert.h's order (Linear: [out, in]). */
typedef struct bert_w {
	int64_t wq, bq, wk, bk, wv, bv, wo, bo, ln1g, ln1b, wi, bi, wout, bout, ln2g, ln2b;
} bert_w;

static inline bert_w bert_w_at(const rt_tf *L)
{
	int64_t d = L->d, f = L->ffn;
	bert_w o;
	o.wq = 0;
	o.bq = o.wq + d * d;
	o.wk = o.bq + d;
	o.bk = o.wk + d * d;
	o.wv = o.bk + d;
	o.bv = o.wv + d * d;
	o.wo = o.bv + d;
	o.bo = o.wo + d * d;
	o.ln1g = o.bo + d;
	o.ln1b = o.ln1g + d;
	o.wi = o.ln1b + d;
	o.bi = o.wi + f * d;
	o.wout = o.bi + f;
	o.bout = o.wout + d * f;
	o.ln2g = o.bout + d;
	o.ln2b = o.ln2g + d;
	return o;
}

typedef struct bert_save {
	int64_t q, k, v, ctx, r1, a, r2, p, hpre, hact, mu1, rs1, mu2, rs2;
} bert_save;

static inline bert_save bert_save_at(const rt_tf *L, int64_t B, int64_t T)
{
	int64_t n = B * T, nd = n * L->d, nf = n * L->ffn;
	bert_save s;
	s.q = 0;
	s.k = nd;
	s.v = 2 * nd;
	s.ctx = 3 * nd;
	s.r1 = 4 * nd;
	s.a = 5 * nd;
	s.r2 = 6 * nd;
	s.p = 7 * nd;
	s.hpre = s.p + B * L->heads * T * T;
	s.hact = s.hpre + nf;
	s.mu1 = s.hact + nf;
	s.rs1 = s.mu1 + n;
	s.mu2 = s.rs1 + n;
	s.rs2 = s.mu2 + n;
	return s;
}

typedef struct bert_stash {
	int64_t dy, dr2, da, dr1, dq, dk, dv, dhpre;
} bert_stash;

static inline bert_stash bert_stash_at(const rt_tf *L, int64_t B, int64_t T)
{
	int64_t nd = B * T * L->d;
	bert_stash g;
	g.dy = 0;
	g.dr2 = nd;
	g.da = 2 * nd;
	g.dr1 = 3 * nd;
	g.dq = 4 * nd;
	g.dk = 5 * nd;
	g.dv = 6 * nd;
	g.dhpre = 7 * nd;
	return g;
}

/* GPT2Block's parameters, in pipert.h's order (Conv1D: [in, out]). */
typedef struct gpt2_w {
	int64_t ln1g, ln1b, wattn, battn, wproj, bproj, ln2g, ln2b, wfc, bfc, wmp, bmp;
} gpt2_w;

static inline gpt2_w gpt2_w_at(const rt_tf *L)
{
	int64_t d = L->d, f = L->ffn;
	gpt2_w o;
	o.ln1g = 0;
	o.ln1b = d;
	o.wattn = 2 * d;
	o.battn = o.wattn + 3 * d * d;
	o.wproj = o.battn + 3 * d;
	o.bproj = o.wproj + d * d;
	o.ln2g = o.bproj + d;
	o.ln2b = o.ln2g + d;
	o.wfc = o.ln2b + d;
	o.bfc = o.wfc + d * f;
	o.wmp = o.bfc + f;
	o.bmp = o.wmp + f * d;
	return o;
}

typedef struct gpt2_save {
	int64_t h0, qkv, ctx, h1, h2, p, f1, g1, mu1, rs1, mu2, rs2;
} gpt2_save;

static inline gpt2_save gpt2_save_at(const rt_tf *L, int64_t B, int64_t T)
{
	int64_t n = B * T, nd = n * L->d, nf = n * L->ffn;
	gpt2_save s;
	s.h0 = 0;
	s.qkv = nd;
	s.ctx = 4 * nd;
	s.h1 = 5 * nd;
	s.h2 = 6 * nd;
	s.p = 7 * nd;
	s.f1 = s.p + B * L->heads * T * T;
	s.g1 = s.f1 + nf;
	s.mu1 = s.g1 + nf;
	s.rs1 = s.mu1 + n;
	s.mu2 = s.rs1 + n;
	s.rs2 = s.mu2 + n;
	return s;
}

typedef struct gpt2_stash {
	int64_t dy, dh2, dh1, dqkv, dh0, df1;
} gpt2_stash;

static inline gpt2_stash gpt2_stash_at(const rt_tf *L, int64_t B, int64_t T)
{
	int64_t nd = B * T * L->d;
	gpt2_stash g;
	g.dy = 0;
	g.dh2 = nd;
	g.dh1 = 2 * nd;
	g.dqkv = 3 * nd;
	g.dh0 = 6 * nd;
	g.df1 = 7 * nd;
	return g;
}

/* ---- llama_block (rt_llama.c) ----
 * kvw = kv_heads·d/heads, qw = d + 2 kvw: q, k, v side by side in one
 * [N, qw] (q at column 0, k at d, v at d + kvw). */
static inline int64_t llama_kvw(const rt_tf *L)
{
	return L->kv_heads * (L->d / L->heads);
}

/* Its parameters, in pipert.h's order (Linear: [out, in]): wqkv is
 * q_proj, k_proj, v_proj's weights one after the other, one [qw, d]
 * matrix; bqkv their biases (qkv_bias; else -1); wgu gate_proj then
 * up_proj, one [2 ffn, d]. */
typedef struct llama_w {
	int64_t ln1, wqkv, bqkv, wo, ln2, wgu, wdown;
} llama_w;

static inline llama_w llama_w_at(const rt_tf *L)
{
	int64_t d = L->d, f = L->ffn, qw = d + 2 * llama_kvw(L);
	llama_w o;
	o.ln1 = 0;
	o.wqkv = d;
	o.bqkv = L->qkv_bias ? o.wqkv + qw * d : -1;
	o.wo = o.wqkv + qw * d + (L->qkv_bias ? qw : 0);
	o.ln2 = o.wo + d * d;
	o.wgu = o.ln2 + d;
	o.wdown = o.wgu + 2 * f * d;
	return o;
}

/* save: h0 = input_layernorm(x) [N, d] · qkv [N, qw] (q, k rotated) ·
 * P [B, heads, T, T] · ctx, h1 = x + o_proj(ctx), h2 =
 * post_attention_layernorm(h1) [N, d] · gu [N, 2 ffn] (gate | up) ·
 * act = silu(gate)·up [N, ffn] · rs1, rs2 [N] (the norms' rstd) */
typedef struct llama_save {
	int64_t h0, qkv, p, ctx, h1, h2, gu, act, rs1, rs2;
} llama_save;

static inline llama_save llama_save_at(const rt_tf *L, int64_t B, int64_t T)
{
	int64_t n = B * T, nd = n * L->d, nf = n * L->ffn, qw = L->d + 2 * llama_kvw(L);
	llama_save s;
	s.h0 = 0;
	s.qkv = nd;
	s.p = s.qkv + n * qw;
	s.ctx = s.p + B * L->heads * T * T;
	s.h1 = s.ctx + nd;
	s.h2 = s.h1 + nd;
	s.gu = s.h2 + nd;
	s.act = s.gu + 2 * nf;
	s.rs1 = s.act + nf;
	s.rs2 = s.rs1 + n;
	return s;
}

/* stash: dy, dh2, dh1, dh0 [N, d] · dqkv [N, qw] (before the rotation:
 * what q_proj, k_proj, v_proj's gradients read) · dgu [N, 2 ffn] */
typedef struct llama_stash {
	int64_t dy, dh2, dh1, dh0, dqkv, dgu;
} llama_stash;

static inline llama_stash llama_stash_at(const rt_tf *L, int64_t B, int64_t T)
{
	int64_t n = B * T, nd = n * L->d, qw = L->d + 2 * llama_kvw(L);
	llama_stash g;
	g.dy = 0;
	g.dh2 = nd;
	g.dh1 = 2 * nd;
	g.dh0 = 3 * nd;
	g.dqkv = 4 * nd;
	g.dgu = g.dqkv + n * qw;
	return g;
}

/* work: A-D [N, d] · Q [N, qw] · S1, S2 [B, heads, T, Lk] · F2 [N, 2 ffn]
 * · F1 [N, ffn] (Lk = T but with a key/value cache); rt_llama_kv_work. */
typedef struct llama_work {
	int64_t a, b, c, d, q, s1, s2, f2, f1;
} llama_work;

/* n tokens with scores and probabilities of sq floats each: B·T tokens
 * and B·heads·T·Lk for a whole block (llama_work_at); the cached forward
 * on n packed tokens (rt_llama_block_fwd_kv) has one sequence slot's at a
 * time. */
static inline llama_work llama_work_rows(const rt_tf *L, int64_t n, int64_t sq)
{
	int64_t nd = n * L->d, qw = L->d + 2 * llama_kvw(L);
	llama_work k;
	k.a = 0;
	k.b = nd;
	k.c = 2 * nd;
	k.d = 3 * nd;
	k.q = 4 * nd;
	k.s1 = k.q + n * qw;
	k.s2 = k.s1 + sq;
	k.f2 = k.s2 + sq;
	k.f1 = k.f2 + 2 * n * L->ffn;
	return k;
}

static inline llama_work llama_work_at(const rt_tf *L, int64_t B, int64_t T, int64_t Lk)
{
	return llama_work_rows(L, B * T, B * L->heads * T * Lk);
}

/* transformers' inv_freq, step by step in float32 as torch computes it
 * (_compute_default_rope_parameters, then _compute_llama3_parameters):
 * 1 / theta^(2i/dh), and with Llama 3's scaling the long wavelengths
 * divided by factor, the middle ones blended.  A Python number divided by
 * a tensor is torch's reciprocal times the number, so those divisions are
 * written so here.  The values are transformers' bit for bit but where
 * torch's float32 pow is not correctly rounded (1 ulp at most: compared
 * with transformers 5.25 over head sizes 8 to 128, rope_theta 1e4 to 1e6,
 * with and without the scaling); a position turns by inv_freq · position,
 * so an ulp moves position 32768's angle by under 1e-6 radians. */
static inline float llama_recip_times(double num, float x)
{
	return (1.0f / x) * (float)num;
}

static inline void llama_inv_freq(const rt_tf *L, float *inv_freq)
{
	int64_t dh = L->d / L->heads;
	float theta = (float)L->rope_theta;
	for (int64_t i = 0; i < dh / 2; i++) {
		float e = (float)(2 * i) / (float)dh;
		float inv = llama_recip_times(1.0, (float)pow((double)theta, (double)e));
		if (L->rope_factor > 0) {
			float factor = (float)L->rope_factor, low = (float)L->rope_low;
			float low_wavelen = (float)((double)L->rope_orig / L->rope_low);
			float high_wavelen = (float)((double)L->rope_orig / L->rope_high);
			float wavelen = llama_recip_times(6.283185307179586, inv);     /* 2 * math.pi */
			float scaled = wavelen > low_wavelen ? inv / factor : inv;
			float smooth = (llama_recip_times((double)L->rope_orig, wavelen) - low)
			               / (float)(L->rope_high - L->rope_low);
			if (!(wavelen < high_wavelen) && !(wavelen > low_wavelen))
				scaled = (1.0f - smooth) * scaled / factor + smooth * scaled;
			inv = scaled;
		}
		inv_freq[i] = inv;
	}
}

#endif /* PIPERT_TF_LAYOUT_H */
