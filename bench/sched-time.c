/* bench/sched-time.c — runs a command N times and prints its wall time and
 * peak resident memory, for bench/sched-scale.sh.
 *
 *   sched-time N COMMAND [ARG]...
 *
 * Each run is fork + exec with stdout and stderr sent to /dev/null; the wall
 * time is CLOCK_MONOTONIC around it, the peak memory the child's own
 * ru_maxrss from wait4() (so the driver's memory is not counted).  Prints
 * one line:
 *
 *   median_s min_s max_s maxrss_kib
 *
 * (medians of the N runs; maxrss is the largest of the N).  Exits 1 if any
 * run fails, printing its status on stderr.  POSIX + wait4 (Linux, BSD).
 */
#define _DEFAULT_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc < 3 || atoi(argv[1]) < 1) {
		fprintf(stderr, "usage: sched-time N COMMAND [ARG]...\n");
		return 2;
	}
	int n = atoi(argv[1]);
	double *wall = malloc((size_t)n * sizeof *wall);
	long maxrss = 0;
	if (!wall)
		return 2;
	for (int i = 0; i < n; i++) {
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		pid_t pid = fork();
		if (pid < 0) {
			perror("sched-time: fork");
			return 2;
		}
		if (pid == 0) {
			int null = open("/dev/null", O_WRONLY);
			if (null >= 0) {
				dup2(null, 1);
				dup2(null, 2);
			}
			execvp(argv[2], argv + 2);
			_exit(127);
		}
		int status;
		struct rusage ru;
		if (wait4(pid, &status, 0, &ru) < 0) {
			perror("sched-time: wait4");
			return 2;
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "sched-time: %s failed (%s %d)\n", argv[2],
			        WIFEXITED(status) ? "exit" : "signal",
			        WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
			return 1;
		}
		wall[i] = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
		if (ru.ru_maxrss > maxrss)
			maxrss = ru.ru_maxrss;
	}
	qsort(wall, (size_t)n, sizeof *wall, cmp_double);
	double med = n % 2 ? wall[n / 2] : (wall[n / 2 - 1] + wall[n / 2]) / 2;
	printf("%.6f %.6f %.6f %ld\n", med, wall[0], wall[n - 1], maxrss);
	free(wall);
	return 0;
}
