/* sched.c — the schedule IR's tables: op and kind names, action lists,
 * placement and the identity of messages. */
#include "schedule.h"

#include <string.h>

static const char *const op_names[] = {
#define X(name, str, torch, compute) str,
	PIPERT_OPS(X)
#undef X
};

static const char *const kind_names[] = {
#define X(e, s, v) s,
	SCHED_KINDS(X)
#undef X
};

const char *op_name(int op)
{
	if (op < 0 || op >= OP_COUNT)
		die("bad op %d", op);
	return op_names[op];
}

int sched_holder(const Schedule *s, int rep, int st, int mb)
{
	if (s->disagg)
		return (SCHED_ROUND(s, mb) > 0 ? s->P : 0) + s->stage_rank[st];
	return SCHED_RANK(s, rep, s->stage_rank[st]);
}

int sched_msg(const Schedule *s, int k, const Action *a, SchedMsg *m)
{
	int send = a->op == OP_SEND_F || a->op == OP_SEND_B || a->op == OP_SEND_TOK
	           || a->op == OP_SEND_KV;
	int src;
	switch (a->op) {
	case OP_SEND_F:
	case OP_RECV_F:
		src = send ? a->stage : a->stage - 1;
		*m = (SchedMsg){ SCHED_MSG_F, src + 1, src, a->mb, s->eval ? RT_TAG_DIR_EVAL : 0,
		                 0, 0, 0 };
		break;
	case OP_SEND_B:
	case OP_RECV_B:
		src = send ? a->stage : a->stage + 1;
		*m = (SchedMsg){ SCHED_MSG_B, src - 1, src, a->mb, 1, 0, 0, 0 };
		break;
	case OP_SEND_TOK:
	case OP_RECV_TOK:
		*m = (SchedMsg){ SCHED_MSG_TOK, 0, s->S - 1, a->mb, 0, 0, 0, 0 };
		break;
	case OP_SEND_KV:
	case OP_RECV_KV:
		*m = (SchedMsg){ SCHED_MSG_KV, a->stage, a->stage, a->mb, 1, 0, 0, 0 };
		break;
	default:
		return SCHED_MSG_NONE;
	}
	m->from = send ? k : a->peer;
	m->to = send ? a->peer : k;
	m->rep = s->disagg ? 0 : k / s->P;
	return send ? SCHED_MSG_SENDS : SCHED_MSG_RECEIVES;
}

int sched_msg_key(const Schedule *s, const SchedMsg *m)
{
	return SCHED_SLOT(s, m->rep, m->stage, m->mb);
}

const char *sched_op_label(const Schedule *s, const Action *a)
{
	if (s->kind == SK_GENERATE && a->op == OP_F && SCHED_ROUND(s, a->mb) > 0)
		return "DECODE";
	return op_name(a->op);
}

int op_from_name(const char *s)
{
	for (int i = 0; i < OP_COUNT; i++)
		if (strcmp(s, op_names[i]) == 0)
			return i;
	return -1;
}

const char *sched_kind_name(int kind)
{
	if (kind < 0 || kind >= SK_COUNT)
		die("bad schedule kind %d", kind);
	return kind_names[kind];
}

int sched_kind_from_name(const char *s)
{
	for (int i = 0; i < SK_COUNT; i++)
		if (strcmp(s, kind_names[i]) == 0)
			return i;
	return -1;
}

void actlist_push(ActList *l, int op, int stage, int mb, int peer)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 16;
		l->a = xrealloc(l->a, (size_t)l->cap * sizeof *l->a);
	}
	l->a[l->n++] = (Action){ op, stage, mb, peer, 0, 0 };
}

Schedule *sched_new(SchedKind kind, int P, int V, int M, int R, int training, int split)
{
	if (P < 1 || V < 1 || M < 1 || R < 1)
		die("bad schedule shape P=%d V=%d M=%d R=%d", P, V, M, R);
	Schedule *s = xalloc(sizeof *s);
	s->kind = kind;
	s->P = P;
	s->V = V;
	s->S = P * V;
	s->M = M;
	s->R = R;
	s->nranks = P * R;
	s->training = training;
	s->split = split;
	s->ntok = 1;
	s->stage_rank = xalloc((size_t)s->S * sizeof *s->stage_rank);
	for (int k = 0; k < s->S; k++)
		s->stage_rank[k] = k % P;
	s->rank = xalloc((size_t)s->nranks * sizeof *s->rank);
	return s;
}

const char *sched_action_desc(char *buf, size_t size, const Action *a)
{
	if (a->op < 0 || a->op >= OP_COUNT)
		snprintf(buf, size, "op %d stage %d mb %d", a->op, a->stage, a->mb);
	else if (a->op == OP_OPTIM)
		snprintf(buf, size, "OPTIM");
	else if (a->op == OP_ALLREDUCE)
		snprintf(buf, size, "ALLREDUCE stage %d", a->stage);
	else
		snprintf(buf, size, "%s stage %d mb %d", op_names[a->op], a->stage, a->mb);
	return buf;
}

const char *sched_label_of(int kind, int V, const char *path)
{
	if (kind == SK_INTERLEAVED || kind == SK_INTERLEAVED_ZB || kind == SK_LOOPED_BFS)
		return xprintf("%s(%d)", sched_kind_name(kind), V);
	if (kind == SK_FILE && path)
		return xprintf("file(\"%s\")", path);
	return sched_kind_name(kind);
}
