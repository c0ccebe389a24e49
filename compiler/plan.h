/* plan.h — pipec plan, and the passes it shares with check, schedule and
 * compile (main.c), so that a plan's row is what `pipec schedule` prints
 * for the row's --sets. */
#ifndef PIPEC_PLAN_H
#define PIPEC_PLAN_H

#include "ast.h"
#include "costmodel.h"
#include "ir.h"
#include "schedule.h"

typedef struct Built {
	SchedSpec spec;
	Schedule *s;            /* generated, lowered, verified */
	SimCost *cost;
	SimResult *r;
	const Schedule *round;  /* the program one call of step() runs */
} Built;

/* main.c: partition m's layers into its stages (0, or an exit status
 * after reporting the error). */
int pipec_partition(IrModel *m, const CostOption *copt, const Schedule *file_sched);
/* main.c: generate (or take file_sched), lower, verify and simulate;
 * dump_s writes the lowered CSV to stderr (-dS).  0 or an exit status. */
int pipec_schedule(IrModel *m, const CostOption *copt, Schedule *file_sched, int dump_s,
                   Built *b);
/* main.c: the largest total a rank of round holds (weights, gradients,
 * optimizer state, arena): the compiled programs' peak_memory_predicted. */
int64_t pipec_peak_memory(const IrModel *m, const Schedule *round);

typedef struct PlanOptions {
	const char *ranks, *memory, *top;       /* as given; ranks required */
	const char *schedules;                  /* --schedules a,b,...: only these kinds */
	const char *format;                     /* text or csv */
	const CostOption *copt;
	PipeItem *const *sets;                  /* the user's --sets */
	int nsets;
} PlanOptions;

/* pipec plan: the exit status (0; 1 nothing fits or bad input; 2 a bad
 * --ranks, --memory or --top; 3 internal). */
int plan_main(const Program *prog, const PlanOptions *po);

#endif
