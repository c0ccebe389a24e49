/* rt_xport_ipc.cu — the CUDA IPC transport (rt_xport.cu describes it),
 * for ranks that share a device: each rank exports its arena and one
 * interprocess event per slot; a send is an event and an MPI notice, a
 * receive a device-to-device copy out of the peer's arena, acknowledged
 * once done (rt_xport_wait.cu's xp_progress).  The replicas' gradients go
 * through the host (rt_xport_host.cu). */
#include <stdlib.h>
#include <string.h>

#include "rt_xport.h"

static void ipc_irecv(rt_ctx *c, int slot, xp_slot *s)
{
	rt_xport *x = rt_cu.xp;
	(void)c;
	(void)slot;
	MPI_OK(MPI_Irecv(&s->nt, (int)sizeof s->nt, MPI_BYTE, s->peer, s->tag, x->c_note, &s->rq[0]),
	       s->what);
}

static void ipc_isend(rt_ctx *c, int slot, xp_slot *s)
{
	rt_xport *x = rt_cu.xp;
	const char *a = c->arena, *b = (const char *)s->buf;
	if (!a || b < a || b + s->bytes > a + c->p->arena_bytes)
		rt_die(c, RT_EXIT_RUNTIME, "%s: the buffer is not in the arena, which is what "
		       "CUDA IPC shares", s->what);
	RT_CU(cudaEventRecord(s->ev_ipc, rt_cu.stream));
	s->nt.off = b - a;
	s->nt.bytes = (int64_t)s->bytes;
	s->nt.slot = slot;
	xp_hdr_fill(c, s, s->nt.hdr);
	MPI_OK(MPI_Irecv(&s->ack_in, 1, MPI_INT, s->peer, s->tag, x->c_ack, &s->rq[1]), s->what);
	MPI_OK(MPI_Isend(&s->nt, (int)sizeof s->nt, MPI_BYTE, s->peer, s->tag, x->c_note,
	                 &s->rq[0]), s->what);
}

static void ipc_wait(rt_ctx *c, int slot, xp_slot *s)
{
	rt_xport *x = rt_cu.xp;
	(void)slot;
	if (s->is_recv) {
		MPI_Status st;
		int count = -1;
		const xp_notice *nt = &s->nt;
		xp_wait_req(c, &s->rq[0], &st, s->what, s->peer);
		if (MPI_Get_count(&st, MPI_BYTE, &count) != MPI_SUCCESS ||
		    count != (int)sizeof *nt || nt->bytes != (int64_t)s->bytes)
			rt_die(c, RT_EXIT_RUNTIME, "%s: rank %d sent %lld bytes, expected %zu",
			       s->what, s->peer, (long long)nt->bytes, s->bytes);
		if (nt->slot < 0 || nt->slot >= x->peer_nslots[s->peer])
			rt_die(c, RT_EXIT_RUNTIME, "%s: bad notice from rank %d", s->what, s->peer);
		if (c->o.check_messages)
			xp_hdr_check(c, s, nt->hdr);
		RT_CU(cudaStreamWaitEvent(rt_cu.stream, x->peer_ev[s->peer][nt->slot], 0));
		RT_CU(cudaMemcpyAsync(s->buf, x->peer_arena[s->peer] + nt->off, s->bytes,
		                      cudaMemcpyDeviceToDevice, rt_cu.stream));
		RT_CU(cudaEventRecord(s->ev_done, rt_cu.stream));
		s->ack_pending = 1;
		xp_progress(c);
	} else {
		xp_wait_req(c, &s->rq[0], MPI_STATUS_IGNORE, s->what, s->peer);
		xp_wait_req(c, &s->rq[1], MPI_STATUS_IGNORE, s->what, s->peer);
	}
}

/* The replicas' gradients: through the host, as host staging does. */
static void ipc_allreduce(rt_ctx *c, int stage, rt_stage_comm *sc, int k)
{
	xp_host_ops.allreduce(c, stage, sc, k);
}

const xp_ops xp_ipc_ops = { ipc_irecv, ipc_isend, ipc_wait, ipc_allreduce };

/* ---- Start-up ---- */

/* Exports the arena and the slots' events, opens those of the peers this
 * rank exchanges messages with on its device (once: opening costs about a
 * millisecond).  Collective.  Returns 0, or -1 on every rank if IPC failed
 * on some rank, with the first failure in why. */
int xp_ipc_setup(rt_ctx *c, const xp_rec *all, int n, char *why, size_t whylen)
{
	rt_xport *x = rt_cu.xp;
	const int nr = c->nranks;
	int maxslots = 0, bad = 0, anybad = 0;
	size_t per;
	char *mine, *hs;
	unsigned char *talk = (unsigned char *)calloc((size_t)nr, 1);
	cudaError_t e = cudaSuccess;
	MPI_Allreduce(&x->nslots, &maxslots, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
	per = sizeof(cudaIpcMemHandle_t) + sizeof(int) + (size_t)maxslots * sizeof(cudaIpcEventHandle_t);
	mine = (char *)calloc(1, per);
	hs = (char *)calloc((size_t)nr, per);
	x->peer_arena = (char **)calloc((size_t)nr, sizeof *x->peer_arena);
	x->peer_ev = (cudaEvent_t **)calloc((size_t)nr, sizeof *x->peer_ev);
	x->peer_nslots = (int *)calloc((size_t)nr, sizeof *x->peer_nslots);
	if (!mine || !hs || !talk || !x->peer_arena || !x->peer_ev || !x->peer_nslots)
		rt_die(c, RT_EXIT_RUNTIME, "out of memory");
	for (int i = 0; i < n; i++) {
		if (all[i].k.src == c->rank)
			talk[all[i].k.dst] = 1;
		if (all[i].k.dst == c->rank)
			talk[all[i].k.src] = 1;
	}
	if (c->arena && (e = cudaIpcGetMemHandle((cudaIpcMemHandle_t *)mine, c->arena)) != cudaSuccess)
		bad = 1;
	memcpy(mine + sizeof(cudaIpcMemHandle_t), &x->nslots, sizeof(int));
	for (int i = 0; i < x->nslots && !bad; i++) {
		cudaIpcEventHandle_t *h = (cudaIpcEventHandle_t *)(mine + sizeof(cudaIpcMemHandle_t) +
		                                                   sizeof(int)) + i;
		if ((e = cudaEventCreateWithFlags(&x->s[i].ev_ipc, cudaEventInterprocess |
		                                                    cudaEventDisableTiming)) != cudaSuccess ||
		    (e = cudaIpcGetEventHandle(h, x->s[i].ev_ipc)) != cudaSuccess)
			bad = 1;
	}
	MPI_Allgather(mine, (int)per, MPI_BYTE, hs, (int)per, MPI_BYTE, MPI_COMM_WORLD);
	for (int r = 0; r < nr && !bad; r++) {
		const char *h = hs + (size_t)r * per;
		int ns;
		if (r == c->rank || !talk[r] || x->peer_mode[r] != XP_IPC)
			continue;
		memcpy(&ns, h + sizeof(cudaIpcMemHandle_t), sizeof(int));
		x->peer_nslots[r] = ns;
		x->peer_ev[r] = (cudaEvent_t *)calloc((size_t)ns + 1, sizeof(cudaEvent_t));
		if (!x->peer_ev[r])
			rt_die(c, RT_EXIT_RUNTIME, "out of memory");
		if ((e = cudaIpcOpenMemHandle((void **)&x->peer_arena[r],
		                              *(const cudaIpcMemHandle_t *)h,
		                              cudaIpcMemLazyEnablePeerAccess)) != cudaSuccess) {
			bad = 1;
			break;
		}
		for (int i = 0; i < ns && !bad; i++) {
			cudaIpcEventHandle_t eh;
			memcpy(&eh, h + sizeof(cudaIpcMemHandle_t) + sizeof(int) + (size_t)i * sizeof eh,
			       sizeof eh);
			if ((e = cudaIpcOpenEventHandle(&x->peer_ev[r][i], eh)) != cudaSuccess)
				bad = 1;
		}
	}
	if (bad) {
		snprintf(why, whylen, "rank %d: %s", c->rank, cudaGetErrorString(e));
		(void)cudaGetLastError();
	}
	free(mine);
	free(hs);
	free(talk);
	MPI_Allreduce(&bad, &anybad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
	if (anybad) {
		for (int r = 0; r < nr; r++)
			if (x->peer_arena[r]) {
				(void)cudaIpcCloseMemHandle(x->peer_arena[r]);
				x->peer_arena[r] = NULL;
			}
		return -1;
	}
	MPI_Comm_dup(MPI_COMM_WORLD, &x->c_note);
	MPI_Comm_dup(MPI_COMM_WORLD, &x->c_ack);
	MPI_Comm_set_errhandler(x->c_note, MPI_ERRORS_RETURN);
	MPI_Comm_set_errhandler(x->c_ack, MPI_ERRORS_RETURN);
	return 0;
}

void xp_ipc_free(rt_ctx *c, rt_xport *x)
{
	for (int r = 0; x->peer_arena && c && r < c->nranks; r++) {
		if (x->peer_arena[r])
			cudaIpcCloseMemHandle(x->peer_arena[r]);
		if (x->peer_ev && x->peer_ev[r]) {
			for (int i = 0; i < x->peer_nslots[r]; i++)
				if (x->peer_ev[r][i])
					cudaEventDestroy(x->peer_ev[r][i]);
			free(x->peer_ev[r]);
		}
	}
	for (int i = 0; i < x->nslots; i++)
		if (x->s[i].ev_ipc)
			cudaEventDestroy(x->s[i].ev_ipc);
	if (x->c_note != MPI_COMM_NULL)
		MPI_Comm_free(&x->c_note);
	if (x->c_ack != MPI_COMM_NULL)
		MPI_Comm_free(&x->c_ack);
	free(x->peer_arena);
	free(x->peer_ev);
	free(x->peer_nslots);
}
