/* rt_cpu_twins.h — the one list of libpipert_cuda.a's CPU twins: the
 * functions of the CPU runtime (rt_kernels.c, rt_tf.c, rt_tf_cpu.c,
 * rt_llama.c, rt_llama_cpu.c) compiled a second time into the CUDA
 * library as rt_cpu_<name>, where rt_<name> belongs to the GPU.
 *
 * RT_CPU_TWINS(X) calls X(name) for each: rt_cpu_kernels.h declares
 * rt_cpu_<name> with rt_<name>'s type from it, and rt_cpu_kernels.c,
 * rt_cpu_tf.c and rt_cpu_llama.c give the CPU's definitions of rt_<name>
 * the symbol rt_cpu_<name> (RT_CPU_TWIN_RENAME), calls included.  A name
 * added here is declared and renamed everywhere at once.  The transformer
 * primitives (rt_dev.h's rt_dev_tf_*, rt_dev_llama_*) are renamed too, so
 * that the CPU twin of a composed block calls the CPU's primitives. */
#ifndef PIPERT_CPU_TWINS_H
#define PIPERT_CPU_TWINS_H

/* rt_kernels.c */
#define RT_CPU_TWIN_KERNELS(X) \
	X(linear_fwd) X(linear_bwd_data) X(linear_bwd_weight) \
	X(relu_fwd) X(relu_bwd) X(gelu_fwd) X(gelu_bwd) X(tanh_fwd) X(tanh_bwd) \
	X(sigmoid_fwd) X(sigmoid_bwd) X(silu_fwd) X(silu_bwd) X(dropout_fwd) X(dropout_bwd) \
	X(layernorm_fwd) X(layernorm_bwd_data) X(layernorm_bwd_weight) \
	X(softmax_fwd) X(softmax_bwd) X(loss_cross_entropy) X(loss_mse) \
	X(copy) X(zero) X(round)

/* rt_tf.c and rt_tf_cpu.c: pipert.h's GEMM and transformer layers; rt_llama.c
 * and rt_llama_cpu.c: the Llama family's */
#define RT_CPU_TWIN_TF(X) \
	X(gemm) X(bert_layer_fwd) X(bert_layer_bwd) X(bert_layer_wgt) \
	X(gpt2_block_fwd) X(gpt2_block_bwd) X(gpt2_block_wgt) \
	X(bert_emb_fwd) X(bert_emb_bwd) X(gpt2_emb_fwd) X(gpt2_emb_bwd) X(gpt2_emb_fwd_at) \
	X(gpt2_block_fwd_kv) X(gpt2_emb_fwd_rows) X(take_last) X(take_last_rows) \
	X(mean_pool_fwd) X(mean_pool_bwd) \
	X(l2_normalize_fwd) X(l2_normalize_bwd) X(gelu_tanh_fwd) X(gelu_tanh_bwd) \
	X(loss_next_token) \
	X(llama_block_fwd) X(llama_block_bwd) X(llama_block_wgt) X(llama_block_fwd_kv) \
	X(llama_emb_fwd) X(llama_emb_fwd_at) X(llama_emb_fwd_rows) X(llama_emb_bwd) X(llama_inv_freq) \
	X(rmsnorm_fwd) X(rmsnorm_bwd_data) X(rmsnorm_bwd_weight)

/* rt_tf_cpu.c and rt_llama_cpu.c: rt_dev.h's transformer primitives */
#define RT_CPU_TWIN_PRIMS(X) \
	X(dev_tf_begin) X(dev_tf_end) X(dev_tf_add) X(dev_tf_bias_rows) X(dev_tf_colsum_acc) \
	X(dev_tf_heads_gemm) X(dev_tf_mask_scores) X(dev_tf_causal_zero) X(dev_tf_attend_one) \
	X(dev_tf_kv_pos) X(dev_tf_kv_store) X(dev_kv_unpack) \
	X(dev_llama_rope) X(dev_llama_swiglu_fwd) X(dev_llama_swiglu_bwd) X(dev_llama_kv_store)

#define RT_CPU_TWINS(X) RT_CPU_TWIN_KERNELS(X) RT_CPU_TWIN_TF(X) RT_CPU_TWIN_PRIMS(X)

/* After pipert.h and rt_dev.h, before the definitions: rt_<name> is
 * emitted, and called, as the symbol rt_cpu_<name> (a GNU C asm label). */
#define RT_CPU_TWIN_RENAME(name) \
	extern __typeof__(rt_##name) rt_##name __asm__("rt_cpu_" #name);

#endif /* PIPERT_CPU_TWINS_H */
