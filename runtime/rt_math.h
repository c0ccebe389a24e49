/* rt_math.h — scalar math shared by host and device code.
 *
 * Plain C99 that nvcc also compiles for the device (RT_HD): the CUDA
 * kernels use these, and they are written to give the same bits as the CPU
 * runtime's (rt_init.c, rt_kernels.c): the dropout mask of an element is a
 * pure function of (seed, key, step, global row, column), so a GPU run
 * drops exactly the elements a CPU run drops.  t/runtime-cuda-kernels.c
 * checks the masks for equality against the CPU kernels.  The transformer
 * layers' element-wise math (tanh gelu, the attention masks) is here too,
 * called by rt_tf.c and cuda/rt_tf.cu alike.
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

/* splitmix64's finaliser: rt_mix64 of rt_init.c. */
RT_HD uint64_t rt_mix64_hd(uint64_t x)
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
	uint64_t h = rt_mix64_hd(seed ^ 0x6a09e667f3bcc909ull);
	h = rt_mix64_hd(h ^ key * 0x9e3779b97f4a7c15ull);
	h = rt_mix64_hd(h ^ (uint64_t)step * 0xc2b2ae3d27d4eb4full);
	return rt_mix64_hd(h ^ (uint64_t)row * 0x165667b19e3779f9ull);
}

/* Keep element `col` of a row iff its 53 uniform bits reach the threshold
 * ceil(p · 2^53) (rt_kernels.c keep / threshold). */
RT_HD int rt_dropout_keep(uint64_t base, int64_t col, uint64_t thresh)
{
	return (rt_mix64_hd(base + (uint64_t)col * 0x9e3779b97f4a7c15ull) >> 11) >= thresh;
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

#endif /* PIPERT_MATH_H */
