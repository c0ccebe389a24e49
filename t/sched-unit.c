/* sched-unit.c — schedules: generators, lowering, verifier, simulator,
 * memory, formats and custom files, against published formulas, sweeps,
 * round trips, PyTorch's own orders and deliberately broken programs.
 *
 * Tests that expect a diagnostic run in a child process (fork) with stderr
 * captured, so each starts from a fresh error count.
 */
#define _POSIX_C_SOURCE 200809L
#include "sched_interp.h"
#include "tap.h"

#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const Loc nowhere;

/* ---- helpers ---- */

static char last_report[4096];

static void report(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_report, sizeof last_report, fmt, ap);
	va_end(ap);
}

static SchedSpec spec(int kind, int P, int V, int M, int R, int training)
{
	return (SchedSpec){ kind, P, V, M, R, training, 1, 0, NULL, NULL, 1, NULL, 0, NULL, NULL,
	                    NULL, 0 };
}

static Schedule *build(const SchedSpec *sp)
{
	Schedule *s = sched_generate(sp, nowhere);
	if (s)
		sched_lower(s, sp);
	return s;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static const char *tmpdir(void)
{
	const char *t = getenv("TMPDIR");
	return t && *t ? t : "/tmp";
}

static char *write_tmp(const char *text, const char *suffix)
{
	char *path = xprintf("%s/sched-unit-XXXXXX", tmpdir());
	int fd = mkstemp(path);
	if (fd < 0)
		return NULL;
	char *named = xprintf("%s%s", path, suffix);
	if (rename(path, named) != 0) {
		close(fd);
		return NULL;
	}
	FILE *fp = fdopen(fd, "w");
	fputs(text, fp);
	fclose(fp);
	return named;
}

/* Writes s with writer into a temporary file; returns its path. */
static char *dump(const Schedule *s, int torch)
{
	char *path = write_tmp("", torch ? ".torch.csv" : ".csv");
	FILE *fp = fopen(path, "w");
	if (torch)
		sched_write_torch(fp, s);
	else
		sched_write_csv(fp, s);
	fclose(fp);
	return path;
}

/* "" if a and b are the same program, else what differs. */
static const char *differs(const Schedule *a, const Schedule *b)
{
	static char why[256];
	if (a->nranks != b->nranks || a->P != b->P || a->S != b->S || a->M != b->M
	    || a->R != b->R || a->split != b->split || a->training != b->training)
		return "shape (nranks, P, S, M, R, split or training)";
	for (int st = 0; st < a->S; st++)
		if (a->stage_rank[st] != b->stage_rank[st])
			return "placement";
	for (int k = 0; k < a->nranks; k++) {
		if (a->rank[k].n != b->rank[k].n) {
			snprintf(why, sizeof why, "rank %d has %d vs %d actions", k,
			         a->rank[k].n, b->rank[k].n);
			return why;
		}
		for (int i = 0; i < a->rank[k].n; i++)
			if (memcmp(&a->rank[k].a[i], &b->rank[k].a[i], sizeof(Action))) {
				snprintf(why, sizeof why, "rank %d action %d", k, i);
				return why;
			}
	}
	return "";
}

/* Round trip through a file: "" when the program read back is the same. */
static const char *roundtrip(const Schedule *s, const SchedSpec *sp, int torch)
{
	char *path = dump(s, torch);
	SchedSpec fs = *sp;
	fs.kind = SK_FILE;
	fs.path = path;
	Schedule *t = sched_read_file(&fs, nowhere);
	remove(path);
	if (!t)
		return "the file did not read back";
	sched_lower(t, &fs);
	return differs(s, t);
}

/* Runs fn in a child with stderr captured; returns the text and sets *rc to
 * the child's exit status (its return value). */
static char *isolated(int (*fn)(void *), void *arg, int *rc)
{
	int fd[2];
	fflush(stdout);
	fflush(stderr);
	if (pipe(fd))
		return xstrdup("(pipe failed)");
	pid_t pid = fork();
	if (pid == 0) {
		close(fd[0]);
		dup2(fd[1], 2);
		int r = fn(arg);
		fflush(stderr);
		_exit(r & 0xff);
	}
	close(fd[1]);
	size_t cap = 4096, len = 0;
	char *buf = xalloc(cap);
	ssize_t got;
	while ((got = read(fd[0], buf + len, cap - len - 1)) > 0) {
		len += (size_t)got;
		if (cap - len < 2) {
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
	}
	buf[len] = 0;
	close(fd[0]);
	int status = 0;
	waitpid(pid, &status, 0);
	*rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
	return buf;
}

/* ---- a custom file, as `schedule = file(...)` meets it ---- */

typedef struct FileCase {
	const char *text;
	SchedSpec sp;
} FileCase;

/* 1: not read; 2: read but refused by the verifier; 0: accepted. */
static int run_file(void *arg)
{
	FileCase *fc = arg;
	char *path = write_tmp(fc->text, ".csv");
	SchedSpec sp = fc->sp;
	sp.kind = SK_FILE;
	sp.path = path;
	Schedule *s = sched_read_file(&sp, nowhere);
	remove(path);
	if (!s)
		return 1;
	sched_lower(s, &sp);
	return sched_verify(s, report) ? 2 : 0;
}

static void file_case(const char *what, const char *text, SchedSpec sp, int want_rc,
                      const char *want1, const char *want2)
{
	FileCase fc = { text, sp };
	int rc;
	char *out = isolated(run_file, &fc, &rc);
	int pass = rc == want_rc && (!want1 || strstr(out, want1)) && (!want2 || strstr(out, want2));
	if (!ok(pass, "%s", what)) {
		diagf("  exit %d (want %d); wanted \"%s\"%s%s%s", rc, want_rc, want1 ? want1 : "",
		      want2 ? " and \"" : "", want2 ? want2 : "", want2 ? "\"" : "");
		diagf("  got: %s", out);
	}
}

/* A program text with one line removed and rank `rank`'s indices renumbered. */
static char *csv_without(const Schedule *s, const char *drop)
{
	char *path = dump(s, 0);
	FILE *fp = fopen(path, "r");
	char line[256];
	size_t cap = 1 << 16, len = 0;
	char *out = xalloc(cap);
	int cur = -1, idx = 0;
	while (fgets(line, sizeof line, fp)) {
		if (strcmp(line, drop) == 0)
			continue;
		int r, i;
		char rest[200];
		if (sscanf(line, "%d,%d,%199s", &r, &i, rest) == 3) {
			if (r != cur) {
				cur = r;
				idx = 0;
			}
			snprintf(line, sizeof line, "%d,%d,%s\n", r, idx++, rest);
		}
		size_t l = strlen(line);
		if (len + l + 1 > cap)
			out = xrealloc(out, cap *= 2);
		memcpy(out + len, line, l + 1);
		len += l;
	}
	fclose(fp);
	remove(path);
	return out;
}

/* ---- generator errors ---- */

static int gen_only(void *arg)
{
	return sched_generate(arg, nowhere) ? 0 : 1;
}

static void test_generate_errors(void)
{
	int rc;
	SchedSpec sp = spec(SK_INTERLEAVED, 4, 2, 6, 1, 1);
	char *out = isolated(gen_only, &sp, &rc);
	ok(rc == 1 && strstr(out, "multiple of the number of stages")
	   && strstr(out, "microbatches = 8"),
	   "interleaved with M %% P != 0 is refused, suggesting microbatches = 8");
	if (rc != 1)
		diagf("  got: %s", out);
}

/* ---- asynchronous schedules: pipedream, pipedream-2bw ---- */

/* The updates in the weights rank p computes key k with, as the spec
 * states them (docs/schedules.md, "pipedream and pipedream-2bw"), counted
 * independently of sched_async_version: pipedream max(0, k - (P-s) + 1)
 * at the default depth (k - lag in general); 2bw max(0, k/M - 1). */
static int spec_updates(const Schedule *s, int p, int k)
{
	int v = s->kind == SK_2BW ? k / s->M - 1 : k - s->lag[p];
	return v > 0 ? v : 0;
}

static void test_async(void)
{
	static const int kinds[] = { SK_PIPEDREAM, SK_2BW };
	int cases = 0, bad_verify = 0, bad_count = 0, bad_formula = 0, bad_template = 0;
	for (int ki = 0; ki < 2; ki++)
		for (int P = 1; P <= 5; P++)
			for (int M = P; M <= P + 3; M++)
				for (int steps = 1; steps <= 4; steps++)
					for (int shallow = 0; shallow <= (kinds[ki] == SK_PIPEDREAM); shallow++) {
		SchedSpec sp = spec(kinds[ki], P, 1, M, 1, 1);
		sp.steps = steps;
		int inflight[8];
		for (int r = 0; r < P; r++)             /* VPipe's knob: shallower, non-increasing */
			inflight[r] = shallow ? (P - r + 1) / 2 : P - r;
		sp.inflight = inflight;
		Schedule *s = sched_async(&sp);
		cases++;
		if (sched_verify(s, report) != 0) {
			if (bad_verify++ == 0)
				diagf("%s P=%d M=%d steps=%d: %s", sched_kind_name(kinds[ki]), P, M, steps,
				      last_report);
			continue;
		}
		for (int p = 0; p < P; p++) {
			const ActList *l = &s->rank[p];
			int optims = 0, updates = 0;
			for (int i = 0; i < l->n; i++) {
				const Action *a = &l->a[i];
				if (a->op == OP_OPTIM) {
					optims++;
					updates++;
				}
				/* the version an F names holds exactly the spec's updates:
				 * its formula, and the program's own count of OPTIMs for
				 * pipedream (the newest weights) */
				if (a->op == OP_F) {
					int want = spec_updates(s, p, a->mb);
					int v = a->ver > 0 ? a->ver : 0;
					if (v != want || (s->kind == SK_PIPEDREAM && updates != want
					                  && a->mb >= s->lag[p]))
						bad_formula++;
				}
			}
			if (optims != (s->kind == SK_2BW ? steps : steps * M))
				bad_count++;
			/* the emitted program is the template with guards: step t of the
			 * stream is the template's actions whose key t*M + rel exists */
			Schedule *tp = sched_async_template(s);
			int at = 0;
			for (int t = 0; t <= steps; t++)
				for (int i = 0; i < tp->rank[p].n; i++) {
					Action a = tp->rank[p].a[i];
					int k = t * M + a.mb;
					if (k < 0 || k >= steps * M)
						continue;
					if (at >= l->n || l->a[at].op != a.op || l->a[at].mb != k
					    || l->a[at].peer != a.peer
					    || (a.op != OP_OPTIM && a.ver + t * (s->kind == SK_2BW ? 1 : M)
					        != l->a[at].ver && (a.op == OP_F || a.op == OP_B))) {
						bad_template++;
						t = steps + 1;
						break;
					}
					at++;
				}
			if (at != l->n && bad_template == 0)
				bad_template++;
		}
	}
	ok(bad_verify == 0, "async: %d pipedream/2bw streams (P 1..5, M P..P+3, 1..4 steps, "
	   "default and shallow inflight) verify", cases);
	ok(bad_formula == 0, "async: every F computes with the spec's version "
	   "(max(0, k-(P-s)+1) updates; 2bw: max(0, k/M-1)) (%d off)", bad_formula);
	ok(bad_count == 0, "async: one OPTIM per micro-batch (pipedream) or per step (2bw)");
	ok(bad_template == 0, "async: the stream is the emitted step with its guards, step "
	   "after step (%d off)", bad_template);

	/* Memory: rank r keeps min(P - r, inflight) micro-batches in flight. */
	SchedSpec sp = spec(SK_PIPEDREAM, 4, 1, 6, 1, 1);
	sp.steps = 3;
	Schedule *s = sched_async(&sp);
	double act[4] = { 1, 1, 1, 1 }, peak[4];
	int mbs[4];
	sched_memory(s, act, peak, mbs);
	ok(mbs[0] == 4 && mbs[1] == 3 && mbs[2] == 2 && mbs[3] == 1,
	   "pipedream P=4: in flight 4 3 2 1 (got %d %d %d %d)", mbs[0], mbs[1], mbs[2], mbs[3]);
	int shallow[4] = { 2, 2, 1, 1 };
	sp.inflight = shallow;
	s = sched_async(&sp);
	sched_memory(s, act, peak, mbs);
	ok(mbs[0] == 2 && mbs[1] == 2 && mbs[2] == 1 && mbs[3] == 1,
	   "pipedream inflight [2,2,1,1]: in flight 2 2 1 1 (got %d %d %d %d)",
	   mbs[0], mbs[1], mbs[2], mbs[3]);

	/* The verifier catches what weight stashing is for. */
	struct { const char *what, *needle; int kind; } broken[] = {
		{ "a backward with the newest weights instead of its forward's",
		  "no weight stashing", SK_PIPEDREAM },
		{ "one weight slot too few", "still compute", SK_PIPEDREAM },
		{ "an update before the backward it applies", "has not run", SK_PIPEDREAM },
		{ "a 2bw forward with the newest weights", "must see", SK_2BW },
	};
	for (int c = 0; c < 4; c++) {
		SchedSpec b = spec(broken[c].kind, 3, 1, 4, 1, 1);
		b.steps = 3;
		Schedule *x = sched_async(&b);
		ActList *l = &x->rank[0];
		int done = 0;
		for (int i = 0; i < l->n && !done; i++) {
			Action *a = &l->a[i];
			if (c == 0 && a->op == OP_B && a->mb == 4) {
				a->ver += 1;
				done = 1;
			} else if (c == 1) {
				x->nver[0] -= 1;
				done = 1;
			} else if (c == 2 && a->op == OP_OPTIM && i > 0) {
				Action t = l->a[i - 1];   /* swap the OPTIM before its B */
				l->a[i - 1] = *a;
				*a = t;
				done = 1;
			} else if (c == 3 && a->op == OP_F && a->mb == 8) {
				a->ver += 1;
				done = 1;
			}
		}
		last_report[0] = 0;
		int rc = sched_verify(x, report);
		ok(done && rc != 0 && strstr(last_report, broken[c].needle),
		   "async verifier refuses %s", broken[c].what);
		if (rc == 0 || !strstr(last_report, broken[c].needle))
			diagf("  got: %s", last_report);
	}
}

/* ---- the sweep: verify, bubble formulas, memory ---- */

static void test_sweep(void)
{
	static const int kinds[] = { SK_NAIVE, SK_GPIPE, SK_1F1B, SK_ZBH1, SK_INFERENCE,
	                             SK_INTERLEAVED, SK_ZBH2 };
	int programs = 0, unsound = 0, bubble_bad = 0, formulas = 0, replica_bad = 0;
	int zb_checked = 0, zb_bad = 0, peak_bad = 0, peaks = 0, zbmem_bad = 0;
	int overlap_bad = 0;
	char first_unsound[256] = "", first_bubble[256] = "", first_peak[256] = "";
	for (size_t ki = 0; ki < sizeof kinds / sizeof *kinds; ki++)
		for (int P = 1; P <= 16; P++)
			for (int M = 1; M <= 64; M++)
				for (int V = 1; V <= 4; V++)
					for (int R = 1; R <= 2; R++)
						for (int tr = 0; tr <= 1; tr++) {
		int kind = kinds[ki];
		if ((kind == SK_INTERLEAVED) != (V > 1))
			continue;
		if (kind == SK_INTERLEAVED && M % P)
			continue;
		if (kind == SK_INFERENCE && tr)
			continue;
		/* replicas and forward-only on a lighter grid */
		if ((R > 1 || !tr) && !(P <= 8 && M <= 24) && !(P == 16 && M == 64))
			continue;
		SchedSpec sp = spec(kind, P, V, M, R, tr);
		Schedule *s = build(&sp);
		programs++;
		last_report[0] = 0;
		if (!s || sched_verify(s, report)) {
			if (!unsound++)
				snprintf(first_unsound, sizeof first_unsound, "%s P=%d V=%d M=%d R=%d "
				         "training=%d: %.150s", sched_kind_name(kind), P, V, M, R, tr,
				         s ? last_report : "not generated");
			continue;
		}
		SimResult *r = sched_simulate(s, simcost_uniform(s));
		for (int k = 0; k < s->nranks; k++)
			for (int i = 1; i < s->rank[k].n; i++)
				if (r->start[k][i] < r->end[k][i - 1] - 1e-12)
					overlap_bad++;
		double want = -1, ff = (double)(P - 1) / (M + P - 1);
		if (!s->training)
			want = kind == SK_INTERLEAVED ? (double)(P - 1) / (V * M + P - 1) : ff;
		else if (kind == SK_GPIPE || kind == SK_1F1B)
			want = ff;
		else if (kind == SK_INTERLEAVED)
			want = (double)(P - 1) / (V * M + P - 1);
		else if (kind == SK_NAIVE)
			want = (double)(P - 1) / P;
		else if (kind == SK_ZBH1 && M >= P)
			want = (double)(P - 1) / (3 * M + P - 1);
		else if (kind == SK_ZBH2 && M >= 2 * P - 1)
			want = (double)(P - 1) / (3 * M + P - 1);
		if (kind == SK_ZBH2 && s->training && M >= 2 * P - 1 && fabs(r->bubble_rate) > 1e-9
		    && !bubble_bad++)
			snprintf(first_bubble, sizeof first_bubble, "zb-h2 P=%d M=%d R=%d: bubble_rate "
			         "%.12g, want 0", P, M, R, r->bubble_rate);
		if (kind == SK_INTERLEAVED && !s->training)
			want = -1;      /* chunks are F = 1/V: no published formula */
		if (want >= 0) {
			formulas++;
			if (fabs(r->bubble_fraction - want) > 1e-9 && !bubble_bad++)
				snprintf(first_bubble, sizeof first_bubble, "%s P=%d V=%d M=%d R=%d "
				         "training=%d: %.12g, want %.12g", sched_kind_name(kind), P, V,
				         M, R, tr, r->bubble_fraction, want);
		}
		if (kind == SK_ZBH1 && tr && M >= P && P > 1) {
			zb_checked++;
			if (!(r->bubble_fraction < 0.7 * ff))
				zb_bad++;
		}
		if (R == 2) {
			SchedSpec one = spec(kind, P, V, M, 1, tr);
			Schedule *s1 = build(&one);
			SimResult *r1 = sched_simulate(s1, simcost_uniform(s1));
			if (fabs(r1->bubble_fraction - r->bubble_fraction) > 1e-12)
				replica_bad++;
		}
		int *pm = xalloc((size_t)s->nranks * sizeof *pm);
		sched_memory(s, NULL, NULL, pm);
		for (int k = 0; k < s->nranks; k++) {
			int p = k % P, w = -1;
			if (!s->training)
				w = 1;
			else if (kind == SK_1F1B)
				w = P - p < M ? P - p : M;
			else if (kind == SK_GPIPE)
				w = M;
			else if (kind == SK_NAIVE)
				w = 1;
			if (kind == SK_ZBH1 && s->training && pm[k] > (P < M ? P : M))
				zbmem_bad++;
			if (kind == SK_ZBH2 && s->training && pm[k] > (2 * P - 1 < M ? 2 * P - 1 : M))
				zbmem_bad++;
			if (w < 0)
				continue;
			peaks++;
			if (pm[k] != w && !peak_bad++)
				snprintf(first_peak, sizeof first_peak, "%s P=%d M=%d R=%d training=%d "
				         "rank %d: peak %d, want %d", sched_kind_name(kind), P, M, R, tr,
				         k, pm[k], w);
		}
	}
	ok(unsound == 0, "sweep: all %d programs verify (P 1..16, M 1..64, V 1..4, R 1..2, "
	   "training and forward-only)", programs);
	if (unsound)
		diagf("  %d unsound, first: %s", unsound, first_unsound);
	ok(bubble_bad == 0, "uniform bubble equals the published formulas in %d cases "
	   "(gpipe, 1f1b, forward-only: (P-1)/(M+P-1); interleaved (P-1)/(VM+P-1); "
	   "naive (P-1)/P; zb-h1 (P-1)/(3M+P-1) at M >= P; zb-h2 the same at M >= 2P-1, and "
	   "its bubble_rate 0)", formulas);
	if (bubble_bad)
		diagf("  %d wrong, first: %s", bubble_bad, first_bubble);
	ok(zb_checked > 100 && zb_bad == 0, "zb-h1's bubble is under 0.7 x 1f1b's once M >= P "
	   "(%d cases, %d not)", zb_checked, zb_bad);
	is_int(replica_bad, 0, "replicas do not change the uniform bubble");
	ok(peak_bad == 0, "peak in-flight: 1f1b min(P-r, M), gpipe M, naive and forward-only 1 "
	   "(%d ranks checked)", peaks);
	if (peak_bad)
		diagf("  %d wrong, first: %s", peak_bad, first_peak);
	is_int(zbmem_bad, 0, "zb-h1 never holds more than 1f1b's peak, min(P, M); zb-h2 more "
	       "than min(2P-1, M)");
	is_int(overlap_bad, 0, "simulated actions on a rank never overlap");
}

/* ---- zb-auto: every result sound, within its memory, no slower than zb-h1 ----
 * Uniform costs (spec.cost NULL: F = B = W = 1, messages free) and one unit
 * of memory a micro-batch (mem_W a half): the limit is R x min(P, M), counted
 * here from the order itself. */
static void test_zbauto(void)
{
	static const double mems[] = { 1, 1.5, 2 };
	int programs = 0, unsound = 0, over = 0, slower = 0, same = 0;
	char first[256] = "";
	for (int P = 1; P <= 6; P++)
		for (int M = 1; M <= 12; M++)
			for (int R = 1; R <= 2; R++)
				for (size_t mi = 0; mi < sizeof mems / sizeof *mems; mi++) {
		if (R > 1 && M % 3)
			continue;
		SchedSpec sp = spec(SK_ZBAUTO, P, 1, M, R, 1);
		sp.zb_memory = mems[mi];
		Schedule *s = build(&sp);
		programs++;
		last_report[0] = 0;
		if (!s || sched_verify(s, report)) {
			if (!unsound++)
				snprintf(first, sizeof first, "P=%d M=%d R=%d memory=%g: %.150s", P, M, R,
				         mems[mi], s ? last_report : "not generated");
			continue;
		}
		double limit = mems[mi] * (P < M ? P : M);
		for (int k = 0; k < s->nranks; k++) {
			double mem = 0, peak = 0;
			for (int i = 0; i < s->rank[k].n; i++) {
				int op = s->rank[k].a[i].op;
				mem += op == OP_F ? 1 : op == OP_B ? -0.5 : op == OP_W ? -0.5 : 0;
				peak = mem > peak ? mem : peak;
			}
			if (peak > limit + 1e-9)
				over++;
		}
		SchedSpec h1 = spec(SK_ZBH1, P, 1, M, R, 1);
		Schedule *z = build(&h1);
		double ta = sched_simulate(s, simcost_uniform(s))->step_time;
		double tz = sched_simulate(z, simcost_uniform(z))->step_time;
		if (ta > tz + 1e-9)
			slower++;
		/* determinism: a second search gives the same program */
		Schedule *s2 = build(&sp);
		int diff = 0;
		for (int k = 0; k < s->nranks && !diff; k++) {
			diff = s->rank[k].n != s2->rank[k].n;
			for (int i = 0; i < s->rank[k].n && !diff; i++)
				diff = memcmp(&s->rank[k].a[i], &s2->rank[k].a[i], sizeof(Action)) != 0;
		}
		same += !diff;
	}
	ok(unsound == 0, "zb-auto: all %d programs verify (P 1..6, M 1..12, R 1..2, memory 1, "
	   "1.5, 2)", programs);
	if (unsound)
		diagf("  %d unsound, first: %s", unsound, first);
	is_int(over, 0, "zb-auto never holds more than memory x min(P, M) micro-batches' "
	       "activations (W's half)");
	is_int(slower, 0, "zb-auto's step is never longer than zb-h1's (uniform costs)");
	is_int(same, programs, "zb-auto gives the same program on a second search");
}

/* ---- round trips ---- */

static void test_roundtrips(void)
{
	static const int kinds[] = { SK_NAIVE, SK_GPIPE, SK_1F1B, SK_ZBH1, SK_INFERENCE,
	                             SK_INTERLEAVED };
	static const int Ps[] = { 1, 2, 3, 4, 5, 8, 16 };
	static const int Ms[] = { 1, 2, 3, 4, 5, 7, 8, 16, 17, 64 };
	unsigned char rc[64];
	for (int i = 0; i < 64; i++)
		rc[i] = i % 3 == 1;
	int csv_n = 0, csv_bad = 0, torch_n = 0, torch_bad = 0;
	char first_csv[300] = "", first_torch[300] = "";
	for (size_t ki = 0; ki < sizeof kinds / sizeof *kinds; ki++)
		for (size_t pi = 0; pi < sizeof Ps / sizeof *Ps; pi++)
			for (size_t mi = 0; mi < sizeof Ms / sizeof *Ms; mi++)
				for (int R = 1; R <= 2; R++)
					for (int tr = 0; tr <= 1; tr++)
						for (int rcp = 0; rcp <= 1; rcp++) {
		int kind = kinds[ki], P = Ps[pi], M = Ms[mi];
		int V = kind == SK_INTERLEAVED ? 2 + (P + M) % 3 : 1;
		if (kind == SK_INTERLEAVED && M % P)
			continue;
		if ((kind == SK_INFERENCE || !tr) && rcp)
			continue;
		if (kind == SK_INFERENCE && tr)
			continue;
		SchedSpec sp = spec(kind, P, V, M, R, tr);
		sp.recompute = rcp ? rc : NULL;
		Schedule *s = build(&sp);
		const char *why = roundtrip(s, &sp, 0);
		csv_n++;
		if (*why && !csv_bad++)
			snprintf(first_csv, sizeof first_csv, "%s P=%d V=%d M=%d R=%d training=%d "
			         "recompute=%d: %s", sched_kind_name(kind), P, V, M, R, tr, rcp, why);
		if (R > 1 || rcp)
			continue;
		why = roundtrip(s, &sp, 1);
		torch_n++;
		if (*why && !torch_bad++)
			snprintf(first_torch, sizeof first_torch, "%s P=%d V=%d M=%d training=%d: "
			         "%s", sched_kind_name(kind), P, V, M, tr, why);
	}
	ok(csv_bad == 0, "--format csv read back with file(...) is the same program (%d "
	   "schedules, replicas and recompute included)", csv_n);
	if (csv_bad)
		diagf("  %d differ, first: %s", csv_bad, first_csv);
	ok(torch_bad == 0, "--format torch read back and lowered is the same program (%d "
	   "schedules)", torch_n);
	if (torch_bad)
		diagf("  %d differ, first: %s", torch_bad, first_torch);

	/* compute-only pipec CSV: lowering adds the same communication */
	SchedSpec sp = spec(SK_1F1B, 4, 1, 8, 2, 1);
	Schedule *c = sched_generate(&sp, nowhere);
	char *path = dump(c, 0);
	Schedule *full = build(&sp);
	SchedSpec fs = sp;
	fs.kind = SK_FILE;
	fs.path = path;
	Schedule *t = sched_read_file(&fs, nowhere);
	ok(t && !t->lowered, "a compute-only pipec CSV is read as compute order");
	if (t) {
		sched_lower(t, &fs);
		is_str(differs(full, t), "", "compute-only CSV + lowering = the built-in program "
		       "(with 2 replicas)");
	}
	remove(path);
}

/* ---- recompute and lowering details ---- */

static void test_lowering(void)
{
	unsigned char rc[4] = { 0, 1, 0, 1 };
	SchedSpec sp = spec(SK_1F1B, 4, 1, 4, 2, 1);
	sp.recompute = rc;
	Schedule *s = build(&sp);
	is_int(sched_verify(s, report), 0, "1f1b with recompute and 2 replicas verifies");
	int before = 1, count = 0;
	for (int k = 0; k < s->nranks; k++)
		for (int i = 0; i < s->rank[k].n; i++) {
			const Action *a = &s->rank[k].a[i];
			if (a->op == OP_B && rc[a->stage]) {
				count++;
				before &= i > 0 && s->rank[k].a[i - 1].op == OP_R
				          && s->rank[k].a[i - 1].stage == a->stage
				          && s->rank[k].a[i - 1].mb == a->mb;
			}
		}
	ok(before && count == 2 * 2 * 4, "R(s, m) right before every B(s, m) of a recomputed "
	   "stage (%d)", count);
	const ActList *l = &s->rank[5];  /* replica 1, pipeline rank 1 */
	ok(l->a[l->n - 1].op == OP_OPTIM && l->a[l->n - 2].op == OP_ALLREDUCE
	   && l->a[l->n - 2].stage == 1, "a replica's program ends ALLREDUCE(stage), OPTIM");
	int peers_ok = 1;
	for (int i = 0; i < l->n; i++)
		if (l->a[i].peer >= 0)
			peers_ok &= l->a[i].peer == 4 || l->a[i].peer == 6;
	ok(peers_ok, "replica 1's peers are global ranks 4 and 6");

	/* local hand-off: P = 1 interleaved sends nothing */
	sp = spec(SK_INTERLEAVED, 1, 3, 4, 1, 1);
	s = build(&sp);
	int msgs = 0;
	for (int i = 0; i < s->rank[0].n; i++)
		msgs += s->rank[0].a[i].op >= OP_SEND_F && s->rank[0].a[i].op <= OP_RECV_B;
	ok(sched_verify(s, report) == 0 && msgs == 0,
	   "P = 1 with 3 chunks: stages hand over locally, no messages");

	/* zb-h1 at P = 4, M = 8: the paper's order for the last rank */
	sp = spec(SK_ZBH1, 4, 1, 8, 1, 1);
	s = sched_generate(&sp, nowhere);
	char buf[256] = "";
	size_t len = 0;
	for (int i = 0; i < 9 && i < s->rank[3].n; i++)
		len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%d ",
		                        op_name(s->rank[3].a[i].op), s->rank[3].a[i].mb);
	is_str(buf, "F0 B0 F1 B1 F2 B2 F3 B3 W0 ", "zb-h1: the last rank postpones its "
	       "first P-1 weight gradients");

	/* forward-only training schedules keep the forward order */
	sp = spec(SK_INTERLEAVED, 2, 2, 4, 1, 0);
	s = build(&sp);
	ok(s && sched_verify(s, report) == 0 && !s->training,
	   "interleaved without an optimizer: forward only, verified");
}

/* ---- broken programs through file(...) ---- */

static void test_broken(void)
{
	SchedSpec sp2 = spec(SK_FILE, 2, 1, 2, 1, 1);
	Schedule *s = build(&(SchedSpec){ SK_1F1B, 2, 1, 2, 1, 1, 1, 0, NULL, NULL, 1, NULL, 0, NULL,
	                                   NULL, NULL, 0 });
	char *text = csv_without(s, "1,0,RECV_F,1,0,0\n");
	file_case("a dropped RECV is refused at the F that needed it", text, sp2, 2,
	          "rank 1, action 0 (F stage 1 mb 0): its input never arrives",
	          "no RECV_F of stage 1 mb 0 before it");
	file_case("... as an input error at the CSV line, with a caret", text, sp2, 2,
	          ".csv:", "error: rank 1");
	text = csv_without(s, "0,1,SEND_F,0,0,1\n");
	file_case("a dropped SEND is refused at the RECV nobody sends to", text, sp2, 2,
	          "(RECV_F stage 1 mb 0): nobody sends it", NULL);

	const char *swapped =
		"rank,index,op,stage,microbatch,peer\n"
		"0,0,F,0,0,-1\n"
		"0,1,RECV_B,0,0,1\n"
		"0,2,SEND_F,0,0,1\n"
		"0,3,B,0,0,-1\n"
		"0,4,OPTIM,-1,-1,-1\n"
		"1,0,RECV_F,1,0,0\n"
		"1,1,F,1,0,-1\n"
		"1,2,B,1,0,-1\n"
		"1,3,SEND_B,1,0,0\n"
		"1,4,OPTIM,-1,-1,-1\n";
	file_case("a swapped SEND/RECV deadlocks and is refused", swapped,
	          spec(SK_FILE, 2, 1, 1, 1, 1), 2,
	          "rank 0, action 1 (RECV_B stage 0 mb 0): deadlock", "(a cycle)");
	file_case("compute-only deadlock (rank 1 runs F1 before B0, rank 0 waits for B0)",
	          "0F0,0B0,0F1,0B1\n1F0,1F1,1B0,1B1\n", sp2, 2, "deadlock",
	          "rank 1 waits at action");
	file_case("a micro-batch run twice is refused naming both lines",
	          "0F0,0F1,0B0,0B1\n1F0,1B0,1F1,1F1,1B1\n", sp2, 1,
	          ":2:13:", "micro-batch 1 of stage 1 runs F twice (first at line 2, column 9)");
	file_case("... and in pipec's CSV names the first line",
	          "rank,index,op,stage,microbatch,peer\n0,0,F,0,0,-1\n0,1,F,0,0,-1\n",
	          spec(SK_FILE, 1, 1, 1, 1, 0), 1,
	          ":3:5: error: rank 0, action 1 (F stage 0 mb 0): micro-batch 0 of stage 0 "
	          "runs F twice (first at line 2)", NULL);
	file_case("a backward before its forward is refused",
	          "0F0,0F1,0B0,0B1\n1B0,1F0,1F1,1B1\n", sp2, 2,
	          "(B stage 1 mb 0): backward before its forward", NULL);
	file_case("a micro-batch never run is refused",
	          "rank,index,op,stage,microbatch,peer\n0,0,F,0,0,-1\n0,1,F,0,1,-1\n"
	          "0,2,B,0,0,-1\n0,3,B,0,1,-1\n1,0,F,1,0,-1\n1,1,B,1,0,-1\n1,2,B,1,1,-1\n",
	          sp2, 2, "", "mb 1");
	file_case("a stage on two ranks is refused", "0F0,0B0,0F1,0B1\n0F0,0B0\n",
	          spec(SK_FILE, 2, 1, 2, 1, 1), 1, "stage 0 runs on rank 1 here, but on rank 0 "
	          "at line 1", NULL);
	file_case("micro-batches must match `microbatches`",
	          "0F0,0F1,0B0,0B1\n1F0,1B0,1F1,1B1\n", spec(SK_FILE, 2, 1, 4, 1, 1), 1,
	          "the file has 2 micro-batches (0..1), but microbatches = 4", NULL);
	file_case("a micro-batch beyond `microbatches`",
	          "0F0,0F1,0B0,0B1\n1F0,1B0,1F1,1B1\n", spec(SK_FILE, 2, 1, 1, 1, 1), 1,
	          "micro-batch 1 is out of range: microbatches = 1", NULL);
	file_case("ranks must match `stages`", "0F0,0B0\n1F0,1B0\n",
	          spec(SK_FILE, 3, 1, 1, 1, 1), 1, "the file has 2 pipeline ranks, but the "
	          "pipeline has stages = 3", NULL);
	file_case("backward in a forward-only pipeline", "0F0,0B0\n",
	          spec(SK_FILE, 1, 1, 1, 1, 0), 1, "no optimizer", NULL);
	file_case("no backward in a training pipeline", "0F0\n",
	          spec(SK_FILE, 1, 1, 1, 1, 1), 1, "no backward", NULL);
	file_case("an empty file", "", sp2, 1, "the schedule file is empty", NULL);
	file_case("only blank lines", "\n\n  \n", sp2, 1, "the schedule file is empty", NULL);
	file_case("a header and no rows", "rank,index,op,stage,microbatch,peer\n", sp2, 1,
	          "header but no rows", NULL);
	file_case("pipec's CSV without its header gets a hint", "0,0,F,0,0,-1\n", sp2, 1,
	          "without its header", NULL);
	file_case("a wrong header", "rank,index,op,stage,mb,peer\n", sp2, 1,
	          "expected the header", NULL);
	file_case("a lower-case op gets a suggestion",
	          "rank,index,op,stage,microbatch,peer\n0,0,f,0,0,-1\n", sp2, 1,
	          ":2:5: error: unknown op 'f'; did you mean 'F'?", NULL);
	file_case("an unknown capitalised op is skipped with a warning",
	          "rank,index,op,stage,microbatch,peer\n0,0,F,0,0,-1\n0,1,TIED_GRAD,0,0,-1\n"
	          "0,2,B,0,0,-1\n", spec(SK_FILE, 1, 1, 1, 1, 1), 0,
	          "warning: unknown op 'TIED_GRAD' skipped", NULL);
	file_case("a malformed number", "rank,index,op,stage,microbatch,peer\n0,0,F,x1,0,-1\n",
	          sp2, 1, ":2:7: error: malformed stage 'x1'", NULL);
	file_case("a short row", "rank,index,op,stage,microbatch,peer\n0,0,F,0\n", sp2, 1,
	          "expected 6 fields", NULL);
	file_case("a gap in a rank's indices",
	          "rank,index,op,stage,microbatch,peer\n0,0,F,0,0,-1\n0,2,B,0,0,-1\n",
	          spec(SK_FILE, 1, 1, 1, 1, 1), 1, "rank 0 has no action with index 1", NULL);
	file_case("a duplicated index",
	          "rank,index,op,stage,microbatch,peer\n0,0,F,0,0,-1\n0,0,B,0,0,-1\n",
	          spec(SK_FILE, 1, 1, 1, 1, 1), 1, "two actions with index 0", NULL);
	file_case("a PyTorch cell with an unknown type", "0F0,0X0\n",
	          spec(SK_FILE, 1, 1, 1, 1, 0), 1, "unknown action type 'X'", NULL);
	file_case("a PyTorch cell without a stage", "F0\n", spec(SK_FILE, 1, 1, 1, 1, 0), 1,
	          "malformed action 'F0'", NULL);
	file_case("a PyTorch row with nothing in it", "0F0,0B0\n,,\n1F0,1B0\n",
	          spec(SK_FILE, 3, 1, 1, 1, 1), 1, "has no actions", NULL);
	file_case("empty PyTorch cells (idle slots) are skipped", "0F0,,,0B0\n,1F0,1B0\n",
	          spec(SK_FILE, 2, 1, 1, 1, 1), 0, NULL, NULL);
	file_case("a compute row with a peer", "rank,index,op,stage,microbatch,peer\n"
	          "0,0,F,0,0,1\n0,1,B,0,0,-1\n", spec(SK_FILE, 1, 1, 1, 1, 1), 1,
	          "F takes no peer", NULL);
	file_case("SEND to the wrong rank", "rank,index,op,stage,microbatch,peer\n"
	          "0,0,F,0,0,-1\n0,1,SEND_F,0,0,0\n1,0,RECV_F,1,0,0\n1,1,F,1,0,-1\n",
	          spec(SK_FILE, 2, 1, 1, 1, 0), 2, "peer is rank 0, but stage 1 (the receiver) "
	          "is on rank 1", NULL);
	file_case("OPTIM before the last backward", "rank,index,op,stage,microbatch,peer\n"
	          "0,0,F,0,0,-1\n0,1,F,0,1,-1\n0,2,B,0,0,-1\n0,3,OPTIM,-1,-1,-1\n"
	          "0,4,B,0,1,-1\n", spec(SK_FILE, 1, 1, 2, 1, 1), 2,
	          "OPTIM before all backward work", NULL);
	file_case("a V-shaped placement (ZB-V: rank r holds r and 2P-1-r) imports",
	          "0F0,3F0,3B0,0B0\n1F0,2F0,2B0,1B0\n", spec(SK_FILE, 2, 1, 1, 1, 1), 0,
	          NULL, NULL);
}

static int missing_file(void *arg)
{
	(void)arg;
	SchedSpec sp = spec(SK_FILE, 2, 1, 2, 1, 1);
	sp.path = "/nonexistent/order.csv";
	return sched_read_file(&sp, nowhere) ? 0 : 1;
}

/* ---- PyTorch's own orders ---- */

static void test_fixtures(void)
{
	const char *src = getenv("srcdir");
	char *dir = xprintf("%s/t/fixtures/torch", src && *src ? src : ".");
	DIR *d = opendir(dir);
	if (!ok(d != NULL, "fixtures directory %s exists", dir))
		return;
	struct dirent *e;
	int n = 0, bad = 0, compared = 0, cmp_bad = 0, vshape = 0;
	while ((e = readdir(d))) {
		char kind[64];
		int P, V, M;
		int end = 0;
		if (sscanf(e->d_name, "%63[a-z0-9]-p%d-v%d-m%d.csv%n", kind, &P, &V, &M, &end) != 4
		    || end != (int)strlen(e->d_name))
			continue;
		n++;
		SchedSpec sp = spec(SK_FILE, P, 1, M, 1, 1);
		sp.path = xprintf("%s/%s", dir, e->d_name);
		Schedule *s = sched_read_file(&sp, nowhere);
		last_report[0] = 0;
		if (!s || s->V != V || (sched_lower(s, &sp), sched_verify(s, report))) {
			bad++;
			diagf("  %s: %s", e->d_name, s ? last_report : "not read");
			continue;
		}
		if (!strcmp(kind, "zbv") || !strcmp(kind, "dualpipev")) {
			int ok_ = 1;
			for (int r = 0; r < P; r++)
				ok_ &= s->stage_rank[r] == r && s->stage_rank[2 * P - 1 - r] == r;
			vshape += ok_;
		}
		int ours = !strcmp(kind, "gpipe") ? SK_GPIPE
			: !strcmp(kind, "interleaved") ? SK_INTERLEAVED
			: !strcmp(kind, "interleavedzb") ? SK_INTERLEAVED_ZB
			: !strcmp(kind, "loopedbfs") ? SK_LOOPED_BFS
			: !strcmp(kind, "dualpipev") ? SK_DUALPIPEV
			: !strcmp(kind, "zbv") ? SK_ZBV : -1;
		if (ours < 0)
			continue;
		SchedSpec os = spec(ours, P, V, M, 1, 1);
		Schedule *o = build(&os);
		compared++;
		const char *why = differs(o, s);
		if (*why) {
			cmp_bad++;
			diagf("  %s differs from pipec's %s: %s", e->d_name, sched_kind_name(ours), why);
		}
	}
	closedir(d);
	ok(n >= 10 && bad == 0, "all %d PyTorch orders import and verify", n);
	ok(compared >= 25 && cmp_bad == 0, "%d PyTorch orders equal pipec's own generator "
	   "(gpipe, interleaved, interleaved-zb, looped-bfs, zb-v, dualpipev)", compared);
	ok(vshape >= 3, "ZB-V's and DualPipeV's V-shaped placement is read from the file");

	/* Orders PyTorch's own validator rejects must be refused too. */
	dir = xprintf("%s/t/fixtures/torch-invalid", src && *src ? src : ".");
	d = opendir(dir);
	int inv = 0, accepted = 0;
	while (d && (e = readdir(d))) {
		char kind[64];
		int P, V, M;
		int end = 0;
		if (sscanf(e->d_name, "%63[a-z0-9]-p%d-v%d-m%d.csv%n", kind, &P, &V, &M, &end) != 4
		    || end != (int)strlen(e->d_name))
			continue;
		inv++;
		FileCase fc = { NULL, spec(SK_FILE, P, 1, M, 1, 1) };
		char *path = xprintf("%s/%s", dir, e->d_name);
		FILE *fp = fopen(path, "r");
		char *buf = xalloc(1 << 16);
		size_t got = fread(buf, 1, (1 << 16) - 1, fp);
		buf[got] = 0;
		fclose(fp);
		fc.text = buf;
		int rc;
		char *out = isolated(run_file, &fc, &rc);
		if (rc == 0) {
			accepted++;
			diagf("  %s accepted", e->d_name);
		} else if (inv == 1) {
			diagf("  e.g. %s: %s", e->d_name, strtok(out, "\n"));
		}
	}
	if (d)
		closedir(d);
	ok(inv >= 1 && accepted == 0, "%d orders PyTorch's validator rejects are refused", inv);
}

/* ---- formats ---- */

static char *capture_text(const Schedule *s, const SimResult *r, const SimCost *c,
                          const double *pb, const int *pm, int width, int fmt)
{
	char *path = write_tmp("", ".out");
	FILE *fp = fopen(path, "w");
	if (fmt == 0)
		sched_write_text(fp, s, r, c, pb, pm, width);
	else if (fmt == 1)
		sched_write_chrome(fp, s, r);
	else
		sched_write_svg(fp, s, r, "1f1b <P=4>");
	fclose(fp);
	fp = fopen(path, "r");
	fseek(fp, 0, SEEK_END);
	long n = ftell(fp);
	rewind(fp);
	char *buf = xalloc((size_t)n + 1);
	size_t got = fread(buf, 1, (size_t)n, fp);
	buf[got] = 0;
	fclose(fp);
	remove(path);
	return buf;
}

typedef struct TorchCase {
	int R;
	int recompute;
} TorchCase;

static int torch_refuses(void *arg)
{
	TorchCase *tc = arg;
	unsigned char rc[4] = { 1, 1, 1, 1 };
	SchedSpec sp = spec(SK_1F1B, 4, 1, 4, tc->R, 1);
	sp.recompute = tc->recompute ? rc : NULL;
	Schedule *s = build(&sp);
	FILE *fp = fopen("/dev/null", "w");
	int r = sched_write_torch(fp, s);
	fclose(fp);
	return r == -1 ? 1 : 0;
}

static void test_formats(void)
{
	SchedSpec sp = spec(SK_1F1B, 4, 1, 8, 1, 1);
	Schedule *s = build(&sp);
	SimCost *c = simcost_uniform(s);
	SimResult *r = sched_simulate(s, c);
	double ab[4] = { 1 << 20, 1 << 20, 1 << 20, 1 << 20 }, pb[4];
	int pm[4];
	sched_memory(s, ab, pb, pm);
	is_near(pb[0], 4.0 * (1 << 20), 0, "peak bytes of rank 0: 4 micro-batches of 1 MiB");
	for (int width = 80; width <= 160; width += 80) {
		char *t = capture_text(s, r, c, pb, pm, width, 0);
		ok(strstr(t, "\nstep_time: 33\n") && strstr(t, "\nbubble_fraction: 0.272727273\n")
		   && strstr(t, "\nbubble_overhead: 0.375\n"),
		   "text (width %d): step_time, bubble_fraction, bubble_overhead lines", width);
		ok(strstr(t, "rank 0: idle 9, peak 4 micro-batches (4.0 MiB)")
		   && strstr(t, "rank 3: idle 9, peak 1 micro-batch (1.0 MiB)"),
		   "text (width %d): per-rank idle and peak", width);
		int longest = 0, len = 0;
		for (const char *p = t; *p; p++) {
			if (*p == '\n') {
				if (len > longest)
					longest = len;
				len = 0;
			} else {
				len++;
			}
		}
		ok(longest <= width, "text (width %d): no line is wider (longest %d)", width, longest);
		/* at 80 columns a forward is 2 columns wide, too narrow for "F0-" */
		ok(strstr(t, "rank 3  ") && (width < 120 || strstr(t, "F0-")) && strstr(t, "B7=")
		   && strstr(t, "B0="),
		   "text (width %d): a row per rank with labelled cells", width);
		if (width == 80)
			for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n"))
				diagf("%s", line);
	}
	char *j = capture_text(s, r, c, NULL, NULL, 0, 1);
	int slices = 0, total = 0;
	for (const char *p = j; (p = strstr(p, "\"ph\":\"X\"")); p++)
		slices++;
	for (int k = 0; k < s->nranks; k++)
		total += s->rank[k].n;
	ok(!strncmp(j, "{\"traceEvents\":[", 16) && slices == total
	   && strstr(j, "\"args\":{\"op\":\"B\",\"stage\":3,\"microbatch\":7}")
	   && strstr(j, "\"process_name\""),
	   "chrome: traceEvents, one X slice per action (%d), args op/stage/microbatch", slices);
	ok(strstr(j, "\"name\":\"B7\",\"cat\":\"B\",\"ph\":\"X\",\"pid\":0,\"tid\":0,"
	          "\"ts\":31000.000,\"dur\":2000.000") != NULL,
	   "chrome: uniform units are milliseconds (rank 0's B7 runs 31..33)");
	char *v = capture_text(s, r, c, NULL, NULL, 0, 2);
	ok(!strncmp(v, "<?xml", 5) && strstr(v, "</svg>") && strstr(v, "1f1b &lt;P=4&gt;")
	   && strstr(v, "forward"), "svg: a picture with an escaped title and a legend");

	/* torch: refusals */
	int rc;
	TorchCase tc = { 2, 0 };
	char *out = isolated(torch_refuses, &tc, &rc);
	ok(rc == 1 && strstr(out, "replicas"), "--format torch refuses replicas");
	tc = (TorchCase){ 1, 1 };
	out = isolated(torch_refuses, &tc, &rc);
	ok(rc == 1 && strstr(out, "recompute"), "--format torch refuses recompute");

	/* the split backward is written as PyTorch's I */
	sp = spec(SK_ZBH1, 2, 1, 2, 1, 1);
	s = build(&sp);
	char *path = dump(s, 1);
	FILE *fp = fopen(path, "r");
	char line[256];
	char *got = fgets(line, sizeof line, fp);
	fclose(fp);
	remove(path);
	is_str(got, "0F0,0F1,0I0,0W0,0I1,0W1\n", "--format torch writes zb-h1's B as I");

	/* csv header */
	path = dump(s, 0);
	fp = fopen(path, "r");
	got = fgets(line, sizeof line, fp);
	fclose(fp);
	remove(path);
	is_str(got, "rank,index,op,stage,microbatch,peer\n", "--format csv header");
}

/* ---- scale ---- */

static void test_scale(void)
{
	SchedSpec sp = spec(SK_INTERLEAVED, 64, 2, 512, 1, 1);
	double t0 = now();
	Schedule *s = sched_generate(&sp, nowhere);
	double t1 = now();
	sched_lower(s, &sp);
	double t2 = now();
	int v = sched_verify(s, report);
	double t3 = now();
	SimResult *r = sched_simulate(s, simcost_uniform(s));
	double t4 = now();
	double *pb = xalloc(64 * sizeof *pb), *ab = xalloc(128 * sizeof *ab);
	int *pm = xalloc(64 * sizeof *pm);
	sched_memory(s, ab, pb, pm);
	double t5 = now();
	long actions = 0;
	for (int k = 0; k < s->nranks; k++)
		actions += s->rank[k].n;
	is_int(v, 0, "P = 64, M = 512, V = 2 (128 stages) verifies");
	is_near(r->bubble_fraction, 63.0 / (1024 + 63), 1e-9, "... and its bubble is 63/1087");
	diagf("P=64 M=512 V=2, %ld actions: generate %.3f s, lower %.3f s, verify %.3f s, "
	      "simulate %.3f s, memory %.3f s; total %.3f s", actions, t1 - t0, t2 - t1,
	      t3 - t2, t4 - t3, t5 - t4, t5 - t0);
	sp = spec(SK_1F1B, 64, 1, 512, 2, 1);
	t0 = now();
	s = build(&sp);
	v = sched_verify(s, report);
	sched_simulate(s, simcost_uniform(s));
	diagf("1f1b P=64 M=512 R=2 (128 ranks): generate+lower+verify+simulate %.3f s",
	      now() - t0);
	is_int(v, 0, "P = 64, M = 512, 2 replicas verifies");
}

/* ---- generate: the token ring ---- */

/* Every generate program verifies, its uniform timeline has the ring's
 * closed form max(M, P)(N-1) + M + P - 1, and a broken ring is refused. */
static void test_generate(void)
{
	int unsound = 0, wrong = 0, n = 0;
	for (int P = 1; P <= 8; P++)
		for (int M = 1; M <= 12; M++)
			for (int N = 1; N <= 6; N++) {
				SchedSpec sp = spec(SK_GENERATE, P, 1, M, 1, 0);
				sp.ntok = N;
				Schedule *s = sched_generate(&sp, nowhere);
				n++;
				if (!s || sched_verify(s, report) != 0) {
					if (!unsound++)
						diagf("P=%d M=%d N=%d: %s", P, M, N, last_report);
					continue;
				}
				SimResult *r = sched_simulate(s, simcost_uniform(s));
				double T = (M > P ? M : P) * (N - 1.0) + M + P - 1;
				if (fabs(r->step_time - T) > 1e-9
				    || fabs(r->bubble_fraction - (1 - (double)M * N / T)) > 1e-9) {
					if (!wrong++)
						diagf("P=%d M=%d N=%d: step %g, want %g", P, M, N,
						     r->step_time, T);
				}
			}
	ok(unsound == 0, "generate: all %d programs verify (P 1..8, M 1..12, N 1..6)", n);

	/* disaggregated prefill: ranks 0..P-1 prefill, then the decode
	 * pipeline is the colocated ring of N-1 rounds, started at time P when
	 * group 0's first token arrives: P + max(M, P)(N-2) + M + P - 1 */
	int d_unsound = 0, d_wrong = 0, dn = 0;
	for (int P = 1; P <= 6; P++)
		for (int M = 1; M <= 9; M++)
			for (int N = 1; N <= 5; N++) {
				SchedSpec sp = spec(SK_GENERATE, P, 1, M, 1, 0);
				sp.ntok = N;
				sp.disagg = 1;
				Schedule *s = sched_generate(&sp, nowhere);
				dn++;
				if (!s || s->nranks != 2 * P || sched_verify(s, report) != 0) {
					if (!d_unsound++)
						diagf("disaggregated P=%d M=%d N=%d: %s", P, M, N, last_report);
					continue;
				}
				SimResult *r = sched_simulate(s, simcost_uniform(s));
				double T = N == 1 ? M + P - 1
				           : P + (M > P ? M : P) * (N - 2.0) + M + P - 1;
				if (fabs(r->step_time - T) > 1e-9 && !d_wrong++)
					diagf("disaggregated P=%d M=%d N=%d: step %g, want %g", P, M, N,
					      r->step_time, T);
			}
	ok(d_unsound == 0, "generate, disaggregated prefill: all %d programs verify on 2P ranks",
	   dn);
	ok(d_wrong == 0, "generate, disaggregated prefill: uniform step time P + max(M, P)(N-2) "
	   "+ M + P - 1 in %d cases (%d wrong)", dn, d_wrong);
	ok(wrong == 0, "generate: uniform step time max(M, P)(N-1) + M + P - 1 and bubble "
	   "1 - MN / that, %d cases (%d wrong)", n, wrong);

	/* the ring broken three ways: the verifier names what is wrong */
	SchedSpec sp = spec(SK_GENERATE, 3, 1, 2, 1, 0);
	sp.ntok = 3;
	Schedule *s = sched_generate(&sp, nowhere);
	ActList *r0 = &s->rank[0];
	int at = -1;
	for (int i = 0; i < r0->n && at < 0; i++)
		if (r0->a[i].op == OP_RECV_TOK)
			at = i;
	Action saved = r0->a[at];
	r0->a[at] = (Action){ OP_SEND_F, 0, 0, 1, 0, 0 };    /* a SEND_F sent twice */
	ok(sched_verify(s, report) != 0, "generate: a SEND_F in place of a RECV_TOK is refused (%s)",
	   last_report);
	r0->a[at] = saved;
	memmove(&r0->a[at], &r0->a[at + 1], (size_t)(r0->n - at - 1) * sizeof *r0->a);
	r0->n--;
	ok(sched_verify(s, report) != 0 && strstr(last_report, "its token never arrives"),
	   "generate: a decode without its RECV_TOK is refused (%s)", last_report);
	s = sched_generate(&sp, nowhere);
	ActList *r2 = &s->rank[2];
	for (int i = 0; i < r2->n; i++)
		if (r2->a[i].op == OP_SEND_TOK) {
			memmove(&r2->a[i], &r2->a[i + 1], (size_t)(r2->n - i - 1) * sizeof *r2->a);
			r2->n--;
			break;
		}
	ok(sched_verify(s, report) != 0 && strstr(last_report, "nobody sends it"),
	   "generate: a token never sent is refused (%s)", last_report);
	s = sched_generate(&sp, nowhere);
	ok(sched_verify(s, report) == 0, "generate: the untouched program verifies");
}

/* ---- the interpreter (sched_interp.h) and message identity ---- */

/* A hand-made lowered program: nranks = P*R ranks, placement s mod P. */
static Schedule *handmade(int P, int M, int R)
{
	Schedule *s = sched_new(SK_GPIPE, P, 1, M, R, 1, 0);
	s->lowered = 1;
	return s;
}

/* The events of a run as text, one "rank:EV:desc" per event. */
typedef struct EvLog {
	char text[4096];
	size_t len;
} EvLog;

static void log_event(void *ctx, const SchedEvent *e)
{
	static const char *const names[] = { "start", "send", "recv", "end", "block" };
	EvLog *lg = ctx;
	char d[96];
	sched_action_desc(d, sizeof d, e->a);
	if (lg->len < sizeof lg->text)
		lg->len += (size_t)snprintf(lg->text + lg->len, sizeof lg->text - lg->len,
		                            "%s%d:%s:%s", lg->len ? "; " : "", e->rank,
		                            names[e->ev], d);
}

static void test_interp(void)
{
	/* 1F1B on 2 ranks, 1 micro-batch: the run as the queue takes it */
	Schedule *s = handmade(2, 1, 1);
	actlist_push(&s->rank[0], OP_F, 0, 0, -1);
	actlist_push(&s->rank[0], OP_SEND_F, 0, 0, 1);
	actlist_push(&s->rank[0], OP_RECV_B, 0, 0, 1);
	actlist_push(&s->rank[0], OP_B, 0, 0, -1);
	actlist_push(&s->rank[0], OP_OPTIM, -1, -1, -1);
	actlist_push(&s->rank[1], OP_RECV_F, 1, 0, 0);
	actlist_push(&s->rank[1], OP_F, 1, 0, -1);
	actlist_push(&s->rank[1], OP_B, 1, 0, -1);
	actlist_push(&s->rank[1], OP_SEND_B, 1, 0, 0);
	actlist_push(&s->rank[1], OP_OPTIM, -1, -1, -1);
	last_report[0] = 0;
	ok(sched_verify(s, report) == 0, "interp: the hand-made 1F1B program verifies%s",
	   last_report);
	EvLog lg = { .len = 0 };
	SchedInterp *it = sched_interp_new(s);
	is_int(sched_interp_run(it, log_event, &lg), 0, "interp: 1F1B finishes, no rank blocked");
	is_str(lg.text,
	       "0:start:F stage 0 mb 0; 0:end:F stage 0 mb 0; "
	       "0:start:SEND_F stage 0 mb 0; 0:send:SEND_F stage 0 mb 0; 0:end:SEND_F stage 0 mb 0; "
	       "0:block:RECV_B stage 0 mb 0; "
	       "1:start:RECV_F stage 1 mb 0; 1:recv:RECV_F stage 1 mb 0; 1:end:RECV_F stage 1 mb 0; "
	       "1:start:F stage 1 mb 0; 1:end:F stage 1 mb 0; "
	       "1:start:B stage 1 mb 0; 1:end:B stage 1 mb 0; "
	       "1:start:SEND_B stage 1 mb 0; 1:send:SEND_B stage 1 mb 0; 1:end:SEND_B stage 1 mb 0; "
	       "1:start:OPTIM; 1:end:OPTIM; "
	       "0:start:RECV_B stage 0 mb 0; 0:recv:RECV_B stage 0 mb 0; 0:end:RECV_B stage 0 mb 0; "
	       "0:start:B stage 0 mb 0; 0:end:B stage 0 mb 0; 0:start:OPTIM; 0:end:OPTIM",
	       "interp: the events of a tiny 1F1B run, in order");

	/* the simulator on it equals the timeline computed by hand (every
	 * value a dyadic fraction, so exact):
	 *   rank 0: F [0,1], SEND_F at 1 arrives 1.5, RECV_B [1, 8.25],
	 *           B [8.25, 11.25], OPTIM [11.25, 11.75];
	 *   rank 1: RECV_F [0, 2] (the copy, 2, outlasts the arrival),
	 *           F [2, 4], B [4, 8], SEND_B at 8 arrives 8.25, OPTIM [8, 8.5] */
	double f[2] = { 1, 2 }, b[2] = { 3, 4 }, mf[2] = { 0.5, 0 }, mbk[2] = { 0, 0.25 };
	double cf[2] = { 2, 0 }, cb[2] = { 0, 0.5 };
	SimCost c = { .name = "test", .f = f, .b = b, .msg_f = mf, .msg_b = mbk,
	              .copy_f = cf, .copy_b = cb, .optim = 0.5 };
	SimResult *r = sched_simulate(s, &c);
	static const double want_start[2][5] = { { 0, 1, 1, 8.25, 11.25 }, { 0, 2, 4, 8, 8 } };
	static const double want_end[2][5] = { { 1, 1, 8.25, 11.25, 11.75 }, { 2, 4, 8, 8, 8.5 } };
	int bad = 0;
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < 5; i++)
			if (r->start[k][i] != want_start[k][i] || r->end[k][i] != want_end[k][i]) {
				if (!bad++)
					diagf("  rank %d action %d: [%g, %g], want [%g, %g]", k, i,
					      r->start[k][i], r->end[k][i], want_start[k][i],
					      want_end[k][i]);
			}
	is_int(bad, 0, "sim: every start and end as computed by hand");
	ok(r->step_time == 11.75 && r->busy[0] == 4 && r->busy[1] == 6
	   && r->idle[0] == 7.75 && r->idle[1] == 5.75, "sim: step 11.75, busy 4 and 6");
	ok(r->bubble_fraction == 13.5 / 23.5 && r->bubble_overhead == 5.75 / 6,
	   "sim: bubble fraction 13.5/23.5, overhead 5.75/6 (got %.17g, %.17g)",
	   r->bubble_fraction, r->bubble_overhead);

	/* a deadlock: each rank waits for the other's SEND */
	Schedule *d = handmade(2, 1, 1);
	actlist_push(&d->rank[0], OP_F, 0, 0, -1);
	actlist_push(&d->rank[0], OP_RECV_B, 0, 0, 1);
	actlist_push(&d->rank[0], OP_SEND_F, 0, 0, 1);
	actlist_push(&d->rank[0], OP_B, 0, 0, -1);
	actlist_push(&d->rank[0], OP_OPTIM, -1, -1, -1);
	for (int i = 0; i < 5; i++)
		actlist_push(&d->rank[1], s->rank[1].a[i].op, s->rank[1].a[i].stage,
		             s->rank[1].a[i].mb, s->rank[1].a[i].peer);
	lg.len = 0;
	lg.text[0] = 0;
	it = sched_interp_new(d);
	is_int(sched_interp_run(it, log_event, &lg), 2, "interp: both ranks left blocked");
	ok(it->pc[0] == 1 && it->pc[1] == 0 && sched_interp_waits_for(it, 0) == 1
	   && sched_interp_waits_for(it, 1) == 0,
	   "interp: rank 0 waits at RECV_B for rank 1, rank 1 at RECV_F for rank 0");
	is_str(lg.text, "0:start:F stage 0 mb 0; 0:end:F stage 0 mb 0; "
	       "0:block:RECV_B stage 0 mb 0; 1:block:RECV_F stage 1 mb 0",
	       "interp: the deadlocked run's events");
	last_report[0] = 0;
	ok(sched_verify(d, report) != 0 && strcmp(last_report, "rank 0, action 1 (RECV_B stage 0 "
	   "mb 0): deadlock: waits forever for its SEND_B; 2 ranks blocked: rank 0 waits at "
	   "action 1 (RECV_B stage 0 mb 0) for rank 1; rank 1 waits at action 0 (RECV_F "
	   "stage 1 mb 0) for rank 0 (a cycle)") == 0,
	   "verify: the interpreter's deadlock, reported with its cycle (%s)", last_report);

	/* the ALLREDUCE barrier: 2 replicas of 1 stage; the first to arrive
	 * blocks, the second releases both; the simulator ends both at the
	 * last arrival plus its cost */
	Schedule *a = sched_new(SK_GPIPE, 1, 1, 1, 2, 1, 0);
	a->lowered = 1;
	for (int k = 0; k < 2; k++) {
		actlist_push(&a->rank[k], OP_F, 0, 0, -1);
		actlist_push(&a->rank[k], OP_B, 0, 0, -1);
		actlist_push(&a->rank[k], OP_ALLREDUCE, 0, -1, -1);
		actlist_push(&a->rank[k], OP_OPTIM, -1, -1, -1);
	}
	ok(sched_verify(a, report) == 0, "interp: 2 replicas with an ALLREDUCE verify");
	lg.len = 0;
	it = sched_interp_new(a);
	is_int(sched_interp_run(it, log_event, &lg), 0, "interp: the barrier lets both through");
	ok(strstr(lg.text, "0:start:ALLREDUCE stage 0; 0:block:ALLREDUCE stage 0; 1:start:F")
	   && strstr(lg.text, "1:start:ALLREDUCE stage 0; 1:end:ALLREDUCE stage 0; 1:start:OPTIM; "
	             "1:end:OPTIM; 0:end:ALLREDUCE stage 0; 0:start:OPTIM"),
	   "interp: rank 0 blocks at the barrier until rank 1 arrives (%s)", lg.text);
	double af[1] = { 1 }, ab[1] = { 2 };
	SimCost ac = { .name = "test", .f = af, .b = ab, .allreduce = 0.25, .optim = 0 };
	SimResult *ar = sched_simulate(a, &ac);
	ok(ar->start[0][2] == 3 && ar->end[0][2] == 3.25 && ar->end[1][2] == 3.25,
	   "sim: an ALLREDUCE ends at the last arrival plus its cost");

	/* one identity per message: both ends of every message agree on it,
	 * its tag decodes to the receiving stage, and SEND_F of stage s is
	 * RT_TAG(s+1, mb, 0), SEND_B of s RT_TAG(s-1, mb, 1) */
	SchedSpec sps[5] = { spec(SK_1F1B, 4, 1, 8, 2, 1), spec(SK_INTERLEAVED, 2, 2, 4, 1, 1),
	                     spec(SK_ZBV, 3, 2, 6, 1, 1), spec(SK_GENERATE, 3, 1, 2, 1, 0),
	                     spec(SK_GENERATE, 2, 1, 2, 1, 0) };
	sps[3].ntok = sps[4].ntok = 3;
	sps[4].disagg = 1;
	int msgs = 0, msg_bad = 0, kinds = 0;
	for (int c2 = 0; c2 < 5; c2++) {
		Schedule *m = build(&sps[c2]);
		int n = SCHED_NSLOTS(m);
		SchedMsg *sent = xalloc((size_t)SCHED_MSG_KINDS * n * sizeof *sent);
		for (int k = 0; k < m->nranks; k++)
			for (int i = 0; i < m->rank[k].n; i++) {
				const Action *x = &m->rank[k].a[i];
				SchedMsg g;
				if (sched_msg(m, k, x, &g) == SCHED_MSG_SENDS) {
					int tag = RT_TAG(g.stage, g.mb, g.dir);
					int want = x->op == OP_SEND_F ? RT_TAG(x->stage + 1, x->mb, 0)
					           : x->op == OP_SEND_B ? RT_TAG(x->stage - 1, x->mb, 1)
					           : x->op == OP_SEND_TOK ? RT_TAG(0, x->mb, 0)
					           : RT_TAG(x->stage, x->mb, 1);
					kinds |= 1 << g.kind;
					if (tag != want || RT_TAG_STAGE(tag) != g.stage || g.from != k
					    || g.src != x->stage)
						msg_bad++;
					sent[g.kind * n + sched_msg_key(m, &g)] = g;
					msgs++;
				}
			}
		for (int k = 0; k < m->nranks; k++)
			for (int i = 0; i < m->rank[k].n; i++) {
				SchedMsg g;
				if (sched_msg(m, k, &m->rank[k].a[i], &g) == SCHED_MSG_RECEIVES
				    && memcmp(&sent[g.kind * n + sched_msg_key(m, &g)], &g, sizeof g))
					msg_bad++;
			}
	}
	ok(msgs > 0 && msg_bad == 0 && kinds == (1 << SCHED_MSG_KINDS) - 1,
	   "messages: both ends agree, RT_TAG by receiving stage, all kinds "
	   "(%d messages, %d wrong, kinds %#x)", msgs, msg_bad, kinds);
}

/* ---- clip_grad_norm: every rank's OPTIM as one collective ----
 * The global gradient norm is an allreduce of every rank at its optimizer
 * step.  A flushing schedule ends each rank's step with OPTIM, so that
 * cannot block; pipedream-2bw runs a step's OPTIM amid the next step's
 * forwards, so the interpreter, with every rank's n-th OPTIM as one
 * barrier, must show that no rank waits forever (and that the barrier
 * model does catch a collective that would). */
static int blocked_global(const Schedule *s)
{
	SchedInterp *it = sched_interp_new(s);
	it->global_optim = 1;
	return sched_interp_run(it, NULL, NULL);
}

static void test_global_optim(void)
{
	int cases = 0, bad = 0;
	for (int P = 1; P <= 8; P++)
		for (int M = P; M <= P + 3; M++)
			for (int steps = 1; steps <= 4; steps++) {
				SchedSpec sp = spec(SK_2BW, P, 1, M, 1, 1);
				sp.steps = steps;
				cases++;
				if (blocked_global(sched_async(&sp)) != 0 && bad++ == 0)
					diagf("pipedream-2bw P=%d M=%d steps=%d blocks", P, M, steps);
			}
	ok(bad == 0, "global OPTIM: %d pipedream-2bw streams (P 1..8, M P..P+3, 1..4 steps) "
	   "never block", cases);

	static const int flush[] = { SK_GPIPE, SK_1F1B, SK_INTERLEAVED, SK_ZBH1, SK_ZBV };
	cases = bad = 0;
	for (int k = 0; k < 5; k++)
		for (int P = 1; P <= 4; P++)
			for (int R = 1; R <= 2; R++) {
				int V = flush[k] == SK_INTERLEAVED || flush[k] == SK_ZBV ? 2 : 1;
				SchedSpec sp = spec(flush[k], P, V, 2 * P, R, 1);
				Schedule *s = build(&sp);
				cases++;
				if (!s || blocked_global(s) != 0)
					bad++;
			}
	ok(bad == 0, "global OPTIM: %d flushing schedules (gpipe, 1f1b, interleaved, zb-h1, "
	   "zb-v; P 1..4, R 1..2) never block", cases);

	/* rank 0 updates before it sends what rank 1 needs to reach its own
	 * update: harmless alone, a deadlock as one collective */
	Schedule *s = handmade(2, 1, 1);
	actlist_push(&s->rank[0], OP_OPTIM, -1, -1, -1);
	actlist_push(&s->rank[0], OP_SEND_F, 0, 0, 1);
	actlist_push(&s->rank[1], OP_RECV_F, 1, 0, 0);
	actlist_push(&s->rank[1], OP_OPTIM, -1, -1, -1);
	is_int(sched_interp_run(sched_interp_new(s), NULL, NULL), 0,
	       "global OPTIM: a local OPTIM before a send does not block");
	SchedInterp *it = sched_interp_new(s);
	it->global_optim = 1;
	is_int(sched_interp_run(it, NULL, NULL), 2, "global OPTIM: as one collective, both "
	       "ranks block");
	ok(sched_interp_waits_for(it, 0) == 1 && sched_interp_waits_for(it, 1) == 0,
	   "global OPTIM: rank 0 waits for rank 1 at the collective, rank 1 for rank 0's send");

	/* the verifier runs 2bw so: rank P-1 updating before it sends the
	 * step's last backward, which rank 0 needs before its own update */
	SchedSpec sp = spec(SK_2BW, 2, 1, 2, 1, 1);
	sp.steps = 2;
	s = sched_async(&sp);
	ActList *l = &s->rank[1];
	int moved = 0;
	for (int i = 1; i < l->n && !moved; i++)
		if (l->a[i].op == OP_OPTIM && l->a[i - 1].op == OP_SEND_B) {
			Action t = l->a[i - 1];
			l->a[i - 1] = l->a[i];
			l->a[i] = t;
			moved = 1;
		}
	last_report[0] = 0;
	int rc = sched_verify(s, report);
	ok(moved && rc != 0 && strstr(last_report, "when every rank's OPTIM is one collective"),
	   "the verifier refuses a 2bw stream whose OPTIM collective deadlocks");
	if (rc == 0 || !strstr(last_report, "when every rank's OPTIM is one collective"))
		diagf("  got: %s", last_report);
}

int main(void)
{
	/* names */
	is_str(op_name(OP_SEND_F), "SEND_F", "op names");
	is_int(op_from_name("ALLREDUCE"), OP_ALLREDUCE, "op from name");
	is_int(op_from_name("nope"), -1, "unknown op name");
	is_int(sched_kind_from_name("zb-h1"), SK_ZBH1, "schedule kind from name");
	is_str(sched_kind_name(SK_2BW), "pipedream-2bw", "schedule kind name");

	test_generate_errors();
	test_async();
	test_sweep();
	test_zbauto();
	test_generate();
	test_roundtrips();
	test_lowering();
	test_broken();
	test_interp();
	test_global_optim();
	int rc;
	char *out = isolated(missing_file, NULL, &rc);
	ok(rc == 1 && strstr(out, "cannot read schedule file '/nonexistent/order.csv'"),
	   "a missing file is an error, not a crash");
	test_fixtures();
	test_formats();
	test_scale();
	return done_testing();
}
