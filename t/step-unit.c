/* step-unit.c — step programs: built for every kind of schedule from
 * models parsed here, they verify; deliberately broken ones (a wait
 * without its post, a slot reused while in flight, two messages in flight
 * in the same bytes, a mismatched tag, size or peer, a buffer read before
 * its receive, a request left in flight, a deadlock, a guard dropped) are
 * refused with the rank and instruction named.  A training program's
 * evaluation step (sched_eval) verifies too for every kind, and has the
 * shape its definition gives, computed here from the placement alone.
 */
#include "ast.h"
#include "memplan.h"
#include "partition.h"
#include "schedule.h"
#include "sema.h"
#include "step.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

/* Eight linear layers and their activations: room for 8 stages. */
static const char *mlp =
	"model m {\n"
	"    input  x : f32[batch, 8];\n"
	"    target y : i32[batch];\n"
	"    layer l1 : linear(8, 16);  layer a1 : relu;\n"
	"    layer l2 : linear(16, 16); layer n2 : layernorm(16);\n"
	"    layer l3 : linear(16, 16); layer a3 : gelu;\n"
	"    layer l4 : linear(16, 16); layer a4 : tanh;\n"
	"    layer l5 : linear(16, 16); layer a5 : relu;\n"
	"    layer l6 : linear(16, 16); layer a6 : relu;\n"
	"    layer l7 : linear(16, 16); layer a7 : relu;\n"
	"    layer l8 : linear(16, 4);\n"
	"    loss cross_entropy;\n"
	"}\n"
	"pipeline {\n"
	"    stages = 4; batch = 16; microbatches = 8; schedule = 1f1b;\n"
	"    partition = auto; optimizer = sgd(lr = 0.1); steps = 3;\n"
	"}\n";

static const char *gpt =
	"model g {\n"
	"    input ids : i32[batch, 4];\n"
	"    layer emb  : gpt2_embeddings(40, 16, 16);\n"
	"    layer h[4] : gpt2_block(16, 2);\n"
	"    layer ln_f : layernorm(16, eps = 1e-5);\n"
	"    layer head : lm_head(40, 16, tied = emb);\n"
	"}\n"
	"pipeline {\n"
	"    stages = 2; batch = 6; microbatches = 3; schedule = generate;\n"
	"    max_new_tokens = 8; sampling = greedy; partition = auto;\n"
	"}\n";

static char last_report[2048];

static void report(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_report, sizeof last_report, fmt, ap);
	va_end(ap);
}

/* A model's step programs, as `pipec compile` builds them. */
typedef struct Built {
	const IrModel *m;
	const Schedule *tmpl;
	StepProgram **sp;
	int nranks;
	const Schedule *train;  /* the whole schedule (an asynchronous stream) */
} Built;

/* The evaluation step of a training program, as `pipec compile` builds
 * it: the schedule verified, then plans and step programs. */
static Built *build_eval(const Built *t)
{
	Schedule *es = sched_eval(t->train);
	last_report[0] = 0;
	if (sched_verify(es, report) != 0)
		return NULL;
	Built *b = xalloc(sizeof *b);
	b->m = t->m;
	b->tmpl = es;
	b->train = es;
	b->nranks = es->nranks;
	b->sp = xalloc((size_t)b->nranks * sizeof *b->sp);
	for (int r = 0; r < b->nranks; r++)
		b->sp[r] = step_build(t->m, es, memplan_rank(t->m, es, r), r);
	return b;
}

/* NULL if the model or its settings do not check. */
static Built *build(const char *text, const char *const *sets)
{
	int n = 0;
	while (sets[n])
		n++;
	PipeItem **items = xalloc((size_t)(n + 1) * sizeof *items);
	for (int i = 0; i < n; i++)
		items[i] = parse_setting(src_from_string("--set", sets[i]));
	Program *p = parse_file(src_from_string("s.pipe", text));
	IrModel *m = p ? sema_check(p, items, n) : NULL;
	if (!m)
		return NULL;
	int *placement = NULL;
	if (m->pipe.sched == SK_ZBV) {
		placement = xalloc((size_t)2 * m->pipe.P * sizeof *placement);
		sched_zbv_placement(m->pipe.P, placement);
	}
	if (partition_model(m, &cost_defaults, placement) != 0)
		return NULL;
	SchedSpec spec = ir_sched_spec(m);
	Schedule *s = sched_generate(&spec, m->pipe.sched_loc);
	if (!s)
		return NULL;
	sched_lower(s, &spec);
	if (sched_verify(s, report) != 0)
		return NULL;
	for (int st = 0; st < m->S; st++)
		m->stages[st].rank = s->stage_rank[st];
	Built *b = xalloc(sizeof *b);
	b->m = m;
	b->train = s;
	b->tmpl = s->kind == SK_GENERATE ? sched_generate_template(s)
	          : s->async ? sched_async_template(s) : s;
	b->nranks = b->tmpl->nranks;
	b->sp = xalloc((size_t)b->nranks * sizeof *b->sp);
	for (int r = 0; r < b->nranks; r++)
		b->sp[r] = step_build(m, b->tmpl, memplan_rank(m, b->tmpl, r), r);
	return b;
}

static int verify(const Built *b)
{
	last_report[0] = 0;
	return step_verify(b->sp, b->nranks, b->tmpl, report);
}

/* A deep copy of rank r's program, to break. */
static StepProgram *copy_rank(Built *b, int r)
{
	StepProgram *c = xalloc(sizeof *c);
	*c = *b->sp[r];
	c->in = xalloc((size_t)(c->n + 1) * sizeof *c->in);
	memcpy(c->in, b->sp[r]->in, (size_t)c->n * sizeof *c->in);
	b->sp[r] = c;
	return c;
}

static void drop(StepProgram *sp, int i)
{
	memmove(&sp->in[i], &sp->in[i + 1], (size_t)(sp->n - i - 1) * sizeof *sp->in);
	sp->n--;
}

/* Moves instruction from to position to (to < from). */
static void move(StepProgram *sp, int from, int to)
{
	StepInstr x = sp->in[from];
	memmove(&sp->in[to + 1], &sp->in[to], (size_t)(from - to) * sizeof *sp->in);
	sp->in[to] = x;
}

static int find(const StepProgram *sp, StepKind kind, int op, int from)
{
	for (int i = from; i < sp->n; i++)
		if (sp->in[i].kind == kind && (op < 0 || sp->in[i].op == op))
			return i;
	return -1;
}

static int count(const StepProgram *sp, StepKind kind)
{
	int n = 0;
	for (int i = 0; i < sp->n; i++)
		n += sp->in[i].kind == kind;
	return n;
}

#define refused(b, needle, ...) do { \
	int rc_ = verify(b); \
	ok(rc_ != 0 && strstr(last_report, needle) != NULL, __VA_ARGS__); \
	diagf("  rc %d, report: %s", rc_, last_report); \
} while (0)

static int sp_eval_named(const Built *b)
{
	int all = 1;
	for (int r = 0; r < b->nranks; r++)
		all &= b->sp[r]->eval && b->sp[r]->mode == STEP_PLAIN;
	return all;
}

/* ---- good programs ---- */

static void test_good(void)
{
	static const struct {
		const char *what;
		int gen;
		const char *sets[6];
	} cases[] = {
		{ "1f1b", 0, { NULL } },
		{ "gpipe", 0, { "schedule=gpipe" } },
		{ "naive", 0, { "schedule=naive" } },
		{ "interleaved(2)", 0, { "schedule=interleaved(2)", "stages=2" } },
		{ "zb-h1", 0, { "schedule=zb-h1" } },
		{ "zb-v", 0, { "schedule=zb-v", "stages=2" } },
		{ "interleaved(2), 4 ranks", 0, { "schedule=interleaved(2)" } },
		{ "zb-v, 4 ranks", 0, { "schedule=zb-v" } },
		{ "pipedream", 0, { "schedule=pipedream" } },
		{ "pipedream-2bw", 0, { "schedule=pipedream-2bw" } },
		{ "pipedream, one step", 0, { "schedule=pipedream", "steps=1" } },
		{ "inference", 0, { "schedule=inference", "optimizer=none" } },
		{ "1f1b, forward only", 0, { "optimizer=none" } },
		{ "1f1b, 2 replicas", 0, { "replicas=2" } },
		{ "1f1b, recompute", 0, { "recompute=[0.5, 1, 0, 1]" } },
		{ "1f1b, bf16", 0, { "dtype=bf16" } },
		{ "gpipe, f16", 0, { "dtype=f16", "schedule=gpipe" } },
		{ "pipedream-2bw, bf16", 0, { "schedule=pipedream-2bw", "dtype=bf16" } },
		{ "zb-v, bf16", 0, { "schedule=zb-v", "stages=2", "dtype=bf16" } },
		{ "1f1b, one stage", 0, { "stages=1" } },
		{ "generate, colocated", 1, { NULL } },
		{ "generate, one stage", 1, { "stages=1" } },
		{ "generate, disaggregated", 1, { "prefill=disaggregated" } },
		{ "generate, disaggregated, one stage", 1, { "prefill=disaggregated", "stages=1" } },
		{ "generate, disaggregated, 3 stages", 1, { "prefill=disaggregated", "stages=3" } },
		{ "generate, one token", 1, { "max_new_tokens=1" } },
		{ "generate, disaggregated, two tokens", 1,
		  { "prefill=disaggregated", "max_new_tokens=2" } },
		{ "generate, bf16", 1, { "dtype=bf16" } },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		Built *b = build(cases[i].gen ? gpt : mlp, cases[i].sets);
		if (!ok(b != NULL, "%s: builds", cases[i].what))
			continue;
		int rc = verify(b);
		if (!ok(rc == 0, "%s: its %d step programs verify", cases[i].what, b->nranks))
			diagf("  %s", last_report);
		if (!b->train->training)
			continue;
		Built *e = build_eval(b);
		if (!ok(e != NULL, "%s: its evaluation schedule verifies", cases[i].what)) {
			diagf("  %s", last_report);
			continue;
		}
		rc = verify(e);
		if (!ok(rc == 0, "%s: its %d evaluation step programs verify", cases[i].what,
		        e->nranks))
			diagf("  %s", last_report);
	}
}

/* The evaluation step's shape, from its definition: on each rank, the
 * stages it holds in increasing order, every micro-batch of one before the
 * next, F only (RECV_F / SEND_F where the neighbouring stage is on another
 * rank); its messages tagged RT_TAG_DIR_EVAL; nothing planned for a
 * backward (no gradient buffer, no copy kept for recompute). */
static void test_eval(void)
{
	static const struct {
		const char *what;
		const char *sets[6];
	} cases[] = {
		{ "1f1b", { NULL } },
		{ "interleaved(2), 4 ranks", { "schedule=interleaved(2)" } },
		{ "zb-v, 4 ranks", { "schedule=zb-v" } },
		{ "zb-h1", { "schedule=zb-h1" } },
		{ "pipedream", { "schedule=pipedream" } },
		{ "pipedream-2bw, bf16", { "schedule=pipedream-2bw", "dtype=bf16" } },
		{ "gpipe, 2 replicas, recompute", { "schedule=gpipe", "replicas=2",
		                                     "recompute=[0.5, 1, 0, 1]" } },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		Built *t = build(mlp, cases[i].sets);
		Built *e = t ? build_eval(t) : NULL;
		if (!ok(e != NULL, "%s: an evaluation step", cases[i].what))
			continue;
		const Schedule *ts = t->train, *es = e->tmpl;
		int P = ts->P, S = ts->S, M = ts->M, shape = 1, tags = 1, bufs = 1;
		shape &= es->nranks == ts->nranks && es->eval && !es->training;
		for (int k = 0; k < es->nranks && shape; k++) {
			int p = k % P, q = 0;
			const ActList *l = &es->rank[k];
			for (int st = 0; st < S; st++) {
				if (ts->stage_rank[st] != p)
					continue;
				for (int mb = 0; mb < M; mb++) {
					int from = st > 0 && ts->stage_rank[st - 1] != p;
					int to = st < S - 1 && ts->stage_rank[st + 1] != p;
					int want[3] = { from ? OP_RECV_F : -1, OP_F, to ? OP_SEND_F : -1 };
					for (int j = 0; j < 3; j++) {
						if (want[j] < 0)
							continue;
						shape &= q < l->n && l->a[q].op == want[j] && l->a[q].stage == st
						         && l->a[q].mb == mb;
						q++;
					}
				}
			}
			shape &= q == l->n;
			const StepProgram *sp = e->sp[k];
			for (int j = 0; j < sp->n; j++)
				if ((sp->in[j].kind == STEP_POST || sp->in[j].kind == STEP_ACT)
				    && step_op_msg(sp->in[j].op))
					tags &= sp->in[j].msg.tag_dir == RT_TAG_DIR_EVAL;
			const RankPlan *pl = memplan_rank(t->m, es, k);
			for (int a = 0; a < pl->nstages; a++) {
				const StagePlan *g = &pl->st[a];
				for (int mb = 0; mb < M; mb++)
					for (int x = 0; x <= g->n; x++)
						bufs &= g->off[mb][SLOT_GX(g->n, x)] == NO_BUFFER
						        && g->off[mb][SLOT_RX(g->n, x)] == g->off[mb][SLOT_X(g->n, x)];
			}
		}
		ok(shape, "%s: each rank's stages in increasing order, micro-batches in order, "
		   "forward only", cases[i].what);
		ok(tags, "%s: every message tagged for evaluation", cases[i].what);
		ok(bufs, "%s: no gradient or recompute buffer planned", cases[i].what);
		ok(sp_eval_named(e), "%s: built as evaluation steps", cases[i].what);
	}

	/* a sweep: the send-completion rule (memplan.c) must never deadlock,
	 * whatever the placement, the stage and micro-batch counts */
	static const char *const kinds[] = { "1f1b", "gpipe", "interleaved(2)", "zb-h1", "zb-v",
	                                     "pipedream-2bw" };
	int tried = 0, good = 0;
	char failed[256] = "";
	for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
		for (int P = 1; P <= 4; P++)
			for (int M = 1; M <= 8; M *= 2)
				for (int R = 1; R <= 2; R++) {
					/* what sema refuses (interleaved: M a multiple of P;
					 * 2BW: one replica, M >= P) is not tried */
					int il = !strcmp(kinds[k], "interleaved(2)"), bw = kinds[k][0] == 'p';
					if ((il && M % P) || (bw && (R > 1 || M < P)))
						continue;
					const char *sets[] = { xprintf("schedule=%s", kinds[k]),
					                       xprintf("stages=%d", P),
					                       xprintf("microbatches=%d", M),
					                       xprintf("replicas=%d", R), "batch=32", NULL };
					Built *t = build(mlp, sets);
					tried++;
					Built *e = t ? build_eval(t) : NULL;
					if (e && verify(e) == 0)
						good++;
					else if (!failed[0])
						snprintf(failed, sizeof failed, "%s P=%d M=%d R=%d: %s", kinds[k], P,
						         M, R, last_report);
				}
	ok(tried > 90 && good == tried, "evaluation steps verify for every P, M, R and kind "
	   "tried (%d of %d)%s%s", good, tried, failed[0] ? ": " : "", failed);

	/* an evaluation message with a training step's tag is refused: the
	 * two never match */
	const char *none[] = { NULL };
	Built *e = build_eval(build(mlp, none));
	StepProgram *sp = copy_rank(e, 0);
	sp->in[find(sp, STEP_ACT, OP_SEND_F, 0)].msg.tag_dir = 0;
	refused(e, "(WAIT SEND_F stage 0 mb 0): waits forever: its message is never received",
	        "evaluation: a send with a training step's tag is refused (nobody receives it)");
}

/* A long step is written in parts, and still verifies. */
static void test_parts(void)
{
	const char *sets[] = { "batch=256", "microbatches=128", NULL };
	Built *b = build(mlp, sets);
	if (!ok(b != NULL, "1f1b, 128 micro-batches: builds"))
		return;
	const StepProgram *sp = b->sp[0];
	is_int(sp->nparts, (sp->nactions + STEP_PART - 1) / STEP_PART,
	       "... parts of %d actions", STEP_PART);
	is_int(count(sp, STEP_SPLIT), sp->nparts - 1, "... one SPLIT between parts");
	is_int(count(sp, STEP_ACT), sp->nactions, "... every action once");
	is_int(verify(b), 0, "... and verifies");
}

/* Every action is there once, in the schedule's order; every message has
 * its slot; the post and wait counts match the messages. */
static void test_shape(void)
{
	const char *none[] = { NULL };
	Built *b = build(mlp, none);
	int good = 1;
	for (int r = 0; r < b->nranks && b; r++) {
		const StepProgram *sp = b->sp[r];
		const ActList *l = &b->tmpl->rank[r];
		int q = 0;
		for (int i = 0; i < sp->n; i++) {
			const StepInstr *in = &sp->in[i];
			if (in->kind != STEP_ACT)
				continue;
			good &= in->q == q && in->op == l->a[q].op && in->key == l->a[q].mb;
			good &= step_op_msg(in->op) ? in->slot >= 0 && in->slot < sp->nslots
			        : in->slot == -1;
			q++;
		}
		int sends = 0, recvs = 0;
		for (int k = 0; k < l->n; k++) {
			sends += step_op_sends(l->a[k].op);
			recvs += step_op_recvs(l->a[k].op);
		}
		good &= q == l->n && count(sp, STEP_POST) == recvs && count(sp, STEP_WAIT) == sends;
	}
	ok(good, "1f1b: actions in order, messages with slots, a post per receive, a wait "
	   "per send");
	/* generation: the guards are the generator's */
	const char *dis[] = { "prefill=disaggregated", NULL };
	Built *g = build(gpt, dis);
	const StepProgram *d = g->sp[2];        /* the decode pipeline's first rank */
	int t = find(d, STEP_POST, OP_RECV_TOK, 0), k = find(d, STEP_POST, OP_RECV_KV, 0);
	ok(t >= 0 && d->in[t].guard == SG_ROUND_POS && d->in[t].msg.peer == 3
	   && d->in[t].msg.peer_t1 == 1, "disaggregated: the decode rank's token comes from "
	   "rank 1 in round 1, from rank 3 after, while its group's tokens go round");
	ok(k >= 0 && d->in[k].guard == SG_ROUND_ONE, "... its caches in round 1 only");
	ok(d->rank_guard == SG_ROUND_NONZERO && g->sp[0]->rank_guard == SG_ROUND_ZERO,
	   "... decode ranks run rounds t != 0, prefill ranks round 0");
	int s = find(g->sp[1], STEP_ACT, OP_SEND_TOK, 0);
	ok(s >= 0 && g->sp[1]->in[s].guard == SG_ROUND_NOT_LAST, "... a token is sent but in "
	   "the last round");
	ok(sched_guard_holds(SG_ROUND_POS, 1, 8) && !sched_guard_holds(SG_ROUND_POS, 0, 8)
	   && sched_guard_holds(SG_ROUND_NOT_LAST, 6, 8)
	   && !sched_guard_holds(SG_ROUND_NOT_LAST, 7, 8), "round guards hold where they say");
}


static void test_broken(void)
{
	const char *none[] = { NULL };

	/* a wait without its post: rank 1's first receive, not posted */
	Built *b = build(mlp, none);
	StepProgram *sp = copy_rank(b, 1);
	drop(sp, find(sp, STEP_POST, OP_RECV_F, 0));
	refused(b, "a wait without a post", "a RECV without its POST is refused");
	ok(strstr(last_report, "rank 1, instruction ") == last_report,
	   "... naming the rank and the instruction");

	/* a slot reused while in flight: rank 0's second send in its first's slot */
	b = build(mlp, none);
	sp = copy_rank(b, 0);
	int s0 = find(sp, STEP_ACT, OP_SEND_F, 0), s1 = find(sp, STEP_ACT, OP_SEND_F, s0 + 1);
	int w0 = find(sp, STEP_WAIT, OP_SEND_F, 0);
	ok(s0 >= 0 && s1 > s0 && w0 > s1, "(rank 0's first send is in flight at its second)");
	sp->in[s1].slot = sp->in[s0].slot;
	refused(b, "reused while", "a slot reused while its request is in flight is refused");

	/* two messages in flight in the same bytes: rank 0's second send
	 * from its first's buffer */
	b = build(mlp, none);
	sp = copy_rank(b, 0);
	sp->in[s1].msg.off = sp->in[s0].msg.off + 64;
	refused(b, "overlap those of instruction", "two messages in flight sharing arena bytes "
	        "are refused");

	/* a mismatched tag: the send of mb 0 tagged as mb 5 */
	b = build(mlp, none);
	sp = copy_rank(b, 0);
	sp->in[find(sp, STEP_ACT, OP_SEND_F, 0)].msg.tag_mb = 5;
	refused(b, "with tag (1, 5, 0), but rank 1's instruction", "a send with the wrong tag is "
	        "refused, naming it");

	/* a mismatched size */
	b = build(mlp, none);
	sp = copy_rank(b, 1);
	sp->in[find(sp, STEP_ACT, OP_SEND_F, 0)].msg.per_row += 1;
	refused(b, "but expects", "a send of the wrong size is refused");

	/* a send to the wrong rank */
	b = build(mlp, none);
	sp = copy_rank(b, 1);
	sp->in[find(sp, STEP_ACT, OP_SEND_F, 0)].msg.peer = 3;
	refused(b, "goes to rank 3 with tag (2, 0, 0), but rank 2's", "a send to the wrong rank "
	        "is refused, naming it");

	/* a buffer read before its receive: F before the RECV that waits for it */
	b = build(mlp, none);
	sp = copy_rank(b, 2);
	int r = find(sp, STEP_ACT, OP_RECV_F, 0), f = find(sp, STEP_ACT, OP_F, r);
	StepInstr tmp = sp->in[r];
	sp->in[r] = sp->in[f];
	sp->in[f] = tmp;
	refused(b, "reads its buffer before instruction", "an action reading its input before the RECV is "
	        "refused");

	/* a request left in flight: the last send never waited for */
	b = build(mlp, none);
	sp = copy_rank(b, 0);
	int w = -1;
	for (int i = 0; i < sp->n; i++)
		w = sp->in[i].kind == STEP_WAIT ? i : w;
	drop(sp, w);
	refused(b, "still in flight", "a send never completed is refused");

	/* a deadlock: rank 0 waits for mb 0's gradient before it sends the
	 * activations the gradient needs */
	b = build(mlp, none);
	sp = copy_rank(b, 0);
	move(sp, find(sp, STEP_POST, OP_RECV_B, 0), 0);
	move(sp, find(sp, STEP_ACT, OP_RECV_B, 0), 1);
	refused(b, "waits forever", "a step that deadlocks is refused");
	ok(strstr(last_report, "rank 0, instruction 1 ") == last_report,
	   "... naming the first rank stuck: %s", last_report);

	/* generation: a token receive unguarded waits in round 0 for a token
	 * nobody sends */
	b = build(gpt, none);
	sp = copy_rank(b, 0);
	int t = find(sp, STEP_POST, OP_RECV_TOK, 0);
	sp->in[t].guard = SG_ALWAYS;
	sp->in[find(sp, STEP_ACT, OP_RECV_TOK, 0)].guard = SG_ALWAYS;
	refused(b, "in round 0", "generate: a RECV_TOK without its guard is refused in round 0");

	/* generation: the caches' send kept in the last round */
	const char *dis[] = { "prefill=disaggregated", "max_new_tokens=1", NULL };
	b = build(gpt, dis);
	sp = copy_rank(b, 0);
	for (int i = 0; i < sp->n; i++)
		if (sp->in[i].op == OP_SEND_KV)
			sp->in[i].guard = SG_ALWAYS;
	refused(b, "never received", "generate: caches sent when no round decodes are refused");

	/* asynchronous: a backward's receive posted with no LIVE guard waits
	 * in step 0 for a key the run does not have */
	const char *pd[] = { "schedule=pipedream", NULL };
	b = build(mlp, pd);
	sp = copy_rank(b, 0);
	for (int i = 0; i < sp->n; i++)
		if (sp->in[i].op == OP_RECV_B && sp->in[i].key < 0)
			sp->in[i].guard = SG_ALWAYS;
	refused(b, "step 0", "pipedream: a backward of the previous step unguarded is refused");
}

int main(void)
{
	test_good();
	test_eval();
	test_parts();
	test_shape();
	test_broken();
	return done_testing();
}
