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

/* Writes DIR/rankN.c, DIR/Makefile, DIR/run: rank N's program from its
 * memory plan and its verified step program.  Returns an exit status. */
int emit_program(const IrModel *m, const Schedule *s, const SimResult *r,
                 RankPlan *const *plans, StepProgram *const *steps, const EmitOptions *o);

#endif
