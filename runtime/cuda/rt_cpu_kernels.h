/* rt_cpu_kernels.h — the CPU kernels inside libpipert_cuda.a
 * (rt_cpu_kernels.c): pipert.h's kernel signatures under rt_cpu_ names,
 * on host memory.  For tests and benchmarks that compare the two. */
#ifndef PIPERT_CPU_KERNELS_H
#define PIPERT_CPU_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void rt_cpu_linear_fwd(const float *x, const float *w, const float *b, float *y,
                       int64_t rows, int64_t in, int64_t out);
void rt_cpu_linear_bwd_data(const float *dy, const float *w, float *dx,
                            int64_t rows, int64_t in, int64_t out);
void rt_cpu_linear_bwd_weight(const float *x, const float *dy, float *dw, float *db,
                              int64_t rows, int64_t in, int64_t out);
void rt_cpu_relu_fwd(const float *x, float *y, int64_t n);
void rt_cpu_relu_bwd(const float *y, const float *dy, float *dx, int64_t n);
void rt_cpu_gelu_fwd(const float *x, float *y, int64_t n);
void rt_cpu_gelu_bwd(const float *x, const float *dy, float *dx, int64_t n);
void rt_cpu_tanh_fwd(const float *x, float *y, int64_t n);
void rt_cpu_tanh_bwd(const float *y, const float *dy, float *dx, int64_t n);
void rt_cpu_sigmoid_fwd(const float *x, float *y, int64_t n);
void rt_cpu_sigmoid_bwd(const float *y, const float *dy, float *dx, int64_t n);
void rt_cpu_dropout_fwd(const float *x, float *y, int64_t rows, int64_t width, double p,
                        uint64_t seed, uint64_t key, int64_t step, int64_t row0);
void rt_cpu_dropout_bwd(const float *dy, float *dx, int64_t rows, int64_t width, double p,
                        uint64_t seed, uint64_t key, int64_t step, int64_t row0);
void rt_cpu_layernorm_fwd(const float *x, const float *g, const float *b, float *y,
                          float *mean, float *rstd, int64_t rows, int64_t d, double eps);
void rt_cpu_layernorm_bwd_data(const float *x, const float *g, const float *mean,
                               const float *rstd, const float *dy, float *dx,
                               int64_t rows, int64_t d);
void rt_cpu_layernorm_bwd_weight(const float *x, const float *mean, const float *rstd,
                                 const float *dy, float *dg, float *db, int64_t rows, int64_t d);
void rt_cpu_softmax_fwd(const float *x, float *y, int64_t rows, int64_t d);
void rt_cpu_softmax_bwd(const float *y, const float *dy, float *dx, int64_t rows, int64_t d);
double rt_cpu_loss_cross_entropy(const float *logits, const int32_t *t, float *dlogits,
                                 int64_t rows, int64_t classes, double scale);
double rt_cpu_loss_mse(const float *y, const float *t, float *dy,
                       int64_t rows, int64_t width, double scale);

#ifdef __cplusplus
}
#endif

#endif /* PIPERT_CPU_KERNELS_H */
