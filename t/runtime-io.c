/* runtime-io.c — safetensors and .npy: round trips, files written by hand
 * in every accepted form, and malformed files that must be rejected with a
 * message (and never crash: the mutation loop at the end runs under ASan in
 * the sanitizer build).
 *
 * Usage: runtime-io TMPDIR
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../runtime/rt_internal.h"
#include "tap.h"

static char dir[512];

static const char *path_of(const char *name)
{
	static char buf[4][600];
	static int k;
	k = (k + 1) % 4;
	snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
	return buf[k];
}

static void put_file(const char *name, const void *data, size_t len)
{
	FILE *f = fopen(path_of(name), "wb");
	if (!f || fwrite(data, 1, len, f) != len) {
		printf("Bail out! cannot write %s\n", path_of(name));
		exit(1);
	}
	fclose(f);
}

static size_t get_file(const char *name, char *buf, size_t cap)
{
	FILE *f = fopen(path_of(name), "rb");
	size_t n = f ? fread(buf, 1, cap, f) : 0;
	if (f)
		fclose(f);
	return n;
}

/* A safetensors file from a header string and raw data. */
static void put_st(const char *name, const char *hdr, const void *data, size_t dlen)
{
	size_t hl = strlen(hdr);
	char *b = malloc(8 + hl + dlen + 1);
	for (int i = 0; i < 8; i++)
		b[i] = (char)((uint64_t)hl >> (8 * i));
	memcpy(b + 8, hdr, hl);
	if (dlen)
		memcpy(b + 8 + hl, data, dlen);
	put_file(name, b, 8 + hl + dlen);
	free(b);
}

/* Opens name and, if given, reads tensor t: 0 on success, else -1 with the
 * message in err. */
static int st_try(const char *name, const char *t, char *err, size_t errlen)
{
	rt_st_file st;
	float out[64];
	int rc;
	err[0] = 0;
	if (rt_st_open(&st, path_of(name), err, errlen) != 0)
		return -1;
	rc = 0;
	if (t) {
		const rt_st_tensor *x = rt_st_find(&st, t);
		rc = !x ? -1 : rt_st_read_f32(&st, x, out, err, errlen);
	}
	rt_st_close(&st);
	return rc;
}

#define REJECTS(name, t, needle, desc) do { \
	char e_[512]; \
	int r_ = st_try(name, t, e_, sizeof e_); \
	if (!ok(r_ != 0 && strstr(e_, needle), "%s", desc)) \
		diagf("  rc %d, message \"%s\", wanted it to mention \"%s\"", r_, e_, needle); \
} while (0)

static void test_safetensors(void)
{
	float a[6] = { 1, -2, 3.5f, 0, 1e-30f, -7 }, b[3] = { 9, 8, 7 }, got[6];
	int64_t da[2] = { 2, 3 }, db[1] = { 3 };
	rt_st_out t[2] = { { "layer.b", 1, db, b }, { "layer.a", 2, da, a } };
	rt_st_file st;
	char err[512];
	const rt_st_tensor *x;

	is_int(rt_st_write(path_of("rt.safetensors"), t, 2, err, sizeof err), 0, "safetensors write");
	is_int(rt_st_open(&st, path_of("rt.safetensors"), err, sizeof err), 0, "safetensors read back: %s", err);
	is_int(st.n, 2, "two tensors (the metadata entry is not one)");
	x = rt_st_find(&st, "layer.a");
	ok(x && x->ndim == 2 && x->dims[0] == 2 && x->dims[1] == 3 && !strcmp(x->dtype, "F32"),
	   "name, dtype and shape survive");
	ok(x && rt_st_read_f32(&st, x, got, err, sizeof err) == 0 && !memcmp(got, a, sizeof a),
	   "values survive bit for bit");
	ok((st.data_start % 8) == 0, "the header is padded to 8 bytes");
	rt_st_close(&st);
	{
		DIR *d = opendir(dir);
		struct dirent *e;
		int tmp = 0;
		while (d && (e = readdir(d)))
			tmp |= strncmp(e->d_name, "rt.safetensors.tmp", 18) == 0;
		if (d)
			closedir(d);
		ok(d && !tmp, "no temporary file is left behind");
	}

	{
		/* Every float dtype a checkpoint may hold is converted; F16 1.5 =
		 * 0x3e00, BF16 -2 = 0xc000, F64 0.25. */
		unsigned char d[2 + 2 + 8] = { 0x00, 0x3e, 0x00, 0xc0 };
		double q = 0.25;
		float h, bf, f64;
		memcpy(d + 4, &q, 8);
		put_st("conv.safetensors",
		       "{\"h\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,2]},"
		       "\"b\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[2,4]},"
		       "\"d\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[4,12]},"
		       "\"__metadata__\":{\"format\":\"pt\"}}", d, sizeof d);
		ok(rt_st_open(&st, path_of("conv.safetensors"), err, sizeof err) == 0 &&
		   rt_st_read_f32(&st, rt_st_find(&st, "h"), &h, err, sizeof err) == 0 &&
		   rt_st_read_f32(&st, rt_st_find(&st, "b"), &bf, err, sizeof err) == 0 &&
		   rt_st_read_f32(&st, rt_st_find(&st, "d"), &f64, err, sizeof err) == 0 &&
		   h == 1.5f && bf == -2.0f && f64 == 0.25f,
		   "F16, BF16 and F64 tensors are read as float32 (scalar shape [] too)");
		rt_st_close(&st);
	}

	/* Malformed files. */
	{
		char buf[4096];
		size_t n = get_file("rt.safetensors", buf, sizeof buf);
		put_file("trunc.safetensors", buf, n - 5);
		REJECTS("trunc.safetensors", NULL, "data_offsets outside",
		        "a truncated file is rejected (offsets past its end)");
		put_file("short.safetensors", buf, 5);
		REJECTS("short.safetensors", NULL, "shorter than 8 bytes", "a 5-byte file is rejected");
		put_file("hdrcut.safetensors", buf, 40);
		REJECTS("hdrcut.safetensors", NULL, "header length", "a file cut inside its header is rejected");
	}
	put_st("json.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],", "", 0);
	REJECTS("json.safetensors", NULL, "bad JSON", "bad JSON is rejected with the reason");
	put_st("json2.safetensors", "{\"a\" 1}", "", 0);
	REJECTS("json2.safetensors", NULL, "expected ':'", "a missing colon is named");
	put_st("arr.safetensors", "[1,2]", "", 0);
	REJECTS("arr.safetensors", NULL, "not a JSON object", "a header that is not an object is rejected");
	{
		/* Inside an object: a header must start with '{'. */
		char deep[3010];
		memcpy(deep, "{\"a\":", 5);
		memset(deep + 5, '[', 2000);
		memset(deep + 2005, ']', 999);
		deep[3004] = 0;
		put_st("deep.safetensors", deep, "", 0);
		REJECTS("deep.safetensors", NULL, "nesting too deep", "deeply nested JSON is refused, not recursed into");
	}
	put_st("dtype.safetensors", "{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", "abcd", 4);
	REJECTS("dtype.safetensors", NULL, "unknown dtype", "an unknown dtype is rejected");
	put_st("int.safetensors", "{\"a\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "abcd", 4);
	REJECTS("int.safetensors", "a", "dtype I32, expected F32", "an integer tensor is refused as weights");
	put_st("size.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", "abcd", 4);
	REJECTS("size.safetensors", NULL, "needs 8", "a size that disagrees with the shape is rejected");
	put_st("neg.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", "abcd", 4);
	REJECTS("neg.safetensors", NULL, "bad shape", "a negative dimension is rejected");
	put_st("dup.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
	       "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "abcd", 4);
	REJECTS("dup.safetensors", NULL, "appears twice", "a duplicated name is rejected");
	put_st("esc.safetensors", "{\"a\\u00e9\\\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "abcd", 4);
	ok(rt_st_open(&st, path_of("esc.safetensors"), err, sizeof err) == 0 &&
	   rt_st_find(&st, "a\xc3\xa9\""), "escaped names are decoded (\\u00e9, \\\")");
	rt_st_close(&st);
}

/* ---- .npy ---- */

/* A .npy file with the given header dict (padded as numpy does). */
static void put_npy(const char *name, int version, const char *dict, const void *data, size_t dlen)
{
	char b[8192];
	size_t pre = version == 1 ? 10 : 12, hl = strlen(dict);
	size_t pad = (64 - (pre + hl + 1) % 64) % 64, total_h = hl + pad + 1;
	memcpy(b, "\x93NUMPY", 6);
	b[6] = (char)version;
	b[7] = 0;
	if (version == 1) {
		b[8] = (char)(total_h & 255);
		b[9] = (char)(total_h >> 8);
	} else {
		for (int i = 0; i < 4; i++)
			b[8 + i] = (char)(total_h >> (8 * i));
	}
	memcpy(b + pre, dict, hl);
	memset(b + pre + hl, ' ', pad);
	b[pre + hl + pad] = '\n';
	memcpy(b + pre + total_h, data, dlen);
	put_file(name, b, pre + total_h + dlen);
}

static int npy_rejects(const char *name, const char *needle, const char *desc)
{
	rt_npy a;
	char err[512] = "";
	int r = rt_npy_read(path_of(name), &a, err, sizeof err);
	if (r == 0)
		rt_free(a.data);
	if (!ok(r != 0 && strstr(err, needle), "%s", desc))
		diagf("  rc %d, message \"%s\", wanted it to mention \"%s\"", r, err, needle);
	return r;
}

static void test_npy(void)
{
	float a[6] = { 1, 2, 3, 4, 5, 6 };
	int64_t dims[2] = { 2, 3 };
	rt_npy n;
	char err[512];
	float *f = NULL;

	ok(rt_npy_write_f32(path_of("a.npy"), a, 2, dims, err, sizeof err) == 0, "npy write");
	ok(rt_npy_read(path_of("a.npy"), &n, err, sizeof err) == 0 && n.type == RT_NPY_F32 &&
	   n.ndim == 2 && n.dims[0] == 2 && n.dims[1] == 3 && !memcmp(n.data, a, sizeof a),
	   "npy round trip keeps dtype, shape and values");
	{
		char buf[256];
		size_t len = get_file("a.npy", buf, sizeof buf);
		ok(len == 128 + sizeof a, "the header is padded to 64 bytes, as numpy writes it");
	}
	rt_free(n.data);

	{
		double d[3] = { 0.5, -1, 3 };
		int64_t i8[3] = { 7, 0, 2 };
		int32_t *i = NULL;
		put_npy("f8.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", d, sizeof d);
		ok(rt_npy_read(path_of("f8.npy"), &n, err, sizeof err) == 0 &&
		   (f = rt_npy_as_f32(&n, err, sizeof err)) && f[0] == 0.5f && f[1] == -1.0f && n.ndim == 1,
		   "float64 is converted to float32");
		rt_free(n.data);
		rt_free(f);
		put_npy("i8.npy", 2, "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", i8, sizeof i8);
		ok(rt_npy_read(path_of("i8.npy"), &n, err, sizeof err) == 0 &&
		   (i = rt_npy_as_i32(&n, err, sizeof err)) && i[0] == 7 && i[2] == 2,
		   "format version 2 and int64 class ids are read");
		rt_free(n.data);
		rt_free(i);
		i8[1] = (int64_t)1 << 40;
		put_npy("big.npy", 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", i8, sizeof i8);
		ok(rt_npy_read(path_of("big.npy"), &n, err, sizeof err) == 0 &&
		   !rt_npy_as_i32(&n, err, sizeof err) && strstr(err, "does not fit"),
		   "int64 values outside int32 are refused");
		rt_free(n.data);
	}
	{
		/* [[1, 2, 3], [4, 5, 6]] stored column-major is 1 4 2 5 3 6. */
		float fo[6] = { 1, 4, 2, 5, 3, 6 };
		put_npy("fort.npy", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", fo, sizeof fo);
		ok(rt_npy_read(path_of("fort.npy"), &n, err, sizeof err) == 0 && !memcmp(n.data, a, sizeof a),
		   "Fortran-order arrays are transposed into C order");
		rt_free(n.data);
	}
	put_npy("be.npy", 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", a, sizeof a);
	npy_rejects("be.npy", "big-endian", "big-endian data is refused with the reason");
	put_npy("u8.npy", 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (6,), }", a, 6);
	npy_rejects("u8.npy", "not supported", "an unsupported dtype is refused");
	put_npy("trunc.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", a, sizeof a - 4);
	npy_rejects("trunc.npy", "truncated", "truncated data is refused");
	put_npy("noshape.npy", 1, "{'descr': '<f4', 'fortran_order': False}", a, sizeof a);
	npy_rejects("noshape.npy", "lacks", "a header without a shape is refused");
	put_npy("badshape.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }", a, sizeof a);
	npy_rejects("badshape.npy", "bad shape", "a malformed shape is refused");
	put_file("magic.npy", "NUMPY\x01\x00", 7);
	npy_rejects("magic.npy", "not a .npy", "a file without the magic is refused");
	npy_rejects("does-not-exist.npy", "cannot open", "a missing file is named");
}

/* Random single-byte mutations of valid files: each must parse or fail
 * with a message; ASan/UBSan watch for anything worse. */
static void test_mutations(void)
{
	static char good_st[4096], good_npy[4096], buf[4096];
	size_t ns = get_file("rt.safetensors", good_st, sizeof good_st);
	size_t nn = get_file("a.npy", good_npy, sizeof good_npy);
	uint64_t s = 99;
	int survived = 1;
	for (int it = 0; it < 600; it++) {
		int is_st = it % 2 == 0;
		size_t n = is_st ? ns : nn;
		char err[512];
		memcpy(buf, is_st ? good_st : good_npy, n);
		for (int k = 0; k < 1 + it % 3; k++) {
			s = rt_mix64(s + 1);
			buf[s % n] = (char)(s >> 32);
		}
		s = rt_mix64(s + 1);
		if (it % 7 == 0)
			n -= s % n;     /* and sometimes cut the file short */
		put_file("mut", buf, n);
		if (is_st) {
			float out[16];
			rt_st_file st;
			if (rt_st_open(&st, path_of("mut"), err, sizeof err) == 0) {
				for (int i = 0; i < st.n; i++)
					if (st.t[i].end - st.t[i].begin <= sizeof out)
						rt_st_read_f32(&st, &st.t[i], out, err, sizeof err);
				rt_st_close(&st);
			} else {
				survived &= err[0] != 0;
			}
		} else {
			rt_npy a;
			if (rt_npy_read(path_of("mut"), &a, err, sizeof err) == 0)
				rt_free(a.data);
			else
				survived &= err[0] != 0;
		}
	}
	ok(survived, "600 mutated files: each parses or is rejected with a message");
}

int main(int argc, char **argv)
{
	snprintf(dir, sizeof dir, "%s", argc > 1 ? argv[1] : ".");
	test_safetensors();
	test_npy();
	test_mutations();
	return done_testing();
}
