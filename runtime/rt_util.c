/* rt_util.c — messages, exits, aligned memory, atomic writes, /proc probes. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE             /* madvise */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "rt_internal.h"

void rt_msg(int rank, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	/* One fprintf per message: lines of different ranks do not interleave. */
	if (rank >= 0)
		fprintf(stderr, "pipec-run: rank %d: %s\n", rank, buf);
	else
		fprintf(stderr, "pipec-run: %s\n", buf);
	fflush(stderr);
}

void rt_die(rt_ctx *c, int status, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	rt_msg(c ? c->rank : -1, "%s", buf);
	fflush(stdout);
	/* MPI_Abort ends every rank; mpirun exits with `status`. */
	MPI_Abort(MPI_COMM_WORLD, status);
	_exit(status);  /* not reached */
}

int rt_agree(rt_ctx *c, int status)
{
	int all = status;
	(void)c;
	if (MPI_Allreduce(&status, &all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD) != MPI_SUCCESS)
		return RT_EXIT_RUNTIME;
	return all;
}

void rt_defer(rt_ctx *c, const char *fmt, ...)
{
	va_list ap;
	if (c->msg[0])
		return;
	va_start(ap, fmt);
	vsnprintf(c->msg, sizeof c->msg, fmt, ap);
	va_end(ap);
}

int rt_agree_report(rt_ctx *c, int status)
{
	uint64_t h = status && c->msg[0] ? rt_hash_name(c->msg) : 0;
	uint64_t *all = malloc((size_t)c->nranks * sizeof *all);
	int said_below = 0;
	if (all && MPI_Allgather(&h, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD) == MPI_SUCCESS)
		for (int r = 0; r < c->rank; r++)
			said_below |= all[r] == h;
	if (h && !said_below)
		rt_msg(c->rank, "%s", c->msg);
	else if (status && !c->msg[0])
		rt_msg(c->rank, "start-up failed (status %d)", status);
	free(all);
	c->msg[0] = 0;
	return rt_agree(c, status);
}

void rt_fmt_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

void *rt_alloc(size_t bytes)
{
	void *p = NULL;
	/* 64 bytes: a cache line, and enough for any vector unit's loads. */
	if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0)
		return NULL;
	/* Zeroing touches every page, so resident memory is what we hold. */
	memset(p, 0, bytes);
	return p;
}

void rt_free(void *p)
{
	free(p);
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *s = buf;
	while (len) {
		ssize_t w = write(fd, s, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		s += w;
		len -= (size_t)w;
	}
	return 0;
}

int rt_write_atomic(const char *path, const void *const *parts, const size_t *lens, int nparts)
{
	size_t n = strlen(path) + 32;
	char *tmp = malloc(n);
	int fd, saved;
	if (!tmp)
		return -1;
	/* Same directory as the target, so rename(2) never crosses devices and
	 * readers see either the old file or the complete new one. */
	snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) {
		saved = errno;
		free(tmp);
		errno = saved;
		return -1;
	}
	for (int i = 0; i < nparts; i++) {
		if (write_all(fd, parts[i], lens[i]) != 0)
			goto fail;
	}
	if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS)
		goto fail;
	if (close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) != 0)
		goto fail;
	free(tmp);
	return 0;
fail:
	saved = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	free(tmp);
	errno = saved;
	return -1;
}

double rt_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int64_t rt_proc_kb(const char *key)
{
	char line[256];
	size_t klen = strlen(key);
	int64_t kb = -1;
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
			kb = strtoll(line + klen + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return kb;
}

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22       /* Linux 5.14; older headers lack it */
#endif

void rt_map_code(void)
{
	/* The code and constants of the program and its libraries are read from
	 * their files on first use, a 64 KiB window at a time, and then count as
	 * resident: a first GELU maps a few hundred KiB of libm.  Mapping every
	 * read-only file page now puts them all under the baseline, so the
	 * measured peak is the buffers the compiler plans.  Best effort: an
	 * older kernel refuses, and the code is counted as before. */
	char line[4096];
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f)
		return;
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		char perm[8];
		int path = 0;
		if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &lo, &hi, perm, &path) < 3)
			continue;
		/* a file's private read-only pages (not the [vdso] and the like) */
		if (!path || line[path] != '/' || perm[1] != '-' || perm[3] != 'p')
			continue;
		madvise((void *)lo, hi - lo, MADV_POPULATE_READ);
	}
	fclose(f);
}

int rt_reset_hwm(void)
{
	/* Writing 5 to clear_refs resets the peak RSS to the current RSS (Linux
	 * 4.0+), so start-up transients do not count as the run's peak. */
	int fd = open("/proc/self/clear_refs", O_WRONLY);
	int rc;
	if (fd < 0)
		return -1;
	rc = write(fd, "5", 1) == 1 ? 0 : -1;
	close(fd);
	return rc;
}

FILE *rt_atomic_open(const char *path, char **tmp)
{
	size_t n = strlen(path) + 32;
	FILE *f;
	*tmp = malloc(n);
	if (!*tmp)
		return NULL;
	snprintf(*tmp, n, "%s.tmp.%ld", path, (long)getpid());
	f = fopen(*tmp, "w");
	if (!f) {
		free(*tmp);
		*tmp = NULL;
	}
	return f;
}

int rt_atomic_close(FILE *f, char *tmp, const char *path)
{
	int rc = 0, saved;
	if (fflush(f) != 0 || ferror(f) || (fsync(fileno(f)) != 0 && errno != EINVAL && errno != EROFS))
		rc = -1;
	saved = errno;
	if (fclose(f) != 0 && !rc) {
		rc = -1;
		saved = errno;
	}
	if (!rc && rename(tmp, path) != 0) {
		rc = -1;
		saved = errno;
	}
	if (rc)
		unlink(tmp);
	free(tmp);
	errno = saved;
	return rc;
}
