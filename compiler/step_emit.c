/* step_emit.c — the C text of a rank's step() from its step program.
 *
 * Printing only: every guard, slot, peer, tag, offset and size, and the
 * place of every post and wait, comes from the step program (step.h).
 * One runtime call per instruction; each action under a comment that
 * reads as the schedule ("12: F stage 1 mb 3").
 */
#include "step.h"

#include <stdarg.h>

/* Where the text goes: the emitter's file, through its own counting. */
typedef struct Text {
	void (*write)(void *ctx, const char *text);
	void *ctx;
} Text;

static void put(Text *t, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void put(Text *t, const char *fmt, ...)
{
	char tmp[512];
	int n;
	va_list ap;
	va_start(ap, fmt);
	const char *s = vformat(tmp, sizeof tmp, &n, fmt, ap);
	va_end(ap);
	t->write(t->ctx, s);
}

typedef struct Printer {
	const StepProgram *sp;
	const Schedule *s;
	Text t;
} Printer;

/* "if (GUARD) " or "" */
static const char *if_guard(const StepInstr *in)
{
	const char *g = step_guard_c(in->guard, in->key);
	return g ? xprintf("if (%s) ", g) : "";
}

/* A key as the comments write it: asynchronous keys relative to the step. */
static const char *key_text(const Printer *pr, int key)
{
	if (pr->sp->mode != STEP_ASYNC)
		return xprintf("%d", key);
	return key < 0 ? xprintf("t*%d-%d", pr->s->M, -key) : xprintf("t*%d+%d", pr->s->M, key);
}

static const char *peer_text(const StepMsg *g)
{
	return g->peer_t1 >= 0 ? xprintf("(t == 1 ? %d : %d)", g->peer_t1, g->peer)
	       : xprintf("%d", g->peer);
}

/* 4-byte values per row after the header, as C. */
static const char *values_c(const StepMsg *g)
{
	const char *e = !g->seq ? xprintf("%lld", (long long)g->per_row)
	                : g->per_row == 1 ? "T" : xprintf("T * %lld", (long long)g->per_row);
	return xprintf("(int64_t)ROWS * %s", e);
}

static const char *bytes_c(const StepMsg *g)
{
	if (g->tokens)
		return "(int64_t)ROWS * 4";
	if (!g->per_row)
		return xprintf("%lld", (long long)g->hdr);
	const char *main = xprintf("%s * 4", values_c(g));
	return g->hdr ? xprintf("%lld + %s", (long long)g->hdr, main) : main;
}

static const char *tag_c(const StepMsg *g)
{
	return xprintf("RT_TAG(%d, %d, %d)", g->tag_stage, g->tag_mb, g->tag_dir);
}

static void post(Printer *pr, const StepInstr *in)
{
	const StepMsg *g = &in->msg;
	switch (in->op) {
	case OP_RECV_TOK:
		put(&pr->t, "\t%srt_irecv(c, %d, rt_gen_tokens(c, %d), %s, %s, %s, "
		    "\"RECV_TOK group %d\");\n", if_guard(in), in->slot, g->tag_mb, bytes_c(g),
		    peer_text(g), tag_c(g), in->key);
		return;
	case OP_RECV_KV:
		put(&pr->t, "\t%srt_irecv(c, %d, A + %lld, %s, %s, %s, "
		    "\"RECV_KV stage %d group %d from rank %d\");\n", if_guard(in), in->slot,
		    (long long)g->off, bytes_c(g), peer_text(g), tag_c(g), in->stage, in->key,
		    g->peer);
		return;
	default:
		break;
	}
	const char *desc = xprintf("\"%s stage %d mb %s from rank %d\"", op_name(in->op),
	                           in->stage, key_text(pr, in->key), g->peer);
	if (pr->sp->mode == STEP_GEN && in->op == OP_RECV_F) {
		/* as many tokens as its header's descriptor says */
		if (g->half)
			put(&pr->t, "\t%srt_gen_irecv16(c, %d, A + %lld, %lld, %lld, %d, %s, %s);\n",
			    if_guard(in), in->slot, (long long)g->off, (long long)g->hdr,
			    (long long)g->per_row, g->peer, tag_c(g), desc);
		else
			put(&pr->t, "\t%srt_gen_irecv(c, %d, A + %lld, %lld, %lld * 4, %d, %s, %s);\n",
			    if_guard(in), in->slot, (long long)g->off, (long long)g->hdr,
			    (long long)g->per_row, g->peer, tag_c(g), desc);
		return;
	}
	if (g->half)            /* unpacked in place by its wait */
		put(&pr->t, "\t%srt_irecv16(c, %d, A + %lld, %lld, %s, %d, %s, %s);\n", if_guard(in),
		    in->slot, (long long)g->off, (long long)g->hdr, values_c(g), g->peer, tag_c(g),
		    desc);
	else
		put(&pr->t, "\t%srt_irecv(c, %d, A + %lld, %s, %d, %s, %s);\n", if_guard(in),
		    in->slot, (long long)g->off, bytes_c(g), g->peer, tag_c(g), desc);
}

static void wait_send(Printer *pr, const StepInstr *in)
{
	if (in->op == OP_SEND_TOK || in->op == OP_SEND_KV)
		put(&pr->t, "\t%srt_wait(c, %d);   /* %s group %d has been received */\n",
		    if_guard(in), in->slot, op_name(in->op), in->key);
	else
		put(&pr->t, "\t%srt_wait(c, %d);   /* %s stage %d mb %s has been received */\n",
		    if_guard(in), in->slot, op_name(in->op), in->stage, key_text(pr, in->key));
}

/* Generation's token and cache messages: one guarded block each. */
static void act_ring(Printer *pr, const StepInstr *in)
{
	const StepMsg *g = &in->msg;
	const char *gd = if_guard(in);
	switch (in->op) {
	case OP_RECV_TOK:
		put(&pr->t, "\t/* %d: RECV_TOK stage 0 group %d from rank %s: the token picked "
		    "last round */\n\t%s{ rt_begin(c, RT_OP_RECV_TOK, 0, %d); rt_wait(c, %d); "
		    "rt_end(c); }\n", in->q, in->key, peer_text(g), gd, in->key, in->slot);
		break;
	case OP_RECV_KV:
		put(&pr->t, "\t/* %d: RECV_KV stage %d group %d from rank %d: the caches its "
		    "prefill built */\n\t%s{ rt_begin(c, RT_OP_RECV_KV, %d, %d); rt_wait(c, %d); "
		    "rt_end(c); }\n", in->q, in->stage, in->key, g->peer, gd, in->stage, in->key,
		    in->slot);
		break;
	case OP_SEND_TOK:
		put(&pr->t, "\t/* %d: SEND_TOK stage %d group %d to rank %d */\n\t%s{ "
		    "rt_begin(c, RT_OP_SEND_TOK, %d, %d); rt_isend(c, %d, rt_gen_tokens(c, %d), "
		    "%s, %d, %s, \"SEND_TOK group %d to rank %d\"); rt_end(c); }\n", in->q,
		    in->stage, in->key, g->peer, gd, in->stage, in->key, in->slot, g->tag_mb,
		    bytes_c(g), g->peer, tag_c(g), in->key, g->peer);
		break;
	case OP_SEND_KV:
		put(&pr->t, "\t/* %d: SEND_KV stage %d group %d to rank %d: the group's caches, to "
		    "decode */\n\t%s{ rt_begin(c, RT_OP_SEND_KV, %d, %d); rt_isend(c, %d, A + "
		    "%lld, %s, %d, %s, \"SEND_KV stage %d group %d to rank %d\"); rt_end(c); }\n",
		    in->q, in->stage, in->key, g->peer, gd, in->stage, in->key, in->slot,
		    (long long)g->off, bytes_c(g), g->peer, tag_c(g), in->stage, in->key, g->peer);
		break;
	default:
		unreachable();
	}
}

static void act(Printer *pr, const StepInstr *in)
{
	const StepProgram *sp = pr->sp;
	const Schedule *s = pr->s;
	int async = sp->mode == STEP_ASYNC, gen = sp->mode == STEP_GEN;
	Text *t = &pr->t;
	if (in->op == OP_RECV_TOK || in->op == OP_RECV_KV || in->op == OP_SEND_TOK
	    || in->op == OP_SEND_KV) {
		act_ring(pr, in);
		return;
	}
	/* the stage's offset table: the evaluation step's are eo<g> */
	const char *tab = in->stage >= 0 ? xprintf("%s%d[%d]", sp->eval ? "eo" : "o", in->stage,
	                                           in->mb) : "";
	const char *tstep = in->prev ? "t - 1" : "t";
	put(t, "\t/* %d: %s", in->q, !gen || in->op != OP_F ? op_name(in->op)
	    : sp->role == 2 ? "F (the prefill)" : sp->role == 3 ? "F (decode steps)"
	    : "F (each slot: its prompt's prefill, or a decode step)");
	if (in->stage >= 0)
		put(t, " stage %d", in->stage);
	if (async)
		put(t, " mb %s", key_text(pr, in->key));
	else if (in->key >= 0)
		put(t, gen ? " group %d" : " mb %d", in->key);
	if (step_op_msg(in->op))
		put(t, " %s rank %d", step_op_sends(in->op) ? "to" : "from", in->msg.peer);
	if (async && (in->op == OP_F || in->op == OP_B || in->op == OP_R))
		put(t, ", weights %s", in->op == OP_F ? "VERSION(k)" : "stashed by its F");
	if (async && in->op == OP_OPTIM)
		put(t, s->kind == SK_2BW ? ": the gradient of its step u = k / STEP_MB (the "
		    "step's last micro-batch), into version u + 1"
		    : ": its gradient, into version k + 1");
	if (async || gen)
		put(t, async ? " */\n\t%s{ rt_begin(c, RT_OP_%s, %d, (int)KEY(%d)); "
		    : " */\n\t%s{ rt_begin(c, RT_OP_%s, %d, %d); ", if_guard(in), op_name(in->op),
		    in->stage, in->key);
	else
		put(t, " */\n\trt_begin(c, RT_OP_%s, %d, %d); ", op_name(in->op), in->stage, in->key);
	if (async && (in->op == OP_F || in->op == OP_B || in->op == OP_R))
		put(t, "rt_async_use(c, KEY(%d), SLOT(VERSION(KEY(%d)))); ", in->key, in->key);
	const StepMsg *g = &in->msg;
	switch (in->op) {
	case OP_F:
		if (sp->eval)
			put(t, "s%d_eval(c, A, %s, %d); ", in->stage, tab, in->mb);
		else
			put(t, "s%d_fwd(c, A, %s, %d, %s); ", in->stage, tab, in->mb, tstep);
		break;
	case OP_B:
		put(t, "s%d_bwd(c, A, %s, %d, %s); ", in->stage, tab, in->mb, tstep);
		break;
	case OP_W:
		put(t, "s%d_wgt(c, A, %s, %d); ", in->stage, tab, in->mb);
		break;
	case OP_R:
		put(t, "s%d_rec(c, A, %s, %d, %s); ", in->stage, tab, in->mb, tstep);
		break;
	case OP_RECV_F:
	case OP_RECV_B:
		put(t, "rt_wait(c, %d); ", in->slot);
		break;
	case OP_SEND_F:
	case OP_SEND_B: {
		const char *desc = xprintf("\"%s stage %d mb %s to rank %d\"", op_name(in->op),
		                           in->stage, key_text(pr, in->key), g->peer);
		if (gen && g->pack_off >= 0)    /* the group's tokens, 16-bit */
			put(t, "rt_isend16(c, %d, A + %lld, A + %lld, %lld, rt_gen_values(c, %d, %lld), "
			    "%d, %s, %s); ", in->slot, (long long)g->off, (long long)g->pack_off,
			    (long long)g->hdr, in->mb, (long long)g->per_row, g->peer, tag_c(g), desc);
		else if (gen)           /* the header, then the group's tokens */
			put(t, "rt_isend(c, %d, A + %lld, rt_gen_msg(c, %d, %lld, %lld * 4), %d, %s, %s); ",
			    in->slot, (long long)g->off, in->mb, (long long)g->hdr, (long long)g->per_row,
			    g->peer, tag_c(g), desc);
		else if (g->pack_off >= 0)      /* 16-bit: packed at A + pack_off */
			put(t, "rt_isend16(c, %d, A + %lld, A + %lld, %lld, %s, %d, %s, %s); ", in->slot,
			    (long long)g->off, (long long)g->pack_off, (long long)g->hdr, values_c(g),
			    g->peer, tag_c(g), desc);
		else
			put(t, "rt_isend(c, %d, A + %lld, %s, %d, %s, %s); ", in->slot,
			    (long long)g->off, bytes_c(g), g->peer, tag_c(g), desc);
		break;
	}
	case OP_ALLREDUCE:
		put(t, "rt_allreduce(c, %d); ", in->stage);
		break;
	case OP_OPTIM:
		if (async)
			put(t, "rt_optim_version(c, SLOT(%s)); ", s->kind == SK_2BW
			    ? xprintf("KEY(%d) / STEP_MB + 1", in->key) : xprintf("KEY(%d) + 1", in->key));
		else
			put(t, "rt_optim_step(c); ");
		break;
	default:
		unreachable();
	}
	put(t, async || gen ? "rt_end(c); }\n" : "rt_end(c);\n");
}

/* What the step's comment says and the constants its calls use. */
static void preamble(Printer *pr)
{
	const StepProgram *sp = pr->sp;
	const Schedule *s = pr->s;
	Text *t = &pr->t;
	if (sp->mode == STEP_GEN) {
		put(t, "/* ---- one round of generation: rank %d's schedule, one runtime call per "
		    "action ----\n * In a round each group's slots run at once: a slot starting a "
		    "prompt its\n * prefill, the others a decode step (continuous batching; "
		    "rt_gen.c).  The runtime\n * calls step(t) for t = 0, 1, .. until every group "
		    "has ended: rt_gen_runs says\n * whether group g takes part in round t, "
		    "rt_gen_ring whether its tokens go\n * round after it.%s */\n\n", sp->rank,
		    s->disagg ? "  Disaggregated: the prefill ranks run round 0 only, the\n * "
		    "decode ranks the rounds after it, from the caches handed over." : "");
		put(t, "#define NTOK %d   /* max_new_tokens, as compiled */\n\n", sp->ntok);
	} else if (sp->mode == STEP_ASYNC) {
		put(t, "/* ---- one step of the stream: rank %d's schedule, one runtime call per action "
		    "----\n * %s: no flush.  A run is one stream of micro-batches: key k = t*STEP_MB + "
		    "m is\n * micro-batch m of step t.  This rank runs the forward of key KEY(m) and, "
		    "LAG keys\n * behind, a backward (of this step's or the previous step's key), each "
		    "with the\n * weights its forward used (weight stashing: NVER versions, in slots).  "
		    "The runtime\n * calls step(t) for t = 0 .. steps: LIVE leaves out the keys the run "
		    "does not have,\n * so step 0 starts without backwards and the extra step (t = steps) "
		    "drains them. */\n\n", sp->rank, sched_kind_name(s->kind));
		put(t, "#define STEP_MB %d   /* micro-batches per step */\n", s->M);
		put(t, "#define LAG %d       /* backward keys behind the forward */\n",
		    s->lag[sp->prank]);
		put(t, "#define NVER %d      /* weight versions kept */\n", s->nver[sp->prank]);
		put(t, "#define KEY(rel) ((int64_t)t * STEP_MB + (rel))\n");
		put(t, "#define LIVE(k) ((k) >= 0 && (k) < rt_run_keys(c))\n");
		if (s->kind == SK_2BW)
			put(t, "/* 2BW: step u computes with W(u-1) and its update writes W(u+1) */\n"
			    "#define VERSION(k) ((k) / STEP_MB - 1)\n");
		else
			put(t, "/* key k computes with the weights after k - LAG updates (the initial "
			    "ones if\n * negative); its update writes version k + 1 */\n"
			    "#define VERSION(k) ((k) - LAG)\n");
		put(t, "#define SLOT(v) ((int)((((v) %% NVER) + NVER) %% NVER))\n\n");
	} else if (sp->eval) {
		put(t, "/* ---- the evaluation step: rank %d's forward-only schedule, one runtime call "
		    "per action ----\n * Each stage it holds in increasing stage order, all "
		    "micro-batches of one before the\n * next: every message goes to a higher stage, "
		    "so this cannot deadlock.  The runtime\n * calls it for each batch of the "
		    "evaluation set, between steps, with no message of\n * step() in flight. */\n\n",
		    sp->rank);
	} else {
		put(t, "/* ---- the step: rank %d's schedule, one runtime call per action ---- */\n\n",
		    sp->rank);
	}
}

void step_emit_c(const StepProgram *sp, const IrModel *m, const Schedule *s,
                 void (*write)(void *ctx, const char *text), void *ctx)
{
	Printer pr = { .sp = sp, .s = s, .t = { write, ctx } };
	Text *t = &pr.t;
	preamble(&pr);
	/* A long step is written as parts of STEP_PART actions, called in
	 * order: the same straight-line schedule, but no function so long that
	 * the C compiler's time grows faster than its length
	 * (docs/performance.md, section 6). */
	const char *seq_line = m->seq_max ? xprintf("\tconst int64_t T = rt_seq_len(c);   /* the %s "
	                                            "sequence length */\n\t(void)T;\n",
	                                            sp->mode == STEP_GEN ? "prompts'" : "run's") : "";
	const char *role_guard = sp->rank_guard == SG_ROUND_ZERO
	                         ? "\tif (t != 0)\n\t\treturn;   /* a prefill rank: round 0 only */\n"
	                         : sp->rank_guard == SG_ROUND_NONZERO
	                         ? "\tif (t == 0)\n\t\treturn;   /* a decode rank: rounds 1 .. "
	                           "NTOK-1 */\n" : "";
	/* the evaluation step: eval_step(c, batch), its parts eval_part<i> */
	const char *fn = sp->eval ? "eval_step" : "step";
	const char *part = sp->eval ? "eval_part" : "step_part";
	const char *arg = sp->eval ? "batch" : "t";
	if (sp->nparts == 1)
		put(t, "static void %s(rt_ctx *c, int %s)\n{\n\tchar *A = rt_arena(c);\n"
		    "\t(void)A; (void)%s;\n%s%s", fn, arg, arg, role_guard, seq_line);
	else
		put(t, "/* %d actions: the step is %d parts of up to %d, called in order by %s() "
		    "below */\nstatic void %s0(rt_ctx *c, int %s, char *A)\n{\n"
		    "\t(void)c; (void)A; (void)%s;\n%s", sp->nactions, sp->nparts, STEP_PART, fn,
		    part, arg, arg, seq_line);
	for (int i = 0; i < sp->n; i++) {
		const StepInstr *in = &sp->in[i];
		switch (in->kind) {
		case STEP_SPLIT:
			put(t, "}\n\nstatic void %s%d(rt_ctx *c, int %s, char *A)\n{\n"
			    "\t(void)c; (void)A; (void)%s;\n%s", part, in->q, arg, arg, seq_line);
			break;
		case STEP_POST:
			post(&pr, in);
			break;
		case STEP_WAIT:
			wait_send(&pr, in);
			break;
		case STEP_ACT:
			act(&pr, in);
			break;
		}
	}
	put(t, "}\n\n");
	if (sp->nparts > 1) {
		put(t, "static void %s(rt_ctx *c, int %s)\n{\n\tchar *A = rt_arena(c);\n%s",
		    fn, arg, role_guard);
		for (int i = 0; i < sp->nparts; i++)
			put(t, "\t%s%d(c, %s, A);\n", part, i, arg);
		put(t, "}\n\n");
	}
}
