/* partition.h — the partition pass: layers to (virtual) stages to ranks. */
#ifndef PIPEC_PARTITION_H
#define PIPEC_PARTITION_H

#include "ir.h"

/* The `model` cost constants (pipec schedule --cost model). */
typedef struct CostConsts {
	double flops;           /* FLOP/s of one rank */
	double flops_bwd;       /* FLOP/s of its backward (input- and weight-gradient)
	                         * GEMMs, which run at other shapes; 0: flops */
	double bandwidth;       /* bytes/s of the link between ranks */
	double latency;         /* seconds per message */
	double mem_bandwidth;   /* bytes/s of a rank's memory: the optimizer step */
	double weight_bandwidth;        /* bytes/s at which a GEMM streams its
	                                 * weights, once a call (F, B, W each):
	                                 * what makes few rows run below the
	                                 * rate; INFINITY: not priced */
} CostConsts;

extern const CostConsts cost_defaults;

/* The backward rate in effect. */
double cost_flops_bwd(const CostConsts *cc);

/* Seconds a GEMM pass spends reading one weight element: the dtype's bytes
 * at weight_bandwidth; 0 when not priced (INFINITY) and for generation,
 * whose decode steps the cost model bounds by the weights' read itself. */
double cost_weight_sec(const CostConsts *cc, const Pipeline *pp);

/* Chooses or applies the partition: fills m->stages / m->S.  Returns 0, or
 * -1 after an input error (an auto partition that cannot meet the memory
 * cap).  stage_rank[k] is the pipeline rank holding stage k (a custom
 * schedule's placement, read from its file); NULL is Megatron's placement,
 * stage k on rank k mod P.  The memory cap and per-rank recompute ratios
 * follow the placement. */
int partition_model(IrModel *m, const CostConsts *cc, const int *stage_rank);

#endif
