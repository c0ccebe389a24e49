/* costmodel.c — the `model` cost and check's summary. */
#include "costmodel.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

SimCost *cost_model(const IrModel *m, const Schedule *s, const CostConsts *cc)
{
	int S = s->S;
	SimCost *c = simcost_new("model", S);
	/* The optimizer streams each parameter's f32 state through memory:
	 * SGD reads the weight and its gradient, writes the weight and zeroes
	 * the gradient (16 bytes); momentum adds its buffer's read and write
	 * (24), Adam both moments' (32); a 16-bit dtype also writes the rounded
	 * copy from the master weights (8 more). */
	const Pipeline *pp = &m->pipe;
	double per_param = pp->optim == OPT_ADAM ? 32 : pp->optim == OPT_SGD && pp->momentum > 0
	                   ? 24 : 16;
	if (pp->dtype != DT_F32)
		per_param += 8;
	double fb = cost_flops_bwd(cc);
	/* Each pass of a GEMM (forward, input-gradient, weight-gradient)
	 * streams its weight matrix once, however few rows it multiplies:
	 * time = rows x FLOPs / rate + weight bytes / weight bandwidth.  This is
	 * what makes a micro-batch of a few rows run far below the rate: the
	 * effective rate is rate x rows / (rows + H), H = rate x bytes / (2 x
	 * weight bandwidth) (about 16 rows for one core's SGEMM here), where
	 * FLOPs alone would reward ever more micro-batches.  Generation prices
	 * its decode steps below. */
	double wsec = cost_weight_sec(cc, pp);
	c->describe = xprintf("model: compute %g FLOP/s per rank (--flops)%s%s; messages "
	                      "%g s (--latency) + bytes at %g B/s (--bandwidth); optimizer "
	                      "%g bytes a parameter at %g B/s (--mem-bandwidth)", cc->flops,
	                      cc->flops_bwd > 0 ? xprintf(", backward %g (--flops-backward)", fb)
	                      : "", wsec > 0 ? xprintf(", plus each GEMM pass's weights once "
	                      "at %g B/s (--weight-bandwidth)", cc->weight_bandwidth) : "",
	                      cc->latency, cc->bandwidth, per_param, cc->mem_bandwidth);
	c->copy_f = xalloc((size_t)S * sizeof(double));
	c->copy_b = xalloc((size_t)S * sizeof(double));
	c->allreduce_s = xalloc((size_t)S * sizeof(double));
	c->optim_p = xalloc((size_t)s->P * sizeof(double));
	double rows = (double)m->pipe.B / ((double)m->pipe.R * m->pipe.M);
	int training = m->pipe.optim != OPT_NONE;
	for (int i = 0; i < S && i < m->S; i++) {
		const IrStage *st = &m->stages[i];
		double wt = wsec * st->gemm_elems, wtb = wsec * st->gemm_elems_b;
		c->f[i] = rows * st->flops_f / cc->flops + wt;
		c->b[i] = rows * (st->flops_b + (s->split ? 0 : st->flops_w)) / fb
		          + wtb + (s->split ? 0 : wt);
		c->w[i] = s->split ? rows * st->flops_w / fb + wt : 0;
		double rf = 0, rw = 0;
		for (int l = st->last - st->nrecompute; l < st->last; l++) {
			rf += m->layers[l].flops_f;
			rw += m->layers[l].gemm_elems;
		}
		c->r[i] = rows * rf / cc->flops + wsec * rw;
		c->copy_f[i] = rows * (double)st->out_bytes / cc->bandwidth;
		c->copy_b[i] = rows * (double)st->in_bytes / cc->bandwidth;
		c->msg_f[i] = cc->latency + c->copy_f[i];
		c->msg_b[i] = cc->latency + c->copy_b[i];
		/* The stage's f32 gradients: a ring all-reduce moves 2(R-1)/R of
		 * them; the optimizer step streams per_param bytes of state a
		 * parameter on its rank. */
		double bytes = 4.0 * (double)st->params;
		c->allreduce_s[i] = s->R > 1 ? cc->latency + 2.0 * (s->R - 1) / s->R * bytes
		                               / cc->bandwidth : 0;
		if (training)
			c->optim_p[s->stage_rank[i]] += per_param * (double)st->params
			                                / cc->mem_bandwidth;
	}
	if (s->kind == SK_GENERATE) {
		/* A decode step runs one position per sequence: 1/T of the
		 * prefill's FLOPs (T the declared prompt length; attention over the
		 * cache is a small share at these lengths), but it still reads
		 * every weight of the stage once, so it costs at least that at the
		 * memory bandwidth: small batches decode at the speed of memory. */
		double T = m->seq_max > 0 ? (double)m->seq_max : 1.0;
		c->f_dec = xalloc((size_t)S * sizeof(double));
		c->msg_f_dec = xalloc((size_t)S * sizeof(double));
		for (int i = 0; i < S && i < m->S; i++) {
			const IrStage *st = &m->stages[i];
			double wread = 4.0 * (double)st->params / cc->mem_bandwidth;
			c->f_dec[i] = rows * st->flops_f / T / cc->flops;
			if (c->f_dec[i] < wread)
				c->f_dec[i] = wread;
			if (c->f[i] < wread)
				c->f[i] = wread;
			c->msg_f_dec[i] = cc->latency + rows * (double)st->out_bytes / T
			                  / cc->bandwidth;
		}
		c->msg_tok = cc->latency + rows * 4.0 / cc->bandwidth;
		c->msg_kv = xalloc((size_t)S * sizeof(double));
		for (int i = 0; i < S && i < m->S; i++)
			c->msg_kv[i] = cc->latency + (double)ir_kv_bytes(m, i) / m->pipe.M / cc->bandwidth;
		c->describe = xprintf("%s; generate: a decode step is 1/T of the prefill's FLOPs "
		                      "(T = %lld), and any step at least one read of the stage's "
		                      "weights at %g B/s", c->describe, (long long)T,
		                      cc->mem_bandwidth);
	}
	return c;
}

/* 1234567 -> "1,234,567" */
static const char *commas(long long v)
{
	char buf[32];
	int n = snprintf(buf, sizeof buf, "%lld", v < 0 ? -v : v);
	char *out = xalloc(48);
	int j = 0;
	if (v < 0)
		out[j++] = '-';
	for (int i = 0; i < n; i++) {
		out[j++] = buf[i];
		if ((n - i - 1) % 3 == 0 && i != n - 1)
			out[j++] = ',';
	}
	return out;
}

static const char *human(double bytes)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int u = 0;
	while (bytes >= 1024 && u < 4) {
		bytes /= 1024;
		u++;
	}
	return u ? xprintf("%.1f %s", bytes, unit[u]) : xprintf("%.0f B", bytes);
}

static const char *flops_str(double f)
{
	if (f >= 1e12)
		return xprintf("%.2f T", f / 1e12);
	if (f >= 1e9)
		return xprintf("%.2f G", f / 1e9);
	if (f >= 1e6)
		return xprintf("%.2f M", f / 1e6);
	if (f >= 1e3)
		return xprintf("%.2f K", f / 1e3);
	return xprintf("%.0f ", f);
}

/* The optimizer as it could be written: the arguments that differ from
 * torch.optim's defaults (adamw's weight decay always). */
static const char *optim_desc(const Pipeline *pp)
{
	if (pp->optim == OPT_NONE)
		return "inference only";
	const char *s = xprintf("%s(lr = %g", pp->optim == OPT_SGD ? "sgd" : pp->decoupled
	                        ? "adamw" : "adam", pp->lr);
	if (pp->momentum > 0)
		s = xprintf("%s, momentum = %g", s, pp->momentum);
	if (pp->beta1 != 0.9)
		s = xprintf("%s, beta1 = %g", s, pp->beta1);
	if (pp->beta2 != 0.999)
		s = xprintf("%s, beta2 = %g", s, pp->beta2);
	if (pp->eps != 1e-8)
		s = xprintf("%s, eps = %g", s, pp->eps);
	if (pp->weight_decay > 0 || pp->decoupled)
		s = xprintf("%s, weight_decay = %g", s, pp->weight_decay);
	if (pp->nesterov)
		s = xprintf("%s, nesterov = true", s);
	return xprintf("%s)", s);
}

/* The training keys beyond the optimizer, as written (with the schedule's
 * horizon resolved), each after a space; "" when none is used. */
static const char *train_desc(const Pipeline *pp)
{
	const char *s = "";
	if (pp->optim == OPT_NONE)
		return s;
	if (pp->lr_schedule != LR_CONSTANT)
		s = xprintf(" lr_schedule = %s(warmup = %lld, total = %lld, min_lr = %g),",
		            pp->lr_schedule == LR_COSINE ? "cosine" : "linear", pp->lr_warmup,
		            pp->lr_total, pp->min_lr);
	else if (pp->lr_warmup > 0)
		s = xprintf(" lr_schedule = constant(warmup = %lld),", pp->lr_warmup);
	if (pp->clip_grad_norm > 0)
		s = xprintf("%s clip_grad_norm = %g,", s, pp->clip_grad_norm);
	if (pp->decay_matrices)
		s = xprintf("%s decay = matrices,", s);
	if (pp->shuffle)
		s = xprintf("%s shuffle = true,", s);
	return *s ? xprintf("%.*s", (int)strlen(s) - 1, s) : s;
}

void check_summary(FILE *out, const IrModel *m)
{
	const Pipeline *pp = &m->pipe;
	long long params = 0;
	double ff = 0, fb = 0;
	for (int l = 0; l < m->nlayers; l++) {
		params += m->layers[l].nparam_elems;
		ff += m->layers[l].flops_f;
		fb += m->layers[l].flops_b + m->layers[l].flops_w;
	}
	fprintf(out, "%s: model %s, %d layers, %s parameters (%s in f32)\n", m->file->name,
	        m->name, m->nlayers, commas(params), human(4.0 * (double)params));
	for (int t = 0; t < m->ntensors && m->tensors[t].producer < 0; t++) {
		const IrTensor *in = &m->tensors[t];
		fprintf(out, "%sinput %s: %s[batch", t ? "; " : "  ", in->name, dtype_name(in->dtype));
		for (int i = 0; i < in->ndim; i++)
			fprintf(out, ", %lld", (long long)in->dims[i]);
		fputs("]", out);
	}
	if (m->target_name)
		fprintf(out, "; target %s: %s[batch%s]", m->target_name, dtype_name(m->target_dtype),
		        m->target_width > 1 ? xprintf(", %lld", (long long)m->target_width) : "");
	fprintf(out, "; loss %s\n", m->loss == LOSS_CROSS_ENTROPY ? "cross_entropy"
	                            : m->loss == LOSS_MSE ? "mse"
	                            : m->loss == LOSS_NEXT_TOKEN ? "next_token" : "none");
	fprintf(out, "  per sample: forward %sFLOP, backward %sFLOP\n", flops_str(ff), flops_str(fb));
	const char *sched = pp->sched == SK_ZBAUTO ? xprintf("zb-auto(memory = %g)", pp->zb_memory)
	                    : sched_label_of(pp->sched, pp->V, pp->sched_path);
	fprintf(out, "  pipeline: %d stage%s", pp->P, pp->P == 1 ? "" : "s");
	if (pp->V > 1)
		fprintf(out, " x %d virtual", pp->V);
	if (pp->R > 1)
		fprintf(out, " x %d replicas (%d ranks)", pp->R, pp->P * pp->R);
	fprintf(out, ", batch %lld = %s%d micro-batch%s of %lld rows, schedule %s, %s\n", pp->B,
	        pp->R > 1 ? xprintf("%d x ", pp->R) : "", pp->M, pp->M == 1 ? "" : "es",
	        pp->B / ((long long)pp->R * pp->M), sched, optim_desc(pp));
	const char *tr = train_desc(pp);
	if (*tr)
		fprintf(out, "  training:%s\n", tr);
	fprintf(out, "  partition: %s\n", pp->part_auto ? "auto (balanced by the cost model)"
	                                                 : "as written");
	if (pp->dtype != DT_F32)
		fprintf(out, "  dtype: %s values between layers and on the wire (2 bytes each), f32 "
		        "arithmetic%s (docs/precision.md)\n", dtype_name(pp->dtype),
		        pp->optim != OPT_NONE ? ", f32 gradients and master weights" : "");
	if (pp->sched == SK_GENERATE) {
		fprintf(out, "  generate: %d new tokens per sequence after prompts of up to %lld, "
		        "%s%s; key/value caches hold %lld positions\n", pp->gen_tokens,
		        (long long)m->seq_max, pp->sample ? xprintf("sample(temperature = %g, "
		        "top_k = %d, seed = %lld)", pp->temperature, pp->top_k, pp->sample_seed)
		        : "greedy", pp->eos >= 0 ? xprintf(", eos = %lld", pp->eos) : "",
		        (long long)pp->kv_cap);
		if (pp->disagg)
			fprintf(out, "  prefill: disaggregated: ranks 0..%d prefill and hand each group's "
			        "caches to ranks %d..%d, which decode (%d ranks)\n", pp->P - 1, pp->P,
			        2 * pp->P - 1, 2 * pp->P);
		for (int s = 0; s < m->S; s++)
			fprintf(out, "  kv cache stage %d: %s bytes (%s)\n", s,
			        commas(ir_kv_bytes(m, s)), human((double)ir_kv_bytes(m, s)));
	}

	if (pp->sched == SK_PIPEDREAM || pp->sched == SK_2BW) {
		fprintf(out, "  asynchronous: no flush; a run of %d step%s is one stream of %d "
		        "micro-batches, %s\n", pp->steps, pp->steps == 1 ? "" : "s",
		        pp->steps * pp->M, pp->sched == SK_2BW
		        ? "each step computing with the weights one update old"
		        : "each applying its own gradient after its backward");
		for (int r = 0; r < pp->P; r++) {
			int inflight = pp->inflight ? pp->inflight[r] : pp->P - r;
			int nver = pp->sched == SK_2BW ? 2 : inflight;
			fprintf(out, "  rank %d: %d micro-batch%s in flight, %d weight version%s "
			        "(%s bytes)\n", r, inflight, inflight == 1 ? "" : "es", nver,
			        nver == 1 ? "" : "s",
			        commas(4 * nver * (m->stages ? m->stages[r].params : 0)));
		}
	}

	/* Per layer, for models small enough to read. */
	if (m->nlayers <= 200) {
		fprintf(out, "\n  %-14s %-15s %-14s %12s %12s %14s\n", "layer", "kind", "width",
		        "params", "fwd FLOP", "kept bytes");
		for (int l = 0; l < m->nlayers; l++) {
			const IrLayer *L = &m->layers[l];
			fprintf(out, "  %-14s %-15s %-14s %12s %11s  %13s\n", L->name,
			        layer_kind_name(L->kind),
			        xprintf("%lld -> %lld", (long long)L->in_w, (long long)L->out_w),
			        commas(L->nparam_elems), flops_str(L->flops_f), commas(L->act_bytes));
		}
	}
	fprintf(out, "\n  %-6s %-5s %-24s %12s %12s %12s %14s\n", "stage", "rank", "layers",
	        "params", "fwd FLOP", "bwd FLOP", "act bytes");
	for (int s = 0; s < m->S; s++) {
		const IrStage *st = &m->stages[s];
		const char *range = st->last - st->first == 1
		                    ? m->layers[st->first].name
		                    : xprintf("%s .. %s", m->layers[st->first].name,
		                              m->layers[st->last - 1].name);
		fprintf(out, "  %-6d %-5d %-24s %12s %11s  %11s  %13s%s\n", s, st->rank, range,
		        commas(st->params), flops_str(st->flops_f), flops_str(st->flops_b + st->flops_w),
		        commas(st->act_bytes),
		        st->nrecompute ? xprintf("  (recompute %d)", st->nrecompute) : "");
	}
	fputs("  (FLOP and act bytes are per sample; act bytes are what one sample keeps "
	      "from forward to backward)\n", out);
	/* What crosses each boundary: derived from what later layers read. */
	int *side = xalloc((size_t)(m->ntensors + 1) * sizeof *side);
	for (int s = 1; s < m->S; s++) {
		int first = m->stages[s].first;
		const IrTensor *mt = &m->tensors[m->layers[first - 1].out];
		int n = ir_side_tensors(m, first, side);
		fprintf(out, "  stage %d -> %d: %s", s - 1, s, mt->name);
		for (int k = 0; k < n; k++)
			fprintf(out, " + %s", m->tensors[side[k]].name);
		fprintf(out, " (%s bytes per sample)\n", commas(ir_boundary_bytes(m, first)));
	}
	for (int l = 0; l < m->nlayers; l++) {
		const IrLayer *L = &m->layers[l];
		if (L->tied < 0)
			continue;
		const IrLayer *E = &m->layers[L->tied];
		int split = 0;
		for (int s = 0; s < m->S; s++)
			if (l >= m->stages[s].first && l < m->stages[s].last)
				split = !(L->tied >= m->stages[s].first && L->tied < m->stages[s].last);
		fprintf(out, "  %s uses %s's token embedding %s [%lld, %lld]%s\n", L->name, E->name,
		        E->params[0].name, (long long)E->vocab, (long long)E->d,
		        !split ? "" : pp->optim != OPT_NONE ? ": its stage holds a copy; the "
		        "copies' gradients are summed before every optimizer step"
		        : ": its stage holds a copy, loaded from the same tensor");
	}
}

/* ---- --cost ---- */

static const char *skip_ws(const char *p)
{
	while (isspace((unsigned char)*p))
		p++;
	return p;
}

/* A finite number at *pp (advanced past it); -1 if none. */
static int number_at(const char **pp, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(*pp, &end);
	if (end == *pp || errno == ERANGE || !isfinite(v))
		return -1;
	*pp = end;
	*out = v;
	return 0;
}

/* name(key = number, ...): the keys in keys[0..nk), each at most once,
 * those in need[] required; vals[k] NAN when absent.  Returns 0 or -1 with
 * *why. */
static int call_args(const char *text, const char *name, const char *const *keys, int nk,
                     unsigned need, double *vals, const char **why)
{
	const char *p = skip_ws(text + strlen(name));
	const char *eg = !strcmp(name, "times") ? "times(F = 18.5, B = 18.1, W = 9.3, comm = 0.6)"
	               : "gpu(flops = 989e12, bandwidth = 50e9, latency = 5e-6, efficiency = 0.5)";
	for (int k = 0; k < nk; k++)
		vals[k] = NAN;
	if (*p != '(') {
		*why = xprintf("--cost %s needs its arguments: %s", name, eg);
		return -1;
	}
	p = skip_ws(p + 1);
	while (*p != ')') {
		const char *k0 = p;
		while (isalnum((unsigned char)*p) || *p == '_')
			p++;
		size_t kl = (size_t)(p - k0);
		int k;
		for (k = 0; k < nk && (strlen(keys[k]) != kl || strncmp(keys[k], k0, kl)); k++)
			;
		if (!kl || k == nk) {
			const char *list = keys[0];
			for (int j = 1; j < nk; j++)
				list = xprintf("%s, %s", list, keys[j]);
			*why = kl ? xprintf("--cost %s has no argument '%.*s' (it takes %s)", name,
			                    (int)kl, k0, list)
			          : xprintf("--cost %s: expected an argument name at '%s' (%s)", name,
			                    k0, eg);
			return -1;
		}
		if (!isnan(vals[k])) {
			*why = xprintf("--cost %s: argument '%s' given twice", name, keys[k]);
			return -1;
		}
		p = skip_ws(p);
		if (*p != '=') {
			*why = xprintf("--cost %s: expected '=' after '%s' (%s)", name, keys[k], eg);
			return -1;
		}
		p = skip_ws(p + 1);
		if (number_at(&p, &vals[k]) != 0 || vals[k] < 0) {
			*why = xprintf("--cost %s: '%s' needs a number >= 0", name, keys[k]);
			return -1;
		}
		p = skip_ws(p);
		if (*p == ',')
			p = skip_ws(p + 1);
		else if (*p != ')') {
			*why = xprintf("--cost %s: expected ',' or ')' at '%s'", name, p);
			return -1;
		}
	}
	if (*skip_ws(p + 1)) {
		*why = xprintf("--cost %s: unexpected '%s' after ')'", name, skip_ws(p + 1));
		return -1;
	}
	for (int k = 0; k < nk; k++)
		if ((need >> k & 1) && isnan(vals[k])) {
			*why = xprintf("--cost %s needs '%s': %s", name, keys[k], eg);
			return -1;
		}
	return 0;
}

static double *one(double v)
{
	double *p = xalloc(sizeof *p);
	*p = v;
	return p;
}

/* A JSON value that is a number or an array of numbers, at *pp. */
static int json_numbers(const char **pp, double **out, int *n)
{
	const char *p = skip_ws(*pp);
	double v;
	if (*p != '[') {
		if (number_at(&p, &v) != 0)
			return -1;
		*out = one(v);
		*n = 1;
		*pp = p;
		return 0;
	}
	VEC(double) a = { 0 };
	p = skip_ws(p + 1);
	if (*p != ']')
		for (;;) {
			p = skip_ws(p);
			if (number_at(&p, &v) != 0)
				return -1;
			VEC_PUSH(a, v);
			p = skip_ws(p);
			if (*p == ']')
				break;
			if (*p != ',')
				return -1;
			p++;
		}
	if (!a.n)
		return -1;
	*out = a.v;
	*n = a.n;
	*pp = p + 1;
	return 0;
}

static int cost_file(const char *path, CostOption *o, const char **why)
{
	SrcFile *f = src_load(path);
	if (!f) {
		*why = xprintf("--cost %s: cannot read the file", path);
		return 1;
	}
	static const char *const keys[] = { "F", "B", "W", "comm", "mem_B", "mem_W" };
	double *arr[6] = { 0 };
	int cnt[6] = { 0 };
	const char *p = skip_ws(f->text);
	const char *form = "{\"F\": [...], \"B\": [...], \"W\": [...], \"comm\": [...]}, "
	                   "a number or one per stage, optionally \"mem_B\" and \"mem_W\"";
	if (*p != '{')
		goto bad;
	p = skip_ws(p + 1);
	while (*p != '}') {
		if (*p != '"')
			goto bad;
		const char *k0 = ++p;
		while (*p && *p != '"')
			p++;
		if (!*p)
			goto bad;
		size_t kl = (size_t)(p - k0);
		int k;
		for (k = 0; k < 6 && (strlen(keys[k]) != kl || strncmp(keys[k], k0, kl)); k++)
			;
		if (k == 6) {
			*why = xprintf("%s: unknown key \"%.*s\" (the keys are F, B, W, comm, mem_B "
			               "and mem_W)", path, (int)kl, k0);
			return 1;
		}
		if (arr[k]) {
			*why = xprintf("%s: key \"%s\" given twice", path, keys[k]);
			return 1;
		}
		p = skip_ws(p + 1);
		if (*p != ':')
			goto bad;
		p++;
		if (json_numbers(&p, &arr[k], &cnt[k]) != 0) {
			*why = xprintf("%s: \"%s\" must be a number or an array of numbers", path,
			               keys[k]);
			return 1;
		}
		for (int i = 0; i < cnt[k]; i++)
			if (arr[k][i] < 0) {
				*why = xprintf("%s: \"%s\" has a negative entry (%g)", path, keys[k],
				               arr[k][i]);
				return 1;
			}
		p = skip_ws(p);
		if (*p == ',')
			p = skip_ws(p + 1);
		else if (*p != '}')
			goto bad;
	}
	if (*skip_ws(p + 1))
		goto bad;
	if (!arr[0] || !arr[1]) {
		*why = xprintf("%s: needs \"F\" and \"B\" (%s)", path, form);
		return 1;
	}
	int n = 1;
	for (int k = 0; k < 6; k++)
		if (cnt[k] > 1) {
			if (n > 1 && cnt[k] != n) {
				*why = xprintf("%s: \"%s\" has %d entries but another key has %d", path,
				               keys[k], cnt[k], n);
				return 1;
			}
			n = cnt[k];
		}
	/* every array n long; a single number stands for every stage */
	for (int k = 0; k < 6; k++) {
		if (!arr[k] && k >= 4)
			continue;
		double *v = xalloc((size_t)n * sizeof *v);
		for (int i = 0; i < n; i++)
			v[i] = arr[k] ? arr[k][cnt[k] == 1 ? 0 : i] : 0;
		arr[k] = v;
	}
	o->n = n;
	o->f = arr[0]; o->b = arr[1]; o->w = arr[2]; o->comm = arr[3];
	o->mem_b = arr[4]; o->mem_w = arr[5];
	return 0;
bad:
	*why = xprintf("%s: not of the form %s", path, form);
	return 1;
}

int cost_option_parse(const char *text, const CostConsts *base, CostOption *o,
                      const char **why)
{
	memset(o, 0, sizeof *o);
	o->text = text;
	o->cc = *base;
	size_t len = strlen(text);
	if (!strcmp(text, "model")) {
		o->kind = COST_MODEL;
		return 0;
	}
	if (!strcmp(text, "uniform")) {
		o->kind = COST_UNIFORM;
		return 0;
	}
	if (len > 5 && !strcmp(text + len - 5, ".json")) {
		o->kind = COST_FILE;
		return cost_file(text, o, why);
	}
	if (!strncmp(text, "times", 5) && (text[5] == '(' || isspace((unsigned char)text[5])
	                                   || !text[5])) {
		static const char *const keys[] = { "F", "B", "W", "comm", "mem_B", "mem_W" };
		double v[6];
		if (call_args(text, "times", keys, 6, 3u, v, why) != 0)
			return 2;
		if ((!isnan(v[4]) && !(v[4] > 0)) || (!isnan(v[5]) && isnan(v[4]))) {
			*why = "--cost times: mem_B must be > 0, and mem_W needs mem_B";
			return 2;
		}
		o->kind = COST_TIMES;
		o->n = 1;
		o->f = one(v[0]);
		o->b = one(v[1]);
		o->w = one(isnan(v[2]) ? 0 : v[2]);
		o->comm = one(isnan(v[3]) ? 0 : v[3]);
		o->mem_b = isnan(v[4]) ? NULL : one(v[4]);
		o->mem_w = isnan(v[4]) ? NULL : one(isnan(v[5]) ? v[4] / 2 : v[5]);
		return 0;
	}
	if (!strncmp(text, "gpu", 3) && (text[3] == '(' || isspace((unsigned char)text[3])
	                                 || !text[3])) {
		static const char *const keys[] = { "flops", "bandwidth", "latency", "efficiency",
		                                    "mem_bandwidth" };
		double v[5];
		if (call_args(text, "gpu", keys, 5, 15u, v, why) != 0)
			return 2;
		if (!(v[0] > 0) || !(v[1] > 0) || !(v[3] > 0) || v[3] > 1
		    || (!isnan(v[4]) && !(v[4] > 0))) {
			*why = "--cost gpu: flops, bandwidth (and mem_bandwidth) must be > 0 and "
			       "efficiency in (0, 1]";
			return 2;
		}
		o->kind = COST_GPU;
		o->cc.flops = v[0] * v[3];
		o->cc.flops_bwd = 0;
		o->cc.bandwidth = v[1];
		o->cc.latency = v[2];
		/* The device's memory streams the GEMMs' weights too; without
		 * mem_bandwidth they are not priced (this machine's DRAM would
		 * say nothing of the device's). */
		o->cc.weight_bandwidth = INFINITY;
		if (!isnan(v[4]))
			o->cc.mem_bandwidth = o->cc.weight_bandwidth = v[4];
		return 0;
	}
	*why = xprintf("unknown --cost '%s' (model, uniform, times(F = .., B = .., W = .., "
	               "comm = ..), gpu(flops = .., bandwidth = .., latency = .., efficiency = "
	               "..) or FILE.json)", text);
	return 2;
}

static double pick(const double *v, int n, int i)
{
	return v[n == 1 ? 0 : i];
}

SimCost *cost_from_option(const CostOption *o, const IrModel *m, const Schedule *s,
                          const char **why)
{
	switch (o->kind) {
	case COST_UNIFORM:
		return simcost_uniform(s);
	case COST_MODEL:
		return cost_model(m, s, &o->cc);
	case COST_GPU: {
		SimCost *c = cost_model(m, s, &o->cc);
		c->name = "gpu";
		c->describe = xprintf("gpu: %s (%s)", o->text, c->describe);
		return c;
	}
	default:
		break;
	}
	int S = s->S;
	if (o->n != 1 && o->n != S) {
		*why = xprintf("--cost %s gives %d stages, but the pipeline has %d (stages x "
		               "virtual stages)", o->text, o->n, S);
		return NULL;
	}
	SimCost *c = simcost_new(o->kind == COST_TIMES ? "times" : "file", S);
	for (int i = 0; i < S; i++) {
		double w = pick(o->w, o->n, i);
		c->f[i] = pick(o->f, o->n, i);
		c->b[i] = pick(o->b, o->n, i) + (s->split ? 0 : w);
		c->w[i] = s->split ? w : 0;
		c->r[i] = c->f[i];
		c->msg_f[i] = c->msg_b[i] = pick(o->comm, o->n, i);
	}
	if (o->kind == COST_TIMES)
		c->describe = xprintf("times: F = %g, B = %g, W = %g (%s), R = F, messages %g "
		                      "from the sender's end, no rank busy for them; optimizer "
		                      "and allreduce free", o->f[0], o->b[0], o->w[0], s->split
		                      ? "split backward" : "a backward costs B + W", o->comm[0]);
	else
		c->describe = xprintf("file %s: F, B, W and comm per stage (%s), R = F, messages "
		                      "from the sender's end, no rank busy for them; optimizer "
		                      "and allreduce free", o->text, s->split ? "split backward"
		                      : "a backward costs B + W");
	return c;
}

void cost_act_memory(const CostOption *o, const IrModel *m, int S, double *mem_b,
                     double *mem_w)
{
	double rows = m ? (double)m->pipe.B / ((double)m->pipe.R * m->pipe.M) : 1;
	for (int i = 0; i < S; i++) {
		if (o->mem_b && (o->n == 1 || o->n == S)) {
			mem_b[i] = pick(o->mem_b, o->n, i);
			mem_w[i] = o->mem_w ? pick(o->mem_w, o->n, i) : mem_b[i] / 2;
		} else {
			mem_b[i] = m && i < m->S ? rows * (double)m->stages[i].act_bytes : 1;
			mem_w[i] = mem_b[i] / 2;
		}
	}
}

int cost_prepare_spec(SchedSpec *spec, const CostOption *o, const IrModel *m,
                      const char **why)
{
	if (spec->kind != SK_ZBAUTO || !spec->training)
		return 0;
	Schedule *shape = sched_new(SK_ZBAUTO, spec->P, 1, spec->M, spec->R, 1, 1);
	SimCost *c = cost_from_option(o, m, shape, why);
	if (!c)
		return -1;
	int S = m ? m->S : spec->P;
	double *mb = xalloc((size_t)S * sizeof *mb), *mw = xalloc((size_t)S * sizeof *mw);
	cost_act_memory(o, m, S, mb, mw);
	spec->cost = c;
	spec->mem_b = mb;
	spec->mem_w = mw;
	return 0;
}
