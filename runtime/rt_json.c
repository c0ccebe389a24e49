/* rt_json.c — a small, strict JSON reader (RFC 8259) for safetensors
 * headers and checkpoint state.
 *
 * The text comes from a file the user names, so it is hostile input: every
 * read is bounds-checked, nesting is limited (no stack exhaustion), the
 * number of values is capped (a 100 MB header of "0," cannot become gigabytes
 * of nodes), and any error returns NULL with the reason and byte offset
 * rather than crashing.  Strict where readers disagree: strings must be valid
 * UTF-8 with no \u0000 (keys are C strings), numbers must be finite and
 * without leading zeros, and an object whose keys repeat is refused — the
 * first-wins or last-wins choice differs between readers, so such a file
 * would mean different things to different tools.  docs/file-formats.md.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rt_internal.h"

#define MAX_DEPTH 64
/* Values in one document: a safetensors entry is about 14, so this allows
 * some 300,000 tensors while bounding the nodes (56 bytes each, arrays
 * grown by doubling) under 500 MB. */
#define MAX_VALUES (1 << 22)

typedef struct {
	const char *s;
	size_t len, pos;
	int depth;
	long values;
	char *err;
	size_t errlen;
	int failed;
} jp;

static void fail(jp *p, const char *what)
{
	if (!p->failed)
		rt_fmt_err(p->err, p->errlen, "bad JSON at byte %zu: %s", p->pos, what);
	p->failed = 1;
}

static void ws(jp *p)
{
	while (p->pos < p->len) {
		char ch = p->s[p->pos];
		if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r')
			break;
		p->pos++;
	}
}

static int peek(jp *p)
{
	return p->pos < p->len ? (unsigned char)p->s[p->pos] : -1;
}

static int lit(jp *p, const char *word)
{
	size_t n = strlen(word);
	if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
		return 0;
	p->pos += n;
	return 1;
}

static int hex4(jp *p, unsigned *out)
{
	unsigned v = 0;
	if (p->len - p->pos < 4)
		return 0;
	for (int i = 0; i < 4; i++) {
		char ch = p->s[p->pos++];
		v <<= 4;
		if (ch >= '0' && ch <= '9') v |= (unsigned)(ch - '0');
		else if (ch >= 'a' && ch <= 'f') v |= (unsigned)(ch - 'a' + 10);
		else if (ch >= 'A' && ch <= 'F') v |= (unsigned)(ch - 'A' + 10);
		else return 0;
	}
	*out = v;
	return 1;
}

static size_t put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) { o[0] = (char)cp; return 1; }
	if (cp < 0x800) { o[0] = (char)(0xc0 | cp >> 6); o[1] = (char)(0x80 | (cp & 0x3f)); return 2; }
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | cp >> 12); o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f)); return 3;
	}
	o[0] = (char)(0xf0 | cp >> 18); o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f)); o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* The length of the well-formed UTF-8 sequence at s (at most n bytes), or
 * 0: no overlong forms, no surrogates, nothing above U+10FFFF. */
static size_t utf8_len(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t k;
	unsigned lo = 0x80, hi = 0xbf;
	if (u[0] >= 0xc2 && u[0] <= 0xdf)
		k = 2;
	else if (u[0] >= 0xe0 && u[0] <= 0xef) {
		k = 3;
		if (u[0] == 0xe0) lo = 0xa0;
		if (u[0] == 0xed) hi = 0x9f;
	} else if (u[0] >= 0xf0 && u[0] <= 0xf4) {
		k = 4;
		if (u[0] == 0xf0) lo = 0x90;
		if (u[0] == 0xf4) hi = 0x8f;
	} else
		return 0;
	if (n < k || u[1] < lo || u[1] > hi)
		return 0;
	for (size_t i = 2; i < k; i++)
		if (u[i] < 0x80 || u[i] > 0xbf)
			return 0;
	return k;
}

/* A string at p->pos (the opening quote); decoded output is never longer
 * than the escaped input, so one allocation of the raw length suffices. */
static char *string(jp *p)
{
	size_t start = ++p->pos, end = start, o = 0;
	char *out;
	while (end < p->len && p->s[end] != '"') {
		if (p->s[end] == '\\')
			end++;
		end++;
	}
	if (end >= p->len) {
		fail(p, "unterminated string");
		return NULL;
	}
	out = malloc(end - start + 1);
	if (!out) {
		fail(p, "out of memory");
		return NULL;
	}
	while (p->pos < end) {
		unsigned char ch = (unsigned char)p->s[p->pos++];
		unsigned cp, lo;
		if (ch < 0x20) {
			fail(p, "control character in string");
			goto bad;
		}
		if (ch >= 0x80) {
			size_t k = utf8_len(p->s + p->pos - 1, end - (p->pos - 1));
			if (!k) {
				p->pos--;
				fail(p, "invalid UTF-8 in string");
				goto bad;
			}
			memcpy(out + o, p->s + p->pos - 1, k);
			o += k;
			p->pos += k - 1;
			continue;
		}
		if (ch != '\\') {
			out[o++] = (char)ch;
			continue;
		}
		switch (p->s[p->pos++]) {
		case '"': out[o++] = '"'; break;
		case '\\': out[o++] = '\\'; break;
		case '/': out[o++] = '/'; break;
		case 'b': out[o++] = '\b'; break;
		case 'f': out[o++] = '\f'; break;
		case 'n': out[o++] = '\n'; break;
		case 'r': out[o++] = '\r'; break;
		case 't': out[o++] = '\t'; break;
		case 'u':
			if (!hex4(p, &cp)) {
				fail(p, "bad \\u escape");
				goto bad;
			}
			if (cp >= 0xd800 && cp < 0xdc00) {
				if (!lit(p, "\\u") || !hex4(p, &lo) || lo < 0xdc00 || lo >= 0xe000) {
					fail(p, "unpaired surrogate");
					goto bad;
				}
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			} else if (cp >= 0xdc00 && cp < 0xe000) {
				fail(p, "unpaired surrogate");
				goto bad;
			}
			if (cp == 0) {
				fail(p, "NUL in string");
				goto bad;
			}
			/* A \uXXXX is 6 input bytes, at most 3 output bytes (4 for a
			 * 12-byte pair), so `out` cannot overflow. */
			o += put_utf8(out + o, cp);
			break;
		default:
			fail(p, "bad escape");
			goto bad;
		}
		if (p->pos > end) {
			fail(p, "bad escape at end of string");
			goto bad;
		}
	}
	out[o] = 0;
	p->pos = end + 1;
	return out;
bad:
	free(out);
	return NULL;
}

static int number(jp *p, double *out, int *integer)
{
	size_t start = p->pos;
	char buf[64];
	char *endp;
	if (peek(p) == '-')
		p->pos++;
	if (peek(p) < '0' || peek(p) > '9')
		return 0;
	if (peek(p) == '0') {
		p->pos++;
		if (peek(p) >= '0' && peek(p) <= '9') {
			fail(p, "leading zero in a number");
			return 0;
		}
	}
	while (peek(p) >= '0' && peek(p) <= '9')
		p->pos++;
	if (peek(p) == '.') {
		p->pos++;
		if (peek(p) < '0' || peek(p) > '9')
			return 0;
		while (peek(p) >= '0' && peek(p) <= '9')
			p->pos++;
	}
	if (peek(p) == 'e' || peek(p) == 'E') {
		p->pos++;
		if (peek(p) == '+' || peek(p) == '-')
			p->pos++;
		if (peek(p) < '0' || peek(p) > '9')
			return 0;
		while (peek(p) >= '0' && peek(p) <= '9')
			p->pos++;
	}
	if (p->pos - start >= sizeof buf) {
		fail(p, "number longer than 63 characters");
		return 0;
	}
	memcpy(buf, p->s + start, p->pos - start);
	buf[p->pos - start] = 0;
	*integer = strpbrk(buf, ".eE") == NULL;
	*out = strtod(buf, &endp);
	if (*endp != 0 || !isfinite(*out)) {
		fail(p, "number out of range");
		return 0;
	}
	return 1;
}

static int value(jp *p, rt_json *v);

/* Appends an element; capacity is n rounded up to a power of two (at least
 * 4), so a long array costs O(n) copying, not O(n^2). */
static int push(jp *p, rt_json *v, char *key)
{
	if (++p->values > MAX_VALUES) {
		fail(p, "more than 4194304 values");
		return 0;
	}
	if (v->n == 0 || (v->n >= 4 && (v->n & (v->n - 1)) == 0)) {
		size_t cap = v->n ? (size_t)v->n * 2 : 4;
		rt_json *items = realloc(v->items, cap * sizeof *items);
		if (!items) {
			fail(p, "out of memory");
			return 0;
		}
		v->items = items;
		if (v->type == RT_J_OBJ) {
			char **keys = realloc(v->keys, cap * sizeof *keys);
			if (!keys) {
				fail(p, "out of memory");
				return 0;
			}
			v->keys = keys;
		}
	}
	memset(&v->items[v->n], 0, sizeof v->items[0]);
	if (v->type == RT_J_OBJ)
		v->keys[v->n] = key;
	v->n++;
	return 1;
}

static int key_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Refuses an object whose keys repeat: by sorting a copy of the keys, so a
 * header of a million tensors is not a million squared comparisons. */
static int unique_keys(jp *p, const rt_json *v)
{
	char **k;
	int dup = -1;
	if (v->n < 2)
		return 1;
	if (v->n <= 8) {
		for (int i = 1; i < v->n && dup < 0; i++)
			for (int j = 0; j < i; j++)
				if (!strcmp(v->keys[i], v->keys[j])) {
					dup = i;
					break;
				}
		if (dup < 0)
			return 1;
		rt_fmt_err(p->err, p->errlen, "key '%.80s' appears twice in one object", v->keys[dup]);
		p->failed = 1;
		return 0;
	}
	if (!(k = malloc((size_t)v->n * sizeof *k))) {
		fail(p, "out of memory");
		return 0;
	}
	memcpy(k, v->keys, (size_t)v->n * sizeof *k);
	qsort(k, (size_t)v->n, sizeof *k, key_cmp);
	for (int i = 1; i < v->n; i++)
		if (!strcmp(k[i], k[i - 1])) {
			rt_fmt_err(p->err, p->errlen, "key '%.80s' appears twice in one object", k[i]);
			p->failed = 1;
			free(k);
			return 0;
		}
	free(k);
	return 1;
}

static int container(jp *p, rt_json *v, int close)
{
	if (++p->depth > MAX_DEPTH) {
		fail(p, "nesting too deep");
		return 0;
	}
	p->pos++;
	ws(p);
	if (peek(p) == close) {
		p->pos++;
		p->depth--;
		return 1;
	}
	for (;;) {
		char *key = NULL;
		ws(p);
		if (v->type == RT_J_OBJ) {
			if (peek(p) != '"') {
				fail(p, "expected a string key");
				return 0;
			}
			if (!(key = string(p)))
				return 0;
			ws(p);
			if (peek(p) != ':') {
				free(key);
				fail(p, "expected ':'");
				return 0;
			}
			p->pos++;
		}
		if (!push(p, v, key)) {
			free(key);
			return 0;
		}
		if (!value(p, &v->items[v->n - 1]))
			return 0;
		ws(p);
		if (peek(p) == ',') {
			p->pos++;
			continue;
		}
		if (peek(p) == close) {
			p->pos++;
			p->depth--;
			return v->type != RT_J_OBJ || unique_keys(p, v);
		}
		fail(p, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
		return 0;
	}
}

static int value(jp *p, rt_json *v)
{
	ws(p);
	switch (peek(p)) {
	case '{':
		v->type = RT_J_OBJ;
		return container(p, v, '}');
	case '[':
		v->type = RT_J_ARR;
		return container(p, v, ']');
	case '"':
		v->type = RT_J_STR;
		return (v->str = string(p)) != NULL;
	case 't':
	case 'f':
		v->type = RT_J_BOOL;
		v->boolean = peek(p) == 't';
		if (lit(p, v->boolean ? "true" : "false"))
			return 1;
		break;
	case 'n':
		v->type = RT_J_NULL;
		if (lit(p, "null"))
			return 1;
		break;
	case -1:
		fail(p, "unexpected end");
		return 0;
	default:
		v->type = RT_J_NUM;
		if (number(p, &v->num, &v->integer))
			return 1;
		break;
	}
	fail(p, "unexpected character");
	return 0;
}

static void free_inner(rt_json *j)
{
	for (int i = 0; i < j->n; i++) {
		free_inner(&j->items[i]);
		if (j->keys)
			free(j->keys[i]);
	}
	free(j->items);
	free(j->keys);
	free(j->str);
}

void rt_json_free(rt_json *j)
{
	if (!j)
		return;
	free_inner(j);
	free(j);
}

rt_json *rt_json_parse(const char *text, size_t len, char *err, size_t errlen)
{
	jp p = { text, len, 0, 0, 0, err, errlen, 0 };
	rt_json *j = calloc(1, sizeof *j);
	if (!j) {
		rt_fmt_err(err, errlen, "out of memory");
		return NULL;
	}
	if (value(&p, j)) {
		ws(&p);
		if (p.pos == p.len)
			return j;
		fail(&p, "trailing characters");
	}
	rt_json_free(j);
	return NULL;
}

const rt_json *rt_json_get(const rt_json *obj, const char *key)
{
	if (!obj || obj->type != RT_J_OBJ)
		return NULL;
	for (int i = 0; i < obj->n; i++)
		if (strcmp(obj->keys[i], key) == 0)
			return &obj->items[i];
	return NULL;
}
