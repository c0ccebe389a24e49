/* rt_xport_host.cu — host staging (rt_xport.cu describes it): for ranks
 * on different devices without NCCL, or where CUDA IPC failed, the CPU
 * runtime's MPI transport (rt_mpi_*, rt_comm.c) moves pinned host copies
 * of the messages; the replicas' gradients go through the CPU runtime's
 * allreduce on a pinned copy (for CUDA IPC jobs too). */
#include "rt_xport.h"

static void stage_fit(rt_ctx *c, xp_slot *s, size_t bytes)
{
	if (bytes <= s->stage_cap)
		return;
	if (s->stage)
		RT_CU(cudaFreeHost(s->stage));
	if (cudaMallocHost(&s->stage, bytes) != cudaSuccess)
		rt_die(c, RT_EXIT_RUNTIME, "out of pinned host memory for a %zu-byte message", bytes);
	s->stage_cap = bytes;
}

static void host_irecv(rt_ctx *c, int slot, xp_slot *s)
{
	/* The staging buffer is free once the last copy out of it ran. */
	if (s->h2d_pending) {
		RT_CU(cudaEventSynchronize(s->ev_done));
		s->h2d_pending = 0;
	}
	stage_fit(c, s, s->bytes);
	rt_mpi_irecv(c, slot, s->stage, s->bytes, s->peer, s->tag, s->what);
}

static void host_isend(rt_ctx *c, int slot, xp_slot *s)
{
	/* The CPU transport sends host memory: stage the message now. */
	stage_fit(c, s, s->bytes);
	RT_CU(cudaMemcpyAsync(s->stage, s->buf, s->bytes, cudaMemcpyDeviceToHost, rt_cu.stream));
	RT_CU(cudaEventRecord(s->ev_done, rt_cu.stream));
	RT_CU(cudaEventSynchronize(s->ev_done));
	rt_mpi_isend(c, slot, s->stage, s->bytes, s->peer, s->tag, s->what);
}

static void host_wait(rt_ctx *c, int slot, xp_slot *s)
{
	xp_flush_acks(c);
	rt_mpi_wait(c, slot);
	if (s->is_recv) {
		RT_CU(cudaMemcpyAsync(s->buf, s->stage, s->bytes, cudaMemcpyHostToDevice,
		                      rt_cu.stream));
		RT_CU(cudaEventRecord(s->ev_done, rt_cu.stream));
		s->h2d_pending = 1;
	}
}

/* Through the host: the CPU runtime's allreduce on a pinned copy. */
static void host_allreduce(rt_ctx *c, int stage, rt_stage_comm *sc, int k)
{
	rt_xport *x = rt_cu.xp;
	(void)k;
	xp_flush_acks(c);
	for (int j = 0; j < sc->nseg; j++)
		RT_CU(cudaMemcpyAsync(x->h_grad + sc->seg_off[j], c->g + sc->seg_off[j],
		                      (size_t)sc->seg_len[j] * sizeof(float), cudaMemcpyDeviceToHost,
		                      rt_cu.stream));
	RT_CU(cudaStreamSynchronize(rt_cu.stream));
	{
		float *dev = c->g;
		c->g = x->h_grad;
		rt_mpi_allreduce(c, stage);
		c->g = dev;
	}
	for (int j = 0; j < sc->nseg; j++)
		RT_CU(cudaMemcpyAsync(c->g + sc->seg_off[j], x->h_grad + sc->seg_off[j],
		                      (size_t)sc->seg_len[j] * sizeof(float), cudaMemcpyHostToDevice,
		                      rt_cu.stream));
	/* The next step overwrites the staging copy: the upload must be done. */
	RT_CU(cudaStreamSynchronize(rt_cu.stream));
}

const xp_ops xp_host_ops = { host_irecv, host_isend, host_wait, host_allreduce };

void xp_host_free(rt_ctx *c, rt_xport *x)
{
	(void)c;
	for (int i = 0; i < x->nslots; i++)
		if (x->s[i].stage)
			cudaFreeHost(x->s[i].stage);
	if (x->h_grad)
		cudaFreeHost(x->h_grad);
}
