/* sema_int.h — what the semantic pass's files share (sema.c, sema_model.c,
 * sema_pipe.c); not for other passes. */
#ifndef PIPEC_SEMA_INT_H
#define PIPEC_SEMA_INT_H

#include "sema.h"

/* The model block: tensors, layers, loss.  `before`: the error count when
 * sema_check began (the library may check several programs in one
 * process).  Returns whether the layers were all accepted, so that their
 * count and names can be checked against (after a bad layer they cannot). */
int sema_check_model(const Program *p, IrModel *m, int before);

/* The pipeline block, with the --set overrides applied. */
void sema_check_pipeline(const Program *p, PipeItem *const *sets, int nsets, IrModel *m,
                         int layers_ok);

#endif
