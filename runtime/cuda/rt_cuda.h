/* rt_cuda.h — private state of the CUDA runtime (libpipert_cuda.a).
 *
 * One rank is one process driving one device, and the kernels of pipert.h
 * take no context, so the rank's CUDA state is one process-wide struct,
 * rt_cu.  Modules (prefix rt_cu_ for what they share):
 *   rt_cu_base.cu    rt_cu itself and the error checks (rt_cu_check, ...)
 *   rt_dev_cuda.cu   the device layer (rt_dev.h): device choice, memory,
 *                    data staging, the step with and without a CUDA graph,
 *                    device timing of actions, the summary
 *   rt_kernels.cu    pipert.h's kernels, the losses, the optimizers
 *   rt_tf.cu         rt_gemm, the transformer primitives rt_tf.c composes
 *                    (rt_dev.h), embeddings, pooling and the other layers
 *   rt_llama.cu      RMSNorm, the Llama embedding and the Llama primitives
 *                    rt_llama.c composes llama_block from (rt_dev.h)
 *   rt_xport.cu      pipert.h's transport: what NCCL, CUDA IPC and host staging
 *                    share; rt_xport_nccl.cu, rt_xport_ipc.cu, rt_xport_host.cu
 *                    the three, behind rt_xport.h's xp_ops; rt_xport_wait.cu
 *                    waiting on the host, with their progress (rt_xp_sync)
 *   rt_cpu_kernels.c the CPU kernels again, as rt_cpu_* (host math, tests)
 *   rt_cpu_tf.c      the CPU transformer layers again, as rt_cpu_*
 *   rt_cpu_llama.c   the CPU Llama family again, as rt_cpu_*
 *
 * Every kernel call enqueues on the compute stream rt_cu.stream.  While
 * rt_cu.dry is set (rt_dev_start's dry run of one step) the API records
 * what the step does and computes nothing.
 */
#ifndef PIPERT_CUDA_H
#define PIPERT_CUDA_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <mpi.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The host modules' interfaces, with C linkage (mpi.h came first: its
 * C++ part is not wanted, -DOMPI_SKIP_MPICXX). */
#include "rt_internal.h"

typedef struct rt_xport rt_xport;       /* rt_xport.cu */

typedef struct rt_cuda {
	rt_ctx *c;                  /* NULL when opened stand-alone (tests, benchmarks) */
	int open;
	int device;
	char device_name[256];
	int cc_major, cc_minor;
	unsigned char uuid[16];

	cudaStream_t stream;        /* compute: every kernel, GEMM and copy */
	cublasHandle_t blas;
	void *blas_ws;              /* the handle's own workspace (graph capture) */
	size_t blas_ws_bytes;
	int tf32;                   /* TF32 tensor cores for f32 GEMMs */
	int tf32_16;                /* a 16-bit program (docs/precision.md): TF32 for the
	                             * GEMMs of its linear layers, whose operands are
	                             * 16-bit values and so exact in TF32 */
	int inner;                  /* > 0 inside a transformer layer, whose inner
	                             * GEMMs take f32 operands: no tf32_16 there */

	int dry;                    /* dry run: record, compute nothing */
	int capturing;              /* inside cudaStreamBeginCapture */
	int sync_loss_calls;        /* rt_loss_cross_entropy / rt_loss_mse called in a step:
	                             * each waits for the device (no graph) */

	/* Per-step device scalars. */
	double *d_loss;             /* the rank's loss sum of the step */
	double *h_loss;             /* pinned: read once per step */
	double *d_scratch;          /* per-row losses, partial sums */
	int64_t scratch_cap;        /* doubles */
	double *d_ret;              /* the returning losses' sum */
	double *h_ret;              /* pinned */
	int64_t *d_step_off;        /* dropout: step = argument + *d_step_off
	                             * (a replayed graph keeps its captured step) */
	/* The optimizer's scalars (rt_osc) of the step: a captured update reads
	 * them here, uploaded from h_osc before each launch of the graph. */
	rt_osc *d_osc;
	rt_osc *h_osc;              /* pinned */
	/* Generation with graphs (rt_dev_start decides gen_graph): a decode
	 * round's position is a device scalar set before every round, its
	 * attention spans the whole cache (later positions masked), and the
	 * greedy pick runs on the device, its tokens copied to pinned memory
	 * that rt_dev_gen_collect reads after the round. */
	int gen_graph;
	int64_t *d_gen_pos;
	int32_t *h_gen_tok;         /* pinned: [batch of the replica] */

	/* Data of the step (rt_input and friends), device copies of this
	 * replica's rows, refreshed before every step outside any graph. */
	float *d_x, *d_td, *d_out;
	int32_t *d_tc;
	int ndata;                  /* copies of each step's data on the device: 2 for an
	                             * asynchronous schedule (a step also computes keys of
	                             * the step before), else 1; step t's are copy t % ndata */

	/* Device timing of actions (rt_dev_mark). */
	cudaEvent_t ev_step;
	cudaEvent_t *ev_b, *ev_e;
	int *mark_op, *mark_ev;     /* per action: op, index into c->ev or -1 */
	int nmark, cap_mark;
	double step_host_t0;        /* host time of ev_step, from c->t_origin */

	/* Memory of the model's buffers (rt_dev_alloc). */
	double mem_now, mem_peak;
	int nalloc;

	/* The step: eager or one CUDA graph. */
	int graph_on;
	const char *graph_note;     /* why graphs are off, or NULL */
	char graph_why[256];        /* ... when a capture failed */
	cudaGraph_t graph;
	cudaGraphExec_t exec;
	int captured_step;
	double enq_eager, enq_graph, t_capture;    /* host seconds */
	int n_eager, n_graph;
	double *enq_graph_all;      /* per graph step, for the median */

	rt_xport *xp;
} rt_cuda;

extern rt_cuda rt_cu;

/* Errors: the call, its message and where, then the rank ends (exit 3). */
#define RT_CU(call) rt_cu_check((call), #call, __FILE__, __LINE__)
#define RT_CUBLAS(call) rt_cublas_check((call), #call, __FILE__, __LINE__)
#define RT_CU_LAUNCHED(what) rt_cu_check(cudaGetLastError(), what, __FILE__, __LINE__)
void rt_cu_check(cudaError_t e, const char *call, const char *file, int line);
void rt_cublas_check(cublasStatus_t s, const char *call, const char *file, int line);
RT_NORETURN void rt_cu_fail(const char *fmt, ...) RT_PRINTF(1, 2);

/* Stand-alone use without rt_main (tests, benchmarks): the device, stream,
 * cuBLAS handle and scratch of rt_cu.  0, or -1 with the reason in err. */
int rt_cu_open(int device, char *err, size_t errlen);
void rt_cu_close(void);
void rt_cu_sync(void);
/* rt_dev_cuda.cu too: the step's device scalars, the losses' scratch. */
void rt_cu_set_i64(int64_t *d, int64_t v);  /* enqueued: *d = v */
void rt_cu_scratch(int64_t doubles);         /* grows the scratch (outside capture) */

/* rt_kernels.cu */
void rt_cu_gemm_rm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                   const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                   float *c, int64_t ldc);
/* The same, strided-batched: entry i on a + i·sa, b + i·sb, c + i·sc. */
void rt_cu_gemm_rm_batched(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                           float alpha, const float *a, int64_t lda, int64_t sa,
                           const float *b, int64_t ldb, int64_t sb, float beta, float *c,
                           int64_t ldc, int64_t sc, int64_t batch);

/* rt_xport.cu: set up from the dry run's record (collective), and the
 * summary's words; rt_xport_wait.cu: progress the transport while waiting
 * for the device (rt_xp_sync). */
int rt_xp_setup(rt_ctx *c);
void rt_xp_dry_begin(rt_ctx *c);
void rt_xp_sync(rt_ctx *c);                  /* waits for the step's device work */
const char *rt_xp_name(rt_ctx *c);
const char *rt_xp_note(rt_ctx *c);          /* why that transport, or NULL */
int rt_xp_graph_safe(rt_ctx *c);            /* every transfer is a device operation */
void rt_xp_free(rt_ctx *c);

#ifdef __cplusplus
}
#endif

#endif /* PIPERT_CUDA_H */
