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

/* z = x·Pᵀ/sqrt(in) for a fixed N(0, 1) matrix P [width, in]: the shared
 * ingredient of both synthetic target kinds. */
static float *synth_projection(rt_ctx *c, int64_t width)
{
	const rt_program *p = c->p;
	uint64_t stream = rt_hash_name("pipec.synthetic.projection");
	float *pm = rt_alloc((size_t)(width * p->in_width) * sizeof *pm);
	float *z = rt_alloc((size_t)(c->x_rows * width) * sizeof *z);
	if (!pm || !z) {
		rt_free(pm);
		rt_free(z);
		return NULL;
	}
	for (int64_t i = 0; i < width * p->in_width; i++)
		pm[i] = (float)rt_normal_at(p->seed, stream, (uint64_t)i);
	rt_host_linear_fwd(c->x, pm, NULL, z, c->x_rows, p->in_width, width);
	for (int64_t i = 0; i < c->x_rows * width; i++)
		z[i] /= sqrtf((float)p->in_width);
	rt_free(pm);
	return z;
}

static int synth_targets(rt_ctx *c)
{
	const rt_program *p = c->p;
	int64_t w = p->target_dtype == RT_DT_I32 ? p->out_width : p->target_width;
	float *z = synth_projection(c, w);
	if (!z)
		return RT_EXIT_RUNTIME;
	c->t_rows = c->x_rows;
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
	if (c->x)
		want = c->x_rows;
	else if (rt_npy_probe(input_path(c->o.input), &in, err, sizeof err) == 0 && in.ndim >= 1)
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

int rt_data_load(rt_ctx *c)
{
	const rt_program *p = c->p;
	int needs_targets = p->last_stage && p->loss != RT_LOSS_NONE;
	int rc = 0;

	if (p->batch <= 0 || p->M <= 0 || p->R <= 0 || p->mb_rows * p->M * p->R != p->batch) {
		rt_defer(c, "inconsistent program: batch %lld, %d replicas, %d micro-batches of %lld rows",
		         (long long)p->batch, p->R, p->M, (long long)p->mb_rows);
		return RT_EXIT_RUNTIME;
	}
	/* Synthetic targets are computed from the features, so the last stage
	 * needs the input too when no targets are given. */
	if (p->first_stage || (needs_targets && !c->o.target))
		rc = c->o.input ? load_input(c) : synth_input(c);
	if (!rc && needs_targets)
		rc = c->o.target ? load_targets(c) : synth_targets(c);
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

const float *rt_input(rt_ctx *c, int mb)
{
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
	int64_t n = p->mb_rows * p->out_width;
	/* Only the last step's outputs are written: copy nothing before it. */
	if (!c->out || c->step != c->o.steps - 1 || mb < 0 || mb >= p->M)
		return;
	memcpy(c->out + mb * n, y, (size_t)n * sizeof *y);
	c->out_seen[mb] = 1;
}
#endif

void rt_loss_add(rt_ctx *c, double sum)
{
	c->loss_sum += sum;
}

int rt_data_write_output(rt_ctx *c)
{
	const rt_program *p = c->p;
	int64_t per = p->batch / p->R * p->out_width;
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
		int64_t dims[2] = { p->batch, p->out_width };
		if (rt_npy_write_f32(c->o.output, all, 2, dims, err, sizeof err) != 0) {
			rt_msg(c->rank, "%s", err);
			rc = RT_EXIT_INPUT;
		}
	}
	rt_free(all);
	return rc;
}
