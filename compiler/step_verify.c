/* step_verify.c — proves the step programs sound: what is emitted, not
 * only the schedule it came from (step.h).
 *
 * Every rank's step program is run, all ranks together, for each value
 * its guards can take: a plain step once; generation for rounds 0, 1, a
 * middle one and the last (a run of min(NTOK, 4) rounds: the guards only
 * tell those apart); an asynchronous step for runs of 1, 2 and 3 steps
 * and their drains (first, middle, last step).  The run follows MPI's
 * rules: a receive is matched, per sender and tag, with the sends in the
 * order they were posted and started; a RECV's wait completes once its
 * send has started, and a send's wait once its receive is posted (the
 * strict, rendezvous reading: no buffering is assumed).  It checks:
 *  - request slots: a POST or SEND takes a free slot, in range; a RECV
 *    waits on the slot its own POST took, a WAIT on the slot its SEND
 *    took; no request is in flight at the step's end;
 *  - buffers: an action that reads a received buffer comes after the
 *    RECV that waits for it, a SEND after the action that writes it; no
 *    two messages in flight on a rank share arena bytes (the memory
 *    plan's placement, at the longest sequence);
 *  - messages: every send meets a receive from and to the right ranks
 *    with the same tag, size and micro-batch key, none is left over,
 *    and no rank waits forever (a deadlock names the first one stuck).
 */
#include "step.h"

#include <stdarg.h>

typedef struct Msg {
	int rank, instr, t;
	int64_t key;            /* the micro-batch key in the whole run */
	const StepMsg *g;
} Msg;

typedef struct Queue {
	int from, to;           /* sender and receiver */
	uint64_t tag, hash;
	VEC(Msg) send, recv;
} Queue;

typedef struct Slot {
	int busy, send, instr;  /* the instruction that took it */
	Queue *q;
	int idx;                /* its place in q->send or q->recv */
} Slot;

typedef struct Rank {
	const StepProgram *sp;
	int *calls, ncalls;     /* the rounds or steps t this rank runs */
	int call, pc;           /* where it is */
	int *done;              /* [n] the call in which instruction i last ran, -1 */
	int *dep;               /* [n] an instruction that must run before i, -1 */
	Slot *slot;
} Rank;

typedef struct Verifier {
	const Schedule *s;
	int nranks;
	StepMode mode;
	int ntok;               /* generation: rounds of this run */
	int steps;              /* asynchronous: steps of this run */
	Rank *r;
	int **dep;              /* [rank][instruction] what must run before it, -1 */
	Queue **tab;            /* open addressing by id */
	int cap, used;
	void (*report)(const char *fmt, ...);
	int failed;
} Verifier;

static void fail(Verifier *v, const Rank *rk, int i, const char *fmt, ...) PRINTF_LIKE(4, 5);
static void fail(Verifier *v, const Rank *rk, int i, const char *fmt, ...)
{
	if (v->failed++)
		return;
	char why[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	const char *when = "";
	int t = rk->call < rk->ncalls ? rk->calls[rk->call] : -1;
	if (v->mode == STEP_GEN)
		when = xprintf(" in round %d of %d", t, v->ntok);
	else if (v->mode == STEP_ASYNC)
		when = xprintf(" in step %d of a %d-step run", t, v->steps);
	v->report("rank %d, instruction %d (%s)%s: %s", rk->sp->rank, i,
	          step_instr_desc(&rk->sp->in[i]), when, why);
}

static uint64_t hash(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return x;
}

static Queue *queue(Verifier *v, int from, int to, const StepMsg *g)
{
	uint64_t tag = (uint64_t)RT_TAG((uint64_t)g->tag_stage, (uint64_t)g->tag_mb,
	                                (uint64_t)g->tag_dir);
	uint64_t id = ((uint64_t)from * (uint64_t)v->nranks + (uint64_t)to) * 0x9e3779b97f4a7c15ULL
	              ^ tag;
	if (2 * (v->used + 1) > v->cap) {
		Queue **old = v->tab;
		int oc = v->cap;
		v->cap = v->cap ? 2 * v->cap : 256;
		v->tab = xalloc((size_t)v->cap * sizeof *v->tab);
		for (int i = 0; i < oc; i++)
			if (old[i]) {
				size_t h = old[i]->hash & (size_t)(v->cap - 1);
				while (v->tab[h])
					h = (h + 1) & (size_t)(v->cap - 1);
				v->tab[h] = old[i];
			}
	}
	uint64_t hv = hash(id);
	size_t h = hv & (size_t)(v->cap - 1);
	while (v->tab[h] && (v->tab[h]->from != from || v->tab[h]->to != to || v->tab[h]->tag != tag))
		h = (h + 1) & (size_t)(v->cap - 1);
	if (!v->tab[h]) {
		Queue *q = xalloc(sizeof *q);
		*q = (Queue){ .from = from, .to = to, .tag = tag, .hash = hv };
		v->tab[h] = q;
		v->used++;
	}
	return v->tab[h];
}

static int holds(const Verifier *v, const StepInstr *in, int t)
{
	if (in->guard == SG_LIVE) {
		int64_t k = (int64_t)t * v->s->M + in->key;
		return k >= 0 && k < (int64_t)v->steps * v->s->M;
	}
	return sched_guard_holds(in->guard, t, v->ntok);
}

/* The key of instruction in's message or action in the whole run: a
 * token or the caches were made the round before they are received. */
static int64_t run_key(const Verifier *v, const StepInstr *in, int t)
{
	if (v->mode == STEP_PLAIN)
		return in->key;
	int made = v->mode == STEP_GEN && (in->op == OP_RECV_TOK || in->op == OP_RECV_KV)
	           ? t - 1 : t;
	return (int64_t)made * v->s->M + in->key;
}

static int peer_at(const StepMsg *g, int t, StepMode mode)
{
	return mode == STEP_GEN && t == 1 && g->peer_t1 >= 0 ? g->peer_t1 : g->peer;
}

static int same_size(const StepMsg *a, const StepMsg *b)
{
	return a->tokens == b->tokens && a->hdr == b->hdr && a->per_row == b->per_row
	       && a->seq == b->seq && a->half == b->half;
}

static const char *size_text(const StepMsg *g)
{
	if (g->tokens)
		return "a token a row";
	const char *vals = xprintf("%lld%s %d-byte values a row", (long long)g->per_row,
	                           g->seq ? "*T" : "", g->half ? 2 : 4);
	return !g->per_row ? xprintf("%lld bytes", (long long)g->hdr)
	       : g->hdr ? xprintf("a %lld-byte header and %s", (long long)g->hdr, vals) : vals;
}

/* The instruction of each action of a program, by (op, stage, key). */
typedef struct ActIndex {
	int S, lo, nk;          /* keys lo .. lo+nk-1 */
	int *at;
} ActIndex;

static ActIndex act_index(const StepProgram *sp, const Schedule *s)
{
	ActIndex x = { .S = s->S, .lo = s->async ? -s->M : 0, .nk = s->async ? 2 * s->M : s->M };
	x.at = xalloc((size_t)OP_COUNT * x.S * x.nk * sizeof *x.at);
	for (size_t i = 0; i < (size_t)OP_COUNT * x.S * x.nk; i++)
		x.at[i] = -1;
	for (int i = 0; i < sp->n; i++) {
		const StepInstr *in = &sp->in[i];
		if (in->kind == STEP_ACT && in->stage >= 0 && in->stage < x.S && in->key >= x.lo
		    && in->key < x.lo + x.nk)
			x.at[((size_t)in->op * x.S + in->stage) * x.nk + in->key - x.lo] = i;
	}
	return x;
}

static int find_act(const ActIndex *x, int op, int stage, int key)
{
	if (stage < 0 || stage >= x->S || key < x->lo || key >= x->lo + x->nk)
		return -1;
	return x->at[((size_t)op * x->S + stage) * x->nk + key - x->lo];
}

/* What must run before instruction i: the RECV that waits for the buffer
 * an action reads, the action that writes the buffer a SEND sends. */
static int dependence(const ActIndex *x, const StepProgram *sp, const Schedule *s,
                      const StepInstr *in)
{
	if (in->kind != STEP_ACT)
		return -1;
	switch (in->op) {
	case OP_F: {
		int i = find_act(x, OP_RECV_F, in->stage, in->key);
		if (i < 0 && sp->mode == STEP_GEN && in->stage == 0)
			i = find_act(x, OP_RECV_TOK, 0, in->key);
		if (i < 0 && sp->mode == STEP_GEN)
			i = find_act(x, OP_RECV_KV, in->stage, in->key);
		return i;
	}
	case OP_B:
		return find_act(x, OP_RECV_B, in->stage, in->key);
	case OP_SEND_F:
	case OP_SEND_KV:
		return find_act(x, OP_F, in->stage, in->key);
	case OP_SEND_TOK:
		return find_act(x, OP_F, s->S - 1, in->key);
	case OP_SEND_B:
		return find_act(x, OP_B, in->stage, in->key);
	default:
		return -1;
	}
}

/* The arena bytes [*lo, *hi) a message covers (which 0: its buffer, 1: a
 * packed send's copy); 0 if none (tokens live outside the arena). */
static int region(const StepMsg *g, int which, int64_t *lo, int64_t *hi)
{
	if (g->tokens || (which && g->pack_off < 0))
		return 0;
	*lo = which ? g->pack_off : g->off;
	*hi = *lo + g->hdr + (which ? 2 : 4) * g->values_max;
	return 1;
}

/* Whether message g, about to be in flight on rank rk, shares bytes
 * with one that is: reported. */
static int overlaps(Verifier *v, Rank *rk, int i, const StepMsg *g)
{
	for (int sl = 0; sl < rk->sp->nslots; sl++) {
		const Slot *o = &rk->slot[sl];
		if (!o->busy)
			continue;
		const StepMsg *h = &rk->sp->in[o->instr].msg;
		for (int a = 0; a < 2; a++)
			for (int b = 0; b < 2; b++) {
				int64_t lo1, hi1, lo2, hi2;
				if (region(g, a, &lo1, &hi1) && region(h, b, &lo2, &hi2) && lo1 < hi2
				    && lo2 < hi1) {
					fail(v, rk, i, "its message's bytes A+%lld .. A+%lld overlap those of "
					     "instruction %d (%s), in flight", (long long)lo1, (long long)hi1,
					     o->instr, step_instr_desc(&rk->sp->in[o->instr]));
					return 1;
				}
			}
	}
	return 0;
}

/* Runs instruction pc of rank rk in call t: 1 done, 0 blocked. */
static int step_one(Verifier *v, Rank *rk, int i, int t)
{
	const StepProgram *sp = rk->sp;
	const StepInstr *in = &sp->in[i];
	int call = rk->call;
	if (in->kind == STEP_SPLIT || !holds(v, in, t))
		return 1;
	if (rk->dep[i] >= 0 && holds(v, &sp->in[rk->dep[i]], t) && rk->done[rk->dep[i]] != call) {
		fail(v, rk, i, step_op_sends(in->op) ? "sends its buffer before instruction %d (%s) "
		     "writes it" : "reads its buffer before instruction %d (%s) waits for it",
		     rk->dep[i], step_instr_desc(&sp->in[rk->dep[i]]));
		return 1;
	}
	int takes = in->kind == STEP_POST || (in->kind == STEP_ACT && step_op_sends(in->op));
	int waits = in->kind == STEP_WAIT || (in->kind == STEP_ACT && step_op_recvs(in->op));
	if ((takes || waits) && (in->slot < 0 || in->slot >= sp->nslots)) {
		fail(v, rk, i, "request slot %d outside the program's %d", in->slot, sp->nslots);
		return 1;
	}
	Slot *sl = in->slot >= 0 ? &rk->slot[in->slot] : NULL;
	if (takes) {
		if (sl->busy) {
			fail(v, rk, i, "request slot %d reused while instruction %d's request (%s) is "
			     "in flight", in->slot, sl->instr, step_instr_desc(&sp->in[sl->instr]));
			return 1;
		}
		if (overlaps(v, rk, i, &in->msg))
			return 1;
		int peer = peer_at(&in->msg, t, v->mode);
		if (peer < 0 || peer >= v->nranks || peer == sp->rank) {
			fail(v, rk, i, "peer rank %d", peer);
			return 1;
		}
		int send = in->kind == STEP_ACT;
		Queue *q = queue(v, send ? sp->rank : peer, send ? peer : sp->rank, &in->msg);
		Msg m = { sp->rank, i, t, run_key(v, in, t), &in->msg };
		*sl = (Slot){ 1, send, i, q, send ? q->send.n : q->recv.n };
		if (send)
			VEC_PUSH(q->send, m);
		else
			VEC_PUSH(q->recv, m);
	} else if (waits) {
		int send = in->kind == STEP_WAIT;
		if (!sl->busy || sl->send != send || sp->in[sl->instr].q != in->q) {
			fail(v, rk, i, "waits on request slot %d, which holds %s", in->slot,
			     !sl->busy ? "no request (a wait without a post)"
			     : xprintf("instruction %d's request (%s)", sl->instr,
			               step_instr_desc(&sp->in[sl->instr])));
			return 1;
		}
		Queue *q = sl->q;
		if (send ? q->recv.n <= sl->idx : q->send.n <= sl->idx)
			return 0;               /* its partner has not come yet */
		if (!send) {
			const Msg *s = &q->send.v[sl->idx], *r = &q->recv.v[sl->idx];
			const StepInstr *sin = &v->r[s->rank].sp->in[s->instr];
			if (!same_size(s->g, r->g) || s->key != r->key) {
				fail(v, rk, i, "receives rank %d's instruction %d (%s), key %lld, %s, "
				     "but expects key %lld, %s", s->rank, s->instr, step_instr_desc(sin),
				     (long long)s->key, size_text(s->g), (long long)r->key, size_text(r->g));
				return 1;
			}
		}
		sl->busy = 0;
	}
	rk->done[i] = call;
	return 1;
}

/* Runs rank rk as far as it goes: whether it moved. */
static int advance(Verifier *v, Rank *rk)
{
	int moved = 0;
	while (rk->call < rk->ncalls && !v->failed) {
		int t = rk->calls[rk->call];
		if (rk->pc == rk->sp->n) {
			for (int sl = 0; sl < rk->sp->nslots; sl++)
				if (rk->slot[sl].busy) {
					fail(v, rk, rk->slot[sl].instr, "its request (slot %d) is still in "
					     "flight at the step's end", sl);
					return moved;
				}
			rk->call++;
			rk->pc = 0;
			moved = 1;
			continue;
		}
		if (!step_one(v, rk, rk->pc, t))
			return moved;
		rk->pc++;
		moved = 1;
	}
	return moved;
}

/* Rank m->rank, placed at the call its message belongs to (for reports). */
static Rank *at_call(Verifier *v, const Msg *m)
{
	Rank *rk = &v->r[m->rank];
	rk->call = 0;
	while (rk->call < rk->ncalls && rk->calls[rk->call] != m->t)
		rk->call++;
	return rk;
}

static const char *tag_text(uint64_t tag)
{
	return xprintf("(%d, %d, %d)", (int)RT_TAG_STAGE(tag), (int)RT_TAG_MB(tag),
	               (int)RT_TAG_DIR(tag));
}

/* After a run that did not finish: a send whose receive waits for it
 * under another tag or from another rank is the likelier culprit than
 * the first rank stuck; names it. */
static void mismatch(Verifier *v)
{
	for (int i = 0; i < v->cap && !v->failed; i++) {
		const Queue *qr = v->tab[i];
		if (!qr || qr->recv.n <= qr->send.n)
			continue;
		const Msg *r = &qr->recv.v[qr->send.n];
		for (int j = 0; j < v->cap && !v->failed; j++) {
			const Queue *qs = v->tab[j];
			if (!qs || qs == qr || qs->from != qr->from || RT_TAG_DIR(qs->tag)
			    != RT_TAG_DIR(qr->tag))
				continue;
			for (int k = qs->recv.n; k < qs->send.n; k++)
				if (qs->send.v[k].key == r->key) {
					const Msg *s = &qs->send.v[k];
					fail(v, at_call(v, s), s->instr, "its message (key %lld) goes to rank "
					     "%d with tag %s, but rank %d's instruction %d (%s) waits for it "
					     "with tag %s", (long long)s->key, qs->to, tag_text(qs->tag),
					     qr->to, r->instr,
					     step_instr_desc(&v->r[r->rank].sp->in[r->instr]),
					     tag_text(qr->tag));
					return;
				}
		}
	}
}

/* One run: every rank's calls, all ranks together. */
static void run(Verifier *v, StepProgram *const *progs)
{
	v->r = xalloc((size_t)v->nranks * sizeof *v->r);
	v->tab = NULL;
	v->cap = v->used = 0;
	int ncalls = v->mode == STEP_GEN ? v->ntok : v->mode == STEP_ASYNC ? v->steps + 1 : 1;
	for (int k = 0; k < v->nranks; k++) {
		Rank *rk = &v->r[k];
		const StepProgram *sp = progs[k];
		rk->sp = sp;
		rk->calls = xalloc((size_t)ncalls * sizeof *rk->calls);
		for (int t = 0; t < ncalls; t++)
			if (sched_guard_holds(sp->rank_guard, t, v->ntok))
				rk->calls[rk->ncalls++] = t;
		rk->slot = xalloc((size_t)(sp->nslots + 1) * sizeof *rk->slot);
		rk->done = xalloc((size_t)(sp->n + 1) * sizeof *rk->done);
		rk->dep = v->dep[k];
		for (int i = 0; i < sp->n; i++)
			rk->done[i] = -1;
	}
	for (int moved = 1; moved && !v->failed;) {
		moved = 0;
		for (int k = 0; k < v->nranks && !v->failed; k++)
			moved |= advance(v, &v->r[k]);
	}
	mismatch(v);
	for (int k = 0; k < v->nranks && !v->failed; k++) {
		Rank *rk = &v->r[k];
		if (rk->call < rk->ncalls)
			fail(v, rk, rk->pc, "waits forever: %s", rk->sp->in[rk->pc].kind == STEP_WAIT
			     ? "its message is never received"
			     : "no matching message comes (a deadlock, or none is sent)");
	}
	for (int h = 0; h < v->cap && !v->failed; h++) {
		const Queue *q = v->tab[h];
		if (!q || q->send.n == q->recv.n)
			continue;
		const Msg *m = q->send.n > q->recv.n ? &q->send.v[q->recv.n] : &q->recv.v[q->send.n];
		fail(v, at_call(v, m), m->instr, q->send.n > q->recv.n ? "its message is never "
		     "received" : "no rank sends its message");
	}
}

int step_verify(StepProgram *const *progs, int nranks, const Schedule *s,
                void (*report)(const char *fmt, ...))
{
	Verifier v = { .s = s, .nranks = nranks, .report = report };
	if (nranks < 1)
		return 0;
	v.mode = progs[0]->mode;
	v.dep = xalloc((size_t)nranks * sizeof *v.dep);
	for (int k = 0; k < nranks; k++) {
		const StepProgram *sp = progs[k];
		ActIndex x = act_index(sp, s);
		v.dep[k] = xalloc((size_t)(sp->n + 1) * sizeof **v.dep);
		for (int i = 0; i < sp->n; i++)
			v.dep[k][i] = dependence(&x, sp, s, &sp->in[i]);
	}
	v.ntok = 1;
	v.steps = 1;
	if (v.mode == STEP_GEN) {
		v.ntok = progs[0]->ntok < 4 ? progs[0]->ntok : 4;
		run(&v, progs);
	} else if (v.mode == STEP_ASYNC) {
		for (v.steps = 1; v.steps <= 3 && !v.failed; v.steps++)
			run(&v, progs);
		v.steps--;
	} else {
		run(&v, progs);
	}
	return v.failed ? -1 : 0;
}
