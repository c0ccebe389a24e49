/* sched_lower.c — the one lowering pass: compute order to full programs.
 *
 * For every pipeline rank, in its compute order:
 *   F(s, m):  RECV_F(s, m) first when stage s-1 lives on another rank;
 *             SEND_F(s, m) right after when stage s+1 does.
 *   B(s, m):  RECV_B(s, m) first when stage s+1 lives on another rank;
 *             R(s, m) (recompute) next when the stage recomputes;
 *             SEND_B(s, m) right after when stage s-1 lives on another rank
 *             (after B, the input-gradient half, never after W).
 * A RECV's place in the list is where its data is waited on.  Consecutive
 * stages on one rank hand their tensors over locally, with no message.
 * Training programs end with one ALLREDUCE per stage held (only with
 * replicas, in descending stage order: the last stage's gradients are ready
 * first) and OPTIM.  Replica j's programs are pipeline rank p's, moved to
 * rank j*P + p with every peer moved the same way.
 */
#include "schedule.h"

#include <string.h>

typedef struct Out {
	ActList l;
	VEC(uint32_t) off;
	int track;              /* keep source offsets */
} Out;

static void emit(Out *o, int op, int stage, int mb, int peer, uint32_t off)
{
	actlist_push(&o->l, op, stage, mb, peer);
	if (o->track)
		VEC_PUSH(o->off, off);
}

void sched_lower(Schedule *s, const SchedSpec *spec)
{
	if (s->lowered)
		return;
	const unsigned char *rc = spec ? spec->recompute : NULL;
	int P = s->P, S = s->S;
	const int *sr = s->stage_rank;
	uint32_t **offs = NULL;
	if (s->src_off)
		offs = xalloc((size_t)s->nranks * sizeof *offs);

	for (int p = 0; p < P; p++) {
		const ActList *in = &s->rank[p];
		Out o = { .track = s->src_off != NULL };
		uint32_t off = 0;
		for (int i = 0; i < in->n; i++) {
			Action a = in->a[i];
			int st = a.stage, mb = a.mb;
			if (s->src_off)
				off = s->src_off[p][i];
			if (st < 0 || st >= S)
				die("lowering: stage %d out of range", st);
			switch (a.op) {
			case OP_F:
				if (st > 0 && sr[st - 1] != p)
					emit(&o, OP_RECV_F, st, mb, sr[st - 1], off);
				emit(&o, OP_F, st, mb, -1, off);
				if (st < S - 1 && sr[st + 1] != p)
					emit(&o, OP_SEND_F, st, mb, sr[st + 1], off);
				break;
			case OP_B:
				if (st < S - 1 && sr[st + 1] != p)
					emit(&o, OP_RECV_B, st, mb, sr[st + 1], off);
				if (rc && rc[st])
					emit(&o, OP_R, st, mb, -1, off);
				emit(&o, OP_B, st, mb, -1, off);
				o.l.a[o.l.n - 1].whole = a.whole;
				if (st > 0 && sr[st - 1] != p)
					emit(&o, OP_SEND_B, st, mb, sr[st - 1], off);
				break;
			case OP_W:
				emit(&o, OP_W, st, mb, -1, off);
				break;
			default:
				die("lowering: compute order holds %s", op_name(a.op));
			}
		}
		if (s->training) {
			if (s->R > 1)
				for (int st = S - 1; st >= 0; st--)
					if (sr[st] == p)
						emit(&o, OP_ALLREDUCE, st, -1, -1, off);
			emit(&o, OP_OPTIM, -1, -1, -1, off);
		}
		for (int rep = 0; rep < s->R; rep++) {
			int k = SCHED_RANK(s, rep, p);
			ActList *l = &s->rank[k];
			if (rep == 0) {
				*l = o.l;
			} else {
				l->n = l->cap = o.l.n;
				l->a = xalloc((size_t)(o.l.n ? o.l.n : 1) * sizeof *l->a);
				for (int i = 0; i < o.l.n; i++) {
					l->a[i] = o.l.a[i];
					if (l->a[i].peer >= 0)
						l->a[i].peer += rep * P;
				}
			}
			if (offs) {
				offs[k] = xalloc((size_t)(o.off.n ? o.off.n : 1) * sizeof **offs);
				if (o.off.n)
					memcpy(offs[k], o.off.v, (size_t)o.off.n * sizeof **offs);
			}
		}
	}
	if (offs)
		s->src_off = offs;
	s->lowered = 1;
}
