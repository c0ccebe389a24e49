/* rt_launch.cuh — how the CUDA kernels of rt_kernels.cu, rt_tf.cu and
 * rt_llama.cu are launched: TPB threads a block, a grid-stride loop over
 * at most 8192 blocks, or one block per row. */
#ifndef PIPERT_RT_LAUNCH_CUH
#define PIPERT_RT_LAUNCH_CUH

#include <stdint.h>

#include "rt_cuda.h"

#define TPB 256

static inline unsigned grid_for(int64_t n)
{
	int64_t b = (n + TPB - 1) / TPB;
	return (unsigned)(b > 8192 ? 8192 : b < 1 ? 1 : b);
}

/* One block per row: the row count must fit a grid. */
static inline unsigned row_grid(int64_t rows, const char *what)
{
	if (rows > 2147483647)
		rt_cu_fail("%s: %lld rows is too many for one launch", what, (long long)rows);
	return (unsigned)rows;
}

#define GRID_STRIDE(i, n)                                                                 \
	for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n);             \
	     i += (int64_t)gridDim.x * blockDim.x)

#endif /* PIPERT_RT_LAUNCH_CUH */
