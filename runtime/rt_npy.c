/* rt_npy.c — NumPy .npy files: read float32/float64/int32/int64 arrays
 * (format versions 1, 2 and 3, little-endian, C or Fortran order), write
 * float32 arrays (version 1, C order).
 *
 * The header is a Python dict literal, e.g.
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (256, 100), }
 * padded with spaces to a 64-byte boundary and ended by '\n'.  It is parsed
 * by a tiny scanner that accepts only that form: anything else is an error
 * with the reason, never a crash.  The header is at most 1 MiB, each
 * dimension at most 2^40 and the element count at most 2^50 (so no byte
 * count overflows), and the data must be exactly the shape's size, all
 * checked before the data is allocated.
 */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rt_internal.h"

static const char MAGIC[6] = { (char)0x93, 'N', 'U', 'M', 'P', 'Y' };

int64_t rt_npy_numel(const rt_npy *a)
{
	int64_t n = 1;
	for (int i = 0; i < a->ndim; i++)
		n *= a->dims[i];
	return n;
}

static int rt_npy_load(const char *path, rt_npy *a, int with_data, char *err, size_t errlen);

static int esize(int type)
{
	return type == RT_NPY_F64 || type == RT_NPY_I64 ? 8 : 4;
}

/* The header dict, scanned over its exact length (a NUL inside is just a
 * bad character).  numpy's own reader accepts exactly the keys descr,
 * fortran_order and shape, each once; so does this one. */
typedef struct {
	const char *s;
	size_t len, pos;
} hdr_scan;

static int hpeek(const hdr_scan *h)
{
	return h->pos < h->len ? (unsigned char)h->s[h->pos] : -1;
}

static void hblank(hdr_scan *h)
{
	while (hpeek(h) == ' ' || hpeek(h) == '\t')
		h->pos++;
}

/* A quoted Python string of at most cap-1 characters, no escapes. */
static int hstring(hdr_scan *h, char *out, size_t cap)
{
	int q = hpeek(h);
	size_t n = 0;
	if (q != '\'' && q != '"')
		return 0;
	for (h->pos++; hpeek(h) != q; h->pos++) {
		int ch = hpeek(h);
		if (ch < 0x20 || ch == '\\' || ch > 0x7e || n + 1 >= cap)
			return 0;
		out[n++] = (char)ch;
	}
	h->pos++;
	out[n] = 0;
	return 1;
}

static int hword(hdr_scan *h, const char *w)
{
	size_t n = strlen(w);
	if (h->len - h->pos < n || memcmp(h->s + h->pos, w, n) != 0)
		return 0;
	h->pos += n;
	return !isalnum(hpeek(h)) && hpeek(h) != '_';
}

/* (), (N,), (N, M) or (N, M,); Python 2's numpy wrote 3L for 3. */
static int hshape(hdr_scan *h, rt_npy *a, char *err, size_t errlen)
{
	int commas = 0;
	if (hpeek(h) != '(')
		goto bad;
	h->pos++;
	a->ndim = 0;
	for (;;) {
		int64_t v = 0;
		hblank(h);
		if (hpeek(h) == ')')
			break;
		if (!isdigit(hpeek(h)))
			goto bad;
		while (isdigit(hpeek(h))) {
			v = v * 10 + (hpeek(h) - '0');
			h->pos++;
			if (v > (INT64_C(1) << 40)) {
				rt_fmt_err(err, errlen, "shape entry out of range (at most 2^40)");
				return -1;
			}
		}
		if (hpeek(h) == 'L')
			h->pos++;
		if (a->ndim == 8) {
			rt_fmt_err(err, errlen, "more than 8 dimensions");
			return -1;
		}
		a->dims[a->ndim++] = v;
		hblank(h);
		if (hpeek(h) == ',') {
			h->pos++;
			commas++;
		} else if (hpeek(h) != ')')
			goto bad;
	}
	h->pos++;
	/* (3) is the integer 3 in Python, not a shape: numpy refuses it. */
	if (a->ndim == 1 && commas == 0)
		goto bad;
	return 0;
bad:
	rt_fmt_err(err, errlen, "bad shape (a Python tuple of integers, like (2, 3) or (4,))");
	return -1;
}

static int parse_header(const char *text, size_t len, rt_npy *a, int *fortran, char *err,
                        size_t errlen)
{
	hdr_scan h = { text, len, 0 };
	char descr[16] = "", key[16];
	int seen[3] = { 0, 0, 0 };

	hblank(&h);
	if (hpeek(&h) != '{')
		goto syntax;
	h.pos++;
	for (;;) {
		int k;
		hblank(&h);
		if (hpeek(&h) == '}')
			break;
		if (!hstring(&h, key, sizeof key))
			goto syntax;
		k = !strcmp(key, "descr") ? 0 : !strcmp(key, "fortran_order") ? 1 :
		    !strcmp(key, "shape") ? 2 : -1;
		if (k < 0) {
			rt_fmt_err(err, errlen, "unknown header key '%s' (numpy writes descr, fortran_order, shape)", key);
			return -1;
		}
		if (seen[k]++) {
			rt_fmt_err(err, errlen, "header key '%s' appears twice", key);
			return -1;
		}
		hblank(&h);
		if (hpeek(&h) != ':')
			goto syntax;
		h.pos++;
		hblank(&h);
		if (k == 0) {
			if (!hstring(&h, descr, sizeof descr)) {
				rt_fmt_err(err, errlen, "descr is not a simple dtype string (structured arrays are not supported)");
				return -1;
			}
		} else if (k == 1) {
			if (hword(&h, "True"))
				*fortran = 1;
			else if (hword(&h, "False"))
				*fortran = 0;
			else {
				rt_fmt_err(err, errlen, "bad fortran_order (True or False)");
				return -1;
			}
		} else if (hshape(&h, a, err, errlen) != 0)
			return -1;
		hblank(&h);
		if (hpeek(&h) == ',')
			h.pos++;
		else if (hpeek(&h) != '}')
			goto syntax;
	}
	h.pos++;
	/* numpy pads with spaces and ends the header with '\n'. */
	while (hpeek(&h) == ' ' || hpeek(&h) == '\t' || hpeek(&h) == '\n' || hpeek(&h) == '\r')
		h.pos++;
	if (h.pos != h.len)
		goto syntax;
	if (!seen[0] || !seen[1] || !seen[2]) {
		rt_fmt_err(err, errlen, "header lacks descr, fortran_order or shape");
		return -1;
	}
	if (descr[0] == '>') {
		rt_fmt_err(err, errlen, "big-endian data ('%s') is not supported", descr);
		return -1;
	}
	if (!strcmp(descr, "<f4") || !strcmp(descr, "=f4")) a->type = RT_NPY_F32;
	else if (!strcmp(descr, "<f8") || !strcmp(descr, "=f8")) a->type = RT_NPY_F64;
	else if (!strcmp(descr, "<i4") || !strcmp(descr, "=i4")) a->type = RT_NPY_I32;
	else if (!strcmp(descr, "<i8") || !strcmp(descr, "=i8")) a->type = RT_NPY_I64;
	else {
		rt_fmt_err(err, errlen, "dtype '%s' is not supported (float32, float64, int32, int64)", descr);
		return -1;
	}
	/* Bound the element count so byte sizes cannot overflow later. */
	int64_t numel = 1;
	for (int i = 0; i < a->ndim; i++) {
		if (a->dims[i] && numel > (INT64_C(1) << 50) / a->dims[i]) {
			rt_fmt_err(err, errlen, "shape too large (more than 2^50 elements)");
			return -1;
		}
		numel *= a->dims[i];
	}
	return 0;
syntax:
	rt_fmt_err(err, errlen, "bad header at byte %zu (a Python dict literal like "
	           "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), })", h.pos);
	return -1;
}

/* Fortran order to C order: element with index (i0, ..., ik) is at
 * sum(i_j * prod(dims[0..j))) in the file. */
static void *from_fortran(const rt_npy *a, const char *src)
{
	int64_t n = rt_npy_numel(a), idx[8] = { 0 };
	int es = esize(a->type);
	char *dst = rt_alloc((size_t)n * (size_t)es);
	if (!dst)
		return NULL;
	for (int64_t c = 0; c < n; c++) {
		int64_t f = 0, stride = 1;
		for (int j = 0; j < a->ndim; j++) {
			f += idx[j] * stride;
			stride *= a->dims[j];
		}
		memcpy(dst + c * es, src + f * es, (size_t)es);
		for (int j = a->ndim - 1; j >= 0; j--) {
			if (++idx[j] < a->dims[j])
				break;
			idx[j] = 0;
		}
	}
	return dst;
}

int rt_npy_read(const char *path, rt_npy *a, char *err, size_t errlen)
{
	return rt_npy_load(path, a, 1, err, errlen);
}

int rt_npy_probe(const char *path, rt_npy *a, char *err, size_t errlen)
{
	return rt_npy_load(path, a, 0, err, errlen);
}

static int rt_npy_load(const char *path, rt_npy *a, int with_data, char *err, size_t errlen)
{
	unsigned char pre[12];
	uint32_t hlen;
	size_t prelen;
	char *h = NULL, herr[200];
	FILE *f;
	struct stat sb;
	int fortran = 0;
	uint64_t need, have;

	memset(a, 0, sizeof *a);
	f = fopen(path, "rb");
	if (!f || fstat(fileno(f), &sb) != 0) {
		rt_fmt_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		if (f)
			fclose(f);
		return -1;
	}
	if (fread(pre, 1, 10, f) != 10 || memcmp(pre, MAGIC, 6) != 0) {
		rt_fmt_err(err, errlen, "%s: not a .npy file", path);
		goto fail;
	}
	if (pre[6] == 1) {
		hlen = (uint32_t)pre[8] | (uint32_t)pre[9] << 8;
		prelen = 10;
	} else if (pre[6] == 2 || pre[6] == 3) {
		if (fread(pre + 10, 1, 2, f) != 2) {
			rt_fmt_err(err, errlen, "%s: truncated header", path);
			goto fail;
		}
		hlen = (uint32_t)pre[8] | (uint32_t)pre[9] << 8 | (uint32_t)pre[10] << 16 |
		       (uint32_t)pre[11] << 24;
		prelen = 12;
	} else {
		rt_fmt_err(err, errlen, "%s: .npy format version %d is not supported", path, pre[6]);
		goto fail;
	}
	if (hlen > (1u << 20)) {
		rt_fmt_err(err, errlen, "%s: header length %u is over the limit of 1 MiB", path, hlen);
		goto fail;
	}
	if ((uint64_t)hlen + prelen > (uint64_t)sb.st_size) {
		rt_fmt_err(err, errlen, "%s: header length %u, but the file holds only %llu bytes after "
		           "its preamble (truncated?)", path, hlen,
		           (unsigned long long)((uint64_t)sb.st_size - prelen));
		goto fail;
	}
	h = malloc((size_t)hlen + 1);
	if (!h || fread(h, 1, hlen, f) != hlen) {
		rt_fmt_err(err, errlen, "%s: truncated header", path);
		goto fail;
	}
	h[hlen] = 0;
	if (parse_header(h, hlen, a, &fortran, herr, sizeof herr) != 0) {
		rt_fmt_err(err, errlen, "%s: %s", path, herr);
		goto fail;
	}
	need = (uint64_t)rt_npy_numel(a) * (uint64_t)esize(a->type);
	have = (uint64_t)sb.st_size - prelen - hlen;
	/* Before any allocation of the data's size. */
	if (have != need) {
		rt_fmt_err(err, errlen, have < need ? "%s: %llu data bytes, but the shape needs %llu (truncated?)"
		           : "%s: %llu data bytes, but the shape needs only %llu (trailing bytes)",
		           path, (unsigned long long)have, (unsigned long long)need);
		goto fail;
	}
	if (!with_data)
		goto done;
	a->data = rt_alloc((size_t)need);
	if (!a->data || fread(a->data, 1, (size_t)need, f) != need) {
		rt_fmt_err(err, errlen, "%s: cannot read the data", path);
		goto fail;
	}
	if (fortran && a->ndim > 1) {
		void *c = from_fortran(a, a->data);
		if (!c) {
			rt_fmt_err(err, errlen, "%s: out of memory", path);
			goto fail;
		}
		rt_free(a->data);
		a->data = c;
	}
done:
	free(h);
	fclose(f);
	return 0;
fail:
	free(h);
	rt_free(a->data);
	a->data = NULL;
	fclose(f);
	return -1;
}

float *rt_npy_as_f32(const rt_npy *a, char *err, size_t errlen)
{
	int64_t n = rt_npy_numel(a);
	float *o = rt_alloc((size_t)n * sizeof *o);
	if (!o) {
		rt_fmt_err(err, errlen, "out of memory");
		return NULL;
	}
	for (int64_t i = 0; i < n; i++) {
		switch (a->type) {
		case RT_NPY_F32: o[i] = ((const float *)a->data)[i]; break;
		case RT_NPY_F64: o[i] = (float)((const double *)a->data)[i]; break;
		case RT_NPY_I32: o[i] = (float)((const int32_t *)a->data)[i]; break;
		default: o[i] = (float)((const int64_t *)a->data)[i]; break;
		}
	}
	return o;
}

int32_t *rt_npy_as_i32(const rt_npy *a, char *err, size_t errlen)
{
	int64_t n = rt_npy_numel(a);
	int32_t *o;
	if (a->type != RT_NPY_I32 && a->type != RT_NPY_I64) {
		rt_fmt_err(err, errlen, "expected integer data (int32 or int64), found %s",
		           a->type == RT_NPY_F32 ? "float32" : "float64");
		return NULL;
	}
	o = rt_alloc((size_t)n * sizeof *o);
	if (!o) {
		rt_fmt_err(err, errlen, "out of memory");
		return NULL;
	}
	for (int64_t i = 0; i < n; i++) {
		int64_t v = a->type == RT_NPY_I32 ? ((const int32_t *)a->data)[i]
		                                  : ((const int64_t *)a->data)[i];
		if (v < INT32_MIN || v > INT32_MAX) {
			rt_fmt_err(err, errlen, "value %lld at element %lld does not fit int32",
			           (long long)v, (long long)i);
			rt_free(o);
			return NULL;
		}
		o[i] = (int32_t)v;
	}
	return o;
}

/* descr '<f4' or '<i4': both 4 bytes an element. */
static int npy_write4(const char *path, const char *descr, const void *data, int ndim,
                      const int64_t *dims, char *err, size_t errlen);

int rt_npy_write_f32(const char *path, const float *data, int ndim, const int64_t *dims,
                     char *err, size_t errlen)
{
	return npy_write4(path, "<f4", data, ndim, dims, err, errlen);
}

int rt_npy_write_i32(const char *path, const int32_t *data, int ndim, const int64_t *dims,
                     char *err, size_t errlen)
{
	return npy_write4(path, "<i4", data, ndim, dims, err, errlen);
}

static int npy_write4(const char *path, const char *descr, const void *data, int ndim,
                      const int64_t *dims, char *err, size_t errlen)
{
	char h[512];
	int n;
	int64_t numel = 1;
	unsigned char pre[10];
	const void *parts[3];
	size_t lens[3];

	n = snprintf(h, sizeof h, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
	for (int i = 0; i < ndim && n < 200; i++) {
		n += snprintf(h + n, sizeof h - (size_t)n, "%lld,%s", (long long)dims[i],
		              i + 1 < ndim ? " " : "");
		numel *= dims[i];
	}
	n += snprintf(h + n, sizeof h - (size_t)n, "), }");
	/* Pad with spaces so the data starts on a 64-byte boundary; end with \n. */
	while ((10 + n + 1) % 64)
		h[n++] = ' ';
	h[n++] = '\n';
	memcpy(pre, MAGIC, 6);
	pre[6] = 1;
	pre[7] = 0;
	pre[8] = (unsigned char)(n & 255);
	pre[9] = (unsigned char)(n >> 8);
	parts[0] = pre; lens[0] = 10;
	parts[1] = h; lens[1] = (size_t)n;
	parts[2] = data; lens[2] = (size_t)numel * 4;
	if (rt_write_atomic(path, parts, lens, 3) != 0) {
		rt_fmt_err(err, errlen, "%s: cannot write: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}
