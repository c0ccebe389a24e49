/* rt_cpu_tf.c — the CPU runtime's transformer layers (rt_tf.c's
 * composition over rt_tf_cpu.c's primitives and layers), compiled a second
 * time into libpipert_cuda.a under the names rt_cpu_*.
 *
 * As rt_cpu_kernels.c does for rt_kernels.c: rt_cpu_twins.h's whole list
 * renames the definitions and the calls before the sources are read, so the
 * composition's calls of the kernels (linear, layernorm, softmax, gelu,
 * copies, the cross-entropy) and of the primitives go to the CPU ones, not
 * to the GPU's.  rt_cpu_loss_next_token adds its sum with rt_loss_add, on
 * the host (c->loss_sum).  Used by the GPU kernels' tests
 * (t/runtime-cuda-kernels.c) to compare the two.
 */
#include "rt_internal.h"
#include "rt_cpu_twins.h"

RT_CPU_TWINS(RT_CPU_TWIN_RENAME)

#include "../rt_tf.c"
#include "../rt_tf_cpu.c"
