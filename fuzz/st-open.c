/* st-open.c — opens each safetensors file named and prints "ok" or
 * "refused: REASON", one line each (a reason's control bytes, which
 * may come from a tensor's name, printed as '?'): our reader's verdicts,
 * for fuzz/differential.py to set beside the reference library's.
 */
#include "rt_internal.h"

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		rt_st_file st;
		char err[512];
		if (rt_st_open(&st, argv[i], err, sizeof err) != 0) {
			for (char *c = err; *c; c++)
				if ((unsigned char)*c < 0x20)
					*c = '?';
			printf("refused: %s\n", err);
			continue;
		}
		printf("ok\n");
		rt_st_close(&st);
	}
	return 0;
}
