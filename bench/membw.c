/* bench/membw.c — the memory floor under a decode step, and what the BLAS
 * calls of one decode step cost on their own (bench/exp_generate.py).
 *
 *   membw [MiB [bw]]  one process, one thread (OPENBLAS_NUM_THREADS=1);
 *                     with `bw`, the bandwidth lines only, timed by the
 *                     process's CPU time rather than the wall clock (on a
 *                     machine other processes keep busy, the time it ran;
 *                     bench/exp_llama.py)
 *
 * Prints `key: value` lines:
 *   read_bw_Nstream  bytes/s of one thread summing a MiB-sized float array
 *                    (default 1024 MiB, far beyond the caches) as N
 *                    interleaved streams: the median of repeated passes
 *                    after a warm-up pass
 *   read_bw          the largest of those medians: the single-thread read
 *                    bandwidth a memory-bound kernel can hope for
 *   read_bw_streams  the N that gave it
 *   read_bw_best     the best single pass
 *   gemm_m1_S        seconds of cblas_sgemm with one row on shape S = IN x
 *                    OUT (W [IN, OUT] as GPT-2's Conv1D, or Wt for the tied
 *                    head's x · Wᵀ) — how the runtime computed a batch-1
 *                    decode step's products before runtime/rt_small_gemm.h
 *   gemv_S           the same product as cblas_sgemv (the runtime's call
 *                    for one row now)
 *   gemm_m8_S        cblas_sgemm with 8 rows, as written (batched decode;
 *                    the runtime calls sgemm on the transposed product,
 *                    runtime/rt_small_gemm.h)
 *   blas             OpenBLAS's configuration and the kernel it chose
 * Each product's weights are distinct copies that together exceed the
 * caches, so every call streams its matrix from memory as a decode step
 * does; figures are medians.
 */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_time.h"

char *openblas_get_config(void);
char *openblas_get_corename(void);


static float *fill(size_t n)
{
	float *p = aligned_alloc(64, ((n * sizeof *p + 63) / 64) * 64);
	if (!p) {
		fprintf(stderr, "membw: out of memory\n");
		exit(1);
	}
	for (size_t i = 0; i < n; i++)
		p[i] = (float)((i * 2654435761u) % 1000u) * 1e-3f - 0.5f;
	return p;
}

/* S streams (S = 1, 2, 4, 8) over S equal parts of x, sixteen accumulators
 * each: the loop is bound by loads, not by the adds' latency (the compiler
 * vectorises it at -O3), and more than one stream lets the hardware
 * prefetchers run ahead on several pages at once, as a GEMV's kernel does
 * over several rows of its matrix. */
static float sum(const float *restrict x, size_t n, int S)
{
	float acc[8][16] = { { 0 } };
	size_t part = n / (size_t)S / 16 * 16;
	for (size_t i = 0; i < part; i += 16)
		for (int s = 0; s < S; s++)
			for (int j = 0; j < 16; j++)
				acc[s][j] += x[(size_t)s * part + i + j];
	float t = 0;
	for (int s = 0; s < S; s++)
		for (int j = 0; j < 16; j++)
			t += acc[s][j];
	return t;
}

/* One product shape: `copies` weight matrices of IN x OUT floats, used in
 * turn, so that each call reads its matrix from memory. */
static void product(const char *name, int in, int out, int trans)
{
	size_t wn = (size_t)in * out;
	int copies = (int)(1 + (size_t)(768u << 20) / (wn * sizeof(float)));   /* > 768 MiB */
	if (copies > 64)
		copies = 64;
	float **w = malloc((size_t)copies * sizeof *w);
	for (int i = 0; i < copies; i++)
		w[i] = fill(wn);
	float *x = fill((size_t)8 * in), *y = fill((size_t)8 * out);
	enum { REPS = 24 };
	double t_m1[REPS], t_v[REPS], t_m8[REPS];
	for (int r = -2; r < REPS; r++) {
		double t0;
		const float *W = w[(r + 2) % copies];
		/* trans: W is [OUT, IN] and y = x · Wᵀ (the tied head, rt_linear_fwd) */
		t0 = now();
		cblas_sgemm(CblasRowMajor, CblasNoTrans, trans ? CblasTrans : CblasNoTrans, 1, out, in,
		            1.0f, x, in, W, trans ? in : out, 0.0f, y, out);
		if (r >= 0)
			t_m1[r] = now() - t0;
		W = w[(r + 2 + copies / 3) % copies];
		t0 = now();
		if (trans)
			cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.0f, W, in, x, 1, 0.0f, y, 1);
		else
			cblas_sgemv(CblasRowMajor, CblasTrans, in, out, 1.0f, W, out, x, 1, 0.0f, y, 1);
		if (r >= 0)
			t_v[r] = now() - t0;
		W = w[(r + 2 + 2 * copies / 3) % copies];
		t0 = now();
		cblas_sgemm(CblasRowMajor, CblasNoTrans, trans ? CblasTrans : CblasNoTrans, 8, out, in,
		            1.0f, x, in, W, trans ? in : out, 0.0f, y, out);
		if (r >= 0)
			t_m8[r] = now() - t0;
	}
	printf("gemm_m1_%s: %.6g\n", name, median(t_m1, REPS));
	printf("gemv_%s: %.6g\n", name, median(t_v, REPS));
	printf("gemm_m8_%s: %.6g\n", name, median(t_m8, REPS));
	printf("bytes_%s: %zu\n", name, wn * sizeof(float));
	for (int i = 0; i < copies; i++)
		free(w[i]);
	free(w);
	free(x);
	free(y);
}

static int cpu_clock;

static double bw_now(void)
{
	struct timespec ts;
	if (!cpu_clock)
		return now();
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? (size_t)atol(argv[1]) : 1024;
	cpu_clock = argc > 2 && strcmp(argv[2], "bw") == 0;
	size_t n = (mib << 20) / sizeof(float);
	float *a = fill(n);
	enum { PASSES = 7 };
	double best_med = 0, best = 0;
	int best_s = 1;
	volatile float sink = sum(a, n, 1);   /* warm-up: pages are touched */
	for (int S = 1; S <= 8; S *= 2) {
		double bw[PASSES];
		for (int i = 0; i < PASSES; i++) {
			size_t part = n / (size_t)S / 16 * 16;
			double t0 = bw_now();
			sink += sum(a, n, S);
			bw[i] = (double)(part * (size_t)S * sizeof(float)) / (bw_now() - t0);
			best = bw[i] > best ? bw[i] : best;
		}
		double m = median(bw, PASSES);
		printf("read_bw_%dstream: %.6g\n", S, m);
		if (m > best_med)
			best_med = m, best_s = S;
	}
	(void)sink;
	free(a);
	printf("read_bw: %.6g\n", best_med);
	printf("read_bw_streams: %d\n", best_s);
	printf("read_bw_best: %.6g\n", best);
	fflush(stdout);
	if (cpu_clock)
		return 0;
	/* GPT-2 small's decode products (d 768, vocabulary 50257) */
	product("768x2304", 768, 2304, 0);     /* c_attn */
	product("768x768", 768, 768, 0);       /* attn.c_proj */
	product("768x3072", 768, 3072, 0);     /* mlp.c_fc */
	product("3072x768", 3072, 768, 0);     /* mlp.c_proj */
	product("768x50257t", 768, 50257, 1);  /* lm_head, tied: x · wteᵀ */
	printf("blas: %s | %s\n", openblas_get_config(), openblas_get_corename());
	return 0;
}
