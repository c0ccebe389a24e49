/* pipert_check_data.c — TEMPORARY: the data files' shape and dtype rules
 * for pipert-check, written from docs/training.md ("Data", "Evaluation",
 * "Inference over a file") while rt_data.c learns the same rules.  Once
 * rt_data.c has rt_data_check_header(p, which, k, hdr, err, errlen) for the
 * ranks, pipert-check calls that and this file goes: one definition.
 */
#define _POSIX_C_SOURCE 200809L
#include <string.h>

#include "pipert_check.h"

static void dims_str(char *buf, size_t n, int ndim, const int64_t *dims)
{
	size_t o = (size_t)snprintf(buf, n, "[");
	for (int i = 0; i < ndim && o < n; i++)
		o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)dims[i]);
	if (o < n)
		snprintf(buf + o, n - o, "]");
}

/* A row of the file is `width` values: [N, width], [N] for width 1, or the
 * declared shape [N, dims...] (ndim 0: none declared). */
static int row_fits(const rt_npy *a, int64_t width, int ndim, const int64_t *dims)
{
	int64_t n = 1;
	int same = a->ndim == ndim + 1;
	if (a->ndim == 1)
		return width == 1;
	if (a->ndim == 2 && a->dims[1] == width)
		return 1;
	for (int i = 0; same && i < ndim; i++)
		same = a->dims[i + 1] == dims[i];
	if (same && ndim > 0)
		return 1;
	if (ndim > 0)
		return 0;
	/* no declared shape (the targets): any shape of width values a row */
	for (int i = 1; i < a->ndim; i++)
		n *= a->dims[i];
	return a->ndim > 2 && n == width;
}

int check_data_header(const rt_program *p, int ndim, const int64_t *dims, int which, int k,
                      const rt_npy *a, char *err, size_t errlen)
{
	int eval = which == CHECK_EVAL_INPUT || which == CHECK_EVAL_TARGET;
	int target = which == CHECK_TARGET || which == CHECK_EVAL_TARGET;
	int integer = a->type == RT_NPY_I32 || a->type == RT_NPY_I64;
	int64_t rows = a->ndim ? a->dims[0] : 0;
	/* Training takes N >= B rows (epochs of whole batches); evaluation and
	 * inference every row, the last batch padded; generation any number
	 * of prompts. */
	int64_t min_rows = eval || p->optim == RT_OPTIM_NONE ? 1 : p->batch;
	char got[160], want[160], nrows[64];
	dims_str(got, sizeof got, a->ndim, a->dims);
	snprintf(nrows, sizeof nrows, "N >= %lld", (long long)min_rows);

	if (target) {
		int classes = p->target_dtype == RT_DT_I32;
		int64_t w = classes ? 1 : p->target_width;
		if (classes && !integer) {
			rt_fmt_err(err, errlen, "class ids are integers (int32 or int64), found %s data",
			           a->type == RT_NPY_F32 ? "float32" : "float64");
			return -1;
		}
		if (a->ndim < 1 || !row_fits(a, w, 0, NULL) || rows < min_rows) {
			if (w == 1)
				rt_fmt_err(err, errlen, "targets of shape [%s] or [%s, 1] expected, found %s",
				           nrows, nrows, got);
			else
				rt_fmt_err(err, errlen, "targets of shape [%s, %lld] expected, found %s", nrows,
				           (long long)w, got);
			return -1;
		}
		return 0;
	}

	const rt_input_desc *d = p->ninputs > 0 ? &p->inputs[k] : NULL;
	int64_t width = d ? d->width : p->in_width;
	int i32 = d && d->dtype == RT_DT_I32;
	char name[96] = "input";
	if (d && p->ninputs > 1)
		snprintf(name, sizeof name, "input '%s'", d->name);
	if (i32 && !integer) {
		rt_fmt_err(err, errlen, "%s holds %ss, integers (int32 or int64), found %s data", name,
		           d->what ? d->what : "value", a->type == RT_NPY_F32 ? "float32" : "float64");
		return -1;
	}
	if (d && d->seq) {
		if (a->ndim != 2 || rows < min_rows || a->dims[1] < 1 || a->dims[1] > width) {
			rt_fmt_err(err, errlen, "%s is sequences of shape [%s, T] (1 <= T <= %lld), found "
			           "%s", name, nrows, (long long)width, got);
			return -1;
		}
		if (p->loss == RT_LOSS_NEXT_TOKEN && a->dims[1] < 2) {
			rt_fmt_err(err, errlen, "next-token training needs sequences of at least 2 tokens, "
			           "found %s", got);
			return -1;
		}
		return 0;
	}
	if (a->ndim < 1 || !row_fits(a, width, ndim, dims) || rows < min_rows) {
		if (ndim > 1) {
			int64_t full[5];
			full[0] = 0;
			memcpy(full + 1, dims, (size_t)ndim * sizeof *dims);
			dims_str(want, sizeof want, ndim + 1, full);
			/* "[0, 3, 20]" -> "[N >= 8, 3, 20]" */
			rt_fmt_err(err, errlen, "%s of shape [%s,%s or [%s, %lld] expected, found %s", name,
			           nrows, strchr(want, ',') + 1, nrows, (long long)width, got);
		} else {
			rt_fmt_err(err, errlen, "%s of shape [%s, %lld] expected, found %s", name, nrows,
			           (long long)width, got);
		}
		return -1;
	}
	return 0;
}
