/* runtime-tf.c — the driver of t/505-runtime-tf.t: runs the transformer
 * kernels of pipert.h (runtime/rt_tf.c) on inputs t/ref/tf_ref.py wrote,
 * and writes their outputs back for tf_ref.py to compare with its float64
 * reference.
 *
 *   runtime-tf KIND DIR B T D HEADS FFN EPS VOCAB POSITIONS TYPES HAS_MASK HAS_TYPES SCALE
 *
 * KIND: bert_layer, gpt2_block, bert_emb, gpt2_emb, mean_pool,
 * l2_normalize (B rows of D), gelu_tanh (B·T·D values) or loss (D is the
 * vocabulary).  Inputs are DIR/NAME.bin, raw float32 or int32; outputs
 * DIR/out_NAME.bin.  What needs no reference the driver checks itself and
 * writes to DIR/checks.txt, a line "1 what" or "0 what | why" each:
 *   - the zero-bubble split (_bwd without g, then _wgt) gives _bwd's input
 *     and weight gradients bit for bit;
 *   - inference (save NULL) gives training's forward bit for bit;
 *   - no kernel writes past the planned sizes of rt_tf_sizes.h at the run's
 *     T (each buffer is followed by guard floats), and backward leaves save
 *     as forward wrote it;
 *   - work is scratch: it is filled with NaN before every call, so a value
 *     expected to survive in it, or a read of a part never written, shows
 *     as NaN in the outputs that tf_ref.py compares.
 */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/rt_internal.h"
#include "guarded.h"

static const char *dir;
static FILE *checks;

static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "runtime-tf: ");
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

typedef void (*block_fwd)(const rt_tf *, const float *, const float *, const int32_t *,
                          float *, float *, float *, int64_t, int64_t);
typedef void (*block_bwd)(const rt_tf *, const float *, float *, const float *, const float *,
                          const float *, float *, float *, float *, int64_t, int64_t);
typedef void (*block_wgt)(const rt_tf *, float *, const float *, const float *, const float *,
                          float *, int64_t, int64_t);

static void run_block(const rt_tf *L, const char *kind, const int32_t *mask, int64_t B, int64_t T)
{
	int gpt2 = strcmp(kind, "gpt2_block") == 0;
	block_fwd fwd = gpt2 ? rt_gpt2_block_fwd : rt_bert_layer_fwd;
	block_bwd bwd = gpt2 ? rt_gpt2_block_bwd : rt_bert_layer_bwd;
	block_wgt wgt = gpt2 ? rt_gpt2_block_wgt : rt_bert_layer_wgt;
	int64_t d = L->d, f = L->ffn, h = L->heads, nd = B * T * d;
	/* Both kinds hold 4d² + 2·d·ffn + 9d + ffn parameters. */
	int64_t nw = 4 * d * d + 2 * d * f + 9 * d + f;
	int64_t ns = B * rt_tf_block_save(T, d, h, f), nt = B * rt_tf_block_stash(T, d, h, f);
	int64_t nk = B * rt_tf_block_work(T, d, h, f);
	float *w = load("w", nw, sizeof(float)), *x = load("x", nd, sizeof(float));
	float *dy = load("dy", nd, sizeof(float)), *g0 = load("g0", nw, sizeof(float));
	float *save = buffer(ns), *stash = buffer(nt), *work = buffer(nk);
	float *y = buffer(nd), *yi = buffer(nd), *dx = buffer(nd), *dx2 = buffer(nd);
	float *g = copy(g0, nw), *g2 = copy(g0, nw), *g3 = copy(g0, nw), *saved;
	int guards = 1;

	fwd(L, w, x, mask, y, save, work, B, T);
	poison(work, nk);
	fwd(L, w, x, mask, yi, NULL, work, B, T);
	same(yi, y, nd, "inference (save NULL) gives training's forward bit for bit");
	saved = copy(save, ns);

	poison(work, nk);
	bwd(L, w, g, x, save, dy, dx, NULL, work, B, T);
	poison(work, nk);
	bwd(L, w, NULL, x, save, dy, dx2, stash, work, B, T);
	poison(work, nk);
	wgt(L, g2, x, save, stash, work, B, T);
	same(dx2, dx, nd, "zero-bubble split: _bwd without g gives the input gradient of _bwd with g, bit for bit");
	same(g2, g, nw, "zero-bubble split: _bwd then _wgt accumulate _bwd's weight gradients, bit for bit");
	poison(work, nk);
	bwd(L, w, g3, x, save, dy, NULL, NULL, work, B, T);
	same(g3, g, nw, "_bwd with dx NULL gives the same weight gradients");
	poison(work, nk);
	poison(dx2, nd);
	bwd(L, w, NULL, x, save, dy, dx2, NULL, work, B, T);
	same(dx2, dx, nd, "_bwd with neither g nor stash gives the same input gradient");
	check(memcmp(saved, save, (size_t)ns * sizeof *save) == 0,
	      "backward and _wgt leave save as forward wrote it");
	guards = guard_ok(save, ns) && guard_ok(stash, nt) && guard_ok(work, nk) &&
	         guard_ok(y, nd) && guard_ok(yi, nd) && guard_ok(dx, nd) && guard_ok(dx2, nd);
	check(guards, "nothing is written past save, stash, work (rt_tf_sizes.h at T = %lld) or the outputs",
	      (long long)T);
	store("y", y, nd, sizeof *y);
	store("dx", dx, nd, sizeof *dx);
	store("g", g, nw, sizeof *g);
}

static void run_bert_emb(const rt_tf *L, const int32_t *types, int64_t B, int64_t T)
{
	int64_t d = L->d, nd = B * T * d;
	int64_t nw = (L->vocab + L->positions + L->types + 2) * d;
	int64_t ns = B * rt_bert_emb_save(T, d), nk = B * rt_bert_emb_work(T, d);
	float *w = load("w", nw, sizeof(float)), *dy = load("dy", nd, sizeof(float));
	float *g = load("g0", nw, sizeof(float));
	int32_t *ids = load("ids", B * T, sizeof(int32_t));
	float *save = buffer(ns), *work = buffer(nk), *y = buffer(nd), *yi = buffer(nd);
	rt_bert_emb_fwd(L, w, ids, types, y, save, B, T);
	rt_bert_emb_fwd(L, w, ids, types, yi, NULL, B, T);
	same(yi, y, nd, "inference (save NULL) gives training's forward bit for bit");
	rt_bert_emb_bwd(L, w, g, ids, types, save, dy, work, B, T);
	check(guard_ok(save, ns) && guard_ok(work, nk) && guard_ok(y, nd) && guard_ok(yi, nd),
	      "nothing is written past save, work (rt_tf_sizes.h at T = %lld) or y", (long long)T);
	store("y", y, nd, sizeof *y);
	store("g", g, nw, sizeof *g);
}

static void run_gpt2_emb(const rt_tf *L, int64_t B, int64_t T)
{
	int64_t d = L->d, nd = B * T * d, nw = (L->vocab + L->positions) * d;
	float *w = load("w", nw, sizeof(float)), *dy = load("dy", nd, sizeof(float));
	float *g = load("g0", nw, sizeof(float)), *y = buffer(nd);
	int32_t *ids = load("ids", B * T, sizeof(int32_t));
	rt_gpt2_emb_fwd(L, w, ids, y, B, T);
	rt_gpt2_emb_bwd(L, g, ids, dy, B, T);
	check(guard_ok(y, nd), "nothing is written past y");
	store("y", y, nd, sizeof *y);
	store("g", g, nw, sizeof *g);
}

static void run_loss(int64_t B, int64_t T, int64_t V, double scale)
{
	int64_t n = B * T * V;
	float *logits = load("logits", n, sizeof(float)), *dl = buffer(n);
	int32_t *ids = load("ids", B * T, sizeof(int32_t));
	rt_ctx c;
	double loss;
	memset(&c, 0, sizeof c);
	c.loss_sum = 0.5;   /* a micro-batch's sum is added, not stored */
	rt_loss_next_token(&c, logits, ids, dl, B, T, V, scale);
	loss = c.loss_sum - 0.5;
	c.loss_sum = 0.0;
	rt_loss_next_token(&c, logits, ids, NULL, B, T, V, scale);
	check(c.loss_sum == loss, "dlogits NULL gives the same loss | %.17g, not %.17g", c.loss_sum, loss);
	check(guard_ok(dl, n), "nothing is written past dlogits");
	store("loss", &loss, 1, sizeof loss);
	store("dlogits", dl, n, sizeof *dl);
}

int main(int argc, char **argv)
{
	rt_tf L;
	const char *kind;
	int64_t B, T, d, nd;
	int32_t *mask = NULL, *types = NULL;
	double scale;
	char path[4096];

	if (argc != 15)
		fail("usage: runtime-tf KIND DIR B T D HEADS FFN EPS VOCAB POSITIONS TYPES HAS_MASK HAS_TYPES SCALE");
	kind = argv[1];
	dir = argv[2];
	B = atoll(argv[3]);
	T = atoll(argv[4]);
	d = atoll(argv[5]);
	memset(&L, 0, sizeof L);
	L.d = d;
	L.heads = atoll(argv[6]);
	L.ffn = atoll(argv[7]);
	L.eps = strtod(argv[8], NULL);
	L.vocab = atoll(argv[9]);
	L.positions = atoll(argv[10]);
	L.types = atoll(argv[11]);
	scale = strtod(argv[14], NULL);
	nd = B * T * d;
	snprintf(path, sizeof path, "%s/checks.txt", dir);
	checks = fopen(path, "w");
	if (!checks)
		fail("cannot write %s", path);
	if (atoi(argv[12]))
		mask = load("mask", B * T, sizeof(int32_t));
	if (atoi(argv[13]))
		types = load("types", B * T, sizeof(int32_t));

	if (!strcmp(kind, "bert_layer") || !strcmp(kind, "gpt2_block")) {
		run_block(&L, kind, mask, B, T);
	} else if (!strcmp(kind, "bert_emb")) {
		run_bert_emb(&L, types, B, T);
	} else if (!strcmp(kind, "gpt2_emb")) {
		run_gpt2_emb(&L, B, T);
	} else if (!strcmp(kind, "mean_pool")) {
		float *x = load("x", nd, sizeof(float)), *dy = load("dy", B * d, sizeof(float));
		float *y = buffer(B * d), *dx = buffer(nd);
		rt_mean_pool_fwd(x, mask, y, B, T, d);
		rt_mean_pool_bwd(mask, dy, dx, B, T, d);
		check(guard_ok(y, B * d) && guard_ok(dx, nd), "nothing is written past y or dx");
		store("y", y, B * d, sizeof *y);
		store("dx", dx, nd, sizeof *dx);
	} else if (!strcmp(kind, "l2_normalize") || !strcmp(kind, "gelu_tanh")) {
		int l2 = kind[0] == 'l';
		int64_t n = l2 ? B * d : nd;
		float *x = load("x", n, sizeof(float)), *dy = load("dy", n, sizeof(float));
		float *y = buffer(n), *dx = buffer(n);
		if (l2) {
			rt_l2_normalize_fwd(x, y, B, d);
			rt_l2_normalize_bwd(x, dy, dx, B, d);
		} else {
			rt_gelu_tanh_fwd(x, y, n);
			rt_gelu_tanh_bwd(x, dy, dx, n);
		}
		check(guard_ok(y, n) && guard_ok(dx, n), "nothing is written past y or dx");
		store("y", y, n, sizeof *y);
		store("dx", dx, n, sizeof *dx);
	} else if (!strcmp(kind, "loss")) {
		run_loss(B, T, d, scale);
	} else {
		fail("unknown kind %s", kind);
	}
	if (fclose(checks) != 0)
		fail("cannot write %s", path);
	return 0;
}
