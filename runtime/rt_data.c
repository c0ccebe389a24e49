/* rt_data.c — inputs, targets, synthetic data and --output.
 *
 * Files are read whole and converted to float32 / int32 once, before the
 * step loop; rt_input and friends then return pointers into them, so the
 * step loop copies nothing.  Step n uses batch n mod k of a k-batch file;
 * replica j takes rows [j·B/R, (j+1)·B/R) of it, micro-batch m the m-th
 * mb_rows of those.
 *
 * Synthetic data (no --input) is k = 4 batches of N(0, 1) features drawn
 * from (seed, element); its targets are a fixed function of the features —
 * the argmax of a fixed random projection (classes) or tanh of one (MSE) —
 * so the task is learnable and the loss falls when the model trains.
 *
 * A program with `inputs` (docs/transformers.md) has one file per input
 * (--input NAME=FILE.npy): float features [k·B, width], or int32 sequences
 * [k·B, T] with 1 <= T <= width, the same T and rows for every sequence
 * input of a run, every value checked against the input's limit before the
 * first step, each error naming file, row, column and value.  Only the
 * ranks of the first stage read them; rt_data_share tells every rank T.
 * Synthetic sequences are T = seq_max positions: token ids uniform below
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

/* Rows of a [rows, width] file (or [rows] when width is 1), checked
 * against the program: -1 after a message. */
static int64_t check_rows(rt_ctx *c, const char *path, const char *what, const rt_npy *a,
                          int64_t width, int64_t want_rows)
{
	const rt_program *p = c->p;
	char got[160];
	int ok = (a->ndim == 2 && a->dims[1] == width) || (a->ndim == 1 && width == 1);
	int64_t rows = a->ndim ? a->dims[0] : 0;
	shape_str(got, sizeof got, a);
	if (!ok || rows < p->batch || rows % p->batch) {
		if (width == 1)
			rt_defer(c, "%s: %s of shape [k*%lld] or [k*%lld, 1] (k >= 1 batches of %lld rows) "
			         "expected, found %s", path, what, (long long)p->batch,
			         (long long)p->batch, (long long)p->batch, got);
		else
			rt_defer(c, "%s: %s of shape [k*%lld, %lld] (k >= 1 batches of %lld rows) expected, "
			         "found %s", path, what, (long long)p->batch, (long long)width,
			         (long long)p->batch, got);
		return -1;
	}
	if (want_rows >= 0 && rows != want_rows) {
		rt_defer(c, "%s: %lld rows, but the input has %lld (targets are row for row)",
		         path, (long long)rows, (long long)want_rows);
		return -1;
	}
	return rows;
}

static int load_input(rt_ctx *c)
{
	const rt_program *p = c->p;
	const char *path = input_path(c->o.input);
	char err[512];
	rt_npy a;
	if (rt_npy_read(path, &a, err, sizeof err) != 0) {
		rt_defer(c, "%s", err);
		return RT_EXIT_INPUT;
	}
	c->x_rows = check_rows(c, path, "input", &a, p->in_width, -1);
	if (c->x_rows < 0 || !(c->x = rt_npy_as_f32(&a, err, sizeof err))) {
		if (c->x_rows >= 0)
			rt_defer(c, "%s: %s", path, err);
		rt_free(a.data);
		return RT_EXIT_INPUT;
	}
	rt_free(a.data);
	return 0;
}

static int synth_input(rt_ctx *c)
{
	const rt_program *p = c->p;
	uint64_t stream = rt_hash_name("pipec.synthetic.input");
	int64_t n;
	c->x_rows = SYNTH_BATCHES * p->batch;
	n = c->x_rows * p->in_width;
	if (!(c->x = rt_alloc((size_t)n * sizeof *c->x)))
		return RT_EXIT_RUNTIME;
	for (int64_t i = 0; i < n; i++)
		c->x[i] = (float)rt_normal_at(p->seed, stream, (uint64_t)i);
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

static int load_targets(rt_ctx *c)
{
	const rt_program *p = c->p;
	const char *path = c->o.target;
	char err[512];
	rt_npy a, in;
	int64_t want = -1;
	int classes = p->target_dtype == RT_DT_I32;

	/* The input's row count, from its header when this rank holds no input. */
	if (p->ninputs > 0 && c->in && c->in[0].data)
		want = c->in[0].rows;
	else if (p->ninputs == 0 && c->x)
		want = c->x_rows;
	else if (rt_npy_probe(p->ninputs > 0 ? c->o.in_path[0] : input_path(c->o.input), &in,
	                      err, sizeof err) == 0 && in.ndim >= 1)
		want = in.dims[0];
	if (rt_npy_read(path, &a, err, sizeof err) != 0) {
		rt_defer(c, "%s", err);
		return RT_EXIT_INPUT;
	}
	c->t_rows = check_rows(c, path, "targets", &a, classes ? 1 : p->target_width, want);
	if (c->t_rows < 0)
		goto bad;
	if (classes) {
		if (!(c->tc = rt_npy_as_i32(&a, err, sizeof err))) {
			rt_defer(c, "%s: class ids: %s", path, err);
			goto bad;
		}
		for (int64_t r = 0; r < c->t_rows; r++)
			if (c->tc[r] < 0 || c->tc[r] >= p->out_width) {
				rt_defer(c, "%s: row %lld: class %d outside 0..%lld", path,
				         (long long)r, c->tc[r], (long long)p->out_width - 1);
				goto bad;
			}
	} else if (!(c->td = rt_npy_as_f32(&a, err, sizeof err))) {
		rt_defer(c, "%s: %s", path, err);
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

static int synth_one(rt_ctx *c, int k)
{
	const rt_program *p = c->p;
	const rt_input_desc *d = &p->inputs[k];
	rt_indata *in = &c->in[k];
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
	if (a->type != RT_NPY_I32 && a->type != RT_NPY_I64) {
		rt_defer(c, "%s: %ss are integers (int32 or int64), found %s data", path,
		         d->what ? d->what : "value", a->type == RT_NPY_F32 ? "float32" : "float64");
		return NULL;
	}
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
		if (d->limit > 0 && (x < 0 || x >= d->limit)) {
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
static int load_one(rt_ctx *c, int k)
{
	const rt_program *p = c->p;
	const rt_input_desc *d = &p->inputs[k];
	rt_indata *in = &c->in[k];
	const char *path = c->o.in_path[k];
	char err[512], got[160];
	rt_npy a;
	int64_t rows;
	in->path = path;
	if (rt_npy_read(path, &a, err, sizeof err) != 0) {
		rt_defer(c, "%s", err);
		return RT_EXIT_INPUT;
	}
	shape_str(got, sizeof got, &a);
	rows = a.ndim ? a.dims[0] : 0;
	if (d->seq) {
		if (a.ndim != 2 || rows < p->batch || rows % p->batch || a.dims[1] < 1) {
			rt_defer(c, "%s: input '%s' is sequences of shape [k*%lld, T] (k >= 1 batches of "
			         "%lld rows, 1 <= T <= %lld), found %s", path, d->name, (long long)p->batch,
			         (long long)p->batch, (long long)d->width, got);
			goto bad;
		}
		if (a.dims[1] > d->width) {
			rt_defer(c, "%s: a sequence of %lld tokens is longer than the model's %lld", path,
			         (long long)a.dims[1], (long long)d->width);
			goto bad;
		}
		in->cols = a.dims[1];
	} else {
		in->cols = d->width;
		if ((in->rows = check_rows(c, path, "input", &a, d->width, -1)) < 0)
			goto bad;
	}
	in->rows = rows;
	if (d->dtype == RT_DT_I32)
		in->data = as_checked_i32(c, path, d, &a, in->rows, in->cols);
	else if (!(in->data = rt_npy_as_f32(&a, err, sizeof err)))
		rt_defer(c, "%s: %s", path, err);
	rt_free(a.data);
	return in->data ? 0 : RT_EXIT_INPUT;
bad:
	rt_free(a.data);
	return RT_EXIT_INPUT;
}

static const char *in_name(const rt_indata *in)
{
	return in->path ? in->path : "the synthetic data";
}

/* The inputs of one run belong together: the same rows (step n takes the
 * same batch of each), and sequences of one length T. */
static int check_together(rt_ctx *c, int n)
{
	const rt_program *p = c->p;
	int ref = -1, seq_ref = -1;
	for (int k = 0; k < n; k++) {
		const rt_input_desc *d = &p->inputs[k];
		const rt_indata *in = &c->in[k];
		if (!in->data)
			continue;
		if (d->seq && seq_ref >= 0 &&
		    (in->rows != c->in[seq_ref].rows || in->cols != c->in[seq_ref].cols)) {
			const rt_indata *r = &c->in[seq_ref];
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
		if (ref >= 0 && in->rows != c->in[ref].rows) {
			rt_defer(c, "%s has %lld rows, but %s has %lld: the inputs are row for row",
			         in_name(in), (long long)in->rows, in_name(&c->in[ref]),
			         (long long)c->in[ref].rows);
			return RT_EXIT_INPUT;
		}
		if (ref < 0)
			ref = k;
		if (d->seq && seq_ref < 0) {
			seq_ref = k;
			/* Position t is scored against the token at t + 1. */
			if (p->loss == RT_LOSS_NEXT_TOKEN && in->cols < 2) {
				rt_defer(c, "%s: next-token training needs sequences of at least 2 tokens, "
				         "found %lld", in_name(in), (long long)in->cols);
				return RT_EXIT_INPUT;
			}
		}
	}
	return 0;
}

/* The inputs of a program with `inputs`: all of them on the first stage,
 * the first one only on a last stage that synthesises targets from it. */
static int load_inputs(rt_ctx *c)
{
	const rt_program *p = c->p;
	int n = p->first_stage ? p->ninputs : 1, rc = 0;
	if (!(c->in = calloc((size_t)p->ninputs, sizeof *c->in)))
		return RT_EXIT_RUNTIME;
	for (int k = 0; k < n && !rc; k++)
		rc = c->o.in_path ? load_one(c, k) : synth_one(c, k);
	return rc ? rc : check_together(c, n);
}

void rt_data_share(rt_ctx *c)
{
	const rt_program *p = c->p;
	long long mine = 0, all = 0;
	if (p->seq_max <= 0) {
		c->seq_len = 0;
		return;
	}
	for (int k = 0; c->in && k < p->ninputs; k++)
		if (p->inputs[k].seq && c->in[k].data && c->in[k].cols > mine)
			mine = c->in[k].cols;
	/* Every rank agreed that the data loaded, so every rank is here; the
	 * ranks without data contribute 0. */
	if (MPI_Allreduce(&mine, &all, 1, MPI_LONG_LONG, MPI_MAX, c->comm) != MPI_SUCCESS)
		rt_die(c, RT_EXIT_RUNTIME, "cannot share the sequence length");
	/* No sequence input (a model with seq_max but float inputs): the
	 * declared length. */
	c->seq_len = all > 0 ? all : p->seq_max;
}

int64_t rt_seq_len(rt_ctx *c)
{
	if (c->p->gen_tokens > 0 && c->gen_round > 0)
		return 1;       /* a decode round: one new position */
	return c->seq_len;
}

int64_t rt_out_row_floats(const rt_ctx *c)
{
	const rt_program *p = c->p;
	if (p->out_seq && p->seq_max > 0)
		return p->out_width / p->seq_max * c->seq_len;
	return p->out_width;
}

int rt_data_load(rt_ctx *c)
{
	const rt_program *p = c->p;
	/* A next-token loss takes its targets from the ids. */
	int needs_targets = p->last_stage && p->loss != RT_LOSS_NONE &&
	                    p->loss != RT_LOSS_NEXT_TOKEN;
	int rc = 0;

	if (p->batch <= 0 || p->M <= 0 || p->R <= 0 || p->mb_rows * p->M * p->R != p->batch) {
		rt_defer(c, "inconsistent program: batch %lld, %d replicas, %d micro-batches of %lld rows",
		         (long long)p->batch, p->R, p->M, (long long)p->mb_rows);
		return RT_EXIT_RUNTIME;
	}
	/* Synthetic targets are computed from the features, so the last stage
	 * needs the input too when no targets are given. */
	if (p->ninputs > 0 && (p->first_stage || (needs_targets && !c->o.target)))
		rc = load_inputs(c);
	else if (p->first_stage || (needs_targets && !c->o.target))
		rc = c->o.input ? load_input(c) : synth_input(c);
	if (!rc && needs_targets)
		rc = c->o.target ? load_targets(c) : synth_targets(c);
	/* A 16-bit program computes on its f32 inputs' 16-bit values
	 * (docs/precision.md); synthetic targets came from the f32 ones, so
	 * every dtype trains toward the same targets. */
	if (!rc && p->precision != RT_PREC_F32) {
		if (p->ninputs == 0 && c->x)
			rt_round_host(p->precision, c->x, c->x_rows * p->in_width);
		for (int k = 0; k < p->ninputs && c->in; k++)
			if (p->inputs[k].dtype == RT_DT_F32 && c->in[k].data)
				rt_round_host(p->precision, c->in[k].data, c->in[k].rows * c->in[k].cols);
	}
	if (!rc && p->last_stage && c->o.output) {
		c->out = rt_alloc((size_t)(p->batch / p->R * p->out_width) * sizeof *c->out);
		c->out_seen = rt_alloc((size_t)p->M);
		if (!c->out || !c->out_seen)
			rc = RT_EXIT_RUNTIME;
	}
	if (rc == RT_EXIT_RUNTIME)
		rt_defer(c, "out of memory loading the data");
	return rc;
}

#ifndef RT_CUDA
/* The step's data, in place.  (libpipert_cuda.a copies each step's rows to
 * device buffers: cuda/rt_dev_cuda.cu.) */

/* Row of micro-batch mb of the current step within a k-batch array. */
static int64_t row_of(rt_ctx *c, int mb, int64_t rows, const char *what)
{
	const rt_program *p = c->p;
	int64_t k;
	if (mb < 0 || mb >= p->M)
		rt_die(c, RT_EXIT_RUNTIME, "%s: micro-batch %d outside 0..%d", what, mb, p->M - 1);
	if (rows <= 0)
		rt_die(c, RT_EXIT_RUNTIME, "%s: this rank holds no such data", what);
	k = rows / p->batch;
	return (c->step % k) * p->batch + p->replica * (p->batch / p->R) + mb * p->mb_rows;
}

const void *rt_data(rt_ctx *c, int k, int mb)
{
	const rt_program *p = c->p;
	const rt_indata *in;
	int64_t r;
	if (p->ninputs == 0 && k == 0)
		return rt_input(c, mb);
	if (k < 0 || k >= p->ninputs)
		rt_die(c, RT_EXIT_RUNTIME, "rt_data: input %d outside 0..%d", k, p->ninputs - 1);
	in = c->in ? &c->in[k] : NULL;
	r = row_of(c, mb, in && in->data ? in->rows : 0, "rt_data");    /* dies without data */
	/* Both types are 4 bytes: rows are cols * 4 bytes apart. */
	return (const char *)in->data + r * in->cols * 4;
}

const float *rt_input(rt_ctx *c, int mb)
{
	if (c->p->ninputs > 0) {
		if (c->p->inputs[0].dtype != RT_DT_F32)
			rt_die(c, RT_EXIT_RUNTIME, "rt_input: input '%s' is int32 (use rt_data)",
			       c->p->inputs[0].name);
		return rt_data(c, 0, mb);
	}
	return c->x + row_of(c, mb, c->x ? c->x_rows : 0, "rt_input") * c->p->in_width;
}

const int32_t *rt_target_class(rt_ctx *c, int mb)
{
	return c->tc + row_of(c, mb, c->tc ? c->t_rows : 0, "rt_target_class");
}

const float *rt_target_dense(rt_ctx *c, int mb)
{
	return c->td + row_of(c, mb, c->td ? c->t_rows : 0, "rt_target_dense") * c->p->target_width;
}

void rt_output(rt_ctx *c, int mb, const float *y)
{
	const rt_program *p = c->p;
	int64_t n = p->mb_rows * rt_out_row_floats(c);
	/* Only the last step's outputs are written: copy nothing before it. */
	if (!c->out || c->step != c->step0 + c->o.steps - 1 || mb < 0 || mb >= p->M)
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
	for (int k = 0; c->in && k < c->p->ninputs; k++)
		rt_free(c->in[k].data);
	free(c->in);
	c->in = NULL;
	rt_free(c->x);
	rt_free(c->tc);
	rt_free(c->td);
	rt_free(c->out);
	rt_free(c->out_seen);
	c->x = c->td = c->out = NULL;
	c->tc = NULL;
	c->out_seen = NULL;
}

int rt_data_write_output(rt_ctx *c)
{
	const rt_program *p = c->p;
	int64_t row = rt_out_row_floats(c), per = p->batch / p->R * row;
	float *all = NULL;
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
		int64_t dims[3] = { p->batch, row, 0 };
		int ndim = 2;
		if (p->out_seq && p->seq_max > 0 && c->seq_len > 0) {
			/* Per position: [B, T, features of a position]. */
			dims[1] = c->seq_len;
			dims[2] = row / c->seq_len;
			ndim = 3;
		}
		if (rt_npy_write_f32(c->o.output, all, ndim, dims, err, sizeof err) != 0) {
			rt_msg(c->rank, "%s", err);
			rc = RT_EXIT_INPUT;
		}
	}
	rt_free(all);
	return rc;
}

int64_t rt_rows_valid(rt_ctx *c, int mb)
{
	(void)mb;
	return c->p->mb_rows;
}
