/* bench/calibrate.c — this machine's constants for `pipec schedule --cost model`.
 *
 * Run as two MPI ranks on one node (bench/run-all.sh does:
 *   mpirun -np 2 --bind-to none calibrate [LAYER]... ), one BLAS thread each,
 * both working at once, as two pipeline ranks do.  Prints `key: value` lines:
 *
 *   gemm_flops          FLOP/s of one rank, from the runtime's own linear
 *                       kernels (forward, backward-weight, backward-data) on
 *                       the layers given ([RANK:]ROWSxINxOUT: the rank whose
 *                       stage holds the layer, else both), run in sequence
 *                       as a stage runs them: total FLOPs / total time of
 *                       both ranks; without layers, one 1024 x 1024 layer
 *                       at 64 rows
 *   gemm_flops_rankR    the same, rank R's layers alone
 *   gemm_flops_fwd      the forward kernels' rate alone (both ranks), and
 *   gemm_flops_bwd      the backward kernels' (weight- and input-gradient):
 *                       their shapes differ (dy^T x sums over the rows)
 *   with --sweep, the same layers again at 1, 2, 4 ... 256 rows:
 *   gemm_rows_R         forward and backward rates at R rows ("fwd bwd")
 *   fit_flops_fwd       the cost model's rows-to-time line fitted to those
 *   fit_flops_bwd       points: a pass over a layer of in x out weights at r
 *   fit_weight_bandwidth  rows takes 2·r·in·out / fit_flops (the backward's
 *                       two passes 4·r·in·out / fit_flops_bwd) plus
 *                       4·in·out / fit_weight_bandwidth each (one read of the
 *                       weights a pass): `pipec --flops, --flops-backward,
 *                       --weight-bandwidth`; least squares on relative error
 *   fit_error_max       the fit's largest relative error over the points,
 *   fit_error_median    and its median
 *   latency             one-way seconds of an 8-byte message (ping-pong / 2)
 *   bandwidth           bytes/s of large messages: slope between 64 KiB and 4 MiB
 *   pingpong_BYTES      one-way seconds at each size
 *   mem_bandwidth       bytes/s of the runtime's SGD step (rt_optim_step) over
 *                       16 M parameters a rank, 16 bytes each (weight read and
 *                       written, gradient read and zeroed: the cost model's
 *                       count), both ranks at once: 256 MiB of state, 8 times
 *                       the L3 cache here (4 M measured the cache, 3 to 4
 *                       times DRAM's rate)
 *   blas                OpenBLAS's configuration and the kernel it chose
 *                       (`calibrate --blas` prints only this, as one process)
 *
 * The kernels are the runtime's (rt_linear_*), so the rate is the one the
 * emitted programs get; every figure is a median of repeated timings.
 */
#define _POSIX_C_SOURCE 200809L
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <time.h>

#include <pipert.h>
#include <rt_internal.h>

#include "bench_time.h"

char *openblas_get_config(void);
char *openblas_get_corename(void);


static float *fill(size_t n)
{
	float *p = malloc(n * sizeof *p);
	if (!p) {
		fprintf(stderr, "calibrate: out of memory\n");
		MPI_Abort(MPI_COMM_WORLD, 3);
	}
	for (size_t i = 0; i < n; i++)
		p[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
	return p;
}

typedef struct {
	long r, in, out;
	float *x, *w, *b, *y, *dx, *dw, *db;
} layer;

/* Seconds for one forward and backward pass over a sequence of linear layers
 * (forward in order, then backward-weight and backward-data in reverse, 6·r·i·o
 * FLOPs each), as a stage runs them, so that the caches hold what a stage's
 * working set lets them hold: median of repeats, both ranks timing at once. */
static double time_layers(layer *L, int n, double *flops, double *t_fwd)
{
	double t[9], tf[9];
	int reps, ns = 9;
	*flops = 0;
	for (int i = 0; i < n; i++) {
		layer *l = &L[i];
		l->x = fill((size_t)(l->r * l->in));
		l->w = fill((size_t)(l->out * l->in));
		l->b = fill((size_t)l->out);
		l->y = fill((size_t)(l->r * l->out));
		l->dx = fill((size_t)(l->r * l->in));
		l->dw = fill((size_t)(l->out * l->in));
		l->db = fill((size_t)l->out);
		*flops += 6.0 * l->r * l->in * l->out;
	}
	/* Enough passes per sample for about 10 ms of work at 50 GFLOP/s. */
	reps = *flops > 0 ? (int)(5e8 / *flops) + 1 : 1;
	for (int s = -2; s < ns; s++) {      /* two warm-up samples: caches, BLAS buffers */
		MPI_Barrier(MPI_COMM_WORLD);
		double t0 = now(), fwd = 0;
		for (int k = 0; k < reps; k++) {
			double f0 = now();
			for (int i = 0; i < n; i++)
				rt_linear_fwd(L[i].x, L[i].w, L[i].b, L[i].y, L[i].r, L[i].in, L[i].out);
			fwd += now() - f0;
			for (int i = n - 1; i >= 0; i--) {
				rt_linear_bwd_weight(L[i].x, L[i].y, L[i].dw, L[i].db, L[i].r, L[i].in, L[i].out);
				rt_linear_bwd_data(L[i].y, L[i].w, L[i].dx, L[i].r, L[i].in, L[i].out);
			}
		}
		if (s >= 0) {
			t[s] = (now() - t0) / reps;
			tf[s] = fwd / reps;
		}
	}
	for (int i = 0; i < n; i++) {
		free(L[i].x); free(L[i].w); free(L[i].b); free(L[i].y);
		free(L[i].dx); free(L[i].dw); free(L[i].db);
	}
	*t_fwd = n ? median(tf, ns) : 0.0;
	return n ? median(t, ns) : 0.0;
}

/* Solves the 3 x 3 system a x = y (Cramer); 0 when singular. */
static int solve3(double a[3][3], const double y[3], double x[3])
{
	double d = a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1])
	           - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
	           + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]);
	if (d == 0)
		return 0;
	for (int k = 0; k < 3; k++) {
		double m[3][3];
		memcpy(m, a, sizeof m);
		for (int i = 0; i < 3; i++)
			m[i][k] = y[i];
		x[k] = (m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
		        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
		        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])) / d;
	}
	return 1;
}

/* The layers at 1, 2, 4 ... 256 rows, and the cost model's line through
 * the points: forward t = r·Af + c, backward t = r·Ab + 2c (c: one read of
 * the weights, a pass), both ranks' times summed as the rates above are.
 * Least squares on the relative error (each equation divided by its t), so
 * that the one-row points count as much as the 256-row ones. */
static void rows_sweep(layer *L, int n, int rank)
{
	enum { NR = 9 };
	double tfw[NR], tbw[NR], rows[NR];
	double elems = 0, all_e[2];
	for (int i = 0; i < n; i++)
		elems += (double)L[i].in * (double)L[i].out;
	MPI_Gather(&elems, 1, MPI_DOUBLE, all_e, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
	for (int k = 0; k < NR; k++) {
		double fl, tf, mine[2], all[2][2];
		rows[k] = (double)(1 << k);
		for (int i = 0; i < n; i++)
			L[i].r = 1L << k;
		double t = time_layers(L, n, &fl, &tf);
		mine[0] = tf;
		mine[1] = t - tf;
		MPI_Gather(mine, 2, MPI_DOUBLE, all, 2, MPI_DOUBLE, 0, MPI_COMM_WORLD);
		tfw[k] = all[0][0] + all[1][0];
		tbw[k] = all[0][1] + all[1][1];
	}
	if (rank != 0)
		return;
	double E = all_e[0] + all_e[1];
	for (int k = 0; k < NR; k++)
		printf("gemm_rows_%d: %.6g %.6g\n", 1 << k, 2 * rows[k] * E / tfw[k],
		       4 * rows[k] * E / tbw[k]);
	/* Unknowns Af, Ab, c; rows of the design: (r, 0, 1)/t and (0, r, 2)/t. */
	double a[3][3] = { { 0 } }, y[3] = { 0 }, x[3];
	for (int k = 0; k < 2 * NR; k++) {
		int b = k >= NR;
		double t = b ? tbw[k - NR] : tfw[k], r = rows[b ? k - NR : k];
		double row[3] = { b ? 0 : r / t, b ? r / t : 0, (b ? 2 : 1) / t };
		for (int i = 0; i < 3; i++) {
			for (int j = 0; j < 3; j++)
				a[i][j] += row[i] * row[j];
			y[i] += row[i];
		}
	}
	if (!solve3(a, y, x) || !(x[0] > 0) || !(x[1] > 0)) {
		printf("fit: none (the points do not fit a line)\n");
		return;
	}
	double err[2 * NR], emax = 0;
	for (int k = 0; k < 2 * NR; k++) {
		int b = k >= NR;
		double t = b ? tbw[k - NR] : tfw[k], r = rows[b ? k - NR : k];
		double p = b ? r * x[1] + 2 * x[2] : r * x[0] + x[2];
		err[k] = fabs(p - t) / t;
		if (err[k] > emax)
			emax = err[k];
	}
	printf("fit_flops_fwd: %.6g\n", 2 * E / x[0]);
	printf("fit_flops_bwd: %.6g\n", 4 * E / x[1]);
	/* c <= 0: the weights cost nothing measurable: not priced */
	if (x[2] > 0)
		printf("fit_weight_bandwidth: %.6g\n", 4 * E / x[2]);
	else
		printf("fit_weight_bandwidth: off\n");
	printf("fit_error_max: %.3f\n", emax);
	printf("fit_error_median: %.3f\n", median(err, 2 * NR));
}

/* One-way time of a message of n bytes between ranks 0 and 1. */
static double pingpong(int rank, size_t n)
{
	char *buf = calloc(n ? n : 1, 1);
	int iters = n <= 1024 ? 1000 : n <= 65536 ? 200 : n <= (1 << 20) ? 40 : 10, rounds = 7;
	double t[7];
	for (int s = 0; s < rounds; s++) {
		MPI_Barrier(MPI_COMM_WORLD);
		double t0 = now();
		for (int i = 0; i < iters; i++) {
			if (rank == 0) {
				MPI_Send(buf, (int)n, MPI_BYTE, 1, 0, MPI_COMM_WORLD);
				MPI_Recv(buf, (int)n, MPI_BYTE, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
			} else if (rank == 1) {
				MPI_Recv(buf, (int)n, MPI_BYTE, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
				MPI_Send(buf, (int)n, MPI_BYTE, 0, 0, MPI_COMM_WORLD);
			}
		}
		t[s] = (now() - t0) / (2.0 * iters);
	}
	free(buf);
	return median(t, rounds);
}

int main(int argc, char **argv)
{
	int rank, size;
	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	if (argc == 2 && !strcmp(argv[1], "--blas")) {     /* just say which BLAS */
		printf("blas: %s | %s\n", openblas_get_config(), openblas_get_corename());
		MPI_Finalize();
		return 0;
	}
	if (size != 2) {
		if (rank == 0)
			fprintf(stderr, "calibrate: run it as 2 ranks (mpirun -np 2)\n");
		MPI_Finalize();
		return 2;
	}

	/* GEMM rate: layers [RANK:]ROWSxINxOUT from the command line (a model's
	 * linear layers at its micro-batch rows; RANK: the rank whose stage holds
	 * it, else both), or one 64x1024x1024 layer. */
	int sweep = argc > 1 && !strcmp(argv[1], "--sweep");
	if (sweep) {
		argv++;
		argc--;
	}
	layer *L = calloc((size_t)argc + 1, sizeof *L);
	int n = 0;
	for (int i = 1; i < argc; i++) {
		int who = -1, k = 0;
		long r, in, out;
		if (sscanf(argv[i], "%d:%n", &who, &k) != 1 || argv[i][k - 1] != ':')
			who = -1, k = 0;
		if (sscanf(argv[i] + k, "%ldx%ldx%ld", &r, &in, &out) != 3 || r < 1 || in < 1 || out < 1) {
			if (rank == 0)
				fprintf(stderr, "calibrate: bad layer '%s' ([RANK:]ROWSxINxOUT)\n", argv[i]);
			MPI_Finalize();
			return 2;
		}
		if (who < 0 || who == rank)
			L[n++] = (layer){ .r = r, .in = in, .out = out };
	}
	if (argc == 1)
		L[n++] = (layer){ .r = 64, .in = 1024, .out = 1024 };
	double fl, tf, t = time_layers(L, n, &fl, &tf), all[2][3], mine[3] = { fl, t, tf };
	MPI_Gather(mine, 3, MPI_DOUBLE, all, 3, MPI_DOUBLE, 0, MPI_COMM_WORLD);
	if (rank == 0) {
		double flops = all[0][0] + all[1][0], tfwd = all[0][2] + all[1][2];
		double tall = all[0][1] + all[1][1];
		for (int r = 0; r < 2; r++)
			if (all[r][1] > 0)
				printf("gemm_flops_rank%d: %.6g\n", r, all[r][0] / all[r][1]);
		printf("gemm_flops: %.6g\n", flops / tall);
		/* the forward is 2·r·i·o of each layer's 6·r·i·o, the backward 4 */
		if (tfwd > 0 && tall > tfwd) {
			printf("gemm_flops_fwd: %.6g\n", flops / 3 / tfwd);
			printf("gemm_flops_bwd: %.6g\n", flops * 2 / 3 / (tall - tfwd));
		}
	}
	if (sweep)
		rows_sweep(L, n, rank);
	free(L);

	/* Memory: the runtime's own SGD update and gradient reset, as the
	 * pipeline ranks run them (both at once), over a state far larger than
	 * the caches.  (Not rt_optim_step: without a program's parameter
	 * ranges it updates nothing, which is what this measured before.) */
	{
		enum { NW = 16 << 20 };
		rt_program p;
		rt_ctx c;
		rt_osc osc = { .kind = RT_OPTIM_SGD, .lr = 1e-3f };
		double ts[9], mb, all_mb[2];
		memset(&p, 0, sizeof p);
		memset(&c, 0, sizeof c);
		p.nweights = NW;
		p.optim = RT_OPTIM_SGD;
		p.lr = 1e-3;
		c.p = &p;
		c.w = fill(NW);
		c.g = fill(NW);
		for (int i = -1; i < 9; i++) {  /* -1: pages touched */
			MPI_Barrier(MPI_COMM_WORLD);
			double t0 = now();
			rt_dev_optim_update(&c, &osc, 0, 0, NW);
			rt_dev_optim_finish(&c);
			if (i >= 0)
				ts[i] = now() - t0;
		}
		mb = 16.0 * NW / median(ts, 9);
		MPI_Gather(&mb, 1, MPI_DOUBLE, all_mb, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
		if (rank == 0)
			printf("mem_bandwidth: %.6g\n", 0.5 * (all_mb[0] + all_mb[1]));
		free(c.w);
		free(c.g);
	}

	/* Link: ping-pong one-way times; latency at 8 B, bandwidth as the slope
	 * between 64 KiB and 4 MiB. */
	static const size_t sizes[] = { 8, 1024, 65536, 1 << 20, 4 << 20 };
	double ow[5];
	for (int i = 0; i < 5; i++) {
		ow[i] = pingpong(rank, sizes[i]);
		if (rank == 0)
			printf("pingpong_%zu: %.6g\n", sizes[i], ow[i]);
	}
	if (rank == 0) {
		double bw = (double)(sizes[4] - sizes[2]) / (ow[4] - ow[2]);
		printf("latency: %.6g\n", ow[0]);
		printf("bandwidth: %.6g\n", bw);
		printf("blas: %s | %s\n", openblas_get_config(), openblas_get_corename());
	}
	MPI_Finalize();
	return 0;
}
