/* rt_safetensors.c — safetensors checkpoints: read with full validation,
 * write F32 tensors atomically.
 *
 * Format (huggingface/safetensors): an 8-byte little-endian header length
 * N, N bytes of JSON {"name": {"dtype", "shape", "data_offsets": [b, e]},
 * "__metadata__": {...}}, then the data section; offsets are relative to
 * it, tensors are little-endian and C order.  Writers pad the header with
 * spaces to a multiple of 8 so the data stays aligned.
 *
 * Read as strictly as the format's reference library: the header starts
 * with '{' and is at most 100,000,000 bytes, `__metadata__` maps strings
 * to strings, and the tensors' byte ranges, in offset order, tile the data
 * section exactly — from 0, no overlap (one tensor's bytes read as another's),
 * no gap, and the last one ending where the file ends.  Every size is checked
 * against the file's size before anything of that size is allocated.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rt_internal.h"

/* Headers of real checkpoints are kilobytes; the reference library caps
 * them at 100,000,000 bytes, which also bounds what a corrupt length can
 * make us allocate. */
#define MAX_HEADER 100000000u

int rt_dtype_size(const char *d)
{
	static const struct { const char *name; int size; } tab[] = {
		{ "F64", 8 }, { "F32", 4 }, { "F16", 2 }, { "BF16", 2 },
		{ "I64", 8 }, { "I32", 4 }, { "I16", 2 }, { "I8", 1 },
		{ "U64", 8 }, { "U32", 4 }, { "U16", 2 }, { "U8", 1 },
		{ "BOOL", 1 }, { "F8_E4M3", 1 }, { "F8_E5M2", 1 },
	};
	for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
		if (strcmp(d, tab[i].name) == 0)
			return tab[i].size;
	return 0;
}

static int as_u64(const rt_json *j, uint64_t *out)
{
	/* Integers only, written as such (4, not 4.0 or 4e0: the reference
	 * library refuses those too), exactly representable (< 2^53). */
	if (!j || j->type != RT_J_NUM || !j->integer || j->num < 0 || j->num > 9007199254740992.0 ||
	    j->num != floor(j->num))
		return 0;
	*out = (uint64_t)j->num;
	return 1;
}

static int parse_entry(rt_st_tensor *t, const char *name, const rt_json *e,
                       uint64_t data_len, char *err, size_t errlen)
{
	const rt_json *dt = rt_json_get(e, "dtype");
	const rt_json *sh = rt_json_get(e, "shape");
	const rt_json *off = rt_json_get(e, "data_offsets");
	uint64_t numel = 1, size;
	int esize;

	if (e->type != RT_J_OBJ || !dt || dt->type != RT_J_STR || !sh || sh->type != RT_J_ARR ||
	    !off || off->type != RT_J_ARR || off->n != 2) {
		rt_fmt_err(err, errlen, "tensor '%s': entry needs dtype, shape and data_offsets [begin, end]", name);
		return -1;
	}
	esize = rt_dtype_size(dt->str);
	if (!esize || strlen(dt->str) >= sizeof t->dtype) {
		rt_fmt_err(err, errlen, "tensor '%s': unknown dtype '%.16s'", name, dt->str);
		return -1;
	}
	if (sh->n > 8) {
		rt_fmt_err(err, errlen, "tensor '%s': %d dimensions (at most 8 supported)", name, sh->n);
		return -1;
	}
	strcpy(t->dtype, dt->str);
	t->ndim = sh->n;
	for (int i = 0; i < sh->n; i++) {
		uint64_t d;
		if (!as_u64(&sh->items[i], &d) || d > (1ull << 40)) {
			rt_fmt_err(err, errlen, "tensor '%s': bad shape entry %d", name, i);
			return -1;
		}
		t->dims[i] = (int64_t)d;
		if (d && numel > (1ull << 50) / d) {
			rt_fmt_err(err, errlen, "tensor '%s': shape too large", name);
			return -1;
		}
		numel *= d;
	}
	for (int k = 0; k < 2; k++)
		if (off->items[k].type != RT_J_NUM || !off->items[k].integer || off->items[k].num < 0) {
			rt_fmt_err(err, errlen, "tensor '%s': data_offsets must be two non-negative integers", name);
			return -1;
		}
	if (!as_u64(&off->items[0], &t->begin) || !as_u64(&off->items[1], &t->end) ||
	    t->begin > t->end || t->end > data_len) {
		rt_fmt_err(err, errlen, "tensor '%s': data_offsets outside the file's %llu data bytes",
		           name, (unsigned long long)data_len);
		return -1;
	}
	size = numel * (uint64_t)esize;
	if (t->end - t->begin != size) {
		rt_fmt_err(err, errlen, "tensor '%s': %llu data bytes, but %s of that shape needs %llu",
		           name, (unsigned long long)(t->end - t->begin), t->dtype,
		           (unsigned long long)size);
		return -1;
	}
	return 0;
}

/* __metadata__: absent, null (as the reference library reads it), or an
 * object of strings. */
static int string_map(const rt_json *m)
{
	if (m->type == RT_J_NULL)
		return 1;
	if (m->type != RT_J_OBJ)
		return 0;
	for (int i = 0; i < m->n; i++)
		if (m->items[i].type != RT_J_STR)
			return 0;
	return 1;
}

static int by_range(const void *a, const void *b)
{
	const rt_st_tensor *x = *(const rt_st_tensor *const *)a, *y = *(const rt_st_tensor *const *)b;
	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* The tensors, in offset order, must tile [0, data_len) exactly: the
 * reference library refuses overlaps, gaps and trailing bytes alike.
 * Overlaps are looked for first: they are the reason a loose reader would
 * load one tensor's bytes as another's, and the gap they leave is only
 * their consequence. */
static int check_tiling(const rt_st_file *st, uint64_t data_len, char *err, size_t errlen)
{
	const rt_st_tensor **o;
	uint64_t at = 0;
	int rc = 0, last = 0;
	if (st->n == 0) {
		if (data_len)
			rt_fmt_err(err, errlen, "%llu data bytes, but the header names no tensor",
			           (unsigned long long)data_len);
		return data_len ? -1 : 0;
	}
	if (!(o = malloc((size_t)st->n * sizeof *o))) {
		rt_fmt_err(err, errlen, "out of memory");
		return -1;
	}
	for (int i = 0; i < st->n; i++)
		o[i] = &st->t[i];
	qsort(o, (size_t)st->n, sizeof *o, by_range);
	/* o[last] reaches furthest of o[0..i). */
	for (int i = 1; i < st->n && !rc; i++) {
		if (o[i]->begin < o[last]->end) {
			rt_fmt_err(err, errlen, "tensors '%.100s' [%llu, %llu) and '%.100s' [%llu, %llu) overlap "
			           "in the data section", o[last]->name, (unsigned long long)o[last]->begin,
			           (unsigned long long)o[last]->end, o[i]->name,
			           (unsigned long long)o[i]->begin, (unsigned long long)o[i]->end);
			rc = -1;
		}
		if (o[i]->end > o[last]->end)
			last = i;
	}
	for (int i = 0; i < st->n && !rc; i++) {
		if (o[i]->begin > at) {
			rt_fmt_err(err, errlen, "a gap in the data section: bytes [%llu, %llu) belong to no tensor "
			           "(before '%.100s')", (unsigned long long)at,
			           (unsigned long long)o[i]->begin, o[i]->name);
			rc = -1;
		}
		at = o[i]->end;
	}
	if (!rc && at != data_len) {
		rt_fmt_err(err, errlen, "the tensors end at data byte %llu, but the data section has %llu "
		           "(trailing bytes)", (unsigned long long)at, (unsigned long long)data_len);
		rc = -1;
	}
	free(o);
	return rc;
}

int rt_st_open(rt_st_file *st, const char *path, char *err, size_t errlen)
{
	unsigned char lenb[8];
	uint64_t hlen = 0, fsize;
	struct stat sb;
	char *hdr = NULL;
	rt_json *j = NULL;
	char jerr[256], terr2[512];

	memset(st, 0, sizeof *st);
	st->f = fopen(path, "rb");
	if (!st->f || fstat(fileno(st->f), &sb) != 0) {
		rt_fmt_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		goto fail;
	}
	fsize = (uint64_t)sb.st_size;
	if (fread(lenb, 1, 8, st->f) != 8) {
		rt_fmt_err(err, errlen, "%s: not a safetensors file (shorter than 8 bytes)", path);
		goto fail;
	}
	for (int i = 7; i >= 0; i--)
		hlen = hlen << 8 | lenb[i];
	if (hlen > MAX_HEADER) {
		rt_fmt_err(err, errlen, "%s: not a safetensors file (header length %llu is over the format's "
		           "limit of %u bytes)", path, (unsigned long long)hlen, MAX_HEADER);
		goto fail;
	}
	if (hlen < 2 || hlen > fsize - 8) {
		rt_fmt_err(err, errlen, "%s: not a safetensors file (header length %llu, but the file holds "
		           "%llu bytes after its 8-byte length)", path, (unsigned long long)hlen,
		           (unsigned long long)(fsize - 8));
		goto fail;
	}
	hdr = malloc(hlen);
	if (!hdr || fread(hdr, 1, hlen, st->f) != hlen) {
		rt_fmt_err(err, errlen, "%s: cannot read the header", path);
		goto fail;
	}
	if (hdr[0] != '{') {
		rt_fmt_err(err, errlen, "%s: header is not a JSON object (it must start with '{')", path);
		goto fail;
	}
	j = rt_json_parse(hdr, hlen, jerr, sizeof jerr);
	if (!j) {
		rt_fmt_err(err, errlen, "%s: header: %s", path, jerr);
		goto fail;
	}
	if (j->type != RT_J_OBJ) {
		rt_fmt_err(err, errlen, "%s: header is not a JSON object", path);
		goto fail;
	}
	st->data_start = 8 + hlen;
	st->t = calloc((size_t)j->n + 1, sizeof *st->t);
	if (!st->t) {
		rt_fmt_err(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	/* Names are unique: rt_json_parse refuses repeated keys. */
	for (int i = 0; i < j->n; i++) {
		rt_st_tensor *t = &st->t[st->n];
		char terr[256];
		if (strcmp(j->keys[i], "__metadata__") == 0) {
			if (!string_map(&j->items[i])) {
				rt_fmt_err(err, errlen, "%s: __metadata__ must map strings to strings", path);
				goto fail;
			}
			continue;
		}
		if (parse_entry(t, j->keys[i], &j->items[i], fsize - st->data_start,
		                terr, sizeof terr) != 0) {
			rt_fmt_err(err, errlen, "%s: %s", path, terr);
			goto fail;
		}
		if (!(t->name = strdup(j->keys[i]))) {
			rt_fmt_err(err, errlen, "%s: out of memory", path);
			goto fail;
		}
		st->n++;
	}
	if (check_tiling(st, fsize - st->data_start, terr2, sizeof terr2) != 0) {
		rt_fmt_err(err, errlen, "%s: %s", path, terr2);
		goto fail;
	}
	rt_json_free(j);
	free(hdr);
	return 0;
fail:
	rt_json_free(j);
	free(hdr);
	rt_st_close(st);
	return -1;
}

const rt_st_tensor *rt_st_find(const rt_st_file *st, const char *name)
{
	for (int i = 0; i < st->n; i++)
		if (strcmp(st->t[i].name, name) == 0)
			return &st->t[i];
	return NULL;
}

static float half_to_float(uint16_t h)
{
	unsigned sign = h >> 15, e = (h >> 10) & 31, m = h & 1023;
	float v;
	if (e == 0)
		v = ldexpf((float)m, -24);
	else if (e == 31)
		v = m ? NAN : INFINITY;
	else
		v = ldexpf((float)(m | 1024), (int)e - 25);
	return sign ? -v : v;
}

int rt_st_read_f32(rt_st_file *st, const rt_st_tensor *t, float *out, char *err, size_t errlen)
{
	int esize = rt_dtype_size(t->dtype);
	uint64_t n = (t->end - t->begin) / (uint64_t)esize;
	unsigned char buf[1 << 14];
	uint64_t done = 0;

	if (strcmp(t->dtype, "F32") && strcmp(t->dtype, "F64") && strcmp(t->dtype, "F16") &&
	    strcmp(t->dtype, "BF16")) {
		rt_fmt_err(err, errlen, "tensor '%s' has dtype %s, expected F32", t->name, t->dtype);
		return -1;
	}
	if (fseeko(st->f, (off_t)(st->data_start + t->begin), SEEK_SET) != 0)
		goto io;
	/* In chunks, converting from little-endian bytes: no temporary of the
	 * tensor's size, and no alignment assumptions about the file. */
	while (done < n) {
		uint64_t k = n - done;
		if (k > sizeof buf / (uint64_t)esize)
			k = sizeof buf / (uint64_t)esize;
		if (fread(buf, (size_t)esize, (size_t)k, st->f) != k)
			goto io;
		for (uint64_t i = 0; i < k; i++) {
			const unsigned char *b = buf + i * (uint64_t)esize;
			float v;
			if (esize == 4) {
				uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
				memcpy(&v, &u, 4);
			} else if (esize == 8) {
				uint64_t u = 0;
				double d;
				for (int q = 7; q >= 0; q--)
					u = u << 8 | b[q];
				memcpy(&d, &u, 8);
				v = (float)d;
			} else if (t->dtype[0] == 'B') {
				uint32_t u = ((uint32_t)b[0] | (uint32_t)b[1] << 8) << 16;
				memcpy(&v, &u, 4);
			} else {
				v = half_to_float((uint16_t)(b[0] | b[1] << 8));
			}
			out[done + i] = v;
		}
		done += k;
	}
	return 0;
io:
	rt_fmt_err(err, errlen, "tensor '%s': cannot read its data (file truncated?)", t->name);
	return -1;
}

void rt_st_close(rt_st_file *st)
{
	if (st->f)
		fclose(st->f);
	for (int i = 0; i < st->n; i++)
		free(st->t[i].name);
	free(st->t);
	memset(st, 0, sizeof *st);
}

/* Appends JSON-escaped s to the buffer. */
static int put_str(char **b, size_t *n, size_t *cap, const char *s)
{
	size_t need = 2 + 6 * strlen(s) + 1;
	if (*n + need > *cap) {
		size_t nc = (*cap + need) * 2;
		char *nb = realloc(*b, nc);
		if (!nb)
			return -1;
		*b = nb;
		*cap = nc;
	}
	(*b)[(*n)++] = '"';
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\') {
			(*b)[(*n)++] = '\\';
			(*b)[(*n)++] = (char)ch;
		} else if (ch < 0x20) {
			*n += (size_t)sprintf(*b + *n, "\\u%04x", ch);
		} else {
			(*b)[(*n)++] = (char)ch;
		}
	}
	(*b)[(*n)++] = '"';
	return 0;
}

static int put_fmt(char **b, size_t *n, size_t *cap, const char *fmt, long long a, long long c)
{
	if (*n + 96 > *cap) {
		size_t nc = (*cap + 96) * 2;
		char *nb = realloc(*b, nc);
		if (!nb)
			return -1;
		*b = nb;
		*cap = nc;
	}
	*n += (size_t)snprintf(*b + *n, 96, fmt, a, c);
	return 0;
}

int rt_st_write(const char *path, const rt_st_out *t, int n, char *err, size_t errlen)
{
	char *h = NULL;
	size_t hn = 0, hcap = 0;
	uint64_t off = 0;
	int rc = -1;
	const void **parts = calloc((size_t)n + 2, sizeof *parts);
	size_t *lens = calloc((size_t)n + 2, sizeof *lens);
	unsigned char lenb[8];

	if (!parts || !lens)
		goto oom;
	if (put_fmt(&h, &hn, &hcap, "{\"__metadata__\":{\"format\":\"pt\"}", 0, 0))
		goto oom;
	for (int i = 0; i < n; i++) {
		int64_t numel = 1;
		for (int d = 0; d < t[i].ndim; d++)
			numel *= t[i].dims[d];
		if (put_fmt(&h, &hn, &hcap, ",", 0, 0) || put_str(&h, &hn, &hcap, t[i].name) ||
		    put_fmt(&h, &hn, &hcap, ":{\"dtype\":\"F32\",\"shape\":[", 0, 0))
			goto oom;
		for (int d = 0; d < t[i].ndim; d++)
			if (put_fmt(&h, &hn, &hcap, d ? ",%lld" : "%lld", (long long)t[i].dims[d], 0))
				goto oom;
		if (put_fmt(&h, &hn, &hcap, "],\"data_offsets\":[%lld,%lld]}", (long long)off,
		            (long long)(off + (uint64_t)numel * 4)))
			goto oom;
		parts[i + 2] = t[i].data;
		lens[i + 2] = (size_t)numel * 4;
		off += (uint64_t)numel * 4;
	}
	if (put_fmt(&h, &hn, &hcap, "}", 0, 0))
		goto oom;
	while (hn % 8) {
		if (put_fmt(&h, &hn, &hcap, " ", 0, 0))
			goto oom;
	}
	for (int i = 0; i < 8; i++)
		lenb[i] = (unsigned char)((uint64_t)hn >> (8 * i));
	parts[0] = lenb;
	lens[0] = 8;
	parts[1] = h;
	lens[1] = hn;
	/* Data is written as the host's float32: little-endian on every
	 * platform pipec targets (x86-64, aarch64). */
	if (rt_write_atomic(path, parts, lens, n + 2) != 0)
		rt_fmt_err(err, errlen, "%s: cannot write: %s", path, strerror(errno));
	else
		rc = 0;
	goto out;
oom:
	rt_fmt_err(err, errlen, "%s: out of memory", path);
out:
	free(h);
	free(parts);
	free(lens);
	return rc;
}
