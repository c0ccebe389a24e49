/* rt_dev_cpu.c — the device layer of libpipert.a: the device is the host.
 * Buffers are plain aligned memory, a map is the buffer itself, a step is
 * one call of the program's step function (rt_dev.h). */
#define _DEFAULT_SOURCE             /* MAP_ANONYMOUS */
#include <string.h>
#include <sys/mman.h>

#include "rt_internal.h"

/* The model's buffers, carved in order from one anonymous mapping (rt_dev.h) */
static struct {
	char *base;
	size_t size, used;
} pool;

int rt_dev_init(rt_ctx *c)
{
	(void)c;
	return 0;
}

int rt_dev_reserve(rt_ctx *c, size_t bytes)
{
	void *m;
	(void)c;
	if (pool.base || bytes == 0)
		return 0;
	/* a few alignment pads more than the plan's bytes */
	bytes += 16 * 64;
	m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return 0;           /* the heap then, as before */
	pool.base = m;
	pool.size = bytes;
	pool.used = 0;
	return 0;
}

void *rt_dev_alloc(rt_ctx *c, size_t bytes)
{
	size_t n = (bytes + 63) / 64 * 64;
	(void)c;
	if (pool.base && n <= pool.size - pool.used) {
		char *p = pool.base + pool.used;
		pool.used += n;
		/* as rt_alloc: every page touched, resident memory is what we hold */
		memset(p, 0, bytes);
		return p;
	}
	return rt_alloc(bytes);
}

void rt_dev_free(rt_ctx *c, void *buf)
{
	(void)c;
	/* in the pool: released with it, by rt_dev_fini */
	if (pool.base && (char *)buf >= pool.base && (char *)buf < pool.base + pool.size)
		return;
	rt_free(buf);
}

void *rt_dev_map(rt_ctx *c, void *buf, size_t bytes, int mode)
{
	(void)c;
	(void)bytes;
	(void)mode;
	return buf;
}

void rt_dev_unmap(rt_ctx *c, void *buf, void *host, size_t bytes, int mode)
{
	(void)c;
	(void)buf;
	(void)host;
	(void)bytes;
	(void)mode;
}

int rt_dev_start(rt_ctx *c)
{
	(void)c;
	return 0;
}

void rt_dev_step(rt_ctx *c, int t)
{
	c->p->step(c, t);
}

void rt_dev_eval(rt_ctx *c, int b)
{
	c->p->eval_step(c, b);
}

int rt_dev_gen_pick(rt_ctx *c, int g, const float *logits, int32_t *tok)
{
	(void)c;
	(void)g;
	(void)logits;
	(void)tok;
	return 0;
}

int rt_dev_gen_collect(rt_ctx *c, int32_t *tokens)
{
	(void)c;
	(void)tokens;
	return 0;
}

int rt_dev_computing(rt_ctx *c)
{
	(void)c;
	return 1;
}

double rt_dev_peak_bytes(rt_ctx *c)
{
	(void)c;
	return -1.0;
}

void rt_dev_summary(rt_ctx *c)
{
	(void)c;
}

void rt_dev_fini(rt_ctx *c)
{
	(void)c;
	if (pool.base)
		munmap(pool.base, pool.size);
	pool.base = NULL;
}
