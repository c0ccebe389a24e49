/* sched_gen.c — one generator per schedule kind.
 *
 * A generator writes, for every pipeline rank 0..P-1, the COMPUTE order
 * only: F (forward), B (backward; the input-gradient half when the schedule
 * splits it) and W (weight gradient).  It knows nothing of messages, the
 * optimizer or replicas: sched_lower() adds those, so a new schedule is one
 * short function here.
 *
 * Forward-only programs (no optimizer, or the `inference` schedule) keep
 * each schedule's forward order and drop its backward work: for naive,
 * gpipe, 1f1b and zb-h1 that is F(0), F(1), ... F(M-1) on every rank (a
 * forward-only `naive` therefore streams like `inference`: nothing but a
 * backward pass could hold micro-batch 1 back until micro-batch 0 has left
 * the last stage); for interleaved it is Megatron's forward-only chunk order.
 */
#include "schedule.h"

static void F(Schedule *s, int r, int stage, int mb)
{
	actlist_push(&s->rank[r], OP_F, stage, mb, -1);
}

static void B(Schedule *s, int r, int stage, int mb)
{
	actlist_push(&s->rank[r], OP_B, stage, mb, -1);
}

static void W(Schedule *s, int r, int stage, int mb)
{
	actlist_push(&s->rank[r], OP_W, stage, mb, -1);
}

static int imin(int a, int b)
{
	return a < b ? a : b;
}

/* Forward-only: every rank streams the micro-batches in order. */
static void gen_forward_only(Schedule *s)
{
	for (int r = 0; r < s->P; r++)
		for (int mb = 0; mb < s->M; mb++)
			F(s, r, r, mb);
}

/* naive: micro-batch m goes forward through every stage and back before
 * m+1 starts.  Rank r's order is F(0) B(0) F(1) B(1) ...; rank 0 cannot
 * start F(1) before B(0), which waits for the whole round trip, so the
 * messages alone serialise the micro-batches. */
static void gen_naive(Schedule *s)
{
	for (int r = 0; r < s->P; r++)
		for (int mb = 0; mb < s->M; mb++) {
			F(s, r, r, mb);
			B(s, r, r, mb);
		}
}

/* gpipe: all forwards, then all backwards in ascending micro-batch order
 * (as torch's ScheduleGPipe), then the flush. */
static void gen_gpipe(Schedule *s)
{
	for (int r = 0; r < s->P; r++) {
		for (int mb = 0; mb < s->M; mb++)
			F(s, r, r, mb);
		for (int mb = 0; mb < s->M; mb++)
			B(s, r, r, mb);
	}
}

/* 1f1b (PipeDream-Flush, Megatron's non-interleaved schedule, torch's
 * Schedule1F1B): rank r runs w = min(P-1-r, M) warm-up forwards, then
 * alternates F(w+i), B(i) while forwards remain, then drains the last w
 * backwards.  At most min(P-r, M) micro-batches are in flight on rank r. */
static void gen_1f1b(Schedule *s)
{
	for (int r = 0; r < s->P; r++) {
		int w = imin(s->P - 1 - r, s->M);
		for (int i = 0; i < w; i++)
			F(s, r, r, i);
		for (int i = 0; i < s->M - w; i++) {
			F(s, r, r, w + i);
			B(s, r, r, i);
		}
		for (int i = s->M - w; i < s->M; i++)
			B(s, r, r, i);
	}
}

/* zb-h1 (Qi et al., "Zero Bubble Pipeline Parallelism", 2023, figure 3;
 * torch's zero-bubble 1F1B rank order with one stage per rank): the 1F1B
 * order of F and B (B being only the input gradient), with the weight
 * gradients W following in micro-batch order but rank r holding back its
 * first r of them.  The last rank, which has no warm-up, postpones most, so
 * its input gradients reach upstream sooner; the held-back W's later fill
 * the drain, where 1F1B leaves every rank but the first waiting.  A
 * micro-batch stays in flight until its W: rank r peaks at
 * (P-1-r) + 1 + r = P, capped by M, i.e. never above 1F1B's rank 0.  With
 * F = B = W the bubble is (P-1) / (3M + P-1) of the step when M >= P,
 * a third of 1F1B's (P-1) / (M + P-1) in absolute time. */
static void gen_zbh1(Schedule *s)
{
	for (int r = 0; r < s->P; r++) {
		int w = imin(s->P - 1 - r, s->M);
		int nb = 0, nw = 0;
		for (int i = 0; i < w; i++)
			F(s, r, r, i);
		for (int i = 0; i < s->M; i++) {
			if (i < s->M - w)
				F(s, r, r, w + i);
			B(s, r, r, i);
			if (++nb > r)
				W(s, r, r, nw++);
		}
		while (nw < s->M)
			W(s, r, r, nw++);
	}
}

/* zb-h2 (Qi et al., 2023, §2.2 and figure 4): zb-h1 with more warm-up
 * forwards and the weight gradients moved to the tail.  Rank r runs
 * 2(P-1-r)+1 forwards before its first B (capped by M), which fills the
 * time until that B's gradient arrives from the last rank; then, per
 * micro-batch, B, W and the next F, with rank r holding back its first 2r
 * W's until the end.  With F = B = W and free messages every rank then works
 * without a gap from its first F to its last W (a parallelogram instead of
 * 1F1B's trapezoid).  In flight: 2(P-1-r)+1 + 2r = 2P-1 micro-batches at
 * most on every rank (capped by M), twice 1F1B's rank 0 less one. */
static void gen_zbh2(Schedule *s)
{
	for (int r = 0; r < s->P; r++) {
		int w = imin(2 * (s->P - 1 - r) + 1, s->M), nf = 0, nw = 0;
		while (nf < w)
			F(s, r, r, nf++);
		for (int i = 0; i < s->M; i++) {
			B(s, r, r, i);
			if (i >= 2 * r)
				W(s, r, r, nw++);
			if (nf < s->M)
				F(s, r, r, nf++);
		}
		while (nw < s->M)
			W(s, r, r, nw++);
	}
}

/* interleaved(V): Megatron's forward_backward_pipelining_with_interleaving
 * (and torch's ScheduleInterleaved1F1B).  Rank r holds chunks c = 0..V-1,
 * chunk c being global stage c*P + r.  Its V*M forward (and backward) steps
 * k = 0.. visit the chunks in groups of P micro-batches:
 *   forward chunk(k)  = (k mod PV) div P,  backward chunk = V-1 - that,
 *   micro-batch(k)    = (k div PV) * P + k mod P   (needs M % P == 0).
 * Warm-up: (V-1)*P + 2*(P-1-r) forwards (capped at VM), then one forward and
 * one backward per step, then the remaining backwards.  Unlike Megatron we
 * do not switch to all-forwards-then-all-backwards when M == P (torch does
 * not either); the bubble is the same. */
static void gen_interleaved(Schedule *s)
{
	int P = s->P, V = s->V, total = V * s->M;
	for (int r = 0; r < P; r++) {
#define CHUNK_F(k) (((k) % (P * V)) / P)
#define MB(k) (((k) / (P * V)) * P + (k) % P)
		int w = s->training ? imin((V - 1) * P + 2 * (P - 1 - r), total) : total;
		for (int k = 0; k < w; k++)
			F(s, r, CHUNK_F(k) * P + r, MB(k));
		if (!s->training)
			continue;
		for (int k = 0; k < total - w; k++) {
			int kf = k + w;
			F(s, r, CHUNK_F(kf) * P + r, MB(kf));
			B(s, r, (V - 1 - CHUNK_F(k)) * P + r, MB(k));
		}
		for (int k = total - w; k < total; k++)
			B(s, r, (V - 1 - CHUNK_F(k)) * P + r, MB(k));
#undef CHUNK_F
#undef MB
	}
}

/* zb-v: zero-bubble V (Qi et al., "Pipeline Parallelism with Controllable
 * Memory", 2024; torch's ScheduleZBVZeroBubble).  Rank r holds chunk 0 =
 * stage r and chunk 1 = stage 2P-1-r, so the pipeline runs down the ranks
 * and back up: the last rank holds the turn (stages P-1 and P) and hands it
 * over locally.  Backward is split (B = input gradient, W = weights).  Per
 * rank: warm-up 2(P-r)-1 chunk-0 forwards, r pairs (F1, F0), P-r triples
 * (F1, B1, W1); then steady (F0, B0, W0, F1, B1, W1) rounds; then cool-down
 * B's with W's deferred to the end.  The order is generated for
 * max(M, 2P-1) micro-batches and the ones past M dropped, as torch does. */
static void zbv_push(Schedule *s, int r, int op, int stage, int mb)
{
	if (mb < s->M)
		actlist_push(&s->rank[r], op, stage, mb, -1);
}

void sched_zbv_placement(int P, int *stage_rank)
{
	for (int r = 0; r < P; r++) {
		stage_rank[r] = r;
		stage_rank[2 * P - 1 - r] = r;
	}
}

static void gen_zbv(Schedule *s)
{
	int P = s->P, n = s->M > 2 * P - 1 ? s->M : 2 * P - 1;
	sched_zbv_placement(P, s->stage_rank);
	for (int r = 0; r < P; r++) {
		int c0 = r, c1 = 2 * P - 1 - r;
		int f0 = 0, f1 = 0, b0 = 0, b1 = 0;
		if (!s->training) {     /* forward only: down, then back up */
			for (int mb = 0; mb < s->M; mb++)
				zbv_push(s, r, OP_F, c0, mb);
			for (int mb = 0; mb < s->M; mb++)
				zbv_push(s, r, OP_F, c1, mb);
			continue;
		}
		for (int i = 0; i < 2 * (P - r) - 1; i++)
			zbv_push(s, r, OP_F, c0, f0++);
		for (int i = 0; i < r; i++) {
			zbv_push(s, r, OP_F, c1, f1++);
			zbv_push(s, r, OP_F, c0, f0++);
		}
		for (int i = 0; i < P - r; i++) {
			zbv_push(s, r, OP_F, c1, f1++);
			zbv_push(s, r, OP_B, c1, b1);
			zbv_push(s, r, OP_W, c1, b1++);
		}
		while (f1 < f0 || f0 < n) {
			if (f0 < n)
				zbv_push(s, r, OP_F, c0, f0++);
			zbv_push(s, r, OP_B, c0, b0);
			zbv_push(s, r, OP_W, c0, b0++);
			zbv_push(s, r, OP_F, c1, f1++);
			zbv_push(s, r, OP_B, c1, b1);
			zbv_push(s, r, OP_W, c1, b1++);
		}
		int w0 = b0, w1 = b1;
		for (int i = 0; i < r; i++) {
			zbv_push(s, r, OP_B, c0, b0++);
			zbv_push(s, r, OP_B, c1, b1++);
		}
		for (int i = 0; i < P - r; i++) {
			zbv_push(s, r, OP_B, c0, b0++);
			zbv_push(s, r, OP_W, c0, w0++);
		}
		while (w1 < b1)
			zbv_push(s, r, OP_W, c1, w1++);
		while (w0 < b0)
			zbv_push(s, r, OP_W, c0, w0++);
	}
}

/* interleaved-zb(V): torch's ScheduleInterleavedZeroBubble (the zero-bubble
 * paper's ZB-1p idea on Megatron's interleaved placement: chunk c of rank
 * r is stage c*P + r).  Micro-batches go in rounds of n = M / max(1, M div P)
 * (torch's "flex" rounds; sema checks that the rounds divide M).  Rank r runs
 * w = min((V-1)*n + P-1-r, VM) warm-up forwards (one per hop from the last
 * rank, where interleaved 1F1B has two: the W's fill that gap), then one F
 * and one B (the input gradient) per step, then the remaining B's.  Step k's
 * forward chunk is (k div n) mod V, its backward chunk V-1 - ((k-w) div n)
 * mod V; each chunk numbers its own micro-batches in order.  The W's follow
 * the B's in the same order, rank r holding back its first r of them (as
 * zb-h1 does, which this is at V = 1) until the end. */
static void gen_interleaved_zb(Schedule *s)
{
	int P = s->P, V = s->V, M = s->M, total = V * M;
	int rounds = M / P > 1 ? M / P : 1, n = M / rounds;
	int *fc = xalloc((size_t)3 * V * sizeof *fc), *bc = fc + V, *wc = bc + V;
	for (int r = 0; r < P; r++) {
		int w = imin((V - 1) * n + P - 1 - r, total), nw = 0;
		for (int c = 0; c < 3 * V; c++)
			fc[c] = 0;
#define CHUNK_F(k) (((k) / n) % V)
#define CHUNK_B(k) (V - 1 - (((k) - w) / n) % V)
		for (int k = 0; k < total + w; k++) {
			if (k < total)
				F(s, r, CHUNK_F(k) * P + r, fc[CHUNK_F(k)]++);
			if (k < w)
				continue;
			B(s, r, CHUNK_B(k) * P + r, bc[CHUNK_B(k)]++);
			if (k - w >= r) {
				int c = CHUNK_B(w + nw++);
				W(s, r, c * P + r, wc[c]++);
			}
		}
		while (nw < total) {
			int c = CHUNK_B(w + nw++);
			W(s, r, c * P + r, wc[c]++);
		}
#undef CHUNK_F
#undef CHUNK_B
	}
}

/* looped-bfs(V): breadth-first pipelining (Lamy-Poirier, arXiv 2211.05953;
 * torch's ScheduleLoopedBFS) on Megatron's placement.  Each rank runs every
 * micro-batch through its first chunk, then its second, ... (GPipe per
 * chunk, which keeps a chunk's weights in use for a whole pass), then the
 * backwards chunk by chunk from the last, micro-batches in descending order.
 * All M micro-batches of all V chunks are in flight at the turn, as GPipe's. */
static void gen_looped_bfs(Schedule *s)
{
	for (int r = 0; r < s->P; r++) {
		for (int c = 0; c < s->V; c++)
			for (int mb = 0; mb < s->M; mb++)
				F(s, r, c * s->P + r, mb);
		for (int c = s->V - 1; c >= 0; c--)
			for (int mb = s->M - 1; mb >= 0; mb--)
				B(s, r, c * s->P + r, mb);
	}
}

/* dualpipev: DeepSeek's DualPipe cut in half (DeepSeek-V3 report, arXiv
 * 2412.19437; torch's ScheduleDualPipeV, after deepseek-ai/DualPipe), on
 * zb-v's placement: chunk 0 = stage r, chunk 1 = stage 2P-1-r.  Needs
 * M >= 2P (sema).  Rank r runs, in torch's eight steps:
 *   1. 2(P-1-r) F0;  2. r+1 pairs F0 F1;  3. P-1-r triples I1 W F1;
 *   4. M-2P+r+1 rounds F0 B1, F1 B0  (the last rank's first round's F0 and
 *      B1 are not overlapped; the rest are, in torch one OVERLAP_F_B cell);
 *   5. P-1-r pairs B1, F1 B0;  6. r+1 pairs B1 B0, the backwards turning to
 *      split (I) half way, for odd r before the B1, for even r after it;
 *   7. P-1-r pairs W B0 (split once step 6 turned);  8. r+1 W's.
 * A full backward (torch's B) is our B marked whole with its W right after;
 * an I is a plain B whose W joins a queue that each "W" above pops (oldest
 * first; an empty queue adds nothing).  An overlapped pair is its F then
 * its B, forward first. */
typedef struct Dpv {
	Schedule *s;
	int r, st[2];
	int f[2], b[2];         /* next micro-batch of each chunk's F and B */
	int *wq, wh, wt;        /* the queue of W's, chunk*M + mb, oldest at wh */
} Dpv;

static void dpv_f(Dpv *d, int c)
{
	F(d->s, d->r, d->st[c], d->f[c]++);
}

static void dpv_b(Dpv *d, int c, int whole)
{
	int mb = d->b[c]++;
	B(d->s, d->r, d->st[c], mb);
	if (whole) {
		d->s->rank[d->r].a[d->s->rank[d->r].n - 1].whole = 1;
		W(d->s, d->r, d->st[c], mb);
	} else {
		d->wq[d->wt++] = c * d->s->M + mb;
	}
}

static void dpv_w(Dpv *d)
{
	if (d->wh == d->wt)
		return;
	int q = d->wq[d->wh++];
	W(d->s, d->r, d->st[q / d->s->M], q % d->s->M);
}

static void gen_dualpipev(Schedule *s)
{
	int P = s->P, M = s->M;
	sched_zbv_placement(P, s->stage_rank);
	Dpv d = { .s = s, .wq = xalloc((size_t)2 * M * sizeof *d.wq) };
	for (int r = 0; r < P; r++) {
		d.r = r;
		d.st[0] = r;
		d.st[1] = 2 * P - 1 - r;
		d.f[0] = d.f[1] = d.b[0] = d.b[1] = d.wh = d.wt = 0;
		for (int i = 0; i < 2 * (P - 1 - r); i++)
			dpv_f(&d, 0);
		for (int i = 0; i < r + 1; i++) {
			dpv_f(&d, 0);
			dpv_f(&d, 1);
		}
		for (int i = 0; i < P - 1 - r; i++) {
			dpv_b(&d, 1, 0);
			dpv_w(&d);
			dpv_f(&d, 1);
		}
		for (int i = 0; i < M - 2 * P + r + 1; i++) {
			dpv_f(&d, 0);
			dpv_b(&d, 1, 1);
			dpv_f(&d, 1);
			dpv_b(&d, 0, 1);
		}
		for (int i = 0; i < P - 1 - r; i++) {
			dpv_b(&d, 1, 1);
			dpv_f(&d, 1);
			dpv_b(&d, 0, 1);
		}
		int zb = 0, half = (r + 1) / 2;
		for (int i = 0; i < r + 1; i++) {
			if (i == half && r % 2 == 1)
				zb = 1;
			dpv_b(&d, 1, !zb);
			if (i == half && r % 2 == 0)
				zb = 1;
			dpv_b(&d, 0, !zb);
		}
		for (int i = 0; i < P - 1 - r; i++) {
			dpv_w(&d);
			dpv_b(&d, 0, !zb);
		}
		for (int i = 0; i < r + 1; i++)
			dpv_w(&d);
	}
}

/* The evaluation program (schedule.h): compute order, then the one lowering.
 * Lowered without a spec: nothing recomputes in a forward-only program. */
Schedule *sched_eval(const Schedule *train)
{
	Schedule *s = sched_new(SK_INFERENCE, train->P, train->V, train->M, train->R, 0, 0);
	s->eval = 1;
	s->label = train->label;
	for (int st = 0; st < s->S; st++)
		s->stage_rank[st] = train->stage_rank[st];
	for (int r = 0; r < s->P; r++)
		for (int st = 0; st < s->S; st++)
			if (s->stage_rank[st] == r)
				for (int mb = 0; mb < s->M; mb++)
					F(s, r, st, mb);
	sched_lower(s, NULL);
	return s;
}

/* generate: a ring.  Round t of group g runs F on every stage in turn
 * (round 0 on the group's prompts: the prefill; later rounds on the one
 * token the last stage picked in round t-1: a decode step), and the last
 * stage sends the token it picks back to the first (SEND_TOK / RECV_TOK,
 * keyed by the round that produced the token).  Every rank runs the
 * rounds in order and, within one, the groups in order: group g's round t
 * needs only group g's round t-1, which every rank finished earlier in its
 * own order, so the ring cannot deadlock, and with M >= P groups every
 * stage has a group to work on while the others travel.  The program is
 * built lowered: the token ring is not a forward edge the lowering knows.
 *
 * Every round of a rank is one template (template_rank: every action any
 * round has, keyed by group) under guards (sched_generate_guard); the
 * whole program is the template's rounds with the guards applied, and the
 * emitted step is the template with the guards tested. */
static void template_rank(const Schedule *s, int k, ActList *l)
{
	int P = s->P, last = s->S - 1;
	int p = k % P, decode = s->disagg ? k >= P : 1, prefill = s->disagg ? k < P : 1;
	for (int g = 0; g < s->M; g++) {
		/* disaggregated: the first decode round starts from the caches
		 * the prefill rank of the same stage built */
		if (s->disagg && decode)
			actlist_push(l, OP_RECV_KV, p, g, p);
		/* the token comes from the prefill's last rank in round 1, from
		 * the decode pipeline's last rank after that (a decode pipeline
		 * of one rank picks its own: round 1's is the only one received) */
		if (p == 0 && decode && (s->disagg || P > 1))
			actlist_push(l, OP_RECV_TOK, 0, g, s->disagg && P > 1 ? 2 * P - 1 : P - 1);
		if (p > 0)
			actlist_push(l, OP_RECV_F, p, g, k - 1);
		actlist_push(l, OP_F, p, g, -1);
		if (p < P - 1)
			actlist_push(l, OP_SEND_F, p, g, k + 1);
		if (s->disagg && prefill)
			actlist_push(l, OP_SEND_KV, p, g, P + p);
		int to = s->disagg ? P : 0;    /* the next round's first stage */
		if (p == P - 1 && to != k)
			actlist_push(l, OP_SEND_TOK, last, g, to);
	}
}

int sched_guard_holds(SchedGuard g, int t, int ntok)
{
	switch (g) {
	case SG_ROUND_POS:      return t > 0;
	case SG_ROUND_ONE:      return t == 1;
	case SG_ROUND_NOT_LAST: return t < ntok - 1;
	case SG_ROUND_ZERO:     return t == 0;
	case SG_ROUND_NONZERO:  return t != 0;
	default:                return 1;
	}
}

SchedGuard sched_generate_rank_guard(const Schedule *s, int rank)
{
	return !s->disagg ? SG_ALWAYS : rank < s->P ? SG_ROUND_ZERO : SG_ROUND_NONZERO;
}

SchedGuard sched_generate_guard(const Schedule *s, const Action *a, int *peer_t1)
{
	*peer_t1 = -1;
	switch (a->op) {
	case OP_RECV_TOK:
		/* colocated: from round 1 on; disaggregated: every decode round,
		 * round 1's from the prefill's last rank */
		if (!s->disagg)
			return SG_ROUND_POS;
		if (s->P == 1)
			return SG_ROUND_ONE;
		*peer_t1 = s->P - 1;
		return SG_ALWAYS;
	case OP_RECV_KV:
		return SG_ROUND_ONE;
	case OP_SEND_TOK:
	case OP_SEND_KV:
		return SG_ROUND_NOT_LAST;
	default:
		return SG_ALWAYS;
	}
}

void sched_generate_round(const Schedule *s, int p, int t, ActList *l)
{
	int M = s->M, me = sched_holder(s, 0, p, t * M);
	if (!sched_guard_holds(sched_generate_rank_guard(s, me), t, s->ntok))
		return;
	ActList tl = { 0 };
	template_rank(s, me, &tl);
	for (int i = 0; i < tl.n; i++) {
		const Action *a = &tl.a[i];
		int peer_t1;
		if (!sched_guard_holds(sched_generate_guard(s, a, &peer_t1), t, s->ntok))
			continue;
		/* keyed by the round that made it: a token the previous round's,
		 * the caches the prefill's */
		int from = a->op == OP_RECV_TOK ? t - 1 : a->op == OP_RECV_KV ? 0 : t;
		actlist_push(l, a->op, a->stage, from * M + a->mb,
		             t == 1 && peer_t1 >= 0 ? peer_t1 : a->peer);
	}
}

static void gen_generate(Schedule *s)
{
	for (int p = 0; p < s->P; p++)
		for (int t = 0; t < s->ntok; t++)
			sched_generate_round(s, p, t, &s->rank[sched_holder(s, 0, p, t * s->M)]);
	s->lowered = 1;
}

Schedule *sched_generate_template(const Schedule *s)
{
	Schedule *r = sched_new(SK_GENERATE, s->P, 1, s->M, 1, 0, 0);
	r->ntok = 1;
	r->label = s->label;
	r->disagg = s->disagg;
	if (s->disagg) {
		r->nranks = 2 * s->P;
		r->rank = xalloc((size_t)r->nranks * sizeof *r->rank);
	}
	for (int k = 0; k < r->nranks; k++)
		template_rank(r, k, &r->rank[k]);
	r->lowered = 1;
	return r;
}

Schedule *sched_generate(const SchedSpec *spec, Loc where)
{
	SchedKind kind = spec->kind;
	const char *name = sched_kind_name(kind);
	if (spec->P < 1 || spec->M < 1 || spec->R < 1 || spec->V < 1)
		die("schedule '%s' asked for P=%d V=%d M=%d R=%d", name,
		    spec->P, spec->V, spec->M, spec->R);
	switch (kind) {
	case SK_PIPEDREAM:
	case SK_2BW:
		return sched_async(spec);     /* sema checked its constraints */
	case SK_FILE:
		die("sched_generate called for a file schedule");
	default:
		break;
	}
	int V = kind == SK_INTERLEAVED || kind == SK_INTERLEAVED_ZB || kind == SK_LOOPED_BFS
		? spec->V : kind == SK_ZBV || kind == SK_DUALPIPEV ? 2 : 1;
	if (kind == SK_INTERLEAVED && spec->M % spec->P != 0) {
		int up = (spec->M / spec->P + 1) * spec->P;
		diag_error(where, "interleaved(%d) needs the number of micro-batches to be "
		           "a multiple of the number of stages, but microbatches = %d and "
		           "stages = %d (try microbatches = %d)",
		           spec->V, spec->M, spec->P, up);
		return NULL;
	}
	if (kind == SK_GENERATE) {
		if (spec->R != 1 || spec->training || spec->ntok < 1)
			die("generate asked for R=%d training=%d ntok=%d", spec->R,
			    spec->training, spec->ntok);
		Schedule *s = sched_new(kind, spec->P, 1, spec->M, 1, 0, 0);
		s->ntok = spec->ntok;
		if (spec->disagg) {
			s->disagg = 1;
			s->nranks = 2 * spec->P;
			s->rank = xalloc((size_t)s->nranks * sizeof *s->rank);
		}
		gen_generate(s);
		return s;
	}
	int training = spec->training && kind != SK_INFERENCE;
	int split = training && (kind == SK_ZBH1 || kind == SK_ZBV || kind == SK_ZBH2
	                         || kind == SK_ZBAUTO || kind == SK_INTERLEAVED_ZB
	                         || kind == SK_DUALPIPEV);
	Schedule *s = sched_new(kind, spec->P, V, spec->M, spec->R, training, split);
	if (kind == SK_ZBV) {
		gen_zbv(s);
		return s;
	}
	if (kind == SK_DUALPIPEV || kind == SK_INTERLEAVED_ZB || kind == SK_LOOPED_BFS) {
		/* sema lets these train only, and checks their constraints */
		if (!training || (kind == SK_DUALPIPEV && spec->M < 2 * spec->P))
			die("schedule '%s' asked for training=%d P=%d M=%d", name, training,
			    spec->P, spec->M);
		if (kind == SK_DUALPIPEV)
			gen_dualpipev(s);
		else if (kind == SK_INTERLEAVED_ZB)
			gen_interleaved_zb(s);
		else
			gen_looped_bfs(s);
		return s;
	}
	if (!training && !(kind == SK_INTERLEAVED && V > 1)) {
		gen_forward_only(s);
		return s;
	}
	switch (kind) {
	case SK_NAIVE:       gen_naive(s); break;
	case SK_GPIPE:       gen_gpipe(s); break;
	case SK_1F1B:        gen_1f1b(s); break;
	case SK_ZBH1:        gen_zbh1(s); break;
	case SK_ZBH2:        gen_zbh2(s); break;
	case SK_ZBAUTO:
		if (sched_gen_zbauto(s, spec, where) != 0)
			return NULL;
		break;
	case SK_INTERLEAVED:
		if (V == 1)
			gen_1f1b(s);    /* one chunk per rank: plain 1F1B */
		else
			gen_interleaved(s);
		break;
	default:
		unreachable();
	}
	return s;
}
