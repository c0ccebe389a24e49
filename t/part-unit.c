/* part-unit.c — the partitioner against hand cases and brute force. */
#include "part.h"
#include "util.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static double group_cost(int n, const double *cost, const double *bnd, int i, int j)
{
	double pc_i = 0, pc_j = 0;
	for (int k = 0; k < i; k++)
		pc_i += cost[k];
	pc_j = pc_i;
	for (int k = i; k < j; k++)
		pc_j += cost[k];
	return pc_j - pc_i + (j < n && bnd ? bnd[j - 1] : 0);
}

static double max_of(int n, const double *cost, const double *bnd, int K, const int *first)
{
	double m = -1;
	for (int g = 0; g < K; g++) {
		double c = group_cost(n, cost, bnd, first[g], first[g + 1]);
		if (c > m)
			m = c;
	}
	return m;
}

static int fits(const double *mem, double cap, int K, int ranks, const int *first)
{
	double sum[64] = { 0 };
	if (cap <= 0)
		return 1;
	for (int g = 0; g < K; g++)
		for (int i = first[g]; i < first[g + 1]; i++)
			sum[g % ranks] += mem[i];
	for (int r = 0; r < ranks; r++)
		if (sum[r] > cap)
			return 0;
	return 1;
}

static int valid(int n, int K, const int *first)
{
	if (first[0] != 0 || first[K] != n)
		return 0;
	for (int g = 0; g < K; g++)
		if (first[g + 1] <= first[g])
			return 0;
	return 1;
}

/* Enumerates every partition in lexicographic order of its cuts; returns
 * the best max (or -1 if none fits) and the first partition reaching it. */
static double brute(int n, const double *cost, const double *bnd, const double *mem,
                    double cap, int K, int ranks, int *bestcut)
{
	int cut[16];
	double best = -1;
	cut[0] = 0;
	cut[K] = n;
	/* cuts 1..K-1 as a combination of positions 1..n-1 */
	for (int g = 1; g < K; g++)
		cut[g] = g;
	for (;;) {
		if (fits(mem, cap, K, ranks, cut)) {
			double m = max_of(n, cost, bnd, K, cut);
			if (best < 0 || m < best) {
				best = m;
				for (int g = 0; g <= K; g++)
					bestcut[g] = cut[g];
			}
		}
		int g = K - 1;
		while (g >= 1 && cut[g] == n - (K - g))
			g--;
		if (g < 1)
			break;
		cut[g]++;
		for (int h = g + 1; h < K; h++)
			cut[h] = cut[h - 1] + 1;
	}
	return best;
}

int main(void)
{
	int first[300];

	/* equal costs split evenly */
	double ones[1000], zeros[1000];
	for (int i = 0; i < 1000; i++) {
		ones[i] = 1;
		zeros[i] = 0;
	}
	is_int(part_balance(12, ones, zeros, NULL, 0, 4, 4, first), 0, "12 equal layers into 4");
	ok(first[0] == 0 && first[1] == 3 && first[2] == 6 && first[3] == 9 && first[4] == 12,
	   "12 equal layers split 3/3/3/3 (got %d %d %d %d %d)", first[0], first[1],
	   first[2], first[3], first[4]);
	is_int(part_balance(16, ones, NULL, NULL, 0, 8, 4, first), 0, "16 layers into 8 chunks, NULL bnd");
	int even = 1;
	for (int g = 0; g < 8; g++)
		even &= first[g + 1] - first[g] == 2;
	ok(even, "16 equal layers into 8 chunks of 2");

	/* ties go to the earliest cut: 7 layers in 4 groups, best max 2 */
	part_balance(7, ones, zeros, NULL, 0, 4, 4, first);
	ok(first[1] == 1 && first[2] == 3 && first[3] == 5,
	   "ties go to the earliest cut: 1/2/2/2 (got cuts %d %d %d)", first[1], first[2], first[3]);
	int again[8];
	part_balance(7, ones, zeros, NULL, 0, 4, 4, again);
	ok(memcmp(first, again, 5 * sizeof *first) == 0, "deterministic");

	/* boundary cost steers the cut */
	double c6[6] = { 1, 1, 1, 1, 1, 1 }, b6[6] = { 0, 0, 5, 0, 0, 0 };
	part_balance(6, c6, b6, NULL, 0, 2, 2, first);
	ok(first[1] != 3, "an expensive boundary is avoided (cut at %d)", first[1]);
	is_near(max_of(6, c6, b6, 2, first), 4, 0, "best max with the boundary is 4");

	/* n < nparts, cap */
	is_int(part_balance(3, ones, zeros, NULL, 0, 4, 4, first), -1, "fewer layers than parts: -1");
	double mem[8] = { 4, 4, 4, 4, 4, 4, 4, 4 };
	is_int(part_balance(8, ones, zeros, mem, 7, 4, 4, first), -1,
	       "cap below any two-layer group, 8 layers into 4: infeasible");
	is_int(part_balance(8, ones, zeros, mem, 3, 8, 8, first), -1, "cap below one layer: infeasible");
	double big[6] = { 1, 1, 1, 1, 1, 1 }, bm[6] = { 9, 1, 1, 1, 1, 9 };
	is_int(part_balance(6, big, NULL, bm, 11, 2, 2, first), 0, "cap 11 feasible");
	ok(fits(bm, 11, 2, 2, first), "cap respected (cut at %d)", first[1]);
	is_int(part_balance(6, big, NULL, bm, 11, 4, 2, first), 0, "cap 11 with 2 chunks per rank");
	ok(valid(6, 4, first) && fits(bm, 11, 4, 2, first), "per-rank cap respected across chunks");

	/* A custom placement (ZB-V's V: groups 0 1 | 1 0 on 2 ranks) binds the
	 * cap over the groups each rank really holds. */
	{
		double one4[4] = { 1, 1, 1, 1 }, mv[4] = { 10, 1, 10, 1 }, mm[4] = { 10, 1, 1, 10 };
		int v[4] = { 0, 1, 1, 0 };
		is_int(part_balance(4, one4, NULL, mv, 15, 4, 2, first), -1,
		       "Megatron placement: groups 0 and 2 (20 bytes) overflow a cap of 15");
		is_int(part_balance_placed(4, one4, NULL, mv, 15, 4, 2, v, first), 0,
		       "V placement: the same layers fit (11 per rank)");
		is_int(part_balance(4, one4, NULL, mm, 15, 4, 2, first), 0,
		       "Megatron placement: 11 per rank fits");
		is_int(part_balance_placed(4, one4, NULL, mm, 15, 4, 2, v, first), -1,
		       "V placement: groups 0 and 3 (20 bytes) overflow it");
		is_int(part_balance_placed(4, one4, NULL, mm, 0, 4, 2, v, first), 0,
		       "V placement without a cap: the plain optimum");
	}
	{
		srand(777);
		int vbad = 0, vcases = 0, vopt = 0;
		for (int t = 0; t < 2000; t++) {
			int ranks = 1 + rand() % 3, K = 2 * ranks, n = K + rand() % 5;
			double cost[12], m[12], sum[3];
			int grank[6], mine[16];
			for (int g = 0; g < K; g++)
				grank[g] = g < ranks ? g : K - 1 - g;
			for (int i = 0; i < n; i++) {
				cost[i] = rand() % 10;
				m[i] = 1 + rand() % 6;
			}
			double cap = 4 + rand() % 20;
			if (part_balance_placed(n, cost, NULL, m, cap, K, ranks, grank, mine) != 0)
				continue;
			vcases++;
			for (int r = 0; r < ranks; r++)
				sum[r] = 0;
			for (int g = 0; g < K; g++)
				for (int i = mine[g]; i < mine[g + 1]; i++)
					sum[grank[g]] += m[i];
			int bad = !valid(n, K, mine);
			for (int r = 0; r < ranks; r++)
				bad |= sum[r] > cap;
			vbad += bad;
			/* no better partition fits the V: brute force over all cuts */
			int cut[16], best_ok = 1;
			double got = max_of(n, cost, NULL, K, mine);
			cut[0] = 0;
			cut[K] = n;
			for (int g = 1; g < K; g++)
				cut[g] = g;
			for (;;) {
				double rs[3] = { 0, 0, 0 };
				for (int g = 0; g < K; g++)
					for (int i = cut[g]; i < cut[g + 1]; i++)
						rs[grank[g]] += m[i];
				int f = 1;
				for (int r = 0; r < ranks; r++)
					f &= rs[r] <= cap;
				if (f && max_of(n, cost, NULL, K, cut) < got)
					best_ok = 0;
				int g = K - 1;
				while (g >= 1 && cut[g] == n - (K - g))
					g--;
				if (g < 1)
					break;
				cut[g]++;
				for (int h = g + 1; h < K; h++)
					cut[h] = cut[h - 1] + 1;
			}
			vopt += best_ok;
		}
		ok(vcases > 500 && vbad == 0, "V placement: every partition returned (%d) is valid "
		   "and fits the cap on the ranks that really hold its groups", vcases);
		diagf("V placement with a cap (bisection heuristic): %d of %d optimal", vopt, vcases);
	}

	/* brute force on small random cases */
	srand(12345);
	int cases = 0, exact = 0, lexi = 0, both = 0, capped_cases = 0, capped_opt = 0;
	int bad_feasible = 0, bad_infeasible = 0;
	for (int t = 0; t < 3000; t++) {
		int n = 2 + rand() % 9;
		int K = 1 + rand() % (n < 5 ? n : 5);
		int ranks = K;
		if (K % 2 == 0 && rand() % 2)
			ranks = K / 2;
		double cost[12], bnd[12], m[12];
		for (int i = 0; i < n; i++) {
			cost[i] = rand() % 10;
			bnd[i] = rand() % 4;
			m[i] = 1 + rand() % 6;
		}
		double cap = rand() % 3 ? 0 : 4 + rand() % 20;
		int mine[16], ref[16];
		int r = part_balance(n, cost, bnd, m, cap, K, ranks, mine);
		double bf = brute(n, cost, bnd, m, cap, K, ranks, ref);
		if (r == 0 && !(valid(n, K, mine) && fits(m, cap, K, ranks, mine)))
			bad_feasible++;
		if (r == 0 && bf < 0)
			bad_feasible++;
		if (r != 0 && bf >= 0 && (ranks == K || cap <= 0))
			bad_infeasible++;
		if (r != 0 || bf < 0)
			continue;
		double got = max_of(n, cost, bnd, K, mine);
		if (ranks == K || cap <= 0) {
			cases++;
			exact += got == bf;
			lexi += memcmp(mine, ref, (size_t)(K + 1) * sizeof *mine) == 0;
		} else {
			capped_cases++;
			capped_opt += got == bf;
		}
		both++;
	}
	is_int(bad_feasible, 0, "every partition returned is valid, fits its cap, and exists");
	is_int(bad_infeasible, 0, "exact cases: never -1 when brute force finds a partition");
	ok(cases > 1000, "brute force compared %d exact cases", cases);
	is_int(exact, cases, "optimal max matches brute force in every exact case");
	is_int(lexi, cases, "ties: the lexicographically earliest optimal cuts, as brute force");
	diagf("several chunks per rank with a cap (bisection heuristic): %d of %d optimal",
	      capped_opt, capped_cases);

	/* The decision procedure that takes over past part_fast_n layers
	 * against the DP, on the same random cases (costs with fractions, so
	 * that sums round). */
	srand(777);
	int fcases = 0, fsame = 0, fsame_rc = 0;
	for (int t = 0; t < 3000; t++) {
		int n = 2 + rand() % 40, K = 1 + rand() % (n < 8 ? n : 8), ranks = K;
		double cost[48], bnd[48], m[48];
		for (int i = 0; i < n; i++) {
			cost[i] = (rand() % 1000) / 7.0;
			bnd[i] = (rand() % 40) / 3.0;
			m[i] = 1 + rand() % 6;
		}
		double cap = rand() % 3 ? 0 : 10 + rand() % 60;
		int dp[64], fast[64];
		part_fast_n = 4096;
		int r1 = part_balance(n, cost, bnd, m, cap, K, ranks, dp);
		part_fast_n = 0;
		int r2 = part_balance(n, cost, bnd, m, cap, K, ranks, fast);
		part_fast_n = 4096;
		fcases++;
		fsame_rc += r1 == r2;
		fsame += r1 == r2 && (r1 != 0 || memcmp(dp, fast, (size_t)(K + 1) * sizeof *dp) == 0);
	}
	is_int(fsame_rc, fcases, "decision procedure: fits exactly where the DP does");
	is_int(fsame, fcases, "decision procedure: the DP's cuts in every one of %d cases", fcases);

	/* A file may declare up to a million layers: partitioned in seconds. */
	{
		int n = 900002;
		double *c = malloc((size_t)n * sizeof *c), *b = malloc((size_t)n * sizeof *b);
		for (int i = 0; i < n; i++) {
			c[i] = 1 + i % 3;
			b[i] = 0.5;
		}
		clock_t t1 = clock();
		int r = part_balance(n, c, b, NULL, 0, 4, 4, first);
		double d = (double)(clock() - t1) / CLOCKS_PER_SEC;
		ok(r == 0 && valid(n, 4, first) && d < 20, "900,002 layers into 4 stages in %.2f s", d);
		free(c);
		free(b);
	}

	/* timing: 1000 layers into 128 chunks on 64 ranks */
	double c1000[1000], b1000[1000], m1000[1000];
	for (int i = 0; i < 1000; i++) {
		c1000[i] = 1 + (i * 7919 % 13);
		b1000[i] = (i * 31 % 5) * 0.1;
		m1000[i] = 1 + i % 3;
	}
	clock_t t0 = clock();
	int pr = part_balance(1000, c1000, b1000, m1000, 0, 128, 64, first);
	double dt = (double)(clock() - t0) / CLOCKS_PER_SEC;
	is_int(pr, 0, "1000 layers into 128 chunks");
	diagf("part_balance: 1000 layers, 128 chunks: %.3f s", dt);
	t0 = clock();
	pr = part_balance(1000, c1000, b1000, m1000, 40, 128, 64, first);
	dt = (double)(clock() - t0) / CLOCKS_PER_SEC;
	ok(pr == 0 && fits(m1000, 40, 128, 64, first), "1000 layers, 128 chunks, per-rank cap 40");
	diagf("part_balance with a per-rank cap: %.3f s", dt);
	return done_testing();
}
