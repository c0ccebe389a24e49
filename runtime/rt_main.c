/* rt_main.c — the life of one rank: start-up, the step loop, the summary.
 *
 * Start-up is a sequence of phases, each ending in an agreement (rt_agree)
 * so that a bad file or shape makes every rank exit with the same status
 * instead of leaving some waiting on a dead peer:
 *   MPI, options, job shape  → 2 on a bad command line or a wrong launch
 *   data (inputs, targets)   → 1 on a bad file, shape or value; then every
 *                              rank learns the sequence length T
 *   buffers, weights         → 1 on a bad checkpoint
 * Then the step loop, where a failure is a runtime error: the failing rank
 * prints why and calls MPI_Abort (status 3), which ends every rank.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rt_internal.h"

/* ---- Signals.  Before and after the step loop Ctrl-C and SIGTERM end
 * the rank at once; inside it the first one only sets a flag, which every
 * rank agrees on at the next step boundary (run_steps), so that the run
 * stops there together, saves a checkpoint if it has a directory, and
 * exits 128 + the signal.  A second signal ends the rank at once. ---- */

static char sig_msg[96];
static size_t sig_len;
static volatile sig_atomic_t sig_seen, in_loop, sig_via_run;

static void on_signal(int sig)
{
	/* DIR/run turns SIGINT and SIGTERM into SIGUSR1 and SIGUSR2, which the
	 * MPI launcher forwards to every rank (it would kill them on the
	 * former): the same requests. */
	int via_run = sig == SIGUSR1 || sig == SIGUSR2;
	sig = sig == SIGUSR1 ? SIGINT : sig == SIGUSR2 ? SIGTERM : sig;
	if (in_loop && !sig_seen) {
		sig_via_run = via_run;
		sig_seen = sig;
		return;
	}
	/* Only async-signal-safe calls: the message was formatted at start-up. */
	if (write(2, sig_msg, sig_len) < 0)
		sig_len = 0;
	_exit(128 + sig);
}

static void install_signals(int rank)
{
	struct sigaction sa;
	snprintf(sig_msg, sizeof sig_msg, "pipec-run: rank %d: stopped by a signal\n", rank);
	sig_len = strlen(sig_msg);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
}

/* PIPERT_FAULT=KIND:RANK:STEP[:ACTION] (KIND kill, exit or stall; STEP from
 * 1 as printed, ACTION from 0): the tests' way to kill or stall one rank at
 * one action of one step. */
static void parse_fault(rt_ctx *c)
{
	const char *s = getenv("PIPERT_FAULT");
	char kind[16];
	int rank, step, action = 0;
	if (!s || sscanf(s, "%15[a-z]:%d:%d:%d", kind, &rank, &step, &action) < 3 || rank != c->rank)
		return;
	c->fault_kind = !strcmp(kind, "kill") ? 1 : !strcmp(kind, "exit") ? 2 : !strcmp(kind, "stall") ? 3 : 0;
	c->fault_step = step - 1;
	c->fault_action = action;
}

/* ---- Accessors of pipert.h. ---- */

char *rt_arena(rt_ctx *c) { return c->arena; }
float *rt_weights(rt_ctx *c) { return c->w_use ? c->w_use : c->w; }

/* An asynchronous schedule's stream is one segment (run_steps): its keys. */
int64_t rt_run_keys(rt_ctx *c) { return (int64_t)c->seg_len * c->p->M; }

void rt_async_use(rt_ctx *c, int64_t k, int slot)
{
	const rt_program *p = c->p;
	if (!p->async || slot < 0 || slot >= p->nversions || k < 0)
		rt_die(c, RT_EXIT_RUNTIME, "rt_async_use: key %lld, slot %d of %d", (long long)k,
		       slot, p->nversions);
	c->step = (int)(c->seg0 + k / p->M);   /* the data of the key's own (global) step */
	c->w_use = c->wv[slot];
}

/* A 16-bit program (docs/precision.md): a training rank's master weights
 * start as the weights it loaded or initialised, and the weights the
 * kernels read are those rounded to the dtype. */
static int weights_16bit(rt_ctx *c)
{
	const rt_program *p = c->p;
	size_t bytes = (size_t)p->nweights * sizeof(float);
	float *w, *m;
	if (p->precision == RT_PREC_F32 || bytes == 0)
		return 0;
	if (!(w = rt_dev_map(c, c->w, bytes, RT_MAP_READ | RT_MAP_WRITE)))
		goto oom;
	if (c->master) {
		if (!(m = rt_dev_map(c, c->master, bytes, RT_MAP_WRITE))) {
			rt_dev_unmap(c, c->w, w, bytes, 0);
			goto oom;
		}
		memcpy(m, w, bytes);
		rt_dev_unmap(c, c->master, m, bytes, RT_MAP_WRITE);
	}
	rt_round_host(p->precision, w, p->nweights);
	rt_dev_unmap(c, c->w, w, bytes, RT_MAP_WRITE);
	return 0;
oom:
	rt_defer(c, "out of memory rounding %lld weights to the 16-bit dtype",
	         (long long)p->nweights);
	return RT_EXIT_RUNTIME;
}

/* Every version slot starts as the initial weights (sched.h: a version
 * before the first update reads them). */
static void fill_versions(rt_ctx *c)
{
	size_t bytes = (size_t)c->p->nweights * sizeof(float);
	const float *w0;
	if (!c->wv || bytes == 0)
		return;
	w0 = rt_dev_map(c, c->wv[0], bytes, RT_MAP_READ);
	for (int i = 1; i < c->p->nversions; i++) {
		float *wi = rt_dev_map(c, c->wv[i], bytes, RT_MAP_WRITE);
		memcpy(wi, w0, bytes);
		rt_dev_unmap(c, c->wv[i], wi, bytes, RT_MAP_WRITE);
	}
	rt_dev_unmap(c, c->wv[0], (float *)w0, bytes, RT_MAP_READ);
}
float *rt_grads(rt_ctx *c) { return c->g; }

/* ---- Start-up checks. ---- */

/* The program's own consistency: a wrong table would corrupt memory. */
static int check_program(rt_ctx *c)
{
	const rt_program *p = c->p;
	if (!p->step || p->nweights < 0 || p->arena_bytes < 0 || p->nparams < 0 || p->nslots < 0 ||
	    p->P < 1 || p->R < 1 || p->P * p->R * (p->gen_disagg ? 2 : 1) != p->nranks ||
	    p->replica != (p->gen_disagg ? 0 : p->rank / p->P)) {
		rt_msg(c->rank, "inconsistent program (ranks %d = %d x %d, replica %d)", p->nranks,
		       p->P, p->R, p->replica);
		return RT_EXIT_RUNTIME;
	}
	for (int i = 0; i < p->nparams; i++) {
		const rt_param *pa = &p->params[i];
		int64_t n = 1;
		for (int d = 0; d < pa->ndim && d < 4; d++)
			n *= pa->dims[d];
		if (!pa->name || pa->ndim < 0 || pa->ndim > 4 || n != pa->numel || pa->offset < 0 ||
		    pa->offset + pa->numel > p->nweights) {
			rt_msg(c->rank, "inconsistent program: parameter %d ('%s') does not fit the "
			       "weight buffer", i, pa->name ? pa->name : "?");
			return RT_EXIT_RUNTIME;
		}
	}
	for (int k = 0; k < p->ninputs; k++) {
		const rt_input_desc *d = p->inputs ? &p->inputs[k] : NULL;
		if (!d || !d->name || d->width < 1 || (d->dtype != RT_DT_F32 && d->dtype != RT_DT_I32)) {
			rt_msg(c->rank, "inconsistent program: input %d is not described", k);
			return RT_EXIT_RUNTIME;
		}
	}
	/* rt_output's rows are T positions of out_width / seq_max floats. */
	if (p->ninputs < 0 || p->seq_max < 0 ||
	    (p->out_seq && (p->seq_max == 0 || p->out_width % p->seq_max))) {
		rt_msg(c->rank, "inconsistent program: %d inputs, output of %lld per %lld positions",
		       p->ninputs, (long long)p->out_width, (long long)p->seq_max);
		return RT_EXIT_RUNTIME;
	}
	return 0;
}

/* Ranks given different options would disagree on the number of steps and
 * wait for each other at the end: compare a hash of the options. */
static int options_differ(rt_ctx *c, int argc, char **argv)
{
	uint64_t h = rt_hash_name("options");
	long long mine[2], lo[2], hi[2];
	(void)c;
	for (int i = 1; i < argc; i++)
		h = rt_mix64(h ^ rt_hash_name(argv[i]));
	mine[0] = (long long)(h >> 1);
	mine[1] = argc;
	MPI_Allreduce(mine, lo, 2, MPI_LONG_LONG, MPI_MIN, MPI_COMM_WORLD);
	MPI_Allreduce(mine, hi, 2, MPI_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
	return lo[0] != hi[0] || lo[1] != hi[1];
}

/* Ranks on this node share its cores: BLAS gets its share of them. */
static int node_share(rt_ctx *c, int *ranks_here)
{
	MPI_Comm node;
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	*ranks_here = 1;
	if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL,
	                        &node) == MPI_SUCCESS) {
		MPI_Comm_size(node, ranks_here);
		MPI_Comm_free(&node);
	}
	if (cores < 1)
		cores = 1;
	if (!getenv("OPENBLAS_NUM_THREADS") && !getenv("OMP_NUM_THREADS"))
		rt_blas_threads(cores / *ranks_here > 1 ? (int)(cores / *ranks_here) : 1);
	return (int)cores;
}

/* One forward and backward GEMM of the largest linear weight, before the
 * memory baseline: BLAS (cuBLAS) allocates its work buffers on first use,
 * and those are not the model's memory. */
static void warm_blas(rt_ctx *c)
{
	const rt_program *p = c->p;
	const rt_param *big = NULL;
	float *x, *w, *y;
	int64_t rows = p->mb_rows > 0 ? p->mb_rows : 1, in, out;
	for (int i = 0; i < p->nparams; i++)
		if (p->params[i].ndim == 2 && (!big || p->params[i].numel > big->numel))
			big = &p->params[i];
	out = big ? big->dims[0] : 8;
	in = big ? big->dims[1] : 8;
	x = rt_dev_alloc(c, (size_t)(rows * in) * sizeof *x);
	w = rt_dev_alloc(c, (size_t)(out * in) * sizeof *w);
	y = rt_dev_alloc(c, (size_t)(rows * out) * sizeof *y);
	if (x && w && y) {
		rt_linear_fwd(x, w, NULL, y, rows, in, out);
		rt_linear_bwd_data(y, w, x, rows, in, out);
		rt_linear_bwd_weight(x, y, w, NULL, rows, in, out);
	}
	rt_dev_free(c, x);
	rt_dev_free(c, w);
	rt_dev_free(c, y);
}

/* Open MPI allocates on first use too: its request lists as requests are
 * first outstanding at once, a communicator's structures when it is made,
 * the fragments and buffers of messages that arrive before their receive,
 * the shared memory of its transport as messages pass (the fragments a
 * peer writes, the per-peer fast boxes it sets up after 16 messages).  All
 * of that happens here, before the memory baseline, as BLAS's does above:
 * as many requests outstanding to itself as a step can have, then, in every
 * size up to the eager limit, messages to every rank sent before their
 * receives are posted.  Those are few enough (WARM_BYTES a round) for
 * Open MPI to buffer: a flood would stall the barrier behind it. */
enum { WARM_EAGER = 4096, WARM_BYTES = 256 * 1024, WARM_SELF_MAX = 1024 };
static void warm_mpi(rt_ctx *c, MPI_Comm *vote)
{
	const rt_program *p = c->p;
	int n = c->nranks, nr, most = 2 * 16 * n;
	int k = 2 * (p->nslots > 0 ? p->nslots : 0) + (p->nactions > 0 ? p->nactions : 0) + 2;
	MPI_Request *r;
	char *in, *out;
	k = k < WARM_SELF_MAX ? k : WARM_SELF_MAX;
	most = most > 2 * k ? most : 2 * k;
	r = malloc((size_t)most * sizeof *r);
	in = malloc((size_t)most * WARM_EAGER);
	out = calloc(1, WARM_EAGER);    /* every send's: they only read it */
	if (MPI_Comm_dup(MPI_COMM_WORLD, vote) != MPI_SUCCESS)
		rt_die(c, RT_EXIT_RUNTIME, "MPI_Comm_dup failed");
	if (!r || !in || !out)
		rt_die(c, RT_EXIT_RUNTIME, "out of memory");
	/* synchronous sends: each holds its request until its receive */
	nr = 0;
	for (int i = 0; i < k; i++)
		MPI_Issend(out, 64, MPI_BYTE, c->rank, i, *vote, &r[nr++]);
	for (int i = 0; i < k; i++, nr++)
		MPI_Irecv(in + (size_t)i * 64, 64, MPI_BYTE, c->rank, i, *vote, &r[nr]);
	MPI_Waitall(nr, r, MPI_STATUSES_IGNORE);
	for (int bytes = 64; bytes <= WARM_EAGER; bytes *= 2) {
		int len = bytes - 64;   /* with the headers, within the eager limit */
		int each = WARM_BYTES / (n * bytes);
		each = each < 2 ? 2 : each > 16 ? 16 : each;
		nr = 0;
		for (int q = 0; q < n; q++)
			for (int i = 0; i < each; i++)
				MPI_Isend(out, len, MPI_BYTE, q, i, *vote, &r[nr++]);
		MPI_Barrier(*vote);
		for (int q = 0; q < n; q++)
			for (int i = 0; i < each; i++, nr++)
				MPI_Irecv(in + (size_t)(nr - n * each) * WARM_EAGER, len, MPI_BYTE, q, i,
				          *vote, &r[nr]);
		MPI_Waitall(nr, r, MPI_STATUSES_IGNORE);
	}
	free(r);
	free(in);
	free(out);
}

/* The stack's pages count when first touched, as the heap's do: the
 * deepest callers below (the safetensors reader's 16 KiB buffer, BLAS,
 * the kernels) are given theirs now, before the memory baseline. */
static __attribute__((noinline)) void warm_stack(void)
{
	volatile char pad[256 * 1024];
	for (size_t i = 0; i < sizeof pad; i += 1024)
		pad[i] = 0;
}

static int alloc_buffers(rt_ctx *c)
{
	const rt_program *p = c->p;
	int training = p->optim != RT_OPTIM_NONE;
	rt_dev_reserve(c, (size_t)p->predicted_peak_bytes);
	c->w = rt_dev_alloc(c, (size_t)p->nweights * sizeof(float));
	/* Inference keeps no gradients: the compiler predicts none. */
	c->g = training ? rt_dev_alloc(c, (size_t)p->nweights * sizeof(float)) : NULL;
	c->arena = rt_dev_alloc(c, (size_t)p->arena_bytes);
	if (p->async && p->nversions >= 1 && c->w) {
		c->wv = calloc((size_t)p->nversions, sizeof *c->wv);
		if (!c->wv)
			c->w = NULL;
		for (int i = 0; c->wv && i < p->nversions; i++)
			if (!(c->wv[i] = i ? rt_dev_alloc(c, (size_t)p->nweights * sizeof(float)) : c->w))
				c->w = NULL;
	}
	if (!c->w || (training && !c->g) || !c->arena || rt_optim_alloc(c) != 0) {
		rt_defer(c, "out of memory: %lld weights and a %lld-byte arena",
		         (long long)p->nweights, (long long)p->arena_bytes);
		return RT_EXIT_RUNTIME;
	}
	return 0;
}

static void free_all(rt_ctx *c)
{
	if (c->wv) {        /* c->w is one of them */
		for (int i = 0; i < c->p->nversions; i++)
			rt_dev_free(c, c->wv[i]);
		free(c->wv);
	} else {
		rt_dev_free(c, c->w);
	}
	rt_dev_free(c, c->g);
	rt_dev_free(c, c->master);
	rt_dev_free(c, c->opt_m);
	rt_dev_free(c, c->opt_v);
	rt_optim_free(c);
	rt_dev_free(c, c->arena);
	rt_gen_free(c);
	rt_dev_fini(c);
	rt_weights_release();
	rt_data_free(c);
	free(c->ev);
	rt_comm_free(c);
	rt_opts_free(&c->o);
}

/* ---- The summary. ---- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

typedef struct {
	double *time, *busy;        /* per step */
	int done;                   /* steps run (fewer than asked after a signal) */
	int64_t baseline_kb, hwm_kb;    /* VmRSS before the buffers, VmHWM after the run */
	int64_t shm0_kb, shm_kb;        /* RssShmem then and after the run */
	int ranks_here, cores;
	MPI_Comm vote;              /* run_steps' stop vote: made before the baseline */
} run_stats;

/* Per rank: [0] measured bubble, [1] measured peak bytes, [2] predicted,
 * [3] message bytes sent per step, [4] generation's KV cache bytes. */
enum { S_BUBBLE, S_PEAK, S_PRED, S_SENT, S_KV, S_N };

static void summary(rt_ctx *c, const run_stats *rs)
{
	const rt_program *p = c->p;
	int n = rs->done, first = n > 1 ? 1 : 0;  /* step 1 warms caches: left out */
	double sum_t = 0, sum_b = 0, mine[S_N], *all = NULL, *sorted = NULL;
	double med, mean = 0, bubble = 0, peak = -1, pred = 0;
	int64_t hwm = rs->hwm_kb;

	for (int t = first; t < n; t++) {
		sum_t += rs->time[t];
		sum_b += rs->busy[t];
	}
	mine[S_BUBBLE] = sum_t > 0 ? 1.0 - sum_b / sum_t : 0.0;
	mine[S_PEAK] = hwm >= 0 && rs->baseline_kb >= 0 ? 1024.0 * (double)(hwm - rs->baseline_kb) : -1;
	/* The pages of MPI's shared-memory transport that a peer's messages
	 * first touched during the run are MPI's, not this rank's. */
	if (mine[S_PEAK] >= 0 && rs->shm0_kb >= 0 && rs->shm_kb > rs->shm0_kb)
		mine[S_PEAK] -= 1024.0 * (double)(rs->shm_kb - rs->shm0_kb);
	if (rt_dev_peak_bytes(c) >= 0)          /* a GPU's memory, not the host's */
		mine[S_PEAK] = rt_dev_peak_bytes(c);
	mine[S_PRED] = (double)p->predicted_peak_bytes;
	mine[S_SENT] = n > 0 ? (double)c->sent_bytes / n : 0.0;
	mine[S_KV] = (double)p->kv_bytes;
	if (c->rank == c->reporter &&
	    (!(all = malloc(S_N * sizeof(double) * (size_t)c->nranks)) ||
	     !(sorted = malloc((size_t)(n + 1) * sizeof *sorted))))
		rt_die(c, RT_EXIT_RUNTIME, "out of memory");
	MPI_Gather(mine, S_N, MPI_DOUBLE, all, S_N, MPI_DOUBLE, c->reporter, MPI_COMM_WORLD);
	if (c->rank != c->reporter || c->o.quiet) {
		free(all);
		free(sorted);
		return;
	}
	memcpy(sorted, rs->time + first, (size_t)(n - first) * sizeof *sorted);
	qsort(sorted, (size_t)(n - first), sizeof *sorted, cmp_double);
	med = (n - first) % 2 ? sorted[(n - first) / 2]
	                      : 0.5 * (sorted[(n - first) / 2 - 1] + sorted[(n - first) / 2]);
	for (int t = first; t < n; t++)
		mean += rs->time[t] / (n - first);
	for (int r = 0; r < c->nranks; r++) {
		bubble += all[S_N * r + S_BUBBLE] / c->nranks;
		peak = all[S_N * r + S_PEAK] > peak ? all[S_N * r + S_PEAK] : peak;
		pred = all[S_N * r + S_PRED] > pred ? all[S_N * r + S_PRED] : pred;
	}
	printf("model: %s\n", p->model ? p->model : "?");
	printf("schedule: %s\n", p->schedule ? p->schedule : "?");
	printf("ranks: %d\n", c->nranks);
	printf("replicas: %d\n", p->R);
	printf("microbatches: %d\n", p->M);
	printf("steps: %d\n", n);
	printf("steps_timed: %d\n", n - first);
	printf("step_time: %.6g\n", med);
	printf("step_time_mean: %.6g\n", mean);
	printf("samples_per_s: %.6g\n", med > 0 ? (double)p->batch / med : 0.0);
	/* Mean over ranks of idle / step time, as the compiler predicts it. */
	printf("bubble_measured: %.4f\n", bubble);
	printf("bubble_predicted: %.4f\n", p->predicted_bubble);
	printf("bubble_measured_ranks:");
	for (int r = 0; r < c->nranks; r++)
		printf(" %.4f", all[S_N * r + S_BUBBLE]);
	printf("\n");
	/* The largest rank's: the one that decides whether a model fits. */
	printf("peak_memory_bytes: %.0f\n", peak);
	printf("peak_memory_predicted: %.0f\n", pred);
	printf("peak_memory_ranks:");
	for (int r = 0; r < c->nranks; r++)
		printf(" %.0f/%.0f", all[S_N * r + S_PEAK], all[S_N * r + S_PRED]);
	printf("\n");
	/* What each rank put on the wire per step (a 16-bit program: 2 bytes a
	 * value on the CPU, docs/precision.md). */
	printf("message_bytes_ranks:");
	for (int r = 0; r < c->nranks; r++)
		printf(" %.0f", all[S_N * r + S_SENT]);
	printf("\n");
	/* generation: each rank's caches, inside its arena (and its peak) */
	if (p->gen_tokens > 0) {
		printf("kv_cache_bytes_ranks:");
		for (int r = 0; r < c->nranks; r++)
			printf(" %.0f", all[S_N * r + S_KV]);
		printf("\n");
	}
	/* With more ranks than cores, idle time is not the schedule's bubble
	 * (docs/running.md, "More ranks than cores"): say so beside the numbers. */
	printf("oversubscribed: %s (%d ranks on %d cores on this node)\n",
	       rs->ranks_here > rs->cores ? "yes" : "no", rs->ranks_here, rs->cores);
	rt_dev_summary(c);
	fflush(stdout);
	free(sorted);
	free(all);
}

/* Data (rt_data.c): the per-step buffers for c->o.steps steps, once an
 * inference run over a file knows how many it has. */
static int resize_steps(rt_ctx *c, run_stats *rs)
{
	const rt_program *p = c->p;
	size_t n = (size_t)c->o.steps;
	free(rs->time);
	free(rs->busy);
	rs->time = calloc(n, sizeof *rs->time);
	rs->busy = calloc(n, sizeof *rs->busy);
	if (!rs->time || !rs->busy ||
	    (c->o.trace && p->nactions && rt_trace_grow(c, (size_t)p->nactions * n) != 0)) {
		rt_defer(c, "out of memory for %d steps", c->o.steps);
		return RT_EXIT_RUNTIME;
	}
	return 0;
}

/* ---- The step loop. ---- */

/* Hooks of the modules that report and evaluate, each behind one helper so
 * that the loop reads the same whichever of them is there. */

/* After every step: the step line, --metrics, the progress line
 * (rt_report.c). */
static void report_step(rt_ctx *c, int64_t step, double loss, double step_time)
{
	rt_report_step(c, step, loss, step_time);
}

/* An evaluation after global step `step`: after every --eval-every N-th
 * step and after the last one, when there is an evaluation set. */
static int eval_due(const rt_ctx *c, int64_t step, int64_t last)
{
	if (!c->p->eval_step || (!c->o.eval_input && c->o.neval_args == 0))
		return 0;
	return step == last || (c->o.eval_every > 0 && step % c->o.eval_every == 0);
}

/* An evaluation after global step `step`, at a boundary where nothing is
 * in flight (an asynchronous segment ends there): the newest weights, the
 * whole evaluation set (rt_eval.c), the line and the metrics (rt_report.c). */
static void run_eval(rt_ctx *c, int64_t step)
{
	float *w_use = c->w_use;
	double loss;
	c->w_use = NULL;
	loss = rt_eval_run(c);
	c->w_use = w_use;
	rt_report_eval(c, step, loss);
}

/* The end of the segment that starts after global step g: the next step
 * after which the pipeline must be empty (a checkpoint, an evaluation, the
 * last step).  The same steps in every run with the same options, so that a
 * resumed run's streams are the uninterrupted run's. */
static int64_t segment_end(const rt_ctx *c, int64_t g, int64_t last)
{
	int64_t e = g + 1;
	while (e < last && !(c->ckpt_dir && rt_ckpt_due(c, e, last, 0)) && !eval_due(c, e, last))
		e++;
	return e;
}

/* Whether any rank was signalled: one small allreduce a step, which also
 * takes the largest of the ranks' times for the step.  A step ends when
 * its last rank ends: the rank that reports (a last stage's) is often done
 * first, while rank 0 still runs the backwards of the last micro-batches,
 * and its own clock would overstate the throughput.
 * A synchronous step has completed every message when it returns, so the
 * allreduce is the barrier after it.  An asynchronous one has not: a rank
 * can still wait on a send that its peer's next step receives, so a
 * blocking collective between the two would deadlock.  There the
 * allreduce posted after step t is completed after step t + 1 (or after
 * the drain): every rank learns of a signal one step later, all at the
 * same step. */
typedef struct {
	MPI_Comm comm;      /* its own: a step's own collectives (the gradient
	                     * norm inside an asynchronous step) come in another
	                     * order on each rank relative to the vote */
	MPI_Request req;
	double mine[2], all[2];     /* [0] a signal seen, [1] the step's seconds */
} stop_vote;

static void vote_post(rt_ctx *c, stop_vote *v, double step_time, const char *what)
{
	v->mine[0] = sig_seen;
	v->mine[1] = step_time;
	v->all[0] = v->all[1] = 0;
	if (MPI_Iallreduce(v->mine, v->all, 2, MPI_DOUBLE, MPI_MAX, v->comm, &v->req) != MPI_SUCCESS)
		rt_die(c, RT_EXIT_RUNTIME, "MPI_Iallreduce failed at %s", what);
}

/* 0 when no vote is pending. */
static int vote_wait(rt_ctx *c, stop_vote *v, const char *what)
{
	if (v->req == MPI_REQUEST_NULL)
		return 0;
	rt_wait_req(c, &v->req, what, "all ranks");
	v->req = MPI_REQUEST_NULL;
	return (int)v->all[0];
}

/* Runs global steps step0 + 1 .. step0 + steps.  Returns 0, the status of
 * a failed checkpoint, or 128 + the signal that stopped the run. */
static int run_steps(rt_ctx *c, run_stats *rs)
{
	const rt_program *p = c->p;
	/* The printed loss is the mean the gradients are of: per sample (CE),
	 * per element (MSE), per predicted position (next token: T-1 a row). */
	double denom = p->loss == RT_LOSS_MSE ? (double)p->batch * (double)p->target_width
	             : p->loss == RT_LOSS_NEXT_TOKEN ? (double)p->batch * (double)(c->seq_len - 1)
	             : (double)p->batch;
	char what[64];
	/* An asynchronous schedule never flushes within a segment: no barrier
	 * between its steps, and one more call of the step drains the
	 * backwards still in flight (its time counts to the segment's last
	 * step).  Each segment is a stream of its own: the step function counts
	 * from 0, its data and dropout by the global step. */
	int async = p->async != 0, stop = 0, rc = 0;
	int64_t g0 = c->step0, last = c->step0 + c->o.steps, g = g0;
	stop_vote vote = { rs->vote, MPI_REQUEST_NULL, { 0, 0 }, { 0, 0 } };
	in_loop = 1;
	while (g < last) {
		int n = (int)((async ? segment_end(c, g, last) : g + 1) - g);
		c->seg0 = g;
		c->seg_len = n;
#ifndef RT_CUDA
		rt_dropout_step0 = async ? g : 0;
#endif
		for (int i = 0; i <= n; i++) {
			double t0, t1, loss;
			int drain = i == n, ri = (int)(g + i - g0);
			if (drain && !async)
				break;
			c->step = (int)(g + i);
			c->loss_sum = 0.0;
			if (!drain) {
				c->busy = 0.0;
				c->action_index = 0;
			}
			snprintf(what, sizeof what, "the barrier before step %lld", (long long)(g + i + 1));
			if (!async)
				rt_barrier(c, what);
			t0 = rt_now();
			/* the program's step; on a GPU, until its work is done */
			rt_dev_step(c, async ? i : (int)(g + i));
			c->step = (int)(g + i);
			if (drain)
				rt_barrier(c, "the barrier after the drain");
			t1 = rt_now();
			if (drain) {
				rs->time[ri - 1] += t1 - t0;
				rs->busy[ri - 1] = c->busy;
				break;
			}
			rs->time[ri] = t1 - t0;
			rs->busy[ri] = c->busy;
			/* The trace buffer was sized from a guess when the program does
			 * not say how many actions a step has: now we know. */
			if (ri == 0 && c->o.trace && !p->nactions &&
			    rt_trace_grow(c, (size_t)c->action_index * (size_t)c->o.steps) != 0)
				rt_msg(c->rank, "note: no memory for the whole trace; later actions are left out");
			loss = p->loss != RT_LOSS_NONE ? rt_reduce_loss(c) / denom : NAN;
			snprintf(what, sizeof what, "the barrier after step %lld", (long long)(g + i + 1));
			if (async) {
				/* no step boundary the ranks share: each its own clock */
				report_step(c, g + i + 1, loss, t1 - t0);
				stop = vote_wait(c, &vote, "the stop vote of the step before");
				vote_post(c, &vote, t1 - t0, what);
				if (stop) {
					n = i + 1;      /* the next call drains */
					c->seg_len = n;
				}
			} else {
				vote_post(c, &vote, t1 - t0, what);
				stop = vote_wait(c, &vote, what);
				/* the step's time: from the barrier to its last rank's end */
				rs->time[ri] = vote.all[1];
				report_step(c, g + i + 1, loss, vote.all[1]);
				if (stop)
					break;
			}
		}
		/* async: the last step's vote, now that nothing is in flight */
		if (async) {
			int late = vote_wait(c, &vote, "the stop vote after the drain");
			stop = stop ? stop : late;
		}
		g += n;
		if (async)
			rt_ckpt_restart_versions(c);
		rs->done = (int)(g - g0);
		if (rt_ckpt_due(c, g, last, stop) && (rc = rt_ckpt_save(c, g)) != 0)
			break;
		if (!stop && eval_due(c, g, last))
			run_eval(c, g);
		if (stop)
			break;
	}
	in_loop = 0;
	for (int i = 0; i < c->nslots; i++)
		if (c->slots[i].req[0] != MPI_REQUEST_NULL)
			rt_die(c, RT_EXIT_RUNTIME, "slot %d (%s) was never waited on", i, c->slots[i].what);
	if (stop && c->rank == 0)
		rt_msg(-1, "stopped by %s after step %lld%s", stop == SIGINT ? "SIGINT" : "SIGTERM",
		       (long long)g, rt_ckpt_due(c, g, last, 1) ? "; the checkpoint is saved" : "");
	return rc ? rc : stop ? 128 + stop : 0;
}

int rt_main(const rt_program *p, int argc, char **argv)
{
	rt_ctx ctx, *c = &ctx;
	char err[512];
	int rc, size;
	run_stats rs = { 0 };
	rs.vote = MPI_COMM_NULL;
	rs.hwm_kb = -1;

	memset(c, 0, sizeof *c);
	c->p = p;
	c->comm = c->chk = c->last = MPI_COMM_NULL;
	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	c->nranks = size;
	install_signals(c->rank);

	/* Every rank parses the same argv: all succeed or all fail alike. */
	rc = rt_opts_parse(&c->o, p, argc, argv, err, sizeof err);
	if (rc || c->o.help) {
		if (c->rank == 0) {
			if (rc)
				rt_msg(-1, "%s", err);
			else
				rt_opts_help(stdout, p, argv[0]);
			fflush(stdout);
		}
		rt_opts_free(&c->o);
		MPI_Finalize();
		return rc;
	}
	rc = 0;
	if (options_differ(c, argc, argv)) {
		if (c->rank == 0)
			rt_msg(-1, "the ranks were started with different options; DIR/run passes the "
			       "same options to every rank");
		rt_opts_free(&c->o);
		MPI_Finalize();
		return RT_EXIT_USAGE;
	}
	if (size != p->nranks || c->rank != p->rank) {
		rt_msg(c->rank, "this program is rank %d of a %d-rank job, but MPI started it as rank "
		       "%d of %d (start the job with DIR/run)", p->rank, p->nranks, c->rank, size);
		rc = RT_EXIT_USAGE;
	}
	if ((rc = rt_agree(c, rc ? rc : check_program(c))) != 0) {
		rt_opts_free(&c->o);
		MPI_Finalize();
		return rc;
	}
	parse_fault(c);
	/* --resume: the global step to continue after, before anything is
	 * sized by the steps left. */
	if ((c->o.resume || c->o.checkpoint) && ((rc = rt_ckpt_open(c)) != 0 || c->ckpt_done)) {
		free(c->ckpt_from);
		free(c->ckpt_prev);
		rt_opts_free(&c->o);
		MPI_Finalize();
		return rc;
	}
	rs.cores = node_share(c, &rs.ranks_here);
	rs.time = calloc((size_t)c->o.steps, sizeof *rs.time);
	rs.busy = calloc((size_t)c->o.steps, sizeof *rs.busy);
	rc = rs.time && rs.busy ? 0 : RT_EXIT_RUNTIME;
	rt_comm_init(c);
	if (!rc && c->o.trace &&
	    rt_trace_alloc(c, p->nactions ? (size_t)p->nactions * (size_t)c->o.steps : 4096) != 0)
		rc = RT_EXIT_RUNTIME;
	{
		int rd = rt_dev_init(c);    /* collective on a GPU: every rank calls it */
		rc = rc ? rc : rd;
	}
	if (!rc)
		rc = rt_data_load(c);
	if ((rc = rt_agree_report(c, rc)) != 0)
		goto out;
	/* Only the first stage read the sequences; every rank sizes its work
	 * by their length from its first step on. */
	rt_data_share(c);
	/* Data (rt_data.c): an inference run over a file runs ceil(N/B) steps,
	 * which rt_data_share has just set: the per-step buffers follow. */
	if (c->over_file && (rc = rt_agree_report(c, resize_steps(c, &rs))) != 0)
		goto out;
	if (p->gen_tokens > 0 && (rc = rt_agree_report(c, rt_gen_init(c))) != 0)
		goto out;

	if (!c->o.resume && c->o.weights_in && (rc = rt_weights_open(c)) != 0)
		goto out;

	/* Memory baseline: what the process holds before the model's own
	 * buffers (MPI, BLAS, data, trace, the weights file's header); the
	 * peak is measured above it. */
	warm_blas(c);
	warm_mpi(c, &rs.vote);
	warm_stack();
	rt_barrier(c, "the start-up barrier");
	rt_map_code();
	rt_reset_hwm();
	rs.baseline_kb = rt_proc_kb("VmRSS");
	rs.shm0_kb = rt_proc_kb("RssShmem");
	if ((rc = rt_agree_report(c, alloc_buffers(c))) != 0)
		goto out;
	if (c->o.resume) {
		if ((rc = rt_ckpt_load(c)) != 0)
			goto out;
	} else if (c->o.weights_in) {
		if ((rc = rt_weights_load(c)) != 0)
			goto out;
	} else {
		rt_weights_init(c);
	}
	if ((rc = rt_agree_report(c, weights_16bit(c))) != 0)
		goto out;
	fill_versions(c);
	if ((rc = rt_ckpt_load_versions(c)) != 0)
		goto out;
	if ((rc = rt_agree_report(c, rt_dev_start(c))) != 0)
		goto out;
	if (p->gen_tokens == 0 && (rc = rt_agree_report(c, rt_report_open(c))) != 0)
		goto out;           /* rt_report.c: --metrics */

	/* A common time origin for every rank's trace. */
	rt_barrier(c, "the start barrier");
	c->t_origin = rt_now();
	if (p->gen_tokens > 0) {
		/* one generation, summarised as one step */
		rt_gen_run(c);
		c->o.steps = 1;
		rs.done = 1;
		rs.time[0] = c->gen_total;
		rs.busy[0] = c->busy;
		rs.hwm_kb = rt_proc_kb("VmHWM");
		rs.shm_kb = rt_proc_kb("RssShmem");
		rc = rt_gen_write_output(c);
	} else {
		int stopped = run_steps(c, &rs);
		/* The run's peak: the outputs' gather and files after it are I/O
		 * of their own, not the plan's buffers (docs/running.md). */
		rs.hwm_kb = rt_proc_kb("VmHWM");
		rs.shm_kb = rt_proc_kb("RssShmem");
		/* Stopped through DIR/run, the rank exits 0 and the launcher says
		 * 130 or 143: the MPI launcher adds a page of noise to a non-zero
		 * rank's status. */
		if (stopped > 128 && sig_via_run)
			stopped = 0;
		rc = rt_data_write_output(c);
		rc = stopped > rc ? stopped : rc;
		{
			int r4 = rt_report_close(c);      /* rt_report.c */
			rc = r4 > rc ? r4 : rc;
		}
	}
	if (c->o.weights_out) {
		int r2 = rt_weights_save(c);
		rc = r2 > rc ? r2 : rc;
	}
	if (c->o.trace) {
		int r3 = rt_trace_write(c, c->o.trace);
		rc = r3 > rc ? r3 : rc;
	}
	rc = rt_agree(c, rc);
	summary(c, &rs);
	if (p->gen_tokens > 0)
		rt_gen_summary(c);
out:
	if (rs.vote != MPI_COMM_NULL)
		MPI_Comm_free(&rs.vote);
	free(rs.time);
	free(rs.busy);
	free_all(c);
	free(c->ckpt_from);
	free(c->ckpt_prev);
	MPI_Finalize();
	return rc;
}
