/* rt_cpu_kernels.c — the CPU runtime's kernels (rt_kernels.c), compiled a
 * second time into libpipert_cuda.a under the names rt_cpu_*.
 *
 * In the CUDA library the names of pipert.h belong to the GPU kernels.  The
 * CPU ones are still wanted there: host code computes on host memory with
 * them (the synthetic targets, rt_dev.h's rt_host_linear_fwd), and the GPU
 * kernels' tests and benchmarks compare against them in one program.  The
 * renaming macros come before pipert.h, so its declarations are renamed
 * with the definitions: one source, two names, no copy.
 */
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
#define rt_round rt_cpu_round

#include "../rt_kernels.c"
