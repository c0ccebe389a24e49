/* rt_xport.cu — pipert.h's transport between GPU ranks.
 *
 * Three ways to move a message, chosen at start-up from what every rank
 * learnt in the dry run of one step (which slots, peers, tags, sizes) and
 * which device each rank drives:
 *
 * NCCL (every rank on its own device).  One communicator and one stream per
 *   CHANNEL — one direction of one stage boundary of one replica, split from
 *   the job's communicator — so that on each channel both ends issue their
 *   operations in the same order: NCCL matches point-to-point calls in issue
 *   order, not by tag, and a send holds its stream until the peer's receive
 *   runs.  The dry run's record is compared at start-up: a schedule whose
 *   sender and receiver disagree on a channel's micro-batch order cannot use
 *   NCCL (auto: host staging instead; PIPEC_TRANSPORT=nccl: refused).
 *     rt_isend: event on the compute stream after the producers; the
 *               channel stream waits on it and issues ncclSend
 *     rt_irecv: the same gate (the buffer's previous readers are done),
 *               then ncclRecv
 *     rt_wait:  the compute stream waits on an event recorded after the
 *               operation: a receive's data, or a send's completion
 *   Nothing blocks the host, so a whole step, NCCL included, can be
 *   captured as one CUDA graph.  Replicas' gradients: ncclAllReduce per
 *   stage on the compute stream.
 *
 * CUDA IPC (ranks sharing a device; NCCL 2.28 refuses two ranks on one GPU).
 *   Each rank exports its arena and one interprocess event per slot once.
 *     rt_isend: records the slot's event after the producers and sends the
 *               receiver a notice (offset, size, --check-messages header) over
 *               MPI; posts the receive of the acknowledgement
 *     rt_wait (receive): waits on the host for the notice, makes the compute
 *               stream wait on the sender's event, copies peer arena → own
 *               buffer (cudaMemcpyAsync, device to device) and records its
 *               own event; when that event has completed — polled while the
 *               host waits for anything — it acknowledges
 *     rt_wait (send): waits on the host for the acknowledgement: the copy
 *               has read the buffer, which may now be reused
 *   An event is re-recorded only after the acknowledgement that its last
 *   record was consumed, so no wait can refer to a later record.
 *
 * Host staging (different devices without NCCL, or IPC failed): the CPU
 *   runtime's MPI transport (rt_mpi_*, rt_comm.c) on pinned host copies.
 *
 * IPC and host staging call MPI inside the step, which a CUDA graph cannot
 * capture: with them graphs are off, and the summary says so.
 *
 * This file is what the three share: the slots, the dry run's record and
 * the choice at start-up, pipert.h's entry points, which dispatch to the
 * peer's transport through xp_ops (rt_xport.h): rt_xport_nccl.cu,
 * rt_xport_ipc.cu, rt_xport_host.cu.  Waiting on the host, with the IPC
 * acknowledgements' progress, is rt_xport_wait.cu's, which the transports
 * call too: it calls none of them, so no call returns to this file.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rt_xport.h"

static const char *const mode_names[] = { "none", "nccl", "cuda-ipc", "host-staged" };

/* Each peer's transport (x->peer_mode) and the job's (x->mode, for the
 * replicas' allreduce): a peer of no transport (XP_NONE) is staged through
 * the host, as the CPU runtime would. */
static const xp_ops *const xp_table[] = {
	&xp_host_ops,           /* XP_NONE */
	&xp_nccl_ops,           /* XP_NCCL */
	&xp_ipc_ops,            /* XP_IPC */
	&xp_host_ops,           /* XP_HOST */
};

static int tag_mb(int tag) { return RT_TAG_MB(tag); }

/* ---- Slots. ---- */

static xp_slot *slot_get(rt_ctx *c, int slot, const char *what)
{
	rt_xport *x = rt_cu.xp;
	xp_slot *s;
	if (!x || slot < 0 || slot >= x->nslots)
		rt_die(c, RT_EXIT_RUNTIME, "%s: slot %d out of range (the program has %d)", what, slot,
		       x ? x->nslots : 0);
	s = &x->s[slot];
	if (s->busy)
		rt_die(c, RT_EXIT_RUNTIME, "%s: slot %d is still in use by %s", what, slot, s->what);
	return s;
}

static void post_checks(rt_ctx *c, int peer, int tag, const char *what)
{
	if (peer < 0 || peer >= c->nranks || peer == c->rank)
		rt_die(c, RT_EXIT_RUNTIME, "%s: bad peer %d", what, peer);
	if (tag < 0 || tag > c->tag_ub)
		rt_die(c, RT_EXIT_RUNTIME, "%s: tag %d outside MPI's range 0..%d", what, tag, c->tag_ub);
}

static void record(rt_ctx *c, int src, int dst, int tag, int recv)
{
	rt_xport *x = rt_cu.xp;
	if (x->nrec == x->caprec) {
		int cap = x->caprec ? 2 * x->caprec : 256;
		xp_rec *r = (xp_rec *)realloc(x->rec, (size_t)cap * sizeof *r);
		if (!r)
			rt_die(c, RT_EXIT_RUNTIME, "out of memory");
		x->rec = r;
		x->caprec = cap;
	}
	x->rec[x->nrec++] = (xp_rec){ { src, dst, xp_tag_stage(tag), xp_tag_dir(tag) }, tag_mb(tag),
	                              recv };
}

/* ---- pipert.h ---- */

extern "C" void rt_irecv(rt_ctx *c, int slot, void *buf, size_t bytes, int peer, int tag,
                         const char *what)
{
	rt_xport *x = rt_cu.xp;
	xp_slot *s = slot_get(c, slot, what);
	post_checks(c, peer, tag, what);
	xp_settle(c, s);
	s->busy = 1;
	s->is_recv = 1;
	s->peer = peer;
	s->tag = tag;
	s->bytes = bytes;
	s->buf = buf;
	s->what = what;
	if (rt_cu.dry) {
		record(c, peer, c->rank, tag, 1);
		return;
	}
	s->mode = x->peer_mode[peer];
	xp_table[s->mode]->irecv(c, slot, s);
}

extern "C" void rt_isend(rt_ctx *c, int slot, const void *buf, size_t bytes, int peer, int tag,
                         const char *what)
{
	rt_xport *x = rt_cu.xp;
	xp_slot *s = slot_get(c, slot, what);
	post_checks(c, peer, tag, what);
	xp_settle(c, s);
	s->busy = 1;
	s->is_recv = 0;
	s->peer = peer;
	s->tag = tag;
	s->bytes = bytes;
	s->buf = (void *)buf;
	s->what = what;
	if (rt_cu.dry) {
		record(c, c->rank, peer, tag, 0);
		return;
	}
	c->sent_bytes += (int64_t)bytes;
	s->mode = x->peer_mode[peer];
	xp_table[s->mode]->isend(c, slot, s);
}

/* A 16-bit program's messages: sent as the f32 slots that hold them
 * (hdr + 4n bytes, the compiler's packing buffer unused).  Packing on the
 * device needs a kernel on each side and a receive buffer apart from the
 * destination: not done yet (docs/precision.md). */
extern "C" void rt_irecv16(rt_ctx *c, int slot, void *buf, size_t hdr, int64_t n, int peer,
                           int tag, const char *what)
{
	rt_irecv(c, slot, buf, hdr + 4 * (size_t)n, peer, tag, what);
}

extern "C" void rt_isend16(rt_ctx *c, int slot, const void *buf, void *pack, size_t hdr,
                           int64_t n, int peer, int tag, const char *what)
{
	(void)pack;
	rt_isend(c, slot, buf, hdr + 4 * (size_t)n, peer, tag, what);
}

extern "C" void rt_wait(rt_ctx *c, int slot)
{
	rt_xport *x = rt_cu.xp;
	xp_slot *s;
	if (!x || slot < 0 || slot >= x->nslots)
		rt_die(c, RT_EXIT_RUNTIME, "rt_wait: slot %d out of range (the program has %d)", slot,
		       x ? x->nslots : 0);
	s = &x->s[slot];
	if (!s->busy)
		rt_die(c, RT_EXIT_RUNTIME, "rt_wait: slot %d has nothing posted (last: %s)", slot,
		       s->what ? s->what : "none");
	s->busy = 0;
	if (rt_cu.dry)
		return;
	xp_table[s->mode]->wait(c, slot, s);
}

extern "C" void rt_allreduce(rt_ctx *c, int stage)
{
	rt_xport *x = rt_cu.xp;
	rt_stage_comm *sc = NULL;
	int k = -1;
	if (rt_cu.dry || c->p->R <= 1)
		return;
	for (int i = 0; i < c->nstages; i++)
		if (c->stages[i].stage == stage) {
			sc = &c->stages[i];
			k = i;
		}
	if (!sc)
		return;
	xp_table[x->mode]->allreduce(c, stage, sc, k);
}

/* ---- Start-up. ---- */

extern "C" void rt_xp_dry_begin(rt_ctx *c)
{
	rt_xport *x = rt_cu.xp;
	if (!x) {
		x = rt_cu.xp = (rt_xport *)calloc(1, sizeof *x);
		if (!x)
			rt_die(c, RT_EXIT_RUNTIME, "out of memory");
		x->nslots = c->p->nslots > 0 ? c->p->nslots : 0;
		x->s = (xp_slot *)calloc((size_t)x->nslots + 1, sizeof *x->s);
		x->peer_mode = (int *)calloc((size_t)c->nranks, sizeof *x->peer_mode);
		if (!x->s || !x->peer_mode)
			rt_die(c, RT_EXIT_RUNTIME, "out of memory");
		x->c_note = x->c_ack = MPI_COMM_NULL;
	}
	x->nrec = 0;
}

/* Does every channel's sender issue its micro-batches in the order its
 * receiver posts them?  `all` holds every rank's record in rank order, each
 * in issue order (a channel's sends all come from one rank, its receives
 * from another).  On a mismatch, says which in why. */
static int fifo_ok(const xp_rec *all, int n, char *why, size_t whylen)
{
	for (int i = 0; i < n; i++) {
		const xp_key *k = &all[i].k;
		int j = 0, r = 0, m = 0, first = 1;
		for (int q = 0; q < i && first; q++)
			first = xp_cmp_key(&all[q].k, k) != 0;
		if (!first)
			continue;
		/* the channel's sends (j) and receives (r), side by side */
		for (;; m++, j++, r++) {
			while (j < n && (all[j].recv || xp_cmp_key(&all[j].k, k)))
				j++;
			while (r < n && (!all[r].recv || xp_cmp_key(&all[r].k, k)))
				r++;
			if (j >= n && r >= n)
				break;
			if (j < n && r < n && all[j].mb == all[r].mb)
				continue;
			snprintf(why, whylen, "rank %d sends stage %d's %s messages to rank %d in "
			         "another order than rank %d posts their receives (message %d: "
			         "micro-batch %d sent, %d posted)", k->src, k->stage,
			         k->dir ? "backward" : "forward", k->dst, k->dst, m,
			         j < n ? all[j].mb : -1, r < n ? all[r].mb : -1);
			return 0;
		}
	}
	return 1;
}

/* Collective: the whole job's records on every rank. */
static xp_rec *gather_records(rt_ctx *c, int *ntotal)
{
	rt_xport *x = rt_cu.xp;
	int *cnt = (int *)calloc((size_t)c->nranks, sizeof *cnt);
	int *dsp = (int *)calloc((size_t)c->nranks, sizeof *dsp);
	int mine = x->nrec * (int)sizeof(xp_rec), total = 0;
	xp_rec *all;
	if (!cnt || !dsp)
		rt_die(c, RT_EXIT_RUNTIME, "out of memory");
	MPI_Allgather(&mine, 1, MPI_INT, cnt, 1, MPI_INT, MPI_COMM_WORLD);
	for (int r = 0; r < c->nranks; r++) {
		dsp[r] = total;
		total += cnt[r];
	}
	all = (xp_rec *)malloc((size_t)total + sizeof(xp_rec));
	if (!all)
		rt_die(c, RT_EXIT_RUNTIME, "out of memory");
	MPI_Allgatherv(x->rec, mine, MPI_BYTE, all, cnt, dsp, MPI_BYTE, MPI_COMM_WORLD);
	*ntotal = total / (int)sizeof(xp_rec);
	free(cnt);
	free(dsp);
	return all;
}

extern "C" int rt_xp_setup(rt_ctx *c)
{
	rt_xport *x = rt_cu.xp;
	const int nr = c->nranks;
	const char *want = getenv("PIPEC_TRANSPORT");
	unsigned char (*ids)[32];
	unsigned char me[32];
	char host[64] = "", why[256] = "";
	int n = 0, shared = 0, fifo, comm_any, mode;
	xp_rec *all = gather_records(c, &n);

	if (want && !*want)
		want = NULL;
	if (want && strcmp(want, "auto") && strcmp(want, "nccl") && strcmp(want, "ipc") &&
	    strcmp(want, "host")) {
		rt_defer(c, "PIPEC_TRANSPORT='%s': expected auto, nccl, ipc or host", want);
		free(all);
		return RT_EXIT_USAGE;
	}

	/* Which ranks drive the same device: the device's UUID and the host. */
	ids = (unsigned char (*)[32])calloc((size_t)nr, 32);
	if (!ids)
		rt_die(c, RT_EXIT_RUNTIME, "out of memory");
	memset(me, 0, sizeof me);
	memcpy(me, rt_cu.uuid, 16);
	gethostname(host, sizeof host - 1);
	{
		uint64_t h = rt_hash_name(host);
		memcpy(me + 16, &h, sizeof h);
	}
	MPI_Allgather(me, 32, MPI_BYTE, ids, 32, MPI_BYTE, MPI_COMM_WORLD);
	for (int a = 0; a < nr; a++)
		for (int b = a + 1; b < nr; b++)
			shared |= !memcmp(ids[a], ids[b], 32);

	fifo = fifo_ok(all, n, why, sizeof why);
	comm_any = n > 0 || c->p->R > 1;
	if (!comm_any)
		mode = XP_NONE;
	else if (want && !strcmp(want, "nccl"))
		mode = XP_NCCL;
	else if (want && (!strcmp(want, "ipc") || !strcmp(want, "host")))
		mode = XP_IPC;      /* per peer below */
	else
		mode = !shared && fifo ? XP_NCCL : XP_IPC;
	if (mode == XP_NCCL && !fifo) {
		rt_defer(c, "PIPEC_TRANSPORT=nccl: %s; NCCL matches messages in issue order, so this "
		         "schedule needs PIPEC_TRANSPORT=host", why);
		free(all);
		free(ids);
		return RT_EXIT_RUNTIME;
	}
	if (mode == XP_NCCL && shared)
		snprintf(x->note, sizeof x->note, "ranks share a device: NCCL needs a version that "
		         "allows it (NCCL_MULTI_RANK_GPU_ENABLE=1, NCCL >= 2.30)");
	else if (comm_any && !fifo && mode != XP_NCCL)
		snprintf(x->note, sizeof x->note, "not NCCL: %s", why);
	else if (comm_any && shared && mode != XP_NCCL)
		snprintf(x->note, sizeof x->note, "ranks share a device (NCCL refuses that)");
	x->mode = mode;
	for (int r = 0; r < nr; r++)
		x->peer_mode[r] = mode == XP_NCCL ? XP_NCCL
		                  : mode == XP_NONE ? XP_NONE
		                  : (!memcmp(ids[r], ids[c->rank], 32) &&
		                     !(want && !strcmp(want, "host"))) ? XP_IPC : XP_HOST;

	for (int i = 0; i < x->nslots; i++) {
		RT_CU(cudaEventCreateWithFlags(&x->s[i].ev_post, cudaEventDisableTiming));
		RT_CU(cudaEventCreateWithFlags(&x->s[i].ev_done, cudaEventDisableTiming));
	}
	if (mode == XP_NCCL)
		xp_nccl_setup(c, all, n);
	/* Collective: every rank takes this branch or none (same env, same ids). */
	why[0] = 0;
	if (mode == XP_IPC && shared && !(want && !strcmp(want, "host")) &&
	    xp_ipc_setup(c, all, n, why, sizeof why) != 0) {
		for (int r = 0; r < nr; r++)
			if (x->peer_mode[r] == XP_IPC)
				x->peer_mode[r] = XP_HOST;
		snprintf(x->note, sizeof x->note, "CUDA IPC could not be set up (%s): staged through "
		         "host memory", why[0] ? why : "on another rank");
	}
	if (mode != XP_NCCL && mode != XP_NONE && c->p->R > 1 &&
	    cudaMallocHost((void **)&x->h_grad, (size_t)c->p->nweights * sizeof(float) + 4) !=
	        cudaSuccess)
		rt_die(c, RT_EXIT_RUNTIME, "out of pinned host memory for the gradients");

	/* The job's name for it: every mode some rank uses. */
	{
		int used[4] = { 0 }, any[4] = { 0 };
		for (int r = 0; r < nr; r++)
			if (r != c->rank)
				used[x->peer_mode[r]] = 1;
		MPI_Allreduce(used, any, 4, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
		if (mode == XP_NONE)
			snprintf(x->name, sizeof x->name, "none");
		else if (mode == XP_NCCL)
			snprintf(x->name, sizeof x->name, "nccl");
		else
			snprintf(x->name, sizeof x->name, "%s%s%s", any[XP_IPC] ? mode_names[XP_IPC] : "",
			         any[XP_IPC] && any[XP_HOST] ? "+" : "",
			         any[XP_HOST] ? mode_names[XP_HOST] : "");
	}
	free(all);
	free(ids);
	return 0;
}

extern "C" const char *rt_xp_name(rt_ctx *c)
{
	(void)c;
	return rt_cu.xp ? rt_cu.xp->name : "none";
}

extern "C" const char *rt_xp_note(rt_ctx *c)
{
	(void)c;
	return rt_cu.xp && rt_cu.xp->note[0] ? rt_cu.xp->note : NULL;
}

extern "C" int rt_xp_graph_safe(rt_ctx *c)
{
	(void)c;
	return !rt_cu.xp || rt_cu.xp->mode == XP_NCCL || rt_cu.xp->mode == XP_NONE;
}

extern "C" void rt_xp_free(rt_ctx *c)
{
	rt_xport *x = rt_cu.xp;
	if (!x)
		return;
	xp_nccl_free(c, x);
	xp_ipc_free(c, x);
	xp_host_free(c, x);
	for (int i = 0; i < x->nslots; i++) {
		xp_slot *s = &x->s[i];
		if (s->ev_post)
			cudaEventDestroy(s->ev_post);
		if (s->ev_done)
			cudaEventDestroy(s->ev_done);
	}
	free(x->peer_mode);
	free(x->rec);
	free(x->s);
	free(x);
	rt_cu.xp = NULL;
}
