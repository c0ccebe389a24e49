/* sema_pipe.c — the semantic pass over the pipeline block (sema.c).
 *
 * The pipeline keys, their values and the constraints between them (batch,
 * micro-batches, replicas, the schedule and what it needs, the partition's
 * syntax and sums, recompute ratios, generate's and pipedream's settings).
 * The partition itself is chosen later (partition.c).
 */
#include "sema_int.h"
#include "rt_tf_sizes.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Pipeline block                                                      */

#define PIPE_KEYS(X) \
	X(K_STAGES, "stages") X(K_BATCH, "batch") X(K_MICROBATCHES, "microbatches") \
	X(K_SCHEDULE, "schedule") X(K_PARTITION, "partition") X(K_RECOMPUTE, "recompute") \
	X(K_REPLICAS, "replicas") X(K_DTYPE, "dtype") X(K_OPTIMIZER, "optimizer") \
	X(K_STEPS, "steps") X(K_SEED, "seed") X(K_MEMORY, "memory") \
	X(K_MAX_NEW, "max_new_tokens") X(K_SAMPLING, "sampling") X(K_EOS, "eos") \
	X(K_PREFILL, "prefill") X(K_INFLIGHT, "inflight") X(K_DECAY, "decay") \
	X(K_LR_SCHEDULE, "lr_schedule") X(K_CLIP, "clip_grad_norm") X(K_SHUFFLE, "shuffle")

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

/* An integer in [lo, hi] called `name`: its value in *out, else -1 and
 * the error. */
static int int_in(const Value *v, const char *name, long long lo, long long hi,
                  long long *out)
{
	if (v->kind != V_INT) {
		diag_error(v->loc, "'%s' must be an integer, not %s", name, value_kind_name(v->kind));
		return -1;
	}
	if (v->i < lo) {
		diag_error(v->loc, "'%s' must be at least %lld, not %lld", name, lo, v->i);
		return -1;
	}
	if (v->i > hi) {
		diag_error(v->loc, "'%s' must be at most %lld, not %lld", name, hi, v->i);
		return -1;
	}
	*out = v->i;
	return 0;
}

static int int_value(const PipeItem *it, long long lo, long long hi, long long *out)
{
	return int_in(it->val, it->key, lo, hi, out);
}

static int is_number(const Value *v)
{
	return v->kind == V_INT || v->kind == V_NUM;
}

/* A number as the user wrote it ("-0.05", "1e-3"), for messages. */
static const char *written(const Value *v)
{
	int n = (int)(v->loc.end - v->loc.off);
	if (!v->loc.file || n <= 0)
		return xprintf("%g", v->d);
	return xprintf("%.*s", n > 40 ? 40 : n, v->loc.file->text + v->loc.off);
}

/* The range of a number: lo < x (lo <= x unless lo_open), and x < 1 when
 * below_one (the betas, momentum); always finite. */
typedef struct NumRange {
	double lo;
	int lo_open, below_one;
} NumRange;
#define POSITIVE ((NumRange){ 0, 1, 0 })
#define NONNEG ((NumRange){ 0, 0, 0 })
#define UNIT ((NumRange){ 0, 0, 1 })        /* [0, 1) */

/* A number called `name` in range r: in *out, else -1 and the error
 * ("'lr' must be > 0, not -0.05"). */
static int num_in(const Value *v, const char *name, NumRange r, double *out)
{
	if (!is_number(v)) {
		diag_error(v->loc, "'%s' must be a number, not %s", name, value_kind_name(v->kind));
		return -1;
	}
	double x = v->d;
	if (!(r.lo_open ? x > r.lo : x >= r.lo) || (r.below_one && !(x < 1)) || isinf(x)) {
		const char *want = r.below_one ? xprintf("in [%g, 1)", r.lo)
		                 : xprintf("%s %g%s", r.lo_open ? ">" : ">=", r.lo,
		                           isinf(x) ? " and finite" : "");
		diag_error(v->loc, "'%s' must be %s, not %s", name, want, written(v));
		return -1;
	}
	*out = x;
	return 0;
}

static int bool_in(const Value *v, const char *name, int *out)
{
	if (v->kind == V_WORD && (!strcmp(v->s, "true") || !strcmp(v->s, "false"))) {
		*out = !strcmp(v->s, "true");
		return 0;
	}
	diag_error(v->loc, "'%s' must be true or false", name);
	return -1;
}

/* The named arguments of a call such as sgd(lr = 0.1), by key: got[k] is
 * keys[k]'s value or NULL.  An unnamed, unknown or repeated argument is
 * reported ("what" and "example" say how they are written); returns the
 * number of unnamed ones. */
static int named_args(const Value *v, const char *what, const char *example,
                      const char *const *keys, int nkeys, const Value **got)
{
	int unnamed = 0;
	for (int k = 0; k < nkeys; k++)
		got[k] = NULL;
	for (int i = 0; i < v->args.n; i++) {
		const Arg *a = v->args.v[i];
		int k;
		if (!a->key) {
			diag_error(a->val->loc, "%s arguments are named: %s", what, example);
			unnamed++;
			continue;
		}
		for (k = 0; k < nkeys && strcmp(a->key, keys[k]); k++)
			;
		if (k < nkeys && got[k]) {
			diag_error(a->key_loc, "argument '%s' of %s given twice", a->key, v->s);
		} else if (k < nkeys) {
			got[k] = a->val;
		} else {
			const char *best = closest_name(a->key, keys, nkeys);
			const char *list = keys[0];
			for (int j = 1; j < nkeys; j++)
				list = xprintf("%s%s%s", list, j == nkeys - 1 ? " and " : ", ", keys[j]);
			if (best)
				diag_error(a->key_loc, "%s has no argument '%s'; did you mean '%s'?",
				           v->s, a->key, best);
			else
				diag_error(a->key_loc, "%s has no argument '%s' (it takes %s)", v->s,
				           a->key, list);
		}
	}
	return unnamed;
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

/* optimizer = sgd(lr, momentum, weight_decay, nesterov)
 *           | adam(lr, beta1, beta2, eps, weight_decay) | adamw(...) | none,
 * torch.optim's, with its defaults (sema_check_pipeline sets them). */
static void parse_optimizer(const PipeItem *it, Pipeline *pp)
{
	const Value *v = it->val;
	static const char *const opt_names[] = { "sgd", "adam", "adamw", "none" };
	if (v->kind == V_WORD && !strcmp(v->s, "none"))
		return;         /* `optimizer = none`: inference (useful with --set) */
	if (v->kind != V_CALL && v->kind != V_WORD) {
		diag_error(v->loc, "'optimizer' must be sgd(lr = X, ...), adam(lr = X, ...), "
		           "adamw(lr = X, ...) or none");
		return;
	}
	int sgd = !strcmp(v->s, "sgd"), adamw = !strcmp(v->s, "adamw");
	if (!sgd && !adamw && strcmp(v->s, "adam")) {
		diag_unknown(v->loc, "optimizer", v->s, opt_names, 4);
		return;
	}
	pp->optim = sgd ? OPT_SGD : OPT_ADAM;
	pp->decoupled = adamw;
	if (adamw)
		pp->weight_decay = 0.01;
	/* in torch.optim's order; lr first in both */
	static const char *const sgd_keys[] = { "lr", "momentum", "weight_decay", "nesterov" };
	static const char *const adam_keys[] = { "lr", "beta1", "beta2", "eps", "weight_decay" };
	const Value *a[5] = { 0 };
	const char *lr_eg = sgd ? "0.01" : "1e-3";
	int unnamed = named_args(v, "optimizer", xprintf("%s(lr = %s)", v->s, lr_eg),
	                         sgd ? sgd_keys : adam_keys, sgd ? 4 : 5, a);
	if (a[0])
		num_in(a[0], "lr", POSITIVE, &pp->lr);
	else if (!unnamed)
		diag_error(v->loc, "%s needs a learning rate: %s(lr = %s)", v->s, v->s, lr_eg);
	if (sgd) {
		int bad_momentum = a[1] && num_in(a[1], "momentum", UNIT, &pp->momentum) != 0;
		if (a[2])
			num_in(a[2], "weight_decay", NONNEG, &pp->weight_decay);
		if (a[3] && bool_in(a[3], "nesterov", &pp->nesterov) == 0 && pp->nesterov
		    && !bad_momentum && !(pp->momentum > 0))
			diag_error(a[3]->loc, "nesterov = true needs momentum > 0 (Nesterov's "
			           "method is a kind of momentum; torch.optim.SGD refuses it too)");
	} else {
		if (a[1])
			num_in(a[1], "beta1", UNIT, &pp->beta1);
		if (a[2])
			num_in(a[2], "beta2", UNIT, &pp->beta2);
		if (a[3])
			num_in(a[3], "eps", POSITIVE, &pp->eps);
		if (a[4])
			num_in(a[4], "weight_decay", NONNEG, &pp->weight_decay);
	}
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
		diag_unknown(v->loc, "schedule", v->s, names, SK_COUNT);
		return;
	}
	pp->sched = (SchedKind)k;
	if (k == SK_INTERLEAVED || k == SK_INTERLEAVED_ZB || k == SK_LOOPED_BFS) {
		const char *kn = sched_kind_name(k);
		if (v->kind != V_CALL || v->args.n != 1 || v->args.v[0]->key
		    || v->args.v[0]->val->kind != V_INT) {
			diag_error(v->loc, "%s takes the number of virtual stages per rank: "
			           "%s(2)", kn, kn);
			return;
		}
		long long V = v->args.v[0]->val->i;
		if (V < 1 || V > 64) {
			diag_error(v->args.v[0]->val->loc, "%s(V) needs 1 <= V <= 64, not %lld",
			           kn, V);
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
	} else if (k == SK_ZBAUTO) {
		/* zb-auto or zb-auto(memory = R): R times 1F1B's rank-0 activations */
		pp->zb_memory = 1;
		static const char *const keys[] = { "memory" };
		const Value *a[1] = { 0 };
		if (v->kind == V_CALL && named_args(v, "zb-auto", "zb-auto(memory = 2)", keys, 1, a) == 0
		    && a[0] && num_in(a[0], "memory", POSITIVE, &pp->zb_memory) == 0
		    && pp->zb_memory > 1000) {
			diag_error(a[0]->loc, "'memory' of zb-auto is a multiple of what 1F1B keeps "
			           "on rank 0, at most 1000, not %g", pp->zb_memory);
		}
	} else if (v->kind == V_CALL) {
		diag_error(v->loc, "schedule '%s' takes no arguments", v->s);
	} else if (k == SK_ZBV || k == SK_DUALPIPEV) {
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
				diag_unknown(r->first_loc, "layer", r->first, names, m->nlayers);
			if (b < 0 && strcmp(r->first, r->last))
				diag_unknown(r->last_loc, "layer", r->last, names, m->nlayers);
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

/* lr_schedule = constant | constant(warmup = W)
 *             | cosine(warmup = W, total = T, min_lr = m) | linear(...):
 * W >= 0, T > W (default: the pipeline's steps, as compiled, so a run's
 * --steps does not move the horizon), 0 <= m <= lr.  Runs after the
 * optimizer and steps are read. */
static void parse_lr_schedule(const PipeItem *const *item, Pipeline *pp)
{
	const Value *v = item[K_LR_SCHEDULE]->val;
	static const char *const names[] = { "constant", "cosine", "linear" };
	if (v->kind != V_CALL && v->kind != V_WORD) {
		diag_error(v->loc, "'lr_schedule' must be constant, constant(warmup = W), "
		           "cosine(warmup = W, total = T, min_lr = m) or linear(warmup = W, "
		           "total = T, min_lr = m)");
		return;
	}
	int k;
	for (k = 0; k < 3 && strcmp(v->s, names[k]); k++)
		;
	if (k == 3) {
		diag_unknown(v->loc, "lr_schedule", v->s, names, 3);
		return;
	}
	pp->lr_schedule = k == 1 ? LR_COSINE : k == 2 ? LR_LINEAR : LR_CONSTANT;
	static const char *const keys[] = { "warmup", "total", "min_lr" };
	const Value *a[3] = { 0 };
	named_args(v, "lr_schedule", k ? xprintf("%s(warmup = 100, total = 1000)", v->s)
	                                : "constant(warmup = 100)", keys, k ? 3 : 1, a);
	long long W = 0, T = pp->steps;
	if (a[0] && int_in(a[0], "warmup", 0, 1LL << 40, &W) != 0)
		return;
	if (a[1] && int_in(a[1], "total", 1, 1LL << 40, &T) != 0)
		return;
	pp->lr_warmup = W;
	pp->lr_total = T;
	/* lr is 0 without an optimizer (reported) or with a bad lr (too) */
	if (a[2] && num_in(a[2], "min_lr", NONNEG, &pp->min_lr) == 0 && pp->lr > 0
	    && pp->min_lr > pp->lr) {
		diag_error(a[2]->loc, "'min_lr' must be at most the optimizer's lr = %g, not %s",
		           pp->lr, written(a[2]));
		note_key(a[2]->loc, item[K_OPTIMIZER]);
	}
	if (k && T <= W) {
		if (a[1]) {
			diag_error(a[1]->loc, "'total' must be greater than warmup = %lld, not %lld "
			           "(the schedule decays over steps warmup+1 .. total)", W, T);
		} else {
			diag_error(a[0]->loc, "warmup = %lld leaves no steps to decay over: total "
			           "(by default steps = %lld) must be greater", W, T);
			note_key(a[0]->loc, item[K_STEPS]);
		}
	}
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
			num_in(a->val, "temperature", POSITIVE, &pp->temperature);
		} else if (!strcmp(a->key, "top_k")) {
			if (a->val->kind != V_INT || a->val->i < 1 || a->val->i > (1 << 30))
				diag_error(a->val->loc, "'top_k' must be an integer of at least 1 (the "
				           "number of most likely tokens drawn from)");
			else
				pp->top_k = (int)a->val->i;
		} else if (!strcmp(a->key, "seed")) {
			long long seed;
			if (int_in(a->val, "seed", 0, LLONG_MAX, &seed) == 0)
				pp->sample_seed = seed;
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
	if (m->layers[0].kind != LK_GPT2_EMB && m->layers[0].kind != LK_LLAMA_EMB) {
		diag_error(m->layers[0].loc, "generate needs gpt2_embeddings or llama_embeddings as "
		           "the first layer, not %s", layer_kind_name(m->layers[0].kind));
		return;
	}
	int64_t positions = m->layers[0].positions;
	for (int l = 1; l < m->nlayers; l++) {
		const IrLayer *L = &m->layers[l];
		if (!LAYER(L->kind)->gen) {
			diag_error(L->loc, "generate cannot run layer '%s' (%s): a decoder's layers "
			           "are gpt2_embeddings, gpt2_block, llama_embeddings, "
			           "llama_block, layernorm, rmsnorm, lm_head and position-wise ones", L->name, layer_kind_name(L->kind));
			return;
		}
	}
	pp->kv_cap = m->seq_max + pp->gen_tokens;
	if (pp->kv_cap > positions) {
		diag_error(item[K_MAX_NEW]->val->loc, "prompts of up to %lld tokens (ids's "
		           "length) and max_new_tokens = %d need %lld positions, but the model "
		           "has %lld (%s)", (long long)m->seq_max, pp->gen_tokens,
		           (long long)pp->kv_cap, (long long)positions,
		           layer_kind_name(m->layers[0].kind));
		diag_note(m->layers[0].loc, "the position table is declared here");
		return;
	}
	/* a decode step's scratch: one position attending to the whole cache */
	for (int l = 0; l < m->nlayers; l++) {
		IrLayer *L = &m->layers[l];
		int64_t w = L->kind == LK_LLAMA_BLOCK
		            ? rt_llama_kv_work(1, pp->kv_cap, L->d, L->heads, L->kv_heads, L->ffn)
		            : rt_gpt2_kv_work(1, pp->kv_cap, L->d, L->heads, L->ffn);
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

void sema_check_pipeline(const Program *p, PipeItem *const *sets, int nsets, IrModel *m,
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
			const char *best = diag_unknown(it->key_loc, "pipeline key", it->key, keys, K_COUNT);
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
	pp->beta1 = 0.9;        /* torch.optim.Adam's defaults */
	pp->beta2 = 0.999;
	pp->eps = 1e-8;
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
	if (item[K_SEED] && int_value(item[K_SEED], 0, LLONG_MAX, &x) == 0)
		pp->seed = x;
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
	pp->lr_total = pp->steps;
	if (item[K_LR_SCHEDULE])
		parse_lr_schedule(item, pp);
	if (item[K_CLIP])
		num_in(item[K_CLIP]->val, "clip_grad_norm", POSITIVE, &pp->clip_grad_norm);
	if (item[K_SHUFFLE])
		bool_in(item[K_SHUFFLE]->val, "shuffle", &pp->shuffle);
	if (item[K_DECAY]) {
		const Value *v = item[K_DECAY]->val;
		if (v->kind == V_WORD && !strcmp(v->s, "matrices"))
			pp->decay_matrices = 1;
		else if (!(v->kind == V_WORD && !strcmp(v->s, "all")))
			diag_error(v->loc, "'decay' must be all (weight decay on every parameter) or "
			           "matrices (only on parameters of two or more dimensions: not on "
			           "biases or norm weights)");
	}
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
	/* torch's ScheduleInterleavedZeroBubble runs micro-batches in rounds of
	 * M / max(1, M div P) and refuses an M those rounds do not divide */
	if (!bad && pp->sched == SK_INTERLEAVED_ZB && pp->M % (pp->M / pp->P > 1 ? pp->M / pp->P
	                                                       : 1) != 0) {
		int rounds = pp->M / pp->P;
		diag_error(pp->sched_loc, "interleaved-zb runs the microbatches in "
		           "microbatches div stages = %d rounds of equal size (as torch's "
		           "ScheduleInterleavedZeroBubble), but %d does not divide microbatches = "
		           "%d (stages = %d; try microbatches = %d)", rounds, rounds, pp->M, pp->P,
		           rounds * pp->P);
		note_key(pp->sched_loc, item[K_MICROBATCHES]);
		note_key(pp->sched_loc, item[K_STAGES]);
	}
	/* DualPipeV's steady phase (torch's step 4) runs M - 2P + r + 1 rounds
	 * on rank r: rank 0 needs M >= 2P - 1, and torch asks for M >= 2P */
	if (!bad && pp->sched == SK_DUALPIPEV && pp->M < 2 * pp->P) {
		diag_error(pp->sched_loc, "dualpipev needs at least 2 x stages microbatches (one "
		           "per virtual stage, as torch's ScheduleDualPipeV), but microbatches = %d "
		           "and stages = %d (try microbatches = %d)", pp->M, pp->P, 2 * pp->P);
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
	/* What only a training program means.  Clipping needs the step's whole
	 * gradient at once: pipedream applies each micro-batch's own.
	 * pipedream-2bw's OPTIM of a step is a global collective then (the
	 * norm's allreduce), which its order admits: rank p's OPTIM of step u
	 * follows its forwards up to key (u+1)M + P-2-p and the backward of
	 * key (u+1)M - 1; the forwards it waits for come from rank p-1 before
	 * that rank's OPTIM (it goes one key further), the backward from rank
	 * p+1 before its OPTIM, and sends never wait: every rank reaches the
	 * collective.  sched_verify() checks it on the stream it builds. */
	static const int train_keys[] = { K_LR_SCHEDULE, K_CLIP, K_DECAY, K_SHUFFLE };
	for (int i = 0; i < 4; i++)
		if (!training && item[train_keys[i]]) {
			diag_error(item[train_keys[i]]->key_loc, "'%s' applies to training only, but "
			           "there is no optimizer", keys[train_keys[i]]);
			note_key(item[train_keys[i]]->key_loc, item[K_OPTIMIZER]);
		}
	if (training && item[K_CLIP] && pp->sched == SK_PIPEDREAM) {
		diag_error(item[K_CLIP]->val->loc, "clip_grad_norm scales a step's whole gradient, "
		           "but schedule 'pipedream' never has one: it applies each micro-batch's "
		           "gradient after that micro-batch's backward (pipedream-2bw and the "
		           "flushing schedules can clip)");
		note_key(item[K_CLIP]->val->loc, item[K_SCHEDULE]);
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
