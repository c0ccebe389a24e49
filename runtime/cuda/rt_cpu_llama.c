/* rt_cpu_llama.c — the CPU runtime's Llama family (rt_llama.c's
 * composition over rt_llama_cpu.c's RMSNorm, embedding and primitives),
 * compiled a second time into libpipert_cuda.a under the names rt_cpu_*.
 *
 * As rt_cpu_tf.c does for rt_tf.c: rt_cpu_twins.h's whole list renames the
 * definitions and the calls, so that the composition's calls of the
 * kernels, the GEMM and the transformer primitives go to the CPU twins.
 * A translation unit of its own: rt_llama.c's static helpers may share
 * names with rt_tf.c's.  Used by t/runtime-cuda-kernels.c to compare the
 * GPU's llama_block with the CPU's.
 */
#include "rt_internal.h"
#include "rt_cpu_twins.h"

RT_CPU_TWINS(RT_CPU_TWIN_RENAME)

#include "../rt_llama.c"
#include "../rt_llama_cpu.c"
