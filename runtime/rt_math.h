/* rt_math.h — scalar math shared by host and device code.
 *
 * Plain C99 that nvcc also compiles for the device (RT_HD): the CUDA
 * kernels use these, and they are written to give the same bits as the CPU
 * runtime's (rt_init.c, rt_kernels.c): the dropout mask of an element is a
 * pure function of (seed, key, step, global row, column), so a GPU run
 * drops exactly the elements a CPU run drops.  t/runtime-cuda-kernels.c
 * checks the masks for equality against the CPU kernels.
 */
#ifndef PIPERT_MATH_H
#define PIPERT_MATH_H

#include <stdint.h>

#ifdef __CUDACC__
#define RT_HD __host__ __device__ __forceinline__
#else
#define RT_HD static inline
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

#endif /* PIPERT_MATH_H */
