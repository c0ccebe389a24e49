/* guarded.h — the kernel test drivers' buffers (t/runtime-tf.c,
 * t/runtime-kv.c): n floats of NaN followed by GUARD sentinels, so a
 * kernel that writes past its planned size, or reads a part nobody wrote,
 * shows.  Out of memory ends the driver with exit 1. */
#ifndef PIPEC_T_GUARDED_H
#define PIPEC_T_GUARDED_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

enum { GUARD = 64 };
static const float SENTINEL = 1234.5f;

static void *guarded_alloc(size_t bytes)
{
	void *p = malloc(bytes ? bytes : 1);
	if (!p) {
		fprintf(stderr, "out of memory\n");
		exit(1);
	}
	return p;
}

static void poison(float *p, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		p[i] = NAN;
}

static float *buffer(int64_t n)
{
	float *p = guarded_alloc((size_t)(n + GUARD) * sizeof *p);
	poison(p, n);
	for (int i = 0; i < GUARD; i++)
		p[n + i] = SENTINEL;
	return p;
}

static int guard_ok(const float *p, int64_t n)
{
	for (int i = 0; i < GUARD; i++)
		if (p[n + i] != SENTINEL)
			return 0;
	return 1;
}

#endif
