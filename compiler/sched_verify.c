/* sched_verify.c — the static verifier of lowered schedules.
 *
 * Four passes, each linear in the number of actions:
 *   1. each rank on its own, in program order: fields in range, the action
 *      on the rank that holds its stage, its inputs already there (an F has
 *      its RECV_F or the local F of the previous stage before it, a B its F
 *      and its RECV_B or local B of the next stage, W its B, R its F and not
 *      yet its B, a SEND the tensor it sends), nothing twice, ALLREDUCE and
 *      OPTIM after all the rank's backward work;
 *   2. every F (and B, W when training / split) of every replica, stage and
 *      micro-batch happens;
 *   3. every SEND has its RECV on the peer and every RECV its SEND;
 *      generate's token ring included (a decode round's F on the first
 *      stage needs the token its group's previous round picked);
 *   4. a run of all ranks on the schedule interpreter (sched_interp.h:
 *      the emitted programs' blocking semantics, a SEND never waits, a RECV
 *      waits for its SEND, an ALLREDUCE for every replica's).  Ranks left
 *      blocked are a deadlock, reported with the chain of who waits for whom;
 *      for pipedream-2bw a second run with every rank's OPTIM a collective
 *      (clip_grad_norm's global norm).
 * Messages are identified as sched_msg() says (schedule.h), in passes 1, 3
 * and 4 alike.
 * The first violation is reported and the rest not looked for.
 */
#include "sched_interp.h"

#include <stdarg.h>
#include <string.h>

typedef void (*Reporter)(const char *fmt, ...);

typedef struct Ver {
	const Schedule *s;
	Reporter report;
	int P, S, M, R;
	int nkeys;              /* R * S * M: SCHED_NSLOTS */
	/* per (replica, stage, micro-batch): action index where it happened, or -1 */
	int *f_at, *b_at, *w_at, *r_at;
	/* messages of each kind by sched_msg_key: rank and action index of the
	 * SEND ([0]) and of the RECV ([1]), or -1 */
	int *msg_rank[2][SCHED_MSG_KINDS], *msg_at[2][SCHED_MSG_KINDS];
	int groups;             /* generate: M groups, keys are t*groups + g */
	int *done;              /* [R*S] micro-batches whose backward work is finished */
	int *ar_at;             /* [R*S] index of the stage's ALLREDUCE, or -1 */
} Ver;

static int key(const Ver *v, int rep, int st, int mb)
{
	return SCHED_SLOT(v->s, rep, st, mb);
}

/* The rank whose RECV takes message kind (rep, stage, mb), or -1. */
static int received_by(const Ver *v, int kind, int rep, int st, int mb)
{
	return v->msg_rank[1][kind][key(v, rep, st, mb)];
}

static int *ints(int n, int fill)
{
	int *p = xalloc((size_t)(n > 0 ? n : 1) * sizeof *p);
	for (int i = 0; i < n; i++)
		p[i] = fill;
	return p;
}

/* Reports "rank K, action I (DESC): REASON"; i == n means the end of the
 * rank's program. */
PRINTF_LIKE(4, 5)
static int fail(const Ver *v, int k, int i, const char *fmt, ...)
{
	const Schedule *s = v->s;
	const ActList *l = &s->rank[k];
	char desc[96], why[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	if (i < l->n)
		sched_action_desc(desc, sizeof desc, &l->a[i]);
	else
		snprintf(desc, sizeof desc, "end of program");
	if (s->src) {
		uint32_t off = s->src_off && l->n > 0 ? s->src_off[k][i < l->n ? i : l->n - 1] : 0;
		uint32_t end = off;
		while (end < s->src->len && s->src->text[end] != ','
		       && s->src->text[end] != '\n' && s->src->text[end] != '\r')
			end++;
		diag_error((Loc){ s->src, off, end }, "rank %d, action %d (%s): %s",
		           k, i, desc, why);
	} else if (v->report) {
		v->report("rank %d, action %d (%s): %s", k, i, desc, why);
	}
	return -1;
}

static int check_peer(const Ver *v, int k, int i, const Action *a, int want, const char *role)
{
	if (a->peer != want)
		return fail(v, k, i, "peer is rank %d, but stage %d (the %s) is on rank %d",
		            a->peer, a->op == OP_SEND_F || a->op == OP_RECV_B ? a->stage + 1
		            : a->stage - 1, role, want);
	return 0;
}

/* Records rank k's action i as the SEND or the RECV of its message;
 * fails if the message already has one. */
static int note_msg(Ver *v, int k, int i, const Action *a)
{
	SchedMsg m;
	int side = sched_msg(v->s, k, a, &m) == SCHED_MSG_RECEIVES;
	int kk = sched_msg_key(v->s, &m);
	if (v->msg_rank[side][m.kind][kk] >= 0)
		return fail(v, k, i, "%s twice (first at action %d)", side ? "received" : "sent",
		            v->msg_at[side][m.kind][kk]);
	v->msg_rank[side][m.kind][kk] = k;
	v->msg_at[side][m.kind][kk] = i;
	return 0;
}

/* Asynchronous schedules (sched_async.c): weight versions on one rank,
 * checked in program order.  slot_holds[j] is the number of updates in the
 * weights of slot j; every F must compute with the version the spec gives
 * its micro-batch, its R and B with the very buffer its F used, unchanged;
 * an OPTIM adds one update to the newest weights and may only overwrite a
 * slot no micro-batch in flight still reads; every backward sees the
 * gradient buffer holding nothing but what it should add to (pipedream:
 * all earlier micro-batches applied; 2bw: all earlier steps). */
typedef struct Async {
	int p, nver, lag;
	int *slot_holds;        /* [nver] */
	int *readers;           /* [nver] micro-batches in flight on the slot */
	int *f_slot;            /* [keys] slot an F used, -1 */
	int updates, newest;    /* OPTIMs so far; the slot holding them */
} Async;

static void async_begin(const Ver *v, Async *as, int p)
{
	as->p = p;
	as->nver = v->s->nver[p];
	as->lag = v->s->lag[p];
	as->slot_holds = ints(as->nver, 0);
	as->readers = ints(as->nver, 0);
	as->f_slot = ints(v->M, -1);
}

/* The updates the spec puts in the weights key k computes with. */
static int async_expected(const Schedule *s, const Async *as, int k)
{
	int v = s->kind == SK_2BW ? k / s->M - 1 : k - as->lag;
	return v > 0 ? v : 0;
}

static int check_async(Ver *v, Async *as, int k, int i, const Action *a)
{
	const Schedule *s = v->s;
	int mb = a->mb, slot = sched_async_slot(s, as->p, a->ver);
	switch (a->op) {
	case OP_F: {
		int want = async_expected(s, as, mb);
		if (as->slot_holds[slot] != want)
			return fail(v, k, i, "computes with weight version %d (slot %d holds %d "
			            "updates), but micro-batch %d must see %d updates", a->ver, slot,
			            as->slot_holds[slot], mb, want);
		as->f_slot[mb] = slot;
		as->readers[slot]++;
		return 0;
	}
	case OP_R:
	case OP_B:
		if (as->f_slot[mb] < 0)
			return 0;       /* the generic pass reports the missing F */
		if (slot != as->f_slot[mb])
			return fail(v, k, i, "computes with the weights of slot %d, but its forward "
			            "used slot %d: no weight stashing", slot, as->f_slot[mb]);
		if (a->op == OP_B) {
			int applied = s->kind == SK_2BW ? mb / s->M : mb;
			if (as->updates != applied)
				return fail(v, k, i, "the gradient buffer holds %s: %d updates applied "
				            "before this backward, %d expected", as->updates < applied
				            ? "an earlier gradient not yet applied"
				            : "nothing of an update applied too early",
				            as->updates, applied);
			as->readers[slot]--;
		}
		return 0;
	case OP_OPTIM: {
		int step_end = s->kind == SK_2BW ? mb % s->M == s->M - 1 : 1;
		int idx = s->kind == SK_2BW ? mb / s->M : mb;
		if (!step_end || as->updates != idx)
			return fail(v, k, i, "applies the gradient of %s %d, but %d updates were "
			            "applied before it", s->kind == SK_2BW ? "step" : "micro-batch",
			            idx, as->updates);
		if (v->b_at[key(v, 0, as->p, mb)] < 0)
			return fail(v, k, i, "applies a gradient whose backward (B stage %d mb %d) "
			            "has not run", as->p, mb);
		if (as->readers[slot] > 0)
			return fail(v, k, i, "overwrites weight slot %d while %d micro-batch%s in "
			            "flight still compute%s with it (more versions alive than the %d "
			            "planned)", slot, as->readers[slot], as->readers[slot] == 1 ? "" : "es",
			            as->readers[slot] == 1 ? "s" : "", as->nver);
		if (a->ver != as->updates + 1)
			return fail(v, k, i, "writes version %d, but the next version is %d", a->ver,
			            as->updates + 1);
		as->updates++;
		as->slot_holds[slot] = as->updates;
		as->newest = slot;
		return 0;
	}
	default:
		return 0;
	}
}

static int async_end(Ver *v, Async *as, int k)
{
	const Schedule *s = v->s;
	int want = s->kind == SK_2BW ? s->ntok : v->M;
	if (as->updates != want)
		return fail(v, k, s->rank[k].n, "%d optimizer updates, but the run has %d %s",
		            as->updates, want, s->kind == SK_2BW ? "steps" : "micro-batches");
	return 0;
}

/* Pass 1: rank k on its own. */
static int check_rank(Ver *v, int k)
{
	const Schedule *s = v->s;
	const ActList *l = &s->rank[k];
	int P = v->P, S = v->S, M = v->M;
	int rep = s->disagg ? 0 : k / P, p = k % P;
	const int *sr = s->stage_rank;
	int optim_at = -1;
	Async as = { 0 };
	if (s->async)
		async_begin(v, &as, p);

	for (int i = 0; i < l->n; i++) {
		const Action *a = &l->a[i];
		int op = a->op, st = a->stage, mb = a->mb;
		if (op < 0 || op >= OP_COUNT)
			return fail(v, k, i, "unknown op %d", op);
		int compute = op == OP_F || op == OP_B || op == OP_W || op == OP_R;
		int tok = op == OP_SEND_TOK || op == OP_RECV_TOK;
		int kvop = op == OP_SEND_KV || op == OP_RECV_KV;
		int comm = (op >= OP_SEND_F && op <= OP_RECV_B) || tok || kvop;
		if (op == OP_OPTIM) {
			if (st != -1 || a->peer != -1 || (s->async ? mb < 0 || mb >= M : mb != -1))
				return fail(v, k, i, s->async ? "OPTIM carries stage -1, peer -1 and "
				            "the micro-batch whose gradient it applies"
				            : mb >= 0 && st == -1 && a->peer == -1
				            ? "OPTIM carries stage -1, micro-batch -1 and peer -1: a "
				              "synchronous schedule updates once, after the step (an "
				              "OPTIM per micro-batch is pipedream's, which a schedule "
				              "file cannot express)"
				            : "OPTIM carries stage -1, micro-batch -1 and peer -1");
		} else {
			if (st < 0 || st >= S)
				return fail(v, k, i, "stage %d is out of range (stages 0..%d)",
				            st, S - 1);
			/* a received token or cache serves the next round */
			int acting = op == OP_RECV_TOK || op == OP_RECV_KV ? mb + v->groups : mb;
			if (op != OP_ALLREDUCE && (mb < 0 || mb >= M))
				return fail(v, k, i, "micro-batch %d is out of range (0..%d)",
				            mb, M - 1);
			if (sched_holder(s, rep, st, acting) != k)
				return fail(v, k, i, "stage %d is not on this rank (it is on "
				            "rank %d)", st, sched_holder(s, rep, st, acting));
			if (op == OP_ALLREDUCE) {
				if (mb != -1 || a->peer != -1)
					return fail(v, k, i, "ALLREDUCE carries micro-batch -1 "
					            "and peer -1");
			} else if (mb < 0 || mb >= M) {
				return fail(v, k, i, "micro-batch %d is out of range (0..%d)",
				            mb, M - 1);
			}
		}
		if (compute && a->peer != -1)
			return fail(v, k, i, "%s takes no peer, but peer is %d",
			            op_name(op), a->peer);
		if (comm && (a->peer < 0 || a->peer >= s->nranks))
			return fail(v, k, i, "peer %d is not a rank (0..%d)", a->peer,
			            s->nranks - 1);
		if (!s->training && op != OP_F && op != OP_SEND_F && op != OP_RECV_F
		    && !(tok && s->kind == SK_GENERATE) && !(kvop && s->disagg))
			return fail(v, k, i, "a forward-only schedule has no %s", op_name(op));
		if (op == OP_W && !s->split)
			return fail(v, k, i, "W in a schedule whose backward is not split");
		if (!s->async && optim_at >= 0 && op != OP_OPTIM)
			return fail(v, k, i, "runs after OPTIM (at action %d): the optimizer "
			            "step must be the rank's last action", optim_at);

		int kk = op == OP_OPTIM || op == OP_ALLREDUCE ? -1 : key(v, rep, st, mb);
		int rs = rep * S + st;
		if (s->async && (op == OP_F || op == OP_R || op == OP_B)
		    && check_async(v, &as, k, i, a))
			return -1;
		switch (op) {
		case OP_F:
			if (v->f_at[kk] >= 0)
				return fail(v, k, i, "micro-batch %d of stage %d runs F twice "
				            "(first at action %d)", mb, st, v->f_at[kk]);
			if (st > 0) {
				int prev = key(v, rep, st - 1, mb);
				int here = sched_holder(s, rep, st - 1, mb) == k;
				int local = here && v->f_at[prev] >= 0;
				if (!local && received_by(v, SCHED_MSG_F, rep, st, mb) != k) {
					if (here)
						return fail(v, k, i, "its input is not ready: F of stage "
						            "%d mb %d has not run on this rank before it",
						            st - 1, mb);
					return fail(v, k, i, "its input never arrives: no RECV_F of "
					            "stage %d mb %d before it (stage %d is on rank %d)",
					            st, mb, st - 1, sched_holder(s, rep, st - 1, mb));
				}
			}
			if (s->disagg && mb / v->groups == 1) {
				/* the first decode round starts from the prefill's caches */
				if (received_by(v, SCHED_MSG_KV, rep, st, mb - v->groups) != k)
					return fail(v, k, i, "its caches never arrive: no RECV_KV of "
					            "stage %d group %d before it", st, mb % v->groups);
			}
			if (st == 0 && s->kind == SK_GENERATE && mb >= v->groups) {
				/* a decode round: its token comes round the ring */
				int prev = key(v, rep, S - 1, mb - v->groups);
				int local = sched_holder(s, rep, S - 1, mb - v->groups) == k
				            && v->f_at[prev] >= 0;
				if (!local && received_by(v, SCHED_MSG_TOK, rep, 0, mb - v->groups) != k)
					return fail(v, k, i, "its token never arrives: no RECV_TOK of "
					            "group %d round %d before it", mb % v->groups,
					            mb / v->groups - 1);
			}
			v->f_at[kk] = i;
			break;
		case OP_SEND_TOK:
			if (st != S - 1)
				return fail(v, k, i, "only the last stage sends tokens");
			if (v->f_at[kk] < 0)
				return fail(v, k, i, "sends a token that is not picked yet: F of "
				            "stage %d mb %d has not run before it", st, mb);
			if (mb / v->groups >= s->ntok - 1)
				return fail(v, k, i, "the last round's token goes nowhere");
			if (a->peer != sched_holder(s, rep, 0, mb + v->groups))
				return fail(v, k, i, "peer is rank %d, but the next round's stage 0 is "
				            "on rank %d", a->peer, sched_holder(s, rep, 0, mb + v->groups));
			if (note_msg(v, k, i, a))
				return -1;
			break;
		case OP_RECV_TOK:
			if (st != 0)
				return fail(v, k, i, "only the first stage receives tokens");
			if (a->peer != sched_holder(s, rep, S - 1, mb))
				return fail(v, k, i, "peer is rank %d, but stage %d is on rank %d",
				            a->peer, S - 1, sched_holder(s, rep, S - 1, mb));
			if (note_msg(v, k, i, a))
				return -1;
			break;
		case OP_SEND_KV:
			if (!s->disagg || mb >= v->groups)
				return fail(v, k, i, "caches are handed over only from a disaggregated "
				            "prefill (round 0)");
			if (v->f_at[kk] < 0)
				return fail(v, k, i, "sends caches not built yet: F of stage %d group %d "
				            "has not run before it", st, mb);
			if (a->peer != sched_holder(s, rep, st, mb + v->groups))
				return fail(v, k, i, "peer is rank %d, but stage %d decodes on rank %d",
				            a->peer, st, sched_holder(s, rep, st, mb + v->groups));
			if (note_msg(v, k, i, a))
				return -1;
			break;
		case OP_RECV_KV:
			if (!s->disagg || mb >= v->groups)
				return fail(v, k, i, "caches are handed over only from a disaggregated "
				            "prefill (round 0)");
			if (a->peer != sched_holder(s, rep, st, mb))
				return fail(v, k, i, "peer is rank %d, but stage %d prefills on rank %d",
				            a->peer, st, sched_holder(s, rep, st, mb));
			if (note_msg(v, k, i, a))
				return -1;
			break;
		case OP_B:
			if (v->b_at[kk] >= 0)
				return fail(v, k, i, "micro-batch %d of stage %d runs B twice "
				            "(first at action %d)", mb, st, v->b_at[kk]);
			if (v->f_at[kk] < 0)
				return fail(v, k, i, "backward before its forward: F of stage %d "
				            "mb %d has not run before it", st, mb);
			if (st < S - 1) {
				int next = key(v, rep, st + 1, mb);
				int local = sr[st + 1] == p && v->b_at[next] >= 0;
				if (!local && received_by(v, SCHED_MSG_B, rep, st, mb) != k) {
					if (sr[st + 1] == p)
						return fail(v, k, i, "its output gradient is not ready: "
						            "B of stage %d mb %d has not run on this rank "
						            "before it", st + 1, mb);
					return fail(v, k, i, "its output gradient never arrives: no "
					            "RECV_B of stage %d mb %d before it (stage %d is on "
					            "rank %d)", st, mb, st + 1,
					            SCHED_RANK(s, rep, sr[st + 1]));
				}
			}
			v->b_at[kk] = i;
			if (!s->split)
				v->done[rs]++;
			break;
		case OP_W:
			if (v->w_at[kk] >= 0)
				return fail(v, k, i, "micro-batch %d of stage %d runs W twice "
				            "(first at action %d)", mb, st, v->w_at[kk]);
			if (v->b_at[kk] < 0)
				return fail(v, k, i, "W before its B: B of stage %d mb %d has not "
				            "run before it", st, mb);
			v->w_at[kk] = i;
			v->done[rs]++;
			break;
		case OP_R:
			if (v->r_at[kk] >= 0)
				return fail(v, k, i, "micro-batch %d of stage %d recomputes twice "
				            "(first at action %d)", mb, st, v->r_at[kk]);
			if (v->f_at[kk] < 0)
				return fail(v, k, i, "recompute before its forward: F of stage %d "
				            "mb %d has not run before it", st, mb);
			if (v->b_at[kk] >= 0)
				return fail(v, k, i, "recompute after its backward: B of stage %d "
				            "mb %d already ran at action %d", st, mb, v->b_at[kk]);
			v->r_at[kk] = i;
			break;
		case OP_SEND_F:
			if (st == S - 1)
				return fail(v, k, i, "the last stage has no next stage to send to");
			if (v->f_at[kk] < 0)
				return fail(v, k, i, "sends activations that do not exist yet: F "
				            "of stage %d mb %d has not run before it", st, mb);
			if (check_peer(v, k, i, a, sched_holder(s, rep, st + 1, mb), "receiver"))
				return -1;
			if (note_msg(v, k, i, a))
				return -1;
			break;
		case OP_SEND_B:
			if (st == 0)
				return fail(v, k, i, "the first stage has no previous stage to "
				            "send to");
			if (v->b_at[kk] < 0)
				return fail(v, k, i, "sends a gradient that does not exist yet: B "
				            "of stage %d mb %d has not run before it", st, mb);
			if (check_peer(v, k, i, a, sched_holder(s, rep, st - 1, mb), "receiver"))
				return -1;
			if (note_msg(v, k, i, a))
				return -1;
			break;
		case OP_RECV_F:
			if (st == 0)
				return fail(v, k, i, "the first stage receives no activations");
			if (check_peer(v, k, i, a, sched_holder(s, rep, st - 1, mb), "sender")
			    || note_msg(v, k, i, a))
				return -1;
			break;
		case OP_RECV_B:
			if (st == S - 1)
				return fail(v, k, i, "the last stage receives no gradient");
			if (check_peer(v, k, i, a, sched_holder(s, rep, st + 1, mb), "sender")
			    || note_msg(v, k, i, a))
				return -1;
			break;
		case OP_ALLREDUCE:
			if (v->ar_at[rs] >= 0)
				return fail(v, k, i, "stage %d is all-reduced twice (first at "
				            "action %d)", st, v->ar_at[rs]);
			if (v->done[rs] < M)
				return fail(v, k, i, "ALLREDUCE before the backward work of stage "
				            "%d is done (%d of %d micro-batches finished)",
				            st, v->done[rs], M);
			v->ar_at[rs] = i;
			break;
		case OP_OPTIM:
			if (s->async) {
				if (check_async(v, &as, k, i, a))
					return -1;
				break;
			}
			if (optim_at >= 0)
				return fail(v, k, i, "OPTIM twice (first at action %d)", optim_at);
			for (int t = 0; t < S; t++) {
				if (sr[t] != p)
					continue;
				if (v->done[rep * S + t] < M) {
					int mb = 0;
					const char *what = "B";
					for (; mb < M; mb++) {
						int kk2 = key(v, rep, t, mb);
						if (v->b_at[kk2] < 0)
							break;
						if (s->split && v->w_at[kk2] < 0) {
							what = "W";
							break;
						}
					}
					return fail(v, k, i, "OPTIM before all backward work: micro-batch "
					            "%d of stage %d has not run %s before it (%d of %d "
					            "micro-batches finished)", mb, t, what,
					            v->done[rep * S + t], M);
				}
				if (v->R > 1 && v->ar_at[rep * S + t] < 0)
					return fail(v, k, i, "OPTIM before the ALLREDUCE of stage %d "
					            "(replicas must sum their gradients first)", t);
			}
			optim_at = i;
			break;
		default:
			unreachable();
		}
	}
	if (s->async)
		return async_end(v, &as, k);
	if (s->training && optim_at < 0)
		return fail(v, k, l->n, "no OPTIM: a training step ends with the "
		            "optimizer step");
	return 0;
}

/* Pass 2: every forward (and backward) happens. */
static int check_complete(Ver *v)
{
	const Schedule *s = v->s;
	for (int rep = 0; rep < v->R; rep++)
		for (int st = 0; st < v->S; st++) {
			for (int mb = 0; mb < v->M; mb++) {
				int k = sched_holder(s, rep, st, mb);
				int kk = key(v, rep, st, mb);
				const char *what = v->f_at[kk] < 0 ? "F"
					: s->training && v->b_at[kk] < 0 ? "B"
					: s->split && v->w_at[kk] < 0 ? "W" : NULL;
				if (what)
					return fail(v, k, s->rank[k].n, "micro-batch %d of stage %d "
					            "never runs %s", mb, st, what);
			}
		}
	return 0;
}

/* The op at the other end of a message action's message. */
static int other_end(int op)
{
	switch (op) {
	case OP_SEND_F: return OP_RECV_F;
	case OP_RECV_F: return OP_SEND_F;
	case OP_SEND_B: return OP_RECV_B;
	case OP_RECV_B: return OP_SEND_B;
	case OP_SEND_TOK: return OP_RECV_TOK;
	case OP_RECV_TOK: return OP_SEND_TOK;
	case OP_SEND_KV: return OP_RECV_KV;
	case OP_RECV_KV: return OP_SEND_KV;
	default: unreachable();
	}
}

/* Pass 3: every SEND has its RECV and every RECV its SEND. */
static int check_matching(Ver *v)
{
	const Schedule *s = v->s;
	for (int k = 0; k < s->nranks; k++) {
		const ActList *l = &s->rank[k];
		for (int i = 0; i < l->n; i++) {
			const Action *a = &l->a[i];
			SchedMsg m;
			int io = sched_msg(s, k, a, &m);
			if (io == SCHED_MSG_NONE)
				continue;
			int side = io == SCHED_MSG_RECEIVES;
			if (v->msg_rank[!side][m.kind][sched_msg_key(s, &m)] >= 0)
				continue;
			/* the missing action, as the peer would carry it */
			char what[64];
			int st = side ? m.src : m.stage;
			if (m.kind == SCHED_MSG_TOK)
				snprintf(what, sizeof what, "mb %d", m.mb);
			else
				snprintf(what, sizeof what, m.kind == SCHED_MSG_KV ? "stage %d group %d"
				         : "stage %d mb %d", st, m.mb);
			return fail(v, k, i, "nobody %s it: rank %d has no %s of %s",
			            side ? "sends" : "receives", a->peer,
			            op_name(other_end(a->op)), what);
		}
	}
	return 0;
}

/* Pass 4: the interpreter's run; ranks left blocked are a deadlock,
 * reported with the chain of who waits for whom.  global_optim: every
 * rank's n-th OPTIM is one collective too (sched_interp.h). */
static int check_deadlock(Ver *v, int global_optim)
{
	const Schedule *s = v->s;
	int n = s->nranks;
	SchedInterp *it = sched_interp_new(s);
	it->global_optim = global_optim;
	int nblocked = sched_interp_run(it, NULL, NULL);
	const int *pc = it->pc;
	for (int k = 0; k < n && nblocked > 0; k++) {
		if (pc[k] >= s->rank[k].n)
			continue;
		/* Follow who waits for whom from the first blocked rank. */
		char chain[768];
		size_t len = 0;
		int *seen = ints(n, 0);
		int cur = k, hops = 0;
		chain[0] = 0;
		while (cur >= 0 && !seen[cur] && pc[cur] < s->rank[cur].n && hops < 8) {
			seen[cur] = 1;
			int next = sched_interp_waits_for(it, cur);
			char d[96];
			sched_action_desc(d, sizeof d, &s->rank[cur].a[pc[cur]]);
			if (len < sizeof chain)
				len += (size_t)snprintf(chain + len, sizeof chain - len,
				                        "%srank %d waits at action %d (%s) for rank %d",
				                        hops ? "; " : "", cur, pc[cur], d, next);
			cur = next;
			hops++;
		}
		if (cur >= 0 && seen[cur] && len < sizeof chain)
			snprintf(chain + len, sizeof chain - len, " (a cycle)");
		const Action *a = &s->rank[k].a[pc[k]];
		const char *what = a->op == OP_OPTIM ? "every rank's OPTIM"
			: a->op == OP_ALLREDUCE ? "every replica's ALLREDUCE"
			: a->op == OP_RECV_F ? "its SEND_F" : a->op == OP_RECV_TOK ? "its SEND_TOK"
			: a->op == OP_RECV_KV ? "its SEND_KV"
			: "its SEND_B";
		return fail(v, k, pc[k], "deadlock%s: waits forever for %s; %d rank%s "
		            "blocked: %s", global_optim ? " when every rank's OPTIM is one "
		            "collective (clip_grad_norm's global norm)" : "", what, nblocked,
		            nblocked == 1 ? "" : "s", chain);
	}
	return 0;
}

int sched_verify(const Schedule *s, void (*report)(const char *fmt, ...))
{
	if (!s->lowered)
		die("verifying a schedule that was not lowered");
	/* generate: every round of every group is a key of its own */
	Ver v = { .s = s, .report = report, .P = s->P, .S = s->S, .M = SCHED_KEYS(s),
	          .R = s->R, .groups = s->M };
	if (s->nranks != s->P * s->R * (1 + s->disagg))
		die("schedule has %d ranks, not P*R = %d", s->nranks, s->P * s->R);
	v.nkeys = SCHED_NSLOTS(s);
	v.f_at = ints(v.nkeys, -1);
	v.b_at = ints(v.nkeys, -1);
	v.w_at = ints(v.nkeys, -1);
	v.r_at = ints(v.nkeys, -1);
	for (int side = 0; side < 2; side++)
		for (int kind = 0; kind < SCHED_MSG_KINDS; kind++) {
			v.msg_rank[side][kind] = ints(v.nkeys, -1);
			v.msg_at[side][kind] = ints(v.nkeys, -1);
		}
	v.done = ints(s->R * s->S, 0);
	v.ar_at = ints(s->R * s->S, -1);

	for (int k = 0; k < s->nranks; k++)
		if (check_rank(&v, k))
			return -1;
	if (check_complete(&v) || check_matching(&v) || check_deadlock(&v, 0))
		return -1;
	/* clip_grad_norm makes each step's OPTIM a collective of all ranks;
	 * flushing schedules end with it, but pipedream-2bw runs OPTIM amid
	 * the next step's forwards (sema_pipe.c says why it cannot block) */
	if (s->kind == SK_2BW && check_deadlock(&v, 1))
		return -1;
	return 0;
}
