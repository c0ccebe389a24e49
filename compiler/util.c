/* util.c — the compiler's arena, strings and fatal errors. */
#include "util.h"

#include <stdlib.h>
#include <string.h>

/* Every allocation is a block with a header linking it into one list, so
 * pool_free_all() releases everything and xrealloc() can move blocks. */
typedef struct Block {
	struct Block *prev, *next;
	max_align_t align[];
} Block;

static Block pool = { &pool, &pool };

static NORETURN void out_of_memory(size_t n)
{
	fprintf(stderr, "pipec: error: out of memory (asked for %zu bytes)\n", n);
	exit(3);
}

void *xalloc(size_t n)
{
	Block *b = calloc(1, sizeof(Block) + n);
	if (!b)
		out_of_memory(n);
	b->next = pool.next;
	b->prev = &pool;
	pool.next->prev = b;
	pool.next = b;
	return b->align;
}

void *xrealloc(void *p, size_t n)
{
	if (!p)
		return xalloc(n);
	Block *b = (Block *)((char *)p - offsetof(Block, align));
	Block *prev = b->prev, *next = b->next;
	Block *nb = realloc(b, sizeof(Block) + n);
	if (!nb)
		out_of_memory(n);
	prev->next = nb;
	next->prev = nb;
	return nb->align;
}

char *xstrndup(const char *s, size_t n)
{
	char *d = xalloc(n + 1);
	memcpy(d, s, n);
	return d;
}

char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

const char *vformat(char *tmp, size_t size, int *len, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(tmp, size, fmt, ap2);
	va_end(ap2);
	char *s = tmp;
	if (n >= (int)size) {
		s = xalloc((size_t)n + 1);
		vsnprintf(s, (size_t)n + 1, fmt, ap);
	}
	*len = n;
	return s;
}

char *xprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	char *s = xalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

void pool_free_all(void)
{
	Block *b = pool.next;
	while (b != &pool) {
		Block *next = b->next;
		free(b);
		b = next;
	}
	pool.next = pool.prev = &pool;
}

/* A mark is an empty block: everything allocated after it lies before it
 * in the list (new blocks go to the front, and a block xrealloc moves
 * keeps its place), so releasing frees the blocks in front of it. */
void *pool_mark(void)
{
	return xalloc(0);
}

void pool_release(void *mark)
{
	Block *m = (Block *)((char *)mark - offsetof(Block, align));
	Block *rest = m->next;
	Block *b = pool.next;
	while (b != rest) {
		Block *next = b->next;
		free(b);
		b = next;
	}
	pool.next = rest;
	rest->prev = &pool;
}

void die_at(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "pipec: internal error at %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\npipec: this is a bug in pipec; please report it with the input file\n", stderr);
	exit(3);
}

void fail_io(const char *fmt, ...)
{
	va_list ap;
	fputs("pipec: error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(3);
}

int edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 64 || lb > 64)
		return 1000;
	int d[65][65];
	for (size_t i = 0; i <= la; i++)
		d[i][0] = (int)i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = (int)j;
	for (size_t i = 1; i <= la; i++)
		for (size_t j = 1; j <= lb; j++) {
			int c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
			if (d[i - 1][j] + 1 < c)
				c = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < c)
				c = d[i][j - 1] + 1;
			/* a transposition counts as one edit */
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]
			    && d[i - 2][j - 2] + 1 < c)
				c = d[i - 2][j - 2] + 1;
			d[i][j] = c;
		}
	return d[la][lb];
}

const char *closest_name(const char *s, const char *const *names, int n)
{
	const char *best = NULL;
	int bestd = 1000;
	int limit = (int)strlen(s) <= 3 ? 1 : (int)strlen(s) <= 6 ? 2 : 3;
	for (int i = 0; i < n; i++) {
		int d = edit_distance(s, names[i]);
		if (d < bestd) {
			bestd = d;
			best = names[i];
		}
	}
	return bestd <= limit ? best : NULL;
}
