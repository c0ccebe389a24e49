/* sema.c — the semantic pass.
 *
 * Reads the syntax tree, reports every independent error it finds (each at
 * the offending token), and builds the model IR: tensors, layers with their
 * parameters, FLOPs and activation bytes, and the pipeline settings.  The
 * checks, in order: the model's tensors, layers and loss (sema_model.c);
 * the pipeline keys and the constraints between them (sema_pipe.c).
 */
#include "sema_int.h"

IrModel *sema_check(const Program *p, PipeItem *const *sets, int nsets)
{
	int before = diag_errors();
	IrModel *m = xalloc(sizeof *m);
	m->name = p->name;
	m->file = p->file;
	m->target = -1;
	int layers_ok = sema_check_model(p, m, before);
	sema_check_pipeline(p, sets, nsets, m, layers_ok);
	if (diag_errors() != before)
		return NULL;
	ir_index(m);
	return m;
}
