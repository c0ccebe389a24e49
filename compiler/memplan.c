/* memplan.c — buffers, lifetimes and arena offsets of one rank (memplan.h).
 *
 * Time runs on a grid of two points per action: 2q is "before action q"
 * (where receives are posted and sends waited on), 2q+1 is "during action
 * q".  A buffer is alive on an inclusive interval of that grid; two buffers
 * may share memory only if their intervals are disjoint.
 */
#include "memplan.h"
#include "rt_tf_sizes.h"

#include <stdlib.h>
#include <string.h>

#define ALIGN 64

typedef struct Buf {
	int64_t size;
	int start, end;         /* grid points, inclusive; start = -1: not yet written */
	int64_t off;
	int key;                /* the micro-batch key it belongs to (the scratch: 0) */
} Buf;

typedef struct Planner {
	const IrModel *m;
	const Schedule *s;
	RankPlan *p;
	VEC(Buf) bufs;
	int **ids;              /* [local stage * nk + mb + kofs][slot] buffer id or -1 */
	int *local_of;          /* [S] local index of a held stage, -1 */
	int M;
	int nk, kofs;           /* keys per stage: mb runs -kofs .. nk-kofs-1 */
	int cur_key;            /* the key of the action being planned */
	int *pack_id;           /* [nactions] a 16-bit send's packing buffer, -1 */
} Planner;

MsgSides memplan_sides(const IrModel *m, int first, int64_t rows)
{
	MsgSides r = { 0 };
	r.t = xalloc((size_t)(m->ntensors + 1) * sizeof *r.t);
	r.n = ir_side_tensors(m, first, r.t);
	r.off = xalloc((size_t)(r.n + 1) * sizeof *r.off);
	for (int i = 0; i < r.n; i++) {
		r.off[i] = r.bytes;
		/* 64-byte aligned pieces: the main tensor after them stays aligned */
		r.bytes += (rows * m->tensors[r.t[i]].elems * 4 + 63) / 64 * 64;
	}
	/* generation: the group's rows (rt_gen_rows) travel last in the header */
	if (m->pipe.kv_cap > 0 && first > 0 && first < m->nlayers)
		r.bytes += rt_gen_hdr_bytes(rows);
	return r;
}

static int needs_in(LayerKind k)
{
	return layer_bwd_reads_in(k);
}

static int needs_out(LayerKind k)
{
	return layer_bwd_reads_out(k);
}

static int64_t save_bytes(const Planner *pl, const IrLayer *L)
{
	return pl->p->rows * L->save_elems * 4;
}

static int has_params(const IrLayer *L)
{
	return L->nparams > 0 || L->tied >= 0;      /* a tied head uses another's */
}

static int *slot_ids(Planner *pl, int g, int mb)
{
	int l = pl->local_of[g];
	if (l < 0)
		die("stage %d is not held by rank %d", g, pl->p->rank);
	if (mb + pl->kofs < 0 || mb + pl->kofs >= pl->nk)
		die("micro-batch key %d outside the plan's window", mb);
	return pl->ids[l * pl->nk + mb + pl->kofs];
}

static int new_buf(Planner *pl, int64_t bytes)
{
	Buf b = { .size = (bytes + ALIGN - 1) / ALIGN * ALIGN, .start = -1, .end = -1,
	          .key = pl->cur_key };
	VEC_PUSH(pl->bufs, b);
	return pl->bufs.n - 1;
}

static void touch(Planner *pl, int id, int t)
{
	if (id < 0)
		return;
	Buf *b = &pl->bufs.v[id];
	if (b->start < 0 || t < b->start)
		b->start = t;
	if (t > b->end)
		b->end = t;
}

/* The buffer in slot `slot` of (g, mb), created with `bytes` if absent. */
static int get(Planner *pl, int g, int mb, int slot, int64_t bytes)
{
	int *ids = slot_ids(pl, g, mb);
	if (ids[slot] < 0) {
		pl->cur_key = mb;
		ids[slot] = new_buf(pl, bytes);
	}
	return ids[slot];
}

/* The packing buffer of send q (key `key`, live from t0 to t1).  An
 * asynchronous step is walked twice: the copy whose key lies in this
 * step is the one placed and kept. */
static void pack_buf(Planner *pl, int q, int key, int64_t bytes, int t0, int t1)
{
	pl->cur_key = key;
	int id = new_buf(pl, bytes);
	touch(pl, id, t0);
	touch(pl, id, t1);
	if (key >= 0 && key < pl->s->M)
		pl->pack_id[q] = id;
}

static int64_t tensor_bytes(const Planner *pl, const IrStage *st, int k)
{
	const IrModel *m = pl->m;
	int t = k == 0 ? m->layers[st->first].in : m->layers[st->first + k - 1].out;
	return pl->p->rows * m->tensors[t].elems * 4;
}

/* A forward instance X(k) / RX(k): the tensor, behind the message header
 * at the stage's ends. */
static int64_t x_bytes(const Planner *pl, const StagePlan *sp, const IrStage *st, int k)
{
	return tensor_bytes(pl, st, k) + (k == 0 ? sp->in.bytes : 0)
	       + (k == sp->n ? sp->out.bytes : 0);
}

/* Compute actions: which buffers each reads and writes (see memplan.h). */
static void plan_compute(Planner *pl, const Action *a, int q)
{
	const IrModel *m = pl->m;
	const Schedule *s = pl->s;
	int g = a->stage, mb = a->mb;
	const IrStage *st = &m->stages[g];
	const StagePlan *sp = &pl->p->st[pl->local_of[g]];
	int n = sp->n, t = 2 * q + 1;
	int training = s->training;
	int last = g == s->S - 1;
	int next_local = !last && pl->local_of[g + 1] >= 0;
	int prev_local = g > 0 && pl->local_of[g - 1] >= 0;
	int *ids = slot_ids(pl, g, mb);

	switch (a->op) {
	case OP_F:
		if (g > 0) {
			if (ids[SLOT_X(n, 0)] < 0)
				die("rank %d: F(%d, %d) has no input buffer", pl->p->rank, g, mb);
			touch(pl, ids[SLOT_X(n, 0)], t);
		}
		for (int k = 1; k <= n; k++) {
			int id = get(pl, g, mb, SLOT_X(n, k), x_bytes(pl, sp, st, k));
			touch(pl, id, t);
			if (k <= sp->rec_from)
				ids[SLOT_RX(n, k)] = id;
		}
		ids[SLOT_RX(n, 0)] = ids[SLOT_X(n, 0)];
		if (next_local) {       /* the output is the next stage's input, here */
			int *nids = slot_ids(pl, g + 1, mb);
			nids[SLOT_X(m->stages[g + 1].last - m->stages[g + 1].first, 0)] = ids[SLOT_X(n, n)];
		}
		for (int j = 0; j < n; j++)
			if (m->layers[st->first + j].save_elems > 0
			    && (training || LAYER(m->layers[st->first + j].kind)->saves_always)) {
				int id = get(pl, g, mb, SLOT_ST(n, j), save_bytes(pl, &m->layers[st->first + j]));
				touch(pl, id, t);
				if (j < sp->rec_from)
					ids[SLOT_RST(n, j)] = id;
			}
		if (last && training)   /* the loss gradient lands here */
			touch(pl, get(pl, g, mb, SLOT_GX(n, n), tensor_bytes(pl, st, n)), t);
		break;
	case OP_R:
		touch(pl, ids[SLOT_X(n, sp->rec_from)], t);
		if (sp->in.n)           /* the side tensors (a mask) come from the input */
			touch(pl, ids[SLOT_X(n, 0)], t);
		for (int k = sp->rec_from + 1; k <= n; k++)
			touch(pl, get(pl, g, mb, SLOT_RX(n, k), x_bytes(pl, sp, st, k)), t);
		for (int j = sp->rec_from; j < n; j++)
			if (m->layers[st->first + j].save_elems > 0)
				touch(pl, get(pl, g, mb, SLOT_RST(n, j),
				              save_bytes(pl, &m->layers[st->first + j])), t);
		break;
	case OP_B:
	case OP_W:
		for (int j = n - 1; j >= 0; j--) {
			const IrLayer *L = &m->layers[st->first + j];
			int in_b = a->op == OP_B;
			int w_part = has_params(L) && (a->op == OP_W || !s->split);
			/* what this layer's part of the action reads */
			int data_in = layer_bwd_data_reads_in(L->kind);
			if ((in_b && data_in) || (w_part && needs_in(L->kind)))
				touch(pl, ids[SLOT_RX(n, j)], t);
			if (in_b && needs_out(L->kind))
				touch(pl, ids[SLOT_RX(n, j + 1)], t);
			if (L->save_elems > 0 && (in_b || w_part))
				touch(pl, ids[SLOT_RST(n, j)], t);
			/* a split backward's B stashes what its W reads */
			if (s->split && L->stash_elems > 0 && has_params(L)) {
				if (in_b)
					touch(pl, get(pl, g, mb, SLOT_GST(n, j), pl->p->rows * L->stash_elems * 4),
					      t);
				else
					touch(pl, ids[SLOT_GST(n, j)], t);
			}
			if (in_b || w_part)
				touch(pl, ids[SLOT_GX(n, j + 1)], t);
			/* and writes: the input gradient, except the model input's */
			if (in_b && (j > 0 || g > 0)) {
				int id;
				if (j == 0 && prev_local) {
					int pn = m->stages[g - 1].last - m->stages[g - 1].first;
					id = get(pl, g - 1, mb, SLOT_GX(pn, pn), tensor_bytes(pl, st, 0));
					ids[SLOT_GX(n, 0)] = id;
				} else {
					id = get(pl, g, mb, SLOT_GX(n, j), tensor_bytes(pl, st, j));
				}
				touch(pl, id, t);
			}
		}
		break;
	default:
		unreachable();
	}
}

/* Dense index of one peer's actions: (op, stage, mb) -> action index. */
/* A peer's activation and gradient messages, by their identity
 * (sched_msg): at[role][kind][receiving stage][key] is the action index of
 * its SEND (role 0) or RECV (role 1) of that message, -1 if none.  Both
 * ends of a message have the same identity, so a SEND of ours finds the
 * peer's RECV of it, and a RECV of ours the peer's SEND. */
typedef struct PeerIndex {
	int rank;
	int *at;                /* [2][2][S][nk] */
} PeerIndex;

typedef VEC(PeerIndex *) PeerCache;

/* The cell of message m (F or B) in a PeerIndex, or -1 outside the keys. */
static long peer_cell(const Planner *pl, int role, const SchedMsg *m)
{
	if (m->kind != SCHED_MSG_F && m->kind != SCHED_MSG_B)
		return -1;
	if (m->mb + pl->kofs < 0 || m->mb + pl->kofs >= pl->nk)
		return -1;
	return (((long)role * 2 + m->kind) * pl->s->S + m->stage) * pl->nk + m->mb + pl->kofs;
}

static PeerIndex *peer_index(Planner *pl, PeerCache *cache, int rank)
{
	for (int i = 0; i < cache->n; i++)
		if (cache->v[i]->rank == rank)
			return cache->v[i];
	const Schedule *s = pl->s;
	PeerIndex *pi = xalloc(sizeof *pi);
	pi->rank = rank;
	size_t cells = (size_t)4 * s->S * pl->nk;
	pi->at = xalloc(cells * sizeof *pi->at);
	for (size_t i = 0; i < cells; i++)
		pi->at[i] = -1;
	const ActList *l = &s->rank[rank];
	for (int q = 0; q < l->n; q++) {
		SchedMsg m;
		int role = sched_msg(s, rank, &l->a[q], &m);
		long c = role == SCHED_MSG_NONE ? -1 : peer_cell(pl, role == SCHED_MSG_RECEIVES, &m);
		if (c >= 0)
			pi->at[c] = q;
	}
	VEC_PUSH(*cache, pi);
	return pi;
}

/* The peer's action at the other end of message m: its RECV of our send
 * (role 1) or its SEND of our receive (role 0); -1 if none. */
static int peer_at(const Planner *pl, const PeerIndex *pi, int role, const SchedMsg *m)
{
	long c = peer_cell(pl, role, m);
	return c < 0 ? -1 : pi->at[c];
}

/* Post points of receives and wait points of sends (memplan.h). */
static void plan_comm(Planner *pl)
{
	const Schedule *s = pl->s;
	RankPlan *p = pl->p;
	const ActList *l = &s->rank[p->rank];
	int N = l->n;
	p->post_at = xalloc((size_t)(N + 1) * sizeof *p->post_at);
	p->wait_at = xalloc((size_t)(N + 1) * sizeof *p->wait_at);
	p->req = xalloc((size_t)(N + 1) * sizeof *p->req);
	int *last_recv = xalloc((size_t)2 * s->S * sizeof *last_recv);   /* per stream */
	for (int i = 0; i < 2 * s->S; i++)
		last_recv[i] = -1;
	PeerCache peers = { 0 };

	/* know[q] per peer: the highest action index of the peer known to have
	 * run before our action q, from the messages we waited on. */
	for (int q = 0; q < N; q++) {
		const Action *a = &l->a[q];
		SchedMsg m;
		p->req[q] = -1;
		if (a->op == OP_RECV_F || a->op == OP_RECV_B) {
			sched_msg(s, p->rank, a, &m);
			/* per receiving stage and direction */
			int stream = 2 * m.stage + (m.kind == SCHED_MSG_B);
			p->post_at[q] = last_recv[stream] + 1;
			last_recv[stream] = q;
		}
	}
	for (int q = 0; q < N; q++) {
		const Action *a = &l->a[q];
		if (a->op != OP_SEND_F && a->op != OP_SEND_B)
			continue;
		if (s->async) {
			/* the receive may be in the peer's next step: waited at the
			 * step's end, which every step of the stream shares */
			p->wait_at[q] = N;
			continue;
		}
		if (s->eval) {
			/* forward only (sched_eval): no message comes back to say the
			 * receiver has posted, and each rank runs its stages in order.
			 * A receiver holding no stage below ours + 1 posts micro-batch
			 * k+1's receive once k's has arrived, needing nothing more of
			 * us: send k is waited before send k+1 of the stage, two
			 * outputs in flight instead of M.  A receiver with lower stages
			 * may first need us to reach a later stage (interleaved, zb-v):
			 * the stage's sends are waited when it ends. */
			int low = 0, w = N;
			for (int st = 0; st <= a->stage; st++)
				low |= s->stage_rank[st] == a->peer % s->P;
			for (int r = q + 1; r < N && w == N; r++)
				if (low ? l->a[r].stage != a->stage
				        : l->a[r].op == OP_SEND_F && l->a[r].stage == a->stage)
					w = r;
			p->wait_at[q] = w;
			continue;
		}
		PeerIndex *pi = peer_index(pl, &peers, a->peer);
		SchedMsg m;
		sched_msg(s, p->rank, a, &m);
		int j = peer_at(pl, pi, 1, &m);
		if (j < 0)
			die("rank %d: no receive matches action %d", p->rank, q);
		/* the first of our later RECVs from that peer whose SEND there
		 * comes after the peer's RECV j */
		int w = N;
		for (int r = q + 1; r < N; r++) {
			const Action *b = &l->a[r];
			if ((b->op != OP_RECV_F && b->op != OP_RECV_B) || b->peer != a->peer)
				continue;
			SchedMsg bm;
			sched_msg(s, p->rank, b, &bm);
			int i = peer_at(pl, pi, 0, &bm);
			if (i > j) {
				w = r + 1;
				break;
			}
		}
		p->wait_at[q] = w;
	}

	/* Request slots: interval colouring of [post, wait] on the grid. */
	typedef struct { int t0, t1, q; } Req;
	VEC(Req) reqs = { 0 };
	for (int q = 0; q < N; q++) {
		const Action *a = &l->a[q];
		if (a->op == OP_RECV_F || a->op == OP_RECV_B) {
			Req r = { 2 * p->post_at[q], 2 * q + 1, q };
			VEC_PUSH(reqs, r);
		} else if (a->op == OP_SEND_F || a->op == OP_SEND_B) {
			Req r = { 2 * q + 1, 2 * p->wait_at[q], q };
			VEC_PUSH(reqs, r);
		}
	}
	/* sort by start (insertion order is nearly sorted; a simple merge sort) */
	for (int w = 1; w < reqs.n; w *= 2) {
		Req *tmp = xalloc((size_t)reqs.n * sizeof *tmp);
		for (int lo = 0; lo < reqs.n; lo += 2 * w) {
			int mid = lo + w < reqs.n ? lo + w : reqs.n;
			int hi = lo + 2 * w < reqs.n ? lo + 2 * w : reqs.n;
			int i = lo, k = mid, o = lo;
			while (i < mid && k < hi)
				tmp[o++] = reqs.v[k].t0 < reqs.v[i].t0 ? reqs.v[k++] : reqs.v[i++];
			while (i < mid)
				tmp[o++] = reqs.v[i++];
			while (k < hi)
				tmp[o++] = reqs.v[k++];
		}
		memcpy(reqs.v, tmp, (size_t)reqs.n * sizeof *tmp);
	}
	int *slot_end = xalloc((size_t)(reqs.n + 1) * sizeof *slot_end);
	int nslots = 0;
	for (int i = 0; i < reqs.n; i++) {
		int sl;
		for (sl = 0; sl < nslots && slot_end[sl] >= reqs.v[i].t0; sl++)
			;
		if (sl == nslots)
			nslots++;
		slot_end[sl] = reqs.v[i].t1;
		p->req[reqs.v[i].q] = sl;
	}
	p->nreq = nslots;
}

/* The sweep's order: by start, the larger first, then by id. */
static int cmp_start(const void *x, const void *y, void *ctx)
{
	const Buf *b = ctx;
	int i = *(const int *)x, j = *(const int *)y;
	if (b[i].start != b[j].start)
		return b[i].start < b[j].start ? -1 : 1;
	if (b[i].size != b[j].size)
		return b[i].size > b[j].size ? -1 : 1;
	return i < j ? -1 : i > j;
}

/* qsort_r is not portable; a merge sort with context. */
static void sort_ids(int *v, int n, Buf *ctx)
{
	int *tmp = xalloc((size_t)(n + 1) * sizeof *tmp);
	for (int w = 1; w < n; w *= 2) {
		for (int lo = 0; lo < n; lo += 2 * w) {
			int mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
			int i = lo, k = mid, o = lo;
			while (i < mid && k < hi)
				tmp[o++] = cmp_start(&v[k], &v[i], ctx) < 0 ? v[k++] : v[i++];
			while (i < mid)
				tmp[o++] = v[i++];
			while (k < hi)
				tmp[o++] = v[k++];
		}
		memcpy(v, tmp, (size_t)n * sizeof *v);
	}
}

/* Two lifetimes meet if their intervals overlap.  An asynchronous
 * schedule's plan is of one step that repeats, on a grid of `period`
 * points, so its lifetimes are arcs of a circle (a buffer written late in
 * a step and read early in the next wraps) and meet if they overlap
 * shifted by a whole period either way; period 0: a straight line. */
static int meets(const Buf *a, const Buf *b, int period)
{
	for (int sh = -period; sh <= period; sh += period ? period : 1)
		if (a->start <= b->end + sh && b->start + sh <= a->end)
			return 1;
	return 0;
}

/* Offsets: sweep buffers by start time, placing each at the lowest gap
 * among the placed buffers whose lifetimes meet it (first fit).  On a line
 * a buffer that ended before the current one started meets no later one
 * and leaves the candidates; on a circle every placed buffer stays one
 * (quadratic, and an asynchronous step has a few hundred buffers). */
static void place(Planner *pl, int period)
{
	Buf *b = pl->bufs.v;
	int n = pl->bufs.n;
	int *order = xalloc((size_t)(n + 1) * sizeof *order);
	int used = 0;
	for (int i = 0; i < n; i++)
		if (b[i].start >= 0)
			order[used++] = i;
	sort_ids(order, used, b);
	/* candidates: placed ids sorted by offset */
	int *cand = xalloc((size_t)(used + 1) * sizeof *cand);
	int ncand = 0;
	int64_t peak = 0, total = 0;
	for (int oi = 0; oi < used; oi++) {
		Buf *x = &b[order[oi]];
		total += x->size;
		if (!period) {
			int k = 0;
			for (int i = 0; i < ncand; i++)        /* drop the finished */
				if (b[cand[i]].end >= x->start)
					cand[k++] = cand[i];
			ncand = k;
		}
		int64_t at = 0;
		for (int i = 0; i < ncand; i++) {
			const Buf *y = &b[cand[i]];
			if (!meets(x, y, period))
				continue;
			if (y->off - at >= x->size)
				break;
			if (y->off + y->size > at)
				at = y->off + y->size;
		}
		x->off = at;
		int pos = ncand;
		while (pos > 0 && b[cand[pos - 1]].off > at)
			pos--;
		memmove(&cand[pos + 1], &cand[pos], (size_t)(ncand - pos) * sizeof *cand);
		cand[pos] = order[oi];
		ncand++;
		if (at + x->size > peak)
			peak = at + x->size;
	}
	pl->p->arena_bytes = peak;
	pl->p->buffer_bytes = total;
	pl->p->nbuffers = used;
}

RankPlan *memplan_rank(const IrModel *m, const Schedule *s, int rank)
{
	Planner pl = { .m = m, .s = s, .M = s->M };
	RankPlan *p = xalloc(sizeof *p);
	pl.p = p;
	p->rank = rank;
	p->rows = m->pipe.B / ((long long)m->pipe.R * m->pipe.M);
	int prank = rank % s->P;
	pl.local_of = xalloc((size_t)s->S * sizeof *pl.local_of);
	for (int g = 0; g < s->S; g++) {
		pl.local_of[g] = -1;
		if (s->stage_rank[g] == prank)
			pl.local_of[g] = p->nstages++;
	}
	p->st = xalloc((size_t)(p->nstages + 1) * sizeof *p->st);
	/* keys: 0..M-1, and for an asynchronous step also the previous step's
	 * still in flight (down to -lag) and, walked a second time, the next */
	pl.kofs = s->async ? s->lag[prank] : 0;
	pl.nk = s->async ? 2 * s->M + pl.kofs : s->M;
	pl.ids = xalloc((size_t)(p->nstages * pl.nk + 1) * sizeof *pl.ids);
	for (int g = 0; g < s->S; g++) {
		int l = pl.local_of[g];
		if (l < 0)
			continue;
		const IrStage *st = &m->stages[g];
		StagePlan *sp = &p->st[l];
		sp->stage = g;
		sp->n = st->last - st->first;
		sp->rec_from = s->training ? sp->n - st->nrecompute : sp->n;
		sp->kept = xalloc((size_t)sp->n + 1);
		sp->in = memplan_sides(m, st->first, p->rows);
		sp->out = memplan_sides(m, st->last, p->rows);
		for (int k = 0; k <= sp->n; k++) {
			int consumer = k < sp->n && needs_in(m->layers[st->first + k].kind);
			int producer = k > 0 && needs_out(m->layers[st->first + k - 1].kind);
			sp->kept[k] = s->training && (consumer || producer || k == sp->rec_from);
		}
		for (int key = 0; key < pl.nk; key++) {
			int *ids = xalloc((size_t)SLOT_COUNT(sp->n) * sizeof *ids);
			for (int i = 0; i < SLOT_COUNT(sp->n); i++)
				ids[i] = -1;
			pl.ids[l * pl.nk + key] = ids;
		}
	}

	plan_comm(&pl);
	const ActList *l = &s->rank[rank];
	int N = l->n;
	/* A 16-bit program sends 2 bytes a value (docs/precision.md): each
	 * send packs its message into a buffer of its own, live from the post
	 * to the wait.  (A receive unpacks in place: no buffer.) */
	int pack = m->pipe.dtype != DT_F32;
	p->pack_off = xalloc((size_t)(N + 1) * sizeof *p->pack_off);
	pl.pack_id = xalloc((size_t)(N + 1) * sizeof *pl.pack_id);
	for (int q = 0; q <= N; q++)
		pl.pack_id[q] = -1;
	/* Lifetimes: forward instances kept for backward are read there, so
	 * walking the actions in order and touching every read suffices.  An
	 * asynchronous step is walked twice, the second time with every key
	 * moved by M (the next step), so that each key 0..M-1 sees both its
	 * forward and its backward; only those keys' buffers are placed. */
	int copies = s->async ? 2 : 1;
	for (int qq = 0; qq < copies * N; qq++) {
		int q = qq % N, g0 = 2 * N * (qq / N);     /* grid of this copy */
		Action shifted = l->a[q];
		shifted.mb += (qq / N) * s->M;
		const Action *a = &shifted;
		switch (a->op) {
		case OP_F: case OP_B: case OP_W: case OP_R:
			plan_compute(&pl, a, qq);
			break;
		case OP_RECV_F: {
			const StagePlan *sp = &p->st[pl.local_of[a->stage]];
			int id = get(&pl, a->stage, a->mb, SLOT_X(sp->n, 0),
			             x_bytes(&pl, sp, &m->stages[a->stage], 0));
			touch(&pl, id, g0 + 2 * p->post_at[q]);
			touch(&pl, id, g0 + 2 * q + 1);
			break;
		}
		case OP_RECV_B: {
			const StagePlan *sp = &p->st[pl.local_of[a->stage]];
			int id = get(&pl, a->stage, a->mb, SLOT_GX(sp->n, sp->n),
			             tensor_bytes(&pl, &m->stages[a->stage], sp->n));
			touch(&pl, id, g0 + 2 * p->post_at[q]);
			touch(&pl, id, g0 + 2 * q + 1);
			break;
		}
		case OP_SEND_F: {
			const StagePlan *sp = &p->st[pl.local_of[a->stage]];
			int id = slot_ids(&pl, a->stage, a->mb)[SLOT_X(sp->n, sp->n)];
			touch(&pl, id, g0 + 2 * q + 1);
			touch(&pl, id, g0 + 2 * p->wait_at[q]);
			if (pack)
				pack_buf(&pl, q, a->mb, sp->out.bytes
				         + tensor_bytes(&pl, &m->stages[a->stage], sp->n) / 2,
				         g0 + 2 * q + 1, g0 + 2 * p->wait_at[q]);
			break;
		}
		case OP_SEND_B: {
			const StagePlan *sp = &p->st[pl.local_of[a->stage]];
			int id = slot_ids(&pl, a->stage, a->mb)[SLOT_GX(sp->n, 0)];
			touch(&pl, id, g0 + 2 * q + 1);
			touch(&pl, id, g0 + 2 * p->wait_at[q]);
			if (pack)
				pack_buf(&pl, q, a->mb, tensor_bytes(&pl, &m->stages[a->stage], 0) / 2,
				         g0 + 2 * q + 1, g0 + 2 * p->wait_at[q]);
			break;
		}
		default:
			break;
		}
	}
	/* Forward-only: a stage output kept for nobody still lives until it
	 * is sent or handed to the next stage; the touches above did that. */
	/* Scratch: one buffer for the whole step, as large as the hungriest
	 * layer's (actions run one at a time). */
	p->work_off = -1;
	for (int i = 0; i < p->nstages; i++) {
		const IrStage *st = &m->stages[p->st[i].stage];
		for (int l = st->first; l < st->last; l++)
			if (m->layers[l].work_elems * p->rows * 4 > p->work_bytes)
				p->work_bytes = m->layers[l].work_elems * p->rows * 4;
	}
	int work = -1;
	if (p->work_bytes > 0) {
		pl.cur_key = 0;
		work = new_buf(&pl, p->work_bytes);
		touch(&pl, work, 0);
		touch(&pl, work, 2 * copies * N + 1);
	}
	if (s->async) {
		/* the keys of this step are whole; the others are copies */
		for (int i = 0; i < pl.bufs.n; i++)
			if (pl.bufs.v[i].key < 0 || pl.bufs.v[i].key >= s->M)
				pl.bufs.v[i].start = -1;
		place(&pl, 2 * N);
	} else {
		place(&pl, 0);
	}
	if (work >= 0)
		p->work_off = pl.bufs.v[work].off;
	for (int q = 0; q <= N; q++)
		p->pack_off[q] = pl.pack_id[q] >= 0 ? pl.bufs.v[pl.pack_id[q]].off : -1;
	/* generate: the caches live as long as the run, after everything else */
	for (int i = 0; i < p->nstages; i++)
		p->kv_bytes += ir_kv_bytes(m, p->st[i].stage);
	p->kv_off = (p->arena_bytes + 63) / 64 * 64;
	if (p->kv_bytes)
		p->arena_bytes = p->kv_off + p->kv_bytes;
	for (int lidx = 0; lidx < p->nstages; lidx++) {
		StagePlan *sp = &p->st[lidx];
		sp->off = xalloc((size_t)s->M * sizeof *sp->off);
		for (int mb = 0; mb < s->M; mb++) {
			int *ids = pl.ids[lidx * pl.nk + mb + pl.kofs];
			sp->off[mb] = xalloc((size_t)SLOT_COUNT(sp->n) * sizeof **sp->off);
			for (int i = 0; i < SLOT_COUNT(sp->n); i++)
				sp->off[mb][i] = ids[i] >= 0 && pl.bufs.v[ids[i]].start >= 0
				                 ? pl.bufs.v[ids[i]].off : NO_BUFFER;
		}
	}
	return p;
}

RankMemory memplan_memory(const IrModel *m, const Schedule *s, const RankPlan *p)
{
	RankMemory r = { 0 };
	int64_t n = 0;
	for (int i = 0; i < p->nstages; i++)
		n += m->stages[p->st[i].stage].params + m->stages[p->st[i].stage].copy_params;
	const Pipeline *pp = &m->pipe;
	int state = pp->optim == OPT_ADAM ? 2 : pp->optim == OPT_SGD && pp->momentum > 0 ? 1 : 0;
	/* asynchronous: every stashed weight version is a full copy */
	r.weights = 4 * n * (s->async ? s->nver[p->rank % s->P] : 1);
	r.grads = s->training ? 4 * n : 0;
	/* 16-bit training: the optimizer also keeps f32 master weights, which
	 * the weights the kernels read are rounded from (docs/precision.md) */
	if (s->training && pp->dtype != DT_F32)
		state++;
	r.optim = s->training ? 4 * n * state : 0;
	r.arena = p->arena_bytes;
	r.kv = p->kv_bytes;
	return r;
}

int64_t memplan_total(RankMemory r)
{
	return r.weights + r.grads + r.optim + r.arena;
}

const StagePlan *memplan_stage(const RankPlan *p, int g)
{
	for (int i = 0; i < p->nstages; i++)
		if (p->st[i].stage == g)
			return &p->st[i];
	return NULL;
}

void memplan_dump(FILE *out, const IrModel *m, const Schedule *s, const RankPlan *p)
{
	(void)m;
	fprintf(out, "rank %d: %sarena %lld bytes (%d buffers, %lld bytes without reuse), "
	        "%d request slots\n", p->rank, s->eval ? "evaluation step: " : "",
	        (long long)p->arena_bytes, p->nbuffers,
	        (long long)p->buffer_bytes, p->nreq);
	const ActList *l = &s->rank[p->rank];
	for (int q = 0; q < l->n; q++) {
		const Action *a = &l->a[q];
		if (a->op == OP_RECV_F || a->op == OP_RECV_B)
			fprintf(out, "  %d %s stage %d mb %d: posted before %d, slot %d\n", q,
			        op_name(a->op), a->stage, a->mb, p->post_at[q], p->req[q]);
		else if (a->op == OP_SEND_F || a->op == OP_SEND_B)
			fprintf(out, "  %d %s stage %d mb %d: waited before %d, slot %d\n", q,
			        op_name(a->op), a->stage, a->mb, p->wait_at[q], p->req[q]);
	}
}
