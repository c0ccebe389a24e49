/* rt_cu_base.cu — what every CUDA module of libpipert_cuda.a uses: the
 * rank's CUDA state rt_cu (rt_cuda.h) and the error checks that end the
 * rank naming the failed call.  Apart from the device layer
 * (rt_dev_cuda.cu), so that the kernels and the transport depend on this
 * file only, and the device layer on them, without a loop. */
#include <stdarg.h>
#include <stdlib.h>

#include "rt_cuda.h"

rt_cuda rt_cu;

/* ---- Errors ---- */

void rt_cu_fail(const char *fmt, ...)
{
	char buf[900], where[120] = "";
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (rt_cu.c && rt_cu.c->in_action)
		snprintf(where, sizeof where, " (in %s stage %d mb %d of step %d)",
		         rt_op_name(rt_cu.c->cur.op), rt_cu.c->cur.stage, rt_cu.c->cur.mb,
		         rt_cu.c->step + 1);
	if (rt_cu.c)
		rt_die(rt_cu.c, RT_EXIT_RUNTIME, "%s%s", buf, where);
	fprintf(stderr, "pipec-run: %s\n", buf);
	exit(RT_EXIT_RUNTIME);
}

void rt_cu_check(cudaError_t e, const char *call, const char *file, int line)
{
	if (e == cudaSuccess)
		return;
	rt_cu_fail("%s failed: %s (%s) at %s:%d", call, cudaGetErrorString(e), cudaGetErrorName(e),
	           file, line);
}

void rt_cublas_check(cublasStatus_t s, const char *call, const char *file, int line)
{
	if (s == CUBLAS_STATUS_SUCCESS)
		return;
	rt_cu_fail("%s failed: %s at %s:%d", call, cublasGetStatusString(s), file, line);
}
