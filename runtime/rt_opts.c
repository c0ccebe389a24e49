/* rt_opts.c — the emitted program's command line (docs/running.md,
 * "Options").  Accepts `--opt VALUE` and `--opt=VALUE`. */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rt_internal.h"

/* The CUDA runtime's options (libpipert_cuda.a). */
#ifdef RT_CUDA
#define BACKEND_HELP \
	"  --cuda-graph on|off          replay each step as one CUDA graph (default: on\n" \
	"                               where every transfer is a device operation)\n" \
	"  --tf32                       TF32 tensor cores for float32 GEMMs (or PIPEC_TF32=1)\n"
#else
#define BACKEND_HELP ""
#endif

/* "ids, mask, types": the names of a program's inputs, for messages. */
static void input_names(char *buf, size_t n, const rt_program *p)
{
	size_t o = 0;
	buf[0] = 0;
	for (int k = 0; k < p->ninputs && o < n; k++)
		o += (size_t)snprintf(buf + o, n - o, "%s%s", k ? ", " : "", p->inputs[k].name);
}

void rt_opts_help(FILE *f, const rt_program *p, const char *argv0)
{
	fprintf(f,
	        "Usage: %s [OPTIONS]   (one rank of %s, started by DIR/run through mpirun)\n"
	        "\n"
	        "  --weights-in F.safetensors   load every parameter (PyTorch names and layouts)\n"
	        "  --weights-out F.safetensors  after the last step, write every parameter\n"
	        "  --input X.npy                the data: N >= B rows of %lld features; epochs of\n"
	        "                               floor(N/B) batches (default: deterministic synthetic data)\n"
	        "  --target Y.npy               the targets, row for row with the input\n"
	        "  --output OUT.npy             write the last step's model output, [B, %lld]\n"
	        "                               (inference with --input: every row's, [N, ...])\n"
	        "  --steps N                    training steps (default %d)\n"
	        "  --trace T.json               write the measured timeline (Chrome trace JSON)\n"
	        "  --timeout S                  every wait gives up after S seconds (default 300)\n"
	        "  --check-messages             check each message's stage, micro-batch and size\n"
	        "  --quiet                      no summary lines (loss lines are still printed)\n"
	        BACKEND_HELP
	        "  --help                       this text\n"
	        "\n"
	        "Exit status: 0 success, 1 bad input (a file, a shape, a checkpoint), 2 bad\n"
	        "options, 3 a runtime failure (a rank died or timed out).\n",
	        argv0, p->model ? p->model : "a pipec model", (long long)p->in_width,
	        (long long)p->out_width, p->steps);
	if (p->gen_tokens > 0)
		fprintf(f, "\nGeneration (schedule = generate): --input PROMPTS.npy takes int32 [N, T0] "
		        "token ids,\nT0 <= %lld, any number N of prompts, each its tokens before the "
		        "first -1;\n--output TOKENS.npy writes int32 [N, T0 + K]: each prompt, its new "
		        "tokens, then -1.\n"
		        "  --max-new-tokens K           new tokens per prompt, at most %d (default)\n"
		        "  --eos ID                     a row stops after producing ID (default %lld; "
		        "-1 none)\n"
		        "  --temperature T              0 greedy, else sample logits / T (default %g)\n"
		        "  --top-k K                    sample among the K most likely (0: all; "
		        "default %d)\n"
		        "  --top-p P                    ... and the fewest whose probability reaches P "
		        "(default 1)\n"
		        "  --seed S                     the draws' seed (default %llu)\n",
		        (long long)p->seq_max, p->gen_tokens, (long long)p->gen_eos,
		        p->gen_sample ? p->gen_temperature : 0.0, p->gen_top_k,
		        (unsigned long long)p->gen_seed);
	if (p->ninputs > 0) {
		/* The inputs a model with several (or sequence) inputs takes. */
		fprintf(f, "\nInputs (--input NAME=FILE.npy, one per input; N >= B rows each):\n");
		for (int k = 0; k < p->ninputs; k++) {
			const rt_input_desc *d = &p->inputs[k];
			fprintf(f, "  %-12s %s [N, %s%lld]", d->name,
			        d->dtype == RT_DT_I32 ? "int32 (or int64)" : "float32",
			        d->seq ? "T <= " : "", (long long)d->width);
			if (d->limit > 0)
				fprintf(f, ", each %s in [0, %lld)", d->what ? d->what : "value",
				        (long long)d->limit);
			fprintf(f, "\n");
		}
		if (p->loss == RT_LOSS_NEXT_TOKEN)
			fprintf(f, "The loss's targets are the input ids (no --target).\n");
		if (p->out_seq && p->seq_max > 0)
			fprintf(f, "--output writes one row per position: [B, T, %lld].\n",
			        (long long)(p->out_width / p->seq_max));
	}
}

/* Gives each input of a program with `inputs` its file from the --input
 * options.  `--input NAME=FILE` names the input; a program of one input
 * also takes the bare form, and an argument that is an existing file is
 * always a file (a file name may hold '=').  Every input needs one file: a missing one is as
 * much a usage error as an unknown name, since data of some inputs and
 * synthetic data of others would not belong together. */
static int bind_inputs(const char *opt, const char **args, int nargs, const char ***paths,
                       const rt_program *p, char *err, size_t errlen)
{
	char names[512];
	const char **path;
	input_names(names, sizeof names, p);
	path = *paths = calloc((size_t)p->ninputs, sizeof *path);
	if (!path) {
		rt_fmt_err(err, errlen, "out of memory");
		return RT_EXIT_USAGE;
	}
	for (int i = 0; i < nargs; i++) {
		const char *arg = args[i], *val = arg, *eq = strchr(val, '=');
		int k = -1, named = 1;
		if (!eq || eq == val || access(val, F_OK) == 0)
			named = 0;
		for (const char *s = val; named && s < eq; s++)
			if (!isalnum((unsigned char)*s) && *s != '_' && *s != '.' && *s != '-')
				named = 0;
		if (named) {
			size_t n = (size_t)(eq - val);
			for (k = 0; k < p->ninputs; k++)
				if (strlen(p->inputs[k].name) == n && strncmp(p->inputs[k].name, val, n) == 0)
					break;
			if (k == p->ninputs) {
				rt_fmt_err(err, errlen, "%s %s: the model has no input '%.*s' (its inputs: %s)",
				           opt, val, (int)n, val, names);
				return RT_EXIT_USAGE;
			}
			val = eq + 1;
			if (!*val) {
				rt_fmt_err(err, errlen, "%s %s: no file after '='", opt, arg);
				return RT_EXIT_USAGE;
			}
		} else if (p->ninputs == 1) {
			k = 0;
		} else {
			rt_fmt_err(err, errlen, "%s %s: the model has %d inputs (%s): give each as "
			           "%s NAME=FILE.npy", opt, val, p->ninputs, names, opt);
			return RT_EXIT_USAGE;
		}
		if (path[k]) {
			rt_fmt_err(err, errlen, "%s: input '%s' is given twice (%s and %s)",
			           opt, p->inputs[k].name, path[k], val);
			return RT_EXIT_USAGE;
		}
		path[k] = val;
	}
	for (int k = 0; k < p->ninputs; k++)
		if (!path[k]) {
			rt_fmt_err(err, errlen, "%s: no file for input '%s' (give %s NAME=FILE.npy "
			           "for each of %s%s)", opt, p->inputs[k].name, opt, names,
			           strcmp(opt, "--input") ? "" : ", or no --input for synthetic data");
			return RT_EXIT_USAGE;
		}
	return 0;
}

static int parse_int(const char *s, long long lo, long long hi, long long *out)
{
	char *end;
	long long v;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

/* Options that make no sense together, or on this program: refused before
 * anything runs (docs/training.md, "Checked before anything runs"). */
static int check_combinations(rt_opts *o, const rt_program *p, char *err, size_t errlen)
{
	int training = p->optim != RT_OPTIM_NONE;
	int needs_targets = p->loss == RT_LOSS_CROSS_ENTROPY || p->loss == RT_LOSS_MSE;
	const char *train_only = o->checkpoint ? "--checkpoint" : o->resume ? "--resume"
	                       : o->save_every ? "--save-every" : o->eval_every ? "--eval-every"
	                       : o->eval_input ? "--eval-input" : o->eval_target ? "--eval-target"
	                       : o->shuffle && !p->shuffle ? "--shuffle" : NULL;
	if (!training && train_only) {
		rt_fmt_err(err, errlen, "%s: this program does not train (schedule %s); compile it with "
		           "an optimizer and a training schedule", train_only,
		           p->schedule ? p->schedule : "inference");
		return RT_EXIT_USAGE;
	}
	if (!training && o->target) {
		rt_fmt_err(err, errlen, "--target: this program does not train (schedule %s), so it "
		           "reads no targets", p->schedule ? p->schedule : "inference");
		return RT_EXIT_USAGE;
	}
	if (training && needs_targets && o->input && !o->target) {
		rt_fmt_err(err, errlen, "--input without --target: this model's %s loss needs targets "
		           "row for row with the input (synthetic data only when neither is given)",
		           p->loss == RT_LOSS_MSE ? "mse" : "cross-entropy");
		return RT_EXIT_USAGE;
	}
	if (o->save_every && !o->checkpoint && !o->resume) {
		rt_fmt_err(err, errlen, "--save-every needs --checkpoint DIR (or --resume DIR) to save into");
		return RT_EXIT_USAGE;
	}
	/* Synthetic inputs have no rows to match a target file's. */
	if (o->target && !o->input) {
		rt_fmt_err(err, errlen, "--target needs --input (targets are row for row with the "
		           "input)");
		return RT_EXIT_USAGE;
	}
	if (o->eval_target && !o->eval_input) {
		rt_fmt_err(err, errlen, "--eval-target needs --eval-input (targets are row for row "
		           "with the evaluation input)");
		return RT_EXIT_USAGE;
	}
	if (o->eval_input && needs_targets && !o->eval_target) {
		rt_fmt_err(err, errlen, "--eval-input without --eval-target: this model's %s loss needs "
		           "targets row for row with the evaluation input",
		           p->loss == RT_LOSS_MSE ? "mse" : "cross-entropy");
		return RT_EXIT_USAGE;
	}
	if (o->eval_every && !o->eval_input) {
		rt_fmt_err(err, errlen, "--eval-every needs an evaluation set (--eval-input%s)",
		           needs_targets ? " and --eval-target" : "");
		return RT_EXIT_USAGE;
	}
	if (o->eval_input && !p->eval_step) {
		rt_fmt_err(err, errlen, "--eval-input: this program has no evaluation step (compile it "
		           "again with this pipec)");
		return RT_EXIT_USAGE;
	}
	if (p->ninputs > 0 && o->input &&
	    bind_inputs("--input", o->in_args, o->nin_args, &o->in_path, p, err, errlen))
		return RT_EXIT_USAGE;
	if (p->ninputs > 0 && o->eval_input &&
	    bind_inputs("--eval-input", o->eval_args, o->neval_args, &o->eval_path, p, err, errlen))
		return RT_EXIT_USAGE;
	return 0;
}

/* Generation's run-time settings: which (0 --max-new-tokens, 1 --eos, 2
 * --temperature, 3 --top-k, 4 --top-p, 5 --seed). */
static int gen_option(rt_opts *o, const rt_program *p, const char *name, int which,
                      const char *val, char *err, size_t errlen)
{
	long long v = 0;
	double x = 0;
	char *end;
	if (p->gen_tokens <= 0) {
		rt_fmt_err(err, errlen, "%s: only a generating program (schedule = generate) takes it",
		           name);
		return -1;
	}
	if (which == 2 || which == 4) {
		errno = 0;
		x = strtod(val, &end);
		if (errno || end == val || *end || !isfinite(x) || x < 0 || (which == 4 && !(x > 0 && x <= 1))
		    || x > 1e6) {
			rt_fmt_err(err, errlen, "%s: '%s' is not %s", name, val, which == 2
			           ? "a temperature >= 0 (0: greedy)" : "a probability in (0, 1]");
			return -1;
		}
		*(which == 2 ? &o->gen_temperature : &o->gen_top_p) = x;
		return 0;
	}
	if (which == 5) {
		unsigned long long u;
		errno = 0;
		u = strtoull(val, &end, 10);
		if (errno || end == val || *end || val[0] == '-') {
			rt_fmt_err(err, errlen, "%s: '%s' is not a seed (an integer >= 0)", name, val);
			return -1;
		}
		o->gen_seed = (uint64_t)u;
		return 0;
	}
	long long lo = which == 1 ? -1 : which == 3 ? 0 : 1;
	long long hi = which == 0 ? p->gen_tokens : p->gen_vocab > 0 ? p->gen_vocab - 1 : 0;
	if (which == 3)
		hi = p->gen_vocab;
	if (parse_int(val, lo, hi, &v) != 0) {
		rt_fmt_err(err, errlen, "%s: '%s' is not %s %lld .. %lld%s", name, val,
		           which == 0 ? "a number of new tokens in" : which == 1
		           ? "a token id in" : "a number of tokens in", lo, hi,
		           which == 0 ? " (the compiled max_new_tokens is the most: the caches are "
		           "planned for it)" : which == 1 ? " (-1: none)" : " (0: every token)");
		return -1;
	}
	if (which == 0)
		o->gen_max_new = (int)v;
	else if (which == 1)
		o->gen_eos = v;
	else
		o->gen_top_k = (int)v;
	return 0;
}

int rt_opts_parse(rt_opts *o, const rt_program *p, int argc, char **argv,
                  char *err, size_t errlen)
{
	enum {
		O_WEIGHTS_IN, O_WEIGHTS_OUT, O_INPUT, O_TARGET, O_OUTPUT, O_STEPS, O_TRACE,
		O_TIMEOUT, O_CHECK_MESSAGES, O_QUIET, O_HELP, O_LOG_EVERY, O_METRICS, O_SHUFFLE,
		O_EVAL_INPUT, O_EVAL_TARGET, O_EVAL_EVERY, O_CHECKPOINT, O_SAVE_EVERY, O_RESUME,
		O_CUDA_GRAPH, O_TF32, O_MAX_NEW, O_EOS, O_TEMPERATURE, O_TOP_K, O_TOP_P, O_SEED
	};
	static const struct {
		const char *name;
		int id, has_arg;
	} known[] = {
		{ "--weights-in", O_WEIGHTS_IN, 1 }, { "--weights-out", O_WEIGHTS_OUT, 1 },
		{ "--input", O_INPUT, 1 }, { "--target", O_TARGET, 1 }, { "--output", O_OUTPUT, 1 },
		{ "--steps", O_STEPS, 1 }, { "--trace", O_TRACE, 1 }, { "--timeout", O_TIMEOUT, 1 },
		{ "--check-messages", O_CHECK_MESSAGES, 0 }, { "--quiet", O_QUIET, 0 },
		{ "--help", O_HELP, 0 }, { "--log-every", O_LOG_EVERY, 1 },
		{ "--metrics", O_METRICS, 1 }, { "--shuffle", O_SHUFFLE, 0 },
		{ "--eval-input", O_EVAL_INPUT, 1 }, { "--eval-target", O_EVAL_TARGET, 1 },
		{ "--eval-every", O_EVAL_EVERY, 1 }, { "--checkpoint", O_CHECKPOINT, 1 },
		{ "--save-every", O_SAVE_EVERY, 1 }, { "--resume", O_RESUME, 1 },
		{ "--max-new-tokens", O_MAX_NEW, 1 }, { "--eos", O_EOS, 1 },
		{ "--temperature", O_TEMPERATURE, 1 }, { "--top-k", O_TOP_K, 1 },
		{ "--top-p", O_TOP_P, 1 }, { "--seed", O_SEED, 1 },
#ifdef RT_CUDA
		{ "--cuda-graph", O_CUDA_GRAPH, 1 }, { "--tf32", O_TF32, 0 },
#endif
	};
	memset(o, 0, sizeof *o);
	if (!(o->in_args = calloc((size_t)argc + 1, sizeof *o->in_args)) ||
	    !(o->eval_args = calloc((size_t)argc + 1, sizeof *o->eval_args))) {
		rt_fmt_err(err, errlen, "out of memory");
		return RT_EXIT_USAGE;
	}
	o->steps = p->steps > 0 ? p->steps : 1;
	o->timeout = 300.0;
	o->log_every = 1;
	o->shuffle = p->shuffle;
	o->gen_max_new = p->gen_tokens;
	o->gen_eos = p->gen_eos;
	o->gen_temperature = p->gen_sample ? p->gen_temperature : 0.0;
	o->gen_top_k = p->gen_top_k;
	o->gen_top_p = 1.0;
	o->gen_seed = p->gen_seed;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = NULL, *eq = strchr(a, '=');
		size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
		int k, nk = (int)(sizeof known / sizeof known[0]);
		for (k = 0; k < nk; k++)
			if (strlen(known[k].name) == nlen && strncmp(a, known[k].name, nlen) == 0)
				break;
		if (k == nk) {
			rt_fmt_err(err, errlen, "unknown option '%s' (see --help)", a);
			return RT_EXIT_USAGE;
		}
		if (known[k].has_arg) {
			if (eq)
				val = eq + 1;
			else if (i + 1 < argc)
				val = argv[++i];
			else {
				rt_fmt_err(err, errlen, "option '%s' needs a value", a);
				return RT_EXIT_USAGE;
			}
			if (!*val) {
				rt_fmt_err(err, errlen, "option '%s' needs a non-empty value", known[k].name);
				return RT_EXIT_USAGE;
			}
		} else if (eq) {
			rt_fmt_err(err, errlen, "option '%s' takes no value", known[k].name);
			return RT_EXIT_USAGE;
		}
		switch (known[k].id) {
		case O_WEIGHTS_IN: o->weights_in = val; break;
		case O_WEIGHTS_OUT: o->weights_out = val; break;
		case O_INPUT:
			/* `--input NAME=FILE` names one of several inputs; a program of
			 * one input takes either form. */
			o->input = val;
			o->in_args[o->nin_args++] = val;
			break;
		case O_TARGET: o->target = val; break;
		case O_MAX_NEW:
		case O_EOS:
		case O_TEMPERATURE:
		case O_TOP_K:
		case O_TOP_P:
		case O_SEED:
			if (gen_option(o, p, known[k].name, known[k].id - O_MAX_NEW, val, err, errlen))
				return RT_EXIT_USAGE;
			break;
		case O_OUTPUT: o->output = val; break;
		case O_STEPS: {
			long long v;
			if (p->gen_tokens > 0) {
				rt_fmt_err(err, errlen, "--steps: a generating program runs until every "
				           "prompt has its tokens (--max-new-tokens, at most %d)",
				           p->gen_tokens);
				return RT_EXIT_USAGE;
			}
			if (parse_int(val, 1, 1000000000, &v) != 0) {
				rt_fmt_err(err, errlen, "--steps: '%s' is not a positive integer", val);
				return RT_EXIT_USAGE;
			}
			o->steps = (int)v;
			break;
		}
		case O_TRACE: o->trace = val; break;
		case O_TIMEOUT: {
			char *end;
			double v;
			errno = 0;
			v = strtod(val, &end);
			if (errno || end == val || *end || !(v > 0.0) || !isfinite(v) || v > 1e7) {
				rt_fmt_err(err, errlen, "--timeout: '%s' is not a positive number of seconds", val);
				return RT_EXIT_USAGE;
			}
			o->timeout = v;
			break;
		}
		case O_CHECK_MESSAGES: o->check_messages = 1; break;
		case O_QUIET: o->quiet = 1; break;
		case O_HELP: o->help = 1; break;
		case O_LOG_EVERY:
		case O_EVAL_EVERY:
		case O_SAVE_EVERY: {
			long long v;
			if (parse_int(val, 1, 1000000000, &v) != 0) {
				rt_fmt_err(err, errlen, "%s: '%s' is not a positive integer", known[k].name, val);
				return RT_EXIT_USAGE;
			}
			*(known[k].id == O_LOG_EVERY ? &o->log_every
			  : known[k].id == O_EVAL_EVERY ? &o->eval_every : &o->save_every) = (int)v;
			break;
		}
		case O_METRICS: o->metrics = val; break;
		case O_SHUFFLE: o->shuffle = 1; break;
		case O_EVAL_INPUT:
			o->eval_input = val;
			o->eval_args[o->neval_args++] = val;
			break;
		case O_EVAL_TARGET: o->eval_target = val; break;
		case O_CHECKPOINT: o->checkpoint = val; break;
		case O_RESUME: o->resume = val; break;
#ifdef RT_CUDA
		case O_CUDA_GRAPH:
			if (strcmp(val, "on") && strcmp(val, "off")) {
				rt_fmt_err(err, errlen, "--cuda-graph: '%s' is not on or off", val);
				return RT_EXIT_USAGE;
			}
			o->cuda_graph = !strcmp(val, "on") ? RT_GRAPH_ON : RT_GRAPH_OFF;
			break;
		case O_TF32: o->tf32 = 1; break;
#endif
		}
	}
	if (o->help)
		return 0;
	if (o->target && p->loss == RT_LOSS_NEXT_TOKEN) {
		rt_fmt_err(err, errlen, "--target: this model's loss reads its targets from the input ids");
		return RT_EXIT_USAGE;
	}
	if (o->target && !o->input) {
		rt_fmt_err(err, errlen, "--target needs --input (targets are row for row with the input)");
		return RT_EXIT_USAGE;
	}
	return check_combinations(o, p, err, errlen);
}

void rt_opts_free(rt_opts *o)
{
	free((void *)o->in_path);
	free((void *)o->in_args);
	free((void *)o->eval_path);
	free((void *)o->eval_args);
	o->in_path = o->in_args = o->eval_path = o->eval_args = NULL;
}
