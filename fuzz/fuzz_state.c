/* fuzz_state.c — a checkpoint's state.json as its reader consumes it:
 * rt_json_parse, then rt_json_get lookups of the fields and type and range
 * checks on what they return, the way a resume reads step, epoch and data
 * position, nested objects and arrays included.  The lookups also use keys
 * taken from the input itself, so a key of any bytes is looked up.
 */
#include <math.h>

#include "fuzz_common.h"

/* A count: an integer in [0, 2^53), as the runtime writes steps. */
static int as_count(const rt_json *v, int64_t *out)
{
	if (!v || v->type != RT_J_NUM || !(v->num >= 0) || v->num >= 9007199254740992.0 ||
	    v->num != floor(v->num))
		return 0;
	*out = (int64_t)v->num;
	return 1;
}

static const char *const fields[] = {
	"step", "epoch", "position", "seed", "shuffle", "dropout", "lr_step", "model",
	"pipeline", "stages", "schedule", "replicas", "version", "format", "data", "rows",
	"", "__metadata__",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256] = "", key[64];
	rt_json *j = rt_json_parse((const char *)data, size, err, sizeof err);
	volatile int64_t sink = 0;

	fuzz_need_message(j ? 0 : -1, err);
	if (!j)
		return 0;
	for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) {
		const rt_json *v = rt_json_get(j, fields[f]);
		int64_t n;
		if (!v)
			continue;
		if (as_count(v, &n))
			sink += n;
		else if (v->type == RT_J_STR)
			sink += (int64_t)strlen(v->str);
		else if (v->type == RT_J_ARR) {
			for (int i = 0; i < v->n; i++)
				if (as_count(&v->items[i], &n))
					sink += n;
		} else if (v->type == RT_J_OBJ) {
			for (size_t g = 0; g < sizeof fields / sizeof fields[0]; g++)
				if (as_count(rt_json_get(v, fields[g]), &n))
					sink += n;
		}
	}
	/* Every member is found under its own key, and a key made of the
	 * input's first bytes is looked up in every object along one path. */
	snprintf(key, sizeof key, "%.*s", (int)(size < 16 ? size : 16), (const char *)data);
	for (const rt_json *v = j; v && (v->type == RT_J_OBJ || v->type == RT_J_ARR);
	     v = v->n ? &v->items[v->n - 1] : NULL) {
		if (v->type != RT_J_OBJ)
			continue;
		sink += rt_json_get(v, key) != NULL;
		for (int i = 0; i < v->n; i++)
			if (rt_json_get(v, v->keys[i]) != &v->items[i])
				abort();
	}
	/* Lookups in what is not an object find nothing. */
	if (j->type != RT_J_OBJ && rt_json_get(j, "step"))
		abort();
	if (rt_json_get(NULL, "step"))
		abort();
	(void)sink;
	rt_json_free(j);
	return 0;
}
