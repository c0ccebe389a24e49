/* runtime-cuda-kernels.c — libpipert_cuda.a's kernels against the CPU
 * runtime's (rt_cpu_*, the same library), on random data of awkward sizes.
 *
 * Tolerances, and why:
 *   - exact: what the GPU computes in the CPU's order with the CPU's float
 *     operations (relu, dropout masks, bias and layernorm weight gradients,
 *     copies, the SGD update, the optimizer's first moments);
 *   - 4 ulp (relative 5e-7 of the row's scale): activations through the CUDA
 *     math library (expf, erff, tanhf are within 2 ulp of glibc's);
 *   - GEMMs: each element within 4 · 2^-23 · Σ|a||b| of its dot product
 *     (cuBLAS sums in another order than OpenBLAS); TF32 (inputs rounded to
 *     10-bit mantissas): 4 · 2^-11 · Σ|a||b|;
 *   - 1e-12 relative: the losses' double sums.
 * The transformer layers (rt_tf.cu against rt_tf.c, as rt_cpu_*):
 *   - rt_gemm, strided-batched with every transpose: the GEMM bound above,
 *     with |beta|·|C| added to the scale;
 *   - exact: what rt_tf.cu adds in rt_tf.c's order with the same float
 *     operations on the same inputs (embedding sums and scatter-adds, mean
 *     pooling, layernorm weight gradients, the next-token gradient's zero
 *     rows);
 *   - the blocks (bert_layer, gpt2_block): max |GPU - CPU| over a buffer
 *     within 2e-5 · max(1, max |CPU|), the measure t/ref/tf_ref.py holds
 *     the CPU to against float64 (limit 1e-4 there).  The CPU's own
 *     float32 error by that measure is at most 5e-7 on tf_ref.py's cases;
 *     the GPU's is of the same order (cuBLAS's summation order, double row
 *     sums in another order, 2-ulp expf/erff/tanhf), so 2e-5 leaves a
 *     factor ~20 over both together, while a wrong layout, mask or
 *     transpose is wrong by O(1).  Backward starts from the CPU's save, so
 *     its differences are its own.  The GPU against itself (the zero-bubble
 *     split, inference against training, dx NULL: the same calls on the
 *     same values) should be bit for bit; within 1e-6 passes, saying so
 *     (cuBLAS may choose its kernels by the pointers' alignment);
 *   - gelu_tanh: tanhf of either library is within 2 ulp, magnified by
 *     x/2 forward (1e-6 of |y| + 1 for |x| <= 6) and by x·k(1 + 0.134x²)/2
 *     backward (1e-5);
 *   - l2_normalize: its norm and dot product are double sums in another
 *     order; the float factors they give may differ by an ulp (2.5e-7
 *     forward; backward 1e-6 of |dx| + 1e-3, dy - x·c cancelling).
 * The Llama family (rt_llama.cu against rt_llama_cpu.c, rt_llama.c's
 * composition over each):
 *   - exact: the embedding's copies and scatter-add, the cache's stores,
 *     RMSNorm's weight gradient given the same rstd;
 *   - RMSNorm: rstd from double sums in another order (1e-7 relative),
 *     forward 4 ulp, backward layernorm's limits;
 *   - the rotary embedding: the same float angles, cos and sin in double
 *     rounded to float on both sides (4·2^-23·(|u| + |v|) per pair);
 *   - SwiGLU: expf's few ulp (either library) magnified by up to |up|·|gate|;
 *   - llama_block, its cached forward: the blocks' 2e-5 measure above;
 *     the GPU's cached forward against its own full forward too.
 * Prints TAP; exits 77 (skip) when no CUDA device is visible.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_cpu_kernels.h"
#include "rt_cuda.h"
#include "rt_math.h"
#include "rt_tf_layout.h"

static int n_test, n_fail;

static void ok(int pass, const char *fmt, ...) RT_PRINTF(2, 3);
static void ok(int pass, const char *fmt, ...)
{
	va_list ap;
	printf("%s %d - ", pass ? "ok" : "not ok", ++n_test);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	n_fail += !pass;
}

static uint64_t rng = 88172645463325252ull;
static float frand(void)    /* uniform in [-1, 1) */
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (float)((rng >> 40) * 0x1p-24) * 2.0f - 1.0f;
}

static float *hrand(int64_t n, float scale)
{
	float *h = malloc((size_t)(n ? n : 1) * sizeof *h);
	for (int64_t i = 0; i < n; i++)
		h[i] = frand() * scale;
	return h;
}

static void *dev(const void *h, size_t bytes)
{
	void *d = NULL;
	RT_CU(cudaMalloc(&d, bytes ? bytes : 4));
	if (h)
		RT_CU(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
	else
		RT_CU(cudaMemset(d, 0, bytes ? bytes : 4));
	RT_CU(cudaDeviceSynchronize());
	return d;
}

static float *back(const float *d, int64_t n)
{
	float *h = malloc((size_t)(n ? n : 1) * sizeof *h);
	rt_cu_sync();
	RT_CU(cudaMemcpy(h, d, (size_t)n * sizeof *h, cudaMemcpyDeviceToHost));
	return h;
}

/* Largest |a - b| / (|b| + floor), and the index. */
static double maxrel(const float *a, const float *b, int64_t n, double floor, int64_t *at)
{
	double m = 0.0;
	for (int64_t i = 0; i < n; i++) {
		double d = fabs((double)a[i] - b[i]) / (fabs(b[i]) + floor);
		if (!(d <= m)) {
			m = d;
			if (at)
				*at = i;
		}
	}
	return m;
}

static int same(const float *a, const float *b, int64_t n)
{
	return memcmp(a, b, (size_t)n * sizeof *a) == 0;
}

/* GPU result d (n floats) against CPU result h, each element within
 * c · 2^-23 · scale[i] (a GEMM's error bound: scale = Σ|a||b| of its dot
 * product). */
static void check_scaled(const char *what, const float *d, const float *h, const float *scale,
                         int64_t n, double c)
{
	float *g = back(d, n);
	int64_t at = 0;
	double worst = 0.0;
	for (int64_t i = 0; i < n; i++) {
		double r = fabs((double)g[i] - h[i]) / (0x1p-23 * scale[i] + 1e-30);
		if (!(r <= worst)) {
			worst = r;
			at = i;
		}
	}
	ok(worst <= c, "%s: max error %.3g x 2^-23 x sum|a||b| (limit %.3g)%s", what, worst, c,
	   worst > c ? " FAILED" : "");
	if (worst > c)
		printf("#   element %lld: GPU %.9g, CPU %.9g\n", (long long)at, g[at], h[at]);
	free(g);
}

static float *absv(const float *a, int64_t n)
{
	float *b = malloc((size_t)(n ? n : 1) * sizeof *b);
	for (int64_t i = 0; i < n; i++)
		b[i] = fabsf(a[i]);
	return b;
}

/* GPU result d (n floats) against CPU result h. */
static void check(const char *what, const float *d, const float *h, int64_t n, double tol,
                  double floor)
{
	float *g = back(d, n);
	int64_t at = 0;
	double r = tol == 0.0 ? (same(g, h, n) ? 0.0 : maxrel(g, h, n, floor, &at))
	                      : maxrel(g, h, n, floor, &at);
	ok(tol == 0.0 ? r == 0.0 : r <= tol, "%s: max relative difference %.3g (limit %.3g)%s",
	   what, r, tol, r > tol ? " FAILED" : "");
	if (r > tol)
		printf("#   element %lld: GPU %.9g, CPU %.9g\n", (long long)at, g[at], h[at]);
	free(g);
}

/* tf32: 0 float32, 1 TF32 (--tf32), 2 a bf16 program's linear layer
 * (rt_cu.tf32_16: its operands are bf16 values, exact in TF32, so the
 * float32 limit holds). */
static void test_linear(int64_t rows, int64_t in, int64_t out, int tf32)
{
	float *x = hrand(rows * in, 1), *w = hrand(out * in, 0.3f), *b = hrand(out, 1);
	float *dy = hrand(rows * out, 1), *y = calloc((size_t)(rows * out), 4);
	if (tf32 == 2) {
		rt_round_host(RT_PREC_BF16, x, rows * in);
		rt_round_host(RT_PREC_BF16, w, out * in);
		rt_round_host(RT_PREC_BF16, dy, rows * out);
	}
	float *dx = calloc((size_t)(rows * in), 4), *dw = hrand(out * in, 0.1f), *db = hrand(out, 1);
	float *X = dev(x, (size_t)(rows * in) * 4), *W = dev(w, (size_t)(out * in) * 4);
	float *B = dev(b, (size_t)out * 4), *DY = dev(dy, (size_t)(rows * out) * 4);
	float *Y = dev(NULL, (size_t)(rows * out) * 4), *DX = dev(NULL, (size_t)(rows * in) * 4);
	float *DW = dev(dw, (size_t)(out * in) * 4), *DB = dev(db, (size_t)out * 4);
	/* Errors relative to Σ|a||b| of each dot product: float32 within a few
	 * units of 2^-23 (the orders of summation differ), TF32 within a few
	 * units of its 2^-11 rounding of the inputs: 2^12 of float32's. */
	double lim = tf32 == 1 ? 4.0 * 4096 : 4.0;
	float *ax = absv(x, rows * in), *aw = absv(w, out * in), *ady = absv(dy, rows * out);
	float *sy = calloc((size_t)(rows * out), 4), *sdx = calloc((size_t)(rows * in), 4);
	float *sdw = calloc((size_t)(out * in), 4);
	char what[96];
	rt_cu.tf32 = tf32 == 1;
	rt_cu.tf32_16 = tf32 == 2;
	rt_cpu_linear_fwd(ax, aw, NULL, sy, rows, in, out);
	rt_cpu_linear_bwd_data(ady, aw, sdx, rows, in, out);
	rt_cpu_linear_bwd_weight(ax, ady, sdw, NULL, rows, in, out);
	for (int64_t i = 0; i < out * in; i++)
		sdw[i] += fabsf(dw[i]);

	rt_cpu_linear_fwd(x, w, b, y, rows, in, out);
	rt_linear_fwd(X, W, B, Y, rows, in, out);
	snprintf(what, sizeof what, "linear_fwd %lldx%lldx%lld%s", (long long)rows, (long long)in,
	         (long long)out, tf32 == 1 ? " tf32" : tf32 == 2 ? " bf16 operands, tf32" : "");
	for (int64_t i = 0; i < rows * out; i++)
		sy[i] += fabsf(b[i % out]);
	check_scaled(what, Y, y, sy, rows * out, lim);

	rt_cpu_linear_bwd_data(dy, w, dx, rows, in, out);
	rt_linear_bwd_data(DY, W, DX, rows, in, out);
	snprintf(what, sizeof what, "linear_bwd_data %lldx%lldx%lld%s", (long long)rows,
	         (long long)in, (long long)out, tf32 == 1 ? " tf32" : tf32 == 2 ? " bf16 operands, tf32" : "");
	check_scaled(what, DX, dx, sdx, rows * in, lim);

	rt_cpu_linear_bwd_weight(x, dy, dw, db, rows, in, out);
	rt_linear_bwd_weight(X, DY, DW, DB, rows, in, out);
	snprintf(what, sizeof what, "linear_bwd_weight %lldx%lldx%lld%s (accumulates)",
	         (long long)rows, (long long)in, (long long)out, tf32 == 1 ? " tf32" : tf32 == 2 ? " bf16 operands, tf32" : "");
	check_scaled(what, DW, dw, sdw, out * in, lim);
	snprintf(what, sizeof what, "bias gradient %lldx%lld: the CPU's bits", (long long)rows,
	         (long long)out);
	check(what, DB, db, out, 0.0, 0.0);
	rt_cu.tf32 = rt_cu.tf32_16 = 0;
	free(x); free(w); free(b); free(dy); free(y); free(dx); free(dw); free(db);
	free(ax); free(aw); free(ady); free(sy); free(sdx); free(sdw);
	cudaFree(X); cudaFree(W); cudaFree(B); cudaFree(DY); cudaFree(Y); cudaFree(DX);
	cudaFree(DW); cudaFree(DB);
}

typedef void (*fwd_fn)(const float *, float *, int64_t);
typedef void (*bwd_fn)(const float *, const float *, float *, int64_t);

static void test_pointwise(const char *name, fwd_fn cf, fwd_fn gf, bwd_fn cb, bwd_fn gb,
                           int bwd_from_x, double tol, double tol_bwd)
{
	const int64_t n = 100003;
	float *x = hrand(n, 6), *dy = hrand(n, 1), *y = malloc(n * 4), *dx = malloc(n * 4);
	float *X = dev(x, n * 4), *DY = dev(dy, n * 4), *Y = dev(NULL, n * 4), *DX = dev(NULL, n * 4);
	char what[64];
	x[0] = 0.0f;
	x[1] = -0.0f;
	x[2] = 30.0f;
	x[3] = -30.0f;
	RT_CU(cudaMemcpy(X, x, 4 * sizeof(float), cudaMemcpyHostToDevice));
	RT_CU(cudaDeviceSynchronize());
	cf(x, y, n);
	gf(X, Y, n);
	snprintf(what, sizeof what, "%s forward", name);
	/* floor 1: absolute near zero, where 1 + erf(x) and the like cancel */
	check(what, Y, y, n, tol, 1.0);
	/* backward from the CPU's forward on both sides: 1 - y*y would
	 * magnify the forward's last-bit differences */
	rt_cu_sync();
	RT_CU(cudaMemcpy(Y, y, n * 4, cudaMemcpyHostToDevice));
	cb(bwd_from_x ? x : y, dy, dx, n);
	gb(bwd_from_x ? X : Y, DY, DX, n);
	snprintf(what, sizeof what, "%s backward", name);
	check(what, DX, dx, n, tol_bwd, 1.0);
	free(x); free(dy); free(y); free(dx);
	cudaFree(X); cudaFree(DY); cudaFree(Y); cudaFree(DX);
}

static void test_dropout(void)
{
	const int64_t rows = 37, width = 301, n = rows * width;
	float *x = hrand(n, 1), *y = malloc(n * 4);
	float *X = dev(x, n * 4), *Y = dev(NULL, n * 4);
	rt_cpu_dropout_fwd(x, y, rows, width, 0.3, 42, 7, 5, 1000);
	rt_dropout_fwd(X, Y, rows, width, 0.3, 42, 7, 5, 1000);
	check("dropout forward: the CPU's mask and scale", Y, y, n, 0.0, 0.0);
	rt_cpu_dropout_bwd(x, y, rows, width, 0.5, 3, 2, 11, 64);
	rt_dropout_bwd(X, Y, rows, width, 0.5, 3, 2, 11, 64);
	check("dropout backward: the CPU's mask", Y, y, n, 0.0, 0.0);
	/* A replayed graph's step = argument + device offset. */
	rt_cu_set_i64(rt_cu.d_step_off, 6);
	rt_cpu_dropout_fwd(x, y, rows, width, 0.3, 42, 7, 11, 1000);
	rt_dropout_fwd(X, Y, rows, width, 0.3, 42, 7, 5, 1000);
	check("dropout with a step offset: the mask of step + offset", Y, y, n, 0.0, 0.0);
	rt_cu_set_i64(rt_cu.d_step_off, 0);
	free(x); free(y);
	cudaFree(X); cudaFree(Y);
}

static void test_layernorm(int64_t rows, int64_t d)
{
	int64_t n = rows * d;
	float *x = hrand(n, 3), *g = hrand(d, 1), *b = hrand(d, 1), *dy = hrand(n, 1);
	float *y = malloc(n * 4), *mean = malloc(rows * 4), *rstd = malloc(rows * 4);
	float *dx = malloc(n * 4), *dg = hrand(d, 1), *db = hrand(d, 1);
	float *X = dev(x, n * 4), *G = dev(g, d * 4), *B = dev(b, d * 4), *DY = dev(dy, n * 4);
	float *Y = dev(NULL, n * 4), *M = dev(NULL, rows * 4), *R = dev(NULL, rows * 4);
	float *DX = dev(NULL, n * 4), *DG = dev(dg, d * 4), *DB = dev(db, d * 4);
	char what[80];
	for (int64_t j = 0; j < d; j++)
		x[j] += 100.0f;     /* a row far from zero: the two-pass variance */
	RT_CU(cudaMemcpy(X, x, (size_t)d * 4, cudaMemcpyHostToDevice));
	RT_CU(cudaDeviceSynchronize());
	rt_cpu_layernorm_fwd(x, g, b, y, mean, rstd, rows, d, 1e-5);
	rt_layernorm_fwd(X, G, B, Y, M, R, rows, d, 1e-5);
	snprintf(what, sizeof what, "layernorm forward %lldx%lld", (long long)rows, (long long)d);
	check(what, Y, y, n, 1e-6, 1e-3);
	check("layernorm mean", M, mean, rows, 1e-7, 1e-6);
	check("layernorm rstd", R, rstd, rows, 1e-7, 1e-6);
	/* backward from the CPU's statistics on both sides */
	RT_CU(cudaMemcpy(M, mean, rows * 4, cudaMemcpyHostToDevice));
	RT_CU(cudaMemcpy(R, rstd, rows * 4, cudaMemcpyHostToDevice));
	RT_CU(cudaDeviceSynchronize());
	rt_cpu_layernorm_bwd_data(x, g, mean, rstd, dy, dx, rows, d);
	rt_layernorm_bwd_data(X, G, M, R, DY, DX, rows, d);
	check("layernorm backward (data)", DX, dx, n, 1e-5, 1e-2);
	rt_cpu_layernorm_bwd_weight(x, mean, rstd, dy, dg, db, rows, d);
	rt_layernorm_bwd_weight(X, M, R, DY, DG, DB, rows, d);
	check("layernorm backward (weight): the CPU's bits", DG, dg, d, 0.0, 0.0);
	check("layernorm backward (bias): the CPU's bits", DB, db, d, 0.0, 0.0);
	free(x); free(g); free(b); free(dy); free(y); free(mean); free(rstd); free(dx); free(dg);
	free(db);
	cudaFree(X); cudaFree(G); cudaFree(B); cudaFree(DY); cudaFree(Y); cudaFree(M);
	cudaFree(R); cudaFree(DX); cudaFree(DG); cudaFree(DB);
}

static void test_softmax(int64_t rows, int64_t d)
{
	int64_t n = rows * d;
	float *x = hrand(n, 20), *dy = hrand(n, 1), *y = malloc(n * 4), *dx = malloc(n * 4);
	float *X = dev(x, n * 4), *DY = dev(dy, n * 4), *Y = dev(NULL, n * 4), *DX = dev(NULL, n * 4);
	rt_cpu_softmax_fwd(x, y, rows, d);
	rt_softmax_fwd(X, Y, rows, d);
	check("softmax forward", Y, y, n, 1e-6, 1e-30);
	RT_CU(cudaMemcpy(Y, y, n * 4, cudaMemcpyHostToDevice));
	RT_CU(cudaDeviceSynchronize());
	rt_cpu_softmax_bwd(y, dy, dx, rows, d);
	rt_softmax_bwd(Y, DY, DX, rows, d);
	check("softmax backward", DX, dx, n, 1e-5, 1e-7);
	free(x); free(dy); free(y); free(dx);
	cudaFree(X); cudaFree(DY); cudaFree(Y); cudaFree(DX);
}

static double dev_double(const double *d)
{
	double v;
	rt_cu_sync();
	RT_CU(cudaMemcpy(&v, d, sizeof v, cudaMemcpyDeviceToHost));
	return v;
}

static void test_losses(void)
{
	const int64_t rows = 77, classes = 1000, width = 33;
	float *z = hrand(rows * classes, 15), *dz = malloc(rows * classes * 4);
	int32_t *t = malloc(rows * 4);
	float *y = hrand(rows * width, 2), *tt = hrand(rows * width, 2), *dyv = malloc(rows * width * 4);
	float *Z = dev(z, rows * classes * 4), *DZ = dev(NULL, rows * classes * 4);
	float *YY = dev(y, rows * width * 4), *TT = dev(tt, rows * width * 4);
	float *DYV = dev(NULL, rows * width * 4);
	int32_t *T;
	double lc, lg, acc;
	for (int64_t r = 0; r < rows; r++)
		t[r] = (int32_t)((r * 7919) % classes);
	T = dev(t, rows * 4);
	lc = rt_cpu_loss_cross_entropy(z, t, dz, rows, classes, 1.0 / 256);
	lg = rt_loss_cross_entropy(Z, T, DZ, rows, classes, 1.0 / 256);
	ok(fabs(lg - lc) <= 1e-12 * fabs(lc), "cross-entropy sum %.17g (CPU %.17g)", lg, lc);
	check("cross-entropy gradient", DZ, dz, rows * classes, 1e-6, 1e-9);
	RT_CU(cudaMemset(rt_cu.d_loss, 0, sizeof(double)));
	RT_CU(cudaDeviceSynchronize());
	rt_loss_ce(NULL, Z, T, DZ, rows, classes, 1.0 / 256);
	rt_loss_ce(NULL, Z, T, DZ, rows, classes, 1.0 / 256);
	acc = dev_double(rt_cu.d_loss);
	ok(fabs(acc - 2 * lc) <= 2e-12 * fabs(lc), "rt_loss_ce accumulates on the device: %.17g "
	   "(2 x CPU %.17g)", acc, 2 * lc);
	/* the loss only (dlogits NULL), as eval_step asks, over the rows that
	 * hold data: the CPU's sum over those rows; 0 rows add nothing */
	lc = rt_cpu_loss_cross_entropy(z, t, NULL, rows - 5, classes, 0.0);
	RT_CU(cudaMemset(rt_cu.d_loss, 0, sizeof(double)));
	RT_CU(cudaDeviceSynchronize());
	rt_loss_ce(NULL, Z, T, NULL, rows - 5, classes, 0.0);
	rt_loss_ce(NULL, Z, T, NULL, 0, classes, 0.0);
	acc = dev_double(rt_cu.d_loss);
	ok(fabs(acc - lc) <= 1e-12 * fabs(lc), "rt_loss_ce without dlogits: %.17g (CPU %.17g)", acc,
	   lc);

	lc = rt_cpu_loss_mse(y, tt, dyv, rows, width, 1.0 / (256.0 * width));
	lg = rt_loss_mse(YY, TT, DYV, rows, width, 1.0 / (256.0 * width));
	ok(fabs(lg - lc) <= 1e-12 * fabs(lc), "MSE sum %.17g (CPU %.17g)", lg, lc);
	check("MSE gradient: the CPU's bits", DYV, dyv, rows * width, 0.0, 0.0);
	RT_CU(cudaMemset(rt_cu.d_loss, 0, sizeof(double)));
	RT_CU(cudaDeviceSynchronize());
	rt_loss_mse_acc(NULL, YY, TT, DYV, rows, width, 1.0 / (256.0 * width));
	acc = dev_double(rt_cu.d_loss);
	ok(fabs(acc - lc) <= 1e-12 * fabs(lc), "rt_loss_mse_acc accumulates on the device: %.17g",
	   acc);
	lc = rt_cpu_loss_mse(y, tt, NULL, rows - 5, width, 0.0);
	RT_CU(cudaMemset(rt_cu.d_loss, 0, sizeof(double)));
	RT_CU(cudaDeviceSynchronize());
	rt_loss_mse_acc(NULL, YY, TT, NULL, rows - 5, width, 0.0);
	rt_loss_mse_acc(NULL, YY, TT, NULL, 0, width, 0.0);
	acc = dev_double(rt_cu.d_loss);
	ok(fabs(acc - lc) <= 1e-12 * fabs(lc), "rt_loss_mse_acc without dy: %.17g (CPU %.17g)", acc,
	   lc);
	free(z); free(dz); free(t); free(y); free(tt); free(dyv);
	cudaFree(Z); cudaFree(DZ); cudaFree(YY); cudaFree(TT); cudaFree(DYV); cudaFree(T);
}

/* rt_optim_step on a hand-made context, against rt_optim_cpu.c's loops.
 * kind 0: SGD with momentum; 1: Adam; 2: AdamW (weight decay 0.1);
 * 3: SGD with momentum, weight decay and nesterov. */
static void test_optim(int kind)
{
	const int64_t n = 4099;
	rt_program p;
	rt_ctx c;
	float *w = hrand(n, 1), *g = hrand(n, 0.1f), *m = calloc(n, 4), *v = calloc(n, 4);
	int adam = kind == 1 || kind == 2;
	double lr = adam ? 1e-3 : 0.1, mom = 0.9, b1 = 0.9, b2 = 0.999, eps = 1e-8;
	double wd = kind == 2 ? 0.1 : kind == 3 ? 0.01 : 0.0;
	static const char *const what[] = {
		"SGD with momentum, 3 steps: the CPU's bits", "Adam, 3 steps",
		"AdamW (weight decay 0.1), 3 steps", "SGD with weight decay and nesterov: the CPU's bits"
	};
	memset(&p, 0, sizeof p);
	memset(&c, 0, sizeof c);
	p.optim = kind == 1 ? RT_OPTIM_ADAM : kind == 2 ? RT_OPTIM_ADAMW : RT_OPTIM_SGD;
	p.nweights = n;
	p.lr = lr;
	p.momentum = mom;
	p.beta1 = b1;
	p.beta2 = b2;
	p.eps = eps;
	p.weight_decay = wd;
	p.nesterov = kind == 3;
	c.p = &p;
	c.w = dev(w, n * 4);
	c.g = dev(g, n * 4);
	RT_CU(cudaDeviceSynchronize());
	if (rt_optim_alloc(&c) != 0) {
		ok(0, "optimizer state allocated");
		return;
	}
	for (int s = 1; s <= 3; s++) {
		float step_size = (float)(lr / (1.0 - pow(b1, s))), bc2 = (float)sqrt(1.0 - pow(b2, s));
		if (s > 1) {
			rt_cu_sync();
			RT_CU(cudaMemcpy(c.g, g, n * 4, cudaMemcpyHostToDevice));
		}
		for (int64_t i = 0; i < n; i++) {
			if (adam) {
				float wi = kind == 2 ? w[i] * (float)(1.0 - lr * wd) : w[i];
				m[i] += (float)(1.0 - b1) * (g[i] - m[i]);
				v[i] = (float)b2 * v[i] + (float)(1.0 - b2) * g[i] * g[i];
				w[i] = wi - step_size * (m[i] / (sqrtf(v[i]) / bc2 + (float)eps));
			} else {
				float d = kind == 3 ? g[i] + (float)wd * w[i] : g[i];
				m[i] = (float)mom * m[i] + d;
				w[i] -= (float)lr * (kind == 3 ? d + (float)mom * m[i] : m[i]);
			}
		}
		rt_optim_step(&c);
	}
	check(what[kind], c.w, w, n, adam ? 2e-7 : 0.0, 1e-6);
	{
		float *z = calloc(n, 4);
		check("the optimizer zeroes the gradients", c.g, z, n, 0.0, 0.0);
		free(z);
	}
	free(w); free(g); free(m); free(v);
	cudaFree(c.w); cudaFree(c.g);
	rt_dev_free(&c, c.opt_m);
	rt_dev_free(&c, c.opt_v);
	rt_optim_free(&c);
}

/* ---- The transformer layers (rt_tf.cu against rt_tf.c). ---- */

static float *hnan(int64_t n)      /* host floats, all NaN (0xff bytes) */
{
	float *h = malloc((size_t)(n ? n : 1) * sizeof *h);
	memset(h, 0xff, (size_t)(n ? n : 1) * sizeof *h);
	return h;
}

static float *dnan(int64_t n)      /* device floats, all NaN: scratch that must be written */
{
	float *d = NULL;
	RT_CU(cudaMalloc((void **)&d, (size_t)(n ? n : 1) * sizeof *d));
	RT_CU(cudaMemset(d, 0xff, (size_t)(n ? n : 1) * sizeof *d));
	RT_CU(cudaDeviceSynchronize());
	return d;
}

static void up(void *d, const void *h, size_t bytes)
{
	rt_cu_sync();
	RT_CU(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
	RT_CU(cudaDeviceSynchronize());
}

static float *hcopy(const float *a, int64_t n)
{
	float *b = malloc((size_t)(n ? n : 1) * sizeof *b);
	memcpy(b, a, (size_t)n * sizeof *b);
	return b;
}

/* The same bits, or NaN on both sides (NaN payloads may differ). */
static int same_nan(const float *a, const float *b, int64_t n, int64_t *at)
{
	for (int64_t i = 0; i < n; i++)
		if (isnan(a[i]) ? !isnan(b[i]) : memcmp(a + i, b + i, sizeof *a) != 0) {
			if (at)
				*at = i;
			return 0;
		}
	return 1;
}

/* max |g - h| / max(1, max |h|): t/ref/tf_ref.py's measure.  NaN on one
 * side only is infinitely wrong; NaN on both is agreement. */
static double norm_err(const float *g, const float *h, int64_t n, int64_t *at)
{
	double big = 1.0, worst = 0.0;
	for (int64_t i = 0; i < n; i++)
		if (!isnan(h[i]) && fabs(h[i]) > big)
			big = fabs(h[i]);
	for (int64_t i = 0; i < n; i++) {
		double e = isnan(h[i]) ? (isnan(g[i]) ? 0.0 : INFINITY)
		                       : isnan(g[i]) ? INFINITY : fabs((double)g[i] - h[i]);
		if (e > worst) {
			worst = e;
			*at = i;
		}
	}
	return worst / big;
}

/* maxrel, with NaN on both sides agreeing and on one side infinitely wrong. */
static double maxrel_nan(const float *a, const float *b, int64_t n, double floor)
{
	double m = 0.0;
	for (int64_t i = 0; i < n; i++) {
		double e = isnan(b[i]) ? (isnan(a[i]) ? 0.0 : INFINITY)
		         : isnan(a[i]) ? INFINITY : fabs((double)a[i] - b[i]) / (fabs(b[i]) + floor);
		m = e > m ? e : m;
	}
	return m;
}

static void cmp_norm(const char *what, const float *g, const float *h, int64_t n, double tol)
{
	int64_t at = 0;
	double e = norm_err(g, h, n, &at);
	ok(e <= tol, "%s: max difference %.3g of max(1, max|CPU|) (limit %.3g)%s", what, e, tol,
	   e > tol ? " FAILED" : "");
	if (e > tol)
		printf("#   element %lld: GPU %.9g, CPU %.9g\n", (long long)at, g[at], h[at]);
}

static void check_norm(const char *what, const float *d, const float *h, int64_t n, double tol)
{
	float *g = back(d, n);
	cmp_norm(what, g, h, n, tol);
	free(g);
}

static void check_exact(const char *what, const float *d, const float *h, int64_t n)
{
	float *g = back(d, n);
	int64_t at = 0;
	int eq = same_nan(g, h, n, &at);
	ok(eq, "%s: the same bits%s", what, eq ? "" : " FAILED");
	if (!eq)
		printf("#   element %lld: GPU %.9g, CPU %.9g\n", (long long)at, g[at], h[at]);
	free(g);
}

/* Two GPU results that should agree bit for bit (the same cuBLAS calls on
 * the same values); cuBLAS may pick its kernels by the pointers' alignment,
 * so within 1e-6 by the blocks' measure passes too, saying so. */
static void check_gpu_same(const char *what, const float *d1, const float *d2, int64_t n)
{
	float *a = back(d1, n), *b = back(d2, n);
	int64_t at = 0;
	int eq = same_nan(a, b, n, &at);
	double e = eq ? 0.0 : norm_err(a, b, n, &at);
	ok(e <= 1e-6, "%s: %s%s", what, eq ? "the same bits" : "not the same bits, but close",
	   e > 1e-6 ? " FAILED" : "");
	if (!eq)
		printf("#   element %lld: %.9g against %.9g (%.3g)\n", (long long)at, a[at], b[at], e);
	free(a);
	free(b);
}

/* C = alpha·op(A)·op(B) + beta·C, strided-batched, every transpose, with
 * leading dimensions and strides that leave gaps (which must stay as they
 * were). */
static void test_gemm(int ta, int tb)
{
	const int64_t m = 13, n = 7, k = 9, batch = 3;
	int64_t ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
	int64_t lda = ac + 3, ldb = bc + 1, ldc = n + 2;
	int64_t sa = ar * lda + 5, sb = br * ldb + 2, sc = m * ldc + 7;
	int64_t na = sa * batch, nb = sb * batch, nc = sc * batch;
	float alpha = 0.7f, beta = 0.5f;
	float *a = hrand(na, 1), *b = hrand(nb, 1), *c = hrand(nc, 1), *c0 = hcopy(c, nc);
	float *aa = absv(a, na), *ab = absv(b, nb), *sc_ = absv(c, nc);
	float *A = dev(a, (size_t)na * 4), *B = dev(b, (size_t)nb * 4), *C = dev(c0, (size_t)nc * 4);
	char what[96];
	rt_cpu_gemm(ta, tb, m, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c, ldc, sc, batch);
	rt_cpu_gemm(ta, tb, m, n, k, alpha, aa, lda, sa, ab, ldb, sb, beta, sc_, ldc, sc, batch);
	rt_gemm(ta, tb, m, n, k, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc, batch);
	snprintf(what, sizeof what, "rt_gemm %s%s, batch %lld, strided", ta ? "T" : "N",
	         tb ? "T" : "N", (long long)batch);
	check_scaled(what, C, c, sc_, nc, 4.0);
	free(a); free(b); free(c); free(c0); free(aa); free(ab); free(sc_);
	cudaFree(A); cudaFree(B); cudaFree(C);
}

typedef struct piece {
	const char *name;
	int64_t len;
} piece;

/* Compares buffers piece by piece (rt_tf.c's layouts, in order). */
static void check_pieces(const char *what, const float *d, const float *h, const piece *ps,
                         int np, double tol)
{
	float *g;
	int64_t off = 0, tot = 0;
	char w[160];
	for (int i = 0; i < np; i++)
		tot += ps[i].len;
	g = back(d, tot);
	for (int i = 0; i < np; i++) {
		snprintf(w, sizeof w, "%s %s", what, ps[i].name);
		cmp_norm(w, g + off, h + off, ps[i].len, tol);
		off += ps[i].len;
	}
	free(g);
}

#define TF_TOL 2e-5

typedef void (*blk_fwd)(const rt_tf *, const float *, const float *, const int32_t *, float *,
                        float *, float *, int64_t, int64_t);
typedef void (*blk_bwd)(const rt_tf *, const float *, float *, const float *, const float *,
                        const float *, float *, float *, float *, int64_t, int64_t);
typedef void (*blk_wgt)(const rt_tf *, float *, const float *, const float *, const float *,
                        float *, int64_t, int64_t);

/* mask_kind: 0 NULL, 1 padding of 0, T/2 and T-1 tokens (by sample), 2
 * holes and a sample of padding only. */
static void test_block(int gpt2, int64_t B, int64_t T, int64_t d, int64_t h, int64_t f,
                       int mask_kind)
{
	rt_tf L = { .d = d, .heads = h, .ffn = f, .eps = gpt2 ? 1e-5 : 1e-12 };
	int64_t n = B * T, nd = n * d, nf = n * f, np = B * h * T * T;
	int64_t nw = gpt2 ? 2 * d + 3 * d * d + 3 * d + d * d + d + 2 * d + d * f + f + f * d + d
	                  : 4 * (d * d + d) + 2 * d + f * d + f + d * f + d + 2 * d;
	int64_t ssave = B * rt_tf_block_save(T, d, h, f), sstash = B * rt_tf_block_stash(T, d, h, f);
	int64_t swork = B * rt_tf_block_work(T, d, h, f);
	blk_fwd cf = gpt2 ? rt_cpu_gpt2_block_fwd : rt_cpu_bert_layer_fwd;
	blk_fwd gf = gpt2 ? rt_gpt2_block_fwd : rt_bert_layer_fwd;
	blk_bwd cb = gpt2 ? rt_cpu_gpt2_block_bwd : rt_cpu_bert_layer_bwd;
	blk_bwd gb = gpt2 ? rt_gpt2_block_bwd : rt_bert_layer_bwd;
	blk_wgt cw = gpt2 ? rt_cpu_gpt2_block_wgt : rt_cpu_bert_layer_wgt;
	blk_wgt gw = gpt2 ? rt_gpt2_block_wgt : rt_bert_layer_wgt;
	piece bert_save[] = {
		{ "q", nd }, { "k", nd }, { "v", nd }, { "ctx", nd }, { "r1", nd }, { "a", nd },
		{ "r2", nd }, { "P", np }, { "hpre", nf }, { "hact", nf }, { "mu1", n }, { "rs1", n },
		{ "mu2", n }, { "rs2", n } };
	piece gpt2_save[] = {
		{ "h0", nd }, { "qkv", 3 * nd }, { "ctx", nd }, { "h1", nd }, { "h2", nd }, { "P", np },
		{ "f1", nf }, { "g1", nf }, { "mu1", n }, { "rs1", n }, { "mu2", n }, { "rs2", n } };
	piece bert_stash[] = {
		{ "dy", nd }, { "dr2", nd }, { "da", nd }, { "dr1", nd }, { "dq", nd }, { "dk", nd },
		{ "dv", nd }, { "dhpre", nf } };
	piece gpt2_stash[] = {
		{ "dy", nd }, { "dh2", nd }, { "dh1", nd }, { "dqkv", 3 * nd }, { "dh0", nd },
		{ "df1", nf } };
	const piece *save_p = gpt2 ? gpt2_save : bert_save, *stash_p = gpt2 ? gpt2_stash : bert_stash;
	int nsave_p = gpt2 ? 12 : 14, nstash_p = gpt2 ? 6 : 8;
	float *w = hrand(nw, 0.3f), *x = hrand(nd, 1), *dy = hrand(nd, 1), *g0 = hrand(nw, 1);
	float *y = malloc((size_t)nd * 4), *save = hnan(ssave), *stash = hnan(sstash);
	float *work = hnan(swork), *dx = malloc((size_t)nd * 4), *g = hcopy(g0, nw);
	float *dx2 = malloc((size_t)nd * 4), *g2 = hcopy(g0, nw);
	int32_t *mask = NULL, *M = NULL;
	float *W, *X, *DY, *Y, *Y2, *SAVE, *STASH, *WORK, *DX, *DX2, *G, *G2, *G3;
	char what[256], name[120];
	snprintf(name, sizeof name, "%s B=%lld T=%lld d=%lld heads=%lld ffn=%lld, %s",
	         gpt2 ? "gpt2_block" : "bert_layer", (long long)B, (long long)T, (long long)d,
	         (long long)h, (long long)f,
	         mask_kind == 0 ? "mask NULL" : mask_kind == 1 ? "right padding"
	                                                        : "holes, a sample of padding only");
	if (mask_kind) {
		mask = malloc((size_t)n * sizeof *mask);
		for (int64_t b = 0; b < B; b++)
			for (int64_t t = 0; t < T; t++) {
				int32_t v;
				if (mask_kind == 1)
					v = t < T - (b % 3 == 0 ? 0 : b % 3 == 1 ? T / 2 : T - 1);
				else
					v = b == B - 1 ? 0 : (t * 7 + b) % 3 != 0;
				mask[b * T + t] = v;
			}
		M = dev(mask, (size_t)n * sizeof *mask);
	}
	W = dev(w, (size_t)nw * 4);
	X = dev(x, (size_t)nd * 4);
	DY = dev(dy, (size_t)nd * 4);
	Y = dnan(nd), Y2 = dnan(nd), SAVE = dnan(ssave), STASH = dnan(sstash), WORK = dnan(swork);
	DX = dnan(nd), DX2 = dnan(nd);
	G = dev(g0, (size_t)nw * 4), G2 = dev(g0, (size_t)nw * 4), G3 = dev(g0, (size_t)nw * 4);

	/* The CPU: forward, backward with g, and the split for its stash. */
	cf(&L, w, x, mask, y, save, work, B, T);
	cb(&L, w, g, x, save, dy, dx, NULL, work, B, T);
	cb(&L, w, NULL, x, save, dy, dx2, stash, work, B, T);
	cw(&L, g2, x, save, stash, work, B, T);

	/* Forward. */
	gf(&L, W, X, M, Y, SAVE, WORK, B, T);
	snprintf(what, sizeof what, "%s: forward", name);
	check_norm(what, Y, y, nd, TF_TOL);
	snprintf(what, sizeof what, "%s: save", name);
	check_pieces(what, SAVE, save, save_p, nsave_p, TF_TOL);
	RT_CU(cudaMemset(WORK, 0xff, (size_t)swork * 4));
	gf(&L, W, X, M, Y2, NULL, WORK, B, T);
	snprintf(what, sizeof what, "%s: inference (save NULL) gives training's forward", name);
	check_gpu_same(what, Y2, Y, nd);

	/* Backward from the CPU's save. */
	up(SAVE, save, (size_t)ssave * 4);
	RT_CU(cudaMemset(WORK, 0xff, (size_t)swork * 4));
	gb(&L, W, G, X, SAVE, DY, DX, NULL, WORK, B, T);
	snprintf(what, sizeof what, "%s: input gradient", name);
	check_norm(what, DX, dx, nd, TF_TOL);
	snprintf(what, sizeof what, "%s: weight gradients (accumulated)", name);
	check_norm(what, G, g, nw, TF_TOL);

	/* The zero-bubble split: B with a stash, then W. */
	RT_CU(cudaMemset(WORK, 0xff, (size_t)swork * 4));
	gb(&L, W, NULL, X, SAVE, DY, DX2, STASH, WORK, B, T);
	RT_CU(cudaMemset(WORK, 0xff, (size_t)swork * 4));
	gw(&L, G2, X, SAVE, STASH, WORK, B, T);
	snprintf(what, sizeof what, "%s: stash", name);
	check_pieces(what, STASH, stash, stash_p, nstash_p, TF_TOL);
	snprintf(what, sizeof what, "%s: split backward, input gradient as _bwd's", name);
	check_gpu_same(what, DX2, DX, nd);
	snprintf(what, sizeof what, "%s: split backward, _wgt's weight gradients as _bwd's", name);
	check_gpu_same(what, G2, G, nw);

	/* dx NULL: the weight gradients alone. */
	RT_CU(cudaMemset(WORK, 0xff, (size_t)swork * 4));
	gb(&L, W, G3, X, SAVE, DY, NULL, NULL, WORK, B, T);
	snprintf(what, sizeof what, "%s: dx NULL, the same weight gradients", name);
	check_gpu_same(what, G3, G, nw);

	free(w); free(x); free(dy); free(g0); free(y); free(save); free(stash); free(work);
	free(dx); free(g); free(dx2); free(g2); free(mask);
	cudaFree(W); cudaFree(X); cudaFree(DY); cudaFree(Y); cudaFree(Y2); cudaFree(SAVE);
	cudaFree(STASH); cudaFree(WORK); cudaFree(DX); cudaFree(DX2); cudaFree(G); cudaFree(G2);
	cudaFree(G3); cudaFree(M);
}

/* bert_embeddings: forward with and without save (an invalid id and an
 * invalid type give NaN rows when bad_rows); backward with every row valid
 * (a NaN row would make the layernorm's weight gradients NaN on both). */
static void test_bert_emb(int64_t B, int64_t T, int with_types, int bad_rows)
{
	rt_tf L = { .d = 40, .eps = 1e-12, .vocab = 23, .positions = 16, .types = 3 };
	int64_t d = L.d, n = B * T, nd = n * d;
	int64_t nw = (L.vocab + L.positions + L.types) * d + 2 * d;
	int64_t ssave = B * rt_bert_emb_save(T, d), swork = B * rt_bert_emb_work(T, d);
	float *w = hrand(nw, 1), *dy = hrand(nd, 1), *g0 = hrand(nw, 1), *g = hcopy(g0, nw);
	float *y = malloc((size_t)nd * 4), *save = hnan(ssave), *work = hnan(swork);
	int32_t *ids = malloc((size_t)n * 4), *types = malloc((size_t)n * 4);
	int32_t *IDS, *TYPES = NULL;
	float *W, *DY, *Y, *Y2, *SAVE, *WORK, *G;
	char name[100], what[160];
	snprintf(name, sizeof name, "bert_emb B=%lld T=%lld d=%lld, types %s%s", (long long)B,
	         (long long)T, (long long)d, with_types ? "given" : "NULL",
	         bad_rows ? ", ids and types out of range" : "");
	for (int64_t i = 0; i < n; i++) {
		ids[i] = (int32_t)((i * 7 + 3) % L.vocab);
		types[i] = (int32_t)((i * 5) % L.types);
	}
	for (int64_t i = 0; i < 4 && i < n; i++)
		ids[i] = 5;             /* repeated ids: the scatter adds them in order */
	if (bad_rows) {
		ids[n / 2] = (int32_t)L.vocab;
		ids[n - 1] = -1;
		if (with_types)
			types[1] = (int32_t)L.types;
	}
	IDS = dev(ids, (size_t)n * 4);
	if (with_types)
		TYPES = dev(types, (size_t)n * 4);
	W = dev(w, (size_t)nw * 4), DY = dev(dy, (size_t)nd * 4), G = dev(g0, (size_t)nw * 4);
	Y = dnan(nd), Y2 = dnan(nd), SAVE = dnan(ssave), WORK = dnan(swork);

	rt_cpu_bert_emb_fwd(&L, w, ids, with_types ? types : NULL, y, save, B, T);
	rt_bert_emb_fwd(&L, W, IDS, TYPES, Y, SAVE, B, T);
	snprintf(what, sizeof what, "%s: the sums (save)", name);
	check_exact(what, SAVE, save, nd);
	{
		/* test_layernorm's tolerance; a NaN row's statistics are NaN on
		 * both sides */
		float *gs = back(SAVE, ssave);
		double e1 = maxrel_nan(gs + nd, save + nd, n, 1e-6);
		double e2 = maxrel_nan(gs + nd + n, save + nd + n, n, 1e-6);
		snprintf(what, sizeof what, "%s: mean and rstd (save)", name);
		ok(e1 <= 1e-7 && e2 <= 1e-7, "%s: max relative differences %.3g, %.3g (limit 1e-7)%s",
		   what, e1, e2, e1 <= 1e-7 && e2 <= 1e-7 ? "" : " FAILED");
		free(gs);
	}
	snprintf(what, sizeof what, "%s: forward", name);
	check_norm(what, Y, y, nd, 1e-6);
	rt_bert_emb_fwd(&L, W, IDS, TYPES, Y2, NULL, B, T);
	snprintf(what, sizeof what, "%s: inference's fused kernel gives training's forward", name);
	{
		float *a = back(Y2, nd), *b = back(Y, nd);
		int eq = same_nan(a, b, nd, NULL);
		ok(eq, "%s: %s", what, eq ? "the same bits" : "not the same bits FAILED");
		free(a);
		free(b);
	}
	if (!bad_rows) {
		/* Backward from the CPU's save. */
		rt_cpu_bert_emb_bwd(&L, w, g, ids, with_types ? types : NULL, save, dy, work, B, T);
		up(SAVE, save, (size_t)ssave * 4);
		rt_bert_emb_bwd(&L, W, G, IDS, TYPES, SAVE, DY, WORK, B, T);
		snprintf(what, sizeof what, "%s: layernorm weight and bias gradients", name);
		check_exact(what, G + (nw - 2 * d), g + (nw - 2 * d), 2 * d);
		/* the tables: sums of the layernorm's input gradient (1e-5 of
		 * |value| + 1e-2 elementwise, test_layernorm) */
		snprintf(what, sizeof what, "%s: table gradients (accumulated)", name);
		check_norm(what, G, g, nw - 2 * d, 1e-5);
	}
	free(w); free(dy); free(g0); free(g); free(y); free(save); free(work); free(ids);
	free(types);
	cudaFree(IDS); cudaFree(TYPES); cudaFree(W); cudaFree(DY); cudaFree(Y); cudaFree(Y2);
	cudaFree(SAVE); cudaFree(WORK); cudaFree(G);
}

/* gpt2_embeddings: sums and scatter-adds in the CPU's order, so its bits;
 * positions < T, an id out of range: NaN rows forward, skipped backward. */
static void test_gpt2_emb(void)
{
	const int64_t B = 5, T = 13;
	rt_tf L = { .d = 300, .vocab = 17, .positions = 12 };
	int64_t d = L.d, n = B * T, nd = n * d, nw = (L.vocab + L.positions) * d;
	float *w = hrand(nw, 1), *dy = hrand(nd, 1), *g = hrand(nw, 1), *y = malloc((size_t)nd * 4);
	int32_t *ids = malloc((size_t)n * 4), *IDS;
	float *W, *DY, *G, *Y;
	for (int64_t i = 0; i < n; i++)
		ids[i] = (int32_t)((i * i + 1) % L.vocab);
	ids[3] = ids[4] = ids[20] = ids[40] = 2;
	ids[7] = (int32_t)L.vocab;
	ids[8] = -3;
	IDS = dev(ids, (size_t)n * 4);
	W = dev(w, (size_t)nw * 4), DY = dev(dy, (size_t)nd * 4), G = dev(g, (size_t)nw * 4);
	Y = dnan(nd);
	rt_cpu_gpt2_emb_fwd(&L, w, ids, y, B, T);
	rt_gpt2_emb_fwd(&L, W, IDS, Y, B, T);
	check_exact("gpt2_emb B=5 T=13 d=300 (12 positions, bad ids): forward", Y, y, nd);
	rt_cpu_gpt2_emb_bwd(&L, g, ids, dy, B, T);
	rt_gpt2_emb_bwd(&L, G, IDS, DY, B, T);
	check_exact("gpt2_emb B=5 T=13 d=300 (12 positions, bad ids): gradients, in the CPU's order",
	            G, g, nw);
	free(w); free(dy); free(g); free(y); free(ids);
	cudaFree(IDS); cudaFree(W); cudaFree(DY); cudaFree(G); cudaFree(Y);
}

static void test_pool(int with_mask)
{
	const int64_t B = 4, T = 11, d = 300;
	float *x = hrand(B * T * d, 1), *dy = hrand(B * d, 1);
	float *y = malloc((size_t)(B * d) * 4), *dx = malloc((size_t)(B * T * d) * 4);
	int32_t *mask = malloc((size_t)(B * T) * 4), *M = NULL;
	float *X = dev(x, (size_t)(B * T * d) * 4), *DY = dev(dy, (size_t)(B * d) * 4);
	float *Y = dnan(B * d), *DX = dnan(B * T * d);
	for (int64_t i = 0; i < B * T; i++)
		mask[i] = i / T == 2 ? 0 : (i * 5) % 4 != 0;    /* sample 2: padding only */
	if (with_mask)
		M = dev(mask, (size_t)(B * T) * 4);
	rt_cpu_mean_pool_fwd(x, with_mask ? mask : NULL, y, B, T, d);
	rt_mean_pool_fwd(X, M, Y, B, T, d);
	check_exact(with_mask ? "mean_pool forward (a sample of padding only)"
	                      : "mean_pool forward, mask NULL", Y, y, B * d);
	rt_cpu_mean_pool_bwd(with_mask ? mask : NULL, dy, dx, B, T, d);
	rt_mean_pool_bwd(M, DY, DX, B, T, d);
	check_exact(with_mask ? "mean_pool backward" : "mean_pool backward, mask NULL", DX, dx,
	            B * T * d);
	free(x); free(dy); free(y); free(dx); free(mask);
	cudaFree(M); cudaFree(X); cudaFree(DY); cudaFree(Y); cudaFree(DX);
}

static void test_l2(void)
{
	const int64_t rows = 9, d = 1000, n = rows * d;
	float *x = hrand(n, 1), *dy = hrand(n, 1), *y = malloc((size_t)n * 4);
	float *dx = malloc((size_t)n * 4), *X, *DY, *Y, *DX;
	for (int64_t j = 0; j < d; j++) {
		x[3 * d + j] = 0.0f;                    /* norm 0: the clamp */
		x[5 * d + j] = (j % 2 ? 1e-16f : -1e-16f);  /* norm 3e-15: the clamp */
		x[7 * d + j] *= 1e4f;
	}
	X = dev(x, (size_t)n * 4), DY = dev(dy, (size_t)n * 4), Y = dnan(n), DX = dnan(n);
	rt_cpu_l2_normalize_fwd(x, y, rows, d);
	rt_l2_normalize_fwd(X, Y, rows, d);
	check("l2_normalize forward (norms 0 and below 1e-12 among the rows)", Y, y, n, 2.5e-7,
	      1e-30);
	rt_cpu_l2_normalize_bwd(x, dy, dx, rows, d);
	rt_l2_normalize_bwd(X, DY, DX, rows, d);
	check("l2_normalize backward", DX, dx, n, 1e-6, 1e-3);
	free(x); free(dy); free(y); free(dx);
	cudaFree(X); cudaFree(DY); cudaFree(Y); cudaFree(DX);
}

static void test_next_token(int64_t B, int64_t T, int64_t V)
{
	int64_t n = B * T * V;
	double scale = 1.0 / (8.0 * (double)(T > 1 ? T - 1 : 1)), acc;
	float *z = hrand(n, 5), *dz = hnan(n);
	int32_t *ids = malloc((size_t)(B * T) * 4), *IDS;
	float *Z = dev(z, (size_t)n * 4), *DZ = dnan(n);
	rt_ctx cc;
	char what[120];
	for (int64_t i = 0; i < B * T; i++)
		ids[i] = (int32_t)((i * 7919 + 11) % V);
	IDS = dev(ids, (size_t)(B * T) * 4);
	memset(&cc, 0, sizeof cc);
	rt_cpu_loss_next_token(&cc, z, ids, dz, B, T, V, scale);
	RT_CU(cudaMemset(rt_cu.d_loss, 0, sizeof(double)));
	RT_CU(cudaDeviceSynchronize());
	rt_loss_next_token(NULL, Z, IDS, DZ, B, T, V, scale);
	rt_loss_next_token(NULL, Z, IDS, NULL, B, T, V, scale);    /* the loss only */
	acc = dev_double(rt_cu.d_loss);
	ok(fabs(acc - 2 * cc.loss_sum) <= 2e-12 * fabs(cc.loss_sum),
	   "next-token loss B=%lld T=%lld vocab=%lld accumulates on the device: %.17g "
	   "(2 x CPU %.17g)", (long long)B, (long long)T, (long long)V, acc, 2 * cc.loss_sum);
	snprintf(what, sizeof what, "next-token loss B=%lld T=%lld vocab=%lld: gradient (last "
	         "positions zero)", (long long)B, (long long)T, (long long)V);
	check(what, DZ, dz, n, 1e-6, 1e-9);
	free(z); free(dz); free(ids);
	cudaFree(Z); cudaFree(DZ); cudaFree(IDS);
}

/* ---- The Llama family (rt_llama.cu against rt_llama_cpu.c, and
 * rt_llama.c's composition over each). ---- */

static void test_rmsnorm(int64_t rows, int64_t d, int with_w)
{
	int64_t n = rows * d;
	float *x = hrand(n, 3), *w = with_w ? hrand(d, 1) : NULL, *dy = hrand(n, 1);
	float *y = malloc(n * 4), *rstd = malloc(rows * 4), *dx = malloc(n * 4), *dw = hrand(d, 1);
	float *X = dev(x, n * 4), *W = with_w ? dev(w, d * 4) : NULL, *DY = dev(dy, n * 4);
	float *Y = dnan(n), *R = dnan(rows), *DX = dnan(n), *DW = dev(dw, d * 4);
	char name[64], what[128];
	snprintf(name, sizeof name, "rmsnorm %lldx%lld%s", (long long)rows, (long long)d,
	         with_w ? "" : ", weight NULL");
	for (int64_t j = 0; j < d; j++)
		x[j] *= 1e-4f;      /* a row near zero: eps matters */
	up(X, x, (size_t)d * 4);
	/* rstd: double sums in another order, rounded to float (an ulp at
	 * most); y = w·(x·rstd) then within a few ulp, no cancellation */
	rt_cpu_rmsnorm_fwd(x, w, y, rstd, rows, d, 1e-6);
	rt_rmsnorm_fwd(X, W, Y, R, rows, d, 1e-6);
	snprintf(what, sizeof what, "%s forward", name);
	check(what, Y, y, n, 5e-7, 1e-30);
	snprintf(what, sizeof what, "%s rstd", name);
	check(what, R, rstd, rows, 1e-7, 1e-30);
	/* backward from the CPU's rstd on both sides: layernorm's limits
	 * (mean(ĝ·x̂) is a double sum in another order, and ĝ - x̂·mb cancels) */
	up(R, rstd, (size_t)rows * 4);
	rt_cpu_rmsnorm_bwd_data(x, w, rstd, dy, dx, rows, d);
	rt_rmsnorm_bwd_data(X, W, R, DY, DX, rows, d);
	snprintf(what, sizeof what, "%s backward (data)", name);
	check(what, DX, dx, n, 1e-5, 1e-2);
	rt_cpu_rmsnorm_bwd_weight(x, rstd, dy, dw, rows, d);
	rt_rmsnorm_bwd_weight(X, R, DY, DW, rows, d);
	snprintf(what, sizeof what, "%s backward (weight, accumulated): the CPU's bits", name);
	check(what, DW, dw, d, 0.0, 0.0);
	/* in place, as a composition may call it */
	rt_rmsnorm_fwd(X, W, X, NULL, rows, d, 1e-6);
	snprintf(what, sizeof what, "%s forward in place, rstd NULL", name);
	check(what, X, y, n, 5e-7, 1e-30);
	free(x); free(w); free(dy); free(y); free(rstd); free(dx); free(dw);
	cudaFree(X); cudaFree(W); cudaFree(DY); cudaFree(Y); cudaFree(R); cudaFree(DX);
	cudaFree(DW);
}

/* llama_embeddings: copies and a scatter-add in the CPU's order, so its
 * bits; an id out of range: a NaN row forward, skipped backward. */
static void test_llama_emb(void)
{
	const int64_t B = 4, T = 300;
	rt_tf L = { .d = 72, .vocab = 29, .positions = 512 };
	int64_t d = L.d, n = B * T, nd = n * d, nw = L.vocab * d;
	float *w = hrand(nw, 1), *dy = hrand(nd, 1), *g = hrand(nw, 1), *y = malloc((size_t)nd * 4);
	int32_t *ids = malloc((size_t)n * 4), *IDS;
	float *W, *DY, *G, *Y;
	for (int64_t i = 0; i < n; i++)
		ids[i] = (int32_t)((i * i + 3) % L.vocab);
	ids[5] = (int32_t)L.vocab;
	ids[6] = -1;
	ids[n - 1] = 1 << 30;
	IDS = dev(ids, (size_t)n * 4);
	W = dev(w, (size_t)nw * 4), DY = dev(dy, (size_t)nd * 4), G = dev(g, (size_t)nw * 4);
	Y = dnan(nd);
	rt_cpu_llama_emb_fwd(&L, w, ids, y, B, T);
	rt_llama_emb_fwd(&L, W, IDS, Y, B, T);
	check_exact("llama_emb B=4 T=300 d=72 (bad ids): forward", Y, y, nd);
	RT_CU(cudaMemset(Y, 0xff, (size_t)nd * 4));
	rt_llama_emb_fwd_at(&L, W, IDS, Y, B, T, 17);
	check_exact("llama_emb: fwd_at (positions are the blocks') as forward", Y, y, nd);
	/* more rows than a block has threads: the owner scans them in chunks */
	rt_cpu_llama_emb_bwd(&L, g, ids, dy, B, T);
	rt_llama_emb_bwd(&L, G, IDS, DY, B, T);
	check_exact("llama_emb B=4 T=300 d=72 (bad ids): gradients, in the CPU's order", G, g, nw);
	free(w); free(dy); free(g); free(y); free(ids);
	cudaFree(IDS); cudaFree(W); cudaFree(DY); cudaFree(G); cudaFree(Y);
}

/* The rotary embedding on q's and k's columns of a [B·T, ld] buffer with
 * gaps (which must stay as they were), forward and inverse, from pos0 and
 * from a device position.  The same float angles; cos and sin in double
 * rounded to float on both sides (an ulp apart at worst, CUDA's double
 * functions being within 2 ulp of double; in practice the same bits): an
 * ulp of cos and sin moves an output by 2^-24·(|u| + |v|), a rounding
 * flip by an ulp of it, and the inverse's inputs are the rotated pair
 * (|u'| + |v'| <= sqrt 2·(|u| + |v|)): each element within
 * 4·2^-23·(|u| + |v|) of its original pair (u, v). */
static void test_rope(const rt_tf *L, int64_t B, int64_t T, int64_t pos0, const char *how)
{
	int64_t h = L->heads, hk = L->kv_heads, dh = L->d / h, half = dh / 2;
	int64_t ld = L->d + 2 * hk * dh + 5, n = B * T * ld;
	float *x = hrand(n, 2), *xc = hcopy(x, n), *sc = calloc((size_t)n, 4), *X = dev(x, n * 4);
	int64_t *DPOS = dev(&pos0, sizeof pos0);
	char name[160], what[220];
	snprintf(name, sizeof name, "rope d=%lld heads=%lld kv_heads=%lld B=%lld T=%lld pos0=%lld%s",
	         (long long)L->d, (long long)h, (long long)hk, (long long)B, (long long)T,
	         (long long)pos0, how);
	for (int64_t r = 0; r < B * T; r++)
		for (int64_t c0 = 0; c0 < L->d + hk * dh; c0 += dh)
			for (int64_t i = 0; i < half; i++) {
				float *p = x + r * ld + c0 + i;
				sc[p - x] = sc[p - x + half] = fabsf(p[0]) + fabsf(p[half]);
			}
	/* q's heads from column 0, k's from column d */
	rt_cpu_dev_llama_rope(L, xc, ld, h, B, T, pos0, NULL, 0);
	rt_cpu_dev_llama_rope(L, xc + L->d, ld, hk, B, T, pos0, NULL, 0);
	rt_dev_llama_rope(L, X, ld, h, B, T, pos0, NULL, 0);
	rt_dev_llama_rope(L, X + L->d, ld, hk, B, T, 999999, DPOS, 0);    /* *dpos wins */
	snprintf(what, sizeof what, "%s: forward (k's position from the device)", name);
	check_scaled(what, X, xc, sc, n, 4.0);
	/* inverse, from the CPU's rotated values on both sides */
	up(X, xc, (size_t)n * 4);
	rt_cpu_dev_llama_rope(L, xc, ld, h, B, T, pos0, NULL, 1);
	rt_cpu_dev_llama_rope(L, xc + L->d, ld, hk, B, T, pos0, NULL, 1);
	rt_dev_llama_rope(L, X, ld, h, B, T, pos0, NULL, 1);
	rt_dev_llama_rope(L, X + L->d, ld, hk, B, T, pos0, NULL, 1);
	snprintf(what, sizeof what, "%s: inverse", name);
	check_scaled(what, X, xc, sc, n, 4.0);
	free(x); free(xc); free(sc);
	cudaFree(X); cudaFree(DPOS);
}

/* SwiGLU: rt_math.h's expressions on both sides; expf of CUDA within 2
 * ulp, of glibc's vector library (the CPU's loops vectorise) within 4.
 * σ's last bits are magnified by |up| forward and by |up|·|gate|
 * backward (up to 6 here, 6·6 in (1 - σ)'s term). */
static void test_swiglu(void)
{
	const int64_t rows = 37, f = 301, n = rows * f;
	float *gu = hrand(2 * n, 6), *da = hrand(n, 1), *a = malloc(n * 4), *dgu = malloc(2 * n * 4);
	float *GU, *DA, *A = dnan(n), *DGU = dnan(2 * n);
	gu[0] = 0.0f;
	gu[1] = 30.0f;
	gu[2] = -30.0f;
	GU = dev(gu, 2 * n * 4), DA = dev(da, n * 4);
	rt_cpu_dev_llama_swiglu_fwd(gu, a, rows, f);
	rt_dev_llama_swiglu_fwd(GU, A, rows, f);
	check("swiglu forward", A, a, n, 2e-6, 1.0);
	rt_cpu_dev_llama_swiglu_bwd(gu, da, dgu, rows, f);
	rt_dev_llama_swiglu_bwd(GU, DA, DGU, rows, f);
	check("swiglu backward (gate | up)", DGU, dgu, 2 * n, 1e-5, 1.0);
	free(gu); free(da); free(a); free(dgu);
	cudaFree(GU); cudaFree(DA); cudaFree(A); cudaFree(DGU);
}

/* The cache's stores are copies: the CPU's bits, positions from pos0 or
 * from the device; the rest of the caches untouched. */
static void test_llama_kv_store(void)
{
	const int64_t B = 3, T = 5, kvw = 24, ld = 48 + 2 * kvw + 3, cap = 16, pos0 = 7;
	int64_t nq = B * T * ld, nc = B * cap * kvw;
	float *q = hrand(nq, 1), *kc = hrand(nc, 1), *vc = hrand(nc, 1);
	float *Q = dev(q, nq * 4), *KC = dev(kc, nc * 4), *VC = dev(vc, nc * 4);
	int64_t *DPOS = dev(&pos0, sizeof pos0);
	rt_cpu_dev_llama_kv_store(q, ld, 48, 48 + kvw, kc, vc, cap, B, T, pos0, NULL, kvw, 0);
	rt_dev_llama_kv_store(Q, ld, 48, 48 + kvw, KC, VC, cap, B, T, pos0, NULL, kvw, 0);
	check_exact("llama kv_store: keys", KC, kc, nc);
	check_exact("llama kv_store: values", VC, vc, nc);
	rt_cpu_dev_llama_kv_store(q, ld, 48, 48 + kvw, kc, vc, cap, B, 1, 11, NULL, kvw, 0);
	{
		int64_t p = 11;
		up(DPOS, &p, sizeof p);
	}
	rt_dev_llama_kv_store(Q, ld, 48, 48 + kvw, KC, VC, cap, B, 1, 0, DPOS, kvw, 0);
	check_exact("llama kv_store, position from the device: keys", KC, kc, nc);
	check_exact("llama kv_store, position from the device: values", VC, vc, nc);
	/* 16-bit caches (a bf16 / f16 program): the CPU's 16 bits, and read
	 * back into floats as the CPU reads them */
	for (int prec = RT_PREC_BF16; prec <= RT_PREC_F16; prec++) {
		const char *name = prec == RT_PREC_BF16 ? "bf16" : "f16";
		uint16_t *hk = calloc((size_t)nc, 2), *hv = calloc((size_t)nc, 2);
		float *hx = calloc((size_t)nc, sizeof *hx);
		void *HK = dev(hk, (size_t)nc * 2), *HV = dev(hv, (size_t)nc * 2);
		float *HX = dev(hx, (size_t)nc * sizeof *hx), *gk, *gv;
		rt_cpu_dev_llama_kv_store(q, ld, 48, 48 + kvw, hk, hv, cap, B, T, pos0, NULL, kvw, prec);
		rt_dev_llama_kv_store(Q, ld, 48, 48 + kvw, HK, HV, cap, B, T, pos0, NULL, kvw, prec);
		gk = back(HK, nc / 2);
		gv = back(HV, nc / 2);
		ok(memcmp(gk, hk, (size_t)nc * 2) == 0 && memcmp(gv, hv, (size_t)nc * 2) == 0,
		   "llama kv_store, %s cache: the same 16 bits", name);
		rt_cpu_dev_kv_unpack(hv, hx, nc, prec);
		rt_dev_kv_unpack(HV, HX, nc, prec);
		check_exact(prec == RT_PREC_BF16 ? "kv_unpack, bf16" : "kv_unpack, f16", HX, hx, nc);
		free(hk); free(hv); free(hx); free(gk); free(gv);
		cudaFree(HK); cudaFree(HV); cudaFree(HX);
	}
	free(q); free(kc); free(vc);
	cudaFree(Q); cudaFree(KC); cudaFree(VC); cudaFree(DPOS);
}

static int64_t llama_nw(const rt_tf *L)
{
	int64_t d = L->d, f = L->ffn, qw = rt_llama_qw(d, L->heads, L->kv_heads);
	return d + qw * d + (L->qkv_bias ? qw : 0) + d * d + d + 2 * f * d + d * f;
}

/* One cached forward of B samples' T new tokens at positions pos0 ..,
 * rows b·T + t, on the GPU or the CPU: the one place that knows
 * rt_llama_block_fwd_kv's interface. */
static void llama_kv_call(int gpu, const rt_tf *L, const float *w, const float *x, float *y,
                          float *kc, float *vc, int64_t cap, float *work, int64_t B, int64_t T,
                          int64_t pos0)
{
	/* every slot of the group runs T new positions from pos0 (generation's
	 * packed rows: slot b's first at row b·T) */
	int32_t n[B], pos[B], off[B];
	for (int64_t b = 0; b < B; b++)
		n[b] = (int32_t)T, pos[b] = (int32_t)pos0, off[b] = (int32_t)(b * T);
	rt_gen_rows g = { .rows = B, .ntok = B * T, .n = n, .pos = pos, .off = off };
	(gpu ? rt_llama_block_fwd_kv : rt_cpu_llama_block_fwd_kv)(L, w, x, y, kc, vc, cap, work, &g);
}

/* The cached forward: a prefill of T0 positions, then `steps` decode steps
 * of one, each from the caches the calls before it filled (rt_tf_sizes.h's
 * work for its Lk).  Against the CPU's cached forward after each call, and
 * the GPU's outputs against its own full forward of the whole sequence
 * (positions, rotated keys and the cache's layout agree). */
static void test_llama_kv(const rt_tf *L, const float *w, const float *W, int64_t B,
                          int64_t T0, int64_t steps, const char *name)
{
	int64_t d = L->d, kvw = llama_kvw(L), Tt = T0 + steps, cap = Tt + 3;
	int64_t h = L->heads, hk = L->kv_heads, f = L->ffn, nc = B * cap * kvw;
	int64_t swork = B * rt_llama_kv_work(Tt, Tt, d, h, hk, f);
	float *x = hrand(B * Tt * d, 1), *xs = malloc((size_t)(B * Tt * d) * 4);
	float *y = malloc((size_t)(B * Tt * d) * 4), *yc = malloc((size_t)(B * T0 * d) * 4);
	float *kc = calloc((size_t)nc, 4), *vc = calloc((size_t)nc, 4), *work = hnan(swork);
	float *X = dnan(B * Tt * d), *Y = dnan(B * Tt * d), *XALL = dev(x, (size_t)(B * Tt * d) * 4);
	float *YALL = dnan(B * Tt * d), *KC = dev(kc, nc * 4), *VC = dev(vc, nc * 4);
	float *WORK = dnan(swork);
	char what[400];
	for (int64_t pos0 = 0, T = T0; pos0 < Tt; pos0 += T, T = 1) {
		/* the call's rows: x[b, pos0 .. pos0+T) */
		for (int64_t b = 0; b < B; b++)
			memcpy(xs + b * T * d, x + (b * Tt + pos0) * d, (size_t)(T * d) * 4);
		up(X, xs, (size_t)(B * T * d) * 4);
		llama_kv_call(0, L, w, xs, yc, kc, vc, cap, work, B, T, pos0);
		llama_kv_call(1, L, W, X, Y, KC, VC, cap, WORK, B, T, pos0);
		snprintf(what, sizeof what, "%s: cached forward, %s at %lld", name,
		         pos0 ? "decode" : "prefill", (long long)pos0);
		check_norm(what, Y, yc, B * T * d, TF_TOL);
		snprintf(what, sizeof what, "%s: keys cached (rotated) after %lld", name,
		         (long long)(pos0 + T));
		check_norm(what, KC, kc, nc, TF_TOL);
		snprintf(what, sizeof what, "%s: values cached after %lld", name, (long long)(pos0 + T));
		check_norm(what, VC, vc, nc, TF_TOL);
		/* y: the GPU's outputs, row b·Tt + position */
		{
			float *g = back(Y, B * T * d);
			for (int64_t b = 0; b < B; b++)
				memcpy(y + (b * Tt + pos0) * d, g + b * T * d, (size_t)(T * d) * 4);
			free(g);
		}
	}
	rt_llama_block_fwd(L, W, XALL, NULL, YALL, NULL, WORK, B, Tt);
	{
		float *g = back(YALL, B * Tt * d);
		snprintf(what, sizeof what, "%s: GPU cached forward, prefill %lld + %lld decode steps, "
		         "as its full forward", name, (long long)T0, (long long)steps);
		cmp_norm(what, y, g, B * Tt * d, TF_TOL);
		free(g);
	}
	free(x); free(xs); free(y); free(yc); free(kc); free(vc); free(work);
	cudaFree(X); cudaFree(Y); cudaFree(XALL); cudaFree(YALL); cudaFree(KC); cudaFree(VC);
	cudaFree(WORK);
}

/* llama_block: as test_block, with rt_tf_layout.h's llama pieces; then
 * the cached forward. */
static void test_llama_block(int64_t B, int64_t T, int64_t d, int64_t h, int64_t hk, int64_t f,
                             int bias, int scaled, int mask_kind)
{
	rt_tf L = { .d = d, .heads = h, .ffn = f, .eps = 1e-6, .kv_heads = hk,
	            .rope_theta = scaled ? 500000.0 : 10000.0, .qkv_bias = bias };
	int64_t n = B * T, nd = n * d, nf = n * f, np = B * h * T * T;
	int64_t qw = rt_llama_qw(d, h, hk), nw;
	int64_t ssave = B * rt_llama_block_save(T, d, h, hk, f);
	int64_t sstash = B * rt_llama_block_stash(T, d, h, hk, f);
	int64_t swork = B * rt_llama_block_work(T, d, h, hk, f);
	if (scaled) {
		/* Llama 3's constants, the original length cut so that the
		 * blended band falls among this head size's frequencies */
		L.rope_factor = 8.0, L.rope_low = 1.0, L.rope_high = 4.0, L.rope_orig = 64;
	}
	nw = llama_nw(&L);
	piece save_p[] = {
		{ "h0", nd }, { "qkv", n * qw }, { "P", np }, { "ctx", nd }, { "h1", nd },
		{ "h2", nd }, { "gu", 2 * nf }, { "act", nf }, { "rs1", n }, { "rs2", n } };
	piece stash_p[] = {
		{ "dy", nd }, { "dh2", nd }, { "dh1", nd }, { "dh0", nd }, { "dqkv", n * qw },
		{ "dgu", 2 * nf } };
	float *w = hrand(nw, 0.3f), *x = hrand(nd, 1), *dy = hrand(nd, 1), *g0 = hrand(nw, 1);
	float *y = malloc((size_t)nd * 4), *save = hnan(ssave), *stash = hnan(sstash);
	float *work = hnan(swork), *dx = malloc((size_t)nd * 4), *g = hcopy(g0, nw);
	float *dx2 = malloc((size_t)nd * 4), *g2 = hcopy(g0, nw);
	int32_t *mask = NULL, *M = NULL;
	float *W, *X, *DY, *Y, *Y2, *SAVE, *STASH, *WORK, *DX, *DX2, *G, *G2, *G3;
	char what[300], name[200];
	snprintf(name, sizeof name, "llama_block B=%lld T=%lld d=%lld heads=%lld kv_heads=%lld "
	         "ffn=%lld%s%s, %s", (long long)B, (long long)T, (long long)d, (long long)h,
	         (long long)hk, (long long)f, bias ? ", qkv bias" : "",
	         scaled ? ", theta 500000 llama3 scaling" : "",
	         mask_kind == 0 ? "mask NULL" : mask_kind == 1 ? "right padding"
	                                                        : "holes, a sample of padding only");
	/* the norms' weights near 1, as trained ones are */
	{
		llama_w o = llama_w_at(&L);
		for (int64_t j = 0; j < d; j++) {
			w[o.ln1 + j] += 1.0f;
			w[o.ln2 + j] += 1.0f;
		}
	}
	if (mask_kind) {
		mask = malloc((size_t)n * sizeof *mask);
		for (int64_t b = 0; b < B; b++)
			for (int64_t t = 0; t < T; t++)
				mask[b * T + t] = mask_kind == 1
				                  ? t < T - (b % 3 == 0 ? 0 : b % 3 == 1 ? T / 2 : T - 1)
				                  : b == B - 1 ? 0 : (t * 7 + b) % 3 != 0;
		M = dev(mask, (size_t)n * sizeof *mask);
	}
	W = dev(w, (size_t)nw * 4);
	X = dev(x, (size_t)nd * 4);
	DY = dev(dy, (size_t)nd * 4);
	Y = dnan(nd), Y2 = dnan(nd), SAVE = dnan(ssave), STASH = dnan(sstash), WORK = dnan(swork);
	DX = dnan(nd), DX2 = dnan(nd);
	G = dev(g0, (size_t)nw * 4), G2 = dev(g0, (size_t)nw * 4), G3 = dev(g0, (size_t)nw * 4);

	/* The CPU: forward, backward with g, and the split for its stash. */
	rt_cpu_llama_block_fwd(&L, w, x, mask, y, save, work, B, T);
	rt_cpu_llama_block_bwd(&L, w, g, x, save, dy, dx, NULL, work, B, T);
	rt_cpu_llama_block_bwd(&L, w, NULL, x, save, dy, dx2, stash, work, B, T);
	rt_cpu_llama_block_wgt(&L, g2, x, save, stash, work, B, T);

	/* Forward. */
	rt_llama_block_fwd(&L, W, X, M, Y, SAVE, WORK, B, T);
	snprintf(what, sizeof what, "%s: forward", name);
	check_norm(what, Y, y, nd, TF_TOL);
	snprintf(what, sizeof what, "%s: save", name);
	check_pieces(what, SAVE, save, save_p, 10, TF_TOL);
	RT_CU(cudaMemset(WORK, 0xff, (size_t)swork * 4));
	rt_llama_block_fwd(&L, W, X, M, Y2, NULL, WORK, B, T);
	snprintf(what, sizeof what, "%s: inference (save NULL) gives training's forward", name);
	check_gpu_same(what, Y2, Y, nd);

	/* Backward from the CPU's save. */
	up(SAVE, save, (size_t)ssave * 4);
	RT_CU(cudaMemset(WORK, 0xff, (size_t)swork * 4));
	rt_llama_block_bwd(&L, W, G, X, SAVE, DY, DX, NULL, WORK, B, T);
	snprintf(what, sizeof what, "%s: input gradient", name);
	check_norm(what, DX, dx, nd, TF_TOL);
	snprintf(what, sizeof what, "%s: weight gradients (accumulated)", name);
	check_norm(what, G, g, nw, TF_TOL);

	/* The zero-bubble split: B with a stash, then W. */
	RT_CU(cudaMemset(WORK, 0xff, (size_t)swork * 4));
	rt_llama_block_bwd(&L, W, NULL, X, SAVE, DY, DX2, STASH, WORK, B, T);
	RT_CU(cudaMemset(WORK, 0xff, (size_t)swork * 4));
	rt_llama_block_wgt(&L, G2, X, SAVE, STASH, WORK, B, T);
	snprintf(what, sizeof what, "%s: stash", name);
	check_pieces(what, STASH, stash, stash_p, 6, TF_TOL);
	snprintf(what, sizeof what, "%s: split backward, input gradient as _bwd's", name);
	check_gpu_same(what, DX2, DX, nd);
	snprintf(what, sizeof what, "%s: split backward, _wgt's weight gradients as _bwd's", name);
	check_gpu_same(what, G2, G, nw);

	/* dx NULL: the weight gradients alone. */
	RT_CU(cudaMemset(WORK, 0xff, (size_t)swork * 4));
	rt_llama_block_bwd(&L, W, G3, X, SAVE, DY, NULL, NULL, WORK, B, T);
	snprintf(what, sizeof what, "%s: dx NULL, the same weight gradients", name);
	check_gpu_same(what, G3, G, nw);

	/* The key/value cache: no mask there (generation has no padding). */
	if (!mask_kind)
		test_llama_kv(&L, w, W, B, T, 3, name);

	free(w); free(x); free(dy); free(g0); free(y); free(save); free(stash); free(work);
	free(dx); free(g); free(dx2); free(g2); free(mask);
	cudaFree(W); cudaFree(X); cudaFree(DY); cudaFree(Y); cudaFree(Y2); cudaFree(SAVE);
	cudaFree(STASH); cudaFree(WORK); cudaFree(DX); cudaFree(DX2); cudaFree(G); cudaFree(G2);
	cudaFree(G3); cudaFree(M);
}

static void test_llama(void)
{
	rt_tf r1 = { .d = 48, .heads = 6, .kv_heads = 2, .rope_theta = 10000.0 };
	rt_tf r2 = { .d = 256, .heads = 2, .kv_heads = 1, .rope_theta = 500000.0,
	             .rope_factor = 32.0, .rope_low = 1.0, .rope_high = 4.0, .rope_orig = 8192 };
	test_rmsnorm(19, 300, 1);
	test_rmsnorm(3, 2048, 0);
	test_llama_emb();
	test_rope(&r1, 3, 11, 0, "");
	test_rope(&r1, 2, 1, 37, ", one position");
	/* head size 128, Llama 3.2's frequencies, angles up to ~1e5 */
	test_rope(&r2, 2, 9, 100000, ", llama3 scaling");
	test_swiglu();
	test_llama_kv_store();
	/* GQA (B > heads: attention batched per head over the samples) */
	test_llama_block(3, 7, 24, 2, 1, 40, 0, 0, 1);
	test_llama_block(2, 6, 32, 4, 2, 48, 1, 1, 0);
	test_llama_block(3, 5, 48, 6, 3, 24, 0, 0, 2);
	test_llama_block(2, 1, 16, 2, 2, 24, 1, 0, 0);
	/* B <= heads; several warps per row; head size 16, 8 query heads on 2 */
	test_llama_block(4, 64, 128, 8, 2, 344, 1, 1, 1);
	test_llama_block(2, 33, 128, 8, 8, 256, 0, 1, 0);
}

static void test_tf(void)
{
	for (int ta = 0; ta < 2; ta++)
		for (int tb = 0; tb < 2; tb++)
			test_gemm(ta, tb);
	test_pointwise("gelu_tanh", rt_cpu_gelu_tanh_fwd, rt_gelu_tanh_fwd, rt_cpu_gelu_tanh_bwd,
	               rt_gelu_tanh_bwd, 1, 1e-6, 1e-5);
	for (int gpt2 = 0; gpt2 < 2; gpt2++) {
		/* B > heads: attention batched per head over the samples */
		test_block(gpt2, 3, 7, 24, 2, 40, 1);
		test_block(gpt2, 2, 6, 16, 2, 32, 0);
		test_block(gpt2, 3, 5, 24, 3, 24, 2);
		test_block(gpt2, 2, 1, 16, 2, 24, 0);
		/* B <= heads: per sample over its heads; several warps per row */
		test_block(gpt2, 4, 64, 128, 8, 512, 1);
	}
	test_bert_emb(3, 7, 1, 0);
	test_bert_emb(2, 9, 0, 0);
	test_bert_emb(3, 7, 1, 1);
	test_gpt2_emb();
	test_pool(1);
	test_pool(0);
	test_l2();
	test_next_token(3, 6, 1000);
	test_next_token(2, 1, 13);
	test_llama();
}

int main(void)
{
	char err[256];
	if (rt_cu_open(0, err, sizeof err) != 0) {
		printf("1..0 # SKIP %s\n", err);
		return 77;
	}
	printf("# device: %s (sm_%d%d)\n", rt_cu.device_name, rt_cu.cc_major, rt_cu.cc_minor);
	test_linear(7, 13, 5, 0);
	test_linear(64, 1024, 2048, 0);
	test_linear(33, 100, 10, 0);
	test_linear(64, 512, 256, 1);
	test_linear(64, 512, 256, 2);
	test_pointwise("relu", rt_cpu_relu_fwd, rt_relu_fwd, rt_cpu_relu_bwd, rt_relu_bwd, 0, 0.0, 0.0);
	test_pointwise("gelu", rt_cpu_gelu_fwd, rt_gelu_fwd, rt_cpu_gelu_bwd, rt_gelu_bwd, 1, 5e-7, 5e-7);
	test_pointwise("tanh", rt_cpu_tanh_fwd, rt_tanh_fwd, rt_cpu_tanh_bwd, rt_tanh_bwd, 0, 5e-7, 5e-7);
	test_pointwise("sigmoid", rt_cpu_sigmoid_fwd, rt_sigmoid_fwd, rt_cpu_sigmoid_bwd,
	               rt_sigmoid_bwd, 0, 5e-7, 5e-7);
	test_pointwise("silu", rt_cpu_silu_fwd, rt_silu_fwd, rt_cpu_silu_bwd, rt_silu_bwd, 1,
	               5e-7, 5e-7);
	test_dropout();
	test_layernorm(19, 300);
	test_layernorm(3, 4096);
	test_softmax(29, 1000);
	test_softmax(5, 7);
	test_losses();
	for (int k = 0; k < 4; k++)
		test_optim(k);
	test_tf();
	{
		float *a = hrand(1000, 1), *A = dev(a, 4000), *B = dev(NULL, 4000), *z = calloc(1000, 4);
		rt_copy(B, A, 4000);
		check("rt_copy", B, a, 1000, 0.0, 0.0);
		rt_zero(B, 4000);
		check("rt_zero", B, z, 1000, 0.0, 0.0);
		free(a); free(z);
		cudaFree(A); cudaFree(B);
	}
	for (int prec = RT_PREC_BF16; prec <= RT_PREC_F16; prec++) {
		/* every 4099th f32 bit pattern, rounded on the GPU and by the
		 * host's rt_round_host (t/runtime-kernels.c checks that one) */
		const int64_t n = (int64_t)(0x100000000ull / 4099);
		float *h = (float *)malloc((size_t)n * 4), *r = (float *)malloc((size_t)n * 4), *D;
		rt_program p;
		rt_ctx c;
		memset(&p, 0, sizeof p);
		memset(&c, 0, sizeof c);
		p.precision = prec;
		c.p = &p;
		for (int64_t i = 0; i < n; i++)
			h[i] = rt_f32_from_bits((uint32_t)(i * 4099));
		D = dev(h, n * 4);
		memcpy(r, h, (size_t)n * 4);
		rt_round_host(prec, r, n);
		rt_round(&c, D, n);
		check_exact(prec == RT_PREC_BF16 ? "rt_round bf16 (1M bit patterns)"
		            : "rt_round f16 (1M bit patterns)", D, r, n);
		free(h); free(r);
		cudaFree(D);
	}
	rt_cu_close();
	printf("1..%d\n", n_test);
	return n_fail ? 1 : 0;
}
