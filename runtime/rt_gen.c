/* rt_gen.c — the runtime side of schedule = generate (docs/transformers.md).
 *
 * The emitted step is one round of the token ring: round 0 runs every
 * group's prompts through the pipeline (the prefill), each later round one
 * token per sequence (a decode step); the last stage picks the tokens
 * (rt_gen_pick) and sends them back to the first.  This file runs the
 * rounds back to back (no barrier between them: a rank starts group 0's
 * next round as soon as its token is there, while later groups are still
 * in the pipeline), keeps the token buffers and the picked tokens, and
 * writes the result: the prompts followed by the tokens, rows in input
 * order.
 *
 * Sampling draws from a generator keyed by (seed, global row, round), not
 * from one stream, so the tokens of a sampled run do not depend on how the
 * rows are grouped or the layers partitioned.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rt_internal.h"

int64_t rt_gen_pos(rt_ctx *c)
{
	return rt_gen_position(c);
}

int32_t *rt_gen_tokens(rt_ctx *c, int g)
{
	return c->gen_tok + (int64_t)g * c->p->mb_rows;
}

int rt_gen_init(rt_ctx *c)
{
	const rt_program *p = c->p;
	int64_t rows = p->batch / p->R;
	if (p->first_stage && c->in && c->in[0].data && c->o.in_path && c->o.in_path[0]
	    && c->in[0].rows != p->batch) {
		rt_defer(c, "%s: generate takes one prompt per sequence of the batch: %lld rows "
		         "(batch = %lld), not %lld", c->o.in_path[0], (long long)p->batch,
		         (long long)p->batch, (long long)c->in[0].rows);
		return RT_EXIT_INPUT;
	}
	if (c->seq_len + p->gen_tokens > p->kv_cap) {
		rt_defer(c, "prompts of %lld tokens and %d new ones need %lld positions, but the "
		         "caches hold %lld", (long long)c->seq_len, p->gen_tokens,
		         (long long)(c->seq_len + p->gen_tokens), (long long)p->kv_cap);
		return RT_EXIT_INPUT;
	}
	/* the step's buffers: device memory on a GPU */
	c->gen_tok = rt_dev_alloc(c, (size_t)rows * sizeof *c->gen_tok);
	if (!c->gen_tok)
		return RT_EXIT_RUNTIME;
	/* every rank: the last stages' picks are gathered by a maximum over
	 * ranks (with disaggregated prefill two ranks pick: round 0 and the
	 * rest), so what a rank did not pick stays -1 */
	c->gen_out = rt_alloc((size_t)(rows * p->gen_tokens) * sizeof *c->gen_out);
	c->gen_done = rt_alloc((size_t)rows);
	c->gen_tok_round = rt_alloc((size_t)rows * sizeof *c->gen_tok_round);
	if (!c->gen_out || !c->gen_done || !c->gen_tok_round)
		return RT_EXIT_RUNTIME;
	for (int64_t i = 0; i < rows * p->gen_tokens; i++)
		c->gen_out[i] = -1;
	return 0;
}

void rt_gen_free(rt_ctx *c)
{
	rt_dev_free(c, c->gen_tok);
	rt_free(c->gen_out);
	rt_free(c->gen_tok_round);
	c->gen_tok_round = NULL;
	rt_free(c->gen_done);
	c->gen_tok = c->gen_out = NULL;
	c->gen_done = NULL;
}

/* splitmix64: a counter-based draw, uniform in [0, 1). */
static double draw(uint64_t seed, int64_t row, int round)
{
	uint64_t z = seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)(row + 1))
	             ^ (0xbf58476d1ce4e5b9ull * (uint64_t)(round + 1));
	z += 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

/* One row's sampled token: softmax of logits / temperature over the top_k
 * largest (all when top_k is 0 or covers the vocabulary), then the token
 * whose cumulative probability first exceeds u.  Ties at the k-th value
 * keep every tied token, as transformers' top-k filter does. */
static int32_t sample_row(const rt_program *p, const float *z, double *prob, double u)
{
	int64_t V = p->gen_vocab;
	double cut = -INFINITY, mx = -INFINITY, sum = 0;
	if (p->gen_top_k > 0 && p->gen_top_k < V) {
		/* the k-th largest by repeated selection: k is small in practice */
		double prev = INFINITY;
		int64_t taken = 0;
		while (taken < p->gen_top_k) {
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
		prob[j] = z[j] >= cut ? exp(((double)z[j] - mx) / p->gen_temperature) : 0.0;
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
	const rt_program *p = c->p;
	int64_t V = p->gen_vocab, rows = p->mb_rows;
	size_t lbytes = (size_t)(rows * V) * sizeof(float), tbytes = (size_t)rows * sizeof(int32_t);
	int32_t *dev_tok = rt_gen_tokens(c, g), *tok;
	const float *logits;
	double *prob = NULL;
	if (!rt_dev_computing(c) || rt_dev_gen_pick(c, g, dev_logits, dev_tok))
		return;
	logits = rt_dev_map(c, (void *)dev_logits, lbytes, RT_MAP_READ);
	tok = rt_dev_map(c, dev_tok, tbytes, RT_MAP_WRITE);
	if (!logits || !tok || (p->gen_sample && !(prob = malloc((size_t)V * sizeof *prob))))
		rt_die(c, RT_EXIT_RUNTIME, "out of memory picking tokens");
	for (int64_t r = 0; r < rows; r++) {
		int64_t row = (int64_t)g * rows + r;       /* in this replica's batch */
		const float *z = logits + r * V;
		int32_t t;
		if (c->gen_done[row]) {
			t = (int32_t)p->gen_eos;
		} else if (p->gen_sample) {
			t = sample_row(p, z, prob, draw(p->gen_seed, row, c->gen_round));
		} else {
			int64_t best = 0;
			for (int64_t j = 1; j < V; j++)    /* the first largest: torch.argmax */
				if (z[j] > z[best])
					best = j;
			t = (int32_t)best;
		}
		if (p->gen_eos >= 0 && t == p->gen_eos)
			c->gen_done[row] = 1;
		tok[r] = t;
		c->gen_out[row * p->gen_tokens + c->gen_round] = t;
	}
	if (c->gen_round == 0 && g == p->M - 1)
		c->gen_ttft = rt_now() - c->gen_t0;     /* every group has its first token */
	free(prob);
	rt_dev_unmap(c, (void *)dev_logits, (void *)logits, lbytes, RT_MAP_READ);
	rt_dev_unmap(c, dev_tok, tok, tbytes, RT_MAP_WRITE);
}

void rt_gen_run(rt_ctx *c)
{
	const rt_program *p = c->p;
	double t0;
	rt_barrier(c, "the barrier before generation");
	c->gen_t0 = t0 = rt_now();
	c->busy = 0.0;
	for (int t = 0; t < p->gen_tokens; t++) {
		c->step = t;
		c->gen_round = t;
		c->action_index = 0;
		rt_dev_step(c, t);
		if (p->last_stage && rt_dev_gen_collect(c, c->gen_tok_round)) {
			/* picked on the device: recorded now that the round is done */
			for (int64_t r = 0; r < p->batch / p->R; r++)
				c->gen_out[r * p->gen_tokens + t] = c->gen_tok_round[r];
			if (t == 0)
				c->gen_ttft = rt_now() - t0;
		}
	}
	c->gen_total = rt_now() - t0;
	rt_barrier(c, "the barrier after generation");
	for (int i = 0; i < c->nslots; i++)
		if (c->slots[i].req[0] != MPI_REQUEST_NULL)
			rt_die(c, RT_EXIT_RUNTIME, "slot %d (%s) was never waited on", i,
			       c->slots[i].what);
}

/* The picked tokens reach rank 0 (the first stage, which has the prompts)
 * once, after the run; a row's tokens after its end-of-sequence id are that
 * id. */
int rt_gen_write_output(rt_ctx *c)
{
	const rt_program *p = c->p;
	int64_t B = p->batch, N = p->gen_tokens, T0 = c->seq_len;
	int32_t *gen = NULL, *all = NULL;
	int rc = 0;
	if (!c->o.output)
		return 0;
	if (c->rank == 0 && !(gen = rt_alloc((size_t)(B * N) * sizeof *gen)))
		rt_die(c, RT_EXIT_RUNTIME, "out of memory gathering the tokens");
	MPI_Reduce(c->gen_out, gen, (int)(B * N), MPI_INT, MPI_MAX, 0, MPI_COMM_WORLD);
	if (c->rank != 0)
		return 0;
	for (int64_t row = 0; row < B && p->gen_eos >= 0; row++) {
		int stop = 0;
		for (int64_t j = 0; j < N; j++) {
			if (stop)
				gen[row * N + j] = (int32_t)p->gen_eos;
			stop |= gen[row * N + j] == p->gen_eos;
		}
	}
	if (!(all = rt_alloc((size_t)(B * (T0 + N)) * sizeof *all)))
		rt_die(c, RT_EXIT_RUNTIME, "out of memory writing the tokens");
	/* the prompts from the host copy of the input (rt_data may be device
	 * memory); synthetic prompts are whatever the first stage embedded */
	for (int64_t row = 0; row < B; row++) {
		const int32_t *ids = (const int32_t *)c->in[0].data + row * c->in[0].cols;
		memcpy(all + row * (T0 + N), ids, (size_t)T0 * sizeof *all);
		memcpy(all + row * (T0 + N) + T0, gen + row * N, (size_t)N * sizeof *all);
	}
	{
		char err[512];
		int64_t dims[2] = { B, T0 + N };
		if (rt_npy_write_i32(c->o.output, all, 2, dims, err, sizeof err) != 0) {
			rt_msg(c->rank, "%s", err);
			rc = RT_EXIT_INPUT;
		}
	}
	rt_free(gen);
	rt_free(all);
	return rc;
}

/* Time to first token: until the last stage has every group's first token
 * (round 0's end there); per output token: the rest over the other
 * rounds; tokens/s: every sequence's new tokens over the whole run. */
void rt_gen_summary(rt_ctx *c)
{
	const rt_program *p = c->p;
	double mine[2] = { p->last_stage ? c->gen_ttft : 0.0, c->gen_total }, all[2];
	MPI_Allreduce(mine, all, 2, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
	if (c->rank != c->reporter || c->o.quiet)
		return;
	double ttft = all[0], total = all[1];
	int N = p->gen_tokens;
	printf("generated_tokens: %lld (%lld sequences x %d)\n", (long long)p->batch * N,
	       (long long)p->batch, N);
	printf("prompt_tokens: %lld\n", (long long)c->seq_len);
	printf("time_to_first_token: %.6g\n", ttft);
	printf("time_per_output_token: %.6g\n", N > 1 ? (total - ttft) / (N - 1) : 0.0);
	printf("tokens_per_s: %.6g\n", total > 0 ? (double)p->batch * N / total : 0.0);
	printf("generation_time: %.6g\n", total);
	printf("kv_cache_bytes: %lld (this rank; caches hold %lld positions)\n",
	       (long long)p->kv_bytes, (long long)p->kv_cap);
	fflush(stdout);
}
