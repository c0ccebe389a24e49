/* rt_xport_nccl.cu — the NCCL transport (rt_xport.cu describes it): one
 * communicator and one stream per channel, ncclSend/ncclRecv gated by
 * events on the compute stream, nothing blocking the host; the replicas'
 * gradients by ncclAllReduce per stage. */
#include <stdlib.h>

#include "rt_xport.h"

#define NCCL(call) nccl_check((call), #call, __FILE__, __LINE__)
static void nccl_check(ncclResult_t r, const char *call, const char *file, int line)
{
	if (r != ncclSuccess && r != ncclInProgress)
		rt_cu_fail("%s failed: %s (%s) at %s:%d", call, ncclGetErrorString(r),
		           ncclGetLastError(NULL), file, line);
}

static xp_chan *chan_of(rt_ctx *c, int src, int dst, int tag, const char *what)
{
	rt_xport *x = rt_cu.xp;
	int st = xp_tag_stage(tag), dir = xp_tag_dir(tag);
	for (int i = 0; i < x->nch; i++) {
		xp_chan *h = &x->ch[i];
		if (h->k.src == src && h->k.dst == dst && h->k.stage == st && h->k.dir == dir && h->comm)
			return h;
	}
	rt_die(c, RT_EXIT_RUNTIME, "%s: no NCCL channel from rank %d to rank %d for stage %d "
	       "(the step differs from its dry run)", what, src, dst, st);
}

static void nccl_irecv(rt_ctx *c, int slot, xp_slot *s)
{
	xp_chan *h = chan_of(c, s->peer, c->rank, s->tag, s->what);
	(void)slot;
	RT_CU(cudaEventRecord(s->ev_post, rt_cu.stream));
	RT_CU(cudaStreamWaitEvent(h->stream, s->ev_post, 0));
	NCCL(ncclRecv(s->buf, s->bytes, ncclInt8, 0, h->comm, h->stream));
	if (c->o.check_messages)
		NCCL(ncclRecv(s->d_hdr, H_N, ncclInt64, 0, h->comm, h->stream));
	RT_CU(cudaEventRecord(s->ev_done, h->stream));
}

static void nccl_isend(rt_ctx *c, int slot, xp_slot *s)
{
	xp_chan *h = chan_of(c, c->rank, s->peer, s->tag, s->what);
	(void)slot;
	RT_CU(cudaEventRecord(s->ev_post, rt_cu.stream));
	RT_CU(cudaStreamWaitEvent(h->stream, s->ev_post, 0));
	NCCL(ncclSend(s->buf, s->bytes, ncclInt8, 1, h->comm, h->stream));
	if (c->o.check_messages) {
		xp_hdr_fill(c, s, s->h_hdr);
		RT_CU(cudaMemcpyAsync(s->d_hdr, s->h_hdr, H_N * sizeof(int64_t),
		                      cudaMemcpyHostToDevice, h->stream));
		NCCL(ncclSend(s->d_hdr, H_N, ncclInt64, 1, h->comm, h->stream));
	}
	RT_CU(cudaEventRecord(s->ev_done, h->stream));
}

static void nccl_wait(rt_ctx *c, int slot, xp_slot *s)
{
	(void)slot;
	RT_CU(cudaStreamWaitEvent(rt_cu.stream, s->ev_done, 0));
	if (c->o.check_messages && s->is_recv) {
		RT_CU(cudaEventSynchronize(s->ev_done));
		RT_CU(cudaMemcpy(s->h_hdr, s->d_hdr, H_N * sizeof(int64_t), cudaMemcpyDeviceToHost));
		xp_hdr_check(c, s, s->h_hdr);
	}
}

static void nccl_allreduce(rt_ctx *c, int stage, rt_stage_comm *sc, int k)
{
	rt_xport *x = rt_cu.xp;
	(void)stage;
	if (!x->stage_nccl || !x->stage_nccl[k])
		return;
	for (int j = 0; j < sc->nseg; j++)
		NCCL(ncclAllReduce(c->g + sc->seg_off[j], c->g + sc->seg_off[j],
		                   (size_t)sc->seg_len[j], ncclFloat, ncclSum, x->stage_nccl[k],
		                   rt_cu.stream));
}

const xp_ops xp_nccl_ops = { nccl_irecv, nccl_isend, nccl_wait, nccl_allreduce };

/* ---- Start-up ---- */

static int cmp_chan(const void *a, const void *b)
{
	return xp_cmp_key(&((const xp_chan *)a)->k, &((const xp_chan *)b)->k);
}

int xp_nccl_setup(rt_ctx *c, const xp_rec *all, int n)
{
	rt_xport *x = rt_cu.xp;
	ncclUniqueId id;
	int maxheld = 0;
	if (c->rank == 0)
		NCCL(ncclGetUniqueId(&id));
	MPI_Bcast(&id, (int)sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
	NCCL(ncclCommInitRank(&x->world, c->nranks, id, c->rank));

	/* The channels, in one order on every rank: each split is collective. */
	x->ch = (xp_chan *)calloc((size_t)n + 1, sizeof *x->ch);
	if (!x->ch)
		rt_die(c, RT_EXIT_RUNTIME, "out of memory");
	for (int i = 0; i < n; i++) {
		int k;
		for (k = 0; k < x->nch && xp_cmp_key(&x->ch[k].k, &all[i].k); k++)
			;
		if (k == x->nch)
			x->ch[x->nch++].k = all[i].k;
	}
	qsort(x->ch, (size_t)x->nch, sizeof *x->ch, cmp_chan);
	for (int i = 0; i < x->nch; i++) {
		xp_chan *h = &x->ch[i];
		int member = h->k.src == c->rank || h->k.dst == c->rank;
		/* key: the sender is 0 and the receiver 1 in the channel's comm */
		NCCL(ncclCommSplit(x->world, member ? 0 : NCCL_SPLIT_NOCOLOR, h->k.dst == c->rank,
		                   &h->comm, NULL));
		if (member)
			RT_CU(cudaStreamCreateWithFlags(&h->stream, cudaStreamNonBlocking));
		else
			h->comm = NULL;
	}

	/* Replicas: one communicator per stage, rt_comm_init's grouping. */
	if (c->p->R > 1) {
		MPI_Allreduce(&c->nstages, &maxheld, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
		x->stage_nccl = (ncclComm_t *)calloc((size_t)c->nstages + 1, sizeof *x->stage_nccl);
		if (!x->stage_nccl)
			rt_die(c, RT_EXIT_RUNTIME, "out of memory");
		for (int k = 0; k < maxheld; k++) {
			ncclComm_t sub = NULL;
			NCCL(ncclCommSplit(x->world, k < c->nstages ? c->stages[k].stage
			                                           : NCCL_SPLIT_NOCOLOR, c->rank, &sub,
			                   NULL));
			if (k < c->nstages)
				x->stage_nccl[k] = sub;
		}
	}
	if (c->o.check_messages)
		for (int i = 0; i < x->nslots; i++) {
			RT_CU(cudaMalloc((void **)&x->s[i].d_hdr, H_N * sizeof(int64_t)));
			RT_CU(cudaMallocHost((void **)&x->s[i].h_hdr, H_N * sizeof(int64_t)));
		}
	return 0;
}

void xp_nccl_free(rt_ctx *c, rt_xport *x)
{
	for (int i = 0; i < x->nch; i++) {
		if (x->ch[i].comm)
			ncclCommDestroy(x->ch[i].comm);
		if (x->ch[i].stream)
			cudaStreamDestroy(x->ch[i].stream);
	}
	if (x->stage_nccl) {
		for (int k = 0; c && k < c->nstages; k++)
			if (x->stage_nccl[k])
				ncclCommDestroy(x->stage_nccl[k]);
		free(x->stage_nccl);
	}
	if (x->world)
		ncclCommDestroy(x->world);
	for (int i = 0; i < x->nslots; i++) {
		if (x->s[i].d_hdr)
			cudaFree(x->s[i].d_hdr);
		if (x->s[i].h_hdr)
			cudaFreeHost(x->s[i].h_hdr);
	}
	free(x->ch);
}
