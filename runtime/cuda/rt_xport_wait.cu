/* rt_xport_wait.cu — waiting on the host, for every transport of the CUDA
 * runtime (rt_xport.cu describes them): MPI requests waited for with
 * backoff and --timeout, meanwhile progressing the CUDA IPC receives'
 * acknowledgements (xp_progress); a slot settled before reuse; the end of
 * a step (rt_xp_sync); and MPI's result checks (MPI_OK).  It calls no
 * transport: rt_xport.cu and the transports call it. */
#define _POSIX_C_SOURCE 200809L
#include <sched.h>
#include <time.h>

#include "rt_xport.h"

void xp_mpi_check(int rc, const char *call, const char *what)
{
	char s[MPI_MAX_ERROR_STRING];
	int len = 0;
	if (rc == MPI_SUCCESS)
		return;
	MPI_Error_string(rc, s, &len);
	rt_cu_fail("%s failed for %s: %s", call, what, s);
}

/* ---- Waiting on the host, with the transport's progress. ---- */

/* IPC receives acknowledge their copies here, whenever the host waits. */
void xp_progress(rt_ctx *c)
{
	rt_xport *x = rt_cu.xp;
	for (int i = 0; x && i < x->nslots; i++) {
		xp_slot *s = &x->s[i];
		int done = 0;
		if (s->ack_out) {
			MPI_OK(MPI_Test(&s->rq_ack, &done, MPI_STATUS_IGNORE), "an acknowledgement");
			if (done)
				s->ack_out = 0;
		}
		if (s->ack_pending && !s->ack_out) {
			cudaError_t e = cudaEventQuery(s->ev_done);
			if (e == cudaErrorNotReady)
				continue;
			RT_CU(e);
			MPI_OK(MPI_Isend(&s->ack_val, 1, MPI_INT, s->peer, s->tag, x->c_ack, &s->rq_ack),
			       s->what);
			s->ack_pending = 0;
			s->ack_out = 1;
		}
	}
	(void)c;
}

typedef struct {
	double start;
	long spins;
} backoff;

/* Spin, then yield, then sleep; dies after --timeout naming what it waited for. */
static void backoff_step(rt_ctx *c, backoff *b, const char *what, const char *peer)
{
	double now;
	if (++b->spins % 64)
		return;
	now = rt_now();
	if (b->start < 0.0)
		b->start = now;
	if (now - b->start > c->o.timeout)
		rt_die(c, RT_EXIT_RUNTIME, "timed out after %g s waiting for %s (peer %s)",
		       c->o.timeout, what, peer);
	if (now - b->start < 50e-6) {
		return;
	} else if (now - b->start < 2e-3) {
		sched_yield();
	} else {
		struct timespec ts = { 0, 50000 };
		nanosleep(&ts, NULL);
	}
}

void xp_wait_req(rt_ctx *c, MPI_Request *rq, MPI_Status *st, const char *what, int peer)
{
	backoff b = { -1.0, 0 };
	char ps[16];
	snprintf(ps, sizeof ps, "%d", peer);
	for (;;) {
		int done = 0;
		MPI_OK(MPI_Test(rq, &done, st), what);
		if (done)
			return;
		xp_progress(c);
		backoff_step(c, &b, what, ps);
	}
}

/* A slot about to be reused: its IPC acknowledgement (owed to the last
 * peer, under the last tag) is sent first. */
void xp_settle(rt_ctx *c, xp_slot *s)
{
	if (s->ack_pending) {
		RT_CU(cudaEventSynchronize(s->ev_done));
		xp_progress(c);
	}
	if (s->ack_out) {
		xp_wait_req(c, &s->rq_ack, MPI_STATUS_IGNORE, s->what, s->peer);
		s->ack_out = 0;
	}
}

/* Every pending acknowledgement sent and delivered: before a wait that
 * does not progress (host staging, collectives) and at the end of a step. */
void xp_flush_acks(rt_ctx *c)
{
	rt_xport *x = rt_cu.xp;
	for (int i = 0; x && i < x->nslots; i++)
		xp_settle(c, &x->s[i]);
}

extern "C" void rt_xp_sync(rt_ctx *c)
{
	rt_xport *x = rt_cu.xp;
	backoff b = { -1.0, 0 };
	for (;;) {
		cudaError_t e = cudaStreamQuery(rt_cu.stream);
		if (e == cudaSuccess)
			break;
		if (e != cudaErrorNotReady)
			RT_CU(e);
		xp_progress(c);
		backoff_step(c, &b, "the step's device work", x && x->mode == XP_NCCL ? "NCCL peers"
		                                                                     : "any");
	}
	for (int i = 0; x && i < x->nch; i++)
		if (x->ch[i].stream)
			RT_CU(cudaStreamSynchronize(x->ch[i].stream));
	xp_flush_acks(c);
}
