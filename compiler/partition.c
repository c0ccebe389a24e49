/* partition.c — the partition pass.
 *
 * An explicit partition (a list or a block) is applied as written.
 * `partition = auto` balances the slowest stage under the cost model:
 * forward + backward FLOPs per sample at cc->flops, plus the transfer of
 * the stage's output activations (forward) and their gradients (backward)
 * over cc->bandwidth.  With `memory = SIZE` the partitioner also bounds each
 * rank's weights, gradients, optimizer state and in-flight activations.
 */
#include "partition.h"
#include "part.h"

#include <math.h>

const CostConsts cost_defaults = {
	.flops = 50e9,          /* a CPU core running SGEMM */
	.bandwidth = 8e9,       /* shared-memory MPI on one node (docs/running.md) */
	.latency = 2e-6,
	.mem_bandwidth = 20e9,  /* streaming a CPU core's share of DRAM */
	.weight_bandwidth = 20e9,       /* the same DRAM, read by the GEMMs */
};

double cost_flops_bwd(const CostConsts *cc)
{
	return cc->flops_bwd > 0 ? cc->flops_bwd : cc->flops;
}

double cost_weight_sec(const CostConsts *cc, const Pipeline *pp)
{
	if (pp->sched == SK_GENERATE || isinf(cc->weight_bandwidth))
		return 0;
	return (double)dtype_bytes(pp->dtype) / cc->weight_bandwidth;
}

/* Optimizer state in floats per parameter. */
static int optim_floats(OptimKind k)
{
	return k == OPT_ADAM ? 2 : k == OPT_SGD ? 1 : 0;
}

int partition_model(IrModel *m, const CostConsts *cc, const int *stage_rank)
{
	Pipeline *pp = &m->pipe;
	int S = pp->P * pp->V;
	int n = m->nlayers;
	int *first = xalloc((size_t)(S + 1) * sizeof *first);
	if (pp->part_auto) {
		double rows = (double)pp->B / ((double)pp->R * pp->M);
		double inflight = pp->sched == SK_GPIPE ? pp->M : pp->M < pp->P ? pp->M : pp->P;
		double *cost = xalloc((size_t)n * sizeof *cost);
		double *bnd = xalloc((size_t)n * sizeof *bnd);
		double *mem = xalloc((size_t)n * sizeof *mem);
		int training = pp->optim != OPT_NONE;
		/* each GEMM pass reads its weights once (costmodel.c) */
		double wsec = cost_weight_sec(cc, pp);
		for (int i = 0; i < n; i++) {
			const IrLayer *L = &m->layers[i];
			cost[i] = rows * (L->flops_f / cc->flops
			                  + (training ? (L->flops_b + L->flops_w) / cost_flops_bwd(cc) : 0))
			          + (training ? (L->flops_b > 0 ? 3 : 2) : 1) * wsec * L->gemm_elems;
			double bytes = rows * (double)ir_boundary_bytes(m, i + 1 < n ? i + 1 : n - 1);
			bnd[i] = (training ? 2 : 1) * (bytes / cc->bandwidth + cc->latency);
			mem[i] = (double)L->nparam_elems * 4 * (1 + (training ? 1 + optim_floats(pp->optim) : 0))
			         + (training ? rows * inflight * (double)L->act_bytes : 0);
		}
		if (part_balance_placed(n, cost, bnd, mem, pp->memory_cap, S, pp->P, stage_rank,
		                        first) != 0) {
			if (pp->memory_cap > 0)
				diag_error(pp->memory_loc.file ? pp->memory_loc : pp->sched_loc,
				           "no partition of %d layers into %d stages fits memory = %.0f "
				           "bytes per rank", n, S, pp->memory_cap);
			else
				diag_error(pp->part_loc, "cannot split %d layers into %d stages", n, S);
			return -1;
		}
	} else {
		first[0] = 0;
		for (int s = 0; s < S; s++)
			first[s + 1] = first[s] + pp->part_counts[s];
	}
	m->S = S;
	m->stages = xalloc((size_t)S * sizeof *m->stages);
	for (int s = 0; s < S; s++) {
		IrStage *st = &m->stages[s];
		st->first = first[s];
		st->last = first[s + 1];
		st->rank = stage_rank ? stage_rank[s] : s % pp->P;
		if (pp->recompute)
			st->recompute = pp->nrecompute == S ? pp->recompute[s]
			                                    : pp->recompute[st->rank];
	}
	ir_stage_costs(m);
	return 0;
}
