/* sema.h — the semantic pass: checks the tree and lowers it to the model IR. */
#ifndef PIPEC_SEMA_H
#define PIPEC_SEMA_H

#include "ast.h"
#include "ir.h"

/* Checks p with the --set overrides applied (each replaces the file's key;
 * a later --set of the same key wins).  Returns NULL after reporting every
 * error found. */
IrModel *sema_check(const Program *p, PipeItem *const *sets, int nsets);

/* The pipeline keys, for --help and "did you mean". */
extern const char *const sema_pipeline_keys[];

#endif
