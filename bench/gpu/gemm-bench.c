/* gemm-bench.c — the GPU runtime's linear layers against cuBLAS alone on
 * the same shapes.
 *
 *   gemm-bench [--tf32] ROWS,IN,OUT...
 *
 * For each shape (a linear layer of a stage: ROWS rows per micro-batch,
 * weight [OUT, IN]) it times, with CUDA events on the runtime's stream
 * after warm-up, the three calls a training step makes — rt_linear_fwd
 * (with bias), rt_linear_bwd_data, rt_linear_bwd_weight (with bias
 * gradient) — and the bare cublasGemmEx of each, written here column-major
 * from scratch (not through the runtime's row-major mapping).  Prints CSV:
 *   rows,in,out,op,runtime_us,cublas_us,runtime_tflops,cublas_tflops
 * and, to stderr, the largest difference between the two results (the
 * runtime's row-major mapping checked against an independent derivation).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_cuda.h"

static float *dalloc(int64_t n)
{
	float *d = NULL;
	float *h = malloc((size_t)n * sizeof *h);
	uint64_t s = 0x9e3779b97f4a7c15ull ^ (uint64_t)n;
	for (int64_t i = 0; i < n; i++) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		h[i] = (float)((s >> 40) * 0x1p-24) - 0.5f;
	}
	RT_CU(cudaMalloc((void **)&d, (size_t)n * sizeof *d));
	RT_CU(cudaMemcpy(d, h, (size_t)n * sizeof *d, cudaMemcpyHostToDevice));
	free(h);
	return d;
}

typedef struct {
	int64_t rows, in, out;
	float *x, *w, *b, *y, *dy, *dx, *dw, *db, *y2;
} shape;

enum { FWD, BWD_DATA, BWD_WEIGHT };
static const char *op_names[] = { "fwd", "bwd_data", "bwd_weight" };

static void run_runtime(shape *s, int op)
{
	if (op == FWD)
		rt_linear_fwd(s->x, s->w, s->b, s->y, s->rows, s->in, s->out);
	else if (op == BWD_DATA)
		rt_linear_bwd_data(s->dy, s->w, s->dx, s->rows, s->in, s->out);
	else
		rt_linear_bwd_weight(s->x, s->dy, s->dw, s->db, s->rows, s->in, s->out);
}

/* Column-major: a row-major [r, c] matrix is a column-major [c, r] one. */
static void run_cublas(shape *s, int op, float *y_out)
{
	const float one = 1.0f, zero = 0.0f;
	cublasComputeType_t ct = rt_cu.tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
	int r = (int)s->rows, in = (int)s->in, out = (int)s->out;
	if (op == FWD)          /* yᵀ[out, rows] = (Wᵀ)ᵀ · xᵀ */
		RT_CUBLAS(cublasGemmEx(rt_cu.blas, CUBLAS_OP_T, CUBLAS_OP_N, out, r, in, &one, s->w,
		                       CUDA_R_32F, in, s->x, CUDA_R_32F, in, &zero, y_out, CUDA_R_32F,
		                       out, ct, CUBLAS_GEMM_DEFAULT));
	else if (op == BWD_DATA) /* dxᵀ[in, rows] = Wᵀ · dyᵀ */
		RT_CUBLAS(cublasGemmEx(rt_cu.blas, CUBLAS_OP_N, CUBLAS_OP_N, in, r, out, &one, s->w,
		                       CUDA_R_32F, in, s->dy, CUDA_R_32F, out, &zero, s->dx,
		                       CUDA_R_32F, in, ct, CUBLAS_GEMM_DEFAULT));
	else                    /* dWᵀ[in, out] += xᵀ · dy */
		RT_CUBLAS(cublasGemmEx(rt_cu.blas, CUBLAS_OP_N, CUBLAS_OP_T, in, out, r, &one, s->x,
		                       CUDA_R_32F, in, s->dy, CUDA_R_32F, out, &one, s->dw,
		                       CUDA_R_32F, in, ct, CUBLAS_GEMM_DEFAULT));
}

static double time_it(shape *s, int op, int cublas, int reps)
{
	cudaEvent_t e0, e1;
	float ms = 0;
	RT_CU(cudaEventCreate(&e0));
	RT_CU(cudaEventCreate(&e1));
	for (int i = 0; i < 3; i++)
		cublas ? run_cublas(s, op, s->y2) : run_runtime(s, op);
	RT_CU(cudaEventRecord(e0, rt_cu.stream));
	for (int i = 0; i < reps; i++)
		cublas ? run_cublas(s, op, s->y2) : run_runtime(s, op);
	RT_CU(cudaEventRecord(e1, rt_cu.stream));
	RT_CU(cudaEventSynchronize(e1));
	RT_CU(cudaEventElapsedTime(&ms, e0, e1));
	cudaEventDestroy(e0);
	cudaEventDestroy(e1);
	return ms * 1e-3 / reps;
}

static double maxdiff(const float *a, const float *b, int64_t n)
{
	float *ha = malloc((size_t)n * 4), *hb = malloc((size_t)n * 4);
	double m = 0, s = 0;
	RT_CU(cudaDeviceSynchronize());
	RT_CU(cudaMemcpy(ha, a, (size_t)n * 4, cudaMemcpyDeviceToHost));
	RT_CU(cudaMemcpy(hb, b, (size_t)n * 4, cudaMemcpyDeviceToHost));
	for (int64_t i = 0; i < n; i++) {
		m = fmax(m, fabs((double)ha[i] - hb[i]));
		s = fmax(s, fabs((double)hb[i]));
	}
	free(ha);
	free(hb);
	return m / (s > 0 ? s : 1);
}

int main(int argc, char **argv)
{
	char err[256];
	if (rt_cu_open(0, err, sizeof err) != 0) {
		fprintf(stderr, "gemm-bench: %s\n", err);
		return 3;
	}
	printf("rows,in,out,op,runtime_us,cublas_us,runtime_tflops,cublas_tflops\n");
	for (int a = 1; a < argc; a++) {
		shape s;
		long long r, i, o;
		if (!strcmp(argv[a], "--tf32")) {
			rt_cu.tf32 = 1;
			continue;
		}
		if (sscanf(argv[a], "%lld,%lld,%lld", &r, &i, &o) != 3) {
			fprintf(stderr, "gemm-bench: '%s' is not ROWS,IN,OUT\n", argv[a]);
			return 2;
		}
		memset(&s, 0, sizeof s);
		s.rows = r;
		s.in = i;
		s.out = o;
		s.x = dalloc(r * i);
		s.w = dalloc(o * i);
		s.b = dalloc(o);
		s.y = dalloc(r * o);
		s.y2 = dalloc(r * o);
		s.dy = dalloc(r * o);
		s.dx = dalloc(r * i);
		s.dw = dalloc(o * i);
		s.db = dalloc(o);
		/* the mapping: runtime (bias 0) against the independent call */
		RT_CU(cudaMemset(s.b, 0, (size_t)o * 4));
		RT_CU(cudaDeviceSynchronize());
		run_runtime(&s, FWD);
		run_cublas(&s, FWD, s.y2);
		fprintf(stderr, "%lldx%lldx%lld: runtime vs cuBLAS forward, max relative difference "
		        "%.3g\n", r, i, o, maxdiff(s.y, s.y2, r * o));
		for (int op = FWD; op <= BWD_WEIGHT; op++) {
			double flop = 2.0 * (double)r * (double)i * (double)o;
			int reps = flop > 1e10 ? 10 : flop > 1e8 ? 50 : 200;
			double tr = time_it(&s, op, 0, reps), tc = time_it(&s, op, 1, reps);
			printf("%lld,%lld,%lld,%s,%.3f,%.3f,%.2f,%.2f\n", r, i, o, op_names[op], tr * 1e6,
			       tc * 1e6, flop / tr / 1e12, flop / tc / 1e12);
			fflush(stdout);
		}
		cudaFree(s.x); cudaFree(s.w); cudaFree(s.b); cudaFree(s.y); cudaFree(s.y2);
		cudaFree(s.dy); cudaFree(s.dx); cudaFree(s.dw); cudaFree(s.db);
	}
	rt_cu_close();
	return 0;
}
