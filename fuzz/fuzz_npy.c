/* fuzz_npy.c — rt_npy_probe, rt_npy_read and the conversions on arbitrary
 * files.
 *
 * An input that starts with '{' is a header dict and data separated by the
 * first NUL byte, given a version 1 preamble with the right length (so
 * mutations reach the dict's parser); any other input is the whole file.
 * An accepted file must agree with its probe, and hold exactly its shape's
 * bytes.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512] = "";
	const char *path;
	uint64_t fsize;
	rt_npy a, p;
	int rc, prc;
	static uint8_t *whole;
	static size_t cap;

	if (size && data[0] == '{') {
		const uint8_t *nul = memchr(data, 0, size);
		size_t hl = nul ? (size_t)(nul - data) : size, rest = nul ? size - hl - 1 : 0;
		if (hl > 65535)
			return 0;
		if (10 + hl + rest > cap) {
			cap = 10 + hl + rest;
			whole = realloc(whole, cap);
		}
		memcpy(whole, "\x93NUMPY\x01\x00", 8);
		whole[8] = (uint8_t)(hl & 255);
		whole[9] = (uint8_t)(hl >> 8);
		memcpy(whole + 10, data, hl);
		if (rest)
			memcpy(whole + 10 + hl, nul + 1, rest);
		fsize = 10 + hl + rest;
		path = fuzz_file(whole, fsize);
	} else {
		path = fuzz_file(data, size);
		fsize = size;
	}
	prc = rt_npy_probe(path, &p, err, sizeof err);
	fuzz_need_message(prc, err);
	err[0] = 0;
	rc = rt_npy_read(path, &a, err, sizeof err);
	fuzz_need_message(rc, err);
	if ((rc == 0) != (prc == 0))
		abort();        /* the probe and the read disagree */
	if (rc)
		return 0;
	if (a.ndim != p.ndim || a.type != p.type || memcmp(a.dims, p.dims, sizeof a.dims) ||
	    p.data != NULL)
		abort();
	{
		int64_t n = rt_npy_numel(&a);
		int es = a.type == RT_NPY_F64 || a.type == RT_NPY_I64 ? 8 : 4;
		float *f;
		int32_t *i;
		if (n < 0 || (uint64_t)n * (uint64_t)es > fsize)
			abort();        /* accepted more data than the file holds */
		err[0] = 0;
		f = rt_npy_as_f32(&a, err, sizeof err);
		fuzz_need_message(f ? 0 : -1, err);
		rt_free(f);
		err[0] = 0;
		i = rt_npy_as_i32(&a, err, sizeof err);
		fuzz_need_message(i ? 0 : -1, err);
		rt_free(i);
	}
	rt_free(a.data);
	return 0;
}
