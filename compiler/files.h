/* files.h — what `pipec compile` reads and writes around the rank programs'
 * text: the templates, the output directory, the generated Makefile and
 * launcher, and where the runtime they build against is.
 *
 * Where things are: a pipec run from the build tree it was built in (its
 * executable is that tree's compiler/pipec) takes the source tree's
 * templates/ and runtime/ headers and the build tree's runtime libraries; any
 * other pipec (installed) takes the configured $(pkgdatadir)/templates,
 * $(includedir) and $(libdir).  PIPEC_TEMPLATES (or its older name
 * PIPEC_PKGDATADIR), PIPEC_RUNTIME_INCLUDE and PIPEC_RUNTIME_LIB override
 * each one (docs/running.md).
 *
 * The output directory is all or nothing: files are written into a staging
 * directory and moved into place by files_commit; a compile that ends
 * before (an error exit, a signal) leaves nothing it wrote behind, nor the
 * directories it created.
 */
#ifndef PIPEC_FILES_H
#define PIPEC_FILES_H

#include "emit.h"

/* The template NAME (rank.c.tmpl, ...), whole; fail_io if it cannot be read. */
char *files_template(const char *name);

/* tmpl with every @KEY@ of keys[0..n) replaced by its value from vals. */
char *files_substitute(const char *tmpl, const char *const *keys, const char *const *vals,
                       int n);

/* Starts writing the output directory dir (created with its missing
 * parents by files_commit, or existing). */
void files_begin(const char *dir);

/* Writes NAME into the output directory (exec: mode 0755). */
void files_write(const char *name, const char *text, int exec);

/* Writes the Makefile (against libpipert.a, or libpipert_cuda.a with
 * --backend cuda) and the launcher `run` for the rank programs named in
 * ranks ("rank0 rank1 ..."). */
void files_makefile_and_run(const IrModel *m, const Schedule *s, const EmitOptions *eo,
                            const char *ranks);

/* Puts what was written in place: a new directory is renamed into place
 * whole; into an existing one each file is moved, and a file whose content
 * is unchanged is left alone (its timestamp too, so make rebuilds nothing). */
void files_commit(void);

#endif
