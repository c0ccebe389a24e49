/* rt_cpu_kernels.h — the CPU kernels inside libpipert_cuda.a
 * (rt_cpu_kernels.c) and transformer layers (rt_cpu_tf.c): pipert.h's
 * signatures under rt_cpu_ names, on host memory.  For tests and
 * benchmarks that compare the two. */
#ifndef PIPERT_CPU_KERNELS_H
#define PIPERT_CPU_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "pipert.h"     /* rt_tf, rt_ctx */

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
void rt_cpu_silu_fwd(const float *x, float *y, int64_t n);
void rt_cpu_silu_bwd(const float *x, const float *dy, float *dx, int64_t n);
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

/* rt_cpu_tf.c: the transformer layers of rt_tf.c (pipert.h's "GEMM" and
 * "Transformer layers"). */
void rt_cpu_gemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                 const float *a, int64_t lda, int64_t sa, const float *b, int64_t ldb,
                 int64_t sb, float beta, float *c, int64_t ldc, int64_t sc, int64_t batch);
void rt_cpu_bert_layer_fwd(const rt_tf *L, const float *w, const float *x,
                           const int32_t *mask, float *y, float *save, float *work,
                           int64_t B, int64_t T);
void rt_cpu_bert_layer_bwd(const rt_tf *L, const float *w, float *g, const float *x,
                           const float *save, const float *dy, float *dx, float *stash,
                           float *work, int64_t B, int64_t T);
void rt_cpu_bert_layer_wgt(const rt_tf *L, float *g, const float *x, const float *save,
                           const float *stash, float *work, int64_t B, int64_t T);
void rt_cpu_gpt2_block_fwd(const rt_tf *L, const float *w, const float *x,
                           const int32_t *mask, float *y, float *save, float *work,
                           int64_t B, int64_t T);
void rt_cpu_gpt2_block_bwd(const rt_tf *L, const float *w, float *g, const float *x,
                           const float *save, const float *dy, float *dx, float *stash,
                           float *work, int64_t B, int64_t T);
void rt_cpu_gpt2_block_wgt(const rt_tf *L, float *g, const float *x, const float *save,
                           const float *stash, float *work, int64_t B, int64_t T);
void rt_cpu_bert_emb_fwd(const rt_tf *L, const float *w, const int32_t *ids,
                         const int32_t *types, float *y, float *save, int64_t B, int64_t T);
void rt_cpu_bert_emb_bwd(const rt_tf *L, const float *w, float *g, const int32_t *ids,
                         const int32_t *types, const float *save, const float *dy,
                         float *work, int64_t B, int64_t T);
void rt_cpu_gpt2_emb_fwd(const rt_tf *L, const float *w, const int32_t *ids, float *y,
                         int64_t B, int64_t T);
void rt_cpu_gpt2_emb_bwd(const rt_tf *L, float *g, const int32_t *ids, const float *dy,
                         int64_t B, int64_t T);
void rt_cpu_mean_pool_fwd(const float *x, const int32_t *mask, float *y, int64_t B,
                          int64_t T, int64_t d);
void rt_cpu_mean_pool_bwd(const int32_t *mask, const float *dy, float *dx, int64_t B,
                          int64_t T, int64_t d);
void rt_cpu_l2_normalize_fwd(const float *x, float *y, int64_t rows, int64_t d);
void rt_cpu_l2_normalize_bwd(const float *x, const float *dy, float *dx, int64_t rows,
                             int64_t d);
void rt_cpu_gelu_tanh_fwd(const float *x, float *y, int64_t n);
void rt_cpu_gelu_tanh_bwd(const float *x, const float *dy, float *dx, int64_t n);
/* Adds the sum to c->loss_sum (rt_loss_add), on the host. */
void rt_cpu_loss_next_token(rt_ctx *c, const float *logits, const int32_t *ids,
                            float *dlogits, int64_t B, int64_t T, int64_t vocab,
                            double scale);

#ifdef __cplusplus
}
#endif

#endif /* PIPERT_CPU_KERNELS_H */
