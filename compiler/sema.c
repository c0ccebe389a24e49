/* sema.c — the semantic pass.
 *
 * Reads the syntax tree, reports every independent error it finds (each at
 * the offending token), and builds the model IR: tensors, layers with their
 * parameters, FLOPs and activation bytes, and the pipeline settings.  The
 * checks, in order: the model's tensors; the layers (kinds, arguments,
 * widths chained through the network); the loss; the pipeline keys and the
 * constraints between them.  The partition itself is chosen later
 * (partition.c); here only its syntax and sums are checked.
 */
#include "sema.h"
#include "rt_tf_sizes.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Reports an unknown name: with a suggestion from `names` when one is
 * close, else with the whole list when it is short.  Returns the
 * suggestion (or NULL). */
static const char *unknown(Loc loc, const char *what, const char *s, const char *const *names,
                           int n)
{
	const char *best = closest_name(s, names, n);
	if (best) {
		diag_error(loc, "unknown %s '%s'; did you mean '%s'?", what, s, best);
	} else if (n <= 20) {
		char *list = "";
		for (int i = 0; i < n; i++)
			list = xprintf("%s%s'%s'", list, !i ? "" : i == n - 1 ? " or " : ", ", names[i]);
		diag_error(loc, "unknown %s '%s'; expected %s", what, s, list);
	} else {
		diag_error(loc, "unknown %s '%s'", what, s);
	}
	return best;
}

/* ------------------------------------------------------------------ */
/* Layer arguments: the catalogue's table per kind (layers.c) binds     */
/* positional and named arguments; here their types and ranges are     */
/* checked.                                                            */

/* Binds l's arguments to spec; vals[i] gets argument i's value.  Returns 0
 * if all is well. */
static int bind_args(const LayerDecl *l, const LayerCatalogue *ks, double *vals, const char **svals,
                     Loc *locs)
{
	int bad = 0;
	int set[8] = { 0 };
	const char *names[8];
	for (int i = 0; i < ks->nargs; i++) {
		vals[i] = ks->args[i].dflt;
		svals[i] = NULL;
		locs[i] = l->kind_loc;
		names[i] = ks->args[i].name;
	}
	if (ks->nargs == 0 && l->has_parens && l->args.n > 0) {
		diag_error(l->args.v[0]->val->loc, "'%s' takes no arguments", l->kind);
		return -1;
	}
	int pos = 0, seen_named = 0;
	for (int i = 0; i < l->args.n; i++) {
		const Arg *a = l->args.v[i];
		int k;
		Loc at = a->key ? a->key_loc : a->val->loc;
		if (a->key) {
			seen_named = 1;
			for (k = 0; k < ks->nargs && strcmp(ks->args[k].name, a->key); k++)
				;
			if (k == ks->nargs) {
				const char *best = closest_name(a->key, names, ks->nargs);
				if (best)
					diag_error(at, "'%s' has no argument '%s'; did you mean '%s'?",
					           l->kind, a->key, best);
				else
					diag_error(at, "'%s' has no argument '%s' (usage: %s)",
					           l->kind, a->key, ks->usage);
				bad = 1;
				continue;
			}
		} else {
			if (seen_named) {
				diag_error(at, "positional argument after a named one");
				bad = 1;
				continue;
			}
			k = pos++;
			if (k >= ks->nargs) {
				diag_error(at, "too many arguments to '%s' (usage: %s)", l->kind, ks->usage);
				bad = 1;
				break;
			}
		}
		if (set[k]) {
			diag_error(at, "argument '%s' of '%s' given twice", ks->args[k].name, l->kind);
			bad = 1;
			continue;
		}
		set[k] = 1;
		const Value *v = a->val;
		locs[k] = v->loc;
		switch (ks->args[k].type) {
		case LA_NAME:
			if (v->kind != V_WORD) {
				diag_error(v->loc, "'%s' of '%s' names a %s", ks->args[k].name, l->kind,
				           !strcmp(ks->args[k].name, "tied") ? "layer" : "model input");
				bad = 1;
			}
			svals[k] = v->s;
			break;
		case LA_WIDTH:
			if (v->kind != V_INT || v->i < 1) {
				diag_error(v->loc, "'%s' of '%s' must be a positive integer",
				           ks->args[k].name, l->kind);
				bad = 1;
			} else if (v->i > ((int64_t)1 << 31)) {
				diag_error(v->loc, "'%s' of '%s' is too large (%lld)", ks->args[k].name,
				           l->kind, v->i);
				bad = 1;
			}
			vals[k] = v->d;
			break;
		case LA_BOOL:
			if (v->kind == V_WORD && (!strcmp(v->s, "true") || !strcmp(v->s, "false"))) {
				vals[k] = !strcmp(v->s, "true");
			} else {
				diag_error(v->loc, "'%s' must be true or false", ks->args[k].name);
				bad = 1;
			}
			break;
		case LA_PROB:
			if ((v->kind != V_INT && v->kind != V_NUM) || !(v->d >= 0 && v->d < 1)) {
				diag_error(v->loc, "'%s' of '%s' must be a number with 0 <= p < 1",
				           ks->args[k].name, l->kind);
				bad = 1;
			}
			vals[k] = v->d;
			break;
		case LA_POSNUM:
			if ((v->kind != V_INT && v->kind != V_NUM) || !(v->d > 0) || isinf(v->d)) {
				diag_error(v->loc, "'%s' of '%s' must be a positive number",
				           ks->args[k].name, l->kind);
				bad = 1;
			}
			vals[k] = v->d;
			break;
		}
	}
	for (int k = 0; k < ks->nargs && !bad; k++)
		if (ks->args[k].required && !set[k]) {
			diag_error(l->has_parens ? l->args.n ? l->args.v[l->args.n - 1]->val->loc
			                                      : l->kind_loc
			                         : l->kind_loc,
			           "'%s' needs its argument '%s' (usage: %s)", l->kind,
			           ks->args[k].name, ks->usage);
			bad = 1;
		}
	return bad ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* Model block                                                         */

/* Every name declared so far, for duplicates: an open-addressing hash set
 * (a model may have 100,000 layers; a list would make checking quadratic). */
typedef struct Names {
	const char **name;      /* [cap], NULL = empty slot */
	Loc *loc;               /* [cap] */
	int n, cap;             /* cap: a power of two, more than 2n */
} Names;

static uint32_t name_hash(const char *s)
{
	uint32_t h = 2166136261u;       /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/* Declares `name` at loc; `copy_of` is the repeated declaration that
 * makes it (fc[3] makes fc0 .. fc2), or NULL. */
static int declare(Names *ns, const char *name, Loc loc, const LayerDecl *copy_of)
{
	if (2 * (ns->n + 1) >= ns->cap) {
		Names big = { xalloc(sizeof(char *) * (size_t)(ns->cap ? 2 * ns->cap : 64)),
		              xalloc(sizeof(Loc) * (size_t)(ns->cap ? 2 * ns->cap : 64)),
		              0, ns->cap ? 2 * ns->cap : 64 };
		for (int i = 0; i < ns->cap; i++)
			if (ns->name[i])
				declare(&big, ns->name[i], ns->loc[i], NULL);
		*ns = big;
	}
	uint32_t mask = (uint32_t)ns->cap - 1, i = name_hash(name) & mask;
	for (; ns->name[i]; i = (i + 1) & mask)
		if (strcmp(ns->name[i], name) == 0) {
			if (copy_of)
				diag_error(loc, "'%s[%lld]' makes '%s', which is already declared",
				           copy_of->name, copy_of->count, name);
			else
				diag_error(loc, "'%s' is already declared", name);
			diag_note(ns->loc[i], "'%s' was declared here", name);
			return -1;
		}
	ns->name[i] = name;
	ns->loc[i] = loc;
	ns->n++;
	return 0;
}

static int add_tensor(IrModel *m, int *cap, const char *name, int dtype, int ndim,
                      const int64_t *dims, int producer)
{
	if (m->ntensors == *cap) {
		*cap = *cap ? 2 * *cap : 16;
		m->tensors = xrealloc(m->tensors, (size_t)*cap * sizeof *m->tensors);
	}
	IrTensor *t = &m->tensors[m->ntensors];
	memset(t, 0, sizeof *t);
	t->name = name;
	t->dtype = dtype;
	t->ndim = ndim;
	t->elems = 1;
	for (int i = 0; i < ndim; i++) {
		t->dims[i] = dims[i];
		t->elems *= dims[i];
	}
	t->producer = producer;
	return m->ntensors++;
}

static void check_tensors(const Program *p, IrModel *m, Names *ns, int *tcap)
{
	int ntargets = 0;
	const TensorDecl *first_target = NULL;
	const char *seq_name = NULL;
	for (int i = 0; i < p->tensors.n; i++) {
		const TensorDecl *d = p->tensors.v[i];
		int bad = declare(ns, d->name, d->name_loc, NULL) != 0;
		int dt = dtype_from_name(d->dtype);
		if (dt < 0) {
			unknown(d->dtype_loc, "dtype", d->dtype, dtype_names, DT_COUNT);
			bad = 1;
		}
		int64_t dims[4];
		int nd = 0;
		if (!d->dims.v[0].name || strcmp(d->dims.v[0].name, "batch") != 0) {
			diag_error(d->dims.v[0].loc, "the first dimension of '%s' must be 'batch'",
			           d->name);
			bad = 1;
		}
		if (d->dims.n - 1 > 3) {
			diag_error(d->dims.v[4].loc, "'%s' has %d dimensions; at most 4 are supported",
			           d->name, d->dims.n);
			bad = 1;
		}
		for (int j = 1; j < d->dims.n && j < 4; j++) {
			const Dim *dm = &d->dims.v[j];
			if (dm->name) {
				diag_error(dm->loc, "dimension '%s' of '%s' must be a positive integer "
				           "(only the first dimension is 'batch')", dm->name, d->name);
				bad = 1;
			} else if (dm->n < 1 || dm->n > ((int64_t)1 << 31)) {
				diag_error(dm->loc, "dimension %lld of '%s' must be between 1 and 2^31",
				           dm->n, d->name);
				bad = 1;
			} else {
				dims[nd++] = dm->n;
			}
		}
		if (d->is_target) {
			if (++ntargets > 1) {
				diag_error(d->loc, "a model has at most one target");
				diag_note(first_target->loc, "the first target is here");
				continue;
			}
			first_target = d;
			if (bad)
				continue;
			m->target = 0;
			m->target_name = d->name;
			m->target_dtype = dt;
			int64_t w = 1;
			for (int j = 0; j < nd; j++)
				w *= dims[j];
			m->target_width = w;
			if (dt != DT_I32 && dt != DT_F32) {
				diag_error(d->dtype_loc, "a target is i32 (class ids) or f32, not %s",
				           d->dtype);
			}
			continue;
		}
		if (bad)
			continue;
		if (nd == 0) {
			diag_error(d->loc, "input '%s' needs a feature dimension: %s[batch, N]",
			           d->name, d->dtype);
			continue;
		}
		if (dt == DT_I32 && nd != 1) {
			diag_error(d->loc, "an i32 input holds token ids, a mask or token types: "
			           "i32[batch, LENGTH], not %d dimensions after batch", nd);
			continue;
		}
		int ti = add_tensor(m, tcap, d->name, dt, nd, dims, -1);
		if (dt == DT_I32) {
			m->tensors[ti].seq = 1;
			if (m->seq_max && m->seq_max != dims[0]) {
				diag_error(d->dims.v[1].loc, "sequence inputs share one length, but '%s' is "
				           "%lld long and '%s' %lld", d->name, (long long)dims[0],
				           seq_name, (long long)m->seq_max);
				continue;
			}
			m->seq_max = dims[0];
			seq_name = d->name;
		}
		m->ninputs++;
	}
	if (m->ninputs == 0 && p->tensors.n == ntargets)
		diag_error(p->name_loc, "model '%s' declares no input", p->name);
}

/* The checkpoint prefix of copy c of d (c < 0: not repeated): `from` with
 * {i} replaced, or the layer's name.  NULL after an error. */
static const char *param_prefix(const LayerDecl *d, const char *name, int c)
{
	if (!d->from)
		return name;
	VEC(char) r = { 0 };
	int used = 0;
	for (const char *p = d->from; *p; p++) {
		if (*p == '{') {
			if (!strncmp(p, "{i}", 3)) {
				if (c < 0) {
					diag_error(d->from_loc, "'{i}' in a prefix stands for the copy's index, "
					           "but '%s' is not repeated (layer %s[N] : ...)", d->name,
					           d->name);
					return NULL;
				}
				const char *num = xprintf("%d", c);
				for (; *num; num++)
					VEC_PUSH(r, *num);
				p += 2;
				used = 1;
				continue;
			}
			diag_error(d->from_loc, "unknown placeholder in prefix \"%s\": only {i} (the "
			           "copy's index) is replaced", d->from);
			return NULL;
		}
		VEC_PUSH(r, *p);
	}
	VEC_PUSH(r, 0);
	if (c >= 0 && d->count > 1 && !used) {
		diag_error(d->from_loc, "every copy of '%s' would bind the same tensors \"%s.*\"; "
		           "put {i} where the copy's index goes (\"%s.{i}\")", d->name, d->from,
		           d->from);
		return NULL;
	}
	if (!r.v[0]) {
		diag_error(d->from_loc, "an empty prefix binds nothing");
		return NULL;
	}
	return r.v;
}

/* A model input by name, or -1. */
static int find_input(const IrModel *m, const char *name)
{
	for (int t = 0; t < m->ntensors; t++)
		if (m->tensors[t].producer < 0 && !strcmp(m->tensors[t].name, name))
			return t;
	return -1;
}

/* The side input a layer reads: the one its argument names (an error if
 * there is none such), else the input called `dflt`, else -1. */
static int side_input(const IrModel *m, const char *named, Loc at, const char *dflt,
                      int seq_len, int *bad)
{
	int t = find_input(m, named ? named : dflt);
	if (named && t < 0) {
		diag_error(at, "'%s' is not an input of the model", named);
		*bad = 1;
		return -1;
	}
	if (t >= 0 && (m->tensors[t].dtype != DT_I32 || m->tensors[t].ndim != 1)) {
		diag_error(at, "input '%s' must be i32[batch, %d] to be used as a %s", m->tensors[t].name,
		           seq_len, dflt);
		*bad = 1;
		return -1;
	}
	return t;
}

/* The arguments that set a layer's widths, as written: "linear(12, 4)". */
static const char *width_call(const char *kind, const LayerCatalogue *lc, const double *vals)
{
	const char *call = xprintf("%s(", kind), *sep = "";
	for (int k = 0; k < lc->nargs; k++)
		if (lc->args[k].sets & (LF_IN_W | LF_OUT_W)) {
			call = xprintf("%s%s%lld", call, sep, (long long)vals[k]);
			sep = ", ";
		}
	return xprintf("%s)", call);
}

static int cmp_param_name(const void *a, const void *b)
{
	const IrParam *x = *(const IrParam *const *)a, *y = *(const IrParam *const *)b;
	int c = strcmp(x->name, y->name);
	return c ? c : x->loc.off < y->loc.off ? -1 : x->loc.off > y->loc.off;
}

/* `before`, here and below: the error count when sema_check began (the
 * library may check several programs in one process). */
static void check_layers(const Program *p, IrModel *m, Names *ns, int *tcap, int before)
{
	int nl = 0;
	for (int i = 0; i < p->layers.n; i++) {
		long long c = p->layers.v[i]->count;
		if (c > 100000) {
			diag_error(p->layers.v[i]->count_loc, "repeat count %lld is too large "
			           "(at most 100000)", c);
			return;
		}
		nl += c < 0 ? 1 : (int)c;
		if (nl > 1000000) {
			diag_error(p->layers.v[i]->loc, "too many layers (over 1,000,000)");
			return;
		}
	}
	m->layers = xalloc((size_t)(nl ? nl : 1) * sizeof *m->layers);
	/* The main path starts at the input called `ids` if there is one, else
	 * at the first input. */
	int cur = find_input(m, "ids");
	if (cur < 0)
		cur = m->ninputs ? 0 : -1;
	int start = cur;
	int bad_chain = cur < 0;
	const char *prev_name = cur >= 0 ? m->tensors[cur].name : NULL;
	int prev_is_input = 1;
	for (int i = 0; i < p->layers.n; i++) {
		const LayerDecl *d = p->layers.v[i];
		int kind = layer_kind_from_name(d->kind);
		if (d->count == 0 || d->count < -1) {
			diag_error(d->count_loc, "a repeat count must be at least 1");
			continue;
		}
		if (kind < 0) {
			unknown(d->kind_loc, "layer kind", d->kind, layer_kind_names, LK_COUNT);
			bad_chain = 1;
			continue;
		}
		const LayerCatalogue *lc = LAYER(kind);
		if (d->from && !layer_has_params(kind))
			diag_error(d->from_loc, "'from' binds a checkpoint prefix, but '%s' has no "
			           "parameters", d->kind);
		double vals[8];
		const char *svals[8];
		Loc locs[8];
		if (bind_args(d, lc, vals, svals, locs) != 0) {
			bad_chain = 1;
			continue;
		}
		/* What is wrong with the declaration is said once, not per copy. */
		int ha = layer_arg_index(kind, LF_HEADS), da = layer_arg_index(kind, LF_D);
		if (ha >= 0 && (int64_t)vals[da] % (int64_t)vals[ha]) {
			diag_error(locs[ha], "%lld heads do not divide d = %lld", (long long)vals[ha],
			           (long long)vals[da]);
			bad_chain = 1;
			continue;
		}
		if (d->from && layer_has_params(kind)
		    && !param_prefix(d, d->name, d->count < 0 ? -1 : 0)) {
			bad_chain = 1;
			continue;
		}
		int copies = d->count < 0 ? 1 : (int)d->count;
		for (int c = 0; c < copies; c++) {
			const char *name = d->count < 0 ? d->name : xprintf("%s%d", d->name, c);
			if (declare(ns, name, d->name_loc, d->count < 0 ? NULL : d) != 0)
				break;
			IrLayer *L = &m->layers[m->nlayers++];
			L->name = name;
			L->kind = (LayerKind)kind;
			L->loc = d->loc;
			L->in = cur;
			L->side[0] = L->side[1] = -1;
			L->tied = -1;
			const IrTensor *it = cur >= 0 ? &m->tensors[cur] : NULL;
			int64_t in_w = it ? it->dims[it->ndim - 1] : 0;
			int seq = it && it->seq;
			int64_t T = seq ? it->dims[0] : 0;
			L->in_w = L->out_w = in_w;
			int bad = 0;
			layer_set_args(L, vals);
			if (lc->input == LI_TOKENS) {
				int pa = layer_arg_index(kind, LF_POSITIONS);
				if (!bad_chain && (it->dtype != DT_I32 || !seq)) {
					diag_error(d->kind_loc, "'%s' reads token ids (an i32[batch, LENGTH] "
					           "input), but %s'%s' holds %s features", d->kind,
					           prev_is_input ? "input " : "", prev_name, dtype_name(it->dtype));
					bad = 1;
				} else if (!bad_chain && pa >= 0 && T > L->positions) {
					diag_error(locs[pa], "'%s' has %lld positions, but '%s' is %lld tokens "
					           "long", name, (long long)L->positions, m->tensors[cur].name,
					           (long long)T);
					bad = 1;
				}
			} else if (lc->input == LI_SEQUENCE && !bad_chain && !seq) {
				if (lc->output == LO_POOLED)
					diag_error(d->kind_loc, "'mean_pool' averages over a sequence, but '%s' "
					           "is not one", prev_name);
				else
					diag_error(d->kind_loc, "'%s' runs over a sequence [batch, LENGTH, d], but "
					           "'%s' is not one", d->kind, prev_name);
				bad = 1;
			}
			/* the side input: the one its argument names, else 'mask' or 'types' */
			if (lc->side != LS_NONE && !bad_chain) {
				int sa = layer_arg_index(kind, LF_SIDE);
				L->side[0] = side_input(m, sa >= 0 ? svals[sa] : NULL,
				                        sa >= 0 ? locs[sa] : d->kind_loc,
				                        lc->side == LS_TYPES ? "types" : "mask", (int)T, &bad);
			}
			int ta = layer_arg_index(kind, LF_TIED);
			if (ta >= 0 && svals[ta] && !bad_chain) {
				int e = -1;
				for (int l = 0; l < m->nlayers - 1; l++)
					if (!strcmp(m->layers[l].name, svals[ta]))
						e = l;
				if (e < 0) {
					diag_error(locs[ta], "'tied' names no earlier layer '%s'", svals[ta]);
					bad = 1;
				} else if (!layer_is_embedding(m->layers[e].kind)) {
					diag_error(locs[ta], "'tied = %s' needs a token embedding "
					           "(bert_embeddings or gpt2_embeddings), but '%s' is %s",
					           svals[ta], svals[ta], layer_kind_name(m->layers[e].kind));
					bad = 1;
				} else if (m->layers[e].vocab != L->vocab || m->layers[e].d != L->d) {
					diag_error(locs[ta], "lm_head(%lld, %lld) cannot share the [%lld, %lld] "
					           "token embedding of '%s'", (long long)L->vocab,
					           (long long)L->d, (long long)m->layers[e].vocab,
					           (long long)m->layers[e].d, svals[ta]);
					bad = 1;
				} else {
					L->tied = e;
				}
			}
			if (!bad_chain && !bad && it && it->dtype == DT_I32 && !layer_is_embedding(kind)) {
				diag_error(d->kind_loc, "'%s' reads f32 features, but %s'%s' holds i32 token "
				           "ids (start with bert_embeddings or gpt2_embeddings)", d->kind,
				           prev_is_input ? "input " : "", prev_name);
				bad = 1;
			}
			if (!bad_chain && !bad && !layer_is_embedding(kind) && L->in_w != in_w) {
				/* both layers and both widths: "linear(12, 4) in 'c' expects 12
				 * inputs, but 'b' outputs 16" */
				Loc at = d->args.n ? d->args.v[0]->val->loc : d->kind_loc;
				const char *call = width_call(d->kind, lc, vals);
				if (prev_is_input)
					diag_error(at, "%s in '%s' expects %lld inputs, but input '%s' has %lld "
					           "features", call, name, (long long)L->in_w, prev_name,
					           (long long)in_w);
				else
					diag_error(at, "%s in '%s' expects %lld inputs, but '%s' outputs %lld",
					           call, name, (long long)L->in_w, prev_name, (long long)in_w);
				bad = 1;
			}
			if (bad)
				bad_chain = 1;
			const char *prefix = layer_has_params(kind)
			                     ? param_prefix(d, name, d->count < 0 ? -1 : c) : name;
			if (bad_chain || !prefix) {
				bad_chain = 1;
				cur = -1;
				prev_name = name;
				prev_is_input = 0;
				continue;
			}
			layer_add_params(L, prefix);
			layer_costs(L, it);
			/* The model's inputs need no gradient: a layer reading one
			 * skips its input-gradient half (the runtime never runs it),
			 * so the cost model and the partitioner must not count it. */
			if (it->producer < 0)
				L->flops_b = 0;
			int64_t dims[4];
			int nd = it->ndim, oseq = it->seq;
			memcpy(dims, it->dims, sizeof dims);
			if (lc->output == LO_EMBED)
				dims[nd++] = L->d;
			else if (lc->output == LO_POOLED) {
				dims[0] = dims[1];
				nd = 1;
				oseq = 0;
			}
			dims[nd - 1] = L->out_w;
			int ti = add_tensor(m, tcap, name, DT_F32, nd, dims, m->nlayers - 1);
			m->tensors[ti].seq = oseq;
			L->out = ti;
			cur = ti;
			prev_name = name;
			prev_is_input = 0;
		}
	}
	if (m->nlayers == 0 && p->layers.n == 0)
		diag_error(p->name_loc, "model '%s' has no layers", p->name ? p->name : "?");
	if (diag_errors() != before)
		return;
	/* Every input is read by someone: the main path or a side argument. */
	for (int t = 0; t < m->ntensors; t++) {
		if (m->tensors[t].producer >= 0 || t == start)
			continue;
		int used = 0;
		for (int l = 0; l < m->nlayers && !used; l++)
			used = m->layers[l].side[0] == t || m->layers[l].side[1] == t;
		const TensorDecl *td = NULL;
		for (int i = 0; i < p->tensors.n; i++)
			if (!strcmp(p->tensors.v[i]->name, m->tensors[t].name))
				td = p->tensors.v[i];
		if (!used && !(m->tensors[t].dtype == DT_I32 && p->losses.n
		               && !strcmp(p->losses.v[0]->kind, "next_token")))
			diag_error(td->name_loc, "input '%s' is not read by any layer (the network "
			           "starts at '%s'; an attention layer reads an input called 'mask', "
			           "bert_embeddings one called 'types')", m->tensors[t].name,
			           m->tensors[start].name);
	}
	/* Each checkpoint tensor is bound once. */
	int np = 0;
	for (int l = 0; l < m->nlayers; l++)
		np += m->layers[l].nparams;
	const IrParam **all = xalloc((size_t)(np ? np : 1) * sizeof *all);
	np = 0;
	for (int l = 0; l < m->nlayers; l++)
		for (int k = 0; k < m->layers[l].nparams; k++)
			all[np++] = &m->layers[l].params[k];
	qsort(all, (size_t)np, sizeof *all, cmp_param_name);
	for (int i = 1; i < np; i++)
		if (!strcmp(all[i]->name, all[i - 1]->name)) {
			diag_error(all[i]->loc, "parameter '%s' is bound twice (two layers would hold "
			           "one checkpoint tensor; give each its own prefix, or share a token "
			           "embedding with lm_head(..., tied = LAYER))", all[i]->name);
			diag_note(all[i - 1]->loc, "it is first bound here");
			break;
		}
	/* Activation bytes per sample kept for backward: a tensor is kept if
	 * its consumer's backward reads it as input or its producer's reads it
	 * as output; the last layer's output always (the loss gradient lands
	 * there); plus what each layer saves (layernorm's mean and rstd, a
	 * transformer block's internals). */
	for (int i = 0; i < m->nlayers; i++) {
		IrLayer *L = &m->layers[i];
		const IrTensor *out = &m->tensors[L->out];
		int keep = layer_bwd_reads_out(L->kind) || i == m->nlayers - 1
		           || (i + 1 < m->nlayers && layer_bwd_reads_in(m->layers[i + 1].kind));
		L->act_bytes = (keep ? out->elems * 4 : 0) + L->save_elems * 4;
	}
}

static void check_loss(const Program *p, IrModel *m, int before)
{
	static const char *const loss_names[] = { "cross_entropy", "mse", "next_token" };
	m->loss_ids = -1;
	for (int i = 0; i < p->losses.n; i++) {
		const LossDecl *l = p->losses.v[i];
		if (i > 0) {
			diag_error(l->loc, "a model has at most one loss");
			continue;
		}
		if (!strcmp(l->kind, "cross_entropy"))
			m->loss = LOSS_CROSS_ENTROPY;
		else if (!strcmp(l->kind, "mse"))
			m->loss = LOSS_MSE;
		else if (!strcmp(l->kind, "next_token"))
			m->loss = LOSS_NEXT_TOKEN;
		else
			unknown(l->kind_loc, "loss", l->kind, loss_names, 3);
	}
	if (m->loss == LOSS_NEXT_TOKEN && diag_errors() == before && m->nlayers > 0) {
		const LossDecl *l = p->losses.v[0];
		/* the ids the first embedding reads */
		for (int i = 0; i < m->nlayers && m->loss_ids < 0; i++)
			if (layer_is_embedding(m->layers[i].kind))
				m->loss_ids = m->layers[i].in;
		const IrLayer *last = &m->layers[m->nlayers - 1];
		if (m->loss_ids < 0)
			diag_error(l->kind_loc, "loss 'next_token' is for language models; this model "
			           "has no token-id input");
		else if (last->kind != LK_LM_HEAD)
			diag_error(l->kind_loc, "loss 'next_token' scores logits over the vocabulary: "
			           "the last layer must be an lm_head, but '%s' is %s", last->name,
			           layer_kind_name(last->kind));
		else if (!m->tensors[last->out].seq)
			diag_error(l->kind_loc, "loss 'next_token' needs logits per position, but '%s' "
			           "outputs one row per sample", last->name);
		if (m->target_name && m->loss_ids >= 0)
			for (int i = 0; i < p->tensors.n; i++)
				if (p->tensors.v[i]->is_target)
					diag_error(p->tensors.v[i]->loc, "loss 'next_token' reads its targets "
					           "from the input ids; remove target '%s'", m->target_name);
		return;
	}
	if (diag_errors() != before || m->nlayers == 0 || !m->target_name || m->loss == LOSS_NONE)
		return;
	const IrTensor *out = &m->tensors[m->layers[m->nlayers - 1].out];
	const TensorDecl *td = NULL;
	for (int i = 0; i < p->tensors.n; i++)
		if (p->tensors.v[i]->is_target)
			td = p->tensors.v[i];
	if (m->loss == LOSS_CROSS_ENTROPY) {
		if (m->target_dtype != DT_I32 || m->target_width != 1)
			diag_error(td->loc, "cross_entropy takes class ids: target '%s' must be "
			           "i32[batch]", m->target_name);
		else if (out->elems != out->dims[out->ndim - 1])
			diag_error(p->losses.v[0]->loc, "cross_entropy needs one row of logits per "
			           "sample, but the output has %lld elements per sample",
			           (long long)out->elems);
		else if (out->elems < 2)
			diag_error(p->losses.v[0]->loc, "cross_entropy needs at least 2 classes, but "
			           "'%s' outputs %lld", m->layers[m->nlayers - 1].name,
			           (long long)out->elems);
	} else {
		if (m->target_dtype != DT_F32)
			diag_error(td->dtype_loc, "mse takes f32 targets, not %s",
			           dtype_name(m->target_dtype));
		else if (m->target_width != out->elems)
			diag_error(td->loc, "mse compares the output with the target, but '%s' "
			           "outputs %lld values per sample and target '%s' has %lld",
			           m->layers[m->nlayers - 1].name, (long long)out->elems,
			           m->target_name, (long long)m->target_width);
	}
}

/* ------------------------------------------------------------------ */
/* Pipeline block                                                      */

#define PIPE_KEYS(X) \
	X(K_STAGES, "stages") X(K_BATCH, "batch") X(K_MICROBATCHES, "microbatches") \
	X(K_SCHEDULE, "schedule") X(K_PARTITION, "partition") X(K_RECOMPUTE, "recompute") \
	X(K_REPLICAS, "replicas") X(K_DTYPE, "dtype") X(K_OPTIMIZER, "optimizer") \
	X(K_STEPS, "steps") X(K_SEED, "seed") X(K_MEMORY, "memory") \
	X(K_MAX_NEW, "max_new_tokens") X(K_SAMPLING, "sampling") X(K_EOS, "eos") \
	X(K_PREFILL, "prefill") X(K_INFLIGHT, "inflight")

enum {
#define X(e, s) e,
	PIPE_KEYS(X)
#undef X
	K_COUNT
};

const char *const sema_pipeline_keys[] = {
#define X(e, s) s,
	PIPE_KEYS(X)
#undef X
	NULL
};

static int int_value(const PipeItem *it, long long lo, long long hi, long long *out)
{
	const Value *v = it->val;
	if (v->kind != V_INT) {
		diag_error(v->loc, "'%s' must be an integer, not %s", it->key,
		           value_kind_name(v->kind));
		return -1;
	}
	if (v->i < lo) {
		diag_error(v->loc, "'%s' must be at least %lld, not %lld", it->key, lo, v->i);
		return -1;
	}
	if (v->i > hi) {
		diag_error(v->loc, "'%s' must be at most %lld, not %lld", it->key, hi, v->i);
		return -1;
	}
	*out = v->i;
	return 0;
}

static int is_number(const Value *v)
{
	return v->kind == V_INT || v->kind == V_NUM;
}

/* "16GiB", "512MiB", "2GB" or a plain byte count. */
static int size_value(const Value *v, double *out)
{
	if (v->kind == V_INT) {
		*out = (double)v->i;
		return v->i > 0 ? 0 : -1;
	}
	if (v->kind != V_WORD)
		return -1;
	char *end;
	double n = strtod(v->s, &end);
	static const struct { const char *suf; double mul; } units[] = {
		{ "B", 1 }, { "KB", 1e3 }, { "MB", 1e6 }, { "GB", 1e9 }, { "TB", 1e12 },
		{ "KiB", 1024.0 }, { "MiB", 1048576.0 }, { "GiB", 1073741824.0 },
		{ "TiB", 1099511627776.0 },
	};
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
		if (!strcmp(end, units[i].suf) && n > 0) {
			*out = n * units[i].mul;
			return 0;
		}
	return -1;
}

static void parse_optimizer(const PipeItem *it, Pipeline *pp)
{
	const Value *v = it->val;
	static const char *const opt_names[] = { "sgd", "adam", "none" };
	if (v->kind == V_WORD && !strcmp(v->s, "none"))
		return;         /* `optimizer = none`: inference (useful with --set) */
	if (v->kind != V_CALL && v->kind != V_WORD) {
		diag_error(v->loc, "'optimizer' must be sgd(lr = X), sgd(lr = X, momentum = Y) or "
		           "adam(lr = X)");
		return;
	}
	int sgd = !strcmp(v->s, "sgd"), adam = !strcmp(v->s, "adam");
	if (!sgd && !adam) {
		unknown(v->loc, "optimizer", v->s, opt_names, 3);
		return;
	}
	pp->optim = sgd ? OPT_SGD : OPT_ADAM;
	int have_lr = 0, bad_args = 0;
	for (int i = 0; i < v->args.n; i++) {
		const Arg *a = v->args.v[i];
		static const char *const sgd_keys[] = { "lr", "momentum" };
		if (!a->key) {
			diag_error(a->val->loc, "optimizer arguments are named: %s(lr = %s)", v->s,
			           sgd ? "0.01" : "1e-3");
			bad_args = 1;
			continue;
		}
		if (!strcmp(a->key, "lr")) {
			if (!is_number(a->val) || !(a->val->d > 0) || isinf(a->val->d))
				diag_error(a->val->loc, "'lr' must be a positive number");
			pp->lr = a->val->d;
			have_lr = 1;
		} else if (sgd && !strcmp(a->key, "momentum")) {
			if (!is_number(a->val) || !(a->val->d >= 0 && a->val->d < 1))
				diag_error(a->val->loc, "'momentum' must be a number in [0, 1)");
			pp->momentum = a->val->d;
		} else {
			const char *best = closest_name(a->key, sgd_keys, sgd ? 2 : 1);
			if (best)
				diag_error(a->key_loc, "%s has no argument '%s'; did you mean '%s'?",
				           v->s, a->key, best);
			else
				diag_error(a->key_loc, "%s has no argument '%s' (it takes %s)", v->s,
				           a->key, sgd ? "lr and momentum" : "lr");
		}
	}
	if (!have_lr && !bad_args)
		diag_error(v->loc, "%s needs a learning rate: %s(lr = %s)", v->s, v->s,
		           sgd ? "0.01" : "1e-3");
}

static void parse_schedule(const PipeItem *it, Pipeline *pp, const SrcFile *file)
{
	const Value *v = it->val;
	static const char *names[SK_COUNT];
	for (int k = 0; k < SK_COUNT; k++)
		names[k] = sched_kind_name(k);
	pp->sched_loc = v->loc;
	if (v->kind != V_WORD && v->kind != V_CALL) {
		diag_error(v->loc, "'schedule' must be a schedule name such as 1f1b, "
		           "interleaved(2) or file(\"order.csv\")");
		return;
	}
	int k = sched_kind_from_name(v->s);
	if (k < 0) {
		unknown(v->loc, "schedule", v->s, names, SK_COUNT);
		return;
	}
	pp->sched = (SchedKind)k;
	if (k == SK_INTERLEAVED) {
		if (v->kind != V_CALL || v->args.n != 1 || v->args.v[0]->key
		    || v->args.v[0]->val->kind != V_INT) {
			diag_error(v->loc, "interleaved takes the number of virtual stages per rank: "
			           "interleaved(2)");
			return;
		}
		long long V = v->args.v[0]->val->i;
		if (V < 1 || V > 64) {
			diag_error(v->args.v[0]->val->loc, "interleaved(V) needs 1 <= V <= 64, not %lld",
			           V);
			return;
		}
		pp->V = (int)V;
	} else if (k == SK_FILE) {
		if (v->kind != V_CALL || v->args.n != 1 || v->args.v[0]->key
		    || v->args.v[0]->val->kind != V_STRING) {
			diag_error(v->loc, "file takes a path in quotes: file(\"order.csv\")");
			return;
		}
		const char *path = v->args.v[0]->val->s;
		if (path[0] == '/' || !file || !strchr(file->name, '/')) {
			pp->sched_path = path;
		} else {
			const char *slash = strrchr(file->name, '/');
			pp->sched_path = xprintf("%.*s/%s", (int)(slash - file->name), file->name, path);
		}
	} else if (v->kind == V_CALL) {
		diag_error(v->loc, "schedule '%s' takes no arguments", v->s);
	} else if (k == SK_ZBV) {
		pp->V = 2;
	}
}

/* A list of numbers: partition counts or recompute ratios. */
static double *number_list(const PipeItem *it, int *n, int integers)
{
	const Value *v = it->val;
	*n = v->args.n;
	double *out = xalloc((size_t)(v->args.n + 1) * sizeof *out);
	int bad = 0;
	for (int i = 0; i < v->args.n; i++) {
		const Value *e = v->args.v[i]->val;
		if (integers ? e->kind != V_INT : !is_number(e)) {
			diag_error(e->loc, "'%s' must be a list of %s", it->key,
			           integers ? "integers" : "numbers");
			bad = 1;
			continue;
		}
		out[i] = e->d;
	}
	if (v->args.n == 0) {
		diag_error(v->loc, "'%s' is an empty list", it->key);
		bad = 1;
	}
	return bad ? NULL : out;
}

/* The partition block, turned into per-stage layer counts. */
static int *partition_block(const Value *v, const IrModel *m, int *n)
{
	int bad = 0, next = 0;
	int *counts = xalloc((size_t)(v->ranges.n + 1) * sizeof *counts);
	*n = v->ranges.n;
	if (v->ranges.n == 0) {
		diag_error(v->loc, "the partition block has no stages");
		return NULL;
	}
	for (int i = 0; i < v->ranges.n; i++) {
		const StageRange *r = v->ranges.v[i];
		if (r->index != i) {
			diag_error(r->index_loc, "stages are listed in order: expected stage %d, "
			           "not stage %lld", i, r->index);
			bad = 1;
			break;
		}
		int a = -1, b = -1;
		for (int j = 0; j < m->nlayers; j++) {
			if (!strcmp(m->layers[j].name, r->first))
				a = j;
			if (!strcmp(m->layers[j].name, r->last))
				b = j;
		}
		if (a < 0 || b < 0) {
			const char **names = xalloc((size_t)(m->nlayers + 1) * sizeof *names);
			for (int j = 0; j < m->nlayers; j++)
				names[j] = m->layers[j].name;
			if (a < 0)
				unknown(r->first_loc, "layer", r->first, names, m->nlayers);
			if (b < 0 && strcmp(r->first, r->last))
				unknown(r->last_loc, "layer", r->last, names, m->nlayers);
			bad = 1;
			break;
		}
		if (a != next) {
			if (a > next)
				diag_error(r->first_loc, "stage %d starts at '%s', but '%s' before it is in "
				           "no stage", i, r->first, m->layers[next].name);
			else
				diag_error(r->first_loc, "stage %d starts at '%s', which is already in "
				           "stage %d", i, r->first, i - 1);
			bad = 1;
			break;
		}
		if (b < a) {
			diag_error(r->last_loc, "stage %d ends at '%s', which comes before '%s'", i,
			           r->last, r->first);
			bad = 1;
			break;
		}
		counts[i] = b - a + 1;
		next = b + 1;
	}
	if (!bad && next != m->nlayers) {
		if (next == m->nlayers - 1)
			diag_error(v->ranges.v[v->ranges.n - 1]->loc, "the partition ends at '%s', but "
			           "'%s' after it is in no stage", m->layers[next - 1].name,
			           m->layers[next].name);
		else
			diag_error(v->ranges.v[v->ranges.n - 1]->loc, "the partition ends at '%s', but "
			           "'%s' .. '%s' are in no stage", m->layers[next - 1].name,
			           m->layers[next].name, m->layers[m->nlayers - 1].name);
		bad = 1;
	}
	return bad ? NULL : counts;
}

/* A constraint between keys is reported at one of them; each other key
 * that comes from another source gets a note there, so that an error a
 * --set causes names the --set (and one in the file shows the line). */
static void note_key(Loc at, const PipeItem *other)
{
	if (other && other->val->loc.file != at.file)
		diag_note(other->val->loc, "'%s' is set here", other->key);
}

/* pipedream and pipedream-2bw (sched_async.c): one pipeline, and each
 * rank's micro-batches in flight (lag + 1) within [1, P - r], not growing
 * along the pipeline (rank r+1 would wait for a forward that rank r holds
 * back for its own backward: a deadlock) and at most M (a step reuses the
 * buffers of the step before; with more in flight than a step has
 * micro-batches two steps would need the same ones). */
static void check_async(const PipeItem *const *item, Pipeline *pp)
{
	const char *name = sched_kind_name(pp->sched);
	int P = pp->P;
	if (pp->R > 1) {
		diag_error(item[K_REPLICAS]->val->loc, "schedule '%s' runs one pipeline, but "
		           "replicas = %d: replicas updating at their own pace would drift apart "
		           "(data parallelism with asynchronous updates is not supported)",
		           name, pp->R);
		note_key(item[K_REPLICAS]->val->loc, item[K_SCHEDULE]);
		return;
	}
	int *inf = xalloc((size_t)P * sizeof *inf);
	for (int r = 0; r < P; r++)
		inf[r] = P - r;
	const PipeItem *it = item[K_INFLIGHT];
	if (it && pp->sched == SK_2BW) {
		diag_error(it->key_loc, "'inflight' applies to schedule = pipedream only "
		           "(pipedream-2bw keeps two weight versions and 1F1B's depth)");
		return;
	}
	if (it) {
		const Value *v = it->val;
		if (v->kind != V_LIST) {
			diag_error(v->loc, "'inflight' must be a list of micro-batches in flight per "
			           "rank [d0, ...], one per stage");
			return;
		}
		if (v->args.n != P) {
			diag_error(v->loc, "'inflight' lists %d depths, but there are %d stages",
			           v->args.n, P);
			note_key(v->loc, item[K_STAGES]);
			return;
		}
		for (int r = 0; r < P; r++) {
			const Value *e = v->args.v[r]->val;
			if (e->kind != V_INT || e->i < 1 || e->i > P - r) {
				diag_error(e->loc, "inflight of rank %d must be an integer in [1, %d] "
				           "(at most P - r = %d micro-batches can be in flight there)",
				           r, P - r, P - r);
				return;
			}
			inf[r] = (int)e->i;
			if (r > 0 && inf[r] > inf[r - 1]) {
				diag_error(e->loc, "inflight must not grow along the pipeline: rank %d "
				           "keeps %d in flight but rank %d only %d, so rank %d would wait "
				           "for a forward that rank %d holds back until a backward rank %d "
				           "owes it (a deadlock)", r, inf[r], r - 1, inf[r - 1], r, r - 1, r);
				return;
			}
		}
		pp->inflight_loc = v->loc;
	}
	if (inf[0] > pp->M) {
		if (pp->sched == SK_2BW)
			diag_error(pp->sched_loc, "pipedream-2bw needs microbatches >= stages (%d), "
			           "not %d: a step's update must be ready before the step after next "
			           "starts, and a step reuses the micro-batch buffers of the one before",
			           P, pp->M);
		else
			diag_error(pp->sched_loc, "pipedream keeps %d micro-batches in flight on rank 0, "
			           "but microbatches = %d: a step reuses the micro-batch buffers of the "
			           "one before, so a step needs at least as many micro-batches as are in "
			           "flight (raise microbatches or lower inflight)", inf[0], pp->M);
		note_key(pp->sched_loc, item[K_MICROBATCHES]);
		note_key(pp->sched_loc, item[K_STAGES]);
		return;
	}
	pp->inflight = inf;
}

/* sampling = greedy | sample(temperature = T, top_k = K, seed = S) */
static void parse_sampling(const PipeItem *it, Pipeline *pp)
{
	const Value *v = it->val;
	pp->temperature = 1.0;
	if (v->kind == V_WORD && !strcmp(v->s, "greedy"))
		return;
	if ((v->kind != V_CALL && v->kind != V_WORD) || strcmp(v->s, "sample")) {
		diag_error(v->loc, "'sampling' must be greedy or sample(temperature = 0.8, "
		           "top_k = 40, seed = 1)");
		return;
	}
	pp->sample = 1;
	for (int i = 0; i < v->args.n; i++) {
		const Arg *a = v->args.v[i];
		static const char *const keys[] = { "temperature", "top_k", "seed" };
		if (!a->key) {
			diag_error(a->val->loc, "sample's arguments are named: sample(temperature "
			           "= 0.8, top_k = 40, seed = 1)");
		} else if (!strcmp(a->key, "temperature")) {
			if (!is_number(a->val) || !(a->val->d > 0) || isinf(a->val->d))
				diag_error(a->val->loc, "'temperature' must be a positive number");
			pp->temperature = a->val->d;
		} else if (!strcmp(a->key, "top_k")) {
			if (a->val->kind != V_INT || a->val->i < 1 || a->val->i > (1 << 30))
				diag_error(a->val->loc, "'top_k' must be an integer of at least 1 (the "
				           "number of most likely tokens drawn from)");
			else
				pp->top_k = (int)a->val->i;
		} else if (!strcmp(a->key, "seed")) {
			if (a->val->kind != V_INT)
				diag_error(a->val->loc, "'seed' must be an integer");
			else
				pp->sample_seed = a->val->i;
		} else {
			const char *best = closest_name(a->key, keys, 3);
			if (best)
				diag_error(a->key_loc, "sample has no argument '%s'; did you mean "
				           "'%s'?", a->key, best);
			else
				diag_error(a->key_loc, "sample has no argument '%s' (it takes "
				           "temperature, top_k and seed)", a->key);
		}
	}
}

/* schedule = generate: the model must be a decoder the generating program
 * can run with a key/value cache, fed by one token-id input. */
static void check_generate(IrModel *m, const PipeItem *const *item, Loc where)
{
	Pipeline *pp = &m->pipe;
	if (!item[K_MAX_NEW]) {
		diag_error(where, "schedule = generate needs 'max_new_tokens = N' (the tokens "
		           "generated per sequence)");
		return;
	}
	const IrLayer *last = m->nlayers ? &m->layers[m->nlayers - 1] : NULL;
	if (!last || last->kind != LK_LM_HEAD) {
		diag_error(where, "generate runs a decoder whose last layer is an lm_head, but "
		           "the last layer here is '%s' (%s)", last ? last->name : "?",
		           last ? layer_kind_name(last->kind) : "none");
		if (last)
			diag_note(last->loc, "the last layer");
		return;
	}
	if (m->ninputs != 1 || m->tensors[0].dtype != DT_I32 || !m->seq_max) {
		diag_error(where, "generate takes one input, the prompts' token ids (input ids : "
		           "i32[batch, T]); this model has %d input%s", m->ninputs,
		           m->ninputs == 1 ? "" : "s");
		return;
	}
	if (m->layers[0].kind != LK_GPT2_EMB) {
		diag_error(m->layers[0].loc, "generate needs gpt2_embeddings (token and position "
		           "embeddings) as the first layer, not %s", layer_kind_name(m->layers[0].kind));
		return;
	}
	int64_t positions = m->layers[0].positions;
	for (int l = 1; l < m->nlayers; l++) {
		const IrLayer *L = &m->layers[l];
		if (!LAYER(L->kind)->gen) {
			diag_error(L->loc, "generate cannot run layer '%s' (%s): a decoder's layers "
			           "are gpt2_embeddings, gpt2_block, layernorm, lm_head and "
			           "position-wise ones", L->name, layer_kind_name(L->kind));
			return;
		}
	}
	pp->kv_cap = m->seq_max + pp->gen_tokens;
	if (pp->kv_cap > positions) {
		diag_error(item[K_MAX_NEW]->val->loc, "prompts of up to %lld tokens (ids's "
		           "length) and max_new_tokens = %d need %lld positions, but the model "
		           "has %lld (gpt2_embeddings)", (long long)m->seq_max, pp->gen_tokens,
		           (long long)pp->kv_cap, (long long)positions);
		diag_note(m->layers[0].loc, "the position table is declared here");
		return;
	}
	/* a decode step's scratch: one position attending to the whole cache */
	for (int l = 0; l < m->nlayers; l++) {
		IrLayer *L = &m->layers[l];
		int64_t w = rt_gpt2_kv_work(1, pp->kv_cap, L->d, L->heads, L->ffn);
		if (LAYER(L->kind)->kv_cache && w > L->work_elems)
			L->work_elems = w;
	}
	if (pp->eos >= m->layers[m->nlayers - 1].vocab)
		diag_error(item[K_EOS]->val->loc, "eos = %lld is not a token id (the vocabulary "
		           "has %lld)", pp->eos, (long long)m->layers[m->nlayers - 1].vocab);
	if (pp->R > 1) {
		diag_error(item[K_REPLICAS]->val->loc, "generate runs one pipeline (replicas = "
		           "%d): run several jobs for more", pp->R);
		note_key(item[K_REPLICAS]->val->loc, item[K_SCHEDULE]);
	}
}

/* layers_ok: the model's layers were all accepted, so their count and
 * names can be checked against (after a bad layer they cannot). */
static void check_pipeline(const Program *p, PipeItem *const *sets, int nsets, IrModel *m,
                           int layers_ok)
{
	Pipeline *pp = &m->pipe;
	const PipeItem *item[K_COUNT] = { 0 };
	int reported[K_COUNT] = { 0 };  /* an error about the key is out: no "needs" */
	const char *const *keys = sema_pipeline_keys;
	for (int i = 0; i < p->items.n + nsets; i++) {
		const PipeItem *it = i < p->items.n ? p->items.v[i] : sets[i - p->items.n];
		int k;
		for (k = 0; k < K_COUNT && strcmp(keys[k], it->key); k++)
			;
		if (k == K_COUNT) {
			const char *best = unknown(it->key_loc, "pipeline key", it->key, keys, K_COUNT);
			for (k = 0; best && k < K_COUNT; k++)
				reported[k] |= keys[k] == best;
			continue;
		}
		if (item[k] && i < p->items.n) {
			diag_error(it->key_loc, "'%s' is set twice", it->key);
			diag_note(item[k]->key_loc, "first set here");
			continue;
		}
		if (it->val->kind == V_BLOCK && k != K_PARTITION) {
			diag_error(it->val->loc, "only 'partition' takes a block");
			reported[k] = 1;
			continue;
		}
		item[k] = it;   /* a --set replaces the file's value */
	}

	long long x;
	pp->M = 1;
	pp->R = 1;
	pp->V = 1;
	pp->steps = 1;
	pp->part_auto = 1;
	pp->dtype = DT_F32;
	int bad = 0;
	if (!item[K_STAGES]) {
		if (!reported[K_STAGES])
			diag_error(p->pipeline_loc, "the pipeline block needs 'stages = P'");
		bad = 1;
	} else if (int_value(item[K_STAGES], 1, 4096, &x) == 0) {
		pp->P = (int)x;
	} else {
		bad = 1;
	}
	if (!item[K_BATCH]) {
		if (!reported[K_BATCH])
			diag_error(p->pipeline_loc, "the pipeline block needs 'batch = B'");
		bad = 1;
	} else if (int_value(item[K_BATCH], 1, 1LL << 40, &x) == 0) {
		pp->B = x;
	} else {
		bad = 1;
	}
	if (item[K_MICROBATCHES]) {
		if (int_value(item[K_MICROBATCHES], 1, 1 << 20, &x) == 0)
			pp->M = (int)x;
		else
			bad = 1;
	}
	if (item[K_REPLICAS]) {
		if (int_value(item[K_REPLICAS], 1, 4096, &x) == 0)
			pp->R = (int)x;
		else
			bad = 1;
	}
	if (item[K_STEPS] && int_value(item[K_STEPS], 1, 1LL << 30, &x) == 0)
		pp->steps = (int)x;
	if (item[K_SEED]) {
		const Value *v = item[K_SEED]->val;
		if (v->kind != V_INT)
			diag_error(v->loc, "'seed' must be an integer");
		else
			pp->seed = v->i;
	}
	if (item[K_DTYPE]) {
		const Value *v = item[K_DTYPE]->val;
		int dt = v->kind == V_WORD ? dtype_from_name(v->s) : -1;
		if (dt < 0 || dt == DT_I32)
			diag_error(v->loc, "'dtype' must be f32, bf16 or f16");
		else
			pp->dtype = dt;
		pp->dtype_loc = v->loc;
	}
	if (item[K_MEMORY])
		pp->memory_loc = item[K_MEMORY]->val->loc;
	if (item[K_MEMORY] && size_value(item[K_MEMORY]->val, &pp->memory_cap) != 0)
		diag_error(item[K_MEMORY]->val->loc, "'memory' must be a size such as 16GiB, "
		           "512MiB or a byte count");
	if (item[K_OPTIMIZER])
		parse_optimizer(item[K_OPTIMIZER], pp);
	pp->eos = -1;
	if (item[K_MAX_NEW] && int_value(item[K_MAX_NEW], 1, 1 << 20, &x) == 0)
		pp->gen_tokens = (int)x;
	if (item[K_EOS] && int_value(item[K_EOS], 0, 1LL << 31, &x) == 0)
		pp->eos = x;
	if (item[K_SAMPLING])
		parse_sampling(item[K_SAMPLING], pp);
	if (item[K_PREFILL]) {
		const Value *v = item[K_PREFILL]->val;
		if (v->kind == V_WORD && !strcmp(v->s, "disaggregated"))
			pp->disagg = 1;
		else if (!(v->kind == V_WORD && !strcmp(v->s, "colocated")))
			diag_error(v->loc, "'prefill' must be colocated (the decode pipeline's ranks "
			           "prefill too) or disaggregated (ranks of its own)");
	}
	int training = pp->optim != OPT_NONE;
	pp->sched = training ? SK_1F1B : SK_INFERENCE;
	if (item[K_SCHEDULE])
		parse_schedule(item[K_SCHEDULE], pp, p->file);
	else
		pp->sched_loc = p->pipeline_loc;

	/* Constraints between keys. */
	if (!bad && pp->B % pp->M != 0) {
		diag_error(item[K_MICROBATCHES]->val->loc, "microbatches = %d does not divide "
		           "batch = %lld", pp->M, pp->B);
		note_key(item[K_MICROBATCHES]->val->loc, item[K_BATCH]);
	} else if (!bad && pp->B % ((long long)pp->R * pp->M) != 0) {
		diag_error(item[K_REPLICAS]->val->loc, "replicas = %d times microbatches = %d "
		           "does not divide batch = %lld (each replica splits its B/R rows into M "
		           "micro-batches)", pp->R, pp->M, pp->B);
		note_key(item[K_REPLICAS]->val->loc, item[K_BATCH]);
		note_key(item[K_REPLICAS]->val->loc, item[K_MICROBATCHES]);
	}
	if (!bad && pp->sched == SK_INTERLEAVED && pp->M % pp->P != 0) {
		diag_error(pp->sched_loc, "interleaved needs microbatches (%d) to be a multiple of "
		           "stages (%d)", pp->M, pp->P);
		note_key(pp->sched_loc, item[K_MICROBATCHES]);
		note_key(pp->sched_loc, item[K_STAGES]);
	}
	if (pp->sched == SK_GENERATE) {
		if (training) {
			diag_error(pp->sched_loc, "schedule 'generate' runs forward only, but an "
			           "optimizer is given; remove it (or --set optimizer=none)");
			note_key(pp->sched_loc, item[K_OPTIMIZER]);
		} else if (layers_ok && !bad) {
			check_generate(m, item, pp->sched_loc);
		}
	} else {
		static const int gen_keys[] = { K_MAX_NEW, K_SAMPLING, K_EOS, K_PREFILL };
		for (int i = 0; i < 4; i++)
			if (item[gen_keys[i]])
				diag_error(item[gen_keys[i]]->key_loc, "'%s' applies to schedule = "
				           "generate only", keys[gen_keys[i]]);
	}
	if (training && pp->sched == SK_INFERENCE) {
		diag_error(pp->sched_loc, "schedule 'inference' runs forward only, but an "
		           "optimizer is given; remove the optimizer or pick a training schedule");
		note_key(pp->sched_loc, item[K_OPTIMIZER]);
	}
	if (!training && pp->sched != SK_INFERENCE && item[K_SCHEDULE] && pp->sched != SK_FILE
	    && pp->sched != SK_GENERATE
	    && pp->sched != SK_NAIVE && pp->sched != SK_GPIPE && pp->sched != SK_1F1B
	    && pp->sched != SK_INTERLEAVED) {
		diag_error(pp->sched_loc, "schedule '%s' trains, but no optimizer is given",
		           sched_kind_name(pp->sched));
		note_key(pp->sched_loc, item[K_OPTIMIZER]);
	}
	if (training && p->losses.n == 0)   /* a bad loss is reported already */
		diag_error(item[K_OPTIMIZER]->val->loc, "an optimizer needs a loss in the model "
		           "(loss cross_entropy; or loss mse;)");
	else if (training && m->loss != LOSS_NONE && m->loss != LOSS_NEXT_TOKEN && !m->target_name)
		diag_error(item[K_OPTIMIZER]->val->loc, "an optimizer needs a target in the model "
		           "(target y : i32[batch];)");

	/* Partition. */
	int S = bad ? 0 : pp->P * pp->V;
	if (!bad && S > m->nlayers && layers_ok) {
		diag_error(item[K_STAGES]->val->loc, "%d stages%s but the model has only %d "
		           "layer%s; every stage needs at least one", S,
		           pp->V > 1 ? xprintf(" (%d ranks x %d virtual)", pp->P, pp->V) : "",
		           m->nlayers, m->nlayers == 1 ? "" : "s");
		if (pp->V > 1)
			note_key(item[K_STAGES]->val->loc, item[K_SCHEDULE]);
	}
	const PipeItem *pi = item[K_PARTITION];
	if (pi) {
		const Value *v = pi->val;
		pp->part_loc = v->loc;
		if (v->kind == V_WORD && !strcmp(v->s, "auto")) {
			pp->part_auto = 1;
		} else if (v->kind == V_LIST || v->kind == V_BLOCK) {
			int n = 0;
			int *counts = NULL;
			double listed = 0;      /* the sum as written (counts are clamped) */
			if (v->kind == V_LIST) {
				double *d = number_list(pi, &n, 1);
				if (d) {
					counts = xalloc((size_t)n * sizeof *counts);
					for (int i = 0; i < n; i++) {
						listed += d[i];
						if (d[i] < 1) {
							diag_error(v->args.v[i]->val->loc, "stage %d has %g layers; "
							           "every stage needs at least one", i, d[i]);
							counts = NULL;
							break;
						}
						counts[i] = d[i] > 1e9 ? 1000000000 : (int)d[i];
					}
				}
			} else if (layers_ok) {
				counts = partition_block(v, m, &n);
			}
			if (counts) {
				long long sum = 0;
				for (int i = 0; i < n; i++)
					sum += counts[i];
				if (S && n != S) {
					diag_error(v->loc, "the partition lists %d stage%s, but there are %d%s",
					           n, n == 1 ? "" : "s", S,
					           pp->V > 1 ? xprintf(" (stages = %d times %d virtual stages)",
					                              pp->P, pp->V) : "");
					note_key(v->loc, item[K_STAGES]);
					if (pp->V > 1)
						note_key(v->loc, item[K_SCHEDULE]);
				} else if (v->kind == V_LIST && sum != m->nlayers && layers_ok)
					diag_error(v->loc, "the partition covers %.0f layers, but the model "
					           "has %d", listed, m->nlayers);
				pp->part_counts = counts;
				pp->npart = n;
				pp->part_auto = 0;
			}
		} else {
			diag_error(v->loc, "'partition' must be auto, a list of layer counts [n0, ...] "
			           "or a block { stage 0 : a .. b; ... }");
		}
	}

	if (!bad && (pp->sched == SK_PIPEDREAM || pp->sched == SK_2BW))
		check_async(item, pp);
	else if (item[K_INFLIGHT])
		diag_error(item[K_INFLIGHT]->key_loc, "'inflight' applies to schedule = pipedream "
		           "only");

	/* Recompute ratios: one per stage, or one per rank applied to each of
	 * its chunks. */
	const PipeItem *ri = item[K_RECOMPUTE];
	if (ri) {
		pp->recompute_loc = ri->val->loc;
		if (ri->val->kind != V_LIST) {
			diag_error(ri->val->loc, "'recompute' must be a list of ratios [r0, ...], one "
			           "per stage");
		} else {
			int n;
			double *r = number_list(ri, &n, 0);
			for (int i = 0; r && i < n; i++)
				if (!(r[i] >= 0 && r[i] <= 1)) {
					diag_error(ri->val->args.v[i]->val->loc, "recompute ratio %g is not in "
					           "[0, 1]", r[i]);
					r = NULL;
				}
			if (r && S && n != S && n != pp->P) {
				if (pp->V > 1)
					diag_error(ri->val->loc, "'recompute' lists %d ratios, but there are "
					           "%d stages (%d ranks x %d virtual): give %d or %d", n, S,
					           pp->P, pp->V, pp->P, S);
				else
					diag_error(ri->val->loc, "'recompute' lists %d ratios, but there are "
					           "%d stages", n, S);
				note_key(ri->val->loc, item[K_STAGES]);
				if (pp->V > 1)
					note_key(ri->val->loc, item[K_SCHEDULE]);
			} else if (r) {
				pp->recompute = r;
				pp->nrecompute = n;
			}
			if (r && !training) {
				diag_error(ri->val->loc, "'recompute' saves memory for backward, but "
				           "there is no optimizer (nothing is trained)");
				note_key(ri->val->loc, item[K_OPTIMIZER]);
			}
		}
	}
}

IrModel *sema_check(const Program *p, PipeItem *const *sets, int nsets)
{
	int before = diag_errors();
	IrModel *m = xalloc(sizeof *m);
	m->name = p->name;
	m->file = p->file;
	m->target = -1;
	Names ns = { 0 };
	int tcap = 0;
	check_tensors(p, m, &ns, &tcap);
	check_layers(p, m, &ns, &tcap, before);
	int layers_ok = diag_errors() == before && m->nlayers > 0;
	check_loss(p, m, before);
	check_pipeline(p, sets, nsets, m, layers_ok);
	if (diag_errors() != before)
		return NULL;
	ir_index(m);
	return m;
}
