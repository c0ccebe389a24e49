/* main.c — the pipec driver: command line, then the passes in order.
 *
 *   parse        parser.y + lexer.l  source        -> syntax tree      (-dA)
 *   check        sema*.c, layers.c   tree          -> model IR         (-dI)
 *   partition    partition.c         model IR      -> stages
 *   schedule     sched_gen.c         stages        -> compute order per rank
 *                sched_read.c        (or a hand-written order: file("..."), read
 *                                    before partition: its placement fixes V)
 *   lower        sched_lower.c       order         -> + R, SEND/RECV, ALLREDUCE, OPTIM (-dS)
 *   verify       sched_verify.c      actions       -> proof or an error naming the action
 *   simulate     sched_sim.c         actions       -> timeline, bubble, memory
 *                (both run the ranks on one interpreter, sched_interp.c)
 *   plan memory  memplan.c           actions       -> per rank: arena offsets, request
 *                                                     slots, post and wait points (-dM)
 *   build step   step.c              actions, plan -> per rank: the step program (-dP)
 *   verify step  step_verify.c       step programs -> proof or an error naming the
 *                                                     rank and instruction
 *   emit         emit_c.c,           everything    -> one C file per rank, Makefile, run
 *                step_emit.c, files.c
 *
 * compile runs every pass, from plan memory on with the schedule one call
 * of step() runs (one round of generation, one step of an asynchronous
 * stream); schedule stops after simulate (its memory table plans each
 * rank itself); check after partition.  Partition, schedule .. simulate
 * and the memory plan's peak are functions of passes.c, so that `pipec
 * plan` (plan.c) takes each candidate configuration through the very
 * passes `pipec schedule` runs.  A training program's compile
 * also builds its evaluation step (sched_eval: forward only over the same
 * placement) and takes it through verify, plan memory, build step and
 * verify step in the same way; -dM and -dP print it after the step.
 *
 * Exit status: 0 ok, 1 bad input, 2 bad command line, 3 internal or I/O.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "ast.h"
#include "costmodel.h"
#include "emit.h"
#include "memplan.h"
#include "partition.h"
#include "passes.h"
#include "plan.h"
#include "schedule.h"
#include "sema.h"
#include "step.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "dev"
#endif

typedef struct Options {
	const char *cmd;
	const char *file;
	VEC(const char *) sets;
	const char *format;
	const char *cost;
	const char *out;
	const char *backend;
	const char *dump;       /* -d letters */
	int width;
	int line_directives;
	int requests;           /* schedule --requests N: continuous batching's timeline */
	unsigned long long requests_seed;
	CostConsts cc;
	CostOption copt;        /* --cost, parsed once the constants are known */
	const char *ranks;      /* plan: --ranks N */
	const char *memory;     /* plan: --memory BYTES */
	const char *top;        /* plan: --top K */
	const char *schedules;  /* plan: --schedules a,b,... */
} Options;

static void usage(FILE *to)
{
	fputs("Usage: pipec COMMAND FILE.pipe [OPTION]...\n"
	      "Compile a pipeline-parallel model (.pipe) into per-rank programs.\n"
	      "\n"
	      "Commands:\n"
	      "  check      check the file and print a summary of the model and its stages\n"
	      "  schedule   build, verify and simulate the schedule; print or export it\n"
	      "  compile    write one program per rank, a Makefile and a launcher into -o DIR\n"
	      "  plan       rank every configuration of --ranks N ranks (stages x replicas,\n"
	      "             schedule, micro-batches, recompute) by predicted samples/s\n"
	      "\n"
	      "Options:\n"
	      "  --set KEY=VALUE    override a key of the pipeline block (repeatable),\n"
	      "                     e.g. --set stages=2 --set 'schedule=interleaved(2)'\n"
	      "  --format FMT       schedule: text (default), csv, torch, chrome, svg;\n"
	      "                     plan: text (default) or csv\n"
	      "  --ranks N          plan: the ranks to fill (stages x replicas = N)\n"
	      "  --memory BYTES     plan: bytes per rank (16GiB, 512MiB, 2GB or a count);\n"
	      "                     default: the file's memory, else no limit\n"
	      "  --top K            plan: print the K best rows only\n"
	      "  --schedules LIST   plan: only these schedule kinds (1f1b,zb-h1,...); the\n"
	      "                     default is every kind but file, pipedream, pipedream-2bw\n"
	      "  --cost COST        schedule, plan: model (default; FLOPs and bytes) or uniform\n"
	      "                     (forward 1, backward 2, communication free), or measured\n"
	      "                     times(F = a, B = b, W = c, comm = d), or FILE.json (the\n"
	      "                     same per stage), or gpu(flops = X, bandwidth = Y,\n"
	      "                     latency = Z, efficiency = E): the model on that device\n"
	      "  --flops R          model cost: FLOP/s per rank (default 5e10)\n"
	      "  --flops-backward R model cost: FLOP/s of the backward's GEMMs (default: --flops)\n"
	      "  --bandwidth R      model cost: link bytes/s (default 8e9)\n"
	      "  --latency S        model cost: seconds per message (default 2e-6)\n"
	      "  --mem-bandwidth R  model cost: a rank's memory bytes/s (default 2e10): the\n"
	      "                     optimizer step (16 bytes a parameter for SGD, 24 with\n"
	      "                     momentum, 32 for Adam; 8 more at a 16-bit dtype) and\n"
	      "                     generation's weight reads per step\n"
	      "  --weight-bandwidth R model cost: bytes/s at which a GEMM streams its weights,\n"
	      "                     once per forward, input- and weight-gradient pass (default\n"
	      "                     2e10; off: FLOPs alone)\n"
	      "  --width N          schedule text: chart width in columns (default 120)\n"
	      "  --requests N[:S]   schedule of a generate program: continuous batching's\n"
	      "                     timeline for N requests of random lengths (seed S, default 1)\n"
	      "  -o PATH            output file (schedule) or directory (compile)\n"
	      "  --backend B        compile: cpu (default) or cuda\n"
	      "  --no-line          compile: no #line directives in the emitted code\n"
	      "  -d LETTERS         dump the IR after passes: A syntax tree, I model IR,\n"
	      "                     S lowered schedule (csv), M memory plan, P step programs\n"
	      "  --help             this help;  --version  the version\n"
	      "\n"
	      "Environment (compile; the build tree's pipec needs none):\n"
	      "  PIPEC_TEMPLATES        the templates directory (older name: PIPEC_PKGDATADIR)\n"
	      "  PIPEC_RUNTIME_INCLUDE  the directory of pipert.h (the Makefile's -I)\n"
	      "  PIPEC_RUNTIME_LIB      the directory of the runtime libraries (its -L)\n"
	      "  PIPEC_CC               the C compiler of the Makefile (default cc)\n"
	      "\n"
	      "Exit status: 0 success, 1 bad input, 2 bad command line, 3 internal or I/O error.\n"
	      "Documentation: docs/language.md, docs/schedules.md, man pipec.\n", to);
}

static NORETURN void bad_usage(const char *fmt, const char *arg)
{
	fprintf(stderr, "pipec: ");
	fprintf(stderr, fmt, arg);
	fputs("\nTry 'pipec --help' for more information.\n", stderr);
	exit(EXIT_USAGE);
}

static double number_arg(const char *opt, const char *s)
{
	char *end;
	double v = strtod(s, &end);
	if (!*s || *end || !(v > 0) || isinf(v))
		bad_usage(xprintf("%s needs a positive number, not '%%s'", opt), s);
	return v;
}

static void parse_args(int argc, char **argv, Options *o)
{
	o->format = "text";
	o->cost = "model";
	o->backend = "cpu";
	o->width = 120;
	o->line_directives = 1;
	o->cc = cost_defaults;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *val = NULL;
#define TAKES(name) (!strcmp(a, name) ? (i + 1 < argc ? (val = argv[++i]) : \
	(bad_usage("option '%s' needs a value", name), NULL)) : \
	!strncmp(a, name "=", sizeof name) ? (val = a + sizeof name) : NULL)
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			exit(0);
		} else if (!strcmp(a, "--version")) {
			printf("pipec %s\n", PACKAGE_VERSION);
			exit(0);
		} else if (TAKES("--set")) {
			VEC_PUSH(o->sets, val);
		} else if (TAKES("--format")) {
			o->format = val;
		} else if (TAKES("--cost")) {
			o->cost = val;
		} else if (TAKES("--ranks")) {
			o->ranks = val;
		} else if (TAKES("--memory")) {
			o->memory = val;
		} else if (TAKES("--top")) {
			o->top = val;
		} else if (TAKES("--schedules")) {
			o->schedules = val;
		} else if (TAKES("--backend")) {
			o->backend = val;
		} else if (TAKES("--flops")) {
			o->cc.flops = number_arg("--flops", val);
		} else if (TAKES("--flops-backward")) {
			o->cc.flops_bwd = number_arg("--flops-backward", val);
		} else if (TAKES("--bandwidth")) {
			o->cc.bandwidth = number_arg("--bandwidth", val);
		} else if (TAKES("--latency")) {
			o->cc.latency = number_arg("--latency", val);
		} else if (TAKES("--mem-bandwidth")) {
			o->cc.mem_bandwidth = number_arg("--mem-bandwidth", val);
		} else if (TAKES("--weight-bandwidth")) {
			o->cc.weight_bandwidth = !strcmp(val, "off") ? INFINITY
			                         : number_arg("--weight-bandwidth", val);
		} else if (TAKES("--requests")) {
			char *end;
			long long n = strtoll(val, &end, 10);
			unsigned long long sd = 1;
			if (*end == ':')
				sd = strtoull(end + 1, &end, 10);
			if (end == val || *end || n < 1 || n > 1000000)
				bad_usage("--requests takes N or N:SEED (1 <= N <= 1000000), not '%s'", val);
			o->requests = (int)n;
			o->requests_seed = sd;
		} else if (TAKES("--width")) {
			char *end;
			long w = strtol(val, &end, 10);
			o->width = !*val || *end || w < 40 || w > 1000 ? 0 : (int)w;
			if (!o->width)
				bad_usage("--width must be between 40 and 1000, not '%s'", val);
		} else if (!strcmp(a, "-o")) {
			if (i + 1 >= argc)
				bad_usage("option '%s' needs a value", a);
			o->out = argv[++i];
		} else if (!strcmp(a, "--no-line")) {
			o->line_directives = 0;
		} else if (!strncmp(a, "-d", 2)) {
			o->dump = a[2] ? a + 2 : i + 1 < argc ? argv[++i] : "";
		} else if (a[0] == '-' && a[1]) {
			bad_usage("unknown option '%s'", a);
		} else if (!o->cmd) {
			o->cmd = a;
		} else if (!o->file) {
			o->file = a;
		} else {
			bad_usage("unexpected argument '%s'", a);
		}
#undef TAKES
	}
	if (!o->cmd)
		bad_usage("%s", "no command given (check, schedule, compile or plan)");
	if (strcmp(o->cmd, "check") && strcmp(o->cmd, "schedule") && strcmp(o->cmd, "compile")
	    && strcmp(o->cmd, "plan"))
		bad_usage("unknown command '%s' (expected check, schedule, compile or plan)", o->cmd);
	if (!o->file)
		bad_usage("%s", "no input file given");
	if (strcmp(o->format, "text") && strcmp(o->format, "csv") && strcmp(o->format, "torch")
	    && strcmp(o->format, "chrome") && strcmp(o->format, "svg"))
		bad_usage("unknown --format '%s' (text, csv, torch, chrome or svg)", o->format);
	if (!strcmp(o->cmd, "plan") && strcmp(o->format, "text") && strcmp(o->format, "csv"))
		bad_usage("plan's --format is text or csv, not '%s'", o->format);
	if (!strcmp(o->cmd, "plan") && !o->ranks)
		bad_usage("%s", "plan needs --ranks N");
	if (strcmp(o->cmd, "plan") && (o->ranks || o->memory || o->top || o->schedules))
		bad_usage("%s", "--ranks, --memory, --top and --schedules are options of plan");
	const char *why = NULL;
	int crc = cost_option_parse(o->cost, &o->cc, &o->copt, &why);
	if (crc == 2)
		bad_usage("%s", why);
	if (crc != 0) {
		diag_plain("%s", why);
		exit(EXIT_INPUT);
	}
	if (strcmp(o->backend, "cpu") && strcmp(o->backend, "cuda"))
		bad_usage("unknown --backend '%s' (cpu or cuda)", o->backend);
	if (!strcmp(o->cmd, "compile") && !o->out)
		bad_usage("%s", "compile needs -o DIR");
}

static int dumping(const Options *o, char pass)
{
	return o->dump && strchr(o->dump, pass);
}

/* Each --set is parsed with the file's own grammar as `KEY = VALUE`.  A
 * malformed one is a command-line error (exit 2). */
static PipeItem **parse_sets(const Options *o)
{
	PipeItem **items = xalloc((size_t)(o->sets.n + 1) * sizeof *items);
	for (int i = 0; i < o->sets.n; i++) {
		const char *s = o->sets.v[i];
		if (!strchr(s, '=') && !strchr(s, '{'))     /* KEY { ... } as in the file */
			bad_usage("--set needs KEY=VALUE, not '%s'", s);
		SrcFile *f = src_from_string(xprintf("--set '%s'", s), s);
		items[i] = parse_setting(f);
		if (!items[i]) {
			fprintf(stderr, "pipec: malformed --set '%s'\n", s);
			exit(EXIT_USAGE);
		}
	}
	return items;
}

static void report_step(const char *fmt, ...)
{
	va_list ap;
	fputs("pipec: internal error: the step program fails verification: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* schedule = file("..."): reads the order before the partition, since the
 * file decides the placement.  A file with V stages per rank makes the
 * pipeline's stages x V virtual stages; an explicit partition (checked
 * against `stages` entries) cannot then fit, and says so. */
static Schedule *read_schedule_file(IrModel *m)
{
	SchedSpec sp = ir_sched_spec(m);
	Schedule *s = sched_read_file(&sp, m->pipe.sched_loc);
	if (!s || s->V == m->pipe.V)
		return s;
	if (!m->pipe.part_auto) {
		diag_error(m->pipe.part_loc, "the partition lists %d stages, but the schedule "
		           "file places %d stages on %d ranks (%d per rank); use partition = auto",
		           m->pipe.npart, s->S, s->P, s->V);
		diag_note(m->pipe.sched_loc, "the schedule file is given here");
		return NULL;
	}
	m->pipe.V = s->V;
	return s;
}

/* What each rank will hold, from the same memory plan compile makes:
 * the number the compiled program prints as peak_memory_predicted.  A
 * training program's arena also serves its evaluation step: the larger
 * of the two plans. */
static void memory_table(FILE *out, const IrModel *m, const Schedule *s)
{
	if (s->nranks > 256) {
		fprintf(out, "memory: %d ranks; per-rank plans are printed for at most 256\n",
		        s->nranks);
		return;
	}
	fprintf(out, "memory per rank (bytes, as the compiled program will hold them):\n");
	fprintf(out, "  %-5s %13s %13s %13s %13s %13s\n", "rank", "weights", "gradients",
	        "optimizer", "arena", "total");
	const Schedule *es = s->training ? sched_eval(s) : NULL;
	for (int rank = 0; rank < s->nranks; rank++) {
		RankMemory r = pipec_rank_memory(m, s, es, rank);
		fprintf(out, "  %-5d %13lld %13lld %13lld %13lld %13lld%s\n", rank,
		        (long long)r.weights, (long long)r.grads, (long long)r.optim,
		        (long long)r.arena, (long long)memplan_total(r),
		        r.kv ? xprintf("   (arena: %lld of key/value caches)", (long long)r.kv) : "");
	}
	if (m->pipe.dtype != DT_F32)
		fprintf(out, "  (dtype %s: values in 4-byte slots;%s the arena includes the send "
		        "buffers of 2-byte messages)\n", dtype_name(m->pipe.dtype),
		        s->training ? " the optimizer column includes f32 master weights;" : "");
}

static FILE *open_out(const char *path)
{
	if (!path || !strcmp(path, "-"))
		return stdout;
	FILE *f = fopen(path, "w");
	if (!f)
		fail_io("cannot write '%s'", path);
	return f;
}

static void close_out(FILE *f, const char *path)
{
	if (f == stdout) {
		if (fflush(f) != 0)
			fail_io("cannot write the output");
	} else if (fclose(f) != 0) {
		fail_io("cannot write '%s'", path);
	}
}

int main(int argc, char **argv)
{
	Options o = { 0 };
	parse_args(argc, argv, &o);
	PipeItem **sets = parse_sets(&o);

	/* parse */
	SrcFile *src = src_load(o.file);
	if (!src)
		return EXIT_INPUT;
	Program *prog = parse_file(src);
	if (!prog)
		return EXIT_INPUT;
	if (dumping(&o, 'A'))
		ast_dump(stderr, prog);
	if (!strcmp(o.cmd, "plan")) {
		PlanOptions po = { o.ranks, o.memory, o.top, o.schedules, o.format, &o.copt,
		                   sets, o.sets.n };
		int prc = plan_main(prog, &po);
		pool_free_all();
		return prc;
	}

	/* check */
	IrModel *m = sema_check(prog, sets, o.sets.n);
	if (!m)
		return EXIT_INPUT;

	/* a custom schedule: which rank holds which stage, and so the number of
	 * virtual stages per rank, comes from the file; partition needs it */
	Schedule *file_sched = NULL;
	if (m->pipe.sched == SK_FILE) {
		file_sched = read_schedule_file(m);
		if (!file_sched)
			return EXIT_INPUT;
	}

	/* partition */
	int rc = pipec_partition(m, &o.copt, file_sched);
	if (rc)
		return rc;
	if (dumping(&o, 'I'))
		ir_dump(stderr, m);

	if (!strcmp(o.cmd, "check")) {
		check_summary(stdout, m);
		close_out(stdout, NULL);
		pool_free_all();
		return 0;
	}

	/* schedule, lower, verify, simulate */
	Built b;
	rc = pipec_schedule(m, &o.copt, file_sched, dumping(&o, 'S'), &b);
	if (rc)
		return rc;
	Schedule *s = b.s;
	SchedSpec spec = b.spec;
	SimCost *cost = b.cost;
	SimResult *r = b.r;
	const Schedule *round = b.round;
	(void)spec;

	if (!strcmp(o.cmd, "schedule")) {
		double *act = xalloc((size_t)m->S * sizeof *act);
		double rows = (double)m->pipe.B / ((double)m->pipe.R * m->pipe.M);
		for (int st = 0; st < m->S; st++)
			act[st] = rows * (double)m->stages[st].act_bytes;
		double *peak = xalloc((size_t)s->nranks * sizeof *peak);
		int *peak_mbs = xalloc((size_t)s->nranks * sizeof *peak_mbs);
		sched_memory(s, act, peak, peak_mbs);
		const char *why = !strcmp(o.format, "torch") ? sched_torch_refusal(s) : NULL;
		if (why) {              /* before -o creates anything */
			diag_plain("%s", why);
			return EXIT_INPUT;
		}
		if (o.requests && (s->kind != SK_GENERATE || s->disagg || strcmp(o.format, "text"))) {
			diag_plain("--requests draws continuous batching: a generate schedule with "
			           "colocated prefill, --format text");
			return EXIT_INPUT;
		}
		FILE *out = open_out(o.out);
		if (o.requests) {
			sched_write_cb(out, s, cost, (int)rows, (int)m->seq_max, m->pipe.gen_tokens,
			               (int)m->pipe.B, o.requests, o.requests_seed, o.width);
		} else if (!strcmp(o.format, "text")) {
			sched_write_text(out, s, r, cost, peak, peak_mbs, o.width);
			memory_table(out, m, round);
			if (s->kind != SK_GENERATE) {
				/* the figures pipec plan ranks by */
				double step = s->async ? r->step_time / s->ntok : r->step_time;
				fprintf(out, "samples_per_s: %.9g\n", (double)m->pipe.B / step);
				fprintf(out, "peak_memory: %lld\n",
				        (long long)pipec_peak_memory(m, round));
			}
		}
		else if (!strcmp(o.format, "csv"))
			sched_write_csv(out, s);
		else if (!strcmp(o.format, "torch"))
			rc = sched_write_torch(out, s) == 0 ? 0 : EXIT_INPUT;
		else if (!strcmp(o.format, "chrome"))
			sched_write_chrome(out, s, r);
		else
			sched_write_svg(out, s, r, xprintf("%s — %s, P=%d%s%s, M=%d", m->name,
			                                   s->label, s->P,
			                                   s->V > 1 ? xprintf(", V=%d", s->V) : "",
			                                   s->R > 1 ? xprintf(", R=%d", s->R) : "",
			                                   s->M));
		close_out(out, o.out);
	} else {
		/* plan memory, build the step programs, verify them */
		RankPlan **plans = xalloc((size_t)round->nranks * sizeof *plans);
		StepProgram **steps = xalloc((size_t)round->nranks * sizeof *steps);
		for (int rank = 0; rank < round->nranks; rank++) {
			plans[rank] = memplan_rank(m, round, rank);
			if (dumping(&o, 'M'))
				memplan_dump(stderr, m, round, plans[rank]);
		}
		for (int rank = 0; rank < round->nranks; rank++) {
			steps[rank] = step_build(m, round, plans[rank], rank);
			if (dumping(&o, 'P'))
				step_dump(stderr, steps[rank]);
		}
		if (step_verify(steps, round->nranks, round, report_step) != 0)
			return EXIT_INTERNAL;
		/* the evaluation step of a training program: the same passes */
		EmitEval ev = { 0 };
		if (s->training) {
			Schedule *es = sched_eval(s);
			if (sched_verify(es, pipec_report_internal) != 0)
				return EXIT_INTERNAL;
			RankPlan **eplans = xalloc((size_t)es->nranks * sizeof *eplans);
			StepProgram **esteps = xalloc((size_t)es->nranks * sizeof *esteps);
			for (int rank = 0; rank < es->nranks; rank++) {
				eplans[rank] = memplan_rank(m, es, rank);
				if (dumping(&o, 'M'))
					memplan_dump(stderr, m, es, eplans[rank]);
			}
			for (int rank = 0; rank < es->nranks; rank++) {
				esteps[rank] = step_build(m, es, eplans[rank], rank);
				if (dumping(&o, 'P'))
					step_dump(stderr, esteps[rank]);
			}
			if (step_verify(esteps, es->nranks, es, report_step) != 0)
				return EXIT_INTERNAL;
			ev = (EmitEval){ es, eplans, esteps };
		}
		/* emit */
		EmitOptions eo = { .dir = o.out, .backend = o.backend,
		                   .line_directives = o.line_directives };
		rc = emit_program(m, round, r, plans, steps, ev.s ? &ev : NULL, &eo);
	}
	pool_free_all();
	return rc;
}
