/* step.c — builds a rank's step program (step.h) from its template
 * schedule and memory plan, and prints it (pipec -dP).
 *
 * The order is the emitted step's: generation's receives of tokens and
 * caches posted at the round's start; then before each action the
 * receives the plan posts there and the sends it completes there, then
 * the action; at the end the sends completed at the step's end and
 * generation's token and cache sends.  Request slots are the plan's, and
 * after them one per token or cache message of generation.
 */
#include "step.h"


const char *step_guard_c(SchedGuard g, int key)
{
	switch (g) {
	/* generation's rounds end per group at run time (rt_gen.c): a group's
	 * tokens go round after round t while rt_gen_ring(c, group, t) */
	case SG_ROUND_POS:      return xprintf("rt_gen_ring(c, %d, t - 1)", key);
	case SG_ROUND_ONE:      return xprintf("t == 1 && rt_gen_ring(c, %d, 0)", key);
	case SG_ROUND_NOT_LAST: return xprintf("rt_gen_ring(c, %d, t)", key);
	case SG_ROUND_ZERO:     return "t == 0";
	case SG_ROUND_NONZERO:  return "t != 0";
	case SG_GEN_RUNS:       return xprintf("rt_gen_runs(c, %d, t)", key);
	case SG_LIVE:           return xprintf("LIVE(KEY(%d))", key);
	default:                return NULL;
	}
}

static int local_tensor(const IrModel *m, const IrStage *st, int k)
{
	return k == 0 ? m->layers[st->first].in : m->layers[st->first + k - 1].out;
}

/* The message of local tensor k of a stage (k = 0: its input, k = n: its
 * output; grad: the gradient, which has no header) in slot `slot` of
 * micro-batch mb's offset table. */
static StepMsg tensor_msg(const IrModel *m, const StagePlan *sp, int mb, int k, int slot,
                          int grad)
{
	const IrTensor *T = &m->tensors[local_tensor(m, &m->stages[sp->stage], k)];
	StepMsg g = { .peer_t1 = -1, .pack_off = -1 };
	g.off = sp->off[mb][slot];
	g.hdr = grad ? 0 : k == 0 ? sp->in.bytes : sp->out.bytes;
	g.seq = T->seq;
	g.per_row = T->seq ? T->elems / m->seq_max : T->elems;
	g.values_max = T->elems * (m->pipe.B / ((int64_t)m->pipe.R * m->pipe.M));
	g.half = m->pipe.dtype != DT_F32;
	return g;
}

typedef struct Builder {
	const IrModel *m;
	const Schedule *s;
	const RankPlan *p;
	StepProgram *sp;
	VEC(StepInstr) in;
	int *xslot;             /* generation: the slot of a token or cache message */
	SchedGuard *guard;      /* [N] each action's guard */
	int *peer_t1;
	int64_t kv_group;       /* generation: bytes of one group's caches */
} Builder;

/* Instruction `kind` for action q. */
static StepInstr *add(Builder *b, StepKind kind, int q)
{
	const Action *a = &b->s->rank[b->sp->rank].a[q];
	int M = b->s->M;
	StepInstr in = { .kind = kind, .q = q, .op = a->op, .stage = a->stage, .key = a->mb,
	                 .slot = -1 };
	in.mb = b->s->async ? ((a->mb % M) + M) % M : a->mb;
	in.prev = b->s->async && a->mb < 0;
	in.guard = b->guard[q];
	VEC_PUSH(b->in, in);
	return &b->in.v[b->in.n - 1];
}

/* The message of action q (a SEND or RECV of any kind). */
static StepMsg message(Builder *b, int q)
{
	const IrModel *m = b->m;
	const Action *a = &b->s->rank[b->sp->rank].a[q];
	const RankPlan *p = b->p;
	int M = b->s->M, mb = b->s->async ? ((a->mb % M) + M) % M : a->mb;
	const StagePlan *sp = a->stage >= 0 ? memplan_stage(p, a->stage) : NULL;
	StepMsg g = { .peer_t1 = -1, .pack_off = -1 };
	SchedMsg id;            /* the message's identity: its tag's stage and direction */
	if (sched_msg(b->s, b->sp->rank, a, &id) == SCHED_MSG_NONE)
		unreachable();
	switch (a->op) {
	case OP_RECV_F:
		g = tensor_msg(m, sp, mb, 0, SLOT_X(sp->n, 0), 0);
		break;
	case OP_RECV_B:
		g = tensor_msg(m, sp, mb, sp->n, SLOT_GX(sp->n, sp->n), 1);
		break;
	case OP_SEND_F:
		g = tensor_msg(m, sp, mb, sp->n, SLOT_X(sp->n, sp->n), 0);
		g.pack_off = p->pack_off[q];
		g.half = g.pack_off >= 0;
		break;
	case OP_SEND_B:
		g = tensor_msg(m, sp, mb, 0, SLOT_GX(sp->n, 0), 1);
		g.pack_off = p->pack_off[q];
		g.half = g.pack_off >= 0;
		break;
	case OP_RECV_TOK:
	case OP_SEND_TOK:           /* the group's tokens: one int32 a row */
		g.tokens = 1;
		g.per_row = 1;
		break;
	case OP_RECV_KV:
	case OP_SEND_KV:            /* the group's caches, after one another */
		g.off = p->kv_off + a->mb * b->kv_group;
		g.hdr = b->kv_group;
		break;
	default:
		unreachable();
	}
	g.tag_stage = id.stage;
	g.tag_dir = id.dir;
	g.tag_mb = mb;
	g.peer = a->peer;
	g.peer_t1 = b->peer_t1[q];
	return g;
}

static StepInstr *add_msg(Builder *b, StepKind kind, int q, int slot)
{
	StepMsg g = message(b, q);
	StepInstr *in = add(b, kind, q);
	in->slot = slot;
	in->msg = g;
	return in;
}

StepProgram *step_build(const IrModel *m, const Schedule *s, const RankPlan *p, int rank)
{
	StepProgram *sp = xalloc(sizeof *sp);
	const ActList *l = &s->rank[rank];
	int N = l->n, P = s->P;
	sp->rank = rank;
	sp->prank = rank % P;
	sp->nranks = s->nranks;
	sp->mode = s->kind == SK_GENERATE ? STEP_GEN : s->async ? STEP_ASYNC : STEP_PLAIN;
	sp->eval = s->eval;
	sp->role = sp->mode != STEP_GEN ? 0 : !s->disagg ? 1 : rank < P ? 2 : 3;
	sp->rank_guard = sp->mode == STEP_GEN ? sched_generate_rank_guard(s, rank) : SG_ALWAYS;
	sp->nactions = N;
	sp->ntok = m->pipe.gen_tokens;
	sp->nparts = N > STEP_PART ? (N + STEP_PART - 1) / STEP_PART : 1;

	Builder b = { .m = m, .s = s, .p = p, .sp = sp };
	b.kv_group = s->M ? p->kv_bytes / s->M : 0;
	b.xslot = xalloc((size_t)(N + 1) * sizeof *b.xslot);
	b.guard = xalloc((size_t)(N + 1) * sizeof *b.guard);
	b.peer_t1 = xalloc((size_t)(N + 1) * sizeof *b.peer_t1);
	/* guards; generation's token and cache messages take slots after
	 * the plan's, one each */
	int next = p->nreq;
	for (int q = 0; q < N; q++) {
		const Action *a = &l->a[q];
		b.xslot[q] = -1;
		b.peer_t1[q] = -1;
		b.guard[q] = s->async ? SG_LIVE : SG_ALWAYS;
		if (sp->mode == STEP_GEN)
			b.guard[q] = sched_generate_guard(s, a, &b.peer_t1[q]);
		if (a->op == OP_RECV_TOK || a->op == OP_RECV_KV || a->op == OP_SEND_TOK
		    || a->op == OP_SEND_KV)
			b.xslot[q] = next++;
	}
	sp->nslots = next;

	/* generation: receives of tokens and caches are posted at the round's start */
	for (int q = 0; q < N; q++)
		if (l->a[q].op == OP_RECV_TOK || l->a[q].op == OP_RECV_KV)
			add_msg(&b, STEP_POST, q, b.xslot[q]);
	/* what happens before each action: receives posted, sends completed
	 * (the plan's post and wait points), in action order */
	int *head = xalloc((size_t)(N + 1) * sizeof *head);
	int *link = xalloc((size_t)(N + 1) * sizeof *link);
	for (int q = 0; q <= N; q++)
		head[q] = -1;
	for (int i = N - 1; i >= 0; i--) {
		const Action *a = &l->a[i];
		int at = a->op == OP_RECV_F || a->op == OP_RECV_B ? p->post_at[i]
		         : a->op == OP_SEND_F || a->op == OP_SEND_B ? p->wait_at[i] : -1;
		if (at >= 0) {
			link[i] = head[at];
			head[at] = i;
		}
	}
	for (int q = 0, part = 0; q <= N; q++) {
		if (q > 0 && q < N && q % STEP_PART == 0) {
			StepInstr split = { .kind = STEP_SPLIT, .q = ++part, .op = -1, .stage = -1,
			                    .key = -1, .mb = -1, .slot = -1 };
			VEC_PUSH(b.in, split);
		}
		for (int i = head[q]; i >= 0; i = link[i]) {
			int recv = l->a[i].op == OP_RECV_F || l->a[i].op == OP_RECV_B;
			if (recv)
				add_msg(&b, STEP_POST, i, p->req[i]);
			else
				add(&b, STEP_WAIT, i)->slot = p->req[i];
		}
		if (q == N)
			break;
		if (step_op_msg(l->a[q].op))
			add_msg(&b, STEP_ACT, q, b.xslot[q] >= 0 ? b.xslot[q] : p->req[q]);
		else
			add(&b, STEP_ACT, q);
	}
	/* generation: the token and cache sends complete at the round's end */
	for (int q = 0; q < N; q++)
		if (l->a[q].op == OP_SEND_TOK || l->a[q].op == OP_SEND_KV)
			add(&b, STEP_WAIT, q)->slot = b.xslot[q];
	sp->n = b.in.n;
	sp->in = b.in.v;
	return sp;
}

const char *step_instr_desc(const StepInstr *in)
{
	if (in->kind == STEP_SPLIT)
		return xprintf("SPLIT part %d", in->q);
	return xprintf("%s%s%s%s", in->kind == STEP_POST ? "POST " : in->kind == STEP_WAIT
	               ? "WAIT " : "", op_name(in->op),
	               in->stage >= 0 ? xprintf(" stage %d", in->stage) : "",
	               in->key >= 0 || in->prev ? xprintf(" mb %d", in->key) : "");
}

/* The size as the emitted call computes it. */
static const char *size_words(const StepMsg *g)
{
	if (g->tokens)
		return "ROWS*4";
	if (!g->per_row)
		return xprintf("%lld", (long long)g->hdr);
	const char *vals = xprintf("ROWS*%s%lld*%d", g->seq ? "T*" : "", (long long)g->per_row,
	                           g->half ? 2 : 4);
	return g->hdr ? xprintf("%lld+%s", (long long)g->hdr, vals) : vals;
}

void step_dump(FILE *out, const StepProgram *sp)
{
	static const char *const modes[] = { "plain", "generate", "asynchronous" };
	fprintf(out, "rank %d: %s program, %d instructions for %d actions, %d request slots, "
	        "%d part%s, %s", sp->rank, sp->eval ? "evaluation step" : "step", sp->n,
	        sp->nactions, sp->nslots, sp->nparts,
	        sp->nparts == 1 ? "" : "s", modes[sp->mode]);
	if (sp->rank_guard != SG_ALWAYS)
		fprintf(out, ", runs if %s", step_guard_c(sp->rank_guard, 0));
	fputc('\n', out);
	for (int i = 0; i < sp->n; i++) {
		const StepInstr *in = &sp->in[i];
		fprintf(out, "  %d %s%s", i, in->kind == STEP_ACT ? xprintf("%d: ", in->q) : "",
		        step_instr_desc(in));
		if (in->slot >= 0)
			fprintf(out, " slot %d", in->slot);
		if (in->kind != STEP_WAIT && step_op_msg(in->op)) {
			const StepMsg *g = &in->msg;
			fprintf(out, " %s rank %d", step_op_sends(in->op) ? "to" : "from", g->peer);
			if (g->peer_t1 >= 0)
				fprintf(out, " (round 1: rank %d)", g->peer_t1);
			fprintf(out, " tag (%d, %d, %d)", g->tag_stage, g->tag_mb, g->tag_dir);
			if (g->tokens)
				fprintf(out, " tokens of group %d", g->tag_mb);
			else
				fprintf(out, " at A+%lld", (long long)g->off);
			if (g->pack_off >= 0)
				fprintf(out, " packed at A+%lld", (long long)g->pack_off);
			fprintf(out, " size %s", size_words(g));
		}
		if (in->guard != SG_ALWAYS)
			fprintf(out, " if %s", step_guard_c(in->guard, in->key));
		fputc('\n', out);
	}
}
