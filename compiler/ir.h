/* ir.h — the model IR every pass after sema shares.
 *
 * The checked program as data: the layers in order with their per-sample
 * shapes, parameters, FLOPs and activation memory; the pipeline settings;
 * and, after partitioning, the stages.  Nothing in here refers back to the
 * syntax tree except source locations for messages.
 *
 * Extensibility: a layer reads and writes NAMED tensors (IrTensor) rather
 * than "the previous output", so composite layers (a transformer block
 * with a residual path) and several tensors crossing a stage boundary (an
 * attention mask travelling with the activations) need no new structure:
 * the boundary set of stage s is every tensor produced before s and read at
 * or after it (ir_boundary).  The core MLP layers read one tensor and
 * write one.
 */
#ifndef PIPEC_IR_H
#define PIPEC_IR_H

#include "diag.h"
#include "layers.h"
#include "schedule.h"

#define DTYPES(X) X(DT_F32, "f32", 4) X(DT_F16, "f16", 2) X(DT_BF16, "bf16", 2) X(DT_I32, "i32", 4)
typedef enum {
#define X(e, s, b) e,
	DTYPES(X)
#undef X
	DT_COUNT
} DType;
const char *dtype_name(int dt);
int dtype_bytes(int dt);
/* The dtype called s, or -1. */
int dtype_from_name(const char *s);
extern const char *const dtype_names[DT_COUNT];

typedef enum { LOSS_NONE, LOSS_CROSS_ENTROPY, LOSS_MSE, LOSS_NEXT_TOKEN } LossKind;
typedef enum { OPT_NONE, OPT_SGD, OPT_ADAM } OptimKind;
enum { LR_CONSTANT, LR_COSINE, LR_LINEAR };     /* = RT_LR_* */

enum { INIT_UNIFORM_FANIN, INIT_ONES, INIT_ZEROS, INIT_NORMAL };   /* = RT_INIT_* */

/* A tensor of one sample (the batch dimension is implicit). */
typedef struct IrTensor {
	const char *name;
	int dtype;
	int ndim;               /* dims after batch */
	int64_t dims[4];
	int64_t elems;          /* product of dims (at the declared sequence length) */
	int seq;                /* dims[0] is the sequence axis: a run may be shorter */
	int producer;           /* layer index that writes it, -1 for a model input */
} IrTensor;

typedef struct IrParam {
	const char *name;       /* PyTorch name: "fc1.weight" */
	int ndim;
	int64_t dims[4];
	int64_t numel;
	int init;               /* INIT_* */
	int64_t fan_in;
	double std;             /* INIT_NORMAL */
	Loc loc;                /* the layer (or its `from`) that binds it */
} IrParam;

typedef struct IrLayer {
	const char *name;
	LayerKind kind;
	Loc loc;
	int in, out;            /* tensor indices read / written: the main path */
	int side[2];            /* tensors also read (attention mask, token types), -1 */
	int64_t in_w, out_w;    /* last-dimension widths */
	/* arguments, by kind */
	int bias;               /* linear */
	double p;               /* dropout */
	double eps;             /* layernorm, transformer layers */
	int64_t d, heads, ffn;  /* transformer layers */
	int64_t vocab, positions, ntypes;   /* embeddings, lm_head */
	int tied;               /* lm_head: the embedding layer whose weight it uses, -1 */
	/* llama_block: key/value heads (GQA), the rotary base, and Llama 3's
	 * frequency scaling (rope_factor 0: none); `bias` is its qkv_bias */
	int64_t kv_heads;
	double rope_theta;
	double rope_factor, rope_low, rope_high;
	int64_t rope_orig;
	IrParam *params;
	int nparams;
	int64_t nparam_elems;
	/* per sample */
	double flops_f;         /* forward */
	double flops_b;         /* input-gradient half of backward */
	double flops_w;         /* weight-gradient half of backward */
	/* Weight elements its GEMMs multiply by, once a call whatever the
	 * rows: each of its forward, input- and weight-gradient passes streams
	 * them from memory once (the cost model's --weight-bandwidth term) */
	double gemm_elems;
	int64_t act_bytes;      /* kept from forward for backward */
	/* Per sample, in floats, at the declared sequence length: what forward
	 * saves for backward besides the layer's output (layernorm's mean and
	 * rstd, a transformer block's internals), what the input-gradient pass
	 * stashes for the weight pass of a split backward, and scratch. */
	int64_t save_elems, stash_elems, work_elems;
} IrLayer;

typedef struct IrStage {
	int first, last;        /* layers [first, last) */
	int rank;               /* pipeline rank holding it */
	double recompute;       /* ratio r: the last round(r*n) layers are recomputed */
	int nrecompute;         /* round(r*n) */
	int64_t params;         /* parameter elements */
	int64_t copy_params;    /* a tied lm_head's copy of a token embedding held
	                         * by another stage (not counted in params) */
	double flops_f, flops_b, flops_w;   /* per sample */
	double gemm_elems;      /* its layers' gemm_elems: per call, not per sample */
	double gemm_elems_b;    /* those its input-gradient pass reads (not a layer
	                         * reading a model input: it has no such pass) */
	int64_t act_bytes;      /* per sample kept for backward, recompute applied */
	int64_t in_bytes, out_bytes;        /* per sample crossing its boundaries */
} IrStage;

typedef struct Pipeline {
	int P;                  /* stages = pipeline ranks */
	long long B;            /* global batch */
	int M;                  /* micro-batches */
	SchedKind sched;
	int V;                  /* virtual stages per rank */
	const char *sched_path; /* schedule = file("..."), resolved against the .pipe */
	double zb_memory;       /* zb-auto(memory = R): R, else 0 */
	Loc sched_loc;
	int part_auto;
	int *part_counts;       /* [npart] layers per stage as written, or NULL */
	int npart;
	Loc part_loc;
	double *recompute;      /* [nrecompute] ratios as written */
	int nrecompute;
	Loc recompute_loc;
	int R;                  /* replicas */
	int dtype;
	Loc dtype_loc;          /* `dtype` as written, if it was */
	OptimKind optim;        /* adamw is OPT_ADAM with `decoupled` set: the same
	                         * state and costs, another update */
	double lr, momentum;
	double beta1, beta2, eps;       /* adam, adamw */
	double weight_decay;
	int nesterov;           /* sgd */
	int decoupled;          /* adamw: w -= lr*wd*w apart from the gradient */
	int decay_matrices;     /* decay = matrices: only parameters of ndim >= 2 */
	int lr_schedule;        /* LR_* */
	long long lr_warmup, lr_total;  /* W and T, resolved (T defaults to steps) */
	double min_lr;
	double clip_grad_norm;  /* 0: none */
	int shuffle;            /* shuffle = true */
	int steps;
	long long seed;
	double memory_cap;      /* bytes per rank for partition = auto, 0 = none */
	Loc memory_loc;         /* its value, for the message when nothing fits */
	/* schedule = generate */
	int gen_tokens;         /* max_new_tokens */
	int sample;             /* 0 greedy, 1 sample(...) */
	double temperature;     /* sample: logits / temperature (default 1) */
	int top_k;              /* sample: 0 = every token, else the k most likely */
	long long sample_seed;  /* sample: the draws' seed */
	long long eos;          /* -1 none, else the end-of-sequence id */
	int64_t kv_cap;         /* positions cached per sequence: seq_max + gen_tokens */
	int disagg;             /* prefill = disaggregated: ranks of its own */
	/* schedule = pipedream, pipedream-2bw */
	int *inflight;          /* [P] micro-batches in flight per rank (P - r unless
	                         * `inflight` says less) */
	Loc inflight_loc;       /* `inflight` as written, if it was */
} Pipeline;

typedef struct IrModel {
	const char *name;
	const SrcFile *file;
	IrTensor *tensors;      /* model inputs first, then each layer's output */
	int ntensors;
	int ninputs;
	int target;             /* index into target decl below, -1 none */
	const char *target_name;
	int target_dtype;
	int64_t target_width;   /* 1 for class ids */
	LossKind loss;
	int loss_ids;           /* next_token: the ids tensor the loss reads, -1 */
	int64_t seq_max;        /* declared sequence length, 0 if no sequence input */
	IrLayer *layers;
	int nlayers;
	Pipeline pipe;
	/* after partitioning */
	IrStage *stages;        /* [S] */
	int S;
	/* index (ir_index, after sema): elements per sample crossing the
	 * boundary before layer b, b = 0 .. nlayers; NULL before */
	int64_t *cross;
} IrModel;

/* Tensors other than the main path's that cross the boundary before layer
 * `first` (first > 0), in tensor order: fills out (if not NULL, room for
 * ntensors) and returns how many. */
int ir_side_tensors(const IrModel *m, int first, int *out);
/* Bytes per sample of the tensors crossing the boundary before stage s:
 * O(1) once ir_index has run, else O(tensors + layers). */
int64_t ir_boundary_bytes(const IrModel *m, int first_layer_of_stage);
/* schedule = generate: bytes of the key/value caches stage s keeps for
 * the whole batch (every gpt2_block and llama_block: keys and values of
 * kv_cap positions of its kv width per sequence, ir_kv_value_bytes each);
 * 0 otherwise. */
int64_t ir_kv_bytes(const IrModel *m, int s);
/* Bytes of one cached key or value: the dtype's own (2) in a bf16 / f16
 * program (the stores round to it); else 4. */
int ir_kv_value_bytes(const IrModel *m);
/* Fills m->cross from the layers and tensors (sema calls it last). */
void ir_index(IrModel *m);
/* Fills the per-stage sums for the partition in m->stages[*].first/last. */
void ir_stage_costs(IrModel *m);
/* What the schedule's generator needs of a checked, partitioned model:
 * kind, ranks, micro-batches, replicas, recompute, the file of a custom
 * order, generation's rounds, an asynchronous run's steps. */
SchedSpec ir_sched_spec(const IrModel *m);
/* `pipec -dI`. */
void ir_dump(FILE *out, const IrModel *m);

#endif
