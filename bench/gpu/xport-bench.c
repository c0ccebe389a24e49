/* xport-bench.c — the GPU runtime's transport between two ranks: a
 * hand-written two-rank program (as pipec would emit one: static
 * rt_program data and a step) whose step ping-pongs messages of growing
 * size through rt_isend / rt_irecv / rt_wait, and a plain in-process
 * cudaMemcpy device to device of the same sizes for comparison.
 *
 * Build one binary per rank (-DPRANK=0 or 1) against libpipert_cuda.a and
 * run them with mpirun, two ranks (sharing a GPU: CUDA IPC; with
 * PIPEC_TRANSPORT=host: staged through host memory).  Rank 0 prints CSV
 * lines: transport,bytes,one_way_us,GB_per_s,memcpy_us,memcpy_GB_per_s.
 * One-way time = round trip / 2, after the device has done the copies.
 */
#include <stdio.h>
#include <stdlib.h>

#include "rt_cuda.h"

#ifndef PRANK
#error "define PRANK (0 or 1)"
#endif

#define MAXB ((size_t)64 << 20)
static const size_t sizes[] = { 8, 1024, 16384, 65536, 262144, 1 << 20, 4 << 20, 16 << 20,
                                64 << 20 };
#define NSIZES (sizeof sizes / sizeof sizes[0])

static int reps_for(size_t b)
{
	return b <= 65536 ? 200 : b <= (4 << 20) ? 50 : 10;
}

static double memcpy_time(size_t b, int reps)
{
	void *s = NULL, *d = NULL;
	cudaEvent_t e0, e1;
	float ms = 0;
	RT_CU(cudaMalloc(&s, b));
	RT_CU(cudaMalloc(&d, b));
	RT_CU(cudaEventCreate(&e0));
	RT_CU(cudaEventCreate(&e1));
	RT_CU(cudaMemcpyAsync(d, s, b, cudaMemcpyDeviceToDevice, rt_cu.stream));
	RT_CU(cudaEventRecord(e0, rt_cu.stream));
	for (int r = 0; r < reps; r++)
		RT_CU(cudaMemcpyAsync(d, s, b, cudaMemcpyDeviceToDevice, rt_cu.stream));
	RT_CU(cudaEventRecord(e1, rt_cu.stream));
	RT_CU(cudaEventSynchronize(e1));
	RT_CU(cudaEventElapsedTime(&ms, e0, e1));
	cudaEventDestroy(e0);
	cudaEventDestroy(e1);
	cudaFree(s);
	cudaFree(d);
	return ms * 1e-3 / reps;
}

static void step(rt_ctx *c, int t)
{
	char *A = rt_arena(c);
	if (t == 0 && !rt_cu.dry)
		return;     /* the warm-up step opens connections */
	for (size_t k = 0; k < NSIZES; k++) {
		size_t b = sizes[k];
		int reps = rt_cu.dry ? 1 : reps_for(b);
		double t0 = 0.0;
		/* warm-up exchange, then the timed ones */
		for (int r = -1; r < reps; r++) {
			if (r == 0) {
				rt_cu_sync();
				t0 = rt_now();
			}
#if PRANK == 0
			rt_isend(c, 0, A, b, 1, RT_TAG(1, 0, 0), "ping");
			rt_irecv(c, 1, A + MAXB, b, 1, RT_TAG(0, 0, 1), "pong");
			rt_wait(c, 0);
			rt_wait(c, 1);
#else
			rt_irecv(c, 1, A + MAXB, b, 0, RT_TAG(1, 0, 0), "ping");
			rt_wait(c, 1);
			rt_isend(c, 0, A + MAXB, b, 0, RT_TAG(0, 0, 1), "pong");
			rt_wait(c, 0);
#endif
			if (rt_cu.dry)
				break;
		}
		if (rt_cu.dry)
			continue;
		rt_cu_sync();
		(void)t0;
#if PRANK == 0
		{
			const char *tr = getenv("PIPEC_TRANSPORT");
			double dt = (rt_now() - t0) / reps / 2, mt = memcpy_time(b, reps);
			printf("%s,%zu,%.3f,%.3f,%.3f,%.3f\n", tr && *tr ? tr : "auto", b, dt * 1e6,
			       b / dt / 1e9, mt * 1e6, b / mt / 1e9);
			fflush(stdout);
		}
#endif
	}
}

static const rt_param params[] = { { 0 } };

static const rt_program program = {
	.model = "xport-bench", .source = "bench/gpu/xport-bench.c", .schedule = "ping-pong",
	.rank = PRANK, .nranks = 2, .P = 2, .R = 1, .V = 1, .replica = 0,
	.batch = 1, .M = 1, .mb_rows = 1,
	.first_stage = PRANK == 0, .last_stage = PRANK == 1,
	.in_width = 1, .out_width = 1,
	.loss = RT_LOSS_NONE, .target_dtype = RT_DT_F32, .target_width = 0,
	.optim = RT_OPTIM_NONE, .steps = 2, .seed = 1,
	.params = params, .nparams = 0, .nweights = 0,
	.arena_bytes = 2 * MAXB, .nslots = 2,
	.step = step,
};

int main(int argc, char **argv)
{
	return rt_main(&program, argc, argv);
}
