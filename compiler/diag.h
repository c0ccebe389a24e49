/* diag.h — user diagnostics in GNU form.
 *
 *   mlp.pipe:16:18: error: linear(12, 4) expects 12 inputs, but 'b' outputs 16
 *      16 |     layer c : linear(12, 4);
 *         |                      ^~
 *
 * A location is a byte range in a source file; line and column are computed
 * only when a message is printed (as jq's locfile does).  Every error is
 * counted; a pass checks diag_errors() to decide whether to stop (exit 1).
 */
#ifndef PIPEC_DIAG_H
#define PIPEC_DIAG_H

#include "util.h"

typedef struct SrcFile {
	const char *name;       /* as given on the command line */
	const char *text;       /* NUL-terminated contents */
	size_t len;
} SrcFile;

typedef struct Loc {
	const SrcFile *file;    /* NULL: no location (command line, internal) */
	uint32_t off, end;      /* byte range [off, end) */
} Loc;

/* Reads a whole file; NULL (and a message, "pipec: error: cannot read ...")
 * on failure.  Files with NUL bytes are rejected as binary. */
SrcFile *src_load(const char *path);
/* A source made from a string (the value of a --set, a CSV line). */
SrcFile *src_from_string(const char *name, const char *text);

void loc_linecol(Loc loc, int *line, int *col);
/* The offset of the first byte of s[0..n) that is not well-formed UTF-8,
 * or -1 (the scanner quotes a foreign name back, never binary noise). */
int src_utf8_invalid(const char *s, size_t n);

void diag_error(Loc loc, const char *fmt, ...) PRINTF_LIKE(2, 3);
void diag_warning(Loc loc, const char *fmt, ...) PRINTF_LIKE(2, 3);
void diag_note(Loc loc, const char *fmt, ...) PRINTF_LIKE(2, 3);
void diag_verror(Loc loc, const char *fmt, va_list ap);
/* An error at FILE:LINE:COL of a file that is not a SrcFile (a CSV line). */
void diag_error_at(const char *file, int line, int col, const char *fmt, ...) PRINTF_LIKE(4, 5);
int diag_errors(void);
/* With buf: nothing is printed, and the first error's message (without
 * location) is kept in buf; with NULL: messages are printed again.
 * pipec plan tries candidates this way. */
void diag_capture(char *buf, size_t size);
/* Resets the error count (to what diag_errors() said before a try). */
void diag_set_errors(int n);
/* Reports "unknown WHAT 's'": with a suggestion from `names` when one is
 * close ("did you mean"), else with the whole list when it is short
 * (at most 24 names: the pipeline keys are 21).
 * Returns the suggestion (or NULL). */
const char *diag_unknown(Loc loc, const char *what, const char *s, const char *const *names,
                         int n);
/* Cap on printed errors (further ones are counted, not printed). */
#define DIAG_MAX_ERRORS 50

/* Plain "pipec: error: ..." with no location. */
void diag_plain(const char *fmt, ...) PRINTF_LIKE(1, 2);

#endif
