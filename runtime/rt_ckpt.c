/* rt_ckpt.c — checkpoints (--checkpoint DIR --save-every N) and --resume.
 *
 * A checkpoint is a directory DIR/step-N holding
 *   model.safetensors      the weights under --weights-out's names (16-bit
 *                          programs: the f32 master weights)
 *   optimizer.safetensors  per parameter its optimizer buffers under
 *                          torch.optim's names, and pipedream-2bw's older
 *                          weight version as `<param>.previous`
 *   state.json             the step, the data position, the seeds, the
 *                          optimizer's step count, the model's fingerprint
 * and DIR/latest, a symbolic link to the current one.  Rank 0 writes it all
 * (the others send it their parameters, as for --weights-out) into
 * DIR/step-N.tmp-PID, renames that to DIR/step-N and then replaces
 * DIR/latest by renaming a new link over it: at every moment DIR/latest
 * names a whole checkpoint, so a crash or SIGKILL leaves the previous one
 * current.  Each rank reads its own parameters by name on --resume, so a
 * checkpoint loads into any partition, schedule or replica count of the
 * same model.  docs/training.md describes the format for users.
 */
#define _POSIX_C_SOURCE 200809L
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rt_internal.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

enum { CKPT_FORMAT = 1, STATE_MAX = 1 << 20 };

static char *path_join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *s = malloc(n);
	if (s)
		snprintf(s, n, "%s/%s", dir, name);
	return s;
}

/* ---- Fingerprints. ---- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* The model: every parameter's name and shape, whichever rank holds it, as
 * a set (a tied weight's copies count once), so that every partition,
 * schedule and replica count of one model has the same one.  Collective. */
static uint64_t model_fingerprint(rt_ctx *c)
{
	const rt_program *p = c->p;
	int n = p->nparams, *counts = malloc((size_t)c->nranks * sizeof(int));
	int *disp = malloc((size_t)c->nranks * sizeof(int)), total = 0;
	uint64_t *mine = malloc(((size_t)n + 1) * sizeof *mine), *all = NULL, h = rt_hash_name("model");
	if (!counts || !disp || !mine)
		rt_die(c, RT_EXIT_RUNTIME, "out of memory fingerprinting the model");
	for (int i = 0; i < n; i++) {
		const rt_param *pa = &p->params[i];
		uint64_t x = rt_hash_name(pa->name);
		for (int d = 0; d < pa->ndim; d++)
			x = rt_mix64(x ^ (uint64_t)pa->dims[d]);
		mine[i] = rt_mix64(x + (uint64_t)pa->ndim);
	}
	MPI_Allgather(&n, 1, MPI_INT, counts, 1, MPI_INT, MPI_COMM_WORLD);
	for (int r = 0; r < c->nranks; r++) {
		disp[r] = total;
		total += counts[r];
	}
	if (!(all = malloc(((size_t)total + 1) * sizeof *all)))
		rt_die(c, RT_EXIT_RUNTIME, "out of memory fingerprinting the model");
	MPI_Allgatherv(mine, n, MPI_UINT64_T, all, counts, disp, MPI_UINT64_T, MPI_COMM_WORLD);
	/* sorted, duplicates once: a set */
	qsort(all, (size_t)total, sizeof *all, cmp_u64);
	for (int i = 0; i < total; i++)
		if (!i || all[i] != all[i - 1])
			h = rt_mix64(h ^ all[i]);
	free(counts);
	free(disp);
	free(mine);
	free(all);
	return h;
}

/* The pipeline (informational: a resume may change it). */
static uint64_t pipeline_fingerprint(const rt_program *p)
{
	uint64_t h = rt_hash_name(p->schedule ? p->schedule : "?");
	h = rt_mix64(h ^ (uint64_t)p->P);
	h = rt_mix64(h ^ (uint64_t)p->R);
	h = rt_mix64(h ^ (uint64_t)p->M);
	h = rt_mix64(h ^ (uint64_t)p->batch);
	return rt_mix64(h ^ (uint64_t)p->precision);
}

/* ---- Which buffers the optimizer state is. ---- */

static int is_2bw(const rt_program *p)
{
	return p->async && p->nversions >= 2 && p->schedule && !strcmp(p->schedule, "pipedream-2bw");
}

static const char *optim_name(int optim)
{
	return optim == RT_OPTIM_SGD ? "sgd" : optim == RT_OPTIM_ADAM ? "adam"
	     : optim == RT_OPTIM_ADAMW ? "adamw" : "none";
}

/* The optimizer's buffers and their suffixes; 2BW's previous weights (the
 * version slot before the newest) last when `versions`. */
static int optim_bufs(rt_ctx *c, const char **suffix, float **buf, int versions)
{
	const rt_program *p = c->p;
	int n = 0;
	if (p->optim == RT_OPTIM_SGD && c->opt_m) {
		suffix[n] = ".momentum_buffer";
		buf[n++] = c->opt_m;
	} else if (p->optim == RT_OPTIM_ADAM || p->optim == RT_OPTIM_ADAMW) {
		suffix[n] = ".exp_avg";
		buf[n++] = c->opt_m;
		suffix[n] = ".exp_avg_sq";
		buf[n++] = c->opt_v;
	}
	if (versions && is_2bw(p) && c->wv) {
		suffix[n] = ".previous";
		buf[n++] = c->wv[(c->newest + p->nversions - 1) % p->nversions];
	}
	return n;
}

/* ---- state.json. ---- */

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *u = (const unsigned char *)(s ? s : ""); *u; u++) {
		if (*u == '"' || *u == '\\')
			fprintf(f, "\\%c", *u);
		else if (*u < 0x20)
			fprintf(f, "\\u%04x", *u);
		else
			fputc(*u, f);
	}
	fputc('"', f);
}

/* Rows of the data a step's batch comes from (rank 0's view: it holds the
 * first stage); 0 for synthetic data. */
static int64_t data_rows(const rt_ctx *c)
{
	if (c->in && c->p->ninputs > 0 && c->in[0].path)
		return c->in[0].rows;
	return c->x_rows > 0 ? c->x_rows : c->t_rows;
}

static int write_state(rt_ctx *c, const char *path, int64_t step, uint64_t mfp, int previous)
{
	const rt_program *p = c->p;
	char *tmp = NULL;
	FILE *f = rt_atomic_open(path, &tmp);
	int64_t k = data_rows(c) / (p->batch > 0 ? p->batch : 1);
	if (!f)
		return -1;
	fprintf(f, "{\n  \"format\": \"pipec-checkpoint\",\n  \"format_version\": %d,\n", CKPT_FORMAT);
	fprintf(f, "  \"pipec\": ");
	json_str(f, PACKAGE_VERSION);
	fprintf(f, ",\n  \"step\": %lld,\n  \"model\": ", (long long)step);
	json_str(f, p->model);
	fprintf(f, ",\n  \"model_fingerprint\": \"%016llx\",\n", (unsigned long long)mfp);
	fprintf(f, "  \"pipeline\": {\"schedule\": ");
	json_str(f, p->schedule);
	fprintf(f, ", \"stages\": %d, \"replicas\": %d, \"microbatches\": %d, \"batch\": %lld, "
	        "\"dtype\": \"%s\", \"fingerprint\": \"%016llx\"},\n", p->P, p->R, p->M,
	        (long long)p->batch, p->precision == RT_PREC_BF16 ? "bf16"
	        : p->precision == RT_PREC_F16 ? "f16" : "f32",
	        (unsigned long long)pipeline_fingerprint(p));
	/* Batches are drawn by global step (rt_data.c): the position follows. */
	fprintf(f, "  \"data\": {\"batches_per_epoch\": %lld, \"epoch\": %lld, \"batch_in_epoch\": %lld, "
	        "\"shuffle\": %s, \"shuffle_seed\": %llu},\n", (long long)k,
	        (long long)(k ? step / k : 0), (long long)(k ? step % k : 0),
	        c->o.shuffle ? "true" : "false", (unsigned long long)p->seed);
	/* Dropout masks are a function of (seed, layer, global step, row). */
	fprintf(f, "  \"dropout\": {\"seed\": %llu, \"step\": %lld},\n",
	        (unsigned long long)p->seed, (long long)step);
	fprintf(f, "  \"save_every\": %d,\n", c->o.save_every);
	fprintf(f, "  \"optimizer\": {\"kind\": \"%s\", \"step\": %lld, \"previous\": %s}\n}\n",
	        optim_name(p->optim), (long long)c->opt_t, previous ? "true" : "false");
	return rt_atomic_close(f, tmp, path);
}

/* ---- Saving. ---- */

static int is_step_dir(const char *name, long long *step)
{
	char *end;
	if (strncmp(name, "step-", 5) || name[5] < '0' || name[5] > '9')
		return 0;
	*step = strtoll(name + 5, &end, 10);
	return *end == 0;
}

/* A stale temporary of a writer that is gone: DIR/step-N.tmp-PID or
 * DIR/.latest.tmp-PID with PID not a live process (a live one may be
 * another job writing; it is left alone). */
static int is_stale_tmp(const char *name)
{
	const char *t = strstr(name, ".tmp-");
	long pid;
	if (!t || (strncmp(name, "step-", 5) && strncmp(name, ".latest.tmp-", 12)))
		return 0;
	pid = strtol(t + 5, NULL, 10);
	return pid > 0 && pid != (long)getpid() && (kill((pid_t)pid, 0) != 0 && errno == ESRCH);
}

/* Removes a checkpoint directory: its files (no subdirectories), then it. */
static int remove_ckpt_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	if (!d)
		return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
	while ((e = readdir(d))) {
		char *f;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if ((f = path_join(path, e->d_name))) {
			unlink(f);
			free(f);
		}
	}
	closedir(d);
	return rmdir(path);
}

static void sync_dir(const char *path)
{
	int fd = open(path, O_RDONLY);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

/* Keeps the newest checkpoint and the one current before it; removes
 * older step directories and stale temporaries. */
static void prune(rt_ctx *c, const char *keep)
{
	DIR *d = opendir(c->ckpt_dir);
	struct dirent *e;
	long long s;
	if (!d)
		return;
	while ((e = readdir(d))) {
		char *f;
		int old = is_step_dir(e->d_name, &s) && strcmp(e->d_name, keep) &&
		          !(c->ckpt_prev && !strcmp(e->d_name, c->ckpt_prev));
		if (!old && !is_stale_tmp(e->d_name))
			continue;
		if ((f = path_join(c->ckpt_dir, e->d_name))) {
			remove_ckpt_dir(f);
			free(f);
		}
	}
	closedir(d);
}

/* PIPERT_FAULT_CKPT=N: rank 0 kills itself while writing step-N, after
 * the model file and before the rename (the tests' crash mid-save). */
static void save_fault(int64_t step, const char *what)
{
	const char *s = getenv("PIPERT_FAULT_CKPT");
	if (s && *s && strtoll(s, NULL, 10) == step) {
		fprintf(stderr, "pipec-run: rank 0: PIPERT_FAULT_CKPT: killed while writing %s\n", what);
		fflush(stderr);
		raise(SIGKILL);
	}
}

int rt_ckpt_save(rt_ctx *c, int64_t step)
{
	const char *suffix[RT_WBUF_MAX];
	float *buf[RT_WBUF_MAX], *model = c->master ? c->master : c->w;
	const char *none = "";
	char name[64], tname[96];
	char *tmp = NULL, *fin = NULL, *file = NULL, *lnk = NULL, *ltmp = NULL;
	uint64_t mfp = model_fingerprint(c);
	int nb, rc = 0, previous;
	double t0 = rt_now(), t1, t2;

	long pid0 = (long)getpid();

	/* Every rank writes its own tensors into rank 0's temporary directory. */
	MPI_Bcast(&pid0, 1, MPI_LONG, 0, MPI_COMM_WORLD);
	snprintf(name, sizeof name, "step-%lld", (long long)step);
	snprintf(tname, sizeof tname, "%s.tmp-%ld", name, pid0);
	tmp = path_join(c->ckpt_dir, tname);
	if (!tmp)
		rt_die(c, RT_EXIT_RUNTIME, "out of memory saving a checkpoint");
	if (c->rank == 0) {
		fin = path_join(c->ckpt_dir, name);
		lnk = path_join(c->ckpt_dir, "latest");
		snprintf(tname, sizeof tname, ".latest.tmp-%ld", (long)getpid());
		ltmp = path_join(c->ckpt_dir, tname);
		if (!tmp || !fin || !lnk || !ltmp) {
			rt_defer(c, "out of memory saving a checkpoint");
			rc = RT_EXIT_RUNTIME;
		} else if ((mkdir(c->ckpt_dir, 0777) != 0 && errno != EEXIST) ||
		           (remove_ckpt_dir(tmp), mkdir(tmp, 0777) != 0)) {
			rt_defer(c, "%s: cannot write the checkpoint: %s", tmp, strerror(errno));
			rc = RT_EXIT_INPUT;
		}
	}
	if ((rc = rt_agree_report(c, rc)) != 0)
		goto out;
	if (!(file = path_join(tmp, "model.safetensors")))
		rt_die(c, RT_EXIT_RUNTIME, "out of memory saving a checkpoint");
	rc = rt_weights_write_shared(c, file, 1, &none, &model, -1);
	free(file);
	t1 = rt_now();
	if (c->rank == 0)
		save_fault(step, tmp);
	nb = optim_bufs(c, suffix, buf, 1);
	previous = nb > 0 && !strcmp(suffix[nb - 1], ".previous");
	if (!(file = path_join(tmp, "optimizer.safetensors")))
		rt_die(c, RT_EXIT_RUNTIME, "out of memory saving a checkpoint");
	{
		int r2 = rt_weights_write_shared(c, file, nb, suffix, buf,
		                          c->p->optim == RT_OPTIM_ADAM || c->p->optim == RT_OPTIM_ADAMW
		                          ? (double)c->opt_t : -1.0);
		rc = r2 > rc ? r2 : rc;
	}
	free(file);
	t2 = rt_now();
	if (c->rank == 0 && !rc) {
		file = path_join(tmp, "state.json");
		if (!file || write_state(c, file, step, mfp, previous) != 0) {
			rt_msg(0, "%s: cannot write: %s", file ? file : tmp, strerror(errno));
			rc = RT_EXIT_INPUT;
		}
		free(file);
	}
	if (c->rank == 0 && !rc) {
		/* A step-N that is not current (a crash between the rename and the
		 * link's update left it) is replaced. */
		sync_dir(tmp);
		remove_ckpt_dir(fin);
		unlink(ltmp);
		if (rename(tmp, fin) != 0 || symlink(name, ltmp) != 0 || rename(ltmp, lnk) != 0) {
			rt_msg(0, "%s: cannot make the checkpoint current: %s", fin, strerror(errno));
			rc = RT_EXIT_INPUT;
		} else {
			sync_dir(c->ckpt_dir);
			prune(c, name);
			free(c->ckpt_prev);
			c->ckpt_prev = strdup(name);
		}
	}
	rc = rt_agree(c, rc);
	if (!rc && c->rank == 0 && getenv("PIPERT_CKPT_TIME"))
		fprintf(stderr, "pipec-run: checkpoint %s written in %.6f s (model %.3f, optimizer "
		        "%.3f, the rest %.3f)\n", name, rt_now() - t0, t1 - t0, t2 - t1, rt_now() - t2);
out:
	free(tmp);
	free(fin);
	free(lnk);
	free(ltmp);
	return rc;
}

int rt_ckpt_due(const rt_ctx *c, int64_t step, int64_t last, int stop)
{
	if (!c->ckpt_dir)
		return 0;
	return stop || step == last || (c->o.save_every > 0 && step % c->o.save_every == 0);
}

void rt_ckpt_restart_versions(rt_ctx *c)
{
	const rt_program *p = c->p;
	int nv = p->nversions;
	float *rot[64];
	if (!p->async || !c->wv || nv < 1 || nv > 64)
		return;
	/* The newest weights become version 0 of the new stream.  2BW: its
	 * first step computes with the version before (slot nv - 1), as the
	 * stream without the drain would; pipedream restarts as a new run does,
	 * every version the newest. */
	for (int s = 0; s < nv; s++)
		rot[s] = c->wv[(c->newest + s) % nv];
	memcpy(c->wv, rot, (size_t)nv * sizeof *rot);
	if (!is_2bw(p) && nv > 1) {
		/* device memory on a GPU: through the device layer's host views */
		size_t bytes = (size_t)p->nweights * sizeof(float);
		const float *w0 = rt_dev_map(c, c->wv[0], bytes, RT_MAP_READ);
		for (int s = 1; w0 && s < nv; s++) {
			float *ws = rt_dev_map(c, c->wv[s], bytes, RT_MAP_WRITE);
			if (!ws)
				rt_die(c, RT_EXIT_RUNTIME, "out of memory restarting the weight versions");
			memcpy(ws, w0, bytes);
			rt_dev_unmap(c, c->wv[s], ws, bytes, RT_MAP_WRITE);
		}
		if (!w0)
			rt_die(c, RT_EXIT_RUNTIME, "out of memory restarting the weight versions");
		rt_dev_unmap(c, c->wv[0], (float *)w0, bytes, RT_MAP_READ);
	}
	c->w = c->wv[0];
	c->newest = 0;
	c->w_use = NULL;
}

/* ---- Resuming. ---- */

static char *read_small(const char *path, size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t n;
	if (!f) {
		rt_fmt_err(err, errlen, "%s: cannot read: %s", path, strerror(errno));
		return NULL;
	}
	if (!(buf = malloc(STATE_MAX + 1))) {
		fclose(f);
		rt_fmt_err(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	n = fread(buf, 1, STATE_MAX + 1, f);
	fclose(f);
	if (n > STATE_MAX) {
		free(buf);
		rt_fmt_err(err, errlen, "%s: larger than %d bytes: not a checkpoint's state", path,
		           STATE_MAX);
		return NULL;
	}
	buf[n] = 0;
	*len = n;
	return buf;
}

/* A non-negative integer member (exact in a double). */
static int get_int(const rt_json *o, const char *key, int64_t *v)
{
	const rt_json *j = o ? rt_json_get(o, key) : NULL;
	if (!j || j->type != RT_J_NUM || j->num < 0 || j->num > 9007199254740992.0 ||
	    j->num != (double)(int64_t)j->num)
		return -1;
	*v = (int64_t)j->num;
	return 0;
}

static const char *get_str(const rt_json *o, const char *key)
{
	const rt_json *j = o ? rt_json_get(o, key) : NULL;
	return j && j->type == RT_J_STR ? j->str : NULL;
}

/* The checkpoint DIR/latest names, as DIR/step-N (read once: a writer
 * replacing the link meanwhile does not mix two checkpoints). */
static int find_latest(rt_ctx *c, const char *dir, char **out)
{
	char target[256], *lnk = path_join(dir, "latest");
	ssize_t n = lnk ? readlink(lnk, target, sizeof target - 1) : -1;
	long long s;
	if (n < 0 || n >= (ssize_t)sizeof target - 1) {
		rt_defer(c, "%s: no checkpoint to resume from (%s)", lnk ? lnk : dir,
		         n < 0 ? strerror(errno) : "link too long");
		free(lnk);
		return RT_EXIT_INPUT;
	}
	target[n] = 0;
	if (!is_step_dir(target, &s)) {
		rt_defer(c, "%s: links to '%s', not a checkpoint directory step-N", lnk, target);
		free(lnk);
		return RT_EXIT_INPUT;
	}
	free(lnk);
	*out = path_join(dir, target);
	return *out ? 0 : RT_EXIT_RUNTIME;
}

static int check_state(rt_ctx *c, const char *path, const rt_json *j, uint64_t mfp,
                       int64_t *step, int64_t *opt_t, int *previous, int64_t *save_every)
{
	const rt_program *p = c->p;
	const rt_json *opt = j ? rt_json_get(j, "optimizer") : NULL, *prev;
	const char *fmt = get_str(j, "format"), *fp = get_str(j, "model_fingerprint");
	const char *model = get_str(j, "model"), *kind = get_str(opt, "kind");
	int64_t version;
	char want[32];
	if (!j || j->type != RT_J_OBJ || !fmt || strcmp(fmt, "pipec-checkpoint")) {
		rt_defer(c, "%s: not a pipec checkpoint's state (no \"format\": \"pipec-checkpoint\")",
		         path);
		return RT_EXIT_INPUT;
	}
	if (get_int(j, "format_version", &version) || version != CKPT_FORMAT) {
		rt_defer(c, "%s: checkpoint format version %s, this runtime reads %d", path,
		         rt_json_get(j, "format_version") ? "unknown" : "missing", CKPT_FORMAT);
		return RT_EXIT_INPUT;
	}
	snprintf(want, sizeof want, "%016llx", (unsigned long long)mfp);
	if (!fp || strcmp(fp, want)) {
		rt_defer(c, "%s: a checkpoint of another model ('%s'; its parameters' names and "
		         "shapes differ from those of '%s')", path, model ? model : "?",
		         p->model ? p->model : "?");
		return RT_EXIT_INPUT;
	}
	if (get_int(j, "step", step) || get_int(opt, "step", opt_t) || !kind) {
		rt_defer(c, "%s: damaged: \"step\" or \"optimizer\" missing or not a count", path);
		return RT_EXIT_INPUT;
	}
	if (strcmp(kind, optim_name(p->optim))) {
		rt_defer(c, "%s: saved by optimizer %s; this program's is %s", path, kind,
		         optim_name(p->optim));
		return RT_EXIT_INPUT;
	}
	if (get_int(j, "save_every", save_every) || *save_every > INT32_MAX)
		*save_every = 0;
	prev = rt_json_get(opt, "previous");
	*previous = prev && prev->type == RT_J_BOOL && prev->boolean;
	return 0;
}

/* What the options say about the checkpoint directories, before any
 * rank starts (pipert-check) and again in the ranks: --resume and
 * --weights-in both give the starting weights; a fresh run into a
 * directory that holds a checkpoint would make that run history (pruning
 * keeps this run's last two), so say how to continue it instead. */
int rt_ckpt_check_options(const rt_opts *o, char *err, size_t errlen)
{
	const char *dir = o->checkpoint ? o->checkpoint : o->resume;
	struct stat st;
	char *lnk;
	if (o->resume && o->weights_in) {
		rt_fmt_err(err, errlen, "--weights-in and --resume both give the weights to start "
		           "from: give one");
		return RT_EXIT_USAGE;
	}
	if (!dir || (o->resume && !strcmp(dir, o->resume)) || !(lnk = path_join(dir, "latest")))
		return 0;
	if (lstat(lnk, &st) == 0) {
		rt_fmt_err(err, errlen, "--checkpoint %s: the directory holds a checkpoint already "
		           "(%s); continue it with --resume %s, or name another directory", dir, lnk,
		           dir);
		free(lnk);
		return RT_EXIT_USAGE;
	}
	free(lnk);
	return 0;
}

int rt_ckpt_open(rt_ctx *c)
{
	char err[512], *state = NULL, *text = NULL;
	rt_json *j = NULL;
	size_t len = 0;
	int64_t step = 0, opt_t = 0, target = c->o.steps, save_every = 0;
	int rc = 0, previous = 0;
	uint64_t mfp = model_fingerprint(c);

	c->ckpt_dir = c->o.checkpoint ? c->o.checkpoint : c->o.resume;
	{
		char msg[1024];
		if ((rc = rt_ckpt_check_options(&c->o, msg, sizeof msg)) != 0 && c->rank == 0)
			rt_msg(-1, "%s", msg);
		if ((rc = rt_agree(c, rc)) != 0 || !c->o.resume)
			return rc;
	}
	rc = find_latest(c, c->o.resume, &c->ckpt_from);
	if (!rc && !(state = path_join(c->ckpt_from, "state.json")))
		rc = RT_EXIT_RUNTIME;
	if (!rc && !(text = read_small(state, &len, err, sizeof err))) {
		rt_defer(c, "%s", err);
		rc = RT_EXIT_INPUT;
	}
	if (!rc && !(j = rt_json_parse(text, len, err, sizeof err))) {
		rt_defer(c, "%s: damaged: %s", state, err);
		rc = RT_EXIT_INPUT;
	}
	if (!rc)
		rc = check_state(c, state, j, mfp, &step, &opt_t, &previous, &save_every);
	if ((rc = rt_agree_report(c, rc)) != 0)
		goto out;
	c->step0 = step;
	c->opt_t = opt_t;
	c->ckpt_prev_versions = previous;
	/* The run continues saving as it did: the same segments of an
	 * asynchronous schedule, so the same numbers. */
	if (!c->o.save_every && save_every > 0)
		c->o.save_every = (int)save_every;
	if (c->o.checkpoint == NULL || !strcmp(c->o.checkpoint, c->o.resume))
		c->ckpt_prev = strdup(strrchr(c->ckpt_from, '/') + 1);
	if (target < step) {
		if (c->rank == 0)
			rt_msg(-1, "--steps %lld: the checkpoint %s is at step %lld already (--steps "
			       "counts global steps on --resume)", (long long)target, c->ckpt_from,
			       (long long)step);
		rc = RT_EXIT_USAGE;
	} else if (target == step) {
		if (c->rank == 0)
			rt_msg(-1, "note: the checkpoint %s is at step %lld = --steps: nothing to run",
			       c->ckpt_from, (long long)step);
		c->ckpt_done = 1;
	} else {
		c->o.steps = (int)(target - step);
	}
out:
	rt_json_free(j);
	free(text);
	free(state);
	return rc;
}

int rt_ckpt_load(rt_ctx *c)
{
	const char *suffix[RT_WBUF_MAX], *none = "";
	float *buf[RT_WBUF_MAX];
	char *file = path_join(c->ckpt_from, "model.safetensors");
	int rc, nb;
	if (!file)
		return rt_agree(c, RT_EXIT_RUNTIME);
	rc = rt_weights_read(c, file, 1, &none, &c->w, 0);
	free(file);
	nb = optim_bufs(c, suffix, buf, 0);
	if (rc || nb == 0)
		return rc;
	if (!(file = path_join(c->ckpt_from, "optimizer.safetensors")))
		return rt_agree(c, RT_EXIT_RUNTIME);
	rc = rt_weights_read(c, file, nb, suffix, buf, 0);
	free(file);
	return rc;
}

int rt_ckpt_load_versions(rt_ctx *c)
{
	const char *suffix = ".previous";
	float *dst;
	char *file;
	int rc;
	/* Without a saved older version (a checkpoint of another schedule) the
	 * stream starts from the newest weights, as a new run. */
	if (!c->o.resume || !is_2bw(c->p) || !c->ckpt_prev_versions)
		return 0;
	dst = c->wv[c->p->nversions - 1];
	if (!(file = path_join(c->ckpt_from, "optimizer.safetensors")))
		return rt_agree(c, RT_EXIT_RUNTIME);
	rc = rt_weights_read(c, file, 1, &suffix, &dst, 0);
	free(file);
	return rc;
}
