/* sched_auto.c — zb-auto(memory = R): a zero-bubble order searched for the
 * costs in use (Qi et al., "Zero Bubble Pipeline Parallelism", 2023, §3:
 * ZB-1p at R = 1, ZB-2p at R = 2).
 *
 * The order of a rank is an interleaving of its F(0..M-1), B(0..M-1) and
 * W(0..M-1), each kind in micro-batch order, B(i) after F(i) and W(i)
 * after B(i).  Memory follows the order alone: a micro-batch holds mem_B
 * from its F to its B and mem_W from its B to its W, and no prefix of a
 * rank's order may hold more than R x what 1F1B keeps on rank 0
 * (min(P, M) micro-batches of stage 0's mem_B) -- or on whichever rank 1F1B
 * keeps the most, when the stages keep different amounts (else a last
 * stage that keeps more than the first could not even run 1F1B's order).
 *
 * The search:
 *   1. candidates: zb-h1's and zb-h2's orders (where they fit) and a greedy
 *      list schedule run in simulated time under several policies (B before
 *      F or not; a W only into a gap it fills, into half of it, or into any;
 *      the warm-up forwards limited by memory alone, or to 1F1B's or
 *      zb-h2's count);
 *   2. local search: move one action of a rank a few places (up to 2P+2)
 *      earlier or later, keep the move if the order still fits and times
 *      better, until no move helps or about 4e7 actions have been timed (a
 *      second or so for P = 8, M = 64 on this machine's cores).
 * Every candidate is timed on the same model as the simulator (sched_sim.c):
 * an F or B starts when its rank is free and its input has arrived (the
 * sender's end plus the message's transfer, the receiver busy for its copy).
 * The objective is the step time (what a run measures: the runtime puts a
 * barrier between steps), then the longest span of a rank (its first
 * compute's start to its last compute's end: the zero-bubble paper's
 * measure, the step time if steps ran back to back), then the sum of all
 * ranks' spans (so that the search can cross plateaus of the first two).
 * The local search first runs with the span leading, from the candidate
 * best at it, which leads it to the paper's parallelograms, and then with
 * the step time leading; the candidate best at the step time is kept if
 * it is still better.  Ties keep the earlier order, so the
 * result is deterministic.  The schedule is then lowered and verified like
 * every other (main.c). */
#include "schedule.h"

#include <math.h>
#include <string.h>

enum { KF, KB, KW };

typedef struct Auto {
	int P, M;
	double *f, *b, *w;      /* [P] compute times (B including a recompute) */
	double *mf, *mb;        /* [P] transfer of rank r's F output to r+1, B's to r-1 */
	double *cf, *cb;        /* [P] the receiver's copy of those messages */
	double *opt;            /* [P] optimizer step */
	double *memb, *memw;    /* [P] bytes from F to B, from B to W */
	double limit;
	/* scratch for timing */
	double *endf, *endb;    /* [P*M] end times */
} Auto;

typedef struct Score {
	double span, step, sum;
} Score;

/* a better than b: the step time, then the longest span, then the sum of
 * spans (span_first: the span before the step time), with a relative
 * tolerance so that rounding does not decide between equal schedules */
static int better(Score a, Score b, int span_first)
{
	double tol = 1e-9 * (fabs(b.step) + 1e-300);
	double a1 = span_first ? a.span : a.step, b1 = span_first ? b.span : b.step;
	double a2 = span_first ? a.step : a.span, b2 = span_first ? b.step : b.span;
	if (a1 < b1 - tol)
		return 1;
	if (a1 > b1 + tol)
		return 0;
	if (a2 < b2 - tol)
		return 1;
	if (a2 > b2 + tol)
		return 0;
	return a.sum < b.sum - tol;
}

/* Peak memory of one rank's order is within the limit. */
static int fits(const Auto *A, int r, const unsigned char *ord, int n)
{
	double mem = 0, eps = 1e-9 * A->limit;
	for (int i = 0; i < n; i++) {
		if (ord[i] == KF)
			mem += A->memb[r];
		else if (ord[i] == KB)
			mem += A->memw[r] - A->memb[r];
		else
			mem -= A->memw[r];
		if (mem > A->limit + eps)
			return 0;
	}
	return 1;
}

/* Times the orders ord[r][0 .. 3M-1].  Returns 0 and the score, or -1
 * when the orders deadlock. */
static int timing(Auto *A, unsigned char **ord, Score *sc)
{
	int P = A->P, M = A->M, n = 3 * M;
	int pc[P], cnt[P][3];
	double t[P], first[P], last[P];
	const double NA = -1;
	for (int i = 0; i < P * M; i++)
		A->endf[i] = A->endb[i] = NA;
	for (int r = 0; r < P; r++) {
		pc[r] = 0;
		t[r] = 0;
		first[r] = -1;
		last[r] = 0;
		cnt[r][0] = cnt[r][1] = cnt[r][2] = 0;
	}
	int done = 0, progress = 1;
	while (progress) {
		progress = 0;
		for (int r = 0; r < P; r++) {
			while (pc[r] < n) {
				int k = ord[r][pc[r]], i = cnt[r][k];
				double start = t[r], dur;
				if (k == KF) {
					if (r > 0) {
						double e = A->endf[(r - 1) * M + i];
						if (e == NA)
							break;
						double arr = e + A->mf[r - 1];
						start = fmax(t[r] + A->cf[r - 1], arr);
					}
					dur = A->f[r];
				} else if (k == KB) {
					if (r < P - 1) {
						double e = A->endb[(r + 1) * M + i];
						if (e == NA)
							break;
						double arr = e + A->mb[r + 1];
						start = fmax(t[r] + A->cb[r + 1], arr);
					}
					dur = A->b[r];
				} else {
					dur = A->w[r];
				}
				double end = start + dur;
				if (k == KF)
					A->endf[r * M + i] = end;
				else if (k == KB)
					A->endb[r * M + i] = end;
				if (first[r] < 0)
					first[r] = start;
				last[r] = end;
				t[r] = end;
				cnt[r][k]++;
				pc[r]++;
				progress = 1;
				if (pc[r] == n)
					done++;
			}
		}
	}
	if (done < P)
		return -1;
	Score s = { 0, 0, 0 };
	for (int r = 0; r < P; r++) {
		double span = last[r] - first[r];
		if (span > s.span)
			s.span = span;
		if (last[r] + A->opt[r] > s.step)
			s.step = last[r] + A->opt[r];
		s.sum += span;
	}
	*sc = s;
	return 0;
}

/* ---- the greedy list schedule ----
 * Simulated time: the rank that is free first decides.  What an action
 * needs has arrived or not by then (every action that could deliver it
 * earlier has been placed, since its rank was free earlier); a B that has
 * arrived goes first (or an F, with prefer_b = 0), then an F that memory
 * and the warm-up cap allow, then a W where the wait for the next input is
 * at least theta x W long (or nothing else can run: memory is full). */
typedef struct Policy {
	int prefer_b;
	double theta;
	int warm;               /* 0: memory alone; 1: 1F1B's P-r; 2: zb-h2's 2(P-r)-1 */
} Policy;

static int greedy(Auto *A, const Policy *pol, unsigned char **ord)
{
	int P = A->P, M = A->M;
	int nf[P], nb[P], nw[P], no[P], waiting[P];
	double t[P], mem[P];
	const double NA = -1;
	for (int i = 0; i < P * M; i++)
		A->endf[i] = A->endb[i] = NA;
	for (int r = 0; r < P; r++) {
		nf[r] = nb[r] = nw[r] = no[r] = waiting[r] = 0;
		t[r] = mem[r] = 0;
	}
	double eps = 1e-9 * A->limit;
	for (;;) {
		int r = -1;
		for (int k = 0; k < P; k++)
			if (no[k] < 3 * M && !waiting[k] && (r < 0 || t[k] < t[r]))
				r = k;
		if (r < 0) {
			for (int k = 0; k < P; k++)
				if (no[k] < 3 * M)
					return -1;      /* every unfinished rank waits: stuck */
			return 0;
		}
		/* what is ready now, and when the next inputs arrive (NA: unknown) */
		double now = t[r];
		double arrf = NA, arrb = NA;
		if (nf[r] < M)
			arrf = r == 0 ? now : A->endf[(r - 1) * M + nf[r]] == NA ? NA
			       : A->endf[(r - 1) * M + nf[r]] + A->mf[r - 1];
		if (nb[r] < nf[r])
			arrb = r == P - 1 ? A->endf[r * M + nb[r]]
			       : A->endb[(r + 1) * M + nb[r]] == NA ? NA
			       : A->endb[(r + 1) * M + nb[r]] + A->mb[r + 1];
		int cap = pol->warm == 1 ? P - r : pol->warm == 2 ? 2 * (P - r) - 1 : M;
		int f_mem = mem[r] + A->memb[r] <= A->limit + eps;
		int f_ok = nf[r] < M && f_mem && (nb[r] > 0 || nf[r] < cap);
		int b_ready = arrb != NA && arrb <= now;
		int f_ready = f_ok && arrf != NA && arrf <= now;
		int k = -1;
		if (b_ready && (pol->prefer_b || !f_ready))
			k = KB;
		else if (f_ready)
			k = KF;
		else if (nw[r] < nb[r]) {
			/* the next input this rank will take */
			double next = NA;
			if (arrb != NA)
				next = arrb;
			if (f_ok && arrf != NA && (next == NA || arrf < next))
				next = arrf;
			int must = !f_mem && nb[r] == nf[r];   /* only W frees memory */
			if (must || next == NA || now + pol->theta * A->w[r] <= next)
				k = KW;
			else {
				t[r] = next;    /* wait for it */
				continue;
			}
		} else {
			double next = NA;
			if (arrb != NA)
				next = arrb;
			if (f_ok && arrf != NA && (next == NA || arrf < next))
				next = arrf;
			if (next == NA)
				waiting[r] = 1;
			else
				t[r] = next;
			continue;
		}
		double start = now, dur;
		if (k == KF) {
			if (r > 0)
				start = fmax(now + A->cf[r - 1], arrf);
			dur = A->f[r];
			A->endf[r * M + nf[r]] = start + dur;
			nf[r]++;
			mem[r] += A->memb[r];
			if (r + 1 < P)
				waiting[r + 1] = 0;
			else
				waiting[r] = 0;
		} else if (k == KB) {
			if (r < P - 1)
				start = fmax(now + A->cb[r + 1], arrb);
			dur = A->b[r];
			A->endb[r * M + nb[r]] = start + dur;
			nb[r]++;
			mem[r] += A->memw[r] - A->memb[r];
			if (r > 0)
				waiting[r - 1] = 0;
		} else {
			dur = A->w[r];
			nw[r]++;
			mem[r] -= A->memw[r];
		}
		ord[r][no[r]++] = (unsigned char)k;
		t[r] = start + dur;
	}
}

/* zb-h1's and zb-h2's orders (sched_gen.c), as kinds */
static void fixed_order(int P, int M, int h2, unsigned char **ord)
{
	for (int r = 0; r < P; r++) {
		int n = 0, nf = 0, nw = 0;
		int w = h2 ? 2 * (P - 1 - r) + 1 : P - 1 - r;
		int lag = h2 ? 2 * r : r;
		if (w > M)
			w = M;
		while (nf < w) {
			ord[r][n++] = KF;
			nf++;
		}
		for (int i = 0; i < M; i++) {
			if (!h2 && nf < M) {
				ord[r][n++] = KF;
				nf++;
			}
			ord[r][n++] = KB;
			if (i + 1 > lag) {
				ord[r][n++] = KW;
				nw++;
			}
			if (h2 && nf < M) {
				ord[r][n++] = KF;
				nf++;
			}
		}
		while (nw++ < M)
			ord[r][n++] = KW;
	}
}

/* Every B(j) after F(j), every W(j) after B(j). */
static int order_ok(const unsigned char *o, int n)
{
	int c[3] = { 0, 0, 0 };
	for (int i = 0; i < n; i++) {
		c[o[i]]++;
		if (c[KB] > c[KF] || c[KW] > c[KB])
			return 0;
	}
	return 1;
}

/* Local search: move one action of a rank by d = 1 .. K places (d = 1 is a
 * swap of neighbours), keep the first move that fits and times better;
 * rounds until none does or max_evals orders have been timed.  Ranks,
 * positions and distances are tried in a fixed order. */
static void improve(Auto *A, unsigned char **best, Score *bsp, int span_first, long max_evals)
{
	int P = A->P, n = 3 * A->M, K = 2 * P + 2, improved = 1;
	long evals = 0;
	Score bs = *bsp;
	unsigned char *save = xalloc((size_t)n);
	while (improved && evals < max_evals) {
		improved = 0;
		for (int d = 1; d <= K && evals < max_evals; d++)
			for (int r = 0; r < P && evals < max_evals; r++) {
				unsigned char *o = best[r];
				for (int i = 0; i < n && evals < max_evals; i++)
					for (int dir = -1; dir <= 1; dir += 2) {
						int j = i + dir * d;
						if (j < 0 || j >= n || o[i] == o[j])
							continue;
						memcpy(save, o, (size_t)n);
						unsigned char x = o[i];
						if (j > i)
							memmove(o + i, o + i + 1, (size_t)(j - i));
						else
							memmove(o + j + 1, o + j, (size_t)(i - j));
						o[j] = x;
						Score sc;
						int ok = order_ok(o, n) && fits(A, r, o, n);
						if (ok) {
							evals++;
							ok = timing(A, best, &sc) == 0 && better(sc, bs, span_first);
						}
						if (ok) {
							bs = sc;
							improved = 1;
						} else {
							memcpy(o, save, (size_t)n);
						}
					}
			}
	}
	*bsp = bs;
}

static Score score_of(Auto *A, unsigned char **ord)
{
	Score sc = { INFINITY, INFINITY, INFINITY };
	if (timing(A, ord, &sc) != 0)
		die("zb-auto: an accepted order deadlocks");
	return sc;
}

static double at0(const double *v, int i, double d)
{
	return v ? v[i] : d;
}

int sched_gen_zbauto(Schedule *s, const SchedSpec *spec, Loc where)
{
	int P = s->P, M = s->M, n = 3 * M;
	Auto A = { .P = P, .M = M };
	double *buf = xalloc((size_t)P * 11 * sizeof *buf);
	A.f = buf; A.b = buf + P; A.w = buf + 2 * P; A.mf = buf + 3 * P; A.mb = buf + 4 * P;
	A.cf = buf + 5 * P; A.cb = buf + 6 * P; A.opt = buf + 7 * P;
	A.memb = buf + 8 * P; A.memw = buf + 9 * P;
	const SimCost *c = spec->cost;
	for (int r = 0; r < P; r++) {
		int rc = spec->recompute && spec->recompute[r];
		A.f[r] = c ? c->f[r] : 1;
		A.b[r] = c ? c->b[r] + (rc ? at0(c->r, r, c->f[r]) : 0) : 1 + (rc ? 1 : 0);
		A.w[r] = c ? at0(c->w, r, 0) : 1;
		A.mf[r] = c ? at0(c->msg_f, r, 0) : 0;
		A.mb[r] = c ? at0(c->msg_b, r, 0) : 0;
		A.cf[r] = c ? at0(c->copy_f, r, 0) : 0;
		A.cb[r] = c ? at0(c->copy_b, r, 0) : 0;
		A.opt[r] = c ? (c->optim_p ? c->optim_p[r] : c->optim) : 0;
		A.memb[r] = spec->mem_b ? spec->mem_b[r] : 1;
		A.memw[r] = spec->mem_w ? spec->mem_w[r] : A.memb[r] / 2;
	}
	double R = spec->zb_memory > 0 ? spec->zb_memory : 1;
	/* 1F1B keeps min(P-r, M) micro-batches on rank r: rank 0's when the
	 * stages keep the same, and never less than any rank of 1F1B holds */
	double f1b = 0;
	for (int r = 0; r < P; r++) {
		double held = (P - r < M ? P - r : M) * A.memb[r];
		if (held > f1b)
			f1b = held;
	}
	A.limit = R * f1b;
	if (!(A.limit > 0))     /* nothing kept at all: count micro-batches */
		for (int r = 0; r < P; r++) {
			A.memb[r] = 1;
			A.memw[r] = 0.5;
			A.limit = R * (P < M ? P : M);
		}
	for (int r = 0; r < P; r++)
		if (A.memb[r] > A.limit * (1 + 1e-9)) {
			diag_error(where, "zb-auto(memory = %g) allows %g bytes of activations a rank "
			           "(%g x the most 1F1B keeps on a rank), but one micro-batch of stage %d "
			           "keeps %g from its forward to its backward; raise the memory or "
			           "the micro-batches", R, A.limit, R, r, A.memb[r]);
			return -1;
		}
	A.endf = xalloc((size_t)P * M * sizeof *A.endf);
	A.endb = xalloc((size_t)P * M * sizeof *A.endb);

	unsigned char **best = xalloc((size_t)P * sizeof *best);
	unsigned char **best2 = xalloc((size_t)P * sizeof *best2);
	unsigned char **cand = xalloc((size_t)P * sizeof *cand);
	for (int r = 0; r < P; r++) {
		best[r] = xalloc((size_t)n);
		best2[r] = xalloc((size_t)n);
		cand[r] = xalloc((size_t)n);
	}
	/* best: the candidate best at the span; best2: at the step time */
	Score bs = { INFINITY, INFINITY, INFINITY }, bs2 = bs;
	int have = 0;
#define CONSIDER() do { \
		int ok_ = 1; \
		for (int r_ = 0; r_ < P && ok_; r_++) \
			ok_ = order_ok(cand[r_], n) && fits(&A, r_, cand[r_], n); \
		Score sc_; \
		if (ok_ && timing(&A, cand, &sc_) == 0) { \
			if (!have || better(sc_, bs, 1)) { \
				bs = sc_; \
				for (int r_ = 0; r_ < P; r_++) \
					memcpy(best[r_], cand[r_], (size_t)n); \
			} \
			if (!have || better(sc_, bs2, 0)) { \
				bs2 = sc_; \
				for (int r_ = 0; r_ < P; r_++) \
					memcpy(best2[r_], cand[r_], (size_t)n); \
			} \
			have = 1; \
		} \
	} while (0)
	for (int h2 = 0; h2 < 2; h2++) {
		fixed_order(P, M, h2, cand);
		CONSIDER();
	}
	static const double thetas[] = { 1, 0.5, 0 };
	for (int pb = 1; pb >= 0; pb--)
		for (int ti = 0; ti < 3; ti++)
			for (int warm = 0; warm < 3; warm++) {
				Policy pol = { pb, thetas[ti], warm };
				if (greedy(&A, &pol, cand) == 0)
					CONSIDER();
			}
#undef CONSIDER
	if (!have)
		die("zb-auto found no order within its memory limit (P=%d M=%d R=%g)", P, M, R);

	/* the span first from the candidate best at it (what the paper
	 * optimises: it leads the search to the parallelograms), then the step
	 * time; the result, or the candidate best at the step time if that is
	 * still better */
	double effort = spec->zb_effort > 0 ? spec->zb_effort : 1;
	long budget = (long)(effort * (40000000.0 / ((double)P * n) + 200));
	improve(&A, best, &bs, 1, budget * 3 / 4);
	bs = score_of(&A, best);
	improve(&A, best, &bs, 0, budget / 4);
	if (better(bs2, bs, 0))
		for (int r = 0; r < P; r++)
			memcpy(best[r], best2[r], (size_t)n);

	for (int r = 0; r < P; r++) {
		int cnt[3] = { 0, 0, 0 };
		for (int i = 0; i < n; i++) {
			int k = best[r][i];
			actlist_push(&s->rank[r], k == KF ? OP_F : k == KB ? OP_B : OP_W, r,
			             cnt[k]++, -1);
		}
	}
	return 0;
}
