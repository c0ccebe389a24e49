/* runtime-kernels.c — the runtime's kernels, optimizers and initialiser
 * against independent references.
 *
 * Forward passes are compared with naive double-precision code written
 * here; backward passes with central finite differences of the scalar
 * L = Σ f(x)·r for a fixed random r (so dL/dy = r is what the backward
 * kernel receives).  Finite differences are taken in double around float32
 * kernels, so their noise is about eps32·|L|/h: with h = 1e-2 and |L| ~ 10
 * that is ~1e-4, and the truncation error is O(h²) ~ 1e-4 too — hence the
 * 2e-3 tolerances below, far under the O(1) errors a wrong formula makes.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <float.h>

#include "../runtime/rt_internal.h"
#include "../runtime/rt_math.h"
#include "tap.h"

static uint64_t rng = 12345;
static double urand(void)    /* [-1, 1) */
{
	rng = rng * 6364136223846793005ull + 1442695040888963407ull;
	return (double)(rng >> 11) * 0x1p-52 - 1.0;
}
static void fill(float *x, int64_t n, double scale)
{
	for (int64_t i = 0; i < n; i++)
		x[i] = (float)(scale * urand());
}
static double maxdiff(const float *a, const double *b, int64_t n)
{
	double m = 0;
	for (int64_t i = 0; i < n; i++)
		m = fmax(m, fabs((double)a[i] - b[i]));
	return m;
}

/* Finite-difference gradient of L(v) = Σ f(v)·r with respect to v. */
typedef double (*loss_fn)(void *ctx);
static void fd_grad(float *v, int64_t n, loss_fn L, void *ctx, double *out)
{
	const float h = 1e-2f;
	for (int64_t i = 0; i < n; i++) {
		float keep = v[i];
		double lp, lm;
		v[i] = keep + h;
		lp = L(ctx);
		v[i] = keep - h;
		lm = L(ctx);
		v[i] = keep;
		out[i] = (lp - lm) / (2.0 * (double)h);
	}
}

static double dot(const float *a, const float *r, int64_t n)
{
	double s = 0;
	for (int64_t i = 0; i < n; i++)
		s += (double)a[i] * r[i];
	return s;
}

/* ---- Linear ---- */
enum { R = 5, IN = 7, OUT = 6 };
static float lx[R * IN], lw[OUT * IN], lb[OUT], ly[R * OUT], lr[R * OUT];
static double lin_loss(void *ctx)
{
	(void)ctx;
	rt_linear_fwd(lx, lw, lb, ly, R, IN, OUT);
	return dot(ly, lr, R * OUT);
}

static void test_linear(void)
{
	double ref[R * OUT], fd[OUT * IN > R * IN ? OUT * IN : R * IN];
	float dx[R * IN], dw[OUT * IN], db[OUT];
	fill(lx, R * IN, 1); fill(lw, OUT * IN, 1); fill(lb, OUT, 1); fill(lr, R * OUT, 1);
	rt_linear_fwd(lx, lw, lb, ly, R, IN, OUT);
	for (int r = 0; r < R; r++)
		for (int o = 0; o < OUT; o++) {
			double s = lb[o];
			for (int i = 0; i < IN; i++)
				s += (double)lx[r * IN + i] * lw[o * IN + i];
			ref[r * OUT + o] = s;
		}
	is_near(maxdiff(ly, ref, R * OUT), 0, 1e-5, "linear forward is x·Wᵀ + b");

	rt_linear_bwd_data(lr, lw, dx, R, IN, OUT);
	fd_grad(lx, R * IN, lin_loss, NULL, fd);
	is_near(maxdiff(dx, fd, R * IN), 0, 2e-3, "linear backward (data) matches finite differences");

	memset(dw, 0, sizeof dw);
	memset(db, 0, sizeof db);
	rt_linear_bwd_weight(lx, lr, dw, db, R, IN, OUT);
	fd_grad(lw, OUT * IN, lin_loss, NULL, fd);
	is_near(maxdiff(dw, fd, OUT * IN), 0, 2e-3, "linear backward (weight) matches finite differences");
	fd_grad(lb, OUT, lin_loss, NULL, fd);
	is_near(maxdiff(db, fd, OUT), 0, 2e-3, "linear backward (bias) matches finite differences");

	/* Weight gradients accumulate: a second call doubles them. */
	{
		float dw1[OUT * IN], db1[OUT];
		double twice[OUT * IN], twice_b[OUT];
		memcpy(dw1, dw, sizeof dw);
		memcpy(db1, db, sizeof db);
		rt_linear_bwd_weight(lx, lr, dw, db, R, IN, OUT);
		for (int i = 0; i < OUT * IN; i++)
			twice[i] = 2.0 * dw1[i];
		for (int i = 0; i < OUT; i++)
			twice_b[i] = 2.0 * db1[i];
		ok(maxdiff(dw, twice, OUT * IN) < 1e-5 && maxdiff(db, twice_b, OUT) < 1e-5,
		   "linear weight gradients accumulate (+=)");
	}
	rt_linear_fwd(lx, lw, NULL, ly, R, IN, OUT);
	for (int r = 0; r < R; r++)
		for (int o = 0; o < OUT; o++)
			ref[r * OUT + o] -= lb[o];
	is_near(maxdiff(ly, ref, R * OUT), 0, 1e-5, "linear forward without bias");
}

/* ---- Pointwise activations ---- */
enum { N = 40 };
static float ax[N], ay[N], ar[N];
static void (*act_fwd)(const float *, float *, int64_t);
static double act_loss(void *ctx)
{
	(void)ctx;
	act_fwd(ax, ay, N);
	return dot(ay, ar, N);
}

static void test_act(const char *name, void (*fwd)(const float *, float *, int64_t),
                     void (*bwd)(const float *, const float *, float *, int64_t),
                     int bwd_takes_x, double (*ref)(double))
{
	double want[N], fd[N];
	float dx[N];
	fill(ax, N, 3);
	for (int i = 0; i < N; i++)     /* keep clear of relu's kink for finite differences */
		if (fabsf(ax[i]) < 0.05f)
			ax[i] = 0.5f;
	fill(ar, N, 1);
	fwd(ax, ay, N);
	for (int i = 0; i < N; i++)
		want[i] = ref(ax[i]);
	is_near(maxdiff(ay, want, N), 0, 2e-6, "%s forward matches libm in double", name);
	bwd(bwd_takes_x ? ax : ay, ar, dx, N);
	act_fwd = fwd;
	fd_grad(ax, N, act_loss, NULL, fd);
	is_near(maxdiff(dx, fd, N), 0, 2e-3, "%s backward matches finite differences", name);
}

static double ref_relu(double x) { return x > 0 ? x : 0; }
static double ref_gelu(double x) { return 0.5 * x * (1 + erf(x / sqrt(2.0))); }
static double ref_tanh(double x) { return tanh(x); }
static double ref_sigmoid(double x) { return 1 / (1 + exp(-x)); }
static double ref_silu(double x) { return x / (1 + exp(-x)); }

static void test_activations(void)
{
	float big[4] = { -100.f, -30.f, 30.f, 100.f }, out[4];
	float one = 1.0f, g1;
	test_act("relu", rt_relu_fwd, rt_relu_bwd, 0, ref_relu);
	test_act("gelu", rt_gelu_fwd, rt_gelu_bwd, 1, ref_gelu);
	test_act("tanh", rt_tanh_fwd, rt_tanh_bwd, 0, ref_tanh);
	test_act("sigmoid", rt_sigmoid_fwd, rt_sigmoid_bwd, 0, ref_sigmoid);
	test_act("silu", rt_silu_fwd, rt_silu_bwd, 1, ref_silu);
	rt_gelu_fwd(&one, &g1, 1);
	is_near(g1, 0.8413447460685429, 1e-6, "gelu(1) is the exact-erf value (nn.GELU(), not tanh)");
	rt_sigmoid_fwd(big, out, 4);
	ok(out[0] >= 0 && out[0] < 1e-30 && out[3] == 1.0f && isfinite(out[1]),
	   "sigmoid saturates without overflow");
	rt_silu_fwd(big, out, 4);
	ok(out[0] <= 0 && out[0] > -1e-30 && out[3] == 100.0f && isfinite(out[1]),
	   "silu saturates without overflow");
}

/* ---- LayerNorm ---- */
enum { LR_ = 4, LD = 9 };
static float nx[LR_ * LD], ng[LD], nb[LD], ny[LR_ * LD], nr[LR_ * LD], nmean[LR_], nrstd[LR_];
static double ln_loss(void *ctx)
{
	(void)ctx;
	rt_layernorm_fwd(nx, ng, nb, ny, nmean, nrstd, LR_, LD, 1e-5);
	return dot(ny, nr, LR_ * LD);
}

static void test_layernorm(void)
{
	double ref[LR_ * LD], fd[LR_ * LD];
	float dx[LR_ * LD], dg[LD], db[LD];
	fill(nx, LR_ * LD, 2); fill(ng, LD, 1); fill(nb, LD, 1); fill(nr, LR_ * LD, 1);
	for (int i = 0; i < LD; i++)
		nx[i] += 100.0f;    /* a large mean: the centred variance must not cancel */
	rt_layernorm_fwd(nx, ng, nb, ny, nmean, nrstd, LR_, LD, 1e-5);
	for (int r = 0; r < LR_; r++) {
		double m = 0, v = 0;
		for (int j = 0; j < LD; j++)
			m += nx[r * LD + j] / (double)LD;
		for (int j = 0; j < LD; j++)
			v += (nx[r * LD + j] - m) * (nx[r * LD + j] - m) / LD;
		for (int j = 0; j < LD; j++)
			ref[r * LD + j] = (nx[r * LD + j] - m) / sqrt(v + 1e-5) * ng[j] + nb[j];
	}
	is_near(maxdiff(ny, ref, LR_ * LD), 0, 2e-5, "layernorm forward (biased variance, eps inside sqrt)");
	rt_layernorm_bwd_data(nx, ng, nmean, nrstd, nr, dx, LR_, LD);
	fd_grad(nx + LD, (LR_ - 1) * LD, ln_loss, NULL, fd);
	is_near(maxdiff(dx + LD, fd, (LR_ - 1) * LD), 0, 5e-3, "layernorm backward (data) matches finite differences");
	memset(dg, 0, sizeof dg);
	memset(db, 0, sizeof db);
	rt_layernorm_bwd_weight(nx, nmean, nrstd, nr, dg, db, LR_, LD);
	fd_grad(ng, LD, ln_loss, NULL, fd);
	is_near(maxdiff(dg, fd, LD), 0, 2e-3, "layernorm backward (gain) matches finite differences");
	fd_grad(nb, LD, ln_loss, NULL, fd);
	is_near(maxdiff(db, fd, LD), 0, 2e-3, "layernorm backward (bias) matches finite differences");
}

/* ---- Softmax ---- */
static float sx[R * OUT], sy[R * OUT], sr[R * OUT];
static double sm_loss(void *ctx)
{
	(void)ctx;
	rt_softmax_fwd(sx, sy, R, OUT);
	return dot(sy, sr, R * OUT);
}

static void test_softmax(void)
{
	double ref[R * OUT], fd[R * OUT];
	float dx[R * OUT], huge[3] = { 1000.f, 999.f, -1000.f }, hy[3];
	fill(sx, R * OUT, 3); fill(sr, R * OUT, 1);
	rt_softmax_fwd(sx, sy, R, OUT);
	for (int r = 0; r < R; r++) {
		double s = 0;
		for (int j = 0; j < OUT; j++)
			s += exp(sx[r * OUT + j]);
		for (int j = 0; j < OUT; j++)
			ref[r * OUT + j] = exp(sx[r * OUT + j]) / s;
	}
	is_near(maxdiff(sy, ref, R * OUT), 0, 1e-6, "softmax forward");
	rt_softmax_bwd(sy, sr, dx, R, OUT);
	fd_grad(sx, R * OUT, sm_loss, NULL, fd);
	is_near(maxdiff(dx, fd, R * OUT), 0, 2e-3, "softmax backward matches finite differences");
	rt_softmax_fwd(huge, hy, 1, 3);
	is_near(hy[0], 1 / (1 + exp(-1.0)), 1e-6, "softmax of logits near 1000 is finite and right");
}

/* ---- Losses ---- */
static float cx[R * OUT];
static int32_t ct[R];
static double ce_loss(void *ctx)
{
	(void)ctx;
	return rt_loss_cross_entropy(cx, ct, NULL, R, OUT, 1.0);
}
static float mx_[R * OUT], mt[R * OUT];
static double mse_loss(void *ctx)
{
	(void)ctx;
	return rt_loss_mse(mx_, mt, NULL, R, OUT, 1.0);
}

static void test_losses(void)
{
	double ref = 0, fd[R * OUT], got, scaled[R * OUT];
	float d[R * OUT], big[3] = { 1e4f, -1e4f, 0.0f };
	int32_t t1 = 1;
	fill(cx, R * OUT, 3);
	for (int r = 0; r < R; r++)
		ct[r] = (int32_t)(r * 7 % OUT);
	for (int r = 0; r < R; r++) {
		double s = 0;
		for (int j = 0; j < OUT; j++)
			s += exp(cx[r * OUT + j]);
		ref += log(s) - cx[r * OUT + ct[r]];
	}
	got = rt_loss_cross_entropy(cx, ct, d, R, OUT, 0.25);
	is_near(got, ref, 1e-5, "cross-entropy returns the sum of per-sample losses");
	fd_grad(cx, R * OUT, ce_loss, NULL, fd);
	for (int i = 0; i < R * OUT; i++)
		scaled[i] = 0.25 * fd[i];
	is_near(maxdiff(d, scaled, R * OUT), 0, 1e-3, "cross-entropy gradient is scale·d(sum)/dlogits");
	got = rt_loss_cross_entropy(big, &t1, d, 1, 3, 1.0);
	ok(fabs(got - 2e4) < 1 && isfinite(d[0]) && fabs(d[1] + 1) < 1e-6,
	   "cross-entropy is stable for logits of 1e4 (log-sum-exp)");
	/* the loss only (dlogits NULL), as an evaluation step asks: the same
	 * sum, bit for bit, over the first rows; no rows, nothing */
	got = rt_loss_cross_entropy(cx, ct, d, R - 1, OUT, 0.25);
	ok(rt_loss_cross_entropy(cx, ct, NULL, R - 1, OUT, 0.0) == got,
	   "cross-entropy without dlogits: the sum with it, over the rows asked");
	ok(rt_loss_cross_entropy(cx, ct, NULL, 0, OUT, 0.0) == 0.0, "cross-entropy of 0 rows is 0");

	fill(mx_, R * OUT, 2);
	fill(mt, R * OUT, 2);
	ref = 0;
	for (int i = 0; i < R * OUT; i++)
		ref += ((double)mx_[i] - mt[i]) * ((double)mx_[i] - mt[i]);
	got = rt_loss_mse(mx_, mt, d, R, OUT, 0.5);
	is_near(got, ref, 1e-5, "mse returns the sum of squared errors");
	fd_grad(mx_, R * OUT, mse_loss, NULL, fd);
	for (int i = 0; i < R * OUT; i++)
		scaled[i] = 0.5 * fd[i];
	is_near(maxdiff(d, scaled, R * OUT), 0, 1e-3, "mse gradient is scale·d(sum)/dy");
	got = rt_loss_mse(mx_, mt, d, R - 1, OUT, 0.5);
	ok(rt_loss_mse(mx_, mt, NULL, R - 1, OUT, 0.0) == got,
	   "mse without dy: the sum with it, over the rows asked");
	ok(rt_loss_mse(mx_, mt, NULL, 0, OUT, 0.0) == 0.0, "mse of 0 rows is 0");
}

/* ---- Dropout ---- */
static void test_dropout(void)
{
	enum { DR = 64, DW = 50 };
	static float x[DR * DW], y[DR * DW], y2[DR * DW], dy[DR * DW], dx[DR * DW], y3[DR * DW];
	const double p = 0.3;
	int kept = 0, split_same = 1, scale_ok = 1, bwd_ok = 1;
	for (int i = 0; i < DR * DW; i++)
		x[i] = 1.0f + (float)(i % 7);
	fill(dy, DR * DW, 1);
	rt_dropout_fwd(x, y, DR, DW, p, 42, 3, 5, 100);
	/* The same rows as three micro-batches of 10, 30 and 24 rows. */
	rt_dropout_fwd(x, y2, 10, DW, p, 42, 3, 5, 100);
	rt_dropout_fwd(x + 10 * DW, y2 + 10 * DW, 30, DW, p, 42, 3, 5, 110);
	rt_dropout_fwd(x + 40 * DW, y2 + 40 * DW, 24, DW, p, 42, 3, 5, 140);
	for (int i = 0; i < DR * DW; i++) {
		split_same &= y[i] == y2[i];
		if (y[i] != 0.0f) {
			kept++;
			scale_ok &= fabsf(y[i] - x[i] / 0.7f) <= 1e-6f * fabsf(y[i]);
		}
	}
	ok(split_same, "dropout mask depends on the global row, not on how rows are split");
	ok(scale_ok, "kept elements are scaled by 1/(1-p)");
	is_near((double)kept / (DR * DW), 0.7, 0.03, "dropout keeps about 1-p of the elements");
	rt_dropout_bwd(dy, dx, DR, DW, p, 42, 3, 5, 100);
	for (int i = 0; i < DR * DW; i++)
		bwd_ok &= (y[i] == 0.0f) ? dx[i] == 0.0f : fabsf(dx[i] - dy[i] / 0.7f) <= 1e-6f * (fabsf(dx[i]) + 1e-30f);
	ok(bwd_ok, "dropout backward applies the forward mask and scale");
	rt_dropout_fwd(x, y3, DR, DW, p, 42, 3, 6, 100);
	ok(memcmp(y, y3, sizeof y) != 0, "a different step draws a different mask");
	rt_dropout_fwd(x, y3, DR, DW, 0.0, 42, 3, 5, 100);
	ok(memcmp(x, y3, sizeof x) == 0, "dropout with p = 0 is the identity");
}

/* ---- Optimizers against hand references over 3 steps ---- */
static void test_optim(void)
{
	enum { NW = 5 };
	rt_program p;
	rt_ctx c;
	float w[NW], g[NW];
	double rw[NW], buf[NW] = { 0 }, m[NW] = { 0 }, v[NW] = { 0 };
	float grads[3][NW];
	int zeroed = 1;
	for (int s = 0; s < 3; s++)
		fill(grads[s], NW, 1);

	memset(&p, 0, sizeof p);
	memset(&c, 0, sizeof c);
	p.nweights = NW;
	p.optim = RT_OPTIM_SGD;
	p.lr = 0.1;
	p.momentum = 0.9;
	c.p = &p;
	c.w = w;
	c.g = g;
	ok(rt_optim_alloc(&c) == 0 && c.opt_m, "sgd with momentum has a momentum buffer");
	fill(w, NW, 1);
	for (int i = 0; i < NW; i++)
		rw[i] = w[i];
	for (int s = 0; s < 3; s++) {
		memcpy(g, grads[s], sizeof g);
		rt_optim_step(&c);
		for (int i = 0; i < NW; i++) {
			buf[i] = 0.9 * buf[i] + grads[s][i];    /* torch: buf = g on step 1 */
			rw[i] -= 0.1 * buf[i];
			zeroed &= g[i] == 0.0f;
		}
	}
	is_near(maxdiff(w, rw, NW), 0, 1e-6, "sgd with momentum matches torch.optim.SGD over 3 steps");
	ok(zeroed, "the optimizer step zeroes the gradients");
	rt_free(c.opt_m);

	memset(&c, 0, sizeof c);
	p.optim = RT_OPTIM_ADAM;
	p.lr = 1e-2;
	p.beta1 = 0.9;
	p.beta2 = 0.999;
	p.eps = 1e-8;
	c.p = &p;
	c.w = w;
	c.g = g;
	ok(rt_optim_alloc(&c) == 0 && c.opt_m && c.opt_v, "adam has both moment buffers");
	fill(w, NW, 1);
	for (int i = 0; i < NW; i++)
		rw[i] = w[i];
	for (int s = 0; s < 3; s++) {
		int t = s + 1;
		memcpy(g, grads[s], sizeof g);
		rt_optim_step(&c);
		for (int i = 0; i < NW; i++) {
			double mh, vh;
			m[i] = 0.9 * m[i] + 0.1 * grads[s][i];
			v[i] = 0.999 * v[i] + 0.001 * (double)grads[s][i] * grads[s][i];
			mh = m[i] / (1 - pow(0.9, t));
			vh = v[i] / (1 - pow(0.999, t));
			rw[i] -= 1e-2 * mh / (sqrt(vh) + 1e-8);
		}
	}
	is_near(maxdiff(w, rw, NW), 0, 1e-6, "adam matches torch.optim.Adam (bias-corrected) over 3 steps");
	rt_free(c.opt_m);
	rt_free(c.opt_v);
}

/* ---- 16-bit values (rt_math.h) ---- */

/* The nearest value with p significant bits, exponents down to emin (then
 * a fixed spacing: subnormals) and `maxv` the largest finite one, ties to
 * even — IEEE 754's definition in double arithmetic (frexp, nearbyint in
 * the default rounding mode), with none of the runtime's bit tricks. */
static double round_ref(double x, int p, int emin, double maxv)
{
	int e;
	double r;
	if (x == 0.0 || !isfinite(x))
		return x;
	frexp(fabs(x), &e);                 /* |x| = m·2^e, m in [0.5, 1) */
	int q = e - 1 < emin ? emin - p + 1 : e - p;        /* the spacing's exponent */
	r = ldexp(nearbyint(ldexp(fabs(x), -q)), q);
	if (r > maxv)
		r = INFINITY;
	return copysign(r, x);
}

static int same_value(float a, double b)
{
	return (isnan(a) && isnan(b)) || (double)a == b;
}

static void test_round(void)
{
	static const float special[] = {
		0.0f, -0.0f, 1.0f, 1.00390625f /* bf16 tie, to even: 1 */,
		1.01171875f /* bf16 tie, to even: 1.015625 */, 65504.0f, 65519.99f, 65520.0f,
		-65520.0f, 0x1p-24f, 0x1p-25f /* f16 tie: 0 */, 0x1.8p-24f /* tie: 2^-23 */,
		0x1p-14f, 0x1.ffcp-15f, 3.3895314e38f /* bf16 max */, 3.4e38f /* to bf16 inf */,
		FLT_MIN, 0x1p-140f, INFINITY, -INFINITY, NAN,
	};
	float buf[4] = { 1.00390625f, -2.0078125f, 0.1f, 3.0f };
	const double bf_max = 0x1.fep127, h_max = 65504.0;
	int bad_bf = 0, bad_h = 0, bad_native = 0;
	for (size_t i = 0; i < sizeof special / sizeof *special; i++) {
		bad_bf += !same_value(rt_round_bf16(special[i]), round_ref(special[i], 8, -126, bf_max));
		bad_h += !same_value(rt_round_f16(special[i]), round_ref(special[i], 11, -14, h_max));
	}
	/* every 9973rd f32 bit pattern: all exponents, signs, NaNs, subnormals */
	for (uint64_t u = 0; u < 0x100000000ull; u += 9973) {
		float x = rt_f32_from_bits((uint32_t)u);
		bad_bf += !same_value(rt_round_bf16(x), round_ref(x, 8, -126, bf_max));
		bad_h += !same_value(rt_round_f16(x), round_ref(x, 11, -14, h_max));
#ifdef __FLT16_MANT_DIG__
		bad_native += !same_value(rt_round_f16(x), (double)(_Float16)x);
#endif
	}
	/* the buffer versions (the F16C path where the CPU has it) agree */
	{
		int64_t nb = (int64_t)(0x100000000ull / 9973) + 1, k = 0;
		float *v = malloc((size_t)nb * sizeof *v), *r = malloc((size_t)nb * sizeof *r);
		int bad_buf = 0;
		for (uint64_t u = 0; v && r && u < 0x100000000ull; u += 9973)
			v[k++] = rt_f32_from_bits((uint32_t)u);
		for (int prec = RT_PREC_BF16; v && r && prec <= RT_PREC_F16; prec++) {
			rt_round_into_host(prec, r, v, k);
			for (int64_t i = 0; i < k; i++)
				bad_buf += !same_value(r[i], prec == RT_PREC_BF16 ? rt_round_bf16(v[i])
				                                                   : rt_round_f16(v[i]));
		}
		ok(v && r && bad_buf == 0, "rt_round_into_host equals the scalar roundings (both "
		   "types, every 9973rd pattern)");
		free(v);
		free(r);
	}
	ok(bad_bf == 0, "bf16 rounding is IEEE round-to-nearest-even (430k values, ties, overflow)");
	ok(bad_h == 0, "f16 rounding is IEEE round-to-nearest-even (subnormals, 65520 to inf)");
#ifdef __FLT16_MANT_DIG__
	ok(bad_native == 0, "f16 rounding equals the compiler's _Float16 conversion");
#else
	ok(1, "f16 against _Float16 # SKIP the compiler has no _Float16");
#endif
	/* the 16-bit messages' encoding: every one of the 65536 patterns */
	{
		int bad_enc = 0, bad_dec = 0;
		for (uint32_t h = 0; h < 65536; h++) {
			int e = (h >> 10) & 31, m = h & 1023;
			double want = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY)
			              : ldexp(1024 + m, e - 25);
			float v = rt_f16_value((uint16_t)h), b = rt_bf16_value((uint16_t)h);
			want = h & 0x8000 ? -want : want;
			bad_dec += !same_value(v, want);
			bad_enc += !isnan(v) && rt_f16_bits(v) != h;
			bad_enc += !isnan(b) && rt_bf16_bits(b) != h;
			bad_dec += rt_f32_bits(b) != h << 16;
		}
		ok(bad_dec == 0, "every f16 and bf16 bit pattern decodes to its value");
		ok(bad_enc == 0, "and encodes back to the same 16 bits");
	}
	rt_round_host(RT_PREC_BF16, buf, 4);
	ok(buf[0] == 1.0f && buf[1] == -2.0f && buf[2] == 0.10009765625f && buf[3] == 3.0f,
	   "rt_round_host rounds a buffer to bf16");
	buf[2] = 0.1f;
	rt_round_host(RT_PREC_F32, buf + 2, 1);
	ok(buf[2] == 0.1f, "rt_round_host leaves f32 alone");
}

/* ---- Initialisation ---- */
static void test_init(void)
{
	enum { NI = 20000 };
	static float a[NI], b[NI], d[NI];
	rt_param pa = { "fc1.weight", 2, { 200, 100 }, 0, NI, RT_INIT_UNIFORM_FANIN, 100, 0, 0.0, 0 };
	rt_param pb = pa;
	double mean = 0, var = 0, bound = 0.1;
	int in_range = 1;
	pb.name = "fc2.weight";
	rt_init_param(&pa, 42, a);
	rt_init_param(&pa, 42, b);
	rt_init_param(&pb, 42, d);
	ok(memcmp(a, b, sizeof a) == 0, "init depends only on (seed, name): same name, same values");
	ok(memcmp(a, d, sizeof a) != 0, "different names draw different values");
	for (int i = 0; i < NI; i++) {
		in_range &= a[i] >= -bound && a[i] < bound;
		mean += a[i] / NI;
	}
	for (int i = 0; i < NI; i++)
		var += (a[i] - mean) * (a[i] - mean) / NI;
	ok(in_range, "nn.Linear init lies in [-1/sqrt(fan_in), 1/sqrt(fan_in))");
	is_near(var, bound * bound / 3, 0.03 * bound * bound / 3, "and has the uniform distribution's variance");
	pa.init = RT_INIT_ONES;
	rt_init_param(&pa, 42, a);
	pa.init = RT_INIT_ZEROS;
	rt_init_param(&pa, 42, b);
	ok(a[0] == 1.0f && a[NI - 1] == 1.0f && b[0] == 0.0f && b[NI - 1] == 0.0f,
	   "LayerNorm init: weight ones, bias zeros");
}

int main(void)
{
	test_linear();
	test_activations();
	test_layernorm();
	test_softmax();
	test_losses();
	test_dropout();
	test_optim();
	test_round();
	test_init();
	return done_testing();
}
