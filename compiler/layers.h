/* layers.h — the layer catalogue: everything the compiler knows about a
 * kind of layer, one entry per kind (layers.c).
 *
 * An entry says how a layer is written (its arguments, their types,
 * defaults and the IR fields they set), what it reads and writes (token
 * ids or features, a sequence, a side input), the parameters it binds
 * (PyTorch names, layouts, initialisation), what it costs (FLOPs of the
 * forward and of both halves of backward, what forward saves, a split
 * backward stashes and the kernels' scratch), what its backward reads,
 * and the runtime's entry points with the arguments they take.  Sema,
 * the cost model, check's summary, the memory plan and the emitter
 * consult the entry instead of switching on the kind: a new kind is an
 * entry here, its runtime kernels, its tests and its line in
 * docs/language.md.
 */
#ifndef PIPEC_LAYERS_H
#define PIPEC_LAYERS_H

#include <stdint.h>

/* X(enum, name): the kinds, in the order the catalogue lists them. */
#define LAYER_KINDS(X) \
	X(LK_LINEAR,    "linear") \
	X(LK_RELU,      "relu") \
	X(LK_GELU,      "gelu") \
	X(LK_TANH,      "tanh") \
	X(LK_SIGMOID,   "sigmoid") \
	X(LK_SILU,      "silu") \
	X(LK_DROPOUT,   "dropout") \
	X(LK_LAYERNORM, "layernorm") \
	X(LK_SOFTMAX,   "softmax") \
	X(LK_BERT_EMB,  "bert_embeddings") \
	X(LK_BERT_LAYER, "bert_layer") \
	X(LK_MEAN_POOL, "mean_pool") \
	X(LK_L2_NORM,   "l2_normalize") \
	X(LK_GPT2_EMB,  "gpt2_embeddings") \
	X(LK_GPT2_BLOCK, "gpt2_block") \
	X(LK_LM_HEAD,   "lm_head") \
	X(LK_LLAMA_EMB, "llama_embeddings") \
	X(LK_LLAMA_BLOCK, "llama_block") \
	X(LK_RMSNORM,   "rmsnorm")

typedef enum {
#define X(e, s) e,
	LAYER_KINDS(X)
#undef X
	LK_COUNT
} LayerKind;

struct IrLayer;
struct IrTensor;

/* An argument's type, which is also its range. */
typedef enum {
	LA_WIDTH,               /* an integer in [1, 2^31] */
	LA_BOOL,                /* true or false */
	LA_PROB,                /* a number with 0 <= p < 1 */
	LA_POSNUM,              /* a positive finite number */
	LA_NAME,                /* a name: a model input or a layer */
	LA_ROPE_SCALING         /* llama3(factor = F, low_freq_factor = L,
	                         * high_freq_factor = H, original = N) */
} LayerArgType;

/* The IR fields an argument sets (a mask: `d` of a transformer layer is
 * its width in and out). */
enum {
	LF_IN_W = 1 << 0, LF_OUT_W = 1 << 1, LF_BIAS = 1 << 2, LF_P = 1 << 3,
	LF_EPS = 1 << 4, LF_D = 1 << 5, LF_HEADS = 1 << 6, LF_FFN = 1 << 7,
	LF_VOCAB = 1 << 8, LF_POSITIONS = 1 << 9, LF_TYPES = 1 << 10,
	LF_SIDE = 1 << 11,      /* LA_NAME: the model input read as the side input */
	LF_TIED = 1 << 12,      /* LA_NAME: the embedding whose token table it uses */
	LF_KV_HEADS = 1 << 13, LF_ROPE_THETA = 1 << 14,
	LF_ROPE_SCALING = 1 << 15       /* LA_ROPE_SCALING: the four rope_* fields */
};

#define LAYER_MAX_ARGS 10        /* arguments of one kind, at most */

typedef struct LayerArg {
	const char *name;
	LayerArgType type;
	int required;
	double dflt;
	unsigned sets;          /* LF_* */
} LayerArg;

/* What the main input must be. */
typedef enum {
	LI_FEATURES,            /* f32 features (any shape) */
	LI_TOKENS,              /* token ids, i32[batch, LENGTH]: an embedding */
	LI_SEQUENCE             /* features over a sequence [batch, LENGTH, d] */
} LayerInput;

/* The output's shape from the input's. */
typedef enum {
	LO_SAME,                /* the input's, last dimension out_w */
	LO_EMBED,               /* the ids' with a d axis added */
	LO_POOLED               /* the sequence axis reduced away */
} LayerOutput;

/* The side input (a model input besides the main path) a kind reads. */
typedef enum {
	LS_NONE,
	LS_MASK,                /* the attention / padding mask: input 'mask' */
	LS_TYPES                /* token types: input 'types' */
} LayerSide;

/* A parameter's dimension or fan-in, from the layer's fields. */
typedef enum {
	LZ_0, LZ_IN, LZ_OUT, LZ_D, LZ_3D, LZ_FFN, LZ_VOCAB, LZ_POSITIONS, LZ_TYPES,
	LZ_KVW                  /* kv_heads · d / heads: a key or value projection */
} LayerSize;

typedef enum {
	LW_ALWAYS,
	LW_BIAS,                /* linear(..., bias = true); llama_block's qkv_bias */
	LW_UNTIED               /* an lm_head without tied = LAYER */
} LayerWhen;

typedef struct LayerParam {
	const char *name;       /* after the layer's prefix: "weight" -> "fc1.weight" */
	int ndim;
	LayerSize dim[2];
	int init;               /* INIT_* (ir.h) */
	LayerSize fan_in;       /* INIT_UNIFORM_FANIN */
	LayerWhen when;
} LayerParam;

/* An argument of a runtime entry point, as the emitter writes it.  The
 * layer's input x, output y, their gradients dy and dx are pointers into
 * the arena; W, G the weight and gradient buffers at the layer's first
 * parameter. */
typedef enum {
	RA_END = 0,
	RA_X, RA_Y, RA_DY, RA_DX,
	RA_W,                   /* W + the first parameter */
	RA_W2,                  /* W + the second parameter, NULL if none (no bias) */
	RA_G, RA_G2,            /* the same in the gradients */
	RA_G_IF_WEIGHT,         /* G when this call computes the weight gradient, else NULL */
	RA_STASH_IF_SPLIT,      /* a split backward's stash when it does not, else NULL */
	RA_STASH,               /* the stash a split backward's weight half reads */
	RA_SAVE, RA_SAVE2,      /* forward's statistics: the first, the second (rows on) */
	RA_ST, RA_ST2,          /* the same as backward reads them */
	RA_SIDE,                /* the side input (int32_t *) */
	RA_TF,                  /* &the layer's rt_tf descriptor */
	RA_WORK,                /* the shared scratch */
	RA_COUNT,               /* ROWS * the input's elements per sample */
	RA_ROWS,                /* rows of the input as a matrix of its last dimension */
	RA_MB_ROWS,             /* ROWS */
	RA_ELEMS,               /* the input's elements per sample */
	RA_T,                   /* the sequence length */
	RA_IN_W, RA_OUT_W,
	RA_EPS, RA_P,
	RA_SEED, RA_LAYER, RA_STEP, RA_ROW0,        /* a seeded random stream */
	RA_BYTES,               /* sizeof(float) * ROWS * elements */
	RA_NULL,
	RA_POS,                 /* generate: the round's first position */
	RA_GEN_IDS,             /* generate: the prompts, then the tokens picked */
	RA_KV_K, RA_KV_V, RA_KV_CAP     /* generate: the layer's key and value caches */
} RtArg;

/* A runtime entry point: its name and arguments; fn NULL if none. */
typedef struct RtCall {
	const char *fn;
	RtArg args[12];
} RtCall;

/* A kind's entry; its name is LAYER_KINDS's. */
typedef struct LayerCatalogue {
	const char *usage;      /* for messages */
	const LayerArg *args;
	int nargs;
	LayerInput input;
	LayerOutput output;
	LayerSide side;
	const LayerParam *params;
	int nparams;
	/* Costs per sample: FLOPs per input element of forward, the input-
	 * gradient and the weight-gradient halves, and statistics saved per
	 * row; or, where a formula is needed, `costs` fills them all. */
	double flops_f, flops_b, flops_w;
	int save_per_row;
	void (*costs)(struct IrLayer *L, const struct IrTensor *in);
	/* Fields no argument sets (gpt2_block's ffn = 4 d), or NULL. */
	void (*derive)(struct IrLayer *L);
	/* What backward reads: its input (either half), its input in the
	 * input-gradient half, its output. */
	unsigned bwd_reads_in : 1, bwd_data_reads_in : 1, bwd_reads_out : 1;
	unsigned saves_always : 1;      /* writes its statistics when nothing trains */
	unsigned fused_bwd : 1;         /* `bwd` computes the weight gradient too when
	                                 * given G; split, it stashes for `wgt` */
	unsigned gen : 1;               /* schedule = generate can run it */
	unsigned gen_last : 1;          /* generate: only the last position is computed */
	unsigned kv_cache : 1;          /* generate: keeps a key/value cache */
	/* Runtime entry points (runtime/pipert.h). */
	RtCall fwd;
	RtCall fwd_infer;       /* forward when nothing is trained, if it differs */
	RtCall fwd_gen;         /* forward under schedule = generate, if it differs */
	RtCall bwd;             /* the input gradient (fused_bwd: the whole backward) */
	RtCall wgt;             /* the weight gradient */
} LayerCatalogue;

extern const LayerCatalogue layer_catalogue[LK_COUNT];

#define LAYER(k) (&layer_catalogue[k])

const char *layer_kind_name(int k);
/* The kind called s, or -1. */
int layer_kind_from_name(const char *s);
/* The kinds' names, for "did you mean". */
extern const char *const layer_kind_names[LK_COUNT];

int layer_has_params(LayerKind k);
int layer_bwd_reads_in(LayerKind k);
int layer_bwd_data_reads_in(LayerKind k);
int layer_bwd_reads_out(LayerKind k);
/* Token embeddings: the layer reads token ids (i32), has no input gradient. */
int layer_is_embedding(LayerKind k);
/* Whether any of the kind's entry points takes argument a. */
int layer_takes(LayerKind k, RtArg a);
/* The index of k's first argument setting a field of `sets`, or -1. */
int layer_arg_index(LayerKind k, unsigned sets);

/* Sets L's fields from its arguments' values (vals[i]: argument i's, a
 * name's 0, a rope_scaling's 1 if given), then those no argument sets;
 * scaling[0..3] (factor, low_freq_factor, high_freq_factor, original)
 * are a rope_scaling's when one was given. */
void layer_set_args(struct IrLayer *L, const double *vals, const double *scaling);
/* The width of a layer's keys and values (and of its KV cache's rows):
 * kv_heads · d / heads for llama_block, d for the other blocks. */
int64_t layer_kv_width(const struct IrLayer *L);
/* Fills L's parameters under the checkpoint prefix `prefix` (L's fields
 * set), in the order and layouts the runtime's kernels take them. */
void layer_add_params(struct IrLayer *L, const char *prefix);
/* Fills L's FLOPs and saved / stashed / scratch elements per sample. */
void layer_costs(struct IrLayer *L, const struct IrTensor *in);

#endif
