/* util.h — memory, strings and fatal errors shared by every pass.
 *
 * Memory: the compiler allocates from one arena (xalloc) and releases it
 * once at exit (pool_free_all); passes never free.  Large growable arrays
 * use xrealloc-style vectors (VEC_PUSH), also owned by the arena.
 */
#ifndef PIPEC_UTIL_H
#define PIPEC_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#if defined(__GNUC__)
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#define NORETURN __attribute__((noreturn))
#else
#define PRINTF_LIKE(f, a)
#define NORETURN
#endif

void *xalloc(size_t n);                 /* zeroed; lives until pool_free_all */
void *xrealloc(void *p, size_t n);      /* p from xalloc/xrealloc or NULL */
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xprintf(const char *fmt, ...) PRINTF_LIKE(1, 2);
/* Formats into tmp when it fits (no allocation: the emitters print
 * millions of short pieces), else into a new string; returns the text
 * and sets *len to its length. */
const char *vformat(char *tmp, size_t size, int *len, const char *fmt, va_list ap);
void pool_free_all(void);
/* pool_mark() before a piece of work whose allocations nothing older
 * keeps; pool_release(mark) frees them (pipec plan: one candidate). */
void *pool_mark(void);
void pool_release(void *mark);

/* A growable array: struct { T *v; int n, cap; }. */
#define VEC(T) struct { T *v; int n, cap; }
#define VEC_PUSH(vec, x) do { \
	if ((vec).n == (vec).cap) { \
		(vec).cap = (vec).cap ? 2 * (vec).cap : 8; \
		(vec).v = xrealloc((vec).v, (size_t)(vec).cap * sizeof *(vec).v); \
	} \
	(vec).v[(vec).n++] = (x); \
} while (0)

/* Internal errors: a bug in pipec, never bad input.  Prints
 * "pipec: internal error at FILE:LINE: ..." and exits 3 (never abort()). */
NORETURN void die_at(const char *file, int line, const char *fmt, ...) PRINTF_LIKE(3, 4);
#define die(...) die_at(__FILE__, __LINE__, __VA_ARGS__)
#define unreachable() die("unreachable")

/* I/O failure (cannot write an output file): exit 3 with the message. */
NORETURN void fail_io(const char *fmt, ...) PRINTF_LIKE(1, 2);

/* Edit distance for "did you mean" suggestions. */
int edit_distance(const char *a, const char *b);
/* The closest of names[0..n) to s within a small distance, or NULL. */
const char *closest_name(const char *s, const char *const *names, int n);

#endif
