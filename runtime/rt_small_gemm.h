/* rt_small_gemm.h — the matrix products of one-sequence decoding.
 *
 * A decode step of one sequence multiplies one row by every weight matrix
 * of the model: a stream over the weights, whose speed is the memory's.
 * OpenBLAS's sgemm packs its operands as for a large product and, with
 * M = 1, moves 4-6 GB/s on the 2-core machines here; its sgemv streams at
 * 10-20 GB/s (bench/results/generate_blas.csv: c_attn 4.3 against 15.6 GB/s,
 * the 50257 x 768 head 5.8 against 13.2).  So a one-row product is an
 * sgemv.  (Two to eight rows — batched decoding — stay with sgemm: plain C
 * loops that read the weights once measured no faster than it here.)
 * Returns 0 when it computed C, -1 when the product is not one row (the
 * caller then calls sgemm).  Row-major: C[1, n] = A[1, k]·op(B) + beta·C. */
#ifndef PIPERT_SMALL_GEMM_H
#define PIPERT_SMALL_GEMM_H

#include <cblas.h>
#include <stdint.h>

static inline int rt_small_gemm(int trans_b, int64_t m, int64_t n, int64_t k, const float *a,
                                const float *b, int64_t ldb, float beta, float *c)
{
	if (m != 1 || n < 1 || k < 1)
		return -1;
	/* op(B) = B [k, n]: c = Bᵀ·a, sgemv's transposed case; op(B) = Bᵀ with
	 * B [n, k] (a linear layer's [out, in] weight): c = B·a */
	cblas_sgemv(CblasRowMajor, trans_b ? CblasNoTrans : CblasTrans, (int)(trans_b ? n : k),
	            (int)(trans_b ? k : n), 1.0f, b, (int)ldb, a, 1, beta, c, 1);
	return 0;
}

#endif
