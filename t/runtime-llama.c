/* runtime-llama.c — the driver of t/510-runtime-llama.t: runs the Llama
 * kernels of pipert.h (runtime/rt_llama.c, rt_llama_cpu.c) on inputs
 * t/ref/llama_ref.py wrote, and writes their outputs back for llama_ref.py
 * to compare with its float64 reference.
 *
 *   runtime-llama KIND DIR B T D HEADS KV_HEADS FFN EPS THETA QKV_BIAS
 *                 FACTOR LOW HIGH ORIGINAL VOCAB HAS_MASK
 *
 * KIND: llama_block, llama_emb, rmsnorm (B·T rows of D) or inv_freq.
 * Inputs are DIR/NAME.bin, raw float32 or int32; outputs DIR/out_NAME.bin.
 * What needs no reference the driver checks itself, into DIR/checks.txt
 * ("1 what" or "0 what | why" per line), as t/runtime-tf.c does:
 *   - the zero-bubble split (_bwd without g, then _wgt) gives _bwd's input
 *     and weight gradients bit for bit; dx NULL and g NULL change nothing;
 *   - inference (save NULL) gives training's forward bit for bit;
 *   - nothing is written past the planned sizes of rt_tf_sizes.h (guard
 *     floats follow every buffer), backward leaves save as forward wrote
 *     it, and work is filled with NaN before every call;
 *   - the key/value cache: the sequence run as a prefill and then one
 *     position at a time (out_ykv, compared by llama_ref.py with the
 *     reference's full forward), its caches holding the full forward's
 *     rotated keys and values (save's qkv).
 */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/rt_internal.h"
#include "../runtime/rt_tf_layout.h"
#include "guarded.h"

static const char *dir;
static FILE *checks;

static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "runtime-llama: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static void check(int pass, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(checks, "%d ", pass ? 1 : 0);
	vfprintf(checks, fmt, ap);
	fputc('\n', checks);
	va_end(ap);
}

static void *xmalloc(size_t bytes)
{
	void *p = malloc(bytes ? bytes : 1);
	if (!p)
		fail("out of memory");
	return p;
}

/* Reads DIR/NAME.bin, which must hold exactly n elements of size bytes. */
static void *load(const char *name, int64_t n, size_t size)
{
	char path[4096];
	void *p = xmalloc((size_t)n * size);
	FILE *f;
	snprintf(path, sizeof path, "%s/%s.bin", dir, name);
	f = fopen(path, "rb");
	if (!f)
		fail("cannot open %s", path);
	if (fread(p, size, (size_t)n, f) != (size_t)n || fgetc(f) != EOF)
		fail("%s does not hold %lld values", path, (long long)n);
	fclose(f);
	return p;
}

static void store(const char *name, const void *p, int64_t n, size_t size)
{
	char path[4096];
	FILE *f;
	snprintf(path, sizeof path, "%s/out_%s.bin", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(p, size, (size_t)n, f) != (size_t)n || fclose(f) != 0)
		fail("cannot write %s", path);
}

static float *copy(const float *p, int64_t n)
{
	float *q = xmalloc((size_t)n * sizeof *q);
	memcpy(q, p, (size_t)n * sizeof *q);
	return q;
}

/* "bit for bit", or how far apart when not. */
static void same(const float *a, const float *b, int64_t n, const char *what)
{
	double worst = 0.0;
	if (memcmp(a, b, (size_t)n * sizeof *a) == 0) {
		check(1, "%s", what);
		return;
	}
	for (int64_t i = 0; i < n; i++)
		worst = fmax(worst, fabs((double)a[i] - b[i]));
	check(0, "%s | they differ, by up to %g", what, worst);
}

/* The parameters: pipert.h's llama_block list. */
static int64_t block_params(const rt_tf *L)
{
	int64_t d = L->d, f = L->ffn, qw = d + 2 * llama_kvw(L);
	return 2 * d + qw * d + (L->qkv_bias ? qw : 0) + d * d + 3 * d * f;
}

/* The sequence through the key/value cache: a prefill of T0 positions,
 * then one position per call, each call with exactly the work it is
 * planned (B·rt_llama_kv_work) and NaN in it. */
static void run_kv(const rt_tf *L, const float *w, const float *x, const float *save,
                   int64_t B, int64_t T)
{
	int64_t d = L->d, kvw = llama_kvw(L), qw = d + 2 * kvw, cap = T + 1;
	int64_t T0 = T > 2 ? T - 2 : 1, nc = B * cap * kvw;
	float *kc = buffer(nc), *vc = buffer(nc), *ykv = buffer(B * T * d);
	int guards = 1;
	llama_save s = llama_save_at(L, B, T);
	for (int64_t pos0 = 0; pos0 < T;) {
		int64_t n = pos0 == 0 ? T0 : 1, nk = B * rt_llama_kv_work(n, pos0 + n, d, L->heads,
		                                                         L->kv_heads, L->ffn);
		float *xs = buffer(B * n * d), *ys = buffer(B * n * d), *work = buffer(nk);
		for (int64_t b = 0; b < B; b++)
			memcpy(xs + b * n * d, x + (b * T + pos0) * d, (size_t)(n * d) * sizeof *xs);
		rt_llama_block_fwd_kv(L, w, xs, ys, kc, vc, cap, work, B, n, pos0);
		for (int64_t b = 0; b < B; b++)
			memcpy(ykv + (b * T + pos0) * d, ys + b * n * d, (size_t)(n * d) * sizeof *ys);
		guards = guards && guard_ok(work, nk) && guard_ok(ys, B * n * d);
		free(xs), free(ys), free(work);
		pos0 += n;
	}
	/* the caches against the full forward's rotated keys and values: within
	 * 1e-5 of the largest (the projections' GEMMs of other shapes sum in
	 * other orders) */
	double worst = 0.0, big = 0.0;
	for (int64_t b = 0; b < B; b++)
		for (int64_t t = 0; t < T; t++)
			for (int64_t j = 0; j < 2 * kvw; j++) {
				const float *r = save + s.qkv + (b * T + t) * qw + d;
				float c = j < kvw ? kc[(b * cap + t) * kvw + j] : vc[(b * cap + t) * kvw + j - kvw];
				big = fmax(big, fabs(r[j]));
				worst = isnan(c) ? INFINITY : fmax(worst, fabs(c - r[j]));
			}
	check(worst <= 1e-5 * fmax(big, 1.0), "the caches hold the full forward's rotated keys and "
	      "values | off by up to %g of %g", worst, big);
	check(guards && guard_ok(kc, nc) && guard_ok(vc, nc),
	      "the cached forward writes nothing past its work (rt_llama_kv_work), y or the caches");
	store("ykv", ykv, B * T * d, sizeof *ykv);
}

static void run_block(const rt_tf *L, const int32_t *mask, int64_t B, int64_t T)
{
	int64_t d = L->d, f = L->ffn, h = L->heads, hk = L->kv_heads, nd = B * T * d;
	int64_t nw = block_params(L);
	int64_t ns = B * rt_llama_block_save(T, d, h, hk, f);
	int64_t nt = B * rt_llama_block_stash(T, d, h, hk, f);
	int64_t nk = B * rt_llama_block_work(T, d, h, hk, f);
	float *w = load("w", nw, sizeof(float)), *x = load("x", nd, sizeof(float));
	float *dy = load("dy", nd, sizeof(float)), *g0 = load("g0", nw, sizeof(float));
	float *save = buffer(ns), *stash = buffer(nt), *work = buffer(nk);
	float *y = buffer(nd), *yi = buffer(nd), *dx = buffer(nd), *dx2 = buffer(nd);
	float *g = copy(g0, nw), *g2 = copy(g0, nw), *g3 = copy(g0, nw), *saved;

	rt_llama_block_fwd(L, w, x, mask, y, save, work, B, T);
	poison(work, nk);
	rt_llama_block_fwd(L, w, x, mask, yi, NULL, work, B, T);
	same(yi, y, nd, "inference (save NULL) gives training's forward bit for bit");
	saved = copy(save, ns);

	poison(work, nk);
	rt_llama_block_bwd(L, w, g, x, save, dy, dx, NULL, work, B, T);
	poison(work, nk);
	rt_llama_block_bwd(L, w, NULL, x, save, dy, dx2, stash, work, B, T);
	poison(work, nk);
	rt_llama_block_wgt(L, g2, x, save, stash, work, B, T);
	same(dx2, dx, nd, "zero-bubble split: _bwd without g gives the input gradient of _bwd with g, bit for bit");
	same(g2, g, nw, "zero-bubble split: _bwd then _wgt accumulate _bwd's weight gradients, bit for bit");
	poison(work, nk);
	rt_llama_block_bwd(L, w, g3, x, save, dy, NULL, NULL, work, B, T);
	same(g3, g, nw, "_bwd with dx NULL gives the same weight gradients");
	poison(work, nk);
	poison(dx2, nd);
	rt_llama_block_bwd(L, w, NULL, x, save, dy, dx2, NULL, work, B, T);
	same(dx2, dx, nd, "_bwd with neither g nor stash gives the same input gradient");
	check(memcmp(saved, save, (size_t)ns * sizeof *save) == 0,
	      "backward and _wgt leave save as forward wrote it");
	check(guard_ok(save, ns) && guard_ok(stash, nt) && guard_ok(work, nk) && guard_ok(y, nd)
	      && guard_ok(yi, nd) && guard_ok(dx, nd) && guard_ok(dx2, nd),
	      "nothing is written past save, stash, work (rt_tf_sizes.h at T = %lld) or the outputs",
	      (long long)T);
	store("y", y, nd, sizeof *y);
	store("dx", dx, nd, sizeof *dx);
	store("g", g, nw, sizeof *g);
	if (!mask)
		run_kv(L, w, x, save, B, T);
}

int main(int argc, char **argv)
{
	rt_tf L;
	const char *kind;
	int64_t B, T, nd;
	int32_t *mask = NULL;
	char path[4096];

	if (argc != 18)
		fail("usage: runtime-llama KIND DIR B T D HEADS KV_HEADS FFN EPS THETA QKV_BIAS "
		     "FACTOR LOW HIGH ORIGINAL VOCAB HAS_MASK");
	kind = argv[1];
	dir = argv[2];
	B = atoll(argv[3]);
	T = atoll(argv[4]);
	memset(&L, 0, sizeof L);
	L.d = atoll(argv[5]);
	L.heads = atoll(argv[6]);
	L.kv_heads = atoll(argv[7]);
	L.ffn = atoll(argv[8]);
	L.eps = strtod(argv[9], NULL);
	L.rope_theta = strtod(argv[10], NULL);
	L.qkv_bias = atoi(argv[11]);
	L.rope_factor = strtod(argv[12], NULL);
	L.rope_low = strtod(argv[13], NULL);
	L.rope_high = strtod(argv[14], NULL);
	L.rope_orig = atoll(argv[15]);
	L.vocab = atoll(argv[16]);
	nd = B * T * L.d;
	snprintf(path, sizeof path, "%s/checks.txt", dir);
	checks = fopen(path, "w");
	if (!checks)
		fail("cannot write %s", path);
	if (atoi(argv[17]))
		mask = load("mask", B * T, sizeof(int32_t));

	if (!strcmp(kind, "llama_block")) {
		run_block(&L, mask, B, T);
	} else if (!strcmp(kind, "llama_emb")) {
		int64_t nw = L.vocab * L.d;
		float *w = load("w", nw, sizeof(float)), *dy = load("dy", nd, sizeof(float));
		float *g = load("g0", nw, sizeof(float)), *y = buffer(nd), *ya = buffer(nd);
		int32_t *ids = load("ids", B * T, sizeof(int32_t));
		rt_llama_emb_fwd(&L, w, ids, y, B, T);
		rt_llama_emb_fwd_at(&L, w, ids, ya, B, T, 5);
		same(ya, y, nd, "rt_llama_emb_fwd_at at any position gives rt_llama_emb_fwd's rows");
		rt_llama_emb_bwd(&L, g, ids, dy, B, T);
		check(guard_ok(y, nd) && guard_ok(ya, nd), "nothing is written past y");
		store("y", y, nd, sizeof *y);
		store("g", g, nw, sizeof *g);
	} else if (!strcmp(kind, "rmsnorm")) {
		int64_t rows = B * T, d = L.d;
		float *x = load("x", nd, sizeof(float)), *w = load("w", d, sizeof(float));
		float *dy = load("dy", nd, sizeof(float)), *g = load("g0", d, sizeof(float));
		float *y = buffer(nd), *rs = buffer(rows), *dx = buffer(nd);
		rt_rmsnorm_fwd(x, w, y, rs, rows, d, L.eps);
		rt_rmsnorm_bwd_data(x, w, rs, dy, dx, rows, d);
		rt_rmsnorm_bwd_weight(x, rs, dy, g, rows, d);
		check(guard_ok(y, nd) && guard_ok(rs, rows) && guard_ok(dx, nd),
		      "nothing is written past y, rstd ([rows]) or dx");
		store("y", y, nd, sizeof *y);
		store("dx", dx, nd, sizeof *dx);
		store("g", g, d, sizeof *g);
	} else if (!strcmp(kind, "inv_freq")) {
		int64_t half = L.d / L.heads / 2;
		float *inv = buffer(half);
		rt_llama_inv_freq(&L, inv);
		check(guard_ok(inv, half), "nothing is written past inv_freq [dh/2]");
		store("inv", inv, half, sizeof *inv);
	} else {
		fail("unknown kind %s", kind);
	}
	if (fclose(checks) != 0)
		fail("cannot write %s", path);
	return 0;
}
