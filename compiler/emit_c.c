/* emit_c.c — one C program per rank, for both back ends.
 *
 * The rank files are the same for the CPU and the CUDA back end; only
 * what the Makefile links them against differs.  Each rank's file holds
 * its parameters as data, one forward / backward / weight-gradient /
 * recompute function per stage it holds (a runtime call per layer, each
 * under a #line to the model), one offset table per (stage, micro-batch)
 * from the memory plan, and the step function, printed from the rank's
 * verified step program (step_emit.c).  The templates, the output
 * directory, the Makefile and the launcher are files.c's.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "emit.h"
#include "files.h"
#include "rt_tf_sizes.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "dev"
#endif

/* ---- one emitter with indentation and line counting (chibicc's println) ---- */

typedef struct Out {
	VEC(char) buf;
	int line;               /* lines written so far */
	int base;               /* lines of the template before the body */
	const char *name;       /* the file's own name, for #line back */
	int lines_on;
} Out;

static void outv(Out *o, const char *fmt, va_list ap)
{
	char tmp[512];
	int n;
	const char *s = vformat(tmp, sizeof tmp, &n, fmt, ap);
	for (int i = 0; i < n; i++) {
		VEC_PUSH(o->buf, s[i]);
		if (s[i] == '\n')
			o->line++;
	}
}

static void out(Out *o, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void out(Out *o, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	outv(o, fmt, ap);
	va_end(ap);
}

/* out() for a text made elsewhere (the step, step_emit.c). */
static void out_text(void *o, const char *text)
{
	out(o, "%s", text);
}

/* #line to the model, then back to the generated file. */
static void line_to(Out *o, const IrModel *m, Loc loc)
{
	if (!o->lines_on || !loc.file)
		return;
	int line, col;
	loc_linecol(loc, &line, &col);
	out(o, "#line %d \"%s\"\n", line, m->file->name);
}

static void line_back(Out *o)
{
	if (o->lines_on)
		out(o, "#line %d \"%s\"\n", o->base + o->line + 2, o->name);
}

/* ---- a rank's program ---- */

typedef struct Emit {
	const IrModel *m;
	const Schedule *s;
	const SimResult *r;
	const RankPlan *plan;
	const StepProgram *step;
	int rank, prank, replica;
	int64_t *param_off;     /* [nlayers] float offset of a held layer's first param, -1 */
	int64_t *tied_off;      /* [nlayers] a tied lm_head's copy of the token table, -1 */
	int64_t nweights;
	int gen;                /* schedule = generate */
	int async;              /* pipedream, pipedream-2bw: s is one step of the stream */
	int64_t *kv_off;        /* generate: [nlayers] arena byte offset of a held
	                         * gpt2_block's caches for group 0, -1 */
	int64_t kv_group;       /* generate: bytes of one group's caches on this rank
	                         * (groups follow one another: one message each) */
	const Schedule *es;     /* a training program's evaluation step (sched_eval), */
	const RankPlan *eplan;  /* its plan and its step program; NULL: none */
	const StepProgram *estep;
	int eval;               /* emitting the evaluation forward: layers as inference
	                         * runs them (dropout off), the loss without gradient */
	Out o;
} Emit;

static int local_tensor(const IrModel *m, const IrStage *st, int k)
{
	return k == 0 ? m->layers[st->first].in : m->layers[st->first + k - 1].out;
}

static int64_t tensor_elems(const IrModel *m, const IrStage *st, int k)
{
	return m->tensors[local_tensor(m, st, k)].elems;
}

/* Elements per sample of tensor t as a C expression: a sequence tensor
 * scales with the run's length T. */
static const char *elems_expr(const IrModel *m, int t)
{
	const IrTensor *T = &m->tensors[t];
	if (!T->seq)
		return xprintf("%lld", (long long)T->elems);
	int64_t per = T->elems / m->seq_max;
	return per == 1 ? "T" : xprintf("T * %lld", (long long)per);
}

/* Rows of t seen as a matrix of its last dimension, for a micro-batch.
 * Generating, a sequence's positions are the group's packed new tokens:
 * NT of them (rt_gen_rows' ntok), not ROWS · T. */
static const char *rows_expr(const Emit *e, int t)
{
	const IrModel *m = e->m;
	const IrTensor *T = &m->tensors[t];
	int64_t per = T->elems / T->dims[T->ndim - 1];
	if (T->seq) {
		per /= m->seq_max;
		if (e->gen)
			return per == 1 ? "NT" : xprintf("NT * %lld", (long long)per);
		return per == 1 ? "ROWS * T" : xprintf("ROWS * T * %lld", (long long)per);
	}
	return per == 1 ? "ROWS" : xprintf("ROWS * %lld", (long long)per);
}

/* Elements of t in a micro-batch (generating: in the group's packed
 * tokens). */
static const char *count_expr(const Emit *e, int t)
{
	const IrModel *m = e->m;
	const IrTensor *T = &m->tensors[t];
	if (e->gen && T->seq) {
		int64_t per = T->elems / m->seq_max;
		return per == 1 ? "NT" : xprintf("NT * %lld", (long long)per);
	}
	return xprintf("ROWS * %s", elems_expr(m, t));
}

/* Pointer to local tensor k in its slot of the current (stage, mb) table
 * `o`: X(k) / RX(k) lie behind the message header at the stage's ends,
 * and the first stage's input is the data. */
static const char *x_ptr(const Emit *e, const StagePlan *sp, int slot, int k)
{
	const IrModel *m = e->m;
	if (sp->stage == 0 && k == 0) {
		int t = m->layers[m->stages[0].first].in;
		return m->tensors[t].dtype == DT_I32
		       ? xprintf("(const int32_t *)rt_data(c, %d, mb)", t)
		       : m->ninputs > 1 || m->seq_max ? xprintf("(float *)rt_data(c, %d, mb)", t)
		       : "(float *)rt_input(c, mb)";
	}
	int64_t hdr = k == 0 ? sp->in.bytes : k == sp->n ? sp->out.bytes : 0;
	const char *ty = m->tensors[local_tensor(m, &m->stages[sp->stage], k)].dtype == DT_I32
	                 ? "(const int32_t *)" : "(float *)";
	return hdr ? xprintf("%s(A + o[%d] + %lld)", ty, slot, (long long)hdr)
	       : !strcmp(ty, "(float *)") ? xprintf("P(o[%d])", slot)
	       : xprintf("%s(A + o[%d])", ty, slot);
}

/* A gradient or statistics slot: no header. */
static const char *slot_ptr(const StagePlan *sp, int slot)
{
	(void)sp;
	return xprintf("P(o[%d])", slot);
}

/* Side tensor t (a model input: mask, token types, ids) as the stage sees
 * it: the data on the first stage, else the input message's header. */
static const char *side_ptr(const Emit *e, const StagePlan *sp, int t)
{
	if (t < 0)
		return "NULL";
	if (sp->stage == 0)
		return xprintf("(const int32_t *)rt_data(c, %d, mb)", t);
	for (int i = 0; i < sp->in.n; i++)
		if (sp->in.t[i] == t)
			return xprintf("(const int32_t *)(A + o[%d] + %lld)", SLOT_X(sp->n, 0),
			               (long long)sp->in.off[i]);
	die("stage %d: side tensor '%s' does not reach it", sp->stage, e->m->tensors[t].name);
}

/* The float offset of a layer's weight: an lm_head tied to an embedding
 * uses the embedding's token table, here or in this rank's copy. */
static int64_t weight_off(const Emit *e, int l)
{
	const IrLayer *L = &e->m->layers[l];
	if (L->tied >= 0)
		return e->param_off[L->tied] >= 0 ? e->param_off[L->tied] : e->tied_off[l];
	return e->param_off[l];
}

/* dtype = bf16 / f16 (docs/precision.md): a tensor between layers holds
 * 16-bit values, so each layer's output and each input-gradient is rounded
 * as the layer writes it; inside a layer the arithmetic is f32. */
static void emit_round(Emit *e, const char *ptr, const char *count)
{
	if (e->m->pipe.dtype != DT_F32)
		out(&e->o, "\trt_round(c, %s, %s);\n", ptr, count);
}

/* What a layer's runtime calls are given (layers.h's RtArg), for one
 * layer in one part of an action. */
typedef struct CallCtx {
	const IrLayer *L;
	int l;
	const char *x, *y, *dy, *dx;
	const char *save, *st, *gst;
	const char *rows;
	int64_t w;              /* float offset of the first parameter */
	int weight;             /* a fused backward computes the weight gradient too */
} CallCtx;

static const char *call_arg(const Emit *e, const StagePlan *sp, const CallCtx *k, RtArg a)
{
	const IrModel *m = e->m;
	const IrLayer *L = k->L;
	int64_t w2 = L->nparams > 1 ? k->w + L->params[0].numel : -1;
	switch (a) {
	case RA_END: break;
	case RA_X: return k->x;
	case RA_Y: return k->y;
	case RA_DY: return k->dy;
	case RA_DX: return k->dx;
	case RA_W: return xprintf("W + %lld", (long long)k->w);
	case RA_W2: return w2 >= 0 ? xprintf("W + %lld", (long long)w2) : "NULL";
	case RA_G: return xprintf("G + %lld", (long long)k->w);
	case RA_G2: return w2 >= 0 ? xprintf("G + %lld", (long long)w2) : "NULL";
	case RA_G_IF_WEIGHT: return k->weight ? xprintf("G + %lld", (long long)k->w) : "NULL";
	case RA_STASH_IF_SPLIT: return k->weight ? "NULL" : k->gst;
	case RA_STASH: return k->gst;
	case RA_SAVE: return k->save;
	case RA_SAVE2: return xprintf("%s + %s", k->save, k->rows);
	case RA_ST: return k->st;
	case RA_ST2: return xprintf("%s + %s", k->st, k->rows);
	case RA_SIDE: return side_ptr(e, sp, L->side[0]);
	case RA_TF: return xprintf("&tf%d", k->l);
	case RA_WORK: return "WORK";
	case RA_COUNT: return count_expr(e, L->in);
	case RA_ROWS: return k->rows;
	case RA_MB_ROWS: return "ROWS";
	case RA_ELEMS: return elems_expr(m, L->in);
	case RA_T: return "T";
	case RA_IN_W: return xprintf("%lld", (long long)L->in_w);
	case RA_OUT_W: return xprintf("%lld", (long long)L->out_w);
	case RA_EPS: return xprintf("%.17g", L->eps);
	case RA_P: return xprintf("%.17g", L->p);
	case RA_SEED: return xprintf("%lluu", (unsigned long long)m->pipe.seed);
	case RA_LAYER: return xprintf("%d", k->l);
	case RA_STEP: return "t";
	case RA_ROW0: return "row0";
	case RA_BYTES: return xprintf("sizeof(float) * %s", count_expr(e, L->in));
	case RA_NULL: return "NULL";
	case RA_GEN_ROWS: return "g";
	case RA_GEN_IDS: return "rt_gen_ids(c, mb)";
	case RA_KV_K:
	case RA_KV_V: {
		int64_t kv = (int64_t)e->plan->rows * m->pipe.kv_cap * layer_kv_width(L) *
		             ir_kv_value_bytes(m);
		return xprintf("P(%lld + (int64_t)mb * %lld)",
		               (long long)(e->kv_off[k->l] + (a == RA_KV_V ? kv : 0)),
		               (long long)e->kv_group);
	}
	case RA_KV_CAP: return xprintf("%lld", (long long)m->pipe.kv_cap);
	}
	die("layer '%s': no value for runtime argument %d", L->name, (int)a);
}

/* One call of a runtime entry point with the catalogue's arguments. */
static void emit_call(Emit *e, const StagePlan *sp, const CallCtx *k, const RtCall *c)
{
	out(&e->o, "\t%s(", c->fn);
	for (int i = 0; c->args[i] != RA_END; i++)
		out(&e->o, "%s%s", i ? ", " : "", call_arg(e, sp, k, c->args[i]));
	out(&e->o, ");\n");
}

/* Forward of local layer j reading slot xs and writing ys (saves in ss;
 * -1: nothing is kept). */
static void emit_layer_fwd(Emit *e, const IrStage *st, const StagePlan *sp, int j, int xs,
                           int ys, int ss)
{
	const IrModel *m = e->m;
	int l = st->first + j;
	const IrLayer *L = &m->layers[l];
	const LayerCatalogue *lc = LAYER(L->kind);
	CallCtx k = { .L = L, .l = l, .x = x_ptr(e, sp, xs, j), .y = x_ptr(e, sp, ys, j + 1),
	              .rows = rows_expr(e, L->in), .w = weight_off(e, l) };
	k.save = ss >= 0 && sp->off[0][ss] != NO_BUFFER ? slot_ptr(sp, ss) : "NULL";
	const char *count = count_expr(e, L->out);
	line_to(&e->o, m, L->loc);
	if (e->gen && lc->gen_last) {   /* only each row's last token's logits pick one */
		out(&e->o, "\trt_take_last_rows(%s, g, %lld);\n", k.x, (long long)L->in_w);
		k.rows = "ROWS";
		count = xprintf("ROWS * %lld", (long long)L->out_w);
	}
	emit_call(e, sp, &k, e->gen && lc->fwd_gen.fn ? &lc->fwd_gen
	          : (!e->s->training || e->eval) && lc->fwd_infer.fn ? &lc->fwd_infer : &lc->fwd);
	emit_round(e, k.y, count);
}

/* Backward of local layer j: the input-gradient part when `data`, the
 * weight-gradient part when `weight` (both: the whole backward; a split
 * schedule's B stashes what its W reads). */
static void emit_layer_bwd(Emit *e, const IrStage *st, const StagePlan *sp, int j, int data,
                           int weight)
{
	const IrModel *m = e->m;
	int l = st->first + j;
	const IrLayer *L = &m->layers[l];
	const LayerCatalogue *lc = LAYER(L->kind);
	int n = sp->n;
	int has_dx = (j > 0 || sp->stage > 0) && !layer_is_embedding(L->kind);
	CallCtx k = { .L = L, .l = l, .x = x_ptr(e, sp, SLOT_RX(n, j), j),
	              .y = x_ptr(e, sp, SLOT_RX(n, j + 1), j + 1),
	              .dy = slot_ptr(sp, SLOT_GX(n, j + 1)),
	              .dx = has_dx ? slot_ptr(sp, SLOT_GX(n, j)) : "NULL",
	              .st = slot_ptr(sp, SLOT_RST(n, j)), .gst = slot_ptr(sp, SLOT_GST(n, j)),
	              .rows = rows_expr(e, L->in), .w = weight_off(e, l), .weight = weight };
	int params = L->nparams > 0 || L->tied >= 0;
	int stash = lc->fused_bwd && data && !weight;      /* B of a split backward */
	if (!(weight && params) && !(data && has_dx) && !stash)
		return;
	line_to(&e->o, m, L->loc);
	if (lc->fused_bwd) {
		emit_call(e, sp, &k, data ? &lc->bwd : &lc->wgt);
	} else {
		if (weight && lc->wgt.fn)
			emit_call(e, sp, &k, &lc->wgt);
		if (data && has_dx && lc->bwd.fn)
			emit_call(e, sp, &k, &lc->bwd);
	}
	if (data && has_dx)
		emit_round(e, k.dx, xprintf("ROWS * %s", elems_expr(m, L->in)));
}

static const char *layer_range(const IrModel *m, const IrStage *st)
{
	return st->last - st->first == 1 ? m->layers[st->first].name
	       : xprintf("%s .. %s", m->layers[st->first].name, m->layers[st->last - 1].name);
}

/* The loss of the last stage's output y for micro-batch mb: in a training
 * step with its gradient into GX(n); in the evaluation step the sum only
 * (dlogits NULL), over the rows of the micro-batch that hold data. */
static void emit_loss(Emit *e, const StagePlan *sp, const char *y)
{
	const IrModel *m = e->m;
	const Schedule *s = e->s;
	const IrStage *st = &m->stages[sp->stage];
	Out *o = &e->o;
	int n = sp->n;
	int64_t width = tensor_elems(m, st, n);
	const IrTensor *ot = &m->tensors[local_tensor(m, st, n)];
	if (e->eval) {
		out(o, "\t/* the loss only (no gradient, so no scale), over the rows that hold data: "
		    "its sum\n\t * is added to the rank's, which the runtime divides by the rows "
		    "or positions */\n");
		if (m->loss == LOSS_CROSS_ENTROPY)
			out(o, "\trt_loss_ce(c, %s, rt_target_class(c, mb), NULL, rt_rows_valid(c, mb), "
			    "%lld, 0.0);\n", y, (long long)width);
		else if (m->loss == LOSS_NEXT_TOKEN)
			out(o, "\trt_loss_next_token(c, %s, %s, NULL, rt_rows_valid(c, mb), T, %lld, 0.0);\n",
			    y, side_ptr(e, sp, m->loss_ids), (long long)ot->dims[ot->ndim - 1]);
		else
			out(o, "\trt_loss_mse_acc(c, %s, rt_target_dense(c, mb), NULL, "
			    "rt_rows_valid(c, mb), %lld, 0.0);\n", y, (long long)width);
		return;
	}
	/* pipedream: every micro-batch is its own update, of its own mean */
	long long lb = s->kind == SK_PIPEDREAM ? m->pipe.B / m->pipe.M : m->pipe.B;
	if (s->kind == SK_PIPEDREAM)
		out(o, "\t/* pipedream: the gradient is of this micro-batch's own mean loss "
		    "*/\n");
	if (m->loss == LOSS_CROSS_ENTROPY)
		out(o, "\t/* the loss: cross-entropy, gradient of the global batch's mean */\n"
		    "\trt_loss_ce(c, %s, rt_target_class(c, mb), P(o[%d]), ROWS, %lld, "
		    "1.0 / %lld);\n", y, SLOT_GX(n, n),
		    (long long)width, lb);
	else if (m->loss == LOSS_NEXT_TOKEN)
		out(o, "\t/* the loss: next-token cross-entropy, gradient of the mean over the "
		    "global batch's B·(T-1) positions */\n"
		    "\trt_loss_next_token(c, %s, %s, P(o[%d]), ROWS, T, %lld, "
		    "1.0 / ((double)%lld * (double)(T - 1)));\n", y,
		    side_ptr(e, sp, m->loss_ids), SLOT_GX(n, n),
		    (long long)ot->dims[ot->ndim - 1], lb);
	else
		out(o, "\t/* the loss: mean squared error over the global batch */\n"
		    "\trt_loss_mse_acc(c, %s, rt_target_dense(c, mb), P(o[%d]), ROWS, %lld, "
		    "1.0 / %lld.0);\n", y, SLOT_GX(n, n), (long long)width,
		    (long long)(lb * width));
	emit_round(e, xprintf("P(o[%d])", SLOT_GX(n, n)),
	           xprintf("ROWS * %s", elems_expr(m, local_tensor(m, st, n))));
}

/* A stage's forward: s<g>_fwd of the step, or with e->eval set s<g>_eval
 * of the evaluation step (no step number: nothing random runs; no
 * --output; the loss without gradient). */
static void emit_fwd(Emit *e, const StagePlan *sp)
{
	const IrModel *m = e->m;
	const Schedule *s = e->s;
	const IrStage *st = &m->stages[sp->stage];
	Out *o = &e->o;
	int g = sp->stage, n = sp->n;
	int last = g == s->S - 1;
	int64_t row0 = (int64_t)e->replica * (m->pipe.B / m->pipe.R);
	const char *seq = m->seq_max ? "\tconst int64_t T = rt_seq_len(c);\n" : "";
	const char *seq_void = m->seq_max ? " (void)T;" : "";

	if (e->eval)
		out(o, "static void s%d_eval(rt_ctx *c, char *A, const int64_t *o, int mb)\n{\n", g);
	else
		out(o, "static void s%d_fwd(rt_ctx *c, char *A, const int64_t *o, int mb, int t)\n{\n",
		    g);
	out(o, "\tconst float *W = rt_weights(c);\n\tint64_t row0 = %lld + (int64_t)mb * ROWS;\n%s",
	    (long long)row0, seq);
	out(o, "\t(void)W;%s (void)row0;%s\n", e->eval ? "" : " (void)t;", seq_void);
	if (e->gen) {
		/* the group's rows: decided on the first stage, read from the input
		 * message's header after it, passed on in the output's */
		int64_t gh = rt_gen_hdr_bytes(e->plan->rows);
		const char *in = g == 0 ? "NULL" : xprintf("A + o[%d] + %lld", SLOT_X(n, 0),
		                                           (long long)(sp->in.bytes - gh));
		const char *to = last ? "NULL" : xprintf("A + o[%d] + %lld", SLOT_X(n, n),
		                                         (long long)(sp->out.bytes - gh));
		out(o, "\t/* the group's rows this round: each slot's new tokens and positions */\n"
		    "\tconst rt_gen_rows *g = rt_gen_rows_at(c, mb, %s, %s);\n"
		    "\tconst int64_t NT = g->ntok;   /* their tokens, packed */\n"
		    "\t(void)NT;\n", in, to);
	}
	for (int j = 0; j < n; j++)
		emit_layer_fwd(e, st, sp, j, SLOT_X(n, j), SLOT_X(n, j + 1), SLOT_ST(n, j));
	line_back(o);
	/* the side tensors travel on with the output */
	for (int i = 0; i < sp->out.n; i++) {
		int tt = sp->out.t[i];
		out(o, "\trt_copy(A + o[%d] + %lld, %s, (size_t)ROWS * %s * 4);   /* %s */\n",
		    SLOT_X(n, n), (long long)sp->out.off[i], side_ptr(e, sp, tt),
		    elems_expr(m, tt), m->tensors[tt].name);
	}
	if (last) {
		const char *y = x_ptr(e, sp, SLOT_X(n, n), n);
		if (e->gen)
			out(o, "\trt_gen_pick(c, mb, %s);   /* the group's next tokens */\n", y);
		else if (!e->eval)
			out(o, "\trt_output(c, mb, %s);\n", y);
		if (s->training)
			emit_loss(e, sp, y);
	}
}

/* A stage's offset table: per micro-batch, the byte offset of every slot. */
static void emit_offsets(Emit *e, const StagePlan *sp, const char *name)
{
	Out *o = &e->o;
	int n = sp->n;
	out(o, "static const int64_t %s%d[%d][%d] = {\n", name, sp->stage, e->s->M, SLOT_COUNT(n));
	for (int mb = 0; mb < e->s->M; mb++) {
		out(o, "\t{");
		for (int i = 0; i < SLOT_COUNT(n); i++)
			out(o, "%s%lld", i ? ", " : " ", (long long)sp->off[mb][i]);
		out(o, " },\n");
	}
	out(o, "};\n\n");
}

static void emit_stage(Emit *e, const StagePlan *sp)
{
	const IrModel *m = e->m;
	const Schedule *s = e->s;
	const IrStage *st = &m->stages[sp->stage];
	Out *o = &e->o;
	int g = sp->stage, n = sp->n;
	int64_t row0 = (int64_t)e->replica * (m->pipe.B / m->pipe.R);

	out(o, "/* ---- stage %d: %s (%d layer%s) ---- */\n\n", g, layer_range(m, st), n,
	    n == 1 ? "" : "s");
	/* offset tables */
	out(o, "/* Byte offsets of stage %d's buffers per micro-batch: X0..X%d (input, layer "
	    "outputs), RX (as\n * backward reads them), GX (gradients), ST/RST (statistics); "
	    "-1: none. */\n", g, n);
	emit_offsets(e, sp, "o");

	/* the transformer layers' dimensions */
	for (int l = st->first; l < st->last; l++) {
		const IrLayer *L = &m->layers[l];
		if (!layer_takes(L->kind, RA_TF))
			continue;
		out(o, "static const rt_tf tf%d = { .d = %lld, .heads = %lld, .ffn = %lld, "
		    ".eps = %.17g, .vocab = %lld, .positions = %lld, .types = %lld", l, (long long)L->d,
		    (long long)L->heads, (long long)L->ffn, L->eps, (long long)L->vocab,
		    (long long)L->positions, (long long)L->ntypes);
		if (L->kind == LK_LLAMA_BLOCK)
			out(o, ",\n\t.kv_heads = %lld, .rope_theta = %.17g, .qkv_bias = %d, "
			    ".rope_factor = %.17g,\n\t.rope_low = %.17g, .rope_high = %.17g, "
			    ".rope_orig = %lld", (long long)L->kv_heads, L->rope_theta, L->bias,
			    L->rope_factor, L->rope_low, L->rope_high, (long long)L->rope_orig);
		if (m->pipe.kv_cap > 0 && LAYER(L->kind)->kv_cache && ir_kv_value_bytes(m) == 2)
			out(o, ",\n\t.kv_prec = %s", m->pipe.dtype == DT_BF16 ? "RT_PREC_BF16"
			                                                    : "RT_PREC_F16");
		out(o, " };   /* %s */\n", L->name);
	}
	out(o, "\n");
	const char *seq = m->seq_max ? "\tconst int64_t T = rt_seq_len(c);\n" : "";
	const char *seq_void = m->seq_max ? " (void)T;" : "";

	emit_fwd(e, sp);
	out(o, "}\n\n");
	if (!s->training)
		return;

	/* recompute */
	if (sp->rec_from < n) {
		out(o, "static void s%d_rec(rt_ctx *c, char *A, const int64_t *o, int mb, int t)\n{\n",
		    g);
		out(o, "\tconst float *W = rt_weights(c);\n\tint64_t row0 = %lld + (int64_t)mb * "
		    "ROWS;\n%s\t(void)W; (void)t; (void)row0;%s\n", (long long)row0, seq, seq_void);
		for (int j = sp->rec_from; j < n; j++)
			emit_layer_fwd(e, st, sp, j, SLOT_RX(n, j), SLOT_RX(n, j + 1), SLOT_RST(n, j));
		line_back(o);
		out(o, "}\n\n");
	}
	/* backward */
	out(o, "static void s%d_bwd(rt_ctx *c, char *A, const int64_t *o, int mb, int t)\n{\n", g);
	out(o, "\tconst float *W = rt_weights(c);\n\tfloat *G = rt_grads(c);\n"
	    "\tint64_t row0 = %lld + (int64_t)mb * ROWS;\n%s"
	    "\t(void)W; (void)G; (void)t; (void)row0;%s\n", (long long)row0, seq, seq_void);
	for (int j = n - 1; j >= 0; j--)
		emit_layer_bwd(e, st, sp, j, 1, !s->split);
	line_back(o);
	out(o, "}\n\n");
	if (s->split) {
		out(o, "static void s%d_wgt(rt_ctx *c, char *A, const int64_t *o, int mb)\n{\n", g);
		out(o, "\tconst float *W = rt_weights(c);\n\tfloat *G = rt_grads(c);\n%s"
		    "\t(void)W; (void)G; (void)mb;%s\n", seq, seq_void);
		for (int j = n - 1; j >= 0; j--)
			emit_layer_bwd(e, st, sp, j, 0, 1);
		line_back(o);
		out(o, "}\n\n");
	}
}

/* The evaluation step of a training program: per stage held, its own
 * offset table (eo<g>, the evaluation plan's: nothing is kept for a
 * backward) and forward (s<g>_eval), then eval_step() from its step
 * program. */
static void emit_eval(Emit *e)
{
	Out *o = &e->o;
	out(o, "/* ==== evaluation: one batch of the evaluation set, forward only (dropout off), "
	    "the\n * last stage adding its loss without a gradient.  Its own memory plan in the "
	    "same\n * arena (%lld bytes of it), and its messages tagged apart from the step's "
	    "(RT_TAG_DIR_EVAL). ==== */\n\n", (long long)e->eplan->arena_bytes);
	e->eval = 1;
	for (int i = 0; i < e->eplan->nstages; i++) {
		const StagePlan *sp = &e->eplan->st[i];
		out(o, "/* Byte offsets of stage %d's buffers per micro-batch in the evaluation step. "
		    "*/\n", sp->stage);
		emit_offsets(e, sp, "eo");
		emit_fwd(e, sp);
		out(o, "}\n\n");
	}
	e->eval = 0;
	step_emit_c(e->estep, e->m, e->es, out_text, o);
}

static int stage_of(const IrModel *m, int l)
{
	for (int s = 0; s < m->S; s++)
		if (l >= m->stages[s].first && l < m->stages[s].last)
			return s;
	return -1;
}

static void emit_param(Emit *e, const IrParam *pp, int64_t off, int stage, int tied)
{
	Out *o = &e->o;
	out(o, "\t{ \"%s\", %d, { %lld", pp->name, pp->ndim, (long long)pp->dims[0]);
	if (pp->ndim > 1)
		out(o, ", %lld", (long long)pp->dims[1]);
	out(o, " }, %lld, %lld, %s, %lld, %d", (long long)off, (long long)pp->numel,
	    pp->init == INIT_ONES ? "RT_INIT_ONES" : pp->init == INIT_ZEROS ? "RT_INIT_ZEROS"
	    : pp->init == INIT_NORMAL ? "RT_INIT_NORMAL" : "RT_INIT_UNIFORM_FANIN",
	    (long long)pp->fan_in, stage);
	out(o, ", %.17g, %d", pp->init == INIT_NORMAL ? pp->std : 0.0, tied);
	out(o, " },%s\n", tied ? "   /* a copy: the embedding's stage holds it too */" : "");
}

static void emit_params(Emit *e)
{
	const IrModel *m = e->m;
	Out *o = &e->o;
	int np = 0;
	int64_t off = 0;
	e->param_off = xalloc((size_t)m->nlayers * sizeof *e->param_off);
	e->tied_off = xalloc((size_t)m->nlayers * sizeof *e->tied_off);
	for (int l = 0; l < m->nlayers; l++)
		e->param_off[l] = e->tied_off[l] = -1;
	out(o, "/* Parameters held by this rank: PyTorch names and layouts; offsets in floats\n"
	    " * into the weight and gradient buffers. */\nstatic const rt_param params[] = {\n");
	for (int i = 0; i < e->plan->nstages; i++) {
		const IrStage *st = &m->stages[e->plan->st[i].stage];
		for (int l = st->first; l < st->last; l++) {
			const IrLayer *L = &m->layers[l];
			e->param_off[l] = off;
			/* an embedding whose tied head is on another rank */
			int shared = 0;
			for (int h = 0; h < m->nlayers && layer_is_embedding(L->kind); h++)
				if (m->layers[h].tied == l && !memplan_stage(e->plan, stage_of(m, h)))
					shared = 1;
			for (int k = 0; k < L->nparams; k++) {
				emit_param(e, &L->params[k], off, e->plan->st[i].stage, k == 0 && shared);
				off += L->params[k].numel;
				np++;
			}
		}
	}
	/* A tied lm_head whose embedding lives on another rank: a copy. */
	for (int i = 0; i < e->plan->nstages; i++) {
		const IrStage *st = &m->stages[e->plan->st[i].stage];
		for (int l = st->first; l < st->last; l++) {
			const IrLayer *L = &m->layers[l];
			if (L->tied < 0 || e->param_off[L->tied] >= 0)
				continue;
			const IrParam *pp = &m->layers[L->tied].params[0];
			e->tied_off[l] = off;
			emit_param(e, pp, off, e->plan->st[i].stage, 1);
			off += pp->numel;
			np++;
		}
	}
	/* The embedding whose tied head lives on another rank is tied too. */
	if (np == 0)
		out(o, "\t{ 0 }\n");
	out(o, "};\n\n");
	e->nweights = off;
	out(o, "#define NPARAMS %d\n\n", np);
}

/* The bound input t's values must respect (0: none) and what a value of it
 * is called in messages: the rank programs and program.desc say the same. */
static int64_t input_bound(const IrModel *m, int t, const char **what)
{
	int64_t limit = 0;
	*what = "value";
	for (int l = 0; l < m->nlayers; l++) {
		const IrLayer *L = &m->layers[l];
		if (layer_is_embedding(L->kind) && L->in == t) {
			limit = L->vocab;
			*what = "token id";
		} else if (LAYER(L->kind)->side == LS_TYPES && L->side[0] == t) {
			limit = L->ntypes;
			*what = "token type";
		} else if (L->side[0] == t && limit == 0) {
			limit = 2;
			*what = "mask value";
		}
	}
	return limit;
}

/* The model's inputs, with the bounds their values must respect. */
static void emit_inputs(Emit *e)
{
	const IrModel *m = e->m;
	Out *o = &e->o;
	if (m->ninputs <= 1 && !m->seq_max)
		return;
	out(o, "static const rt_input_desc inputs[] = {\n");
	for (int t = 0; t < m->ninputs; t++) {
		const IrTensor *T = &m->tensors[t];
		const char *what;
		int64_t limit = input_bound(m, t, &what);
		out(o, "\t{ \"%s\", %s, %lld, %d, %lld, \"%s\" },\n", T->name,
		    T->dtype == DT_I32 ? "RT_DT_I32" : "RT_DT_F32", (long long)T->elems, T->seq,
		    (long long)limit, what);
	}
	out(o, "};\n\n");
}

/* The declared per-sample shapes of the input and the output (pipert.h's
 * in_dims / out_dims): a data file may come in the input's, --output is
 * written in the output's.  Only shapes of two or more dimensions, and not
 * sequences (their T is the run's). */
static int nd_shape(const IrTensor *T)
{
	return T->ndim > 1 && !T->seq;
}

static void emit_dims(Out *o, const char *name, const IrTensor *T)
{
	if (!nd_shape(T))
		return;
	out(o, "static const int64_t %s[] = {", name);
	for (int i = 0; i < T->ndim; i++)
		out(o, "%s%lld", i ? ", " : " ", (long long)T->dims[i]);
	out(o, " };\n");
}

static void emit_program_struct(Emit *e)
{
	const IrModel *m = e->m;
	const Schedule *s = e->s;
	Out *o = &e->o;
	emit_inputs(e);
	const Pipeline *pp = &m->pipe;
	const IrTensor *in = &m->tensors[m->layers[0].in];
	const IrTensor *outt = &m->tensors[m->layers[m->nlayers - 1].out];
	int first = s->stage_rank[0] == e->prank, last = s->stage_rank[s->S - 1] == e->prank;
	/* the evaluation step shares the arena: it runs between steps */
	int64_t arena = e->plan->arena_bytes;
	if (e->eplan && e->eplan->arena_bytes > arena)
		arena = e->eplan->arena_bytes;
	RankMemory mem = memplan_memory(m, s, e->plan);
	mem.arena = arena;
	int64_t peak = memplan_total(mem);
	const char *sched = sched_label_of(pp->sched, pp->V, NULL);
	int in_nd = m->ninputs <= 1 && !m->seq_max && nd_shape(in), out_nd = nd_shape(outt);
	if (in_nd)
		emit_dims(o, "in_dims", in);
	if (out_nd)
		emit_dims(o, "out_dims", outt);
	if (in_nd || out_nd)
		out(o, "\n");
	out(o, "static const rt_program program = {\n");
	out(o, "\t.model = \"%s\",\n\t.source = \"%s\",\n\t.schedule = \"%s\",\n", m->name,
	    m->file->name, sched);
	out(o, "\t.rank = %d, .nranks = %d,\n\t.P = %d, .R = %d, .V = %d, .replica = %d,\n",
	    e->rank, s->nranks, s->P, s->R, s->V, e->replica);
	out(o, "\t.batch = %lld, .M = %d, .mb_rows = ROWS,\n", pp->B, s->M);
	out(o, "\t.first_stage = %d, .last_stage = %d,\n", first, last);
	out(o, "\t.in_width = %lld, .out_width = %lld,\n", (long long)in->elems,
	    (long long)outt->elems);
	out(o, "\t.loss = %s,\n", !s->training ? "RT_LOSS_NONE"
	    : m->loss == LOSS_CROSS_ENTROPY ? "RT_LOSS_CROSS_ENTROPY"
	    : m->loss == LOSS_NEXT_TOKEN ? "RT_LOSS_NEXT_TOKEN" : "RT_LOSS_MSE");
	out(o, "\t.target_dtype = %s, .target_width = %lld,\n",
	    m->target_dtype == DT_I32 ? "RT_DT_I32" : "RT_DT_F32",
	    (long long)(m->target_name ? m->target_width : 0));
	out(o, "\t.optim = %s, .lr = %.17g, .momentum = %.17g,\n",
	    pp->optim == OPT_SGD ? "RT_OPTIM_SGD" : pp->optim != OPT_ADAM ? "RT_OPTIM_NONE"
	    : pp->decoupled ? "RT_OPTIM_ADAMW" : "RT_OPTIM_ADAM", pp->lr, pp->momentum);
	/* docs/language.md's training keys; as before when none is used */
	if (pp->beta1 == 0.9 && pp->beta2 == 0.999 && pp->eps == 1e-8)
		out(o, "\t.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,\n");
	else
		out(o, "\t.beta1 = %.17g, .beta2 = %.17g, .eps = %.17g,\n", pp->beta1, pp->beta2,
		    pp->eps);
	if (s->training && (pp->weight_decay > 0 || pp->nesterov || pp->decay_matrices
	                    || pp->lr_schedule != LR_CONSTANT || pp->lr_warmup > 0
	                    || pp->clip_grad_norm > 0 || pp->shuffle))
		out(o, "\t.weight_decay = %.17g, .nesterov = %d, .decay_matrices = %d,\n"
		    "\t.lr_schedule = %s, .lr_warmup = %lld, .lr_total = %lld, .min_lr = %.17g,\n"
		    "\t.clip_grad_norm = %.17g, .shuffle = %d,\n", pp->weight_decay, pp->nesterov,
		    pp->decay_matrices, pp->lr_schedule == LR_COSINE ? "RT_LR_COSINE"
		    : pp->lr_schedule == LR_LINEAR ? "RT_LR_LINEAR" : "RT_LR_CONSTANT",
		    pp->lr_warmup, pp->lr_total, pp->min_lr, pp->clip_grad_norm, pp->shuffle);
	out(o, "\t.steps = %d, .seed = %lluu,\n", pp->steps, (unsigned long long)pp->seed);
	out(o, "\t.params = params, .nparams = NPARAMS, .nweights = %lld,\n",
	    (long long)e->nweights);
	out(o, "\t.arena_bytes = %lld, .nslots = %d,\n", (long long)arena,
	    e->estep && e->estep->nslots > e->step->nslots ? e->estep->nslots : e->step->nslots);
	out(o, "\t.predicted_bubble = %.6f, .predicted_peak_bytes = %lld,\n",
	    e->r ? e->r->bubble_fraction : 0.0, (long long)peak);
	out(o, "\t.step = step,\n");
	if (e->estep)
		out(o, "\t.eval_step = eval_step, .eval_nactions = %d,\n", e->estep->nactions);
	if (e->async)
		out(o, "\t.async = 1, .nversions = NVER,\n");
	if (pp->dtype != DT_F32)
		out(o, "\t.precision = %s,   /* dtype = %s: docs/precision.md */\n",
		    pp->dtype == DT_BF16 ? "RT_PREC_BF16" : "RT_PREC_F16", dtype_name(pp->dtype));
	if (m->ninputs > 1 || m->seq_max)
		out(o, "\t.inputs = inputs, .ninputs = %d, .seq_max = %lld, .out_seq = %d,\n",
		    m->ninputs, (long long)m->seq_max, outt->seq);
	if (in_nd)
		out(o, "\t.in_dims = in_dims, .in_ndim = %d,\n", in->ndim);
	if (out_nd)
		out(o, "\t.out_dims = out_dims, .out_ndim = %d,\n", outt->ndim);
	if (e->gen)
		out(o, "\t.gen_tokens = NTOK, .gen_sample = %d, .gen_temperature = %.17g, "
		    ".gen_top_k = %d,\n\t.gen_seed = %lluu, .gen_eos = %lld, .gen_vocab = %lld,\n"
		    "\t.kv_cap = %lld, .kv_bytes = %lld, .gen_disagg = %d,\n", pp->sample,
		    pp->temperature, pp->top_k, (unsigned long long)pp->sample_seed, pp->eos,
		    (long long)outt->dims[outt->ndim - 1], (long long)pp->kv_cap,
		    (long long)e->plan->kv_bytes, s->disagg);
	out(o, "};\n\n");
}

/* Does the program have an evaluation step (rt_program.eval_step)?  The
 * ranks' initialiser and program.desc must agree: --eval-input is refused
 * where there is none.  main.c builds one for every training schedule. */
static int has_eval_step(const IrModel *m, const Schedule *s)
{
	(void)m;
	return s->training;
}

/* DIR/program.desc: the rank-independent part of the rt_program, for
 * pipert-check (runtime/pipert_check.c), which DIR/run calls to refuse bad
 * options and files before it builds or starts anything.  One "key value"
 * a line; the format is pipert-check's, versioned by its first line. */
static char *emit_desc(const IrModel *m, const Schedule *s, const EmitOptions *eo)
{
	const Pipeline *pp = &m->pipe;
	const IrTensor *in = &m->tensors[m->layers[0].in];
	const IrTensor *outt = &m->tensors[m->layers[m->nlayers - 1].out];
	int named = m->ninputs > 1 || m->seq_max;
	Out o = { 0 };
	out(&o, "pipert-desc 1\n");
	out(&o, "# Generated by pipec %s -- do not edit.  What DIR/run checks before a run\n"
	    "# (pipert-check): the program's options, data shapes and parameters.\n",
	    PACKAGE_VERSION);
	out(&o, "model %s\nsource %s\nschedule %s\nbackend %s\n", m->name, m->file->name,
	    sched_label_of(pp->sched, pp->V, NULL), eo->backend);
	out(&o, "ranks %d\npipeline %d\nreplicas %d\nbatch %lld\nmicrobatches %d\n",
	    s->nranks, s->P, s->R, pp->B, s->M);
	out(&o, "steps %d\nin_width %lld\nout_width %lld\n", pp->steps, (long long)in->elems,
	    (long long)outt->elems);
	out(&o, "loss %s\n", !s->training ? "none" : m->loss == LOSS_CROSS_ENTROPY ? "cross_entropy"
	    : m->loss == LOSS_NEXT_TOKEN ? "next_token" : "mse");
	out(&o, "target %s %lld\n", m->target_dtype == DT_I32 ? "i32" : "f32",
	    (long long)(m->target_name ? m->target_width : 0));
	/* the checker asks only whether the program trains: any optimizer
	 * but none is one */
	out(&o, "optim %s\n", pp->optim == OPT_NONE ? "none" : pp->optim == OPT_SGD ? "sgd"
	    : pp->decoupled ? "adamw" : "adam");
	/* as the ranks' .shuffle: sema allows shuffle = true only when training */
	out(&o, "shuffle %d\neval_step %d\n", pp->shuffle, has_eval_step(m, s));
	out(&o, "gen_tokens %d\ngen_sample %d\ngen_eos %lld\n",
	    s->kind == SK_GENERATE ? pp->gen_tokens : 0, pp->sample, pp->eos);
	if (s->kind == SK_GENERATE)     /* the run-time options' ranges (--eos, --top-k) */
		out(&o, "gen_vocab %lld\ngen_top_k %d\n", (long long)outt->dims[outt->ndim - 1],
		    pp->top_k);
	out(&o, "seq_max %lld\nout_seq %d\n", named ? (long long)m->seq_max : 0LL,
	    named ? outt->seq : 0);
	/* input NAME DTYPE WIDTH SEQ LIMIT NDIM DIMS... WHAT (WHAT last: it has
	 * spaces); "named 0": the program takes one bare --input of in_width */
	out(&o, "named %d\n", named);
	for (int t = 0; t < m->ninputs; t++) {
		const IrTensor *T = &m->tensors[t];
		const char *what;
		int64_t limit = input_bound(m, t, &what);
		out(&o, "input %s %s %lld %d %lld %d", T->name, T->dtype == DT_I32 ? "i32" : "f32",
		    (long long)T->elems, T->seq, (long long)limit, T->ndim);
		for (int d = 0; d < T->ndim; d++)
			out(&o, " %lld", (long long)T->dims[d]);
		out(&o, " %s\n", what);
	}
	/* every parameter once (a tied head's copy has its embedding's name) */
	for (int l = 0; l < m->nlayers; l++)
		for (int k = 0; k < m->layers[l].nparams; k++) {
			const IrParam *pa = &m->layers[l].params[k];
			int seen = 0;
			for (int l2 = 0; l2 <= l && !seen; l2++)
				for (int k2 = 0; k2 < (l2 < l ? m->layers[l2].nparams : k) && !seen; k2++)
					seen = !strcmp(m->layers[l2].params[k2].name, pa->name);
			if (seen)
				continue;
			out(&o, "param %s %d", pa->name, pa->ndim);
			for (int d = 0; d < pa->ndim; d++)
				out(&o, " %lld", (long long)pa->dims[d]);
			out(&o, "\n");
		}
	VEC_PUSH(o.buf, 0);
	return o.buf.v;
}

static char *rank_source(const IrModel *m, const Schedule *s, const SimResult *r, int rank,
                         const RankPlan *plan, const StepProgram *step, const EmitEval *ev,
                         const EmitOptions *eo, const char *tmpl)
{
	Emit e = { .m = m, .s = s, .r = r, .rank = rank, .gen = s->kind == SK_GENERATE,
	           .async = s->async };
	e.prank = rank % s->P;
	e.replica = s->disagg ? 0 : rank / s->P;   /* disaggregated: two pipelines, one batch */
	e.plan = plan;
	e.step = step;
	if (ev) {
		e.es = ev->s;
		e.eplan = ev->plans[rank];
		e.estep = ev->steps[rank];
	}
	/* generate: the caches group by group (one message each), and within a
	 * group each block's keys then values, [rows, kv_cap, kv width] each */
	e.kv_off = xalloc((size_t)m->nlayers * sizeof *e.kv_off);
	int64_t kv_at = e.plan->kv_off;
	for (int l = 0; l < m->nlayers; l++) {
		e.kv_off[l] = -1;
		int st = stage_of(m, l);
		if (e.gen && LAYER(m->layers[l].kind)->kv_cache && memplan_stage(e.plan, st)) {
			e.kv_off[l] = kv_at;
			kv_at += 2 * e.plan->rows * m->pipe.kv_cap * layer_kv_width(&m->layers[l]) *
			         ir_kv_value_bytes(m);
		}
	}
	e.kv_group = kv_at - e.plan->kv_off;
	if (e.kv_group * s->M != e.plan->kv_bytes)
		die("rank %d: key/value caches of %lld bytes, planned %lld", rank,
		    (long long)(e.kv_group * s->M), (long long)e.plan->kv_bytes);
	e.o.name = xprintf("rank%d.c", rank);
	e.o.lines_on = eo->line_directives;
	/* lines of the template before @BODY@ */
	const char *body = strstr(tmpl, "@BODY@");
	for (const char *p = tmpl; p < body; p++)
		if (*p == '\n')
			e.o.base++;
	/* @SUMMARY@ expands to several lines: counted below and added in */
	VEC(char) sum = { 0 };
	Out so = { 0 };
	out(&so, " * Rank %d of %d (replica %d, pipeline rank %d): schedule %s, P = %d, M = %d, "
	    "%lld rows per micro-batch.\n", rank, s->nranks, e.replica, e.prank,
	    sched_kind_name(s->kind), s->P, s->M, (long long)e.plan->rows);
	for (int i = 0; i < e.plan->nstages; i++) {
		const IrStage *st = &m->stages[e.plan->st[i].stage];
		out(&so, " * Holds stage %d: %s.\n", e.plan->st[i].stage, layer_range(m, st));
	}
	out(&so, " * Arena: %lld bytes for %d buffers (%lld without reuse); %d request slots.",
	    (long long)e.plan->arena_bytes, e.plan->nbuffers, (long long)e.plan->buffer_bytes,
	    e.plan->nreq);
	VEC_PUSH(so.buf, 0);
	sum.v = so.buf.v;
	e.o.base += so.line;

	emit_params(&e);
	if (e.plan->work_off >= 0)
		out(&e.o, "/* Scratch of the transformer layers, shared by every action. */\n"
		    "#define WORK ((float *)(A + %lld))\n\n", (long long)e.plan->work_off);
	for (int i = 0; i < e.plan->nstages; i++)
		emit_stage(&e, &e.plan->st[i]);
	step_emit_c(step, m, s, out_text, &e.o);
	if (e.estep)
		emit_eval(&e);
	emit_program_struct(&e);
	VEC_PUSH(e.o.buf, 0);

	const char *keys[] = { "VERSION", "SOURCE", "SUMMARY", "ROWS", "BODY" };
	const char *vals[] = { PACKAGE_VERSION, m->file->name, sum.v,
	                       xprintf("%lld", (long long)e.plan->rows), e.o.buf.v };
	return files_substitute(tmpl, keys, vals, 5);
}

int emit_program(const IrModel *m, const Schedule *s, const SimResult *r, RankPlan *const *plans,
                 StepProgram *const *steps, const EmitEval *ev, const EmitOptions *eo)
{
	files_begin(eo->dir);
	const char *tmpl = files_template("rank.c.tmpl");
	VEC(char) ranks = { 0 };
	for (int rank = 0; rank < s->nranks; rank++) {
		char *src = rank_source(m, s, r, rank, plans[rank], steps[rank], ev, eo, tmpl);
		files_write(xprintf("rank%d.c", rank), src, 0);
		const char *nm = xprintf("%srank%d", rank ? " " : "", rank);
		for (const char *p = nm; *p; p++)
			VEC_PUSH(ranks, *p);
	}
	VEC_PUSH(ranks, 0);
	files_write("program.desc", emit_desc(m, s, eo), 0);
	files_makefile_and_run(m, s, eo, ranks.v);
	files_commit();
	printf("pipec: wrote %d rank program%s, Makefile and run to %s/\n", s->nranks,
	       s->nranks == 1 ? "" : "s", eo->dir);
	return 0;
}
