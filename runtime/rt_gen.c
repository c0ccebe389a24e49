/* rt_gen.c — the runtime side of schedule = generate (docs/transformers.md,
 * "Continuous batching").
 *
 * The emitted step is one round of the token ring: every group that has
 * not ended runs once through the pipeline, and the last stage picks its
 * next tokens (rt_gen_pick) and sends them back to the first.  A group's
 * `rows` sequence slots are independent: in a round each runs its own
 * number of new tokens at its own positions — a slot starting a prompt
 * its whole prompt (its prefill), a decoding one the token it picked last
 * round, an idle one nothing.  The first stage decides this at the start
 * of the group's round (schedule): a slot whose sequence finished (its
 * eos, or K new tokens) takes the next prompt at once, so a prefill shares
 * the ring with the other slots' decode steps.  The decision travels as a
 * descriptor at the end of each activation message's header (rt_gen_rows_at)
 * — flags, ntok, and per slot n, pos, req (the prompt's row in the input),
 * gen (its tokens so far) — so every stage knows its rows and sizes without
 * knowing how they were chosen.  A group whose slots are all idle with no
 * prompt left ends: that round's descriptor says so, the round runs empty
 * through the pipeline, its tokens do not go round, and from then on the
 * step's guards (rt_gen_runs, rt_gen_ring) leave it out on every rank.
 * The run ends when every group has.
 *
 * Sampling draws from a generator keyed by (seed, the prompt's row in the
 * input, position), not from one stream, so a row's tokens do not depend
 * on which slot, group or round it ran in, nor on the other prompts.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rt_internal.h"
#include "rt_tf_sizes.h"

enum { D_FLAGS, D_NTOK, D_HEAD = 4 };   /* the descriptor: int32 values */
enum { F_END = 1 };

/* The first stage's view of one sequence slot. */
typedef struct gslot {
	int32_t req;                /* the prompt it runs, -1: idle */
	int32_t cached;             /* positions in its cache */
	int32_t gen;                /* tokens it has picked */
	int32_t n;                  /* tokens it ran in its group's last round */
	int32_t last;               /* the last token picked */
} gslot;

struct rt_gen {
	int64_t N, T0;              /* prompts, their width */
	int K;                      /* new tokens per prompt at most */
	int rows, M, dn;            /* slots per group, groups, descriptor values */
	int64_t eos, vocab;
	double temperature, top_p;  /* temperature 0: greedy */
	int top_k;
	uint64_t seed;
	int prefill_rank;           /* disaggregated: this rank runs round 0 only */
	/* every rank: each group's descriptor as it last ran (host memory) */
	int32_t *desc;              /* [M][dn] */
	int32_t *off;               /* [M][rows] */
	rt_gen_rows *view;          /* [M] */
	int *ended;                 /* [M] the round a group ended in, -1 */
	/* first stage */
	int32_t *plen;              /* [N] the prompts' lengths */
	int64_t next;               /* the next prompt to start */
	gslot *slot;                /* [M·rows] */
	int32_t *ids;               /* [M][rows·T0] the rows' token ids, device memory */
	int32_t *tok;               /* [M·rows] token buffers, device memory */
	/* last stage: what it picked, for --output and the summary (every
	 * rank holds them, zero where it picked nothing, and the arrays are
	 * gathered by a maximum) */
	int32_t *out;               /* [N·K] tokens, -1 */
	double *t_first, *t_last;   /* [N] seconds from t0 */
	double *prob;               /* [vocab] sampling */
	int32_t *order;             /* [vocab] top-p's order */
	double t0;
	int rounds;                 /* this rank ran */
};

/* ---- The guards of the emitted step. ---- */

int rt_gen_runs(rt_ctx *c, int g, int t)
{
	int e = c->gen->ended[g];
	return e < 0 || t <= e;
}

int rt_gen_ring(rt_ctx *c, int g, int t)
{
	int e = c->gen->ended[g];
	return t >= 0 && (e < 0 || t < e);
}

int32_t *rt_gen_tokens(rt_ctx *c, int g)
{
	return c->gen->tok + (int64_t)g * c->gen->rows;
}

const int32_t *rt_gen_ids(rt_ctx *c, int g)
{
	return c->gen->ids + (int64_t)g * c->gen->rows * c->gen->T0;
}

/* ---- Messages. ---- */

size_t rt_gen_msg(rt_ctx *c, int g, int64_t hdr, int64_t row_bytes)
{
#ifdef RT_CUDA
	/* the GPU transports match sizes exactly: the longest a round can be */
	(void)g;
	return (size_t)(hdr + (int64_t)c->gen->rows * c->gen->T0 * row_bytes);
#else
	return (size_t)(hdr + c->gen->view[g].ntok * row_bytes);
#endif
}

int64_t rt_gen_values(rt_ctx *c, int g, int64_t per_row)
{
#ifdef RT_CUDA
	(void)g;
	return (int64_t)c->gen->rows * c->gen->T0 * per_row;
#else
	return c->gen->view[g].ntok * per_row;
#endif
}

void rt_gen_irecv(rt_ctx *c, int slot, void *buf, int64_t hdr, int64_t row_bytes, int peer,
                  int tag, const char *what)
{
	int64_t most = (int64_t)c->gen->rows * c->gen->T0;
	rt_irecv(c, slot, buf, (size_t)(hdr + most * row_bytes), peer, tag, what);
#ifndef RT_CUDA
	rt_slot_upto(c, slot, buf, hdr, hdr - rt_gen_hdr_bytes(c->gen->rows), most, row_bytes, 0);
#endif
}

void rt_gen_irecv16(rt_ctx *c, int slot, void *buf, int64_t hdr, int64_t per_row, int peer,
                    int tag, const char *what)
{
	int64_t most = (int64_t)c->gen->rows * c->gen->T0;
	rt_irecv16(c, slot, buf, (size_t)hdr, most * per_row, peer, tag, what);
#ifndef RT_CUDA
	rt_slot_upto(c, slot, buf, hdr, hdr - rt_gen_hdr_bytes(c->gen->rows), most, 2 * per_row,
	             per_row);
#endif
}

/* ---- Each group's rows. ---- */

static int32_t *desc_of(const rt_gen *G, int g)
{
	return G->desc + (int64_t)g * G->dn;
}

/* The packed offsets and the view of group g's descriptor; 0, or -1 if it
 * does not describe rows this program can run. */
static int view_of(rt_ctx *c, int g)
{
	rt_gen *G = c->gen;
	int32_t *d = desc_of(G, g), *n = d + D_HEAD, *pos = n + G->rows, *req = pos + G->rows;
	int32_t *gen = req + G->rows, *off = G->off + (int64_t)g * G->rows;
	int64_t at = 0;
	for (int r = 0; r < G->rows; r++) {
		if (n[r] < 0 || n[r] > G->T0 || pos[r] < 0 || pos[r] + n[r] > c->p->kv_cap ||
		    (n[r] > 0 && (req[r] < 0 || req[r] >= G->N || gen[r] < 0 || gen[r] >= G->K)))
			return -1;
		off[r] = (int32_t)at;
		at += n[r];
	}
	if (at != d[D_NTOK])
		return -1;
	G->view[g] = (rt_gen_rows){ .rows = G->rows, .ntok = at, .n = n, .pos = pos, .off = off };
	return 0;
}

/* The first stage: group g's slots take in the tokens of its last round
 * (tok, NULL in its first) and the next prompts, and write its descriptor
 * and its rows' ids (ids NULL: only the slots, for a decode pipeline that
 * did not run round 0). */
static void schedule(rt_ctx *c, int g, const int32_t *tok, int32_t *ids)
{
	rt_gen *G = c->gen;
	int R = G->rows;
	int32_t *d = desc_of(G, g), *n = d + D_HEAD, *pos = n + R, *req = pos + R, *gen = req + R;
	int64_t at = 0, busy = 0;
	for (int r = 0; r < R; r++) {
		gslot *s = &G->slot[(int64_t)g * R + r];
		if (s->n > 0) {             /* it ran: its token came round */
			int32_t t = tok ? tok[r] : -1;
			if (t < 0 || t >= G->vocab)
				rt_die(c, RT_EXIT_RUNTIME, "group %d slot %d: token %d came back from the "
				       "last stage", g, r, t);
			s->cached += s->n;
			s->gen++;
			s->last = t;
			s->n = 1;
			if ((G->eos >= 0 && t == G->eos) || s->gen >= G->K)
				s->req = -1, s->n = 0;
		}
		if (s->req < 0 && G->next < G->N) {     /* the next prompt, at once */
			s->req = (int32_t)G->next++;
			s->cached = s->gen = 0;
			s->n = G->plen[s->req];
		}
		n[r] = s->req < 0 ? 0 : s->n;
		pos[r] = s->cached;
		req[r] = s->req;
		gen[r] = s->gen;
		if (ids && n[r] > 0) {
			if (s->gen == 0)
				memcpy(ids + at, (const int32_t *)c->in[0].data + (int64_t)s->req * G->T0,
				       (size_t)n[r] * sizeof *ids);
			else
				ids[at] = s->last;
		}
		at += n[r];
		busy += s->req >= 0;
	}
	d[D_FLAGS] = busy == 0 ? F_END : 0;  /* no slot busy and no prompt left */
	d[D_NTOK] = (int32_t)at;
	d[2] = d[3] = 0;
}

const rt_gen_rows *rt_gen_rows_at(rt_ctx *c, int g, const void *in, void *out)
{
	rt_gen *G = c->gen;
	size_t bytes = (size_t)G->dn * sizeof(int32_t);
	int32_t *d = desc_of(G, g);
	if (!rt_dev_computing(c)) {     /* the CUDA dry run: no rows */
		memset(d, 0, bytes);
		view_of(c, g);
		return &G->view[g];
	}
	if (!in) {
		size_t tb = (size_t)G->rows * sizeof(int32_t), ib = tb * (size_t)G->T0;
		int32_t *dev_ids = G->ids + (int64_t)g * G->rows * G->T0;
		const int32_t *tok = NULL;
		int32_t *ids = rt_dev_map(c, dev_ids, ib, RT_MAP_WRITE);
		if (rt_gen_ring(c, g, c->gen_round - 1) &&
		    !(tok = rt_dev_map(c, rt_gen_tokens(c, g), tb, RT_MAP_READ)))
			rt_die(c, RT_EXIT_RUNTIME, "out of memory reading the tokens");
		if (!ids)
			rt_die(c, RT_EXIT_RUNTIME, "out of memory writing the token ids");
		schedule(c, g, tok, ids);
		if (tok)
			rt_dev_unmap(c, rt_gen_tokens(c, g), (void *)tok, tb, RT_MAP_READ);
		rt_dev_unmap(c, dev_ids, ids, ib, RT_MAP_WRITE);
	} else {
		const void *h = rt_dev_map(c, (void *)in, bytes, RT_MAP_READ);
		if (!h)
			rt_die(c, RT_EXIT_RUNTIME, "out of memory reading a descriptor");
		memcpy(d, h, bytes);
		rt_dev_unmap(c, (void *)in, (void *)h, bytes, RT_MAP_READ);
	}
	if (view_of(c, g) != 0)
		rt_die(c, RT_EXIT_RUNTIME, "group %d, round %d: the rows' descriptor is not one "
		       "(%d tokens)", g, c->gen_round, d[D_NTOK]);
	if (d[D_FLAGS] & F_END)
		G->ended[g] = c->gen_round;
	if (out) {
		void *h = rt_dev_map(c, out, bytes, RT_MAP_WRITE);
		if (!h)
			rt_die(c, RT_EXIT_RUNTIME, "out of memory writing a descriptor");
		memcpy(h, d, bytes);
		rt_dev_unmap(c, out, h, bytes, RT_MAP_WRITE);
	}
	return &G->view[g];
}

/* ---- Picking. ---- */

/* splitmix64 of (seed, row, position): a counter-based draw in [0, 1). */
static double draw(uint64_t seed, int64_t row, int64_t pos)
{
	uint64_t z = seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)(row + 1))
	             ^ (0xbf58476d1ce4e5b9ull * (uint64_t)(pos + 1));
	z += 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

static const double *cmp_prob;
static int by_prob(const void *a, const void *b)
{
	int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
	double x = cmp_prob[i], y = cmp_prob[j];
	return x > y ? -1 : x < y ? 1 : (i > j) - (i < j);
}

/* One row's sampled token, in transformers' order: logits / temperature,
 * the top_k largest (all when 0 or covering the vocabulary; ties at the
 * k-th value keep every tied token, as its top-k filter does), then the
 * most likely tokens whose probability first reaches top_p (at least
 * one), then the token whose cumulative probability first exceeds u. */
static int32_t sample_row(rt_gen *G, const float *z, double u)
{
	int64_t V = G->vocab;
	double cut = -INFINITY, mx = -INFINITY, sum = 0, *prob = G->prob;
	if (G->top_k > 0 && G->top_k < V) {
		/* the k-th largest by repeated selection: k is small in practice */
		double prev = INFINITY;
		int64_t taken = 0;
		while (taken < G->top_k) {
			double best = -INFINITY;
			int64_t n = 0;
			for (int64_t j = 0; j < V; j++)
				if (z[j] < prev && z[j] > best)
					best = z[j];
			for (int64_t j = 0; j < V; j++)
				n += z[j] == best;
			if (n == 0)
				break;
			taken += n;
			prev = cut = best;
		}
	}
	for (int64_t j = 0; j < V; j++)
		if (z[j] >= cut && z[j] > mx)
			mx = z[j];
	for (int64_t j = 0; j < V; j++) {
		prob[j] = z[j] >= cut ? exp(((double)z[j] - mx) / G->temperature) : 0.0;
		sum += prob[j];
	}
	if (G->top_p < 1.0) {
		int64_t kept = 0;
		double acc = 0;
		for (int64_t j = 0; j < V; j++)
			if (prob[j] > 0)
				G->order[kept++] = (int32_t)j;
		cmp_prob = prob;
		qsort(G->order, (size_t)kept, sizeof *G->order, by_prob);
		for (int64_t i = 0; i < kept; i++) {
			if (acc >= G->top_p * sum)
				prob[G->order[i]] = 0.0;
			acc += prob[G->order[i]];
		}
		sum = 0;
		for (int64_t j = 0; j < V; j++)
			sum += prob[j];
	}
	double acc = 0, target = u * sum;
	int64_t pick = -1;
	for (int64_t j = 0; j < V; j++) {
		if (prob[j] <= 0)
			continue;
		pick = j;
		acc += prob[j];
		if (acc > target)
			break;
	}
	return (int32_t)(pick < 0 ? 0 : pick);
}

/* On a GPU the logits and the token buffer are device memory: the pick
 * reads the one and writes the other through host copies (rt_dev_map). */
void rt_gen_pick(rt_ctx *c, int g, const float *dev_logits)
{
	rt_gen *G = c->gen;
	int64_t V = G->vocab, R = G->rows;
	size_t lbytes = (size_t)(R * V) * sizeof(float), tbytes = (size_t)R * sizeof(int32_t);
	int32_t *dev_tok = rt_gen_tokens(c, g), *tok;
	const int32_t *d = desc_of(G, g), *n = d + D_HEAD, *pos = n + R, *req = pos + R;
	const int32_t *gen = req + R;
	const float *logits;
	double now = rt_now() - G->t0;
	if (!rt_dev_computing(c))
		return;
	logits = rt_dev_map(c, (void *)dev_logits, lbytes, RT_MAP_READ);
	tok = rt_dev_map(c, dev_tok, tbytes, RT_MAP_WRITE);
	if (!logits || !tok)
		rt_die(c, RT_EXIT_RUNTIME, "out of memory picking tokens");
	for (int64_t r = 0; r < R; r++) {
		const float *z = logits + r * V;
		int32_t t;
		tok[r] = -1;
		if (n[r] == 0)
			continue;
		if (G->temperature > 0) {
			t = sample_row(G, z, draw(G->seed, req[r], pos[r] + n[r]));
		} else {
			int64_t best = 0;
			for (int64_t j = 1; j < V; j++)    /* the first largest: torch.argmax */
				if (z[j] > z[best])
					best = j;
			t = (int32_t)best;
		}
		tok[r] = t;
		G->out[(int64_t)req[r] * G->K + gen[r]] = t;
		if (gen[r] == 0)
			G->t_first[req[r]] = now;
		G->t_last[req[r]] = now;
	}
	rt_dev_unmap(c, (void *)dev_logits, (void *)logits, lbytes, RT_MAP_READ);
	rt_dev_unmap(c, dev_tok, tok, tbytes, RT_MAP_WRITE);
}

/* ---- The run. ---- */

int rt_gen_init(rt_ctx *c)
{
	const rt_program *p = c->p;
	const rt_opts *o = &c->o;
	rt_gen *G = rt_alloc(sizeof *G);
	if (!G)
		return RT_EXIT_RUNTIME;
	memset(G, 0, sizeof *G);
	c->gen = G;
	G->N = c->rows > 0 ? c->rows : p->batch;
	G->T0 = c->seq_len;
	G->K = o->gen_max_new;
	G->rows = (int)p->mb_rows;
	G->M = p->M;
	G->dn = D_HEAD + 4 * G->rows;
	G->eos = o->gen_eos;
	G->vocab = p->gen_vocab;
	G->temperature = o->gen_temperature;
	G->top_k = o->gen_top_k;
	G->top_p = o->gen_top_p;
	G->seed = o->gen_seed;
	G->prefill_rank = p->gen_disagg && c->rank < p->P;
	if (G->T0 + G->K > p->kv_cap) {
		rt_defer(c, "prompts of up to %lld tokens and %d new ones need %lld positions, but "
		         "the caches hold %lld", (long long)G->T0, G->K, (long long)(G->T0 + G->K),
		         (long long)p->kv_cap);
		return RT_EXIT_INPUT;
	}
	if (p->gen_disagg && G->N != p->batch) {
		/* the prefill ranks run round 0 only: no slot can take a prompt later */
		rt_defer(c, "disaggregated prefill runs one prompt per sequence slot: %lld prompts "
		         "(batch = %lld), not %lld; compile with prefill = colocated for continuous "
		         "batching", (long long)p->batch, (long long)p->batch, (long long)G->N);
		return RT_EXIT_INPUT;
	}
	if (G->N > INT32_MAX / (G->K + 1)) {
		rt_defer(c, "%lld prompts are too many for one run", (long long)G->N);
		return RT_EXIT_INPUT;
	}
	G->desc = rt_alloc((size_t)(G->M * G->dn) * sizeof *G->desc);
	G->off = rt_alloc((size_t)(G->M * G->rows) * sizeof *G->off);
	G->view = rt_alloc((size_t)G->M * sizeof *G->view);
	G->ended = rt_alloc((size_t)G->M * sizeof *G->ended);
	G->out = rt_alloc((size_t)(G->N * G->K) * sizeof *G->out);
	G->t_first = rt_alloc((size_t)G->N * sizeof *G->t_first);
	G->t_last = rt_alloc((size_t)G->N * sizeof *G->t_last);
	G->tok = rt_dev_alloc(c, (size_t)(G->M * G->rows) * sizeof *G->tok);
	if (!G->desc || !G->off || !G->view || !G->ended || !G->out || !G->t_first ||
	    !G->t_last || !G->tok)
		return RT_EXIT_RUNTIME;
	memset(G->desc, 0, (size_t)(G->M * G->dn) * sizeof *G->desc);
	for (int g = 0; g < G->M; g++) {
		G->ended[g] = -1;
		view_of(c, g);
	}
	for (int64_t i = 0; i < G->N * G->K; i++)
		G->out[i] = -1;
	memset(G->t_first, 0, (size_t)G->N * sizeof *G->t_first);
	memset(G->t_last, 0, (size_t)G->N * sizeof *G->t_last);
	if (p->last_stage && G->temperature > 0 &&
	    (!(G->prob = rt_alloc((size_t)G->vocab * sizeof *G->prob)) ||
	     !(G->order = rt_alloc((size_t)G->vocab * sizeof *G->order))))
		return RT_EXIT_RUNTIME;
	if (p->first_stage) {
		G->plen = rt_alloc((size_t)G->N * sizeof *G->plen);
		G->slot = rt_alloc((size_t)(G->M * G->rows) * sizeof *G->slot);
		G->ids = rt_dev_alloc(c, (size_t)(G->M * G->rows * G->T0) * sizeof *G->ids);
		if (!G->plen || !G->slot || !G->ids)
			return RT_EXIT_RUNTIME;
		for (int64_t i = 0; i < G->N; i++) {
			const int32_t *row = (const int32_t *)c->in[0].data + i * G->T0;
			int32_t L = 0;
			while (L < G->T0 && row[L] != -1)
				L++;
			G->plen[i] = L;
		}
		for (int64_t s = 0; s < G->M * G->rows; s++)
			G->slot[s] = (gslot){ .req = -1 };
		/* a decode pipeline's first stage: the slots as round 0 left them */
		if (p->gen_disagg && !G->prefill_rank)
			for (int g = 0; g < G->M; g++)
				schedule(c, g, NULL, NULL);
	}
	return 0;
}

void rt_gen_free(rt_ctx *c)
{
	rt_gen *G = c->gen;
	if (!G)
		return;
	rt_dev_free(c, G->tok);
	rt_dev_free(c, G->ids);
	rt_free(G->desc);
	rt_free(G->off);
	rt_free(G->view);
	rt_free(G->ended);
	rt_free(G->out);
	rt_free(G->t_first);
	rt_free(G->t_last);
	rt_free(G->prob);
	rt_free(G->order);
	rt_free(G->plen);
	rt_free(G->slot);
	rt_free(G);
	c->gen = NULL;
}

void rt_gen_run(rt_ctx *c)
{
	rt_gen *G = c->gen;
	/* a group ends after at most one round per new token of each prompt
	 * it could run, and one more: a bound that catches a runaway ring */
	int64_t most = (G->N + 1) * ((int64_t)G->K + 1) + 2;
	rt_barrier(c, "the barrier before generation");
	G->t0 = rt_now();
	c->busy = 0.0;
	for (int t = 0;; t++) {
		int any = 0;
		for (int g = 0; g < G->M; g++)
			any |= rt_gen_runs(c, g, t);
		if (!any || (G->prefill_rank && t > 0))
			break;
		if (t > most)
			rt_die(c, RT_EXIT_RUNTIME, "generation did not end after %d rounds", t);
		c->step = t;
		c->gen_round = t;
		c->action_index = 0;
		rt_dev_step(c, t);
		G->rounds = t + 1;
	}
	c->gen_total = rt_now() - G->t0;
	rt_barrier(c, "the barrier after generation");
	for (int i = 0; i < c->nslots; i++)
		if (c->slots[i].req[0] != MPI_REQUEST_NULL)
			rt_die(c, RT_EXIT_RUNTIME, "slot %d (%s) was never waited on", i,
			       c->slots[i].what);
}

/* Every rank's picks, times and tokens reach every rank (the last stages
 * picked them; the others hold -1 and 0): once, after the run. */
static void gather(rt_ctx *c)
{
	rt_gen *G = c->gen;
	if (MPI_Allreduce(MPI_IN_PLACE, G->out, (int)(G->N * G->K), MPI_INT, MPI_MAX,
	                  MPI_COMM_WORLD) != MPI_SUCCESS ||
	    MPI_Allreduce(MPI_IN_PLACE, G->t_first, (int)G->N, MPI_DOUBLE, MPI_MAX,
	                  MPI_COMM_WORLD) != MPI_SUCCESS ||
	    MPI_Allreduce(MPI_IN_PLACE, G->t_last, (int)G->N, MPI_DOUBLE, MPI_MAX,
	                  MPI_COMM_WORLD) != MPI_SUCCESS)
		rt_die(c, RT_EXIT_RUNTIME, "cannot gather the generated tokens");
}

/* Rows in input order: the prompt, its new tokens (an eos kept as the
 * last), then -1 to the end of the row. */
int rt_gen_write_output(rt_ctx *c)
{
	rt_gen *G = c->gen;
	int64_t N = G->N, K = G->K, W = G->T0 + K;
	int32_t *all;
	int rc = 0;
	gather(c);
	if (!c->o.output || c->rank != 0)
		return 0;
	if (!(all = rt_alloc((size_t)(N * W) * sizeof *all)))
		rt_die(c, RT_EXIT_RUNTIME, "out of memory writing the tokens");
	for (int64_t i = 0; i < N; i++) {
		int32_t *row = all + i * W;
		int64_t L = G->plen[i];
		for (int64_t j = 0; j < W; j++)
			row[j] = -1;
		memcpy(row, (const int32_t *)c->in[0].data + i * G->T0, (size_t)L * sizeof *row);
		memcpy(row + L, G->out + i * K, (size_t)K * sizeof *row);
	}
	{
		char err[512];
		int64_t dims[2] = { N, W };
		if (rt_npy_write_i32(c->o.output, all, 2, dims, err, sizeof err) != 0) {
			rt_msg(c->rank, "%s", err);
			rc = RT_EXIT_INPUT;
		}
	}
	rt_free(all);
	return rc;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* The q-quantile of v[0..n) (sorted in place), interpolated linearly
 * between the nearest ranks as numpy's percentile does; 0 if n is 0. */
static double quantile(double *v, int64_t n, double q)
{
	if (n == 0)
		return 0.0;
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	double at = q * (double)(n - 1);
	int64_t i = (int64_t)at;
	return i + 1 < n ? v[i] + (at - (double)i) * (v[i + 1] - v[i]) : v[n - 1];
}

/* Per request: its time to first token from the start of the run (the
 * wait for a slot included) and its time per output token, (last token's
 * time - first's) / (new tokens - 1), for requests of two tokens or more;
 * tokens/s: every generated token (an eos included) over the whole run. */
void rt_gen_summary(rt_ctx *c)
{
	rt_gen *G = c->gen;
	double total = 0, mine = c->gen_total;
	int64_t N = G->N, tokens = 0, ntpot = 0;
	MPI_Allreduce(&mine, &total, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
	if (c->rank != c->reporter || c->o.quiet)
		return;
	double *ttft = rt_alloc((size_t)N * sizeof *ttft), *tpot = rt_alloc((size_t)N * sizeof *tpot);
	if (!ttft || !tpot)
		rt_die(c, RT_EXIT_RUNTIME, "out of memory for the summary");
	double last_first = 0;
	for (int64_t i = 0; i < N; i++) {
		int64_t k = 0;
		while (k < G->K && G->out[i * G->K + k] >= 0)
			k++;
		tokens += k;
		ttft[i] = G->t_first[i];
		if (ttft[i] > last_first)
			last_first = ttft[i];
		if (k > 1)
			tpot[ntpot++] = (G->t_last[i] - G->t_first[i]) / (double)(k - 1);
	}
	printf("generated_tokens: %lld (%lld prompts, at most %d new tokens each)\n",
	       (long long)tokens, (long long)N, G->K);
	printf("prompt_tokens: %lld (the longest prompt)\n", (long long)G->T0);
	printf("requests_per_s: %.6g\n", total > 0 ? (double)N / total : 0.0);
	printf("ttft_median: %.6g\n", quantile(ttft, N, 0.5));
	printf("ttft_p90: %.6g\n", quantile(ttft, N, 0.9));
	printf("tpot_median: %.6g\n", quantile(tpot, ntpot, 0.5));
	printf("tpot_p90: %.6g\n", quantile(tpot, ntpot, 0.9));
	/* the whole run's: until the last prompt has its first token, then
	 * the rest over the remaining rounds of the longest row */
	printf("time_to_first_token: %.6g\n", last_first);
	printf("time_per_output_token: %.6g\n", G->K > 1 ? (total - last_first) / (G->K - 1) : 0.0);
	printf("tokens_per_s: %.6g\n", total > 0 ? (double)tokens / total : 0.0);
	printf("generation_time: %.6g\n", total);
	printf("generation_rounds: %d\n", G->rounds);
	printf("kv_cache_bytes: %lld (this rank; caches hold %lld positions)\n",
	       (long long)c->p->kv_bytes, (long long)c->p->kv_cap);
	fflush(stdout);
	rt_free(ttft);
	rt_free(tpot);
}
