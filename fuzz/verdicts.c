/* verdicts.c — our readers' verdicts, for fuzz/differential.py to set
 * beside an independent reader's: `verdicts st FILE...` opens each
 * safetensors file, `verdicts json FILE...` parses each file as JSON, and
 * prints "ok" or "refused: REASON", one line per file (a reason's control
 * bytes, which may come from a tensor's name, printed as '?').
 */
#include <stdlib.h>
#include <string.h>

#include "rt_internal.h"

static void verdict(const char *err)
{
	char line[512];
	if (!err) {
		printf("ok\n");
		return;
	}
	snprintf(line, sizeof line, "%s", err);
	for (char *c = line; *c; c++)
		if ((unsigned char)*c < 0x20)
			*c = '?';
	printf("refused: %s\n", line);
}

int main(int argc, char **argv)
{
	int json = argc > 1 && !strcmp(argv[1], "json");
	for (int i = 2; i < argc; i++) {
		char err[512];
		if (json) {
			FILE *f = fopen(argv[i], "rb");
			char *text = NULL;
			long n = -1;
			rt_json *j = NULL;
			if (f && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
			    fseek(f, 0, SEEK_SET) == 0 && (text = malloc((size_t)n + 1)) &&
			    fread(text, 1, (size_t)n, f) == (size_t)n)
				j = rt_json_parse(text, (size_t)n, err, sizeof err);
			else
				snprintf(err, sizeof err, "cannot read");
			verdict(j ? NULL : err);
			rt_json_free(j);
			free(text);
			if (f)
				fclose(f);
		} else {
			rt_st_file st;
			int rc = rt_st_open(&st, argv[i], err, sizeof err);
			verdict(rc ? err : NULL);
			if (!rc)
				rt_st_close(&st);
		}
	}
	return 0;
}
