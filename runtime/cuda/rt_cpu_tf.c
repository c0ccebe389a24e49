/* rt_cpu_tf.c — the CPU runtime's transformer layers (rt_tf.c), compiled a
 * second time into libpipert_cuda.a under the names rt_cpu_*.
 *
 * As rt_cpu_kernels.c does for rt_kernels.c: the renaming macros come
 * before pipert.h, so its declarations are renamed with the definitions,
 * and rt_tf.c's calls of the kernels it composes (linear, layernorm,
 * softmax, gelu, copies, the cross-entropy) go to the CPU kernels
 * rt_cpu_kernels.c defines, not to the GPU's.  rt_cpu_loss_next_token adds
 * its sum with rt_loss_add, on the host (c->loss_sum).  Used by the GPU
 * kernels' tests (t/runtime-cuda-kernels.c) to compare the two.
 */

/* rt_kernels.c's names that rt_tf.c calls (rt_cpu_kernels.c's list). */
#define rt_linear_fwd rt_cpu_linear_fwd
#define rt_linear_bwd_data rt_cpu_linear_bwd_data
#define rt_linear_bwd_weight rt_cpu_linear_bwd_weight
#define rt_relu_fwd rt_cpu_relu_fwd
#define rt_relu_bwd rt_cpu_relu_bwd
#define rt_gelu_fwd rt_cpu_gelu_fwd
#define rt_gelu_bwd rt_cpu_gelu_bwd
#define rt_tanh_fwd rt_cpu_tanh_fwd
#define rt_tanh_bwd rt_cpu_tanh_bwd
#define rt_sigmoid_fwd rt_cpu_sigmoid_fwd
#define rt_sigmoid_bwd rt_cpu_sigmoid_bwd
#define rt_silu_fwd rt_cpu_silu_fwd
#define rt_silu_bwd rt_cpu_silu_bwd
#define rt_dropout_fwd rt_cpu_dropout_fwd
#define rt_dropout_bwd rt_cpu_dropout_bwd
#define rt_layernorm_fwd rt_cpu_layernorm_fwd
#define rt_layernorm_bwd_data rt_cpu_layernorm_bwd_data
#define rt_layernorm_bwd_weight rt_cpu_layernorm_bwd_weight
#define rt_softmax_fwd rt_cpu_softmax_fwd
#define rt_softmax_bwd rt_cpu_softmax_bwd
#define rt_loss_cross_entropy rt_cpu_loss_cross_entropy
#define rt_loss_mse rt_cpu_loss_mse
#define rt_copy rt_cpu_copy
#define rt_zero rt_cpu_zero

/* rt_tf.c's own. */
#define rt_gemm rt_cpu_gemm
#define rt_bert_layer_fwd rt_cpu_bert_layer_fwd
#define rt_bert_layer_bwd rt_cpu_bert_layer_bwd
#define rt_bert_layer_wgt rt_cpu_bert_layer_wgt
#define rt_gpt2_block_fwd rt_cpu_gpt2_block_fwd
#define rt_gpt2_block_bwd rt_cpu_gpt2_block_bwd
#define rt_gpt2_block_wgt rt_cpu_gpt2_block_wgt
#define rt_bert_emb_fwd rt_cpu_bert_emb_fwd
#define rt_bert_emb_bwd rt_cpu_bert_emb_bwd
#define rt_gpt2_emb_fwd rt_cpu_gpt2_emb_fwd
#define rt_gpt2_emb_bwd rt_cpu_gpt2_emb_bwd
#define rt_gpt2_emb_fwd_at rt_cpu_gpt2_emb_fwd_at
#define rt_gpt2_block_fwd_kv rt_cpu_gpt2_block_fwd_kv
#define rt_take_last rt_cpu_take_last
#define rt_mean_pool_fwd rt_cpu_mean_pool_fwd
#define rt_mean_pool_bwd rt_cpu_mean_pool_bwd
#define rt_l2_normalize_fwd rt_cpu_l2_normalize_fwd
#define rt_l2_normalize_bwd rt_cpu_l2_normalize_bwd
#define rt_gelu_tanh_fwd rt_cpu_gelu_tanh_fwd
#define rt_gelu_tanh_bwd rt_cpu_gelu_tanh_bwd
#define rt_loss_next_token rt_cpu_loss_next_token

#include "../rt_tf.c"
