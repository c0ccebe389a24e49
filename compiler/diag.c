/* diag.c — GNU-style diagnostics with the source line and a caret. */
#include "diag.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int nerrors;
static char *capture;           /* diag_capture: the first error goes here */
static size_t capture_size;

void diag_capture(char *buf, size_t size)
{
	capture = buf;
	capture_size = size;
	if (buf && size)
		buf[0] = 0;
}

void diag_set_errors(int n)
{
	nerrors = n;
}

/* Captured: keeps the first error's message, prints nothing. */
static int captured(const char *kind, const char *fmt, va_list ap)
{
	if (!capture)
		return 0;
	if (!strcmp(kind, "error") && capture_size && !capture[0])
		vsnprintf(capture, capture_size, fmt, ap);
	return 1;
}

SrcFile *src_from_string(const char *name, const char *text)
{
	SrcFile *f = xalloc(sizeof *f);
	f->name = xstrdup(name);
	f->len = strlen(text);
	f->text = xstrndup(text, f->len);
	return f;
}

SrcFile *src_load(const char *path)
{
	FILE *fp = fopen(path, "rb");
	if (!fp) {
		diag_plain("cannot read '%s': %s", path, strerror(errno));
		return NULL;
	}
	size_t cap = 1 << 16, len = 0;
	char *buf = xalloc(cap + 1);
	for (;;) {
		size_t got = fread(buf + len, 1, cap - len, fp);
		if (memchr(buf + len, 0, got)) {    /* early, so /dev/zero is quick */
			diag_plain("'%s' is a binary file (it contains NUL bytes)", path);
			fclose(fp);
			return NULL;
		}
		len += got;
		if (len < cap) {
			if (ferror(fp)) {
				diag_plain("cannot read '%s': %s", path, strerror(errno));
				fclose(fp);
				return NULL;
			}
			break;
		}
		if (cap >= ((size_t)1 << 30)) {
			diag_plain("'%s' is too large (over 1 GiB)", path);
			fclose(fp);
			return NULL;
		}
		cap *= 2;
		buf = xrealloc(buf, cap + 1);
	}
	fclose(fp);
	buf[len] = 0;
	SrcFile *f = xalloc(sizeof *f);
	f->name = xstrdup(path);
	f->text = buf;
	f->len = len;
	return f;
}

void loc_linecol(Loc loc, int *line, int *col)
{
	int l = 1, c = 1;
	if (loc.file) {
		const char *t = loc.file->text;
		size_t end = loc.off < loc.file->len ? loc.off : loc.file->len;
		for (size_t i = 0; i < end; i++) {
			if (t[i] == '\n') {
				l++;
				c = 1;
			} else {
				c++;
			}
		}
	}
	*line = l;
	*col = c;
}

/* The offset of the first byte of s[0..n) that is not well-formed UTF-8,
 * or -1. */
int src_utf8_invalid(const char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)s[i];
		size_t k = c < 0x80 ? 0 : c >= 0xC2 && c <= 0xDF ? 1 : c >= 0xE0 && c <= 0xEF ? 2
		         : c >= 0xF0 && c <= 0xF4 ? 3 : 9;
		if (k == 9 || (k && i + k >= n))
			return (int)i;
		for (size_t j = 1; j <= k; j++)
			if (((unsigned char)s[i + j] & 0xC0) != 0x80)
				return (int)i;
		i += k + 1;
	}
	return -1;
}

/* Prints "   16 |     layer c : linear(12, 4);" and the caret line.  A
 * line too long to read is shown as a window around the column, cut with
 * "...".  UTF-8 continuation bytes take no column on a terminal, so the
 * caret line skips them to stay under the right character; a line that is
 * not UTF-8 shows its bytes >= 0x80 as '?', like control characters. */
static void show_source(Loc loc, int line)
{
	enum { WIDTH = 160, BEFORE = 60 };
	const SrcFile *f = loc.file;
	size_t off = loc.off < f->len ? loc.off : f->len;
	size_t bol = off, eol = off;
	while (bol > 0 && f->text[bol - 1] != '\n')
		bol--;
	while (eol < f->len && f->text[eol] != '\n')
		eol++;
	size_t from = bol, to = eol;
	if (eol - bol > WIDTH) {
		from = off - bol > BEFORE ? off - BEFORE : bol;
		to = eol - from > WIDTH ? from + WIDTH : eol;
	}
	int utf8 = src_utf8_invalid(f->text + from, to - from) < 0;
	fprintf(stderr, "%5d | %s", line, from > bol ? "..." : "");
	for (size_t i = from; i < to; i++) {
		unsigned char ch = (unsigned char)f->text[i];
		fputc(ch == '\t' ? ' ' : ch < 32 || ch == 127 || (ch >= 128 && !utf8) ? '?' : ch,
		      stderr);
	}
	fprintf(stderr, "%s\n      | %s", to < eol ? "..." : "", from > bol ? "   " : "");
	for (size_t i = from; i < off; i++)
		if (!utf8 || ((unsigned char)f->text[i] & 0xC0) != 0x80)
			fputc(' ', stderr);
	fputc('^', stderr);
	size_t end = loc.end > loc.off ? loc.end : loc.off + 1;
	if (end > to)
		end = to;
	for (size_t i = off + 1; i < end; i++)
		if (!utf8 || ((unsigned char)f->text[i] & 0xC0) != 0x80)
			fputc('~', stderr);
	fputc('\n', stderr);
}

static void report(const char *kind, Loc loc, const char *fmt, va_list ap)
{
	if (captured(kind, fmt, ap))
		return;
	if (loc.file) {
		int line, col;
		loc_linecol(loc, &line, &col);
		fprintf(stderr, "%s:%d:%d: %s: ", loc.file->name, line, col, kind);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
		show_source(loc, line);
	} else {
		fprintf(stderr, "pipec: %s: ", kind);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
	}
}

void diag_verror(Loc loc, const char *fmt, va_list ap)
{
	if (++nerrors > DIAG_MAX_ERRORS) {
		if (nerrors == DIAG_MAX_ERRORS + 1)
			fprintf(stderr, "pipec: too many errors; stopping here\n");
		return;
	}
	report("error", loc, fmt, ap);
}

void diag_error(Loc loc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	diag_verror(loc, fmt, ap);
	va_end(ap);
}

void diag_warning(Loc loc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	report("warning", loc, fmt, ap);
	va_end(ap);
}

void diag_note(Loc loc, const char *fmt, ...)
{
	if (nerrors > DIAG_MAX_ERRORS)
		return;
	va_list ap;
	va_start(ap, fmt);
	report("note", loc, fmt, ap);
	va_end(ap);
}

void diag_error_at(const char *file, int line, int col, const char *fmt, ...)
{
	va_list ap;
	nerrors++;
	va_start(ap, fmt);
	if (captured("error", fmt, ap)) {
		va_end(ap);
		return;
	}
	va_end(ap);
	fprintf(stderr, "%s:%d:%d: error: ", file, line, col);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void diag_plain(const char *fmt, ...)
{
	va_list ap;
	nerrors++;
	va_start(ap, fmt);
	if (captured("error", fmt, ap)) {
		va_end(ap);
		return;
	}
	va_end(ap);
	fputs("pipec: error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int diag_errors(void)
{
	return nerrors;
}

/* Reports an unknown name: with a suggestion from `names` when one is
 * close, else with the whole list when it is short.  Returns the
 * suggestion (or NULL). */
const char *diag_unknown(Loc loc, const char *what, const char *s, const char *const *names,
                         int n)
{
	const char *best = closest_name(s, names, n);
	if (best) {
		diag_error(loc, "unknown %s '%s'; did you mean '%s'?", what, s, best);
	} else if (n <= 24) {
		char *list = "";
		for (int i = 0; i < n; i++)
			list = xprintf("%s%s'%s'", list, !i ? "" : i == n - 1 ? " or " : ", ", names[i]);
		diag_error(loc, "unknown %s '%s'; expected %s", what, s, list);
	} else {
		diag_error(loc, "unknown %s '%s'", what, s);
	}
	return best;
}
