/* rt_data.c — inputs, targets, synthetic data, epochs, shuffling, the
 * evaluation set and --output.
 *
 * Files are read whole and converted to float32 / int32 once, before the
 * step loop; rt_input and friends then return pointers into them (or, with
 * --shuffle, into a micro-batch's staging buffer where its rows are
 * gathered).  A file of N rows is an epoch of floor(N/B) batches (a final
 * partial batch is dropped, as PyTorch's drop_last); global step s reads
 * batch s mod nb of epoch s / nb, in row order or in the epoch's seeded
 * permutation (perm_of; docs/training.md).  Replica j takes rows
 * [j·B/R, (j+1)·B/R) of the batch, micro-batch m the m-th mb_rows of those.
 * An inference run given --input reads every row once instead: ceil(N/B)
 * steps, the last batch padded with copies of the last row, which
 * rt_rows_valid and --output leave out; an evaluation set likewise.
 *
 * A file's shape rule is rt_data_check_header, on its header alone, so that
 * the launcher's checks apply the same rule before any rank starts.  Float
 * data must be finite: a NaN is named with its file and row.
 *
 * Synthetic data (no --input) is k = 4 batches of N(0, 1) features drawn
 * from (seed, element); its targets are a fixed function of the features —
 * the argmax of a fixed random projection (classes) or tanh of one (MSE) —
 * so the task is learnable and the loss falls when the model trains.
 *
 * A program with `inputs` (docs/transformers.md) has one file per input
 * (--input NAME=FILE.npy): float features [N, width], or int32 sequences
 * [N, T] with 1 <= T <= width, the same T and rows for every sequence
 * input of a run, every value checked against the input's limit before the
 * first step, each error naming file, row, column and value.  Only the
 * ranks of the first stage read them; rt_data_share tells every rank T and
 * N.  Synthetic sequences are T = seq_max positions: token ids uniform below
 * the vocabulary, masks all 1, token types all 0.
 */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rt_internal.h"

#define SYNTH_BATCHES 4

static void shape_str(char *buf, size_t n, const rt_npy *a)
{
	size_t o = (size_t)snprintf(buf, n, "[");
	for (int i = 0; i < a->ndim && o < n; i++)
		o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)a->dims[i]);
	if (o < n)
		snprintf(buf + o, n - o, "]");
}

/* `--input NAME=FILE`: the file, when the whole argument names none. */
static const char *input_path(const char *arg)
{
	const char *eq = strchr(arg, '=');
	if (!eq || access(arg, F_OK) == 0)
		return arg;
	for (const char *s = arg; s < eq; s++)
		if (!isalnum((unsigned char)*s) && *s != '_')
			return arg;
	return eq + 1;
}

/* ---- The shape rule of a data file (rt_data_check_header). ---- */

static int is_eval_kind(int which)
{
	return which == RT_DATA_EVAL_INPUT || which == RT_DATA_EVAL_TARGET;
}

/* The fewest rows a file may have: a training epoch is whole batches (a
 * partial one is dropped), so one batch at least; an evaluation set or an
 * inference run pads its last batch, so one row will do, and so does
 * generation (any number of prompts, rt_gen.c). */
static int64_t min_rows(const rt_program *p, int which)
{
	if (is_eval_kind(which) || p->optim == RT_OPTIM_NONE)
		return 1;
	return p->batch;
}

/* "[N, 2, 4] or [N, 8]": the shapes of a file of `width` floats a row
 * whose declared shape is dims[nd]. */
static void want_str(char *buf, size_t n, int64_t width, const int64_t *dims, int nd)
{
	size_t o = 0;
	if (nd > 1 && dims) {
		o = (size_t)snprintf(buf, n, "[N");
		for (int i = 0; i < nd && o < n; i++)
			o += (size_t)snprintf(buf + o, n - o, ", %lld", (long long)dims[i]);
		if (o < n)
			o += (size_t)snprintf(buf + o, n - o, "] or ");
	}
	if (o >= n)
		return;
	if (width == 1)
		snprintf(buf + o, n - o, "[N] or [N, 1]");
	else
		snprintf(buf + o, n - o, "[N, %lld]", (long long)width);
}

/* [N, width], [N] for a width of 1, or [N, dims...]: the declared shape. */
static int shape_fits(const rt_npy *a, int64_t width, const int64_t *dims, int nd)
{
	if ((a->ndim == 2 && a->dims[1] == width) || (a->ndim == 1 && width == 1))
		return 1;
	if (nd < 2 || !dims || a->ndim != nd + 1)
		return 0;
	for (int i = 0; i < nd; i++)
		if (a->dims[i + 1] != dims[i])
			return 0;
	return 1;
}

static const char *npy_type_name(int t)
{
	return t == RT_NPY_F32 ? "float32" : t == RT_NPY_F64 ? "float64"
	     : t == RT_NPY_I32 ? "int32" : "int64";
}

static int is_int(const rt_npy *a)
{
	return a->type == RT_NPY_I32 || a->type == RT_NPY_I64;
}

int rt_data_check_header(const rt_program *p, int which, int k, const rt_npy *a,
                         char *err, size_t errlen)
{
	int target = which == RT_DATA_TARGET || which == RT_DATA_EVAL_TARGET;
	int64_t least = min_rows(p, which), rows = a->ndim ? a->dims[0] : 0, width;
	const char *set = is_eval_kind(which) ? "evaluation " : "";
	const int64_t *dims = NULL;
	int nd = 0;
	char got[160], want[200], what[96];

	shape_str(got, sizeof got, a);
	if (target) {
		int classes = p->target_dtype == RT_DT_I32;
		if (classes && !is_int(a)) {
			rt_fmt_err(err, errlen, "class ids: expected integer data (int32 or int64), "
			           "found %s", npy_type_name(a->type));
			return -1;
		}
		width = classes ? 1 : p->target_width;
		/* Dense targets as wide as the output may come in its shape. */
		if (!classes && p->target_width == p->out_width) {
			dims = p->out_dims;
			nd = p->out_ndim;
		}
		snprintf(what, sizeof what, "%stargets", set);
	} else if (p->ninputs > 0) {
		const rt_input_desc *d;
		if (k < 0 || k >= p->ninputs || !p->inputs) {
			rt_fmt_err(err, errlen, "input %d: the model has %d inputs", k, p->ninputs);
			return -1;
		}
		d = &p->inputs[k];
		if (d->dtype == RT_DT_I32 && !is_int(a)) {
			rt_fmt_err(err, errlen, "%ss are integers (int32 or int64), found %s data",
			           d->what ? d->what : "value", npy_type_name(a->type));
			return -1;
		}
		if (d->seq) {
			if (a->ndim != 2 || a->dims[1] < 1 || rows < least) {
				rt_fmt_err(err, errlen, "%sinput '%s' is sequences of shape [N, T] (N >= %lld "
				           "rows, 1 <= T <= %lld), found %s", set, d->name, (long long)least,
				           (long long)d->width, got);
				return -1;
			}
			if (a->dims[1] > d->width) {
				rt_fmt_err(err, errlen, "a sequence of %lld tokens is longer than the model's "
				           "%lld", (long long)a->dims[1], (long long)d->width);
				return -1;
			}
			/* Position t is scored against the token at t + 1. */
			if (p->loss == RT_LOSS_NEXT_TOKEN && a->dims[1] < 2) {
				rt_fmt_err(err, errlen, "next-token training needs sequences of at least 2 "
				           "tokens, found %lld", (long long)a->dims[1]);
				return -1;
			}
			return 0;
		}
		width = d->width;
		snprintf(what, sizeof what, "%sinput '%s'", set, d->name);
	} else {
		width = p->in_width;
		dims = p->in_dims;
		nd = p->in_ndim;
		snprintf(what, sizeof what, "%sinput", set);
	}
	if (!shape_fits(a, width, dims, nd) || rows < least) {
		want_str(want, sizeof want, width, dims, nd);
		rt_fmt_err(err, errlen, "%s of shape %s (N >= %lld rows) expected, found %s", what, want,
		           (long long)least, got);
		return -1;
	}
	return 0;
}

/* ---- Reading files. ---- */

/* A data file read whole, its shape checked: 0, or -1 after a message. */
static int read_data(rt_ctx *c, const char *path, int which, int k, rt_npy *a)
{
	char err[512];
	if (rt_npy_read(path, a, err, sizeof err) != 0) {
		rt_defer(c, "%s", err);
		return -1;
	}
	if (rt_data_check_header(c->p, which, k, a, err, sizeof err) != 0) {
		rt_defer(c, "%s: %s", path, err);
		rt_free(a->data);
		a->data = NULL;
		return -1;
	}
	return 0;
}

/* a's values as float32, every one finite: a NaN or an infinity in the
 * data is named with its row (else the first sign of it is a loss of NaN,
 * far from its cause).  NULL after a message. */
static float *finite_f32(rt_ctx *c, const char *path, const rt_npy *a)
{
	char err[512];
	int64_t n = rt_npy_numel(a), rows = a->ndim ? a->dims[0] : 1;
	int64_t per = rows > 0 && n / rows > 0 ? n / rows : 1;
	float *x = rt_npy_as_f32(a, err, sizeof err);
	if (!x) {
		rt_defer(c, "%s: %s", path, err);
		return NULL;
	}
	for (int64_t i = 0; i < n; i++) {
		double v;
		if (isfinite(x[i]))
			continue;
		v = a->type == RT_NPY_F64 ? ((const double *)a->data)[i] : (double)x[i];
		if (isfinite(v))
			rt_defer(c, "%s: row %lld holds %g, beyond float32's range", path,
			         (long long)(i / per), v);
		else
			rt_defer(c, "%s: row %lld holds %s", path, (long long)(i / per),
			         isnan(v) ? "NaN" : v > 0 ? "inf" : "-inf");
		rt_free(x);
		return NULL;
	}
	return x;
}

/* data [rows] of row_bytes each, grown to `to` rows that repeat the last:
 * the padded batch of an evaluation set or an inference run holds real
 * rows, and rt_rows_valid leaves them out.  NULL if out of memory (data
 * is then still the caller's). */
static void *pad_rows(void *data, int64_t rows, int64_t to, size_t row_bytes)
{
	char *d;
	if (!data || rows < 1 || rows >= to)
		return data;
	if (!(d = rt_alloc((size_t)to * row_bytes)))
		return NULL;
	memcpy(d, data, (size_t)rows * row_bytes);
	for (int64_t r = rows; r < to; r++)
		memcpy(d + (size_t)r * row_bytes, d + (size_t)(rows - 1) * row_bytes, row_bytes);
	rt_free(data);
	return d;
}

/* The single input of a program without `inputs`. */
static int load_input(rt_ctx *c, rt_dset *ds, const char *arg, int which)
{
	const char *path = input_path(arg);
	rt_npy a;
	if (read_data(c, path, which, 0, &a) != 0)
		return RT_EXIT_INPUT;
	ds->x_rows = a.dims[0];
	ds->x = finite_f32(c, path, &a);
	rt_free(a.data);
	return ds->x ? 0 : RT_EXIT_INPUT;
}

static int synth_input(rt_ctx *c, rt_dset *ds)
{
	const rt_program *p = c->p;
	uint64_t stream = rt_hash_name("pipec.synthetic.input");
	int64_t n;
	ds->x_rows = SYNTH_BATCHES * p->batch;
	n = ds->x_rows * p->in_width;
	if (!(ds->x = rt_alloc((size_t)n * sizeof *ds->x)))
		return RT_EXIT_RUNTIME;
	for (int64_t i = 0; i < n; i++)
		ds->x[i] = (float)rt_normal_at(p->seed, stream, (uint64_t)i);
	return 0;
}

/* The features synthetic targets are a function of: the input, or for a
 * program with `inputs` its first one, int32 values mapped into [-1, 1)
 * (a copy, *owned set) so that a projection of them is O(1) as well. */
static const float *target_features(rt_ctx *c, int64_t *rows, int64_t *width, float **owned)
{
	const rt_program *p = c->p;
	const rt_indata *in;
	*owned = NULL;
	if (p->ninputs == 0) {
		*rows = c->x_rows;
		*width = p->in_width;
		return c->x;
	}
	in = &c->in[0];
	*rows = in->rows;
	*width = in->cols;
	if (p->inputs[0].dtype == RT_DT_F32)
		return in->data;
	if (!(*owned = rt_alloc((size_t)(in->rows * in->cols) * sizeof **owned)))
		return NULL;
	for (int64_t i = 0; i < in->rows * in->cols; i++) {
		double v = ((const int32_t *)in->data)[i], lim = (double)p->inputs[0].limit;
		(*owned)[i] = (float)(lim > 0 ? 2.0 * (v + 0.5) / lim - 1.0 : v);
	}
	return *owned;
}

/* z = x·Pᵀ/sqrt(in) for a fixed N(0, 1) matrix P [width, in]: the shared
 * ingredient of both synthetic target kinds. */
static float *synth_projection(rt_ctx *c, const float *x, int64_t rows, int64_t in, int64_t width)
{
	const rt_program *p = c->p;
	uint64_t stream = rt_hash_name("pipec.synthetic.projection");
	float *pm = rt_alloc((size_t)(width * in) * sizeof *pm);
	float *z = rt_alloc((size_t)(rows * width) * sizeof *z);
	if (!pm || !z) {
		rt_free(pm);
		rt_free(z);
		return NULL;
	}
	for (int64_t i = 0; i < width * in; i++)
		pm[i] = (float)rt_normal_at(p->seed, stream, (uint64_t)i);
	rt_host_linear_fwd(x, pm, NULL, z, rows, in, width);
	for (int64_t i = 0; i < rows * width; i++)
		z[i] /= sqrtf((float)in);
	rt_free(pm);
	return z;
}

static int synth_targets(rt_ctx *c)
{
	const rt_program *p = c->p;
	int64_t w = p->target_dtype == RT_DT_I32 ? p->out_width : p->target_width;
	int64_t rows, in;
	float *owned, *z = NULL;
	const float *x = target_features(c, &rows, &in, &owned);
	if (x)
		z = synth_projection(c, x, rows, in, w);
	rt_free(owned);
	if (!z)
		return RT_EXIT_RUNTIME;
	c->t_rows = rows;
	if (p->target_dtype == RT_DT_I32) {
		if (!(c->tc = rt_alloc((size_t)c->t_rows * sizeof *c->tc)))
			goto oom;
		for (int64_t r = 0; r < c->t_rows; r++) {
			int32_t best = 0;
			for (int64_t j = 1; j < w; j++)
				if (z[r * w + j] > z[r * w + best])
					best = (int32_t)j;
			c->tc[r] = best;
		}
	} else {
		if (!(c->td = rt_alloc((size_t)(c->t_rows * w) * sizeof *c->td)))
			goto oom;
		for (int64_t i = 0; i < c->t_rows * w; i++)
			c->td[i] = tanhf(z[i]);
	}
	rt_free(z);
	return 0;
oom:
	rt_free(z);
	return RT_EXIT_RUNTIME;
}

/* The rows of the input a target file goes with: from the set when this
 * rank holds it, else from the input file's header.  -1: unknown. */
static int64_t input_rows(rt_ctx *c, const rt_dset *ds, int eval)
{
	const rt_program *p = c->p;
	const char *path;
	char err[512];
	rt_npy in;
	if (p->ninputs > 0 && ds->in && ds->in[0].data)
		return ds->in[0].rows;
	if (p->ninputs == 0 && ds->x)
		return ds->x_rows;
	if (p->ninputs > 0)
		path = eval ? (c->o.eval_path ? c->o.eval_path[0] : NULL)
		            : (c->o.in_path ? c->o.in_path[0] : NULL);
	else
		path = eval ? c->o.eval_input : c->o.input;
	if (!path)
		return -1;
	if (p->ninputs == 0)
		path = input_path(path);
	return rt_npy_probe(path, &in, err, sizeof err) == 0 && in.ndim >= 1 ? in.dims[0] : -1;
}

static int load_targets(rt_ctx *c, rt_dset *ds, const char *path, int which)
{
	const rt_program *p = c->p;
	int eval = which == RT_DATA_EVAL_TARGET;
	int64_t want = input_rows(c, ds, eval);
	char err[512];
	rt_npy a;

	if (read_data(c, path, which, 0, &a) != 0)
		return RT_EXIT_INPUT;
	ds->t_rows = a.dims[0];
	if (want >= 0 && ds->t_rows != want) {
		rt_defer(c, "%s: %lld rows, but the %sinput has %lld (targets are row for row)",
		         path, (long long)ds->t_rows, eval ? "evaluation " : "", (long long)want);
		goto bad;
	}
	if (p->target_dtype == RT_DT_I32) {
		if (!(ds->tc = rt_npy_as_i32(&a, err, sizeof err))) {
			rt_defer(c, "%s: class ids: %s", path, err);
			goto bad;
		}
		for (int64_t r = 0; r < ds->t_rows; r++)
			if (ds->tc[r] < 0 || ds->tc[r] >= p->out_width) {
				rt_defer(c, "%s: row %lld: class %d outside 0..%lld", path,
				         (long long)r, ds->tc[r], (long long)p->out_width - 1);
				goto bad;
			}
	} else if (!(ds->td = finite_f32(c, path, &a))) {
		goto bad;
	}
	rt_free(a.data);
	return 0;
bad:
	rt_free(a.data);
	return RT_EXIT_INPUT;
}

/* ---- Programs with `inputs`. ---- */

/* The input's name in the synthetic stream, so that each input draws its
 * own numbers and renaming one changes only its own. */
static uint64_t synth_stream(const rt_input_desc *d)
{
	char key[256];
	snprintf(key, sizeof key, "pipec.synthetic.input.%s", d->name ? d->name : "");
	return rt_hash_name(key);
}

/* Which kind of int32 input a description is.  The descriptor says it only
 * in words (`what`, the messages' noun): the emitter writes "token id",
 * "token type" and "mask value" (pipert.h). */
static int is_mask(const rt_input_desc *d) { return d->what && strstr(d->what, "mask"); }
static int is_types(const rt_input_desc *d) { return d->what && strstr(d->what, "type"); }
static int is_ids(const rt_input_desc *d) { return d->what && strstr(d->what, "token id"); }

static int synth_one(rt_ctx *c, rt_indata *in, int k)
{
	const rt_program *p = c->p;
	const rt_input_desc *d = &p->inputs[k];
	uint64_t stream = synth_stream(d);
	int64_t n;
	in->path = NULL;
	in->rows = SYNTH_BATCHES * p->batch;
	/* A synthetic sequence is as long as the model allows. */
	in->cols = d->seq && p->seq_max > 0 && p->seq_max <= d->width ? p->seq_max : d->width;
	n = in->rows * in->cols;
	if (!(in->data = rt_alloc((size_t)n * 4)))
		return RT_EXIT_RUNTIME;
	if (d->dtype == RT_DT_F32) {
		float *x = in->data;
		for (int64_t i = 0; i < n; i++)
			x[i] = (float)rt_normal_at(p->seed, stream, (uint64_t)i);
	} else if (!is_mask(d) && !is_types(d) && d->limit > 0) {
		/* Uniform below the limit: the high 32 bits scaled, no modulo bias
		 * worth the name for limits below 2^31. */
		int32_t *v = in->data;
		for (int64_t i = 0; i < n; i++)
			v[i] = (int32_t)(((rt_rand_at(p->seed, stream, (uint64_t)i) >> 32) *
			                  (uint64_t)d->limit) >> 32);
	} else if (is_mask(d)) {
		int32_t *v = in->data;
		for (int64_t i = 0; i < n; i++)
			v[i] = 1;      /* every position is a token */
	}                          /* token types (and unbounded ids): all 0, as allocated */
	return 0;
}

/* The message for value v at (row, col) of input d that is outside
 * [0, limit). */
static void defer_value(rt_ctx *c, const char *path, const rt_input_desc *d, int64_t row,
                        int64_t col, long long v)
{
	if (is_mask(d) && d->limit == 2)
		rt_defer(c, "%s: row %lld, column %lld: mask value %lld is not 0 or 1", path,
		         (long long)row, (long long)col, v);
	else if (is_ids(d))
		rt_defer(c, "%s: row %lld, column %lld: token id %lld is outside the vocabulary "
		         "[0, %lld)", path, (long long)row, (long long)col, v, (long long)d->limit);
	else
		rt_defer(c, "%s: row %lld, column %lld: %s %lld is outside [0, %lld)", path,
		         (long long)row, (long long)col, d->what ? d->what : "value", v,
		         (long long)d->limit);
}

/* int32 (or int64) data of input d as int32 [rows, cols], every value
 * checked; NULL after a message. */
static int32_t *as_checked_i32(rt_ctx *c, const char *path, const rt_input_desc *d,
                               const rt_npy *a, int64_t rows, int64_t cols)
{
	int32_t *v;
	if (!(v = rt_alloc((size_t)(rows * cols) * sizeof *v))) {
		rt_defer(c, "%s: out of memory", path);
		return NULL;
	}
	for (int64_t i = 0; i < rows * cols; i++) {
		int64_t x = a->type == RT_NPY_I32 ? ((const int32_t *)a->data)[i]
		                                  : ((const int64_t *)a->data)[i];
		if (x < INT32_MIN || x > INT32_MAX) {
			rt_defer(c, "%s: row %lld, column %lld: %s %lld does not fit int32", path,
			         (long long)(i / cols), (long long)(i % cols),
			         d->what ? d->what : "value", (long long)x);
			goto bad;
		}
		/* generation's prompts are right-padded with -1 (rt_gen.c) */
		if (c->p->gen_tokens > 0 && x == -1 && i % cols == 0) {
			rt_defer(c, "%s: row %lld is an empty prompt (its first token is -1)", path,
			         (long long)(i / cols));
			goto bad;
		}
		if (d->limit > 0 && (x < 0 || x >= d->limit) && !(c->p->gen_tokens > 0 && x == -1)) {
			defer_value(c, path, d, i / cols, i % cols, (long long)x);
			goto bad;
		}
		v[i] = (int32_t)x;
	}
	return v;
bad:
	rt_free(v);
	return NULL;
}

/* Input k from its file: shape, type and values checked. */
static int load_one(rt_ctx *c, rt_indata *in, int k, const char *path, int which)
{
	const rt_input_desc *d = &c->p->inputs[k];
	rt_npy a;
	in->path = path;
	if (read_data(c, path, which, k, &a) != 0)
		return RT_EXIT_INPUT;
	in->rows = a.dims[0];
	in->cols = d->seq ? a.dims[1] : d->width;
	if (d->dtype == RT_DT_I32)
		in->data = as_checked_i32(c, path, d, &a, in->rows, in->cols);
	else
		in->data = finite_f32(c, path, &a);
	rt_free(a.data);
	return in->data ? 0 : RT_EXIT_INPUT;
}

static const char *in_name(const rt_indata *in)
{
	return in->path ? in->path : "the synthetic data";
}

/* The inputs of one run belong together: the same rows (step n takes the
 * same batch of each), and sequences of one length T. */
static int check_together(rt_ctx *c, const rt_indata *ins, int n)
{
	const rt_program *p = c->p;
	int ref = -1, seq_ref = -1;
	for (int k = 0; k < n; k++) {
		const rt_input_desc *d = &p->inputs[k];
		const rt_indata *in = &ins[k];
		if (!in->data)
			continue;
		if (d->seq && seq_ref >= 0 &&
		    (in->rows != ins[seq_ref].rows || in->cols != ins[seq_ref].cols)) {
			const rt_indata *r = &ins[seq_ref];
			const rt_input_desc *rd = &p->inputs[seq_ref];
			rt_defer(c, "%s is [%lld, %lld], but %s is [%lld, %lld]: %s", in_name(in),
			         (long long)in->rows, (long long)in->cols, in_name(r), (long long)r->rows,
			         (long long)r->cols,
			         !is_ids(rd) ? "the sequence inputs of a run have one shape"
			         : is_mask(d) ? "a mask has the shape of the ids"
			         : is_types(d) ? "token types have the shape of the ids"
			         : "every sequence input has the shape of the ids");
			return RT_EXIT_INPUT;
		}
		if (ref >= 0 && in->rows != ins[ref].rows) {
			rt_defer(c, "%s has %lld rows, but %s has %lld: the inputs are row for row",
			         in_name(in), (long long)in->rows, in_name(&ins[ref]),
			         (long long)ins[ref].rows);
			return RT_EXIT_INPUT;
		}
		if (ref < 0)
			ref = k;
		if (d->seq && seq_ref < 0) {
			seq_ref = k;
			/* Synthetic sequences too: position t is scored against t + 1. */
			if (p->loss == RT_LOSS_NEXT_TOKEN && in->cols < 2) {
				rt_defer(c, "%s: next-token training needs sequences of at least 2 tokens, "
				         "found %lld", in_name(in), (long long)in->cols);
				return RT_EXIT_INPUT;
			}
		}
	}
	return 0;
}

/* The first n inputs of a program with `inputs` (all of them on the first
 * stage; the first one only on a last stage that synthesises targets from
 * it), from their files (paths; NULL: synthetic). */
static int load_inputs(rt_ctx *c, rt_dset *ds, int n, const char **paths, int which)
{
	int rc = 0;
	if (!(ds->in = calloc((size_t)c->p->ninputs, sizeof *ds->in)))
		return RT_EXIT_RUNTIME;
	for (int k = 0; k < n && !rc; k++)
		rc = paths ? load_one(c, &ds->in[k], k, paths[k], which) : synth_one(c, &ds->in[k], k);
	return rc ? rc : check_together(c, ds->in, n);
}

/* ---- Epochs: which rows a step reads. ---- */

/* The rows of the data set this rank loaded (0: none). */
static int64_t set_rows(const rt_program *p, const rt_dset *ds)
{
	if (p->ninputs > 0 && ds->in && ds->in[0].data)
		return ds->in[0].rows;
	if (ds->x)
		return ds->x_rows;
	return ds->tc || ds->td ? ds->t_rows : 0;
}

/* Every array of a set grown to `to` rows (rt_rows_valid knows the real
 * ones); the rows fields then count the padded rows. */
static int pad_set(rt_ctx *c, rt_dset *ds, int64_t to)
{
	const rt_program *p = c->p;
	void *n;
	if (ds->x) {
		if (!(n = pad_rows(ds->x, ds->x_rows, to, (size_t)p->in_width * sizeof(float))))
			return RT_EXIT_RUNTIME;
		ds->x = n;
		ds->x_rows = to > ds->x_rows ? to : ds->x_rows;
	}
	for (int k = 0; ds->in && k < p->ninputs; k++) {
		rt_indata *in = &ds->in[k];
		if (!in->data)
			continue;
		if (!(n = pad_rows(in->data, in->rows, to, (size_t)in->cols * 4)))
			return RT_EXIT_RUNTIME;
		in->data = n;
		in->rows = to > in->rows ? to : in->rows;
	}
	if (ds->tc) {
		if (!(n = pad_rows(ds->tc, ds->t_rows, to, sizeof(int32_t))))
			return RT_EXIT_RUNTIME;
		ds->tc = n;
	}
	if (ds->td) {
		if (!(n = pad_rows(ds->td, ds->t_rows, to, (size_t)p->target_width * sizeof(float))))
			return RT_EXIT_RUNTIME;
		ds->td = n;
	}
	if ((ds->tc || ds->td) && to > ds->t_rows)
		ds->t_rows = to;
	return 0;
}

static void free_set(const rt_program *p, rt_dset *ds)
{
	for (int k = 0; ds->in && k < p->ninputs; k++)
		rt_free(ds->in[k].data);
	free(ds->in);
	rt_free(ds->x);
	rt_free(ds->tc);
	rt_free(ds->td);
	memset(ds, 0, sizeof *ds);
}

/* Epoch e's order of the N rows (--shuffle): Fisher–Yates, drawing
 * j = rt_rand_at(seed, hash("pipec.shuffle") + e, i) mod (i + 1) for
 * i = N-1 down to 1 (docs/training.md, where numpy reproduces it).  Two
 * epochs are kept: an asynchronous schedule has keys of both in flight. */
static const int64_t *perm_of(rt_ctx *c, int64_t e)
{
	int slot = (int)(e & 1);
	int64_t n = c->rows, *pm;
	uint64_t stream = rt_hash_name("pipec.shuffle") + (uint64_t)e;
	if (c->perm[slot] && c->perm_epoch[slot] == e)
		return c->perm[slot];
	if (!c->perm[slot] && !(c->perm[slot] = rt_alloc((size_t)n * sizeof *pm)))
		rt_die(c, RT_EXIT_RUNTIME, "out of memory shuffling %lld rows", (long long)n);
	pm = c->perm[slot];
	for (int64_t i = 0; i < n; i++)
		pm[i] = i;
	for (int64_t i = n - 1; i > 0; i--) {
		int64_t j = (int64_t)(rt_rand_at(c->p->seed, stream, (uint64_t)i) % (uint64_t)(i + 1));
		int64_t t = pm[i];
		pm[i] = pm[j];
		pm[j] = t;
	}
	c->perm_epoch[slot] = e;
	return pm;
}

int64_t rt_data_row(rt_ctx *c, int64_t s, int64_t i)
{
	const rt_program *p = c->p;
	int64_t nb = c->nbatches > 0 ? c->nbatches : 1;
	if (s < 0)
		s = 0;
	/* An evaluation batch or an inference run over a file: in file order,
	 * the padded rows past N. */
	if (c->evaluating || c->over_file)
		return s * p->batch + i;
	if (!c->o.shuffle)
		return (s % nb) * p->batch + i;
	return perm_of(c, s / nb)[(s % nb) * p->batch + i];
}

void rt_data_position(const rt_ctx *c, int64_t s, int64_t *epoch, int64_t *batch)
{
	int64_t nb = c->nbatches > 0 ? c->nbatches : 1;
	*epoch = s / nb;
	*batch = s % nb;
}

/* ---- Start-up. ---- */

void rt_data_share(rt_ctx *c)
{
	const rt_program *p = c->p;
	/* T, N and the evaluation set's rows: every rank agreed that the data
	 * loaded, so every rank is here; the ranks without data give 0. */
	long long mine[3] = { 0, (long long)c->rows, (long long)c->eval.rows }, all[3];
	int64_t B = p->batch;
	for (int k = 0; c->in && k < p->ninputs; k++)
		if (p->inputs[k].seq && c->in[k].data && c->in[k].cols > mine[0])
			mine[0] = c->in[k].cols;
	if (MPI_Allreduce(mine, all, 3, MPI_LONG_LONG, MPI_MAX, c->comm) != MPI_SUCCESS)
		rt_die(c, RT_EXIT_RUNTIME, "cannot share the data's shape");
	/* No sequence input (a model with seq_max but float inputs): the
	 * declared length. */
	c->seq_len = p->seq_max <= 0 ? 0 : all[0] > 0 ? all[0] : p->seq_max;
	c->rows = all[1];
	c->eval.rows = all[2];
	c->nbatches = c->over_file ? (c->rows + B - 1) / B : c->rows / B;
	if (c->nbatches < 1)
		c->nbatches = 1;
	if (c->over_file) {
		/* Every row once: --steps does not apply. */
		if (c->nbatches > INT_MAX)
			rt_die(c, RT_EXIT_RUNTIME, "%lld batches are too many for one run",
			       (long long)c->nbatches);
		c->o.steps = (int)c->nbatches;
		if (p->last_stage && c->o.output &&
		    (!(c->out = rt_alloc((size_t)(c->nbatches * (B / p->R) * rt_out_row_floats(c)) *
		                         sizeof *c->out)) ||
		     !(c->out_seen = rt_alloc((size_t)p->M))))
			rt_die(c, RT_EXIT_RUNTIME, "out of memory for the output of %lld rows",
			       (long long)c->rows);
	} else if (c->rank == c->reporter && p->optim != RT_OPTIM_NONE && p->gen_tokens == 0 &&
	           c->o.input && c->rows % B) {
		rt_msg(c->rank, "note: %lld rows are %lld batches of %lld: each epoch leaves %lld "
		       "rows out (drop_last%s)", (long long)c->rows, (long long)c->nbatches,
		       (long long)B, (long long)(c->rows % B),
		       c->o.shuffle ? "; --shuffle draws which" : ": the last ones");
	}
}

int64_t rt_seq_len(rt_ctx *c)
{
	return c->seq_len;
}

int64_t rt_out_row_floats(const rt_ctx *c)
{
	const rt_program *p = c->p;
	if (p->out_seq && p->seq_max > 0)
		return p->out_width / p->seq_max * c->seq_len;
	return p->out_width;
}

/* The evaluation set: inputs on the first stage, targets on the last, the
 * same rules as the training data but any number of rows >= 1, padded to
 * whole batches. */
static int load_eval(rt_ctx *c, int needs_targets)
{
	const rt_program *p = c->p;
	rt_dset *ev = &c->eval;
	int rc = 0;
	if (p->first_stage)
		rc = p->ninputs > 0 ? load_inputs(c, ev, p->ninputs, c->o.eval_path, RT_DATA_EVAL_INPUT)
		                    : load_input(c, ev, c->o.eval_input, RT_DATA_EVAL_INPUT);
	if (!rc && needs_targets)
		rc = load_targets(c, ev, c->o.eval_target, RT_DATA_EVAL_TARGET);
	/* One T a run: the step's buffers and the next-token mean are sized by
	 * it (docs/training.md). */
	for (int k = 0; !rc && ev->in && c->in && k < p->ninputs; k++)
		if (p->inputs[k].seq && ev->in[k].data && c->in[k].data &&
		    ev->in[k].cols != c->in[k].cols) {
			rt_defer(c, "%s: evaluation sequences of %lld tokens, but the training data's are "
			         "%lld: an evaluation set has the training sequences' length",
			         ev->in[k].path, (long long)ev->in[k].cols, (long long)c->in[k].cols);
			rc = RT_EXIT_INPUT;
		}
	if (!rc) {
		ev->rows = set_rows(p, ev);
		rc = pad_set(c, ev, (ev->rows + p->batch - 1) / p->batch * p->batch);
	}
	return rc;
}

int rt_data_load(rt_ctx *c)
{
	const rt_program *p = c->p;
	/* A next-token loss takes its targets from the ids. */
	int needs_targets = p->last_stage && p->loss != RT_LOSS_NONE &&
	                    p->loss != RT_LOSS_NEXT_TOKEN;
	rt_dset ds;
	int rc = 0;

	memset(&ds, 0, sizeof ds);
	c->perm_epoch[0] = c->perm_epoch[1] = -1;
	if (p->batch <= 0 || p->M <= 0 || p->R <= 0 || p->mb_rows * p->M * p->R != p->batch) {
		rt_defer(c, "inconsistent program: batch %lld, %d replicas, %d micro-batches of %lld rows",
		         (long long)p->batch, p->R, p->M, (long long)p->mb_rows);
		return RT_EXIT_RUNTIME;
	}
	/* An inference run given a file scores every row of it. */
	c->over_file = p->optim == RT_OPTIM_NONE && p->gen_tokens == 0 && c->o.input != NULL;
	/* Synthetic targets are computed from the features, so the last stage
	 * needs the input too when no targets are given. */
	if (p->ninputs > 0 && (p->first_stage || (needs_targets && !c->o.target)))
		rc = load_inputs(c, &ds, p->first_stage ? p->ninputs : 1, c->o.in_path, RT_DATA_INPUT);
	else if (p->first_stage || (needs_targets && !c->o.target))
		rc = c->o.input ? load_input(c, &ds, c->o.input, RT_DATA_INPUT) : synth_input(c, &ds);
	if (!rc && needs_targets && c->o.target)
		rc = load_targets(c, &ds, c->o.target, RT_DATA_TARGET);
	c->rows = set_rows(p, &ds);
	if (!rc && c->over_file)
		rc = pad_set(c, &ds, (c->rows + p->batch - 1) / p->batch * p->batch);
	c->x = ds.x;
	c->x_rows = ds.x_rows;
	c->in = ds.in;
	c->tc = ds.tc;
	c->td = ds.td;
	c->t_rows = ds.t_rows;
	if (!rc && needs_targets && !c->o.target)
		rc = synth_targets(c);
	if (!rc && c->o.eval_input && p->loss != RT_LOSS_NONE)
		rc = load_eval(c, needs_targets);
	/* A 16-bit program computes on its f32 inputs' 16-bit values
	 * (docs/precision.md); synthetic targets came from the f32 ones, so
	 * every dtype trains toward the same targets. */
	for (int e = 0; !rc && e < 2 && p->precision != RT_PREC_F32; e++) {
		rt_dset *s = e ? &c->eval : NULL;
		float *x = e ? s->x : c->x;
		rt_indata *in = e ? s->in : c->in;
		if (p->ninputs == 0 && x)
			rt_round_host(p->precision, x, (e ? s->x_rows : c->x_rows) * p->in_width);
		for (int k = 0; k < p->ninputs && in; k++)
			if (p->inputs[k].dtype == RT_DT_F32 && in[k].data)
				rt_round_host(p->precision, in[k].data, in[k].rows * in[k].cols);
	}
	/* An inference run over a file sizes its output once N is known
	 * (rt_data_share). */
	if (!rc && p->last_stage && c->o.output && !c->over_file) {
		c->out = rt_alloc((size_t)(p->batch / p->R * p->out_width) * sizeof *c->out);
		c->out_seen = rt_alloc((size_t)p->M);
		if (!c->out || !c->out_seen)
			rc = RT_EXIT_RUNTIME;
	}
	if (rc == RT_EXIT_RUNTIME)
		rt_defer(c, "out of memory loading the data");
	return rc;
}

/* Rows of micro-batch mb of this replica that hold data (pipert.h). */
int64_t rt_rows_valid(rt_ctx *c, int mb)
{
	const rt_program *p = c->p;
	int64_t n = c->evaluating ? c->eval.rows : c->over_file ? c->rows : -1, q0, v;
	if (n < 0)
		return p->mb_rows;
	q0 = (c->evaluating ? c->eval_batch : c->step) * p->batch +
	     p->replica * (p->batch / p->R) + (int64_t)mb * p->mb_rows;
	v = n - q0;
	return v < 0 ? 0 : v > p->mb_rows ? p->mb_rows : v;
}

rt_dset rt_data_set(rt_ctx *c)
{
	rt_dset d;
	if (c->evaluating)
		return c->eval;
	memset(&d, 0, sizeof d);
	d.x = c->x;
	d.x_rows = c->x_rows;
	d.in = c->in;
	d.tc = c->tc;
	d.td = c->td;
	d.t_rows = c->t_rows;
	d.rows = c->rows;
	return d;
}

#ifndef RT_CUDA
/* The step's data, in place.  (libpipert_cuda.a copies each step's rows to
 * device buffers: cuda/rt_dev_cuda.cu.) */

/* Micro-batch mb's rows of one array of the current set (`have` rows of
 * row_bytes): a pointer into it, or, shuffled, into staging buffer `a` of
 * the micro-batch, where they are gathered (kernels read contiguous rows). */
static const void *mb_data(rt_ctx *c, int a, const void *base, int64_t have, size_t row_bytes,
                           int mb, const char *what)
{
	const rt_program *p = c->p;
	int64_t s = c->evaluating ? c->eval_batch : c->step, i0, r;
	int narr = (p->ninputs > 0 ? p->ninputs : 1) + 1, slot;
	if (mb < 0 || mb >= p->M)
		rt_die(c, RT_EXIT_RUNTIME, "%s: micro-batch %d outside 0..%d", what, mb, p->M - 1);
	if (!base || have <= 0)
		rt_die(c, RT_EXIT_RUNTIME, "%s: this rank holds no such data", what);
	i0 = p->replica * (p->batch / p->R) + (int64_t)mb * p->mb_rows;
	if (c->evaluating || c->over_file || !c->o.shuffle) {
		r = rt_data_row(c, s, i0);
		if (r < 0 || r + p->mb_rows > have)
			rt_die(c, RT_EXIT_RUNTIME, "%s: rows %lld.. of step %lld lie beyond the data's %lld",
			       what, (long long)r, (long long)s + 1, (long long)have);
		return (const char *)base + r * (int64_t)row_bytes;
	}
	slot = a * p->M + mb;
	if (!c->stage) {
		c->stage = calloc((size_t)(narr * p->M), sizeof *c->stage);
		c->stage_step = malloc((size_t)(narr * p->M) * sizeof *c->stage_step);
		if (!c->stage || !c->stage_step)
			rt_die(c, RT_EXIT_RUNTIME, "out of memory shuffling the data");
		for (int i = 0; i < narr * p->M; i++)
			c->stage_step[i] = -1;
	}
	if (!c->stage[slot] && !(c->stage[slot] = rt_alloc((size_t)p->mb_rows * row_bytes)))
		rt_die(c, RT_EXIT_RUNTIME, "out of memory shuffling the data");
	if (c->stage_step[slot] != s) {
		for (int64_t i = 0; i < p->mb_rows; i++) {
			r = rt_data_row(c, s, i0 + i);
			if (r < 0 || r >= have)
				rt_die(c, RT_EXIT_RUNTIME, "%s: row %lld lies beyond the data's %lld", what,
				       (long long)r, (long long)have);
			memcpy((char *)c->stage[slot] + i * (int64_t)row_bytes,
			       (const char *)base + r * (int64_t)row_bytes, row_bytes);
		}
		c->stage_step[slot] = s;
	}
	return c->stage[slot];
}

const void *rt_data(rt_ctx *c, int k, int mb)
{
	const rt_program *p = c->p;
	rt_dset d;
	const rt_indata *in;
	if (p->ninputs == 0 && k == 0)
		return rt_input(c, mb);
	if (k < 0 || k >= p->ninputs)
		rt_die(c, RT_EXIT_RUNTIME, "rt_data: input %d outside 0..%d", k, p->ninputs - 1);
	d = rt_data_set(c);
	in = d.in ? &d.in[k] : NULL;
	/* Both types are 4 bytes: rows are cols * 4 bytes apart. */
	return mb_data(c, k, in ? in->data : NULL, in ? in->rows : 0, in ? (size_t)in->cols * 4 : 0,
	               mb, "rt_data");
}

const float *rt_input(rt_ctx *c, int mb)
{
	rt_dset d;
	if (c->p->ninputs > 0) {
		if (c->p->inputs[0].dtype != RT_DT_F32)
			rt_die(c, RT_EXIT_RUNTIME, "rt_input: input '%s' is int32 (use rt_data)",
			       c->p->inputs[0].name);
		return rt_data(c, 0, mb);
	}
	d = rt_data_set(c);
	return mb_data(c, 0, d.x, d.x_rows, (size_t)c->p->in_width * sizeof(float), mb, "rt_input");
}

/* Targets are the array after the inputs. */
static int target_array(const rt_program *p)
{
	return p->ninputs > 0 ? p->ninputs : 1;
}

const int32_t *rt_target_class(rt_ctx *c, int mb)
{
	rt_dset d = rt_data_set(c);
	return mb_data(c, target_array(c->p), d.tc, d.t_rows, sizeof(int32_t), mb,
	               "rt_target_class");
}

const float *rt_target_dense(rt_ctx *c, int mb)
{
	rt_dset d = rt_data_set(c);
	return mb_data(c, target_array(c->p), d.td, d.t_rows,
	               (size_t)c->p->target_width * sizeof(float), mb, "rt_target_dense");
}

void rt_output(rt_ctx *c, int mb, const float *y)
{
	const rt_program *p = c->p;
	int64_t n = p->mb_rows * rt_out_row_floats(c);
	if (!c->out || c->evaluating || mb < 0 || mb >= p->M)
		return;
	if (c->over_file) {
		/* Every step's rows: step s's at s·(B/R) rows of this replica. */
		if (c->step < 0 || c->step >= c->nbatches)
			return;
		memcpy(c->out + ((int64_t)c->step * p->M + mb) * n, y, (size_t)n * sizeof *y);
		c->out_seen[mb] = 1;
		return;
	}
	/* Only the last step's outputs are written: copy nothing before it. */
	if (c->step != c->step0 + c->o.steps - 1)
		return;
	memcpy(c->out + mb * n, y, (size_t)n * sizeof *y);
	c->out_seen[mb] = 1;
}
#endif

void rt_loss_add(rt_ctx *c, double sum)
{
	c->loss_sum += sum;
}

void rt_data_free(rt_ctx *c)
{
	const rt_program *p = c->p;
	rt_dset train;
	memset(&train, 0, sizeof train);
	train.x = c->x;
	train.in = c->in;
	train.tc = c->tc;
	train.td = c->td;
	free_set(p, &train);
	free_set(p, &c->eval);
	c->in = NULL;
	c->x = c->td = NULL;
	c->tc = NULL;
	rt_free(c->out);
	rt_free(c->out_seen);
	c->out = NULL;
	c->out_seen = NULL;
	for (int i = 0; i < 2; i++) {
		rt_free(c->perm[i]);
		c->perm[i] = NULL;
	}
	if (c->stage) {
		int n = ((p->ninputs > 0 ? p->ninputs : 1) + 1) * p->M;
		for (int i = 0; i < n; i++)
			rt_free(c->stage[i]);
	}
	free(c->stage);
	free(c->stage_step);
	c->stage = NULL;
	c->stage_step = NULL;
}

/* The output's shape for n rows of `row` floats: [n, T, per position] for
 * a per-position output, [n, declared dims...] (docs/training.md), else
 * [n, row]. */
static int out_shape(const rt_ctx *c, int64_t n, int64_t row, int64_t *dims)
{
	const rt_program *p = c->p;
	int64_t prod = 1;
	dims[0] = n;
	if (p->out_seq && p->seq_max > 0 && c->seq_len > 0) {
		dims[1] = c->seq_len;
		dims[2] = row / c->seq_len;
		return 3;
	}
	for (int i = 0; p->out_dims && i < p->out_ndim; i++)
		prod *= p->out_dims[i];
	if (p->out_dims && p->out_ndim > 1 && p->out_ndim < 8 && prod == row) {
		memcpy(dims + 1, p->out_dims, (size_t)p->out_ndim * sizeof *dims);
		return 1 + p->out_ndim;
	}
	dims[1] = row;
	return 2;
}

int rt_data_write_output(rt_ctx *c)
{
	const rt_program *p = c->p;
	int64_t row = rt_out_row_floats(c), rrows = p->batch / p->R;
	int64_t steps = c->over_file ? c->nbatches : 1, per = steps * rrows * row;
	float *all = NULL, *rows_out = NULL;
	int rank_in = 0, size = 1, rc = 0;
	MPI_Request r;
	if (!c->o.output || !p->last_stage || c->last == MPI_COMM_NULL)
		return 0;
	MPI_Comm_rank(c->last, &rank_in);
	MPI_Comm_size(c->last, &size);
	for (int mb = 0; mb < p->M; mb++)
		if (!c->out_seen[mb]) {
			rt_msg(c->rank, "note: no output was kept for micro-batch %d; its rows are zero", mb);
			break;
		}
	if (per * size > INT_MAX) {
		rt_msg(c->rank, "%s: the output is too large to gather", c->o.output);
		return RT_EXIT_RUNTIME;
	}
	if (rank_in == 0 && !(all = rt_alloc((size_t)(per * size) * sizeof *all)))
		rt_die(c, RT_EXIT_RUNTIME, "out of memory gathering the output");
	/* Replicas in rank order are replicas in batch order. */
	MPI_Igather(c->out, (int)per, MPI_FLOAT, all, (int)per, MPI_FLOAT, 0, c->last, &r);
	rt_wait_req(c, &r, "the output gather", "last-stage ranks");
	if (rank_in == 0 && all) {
		char err[512];
		int64_t dims[9], n = c->over_file ? c->rows : p->batch;
		const float *src = all;
		int ndim = out_shape(c, n, row, dims);
		if (c->over_file) {
			/* Replica j's step s rows are the batch's rows j·B/R ..: in
			 * file order, the padding past N left out. */
			if (!(rows_out = rt_alloc((size_t)(n * row) * sizeof *rows_out)))
				rt_die(c, RT_EXIT_RUNTIME, "out of memory ordering the output");
			for (int64_t s = 0; s < steps; s++)
				for (int j = 0; j < size; j++)
					for (int64_t i = 0; i < rrows; i++) {
						int64_t q = s * p->batch + j * rrows + i;
						if (q < n)
							memcpy(rows_out + q * row, all + j * per + (s * rrows + i) * row,
							       (size_t)row * sizeof *all);
					}
			src = rows_out;
		}
		if (rt_npy_write_f32(c->o.output, src, ndim, dims, err, sizeof err) != 0) {
			rt_msg(c->rank, "%s", err);
			rc = RT_EXIT_INPUT;
		}
	}
	rt_free(rows_out);
	rt_free(all);
	return rc;
}
