/* rt_cpu_kernels.c — the CPU runtime's kernels (rt_kernels.c), compiled a
 * second time into libpipert_cuda.a under the names rt_cpu_*.
 *
 * In the CUDA library the names of pipert.h belong to the GPU kernels.  The
 * CPU ones are still wanted there: host code computes on host memory with
 * them (the synthetic targets, rt_dev.h's rt_host_linear_fwd), and the GPU
 * kernels' tests and benchmarks compare against them in one program.
 * rt_cpu_twins.h's list gives each definition the symbol rt_cpu_<name>
 * before the source is read: one source, two names, no copy.
 */
#include "rt_internal.h"
#include "rt_cpu_twins.h"

RT_CPU_TWIN_KERNELS(RT_CPU_TWIN_RENAME)

#include "../rt_kernels.c"
