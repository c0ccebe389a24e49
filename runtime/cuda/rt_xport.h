/* rt_xport.h — what the files of the CUDA transport share: the slot,
 * channel and dry-run record types, the transport's state (struct
 * rt_xport), the small helpers (inline here) and the waiting of
 * rt_xport_wait.cu, and the table of the three transports' operations
 * (xp_ops), one file each:
 *   rt_xport_nccl.cu  NCCL point-to-point on per-channel streams
 *   rt_xport_ipc.cu   CUDA IPC between ranks that share a device
 *   rt_xport_host.cu  host staging over the CPU runtime's MPI transport
 * rt_xport.cu's comment describes the three; it holds pipert.h's entry
 * points and the choice at start-up, and alone dispatches to a peer's
 * transport (xp_ops).  Calls run one way: rt_xport.cu -> the transports ->
 * rt_xport_wait.cu, and rt_xport.cu -> rt_xport_wait.cu (CUDA IPC also
 * borrows host staging's allreduce).  Internal to libpipert_cuda.a; C++
 * (nvcc) only. */
#ifndef PIPERT_XPORT_H
#define PIPERT_XPORT_H

#include <nccl.h>

#include "rt_cuda.h"

/* A peer's transport, and the job's (XP_NONE: no messages at all). */
enum { XP_NONE, XP_NCCL, XP_IPC, XP_HOST };

/* --check-messages header: rt_comm.c's layout. */
enum { H_N = RT_HDR_N };

/* An IPC notice: where the message lies in the sender's arena. */
typedef struct xp_notice {
	int64_t off, bytes;
	int64_t slot;               /* the sender's slot: which of its events */
	int64_t hdr[H_N];
} xp_notice;

typedef struct xp_slot {
	int busy, is_recv, peer, tag, mode, chan;
	size_t bytes;
	void *buf;
	const char *what;
	cudaEvent_t ev_post, ev_done;   /* NCCL gate and completion; IPC/host: copy done */
	cudaEvent_t ev_ipc;             /* IPC send: the producers are done (interprocess) */
	MPI_Request rq[2];              /* IPC: notice; acknowledgement */
	xp_notice nt;
	int ack_in, ack_val;            /* acknowledgement received, sent */
	int ack_pending;                /* IPC receive: acknowledge once ev_done completes */
	int ack_out;                    /* ... and it is being sent: rq_ack */
	MPI_Request rq_ack;
	void *stage;                    /* host staging, pinned */
	size_t stage_cap;
	int h2d_pending;                /* host receive: ev_done guards the staging buffer */
	int64_t *d_hdr, *h_hdr;         /* NCCL --check-messages header, device and pinned */
} xp_slot;

/* A channel: one direction of one stage boundary between two ranks.  The
 * stage is the one that receives (RT_TAG's convention). */
typedef struct xp_key {
	int32_t src, dst, stage, dir;
} xp_key;

/* One message of the dry run, as one end issued it. */
typedef struct xp_rec {
	xp_key k;
	int32_t mb, recv;
} xp_rec;

typedef struct xp_chan {
	xp_key k;
	ncclComm_t comm;
	cudaStream_t stream;
} xp_chan;

struct rt_xport {
	int mode;                       /* the job's: XP_NCCL, or per peer (XP_IPC / XP_HOST) */
	int *peer_mode;                 /* [nranks] */
	char name[64];
	char note[256];                 /* why the job uses what it uses */
	xp_slot *s;
	int nslots;

	xp_rec *rec;                    /* this rank's dry run */
	int nrec, caprec;

	/* NCCL */
	ncclComm_t world;
	xp_chan *ch;
	int nch;
	ncclComm_t *stage_nccl;         /* [c->nstages]: the stage's copies across replicas */

	/* IPC */
	MPI_Comm c_note, c_ack;
	char **peer_arena;              /* [nranks] opened arenas */
	cudaEvent_t **peer_ev;          /* [nranks][peer's slots] opened events */
	int *peer_nslots;

	float *h_grad;                  /* host staging of the replicas' gradients */
};

/* One transport's side of pipert.h's operations.  The common code
 * (rt_xport.cu) checks the slot, fills its fields (buf, bytes, peer, tag,
 * what, mode) and handles the dry run before it calls these. */
typedef struct xp_ops {
	void (*irecv)(rt_ctx *c, int slot, xp_slot *s);
	void (*isend)(rt_ctx *c, int slot, xp_slot *s);
	void (*wait)(rt_ctx *c, int slot, xp_slot *s);
	/* the replicas' gradients of stage (c->stages[k], sc) */
	void (*allreduce)(rt_ctx *c, int stage, rt_stage_comm *sc, int k);
} xp_ops;

extern const xp_ops xp_nccl_ops;     /* rt_xport_nccl.cu */
extern const xp_ops xp_ipc_ops;      /* rt_xport_ipc.cu */
extern const xp_ops xp_host_ops;     /* rt_xport_host.cu */

/* ---- Small helpers of every file: tags, channels, headers. ---- */

/* A tag's stage and channel direction (RT_TAG's layout): an evaluation
 * step's forward messages (RT_TAG_DIR_EVAL) travel on the forward channels,
 * which are idle then (eval_step runs between training steps, with no
 * message in flight), so the channels step()'s dry run found are all. */
static inline int xp_tag_stage(int tag) { return RT_TAG_STAGE(tag); }
static inline int xp_tag_dir(int tag) { return RT_TAG_DIR(tag) & 1; }

/* Channels in one order: by sender, receiver, stage, direction. */
static inline int xp_cmp_key(const xp_key *p, const xp_key *q)
{
	if (p->src != q->src)
		return p->src - q->src;
	if (p->dst != q->dst)
		return p->dst - q->dst;
	if (p->stage != q->stage)
		return p->stage - q->stage;
	return p->dir - q->dir;
}

/* --check-messages: rt_comm.c's header and judgement, for NCCL and IPC. */
static inline void xp_hdr_fill(rt_ctx *c, const xp_slot *s, int64_t *h)
{
	rt_hdr_fill(c, h, s->tag, s->bytes);
}

static inline void xp_hdr_check(rt_ctx *c, const xp_slot *s, const int64_t *h)
{
	rt_hdr_check(c, h, s->what, s->peer, s->tag, s->bytes);
}

/* ---- rt_xport_wait.cu (calls no transport) ---- */
#define MPI_OK(call, what) xp_mpi_check((call), #call, what)
void xp_mpi_check(int rc, const char *call, const char *what);
/* Waits on the host for rq, progressing IPC acknowledgements meanwhile;
 * dies after --timeout. */
void xp_wait_req(rt_ctx *c, MPI_Request *rq, MPI_Status *st, const char *what, int peer);
/* IPC receives acknowledge their copies here, whenever the host waits. */
void xp_progress(rt_ctx *c);
/* A slot about to be reused: its pending IPC acknowledgement sent first. */
void xp_settle(rt_ctx *c, xp_slot *s);
/* Every pending acknowledgement sent and delivered. */
void xp_flush_acks(rt_ctx *c);

/* ---- set-up and release of each transport (collective where said) ---- */
int xp_nccl_setup(rt_ctx *c, const xp_rec *all, int n);          /* collective */
void xp_nccl_free(rt_ctx *c, rt_xport *x);
int xp_ipc_setup(rt_ctx *c, const xp_rec *all, int n, char *why, size_t whylen);
void xp_ipc_free(rt_ctx *c, rt_xport *x);
void xp_host_free(rt_ctx *c, rt_xport *x);

#endif /* PIPERT_XPORT_H */
