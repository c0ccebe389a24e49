/* runtime-kv.c — the driver of t/507-runtime-kv.t: GPT-2 generation's
 * kernels (rt_gpt2_emb_fwd_at, rt_gpt2_block_fwd_kv, rt_take_last) against
 * the full-sequence ones, which t/505-runtime-tf.t checks against
 * transformers' float64 reference.  No reference of its own is needed: a
 * causal model's output at a position does not depend on later positions,
 * so running a sequence in pieces through the key/value cache must give
 * what one full-sequence forward gives, position by position.
 *
 * A model of two gpt2_blocks on random weights; three samples; the full
 * forward (save NULL) over 12 and over 20 positions; then the same
 * positions in chunks (a prefill, then decodes of one position, or chunks
 * of several), each chunk's blocks on their own caches.  Checked on every
 * schedule:
 *   - every chunk's block outputs match the full forward within 1e-5 of
 *     the largest magnitude of the row (matrix products of other shapes
 *     sum in other orders), and its embeddings bit for bit;
 *   - the caches hold the full forward's keys and values (its saved qkv)
 *     at the chunk's positions, and a call writes nothing else of them:
 *     no earlier or later position of any sample, nothing past cap (guard
 *     floats follow each cache);
 *   - work is scratch: it is filled with NaN before every call and sized
 *     exactly as the kernel lays it out (guards follow it), so a value
 *     expected to survive in it, a read of a part never written or a write
 *     past it shows;
 *   - pos0 + T == cap: the 20-position schedules fill their caches.
 * The chunks give every sample the same rows (rt_gen_rows with n = T, pos
 * = pos0 for each); then rounds whose samples differ, as continuous
 * batching runs them: one decoding, one prefilling, one idle, in the
 * packed layout.  Then rt_take_last and rt_take_last_rows on their own,
 * and the embedding past its table.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_math.h"
#include "rt_tf_layout.h"
#include "rt_tf_sizes.h"
#include "guarded.h"
#include "tap.h"

enum { D = 16, HEADS = 2, FFN = 64, B = 3, CAP = 20, VOCAB = 40, POSITIONS = 20, LAYERS = 2 };
static const double TOL = 1e-5;

static void *xmalloc(size_t bytes)
{
	void *p = malloc(bytes ? bytes : 1);
	if (!p) {
		fprintf(stderr, "runtime-kv: out of memory\n");
		exit(1);
	}
	return p;
}


/* xorshift64*: the same weights on every machine. */
static uint64_t rng = 0x9e3779b97f4a7c15u;

static double uniform(void)     /* [-1, 1) */
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return (double)((rng * 0x2545f4914f6cdd1du) >> 11) / 4503599627370496.0 - 1.0;
}

static void fill(float *p, int64_t n, double center, double spread)
{
	for (int64_t i = 0; i < n; i++)
		p[i] = (float)(center + spread * uniform());
}

/* A gpt2_block's parameters: layernorms near the identity, weights large
 * enough that attention is far from uniform. */
static float *block_weights(const rt_tf *L)
{
	int64_t d = L->d, f = L->ffn, nw = 4 * d * d + 2 * d * f + 9 * d + f;
	gpt2_w o = gpt2_w_at(L);
	float *w = xmalloc((size_t)nw * sizeof *w);
	fill(w, nw, 0.0, 0.3);
	fill(w + o.ln1g, d, 1.0, 0.2);
	fill(w + o.ln2g, d, 1.0, 0.2);
	fill(w + o.wattn, 3 * d * d, 0.0, 0.6);
	return w;
}

/* The largest |got - want| of a row of n, over the row's largest |want|:
 * NaN anywhere gives NaN, which no tolerance passes. */
static double row_err(const float *got, const float *want, int64_t n)
{
	double diff = 0.0, mag = 0.0;
	for (int64_t j = 0; j < n; j++) {
		double e = fabs((double)got[j] - want[j]);
		if (isnan(e))
			return NAN;
		diff = fmax(diff, e);
		mag = fmax(mag, fabs((double)want[j]));
	}
	return mag > 0.0 ? diff / mag : diff;
}

static double worse(double a, double b)
{
	return isnan(a) || isnan(b) ? NAN : fmax(a, b);
}

/* The full-sequence forward over the first tf positions of ids [B, CAP]:
 * emb [B, tf, d], every block's output y[l] and its keys and values
 * qkv[l] [B·tf, 3d] (from a second forward, with save). */
typedef struct full_run {
	int64_t tf;
	float *emb, *y[LAYERS], *qkv[LAYERS];
} full_run;

static full_run full_forward(const rt_tf *Le, const float *we, const rt_tf *L,
                             float *const *w, const int32_t *ids, int64_t tf)
{
	int64_t d = L->d, nd = B * tf * d;
	int64_t nk = B * rt_tf_block_work(tf, d, L->heads, L->ffn);
	int64_t ns = B * rt_tf_block_save(tf, d, L->heads, L->ffn);
	int32_t *idt = xmalloc((size_t)(B * tf) * sizeof *idt);
	float *work = buffer(nk), *save = buffer(ns), *ys = buffer(nd);
	const float *x;
	full_run r;
	r.tf = tf;
	for (int64_t b = 0; b < B; b++)
		memcpy(idt + b * tf, ids + b * CAP, (size_t)tf * sizeof *idt);
	r.emb = buffer(nd);
	rt_gpt2_emb_fwd(Le, we, idt, r.emb, B, tf);
	x = r.emb;
	for (int l = 0; l < LAYERS; l++) {
		r.y[l] = buffer(nd);
		poison(work, nk);
		rt_gpt2_block_fwd(L, w[l], x, NULL, r.y[l], NULL, work, B, tf);
		poison(work, nk);
		rt_gpt2_block_fwd(L, w[l], x, NULL, ys, save, work, B, tf);
		r.qkv[l] = xmalloc((size_t)(3 * nd) * sizeof(float));
		memcpy(r.qkv[l], save + gpt2_save_at(L, B, tf).qkv, (size_t)(3 * nd) * sizeof(float));
		x = r.y[l];
	}
	free(idt);
	free(work);
	free(save);
	free(ys);
	return r;
}

/* Rows of B samples: sample b's n[b] new tokens at pos[b], packed. */
typedef struct rows_buf {
	int32_t n[B], pos[B], off[B];
	rt_gen_rows g;
} rows_buf;

static const rt_gen_rows *rows_of(rows_buf *rb, const int *n, const int *pos)
{
	int64_t at = 0;
	for (int b = 0; b < B; b++) {
		rb->n[b] = n[b];
		rb->pos[b] = pos[b];
		rb->off[b] = (int32_t)at;
		at += n[b];
	}
	rb->g = (rt_gen_rows){ .rows = B, .ntok = at, .n = rb->n, .pos = rb->pos, .off = rb->off };
	return &rb->g;
}

/* The work rt_gpt2_block_fwd_kv lays out for rows g (rt_tf_layout.h). */
static int64_t work_of(const rt_tf *L, const rt_gen_rows *g)
{
	int64_t sq = 0;
	for (int b = 0; b < B; b++)
		if ((int64_t)g->n[b] * (g->pos[b] + g->n[b]) > sq)
			sq = (int64_t)g->n[b] * (g->pos[b] + g->n[b]);
	return g->ntok * (4 * L->d + 2 * L->ffn) + 2 * L->heads * sq;
}

/* Runs r's positions in chunks of the given lengths through the cached
 * kernels and reports the checks of the file's comment.  Returns the
 * last chunk's output (for rt_take_last), [B, its length, d]. */
static float *run_chunks(const rt_tf *Le, const float *we, const rt_tf *L, float *const *w,
                         const int32_t *ids, const full_run *r, const int *chunk, int nchunk,
                         const char *what)
{
	int64_t d = L->d, nc = B * CAP * d;
	float *kc[LAYERS], *vc[LAYERS], *before = xmalloc((size_t)(2 * nc) * sizeof(float));
	float *x = NULL, *y;
	double err = 0.0, cache_err = 0.0;
	int emb_same = 1, cache_kept = 1, guards = 1;
	int64_t pos0 = 0;

	for (int l = 0; l < LAYERS; l++) {
		kc[l] = buffer(nc);
		vc[l] = buffer(nc);
	}
	for (int c = 0; c < nchunk; c++) {
		int64_t t = chunk[c], nd = B * t * d, lk = pos0 + t;
		int nn[B], pp[B];
		rows_buf rb;
		for (int b = 0; b < B; b++)
			nn[b] = (int)t, pp[b] = (int)pos0;
		const rt_gen_rows *g = rows_of(&rb, nn, pp);
		int64_t nk = work_of(L, g);
		int32_t *idt = xmalloc((size_t)(B * t) * sizeof *idt);
		for (int64_t b = 0; b < B; b++)
			memcpy(idt + b * t, ids + b * CAP + pos0, (size_t)t * sizeof *idt);
		free(x);
		x = buffer(nd);
		rt_gpt2_emb_fwd_at(Le, we, idt, x, B, t, pos0);
		guards &= guard_ok(x, nd);
		for (int64_t b = 0; b < B; b++)
			emb_same &= memcmp(x + b * t * d, r->emb + (b * r->tf + pos0) * d,
			                   (size_t)(t * d) * sizeof *x) == 0;
		for (int l = 0; l < LAYERS; l++) {
			float *work = buffer(nk);
			y = buffer(nd);
			memcpy(before, kc[l], (size_t)nc * sizeof *before);
			memcpy(before + nc, vc[l], (size_t)nc * sizeof *before);
			rt_gpt2_block_fwd_kv(L, w[l], x, y, kc[l], vc[l], CAP, work, g);
			guards &= guard_ok(work, nk) && guard_ok(y, nd) && guard_ok(kc[l], nc) &&
			          guard_ok(vc[l], nc);
			for (int64_t b = 0; b < B; b++) {
				for (int64_t i = 0; i < t; i++)
					err = worse(err, row_err(y + (b * t + i) * d,
					                         r->y[l] + (b * r->tf + pos0 + i) * d, d));
				for (int64_t j = 0; j < CAP; j++) {
					int64_t at = (b * CAP + j) * d;
					const float *q = r->qkv[l] + (b * r->tf + j) * 3 * d;
					if (j >= pos0 && j < lk) {
						cache_err = worse(cache_err, row_err(kc[l] + at, q + d, d));
						cache_err = worse(cache_err, row_err(vc[l] + at, q + 2 * d, d));
					} else {
						cache_kept &= memcmp(kc[l] + at, before + at,
						                     (size_t)d * sizeof *before) == 0 &&
						              memcmp(vc[l] + at, before + nc + at,
						                     (size_t)d * sizeof *before) == 0;
					}
				}
			}
			free(work);
			free(x);
			x = y;
		}
		free(idt);
		pos0 = lk;
	}
	ok(pos0 == r->tf, "%s: the chunks cover the %lld positions", what, (long long)r->tf);
	ok(err <= TOL, "%s: every block's output matches the full forward | worst %.3g of the row's magnitude",
	   what, err);
	ok(emb_same, "%s: rt_gpt2_emb_fwd_at gives rt_gpt2_emb_fwd's rows bit for bit", what);
	ok(cache_err <= TOL, "%s: the caches hold the full forward's keys and values | worst %.3g",
	   what, cache_err);
	ok(cache_kept, "%s: a call writes no cache position outside its own, of any sample", what);
	ok(guards, "%s: nothing is written past work, y, x or the caches (cap %d)",
	   what, CAP);
	for (int l = 0; l < LAYERS; l++) {
		free(kc[l]);
		free(vc[l]);
	}
	free(before);
	return x;
}

/* Rounds whose samples differ: sample b runs n[round][b] new tokens
 * after the ones it ran before, packed; every output row against the full
 * forward's, the embeddings bit for bit. */
static void mixed_rounds(const rt_tf *Le, const float *we, const rt_tf *L, float *const *w,
                         const int32_t *ids, const full_run *r)
{
	static const int n[3][B] = { { 11, 4, 0 }, { 1, 1, 7 }, { 0, 7, 5 } };
	int64_t d = L->d, nc = B * CAP * d;
	int done[B] = { 0 };
	float *kc[LAYERS], *vc[LAYERS];
	double err = 0.0;
	int emb_same = 1, guards = 1;
	for (int l = 0; l < LAYERS; l++) {
		kc[l] = buffer(nc);
		vc[l] = buffer(nc);
	}
	for (int k = 0; k < 3; k++) {
		rows_buf rb;
		const rt_gen_rows *g = rows_of(&rb, n[k], done);
		int64_t nd = g->ntok * d, nk = work_of(L, g);
		int32_t *idt = xmalloc((size_t)g->ntok * sizeof *idt);
		float *x = buffer(nd), *y;
		for (int b = 0; b < B; b++)
			memcpy(idt + rb.off[b], ids + b * CAP + done[b], (size_t)n[k][b] * sizeof *idt);
		rt_gpt2_emb_fwd_rows(Le, we, idt, x, g);
		for (int b = 0; b < B; b++)
			emb_same &= memcmp(x + rb.off[b] * d, r->emb + (b * r->tf + done[b]) * d,
			                   (size_t)(n[k][b] * d) * sizeof *x) == 0;
		for (int l = 0; l < LAYERS; l++) {
			float *work = buffer(nk);
			y = buffer(nd);
			rt_gpt2_block_fwd_kv(L, w[l], x, y, kc[l], vc[l], CAP, work, g);
			guards &= guard_ok(work, nk) && guard_ok(y, nd) && guard_ok(kc[l], nc) &&
			          guard_ok(vc[l], nc);
			for (int b = 0; b < B; b++)
				for (int i = 0; i < n[k][b]; i++)
					err = worse(err, row_err(y + (rb.off[b] + i) * d,
					                         r->y[l] + (b * r->tf + done[b] + i) * d, d));
			free(work);
			free(x);
			x = y;
		}
		free(x);
		free(idt);
		for (int b = 0; b < B; b++)
			done[b] += n[k][b];
	}
	ok(err <= TOL && emb_same && guards, "rows that differ (a decode beside a prefill, an idle "
	   "slot, a prefill in two pieces), packed: every output as the full forward's | worst "
	   "%.3g", err);
	for (int l = 0; l < LAYERS; l++) {
		free(kc[l]);
		free(vc[l]);
	}
}

/* rt_take_last_rows: each busy slot's last token to its row, idle rows
 * left alone; rows move down and up. */
/* 16-bit caches (rt_tf's kv_prec, a bf16 / f16 program): the first block
 * on the full forward's embeddings, a prefill of 5 then 7 decodes.  Each
 * stored key and value is the 16 bits of the full forward's f32 one
 * rounded to nearest even (rt_math.h), and the output is the full
 * forward's but for attention reading rounded keys and values: within
 * tol of the row's magnitude, and not all of it bit for bit.  The work is
 * the f32 cache's plus rt_kv16_work (the slot's f32 copies). */
static void kv16_chunks(const rt_tf *L0, float *const *w, const full_run *r, int prec,
                        double tol, const char *what)
{
	rt_tf L = *L0;
	int64_t d = L.d, nc = B * CAP * d, pos0 = 0, tf = r->tf;
	/* the caches: nc 16-bit values each, in guarded float buffers */
	uint16_t *kc = (uint16_t *)buffer((nc + 1) / 2), *vc = (uint16_t *)buffer((nc + 1) / 2);
	double err = 0.0;
	int stored = 1, guards = 1, differs = 0;
	static const int chunk[] = { 5, 1, 1, 1, 1, 1, 1, 1 };
	L.kv_prec = prec;
	for (int c = 0; c < 8; c++) {
		int64_t t = chunk[c], nd = B * t * d;
		int nn[B], pp[B];
		rows_buf rb;
		for (int b = 0; b < B; b++)
			nn[b] = (int)t, pp[b] = (int)pos0;
		const rt_gen_rows *g = rows_of(&rb, nn, pp);
		int64_t nk = work_of(&L, g) + rt_kv16_work(CAP, d);
		float *x = buffer(nd), *y = buffer(nd), *work = buffer(nk);
		for (int64_t b = 0; b < B; b++)
			memcpy(x + b * t * d, r->emb + (b * tf + pos0) * d, (size_t)(t * d) * sizeof *x);
		rt_gpt2_block_fwd_kv(&L, w[0], x, y, kc, vc, CAP, work, g);
		guards &= guard_ok(work, nk) && guard_ok(y, nd) && guard_ok((float *)kc, (nc + 1) / 2) &&
		          guard_ok((float *)vc, (nc + 1) / 2);
		for (int64_t b = 0; b < B; b++)
			for (int64_t i = 0; i < t; i++) {
				const float *want = r->y[0] + (b * tf + pos0 + i) * d;
				const float *q = r->qkv[0] + (b * tf + pos0 + i) * 3 * d;
				int64_t at = (b * CAP + pos0 + i) * d;
				err = worse(err, row_err(y + (b * t + i) * d, want, d));
				differs |= memcmp(y + (b * t + i) * d, want, (size_t)d * sizeof *y) != 0;
				for (int64_t j = 0; j < d; j++)
					stored &= prec == RT_PREC_BF16
					          ? kc[at + j] == rt_bf16_bits(q[d + j]) &&
					            vc[at + j] == rt_bf16_bits(q[2 * d + j])
					          : kc[at + j] == rt_f16_bits(q[d + j]) &&
					            vc[at + j] == rt_f16_bits(q[2 * d + j]);
			}
		pos0 += t;
		free(x);
		free(y);
		free(work);
	}
	ok(stored, "%s cache, prefill 5 and 7 decodes: every stored key and value is the full "
	   "forward's rounded to nearest even", what);
	ok(err <= tol && differs, "%s cache: the output is the full forward's within %g of the "
	   "row's magnitude (attention reads rounded keys and values: not bit for bit) | worst %.3g",
	   what, tol, err);
	ok(guards, "%s cache: nothing is written past work (+ rt_kv16_work), y or the caches",
	   what);
	free(kc);
	free(vc);
}

static void take_last_rows(const int *n)
{
	rows_buf rb;
	const rt_gen_rows *g = rows_of(&rb, n, (const int[B]){ 0 });
	int64_t d = D, rows = g->ntok > B ? g->ntok : B, all = rows * d;
	float *x = buffer(all), *orig = xmalloc((size_t)all * sizeof *orig);
	int same = 1;
	fill(x, all, 0.0, 1.0);
	memcpy(orig, x, (size_t)all * sizeof *orig);
	rt_take_last_rows(x, g, d);
	for (int b = 0; b < B; b++)
		same &= memcmp(x + b * d, n[b] ? orig + (rb.off[b] + n[b] - 1) * d : orig + b * d,
		               (size_t)d * sizeof *x) == 0;
	ok(same && guard_ok(x, all), "rt_take_last_rows, n = {%d, %d, %d}: row b is slot b's last "
	   "token, an idle slot's row is left alone", n[0], n[1], n[2]);
	free(x);
	free(orig);
}

/* rt_take_last on a [b, t, d] buffer of random rows, against a copy. */
static void take_last(int64_t b, int64_t t, int64_t d)
{
	int64_t n = b * t * d;
	float *x = buffer(n), *orig = xmalloc((size_t)n * sizeof *orig);
	int same = 1;
	fill(x, n, 0.0, 1.0);
	memcpy(orig, x, (size_t)n * sizeof *orig);
	rt_take_last(x, b, t, d);
	for (int64_t i = 0; i < b; i++)
		same &= memcmp(x + i * d, orig + (i * t + t - 1) * d, (size_t)d * sizeof *x) == 0;
	ok(same && guard_ok(x, n), "rt_take_last, B %lld T %lld: row b is sample b's last position",
	   (long long)b, (long long)t);
	free(x);
	free(orig);
}

int main(void)
{
	rt_tf L, Le;
	float *we, *w[LAYERS], *y;
	int32_t *ids = xmalloc(B * CAP * sizeof *ids);
	full_run r12, r20;
	static const int prefill5[] = { 5, 1, 1, 1, 1, 1, 1, 1 };
	static const int prefill1[] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 };
	static const int split345[] = { 3, 4, 5 };
	static const int fill_cap[] = { 12, 7, 1 };
	static const int one_cap[] = { 20 };

	memset(&L, 0, sizeof L);
	L.d = D;
	L.heads = HEADS;
	L.ffn = FFN;
	L.eps = 1e-5;
	Le = L;
	Le.vocab = VOCAB;
	Le.positions = POSITIONS;
	we = xmalloc((size_t)((VOCAB + POSITIONS) * D) * sizeof *we);
	fill(we, (VOCAB + POSITIONS) * D, 0.0, 1.0);
	for (int l = 0; l < LAYERS; l++)
		w[l] = block_weights(&L);
	for (int i = 0; i < B * CAP; i++)
		ids[i] = (int32_t)((uniform() + 1.0) * 0.5 * VOCAB);

	r12 = full_forward(&Le, we, &L, w, ids, 12);
	r20 = full_forward(&Le, we, &L, w, ids, 20);

	free(run_chunks(&Le, we, &L, w, ids, &r12, prefill5, 8, "prefill 5, 7 decodes"));
	free(run_chunks(&Le, we, &L, w, ids, &r12, prefill1, 12, "prefill 1, 11 decodes"));
	y = run_chunks(&Le, we, &L, w, ids, &r12, split345, 3, "chunks 3+4+5");
	free(run_chunks(&Le, we, &L, w, ids, &r20, fill_cap, 3, "chunks 12+7+1 to cap"));
	free(run_chunks(&Le, we, &L, w, ids, &r20, one_cap, 1, "prefill 20 = cap"));

	/* The last chunk of 3+4+5 holds positions 7 .. 11. */
	{
		int64_t tl = split345[2];
		float *yc = xmalloc((size_t)(B * tl * D) * sizeof *yc);
		int moved = 1;
		double err = 0.0;
		memcpy(yc, y, (size_t)(B * tl * D) * sizeof *yc);
		rt_take_last(y, B, tl, D);
		for (int64_t b = 0; b < B; b++) {
			moved &= memcmp(y + b * D, yc + (b * tl + tl - 1) * D, D * sizeof *y) == 0;
			err = worse(err, row_err(y + b * D, r12.y[LAYERS - 1] + (b * 12 + 11) * D, D));
		}
		ok(moved && err <= TOL, "rt_take_last on the last chunk gives each sample's position 11 | worst %.3g",
		   err);
		free(yc);
		free(y);
	}
	take_last(7, 2, D);     /* sources overlap later destinations */
	take_last(5, 3, 5);
	take_last(1, 4, D);
	take_last(4, 1, D);     /* T = 1: nothing moves */
	mixed_rounds(&Le, we, &L, w, ids, &r12);
	kv16_chunks(&L, w, &r12, RT_PREC_BF16, 1e-2, "bf16");
	kv16_chunks(&L, w, &r12, RT_PREC_F16, 2e-3, "f16");
	take_last_rows((const int[B]){ 0, 1, 1 });      /* rows move up */
	take_last_rows((const int[B]){ 3, 0, 2 });
	take_last_rows((const int[B]){ 1, 4, 1 });

	/* Positions past the table read nothing, as ids outside it do. */
	{
		float *e = buffer(B * 2 * D);
		int nan_ok = 1;
		rt_gpt2_emb_fwd_at(&Le, we, ids, e, B, 2, POSITIONS - 1);
		for (int64_t i = 0; i < B * 2 * D; i++)
			nan_ok &= (i / D % 2 == 1) == (isnan(e[i]) != 0);
		ok(nan_ok && guard_ok(e, B * 2 * D),
		   "rt_gpt2_emb_fwd_at: position %d is in the table, %d is not (NaN)", POSITIONS - 1,
		   POSITIONS);
		free(e);
	}
	return done_testing();
}
