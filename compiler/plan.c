/* plan.c — pipec plan: every configuration of N ranks, ranked.
 *
 * A candidate is a set of --set overrides (stages, replicas, schedule,
 * microbatches, partition = auto, and memory and recompute when a limit
 * asks for them) taken through the very passes `pipec schedule` runs
 * (sema_check, pipec_partition, pipec_schedule, the memory plan), so its
 * row equals what schedule prints for the same --sets and --cost, and
 * whether a schedule applies (interleaved's M % P, dualpipev's M >= 2P,
 * enough layers) is sema's and the generators' own judgement, never a
 * copy of it.  Each candidate's allocations are released before the next
 * (pool_mark), and its diagnostics captured, not printed.  Nothing here
 * allocates the model: stages are FLOPs and byte counts.
 *
 * Schedules are every kind of SCHED_KINDS but file (needs an order),
 * and pipedream / pipedream-2bw (asynchronous: they train differently,
 * so they are not the same job run faster) unless --schedules names them;
 * --schedules a,b,... plans those kinds only.  Kinds with V try V = 2 ..
 * PLAN_MAX_V while stages x V <= layers; zb-auto tries memory = 1 and 2
 * (the paper's ZB-1p and ZB-2p).  With a memory limit, the least
 * recompute of 0, 0.25, 0.5, 0.75, 1 of every stage's layers with which
 * the fullest rank's planned total fits (none is tried first, then 1, so
 * that a configuration that cannot fit costs two tries); at each level the partition is
 * first balanced under memory = the limit (partition column auto+mem),
 * and when the partitioner finds no such split (its bound counts no
 * recompute), balanced as without a limit (auto).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "plan.h"
#include "sema.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#define PLAN_MAX_V 4

static const char *const kind_names[] = {
#define X(e, s, v) s,
	SCHED_KINDS(X)
#undef X
};
static const int kind_has_v[] = {
#define X(e, s, v) v,
	SCHED_KINDS(X)
#undef X
};

static const double recompute_levels[] = { 0, 0.25, 0.5, 0.75, 1 };

typedef struct Row {
	int P, R, M;
	char sched[64];         /* as written after schedule = */
	double recompute;       /* every stage's ratio */
	int mem_set;            /* memory = limit among the --sets */
	double step, sps, bubble;
	int64_t peak;
	int fits;
	int order;              /* enumeration order: the last tie-break */
} Row;

typedef struct Plan {
	const Program *prog;
	const PlanOptions *po;
	double limit;           /* bytes per rank, 0: none */
	double state, weights;  /* bytes of every parameter's weight, gradient
	                         * and optimizer state, and of its weight alone:
	                         * over P stages the fullest rank holds at least
	                         * a P-th (a schedule that trains, one that
	                         * does not) */
	long long B;
	char reason[512];       /* the first candidate's error, for "nothing" */
	int internal;           /* a built-in schedule failed verification */
	VEC(Row) rows;
	int tried;
	/* PIPEC_PLAN_TIMES: seconds per phase (check, partition, schedule =
	 * generate + lower + verify + simulate, memory plan) and per kind */
	int timing;
	double phase[4];
	double kind_time[SK_COUNT];
	int kind_n[SK_COUNT];
} Plan;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* "16GiB", "512MiB", "2GB" or a byte count, as the memory key reads them. */
static double size_arg(const char *s)
{
	static const struct { const char *suf; double mul; } units[] = {
		{ "", 1 }, { "B", 1 }, { "KB", 1e3 }, { "MB", 1e6 }, { "GB", 1e9 },
		{ "TB", 1e12 }, { "KiB", 1024.0 }, { "MiB", 1048576.0 },
		{ "GiB", 1073741824.0 }, { "TiB", 1099511627776.0 },
	};
	char *end;
	double n = strtod(s, &end);
	if (end == s || !(n > 0) || isinf(n))
		return -1;
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
		if (!strcmp(end, units[i].suf))   /* the memory key reads an integer */
			return n * units[i].mul < 9e18 ? floor(n * units[i].mul) : -1;
	return -1;
}

static long int_arg(const char *s, long hi)
{
	char *end;
	long v = strtol(s, &end, 10);
	return !*s || *end || v < 1 || v > hi ? -1 : v;
}

static const char *recompute_set(int P, double r)
{
	char *s = xprintf("recompute=[%g", r);
	for (int i = 1; i < P; i++)
		s = xprintf("%s, %g", s, r);
	return xprintf("%s]", s);
}

/* The --set texts of a row, in the order best: prints them. */
static int row_sets(const Plan *pl, const Row *w, const char **out)
{
	int n = 0;
	out[n++] = xprintf("stages=%d", w->P);
	out[n++] = xprintf("replicas=%d", w->R);
	out[n++] = xprintf("schedule=%s", w->sched);
	out[n++] = xprintf("microbatches=%d", w->M);
	out[n++] = "partition=auto";
	if (w->mem_set)
		out[n++] = xprintf("memory=%.0f", pl->limit);
	if (w->recompute > 0)
		out[n++] = recompute_set(w->P, w->recompute);
	return n;
}

/* Takes row w (its P, R, M, sched, recompute, mem_set) through the passes;
 * 0 and its figures filled, or -1 when it is not a configuration (the
 * reason captured), or -3 after an internal error. */
static int evaluate(Plan *pl, Row *w)
{
	void *mark = pool_mark();
	int errs = diag_errors();
	char why[512];
	diag_capture(why, sizeof why);
	const char *texts[8];
	int n = row_sets(pl, w, texts);
	const PlanOptions *po = pl->po;
	PipeItem **sets = xalloc((size_t)(po->nsets + n) * sizeof *sets);
	for (int i = 0; i < po->nsets; i++)
		sets[i] = po->sets[i];
	int rc = 0;
	for (int i = 0; i < n && !rc; i++) {
		sets[po->nsets + i] = parse_setting(src_from_string(xprintf("--set '%s'", texts[i]),
		                                                    texts[i]));
		if (!sets[po->nsets + i])
			rc = -1;
	}
	double t[5];
	t[0] = now();
	IrModel *m = rc ? NULL : sema_check(pl->prog, sets, po->nsets + n);
	t[1] = t[2] = t[3] = t[4] = now();
	Built b;
	if (!m)
		rc = -1;
	else if (pipec_partition(m, po->copt, NULL) != 0)
		rc = -1;
	else if (t[2] = now(), (rc = pipec_schedule(m, po->copt, NULL, 0, &b)) != 0)
		rc = rc == 3 ? -3 : -1;
	t[3] = t[4] = now();
	if (!rc) {
		const Schedule *s = b.s;
		w->step = s->async ? b.r->step_time / s->ntok : b.r->step_time;
		w->sps = (double)m->pipe.B / w->step;
		w->bubble = b.r->bubble_fraction;
		w->peak = pipec_peak_memory(m, b.round);
		w->fits = !pl->limit || (double)w->peak <= pl->limit;
		t[4] = now();
	}
	if (m && t[2] < t[1])
		t[2] = t[3];    /* partition failed: its time ran to t[3] */
	for (int i = 0; i < 4; i++)
		pl->phase[i] += t[i + 1] - t[i];
	if (m) {
		pl->kind_time[m->pipe.sched] += t[4] - t[0];
		pl->kind_n[m->pipe.sched]++;
	}
	diag_capture(NULL, 0);
	if (rc == -3)
		pl->internal = 1;
	if (rc && !pl->reason[0])
		snprintf(pl->reason, sizeof pl->reason, "%s", why);
	diag_set_errors(errs);
	pool_release(mark);
	pl->tried++;
	return rc;
}

/* Whether w fits with every stage recomputing ratio r.  The partitioner's
 * memory bound does not know recompute: partition = auto under memory =
 * the limit first, then without it. */
static int fits_at(Plan *pl, Row *w, double r)
{
	for (int ms = 1; ms >= 0; ms--) {
		w->recompute = r;
		w->mem_set = ms;
		if (evaluate(pl, w) == 0 && w->fits)
			return 1;
	}
	return 0;
}

/* One configuration: without a limit as it is; with one, partition under
 * it and the least recompute that fits, else the plain row marked as not
 * fitting. */
static void candidate(Plan *pl, int P, int R, int M, const char *sched, int kind)
{
	Row w = { .P = P, .R = R, .M = M };
	snprintf(w.sched, sizeof w.sched, "%s", sched);
	if (pl->limit > 0) {
		/* the least recompute that fits: none first (most configurations
		 * that fit at all fit so), then all of it (a configuration that
		 * does not fit even so is given up at once: the schedules are
		 * the cost, zb-auto's search above all), then the levels between */
		Row all;
		int n = sizeof recompute_levels / sizeof *recompute_levels;
		/* whatever the partition, schedule and recompute, some rank holds
		 * a P-th of the parameters' state: over the limit, nothing fits */
		int trains = kind != SK_INFERENCE && kind != SK_GENERATE;
		if ((trains ? pl->state : pl->weights) / P > pl->limit)
			goto plain;
		if (fits_at(pl, &w, recompute_levels[0]))
			goto keep;
		if (!fits_at(pl, &w, recompute_levels[n - 1]))
			goto plain;
		all = w;
		for (int i = 1; i < n - 1; i++)
			if (fits_at(pl, &w, recompute_levels[i]))
				goto keep;
		w = all;
keep:
		w.order = pl->rows.n;
		VEC_PUSH(pl->rows, w);
		return;
plain:
		w.recompute = 0;
		w.mem_set = 0;
	}
	if (evaluate(pl, &w) == 0) {
		w.order = pl->rows.n;
		VEC_PUSH(pl->rows, w);
	}
}

static int row_cmp(const void *pa, const void *pb)
{
	const Row *a = pa, *b = pb;
	if (a->fits != b->fits)
		return b->fits - a->fits;
	/* equal up to rounding (under costs that do not price a call, such
	 * as --weight-bandwidth off, one stage's M changes only the order in
	 * which the same work is summed): fewer, larger micro-batches first --
	 * the per-call overheads such costs leave out favour them -- then the
	 * smaller peak */
	if (fabs(a->sps - b->sps) > 1e-9 * fmax(a->sps, b->sps))
		return a->sps > b->sps ? -1 : 1;
	if (a->M != b->M)
		return a->M - b->M;
	if (a->peak != b->peak)
		return a->peak < b->peak ? -1 : 1;
	return a->order - b->order;
}

static const char *recompute_text(const Row *w)
{
	return w->recompute > 0 ? xprintf("%g", w->recompute) : "none";
}

/* auto+mem: partition = auto with memory = the limit among the --sets */
static const char *partition_text(const Row *w)
{
	return w->mem_set ? "auto+mem" : "auto";
}

static void print_rows(const Plan *pl, int top)
{
	int csv = !strcmp(pl->po->format, "csv");
	int n = top > 0 && top < pl->rows.n ? top : pl->rows.n;
	if (csv)
		printf("stages,replicas,schedule,microbatches,partition,recompute,step_time,"
		       "samples_per_s,bubble_fraction,peak_memory,fits\n");
	else
		printf("%6s %8s  %-22s %5s %-9s %9s %12s %12s %7s %14s %4s\n", "stages",
		       "replicas", "schedule", "M", "partition", "recompute", "step_time",
		       "samples/s", "bubble", "peak_memory", "fits");
	for (int i = 0; i < n; i++) {
		const Row *w = &pl->rows.v[i];
		if (csv)
			printf("%d,%d,%s,%d,%s,%s,%.9g,%.9g,%.9g,%lld,%s\n", w->P, w->R,
			       strchr(w->sched, ',') ? xprintf("\"%s\"", w->sched) : w->sched, w->M,
			       partition_text(w), recompute_text(w), w->step, w->sps, w->bubble, (long long)w->peak,
			       w->fits ? "yes" : "no");
		else
			printf("%6d %8d  %-22s %5d %-9s %9s %12.6g %12.6g %7.4f %14lld %4s\n", w->P,
			       w->R, w->sched, w->M, partition_text(w), recompute_text(w), w->step, w->sps,
			       w->bubble, (long long)w->peak, w->fits ? "yes" : "no");
	}
	if (!csv && n < pl->rows.n)
		printf("(%d more rows; --top shows the first %d)\n", pl->rows.n - n, n);
}

int plan_main(const Program *prog, const PlanOptions *po)
{
	Plan pl = { .prog = prog, .po = po };
	double t0 = now();
#ifdef __GLIBC__
	/* every candidate frees what the last one allocated: keep the pages
	 * rather than return them to the system and fault them in again */
	mallopt(M_TRIM_THRESHOLD, 512 << 20);
	mallopt(M_MMAP_THRESHOLD, 64 << 20);
#endif
	const char *env = getenv("PIPEC_PLAN_TIMES");
	pl.timing = env && *env && strcmp(env, "0");
	long N = int_arg(po->ranks, 1 << 16);
	if (N < 0) {
		fprintf(stderr, "pipec: --ranks needs a whole number from 1 to 65536, not '%s'\n"
		        "Try 'pipec --help' for more information.\n", po->ranks);
		return 2;
	}
	long top = po->top ? int_arg(po->top, 1L << 30) : 0;
	if (top < 0) {
		fprintf(stderr, "pipec: --top needs a positive whole number, not '%s'\n"
		        "Try 'pipec --help' for more information.\n", po->top);
		return 2;
	}
	if (po->memory && (pl.limit = size_arg(po->memory)) < 1) {
		fprintf(stderr, "pipec: --memory needs a size such as 16GiB, 512MiB, 2GB or a "
		        "byte count, not '%s'\nTry 'pipec --help' for more information.\n",
		        po->memory);
		return 2;
	}

	unsigned char want[SK_COUNT];
	memset(want, !po->schedules, sizeof want);
	for (const char *p = po->schedules; p && *p;) {
		size_t len = strcspn(p, ",");
		char *name = xstrndup(p, len);
		int k = sched_kind_from_name(name);
		if (k < 0 || k == SK_FILE) {
			fprintf(stderr, "pipec: --schedules: unknown schedule '%s'\n"
			        "Try 'pipec --help' for more information.\n", name);
			return 2;
		}
		want[k] = 1;
		p += len + (p[len] == ',');
	}

	/* the file as it is (with the user's --sets): its errors are the
	 * user's to see; it gives the batch, the layers and the file's memory */
	IrModel *base = sema_check(prog, po->sets, po->nsets);
	if (!base)
		return 1;
	if (!po->memory)
		pl.limit = base->pipe.memory_cap;
	pl.B = base->pipe.B;
	int layers = base->nlayers;
	{
		/* memplan_memory()'s count at its least: one weight version,
		 * no tied copy, no arena */
		const Pipeline *pp = &base->pipe;
		int training = pp->optim != OPT_NONE;
		int moments = pp->optim == OPT_ADAM ? 2 : pp->optim == OPT_SGD && pp->momentum > 0;
		int state = training ? moments + (pp->dtype != DT_F32) : 0;
		double n = 0;
		for (int l = 0; l < base->nlayers; l++)
			n += (double)base->layers[l].nparam_elems;
		pl.state = 4 * n * (1 + training + state);
		pl.weights = 4 * n;
	}

	for (int P = 1; P <= N && P <= layers; P++) {
		if (N % P)
			continue;
		int R = (int)(N / P);
		if (pl.B % R)
			continue;
		long long per = pl.B / R;
		for (int k = 0; k < SK_COUNT; k++) {
			if (k == SK_FILE || !want[k] || (!po->schedules && (k == SK_PIPEDREAM
			                                                  || k == SK_2BW)))
				continue;
			for (int V = kind_has_v[k] ? 2 : 1; V <= (kind_has_v[k] ? PLAN_MAX_V : 1)
			     && P * V <= layers; V++) {
				for (int z = 1; z <= (k == SK_ZBAUTO ? 2 : 1); z++) {
					const char *sched = k == SK_ZBAUTO
					        ? xprintf("zb-auto(memory = %d)", z)
					        : kind_has_v[k] ? xprintf("%s(%d)", kind_names[k], V)
					        : kind_names[k];
					for (long long M = 1; M <= per; M++)
						if (per % M == 0)
							candidate(&pl, P, R, (int)M, sched, k);
				}
			}
		}
	}
	if (pl.timing) {
		fprintf(stderr, "plan_time: %.6f s, %d candidates tried, %d rows\n", now() - t0,
		        pl.tried, pl.rows.n);
		static const char *const names[] = { "check", "partition", "schedule", "memory" };
		for (int i = 0; i < 4; i++)
			fprintf(stderr, "plan_phase %s: %.6f s\n", names[i], pl.phase[i]);
		for (int k = 0; k < SK_COUNT; k++)
			if (pl.kind_n[k])
				fprintf(stderr, "plan_kind %s: %.6f s, %d tries\n", kind_names[k],
				        pl.kind_time[k], pl.kind_n[k]);
	}
	if (pl.internal)
		return 3;
	if (!pl.rows.n) {
		fprintf(stderr, "pipec: error: no configuration of %ld ranks: %s\n", N,
		        pl.reason[0] ? pl.reason : "the batch does not divide among the replicas");
		return 1;
	}
	qsort(pl.rows.v, (size_t)pl.rows.n, sizeof *pl.rows.v, row_cmp);

	int fit = 0;
	for (int i = 0; i < pl.rows.n; i++)
		fit += pl.rows.v[i].fits;
	if (!strcmp(po->format, "text")) {
		printf("# %s over %ld ranks: %d configurations, %d fit%s; %d candidates tried\n",
		       base->name, N, pl.rows.n, fit,
		       pl.limit > 0 ? xprintf(" in %.0f bytes per rank", pl.limit) : " (no memory limit)",
		       pl.tried);
		printf("# best first: fitting rows by samples/s; step_time in the cost's units"
		       " (--cost %s)\n", po->copt->text ? po->copt->text : "model");
	}
	print_rows(&pl, (int)top);
	if (!fit) {
		const Row *w = &pl.rows.v[0];
		int64_t least = w->peak;
		for (int i = 1; i < pl.rows.n; i++)
			if (pl.rows.v[i].peak < least)
				least = pl.rows.v[i].peak, w = &pl.rows.v[i];
		fflush(stdout);
		fprintf(stderr, "pipec: error: nothing fits memory = %.0f bytes per rank: the "
		        "smallest peak is %lld bytes (stages=%d, replicas=%d, schedule=%s, "
		        "microbatches=%d, recompute %s)\n", pl.limit, (long long)least, w->P, w->R,
		        w->sched, w->M, recompute_text(w));
		return 1;
	}
	const char *texts[8];
	int n = row_sets(&pl, &pl.rows.v[0], texts);
	printf("best:");
	for (int i = 0; i < n; i++)
		printf(i == 2 || strpbrk(texts[i], "()[] ,") ? " --set '%s'" : " --set %s", texts[i]);
	printf("\n");
	if (fflush(stdout) != 0)
		fail_io("cannot write the output");
	return 0;
}
