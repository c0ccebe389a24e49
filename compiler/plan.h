/* plan.h — pipec plan (plan.c): every configuration for N ranks through
 * the passes of passes.h, ranked. */
#ifndef PIPEC_PLAN_H
#define PIPEC_PLAN_H

#include "ast.h"
#include "costmodel.h"
#include "passes.h"

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
