/* ir.c — the dtype table, derived quantities of the model IR and its dump. */
#include "ir.h"

#include <math.h>
#include <string.h>

const char *const dtype_names[DT_COUNT] = {
#define X(e, s, b) s,
	DTYPES(X)
#undef X
};
static const int dtype_sizes[] = {
#define X(e, s, b) b,
	DTYPES(X)
#undef X
};

const char *dtype_name(int dt) { return dtype_names[dt]; }
int dtype_bytes(int dt) { return dtype_sizes[dt]; }

int dtype_from_name(const char *s)
{
	for (int i = 0; i < DT_COUNT; i++)
		if (strcmp(s, dtype_names[i]) == 0)
			return i;
	return -1;
}

/* Each tensor's last reader: the layers' main and side inputs, and the
 * loss (which reads at the last layer). */
static int *last_readers(const IrModel *m)
{
	int *last = xalloc((size_t)(m->ntensors + 1) * sizeof *last);
	for (int t = 0; t < m->ntensors; t++)
		last[t] = -1;
	for (int l = 0; l < m->nlayers; l++) {
		const IrLayer *L = &m->layers[l];
		if (L->in >= 0 && L->in < m->ntensors)
			last[L->in] = l;
		for (int k = 0; k < 2; k++)
			if (L->side[k] >= 0 && L->side[k] < m->ntensors)
				last[L->side[k]] = l;
	}
	if (m->loss_ids >= 0 && m->nlayers > 0)
		last[m->loss_ids] = m->nlayers - 1;
	return last;
}

int ir_side_tensors(const IrModel *m, int first, int *out)
{
	if (first <= 0 || first >= m->nlayers)
		return 0;
	int *last = last_readers(m);
	int main_t = m->layers[first - 1].out, n = 0;
	for (int t = 0; t < m->ntensors; t++)
		if (t != main_t && m->tensors[t].producer < first && last[t] >= first) {
			if (out)
				out[n] = t;
			n++;
		}
	return n;
}

/* Every tensor produced before layer `first` (or a model input) and read by
 * a layer at or after it crosses the boundary: tensor t crosses every
 * boundary in [producer + 1, last reader].  With the core layers that is
 * exactly the previous layer's output.  One pass over the layers finds
 * each tensor's last reader; a difference array then sums all boundaries
 * at once (called per layer by the partitioner, so no per-call scans). */
static void cross_elems(const IrModel *m, int64_t *cross)
{
	int n = m->nlayers;
	int *last = last_readers(m);
	memset(cross, 0, (size_t)(n + 2) * sizeof *cross);
	for (int t = 0; t < m->ntensors; t++) {
		int from = m->tensors[t].producer + 1;
		if (last[t] >= from) {
			cross[from] += m->tensors[t].elems;
			cross[last[t] + 1] -= m->tensors[t].elems;
		}
	}
	for (int b = 1; b <= n; b++)
		cross[b] += cross[b - 1];
}

void ir_index(IrModel *m)
{
	m->cross = xalloc((size_t)(m->nlayers + 2) * sizeof *m->cross);
	cross_elems(m, m->cross);
}

int64_t ir_boundary_bytes(const IrModel *m, int first)
{
	if (first < 0 || first > m->nlayers)
		return 0;
	int64_t esz = dtype_bytes(m->pipe.dtype);
	if (m->cross)
		return m->cross[first] * esz;
	int64_t *cross = xalloc((size_t)(m->nlayers + 2) * sizeof *cross);
	cross_elems(m, cross);
	return cross[first] * esz;
}

void ir_stage_costs(IrModel *m)
{
	for (int s = 0; s < m->S; s++) {
		IrStage *st = &m->stages[s];
		int n = st->last - st->first;
		st->nrecompute = (int)lround(st->recompute * n);
		st->params = st->copy_params = 0;
		st->flops_f = st->flops_b = st->flops_w = st->gemm_elems = st->gemm_elems_b = 0;
		st->act_bytes = 0;
		st->in_bytes = s > 0 ? ir_boundary_bytes(m, st->first) : 0;
		st->out_bytes = s + 1 < m->S ? ir_boundary_bytes(m, st->last) : 0;
		int rec_from = st->last - st->nrecompute;     /* layers >= rec_from are recomputed */
		for (int l = st->first; l < st->last; l++) {
			const IrLayer *L = &m->layers[l];
			st->params += L->nparam_elems;
			if (L->tied >= 0 && !(L->tied >= st->first && L->tied < st->last))
				st->copy_params += m->layers[L->tied].params[0].numel;
			st->flops_f += L->flops_f;
			st->flops_b += L->flops_b;
			st->flops_w += L->flops_w;
			st->gemm_elems += L->gemm_elems;
			if (L->flops_b > 0)
				st->gemm_elems_b += L->gemm_elems;
			if (l < rec_from || l == st->last - 1)
				st->act_bytes += L->act_bytes;
		}
		/* The stage's received input is held until backward. */
		st->act_bytes += st->in_bytes;
		/* The recomputed region restarts from its input, which must be kept. */
		if (st->nrecompute > 0 && rec_from > st->first) {
			const IrLayer *prev = &m->layers[rec_from - 1];
			if (prev->act_bytes == 0)
				st->act_bytes += m->tensors[prev->out].elems * 4;
		}
	}
}

void ir_dump(FILE *out, const IrModel *m)
{
	fprintf(out, "model %s: %d layers, %d tensors\n", m->name, m->nlayers, m->ntensors);
	for (int t = 0; t < m->ntensors; t++) {
		const IrTensor *T = &m->tensors[t];
		fprintf(out, "  tensor %-12s %s[batch", T->name, dtype_name(T->dtype));
		for (int i = 0; i < T->ndim; i++)
			fprintf(out, ", %lld", (long long)T->dims[i]);
		fprintf(out, "] producer %d\n", T->producer);
	}
	for (int l = 0; l < m->nlayers; l++) {
		const IrLayer *L = &m->layers[l];
		fprintf(out, "  layer %-12s %-9s in t%d (%lld) out t%d (%lld) params %lld "
		        "flops f %.0f b %.0f w %.0f act %lld\n", L->name, layer_kind_name(L->kind),
		        L->in, (long long)L->in_w, L->out, (long long)L->out_w,
		        (long long)L->nparam_elems, L->flops_f, L->flops_b, L->flops_w,
		        (long long)L->act_bytes);
	}
	for (int s = 0; s < m->S; s++) {
		const IrStage *st = &m->stages[s];
		fprintf(out, "  stage %d on rank %d: layers %d..%d recompute %d act %lld in %lld "
		        "out %lld\n", s, st->rank, st->first, st->last - 1, st->nrecompute,
		        (long long)st->act_bytes, (long long)st->in_bytes, (long long)st->out_bytes);
	}
}

int ir_kv_value_bytes(const IrModel *m)
{
	return m->pipe.dtype == DT_BF16 || m->pipe.dtype == DT_F16 ? 2 : 4;
}

int64_t ir_kv_bytes(const IrModel *m, int s)
{
	if (m->pipe.sched != SK_GENERATE)
		return 0;
	int64_t bytes = 0;
	for (int l = m->stages[s].first; l < m->stages[s].last; l++)
		if (LAYER(m->layers[l].kind)->kv_cache)
			bytes += 2 * (int64_t)m->pipe.B * m->pipe.kv_cap * layer_kv_width(&m->layers[l]) *
			         ir_kv_value_bytes(m);
	return bytes;
}

SchedSpec ir_sched_spec(const IrModel *m)
{
	SchedSpec sp = { 0 };
	sp.kind = m->pipe.sched;
	sp.P = m->pipe.P;
	sp.V = m->pipe.V;
	sp.M = m->pipe.M;
	sp.R = m->pipe.R;
	sp.training = m->pipe.optim != OPT_NONE;
	sp.path = m->pipe.sched_path;
	sp.ntok = m->pipe.sched == SK_GENERATE ? m->pipe.gen_tokens : 1;
	sp.disagg = m->pipe.sched == SK_GENERATE && m->pipe.disagg;
	sp.steps = m->pipe.steps;
	sp.inflight = m->pipe.inflight;
	sp.zb_memory = m->pipe.zb_memory;
	unsigned char *rc = xalloc((size_t)m->S + 1);
	int any = 0;
	for (int s = 0; s < m->S; s++)
		any |= rc[s] = m->stages[s].nrecompute > 0;
	sp.recompute = any ? rc : NULL;
	return sp;
}
