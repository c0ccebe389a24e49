/* rt_reduce.cuh — the block reductions of the CUDA kernels, one copy for
 * rt_kernels.cu and rt_tf.cu, so that a row reduced in either file (a
 * layernorm, the fused embedding layernorm, a cross-entropy row) adds in
 * the same order and gives the same bits.  blockDim.x a multiple of 32, at
 * most 1024; sh holds 32 values in shared memory. */
#ifndef PIPERT_RT_REDUCE_CUH
#define PIPERT_RT_REDUCE_CUH

#include <math.h>

__device__ static inline double block_sum(double v, double *sh)
{
	int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
	for (int o = 16; o; o >>= 1)
		v += __shfl_down_sync(0xffffffffu, v, o);
	__syncthreads();            /* sh may still be read from a previous call */
	if (lane == 0)
		sh[wid] = v;
	__syncthreads();
	if (wid == 0) {
		v = lane < nw ? sh[lane] : 0.0;
		for (int o = 16; o; o >>= 1)
			v += __shfl_down_sync(0xffffffffu, v, o);
		if (lane == 0)
			sh[0] = v;
	}
	__syncthreads();
	return sh[0];
}

__device__ static inline float block_max(float v, float *sh)
{
	int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
	for (int o = 16; o; o >>= 1) {
		float u = __shfl_down_sync(0xffffffffu, v, o);
		v = u > v ? u : v;
	}
	__syncthreads();
	if (lane == 0)
		sh[wid] = v;
	__syncthreads();
	if (wid == 0) {
		v = lane < nw ? sh[lane] : -INFINITY;
		for (int o = 16; o; o >>= 1) {
			float u = __shfl_down_sync(0xffffffffu, v, o);
			v = u > v ? u : v;
		}
		if (lane == 0)
			sh[0] = v;
	}
	__syncthreads();
	return sh[0];
}

#endif /* PIPERT_RT_REDUCE_CUH */
