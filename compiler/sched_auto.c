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
 *      better, until no move helps or 4e7 / (P x 3M) + 200 orders have
 *      been timed (what timing each in full, 4e7 actions, used to cost).
 *      A trial is cheaper than a full timing: its memory and order checks
 *      look at the moved window only; its timing starts where the move can
 *      first change anything (run_from), stops as soon as every rank is
 *      back on the base order's times (the rest is then the base's) or as
 *      soon as lower bounds (a rank's clock plus its compute left) show it
 *      cannot be better.  Both stops are exact: the search takes the same
 *      moves, bit for bit, as timing every trial in full would, in about
 *      a third to a half of the time (the 28B plan's 78 searches over 32
 *      ranks: 8.0 s of CPU in zb-auto before, 4.3 s after, 2 cores).
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
 * result is deterministic, and a search repeated in one process (pipec
 * plan asks for the same one under several partitions and recompute
 * levels) returns the orders kept from the first (memo_find).  The
 * schedule is then lowered and verified like every other (main.c). */
#include "schedule.h"

#include <math.h>
#include <stdlib.h>
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
	/* the timing of the base order (the one a trial moves an action of):
	 * [P*n] each position's start and end, [P*(n+1)] before each position
	 * the actions of each kind (x3) and the memory held (as fits() sums) */
	double *st, *en, *memp;
	int *cnt;
	double *endf, *endb;    /* [P*M] the base's end of each F and B */
	/* a run: each rank's next position, clock, first start, last end,
	 * actions of each kind (x3), compute left and bound on its span; F's
	 * and B's below kf, kb are the base's, the others the run's own
	 * (tendf, tendb, valid where their stamp is the run's) */
	int *pc, *rc, *kf, *kb;
	double *t, *first, *last, *rem, *slb;
	double *tendf, *tendb;
	unsigned long *sf, *sb, stamp;
	int inc, r0, hi;        /* run_from()'s rank and window; inc: a base to rejoin */
	unsigned char *off;     /* [P] a rank's clock is not the base's */
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

/* Sets up a run of every rank from position 0. */
static void run_from_start(Auto *A)
{
	for (int r = 0; r < A->P; r++) {
		A->pc[r] = 0;
		A->t[r] = A->last[r] = 0;
		A->first[r] = -1;
		A->rc[3 * r] = A->rc[3 * r + 1] = A->rc[3 * r + 2] = 0;
		A->kf[r] = A->kb[r] = 0;
	}
	A->inc = 0;
	A->r0 = 0;
	A->hi = -1;
}

/* Sets up a run after rank r0's order changed within positions lo .. hi
 * (the base's actions there permuted).  What starts before the base's
 * position lo of rank r0 ended, T0, cannot depend on those actions
 * (everything that does starts at T0 or later, durations and transfers
 * being >= 0), so it keeps the base's times; every rank resumes at its
 * first action that started at T0 or later in the base, rank r0 at lo.
 * The times that come out are the ones a run from the start gives, bit
 * for bit: each action's time is the same expression of the same inputs. */
static void run_from(Auto *A, int r0, int lo, int hi)
{
	int P = A->P, n = 3 * A->M;
	double T0 = lo > 0 ? A->en[r0 * n + lo - 1] : 0;
	for (int r = 0; r < P; r++) {
		const double *st = A->st + (size_t)r * n;
		int p;
		if (r == r0)
			p = lo;
		else {
			int a = 0, b = n;       /* the first start >= T0 */
			while (a < b) {
				int m = (a + b) / 2;
				if (st[m] < T0)
					a = m + 1;
				else
					b = m;
			}
			p = a;
		}
		const int *c = A->cnt + ((size_t)r * (n + 1) + p) * 3;
		A->pc[r] = p;
		A->t[r] = A->last[r] = p ? A->en[(size_t)r * n + p - 1] : 0;
		A->first[r] = p ? st[0] : -1;
		A->rc[3 * r] = A->kf[r] = c[KF];
		A->rc[3 * r + 1] = A->kb[r] = c[KB];
		A->rc[3 * r + 2] = c[KW];
	}
	A->inc = 1;
	A->r0 = r0;
	A->hi = hi;
}

/* fmax() for the times here, which are never NaN: inline */
static inline double maxd(double a, double b)
{
	return a > b ? a : b;
}

/* Runs the orders ord[r][0 .. 3M-1] from the state run_from*() set up, on
 * the simulator's model.  0 and the score; -1 when the orders deadlock;
 * 1 when bound is given and the score cannot be better() than it, which
 * the lower bounds (a rank's clock plus its compute left) tell as early
 * as they can.  rec: the orders become the base (the times, counts and
 * memory of every position run, and the ends of F and B).
 *
 * After run_from(), a run also stops once nothing it has left can differ
 * from the base: every rank's clock is the base's at its position (rank
 * r0 past the window) and every F and B run whose end differs from the
 * base's has had its receiver run too.  What is left then runs as in the
 * base (the same inputs), so its times are the base's. */
static inline __attribute__((always_inline)) int
run_body(Auto *A, unsigned char **ord, const Score *bound, int span_first, int rec, int inc,
         Score *sc)
{
	int P = A->P, M = A->M, n = 3 * M;
	int *pc = A->pc, *rc = A->rc, *kf = A->kf, *kb = A->kb;
	double *t = A->t, *first = A->first, *last = A->last, *rem = A->rem, *slb = A->slb;
	const double *en = A->en;
	unsigned long stamp = ++A->stamp;
	int r0 = A->r0, hi = A->hi;
	/* the lower bounds: the longest span, step, and the sum of spans */
	double L1 = 0, L2 = 0, Ls = 0;
	double hi1 = INFINITY, lo1 = INFINITY, hi2 = INFINITY, lo2 = INFINITY, los = INFINITY;
	/* inc: ranks whose clock is not the base's (r0 until past hi), and
	 * changed messages not yet taken */
	int done = 0, offclock = inc, changed = 0;
	unsigned char *off = A->off;
	for (int r = 0; r < P; r++) {
		off[r] = inc && r == r0;
		if (pc[r] == n)
			done++;
		if (!bound)
			continue;
		rem[r] = (M - rc[3 * r]) * A->f[r] + (M - rc[3 * r + 1]) * A->b[r] +
		         (M - rc[3 * r + 2]) * A->w[r];
		double lb = t[r] + rem[r];
		slb[r] = first[r] < 0 ? rem[r] : lb - first[r];
		L1 = maxd(L1, slb[r]);
		L2 = maxd(L2, lb + A->opt[r]);
		Ls += slb[r];
	}
	if (bound) {
		/* better() with half its tolerance again as a margin for the
		 * bounds' own rounding: a1 > b1 + tol rules a out, so does
		 * a1 >= b1 - tol (no better) with a2 > b2 + tol, and so on */
		double tol = 1e-9 * (fabs(bound->step) + 1e-300), m = tol / 2;
		double b1 = span_first ? bound->span : bound->step;
		double b2 = span_first ? bound->step : bound->span;
		hi1 = b1 + tol + m, lo1 = b1 - tol + m;
		hi2 = b2 + tol + m, lo2 = b2 - tol + m;
		los = bound->sum - tol + m;
	}
#define PRUNED() (bound && ((span_first ? L1 : L2) > hi1 || \
		((span_first ? L1 : L2) >= lo1 && ((span_first ? L2 : L1) > hi2 || \
		((span_first ? L2 : L1) >= lo2 && Ls >= los)))))
	if (PRUNED())
		return 1;
	int progress = 1, rejoined = 0;
	while (progress && !rejoined) {
		progress = 0;
		/* from r0 on: what the move changes first */
		for (int rr = 0; rr < P && !rejoined; rr++) {
			int r = r0 + rr < P ? r0 + rr : r0 + rr - P;
			const unsigned char *o = ord[r];
			while (pc[r] < n) {
				int k = o[pc[r]], i = rc[3 * r + k];
				double start = t[r], dur;
				int took = 0;   /* a changed message */
				if (k == KF) {
					if (r > 0) {
						size_t s = (size_t)(r - 1) * M + i;
						double e;
						if (i < kf[r - 1])
							e = A->endf[s];
						else if (A->sf[s] == stamp) {
							e = A->tendf[s];
							took = inc && e != A->endf[s];
						} else
							break;
						start = maxd(t[r] + A->cf[r - 1], e + A->mf[r - 1]);
					}
					dur = A->f[r];
				} else if (k == KB) {
					if (r < P - 1) {
						size_t s = (size_t)(r + 1) * M + i;
						double e;
						if (i < kb[r + 1])
							e = A->endb[s];
						else if (A->sb[s] == stamp) {
							e = A->tendb[s];
							took = inc && e != A->endb[s];
						} else
							break;
						start = maxd(t[r] + A->cb[r + 1], e + A->mb[r + 1]);
					}
					dur = A->b[r];
				} else {
					dur = A->w[r];
				}
				double end = start + dur;
				changed -= took;
				size_t s = (size_t)r * M + i;
				if (k == KF) {
					A->tendf[s] = end;
					A->sf[s] = stamp;
					changed += inc && r < P - 1 && end != A->endf[s];
				} else if (k == KB) {
					A->tendb[s] = end;
					A->sb[s] = stamp;
					changed += inc && r > 0 && end != A->endb[s];
				}
				int p = pc[r];
				if (inc) {
					/* off the base's clock after this action (before
					 * rec overwrites the base's end) */
					int now = p + 1 < n && ((r == r0 && p + 1 <= hi) ||
					                        end != en[(size_t)r * n + p]);
					offclock += now - off[r];
					off[r] = (unsigned char)now;
				}
				if (rec) {
					size_t q = (size_t)r * n + p;
					int *c = A->cnt + ((size_t)r * (n + 1) + p + 1) * 3;
					A->st[q] = start;
					A->en[q] = end;
					c[0] = rc[3 * r];
					c[1] = rc[3 * r + 1];
					c[2] = rc[3 * r + 2];
					c[k]++;
					q += r;         /* memp is [P*(n+1)] */
					A->memp[q + 1] = A->memp[q] + (k == KF ? A->memb[r] : k == KB ?
					                 A->memw[r] - A->memb[r] : -A->memw[r]);
				}
				if (first[r] < 0)
					first[r] = start;
				last[r] = end;
				t[r] = end;
				rc[3 * r + k]++;
				pc[r]++;
				progress = 1;
				if (pc[r] == n)
					done++;
				if (bound) {
					rem[r] -= dur;
					double lb = end + rem[r], sl = lb - first[r];
					L1 = maxd(L1, sl);
					L2 = maxd(L2, lb + A->opt[r]);
					Ls += sl - slb[r];
					slb[r] = sl;
					if (PRUNED())
						return 1;
				}
				if (inc && !offclock && !changed) {
					rejoined = 1;
					break;
				}
			}
		}
	}
#undef PRUNED
	if (!rejoined && done < P)
		return -1;
	if (rec)
		for (int r = 0; r < P; r++) {
			for (int i = kf[r]; i < rc[3 * r]; i++)
				A->endf[(size_t)r * M + i] = A->tendf[(size_t)r * M + i];
			for (int i = kb[r]; i < rc[3 * r + 1]; i++)
				A->endb[(size_t)r * M + i] = A->tendb[(size_t)r * M + i];
		}
	Score s = { 0, 0, 0 };
	for (int r = 0; r < P; r++) {
		/* what did not run is the base's */
		double lr = pc[r] == n ? last[r] : en[(size_t)r * n + n - 1];
		double fr = first[r] >= 0 ? first[r] : A->st[(size_t)r * n];
		double span = lr - fr;
		if (span > s.span)
			s.span = span;
		if (lr + A->opt[r] > s.step)
			s.step = lr + A->opt[r];
		s.sum += span;
	}
	*sc = s;
	return 0;
}

/* run_body() compiled for each use, its flags constant: the inner loop
 * is most of zb-auto's time */
static int run(Auto *A, unsigned char **ord, const Score *bound, int span_first, int rec,
               Score *sc)
{
	if (bound)              /* a trial: after run_from() */
		return span_first ? run_body(A, ord, bound, 1, 0, 1, sc)
		                  : run_body(A, ord, bound, 0, 0, 1, sc);
	if (A->inc)
		return run_body(A, ord, NULL, 0, rec, 1, sc);
	return rec ? run_body(A, ord, NULL, 0, 1, 0, sc) : run_body(A, ord, NULL, 0, 0, 0, sc);
}

/* Times the orders from the start.  Returns 0 and the score, or -1 when
 * they deadlock.  rec: they become the base. */
static int timing(Auto *A, unsigned char **ord, Score *sc, int rec)
{
	run_from_start(A);
	return run(A, ord, NULL, 0, rec, sc);
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

/* Moves rank r's action at i to j (the ones between shift by one). */
static void move(unsigned char *o, int i, int j)
{
	unsigned char x = o[i];
	if (j > i)
		memmove(o + i, o + i + 1, (size_t)(j - i));
	else
		memmove(o + j + 1, o + j, (size_t)(i - j));
	o[j] = x;
}

/* order_ok() and fits() of rank r's order after a move within lo .. hi:
 * the prefix before lo is the base's (its counts and memory recorded),
 * and past hi the counts are the base's again. */
static int window_ok(const Auto *A, int r, const unsigned char *o, int lo, int hi)
{
	int n = 3 * A->M;
	const int *c0 = A->cnt + ((size_t)r * (n + 1) + lo) * 3;
	int c[3] = { c0[0], c0[1], c0[2] };
	double mem = A->memp[(size_t)r * (n + 1) + lo], top = A->limit + 1e-9 * A->limit;
	for (int p = lo; p <= hi; p++) {
		int k = o[p];
		c[k]++;
		if (c[KB] > c[KF] || c[KW] > c[KB])
			return 0;
		if (k == KF)
			mem += A->memb[r];
		else if (k == KB)
			mem += A->memw[r] - A->memb[r];
		else
			mem -= A->memw[r];
		if (mem > top)
			return 0;
	}
	return 1;
}

/* Local search: move one action of a rank by d = 1 .. K places (d = 1 is a
 * swap of neighbours), keep the first move that fits and times better;
 * rounds until none does or max_evals orders have been timed.  Ranks,
 * positions and distances are tried in a fixed order.  A trial re-times
 * only what the move can change (run_from) and stops as soon as its
 * bounds show it cannot be better; an accepted move is run again in full
 * from the same point to become the base. */
static void improve(Auto *A, unsigned char **best, Score *bsp, int span_first, long max_evals)
{
	int P = A->P, n = 3 * A->M, K = 2 * P + 2, improved = 1;
	long evals = 0;
	Score bs;
	if (timing(A, best, &bs, 1) != 0)
		die("zb-auto: an accepted order deadlocks");
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
						int lo = i < j ? i : j, hi = i < j ? j : i;
						move(o, i, j);
						Score sc;
						int ok = window_ok(A, r, o, lo, hi);
						if (ok) {
							evals++;
							run_from(A, r, lo, hi);
							ok = run(A, best, &bs, span_first, 0, &sc) == 0 &&
							     better(sc, bs, span_first);
						}
						if (ok) {
							run_from(A, r, lo, hi);
							if (run(A, best, NULL, 0, 1, &bs) != 0)
								die("zb-auto: an accepted order deadlocks");
							improved = 1;
						} else {
							move(o, j, i);
						}
					}
			}
	}
	*bsp = bs;
}

static Score score_of(Auto *A, unsigned char **ord)
{
	Score sc = { INFINITY, INFINITY, INFINITY };
	if (timing(A, ord, &sc, 0) != 0)
		die("zb-auto: an accepted order deadlocks");
	return sc;
}

static double at0(const double *v, int i, double d)
{
	return v ? v[i] : d;
}

/* ---- results already found ----
 * The search is a function of its inputs alone: the costs and memory of
 * every rank, P, M, the limit and the budget.  `pipec plan` asks for the
 * same search more than once (a partition under the memory limit that
 * equals the plain one, the same stage costs at another recompute level
 * that did not change them), so the orders found are kept, keyed by those
 * inputs bit for bit, and a repeated search returns them: the same
 * answer, without the time.  Malloc'd for the process (the pool is
 * released between a plan's candidates); at most MEMO_MAX kept. */
enum { MEMO_MAX = 256, NIN = 10 };

typedef struct Memo {
	int P, M;
	long budget;
	double limit;
	double *in;             /* [NIN * P] */
	unsigned char *ord;     /* [P * 3M] */
} Memo;

static Memo memo[MEMO_MAX];
static int nmemo, memo_next;

static void memo_inputs(const Auto *A, double *in)
{
	const double *v[NIN] = { A->f, A->b, A->w, A->mf, A->mb, A->cf, A->cb, A->opt, A->memb,
	                         A->memw };
	for (int k = 0; k < NIN; k++)
		memcpy(in + (size_t)k * A->P, v[k], (size_t)A->P * sizeof *in);
}

static const Memo *memo_find(const Auto *A, long budget, const double *in)
{
	for (int i = 0; i < nmemo; i++) {
		const Memo *e = &memo[i];
		if (e->P == A->P && e->M == A->M && e->budget == budget
		    && !memcmp(&e->limit, &A->limit, sizeof e->limit)
		    && !memcmp(e->in, in, (size_t)NIN * A->P * sizeof *in))
			return e;
	}
	return NULL;
}

static void memo_add(const Auto *A, long budget, const double *in, unsigned char **ord)
{
	size_t n = (size_t)3 * A->M, ni = (size_t)NIN * A->P;
	double *ci = malloc(ni * sizeof *ci);
	unsigned char *co = malloc((size_t)A->P * n);
	if (!ci || !co) {       /* a cache: without memory, none */
		free(ci);
		free(co);
		return;
	}
	memcpy(ci, in, ni * sizeof *ci);
	for (int r = 0; r < A->P; r++)
		memcpy(co + (size_t)r * n, ord[r], n);
	Memo *e;
	if (nmemo < MEMO_MAX) {
		e = &memo[nmemo++];
	} else {                /* full: the oldest goes */
		e = &memo[memo_next];
		memo_next = (memo_next + 1) % MEMO_MAX;
		free(e->in);
		free(e->ord);
	}
	*e = (Memo){ A->P, A->M, budget, A->limit, ci, co };
}

static void push_orders(Schedule *s, int P, int n, unsigned char *const *ord)
{
	for (int r = 0; r < P; r++) {
		int cnt[3] = { 0, 0, 0 };
		for (int i = 0; i < n; i++) {
			int k = ord[r][i];
			actlist_push(&s->rank[r], k == KF ? OP_F : k == KB ? OP_B : OP_W, r,
			             cnt[k]++, -1);
		}
	}
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
	double effort = spec->zb_effort > 0 ? spec->zb_effort : 1;
	long budget = (long)(effort * (40000000.0 / ((double)P * n) + 200));
	double *in = xalloc((size_t)NIN * P * sizeof *in);
	memo_inputs(&A, in);
	const Memo *hit = memo_find(&A, budget, in);
	if (hit) {
		unsigned char **o = xalloc((size_t)P * sizeof *o);
		for (int r = 0; r < P; r++)
			o[r] = hit->ord + (size_t)r * n;
		push_orders(s, P, n, o);
		return 0;
	}
	size_t pm = (size_t)P * M, pn = (size_t)P * n;
	A.endf = xalloc(pm * sizeof *A.endf);
	A.endb = xalloc(pm * sizeof *A.endb);
	A.tendf = xalloc(pm * sizeof *A.tendf);
	A.tendb = xalloc(pm * sizeof *A.tendb);
	A.sf = xalloc(pm * sizeof *A.sf);
	A.sb = xalloc(pm * sizeof *A.sb);
	A.st = xalloc(pn * sizeof *A.st);
	A.en = xalloc(pn * sizeof *A.en);
	A.memp = xalloc((pn + P) * sizeof *A.memp);     /* zero before each rank's first */
	A.cnt = xalloc((pn + P) * 3 * sizeof *A.cnt);
	int *ib = xalloc((size_t)P * 6 * sizeof *ib);
	A.pc = ib; A.kf = ib + P; A.kb = ib + 2 * P; A.rc = ib + 3 * P;       /* rc: [3P] */
	A.off = xalloc((size_t)P);
	double *db = xalloc((size_t)P * 5 * sizeof *db);
	A.t = db; A.first = db + P; A.last = db + 2 * P; A.rem = db + 3 * P; A.slb = db + 4 * P;

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
		if (ok_ && timing(&A, cand, &sc_, 0) == 0) { \
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
	improve(&A, best, &bs, 1, budget * 3 / 4);
	bs = score_of(&A, best);
	improve(&A, best, &bs, 0, budget / 4);
	if (better(bs2, bs, 0))
		for (int r = 0; r < P; r++)
			memcpy(best[r], best2[r], (size_t)n);
	memo_add(&A, budget, in, best);
	push_orders(s, P, n, best);
	return 0;
}
