/* fuzz_safetensors.c — rt_st_open and rt_st_read_f32 on arbitrary files.
 *
 * An input that starts with '{' is a header and data separated by the first
 * NUL byte, the 8-byte length written for it (so mutations reach the tensor
 * checks instead of dying on the length); any other input is the whole file,
 * length and all.  An accepted file is checked against the format's rules
 * independently of the reader: the tensors tile the data section exactly,
 * each one's bytes match its dtype and shape, and every float tensor reads.
 */
#include "fuzz_common.h"

static int cmp_begin(const void *a, const void *b)
{
	const rt_st_tensor *x = a, *y = b;
	return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 :
	       x->end < y->end ? -1 : x->end > y->end;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512] = "";
	unsigned char lenb[8];
	const char *path;
	uint64_t fsize, at = 0;
	rt_st_file st;
	rt_st_tensor *sorted;
	int rc;

	if (size && data[0] == '{') {
		const uint8_t *nul = memchr(data, 0, size);
		size_t hl = nul ? (size_t)(nul - data) : size;
		for (int i = 0; i < 8; i++)
			lenb[i] = (unsigned char)((uint64_t)hl >> (8 * i));
		{
			/* length, header, then the bytes after the NUL */
			static uint8_t *whole;
			static size_t cap;
			size_t rest = nul ? size - hl - 1 : 0;
			if (8 + hl + rest > cap) {
				cap = 8 + hl + rest;
				whole = realloc(whole, cap);
			}
			memcpy(whole, lenb, 8);
			memcpy(whole + 8, data, hl);
			if (rest)
				memcpy(whole + 8 + hl, nul + 1, rest);
			path = fuzz_file(whole, 8 + hl + rest);
			fsize = 8 + hl + rest;
		}
	} else {
		path = fuzz_file(data, size);
		fsize = size;
	}
	rc = rt_st_open(&st, path, err, sizeof err);
	fuzz_need_message(rc, err);
	if (rc)
		return 0;
	if (st.data_start > fsize)
		abort();
	sorted = malloc(((size_t)st.n + 1) * sizeof *sorted);
	memcpy(sorted, st.t, (size_t)st.n * sizeof *sorted);
	qsort(sorted, (size_t)st.n, sizeof *sorted, cmp_begin);
	for (int i = 0; i < st.n; i++) {
		uint64_t numel = 1;
		if (sorted[i].begin != at || sorted[i].end < sorted[i].begin)
			abort();        /* overlap or gap accepted */
		at = sorted[i].end;
		for (int d = 0; d < sorted[i].ndim; d++)
			numel *= (uint64_t)sorted[i].dims[d];
		if (numel * (uint64_t)rt_dtype_size(sorted[i].dtype) != sorted[i].end - sorted[i].begin)
			abort();
	}
	if (at != fsize - st.data_start)
		abort();        /* trailing bytes accepted */
	free(sorted);
	for (int i = 0; i < st.n; i++) {
		const rt_st_tensor *t = &st.t[i];
		int es = rt_dtype_size(t->dtype);
		uint64_t n = (t->end - t->begin) / (uint64_t)es;
		float *out = malloc(n ? n * sizeof *out : 1);
		int isfloat = !strcmp(t->dtype, "F32") || !strcmp(t->dtype, "F64") ||
		              !strcmp(t->dtype, "F16") || !strcmp(t->dtype, "BF16");
		if (rt_st_find(&st, t->name) != t)
			abort();
		err[0] = 0;
		rc = rt_st_read_f32(&st, t, out, err, sizeof err);
		fuzz_need_message(rc, err);
		if ((rc == 0) != isfloat)
			abort();
		free(out);
	}
	rt_st_close(&st);
	return 0;
}
