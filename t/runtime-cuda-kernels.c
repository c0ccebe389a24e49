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
 * Prints TAP; exits 77 (skip) when no CUDA device is visible.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_cpu_kernels.h"
#include "rt_cuda.h"

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

static void test_linear(int64_t rows, int64_t in, int64_t out, int tf32)
{
	float *x = hrand(rows * in, 1), *w = hrand(out * in, 0.3f), *b = hrand(out, 1);
	float *dy = hrand(rows * out, 1), *y = calloc((size_t)(rows * out), 4);
	float *dx = calloc((size_t)(rows * in), 4), *dw = hrand(out * in, 0.1f), *db = hrand(out, 1);
	float *X = dev(x, (size_t)(rows * in) * 4), *W = dev(w, (size_t)(out * in) * 4);
	float *B = dev(b, (size_t)out * 4), *DY = dev(dy, (size_t)(rows * out) * 4);
	float *Y = dev(NULL, (size_t)(rows * out) * 4), *DX = dev(NULL, (size_t)(rows * in) * 4);
	float *DW = dev(dw, (size_t)(out * in) * 4), *DB = dev(db, (size_t)out * 4);
	/* Errors relative to Σ|a||b| of each dot product: float32 within a few
	 * units of 2^-23 (the orders of summation differ), TF32 within a few
	 * units of its 2^-11 rounding of the inputs: 2^12 of float32's. */
	double lim = tf32 ? 4.0 * 4096 : 4.0;
	float *ax = absv(x, rows * in), *aw = absv(w, out * in), *ady = absv(dy, rows * out);
	float *sy = calloc((size_t)(rows * out), 4), *sdx = calloc((size_t)(rows * in), 4);
	float *sdw = calloc((size_t)(out * in), 4);
	char what[96];
	rt_cu.tf32 = tf32;
	rt_cpu_linear_fwd(ax, aw, NULL, sy, rows, in, out);
	rt_cpu_linear_bwd_data(ady, aw, sdx, rows, in, out);
	rt_cpu_linear_bwd_weight(ax, ady, sdw, NULL, rows, in, out);
	for (int64_t i = 0; i < out * in; i++)
		sdw[i] += fabsf(dw[i]);

	rt_cpu_linear_fwd(x, w, b, y, rows, in, out);
	rt_linear_fwd(X, W, B, Y, rows, in, out);
	snprintf(what, sizeof what, "linear_fwd %lldx%lldx%lld%s", (long long)rows, (long long)in,
	         (long long)out, tf32 ? " tf32" : "");
	for (int64_t i = 0; i < rows * out; i++)
		sy[i] += fabsf(b[i % out]);
	check_scaled(what, Y, y, sy, rows * out, lim);

	rt_cpu_linear_bwd_data(dy, w, dx, rows, in, out);
	rt_linear_bwd_data(DY, W, DX, rows, in, out);
	snprintf(what, sizeof what, "linear_bwd_data %lldx%lldx%lld%s", (long long)rows,
	         (long long)in, (long long)out, tf32 ? " tf32" : "");
	check_scaled(what, DX, dx, sdx, rows * in, lim);

	rt_cpu_linear_bwd_weight(x, dy, dw, db, rows, in, out);
	rt_linear_bwd_weight(X, DY, DW, DB, rows, in, out);
	snprintf(what, sizeof what, "linear_bwd_weight %lldx%lldx%lld%s (accumulates)",
	         (long long)rows, (long long)in, (long long)out, tf32 ? " tf32" : "");
	check_scaled(what, DW, dw, sdw, out * in, lim);
	snprintf(what, sizeof what, "bias gradient %lldx%lld: the CPU's bits", (long long)rows,
	         (long long)out);
	check(what, DB, db, out, 0.0, 0.0);
	rt_cu.tf32 = 0;
	free(x); free(w); free(b); free(dy); free(y); free(dx); free(dw); free(db);
	free(ax); free(aw); free(ady); free(sy); free(sdx); free(sdw);
	cudaFree(X); cudaFree(W); cudaFree(B); cudaFree(DY); cudaFree(Y); cudaFree(DX);
	cudaFree(DW); cudaFree(DB);
}

typedef void (*fwd_fn)(const float *, float *, int64_t);
typedef void (*bwd_fn)(const float *, const float *, float *, int64_t);

static void test_pointwise(const char *name, fwd_fn cf, fwd_fn gf, bwd_fn cb, bwd_fn gb,
                           int bwd_from_x, double tol)
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
	check(what, DX, dx, n, tol, 1.0);
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
	free(z); free(dz); free(t); free(y); free(tt); free(dyv);
	cudaFree(Z); cudaFree(DZ); cudaFree(YY); cudaFree(TT); cudaFree(DYV); cudaFree(T);
}

/* rt_optim_step on a hand-made context, against rt_optim.c's loops. */
static void test_optim(int adam)
{
	const int64_t n = 4099;
	rt_program p;
	rt_ctx c;
	float *w = hrand(n, 1), *g = hrand(n, 0.1f), *m = calloc(n, 4), *v = calloc(n, 4);
	double lr = adam ? 1e-3 : 0.1, mom = 0.9, b1 = 0.9, b2 = 0.999, eps = 1e-8;
	memset(&p, 0, sizeof p);
	memset(&c, 0, sizeof c);
	p.optim = adam ? RT_OPTIM_ADAM : RT_OPTIM_SGD;
	p.nweights = n;
	p.lr = lr;
	p.momentum = mom;
	p.beta1 = b1;
	p.beta2 = b2;
	p.eps = eps;
	c.p = &p;
	c.w = dev(w, n * 4);
	c.g = dev(g, n * 4);
	RT_CU(cudaMemset(rt_cu.d_adam_t, 0, sizeof(int64_t)));
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
				m[i] += (float)(1.0 - b1) * (g[i] - m[i]);
				v[i] = (float)b2 * v[i] + (float)(1.0 - b2) * g[i] * g[i];
				w[i] -= step_size * (m[i] / (sqrtf(v[i]) / bc2 + (float)eps));
			} else {
				m[i] = (float)mom * m[i] + g[i];
				w[i] -= (float)lr * m[i];
			}
		}
		rt_optim_step(&c);
	}
	check(adam ? "Adam, 3 steps (device-counted t)" : "SGD with momentum, 3 steps: the CPU's bits",
	      c.w, w, n, adam ? 2e-7 : 0.0, 1e-6);
	{
		float *z = calloc(n, 4);
		check("the optimizer zeroes the gradients", c.g, z, n, 0.0, 0.0);
		free(z);
	}
	free(w); free(g); free(m); free(v);
	cudaFree(c.w); cudaFree(c.g);
	rt_dev_free(&c, c.opt_m);
	rt_dev_free(&c, c.opt_v);
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
	test_pointwise("relu", rt_cpu_relu_fwd, rt_relu_fwd, rt_cpu_relu_bwd, rt_relu_bwd, 0, 0.0);
	test_pointwise("gelu", rt_cpu_gelu_fwd, rt_gelu_fwd, rt_cpu_gelu_bwd, rt_gelu_bwd, 1, 5e-7);
	test_pointwise("tanh", rt_cpu_tanh_fwd, rt_tanh_fwd, rt_cpu_tanh_bwd, rt_tanh_bwd, 0, 5e-7);
	test_pointwise("sigmoid", rt_cpu_sigmoid_fwd, rt_sigmoid_fwd, rt_cpu_sigmoid_bwd,
	               rt_sigmoid_bwd, 0, 5e-7);
	test_dropout();
	test_layernorm(19, 300);
	test_layernorm(3, 4096);
	test_softmax(29, 1000);
	test_softmax(5, 7);
	test_losses();
	test_optim(0);
	test_optim(1);
	{
		float *a = hrand(1000, 1), *A = dev(a, 4000), *B = dev(NULL, 4000), *z = calloc(1000, 4);
		rt_copy(B, A, 4000);
		check("rt_copy", B, a, 1000, 0.0, 0.0);
		rt_zero(B, 4000);
		check("rt_zero", B, z, 1000, 0.0, 0.0);
		free(a); free(z);
		cudaFree(A); cudaFree(B);
	}
	rt_cu_close();
	printf("1..%d\n", n_test);
	return n_fail ? 1 : 0;
}
