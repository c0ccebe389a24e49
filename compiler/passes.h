/* passes.h — the passes check, schedule, compile and plan share
 * (passes.c): partition, schedule, and the memory plan's peak. */
#ifndef PIPEC_PASSES_H
#define PIPEC_PASSES_H

#include "costmodel.h"
#include "ir.h"
#include "memplan.h"
#include "schedule.h"

/* pipec's exit statuses */
enum { EXIT_INPUT = 1, EXIT_USAGE = 2, EXIT_INTERNAL = 3 };

typedef struct Built {
	SchedSpec spec;
	Schedule *s;            /* generated, lowered, verified */
	SimCost *cost;
	SimResult *r;
	const Schedule *round;  /* the program one call of step() runs */
} Built;

/* partition m's layers into its stages (0, or an exit status
 * after reporting the error). */
int pipec_partition(IrModel *m, const CostOption *copt, const Schedule *file_sched);
/* generate (or take file_sched), lower, verify and simulate;
 * dump_s writes the lowered CSV to stderr (-dS).  0 or an exit status. */
int pipec_schedule(IrModel *m, const CostOption *copt, Schedule *file_sched, int dump_s,
                   Built *b);
/* the largest total a rank of round holds (weights, gradients,
 * optimizer state, arena): the compiled programs' peak_memory_predicted. */
int64_t pipec_peak_memory(const IrModel *m, const Schedule *round);

/* What rank `rank` of round will hold: its memory plan, and a training
 * program's evaluation arena when that is larger (es: sched_eval's, or
 * NULL). */
RankMemory pipec_rank_memory(const IrModel *m, const Schedule *round, const Schedule *es,
                             int rank);
/* The verifier's report for built-in schedules: a failure is pipec's bug. */
void pipec_report_internal(const char *fmt, ...);

#endif
