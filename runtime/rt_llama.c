/* rt_llama.c — the composition of pipert.h's llama_block (LlamaDecoderLayer,
 * Qwen2DecoderLayer), written once for both runtimes as rt_tf.c is for the
 * GPT-2 and BERT blocks: every matrix product goes through rt_gemm,
 * rt_linear_* or rt_dev_tf_heads_gemm, the norms through rt_rmsnorm_*, the
 * softmax through rt_softmax_*, and the element-wise pieces are rt_dev.h's
 * primitives (rt_llama_cpu.c on the CPU, cuda/rt_llama.cu on a GPU).
 * rt_tf_layout.h's llama_* describe the weights, save, stash and work.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "rt_dev.h"
#include "rt_tf_layout.h"

/* transformers' inv_freq, step by step in float32 as torch computes it
 * (_compute_default_rope_parameters, then _compute_llama3_parameters):
 * 1 / theta^(2i/dh), and with Llama 3's scaling the long wavelengths
 * divided by factor, the middle ones blended. */
void rt_llama_inv_freq(const rt_tf *L, float *inv_freq)
{
	int64_t dh = L->d / L->heads;
	float theta = (float)L->rope_theta;
	for (int64_t i = 0; i < dh / 2; i++) {
		float e = (float)(2 * i) / (float)dh;
		float p = (float)pow((double)theta, (double)e);
		float inv = 1.0f / p;
		if (L->rope_factor > 0) {
			float factor = (float)L->rope_factor;
			float low = (float)L->rope_low, high = (float)L->rope_high;
			float old = (float)L->rope_orig;
			float low_wavelen = (float)((double)L->rope_orig / L->rope_low);
			float high_wavelen = (float)((double)L->rope_orig / L->rope_high);
			float wavelen = (float)6.283185307179586 / inv;    /* 2 * math.pi */
			float scaled = wavelen > low_wavelen ? inv / factor : inv;
			float smooth = (old / wavelen - low) / (float)(L->rope_high - L->rope_low);
			if (!(wavelen < high_wavelen) && !(wavelen > low_wavelen))
				scaled = (1.0f - smooth) * scaled / factor + smooth * scaled;
			(void)high;
			inv = scaled;
		}
		inv_freq[i] = inv;
	}
}

/* Until the composition lands: say so and stop. */
static void not_yet(const char *fn)
{
	fprintf(stderr, "pipert: %s is not implemented yet\n", fn);
	abort();
}

void rt_llama_block_fwd(const rt_tf *L, const float *w, const float *x, const int32_t *mask,
                        float *y, float *save, float *work, int64_t B, int64_t T)
{
	(void)L, (void)w, (void)x, (void)mask, (void)y, (void)save, (void)work, (void)B, (void)T;
	not_yet("rt_llama_block_fwd");
}

void rt_llama_block_bwd(const rt_tf *L, const float *w, float *g, const float *x,
                        const float *save, const float *dy, float *dx, float *stash,
                        float *work, int64_t B, int64_t T)
{
	(void)L, (void)w, (void)g, (void)x, (void)save, (void)dy, (void)dx, (void)stash;
	(void)work, (void)B, (void)T;
	not_yet("rt_llama_block_bwd");
}

void rt_llama_block_wgt(const rt_tf *L, float *g, const float *x, const float *save,
                        const float *stash, float *work, int64_t B, int64_t T)
{
	(void)L, (void)g, (void)x, (void)save, (void)stash, (void)work, (void)B, (void)T;
	not_yet("rt_llama_block_wgt");
}

void rt_llama_block_fwd_kv(const rt_tf *L, const float *w, const float *x, float *y,
                           float *kc, float *vc, int64_t cap, float *work, int64_t B,
                           int64_t T, int64_t pos0)
{
	(void)L, (void)w, (void)x, (void)y, (void)kc, (void)vc, (void)cap, (void)work;
	(void)B, (void)T, (void)pos0;
	not_yet("rt_llama_block_fwd_kv");
}
