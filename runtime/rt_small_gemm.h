/* rt_small_gemm.h — the matrix products of one-sequence decoding.
 *
 * A decode step of one sequence multiplies one row by every weight matrix
 * of the model: a stream over the weights, whose speed is the memory's.
 * OpenBLAS's sgemm packs its operands as for a large product and, with
 * M = 1, moves 4-6 GB/s on the 2-core machines here; its sgemv streams at
 * 10-20 GB/s (bench/results/generate_blas.csv: c_attn 4.3 against 15.6 GB/s,
 * the 50257 x 768 head 5.8 against 13.2).  So a one-row product is an
 * sgemv.  Two to eight rows (batched decoding) are compute-bound at ~20
 * GFLOP/s on one of these cores; plain C loops that read the weights once
 * measured no faster than sgemm, but sgemm on the transposed product is
 * (below).  Returns 0 when it computed C, -1 when the product is not one of
 * these (the caller then calls sgemm).  Row-major: C[m, n] = A[m, k]·op(B)
 * + beta·C, beta 0 or 1. */
#ifndef PIPERT_SMALL_GEMM_H
#define PIPERT_SMALL_GEMM_H

#include <cblas.h>
#include <stdint.h>
#include <stdlib.h>

static inline int rt_small_gemm(int trans_b, int64_t m, int64_t n, int64_t k, const float *a,
                                int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                                int64_t ldc)
{
	if (m < 1 || n < 1 || k < 1)
		return -1;
	if (m > 1 && m <= 8 && n >= 256 && lda == k && ldc == n) {
		/* A few rows (batched decoding): the same product transposed,
		 * Cᵀ[n, m] = op(B)ᵀ·Aᵀ, puts the weight on sgemm's long side,
		 * which OpenBLAS streams ~10 % faster than as the short side's
		 * partner (5.5 against 5.0 GB/s for GPT-2 small's matrices at
		 * m = 8); then Cᵀ is transposed into C.  The scratch grows to the
		 * largest product and stays (one rank, one thread). */
		static float *ct;
		static int64_t cap;
		if (m * n > cap) {
			float *g = (float *)realloc(ct, (size_t)(m * n) * sizeof *g);
			if (!g)
				return -1;
			ct = g;
			cap = m * n;
		}
		cblas_sgemm(CblasRowMajor, trans_b ? CblasNoTrans : CblasTrans, CblasTrans,
		            (int)n, (int)m, (int)k, 1.0f, b, (int)ldb, a, (int)k, 0.0f, ct, (int)m);
		for (int64_t i = 0; i < m; i++)
			for (int64_t j = 0; j < n; j++)
				c[i * n + j] = (beta == 0.0f ? 0.0f : c[i * n + j]) + ct[j * m + i];
		return 0;
	}
	if (m != 1)
		return -1;
	/* op(B) = B [k, n]: c = Bᵀ·a, sgemv's transposed case; op(B) = Bᵀ with
	 * B [n, k] (a linear layer's [out, in] weight): c = B·a */
	cblas_sgemv(CblasRowMajor, trans_b ? CblasNoTrans : CblasTrans, (int)(trans_b ? n : k),
	            (int)(trans_b ? k : n), 1.0f, b, (int)ldb, a, 1, beta, c, 1);
	return 0;
}

#endif
