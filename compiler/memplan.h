/* memplan.h — the buffer plan of one rank: every tensor of every
 * micro-batch at a fixed arena offset, every message at a request slot.
 *
 * A buffer is one tensor of one micro-batch in one phase: a stage's input,
 * each layer's output, their gradients, layernorm statistics, and the
 * copies a recompute (R) makes.  Its lifetime runs from the first action
 * that writes it (for a received message: the point where the receive is
 * posted) to the last action that reads it (for a sent message: the point
 * where the send is known complete).  Buffers whose lifetimes do not
 * overlap share memory; the arena is the peak.
 *
 * Communication placement (the compiler knows every future message):
 *  - a receive is posted right after the previous receive of the same
 *    stream (stage, direction) is waited on, the first at the step start;
 *  - a send is waited on at the first action after its buffer's last use
 *    at which the receiver is known to have posted the receive (because a
 *    message it sent after its RECV has arrived here), else at the step end.
 *    A send-wait therefore never waits for something that waits for us.
 */
#ifndef PIPEC_MEMPLAN_H
#define PIPEC_MEMPLAN_H

#include "ir.h"
#include "schedule.h"

/* Slots of a stage's offset table, for a stage of n layers:
 *   X(k)  k = 0..n   forward instance of local tensor k (0 = stage input,
 *                    k = output of the stage's layer k-1)
 *   RX(k)            the instance backward reads (= X(k) unless recomputed)
 *   GX(k)            gradient of tensor k
 *   ST(j)            statistics of local layer j (layernorm: mean, rstd)
 *   RST(j)           the instance backward reads
 *   GST(j)           what a split backward's B stashes for its W (transformer
 *                    layers: the output gradients of their linears)
 * X(0) of a stage after the first and X(n) of a stage before the last are
 * messages: they begin with a header holding the side tensors that cross
 * the boundary (the attention mask, the token ids a later loss reads; see
 * MsgSides), and the main tensor follows it.  So does every RX(0), RX(n)
 * instance, so a pointer to tensor 0 or n is always the buffer + header. */
#define SLOT_X(n, k)   (0 * (n) + (k))
#define SLOT_RX(n, k)  ((n) + 1 + (k))
#define SLOT_GX(n, k)  (2 * ((n) + 1) + (k))
#define SLOT_ST(n, j)  (3 * ((n) + 1) + (j))
#define SLOT_RST(n, j) (3 * ((n) + 1) + (n) + (j))
#define SLOT_GST(n, j) (3 * ((n) + 1) + 2 * (n) + (j))
#define SLOT_COUNT(n)  (3 * ((n) + 1) + 3 * (n))

#define NO_BUFFER (-1)

/* The side tensors crossing the boundary before a layer, as they lie in
 * a message's header: tensor t[i] at byte off[i], rows·elems·4 bytes each
 * at the declared sequence length. */
typedef struct MsgSides {
	int n;
	int *t;                 /* tensor indices, ascending */
	int64_t *off;           /* byte offsets in the header */
	int64_t bytes;          /* the header */
} MsgSides;

MsgSides memplan_sides(const IrModel *m, int first_layer, int64_t rows);

typedef struct StagePlan {
	int stage;              /* global stage index */
	int n;                  /* layers */
	int64_t **off;          /* [M][SLOT_COUNT(n)] byte offsets, NO_BUFFER if unused */
	unsigned char *kept;    /* [n+1] tensor k is read by backward */
	int rec_from;           /* local tensor index from which R recomputes (n if none) */
	MsgSides in, out;       /* headers of X(0) and X(n); n = 0 at the pipeline's ends */
} StagePlan;

typedef struct RankPlan {
	int rank;
	int nstages;
	StagePlan *st;          /* stages held, ascending */
	int64_t arena_bytes;
	int64_t rows;           /* rows per micro-batch */
	int nreq;               /* request slots */
	int *req;               /* [nactions] request slot of a SEND/RECV, else -1 */
	int *post_at;           /* [nactions] RECV: action index before which it is posted */
	int *wait_at;           /* [nactions] SEND: action index before which it is waited
	                         * (n actions = at the step end) */
	int64_t *pack_off;      /* [nactions] SEND of a 16-bit program (docs/precision.md):
	                         * the arena offset its message is packed at, 2 bytes
	                         * a value, from the post to the wait; else -1 */
	int nbuffers;
	int64_t buffer_bytes;   /* sum of all buffers: what no reuse would cost */
	int64_t work_off, work_bytes;   /* the layers' scratch, shared by every action;
	                                 * work_off -1 if no layer needs any */
	int64_t kv_off, kv_bytes;       /* generate: the key/value caches of the rank's
	                                 * gpt2_blocks at the arena's end (layer by
	                                 * layer, then group by group: keys [rows, cap,
	                                 * d] then values); kv_bytes 0 otherwise */
} RankPlan;

/* Plans rank `rank` of schedule s for model m. */
RankPlan *memplan_rank(const IrModel *m, const Schedule *s, int rank);

/* The StagePlan of global stage g on this rank, or NULL. */
const StagePlan *memplan_stage(const RankPlan *p, int g);

/* What a rank holds at its peak: parameters, their gradients, optimizer
 * state (SGD momentum: one float per parameter; Adam: two) and the arena.
 * The emitted program reports this beside its measured peak. */
typedef struct RankMemory {
	int64_t weights, grads, optim, arena;   /* arena includes kv; optim includes a
	                                         * 16-bit dtype's f32 master weights */
	int64_t kv;                             /* generate: the key/value caches */
} RankMemory;

RankMemory memplan_memory(const IrModel *m, const Schedule *s, const RankPlan *p);
int64_t memplan_total(RankMemory r);

/* `pipec -dM`. */
void memplan_dump(FILE *out, const IrModel *m, const Schedule *s, const RankPlan *p);

#endif
