/* part.h — the partitioner: contiguous stages that balance a cost.
 *
 * Items are the model's layers in order.  A group [i, j) costs
 * sum(cost[i..j)) + bnd[j-1] (the transfer of its last layer's output;
 * bnd[n-1] is ignored), and holds sum(mem[i..j)) bytes.  part_balance
 * chooses `nparts` non-empty groups minimising the largest group cost
 * (PipeDream's planner, exact dynamic programming), subject to each RANK's
 * memory (the sum over the groups it holds: group g lives on rank g % ranks)
 * being at most cap (cap <= 0: no cap).  Ties go to the earliest cut.
 * Writes first[0..nparts] (first[0] = 0, first[nparts] = n).
 * Returns 0, or -1 if no partition fits (n < nparts or the cap is too small).
 */
#ifndef PIPEC_PART_H
#define PIPEC_PART_H

int part_balance(int n, const double *cost, const double *bnd, const double *mem,
                 double cap, int nparts, int ranks, int *first);

/* The same with group g on rank group_rank[g] (a custom placement such as
 * ZB-V's V shape); group_rank NULL is g % ranks, part_balance itself. */
int part_balance_placed(int n, const double *cost, const double *bnd, const double *mem,
                        double cap, int nparts, int ranks, const int *group_rank,
                        int *first);

/* Past this many layers (4096) part_balance uses its O(nparts·n) decision
 * procedure instead of the quadratic DP (part.c); tests lower it to compare
 * the two. */
extern int part_fast_n;

#endif
