/* fuzz_common.h — what the libFuzzer harnesses share: a reader's input as
 * a file (the readers take a path, as users give them one), and the one
 * symbol of the runtime they link without (see run.sh).
 */
#ifndef PIPEC_FUZZ_COMMON_H
#define PIPEC_FUZZ_COMMON_H

/* Built with -D_GNU_SOURCE (run.sh), for memfd_create. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "rt_internal.h"

/* rt_util.c's collectives hash names with rt_init.c's function; linking
 * rt_init.c would pull in the whole runtime, and the readers never call
 * them. */
uint64_t rt_hash_name(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

/* The input as a file's contents: an in-memory file (no disk traffic at
 * thousands of runs a second), reached through /proc like any path. */
static inline const char *fuzz_file(const void *a, size_t na)
{
	static int fd = -1;
	static char path[64];
	if (fd < 0) {
		fd = memfd_create("fuzz-input", 0);
		if (fd < 0) {
			perror("memfd_create");
			abort();
		}
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) != 0 || (na && pwrite(fd, a, na, 0) != (ssize_t)na)) {
		perror("fuzz input");
		abort();
	}
	return path;
}

/* A failure must say why: an empty message is a bug as much as a crash. */
static inline void fuzz_need_message(int rc, const char *err)
{
	if (rc != 0 && !err[0]) {
		fprintf(stderr, "refused without a message\n");
		abort();
	}
}

#endif
