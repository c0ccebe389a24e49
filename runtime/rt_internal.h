/* rt_internal.h — the runtime's private state and the interfaces between
 * its modules.  Nothing here is part of the ABI the emitter targets; that is
 * pipert.h alone.
 *
 * Modules (one prefix each, all rt_):
 *   rt_main.c     rt_main: start-up order, the step loop, the summary
 *   rt_opts.c     command-line options and --help
 *   rt_comm.c     MPI transport, timed waits, allreduce, message checks
 *   rt_data.c     inputs, targets, synthetic data, epochs, shuffling, --output
 *   rt_eval.c     the loss over an evaluation set (program->eval_step)
 *   rt_weights.c  parameters: --weights-in, deterministic init, --weights-out
 *   rt_init.c     the counter-based generator behind init, data and dropout
 *   rt_kernels.c  compute kernels (CBLAS GEMMs and vectorisable loops)
 *   rt_optim.c    SGD, Adam, AdamW, learning-rate schedules, gradient
 *                 clipping (torch's semantics), over rt_dev.h's optimizer
 *                 primitives; rt_optim_cpu.c writes those in host loops
 *   rt_report.c   step lines, --log-every, --metrics, the progress line
 *   rt_trace.c    action timing, busy time, Chrome trace output
 *   rt_safetensors.c, rt_npy.c, rt_json.c   file formats
 *   rt_util.c     messages, aligned allocation, atomic file writes, memory probes
 *   rt_dev_cpu.c  the device layer (rt_dev.h): plain memory, the step called
 * libpipert_cuda.a compiles the same modules with -DRT_CUDA and replaces the
 * kernels, the optimizer primitives, the data accessors, the transport and
 * the device layer with its own (cuda/).
 */
#ifndef PIPERT_INTERNAL_H
#define PIPERT_INTERNAL_H

#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>

#include "pipert.h"
#include "rt_dev.h"
#include "rt_math.h"     /* rt_mix64, for rt_rand_at */

#if defined(__GNUC__)
#define RT_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define RT_NORETURN __attribute__((noreturn))
#else
#define RT_PRINTF(f, a)
#define RT_NORETURN
#endif

/* Exit statuses of an emitted program (docs/running.md, "Options"). */
enum { RT_EXIT_OK = 0, RT_EXIT_INPUT = 1, RT_EXIT_USAGE = 2, RT_EXIT_RUNTIME = 3 };

/* ---- Options (rt_opts.c). ---- */
typedef struct rt_opts {
	const char *weights_in, *weights_out;
	const char *input, *target, *output, *trace;   /* input: the last --input */
	/* A program with `inputs` (ninputs > 0): each input's file, by the
	 * input's index, from `--input NAME=FILE` (or the bare form for a single
	 * input); NULL when no --input was given (synthetic data). */
	const char **in_path;
	const char **in_args;       /* every --input's value, in order */
	int nin_args;
	int steps;                  /* from --steps, else the program's */
	double timeout;             /* seconds, every wait */
	int check_messages;
	int help;
	int quiet;                  /* --quiet: no summary lines */
	int cuda_graph;             /* --cuda-graph (RT_GRAPH_*; CUDA runtime only) */
	int tf32;                   /* --tf32 (CUDA runtime only) */

	/* Training for real (docs/training.md). */
	int log_every;              /* --log-every N (default 1) */
	const char *metrics;        /* --metrics FILE.jsonl */
	int shuffle;                /* --shuffle, or the program's shuffle = true */
	const char *eval_input, *eval_target;   /* eval_input: the last --eval-input */
	const char **eval_path;     /* ninputs > 0: each input's evaluation file */
	const char **eval_args;     /* every --eval-input's value, in order */
	int neval_args;
	int eval_every;             /* --eval-every N; 0: after the last step only */
	const char *checkpoint;     /* --checkpoint DIR */
	int save_every;             /* --save-every N; 0: at the end (and on a signal) */
	const char *resume;         /* --resume DIR */

	/* Generation's settings (docs/transformers.md), the compiled ones
	 * unless given. */
	int gen_max_new;            /* --max-new-tokens K, 1 .. max_new_tokens */
	int64_t gen_eos;            /* --eos ID; -1 none */
	double gen_temperature;     /* --temperature T; 0: greedy */
	int gen_top_k;              /* --top-k K; 0: every token */
	double gen_top_p;           /* --top-p P in (0, 1]; 1: every token */
	uint64_t gen_seed;          /* --seed S */
} rt_opts;
enum { RT_GRAPH_AUTO, RT_GRAPH_ON, RT_GRAPH_OFF };

/* Fills o from argv (defaults from p).  Returns 0, or RT_EXIT_USAGE after
 * writing the reason into err (every rank parses the same argv, so every
 * rank fails the same way and none waits for another). */
int rt_opts_parse(rt_opts *o, const rt_program *p, int argc, char **argv,
                  char *err, size_t errlen);
void rt_opts_free(rt_opts *o);
void rt_opts_help(FILE *f, const rt_program *p, const char *argv0);

/* ---- One communication slot (rt_comm.c). ---- */
enum { RT_HDR_N = 7 };
typedef struct rt_slot {
	MPI_Request req[2];         /* the data; the --check-messages header */
	const char *what;           /* "RECV_F stage 2 mb 5", for messages */
	size_t bytes;
	int peer, tag, is_recv;
	int64_t hdr[RT_HDR_N];      /* --check-messages header (rt_comm.c) */
	char *unpack;               /* rt_irecv16: the buffer its wait unpacks, NULL */
	size_t unpack_hdr;
	int64_t unpack_n;
	/* generation's activations (rt_gen_irecv): any size up to `bytes`, as
	 * the descriptor at byte upto_desc (rt_gen_rows' header form, the end
	 * of the message's header of upto_hdr bytes) says: its ntok (at most
	 * upto_most) tokens of upto_row bytes (16-bit: upto_values values) */
	int upto;
	const char *upto_buf;
	int64_t upto_hdr, upto_desc, upto_most, upto_row, upto_values;
} rt_slot;

/* One traced action (rt_trace.c). */
typedef struct rt_event {
	double t0, t1;              /* seconds since the job's common origin */
	int32_t op, stage, mb, step;
} rt_event;

/* Gradient ranges of one stage this rank holds, for its allreduce. */
typedef struct rt_stage_comm {
	int stage;
	MPI_Comm comm;              /* the stage's copies across replicas */
	int nseg;
	int64_t *seg_off, *seg_len; /* contiguous float ranges of the grads */
	char peers[96];             /* "ranks 1,3", for timeout messages */
	float *ring_buf;            /* [RT_RING_PIECE]: the all-reduce's receive */
} rt_stage_comm;

/* Floats the data-parallel all-reduce receives at a time (rt_comm.c): 1 MiB
 * pieces run at about the speed of 4 MiB ones here, 256 KiB ones 40% slower. */
#define RT_RING_PIECE (1 << 18)

/* One input of a program with `inputs` (rt_data.c): the whole file (or
 * synthetic data), converted once at start-up. */
typedef struct rt_indata {
	const char *path;           /* its file; NULL: synthetic */
	void *data;                 /* [rows, cols]: float (RT_DT_F32) or int32_t (RT_DT_I32) */
	int64_t rows, cols;         /* cols: the width, or a sequence's T */
} rt_indata;

/* A data set held whole in memory (rt_data.c): the training (or
 * inference) data, or the evaluation set.  Only what this rank needs is
 * loaded; the rest is NULL. */
typedef struct rt_dset {
	float *x;                   /* ninputs 0: [x_rows, in_width] */
	int64_t x_rows;
	rt_indata *in;              /* ninputs > 0: [p->ninputs] */
	int32_t *tc;                /* [t_rows] class ids */
	float *td;                  /* [t_rows, target_width] */
	int64_t t_rows;
	int64_t rows;               /* the file's rows N, every rank (rt_data_share);
	                             * the arrays may hold padding rows after them */
} rt_dset;

/* A tied parameter (rt_param.tied) and the ranks of this replica that hold
 * a copy of it (rt_comm.c): their gradients are summed before each update. */
typedef struct rt_tied {
	const char *name;
	MPI_Comm comm;              /* the holders in this replica; NULL: no other copy */
	int64_t off, len;           /* its range of the gradient buffer, in floats */
	char peers[96];             /* "ranks 3", for timeout messages */
} rt_tied;

struct rt_ctx {
	const rt_program *p;
	rt_opts o;
	int rank, nranks;
	int reporter;               /* lowest rank holding the last stage */
	double t_origin;            /* clock at the common start barrier */

	/* Buffers, each allocated once before the step loop. */
	float *w, *g;               /* nweights floats (w: the newest weights) */
	float **wv;                 /* async: [nversions] weight slots, w among them */
	float *w_use;               /* async: the slot the current action computes with */
	int newest;                 /* async: the slot w is */
	int64_t sent_bytes;         /* bytes of the messages posted by rt_isend* */
	float *master;              /* 16-bit training: the f32 weights the optimizer
	                             * updates; w (each slot of wv) holds them rounded */
	float *opt_m, *opt_v;       /* momentum buffer (m) or Adam moments */
	int64_t opt_t;              /* Adam's step count */
	char *arena;

	/* Data (rt_data.c): whole files, converted once at start-up. */
	int step;                   /* current step, from 0 */
	float *x;                   /* [x_rows, in_width] */
	int64_t x_rows;
	int32_t *tc;                /* [t_rows] class ids */
	float *td;                  /* [t_rows, target_width] */
	int64_t t_rows;
	rt_indata *in;              /* [p->ninputs] (NULL when ninputs is 0) */
	int64_t seq_len;            /* the run's T (rt_seq_len), the same on every rank */
	float *out;                 /* last step's outputs of this replica */
	unsigned char *out_seen;    /* [M] which micro-batches rt_output kept */
	double loss_sum;

	/* Transport (rt_comm.c). */
	MPI_Comm comm;              /* world, duplicated: our tags only */
	MPI_Comm chk;               /* --check-messages headers */
	MPI_Comm last;              /* ranks holding the last stage, or NULL */
	int tag_ub;
	rt_slot *slots;
	int nslots;
	rt_stage_comm *stages;
	int nstages;
	rt_tied *tied;              /* tied parameters this rank holds */
	int ntied;

	/* Trace (rt_trace.c). */
	rt_event *ev;
	size_t nev, cap_ev, dropped_ev;
	int in_action;
	rt_event cur;
	int action_index;           /* within the step, for fault injection */
	double busy;                /* compute seconds in the current step */

	/* The first start-up error of this rank, said by rt_agree_report. */
	char msg[1024];

	/* Generation (rt_gen.c; program->gen_tokens > 0). */
	int gen_round;              /* the current round */
	struct rt_gen *gen;         /* the run's slots, requests and times */
	double gen_total;           /* seconds of the whole run */

	/* Optimizer, schedule and clipping (rt_optim.c). */
	double lr_now;              /* the last step's learning rate */
	double grad_norm;           /* the last step's global norm before clipping; -1: none */
	int64_t opt_updates;        /* updates this run (pipedream: one per micro-batch) */
	rt_osc osc;                 /* the last update's scalars (CUDA graphs replay them) */
	/* Host work of a step that a replayed CUDA graph does not run: the
	 * optimizer's scalars for this update (rt_optim_prepare, set by
	 * rt_optim_alloc).  A hook, so the device layer calls no module above it. */
	void (*before_replay)(rt_ctx *c);
	rt_orange *orng;            /* the ranges updated, with or without decay */
	int norng;
	rt_orange *nrng;            /* the ranges this rank counts in the clipping norm */
	int nnrng;                  /* -1: not yet built (it needs the tied holders) */

	/* Logs and metrics (rt_report.c). */
	FILE *rep_metrics;          /* --metrics, on the reporter */
	int rep_failed;             /* errno of a failed metrics write; 0: none */
	int rep_progress;           /* the reporter's stderr is a terminal */
	int rep_drawn;              /* a progress line is on it */
	int rep_nonfinite;          /* the non-finite loss note was said */
	double rep_t0, rep_last_draw;

	/* Epochs, shuffling, evaluation data (rt_data.c, rt_eval.c). */
	int evaluating;             /* inside eval_step: the data accessors read the eval set */
	int64_t eval_batch;         /* the evaluation batch eval_step is running */
	int64_t rows;               /* N: rows of the training / inference data, every rank */
	int64_t nbatches;           /* batches of an epoch: floor(N/B); an inference run
	                             * over a file: ceil(N/B), the last one padded */
	int over_file;              /* inference over a whole --input file */
	rt_dset eval;               /* --eval-input / --eval-target, padded to whole batches */
	int64_t *perm[2];           /* --shuffle: the row order of two epochs ... */
	int64_t perm_epoch[2];      /* ... these (-1: none yet) */
	void **stage;               /* --shuffle: a micro-batch's rows gathered, per
	                             * array (x or in[k], then tc or td) and micro-batch */
	int64_t *stage_step;        /* the step each of them holds (-1: none) */

	/* Checkpoints, resume, signals (rt_ckpt.c). */
	int64_t step0;              /* the global step the run starts after (resume) */
	const char *ckpt_dir;       /* where checkpoints go: --checkpoint, else --resume */
	char *ckpt_from;            /* --resume: the step directory read */
	char *ckpt_prev;            /* the checkpoint DIR/latest named before this run's
	                             * newest one (kept, with the newest, by pruning) */
	int ckpt_done;              /* --resume at --steps already: nothing to run */
	int ckpt_prev_versions;     /* --resume: the checkpoint has `.previous` weights */
	int seg_len;                /* async: steps in the current segment (rt_run_keys) */
	int64_t seg0;               /* async: the global step the segment starts at */

	/* Fault injection for tests (PIPERT_FAULT, rt_main.c). */
	int fault_kind, fault_step, fault_action;
};

/* --check-messages headers (rt_comm.c), shared by every transport: fill
 * h[RT_HDR_N] with what this send is; judge a received one against the
 * current RECV action and the posted tag and size (exit 3 on a mismatch). */
void rt_hdr_fill(rt_ctx *c, int64_t *h, int tag, size_t bytes);
void rt_hdr_check(rt_ctx *c, const int64_t *h, const char *what, int peer, int tag,
                  size_t bytes);

/* ---- Messages and exits (rt_util.c). ---- */
void rt_msg(int rank, const char *fmt, ...) RT_PRINTF(2, 3);    /* "pipec-run: rank R: ..." */
/* A failure while ranks run: message, then MPI_Abort so the whole job ends. */
RT_NORETURN void rt_die(rt_ctx *c, int status, const char *fmt, ...) RT_PRINTF(3, 4);
/* Every rank's local status (0 or an exit status) combined: the maximum.
 * Start-up errors are agreed this way so that every rank exits cleanly
 * with the same status instead of some waiting for a dead peer. */
int rt_agree(rt_ctx *c, int status);
/* Keeps a start-up error message (the first one) for rt_agree_report. */
void rt_defer(rt_ctx *c, const char *fmt, ...) RT_PRINTF(2, 3);
/* rt_agree, after printing each rank's deferred message unless a lower rank
 * has the same one: a file every rank reads is complained about once. */
int rt_agree_report(rt_ctx *c, int status);

void *rt_alloc(size_t bytes);                 /* 64-byte aligned, zeroed; NULL on failure */
/* Host memory: x[0..n) to the nearest RT_PREC_* value (rt_kernels.c);
 * dst[i] = src[i] rounded (dst == src allowed; RT_PREC_F32 copies). */
void rt_round_host(int prec, float *x, int64_t n);
void rt_round_into_host(int prec, float *dst, const float *src, int64_t n);
void rt_free(void *p);
/* Writes len bytes to path via path.tmp.PID and rename(2).  0 or -1 (errno). */
int rt_write_atomic(const char *path, const void *const *parts, const size_t *lens, int nparts);
/* The same for text written through stdio: write to the FILE, then close. */
FILE *rt_atomic_open(const char *path, char **tmp);
int rt_atomic_close(FILE *f, char *tmp, const char *path);   /* 0 or -1 (errno) */
double rt_now(void);                          /* monotonic seconds */
int64_t rt_proc_kb(const char *key);          /* "VmHWM" from /proc/self/status, -1 if absent */
void rt_map_code(void);                      /* code pages resident before the baseline */
int rt_reset_hwm(void);                       /* VmHWM := VmRSS; 0 on success */
void rt_fmt_err(char *err, size_t errlen, const char *fmt, ...) RT_PRINTF(3, 4);

/* ---- Transport and collectives (rt_comm.c). ---- */
/* pipert.h's rt_irecv, rt_isend, rt_wait and rt_allreduce on host memory
 * over MPI.  libpipert.a's pipert.h functions are these; libpipert_cuda.a
 * stages messages through them where device memory cannot be shared. */
void rt_mpi_irecv(rt_ctx *c, int slot, void *buf, size_t bytes, int peer, int tag,
                  const char *what);
void rt_mpi_isend(rt_ctx *c, int slot, const void *buf, size_t bytes, int peer, int tag,
                  const char *what);
void rt_mpi_wait(rt_ctx *c, int slot);
void rt_mpi_allreduce(rt_ctx *c, int stage);   /* on c->g, host memory */
void rt_comm_init(rt_ctx *c);                 /* after options; collective; dies on failure */
/* Sums the tied parameters' gradients (g: host memory laid out as c->g)
 * over their holders; rt_optim_step calls it before updating.  _one: the
 * i-th tied parameter's, at x (its len floats, host memory). */
void rt_tied_sum(rt_ctx *c, float *g);
void rt_tied_sum_one(rt_ctx *c, int i, float *x);
#ifdef RT_CUDA
/* The same on the device gradients, staged through host memory
 * (cuda/rt_dev_cuda.cu); the CUDA rt_optim_step calls it. */
void rt_cu_tied_sum(rt_ctx *c);
#endif
void rt_comm_free(rt_ctx *c);
/* Waits for req with the --timeout, naming what and peer on failure. */
void rt_wait_req(rt_ctx *c, MPI_Request *req, const char *what, const char *peer);
void rt_wait_status(rt_ctx *c, MPI_Request *req, const char *what, const char *peer,
                    MPI_Status *st);
void rt_barrier(rt_ctx *c, const char *what);
double rt_reduce_loss(rt_ctx *c);             /* last-stage ranks; the sum on the reporter */

/* ---- Data (rt_data.c). ---- */
int rt_data_load(rt_ctx *c);                  /* local status */
/* After rt_data_load's agreement; collective: every rank learns T. */
void rt_data_share(rt_ctx *c);
/* Floats of one output row this run: out_width, or T positions' worth of
 * it for a model whose output is per position (out_seq). */
int64_t rt_out_row_floats(const rt_ctx *c);
int rt_data_write_output(rt_ctx *c);          /* last-stage ranks; local status */
void rt_data_free(rt_ctx *c);
/* The row of the data file that row i (0 <= i < B) of global step s's
 * batch reads: epochs of floor(N/B) batches, each in the order --shuffle
 * draws (docs/training.md); an inference run over a file: row s*B + i,
 * padding past N.  The CUDA device layer stages rows with it. */
int64_t rt_data_row(rt_ctx *c, int64_t s, int64_t i);
/* The host arrays the step reads: the training (or inference) set, or the
 * evaluation set inside eval_step. */
rt_dset rt_data_set(rt_ctx *c);
/* Global step s's epoch and batch within it (a checkpoint's position). */
void rt_data_position(const rt_ctx *c, int64_t s, int64_t *epoch, int64_t *batch);

/* ---- Evaluation (rt_eval.c). ---- */
/* Runs program->eval_step over every batch of the evaluation set
 * (collective: every rank calls it between two steps); returns the mean
 * loss over the set's rows (per row, element or predicted position) on the
 * reporter, 0 on the other ranks. */
double rt_eval_run(rt_ctx *c);

/* ---- Weights (rt_weights.c). ---- */
/* --weights-in's header, parsed before the memory baseline (its parse is
 * not the model's memory), then rt_weights_load's data: both collective,
 * returning the agreed status. */
int rt_weights_open(rt_ctx *c);
int rt_weights_load(rt_ctx *c);
void rt_weights_release(void);                /* the header, if never loaded */
void rt_weights_init(rt_ctx *c);
int rt_weights_save(rt_ctx *c);               /* collective; local status (rank 0 writes) */
/* The same for checkpoints (rt_ckpt.c): reads nbufs buffers of this rank's
 * parameters, buffer b from the tensors named `<param><suffix[b]>`, into
 * dst[b] (device memory); collective, returns the agreed status.  write:
 * one file of every buffer's tensors (rank 0 writes; collective, local
 * status); step >= 0 adds a scalar `<param>.step` to each parameter. */
enum { RT_WBUF_MAX = 4 };
int rt_weights_read(rt_ctx *c, const char *path, int nbufs, const char *const *suffix,
                    float *const *dst, int note_unused);
int rt_weights_write(rt_ctx *c, const char *path, int nbufs, const char *const *suffix,
                     float *const *src, double step);
/* The same file, each rank writing its own tensors into it (pwrite at the
 * offsets every rank computes alike): no gather, but path must be on a file
 * system every rank sees.  Collective; the agreed status. */
int rt_weights_write_shared(rt_ctx *c, const char *path, int nbufs, const char *const *suffix,
                            float *const *src, double step);

/* ---- Checkpoints, resume and signals (rt_ckpt.c). ---- */
/* --resume, before the data is loaded: reads DIR/latest/state.json, checks
 * it belongs to this model, sets c->step0 and the run's c->o.steps (the
 * steps left).  Collective; the agreed status (exit 0 with a note when the
 * checkpoint is already at --steps: c->ckpt_done). */
int rt_ckpt_open(rt_ctx *c);
/* The options' checkpoint rules that need no rank (pipert-check calls it
 * too): 0, or RT_EXIT_USAGE with the reason in err. */
int rt_ckpt_check_options(const rt_opts *o, char *err, size_t errlen);
/* --resume, after the buffers exist: the weights and the optimizer's state.
 * _versions: after the version slots were filled, an asynchronous
 * schedule's older weights (pipedream-2bw's `.previous`). */
int rt_ckpt_load(rt_ctx *c);
int rt_ckpt_load_versions(rt_ctx *c);
/* Writes DIR/step-N for global step `step` and makes it DIR/latest.
 * Collective; the agreed status. */
int rt_ckpt_save(rt_ctx *c, int64_t step);
/* Whether a checkpoint is due after global step `step` of a run ending at
 * `last` (stop: a signal stops the run there). */
int rt_ckpt_due(const rt_ctx *c, int64_t step, int64_t last, int stop);
/* After an asynchronous schedule's drain: the version slots as a restarted
 * stream finds them (docs/training.md, "Asynchronous schedules"). */
void rt_ckpt_restart_versions(rt_ctx *c);

/* ---- Deterministic generator (rt_init.c; rt_mix64 is rt_math.h's). ---- */
uint64_t rt_hash_name(const char *s);
/* The k-th 64-bit output of the stream named by (seed, stream). */
static inline uint64_t rt_rand_at(uint64_t seed, uint64_t stream, uint64_t k)
{
	return rt_mix64(rt_mix64(seed ^ rt_mix64(stream + 0x9e3779b97f4a7c15ull)) +
	                k * 0x9e3779b97f4a7c15ull);
}
/* Uniform in [0, 1) with 24 random bits: exact in float32. */
static inline float rt_u01f(uint64_t h) { return (float)(h >> 40) * 0x1p-24f; }
double rt_normal_at(uint64_t seed, uint64_t stream, uint64_t k);
void rt_init_param(const rt_param *pa, uint64_t seed, float *w);

/* ---- Kernels' helpers (rt_kernels.c). ---- */
/* Added to the step dropout is given: an asynchronous schedule's step
 * function counts from 0 in each segment (rt_main.c), its masks by the
 * global step.  (The CUDA runtime has its own offset on the device.) */
extern int64_t rt_dropout_step0;
int rt_blas_threads(int n);                   /* sets BLAS threads if possible; n or 0 */

/* ---- Optimizer (rt_optim.c). ---- */
int rt_optim_alloc(rt_ctx *c);                /* 0, or -1 if out of memory */
void rt_optim_free(rt_ctx *c);                /* the range lists (buffers: rt_dev_free) */
/* The learning rate of global optimizer step t = 1, 2, ... (docs/training.md). */
double rt_lr_at(const rt_program *p, int64_t t);
/* The host's part of the next update without the update itself: counts it,
 * sets c->lr_now and c->osc.  rt_optim_step calls it; the CUDA runtime calls
 * it before replaying a captured step, whose rt_optim_step never runs on
 * the host. */
void rt_optim_prepare(rt_ctx *c);

/* ---- Logs and metrics (rt_report.c; the step loop calls them). ---- */
/* Before the first step: opens --metrics on the reporter; local status. */
int rt_report_open(rt_ctx *c);
/* After each training step, on every rank (only the reporter says
 * anything): global_step = c->step0 + t + 1, loss the step's mean loss as
 * printed (the reporter's; NaN where the program has none), step_time its
 * seconds.  Reads c->lr_now and c->grad_norm of the step's update. */
void rt_report_step(rt_ctx *c, int64_t global_step, double loss, double step_time);
/* After an evaluation, on every rank: `eval step N loss L`, its metrics line. */
void rt_report_eval(rt_ctx *c, int64_t global_step, double eval_loss);
/* After the run: clears the progress line, closes --metrics; local status. */
int rt_report_close(rt_ctx *c);

/* ---- Trace (rt_trace.c). ---- */
int rt_trace_alloc(rt_ctx *c, size_t events);
int rt_trace_grow(rt_ctx *c, size_t events);  /* between steps */
int rt_trace_write(rt_ctx *c, const char *path);   /* collective */

/* The name of an op (pipert_ops.h's PIPERT_OPS), "OP" for none: here, not
 * in one module, because the trace, the message checks (rt_comm.c) and the
 * CUDA runtime's errors all name ops. */
static inline const char *rt_op_name(int op)
{
	static const char *const names[RT_NOPS] = {
#define X(name, str, torch, compute) str,
		PIPERT_OPS(X)
#undef X
	};
	return op >= 0 && op < RT_NOPS ? names[op] : "OP";
}

/* ---- Safetensors (rt_safetensors.c). ---- */
typedef struct rt_st_tensor {
	char *name;
	char dtype[8];              /* "F32", "BF16", ... */
	int ndim;
	int64_t dims[8];
	uint64_t begin, end;        /* byte range within the data section */
} rt_st_tensor;

typedef struct rt_st_file {
	FILE *f;
	uint64_t data_start;        /* 8 + header length */
	int n;
	rt_st_tensor *t;
} rt_st_file;

/* Opens and validates the header (every offset in range, sizes consistent
 * with dtype and shape).  0, or -1 with the reason in err. */
int rt_st_open(rt_st_file *st, const char *path, char *err, size_t errlen);
const rt_st_tensor *rt_st_find(const rt_st_file *st, const char *name);
/* Reads a float tensor (F32, F16, BF16, F64) as float32 into out. */
int rt_st_read_f32(rt_st_file *st, const rt_st_tensor *t, float *out, char *err, size_t errlen);
void rt_st_close(rt_st_file *st);

typedef struct rt_st_out {
	const char *name;
	int ndim;
	const int64_t *dims;
	const float *data;
} rt_st_out;
/* Writes F32 tensors in the order given (callers sort), atomically. */
int rt_st_write(const char *path, const rt_st_out *t, int n, char *err, size_t errlen);
int rt_dtype_size(const char *dtype);        /* bytes, or 0 if unknown */

/* ---- .npy (rt_npy.c). ---- */
enum { RT_NPY_F32, RT_NPY_F64, RT_NPY_I32, RT_NPY_I64 };
typedef struct rt_npy {
	int type;                   /* RT_NPY_* of the file */
	int ndim;
	int64_t dims[8];
	void *data;                 /* rt_alloc'd, native little-endian values */
} rt_npy;
int rt_npy_read(const char *path, rt_npy *a, char *err, size_t errlen);
int rt_npy_probe(const char *path, rt_npy *a, char *err, size_t errlen);  /* header only */
/* As float32 / int32 (converted; int64 out of int32 range is an error). */
float *rt_npy_as_f32(const rt_npy *a, char *err, size_t errlen);
int32_t *rt_npy_as_i32(const rt_npy *a, char *err, size_t errlen);
int64_t rt_npy_numel(const rt_npy *a);
int rt_npy_write_f32(const char *path, const float *data, int ndim, const int64_t *dims,
                     char *err, size_t errlen);
int rt_npy_write_i32(const char *path, const int32_t *data, int ndim, const int64_t *dims,
                     char *err, size_t errlen);

/* The shape rule of a data file (rt_data.c), from its header alone (no MPI:
 * the launcher's checks use it too).  which: RT_DATA_*; k: the input (of
 * program->inputs) for an input file.  0, or -1 with the reason in err
 * (without the file's name). */
enum { RT_DATA_INPUT, RT_DATA_TARGET, RT_DATA_EVAL_INPUT, RT_DATA_EVAL_TARGET };
int rt_data_check_header(const rt_program *p, int which, int k, const rt_npy *hdr,
                         char *err, size_t errlen);

/* ---- Generation (rt_gen.c). ---- */
typedef struct rt_gen rt_gen;
int rt_gen_init(rt_ctx *c);           /* after the data is loaded: checks, buffers */
void rt_gen_run(rt_ctx *c);           /* every round, timed */
int rt_gen_write_output(rt_ctx *c);   /* --output: prompts + tokens, on rank 0 */
void rt_gen_summary(rt_ctx *c);       /* the reporter's extra summary lines */
void rt_gen_free(rt_ctx *c);
/* Marks a posted receive as generation's activations (rt_slot's upto). */
void rt_slot_upto(rt_ctx *c, int slot, const void *buf, int64_t hdr, int64_t desc,
                  int64_t most, int64_t row_bytes, int64_t values);
/* The CUDA runtime's captured decode rounds read a position from the
 * device; continuous batching runs every round eagerly, so none. */
static inline int64_t rt_gen_position(const rt_ctx *c)
{
	(void)c;
	return 0;
}

/* ---- A minimal JSON reader (rt_json.c), enough for safetensors. ---- */
typedef struct rt_json rt_json;
enum { RT_J_NULL, RT_J_BOOL, RT_J_NUM, RT_J_STR, RT_J_ARR, RT_J_OBJ };
struct rt_json {
	int type;
	double num;                 /* RT_J_NUM (and integers, exactly up to 2^53) */
	int integer;                /* RT_J_NUM written with no fraction or exponent */
	int boolean;                /* RT_J_BOOL */
	char *str;                  /* RT_J_STR: decoded, NUL-terminated */
	int n;                      /* RT_J_ARR, RT_J_OBJ: elements */
	rt_json *items;             /* elements */
	char **keys;                /* RT_J_OBJ: key of each element */
};
/* Parses text[0..len).  NULL with the reason (and byte offset) in err. */
rt_json *rt_json_parse(const char *text, size_t len, char *err, size_t errlen);
void rt_json_free(rt_json *j);
const rt_json *rt_json_get(const rt_json *obj, const char *key);

#endif /* PIPERT_INTERNAL_H */
