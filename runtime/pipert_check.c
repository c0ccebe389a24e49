/* pipert_check.c — pipert-check, what DIR/run runs before it builds or
 * starts anything (docs/running.md, "Checked before a run").
 *
 *   pipert-check [--hostfile FILE --oversubscribe] DIR/program.desc -- OPTION...
 *   pipert-check --help-options DIR/program.desc
 *
 * It reads the program's rank-independent description (program.desc,
 * written by `pipec compile`) into an rt_program, parses the options with
 * the ranks' own parser (rt_opts_parse: one definition of the options),
 * then checks what the ranks would otherwise find late: every data file is
 * a readable .npy of the right dtype and shape, --weights-in and --resume
 * hold the model's parameters, every output can be written, and the
 * hostfile gives the job a slot per rank.  One line per problem; exit 2
 * for options (and the hostfile), 1 for files, 0 when all is well.  It
 * writes nothing and never starts MPI (it links libpipert.a, whose objects
 * name MPI functions, but calls none of them).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rt_internal.h"
#include "pipert_check.h"

/* ---- program.desc ---- */

typedef struct desc_input {
	int ndim;
	int64_t dims[4];            /* the declared shape after the batch axis */
} desc_input;

typedef struct desc {
	rt_program p;
	int cuda;                   /* backend cuda: its options too */
	int named;                  /* inputs given as NAME=FILE */
	int nin;                    /* the model's inputs (desc_input, inputs) */
	rt_input_desc inputs[64];
	desc_input in_shape[64];
	rt_param *params;
	int nparams;
} desc;

/* A non-NULL eval_step for a program that has one: rt_opts_parse only asks
 * whether it is there. */
static void no_eval(rt_ctx *c, int batch)
{
	(void)c;
	(void)batch;
}

static char *dup_str(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = malloc(n);
	if (d)
		memcpy(d, s, n);
	return d;
}

/* Reads DESC into d: 0, or -1 after a message (a damaged description is
 * the compile directory's fault, not the options': exit 3 below). */
static int read_desc(const char *path, desc *d)
{
	FILE *f = fopen(path, "r");
	char line[4096];
	int lineno = 0, version = 0;
	rt_program *p = &d->p;
	memset(d, 0, sizeof *d);
	p->gen_eos = -1;
	if (!f) {
		rt_msg(-1, "cannot read %s: %s (compile the program again with pipec)", path,
		       strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof line, f)) {
		char key[64], s1[512], s2[64];
		long long a = 0, b = 0;
		int n = 0;
		lineno++;
		line[strcspn(line, "\n")] = 0;
		if (!line[0] || line[0] == '#')
			continue;
		if (sscanf(line, "%63s %n", key, &n) < 1)
			goto bad;
		const char *rest = line + n;
		if (!strcmp(key, "pipert-desc")) {
			version = atoi(rest);
		} else if (!strcmp(key, "model") || !strcmp(key, "source") || !strcmp(key, "schedule")) {
			char *v = dup_str(rest);
			if (!v)
				goto bad;
			*(key[0] == 'm' ? &p->model : key[1] == 'o' ? &p->source : &p->schedule) = v;
		} else if (!strcmp(key, "backend")) {
			d->cuda = !strcmp(rest, "cuda");
		} else if (!strcmp(key, "target")) {
			if (sscanf(rest, "%63s %lld", s2, &a) != 2)
				goto bad;
			p->target_dtype = !strcmp(s2, "i32") ? RT_DT_I32 : RT_DT_F32;
			p->target_width = a;
		} else if (!strcmp(key, "loss") || !strcmp(key, "optim")) {
			if (sscanf(rest, "%63s", s2) != 1)
				goto bad;
			if (key[0] == 'l')
				p->loss = !strcmp(s2, "cross_entropy") ? RT_LOSS_CROSS_ENTROPY
				        : !strcmp(s2, "mse") ? RT_LOSS_MSE
				        : !strcmp(s2, "next_token") ? RT_LOSS_NEXT_TOKEN : RT_LOSS_NONE;
			else
				p->optim = !strcmp(s2, "sgd") ? RT_OPTIM_SGD : !strcmp(s2, "adam")
				         ? RT_OPTIM_ADAM : !strcmp(s2, "adamw") ? RT_OPTIM_ADAMW
				         : RT_OPTIM_NONE;
		} else if (!strcmp(key, "input")) {
			rt_input_desc *in = &d->inputs[d->nin];
			desc_input *sh = &d->in_shape[d->nin];
			long long lim, dd[4] = { 0 };
			int seq, ndim, m = 0;
			if (d->nin == 64 || sscanf(rest, "%511s %63s %lld %d %lld %d %n", s1, s2, &a, &seq,
			                            &lim, &ndim, &m) < 6 || ndim < 0 || ndim > 4)
				goto bad;
			rest += m;
			for (int i = 0; i < ndim; i++) {
				if (sscanf(rest, "%lld %n", &dd[i], &m) < 1)
					goto bad;
				rest += m;
				sh->dims[i] = dd[i];
			}
			sh->ndim = ndim;
			in->name = dup_str(s1);
			in->what = dup_str(rest);
			in->dtype = !strcmp(s2, "i32") ? RT_DT_I32 : RT_DT_F32;
			in->width = a;
			in->seq = seq;
			in->limit = lim;
			if (!in->name || !in->what)
				goto bad;
			d->nin++;
		} else if (!strcmp(key, "param")) {
			rt_param *np = realloc(d->params, (size_t)(d->nparams + 1) * sizeof *np), *pa;
			int ndim, m = 0;
			if (!np)
				goto bad;
			d->params = np;
			pa = memset(&np[d->nparams], 0, sizeof *pa);
			if (sscanf(rest, "%511s %d %n", s1, &ndim, &m) < 2 || ndim < 0 || ndim > 4)
				goto bad;
			rest += m;
			pa->ndim = ndim;
			for (int i = 0; i < ndim; i++) {
				if (sscanf(rest, "%lld %n", &b, &m) < 1)
					goto bad;
				rest += m;
				pa->dims[i] = b;
			}
			if (!(pa->name = dup_str(s1)))
				goto bad;
			d->nparams++;
		} else {
			/* the integer keys */
			static const char *const ikeys[] = { "ranks", "pipeline", "replicas", "batch",
			                                     "microbatches", "steps", "in_width",
			                                     "out_width", "shuffle", "eval_step",
			                                     "gen_tokens", "seq_max", "out_seq", "named",
			                                     "gen_sample", "gen_eos", "gen_vocab",
			                                     "gen_top_k" };
			size_t k, nk = sizeof ikeys / sizeof ikeys[0];
			for (k = 0; k < nk && strcmp(key, ikeys[k]); k++)
				;
			if (k == nk)
				continue;       /* a later pipec's key: not needed here */
			if (sscanf(rest, "%lld", &a) != 1)
				goto bad;
			switch (k) {
			case 0: p->nranks = (int)a; break;
			case 1: p->P = (int)a; break;
			case 2: p->R = (int)a; break;
			case 3: p->batch = a; break;
			case 4: p->M = (int)a; break;
			case 5: p->steps = (int)a; break;
			case 6: p->in_width = a; break;
			case 7: p->out_width = a; break;
			case 8: p->shuffle = (int)a; break;
			case 9: p->eval_step = a ? no_eval : NULL; break;
			case 10: p->gen_tokens = (int)a; break;
			case 11: p->seq_max = a; break;
			case 12: p->out_seq = (int)a; break;
			case 13: d->named = (int)a; break;
			case 14: p->gen_sample = (int)a; break;
			case 15: p->gen_eos = a; break;
			case 16: p->gen_vocab = a; break;
			case 17: p->gen_top_k = (int)a; break;
			}
		}
	}
	fclose(f);
	if (version != 1 || p->nranks < 1 || p->batch < 1 || p->M < 1 || p->R < 1 || d->nin < 1) {
		rt_msg(-1, "%s: not a program description this pipert-check reads (version %d; "
		       "compile the program again with this pipec)", path, version);
		return -1;
	}
	p->rank = 0;
	p->first_stage = p->last_stage = 1;
	p->mb_rows = p->batch / ((int64_t)p->R * p->M);
	p->inputs = d->inputs;
	p->ninputs = d->named ? d->nin : 0;
	p->params = d->params;
	p->nparams = d->nparams;
	return 0;
bad:
	fclose(f);
	rt_msg(-1, "%s:%d: damaged program description (compile the program again)", path, lineno);
	return -1;
}

static void free_desc(desc *d)
{
	free((void *)d->p.model);
	free((void *)d->p.source);
	free((void *)d->p.schedule);
	for (int k = 0; k < d->nin; k++) {
		free((void *)d->inputs[k].name);
		free((void *)d->inputs[k].what);
	}
	for (int i = 0; i < d->nparams; i++)
		free((void *)d->params[i].name);
	free(d->params);
}

/* ---- Reporting: every problem, one line each. ---- */

static int worst;               /* the exit status so far */

static void problem(int status, const char *fmt, ...) RT_PRINTF(2, 3);
static void problem(int status, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	rt_msg(-1, "%s", buf);
	if (status > worst)
		worst = status;
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *dims)
{
	size_t o = (size_t)snprintf(buf, n, "[");
	for (int i = 0; i < ndim && o < n; i++)
		o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)dims[i]);
	if (o < n)
		snprintf(buf + o, n - o, "]");
}

/* ---- Data files ---- */

/* One data file's header, read and judged.  rows/cols: its rows and (for a
 * sequence) T, for the checks between files; -1 when it could not be read. */
typedef struct probed {
	const char *opt, *path;
	int64_t rows, cols;
	int ok;
} probed;

static void probe(const desc *d, const char *opt, const char *path, int which, int k,
                  probed *out)
{
	char err[512];
	rt_npy a;
	out->opt = opt;
	out->path = path;
	out->rows = out->cols = -1;
	out->ok = 0;
	if (rt_npy_probe(path, &a, err, sizeof err) != 0) {
		problem(RT_EXIT_INPUT, "%s %s", opt, err);
		return;
	}
	if (check_data_header(&d->p, d->in_shape[k].ndim, d->in_shape[k].dims, which, k, &a, err,
	                      sizeof err) != 0) {
		problem(RT_EXIT_INPUT, "%s %s: %s", opt, path, err);
		return;
	}
	out->rows = a.dims[0];
	out->cols = a.ndim > 1 ? a.dims[1] : 1;
	out->ok = 1;
}

/* `--input NAME=FILE` of a program of one input: the file (rt_data.c's
 * reading of the same argument). */
static const char *bare_path(const char *arg)
{
	const char *eq = strchr(arg, '=');
	if (!eq || access(arg, F_OK) == 0)
		return arg;
	for (const char *s = arg; s < eq; s++)
		if (!(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z') && !(*s >= '0' && *s <= '9')
		    && *s != '_')
			return arg;
	return eq + 1;
}

/* The inputs (or evaluation inputs) and their targets: each file, then
 * what the files must share (rows; one T for the sequences). */
static void check_data(const desc *d, const rt_opts *o, int eval)
{
	const rt_program *p = &d->p;
	const char *opt = eval ? "--eval-input" : "--input";
	const char *topt = eval ? "--eval-target" : "--target";
	const char *target = eval ? o->eval_target : o->target;
	const char *const *paths = eval ? o->eval_path : o->in_path;
	probed in[64], tg;
	int n = p->ninputs > 0 ? p->ninputs : 1, ref = -1, seq_ref = -1;
	if (!(eval ? o->eval_input : o->input))
		return;
	for (int k = 0; k < n; k++) {
		const char *path = p->ninputs > 0 ? paths[k] : bare_path(eval ? o->eval_input : o->input);
		probe(d, opt, path, eval ? CHECK_EVAL_INPUT : CHECK_INPUT, k, &in[k]);
		if (!in[k].ok)
			continue;
		if (ref >= 0 && in[k].rows != in[ref].rows)
			problem(RT_EXIT_INPUT, "%s %s has %lld rows, but %s has %lld: the inputs are row "
			        "for row", opt, path, (long long)in[k].rows, in[ref].path,
			        (long long)in[ref].rows);
		if (ref < 0)
			ref = k;
		if (d->inputs[k].seq && seq_ref >= 0 && in[k].cols != in[seq_ref].cols)
			problem(RT_EXIT_INPUT, "%s %s holds sequences of %lld tokens, but %s of %lld: "
			        "the sequence inputs of a run have one length", opt, path,
			        (long long)in[k].cols, in[seq_ref].path, (long long)in[seq_ref].cols);
		if (d->inputs[k].seq && seq_ref < 0)
			seq_ref = k;
	}
	if (!target)
		return;
	probe(d, topt, target, eval ? CHECK_EVAL_TARGET : CHECK_TARGET, 0, &tg);
	if (tg.ok && ref >= 0 && tg.rows != in[ref].rows)
		problem(RT_EXIT_INPUT, "%s %s has %lld rows, but %s %s has %lld: targets are row for "
		        "row with the input", topt, target, (long long)tg.rows, opt, in[ref].path,
		        (long long)in[ref].rows);
}

/* ---- Parameters: --weights-in, --resume ---- */

static int is_float(const char *dtype)
{
	return !strcmp(dtype, "F32") || !strcmp(dtype, "F16") || !strcmp(dtype, "BF16") ||
	       !strcmp(dtype, "F64");
}

/* The file's header holds every parameter of the model, of its shape, a
 * float dtype (what rt_weights_load reads).  A wrong model's file would
 * give a line per parameter: the first few, then a count. */
static void check_params(const desc *d, const char *opt, const char *path)
{
	rt_st_file st;
	char err[512], want[128], got[128];
	int bad = 0;
	enum { SHOWN = 4 };
	if (rt_st_open(&st, path, err, sizeof err) != 0) {
		problem(RT_EXIT_INPUT, "%s %s", opt, err);
		return;
	}
	for (int i = 0; i < d->nparams; i++) {
		const rt_param *pa = &d->params[i];
		const rt_st_tensor *t = rt_st_find(&st, pa->name);
		int same = t && t->ndim == pa->ndim;
		for (int k = 0; same && k < t->ndim; k++)
			same = t->dims[k] == pa->dims[k];
		if (same && is_float(t->dtype))
			continue;
		if (bad++ >= SHOWN)
			continue;
		shape_str(want, sizeof want, pa->ndim, pa->dims);
		if (!t) {
			problem(RT_EXIT_INPUT, "%s %s: missing tensor '%s' (expected shape %s, F32)", opt,
			        path, pa->name, want);
		} else if (!same) {
			shape_str(got, sizeof got, t->ndim, t->dims);
			problem(RT_EXIT_INPUT, "%s %s: tensor '%s' has shape %s, expected %s", opt, path,
			        pa->name, got, want);
		} else {
			problem(RT_EXIT_INPUT, "%s %s: tensor '%s' has dtype %s, expected F32 (or F16, "
			        "BF16, F64, converted)", opt, path, pa->name, t->dtype);
		}
	}
	if (bad > SHOWN)
		problem(RT_EXIT_INPUT, "%s %s: %d more of the model's %d parameters are missing or "
		        "differ (a checkpoint of another model?)", opt, path, bad - SHOWN, d->nparams);
	rt_st_close(&st);
}

const char *json_file_ok(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *text = NULL;
	long n = -1;
	rt_json *j = NULL;
	if (f && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && n < (1L << 24) &&
	    fseek(f, 0, SEEK_SET) == 0 && (text = malloc((size_t)n + 1)) &&
	    fread(text, 1, (size_t)n, f) == (size_t)n) {
		if ((j = rt_json_parse(text, (size_t)n, err, errlen)) && j->type != RT_J_OBJ)
			rt_fmt_err(err, errlen, "not a JSON object");
	} else {
		rt_fmt_err(err, errlen, "cannot read: %s", n >= (1L << 24) ? "too large" : strerror(errno));
	}
	int ok = j && j->type == RT_J_OBJ;
	rt_json_free(j);
	free(text);
	if (f)
		fclose(f);
	return ok ? NULL : err;
}

/* --resume DIR: DIR/latest is the current checkpoint (docs/training.md):
 * its model's parameters, its optimizer file's header and state.json. */
static void check_resume(const desc *d, const char *dir)
{
	struct stat sb;
	char *path;
	const char *files[] = { "model.safetensors", "optimizer.safetensors", "state.json" };
	if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
		problem(RT_EXIT_INPUT, "--resume %s: %s", dir,
		        errno == ENOENT || stat(dir, &sb) != 0 ? strerror(errno) : "not a directory");
		return;
	}
	if (!(path = malloc(strlen(dir) + 16)))
		return;
	sprintf(path, "%s/latest", dir);
	if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
		problem(RT_EXIT_INPUT, "--resume %s: no checkpoint to resume (%s: %s)", dir, path,
		        stat(path, &sb) != 0 ? strerror(errno) : "not a directory");
		free(path);
		return;
	}
	free(path);
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		size_t n = strlen(dir) + strlen(files[i]) + 16;
		if (!(path = malloc(n)))
			return;
		snprintf(path, n, "%s/latest/%s", dir, files[i]);
		if (access(path, R_OK) != 0)
			problem(RT_EXIT_INPUT, "--resume %s: the checkpoint is incomplete (%s: %s)", dir,
			        path, strerror(errno));
		else if (i == 0)
			check_params(d, "--resume", path);
		else if (i == 1) {
			rt_st_file st;
			char err[512];
			if (rt_st_open(&st, path, err, sizeof err) != 0)
				problem(RT_EXIT_INPUT, "--resume %s", err);
			else
				rt_st_close(&st);
		} else {
			char err[256];
			const char *why = json_file_ok(path, err, sizeof err);
			if (why)
				problem(RT_EXIT_INPUT, "--resume %s: %s", path, why);
		}
		free(path);
	}
}

/* ---- Outputs: each can be written, nothing written to know it ---- */

/* The directory part of path ("." for none), malloc'd. */
static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *d;
	size_t n;
	if (!slash)
		return dup_str(".");
	n = slash == path ? 1 : (size_t)(slash - path);
	if (!(d = malloc(n + 1)))
		return NULL;
	memcpy(d, path, n);
	d[n] = 0;
	return d;
}

/* A file the run writes (by a rename into place, rt_write_atomic): its
 * directory must exist and take new files; the path must not be a
 * directory. */
static void check_out_file(const char *opt, const char *path)
{
	struct stat sb;
	char *dir = dir_of(path);
	if (!dir)
		return;
	if (stat(dir, &sb) != 0)
		problem(RT_EXIT_INPUT, "%s %s: cannot be written: directory '%s' does not exist",
		        opt, path, dir);
	else if (!S_ISDIR(sb.st_mode))
		problem(RT_EXIT_INPUT, "%s %s: cannot be written: '%s' is not a directory", opt,
		        path, dir);
	else if (access(dir, W_OK | X_OK) != 0)
		problem(RT_EXIT_INPUT, "%s %s: cannot be written: directory '%s': %s", opt, path,
		        dir, strerror(errno));
	else if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
		problem(RT_EXIT_INPUT, "%s %s: is a directory (name a file in it)", opt, path);
	free(dir);
}

/* A checkpoint directory: an existing one must take new entries; a new
 * one is created by the run, in a directory that exists. */
static void check_out_dir(const char *opt, const char *path)
{
	struct stat sb;
	char *parent;
	if (stat(path, &sb) == 0) {
		if (!S_ISDIR(sb.st_mode))
			problem(RT_EXIT_INPUT, "%s %s: exists and is not a directory", opt, path);
		else if (access(path, W_OK | X_OK) != 0)
			problem(RT_EXIT_INPUT, "%s %s: cannot be written: %s", opt, path, strerror(errno));
		return;
	}
	if (!(parent = dir_of(path)))
		return;
	if (stat(parent, &sb) != 0 || !S_ISDIR(sb.st_mode))
		problem(RT_EXIT_INPUT, "%s %s: cannot be created: directory '%s' does not exist", opt,
		        path, parent);
	else if (access(parent, W_OK | X_OK) != 0)
		problem(RT_EXIT_INPUT, "%s %s: cannot be created in '%s': %s", opt, path, parent,
		        strerror(errno));
	free(parent);
}

/* Two outputs into one file: the later would overwrite the earlier. */
static void check_distinct(const rt_opts *o)
{
	const char *opt[] = { "--weights-out", "--output", "--trace", "--metrics" };
	const char *val[] = { o->weights_out, o->output, o->trace, o->metrics };
	for (int i = 0; i < 4; i++)
		for (int j = i + 1; j < 4; j++) {
			struct stat a, b;
			int same = val[i] && val[j] &&
			           (!strcmp(val[i], val[j]) ||
			            (stat(val[i], &a) == 0 && stat(val[j], &b) == 0 &&
			             a.st_dev == b.st_dev && a.st_ino == b.st_ino));
			if (same)
				problem(RT_EXIT_USAGE, "%s and %s both name %s: give each output its own file",
				        opt[i], opt[j], val[j]);
		}
}

/* ---- main ---- */

static int usage(void)
{
	fprintf(stderr, "usage: pipert-check [--hostfile FILE [--oversubscribe]] DIR/program.desc "
	        "-- OPTION...\n       pipert-check --help-options DIR/program.desc\n"
	        "Checks a pipec program's options and files before DIR/run starts it "
	        "(docs/running.md).\n");
	return RT_EXIT_USAGE;
}

int main(int argc, char **argv)
{
	const char *hostfile = NULL, *descpath = NULL;
	int oversub = 0, help = 0, i, rc;
	desc d;
	rt_opts o;
	char err[1024];

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--hostfile") && i + 1 < argc)
			hostfile = argv[++i];
		else if (!strcmp(argv[i], "--oversubscribe"))
			oversub = 1;
		else if (!strcmp(argv[i], "--help-options"))
			help = 1;
		else if (!strcmp(argv[i], "--help")) {
			usage();
			return 0;
		}
		else if (argv[i][0] == '-')
			return usage();
		else
			break;
	}
	if (i >= argc)
		return usage();
	descpath = argv[i++];
	if (i < argc && !strcmp(argv[i], "--"))
		i++;
	if (read_desc(descpath, &d) != 0) {
		free_desc(&d);
		return RT_EXIT_RUNTIME;
	}
	if (help) {
		if (d.cuda)
			rt_opts_help_cuda(stdout, &d.p, "rankN");
		else
			rt_opts_help(stdout, &d.p, "rankN");
		free_desc(&d);
		return 0;
	}

	/* argv[i - 1] stands for the program's name: rt_opts_parse skips it */
	rc = (d.cuda ? rt_opts_parse_cuda : rt_opts_parse)(&o, &d.p, argc - (i - 1), argv + (i - 1),
	                                                  err, sizeof err);
	if (rc)
		problem(RT_EXIT_USAGE, "%s", err);
	if (hostfile)
		check_hostfile(hostfile, d.p.nranks, oversub, problem);
	if (rc || o.help) {
		rt_opts_free(&o);
		free_desc(&d);
		return worst;
	}
	check_distinct(&o);
	{
		char msg[1024];
		if (rt_ckpt_check_options(&o, msg, sizeof msg) != 0)
			problem(RT_EXIT_USAGE, "%s", msg);
	}
	check_data(&d, &o, 0);
	check_data(&d, &o, 1);
	if (o.weights_in)
		check_params(&d, "--weights-in", o.weights_in);
	if (o.resume) {
		check_resume(&d, o.resume);
		if (!o.checkpoint)
			check_out_dir("--resume", o.resume);   /* it keeps saving there */
	}
	if (o.weights_out)
		check_out_file("--weights-out", o.weights_out);
	if (o.output)
		check_out_file("--output", o.output);
	if (o.trace)
		check_out_file("--trace", o.trace);
	if (o.metrics)
		check_out_file("--metrics", o.metrics);
	if (o.checkpoint)
		check_out_dir("--checkpoint", o.checkpoint);
	rt_opts_free(&o);
	free_desc(&d);
	return worst;
}
