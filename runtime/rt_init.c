/* rt_init.c — the counter-based generator and deterministic initialisation.
 *
 * Every random number the runtime draws is a pure function of (seed, a
 * stream id, an index): weights from (seed, parameter name, element), data
 * from (seed, "input" or the input's name, element), dropout from (seed,
 * key, step, row, col).
 * Nothing depends on how the model is partitioned, which rank draws, or in
 * which order — so every partition and schedule of a model starts from the
 * same weights and sees the same masks.
 */
#include <math.h>
#include <string.h>

#include "rt_internal.h"
#include "rt_math.h"     /* rt_mix64 */

/* FNV-1a, then mixed: a stream id from a parameter name. */
uint64_t rt_hash_name(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ull;
	}
	return rt_mix64(h);
}

/* Box–Muller on two uniforms of the k-th pair of the stream. */
double rt_normal_at(uint64_t seed, uint64_t stream, uint64_t k)
{
	uint64_t a = rt_rand_at(seed, stream, 2 * k), b = rt_rand_at(seed, stream, 2 * k + 1);
	double u1 = ((double)(a >> 11) + 1.0) * 0x1p-53;     /* (0, 1]: log is finite */
	double u2 = (double)(b >> 11) * 0x1p-53;
	return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void rt_init_param(const rt_param *pa, uint64_t seed, float *w)
{
	uint64_t stream = rt_hash_name(pa->name);
	switch (pa->init) {
	case RT_INIT_ONES:
		for (int64_t i = 0; i < pa->numel; i++)
			w[i] = 1.0f;
		break;
	case RT_INIT_ZEROS:
		memset(w, 0, (size_t)pa->numel * sizeof *w);
		break;
	case RT_INIT_NORMAL:
		/* transformers' _init_weights: normal_(mean = 0, std = initializer_range)
		 * for embeddings and linear weights.  Element i is the i-th normal of
		 * the name's stream, so a tied copy on another rank (same name) starts
		 * equal to the original. */
		for (int64_t i = 0; i < pa->numel; i++)
			w[i] = (float)(pa->std * rt_normal_at(seed, stream, (uint64_t)i));
		break;
	default: {
		/* nn.Linear: kaiming_uniform_(a = sqrt(5)) on the weight gives
		 * bound = sqrt(6 / ((1 + 5) fan_in)) = 1/sqrt(fan_in); the bias
		 * uses the same bound. */
		float bound = pa->fan_in > 0 ? (float)(1.0 / sqrt((double)pa->fan_in)) : 0.0f;
		for (int64_t i = 0; i < pa->numel; i++) {
			float u = rt_u01f(rt_rand_at(seed, stream, (uint64_t)i));
			w[i] = (2.0f * u - 1.0f) * bound;
		}
		break;
	}
	}
}
