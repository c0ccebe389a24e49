/* rt_math.h — scalar math shared by host and device code.
 *
 * Plain C99 that nvcc also compiles for the device (RT_HD): the CUDA
 * kernels use these, and they are written to give the same bits as the CPU
 * runtime's (rt_init.c, rt_kernels.c): the dropout mask of an element is a
 * pure function of (seed, key, step, global row, column), so a GPU run
 * drops exactly the elements a CPU run drops.  t/runtime-cuda-kernels.c
 * checks the masks for equality against the CPU kernels.  The transformer
 * layers' element-wise math (tanh gelu, the attention masks) is here too,
 * called by rt_tf_cpu.c and cuda/rt_tf.cu alike.
 */
#ifndef PIPERT_MATH_H
#define PIPERT_MATH_H

#include <float.h>
#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define RT_HD __host__ __device__ __forceinline__
#else
#define RT_HD static inline
#endif

/* The element-wise loops of the CPU kernels (gelu, tanh gelu, softmax's
 * exponentials) call expf, tanhf and erff once per element.  glibc (2.35
 * on) has vector versions of them in libmvec, which libm.so pulls in, but
 * <math.h> declares them only under -ffast-math: without them each call is
 * scalar, and those calls were a third of a GPT-2 training step and a fifth
 * of a MiniLM forward here (bench/transformers-notes.md).  Declared here as
 * glibc's own header would, so gcc vectorises those loops; the functions
 * are the same functions (at most 4 ulp from correctly rounded, as glibc
 * documents), nothing else of -ffast-math applies. */
#if !defined(__CUDACC__) && defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) \
    && defined(__GLIBC__) && !defined(__FAST_MATH__)
#if __GLIBC_PREREQ(2, 35)
float expf(float) __attribute__((__simd__("notinbranch")));
float tanhf(float) __attribute__((__simd__("notinbranch")));
float erff(float) __attribute__((__simd__("notinbranch")));
#endif
#endif

/* splitmix64's finaliser (Steele, Lea, Flood 2014): a bijection on 64 bits
 * with full avalanche, the building block of every counter-based stream
 * (rt_init.c's generator, dropout's masks); the one definition, for host
 * and device. */
RT_HD uint64_t rt_mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

/* Dropout: the per-row base of the keep decision (rt_kernels.c row_base). */
RT_HD uint64_t rt_dropout_row_base(uint64_t seed, uint64_t key, int64_t step, int64_t row)
{
	uint64_t h = rt_mix64(seed ^ 0x6a09e667f3bcc909ull);
	h = rt_mix64(h ^ key * 0x9e3779b97f4a7c15ull);
	h = rt_mix64(h ^ (uint64_t)step * 0xc2b2ae3d27d4eb4full);
	return rt_mix64(h ^ (uint64_t)row * 0x165667b19e3779f9ull);
}

/* Keep element `col` of a row iff its 53 uniform bits reach the threshold
 * ceil(p · 2^53) (rt_kernels.c keep / threshold). */
RT_HD int rt_dropout_keep(uint64_t base, int64_t col, uint64_t thresh)
{
	return (rt_mix64(base + (uint64_t)col * 0x9e3779b97f4a7c15ull) >> 11) >= thresh;
}

/* gelu's tanh form (rt_tf.c, rt_tf.cu): nn.GELU(approximate='tanh'),
 * ½x(1 + tanh u) with u = k(x + 0.044715x³), k = sqrt(2/π). */
RT_HD float rt_gelu_tanh_hd(float x)
{
	const float k = 0.7978845608028654f;
	float u = k * (x + 0.044715f * x * x * x);
	return 0.5f * x * (1.0f + tanhf(u));
}

/* Its input gradient: dy · (½(1 + t) + ½x(1 - t²)·k(1 + 3·0.044715x²)). */
RT_HD float rt_gelu_tanh_grad_hd(float x, float dy)
{
	const float k = 0.7978845608028654f;
	float x2 = x * x;
	float t = tanhf(k * (x + 0.044715f * x2 * x));
	float du = k * (1.0f + 0.134145f * x2);
	return dy * (0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du);
}

/* SwiGLU (LlamaMLP's act_fn(gate)·up, act_fn = silu), with silu as
 * PyTorch computes it, x / (1 + exp(-x)): no branch, so the loops
 * vectorise (a select on the sign would keep gcc from it under the
 * default -ftrapping-math), and exp(-x) = inf for x below -88 gives -0,
 * as it does there. */
RT_HD float rt_swiglu_hd(float gate, float up)
{
	return gate / (1.0f + expf(-gate)) * up;
}

/* The gradients of silu(gate)·up, with σ = 1 / (1 + exp(-gate)):
 * d/dgate = da·up·σ(1 + gate(1 - σ)), d/dup = da·silu(gate). */
RT_HD float rt_swiglu_dgate_hd(float gate, float up, float da)
{
	float s = 1.0f / (1.0f + expf(-gate));
	return da * up * (s * (1.0f + gate * (1.0f - s)));
}

RT_HD float rt_swiglu_dup_hd(float gate, float da)
{
	return da * (gate / (1.0f + expf(-gate)));
}

/* An attention score after the masks, as transformers computes it: a
 * future key (causal) is replaced by the most negative float (torch.where),
 * then a padded key gets it added (the extended attention mask), so a
 * future padded key reaches -inf. */
RT_HD float rt_attn_mask_hd(float s, int future, int padded)
{
	if (future)
		s = -FLT_MAX;
	if (padded)
		s += -FLT_MAX;
	return s;
}

/* ---- 16-bit values (dtype = bf16 / f16). ----
 *
 * A 16-bit program stores every activation, activation gradient and
 * compute copy of a weight as a value of the 16-bit type, and computes in
 * f32 (docs/precision.md).  These give the 16-bit value nearest an f32 x,
 * ties to even (IEEE 754's default, and what __float2bfloat16_rn,
 * __float2half_rn and torch's .to(torch.bfloat16) do), as an f32: every
 * bf16 and f16 value is exactly an f32.  The product of two such values is
 * exact in f32 (8 + 8 and 11 + 11 significant bits fit in 24), so an f32
 * GEMM of rounded operands is the 16-bit GEMM with f32 accumulation that
 * tensor cores compute, up to the order of the sums. */
RT_HD uint32_t rt_f32_bits(float x)
{
#ifdef __CUDA_ARCH__
	return __float_as_uint(x);
#else
	union { float f; uint32_t u; } v;
	v.f = x;
	return v.u;
#endif
}

RT_HD float rt_f32_from_bits(uint32_t u)
{
#ifdef __CUDA_ARCH__
	return __uint_as_float(u);
#else
	union { float f; uint32_t u; } v;
	v.u = u;
	return v.f;
#endif
}

/* bfloat16: f32's exponent, 8 significant bits.  Dropping the low 16 bits
 * with a carry rounds to nearest even; a carry out of the largest finite
 * value gives infinity, as it should; NaNs stay NaNs. */
RT_HD float rt_round_bf16(float x)
{
	uint32_t u = rt_f32_bits(x);
	if ((u & 0x7fffffffu) > 0x7f800000u)
		return x;
	u += 0x7fffu + ((u >> 16) & 1u);
	return rt_f32_from_bits(u & 0xffff0000u);
}

/* IEEE binary16: 11 significant bits, exponents -14..15, subnormals down
 * to 2^-24.  From 2^-14 up, drop 13 bits as above; below it the spacing is
 * a fixed 2^-24, so scale by 2^24 (exact), round to an integer by adding
 * and subtracting 2^23 (exact round-to-nearest-even for |v| < 2^22 in the
 * default rounding mode) and scale back.  65520 and up overflows to
 * infinity (65504 is the largest value; 65520 is the tie above it). */
RT_HD float rt_round_f16(float x)
{
	uint32_t u = rt_f32_bits(x), a = u & 0x7fffffffu, sign = u & 0x80000000u;
	if (a >= 0x7f800000u)
		return x;                               /* infinities and NaNs */
	if (a >= 0x477ff000u)                       /* |x| >= 65520 */
		return rt_f32_from_bits(sign | 0x7f800000u);
	if (a >= 0x38800000u) {                     /* |x| >= 2^-14: normal */
		a += 0xfffu + ((a >> 13) & 1u);
		return rt_f32_from_bits(sign | (a & 0xffffe000u));
	}
	float v = rt_f32_from_bits(a) * 16777216.0f;        /* |x| / 2^-24 */
	v = (v + 8388608.0f) - 8388608.0f;         /* IEEE arithmetic: not folded away */
	return rt_f32_from_bits(sign | rt_f32_bits(v * 5.9604644775390625e-8f));
}

/* The 16 bits of a bf16 / f16 value held in an f32 (one that
 * rt_round_bf16 / rt_round_f16 returns; others are rounded first), and
 * back: how a 16-bit program's messages travel (rt_comm.c). */
RT_HD uint16_t rt_bf16_bits(float x)
{
	return (uint16_t)(rt_f32_bits(rt_round_bf16(x)) >> 16);
}

RT_HD float rt_bf16_value(uint16_t h)
{
	return rt_f32_from_bits((uint32_t)h << 16);
}

RT_HD uint16_t rt_f16_bits(float x)
{
	uint32_t u = rt_f32_bits(rt_round_f16(x)), a = u & 0x7fffffffu;
	uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
	if (a >= 0x7f800000u)                       /* infinity; NaN stays quiet NaN */
		return (uint16_t)(sign | 0x7c00u | (a > 0x7f800000u ? 0x200u : 0u));
	if (a >= 0x38800000u)                       /* normal: rebias 127 -> 15 */
		return (uint16_t)(sign | (((a >> 23) - 112u) << 10) | ((a >> 13) & 0x3ffu));
	/* subnormal or zero: an integer multiple of 2^-24, below 1024 of them */
	return (uint16_t)(sign | (uint16_t)(rt_f32_from_bits(a) * 16777216.0f));
}

RT_HD float rt_f16_value(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
	if (e == 0)                                 /* m · 2^-24, exact in f32 */
		return rt_f32_from_bits(sign | rt_f32_bits((float)m * 5.9604644775390625e-8f));
	if (e == 31)
		return rt_f32_from_bits(sign | 0x7f800000u | (m << 13));
	return rt_f32_from_bits(sign | ((e + 112u) << 23) | (m << 13));
}

#ifndef __CUDACC__
/* n floats into a key/value cache at value at, as rt_dev.h's kv stores
 * keep them: floats (RT_PREC_F32, 0) or the 16 bits of the dtype's. */
static inline void rt_kv_put(void *c, int64_t at, const float *x, int64_t n, int prec)
{
	uint16_t *h = (uint16_t *)c + at;
	if (prec == 0)
		for (int64_t i = 0; i < n; i++)
			((float *)c)[at + i] = x[i];
	else if (prec == 1)
		for (int64_t i = 0; i < n; i++)
			h[i] = rt_bf16_bits(x[i]);
	else
		for (int64_t i = 0; i < n; i++)
			h[i] = rt_f16_bits(x[i]);
}
#endif

#endif /* PIPERT_MATH_H */
