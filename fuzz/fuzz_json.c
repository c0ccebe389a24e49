/* fuzz_json.c — rt_json_parse on arbitrary bytes.
 *
 * Beyond "no crash": a parsed document is walked and checked (keys unique,
 * so rt_json_get finds every member; strings valid UTF-8; numbers finite),
 * then written back out as JSON and parsed again, which must give the same
 * tree.  A refusal must carry a message.
 */
#include <math.h>

#include "fuzz_common.h"

static void check_utf8(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	while (*u) {
		int k = *u < 0x80 ? 1 : *u >= 0xc2 && *u <= 0xdf ? 2 : *u >= 0xe0 && *u <= 0xef ? 3 :
		        *u >= 0xf0 && *u <= 0xf4 ? 4 : 0;
		uint32_t cp = k == 1 ? *u : k == 2 ? *u & 0x1f : k == 3 ? *u & 0x0f : *u & 0x07;
		if (!k)
			abort();
		for (int i = 1; i < k; i++) {
			if ((u[i] & 0xc0) != 0x80)
				abort();
			cp = cp << 6 | (u[i] & 0x3f);
		}
		if ((k == 3 && cp < 0x800) || (k == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp < 0xe000))
			abort();
		u += k;
	}
}

static void walk(const rt_json *j, int depth)
{
	if (depth > 64)
		abort();
	switch (j->type) {
	case RT_J_NUM:
		if (!isfinite(j->num))
			abort();
		break;
	case RT_J_STR:
		check_utf8(j->str);
		break;
	case RT_J_OBJ:
		for (int i = 0; i < j->n; i++) {
			check_utf8(j->keys[i]);
			if (rt_json_get(j, j->keys[i]) != &j->items[i])
				abort();        /* a repeated key got through */
		}
		/* fall through */
	case RT_J_ARR:
		for (int i = 0; i < j->n; i++)
			walk(&j->items[i], depth + 1);
		break;
	case RT_J_NULL:
	case RT_J_BOOL:
		break;
	default:
		abort();
	}
}

typedef struct {
	char *b;
	size_t n, cap;
} buf;

static void put(buf *b, const char *s, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		b->cap = (b->n + n + 1) * 2;
		if (!(b->b = realloc(b->b, b->cap)))
			abort();
	}
	memcpy(b->b + b->n, s, n);
	b->n += n;
}

static void put_str(buf *b, const char *s)
{
	put(b, "\"", 1);
	for (; *s; s++) {
		char e[8];
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\' || c < 0x20) {
			snprintf(e, sizeof e, "\\u%04x", c);
			put(b, e, 6);
		} else
			put(b, s, 1);
	}
	put(b, "\"", 1);
}

static void dump(buf *b, const rt_json *j)
{
	char num[40];
	switch (j->type) {
	case RT_J_NULL: put(b, "null", 4); break;
	case RT_J_BOOL: put(b, j->boolean ? "true" : "false", j->boolean ? 4 : 5); break;
	case RT_J_NUM:
		snprintf(num, sizeof num, "%.17g", j->num);
		put(b, num, strlen(num));
		break;
	case RT_J_STR: put_str(b, j->str); break;
	default:
		put(b, j->type == RT_J_OBJ ? "{" : "[", 1);
		for (int i = 0; i < j->n; i++) {
			if (i)
				put(b, ",", 1);
			if (j->type == RT_J_OBJ) {
				put_str(b, j->keys[i]);
				put(b, ":", 1);
			}
			dump(b, &j->items[i]);
		}
		put(b, j->type == RT_J_OBJ ? "}" : "]", 1);
	}
}

static void same(const rt_json *a, const rt_json *b)
{
	if (a->type != b->type || a->n != b->n)
		abort();
	if ((a->type == RT_J_NUM && a->num != b->num) ||
	    (a->type == RT_J_BOOL && a->boolean != b->boolean) ||
	    (a->type == RT_J_STR && strcmp(a->str, b->str)))
		abort();
	for (int i = 0; i < a->n; i++) {
		if (a->type == RT_J_OBJ && strcmp(a->keys[i], b->keys[i]))
			abort();
		same(&a->items[i], &b->items[i]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256] = "";
	rt_json *j = rt_json_parse((const char *)data, size, err, sizeof err), *k;
	buf b = { NULL, 0, 0 };

	fuzz_need_message(j ? 0 : -1, err);
	if (!j)
		return 0;
	walk(j, 0);
	dump(&b, j);
	k = rt_json_parse(b.b, b.n, err, sizeof err);
	if (!k) {
		fprintf(stderr, "its own output is refused: %s\n", err);
		abort();
	}
	same(j, k);
	rt_json_free(k);
	rt_json_free(j);
	free(b.b);
	return 0;
}
