/* rt_comm.c — MPI transport: non-blocking point-to-point messages in
 * request slots, waits that give up after --timeout, the per-stage gradient
 * allreduce, and --check-messages.
 *
 * Every wait in the runtime goes through rt_wait_req, including barriers
 * and reductions, so a stalled or dead peer becomes an error that names the
 * rank, the action and the peer instead of a hang.  A failed rank usually
 * brings the job down through mpirun first; the timeout covers the rest
 * (a rank that stalls without dying).
 */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rt_internal.h"
#include "rt_math.h"

static void check(rt_ctx *c, int rc, const char *call, const char *what)
{
	char s[MPI_MAX_ERROR_STRING];
	int len = 0;
	if (rc == MPI_SUCCESS)
		return;
	MPI_Error_string(rc, s, &len);
	rt_die(c, RT_EXIT_RUNTIME, "%s failed for %s: %s", call, what, s);
}

/* ---- Timed waits. ---- */

void rt_wait_status(rt_ctx *c, MPI_Request *req, const char *what, const char *peer,
                    MPI_Status *st)
{
	double start = -1.0, now;
	int done = 0;
	long spins = 0;
	for (;;) {
		check(c, MPI_Test(req, &done, st), "MPI_Test", what);
		if (done)
			return;
		/* Back off in three phases: spin while the message is likely in
		 * flight (latency is ~1 µs on shared memory), then yield the core
		 * (ranks may outnumber cores), then sleep so a long wait costs the
		 * computing ranks nothing.  The clock is read only every 64 tests. */
		if (++spins % 64)
			continue;
		now = rt_now();
		if (start < 0.0)
			start = now;
		if (now - start > c->o.timeout)
			rt_die(c, RT_EXIT_RUNTIME, "timed out after %g s waiting for %s (peer %s)",
			       c->o.timeout, what, peer);
		if (now - start < 50e-6) {
			continue;
		} else if (now - start < 2e-3) {
			sched_yield();
		} else {
			struct timespec ts = { 0, 50000 };
			nanosleep(&ts, NULL);
		}
	}
}

void rt_wait_req(rt_ctx *c, MPI_Request *req, const char *what, const char *peer)
{
	rt_wait_status(c, req, what, peer, MPI_STATUS_IGNORE);
}

void rt_barrier(rt_ctx *c, const char *what)
{
	MPI_Request r;
	check(c, MPI_Ibarrier(c->comm, &r), "MPI_Ibarrier", what);
	rt_wait_req(c, &r, what, "all ranks");
}

/* ---- Point to point. ---- */

static rt_slot *slot_of(rt_ctx *c, int slot, const char *what)
{
	rt_slot *s;
	if (slot < 0 || slot >= c->nslots)
		rt_die(c, RT_EXIT_RUNTIME, "%s: slot %d out of range (the program has %d)",
		       what, slot, c->nslots);
	s = &c->slots[slot];
	if (s->req[0] != MPI_REQUEST_NULL || s->req[1] != MPI_REQUEST_NULL)
		rt_die(c, RT_EXIT_RUNTIME, "%s: slot %d is still in use by %s", what, slot, s->what);
	return s;
}

static void post_checks(rt_ctx *c, int peer, int tag, size_t bytes, const char *what)
{
	if (peer < 0 || peer >= c->nranks || peer == c->rank)
		rt_die(c, RT_EXIT_RUNTIME, "%s: bad peer %d", what, peer);
	if (tag < 0 || tag > c->tag_ub)
		rt_die(c, RT_EXIT_RUNTIME, "%s: tag %d outside MPI's range 0..%d", what, tag, c->tag_ub);
	if (bytes > INT_MAX)
		rt_die(c, RT_EXIT_RUNTIME, "%s: message of %zu bytes is too large", what, bytes);
}

/* --check-messages.  Each message is followed, on a second communicator
 * with the same tag, by a header saying what the sender believes it sent:
 *   [H_TAG] tag, [H_BYTES] bytes, [H_STEP] step, [H_RANK] sender,
 *   [H_OP, H_STAGE, H_MB] the action the send was issued in (rt_begin),
 *   or -1 when it was issued outside one.
 * The receiver compares it, in rt_wait, with its own action: a RECV_F of
 * stage s, micro-batch m must get what a SEND_F of stage s-1, micro-batch m
 * sent (a RECV_B: a SEND_B of stage s+1), of the size it posted, in the same
 * step.  Tags that do not match the actions (a wrong RT_TAG in emitted code)
 * are caught although MPI would match them silently.  Only the receiver
 * judges: which stage a tag names (sender's or receiver's) is the
 * emitter's convention, both ends just have to agree. */
enum { H_TAG, H_BYTES, H_STEP, H_RANK, H_OP, H_STAGE, H_MB };

void rt_hdr_fill(rt_ctx *c, int64_t *h, int tag, size_t bytes)
{
	int in_send = c->in_action && (c->cur.op == RT_OP_SEND_F || c->cur.op == RT_OP_SEND_B);
	h[H_TAG] = tag;
	h[H_BYTES] = (int64_t)bytes;
	/* asynchronous: the action's key (cur.mb) names its own step */
	h[H_STEP] = c->p->async && in_send ? c->cur.mb / c->p->M : c->step;
	h[H_RANK] = c->rank;
	h[H_OP] = in_send ? c->cur.op : -1;
	h[H_STAGE] = in_send ? c->cur.stage : -1;
	h[H_MB] = in_send ? c->cur.mb : -1;
}

void rt_hdr_check(rt_ctx *c, const int64_t *h, const char *what, int peer, int tag,
                  size_t bytes)
{
	int in_recv = c->in_action && (c->cur.op == RT_OP_RECV_F || c->cur.op == RT_OP_RECV_B);
	/* generation: a round receives the tokens the last stage picked in the
	 * round before, and a decode rank the caches its prefill rank filled
	 * then */
	int from_last_round = c->in_action && (c->cur.op == RT_OP_RECV_TOK ||
	                                       c->cur.op == RT_OP_RECV_KV);
	int64_t want_op = -1, want_stage = -1, want_mb = -1;
	int64_t want_step = c->p->async && in_recv ? c->cur.mb / c->p->M
	                    : c->step - from_last_round;
	int bad = h[H_TAG] != tag || h[H_BYTES] != (int64_t)bytes || h[H_STEP] != want_step ||
	          h[H_RANK] != peer;
	if (in_recv && h[H_OP] >= 0) {
		want_op = c->cur.op == RT_OP_RECV_F ? RT_OP_SEND_F : RT_OP_SEND_B;
		want_stage = c->cur.op == RT_OP_RECV_F ? c->cur.stage - 1 : c->cur.stage + 1;
		want_mb = c->cur.mb;
		bad |= h[H_OP] != want_op || h[H_STAGE] != want_stage || h[H_MB] != want_mb;
	}
	if (!bad)
		return;
	rt_die(c, RT_EXIT_RUNTIME,
	       "message check failed for %s (peer %d): expected %s stage %lld mb %lld, %zu bytes, "
	       "step %d from rank %d; got %s stage %lld mb %lld, %lld bytes, step %lld from rank %lld",
	       what, peer, want_op >= 0 ? rt_op_name((int)want_op) : "a message",
	       (long long)want_stage, (long long)want_mb, bytes, (int)want_step + 1, peer,
	       h[H_OP] >= 0 ? rt_op_name((int)h[H_OP]) : "a message", (long long)h[H_STAGE],
	       (long long)h[H_MB], (long long)h[H_BYTES], (long long)h[H_STEP] + 1,
	       (long long)h[H_RANK]);
}

static void send_checks(rt_ctx *c, rt_slot *s)
{
	rt_hdr_fill(c, s->hdr, s->tag, s->bytes);
}

static void recv_checks(rt_ctx *c, const rt_slot *s)
{
	rt_hdr_check(c, s->hdr, s->what, s->peer, s->tag, s->bytes);
}

void rt_mpi_irecv(rt_ctx *c, int slot, void *buf, size_t bytes, int peer, int tag,
                  const char *what)
{
	rt_slot *s = slot_of(c, slot, what);
	post_checks(c, peer, tag, bytes, what);
	s->what = what;
	s->bytes = bytes;
	s->peer = peer;
	s->tag = tag;
	s->is_recv = 1;
	s->unpack = NULL;
	s->upto = 0;
	check(c, MPI_Irecv(buf, (int)bytes, MPI_BYTE, peer, tag, c->comm, &s->req[0]),
	      "MPI_Irecv", what);
	if (c->o.check_messages)
		check(c, MPI_Irecv(s->hdr, RT_HDR_N, MPI_INT64_T, peer, tag, c->chk, &s->req[1]),
		      "MPI_Irecv", what);
}

void rt_slot_upto(rt_ctx *c, int slot, const void *buf, int64_t hdr, int64_t desc,
                  int64_t most, int64_t row_bytes, int64_t values)
{
	rt_slot *s = &c->slots[slot];
	s->upto = 1;
	s->upto_buf = buf;
	s->upto_hdr = hdr;
	s->upto_desc = desc;
	s->upto_most = most;
	s->upto_row = row_bytes;
	s->upto_values = values;
}

void rt_mpi_isend(rt_ctx *c, int slot, const void *buf, size_t bytes, int peer, int tag,
                  const char *what)
{
	rt_slot *s = slot_of(c, slot, what);
	post_checks(c, peer, tag, bytes, what);
	s->what = what;
	s->bytes = bytes;
	s->peer = peer;
	s->tag = tag;
	s->is_recv = 0;
	s->unpack = NULL;
	s->upto = 0;
	check(c, MPI_Isend(buf, (int)bytes, MPI_BYTE, peer, tag, c->comm, &s->req[0]),
	      "MPI_Isend", what);
	if (c->o.check_messages) {
		send_checks(c, s);
		check(c, MPI_Isend(s->hdr, RT_HDR_N, MPI_INT64_T, peer, tag, c->chk, &s->req[1]),
		      "MPI_Isend", what);
	}
}

/* ---- 16-bit messages (pipert.h's rt_isend16, docs/precision.md). ---- */

/* n values, 2 bytes each at b, to 4 bytes each at b: from the last one
 * down, so that no value is overwritten before it is read (value i's
 * 4 bytes start at 4i >= 2i + 2 for i >= 1: past every unread one). */
static void unpack16(int prec, char *b, int64_t n)
{
	for (int64_t i = n - 1; i >= 0; i--) {
		uint16_t h;
		float v;
		memcpy(&h, b + 2 * i, 2);
		v = prec == RT_PREC_BF16 ? rt_bf16_value(h) : rt_f16_value(h);
		memcpy(b + 4 * i, &v, 4);
	}
}

void rt_mpi_wait(rt_ctx *c, int slot)
{
	rt_slot *s;
	char peer[16];
	MPI_Status st;
	int count = -1;
	if (slot < 0 || slot >= c->nslots)
		rt_die(c, RT_EXIT_RUNTIME, "rt_wait: slot %d out of range (the program has %d)",
		       slot, c->nslots);
	s = &c->slots[slot];
	if (s->req[0] == MPI_REQUEST_NULL)
		rt_die(c, RT_EXIT_RUNTIME, "rt_wait: slot %d has nothing posted (last: %s)", slot,
		       s->what ? s->what : "none");
	snprintf(peer, sizeof peer, "%d", s->peer);
	rt_wait_status(c, &s->req[0], s->what, peer, &st);
	/* A longer message fails the receive as truncated (MPI_ERRORS_RETURN);
	 * a shorter one would pass silently, so sizes are always compared:
	 * generation's activations with what their descriptor says. */
	if (s->is_recv && s->upto) {
		int64_t ntok = -1;
		int32_t n;
		s->upto = 0;
		/* the descriptor's second value is its tokens (rt_tf_sizes.h) */
		if (MPI_Get_count(&st, MPI_BYTE, &count) == MPI_SUCCESS && count >= s->upto_hdr) {
			memcpy(&n, s->upto_buf + s->upto_desc + 4, sizeof n);
			ntok = n >= 0 && n <= s->upto_most ? n : -1;
		}
		if (ntok < 0 || count != s->upto_hdr + ntok * s->upto_row)
			rt_die(c, RT_EXIT_RUNTIME, "%s: received %d bytes from rank %d, which its "
			       "descriptor (%lld tokens of %lld bytes after %lld) does not say", s->what,
			       count, s->peer, (long long)ntok, (long long)s->upto_row,
			       (long long)s->upto_hdr);
		s->bytes = (size_t)count;
		if (s->unpack)
			s->unpack_n = ntok * s->upto_values;
	} else if (s->is_recv && (MPI_Get_count(&st, MPI_BYTE, &count) != MPI_SUCCESS ||
	                          count != (int)s->bytes))
		rt_die(c, RT_EXIT_RUNTIME, "%s: received %d bytes from rank %d, expected %zu",
		       s->what, count, s->peer, s->bytes);
	if (c->o.check_messages) {
		rt_wait_req(c, &s->req[1], s->what, peer);
		if (s->is_recv)
			recv_checks(c, s);
	}
	if (s->is_recv && s->unpack) {
		unpack16(c->p->precision, s->unpack + s->unpack_hdr, s->unpack_n);
		s->unpack = NULL;
	}
}

#ifndef RT_CUDA
/* On the CPU, pipert.h's transport is MPI itself.  (libpipert_cuda.a has
 * its own, cuda/rt_xport.cu.) */
void rt_irecv(rt_ctx *c, int slot, void *buf, size_t bytes, int peer, int tag, const char *what)
{
	rt_mpi_irecv(c, slot, buf, bytes, peer, tag, what);
}

void rt_isend(rt_ctx *c, int slot, const void *buf, size_t bytes, int peer, int tag, const char *what)
{
	c->sent_bytes += (int64_t)bytes;
	rt_mpi_isend(c, slot, buf, bytes, peer, tag, what);
}

void rt_wait(rt_ctx *c, int slot)
{
	rt_mpi_wait(c, slot);
}

static void check16(rt_ctx *c, int64_t n, const char *what)
{
	if (n < 0 || c->p->precision == RT_PREC_F32)
		rt_die(c, RT_EXIT_RUNTIME, "%s: a 16-bit message of %lld values in a %s program",
		       what, (long long)n, c->p->precision == RT_PREC_F32 ? "f32" : "16-bit");
}

void rt_irecv16(rt_ctx *c, int slot, void *buf, size_t hdr, int64_t n, int peer, int tag,
                const char *what)
{
	check16(c, n, what);
	rt_mpi_irecv(c, slot, buf, hdr + 2 * (size_t)n, peer, tag, what);
	c->slots[slot].unpack = buf;
	c->slots[slot].unpack_hdr = hdr;
	c->slots[slot].unpack_n = n;
}

void rt_isend16(rt_ctx *c, int slot, const void *buf, void *pack, size_t hdr, int64_t n,
                int peer, int tag, const char *what)
{
	int bf = c->p->precision == RT_PREC_BF16;
	const char *src = (const char *)buf + hdr;
	char *dst = (char *)pack + hdr;
	check16(c, n, what);
	memcpy(pack, buf, hdr);
	/* --check-messages: every value is already one of the dtype's (a
	 * tensor the step forgot to round would be rounded here silently) */
	for (int64_t i = 0; c->o.check_messages && i < n; i++) {
		float x, r;
		memcpy(&x, src + 4 * i, 4);
		r = bf ? rt_round_bf16(x) : rt_round_f16(x);
		if (r != x && !(x != x))
			rt_die(c, RT_EXIT_RUNTIME, "%s: value %lld of the message, %.9g, is not a %s "
			       "value", what, (long long)i, (double)x, bf ? "bf16" : "f16");
	}
	for (int64_t i = 0; i < n; i++) {
		float x;
		uint16_t h;
		memcpy(&x, src + 4 * i, 4);
		h = bf ? rt_bf16_bits(x) : rt_f16_bits(x);
		memcpy(dst + 2 * i, &h, 2);
	}
	c->sent_bytes += (int64_t)(hdr + 2 * (size_t)n);
	rt_mpi_isend(c, slot, pack, hdr + 2 * (size_t)n, peer, tag, what);
}

void rt_allreduce(rt_ctx *c, int stage)
{
	rt_mpi_allreduce(c, stage);
}
#endif

/* ---- Data parallelism. ---- */

/* One exchange with the ring's neighbours: ns floats of `out` to `to`, nr
 * into `in` from `from` (the neighbour's ns: chunks differ by one float
 * where R does not divide the range), in pieces under MPI's int count
 * that both sides cut alike. */
static void ring_exchange(rt_ctx *c, rt_stage_comm *sc, const float *out, int64_t ns,
                          float *in, int64_t nr, int to, int from, const char *what)
{
	enum { PIECE = 1 << 28 };
	for (int64_t o = 0; o < ns || o < nr; o += PIECE) {
		int64_t ks = ns - o < PIECE ? ns - o : PIECE, kr = nr - o < PIECE ? nr - o : PIECE;
		MPI_Request r[2] = { MPI_REQUEST_NULL, MPI_REQUEST_NULL };
		if (kr > 0)
			check(c, MPI_Irecv(in + o, (int)kr, MPI_FLOAT, from, 0, sc->comm, &r[0]),
			      "MPI_Irecv", what);
		if (ks > 0)
			check(c, MPI_Isend(out + o, (int)ks, MPI_FLOAT, to, 0, sc->comm, &r[1]),
			      "MPI_Isend", what);
		rt_wait_req(c, &r[0], what, sc->peers);
		rt_wait_req(c, &r[1], what, sc->peers);
	}
}

/* The sum of g[0, n) over the stage's R copies, in place, on every copy
 * alike: a ring (reduce-scatter, then all-gather), as NCCL and Horovod do
 * it.  Each of R chunks is summed along the ring in R - 1 steps, each
 * copy sending and receiving 2 (R - 1) / R of the gradient in all: no
 * copy does more than its share, whatever R.  Open MPI's non-blocking
 * MPI_Iallreduce (libnbc) took twice its blocking call's time and five
 * times the link's (52 ms for mlp4's 44 MB here); the blocking call
 * cannot be waited on with --timeout or stopped by a signal.  The
 * reduce-scatter receives into RT_RING_PIECE floats at a time (a
 * buffer made before the memory baseline), the all-gather in place.
 * Each chunk's sum is made on one copy, in ring order, and copied to the
 * others: every replica ends with the same bits. */
static void ring_allreduce(rt_ctx *c, rt_stage_comm *sc, float *g, int64_t n, int R,
                           int me, const char *what)
{
	int next = (me + 1) % R, prev = (me + R - 1) % R;
#define CHUNK(k) (n * (int64_t)(k) / R)
	for (int s = 0; s < R - 1; s++) {
		int send = (me - s + R) % R, recv = (me - s - 1 + 2 * R) % R;
		int64_t so = CHUNK(send), sn = CHUNK(send + 1) - so;
		int64_t ro = CHUNK(recv), rn = CHUNK(recv + 1) - ro;
		/* the two chunks' pieces in lock step; a neighbour's piece count
		 * is ours, since it cuts the same chunks */
		for (int64_t o = 0; o < sn || o < rn; o += RT_RING_PIECE) {
			int64_t ks = sn - o < RT_RING_PIECE ? sn - o : RT_RING_PIECE;
			int64_t kr = rn - o < RT_RING_PIECE ? rn - o : RT_RING_PIECE;
			MPI_Request r[2] = { MPI_REQUEST_NULL, MPI_REQUEST_NULL };
			if (kr > 0)
				check(c, MPI_Irecv(sc->ring_buf, (int)kr, MPI_FLOAT, prev, 0, sc->comm,
				                   &r[0]), "MPI_Irecv", what);
			if (ks > 0)
				check(c, MPI_Isend(g + so + o, (int)ks, MPI_FLOAT, next, 0, sc->comm,
				                   &r[1]), "MPI_Isend", what);
			rt_wait_req(c, &r[0], what, sc->peers);
			/* the send reads g + so, the sum writes g + ro: other chunks */
			for (int64_t i = 0; i < kr; i++)
				g[ro + o + i] += sc->ring_buf[i];
			rt_wait_req(c, &r[1], what, sc->peers);
		}
	}
	/* copy `me` now holds chunk (me + 1)'s sum: pass the sums round */
	for (int s = 0; s < R - 1; s++) {
		int send = (me + 1 - s + R) % R, recv = (me - s + R) % R;
		int64_t so = CHUNK(send), ro = CHUNK(recv);
		ring_exchange(c, sc, g + so, CHUNK(send + 1) - so, g + ro, CHUNK(recv + 1) - ro,
		              next, prev, what);
	}
#undef CHUNK
}

void rt_mpi_allreduce(rt_ctx *c, int stage)
{
	rt_stage_comm *sc = NULL;
	char what[64];
	int size = 1, me = 0;
	for (int i = 0; i < c->nstages; i++)
		if (c->stages[i].stage == stage)
			sc = &c->stages[i];
	/* A stage without parameters has nothing to sum, on every replica. */
	if (!sc || sc->comm == MPI_COMM_NULL)
		return;
	MPI_Comm_size(sc->comm, &size);
	if (size == 1)
		return;
	MPI_Comm_rank(sc->comm, &me);
	snprintf(what, sizeof what, "ALLREDUCE stage %d", stage);
	for (int k = 0; k < sc->nseg; k++)
		ring_allreduce(c, sc, c->g + sc->seg_off[k], sc->seg_len[k], size, me, what);
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* The gradient ranges of `stage`: its parameters' [offset, offset+numel),
 * sorted and merged, so one reduction covers each contiguous run. */
static int stage_segments(rt_ctx *c, rt_stage_comm *sc)
{
	const rt_program *p = c->p;
	int n = 0;
	int64_t *pairs = malloc((size_t)(2 * p->nparams + 2) * sizeof *pairs);
	if (!pairs)
		return -1;
	for (int i = 0; i < p->nparams; i++) {
		if (p->params[i].stage != sc->stage)
			continue;
		pairs[2 * n] = p->params[i].offset;
		pairs[2 * n + 1] = p->params[i].numel;
		n++;
	}
	qsort(pairs, (size_t)n, 2 * sizeof *pairs, cmp_i64);
	sc->seg_off = malloc((size_t)(n + 1) * sizeof *sc->seg_off);
	sc->seg_len = malloc((size_t)(n + 1) * sizeof *sc->seg_len);
	if (!sc->seg_off || !sc->seg_len) {
		free(pairs);
		return -1;
	}
	sc->nseg = 0;
	for (int i = 0; i < n; i++) {
		int64_t off = pairs[2 * i], len = pairs[2 * i + 1];
		int k = sc->nseg;
		if (k && sc->seg_off[k - 1] + sc->seg_len[k - 1] == off) {
			sc->seg_len[k - 1] += len;
		} else {
			sc->seg_off[k] = off;
			sc->seg_len[k] = len;
			sc->nseg++;
		}
	}
	free(pairs);
	return 0;
}

/* ---- Tied parameters. ---- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* One communicator per tied parameter and replica, joining the pipeline
 * ranks that hold a copy of it (a token embedding on the first stage, its
 * tied lm_head on the last).  Splits are collective over the job, so every
 * rank must make the same sequence of them: the ranks first agree on the
 * job's list of tied names (by hash), then split once per name with colour
 * = replica for the holders.  With one tied name this is one split. */
static void tied_init(rt_ctx *c)
{
	const rt_program *p = c->p;
	int mine = 0, total = 0, nu = 0, *cnt, *dsp;
	uint64_t *h, *all;
	MPI_Group wg;

	for (int i = 0; i < p->nparams; i++)
		mine += p->params[i].tied != 0;
	h = malloc((size_t)(mine + 1) * sizeof *h);
	cnt = malloc((size_t)c->nranks * sizeof *cnt);
	dsp = malloc((size_t)c->nranks * sizeof *dsp);
	c->tied = calloc((size_t)mine + 1, sizeof *c->tied);
	if (!h || !cnt || !dsp || !c->tied)
		rt_die(c, RT_EXIT_RUNTIME, "out of memory");
	mine = 0;
	for (int i = 0; i < p->nparams; i++)
		if (p->params[i].tied)
			h[mine++] = rt_hash_name(p->params[i].name);
	MPI_Allgather(&mine, 1, MPI_INT, cnt, 1, MPI_INT, c->comm);
	for (int r = 0; r < c->nranks; r++) {
		dsp[r] = total;
		total += cnt[r];
	}
	if (!(all = malloc((size_t)(total + 1) * sizeof *all)))
		rt_die(c, RT_EXIT_RUNTIME, "out of memory");
	MPI_Allgatherv(h, mine, MPI_UINT64_T, all, cnt, dsp, MPI_UINT64_T, c->comm);
	qsort(all, (size_t)total, sizeof *all, cmp_u64);
	for (int i = 0; i < total; i++)
		if (!nu || all[nu - 1] != all[i])
			all[nu++] = all[i];

	MPI_Comm_group(c->comm, &wg);
	for (int u = 0; u < nu; u++) {
		const rt_param *pa = NULL;
		MPI_Comm sub;
		int size = 0;
		for (int i = 0; i < p->nparams && !pa; i++)
			if (p->params[i].tied && rt_hash_name(p->params[i].name) == all[u])
				pa = &p->params[i];
		MPI_Comm_split(c->comm, pa ? p->replica : MPI_UNDEFINED, c->rank, &sub);
		if (sub == MPI_COMM_NULL)
			continue;
		MPI_Comm_size(sub, &size);
		if (size < 2) {         /* no other copy in this replica: nothing to sum */
			MPI_Comm_free(&sub);
			continue;
		}
		MPI_Comm_set_errhandler(sub, MPI_ERRORS_RETURN);
		{
			/* The copies must be the same tensor, or the sums would mix
			 * unrelated ranges of the gradient buffers. */
			long long n[2] = { pa->numel, -pa->numel }, ext[2];
			MPI_Allreduce(n, ext, 2, MPI_LONG_LONG, MPI_MAX, sub);
			if (ext[0] != pa->numel || -ext[1] != pa->numel)
				rt_die(c, RT_EXIT_RUNTIME, "inconsistent program: tied parameter '%s' has %lld "
				       "elements here and %lld on another rank", pa->name,
				       (long long)pa->numel, ext[0] != pa->numel ? ext[0] : -ext[1]);
		}
		{
			rt_tied *t = &c->tied[c->ntied++];
			MPI_Group g;
			int o;
			t->name = pa->name;
			t->comm = sub;
			t->off = pa->offset;
			t->len = pa->numel;
			o = snprintf(t->peers, sizeof t->peers, "ranks");
			MPI_Comm_group(sub, &g);
			for (int r = 0, first = 1; r < size && o < (int)sizeof t->peers - 12; r++) {
				int wr;
				MPI_Group_translate_ranks(g, 1, &r, wg, &wr);
				if (wr == c->rank)
					continue;
				o += snprintf(t->peers + o, sizeof t->peers - (size_t)o, "%s%d",
				              first ? " " : ",", wr);
				first = 0;
			}
			MPI_Group_free(&g);
		}
	}
	MPI_Group_free(&wg);
	free(all);
	free(h);
	free(cnt);
	free(dsp);
}

void rt_tied_sum_one(rt_ctx *c, int i, float *x)
{
	rt_tied *t = &c->tied[i];
	int64_t left = t->len;
	char what[160];
	snprintf(what, sizeof what, "OPTIM: the gradient sum of tied '%s'", t->name);
	while (left > 0) {
		/* MPI counts are int: long ranges go in pieces. */
		int n = left > INT_MAX / 2 ? INT_MAX / 2 : (int)left;
		MPI_Request r;
		check(c, MPI_Iallreduce(MPI_IN_PLACE, x, n, MPI_FLOAT, MPI_SUM, t->comm, &r),
		      "MPI_Iallreduce", what);
		rt_wait_req(c, &r, what, t->peers);
		x += n;
		left -= n;
	}
}

void rt_tied_sum(rt_ctx *c, float *g)
{
	for (int i = 0; i < c->ntied; i++)
		rt_tied_sum_one(c, i, g + c->tied[i].off);
}

void rt_comm_init(rt_ctx *c)
{
	const rt_program *p = c->p;
	int *held, nheld = 0, maxheld = 0, flag = 0, low;
	void *attr = NULL;

	/* Every failure here is fatal at once (rt_die): the function is a
	 * sequence of collectives, and a rank that left early would leave the
	 * others waiting in the next one. */
	if (MPI_Comm_dup(MPI_COMM_WORLD, &c->comm) != MPI_SUCCESS)
		rt_die(c, RT_EXIT_RUNTIME, "cannot create the job's communicator");
	/* Errors come back as codes, reported with the action that failed. */
	MPI_Comm_set_errhandler(c->comm, MPI_ERRORS_RETURN);
	c->chk = MPI_COMM_NULL;
	if (c->o.check_messages) {
		if (MPI_Comm_dup(c->comm, &c->chk) != MPI_SUCCESS)
			rt_die(c, RT_EXIT_RUNTIME, "cannot create the job's communicator");
		MPI_Comm_set_errhandler(c->chk, MPI_ERRORS_RETURN);
	}
	MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &attr, &flag);
	c->tag_ub = flag && attr ? *(int *)attr : 32767;

	c->nslots = p->nslots > 0 ? p->nslots : 0;
	c->slots = calloc((size_t)c->nslots + 1, sizeof *c->slots);
	if (!c->slots)
		rt_die(c, RT_EXIT_RUNTIME, "out of memory");
	for (int i = 0; i < c->nslots; i++)
		c->slots[i].req[0] = c->slots[i].req[1] = MPI_REQUEST_NULL;

	/* The stages this rank holds parameters of, ascending.  Every replica
	 * of a pipeline rank holds the same list, so the k-th entry names the
	 * same stage on all of them: one MPI_Comm_split per k (a collective
	 * over the world) groups exactly the copies of each stage. */
	held = malloc((size_t)(p->nparams + 1) * sizeof *held);
	if (!held)
		rt_die(c, RT_EXIT_RUNTIME, "out of memory");
	for (int i = 0; i < p->nparams; i++) {
		int s = p->params[i].stage, j;
		for (j = 0; j < nheld && held[j] != s; j++)
			;
		if (j == nheld)
			held[nheld++] = s;
	}
	for (int i = 1; i < nheld; i++)
		for (int j = i; j > 0 && held[j - 1] > held[j]; j--) {
			int t = held[j];
			held[j] = held[j - 1];
			held[j - 1] = t;
		}
	MPI_Allreduce(&nheld, &maxheld, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
	c->stages = calloc((size_t)nheld + 1, sizeof *c->stages);
	if (!c->stages)
		rt_die(c, RT_EXIT_RUNTIME, "out of memory");
	c->nstages = nheld;
	for (int k = 0; k < maxheld; k++) {
		MPI_Comm sub;
		MPI_Comm_split(MPI_COMM_WORLD, k < nheld ? held[k] : MPI_UNDEFINED, c->rank, &sub);
		if (k < nheld) {
			rt_stage_comm *sc = &c->stages[k];
			int prank = c->rank - p->replica * p->P, n = 0;
			sc->stage = held[k];
			sc->comm = sub;
			if (sub != MPI_COMM_NULL)
				MPI_Comm_set_errhandler(sub, MPI_ERRORS_RETURN);
			n = snprintf(sc->peers, sizeof sc->peers, "ranks");
			for (int r = 0; r < p->R && n < (int)sizeof sc->peers - 12; r++)
				if (r != p->replica)
					n += snprintf(sc->peers + n, sizeof sc->peers - (size_t)n, "%s%d",
					              n == 5 ? " " : ",", r * p->P + prank);
			if (stage_segments(c, sc) != 0)
				rt_die(c, RT_EXIT_RUNTIME, "out of memory");
			/* the ring's receive buffer, touched now: before the
			 * memory baseline, as MPI's own buffers are */
			if (p->R > 1 && sub != MPI_COMM_NULL) {
				sc->ring_buf = malloc(RT_RING_PIECE * sizeof *sc->ring_buf);
				if (!sc->ring_buf)
					rt_die(c, RT_EXIT_RUNTIME, "out of memory");
				memset(sc->ring_buf, 0, RT_RING_PIECE * sizeof *sc->ring_buf);
			}
		}
	}
	free(held);
	tied_init(c);

	MPI_Comm_split(MPI_COMM_WORLD, p->last_stage ? 0 : MPI_UNDEFINED, c->rank, &c->last);
	if (c->last != MPI_COMM_NULL)
		MPI_Comm_set_errhandler(c->last, MPI_ERRORS_RETURN);
	low = p->last_stage ? c->rank : c->nranks;
	MPI_Allreduce(&low, &c->reporter, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
	if (c->reporter >= c->nranks)
		c->reporter = 0;    /* no rank claims the last stage: rank 0 reports */
}

void rt_comm_free(rt_ctx *c)
{
	for (int i = 0; i < c->nstages; i++) {
		if (c->stages[i].comm != MPI_COMM_NULL)
			MPI_Comm_free(&c->stages[i].comm);
		free(c->stages[i].seg_off);
		free(c->stages[i].seg_len);
		free(c->stages[i].ring_buf);
	}
	free(c->stages);
	c->stages = NULL;
	c->nstages = 0;
	for (int i = 0; i < c->ntied; i++)
		if (c->tied[i].comm != MPI_COMM_NULL)
			MPI_Comm_free(&c->tied[i].comm);
	free(c->tied);
	c->tied = NULL;
	c->ntied = 0;
	if (c->last != MPI_COMM_NULL)
		MPI_Comm_free(&c->last);
	if (c->chk != MPI_COMM_NULL)
		MPI_Comm_free(&c->chk);
	if (c->comm != MPI_COMM_NULL)
		MPI_Comm_free(&c->comm);
	free(c->slots);
	c->slots = NULL;
}

/* The sum of every last-stage rank's loss, on the reporter. */
double rt_reduce_loss(rt_ctx *c)
{
	double sum = 0.0;
	MPI_Request r;
	if (c->last == MPI_COMM_NULL)
		return 0.0;
	check(c, MPI_Ireduce(&c->loss_sum, &sum, 1, MPI_DOUBLE, MPI_SUM, 0, c->last, &r),
	      "MPI_Ireduce", "the loss reduction");
	rt_wait_req(c, &r, "the loss reduction", "last-stage ranks");
	return sum;
}
