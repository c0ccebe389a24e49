/* sched_cb.c — `pipec schedule --requests N`: what continuous batching does
 * with a workload of N requests, on the cost model (docs/transformers.md,
 * "Continuous batching").
 *
 * Request i has a prompt of L_i tokens, uniform in 1 .. the declared
 * length, and stops after K_i new tokens, uniform in 1 .. max_new_tokens
 * (an eos at a random place); both drawn from splitmix64 of (seed, i).
 * The rounds are the runtime's (rt_gen.c): each rank runs round t's groups
 * in order; the first stage refills a group's free slots from the queue at
 * the start of its round, and a group ends with an empty round once its
 * slots are free and the queue is empty.  A stage's F of a group's round
 * with n new tokens (ROWS = the group's slots, T the declared length)
 * costs the decode step's f_dec up to ROWS tokens and grows linearly to the
 * full prefill's f at ROWS·T; its activations likewise; a token takes
 * msg_tok round the ring.  The same workload in static batches of `batch`
 * requests (a slot that finishes waits for its batch's longest row) is
 * simulated alike, for comparison.
 */
#include "schedule.h"

#include <stdlib.h>
#include <string.h>

typedef struct Work {
	int n;
	int *len, *ntok;            /* [n] prompt tokens, new tokens */
} Work;

typedef struct CbRun {
	double total;
	double *first, *last;       /* [n] a request's first and last token */
	/* the timeline: per rank, intervals [t0, t1) of group g (prefill: a
	 * slot of it started a prompt in that round) */
	int nseg;
	double *t0, *t1;
	int *rank, *group, *prefill;
} CbRun;

static uint64_t mix(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double lerp(double lo, double hi, double u)
{
	return lo + (hi - lo) * (u < 0 ? 0 : u > 1 ? 1 : u);
}

/* Runs requests [r0, r1) of w through the pipeline, the clock at start;
 * refill: a free slot takes the next request (else they wait for the
 * next batch). */
static void simulate(const Schedule *s, const SimCost *c, int rows, int T, const Work *w,
                     int r0, int r1, int refill, double start, CbRun *out)
{
	int P = s->P, M = s->M, nslot = M * rows;
	int *req = xalloc((size_t)nslot * sizeof *req), *done = xalloc((size_t)nslot * sizeof *done);
	int *ended = xalloc((size_t)M * sizeof *ended), next = r0, live = M;
	double *free_at = xalloc((size_t)P * sizeof *free_at);
	double *tok_at = xalloc((size_t)M * sizeof *tok_at);
	for (int i = 0; i < nslot; i++)
		req[i] = -1, done[i] = 0;
	for (int p = 0; p < P; p++)
		free_at[p] = start;
	for (int g = 0; g < M; g++)
		tok_at[g] = start, ended[g] = 0;
	while (live > 0) {
		for (int g = 0; g < M; g++) {
			if (ended[g])
				continue;
			int ntok = 0, busy = 0, pre = 0;
			for (int r = 0; r < rows; r++) {
				int k = g * rows + r;
				if (req[k] >= 0 && done[k] >= w->ntok[req[k]])
					req[k] = -1;
				if (req[k] < 0 && next < r1 && (refill || done[k] == 0)) {
					req[k] = next++;
					done[k] = 0;
					ntok += w->len[req[k]];
					pre = 1;
				} else if (req[k] >= 0) {
					ntok += 1;
				}
				busy += req[k] >= 0;
			}
			double u = rows * T > rows ? (double)(ntok - rows) / (double)(rows * T - rows) : 0;
			double ready = tok_at[g];
			for (int p = 0; p < P; p++) {
				int st = p;
				double fd = c->f_dec ? c->f_dec[st] : c->f[st];
				double cost = ntok == 0 ? 0.0 : ntok <= rows ? fd : lerp(fd, c->f[st], u);
				double t0 = ready > free_at[p] ? ready : free_at[p];
				double t1 = t0 + cost;
				free_at[p] = t1;
				if (out->t0 && ntok > 0) {
					int i = out->nseg++;
					out->t0[i] = t0, out->t1[i] = t1, out->rank[i] = p;
					out->group[i] = g, out->prefill[i] = pre;
				}
				if (p < P - 1) {
					double md = c->msg_f_dec ? c->msg_f_dec[st] : c->msg_f ? c->msg_f[st] : 0;
					double mf = c->msg_f ? c->msg_f[st] : 0;
					ready = t1 + (ntok <= rows ? md : lerp(md, mf, u));
				} else {
					ready = t1;
				}
			}
			if (busy == 0) {        /* the empty round: the group has ended */
				ended[g] = 1;
				live--;
				continue;
			}
			for (int r = 0; r < rows; r++) {
				int k = g * rows + r;
				if (req[k] < 0)
					continue;
				if (done[k] == 0)
					out->first[req[k]] = ready;
				out->last[req[k]] = ready;
				done[k]++;
			}
			tok_at[g] = ready + c->msg_tok;
			if (ready > out->total)
				out->total = ready;
		}
	}
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double quant(double *v, int n, double q)
{
	if (n == 0)
		return 0;
	qsort(v, (size_t)n, sizeof *v, cmp_d);
	double at = q * (n - 1);
	int i = (int)at;
	return i + 1 < n ? v[i] + (at - i) * (v[i + 1] - v[i]) : v[n - 1];
}

static void metrics(FILE *out, const char *what, const Work *w, const CbRun *r, double unit,
                    const char *u)
{
	double *ttft = xalloc((size_t)w->n * sizeof *ttft), *tpot = xalloc((size_t)w->n * sizeof *tpot);
	int nt = 0;
	for (int i = 0; i < w->n; i++) {
		ttft[i] = r->first[i];
		if (w->ntok[i] > 1)
			tpot[nt++] = (r->last[i] - r->first[i]) / (w->ntok[i] - 1);
	}
	fprintf(out, "%s: time %.6g%s, requests_per_s %.6g, ttft median %.6g p90 %.6g, tpot "
	        "median %.6g p90 %.6g%s\n", what, r->total * unit, u,
	        r->total > 0 ? w->n / (r->total * unit) : 0.0, quant(ttft, w->n, 0.5) * unit,
	        quant(ttft, w->n, 0.9) * unit, quant(tpot, nt, 0.5) * unit,
	        quant(tpot, nt, 0.9) * unit, u);
}

int sched_write_cb(FILE *out, const Schedule *s, const SimCost *c, int rows, int T, int K,
                   int batch, int nreq, unsigned long long seed, int width)
{
	Work w = { .n = nreq };
	w.len = xalloc((size_t)nreq * sizeof *w.len);
	w.ntok = xalloc((size_t)nreq * sizeof *w.ntok);
	long long toks = 0;
	for (int i = 0; i < nreq; i++) {
		w.len[i] = 1 + (int)(mix(seed * 2654435761ull + 2 * (uint64_t)i) % (uint64_t)T);
		w.ntok[i] = 1 + (int)(mix(seed * 2654435761ull + 2 * (uint64_t)i + 1) % (uint64_t)K);
		toks += w.ntok[i];
	}
	int cap = (nreq + s->M) * (K + 2) * s->P + 16;
	CbRun cb = { 0 }, st = { 0 };
	cb.first = xalloc((size_t)nreq * sizeof(double));
	cb.last = xalloc((size_t)nreq * sizeof(double));
	cb.t0 = xalloc((size_t)cap * sizeof(double));
	cb.t1 = xalloc((size_t)cap * sizeof(double));
	cb.rank = xalloc((size_t)cap * sizeof(int));
	cb.group = xalloc((size_t)cap * sizeof(int));
	cb.prefill = xalloc((size_t)cap * sizeof(int));
	st.first = xalloc((size_t)nreq * sizeof(double));
	st.last = xalloc((size_t)nreq * sizeof(double));
	simulate(s, c, rows, T, &w, 0, nreq, 1, 0.0, &cb);
	for (int b = 0; b < nreq; b += batch) {
		simulate(s, c, rows, T, &w, b, b + batch < nreq ? b + batch : nreq, 0, st.total, &st);
	}
	double unit = 1.0;
	const char *u = strcmp(c->name, "uniform") ? " s" : " units";
	fprintf(out, "continuous batching: %d requests (prompts of 1..%d tokens, 1..%d new tokens, "
	        "drawn with seed %llu: %lld new tokens) through %d slots in %d groups of %d, P = %d\n",
	        nreq, T, K, seed, toks, batch, s->M, rows, s->P);
	fprintf(out, "cost: %s; a round of n new tokens: the decode step's F up to %d tokens, "
	        "growing linearly to the prefill's at %d\n", c->describe ? c->describe : c->name,
	        rows, rows * T);
	double q = cb.total / width;
	fprintf(out, "one column = %.4g%s; a digit: a round of that group with a prefill in it; "
	        "a letter (a = group 0): a round of decode steps only\n", q * unit, u);
	char *line = xalloc((size_t)width + 1);
	for (int p = 0; p < s->P; p++) {
		memset(line, ' ', (size_t)width);
		line[width] = 0;
		for (int i = 0; i < cb.nseg; i++) {
			if (cb.rank[i] != p)
				continue;
			int a = (int)(cb.t0[i] / q), b = (int)(cb.t1[i] / q);
			if (b <= a)
				b = a + 1;
			for (int x = a; x < b && x < width; x++)
				line[x] = cb.prefill[i] ? (char)(cb.group[i] < 10 ? '0' + cb.group[i]
				                                 : 'A' + cb.group[i] - 10)
				          : (char)('a' + cb.group[i] % 26);
		}
		fprintf(out, "rank %d |%s|\n", p, line);
	}
	metrics(out, "continuous", &w, &cb, unit, u);
	metrics(out, xprintf("static batches of %d", batch), &w, &st, unit, u);
	if (st.total > 0)
		fprintf(out, "continuous / static requests_per_s: %.3g\n", st.total / cb.total);
	return 0;
}
