/* rt_scatter.cuh — an embedding table's gradient, summed row by row on the
 * device: table[key(r)] += src[r] over the rows r that have a key, in row
 * order (the CPU's order: deterministic, no atomics).  rt_tf.cu's BERT and
 * GPT-2 embeddings key a row by its token, position or type id; rt_llama.cu's
 * by its token id alone.
 *
 * One block per row r: unless an earlier row has its key, the block owns
 * the key and adds the rows r' >= r that share it, in order, a block-wide
 * chunk of candidates at a time (a thread owns its columns throughout, so
 * its read-add-writes follow one another).  Quadratic in the rows' count in
 * key comparisons (B·T, a micro-batch's tokens), linear in the additions.
 * Key: a device functor, key(r) the row's key or -1 for a row that has none. */
#ifndef RT_SCATTER_CUH
#define RT_SCATTER_CUH

#include <stdint.h>

#include "rt_launch.cuh"

template <class Key>
__device__ static void emb_scatter_row(Key key_of, const float *__restrict__ src,
                                       float *__restrict__ table, int64_t n, int64_t d)
{
	__shared__ int64_t list[TPB];
	__shared__ int wcount[TPB / 32];
	int64_t bt = blockIdx.x, key = key_of(bt);
	int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
	float *row;
	if (key < 0)
		return;                 /* the whole block: bt is the block's */
	for (int64_t c0 = 0; c0 < bt; c0 += blockDim.x) {
		int64_t o = c0 + threadIdx.x;
		if (__syncthreads_or(o < bt && key_of(o) == key))
			return;             /* an earlier row owns the key */
	}
	row = table + key * d;
	for (int64_t c0 = bt; c0 < n; c0 += blockDim.x) {
		int64_t o = c0 + threadIdx.x;
		int hit = o < n && key_of(o) == key;
		unsigned bal = __ballot_sync(0xffffffffu, hit);
		int before = 0, total = 0;
		if (lane == 0)
			wcount[wid] = __popc(bal);
		__syncthreads();
		for (int k = 0; k < nw; k++) {
			before += k < wid ? wcount[k] : 0;
			total += wcount[k];
		}
		if (hit)
			list[before + __popc(bal & ((1u << lane) - 1u))] = o;
		__syncthreads();
		for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
			float acc = row[j];
			for (int k = 0; k < total; k++)
				acc += src[list[k] * d + j];
			row[j] = acc;
		}
		__syncthreads();        /* list and wcount are refilled */
	}
}

#endif
