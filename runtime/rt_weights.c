/* rt_weights.c — parameters in and out.
 *
 * --weights-in: every rank opens the same safetensors file and reads only
 * its own tensors, by PyTorch name, straight into the weight buffer.
 * Without it, rt_init_param draws each parameter from (seed, name).
 * --weights-out: the ranks of replica 0 (together they hold every
 * parameter once) send names, shapes and values to rank 0, which writes one
 * file with the tensors sorted by name.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rt_internal.h"

static void dims_str(char *buf, size_t n, int ndim, const int64_t *dims)
{
	size_t o = (size_t)snprintf(buf, n, "[");
	for (int i = 0; i < ndim && o < n; i++)
		o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)dims[i]);
	if (o < n)
		snprintf(buf + o, n - o, "]");
}

static int is_float(const char *dtype)
{
	return !strcmp(dtype, "F32") || !strcmp(dtype, "F16") || !strcmp(dtype, "BF16") ||
	       !strcmp(dtype, "F64");
}

/* Reads this rank's parameters from an open file into w (the weight
 * buffer's host view): 0 or RT_EXIT_INPUT. */
static int read_params(rt_ctx *c, const char *path, rt_st_file *st, const char *suffix,
                       unsigned char *used, float *w)
{
	const rt_program *p = c->p;
	for (int i = 0; i < p->nparams; i++) {
		const rt_param *pa = &p->params[i];
		char want[128], got[128], err[512], name[512];
		const rt_st_tensor *t;
		int same;
		snprintf(name, sizeof name, "%s%s", pa->name, suffix);
		t = rt_st_find(st, name);
		dims_str(want, sizeof want, pa->ndim, pa->dims);
		if (!t) {
			rt_defer(c, "%s: missing tensor '%s' (expected shape %s, F32)", path,
			         name, want);
			return RT_EXIT_INPUT;
		}
		used[t - st->t] = 1;
		dims_str(got, sizeof got, t->ndim, t->dims);
		same = t->ndim == pa->ndim;
		for (int d = 0; same && d < t->ndim; d++)
			same = t->dims[d] == pa->dims[d];
		if (!same) {
			rt_defer(c, "%s: tensor '%s' has shape %s, expected %s", path, name,
			         got, want);
			return RT_EXIT_INPUT;
		}
		/* A checkpoint in another float width loads: F16, BF16 and F64 are
		 * converted to float32 on reading (rt_st_read_f32), as PyTorch's
		 * load_state_dict copies into a float32 model.  An integer or bool
		 * tensor (a buffer such as embeddings.position_ids, I64) bound to a
		 * parameter is a wrong binding, not data to convert. */
		if (!is_float(t->dtype)) {
			rt_defer(c, "%s: tensor '%s' has dtype %s, expected F32 (or F16, BF16, F64, "
			         "converted)", path, name, t->dtype);
			return RT_EXIT_INPUT;
		}
		if (rt_st_read_f32(st, t, w + pa->offset, err, sizeof err) != 0) {
			rt_defer(c, "%s: %s", path, err);
			return RT_EXIT_INPUT;
		}
	}
	return 0;
}

/* The --weights-in file opened by rt_weights_open, until rt_weights_read
 * takes it. */
static rt_st_file pre;
static int pre_open;

int rt_weights_open(rt_ctx *c)
{
	char err[512];
	int rc = rt_st_open(&pre, c->o.weights_in, err, sizeof err) == 0 ? 0 : RT_EXIT_INPUT;
	if (rc) {
		rt_defer(c, "%s", err);
		rt_st_close(&pre);
	}
	pre_open = !rc;
	return rt_agree_report(c, rc);
}

void rt_weights_release(void)
{
	if (pre_open)
		rt_st_close(&pre);
	pre_open = 0;
}

int rt_weights_load(rt_ctx *c)
{
	float *dst = c->w;
	const char *suffix = "";
	return rt_weights_read(c, c->o.weights_in, 1, &suffix, &dst, 1);
}

int rt_weights_read(rt_ctx *c, const char *path, int nbufs, const char *const *suffix,
                    float *const *dst, int note_unused)
{
	rt_st_file st;
	char err[512];
	int rc;
	unsigned char *used = NULL, *all_used = NULL;
	size_t wbytes = (size_t)c->p->nweights * sizeof(float);

	if (pre_open && c->o.weights_in && strcmp(path, c->o.weights_in) == 0) {
		st = pre;           /* rt_weights_open's: every rank opened it */
		pre_open = 0;
		rc = 0;
	} else if ((rc = rt_st_open(&st, path, err, sizeof err) == 0 ? 0 : RT_EXIT_INPUT) != 0) {
		rt_defer(c, "%s", err);
	}
	if ((rc = rt_agree_report(c, rc)) != 0) {
		rt_st_close(&st);
		return rc;
	}
	used = calloc((size_t)st.n + 1, 1);
	all_used = calloc((size_t)st.n + 1, 1);
	rc = used && all_used ? 0 : RT_EXIT_RUNTIME;
	for (int b = 0; !rc && b < nbufs; b++) {
		float *w = rt_dev_map(c, dst[b], wbytes, RT_MAP_WRITE);
		rc = w ? read_params(c, path, &st, suffix[b], used, w) : RT_EXIT_RUNTIME;
		if (w)
			rt_dev_unmap(c, dst[b], w, wbytes, rc ? 0 : RT_MAP_WRITE);
	}
	rc = rt_agree_report(c, rc);
	if (!rc && note_unused) {
		/* Every rank parsed the same header, so the tables line up. */
		MPI_Reduce(used, all_used, st.n, MPI_UNSIGNED_CHAR, MPI_MAX, 0, MPI_COMM_WORLD);
		if (c->rank == 0) {
			int extra = 0;
			char list[512];
			size_t o = 0;
			list[0] = 0;
			for (int i = 0; i < st.n; i++) {
				if (all_used[i])
					continue;
				if (extra++ < 8 && o < sizeof list)
					o += (size_t)snprintf(list + o, sizeof list - o, "%s'%s'",
					                      extra > 1 ? ", " : "", st.t[i].name);
			}
			if (extra)
				rt_msg(-1, "note: %s: %d tensor%s not used by the model: %s%s",
				       path, extra, extra > 1 ? "s" : "", list,
				       extra > 8 ? ", ..." : "");
		}
	}
	free(used);
	free(all_used);
	rt_st_close(&st);
	return rc;
}

void rt_weights_init(rt_ctx *c)
{
	const rt_program *p = c->p;
	size_t wbytes = (size_t)p->nweights * sizeof(float);
	float *w = rt_dev_map(c, c->w, wbytes, RT_MAP_WRITE);
	if (!w)
		rt_die(c, RT_EXIT_RUNTIME, "out of memory initialising the weights");
	for (int i = 0; i < p->nparams; i++)
		rt_init_param(&p->params[i], p->seed, w + p->params[i].offset);
	rt_dev_unmap(c, c->w, w, wbytes, RT_MAP_WRITE);
}

/* ---- --weights-out ---- */

/* A rank's parameter table as bytes: per parameter, the name with its NUL,
 * then ndim, dims[ndim], offset as int64 in host order (all ranks of a job
 * share it). */
static char *pack_table(const rt_program *p, int *len)
{
	size_t n = 0, cap = 64;
	char *b = malloc(cap);
	for (int i = 0; b && i < p->nparams; i++) {
		const rt_param *pa = &p->params[i];
		size_t nl = strlen(pa->name) + 1, need = nl + (size_t)(2 + pa->ndim) * 8;
		int64_t v[6];
		if (n + need > cap) {
			char *nb;
			cap = 2 * (n + need);
			if (!(nb = realloc(b, cap))) {
				free(b);
				return NULL;
			}
			b = nb;
		}
		memcpy(b + n, pa->name, nl);
		n += nl;
		v[0] = pa->ndim;
		for (int d = 0; d < pa->ndim; d++)
			v[1 + d] = pa->dims[d];
		v[1 + pa->ndim] = pa->offset;
		memcpy(b + n, v, (size_t)(2 + pa->ndim) * 8);
		n += (size_t)(2 + pa->ndim) * 8;
	}
	if (n > INT_MAX) {
		free(b);
		return NULL;
	}
	*len = (int)n;
	return b;
}

typedef struct {
	const char *name, *suffix;
	int rank, ndim;
	int64_t dims[4];
	const float *data;
	int buf;                    /* rt_weights_write_shared: the buffer, -1: .step */
	int64_t off;                /* its offset in the rank's buffer, in floats */
	uint64_t at;                /* its byte offset in the file's data section */
} entry;

static int cmp_entry(const void *a, const void *b)
{
	const entry *x = a, *y = b;
	int d = strcmp(x->name, y->name);
	if (!d)
		d = strcmp(x->suffix, y->suffix);
	/* Equal names (a tied weight's copies): the lower rank's first. */
	return d ? d : x->rank - y->rank;
}

/* Rank 0: turn the gathered tables and values (one array per buffer) into
 * sorted, de-duplicated tensors and write them.  step >= 0: every parameter
 * also gets a scalar `<name>.step` (Adam's state, as torch.optim saves it). */
static int write_gathered(rt_ctx *c, const char *path, const char *tab, const int *tlen,
                          const int *tdisp, int nbufs, const char *const *suffix,
                          float *const *vals, const int *vdisp, float *const *own, double step)
{
	int n = 0, cap = 16, rc = RT_EXIT_OK;
	entry *e = malloc((size_t)cap * sizeof *e);
	rt_st_out *out = NULL;
	char **names = NULL;
	float stepv = (float)step;
	char err[512];
	for (int r = 0; e && r < c->nranks; r++) {
		const char *s = tab + tdisp[r], *end = s + tlen[r];
		while (e && s < end) {
			int64_t ndim, off;
			entry x;
			x.name = s;
			x.rank = r;
			s += strlen(s) + 1;
			memcpy(&ndim, s, 8);
			x.ndim = (int)ndim;
			memcpy(x.dims, s + 8, (size_t)ndim * 8);
			memcpy(&off, s + 8 + ndim * 8, 8);
			s += (size_t)(2 + ndim) * 8;
			for (int b = 0; b < nbufs + (step >= 0); b++) {
				entry y = x;
				if (b < nbufs) {
					y.suffix = suffix[b];
					/* rank 0's own values straight from its buffer */
					y.data = r == 0 ? own[b] + off : vals[b] + vdisp[r] + off;
				} else {
					y.suffix = ".step";
					y.ndim = 0;
					y.data = &stepv;
				}
				if (n == cap) {
					entry *ne = realloc(e, (size_t)(cap *= 2) * sizeof *e);
					if (!ne) {
						free(e);
						e = NULL;
						break;
					}
					e = ne;
				}
				e[n++] = y;
			}
		}
	}
	if (!e || !(out = malloc((size_t)(n + 1) * sizeof *out)) ||
	    !(names = calloc((size_t)n + 1, sizeof *names))) {
		free(e);
		free(out);
		rt_msg(c->rank, "out of memory writing %s", path);
		return RT_EXIT_RUNTIME;
	}
	/* A name held twice (a tied weight) is written once, from the lowest
	 * rank: the embedding's stage, under the embedding's name, as
	 * transformers writes tied weights.  The copies are equal (their
	 * gradients are summed before every update, rt_optim_step), and so are
	 * their optimizer buffers. */
	qsort(e, (size_t)n, sizeof *e, cmp_entry);
	{
		int k = 0;
		for (int i = 0; i < n; i++) {
			if (i && !strcmp(e[i - 1].name, e[i].name) && !strcmp(e[i - 1].suffix, e[i].suffix))
				continue;
			if (e[i].suffix[0]) {
				size_t len = strlen(e[i].name) + strlen(e[i].suffix) + 1;
				if (!(names[k] = malloc(len))) {
					rt_msg(c->rank, "out of memory writing %s", path);
					rc = RT_EXIT_RUNTIME;
					break;
				}
				snprintf(names[k], len, "%s%s", e[i].name, e[i].suffix);
			}
			out[k].name = names[k] ? names[k] : e[i].name;
			out[k].ndim = e[i].ndim;
			out[k].dims = e[i].dims;
			out[k].data = e[i].data;
			k++;
		}
		if (!rc && rt_st_write(path, out, k, err, sizeof err) != 0) {
			rt_msg(c->rank, "%s", err);
			rc = RT_EXIT_INPUT;
		}
	}
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(out);
	free(e);
	return rc;
}

int rt_weights_save(rt_ctx *c)
{
	/* 16-bit training: the f32 master weights (docs/precision.md) */
	float *src = c->master ? c->master : c->w;
	const char *suffix = "";
	return rt_weights_write(c, c->o.weights_out, 1, &suffix, &src, -1);
}

int rt_weights_write(rt_ctx *c, const char *path, int nbufs, const char *const *suffix,
                     float *const *src, double step)
{
	const rt_program *p = c->p;
	int mine = p->replica == 0, rc = 0;
	int tl = 0, nw;
	char *tab = mine ? pack_table(p, &tl) : NULL, *alltab = NULL;
	int *tlen = NULL, *tdisp = NULL, *wlen = NULL, *wdisp = NULL;
	float *allw[RT_WBUF_MAX] = { 0 }, *own[RT_WBUF_MAX] = { 0 }, *w;
	size_t own_bytes = (size_t)p->nweights * sizeof(float);
	MPI_Request r;

	if ((mine && !tab) || p->nweights > INT_MAX || nbufs > RT_WBUF_MAX)
		rt_die(c, RT_EXIT_RUNTIME, "cannot pack the parameters for %s", path);
	/* rank 0 writes its own values from its buffers: it sends none */
	nw = mine && c->rank != 0 ? (int)p->nweights : 0;
	if (c->rank == 0) {
		tlen = calloc((size_t)c->nranks, sizeof *tlen);
		tdisp = calloc((size_t)c->nranks, sizeof *tdisp);
		wlen = calloc((size_t)c->nranks, sizeof *wlen);
		wdisp = calloc((size_t)c->nranks, sizeof *wdisp);
		if (!tlen || !tdisp || !wlen || !wdisp)
			rt_die(c, RT_EXIT_RUNTIME, "out of memory gathering the parameters");
	}
	MPI_Igather(&tl, 1, MPI_INT, tlen, 1, MPI_INT, 0, c->comm, &r);
	rt_wait_req(c, &r, "the parameter gather", "all ranks");
	MPI_Igather(&nw, 1, MPI_INT, wlen, 1, MPI_INT, 0, c->comm, &r);
	rt_wait_req(c, &r, "the parameter gather", "all ranks");
	if (c->rank == 0) {
		long long tt = 0, wt = 0;
		for (int i = 0; i < c->nranks; i++) {
			tdisp[i] = (int)tt;
			wdisp[i] = (int)wt;
			tt += tlen[i];
			wt += wlen[i];
		}
		if (tt > INT_MAX || wt > INT_MAX)
			rt_die(c, RT_EXIT_RUNTIME, "the model is too large to gather on one rank");
		alltab = malloc((size_t)tt + 1);
		/* Not zeroed (as rt_alloc would): the gather writes every value,
		 * and a checkpoint's cost is mostly passes over these bytes. */
		for (int b = 0; b < nbufs; b++)
			if (!(allw[b] = malloc((size_t)wt * sizeof(float) + 4)))
				alltab = (free(alltab), NULL);
		if (!alltab)
			rt_die(c, RT_EXIT_RUNTIME, "out of memory gathering the parameters");
	}
	MPI_Igatherv(tab, tl, MPI_CHAR, alltab, tlen, tdisp, MPI_CHAR, 0, c->comm, &r);
	rt_wait_req(c, &r, "the parameter gather", "all ranks");
	for (int b = 0; b < nbufs; b++) {
		if (c->rank == 0) {
			if (!(own[b] = rt_dev_map(c, src[b], own_bytes, RT_MAP_READ)))
				rt_die(c, RT_EXIT_RUNTIME, "out of memory gathering the parameters");
			MPI_Igatherv(NULL, 0, MPI_FLOAT, allw[b], wlen, wdisp, MPI_FLOAT, 0, c->comm, &r);
			rt_wait_req(c, &r, "the parameter gather", "all ranks");
			continue;
		}
		if (!(w = rt_dev_map(c, src[b], (size_t)nw * sizeof(float), RT_MAP_READ)))
			rt_die(c, RT_EXIT_RUNTIME, "out of memory gathering the parameters");
		MPI_Igatherv(w, nw, MPI_FLOAT, allw[b], wlen, wdisp, MPI_FLOAT, 0, c->comm, &r);
		rt_wait_req(c, &r, "the parameter gather", "all ranks");
		rt_dev_unmap(c, src[b], w, (size_t)nw * sizeof(float), RT_MAP_READ);
	}
	if (c->rank == 0) {
		rc = write_gathered(c, path, alltab, tlen, tdisp, nbufs, suffix, allw, wdisp, own, step);
		for (int b = 0; b < nbufs; b++)
			rt_dev_unmap(c, src[b], own[b], own_bytes, RT_MAP_READ);
	}
	free(tab);
	free(alltab);
	for (int b = 0; b < nbufs; b++)
		free(allw[b]);
	free(tlen);
	free(tdisp);
	free(wlen);
	free(wdisp);
	return rc;
}

/* ---- Checkpoints: every rank writes its own tensors ---- */

static void json_name(FILE *f, const char *a, const char *b)
{
	fputc('"', f);
	for (int k = 0; k < 2; k++)
		for (const unsigned char *u = (const unsigned char *)(k ? b : a); *u; u++) {
			if (*u == '"' || *u == '\\')
				fprintf(f, "\\%c", *u);
			else if (*u < 0x20)
				fprintf(f, "\\u%04x", *u);
			else
				fputc(*u, f);
		}
	fputc('"', f);
}

static int pwrite_all(int fd, const void *buf, size_t n, off_t at)
{
	const char *p = buf;
	while (n > 0) {
		ssize_t w = pwrite(fd, p, n, at);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
		at += w;
	}
	return 0;
}

int rt_weights_write_shared(rt_ctx *c, const char *path, int nbufs, const char *const *suffix,
                            float *const *src, double step)
{
	const rt_program *p = c->p;
	int tl = 0, n = 0, cap = 16, k = 0, rc = 0, fd = -1;
	char *tab = p->replica == 0 ? pack_table(p, &tl) : NULL, *alltab = NULL, *h = NULL;
	int *tlen = calloc((size_t)c->nranks, sizeof *tlen);
	int *tdisp = calloc((size_t)c->nranks, sizeof *tdisp);
	entry *e = malloc((size_t)cap * sizeof *e);
	size_t hn = 0, wbytes = (size_t)p->nweights * sizeof(float);
	uint64_t off = 0, data0;
	float stepv = (float)step, *w[RT_WBUF_MAX] = { 0 };
	long long tt = 0;
	FILE *m;
	MPI_Request r;

	if ((p->replica == 0 && !tab) || !tlen || !tdisp || !e || nbufs > RT_WBUF_MAX)
		rt_die(c, RT_EXIT_RUNTIME, "out of memory writing %s", path);
	/* Every rank learns every rank's table, and so the same file layout. */
	MPI_Iallgather(&tl, 1, MPI_INT, tlen, 1, MPI_INT, c->comm, &r);
	rt_wait_req(c, &r, "the parameter tables", "all ranks");
	for (int i = 0; i < c->nranks; i++) {
		tdisp[i] = (int)tt;
		tt += tlen[i];
	}
	if (tt > INT_MAX || !(alltab = malloc((size_t)tt + 1)))
		rt_die(c, RT_EXIT_RUNTIME, "out of memory writing %s", path);
	MPI_Iallgatherv(tab, tl, MPI_CHAR, alltab, tlen, tdisp, MPI_CHAR, c->comm, &r);
	rt_wait_req(c, &r, "the parameter tables", "all ranks");
	for (int rr = 0; rr < c->nranks; rr++) {
		const char *s = alltab + tdisp[rr], *end = s + tlen[rr];
		while (s < end) {
			int64_t ndim, o;
			entry x;
			memset(&x, 0, sizeof x);
			x.name = s;
			x.rank = rr;
			s += strlen(s) + 1;
			memcpy(&ndim, s, 8);
			x.ndim = (int)ndim;
			memcpy(x.dims, s + 8, (size_t)ndim * 8);
			memcpy(&o, s + 8 + ndim * 8, 8);
			s += (size_t)(2 + ndim) * 8;
			x.off = o;
			for (int b = 0; b < nbufs + (step >= 0); b++) {
				entry y = x;
				y.buf = b < nbufs ? b : -1;
				y.suffix = b < nbufs ? suffix[b] : ".step";
				if (b == nbufs)
					y.ndim = 0;
				if (n == cap) {
					entry *ne = realloc(e, (size_t)(cap *= 2) * sizeof *e);
					if (!ne)
						rt_die(c, RT_EXIT_RUNTIME, "out of memory writing %s", path);
					e = ne;
				}
				e[n++] = y;
			}
		}
	}
	/* sorted by name, a tied weight's copies once (the lowest rank's) */
	qsort(e, (size_t)n, sizeof *e, cmp_entry);
	for (int i = 0; i < n; i++)
		if (!i || strcmp(e[i - 1].name, e[i].name) || strcmp(e[i - 1].suffix, e[i].suffix))
			e[k++] = e[i];
	n = k;
	if (!(m = open_memstream(&h, &hn)))
		rt_die(c, RT_EXIT_RUNTIME, "out of memory writing %s", path);
	fputs("{\"__metadata__\":{\"format\":\"pt\"}", m);
	for (int i = 0; i < n; i++) {
		int64_t numel = 1;
		fputc(',', m);
		json_name(m, e[i].name, e[i].suffix);
		fputs(":{\"dtype\":\"F32\",\"shape\":[", m);
		for (int d = 0; d < e[i].ndim; d++) {
			fprintf(m, d ? ",%lld" : "%lld", (long long)e[i].dims[d]);
			numel *= e[i].dims[d];
		}
		fprintf(m, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
		        (unsigned long long)(off + (uint64_t)numel * 4));
		e[i].at = off;
		off += (uint64_t)numel * 4;
	}
	fputc('}', m);
	while (ftell(m) % 8)
		fputc(' ', m);
	if (fclose(m) != 0)
		rt_die(c, RT_EXIT_RUNTIME, "out of memory writing %s", path);
	data0 = 8 + hn;
	/* Rank 0 makes the file its whole size with the header; then each rank
	 * writes its own tensors at their offsets. */
	if (c->rank == 0) {
		unsigned char lenb[8];
		for (int i = 0; i < 8; i++)
			lenb[i] = (unsigned char)((uint64_t)hn >> (8 * i));
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0 || pwrite_all(fd, lenb, 8, 0) || pwrite_all(fd, h, hn, 8) ||
		    ftruncate(fd, (off_t)(data0 + off)) != 0) {
			rt_msg(c->rank, "%s: cannot write: %s", path, strerror(errno));
			rc = RT_EXIT_INPUT;
		}
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	if ((rc = rt_agree(c, rc)) != 0)
		goto out;
	for (int b = 0; b < nbufs; b++)
		if (p->replica == 0 && !(w[b] = rt_dev_map(c, src[b], wbytes, RT_MAP_READ)))
			rt_die(c, RT_EXIT_RUNTIME, "out of memory writing %s", path);
	for (int i = 0; i < n && !rc; i++) {
		int64_t numel = 1;
		const void *from;
		if (e[i].rank != c->rank)
			continue;
		from = e[i].buf < 0 ? (const void *)&stepv : (const void *)(w[e[i].buf] + e[i].off);
		for (int d = 0; d < e[i].ndim; d++)
			numel *= e[i].dims[d];
		if ((fd < 0 && (fd = open(path, O_WRONLY)) < 0) ||
		    pwrite_all(fd, from, (size_t)numel * 4, (off_t)(data0 + e[i].at)) != 0)
			rc = RT_EXIT_INPUT;
	}
	if (!rc && fd >= 0 && fsync(fd) != 0 && errno != EINVAL && errno != EROFS)
		rc = RT_EXIT_INPUT;
	if (rc)
		rt_msg(c->rank, "%s: cannot write: %s", path, strerror(errno));
	if (fd >= 0 && close(fd) != 0 && !rc) {
		rt_msg(c->rank, "%s: cannot write: %s", path, strerror(errno));
		rc = RT_EXIT_INPUT;
	}
	for (int b = 0; b < nbufs; b++)
		if (w[b])
			rt_dev_unmap(c, src[b], w[b], wbytes, RT_MAP_READ);
	rc = rt_agree(c, rc);
out:
	free(h);
	free(e);
	free(tab);
	free(alltab);
	free(tlen);
	free(tdisp);
	return rc;
}
