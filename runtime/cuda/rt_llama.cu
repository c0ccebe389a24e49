/* rt_llama.cu — the GPU's side of the Llama family: rt_llama_cpu.c's
 * functions (RMSNorm, the token embedding, rt_dev.h's Llama primitives)
 * on the device; the block itself is rt_llama.c's composition, compiled
 * into libpipert_cuda.a as it is into libpipert.a.
 *
 * PLACEHOLDERS (branch llama's interface commit): every function below
 * stops the rank with a message, so that programs with the Llama kinds
 * build and link against libpipert_cuda.a.  The device kernels replace
 * them (branch llamacuda).
 */
#include <stdint.h>

#include "rt_cuda.h"

#define NOT_YET(fn) rt_cu_fail("%s: the Llama kinds have no CUDA kernels yet", fn)

extern "C" void rt_rmsnorm_fwd(const float *x, const float *w, float *y, float *rstd,
                               int64_t rows, int64_t d, double eps)
{
	(void)x, (void)w, (void)y, (void)rstd, (void)rows, (void)d, (void)eps;
	NOT_YET("rt_rmsnorm_fwd");
}

extern "C" void rt_rmsnorm_bwd_data(const float *x, const float *w, const float *rstd,
                                    const float *dy, float *dx, int64_t rows, int64_t d)
{
	(void)x, (void)w, (void)rstd, (void)dy, (void)dx, (void)rows, (void)d;
	NOT_YET("rt_rmsnorm_bwd_data");
}

extern "C" void rt_rmsnorm_bwd_weight(const float *x, const float *rstd, const float *dy,
                                      float *dw, int64_t rows, int64_t d)
{
	(void)x, (void)rstd, (void)dy, (void)dw, (void)rows, (void)d;
	NOT_YET("rt_rmsnorm_bwd_weight");
}

extern "C" void rt_llama_emb_fwd(const rt_tf *L, const float *w, const int32_t *ids, float *y,
                                 int64_t B, int64_t T)
{
	(void)L, (void)w, (void)ids, (void)y, (void)B, (void)T;
	NOT_YET("rt_llama_emb_fwd");
}

extern "C" void rt_llama_emb_fwd_at(const rt_tf *L, const float *w, const int32_t *ids,
                                    float *y, int64_t B, int64_t T, int64_t pos0)
{
	(void)L, (void)w, (void)ids, (void)y, (void)B, (void)T, (void)pos0;
	NOT_YET("rt_llama_emb_fwd_at");
}

extern "C" void rt_llama_emb_bwd(const rt_tf *L, float *g, const int32_t *ids, const float *dy,
                                 int64_t B, int64_t T)
{
	(void)L, (void)g, (void)ids, (void)dy, (void)B, (void)T;
	NOT_YET("rt_llama_emb_bwd");
}

extern "C" void rt_dev_llama_rope(const rt_tf *L, float *x, int64_t ld, int64_t nh, int64_t B,
                                  int64_t T, int64_t pos0, const int64_t *dpos, int inverse)
{
	(void)L, (void)x, (void)ld, (void)nh, (void)B, (void)T, (void)pos0, (void)dpos;
	(void)inverse;
	NOT_YET("rt_dev_llama_rope");
}

extern "C" void rt_dev_llama_swiglu_fwd(const float *gu, float *a, int64_t rows, int64_t f)
{
	(void)gu, (void)a, (void)rows, (void)f;
	NOT_YET("rt_dev_llama_swiglu_fwd");
}

extern "C" void rt_dev_llama_swiglu_bwd(const float *gu, const float *da, float *dgu,
                                        int64_t rows, int64_t f)
{
	(void)gu, (void)da, (void)dgu, (void)rows, (void)f;
	NOT_YET("rt_dev_llama_swiglu_bwd");
}

extern "C" void rt_dev_llama_kv_store(const float *qkv, int64_t ld, int64_t ck, int64_t cv,
                                      float *kc, float *vc, int64_t cap, int64_t B, int64_t T,
                                      int64_t pos0, const int64_t *dpos, int64_t kvw)
{
	(void)qkv, (void)ld, (void)ck, (void)cv, (void)kc, (void)vc, (void)cap, (void)B, (void)T;
	(void)pos0, (void)dpos, (void)kvw;
	NOT_YET("rt_dev_llama_kv_store");
}
