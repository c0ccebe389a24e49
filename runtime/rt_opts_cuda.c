/* rt_opts_cuda.c — for pipert-check: the options of libpipert_cuda.a's
 * programs (rt_opts.c with -DRT_CUDA: --cuda-graph, --tf32), under names
 * of their own beside the CPU runtime's, so that one checker knows both
 * back ends from the one definition of the options. */
#define RT_CUDA 1
#define rt_opts_parse rt_opts_parse_cuda
#define rt_opts_help rt_opts_help_cuda
#define rt_opts_free rt_opts_free_cuda
#include "pipert_check.h"
#include "rt_opts.c"
