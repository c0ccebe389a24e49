/* rt_cpu_kernels.h — the CPU kernels inside libpipert_cuda.a
 * (rt_cpu_kernels.c), transformer layers (rt_cpu_tf.c, rt_cpu_llama.c) and
 * their primitives: pipert.h's and rt_dev.h's signatures under rt_cpu_
 * names, on host memory.  For tests and benchmarks that compare the two. */
#ifndef PIPERT_CPU_KERNELS_H
#define PIPERT_CPU_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "pipert.h"     /* rt_tf, rt_ctx, the rt_<name> of each twin */
#include "rt_dev.h"     /* the primitives' rt_dev_<name> */
#include "rt_cpu_twins.h"

#ifdef __cplusplus
extern "C" {
#endif

/* rt_cpu_<name>, of rt_<name>'s type, for each name of rt_cpu_twins.h's
 * kernels, layers and primitives: rt_cpu_loss_next_token adds its sum to
 * c->loss_sum (rt_loss_add), on the host. */
#define RT_CPU_TWIN_DECLARE(name) extern __typeof__(rt_##name) rt_cpu_##name;
RT_CPU_TWIN_KERNELS(RT_CPU_TWIN_DECLARE)
RT_CPU_TWIN_TF(RT_CPU_TWIN_DECLARE)
RT_CPU_TWIN_PRIMS(RT_CPU_TWIN_DECLARE)
#undef RT_CPU_TWIN_DECLARE

#ifdef __cplusplus
}
#endif

#endif /* PIPERT_CPU_KERNELS_H */
