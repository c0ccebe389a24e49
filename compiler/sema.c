/* sema.c — the semantic pass.
 *
 * Reads the syntax tree, reports every independent error it finds (each at
 * the offending token), and builds the model IR: tensors, layers with their
 * parameters, FLOPs and activation bytes, and the pipeline settings.  The
 * checks, in order: the model's tensors, layers and loss (sema_model.c);
 * the pipeline keys and the constraints between them (sema_pipe.c).
 */
#include "sema_int.h"

/* Reports an unknown name: with a suggestion from `names` when one is
 * close, else with the whole list when it is short.  Returns the
 * suggestion (or NULL). */
const char *sema_unknown(Loc loc, const char *what, const char *s, const char *const *names,
                         int n)
{
	const char *best = closest_name(s, names, n);
	if (best) {
		diag_error(loc, "unknown %s '%s'; did you mean '%s'?", what, s, best);
	} else if (n <= 20) {
		char *list = "";
		for (int i = 0; i < n; i++)
			list = xprintf("%s%s'%s'", list, !i ? "" : i == n - 1 ? " or " : ", ", names[i]);
		diag_error(loc, "unknown %s '%s'; expected %s", what, s, list);
	} else {
		diag_error(loc, "unknown %s '%s'", what, s);
	}
	return best;
}

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
