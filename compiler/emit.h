/* emit.h — the back ends: a verified schedule to per-rank programs. */
#ifndef PIPEC_EMIT_H
#define PIPEC_EMIT_H

#include "ir.h"
#include "schedule.h"

typedef struct EmitOptions {
	const char *dir;        /* output directory (created) */
	const char *backend;    /* "cpu" or "cuda" */
	int line_directives;    /* #line N "model.pipe" */
	int dump_plan;          /* -dM: print the memory plan */
} EmitOptions;

/* Writes DIR/rankN.c, DIR/Makefile, DIR/run.  Returns an exit status. */
int emit_program(const IrModel *m, const Schedule *s, const SimResult *r,
                 const EmitOptions *o);

#endif
