/* sema_model.c — the semantic pass over the model block (sema.c).
 *
 * The model's tensors (inputs and target), its layers (kinds, arguments,
 * widths chained through the network, side inputs, parameters bound once)
 * and its loss, lowered to the IR's tensors and layers.  What a kind takes
 * and binds comes from the layer catalogue (layers.c).
 */
#include "sema_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Layer arguments: the catalogue's table per kind (layers.c) binds     */
/* positional and named arguments; here their types and ranges are     */
/* checked.                                                            */

/* Binds l's arguments to spec; vals[i] gets argument i's value.  Returns 0
 * if all is well. */
/* rope_scaling = llama3(factor = F, low_freq_factor = L, high_freq_factor
 * = H, original = N): sc[0..3] get the four (transformers' rope_scaling
 * with rope_type "llama3"; its own checks: factor >= 1, 0 < L < H).
 * Returns 0 if all is well. */
static int bind_rope_scaling(const LayerDecl *l, const Value *v, double *sc)
{
	static const char *const names[] = { "factor", "low_freq_factor", "high_freq_factor",
	                                     "original" };
	int set[4] = { 0 }, bad = 0;
	Loc at4[4];
	if (v->kind != V_CALL || strcmp(v->s, "llama3")) {
		diag_error(v->loc, "'rope_scaling' of '%s' must be llama3(factor = F, "
		           "low_freq_factor = L, high_freq_factor = H, original = N)", l->kind);
		return -1;
	}
	for (int i = 0; i < v->args.n; i++) {
		const Arg *a = v->args.v[i];
		Loc at = a->key ? a->key_loc : a->val->loc;
		int k = i;
		if (a->key)
			for (k = 0; k < 4 && strcmp(names[k], a->key); k++)
				;
		if (k >= 4) {
			diag_error(at, a->key ? "llama3 has no argument '%s' (factor, low_freq_factor, "
			           "high_freq_factor, original)" : "too many arguments to llama3%s",
			           a->key ? a->key : "");
			return -1;
		}
		if (set[k]) {
			diag_error(at, "argument '%s' of llama3 given twice", names[k]);
			return -1;
		}
		set[k] = 1;
		const Value *x = a->val;
		at4[k] = x->loc;
		if ((x->kind != V_INT && x->kind != V_NUM) || !(x->d > 0) || isinf(x->d)
		    || (k == 3 && (x->kind != V_INT || x->d > (double)((int64_t)1 << 31)))) {
			diag_error(x->loc, "'%s' of llama3 must be a positive %s", names[k],
			           k == 3 ? "integer (the original context length)" : "number");
			bad = 1;
		}
		sc[k] = x->d;
	}
	for (int k = 0; k < 4 && !bad; k++)
		if (!set[k]) {
			diag_error(v->loc, "llama3 needs its argument '%s' (llama3(factor = F, "
			           "low_freq_factor = L, high_freq_factor = H, original = N))", names[k]);
			return -1;
		}
	if (!bad && sc[0] < 1) {
		diag_error(at4[0], "llama3's factor must be at least 1 (%g)", sc[0]);
		bad = 1;
	}
	if (!bad && !(sc[2] > sc[1])) {
		diag_error(v->loc, "llama3's high_freq_factor (%g) must be above its "
		           "low_freq_factor (%g)", sc[2], sc[1]);
		bad = 1;
	}
	return bad ? -1 : 0;
}

static int bind_args(const LayerDecl *l, const LayerCatalogue *ks, double *vals, const char **svals,
                     Loc *locs, double *scaling)
{
	int bad = 0;
	int set[LAYER_MAX_ARGS] = { 0 };
	const char *names[LAYER_MAX_ARGS];
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
		case LA_ROPE_SCALING:
			if (bind_rope_scaling(l, v, scaling) != 0)
				bad = 1;
			vals[k] = 1;
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
			diag_unknown(d->dtype_loc, "dtype", d->dtype, dtype_names, DT_COUNT);
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
			diag_unknown(d->kind_loc, "layer kind", d->kind, layer_kind_names, LK_COUNT);
			bad_chain = 1;
			continue;
		}
		const LayerCatalogue *lc = LAYER(kind);
		if (d->from && !layer_has_params(kind))
			diag_error(d->from_loc, "'from' binds a checkpoint prefix, but '%s' has no "
			           "parameters", d->kind);
		double vals[LAYER_MAX_ARGS];
		const char *svals[LAYER_MAX_ARGS];
		Loc locs[LAYER_MAX_ARGS];
		double scaling[4] = { 0 };
		if (bind_args(d, lc, vals, svals, locs, scaling) != 0) {
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
		/* grouped-query attention: whole groups of query heads per key/value
		 * head; the rotary embedding turns pairs of a head's features */
		int ka = layer_arg_index(kind, LF_KV_HEADS);
		if (ka >= 0 && vals[ka] > 0 && (vals[ka] > vals[ha]
		                                || (int64_t)vals[ha] % (int64_t)vals[ka])) {
			diag_error(locs[ka], "%lld key/value heads do not divide the %lld heads",
			           (long long)vals[ka], (long long)vals[ha]);
			bad_chain = 1;
			continue;
		}
		if (ka >= 0 && ((int64_t)vals[da] / (int64_t)vals[ha]) % 2) {
			diag_error(locs[ha], "the rotary embedding needs an even head size, but d = %lld "
			           "over %lld heads is %lld", (long long)vals[da], (long long)vals[ha],
			           (long long)vals[da] / (long long)vals[ha]);
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
			layer_set_args(L, vals, scaling);
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
					           "(bert_embeddings, gpt2_embeddings or llama_embeddings), but '%s' is %s",
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
				           "ids (start with an embedding: bert_embeddings, gpt2_embeddings, "
				           "llama_embeddings)", d->kind,
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
			diag_unknown(l->kind_loc, "loss", l->kind, loss_names, 3);
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

int sema_check_model(const Program *p, IrModel *m, int before)
{
	Names ns = { 0 };
	int tcap = 0;
	check_tensors(p, m, &ns, &tcap);
	check_layers(p, m, &ns, &tcap, before);
	int layers_ok = diag_errors() == before && m->nlayers > 0;
	check_loss(p, m, before);
	return layers_ok;
}
