/* rt_dev_cuda.cu — the device layer of libpipert_cuda.a (rt_dev.h).
 *
 * A rank drives one device: the local rank's index modulo the devices it
 * sees.  Its buffers are device memory at the compiler's offsets, its work
 * goes to one compute stream, and a step runs in one of two ways:
 *   eager   program->step enqueues every kernel and transfer; each action is
 *           timed by CUDA events on the compute stream (rt_dev_mark), read
 *           after the step, so the trace and the bubble are device time;
 *   graph   after one eager warm-up step, the next step is captured whole
 *           (kernels, GEMMs, NCCL calls; thread-local capture mode) as one
 *           CUDA graph, instantiated once and replayed for every later step.
 *           What changes between steps stays out of the graph: the step's
 *           data is copied to fixed device buffers before the launch,
 *           dropout reads the step as its captured value plus a device
 *           offset, the optimizer's scalars (the learning rate, Adam's bias
 *           corrections) are uploaded before each launch, the loss sum is a
 *           device double zeroed before and read after.
 * Graphs are on by default where every transfer is a device operation
 * (NCCL, or none), and off with CUDA IPC or host staging (MPI calls inside
 * the step cannot be captured), --check-messages, --trace (unless
 * --cuda-graph on), or a program that reads each loss on the host.
 */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "rt_cuda.h"

/* ---- The device, stand-alone or for a rank. ---- */

static const size_t BLAS_WS = (size_t)32 << 20;    /* cuBLAS's advice for Hopper */

int rt_cu_open(int device, char *err, size_t errlen)
{
	cudaDeviceProp prop;
	int n = 0;
	cudaError_t e = cudaGetDeviceCount(&n);
	const char *tf = getenv("PIPEC_TF32");
	if (e != cudaSuccess || n <= 0) {
		rt_fmt_err(err, errlen, "no CUDA device is visible (%s)",
		           e != cudaSuccess ? cudaGetErrorString(e) : "no devices");
		(void)cudaGetLastError();
		return -1;
	}
	rt_cu.device = device % n;
	if ((e = cudaSetDevice(rt_cu.device)) != cudaSuccess ||
	    (e = cudaGetDeviceProperties(&prop, rt_cu.device)) != cudaSuccess ||
	    (e = cudaFree(0)) != cudaSuccess) {
		rt_fmt_err(err, errlen, "CUDA device %d cannot be used: %s", rt_cu.device,
		           cudaGetErrorString(e));
		return -1;
	}
	snprintf(rt_cu.device_name, sizeof rt_cu.device_name, "%s", prop.name);
	rt_cu.cc_major = prop.major;
	rt_cu.cc_minor = prop.minor;
	memcpy(rt_cu.uuid, prop.uuid.bytes, 16);
	rt_cu.tf32 = tf && !strcmp(tf, "1");

	RT_CU(cudaStreamCreateWithFlags(&rt_cu.stream, cudaStreamNonBlocking));
	RT_CUBLAS(cublasCreate(&rt_cu.blas));
	RT_CUBLAS(cublasSetStream(rt_cu.blas, rt_cu.stream));
	/* The handle's own workspace, alive as long as any graph that uses it:
	 * cuBLAS then allocates nothing while a step is captured. */
	RT_CU(cudaMalloc(&rt_cu.blas_ws, BLAS_WS));
	rt_cu.blas_ws_bytes = BLAS_WS;
	RT_CUBLAS(cublasSetWorkspace(rt_cu.blas, rt_cu.blas_ws, rt_cu.blas_ws_bytes));

	RT_CU(cudaMalloc((void **)&rt_cu.d_loss, sizeof(double)));
	RT_CU(cudaMalloc((void **)&rt_cu.d_ret, sizeof(double)));
	RT_CU(cudaMalloc((void **)&rt_cu.d_step_off, sizeof(int64_t)));
	RT_CU(cudaMalloc((void **)&rt_cu.d_gen_pos, sizeof(int64_t)));
	RT_CU(cudaMemsetAsync(rt_cu.d_gen_pos, 0, sizeof(int64_t), rt_cu.stream));
	RT_CU(cudaMalloc((void **)&rt_cu.d_osc, sizeof(rt_osc)));
	RT_CU(cudaMallocHost((void **)&rt_cu.h_osc, sizeof(rt_osc)));
	RT_CU(cudaMemsetAsync(rt_cu.d_loss, 0, sizeof(double), rt_cu.stream));
	RT_CU(cudaMemsetAsync(rt_cu.d_step_off, 0, sizeof(int64_t), rt_cu.stream));
	RT_CU(cudaMemsetAsync(rt_cu.d_osc, 0, sizeof(rt_osc), rt_cu.stream));
	RT_CU(cudaMallocHost((void **)&rt_cu.h_loss, sizeof(double)));
	RT_CU(cudaMallocHost((void **)&rt_cu.h_ret, sizeof(double)));
	RT_CU(cudaEventCreate(&rt_cu.ev_step));
	rt_cu.open = 1;
	rt_cu_scratch(4096);
	RT_CU(cudaStreamSynchronize(rt_cu.stream));
	return 0;
}

void rt_cu_sync(void)
{
	RT_CU(cudaStreamSynchronize(rt_cu.stream));
}

void rt_cu_close(void)
{
	if (!rt_cu.open)
		return;
	(void)cudaStreamSynchronize(rt_cu.stream);
	for (int i = 0; i < rt_cu.cap_mark; i++) {
		cudaEventDestroy(rt_cu.ev_b[i]);
		cudaEventDestroy(rt_cu.ev_e[i]);
	}
	free(rt_cu.ev_b);
	free(rt_cu.ev_e);
	free(rt_cu.mark_op);
	free(rt_cu.mark_ev);
	cudaEventDestroy(rt_cu.ev_step);
	cublasDestroy(rt_cu.blas);
	cudaFree(rt_cu.blas_ws);
	cudaFree(rt_cu.d_loss);
	cudaFree(rt_cu.d_ret);
	cudaFree(rt_cu.d_step_off);
	cudaFree(rt_cu.d_gen_pos);
	if (rt_cu.h_gen_tok)
		cudaFreeHost(rt_cu.h_gen_tok);
	cudaFree(rt_cu.d_osc);
	cudaFreeHost(rt_cu.h_osc);
	cudaFree(rt_cu.d_scratch);
	cudaFreeHost(rt_cu.h_loss);
	cudaFreeHost(rt_cu.h_ret);
	cudaStreamDestroy(rt_cu.stream);
	memset(&rt_cu, 0, sizeof rt_cu);
}

int rt_dev_init(rt_ctx *c)
{
	MPI_Comm node;
	int local = 0;
	char err[512];
	rt_cu.c = c;
	/* Ranks on one node take its devices in turn. */
	if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL,
	                        &node) == MPI_SUCCESS) {
		MPI_Comm_rank(node, &local);
		MPI_Comm_free(&node);
	}
	if (rt_cu_open(local, err, sizeof err) != 0) {
		rt_defer(c, "%s", err);
		return RT_EXIT_RUNTIME;
	}
	rt_cu.tf32 |= c->o.tf32;
	/* a 16-bit program's linear layers: TF32 changes none of their numbers
	 * (docs/precision.md); PIPEC_TF32=0 keeps them on the f32 path */
	{
		const char *tf = getenv("PIPEC_TF32");
		rt_cu.tf32_16 = c->p->precision != RT_PREC_F32 && !(tf && !strcmp(tf, "0"));
	}
	return 0;
}

/* ---- Device scratch and scalars: the losses' partial sums (rt_kernels.cu,
 * rt_tf.cu) and the step's counters read by captured graphs. ---- */

extern "C" void rt_cu_scratch(int64_t doubles)
{
	if (doubles <= rt_cu.scratch_cap)
		return;
	if (rt_cu.capturing)
		rt_cu_fail("the loss needs %lld doubles of scratch, more than were set aside before "
		           "the CUDA graph was captured", (long long)doubles);
	RT_CU(cudaStreamSynchronize(rt_cu.stream));
	if (rt_cu.d_scratch)
		RT_CU(cudaFree(rt_cu.d_scratch));
	RT_CU(cudaMalloc((void **)&rt_cu.d_scratch, (size_t)doubles * sizeof(double)));
	rt_cu.scratch_cap = doubles;
}

__global__ static void k_set_i64(int64_t *d, int64_t v)
{
	*d = v;
}

extern "C" void rt_cu_set_i64(int64_t *d, int64_t v)
{
	k_set_i64<<<1, 1, 0, rt_cu.stream>>>(d, v);
	RT_CU_LAUNCHED("a step counter");
}

/* ---- Memory of the model's buffers. ---- */

/* What each allocation took from the device: the drop in free memory
 * around its cudaMalloc, measured under a lock that the ranks sharing the
 * device take for their allocations, so they do not count each other's.
 * The driver maps memory in 2 MiB pages and cudaMalloc places small
 * allocations in pages already mapped: an allocation counts at least its own
 * size (rounded to cudaMalloc's 512 bytes), so the total is the model's
 * bytes up to the allocator's granularity. */
typedef struct {
	void *p;
	double took;
} alloc_rec;
static alloc_rec *allocs;
static int nallocs, cap_allocs;

static int lock_device(void)
{
	char path[96];
	int fd, o;
	o = snprintf(path, sizeof path, "/tmp/pipec-cuda-");
	for (int i = 0; i < 16; i++)
		o += snprintf(path + o, sizeof path - (size_t)o, "%02x", rt_cu.uuid[i]);
	snprintf(path + o, sizeof path - (size_t)o, ".lock");
	fd = open(path, O_CREAT | O_RDWR, 0666);
	if (fd >= 0 && flock(fd, LOCK_EX) != 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static void unlock_device(int fd)
{
	if (fd >= 0) {
		flock(fd, LOCK_UN);
		close(fd);
	}
}

int rt_dev_reserve(rt_ctx *c, size_t bytes)
{
	(void)c;
	(void)bytes;
	return 0;           /* cudaMalloc's memory is measured as it is allocated */
}

void *rt_dev_alloc(rt_ctx *c, size_t bytes)
{
	size_t f0 = 0, f1 = 0, total = 0;
	void *p = NULL;
	int fd;
	(void)c;
	if (nallocs == cap_allocs) {
		int cap = cap_allocs ? 2 * cap_allocs : 16;
		alloc_rec *a = (alloc_rec *)realloc(allocs, (size_t)cap * sizeof *a);
		if (!a)
			return NULL;
		allocs = a;
		cap_allocs = cap;
	}
	fd = lock_device();
	(void)cudaMemGetInfo(&f0, &total);
	if (cudaMalloc(&p, bytes ? bytes : 256) != cudaSuccess) {
		(void)cudaGetLastError();
		unlock_device(fd);
		return NULL;
	}
	RT_CU(cudaMemsetAsync(p, 0, bytes ? bytes : 256, rt_cu.stream));
	RT_CU(cudaStreamSynchronize(rt_cu.stream));
	(void)cudaMemGetInfo(&f1, &total);
	unlock_device(fd);
	allocs[nallocs].p = p;
	allocs[nallocs].took = f0 > f1 ? (double)(f0 - f1) : 0.0;
	if (allocs[nallocs].took < (double)((bytes + 511) / 512 * 512))
		allocs[nallocs].took = (double)((bytes + 511) / 512 * 512);
	rt_cu.mem_now += allocs[nallocs].took;
	if (rt_cu.mem_now > rt_cu.mem_peak)
		rt_cu.mem_peak = rt_cu.mem_now;
	nallocs++;
	rt_cu.nalloc++;
	return p;
}

void rt_dev_free(rt_ctx *c, void *buf)
{
	(void)c;
	if (!buf)
		return;
	for (int i = 0; i < nallocs; i++)
		if (allocs[i].p == buf) {
			rt_cu.mem_now -= allocs[i].took;
			allocs[i] = allocs[--nallocs];
			break;
		}
	RT_CU(cudaFree(buf));
}

double rt_dev_peak_bytes(rt_ctx *c)
{
	(void)c;
	return rt_cu.mem_peak;
}

/* The greedy pick of a captured decode round: argmax per row on the
 * device (the first largest, as torch.argmax and rt_gen_pick), the tokens
 * into the device buffer the ring sends, and a copy into pinned memory. */
__global__ static void k_argmax(const float *__restrict__ z, int32_t *__restrict__ tok,
                                int64_t V)
{
	__shared__ float bv[256];
	__shared__ int64_t bi[256];
	const float *row = z + (int64_t)blockIdx.x * V;
	float best = -INFINITY;
	int64_t at = -1;
	for (int64_t j = threadIdx.x; j < V; j += blockDim.x)
		if (at < 0 || row[j] > best) {
			best = row[j];
			at = j;
		}
	bv[threadIdx.x] = best;
	bi[threadIdx.x] = at;
	__syncthreads();
	for (int s = blockDim.x / 2; s > 0; s /= 2) {
		if (threadIdx.x < s) {
			float ov = bv[threadIdx.x + s];
			int64_t oi = bi[threadIdx.x + s];
			if (oi >= 0 && (bi[threadIdx.x] < 0 || ov > bv[threadIdx.x]
			                || (ov == bv[threadIdx.x] && oi < bi[threadIdx.x]))) {
				bv[threadIdx.x] = ov;
				bi[threadIdx.x] = oi;
			}
		}
		__syncthreads();
	}
	if (threadIdx.x == 0)
		tok[blockIdx.x] = (int32_t)(bi[0] < 0 ? 0 : bi[0]);
}

int rt_dev_gen_pick(rt_ctx *c, int g, const float *logits, int32_t *tok)
{
	int64_t rows = c->p->mb_rows;
	if (!rt_cu.gen_graph)
		return 0;
	if (rt_cu.dry || rows <= 0)
		return 1;
	k_argmax<<<(unsigned)rows, 256, 0, rt_cu.stream>>>(logits, tok, c->p->gen_vocab);
	RT_CU_LAUNCHED("rt_gen_pick (argmax)");
	RT_CU(cudaMemcpyAsync(rt_cu.h_gen_tok + (int64_t)g * rows, tok,
	                      (size_t)rows * sizeof(int32_t), cudaMemcpyDeviceToHost,
	                      rt_cu.stream));
	return 1;
}

int rt_dev_gen_collect(rt_ctx *c, int32_t *tokens)
{
	if (!rt_cu.gen_graph)
		return 0;
	memcpy(tokens, rt_cu.h_gen_tok, (size_t)(c->p->batch / c->p->R) * sizeof(int32_t));
	return 1;
}

int rt_dev_computing(rt_ctx *c)
{
	(void)c;
	return !rt_cu.dry;
}

void *rt_dev_map(rt_ctx *c, void *buf, size_t bytes, int mode)
{
	/* zeroed: a buffer filled in parts (the parameters) keeps zero gaps */
	void *h = calloc(1, bytes ? bytes : 1);
	(void)c;
	if (!h)
		return NULL;
	if ((mode & RT_MAP_READ) && buf && bytes) {
		RT_CU(cudaStreamSynchronize(rt_cu.stream));
		RT_CU(cudaMemcpy(h, buf, bytes, cudaMemcpyDeviceToHost));
	}
	return h;
}

void rt_dev_unmap(rt_ctx *c, void *buf, void *host, size_t bytes, int mode)
{
	(void)c;
	if ((mode & RT_MAP_WRITE) && buf && host && bytes) {
		RT_CU(cudaStreamSynchronize(rt_cu.stream));
		RT_CU(cudaMemcpy(buf, host, bytes, cudaMemcpyHostToDevice));
	}
	free(host);
}

/* ---- Data of the step (pipert.h). ---- */

/* A program with `inputs`: each input's rows of this replica for the step,
 * [batch / R, cols] of 4-byte values (float or int32), NULL where this rank
 * holds none of it. */
static char **d_in;

static int64_t replica_rows(const rt_program *p)
{
	return p->batch / p->R;
}

static void check_mb(rt_ctx *c, int mb, int have, const char *what)
{
	if (mb < 0 || mb >= c->p->M)
		rt_die(c, RT_EXIT_RUNTIME, "%s: micro-batch %d outside 0..%d", what, mb, c->p->M - 1);
	if (!have)
		rt_die(c, RT_EXIT_RUNTIME, "%s: this rank holds no such data", what);
}

/* The device copy of the data that step c->step (the current action's key's
 * step, rt_async_use) reads, as an offset in rows of this replica. */
static int64_t data_row0(rt_ctx *c)
{
	int n = rt_cu.ndata > 1 ? rt_cu.ndata : 1;
	return (int64_t)(((c->step % n) + n) % n) * replica_rows(c->p);
}

const void *rt_data(rt_ctx *c, int k, int mb)
{
	const rt_program *p = c->p;
	if (p->ninputs == 0 && k == 0)
		return rt_input(c, mb);
	if (k < 0 || k >= p->ninputs)
		rt_die(c, RT_EXIT_RUNTIME, "rt_data: input %d outside 0..%d", k, p->ninputs - 1);
	check_mb(c, mb, d_in && d_in[k] != NULL, "rt_data");
	return d_in[k] + (data_row0(c) + mb * p->mb_rows) * c->in[k].cols * 4;
}

const float *rt_input(rt_ctx *c, int mb)
{
	if (c->p->ninputs > 0) {
		if (c->p->inputs[0].dtype != RT_DT_F32)
			rt_die(c, RT_EXIT_RUNTIME, "rt_input: input '%s' is int32 (use rt_data)",
			       c->p->inputs[0].name);
		return (const float *)rt_data(c, 0, mb);
	}
	check_mb(c, mb, rt_cu.d_x != NULL, "rt_input");
	return rt_cu.d_x + (data_row0(c) + mb * c->p->mb_rows) * c->p->in_width;
}

const int32_t *rt_target_class(rt_ctx *c, int mb)
{
	check_mb(c, mb, rt_cu.d_tc != NULL, "rt_target_class");
	return rt_cu.d_tc + data_row0(c) + mb * c->p->mb_rows;
}

const float *rt_target_dense(rt_ctx *c, int mb)
{
	check_mb(c, mb, rt_cu.d_td != NULL, "rt_target_dense");
	return rt_cu.d_td + (data_row0(c) + mb * c->p->mb_rows) * c->p->target_width;
}

/* Every step's outputs go to a device buffer (a graph cannot tell the last
 * step from the others); the last step's are downloaded after it, or, in
 * an inference run over a file, every step's.  An evaluation keeps none. */
void rt_output(rt_ctx *c, int mb, const float *y)
{
	int64_t n = c->p->mb_rows * rt_out_row_floats(c);
	if (rt_cu.dry || !rt_cu.d_out || c->evaluating || mb < 0 || mb >= c->p->M)
		return;
	RT_CU(cudaMemcpyAsync(rt_cu.d_out + mb * n, y, (size_t)n * sizeof *y,
	                      cudaMemcpyDeviceToDevice, rt_cu.stream));
	c->out_seen[mb] = 1;
}

/* Uploads rows [i0, i0 + n) of batch s (rt_data_row: the epoch's order,
 * or an evaluation batch) of a host array to dst, a run of consecutive
 * file rows per copy: one copy unless shuffled. */
static void upload_rows(rt_ctx *c, char *dst, const void *src, size_t row_bytes, int64_t s,
                        int64_t i0, int64_t n)
{
	for (int64_t i = 0; i < n;) {
		int64_t r = rt_data_row(c, s, i0 + i), len = 1;
		while (i + len < n && rt_data_row(c, s, i0 + i + len) == r + len)
			len++;
		RT_CU(cudaMemcpyAsync(dst + i * (int64_t)row_bytes,
		                      (const char *)src + r * (int64_t)row_bytes,
		                      (size_t)len * row_bytes, cudaMemcpyHostToDevice, rt_cu.stream));
		i += len;
	}
}

/* Copies this replica's rows of batch s (step s, or evaluation batch s) to
 * the device copy `copy` (t % ndata for step t: an asynchronous step still
 * reads the step before's). */
static void stage_data(rt_ctx *c, int64_t s, int copy)
{
	const rt_program *p = c->p;
	rt_dset ds = rt_data_set(c);
	int64_t rows = replica_rows(p), d0 = (int64_t)copy * rows, i0 = p->replica * rows;
	for (int k = 0; d_in && ds.in && k < p->ninputs; k++)
		if (d_in[k] && ds.in[k].data) {
			size_t rb = (size_t)ds.in[k].cols * 4;
			upload_rows(c, d_in[k] + d0 * (int64_t)rb, ds.in[k].data, rb, s, i0, rows);
		}
	if (rt_cu.d_x && ds.x)
		upload_rows(c, (char *)(rt_cu.d_x + d0 * p->in_width), ds.x,
		            (size_t)p->in_width * sizeof(float), s, i0, rows);
	if (rt_cu.d_tc && ds.tc)
		upload_rows(c, (char *)(rt_cu.d_tc + d0), ds.tc, sizeof(int32_t), s, i0, rows);
	if (rt_cu.d_td && ds.td)
		upload_rows(c, (char *)(rt_cu.d_td + d0 * p->target_width), ds.td,
		            (size_t)p->target_width * sizeof(float), s, i0, rows);
}

static void pin(void *p, size_t bytes)
{
	/* Faster, truly asynchronous uploads; unpinned memory works too. */
	if (p && bytes && cudaHostRegister(p, bytes, cudaHostRegisterDefault) != cudaSuccess)
		(void)cudaGetLastError();
}

static void unpin(void *p)
{
	if (p && cudaHostUnregister(p) != cudaSuccess)
		(void)cudaGetLastError();
}

/* ---- Device timing of actions. ---- */

static int nev0;    /* c->nev when the current action began */

static void grow_marks(int need)
{
	int cap = rt_cu.cap_mark ? rt_cu.cap_mark : 64;
	while (cap < need)
		cap *= 2;
	if (cap == rt_cu.cap_mark)
		return;
	rt_cu.ev_b = (cudaEvent_t *)realloc(rt_cu.ev_b, (size_t)cap * sizeof(cudaEvent_t));
	rt_cu.ev_e = (cudaEvent_t *)realloc(rt_cu.ev_e, (size_t)cap * sizeof(cudaEvent_t));
	rt_cu.mark_op = (int *)realloc(rt_cu.mark_op, (size_t)cap * sizeof(int));
	rt_cu.mark_ev = (int *)realloc(rt_cu.mark_ev, (size_t)cap * sizeof(int));
	if (!rt_cu.ev_b || !rt_cu.ev_e || !rt_cu.mark_op || !rt_cu.mark_ev)
		rt_cu_fail("out of memory for action timing");
	for (int i = rt_cu.cap_mark; i < cap; i++) {
		RT_CU(cudaEventCreate(&rt_cu.ev_b[i]));
		RT_CU(cudaEventCreate(&rt_cu.ev_e[i]));
	}
	rt_cu.cap_mark = cap;
}

void rt_dev_mark(rt_ctx *c, int end)
{
	int k = c->action_index - 1;
	if (rt_cu.dry || rt_cu.capturing || !rt_cu.open || k < 0)
		return;
	if (!end) {
		if (k >= rt_cu.cap_mark)
			grow_marks(k + 1);
		RT_CU(cudaEventRecord(rt_cu.ev_b[k], rt_cu.stream));
		rt_cu.mark_op[k] = c->cur.op;
		rt_cu.mark_ev[k] = -1;
		rt_cu.nmark = k + 1;
		nev0 = (int)c->nev;
	} else if (k < rt_cu.nmark) {
		RT_CU(cudaEventRecord(rt_cu.ev_e[k], rt_cu.stream));
		rt_cu.mark_ev[k] = (int)c->nev > nev0 ? (int)c->nev - 1 : -1;
	}
}

/* After an eager step: device times replace the host's in the trace and
 * the busy time (the bubble). */
static void resolve_marks(rt_ctx *c)
{
	double busy = 0.0;
	for (int k = 0; k < rt_cu.nmark; k++) {
		float b = 0.0f, e = 0.0f;
		/* an action that began and never ended has no end record: skipped */
		if (cudaEventElapsedTime(&b, rt_cu.ev_step, rt_cu.ev_b[k]) != cudaSuccess ||
		    cudaEventElapsedTime(&e, rt_cu.ev_step, rt_cu.ev_e[k]) != cudaSuccess) {
			(void)cudaGetLastError();
			continue;
		}
		if (rt_op_is_compute(rt_cu.mark_op[k]))
			busy += (e - b) * 1e-3;
		if (rt_cu.mark_ev[k] >= 0 && rt_cu.mark_ev[k] < (int)c->nev) {
			c->ev[rt_cu.mark_ev[k]].t0 = rt_cu.step_host_t0 + b * 1e-3;
			c->ev[rt_cu.mark_ev[k]].t1 = rt_cu.step_host_t0 + e * 1e-3;
		}
	}
	c->busy = busy;
	rt_cu.nmark = 0;
}

/* ---- Tied parameters' gradients (rt_optim_step). ---- */

/* Pinned host copies of the tied gradients, one after another. */
static float *h_tied;

static int alloc_tied(rt_ctx *c)
{
	int64_t n = 0;
	if (!c->ntied || c->p->optim == RT_OPTIM_NONE)
		return 0;
	for (int i = 0; i < c->ntied; i++)
		n += c->tied[i].len;
	if (cudaMallocHost((void **)&h_tied, (size_t)n * sizeof(float)) != cudaSuccess) {
		(void)cudaGetLastError();
		rt_defer(c, "out of pinned host memory for the tied gradients");
		return RT_EXIT_RUNTIME;
	}
	return 0;
}

/* rt_tied_sum on the device gradients, through host memory: download,
 * MPI allreduce (rt_comm.c), upload, on the compute stream after the
 * step's backward work and allreduces.  (NCCL on a communicator of the
 * holders would keep graphs on; the MPI path works with every transport.)
 * rt_xp_sync before the wait also sends every pending CUDA IPC
 * acknowledgement: a peer waiting for one in its last send's rt_wait would
 * otherwise never reach its own OPTIM, and neither would we. */
extern "C" void rt_cu_tied_sum(rt_ctx *c)
{
	int64_t o = 0;
	if (rt_cu.dry || !c->ntied || !h_tied)
		return;
	for (int i = 0; i < c->ntied; i++) {
		RT_CU(cudaMemcpyAsync(h_tied + o, c->g + c->tied[i].off,
		                      (size_t)c->tied[i].len * sizeof(float), cudaMemcpyDeviceToHost,
		                      rt_cu.stream));
		o += c->tied[i].len;
	}
	rt_xp_sync(c);
	o = 0;
	for (int i = 0; i < c->ntied; i++) {
		rt_tied_sum_one(c, i, h_tied + o);
		RT_CU(cudaMemcpyAsync(c->g + c->tied[i].off, h_tied + o,
		                      (size_t)c->tied[i].len * sizeof(float), cudaMemcpyHostToDevice,
		                      rt_cu.stream));
		o += c->tied[i].len;
	}
	/* The next step's download overwrites h_tied only after rt_dev_step's
	 * end-of-step sync, which these uploads precede on the stream. */
}

/* ---- Start-up: data, a dry run, the transport, graphs. ---- */

enum {
	NO_GRAPH_OPTION = 1, NO_GRAPH_TRANSPORT = 2, NO_GRAPH_LOSS = 4, NO_GRAPH_CHECK = 8,
	NO_GRAPH_TRACE = 16, NO_GRAPH_STEPS = 32, NO_GRAPH_TIED = 64, NO_GRAPH_GEN = 128,
	NO_GRAPH_ASYNC = 256, NO_GRAPH_CLIP = 512
};

static const char *graph_reason(int why)
{
	if (why & NO_GRAPH_OPTION)
		return "--cuda-graph off";
	if (why & NO_GRAPH_TRANSPORT)
		return "the transport calls MPI inside the step, which a graph cannot capture";
	if (why & NO_GRAPH_LOSS)
		return "the program reads each micro-batch's loss on the host (rt_loss_cross_entropy "
		       "or rt_loss_mse): recompile it with this pipec";
	if (why & NO_GRAPH_CHECK)
		return "--check-messages reads message headers on the host";
	if (why & NO_GRAPH_TRACE)
		return "--trace times every action (--cuda-graph on times whole steps)";
	if (why & NO_GRAPH_STEPS)
		return "one step only";
	if (why & NO_GRAPH_TIED)
		return "tied weights' gradients are summed through host memory (MPI inside the step)";
	if (why & NO_GRAPH_CLIP)
		return "clip_grad_norm: the gradient norm is reduced over the job through MPI inside "
		       "the step";
	if (why & NO_GRAPH_ASYNC)
		return "an asynchronous schedule's steps differ: each computes with the weight "
		       "versions and data copies its keys name";
	if (why & NO_GRAPH_GEN)
		return "generation: with continuous batching each round's rows differ (their "
		       "tokens and positions), so rounds run eagerly";
	return NULL;
}

static int alloc_data(rt_ctx *c)
{
	const rt_program *p = c->p;
	int64_t rows;
	cudaError_t e = cudaSuccess;
	rt_cu.ndata = p->async ? 2 : 1;
	rows = replica_rows(p) * rt_cu.ndata;
	/* The last stage may hold the input too (for synthetic targets): only
	 * the first stage's programs read it. */
	if (c->x && p->first_stage) {
		pin(c->x, (size_t)(c->x_rows * p->in_width) * sizeof(float));
		e = cudaMalloc((void **)&rt_cu.d_x, (size_t)(rows * p->in_width) * sizeof(float));
	}
	if (c->in && p->first_stage) {
		if (!(d_in = (char **)calloc((size_t)p->ninputs, sizeof *d_in))) {
			rt_defer(c, "out of memory");
			return RT_EXIT_RUNTIME;
		}
		for (int k = 0; k < p->ninputs && e == cudaSuccess; k++)
			if (c->in[k].data) {
				pin(c->in[k].data, (size_t)(c->in[k].rows * c->in[k].cols) * 4);
				e = cudaMalloc((void **)&d_in[k], (size_t)(rows * c->in[k].cols) * 4);
			}
	}
	if (e == cudaSuccess && c->tc) {
		pin(c->tc, (size_t)c->t_rows * sizeof(int32_t));
		e = cudaMalloc((void **)&rt_cu.d_tc, (size_t)rows * sizeof(int32_t));
	}
	if (e == cudaSuccess && c->td) {
		pin(c->td, (size_t)(c->t_rows * p->target_width) * sizeof(float));
		e = cudaMalloc((void **)&rt_cu.d_td, (size_t)(rows * p->target_width) * sizeof(float));
	}
	if (e == cudaSuccess && c->out)
		e = cudaMalloc((void **)&rt_cu.d_out,
		               (size_t)(replica_rows(p) * p->out_width) * sizeof(float));
	if (e != cudaSuccess) {
		(void)cudaGetLastError();
		rt_defer(c, "out of device memory for the data: %s", cudaGetErrorString(e));
		return RT_EXIT_RUNTIME;
	}
	return 0;
}

/* The step once with rt_cu.dry set: the API records the messages and
 * checks the slots, and nothing is computed or traced. */
static void dry_run(rt_ctx *c)
{
	size_t nev = c->nev, dropped = c->dropped_ev;
	int step = c->step;
	rt_xp_dry_begin(c);
	c->step = -1;           /* no injected fault matches */
	rt_cu.dry = 1;
	c->p->step(c, 0);
	/* Generation: round 0 is the prefill; a decode round adds the token
	 * ring's messages, which the transport must know as well. */
	if (c->p->gen_tokens > 1) {
		c->gen_round = 1;
		c->p->step(c, 1);
		c->gen_round = 0;
	}
	/* Asynchronous: step 0 has no keys of a step before; step 1 has every
	 * message a later step has (with one step, step 1 is the drain) */
	if (c->p->async) {
		c->p->step(c, 1);
		c->w_use = NULL;
	}
	rt_cu.dry = 0;
	grow_marks(c->action_index + 1);
	c->step = step;
	c->nev = nev;
	c->dropped_ev = dropped;
	c->action_index = 0;
	c->in_action = 0;
	c->busy = 0.0;
}

int rt_dev_start(rt_ctx *c)
{
	int rc, why = 0, why_all = 0;
	if ((rc = alloc_data(c)) != 0 || (rc = alloc_tied(c)) != 0)
		return rc;
	/* The losses' per-row scratch, at its largest before the first step:
	 * growing it inside a step would synchronise the device with NCCL
	 * receives in flight.  The next-token loss has a row per position. */
	{
		int64_t rows = c->p->mb_rows;
		if (c->p->loss == RT_LOSS_NEXT_TOKEN && c->p->seq_max > 0)
			rows *= c->p->seq_max;
		rt_cu_scratch(rows > 1024 ? rows : 1024);
	}
	dry_run(c);
	if ((rc = rt_xp_setup(c)) != 0)
		return rc;

	if (c->o.cuda_graph == RT_GRAPH_OFF)
		why |= NO_GRAPH_OPTION;
	if (!rt_xp_graph_safe(c))
		why |= NO_GRAPH_TRANSPORT;
	if (rt_cu.sync_loss_calls)
		why |= NO_GRAPH_LOSS;
	if (c->o.check_messages)
		why |= NO_GRAPH_CHECK;
	if (c->o.trace && c->o.cuda_graph != RT_GRAPH_ON)
		why |= NO_GRAPH_TRACE;
	if (c->o.steps < 2 && c->p->gen_tokens == 0)
		why |= NO_GRAPH_STEPS;
	if (h_tied)
		why |= NO_GRAPH_TIED;
	if (c->p->optim != RT_OPTIM_NONE && c->p->clip_grad_norm > 0.0)
		why |= NO_GRAPH_CLIP;
	if (c->p->async)
		why |= NO_GRAPH_ASYNC;
	/* generation: with continuous batching every round has its own rows
	 * (each slot's tokens and positions, rt_gen.c), so no two rounds
	 * launch the same work */
	if (c->p->gen_tokens > 0)
		why |= NO_GRAPH_GEN;
	/* Every rank or none: NCCL calls are captured on both ends. */
	MPI_Allreduce(&why, &why_all, 1, MPI_INT, MPI_BOR, MPI_COMM_WORLD);
	rt_cu.graph_on = why_all == 0;
	rt_cu.graph_note = graph_reason(why_all);
	rt_cu.gen_graph = rt_cu.graph_on && c->p->gen_tokens > 0;
	if (rt_cu.gen_graph &&
	    cudaMallocHost((void **)&rt_cu.h_gen_tok,
	                   (size_t)(c->p->batch / c->p->R) * sizeof(int32_t)) != cudaSuccess) {
		rt_defer(c, "out of pinned memory for the tokens");
		return RT_EXIT_RUNTIME;
	}
	rt_cu.enq_graph_all = (double *)calloc((size_t)(c->o.steps > c->p->gen_tokens
	                                               ? c->o.steps : c->p->gen_tokens) + 1,
	                                       sizeof(double));
	if (!rt_cu.enq_graph_all) {
		rt_defer(c, "out of memory");
		return RT_EXIT_RUNTIME;
	}
	RT_CU(cudaStreamSynchronize(rt_cu.stream));
	return 0;
}

/* ---- The step. ---- */

/* Captures step t as the graph.  Every rank must replay a graph or none
 * (NCCL calls are captured on both ends), so a capture that fails on any
 * rank turns graphs off on all, and the step runs eagerly.  Returns whether
 * the graph is there to launch. */
static int capture(rt_ctx *c, int t)
{
	size_t nev = c->nev, dropped = c->dropped_ev;
	int64_t updates = c->opt_updates, opt_t = c->opt_t;     /* a failed capture's */
	double h0 = rt_now(), lr_now = c->lr_now;
	cudaError_t e;
	int ok, all_ok = 0;
	char why[200] = "";
	RT_CU(cudaStreamBeginCapture(rt_cu.stream, cudaStreamCaptureModeThreadLocal));
	rt_cu.capturing = 1;
	c->p->step(c, t);
	rt_cu.capturing = 0;
	e = cudaStreamEndCapture(rt_cu.stream, &rt_cu.graph);
	if (e == cudaSuccess)
		e = cudaGraphInstantiate(&rt_cu.exec, rt_cu.graph, 0);
	ok = e == cudaSuccess;
	if (!ok) {
		snprintf(why, sizeof why, "capturing step %d failed on rank %d: %s", t + 1, c->rank,
		         cudaGetErrorString(e));
		(void)cudaGetLastError();
	}
	/* The capture's host-timed actions are not a step's timeline. */
	c->nev = nev;
	c->dropped_ev = dropped;
	c->action_index = 0;
	MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
	if (all_ok) {
		rt_cu.captured_step = t;
		rt_cu.t_capture = rt_now() - h0;
		return 1;
	}
	/* the step runs again eagerly: its update is counted there */
	c->opt_updates = updates;
	c->opt_t = opt_t;
	c->lr_now = lr_now;
	if (rt_cu.exec)
		cudaGraphExecDestroy(rt_cu.exec);
	if (rt_cu.graph)
		cudaGraphDestroy(rt_cu.graph);
	rt_cu.exec = NULL;
	rt_cu.graph = NULL;
	rt_cu.graph_on = 0;
	snprintf(rt_cu.graph_why, sizeof rt_cu.graph_why, "%s; steps ran eagerly",
	         why[0] ? why : "a capture failed on another rank");
	rt_cu.graph_note = rt_cu.graph_why;
	rt_msg(c->rank, "note: CUDA graph off: %s", rt_cu.graph_note);
	return 0;
}

void rt_dev_step(rt_ctx *c, int t)
{
	const rt_program *p = c->p;
	/* t: the global step; an asynchronous schedule's counts from 0 in each
	 * segment (rt_main.c's run_steps), its data and dropout by seg0 + t */
	int eager = !rt_cu.graph_on || t == c->step0;
	double h0;

	/* generation: the rounds between the prefill and the last (which sends
	 * no token) launch the same work; the round's position is data */
	if (p->gen_tokens > 0) {
		if (rt_cu.gen_graph)
			rt_cu_set_i64(rt_cu.d_gen_pos, rt_gen_position(c));
		eager = !rt_cu.graph_on || t < 1 || t > p->gen_tokens - 2;
	}

	RT_CU(cudaMemsetAsync(rt_cu.d_loss, 0, sizeof(double), rt_cu.stream));
	{
		/* an asynchronous step's data: its segment's start plus t */
		int64_t s = p->async ? c->seg0 + t : t;
		stage_data(c, s, (int)(s % rt_cu.ndata));
	}
	if (p->async)           /* never a graph: the offset is the segment's start */
		rt_cu_set_i64(rt_cu.d_step_off, c->seg0);
	if (!eager) {
		rt_cu_set_i64(rt_cu.d_step_off, rt_cu.exec ? t - rt_cu.captured_step : 0);
		eager = !rt_cu.exec && !capture(c, t);
	}
	if (eager) {
		rt_cu.nmark = 0;
		RT_CU(cudaEventRecord(rt_cu.ev_step, rt_cu.stream));
		rt_cu.step_host_t0 = rt_now() - c->t_origin;
		h0 = rt_now();
		p->step(c, t);
		rt_cu.enq_eager += rt_now() - h0;
		rt_cu.n_eager++;
	} else {
		/* The graph's update reads its scalars from the device.  The
		 * captured step's host code counted its own update; a replay's
		 * runs nothing on the host, so its update is counted here (the
		 * clipping norm and tied sums keep graphs off: nothing else of
		 * rt_optim_step is host work).  h_osc is free: the step before
		 * ended with a sync. */
		if (p->optim != RT_OPTIM_NONE) {
			if (t != rt_cu.captured_step && c->before_replay)
				c->before_replay(c);
			*rt_cu.h_osc = c->osc;
			RT_CU(cudaMemcpyAsync(rt_cu.d_osc, rt_cu.h_osc, sizeof(rt_osc),
			                      cudaMemcpyHostToDevice, rt_cu.stream));
		}
		h0 = rt_now();
		RT_CU(cudaGraphLaunch(rt_cu.exec, rt_cu.stream));
		rt_cu.enq_graph_all[rt_cu.n_graph++] = rt_now() - h0;
	}
	RT_CU(cudaMemcpyAsync(rt_cu.h_loss, rt_cu.d_loss, sizeof(double), cudaMemcpyDeviceToHost,
	                      rt_cu.stream));
	/* an asynchronous run's last keys reach the output in the drain call;
	 * an inference run over a file keeps every step's rows */
	if (c->over_file && rt_cu.d_out && t < c->nbatches)
		RT_CU(cudaMemcpyAsync(c->out + (int64_t)t * replica_rows(p) * rt_out_row_floats(c),
		                      rt_cu.d_out,
		                      (size_t)(replica_rows(p) * rt_out_row_floats(c)) * sizeof(float),
		                      cudaMemcpyDeviceToHost, rt_cu.stream));
	else if ((p->async ? t == c->seg_len && c->seg0 + c->seg_len == c->step0 + c->o.steps
	                   : t == c->step0 + c->o.steps - 1) && rt_cu.d_out)
		RT_CU(cudaMemcpyAsync(c->out, rt_cu.d_out,
		                      (size_t)(replica_rows(p) * rt_out_row_floats(c)) * sizeof(float),
		                      cudaMemcpyDeviceToHost, rt_cu.stream));
	rt_xp_sync(c);
	c->loss_sum += *rt_cu.h_loss;
	if (eager)
		resolve_marks(c);
	else
		c->busy = NAN;      /* a replayed graph is timed whole */
}

/* An evaluation batch: its rows uploaded into the copy the accessors read
 * for the current step (data_row0), eval_step run eagerly (never captured:
 * it is another program), its loss read back. */
void rt_dev_eval(rt_ctx *c, int b)
{
	int n = rt_cu.ndata > 1 ? rt_cu.ndata : 1;
	RT_CU(cudaMemsetAsync(rt_cu.d_loss, 0, sizeof(double), rt_cu.stream));
	stage_data(c, b, ((c->step % n) + n) % n);
	rt_cu.nmark = 0;
	RT_CU(cudaEventRecord(rt_cu.ev_step, rt_cu.stream));
	rt_cu.step_host_t0 = rt_now() - c->t_origin;
	c->p->eval_step(c, b);
	RT_CU(cudaMemcpyAsync(rt_cu.h_loss, rt_cu.d_loss, sizeof(double), cudaMemcpyDeviceToHost,
	                      rt_cu.stream));
	rt_xp_sync(c);
	c->loss_sum += *rt_cu.h_loss;
	resolve_marks(c);
}

/* ---- Summary and shutdown. ---- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

void rt_dev_summary(rt_ctx *c)
{
	const char *note = rt_xp_note(c);
	(void)c;
	printf("device: %s (sm_%d%d), device %d of the node\n", rt_cu.device_name, rt_cu.cc_major,
	       rt_cu.cc_minor, rt_cu.device);
	printf("transport: %s%s%s%s\n", rt_xp_name(c), note ? " (" : "", note ? note : "",
	       note ? ")" : "");
	printf("cuda_graph: %s%s%s%s\n", rt_cu.graph_on ? "on" : "off",
	       rt_cu.graph_note ? " (" : "", rt_cu.graph_note ? rt_cu.graph_note : "",
	       rt_cu.graph_note ? ")" : "");
	if (!rt_cu.tf32 && rt_cu.tf32_16)
		printf("tf32: the linear layers' GEMMs (dtype %s: their 16-bit operands are exact in "
		       "TF32, so the numbers are f32's); off in the transformer layers\n",
		       c->p->precision == RT_PREC_BF16 ? "bf16" : "f16");
	else
		printf("tf32: %s\n", rt_cu.tf32 ? "on" : "off");
	/* Host time to enqueue one step: program->step's calls, or one
	 * cudaGraphLaunch.  The first eager step also pays lazy loading. */
	printf("enqueue_per_step_eager: %.6g s (mean of %d step%s%s)\n",
	       rt_cu.n_eager ? rt_cu.enq_eager / rt_cu.n_eager : 0.0, rt_cu.n_eager,
	       rt_cu.n_eager == 1 ? "" : "s", rt_cu.graph_on ? ", the warm-up" : "");
	if (rt_cu.n_graph) {
		qsort(rt_cu.enq_graph_all, (size_t)rt_cu.n_graph, sizeof(double), cmp_double);
		printf("enqueue_per_step_graph: %.6g s (median of %d launches; capture and "
		       "instantiation %.6g s)\n", rt_cu.enq_graph_all[rt_cu.n_graph / 2], rt_cu.n_graph,
		       rt_cu.t_capture);
	}
	printf("peak_memory_measured_as: device memory taken by cudaMalloc of weights, gradients, "
	       "optimizer state and arena (%d allocations)\n", rt_cu.nalloc);
}

void rt_dev_fini(rt_ctx *c)
{
	if (!rt_cu.open)
		return;
	(void)cudaStreamSynchronize(rt_cu.stream);
	if (rt_cu.exec)
		cudaGraphExecDestroy(rt_cu.exec);
	if (rt_cu.graph)
		cudaGraphDestroy(rt_cu.graph);
	rt_xp_free(c);
	cudaFree(rt_cu.d_x);
	cudaFree(rt_cu.d_tc);
	cudaFree(rt_cu.d_td);
	cudaFree(rt_cu.d_out);
	unpin(c->x);
	unpin(c->tc);
	unpin(c->td);
	for (int k = 0; d_in && k < c->p->ninputs; k++)
		if (d_in[k]) {
			cudaFree(d_in[k]);
			unpin(c->in[k].data);
		}
	free(d_in);
	d_in = NULL;
	if (h_tied)
		cudaFreeHost(h_tied);
	h_tied = NULL;
	free(rt_cu.enq_graph_all);
	free(allocs);
	allocs = NULL;
	nallocs = cap_allocs = 0;
	rt_cu_close();
}
