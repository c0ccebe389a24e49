/* emit.h — the back ends: a verified schedule to per-rank programs. */
#ifndef PIPEC_EMIT_H
#define PIPEC_EMIT_H

#include "ir.h"
#include "memplan.h"
#include "schedule.h"
#include "step.h"

typedef struct EmitOptions {
	const char *dir;        /* output directory (created) */
	const char *backend;    /* "cpu" or "cuda" */
	int line_directives;    /* #line N "model.pipe" */
} EmitOptions;

/* A training program's evaluation step (sched_eval): the schedule, and
 * per rank its memory plan and verified step program. */
typedef struct EmitEval {
	const Schedule *s;
	RankPlan *const *plans;
	StepProgram *const *steps;
} EmitEval;

/* Writes DIR/rankN.c, DIR/Makefile, DIR/run: rank N's program from its
 * memory plan and its verified step program, and with ev (NULL: none) its
 * eval_step() from the evaluation step's.  Returns an exit status. */
int emit_program(const IrModel *m, const Schedule *s, const SimResult *r,
                 RankPlan *const *plans, StepProgram *const *steps, const EmitEval *ev,
                 const EmitOptions *o);

#endif
