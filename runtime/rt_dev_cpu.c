/* rt_dev_cpu.c — the device layer of libpipert.a: the device is the host.
 * Buffers are plain aligned memory, a map is the buffer itself, a step is
 * one call of the program's step function (rt_dev.h). */
#include "rt_internal.h"

int rt_dev_init(rt_ctx *c)
{
	(void)c;
	return 0;
}

void *rt_dev_alloc(rt_ctx *c, size_t bytes)
{
	(void)c;
	return rt_alloc(bytes);
}

void rt_dev_free(rt_ctx *c, void *buf)
{
	(void)c;
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
}
