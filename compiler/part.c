/* part.c — the partitioner: contiguous groups that minimise the slowest.
 *
 * Exact dynamic programming over suffixes (PipeDream's planner):
 *
 *   best[k][i] = the smallest possible largest group cost when layers
 *                [i, n) form k groups
 *              = min over j of max(cost(i, j), best[k-1][j]),
 *
 * with cost(i, j) = sum(cost[i..j)) + bnd[j-1] (no boundary after the last
 * layer) and only groups whose memory fits.  The optimum is best[nparts][0];
 * the cuts are then chosen front to back, each at the earliest position that
 * still reaches the optimum, so among optimal partitions the one with the
 * lexicographically smallest cut positions is returned (deterministic
 * ties).  O(nparts * n^2) at worst; a group stops growing once its own sum
 * alone beats the best found, which makes the usual case much faster.
 *
 * Memory: with one group per rank (nparts == ranks) the cap is a per-group
 * limit and the result is exact.  With several groups per rank (interleaved
 * chunks: group g on rank g % ranks, or on group_rank[g] for a custom
 * placement such as ZB-V's V) the cap binds the SUM over a rank's
 * groups, which couples distant groups (exact optimisation is then a
 * partition problem).  We solve the DP with a per-group limit L and accept
 * the result when every rank's sum fits: first L = cap (if that fits, it is
 * optimal), then the largest L in [cap / groups-per-rank, cap] found by
 * bisection whose result fits.  Returns -1 if none does.
 *
 * Past part_fast_n layers (no real pipeline has them: a layer is a whole block,
 * but a .pipe file may declare up to a million) the quadratic DP is
 * replaced by a decision procedure: "can [i, n) form k groups of cost at
 * most X?" for every i and k in O(K·n) with a sliding-window minimum,
 * and a bisection on X.  It finds the same optimum to about 1e-15
 * relative, and the same front-to-back earliest cuts for it.
 */
#include "part.h"

#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int part_fast_n = 4096;     /* layers past which solve_fast takes over */

typedef struct Part {
	int n, K;
	const int *grank;       /* [K] rank of each group, or NULL: g % ranks */
	const double *bnd;
	double *pc, *pm;        /* prefix sums of cost and memory, [n+1] */
	double *best;           /* [(K+1) * (n+1)] */
} Part;

static double gcost(const Part *p, int i, int j)
{
	double c = p->pc[j] - p->pc[i];
	if (j < p->n && p->bnd)
		c += p->bnd[j - 1];
	return c;
}

#define BEST(p, k, i) ((p)->best[(size_t)(k) * ((p)->n + 1) + (i)])

/* Fills best[][] for a per-group memory limit L; writes the cuts and
 * returns 0, or -1 when no partition fits. */
static int solve_fast(Part *p, double L, int *first);

static int solve(Part *p, double L, int *first)
{
	int n = p->n, K = p->K;
	if (n > part_fast_n)
		return solve_fast(p, L, first);
	for (int i = 0; i <= n; i++)
		BEST(p, 0, i) = i == n ? -INFINITY : INFINITY;
	for (int k = 1; k <= K; k++)
		for (int i = 0; i <= n; i++) {
			double b = INFINITY;
			/* k groups need at least k layers */
			for (int j = i + 1; i <= n - k && j <= n - k + 1; j++) {
				if (p->pm[j] - p->pm[i] > L)
					break;
				if (p->pc[j] - p->pc[i] >= b)
					break;
				double c = gcost(p, i, j), h = BEST(p, k - 1, j);
				double m = c > h ? c : h;
				if (m < b)
					b = m;
			}
			BEST(p, k, i) = b;
		}
	double opt = BEST(p, K, 0);
	if (!(opt < INFINITY))
		return -1;
	int i = 0;
	first[0] = 0;
	for (int g = 0; g < K; g++) {
		int k = K - g, j;
		for (j = i + 1; j <= n - k + 1; j++) {
			double c = gcost(p, i, j), h = BEST(p, k - 1, j);
			if (p->pm[j] - p->pm[i] <= L && (c > h ? c : h) <= opt)
				break;
		}
		if (j > n - k + 1)
			die("partition reconstruction failed at group %d", g);
		first[g + 1] = j;
		i = j;
	}
	if (first[K] != n)
		die("partition does not end at the last layer");
	return 0;
}

/* f[k][i] (k = 0..K, i = 0..n): [i, n) splits into k groups, each of cost
 * at most X and memory at most L.  The group [i, j) costs
 * val[j] - pc[i] with val[j] = pc[j] + bnd[j-1] (none after the last
 * layer); for each k the candidate ends j of i form a window (i, hi(i)]
 * whose both ends move left as i does, so a deque of increasing val from
 * right to left gives each window's minimum in O(1) amortised. */
static int feasible(const Part *p, double L, double X, unsigned char *f, double *val, int *dq)
{
	int n = p->n, K = p->K;
	memset(f, 0, (size_t)(K + 1) * (size_t)(n + 1));
	f[n] = 1;
	for (int j = 1; j <= n; j++)
		val[j] = j < n && p->bnd ? p->pc[j] + p->bnd[j - 1] : p->pc[j];
	for (int k = 1; k <= K; k++) {
		const unsigned char *prev = f + (size_t)(k - 1) * (n + 1);
		unsigned char *cur = f + (size_t)k * (n + 1);
		/* dq[head..tail), filled from the left: indices grow to the right */
		int head = n + 1, tail = n + 1, hi = n;
		for (int i = n - 1; i >= 0; i--) {
			int j = i + 1;
			if (prev[j]) {
				while (tail > head && val[dq[head]] >= val[j])
					head++;
				dq[--head] = j;
			}
			while (hi > i && p->pm[hi] - p->pm[i] > L)
				hi--;
			while (tail > head && dq[tail - 1] > hi)
				tail--;
			cur[i] = tail > head && val[dq[tail - 1]] - p->pc[i] <= X;
		}
	}
	return f[(size_t)K * (n + 1)] ? 0 : -1;
}

static int solve_fast(Part *p, double L, int *first)
{
	int n = p->n, K = p->K;
	/* Scratch of one call (xalloc's pool lives until exit; the bisection
	 * of interleaved placements calls this up to 50 times). */
	unsigned char *f = malloc((size_t)(K + 1) * (size_t)(n + 1));
	double *val = malloc((size_t)(n + 1) * sizeof *val), lo = 0, hi = p->pc[n];
	int *dq = malloc((size_t)(n + 2) * sizeof *dq), rc = -1;
	if (!f || !val || !dq)
		die("out of memory partitioning %d layers", n);
	for (int j = 0; p->bnd && j + 1 < n; j++)
		hi = p->bnd[j] > 0 ? hi + p->bnd[j] : hi;
	if (feasible(p, L, hi, f, val, dq) == 0) {
		for (int it = 0; it < 64; it++) {
			double mid = lo + (hi - lo) / 2;
			if (mid <= lo || mid >= hi)
				break;
			if (feasible(p, L, mid, f, val, dq) == 0)
				hi = mid;
			else
				lo = mid;
		}
		feasible(p, L, hi, f, val, dq);
		/* The earliest cut that keeps the rest feasible, group by group. */
		int i = 0;
		first[0] = 0;
		for (int g = 0; g < K; g++) {
			const unsigned char *rest = f + (size_t)(K - g - 1) * (n + 1);
			int j = i + 1;
			while (j <= n && !(rest[j] && p->pm[j] - p->pm[i] <= L && val[j] - p->pc[i] <= hi))
				j++;
			if (j > n)
				die("partition reconstruction failed at group %d", g);
			first[g + 1] = i = j;
		}
		if (first[K] != n)
			die("partition does not end at the last layer");
		rc = 0;
	}
	free(f);
	free(val);
	free(dq);
	return rc;
}

static int ranks_fit(const Part *p, const int *first, int ranks, double cap)
{
	double *sum = xalloc((size_t)ranks * sizeof *sum);
	for (int g = 0; g < p->K; g++)
		sum[p->grank ? p->grank[g] : g % ranks] += p->pm[first[g + 1]] - p->pm[first[g]];
	for (int r = 0; r < ranks; r++)
		if (sum[r] > cap)
			return 0;
	return 1;
}

static double max_cost(const Part *p, const int *first)
{
	double m = -INFINITY;
	for (int g = 0; g < p->K; g++) {
		double c = gcost(p, first[g], first[g + 1]);
		if (c > m)
			m = c;
	}
	return m;
}

int part_balance(int n, const double *cost, const double *bnd, const double *mem,
                 double cap, int nparts, int ranks, int *first)
{
	return part_balance_placed(n, cost, bnd, mem, cap, nparts, ranks, NULL, first);
}

int part_balance_placed(int n, const double *cost, const double *bnd, const double *mem,
                        double cap, int nparts, int ranks, const int *group_rank,
                        int *first)
{
	if (nparts < 1 || n < nparts)
		return -1;
	if (ranks < 1 || ranks > nparts)
		ranks = nparts;
	if (group_rank)
		for (int g = 0; g < nparts; g++)
			if (group_rank[g] < 0 || group_rank[g] >= ranks)
				die("group %d placed on rank %d of %d", g, group_rank[g], ranks);
	Part p = { .n = n, .K = nparts, .bnd = bnd, .grank = group_rank };
	p.pc = xalloc((size_t)(n + 1) * sizeof *p.pc);
	p.pm = xalloc((size_t)(n + 1) * sizeof *p.pm);
	for (int i = 0; i < n; i++) {
		p.pc[i + 1] = p.pc[i] + cost[i];
		p.pm[i + 1] = p.pm[i] + (mem ? mem[i] : 0);
	}
	if (n <= part_fast_n)
		p.best = xalloc((size_t)(nparts + 1) * (size_t)(n + 1) * sizeof *p.best);
	if (cap <= 0 || !mem)
		return solve(&p, INFINITY, first);
	if (solve(&p, cap, first))
		return -1;
	if (ranks == nparts || ranks_fit(&p, first, ranks, cap))
		return 0;

	/* Several groups per rank and the per-group limit was not enough. */
	int per = (nparts + ranks - 1) / ranks;
	int *try = xalloc((size_t)(nparts + 1) * sizeof *try);
	int found = 0;
	double lo = cap / per, hi = cap, best = INFINITY;
	if (!solve(&p, lo, try) && ranks_fit(&p, try, ranks, cap)) {
		found = 1;
		best = max_cost(&p, try);
		for (int g = 0; g <= nparts; g++)
			first[g] = try[g];
	}
	for (int it = 0; it < 48; it++) {
		double mid = lo + (hi - lo) / 2;
		if (!solve(&p, mid, try) && ranks_fit(&p, try, ranks, cap)) {
			double m = max_cost(&p, try);
			if (!found || m < best) {
				best = m;
				for (int g = 0; g <= nparts; g++)
					first[g] = try[g];
			}
			found = 1;
			lo = mid;
		} else {
			hi = mid;
		}
	}
	return found ? 0 : -1;
}
