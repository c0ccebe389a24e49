/* layers.c — the layer catalogue (layers.h): one entry per kind, and the
 * small functions that read it (arguments into IR fields, parameters,
 * costs).  The cost formulas of the transformer layers take their buffer
 * sizes from runtime/rt_tf_sizes.h, the ones the runtime's kernels use. */
#include "layers.h"
#include "ir.h"
#include "rt_tf_sizes.h"

#include <string.h>

/* ---- arguments ---- */

static const LayerArg linear_args[] = {
	{ "in", LA_WIDTH, 1, 0, LF_IN_W }, { "out", LA_WIDTH, 1, 0, LF_OUT_W },
	{ "bias", LA_BOOL, 0, 1, LF_BIAS },
};
static const LayerArg dropout_args[] = { { "p", LA_PROB, 1, 0, LF_P } };
static const LayerArg layernorm_args[] = {
	{ "d", LA_WIDTH, 1, 0, LF_IN_W | LF_OUT_W }, { "eps", LA_POSNUM, 0, 1e-5, LF_EPS },
};
static const LayerArg bert_emb_args[] = {
	{ "vocab", LA_WIDTH, 1, 0, LF_VOCAB }, { "d", LA_WIDTH, 1, 0, LF_D | LF_OUT_W },
	{ "positions", LA_WIDTH, 1, 0, LF_POSITIONS }, { "types", LA_WIDTH, 0, 2, LF_TYPES },
	{ "eps", LA_POSNUM, 0, 1e-12, LF_EPS },
};
static const LayerArg bert_layer_args[] = {
	{ "d", LA_WIDTH, 1, 0, LF_D | LF_IN_W | LF_OUT_W }, { "heads", LA_WIDTH, 1, 0, LF_HEADS },
	{ "ffn", LA_WIDTH, 1, 0, LF_FFN }, { "eps", LA_POSNUM, 0, 1e-12, LF_EPS },
	{ "mask", LA_NAME, 0, 0, LF_SIDE },
};
static const LayerArg gpt2_emb_args[] = {
	{ "vocab", LA_WIDTH, 1, 0, LF_VOCAB }, { "d", LA_WIDTH, 1, 0, LF_D | LF_OUT_W },
	{ "positions", LA_WIDTH, 1, 0, LF_POSITIONS },
};
static const LayerArg gpt2_block_args[] = {
	{ "d", LA_WIDTH, 1, 0, LF_D | LF_IN_W | LF_OUT_W }, { "heads", LA_WIDTH, 1, 0, LF_HEADS },
	{ "eps", LA_POSNUM, 0, 1e-5, LF_EPS }, { "mask", LA_NAME, 0, 0, LF_SIDE },
};
static const LayerArg llama_emb_args[] = {
	{ "vocab", LA_WIDTH, 1, 0, LF_VOCAB }, { "d", LA_WIDTH, 1, 0, LF_D | LF_OUT_W },
	{ "positions", LA_WIDTH, 1, 0, LF_POSITIONS },
};
/* kv_heads 0 stands for "heads" (derived). */
static const LayerArg llama_block_args[] = {
	{ "d", LA_WIDTH, 1, 0, LF_D | LF_IN_W | LF_OUT_W }, { "heads", LA_WIDTH, 1, 0, LF_HEADS },
	{ "ffn", LA_WIDTH, 1, 0, LF_FFN }, { "kv_heads", LA_WIDTH, 0, 0, LF_KV_HEADS },
	{ "eps", LA_POSNUM, 0, 1e-6, LF_EPS }, { "rope_theta", LA_POSNUM, 0, 10000, LF_ROPE_THETA },
	{ "qkv_bias", LA_BOOL, 0, 0, LF_BIAS },
	{ "rope_scaling", LA_ROPE_SCALING, 0, 0, LF_ROPE_SCALING },
	{ "mask", LA_NAME, 0, 0, LF_SIDE },
};
static const LayerArg rmsnorm_args[] = {
	{ "d", LA_WIDTH, 1, 0, LF_IN_W | LF_OUT_W }, { "eps", LA_POSNUM, 0, 1e-6, LF_EPS },
};
static const LayerArg mean_pool_args[] = { { "mask", LA_NAME, 0, 0, LF_SIDE } };
static const LayerArg lm_head_args[] = {
	{ "vocab", LA_WIDTH, 1, 0, LF_VOCAB | LF_OUT_W }, { "d", LA_WIDTH, 1, 0, LF_D | LF_IN_W },
	{ "tied", LA_NAME, 0, 0, LF_TIED },
};

/* ---- parameters, in the order and layouts the kernels take them ---- */

static const LayerParam linear_params[] = {
	{ "weight", 2, { LZ_OUT, LZ_IN }, INIT_UNIFORM_FANIN, LZ_IN, LW_ALWAYS },
	{ "bias", 1, { LZ_OUT, LZ_0 }, INIT_UNIFORM_FANIN, LZ_IN, LW_BIAS },
};
static const LayerParam layernorm_params[] = {
	{ "weight", 1, { LZ_OUT, LZ_0 }, INIT_ONES, LZ_0, LW_ALWAYS },
	{ "bias", 1, { LZ_OUT, LZ_0 }, INIT_ZEROS, LZ_0, LW_ALWAYS },
};
static const LayerParam bert_emb_params[] = {
	{ "word_embeddings.weight", 2, { LZ_VOCAB, LZ_D }, INIT_NORMAL, LZ_0, LW_ALWAYS },
	{ "position_embeddings.weight", 2, { LZ_POSITIONS, LZ_D }, INIT_NORMAL, LZ_0, LW_ALWAYS },
	{ "token_type_embeddings.weight", 2, { LZ_TYPES, LZ_D }, INIT_NORMAL, LZ_0, LW_ALWAYS },
	{ "LayerNorm.weight", 1, { LZ_D, LZ_0 }, INIT_ONES, LZ_0, LW_ALWAYS },
	{ "LayerNorm.bias", 1, { LZ_D, LZ_0 }, INIT_ZEROS, LZ_0, LW_ALWAYS },
};
#define DENSE(n, out, in) \
	{ n ".weight", 2, { out, in }, INIT_NORMAL, LZ_0, LW_ALWAYS }, \
	{ n ".bias", 1, { out, LZ_0 }, INIT_ZEROS, LZ_0, LW_ALWAYS }
#define LAYERNORM(n) \
	{ n ".weight", 1, { LZ_D, LZ_0 }, INIT_ONES, LZ_0, LW_ALWAYS }, \
	{ n ".bias", 1, { LZ_D, LZ_0 }, INIT_ZEROS, LZ_0, LW_ALWAYS }
static const LayerParam bert_layer_params[] = {
	DENSE("attention.self.query", LZ_D, LZ_D),
	DENSE("attention.self.key", LZ_D, LZ_D),
	DENSE("attention.self.value", LZ_D, LZ_D),
	DENSE("attention.output.dense", LZ_D, LZ_D),
	LAYERNORM("attention.output.LayerNorm"),
	DENSE("intermediate.dense", LZ_FFN, LZ_D),
	DENSE("output.dense", LZ_D, LZ_FFN),
	LAYERNORM("output.LayerNorm"),
};
static const LayerParam gpt2_emb_params[] = {
	{ "wte.weight", 2, { LZ_VOCAB, LZ_D }, INIT_NORMAL, LZ_0, LW_ALWAYS },
	{ "wpe.weight", 2, { LZ_POSITIONS, LZ_D }, INIT_NORMAL, LZ_0, LW_ALWAYS },
};
/* GPT-2's Conv1D stores its weight [in, out] and its bias [out]. */
#define CONV1D(n, in, out) \
	{ n ".weight", 2, { in, out }, INIT_NORMAL, LZ_0, LW_ALWAYS }, \
	{ n ".bias", 1, { out, LZ_0 }, INIT_ZEROS, LZ_0, LW_ALWAYS }
static const LayerParam gpt2_block_params[] = {
	LAYERNORM("ln_1"),
	CONV1D("attn.c_attn", LZ_D, LZ_3D),
	CONV1D("attn.c_proj", LZ_D, LZ_D),
	LAYERNORM("ln_2"),
	CONV1D("mlp.c_fc", LZ_D, LZ_FFN),
	CONV1D("mlp.c_proj", LZ_FFN, LZ_D),
};
static const LayerParam llama_emb_params[] = {
	{ "embed_tokens.weight", 2, { LZ_VOCAB, LZ_D }, INIT_NORMAL, LZ_0, LW_ALWAYS },
};
/* Hugging Face's LlamaDecoderLayer / Qwen2DecoderLayer names (Linear:
 * [out, in]), laid out so that q, k, v are one [d + 2 kvw, d] matrix (and
 * their biases one vector) and gate, up one [2 ffn, d]: one GEMM each. */
#define LLAMA_LINEAR(n, out, in) \
	{ n ".weight", 2, { out, in }, INIT_NORMAL, LZ_0, LW_ALWAYS }
#define LLAMA_BIAS(n, out) \
	{ n ".bias", 1, { out, LZ_0 }, INIT_ZEROS, LZ_0, LW_BIAS }
static const LayerParam llama_block_params[] = {
	{ "input_layernorm.weight", 1, { LZ_D, LZ_0 }, INIT_ONES, LZ_0, LW_ALWAYS },
	LLAMA_LINEAR("self_attn.q_proj", LZ_D, LZ_D),
	LLAMA_LINEAR("self_attn.k_proj", LZ_KVW, LZ_D),
	LLAMA_LINEAR("self_attn.v_proj", LZ_KVW, LZ_D),
	LLAMA_BIAS("self_attn.q_proj", LZ_D),
	LLAMA_BIAS("self_attn.k_proj", LZ_KVW),
	LLAMA_BIAS("self_attn.v_proj", LZ_KVW),
	LLAMA_LINEAR("self_attn.o_proj", LZ_D, LZ_D),
	{ "post_attention_layernorm.weight", 1, { LZ_D, LZ_0 }, INIT_ONES, LZ_0, LW_ALWAYS },
	LLAMA_LINEAR("mlp.gate_proj", LZ_FFN, LZ_D),
	LLAMA_LINEAR("mlp.up_proj", LZ_FFN, LZ_D),
	LLAMA_LINEAR("mlp.down_proj", LZ_D, LZ_FFN),
};
static const LayerParam rmsnorm_params[] = {
	{ "weight", 1, { LZ_OUT, LZ_0 }, INIT_ONES, LZ_0, LW_ALWAYS },
};
static const LayerParam lm_head_params[] = {
	{ "weight", 2, { LZ_VOCAB, LZ_D }, INIT_NORMAL, LZ_0, LW_UNTIED },
};

/* ---- costs where a formula is needed ---- */

static void linear_costs(IrLayer *L, const IrTensor *in)
{
	double t = (double)in->elems / (double)L->in_w;   /* rows per sample */
	double n_out = t * (double)L->out_w;
	L->flops_f = 2.0 * t * (double)L->in_w * (double)L->out_w + (L->bias ? n_out : 0);
	L->flops_b = 2.0 * t * (double)L->in_w * (double)L->out_w;
	L->flops_w = 2.0 * t * (double)L->in_w * (double)L->out_w + (L->bias ? n_out : 0);
	L->gemm_elems = (double)L->in_w * (double)L->out_w;
}

static double seq_len(const IrTensor *in)
{
	return (double)(in->seq ? in->dims[0] : 1);
}

static void block_costs(IrLayer *L, const IrTensor *in)
{
	double T = seq_len(in), d = (double)L->d;
	int64_t Ti = in->seq ? in->dims[0] : 1;
	double gemm = 2.0 * T * (4 * d * d + 2 * d * (double)L->ffn);
	double attn = 4.0 * T * T * d;
	L->flops_f = gemm + attn + 40 * T * d + 5 * (double)L->heads * T * T;
	L->flops_b = gemm + 2 * attn + 50 * T * d + 5 * (double)L->heads * T * T;
	L->flops_w = gemm;
	L->gemm_elems = 4 * d * d + 2 * d * (double)L->ffn;
	L->save_elems = rt_tf_block_save(Ti, L->d, L->heads, L->ffn);
	L->stash_elems = rt_tf_block_stash(Ti, L->d, L->heads, L->ffn);
	L->work_elems = rt_tf_block_work(Ti, L->d, L->heads, L->ffn);
}

static void bert_emb_costs(IrLayer *L, const IrTensor *in)
{
	double T = seq_len(in), d = (double)L->d;
	int64_t Ti = in->seq ? in->dims[0] : 1;
	L->flops_f = 12 * T * d;
	L->flops_w = 14 * T * d;
	L->save_elems = rt_bert_emb_save(Ti, L->d);
	L->work_elems = rt_bert_emb_work(Ti, L->d);
}

static void gpt2_emb_costs(IrLayer *L, const IrTensor *in)
{
	double T = seq_len(in), d = (double)L->d;
	L->flops_f = 2 * T * d;
	L->flops_w = 2 * T * d;
}

/* Llama: q [T, d], k and v [T, kvw] projections, GQA attention over
 * heads, SwiGLU (gate and up [T, ffn], down). */
static void llama_block_costs(IrLayer *L, const IrTensor *in)
{
	double T = seq_len(in), d = (double)L->d, f = (double)L->ffn;
	double kvw = (double)layer_kv_width(L);
	int64_t Ti = in->seq ? in->dims[0] : 1;
	double gemm = 2.0 * T * (2 * d * d + 2 * d * kvw + 3 * d * f);
	double attn = 4.0 * T * T * d;
	L->flops_f = gemm + attn + 20 * T * d + 8 * T * f + 5 * (double)L->heads * T * T;
	L->flops_b = gemm + 2 * attn + 30 * T * d + 12 * T * f + 5 * (double)L->heads * T * T;
	L->flops_w = gemm;
	L->gemm_elems = 2 * d * d + 2 * d * kvw + 3 * d * f;
	L->save_elems = rt_llama_block_save(Ti, L->d, L->heads, L->kv_heads, L->ffn);
	L->stash_elems = rt_llama_block_stash(Ti, L->d, L->heads, L->kv_heads, L->ffn);
	L->work_elems = rt_llama_block_work(Ti, L->d, L->heads, L->kv_heads, L->ffn);
}

static void llama_emb_costs(IrLayer *L, const IrTensor *in)
{
	double T = seq_len(in), d = (double)L->d;
	L->flops_f = T * d;
	L->flops_w = T * d;
}

/* kv_heads defaults to heads (plain multi-head attention). */
static void llama_block_derive(IrLayer *L)
{
	if (L->kv_heads <= 0)
		L->kv_heads = L->heads;
}

/* GPT-2's MLP is 4 d wide. */
static void gpt2_block_derive(IrLayer *L)
{
	L->ffn = 4 * L->d;
}

/* ---- the catalogue ---- */

#define ARGS(a) a, (int)(sizeof a / sizeof a[0])
#define PARAMS(p) p, (int)(sizeof p / sizeof p[0])
#define ELEMENTWISE(nm, ff, fb, reads) \
	.usage = #nm, .flops_f = ff, .flops_b = fb, \
	.fwd = { "rt_" #nm "_fwd", { RA_X, RA_Y, RA_COUNT } }, \
	.bwd = { "rt_" #nm "_bwd", { reads, RA_DY, RA_DX, RA_COUNT } }

#define TF_BLOCK(nm, cost) \
	.input = LI_SEQUENCE, .side = LS_MASK, .costs = cost, \
	.bwd_reads_in = 1, .bwd_data_reads_in = 1, .fused_bwd = 1, \
	.fwd = { "rt_" #nm "_fwd", { RA_TF, RA_W, RA_X, RA_SIDE, RA_Y, RA_SAVE, RA_WORK, \
	                             RA_MB_ROWS, RA_T } }, \
	.bwd = { "rt_" #nm "_bwd", { RA_TF, RA_W, RA_G_IF_WEIGHT, RA_X, RA_ST, RA_DY, RA_DX, \
	                             RA_STASH_IF_SPLIT, RA_WORK, RA_MB_ROWS, RA_T } }, \
	.wgt = { "rt_" #nm "_wgt", { RA_TF, RA_G, RA_X, RA_ST, RA_STASH, RA_WORK, RA_MB_ROWS, \
	                             RA_T } }

#define LINEAR_CALLS \
	.fwd = { "rt_linear_fwd", { RA_X, RA_W, RA_W2, RA_Y, RA_ROWS, RA_IN_W, RA_OUT_W } }, \
	.bwd = { "rt_linear_bwd_data", { RA_DY, RA_W, RA_DX, RA_ROWS, RA_IN_W, RA_OUT_W } }, \
	.wgt = { "rt_linear_bwd_weight", { RA_X, RA_DY, RA_G, RA_G2, RA_ROWS, RA_IN_W, \
	                                   RA_OUT_W } }

const LayerCatalogue layer_catalogue[LK_COUNT] = {
	[LK_LINEAR] = {
		.usage = "linear(in, out) or linear(in, out, bias = false)",
		.args = ARGS(linear_args), .params = PARAMS(linear_params),
		.costs = linear_costs, .bwd_reads_in = 1, .gen = 1,
		LINEAR_CALLS,
	},
	[LK_RELU] = { ELEMENTWISE(relu, 1, 1, RA_Y), .bwd_reads_out = 1, .gen = 1 },
	[LK_GELU] = { ELEMENTWISE(gelu, 10, 14, RA_X), .bwd_reads_in = 1, .bwd_data_reads_in = 1,
	              .gen = 1 },
	[LK_TANH] = { ELEMENTWISE(tanh, 6, 3, RA_Y), .bwd_reads_out = 1, .gen = 1 },
	[LK_SIGMOID] = { ELEMENTWISE(sigmoid, 6, 3, RA_Y), .bwd_reads_out = 1, .gen = 1 },
	[LK_SILU] = { ELEMENTWISE(silu, 7, 11, RA_X), .bwd_reads_in = 1, .bwd_data_reads_in = 1,
	              .gen = 1 },
	[LK_DROPOUT] = {
		.usage = "dropout(p) with 0 <= p < 1",
		.args = ARGS(dropout_args), .flops_f = 1, .flops_b = 1, .gen = 1,
		.fwd = { "rt_dropout_fwd", { RA_X, RA_Y, RA_MB_ROWS, RA_ELEMS, RA_P, RA_SEED,
		                             RA_LAYER, RA_STEP, RA_ROW0 } },
		.fwd_infer = { "rt_copy", { RA_Y, RA_X, RA_BYTES } },
		.bwd = { "rt_dropout_bwd", { RA_DY, RA_DX, RA_MB_ROWS, RA_ELEMS, RA_P, RA_SEED,
		                             RA_LAYER, RA_STEP, RA_ROW0 } },
	},
	[LK_LAYERNORM] = {
		.usage = "layernorm(d) or layernorm(d, eps = 1e-5)",
		.args = ARGS(layernorm_args), .params = PARAMS(layernorm_params),
		.flops_f = 8, .flops_b = 10, .flops_w = 3, .save_per_row = 2,
		.bwd_reads_in = 1, .bwd_data_reads_in = 1, .saves_always = 1, .gen = 1,
		.fwd = { "rt_layernorm_fwd", { RA_X, RA_W, RA_W2, RA_Y, RA_SAVE, RA_SAVE2, RA_ROWS,
		                               RA_OUT_W, RA_EPS } },
		.bwd = { "rt_layernorm_bwd_data", { RA_X, RA_W, RA_ST, RA_ST2, RA_DY, RA_DX, RA_ROWS,
		                                    RA_OUT_W } },
		.wgt = { "rt_layernorm_bwd_weight", { RA_X, RA_ST, RA_ST2, RA_DY, RA_G, RA_G2,
		                                      RA_ROWS, RA_OUT_W } },
	},
	[LK_SOFTMAX] = {
		.usage = "softmax", .flops_f = 5, .flops_b = 4,
		.bwd_reads_out = 1,
		.fwd = { "rt_softmax_fwd", { RA_X, RA_Y, RA_ROWS, RA_OUT_W } },
		.bwd = { "rt_softmax_bwd", { RA_Y, RA_DY, RA_DX, RA_ROWS, RA_OUT_W } },
	},
	[LK_BERT_EMB] = {
		.usage = "bert_embeddings(vocab, d, positions, types = 2, eps = 1e-12)",
		.args = ARGS(bert_emb_args), .params = PARAMS(bert_emb_params),
		.input = LI_TOKENS, .output = LO_EMBED, .side = LS_TYPES,
		.costs = bert_emb_costs, .bwd_reads_in = 1,
		.fwd = { "rt_bert_emb_fwd", { RA_TF, RA_W, RA_X, RA_SIDE, RA_Y, RA_SAVE, RA_MB_ROWS,
		                              RA_T } },
		.wgt = { "rt_bert_emb_bwd", { RA_TF, RA_W, RA_G, RA_X, RA_SIDE, RA_ST, RA_DY,
		                              RA_WORK, RA_MB_ROWS, RA_T } },
	},
	[LK_BERT_LAYER] = {
		.usage = "bert_layer(d, heads, ffn, eps = 1e-12)",
		.args = ARGS(bert_layer_args), .params = PARAMS(bert_layer_params),
		TF_BLOCK(bert_layer, block_costs),
	},
	[LK_MEAN_POOL] = {
		.usage = "mean_pool or mean_pool(mask = NAME)",
		.args = ARGS(mean_pool_args), .input = LI_SEQUENCE, .output = LO_POOLED,
		.side = LS_MASK, .flops_f = 3, .flops_b = 3,
		.fwd = { "rt_mean_pool_fwd", { RA_X, RA_SIDE, RA_Y, RA_MB_ROWS, RA_T, RA_OUT_W } },
		.bwd = { "rt_mean_pool_bwd", { RA_SIDE, RA_DY, RA_DX, RA_MB_ROWS, RA_T, RA_OUT_W } },
	},
	[LK_L2_NORM] = {
		.usage = "l2_normalize", .flops_f = 3, .flops_b = 3,
		.bwd_reads_in = 1, .bwd_data_reads_in = 1,
		.fwd = { "rt_l2_normalize_fwd", { RA_X, RA_Y, RA_ROWS, RA_OUT_W } },
		.bwd = { "rt_l2_normalize_bwd", { RA_X, RA_DY, RA_DX, RA_ROWS, RA_OUT_W } },
	},
	[LK_GPT2_EMB] = {
		.usage = "gpt2_embeddings(vocab, d, positions)",
		.args = ARGS(gpt2_emb_args), .params = PARAMS(gpt2_emb_params),
		.input = LI_TOKENS, .output = LO_EMBED, .costs = gpt2_emb_costs, .bwd_reads_in = 1,
		.fwd = { "rt_gpt2_emb_fwd", { RA_TF, RA_W, RA_X, RA_Y, RA_MB_ROWS, RA_T } },
		.fwd_gen = { "rt_gpt2_emb_fwd_rows", { RA_TF, RA_W, RA_GEN_IDS, RA_Y, RA_GEN_ROWS } },
		.wgt = { "rt_gpt2_emb_bwd", { RA_TF, RA_G, RA_X, RA_DY, RA_MB_ROWS, RA_T } },
	},
	[LK_GPT2_BLOCK] = {
		.usage = "gpt2_block(d, heads, eps = 1e-5)",
		.args = ARGS(gpt2_block_args), .params = PARAMS(gpt2_block_params),
		.derive = gpt2_block_derive, .gen = 1, .kv_cache = 1,
		TF_BLOCK(gpt2_block, block_costs),
		.fwd_gen = { "rt_gpt2_block_fwd_kv", { RA_TF, RA_W, RA_X, RA_Y, RA_KV_K, RA_KV_V,
		                                       RA_KV_CAP, RA_WORK, RA_GEN_ROWS } },
	},
	[LK_LLAMA_EMB] = {
		.usage = "llama_embeddings(vocab, d, positions)",
		.args = ARGS(llama_emb_args), .params = PARAMS(llama_emb_params),
		.input = LI_TOKENS, .output = LO_EMBED, .costs = llama_emb_costs, .bwd_reads_in = 1,
		.fwd = { "rt_llama_emb_fwd", { RA_TF, RA_W, RA_X, RA_Y, RA_MB_ROWS, RA_T } },
		.fwd_gen = { "rt_llama_emb_fwd_rows", { RA_TF, RA_W, RA_GEN_IDS, RA_Y, RA_GEN_ROWS } },
		.wgt = { "rt_llama_emb_bwd", { RA_TF, RA_G, RA_X, RA_DY, RA_MB_ROWS, RA_T } },
	},
	[LK_LLAMA_BLOCK] = {
		.usage = "llama_block(d, heads, ffn, kv_heads = heads, eps = 1e-6, rope_theta = 10000, "
		         "qkv_bias = false, rope_scaling = llama3(factor = F, low_freq_factor = L, "
		         "high_freq_factor = H, original = N))",
		.args = ARGS(llama_block_args), .params = PARAMS(llama_block_params),
		.derive = llama_block_derive, .gen = 1, .kv_cache = 1,
		TF_BLOCK(llama_block, llama_block_costs),
		.fwd_gen = { "rt_llama_block_fwd_kv", { RA_TF, RA_W, RA_X, RA_Y, RA_KV_K, RA_KV_V,
		                                        RA_KV_CAP, RA_WORK, RA_GEN_ROWS } },
	},
	[LK_RMSNORM] = {
		.usage = "rmsnorm(d) or rmsnorm(d, eps = 1e-6)",
		.args = ARGS(rmsnorm_args), .params = PARAMS(rmsnorm_params),
		.flops_f = 4, .flops_b = 6, .flops_w = 2, .save_per_row = 1,
		.bwd_reads_in = 1, .bwd_data_reads_in = 1, .saves_always = 1, .gen = 1,
		.fwd = { "rt_rmsnorm_fwd", { RA_X, RA_W, RA_Y, RA_SAVE, RA_ROWS, RA_OUT_W, RA_EPS } },
		.bwd = { "rt_rmsnorm_bwd_data", { RA_X, RA_W, RA_ST, RA_DY, RA_DX, RA_ROWS,
		                                  RA_OUT_W } },
		.wgt = { "rt_rmsnorm_bwd_weight", { RA_X, RA_ST, RA_DY, RA_G, RA_ROWS, RA_OUT_W } },
	},
	[LK_LM_HEAD] = {
		.usage = "lm_head(vocab, d) or lm_head(vocab, d, tied = LAYER)",
		.args = ARGS(lm_head_args), .params = PARAMS(lm_head_params),
		.costs = linear_costs, .bwd_reads_in = 1, .gen = 1, .gen_last = 1,
		LINEAR_CALLS,
	},
};

const char *const layer_kind_names[LK_COUNT] = {
#define X(e, s) s,
	LAYER_KINDS(X)
#undef X
};

const char *layer_kind_name(int k)
{
	return k >= 0 && k < LK_COUNT ? layer_kind_names[k] : "?";
}

int layer_kind_from_name(const char *s)
{
	for (int k = 0; k < LK_COUNT; k++)
		if (strcmp(s, layer_kind_names[k]) == 0)
			return k;
	return -1;
}

int layer_has_params(LayerKind k) { return LAYER(k)->nparams > 0; }
int layer_bwd_reads_in(LayerKind k) { return LAYER(k)->bwd_reads_in; }
int layer_bwd_data_reads_in(LayerKind k) { return LAYER(k)->bwd_data_reads_in; }
int layer_bwd_reads_out(LayerKind k) { return LAYER(k)->bwd_reads_out; }
int layer_is_embedding(LayerKind k) { return LAYER(k)->input == LI_TOKENS; }

int layer_takes(LayerKind k, RtArg a)
{
	const RtCall *calls[] = { &LAYER(k)->fwd, &LAYER(k)->fwd_infer, &LAYER(k)->fwd_gen,
	                          &LAYER(k)->bwd, &LAYER(k)->wgt };
	for (size_t c = 0; c < sizeof calls / sizeof calls[0]; c++)
		for (int i = 0; calls[c]->fn && calls[c]->args[i] != RA_END; i++)
			if (calls[c]->args[i] == a)
				return 1;
	return 0;
}

int layer_arg_index(LayerKind k, unsigned sets)
{
	for (int i = 0; i < LAYER(k)->nargs; i++)
		if (LAYER(k)->args[i].sets & sets)
			return i;
	return -1;
}

int64_t layer_kv_width(const IrLayer *L)
{
	if (L->kv_heads > 0 && L->heads > 0)
		return L->kv_heads * (L->d / L->heads);
	return L->d;
}

void layer_set_args(IrLayer *L, const double *vals, const double *scaling)
{
	const LayerCatalogue *c = LAYER(L->kind);
	for (int k = 0; k < c->nargs; k++) {
		unsigned s = c->args[k].sets;
		int64_t w = (int64_t)vals[k];
		if (s & LF_IN_W)
			L->in_w = w;
		if (s & LF_OUT_W)
			L->out_w = w;
		if (s & LF_BIAS)
			L->bias = vals[k] != 0;
		if (s & LF_P)
			L->p = vals[k];
		if (s & LF_EPS)
			L->eps = vals[k];
		if (s & LF_D)
			L->d = w;
		if (s & LF_HEADS)
			L->heads = w;
		if (s & LF_FFN)
			L->ffn = w;
		if (s & LF_VOCAB)
			L->vocab = w;
		if (s & LF_POSITIONS)
			L->positions = w;
		if (s & LF_TYPES)
			L->ntypes = w;
		if (s & LF_KV_HEADS)
			L->kv_heads = w;
		if (s & LF_ROPE_THETA)
			L->rope_theta = vals[k];
		if ((s & LF_ROPE_SCALING) && vals[k] != 0 && scaling) {
			L->rope_factor = scaling[0];
			L->rope_low = scaling[1];
			L->rope_high = scaling[2];
			L->rope_orig = (int64_t)scaling[3];
		}
	}
	if (c->derive)
		c->derive(L);
}

static int64_t size_of(const IrLayer *L, LayerSize z)
{
	switch (z) {
	case LZ_0: return 0;
	case LZ_IN: return L->in_w;
	case LZ_OUT: return L->out_w;
	case LZ_D: return L->d;
	case LZ_3D: return 3 * L->d;
	case LZ_FFN: return L->ffn;
	case LZ_VOCAB: return L->vocab;
	case LZ_POSITIONS: return L->positions;
	case LZ_TYPES: return L->ntypes;
	case LZ_KVW: return layer_kv_width(L);
	}
	return 0;
}

void layer_add_params(IrLayer *L, const char *prefix)
{
	const LayerCatalogue *c = LAYER(L->kind);
	L->params = xalloc((size_t)(c->nparams ? c->nparams : 1) * sizeof *L->params);
	for (int i = 0; i < c->nparams; i++) {
		const LayerParam *lp = &c->params[i];
		if ((lp->when == LW_BIAS && !L->bias) || (lp->when == LW_UNTIED && L->tied >= 0))
			continue;
		IrParam *pp = &L->params[L->nparams++];
		pp->name = xprintf("%s.%s", prefix, lp->name);
		pp->ndim = lp->ndim;
		pp->dims[0] = size_of(L, lp->dim[0]);
		pp->dims[1] = size_of(L, lp->dim[1]);
		pp->numel = pp->ndim == 1 ? pp->dims[0] : pp->dims[0] * pp->dims[1];
		pp->init = lp->init;
		pp->fan_in = size_of(L, lp->fan_in);
		pp->std = 0.02;         /* transformers' initializer_range */
		pp->loc = L->loc;
		L->nparam_elems += pp->numel;
	}
}

void layer_costs(IrLayer *L, const IrTensor *in)
{
	const LayerCatalogue *c = LAYER(L->kind);
	if (c->costs) {
		c->costs(L, in);
		return;
	}
	double n_in = (double)in->elems;
	L->flops_f = c->flops_f * n_in;
	L->flops_b = c->flops_b * n_in;
	L->flops_w = c->flops_w * n_in;
	L->save_elems = c->save_per_row * (int64_t)((double)in->elems / (double)L->in_w);
}
