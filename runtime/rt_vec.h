/* rt_vec.h — the CPU kernels' row reductions and exponential, written so
 * that gcc vectorises them at the runtime's flags (runtime/local.mk: -O2
 * with the dynamic cost model, no -ffast-math, baseline x86-64).
 *
 * gcc does not reorder a floating-point reduction it was not told it may
 * reorder, so a plain `s += x[j]` or `m = x[j] > m ? x[j] : m` loop stays
 * scalar.  These keep RT_VEC_LANES independent partial results instead
 * (an inner loop of fixed length, which the SLP vectoriser turns into
 * vector operations) and combine them at the end: the same sums in another
 * order.  Sums of floats are kept in double, as the kernels' comment in
 * rt_kernels.c explains; a maximum is exact in any order.
 *
 * rt_exp_vec is a polynomial exponential in plain arithmetic, so a loop
 * calling it vectorises inline (no call per four elements into libmvec,
 * whose expf also drops to glibc's scalar code for every lane below about
 * -88, as every masked attention score is).  At most 2 ulp from exp in
 * this file's tests (t/runtime-kernels.c), against glibc's 1.
 */
#ifndef PIPERT_VEC_H
#define PIPERT_VEC_H

#include <math.h>
#include <stdint.h>

#define RT_VEC_LANES 8

/* The runtime is built for baseline x86-64 (4-wide SSE2, no fused
 * multiply-add), which every x86-64 machine runs.  The kernels marked
 * RT_VEC_CLONES are compiled a second time for x86-64-v3 (AVX2 and FMA:
 * 8-wide, and fused multiply-adds, so the last bit of a result may differ
 * from the baseline's), and the dynamic loader picks the copy the machine
 * runs (an ifunc; gcc's target_clones).  Elsewhere the attribute is empty. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && !defined(__CUDACC__)
#define RT_VEC_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define RT_VEC_CLONES
#endif

/* The largest element of x[0 .. n) (-inf when n = 0; NaNs are skipped
 * unless every element is one, as in the scalar loop it replaces). */
static inline float rt_vec_max(const float *restrict x, int64_t n)
{
	float m[RT_VEC_LANES], r = -INFINITY;
	int64_t j = 0;
	for (int k = 0; k < RT_VEC_LANES; k++)
		m[k] = -INFINITY;
	for (; j + RT_VEC_LANES <= n; j += RT_VEC_LANES)
		for (int k = 0; k < RT_VEC_LANES; k++)
			m[k] = x[j + k] > m[k] ? x[j + k] : m[k];
	for (; j < n; j++)
		r = x[j] > r ? x[j] : r;
	for (int k = 0; k < RT_VEC_LANES; k++)
		r = m[k] > r ? m[k] : r;
	return r;
}

/* Σ x[j] in double. */
static inline double rt_vec_sum(const float *restrict x, int64_t n)
{
	double s[RT_VEC_LANES] = {0}, r = 0.0;
	int64_t j = 0;
	for (; j + RT_VEC_LANES <= n; j += RT_VEC_LANES)
		for (int k = 0; k < RT_VEC_LANES; k++)
			s[k] += (double)x[j + k];
	for (; j < n; j++)
		r += (double)x[j];
	for (int k = 0; k < RT_VEC_LANES; k++)
		r += s[k];
	return r;
}

/* Σ x[j]·y[j] in double (each product exact in double). */
static inline double rt_vec_dot(const float *restrict x, const float *restrict y, int64_t n)
{
	double s[RT_VEC_LANES] = {0}, r = 0.0;
	int64_t j = 0;
	for (; j + RT_VEC_LANES <= n; j += RT_VEC_LANES)
		for (int k = 0; k < RT_VEC_LANES; k++)
			s[k] += (double)x[j + k] * (double)y[j + k];
	for (; j < n; j++)
		r += (double)x[j] * (double)y[j];
	for (int k = 0; k < RT_VEC_LANES; k++)
		r += s[k];
	return r;
}

/* Σ (x[j] - c)² in double: layernorm's centred sum of squares. */
static inline double rt_vec_sqdev(const float *restrict x, double c, int64_t n)
{
	double s[RT_VEC_LANES] = {0}, r = 0.0;
	int64_t j = 0;
	for (; j + RT_VEC_LANES <= n; j += RT_VEC_LANES)
		for (int k = 0; k < RT_VEC_LANES; k++) {
			double e = (double)x[j + k] - c;
			s[k] += e * e;
		}
	for (; j < n; j++) {
		double e = (double)x[j] - c;
		r += e * e;
	}
	for (int k = 0; k < RT_VEC_LANES; k++)
		r += s[k];
	return r;
}

/* e^x in float.  x = n·ln2 + r with |r| <= ln2/2 (n rounded by the 1.5·2^23
 * trick, which needs no rounding instruction that baseline x86-64 lacks;
 * ln2 in two parts so that r is exact), e^r by Cephes' expf polynomial
 * (degree 7 in all, 1 + r + r²·p(r)), times 2^n built in two halves so
 * that n from -150 to 256 scales right: results below 2^-126 come out
 * subnormal or 0, above FLT_MAX infinite.  -inf gives 0 and NaN gives NaN
 * (the clamps let NaN through: a comparison with it is false). */
static inline float rt_exp_vec(float x)
{
	union { float f; uint32_t u; } t, a, b;
	float n, r, p;
	int32_t ni, n1;
	x = x < -104.0f ? -104.0f : x;
	x = x > 89.0f ? 89.0f : x;
	t.f = x * 1.44269504088896341f + 12582912.0f;
	n = t.f - 12582912.0f;
	ni = (int32_t)(t.u - 0x4b400000u);     /* n as an integer: t's low bits */
	r = x - n * 0.693359375f;
	r = r - n * -2.12194440e-4f;
	p = 1.9875691500e-4f;
	p = p * r + 1.3981999507e-3f;
	p = p * r + 8.3334519073e-3f;
	p = p * r + 4.1665795894e-2f;
	p = p * r + 1.6666665459e-1f;
	p = p * r + 5.0000001201e-1f;
	p = p * r * r + r + 1.0f;
	n1 = ni / 2;
	a.u = (uint32_t)(n1 + 127) << 23;
	b.u = (uint32_t)(ni - n1 + 127) << 23;
	return p * a.f * b.f;
}

#endif /* PIPERT_VEC_H */
