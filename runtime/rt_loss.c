/* rt_loss.c — the losses that accumulate into the rank's loss sum
 * (pipert.h: rt_loss_ce, rt_loss_mse_acc).
 *
 * On the CPU they are rt_loss_add of the returning kernels.  They exist for
 * the GPU: there the sum stays in device memory, and the host reads it once
 * per step instead of waiting for every micro-batch's loss
 * (cuda/rt_kernels.cu), which is also what lets a whole step be captured as
 * one CUDA graph.
 */
#include "rt_internal.h"

void rt_loss_ce(rt_ctx *c, const float *logits, const int32_t *t, float *dlogits,
                int64_t rows, int64_t classes, double scale)
{
	rt_loss_add(c, rt_loss_cross_entropy(logits, t, dlogits, rows, classes, scale));
}

void rt_loss_mse_acc(rt_ctx *c, const float *y, const float *t, float *dy,
                     int64_t rows, int64_t width, double scale)
{
	rt_loss_add(c, rt_loss_mse(y, t, dy, rows, width, scale));
}
