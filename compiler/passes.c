/* passes.c — the passes check, schedule, compile and plan share (passes.h),
 * so that a plan's row is what `pipec schedule` prints for its --sets:
 * partition, then schedule (generate, lower, verify, simulate), then the
 * memory plan's peak.  main.c calls them in its pass list; plan.c calls
 * them once per candidate. */
#include "passes.h"
#include "diag.h"
#include "memplan.h"
#include "partition.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>

/* The verifier's report for built-in schedules: a failure is pipec's bug. */
void pipec_report_internal(const char *fmt, ...)
{
	va_list ap;
	fputs("pipec: internal error: the generated schedule fails verification: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void report_input(const char *fmt, ...)
{
	va_list ap;
	fputs("pipec: error: the schedule fails verification: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* An asynchronous schedule updates each stage on its own clock, so a
 * weight tied across stages (an lm_head reading the token embedding of
 * another stage) would have two different values: refused. */
static int check_async_ties(const IrModel *m)
{
	for (int st = 0; st < m->S; st++) {
		const IrStage *sg = &m->stages[st];
		for (int l = sg->first; l < sg->last; l++) {
			int e = m->layers[l].tied;
			if (e < 0 || (e >= sg->first && e < sg->last))
				continue;
			diag_error(m->pipe.sched_loc, "schedule '%s' cannot stash a weight tied across "
			           "stages: '%s' (stage %d) uses the weight of '%s' (another stage), and "
			           "the two stages update at different times; untie the head or use a "
			           "synchronous schedule", sched_kind_name(m->pipe.sched),
			           m->layers[l].name, st, m->layers[e].name);
			return -1;
		}
	}
	return 0;
}

/* The passes check, schedule, compile and plan share, so that a plan's
 * row is what `pipec schedule` prints for its --sets.  Partition: the
 * layers into m->S stages (a custom schedule's placement, zb-v's V). */
int pipec_partition(IrModel *m, const CostOption *copt, const Schedule *file_sched)
{
	const int *placement = file_sched ? file_sched->stage_rank : NULL;
	if (m->pipe.sched == SK_ZBV || m->pipe.sched == SK_DUALPIPEV) {
		int *v = xalloc((size_t)2 * m->pipe.P * sizeof *v);
		sched_zbv_placement(m->pipe.P, v);
		placement = v;
	}
	if (partition_model(m, &copt->cc, placement) != 0)
		return EXIT_INPUT;
	if ((m->pipe.sched == SK_PIPEDREAM || m->pipe.sched == SK_2BW) && check_async_ties(m))
		return EXIT_INPUT;
	return 0;
}

/* Schedule, lower, verify, simulate (after pipec_partition). */
int pipec_schedule(IrModel *m, const CostOption *copt, Schedule *file_sched, int dump_s,
                   Built *b)
{
	SchedSpec spec = ir_sched_spec(m);
	const char *why = NULL;
	/* zb-auto searches its order for the costs in use */
	if (cost_prepare_spec(&spec, copt, m, &why) != 0) {
		diag_plain("%s", why);
		return EXIT_INPUT;
	}
	Schedule *s = file_sched ? file_sched : sched_generate(&spec, m->pipe.sched_loc);
	if (!s)
		return EXIT_INPUT;
	s->label = m->pipe.sched == SK_ZBAUTO
	           ? xprintf("zb-auto(memory = %g)", m->pipe.zb_memory)
	           : sched_label_of(m->pipe.sched, m->pipe.V, m->pipe.sched_path);
	sched_lower(s, &spec);
	if (dump_s)
		sched_write_csv(stderr, s);
	if (sched_verify(s, spec.kind == SK_FILE ? report_input : pipec_report_internal) != 0)
		return spec.kind == SK_FILE ? EXIT_INPUT : EXIT_INTERNAL;
	/* asynchronous: the emitted step is the same for every step, so a
	 * stream with a first, a middle and a last step covers any run */
	if (s->async && spec.steps < 3) {
		SchedSpec three = spec;
		three.steps = 3;
		if (sched_verify(sched_async(&three), pipec_report_internal) != 0)
			return EXIT_INTERNAL;
	}
	for (int st = 0; st < m->S && st < s->S; st++)
		m->stages[st].rank = s->stage_rank[st];
	if (s->S != m->S) {
		diag_error(m->pipe.sched_loc, "the schedule has %d stages, but the pipeline has %d "
		           "(stages x virtual stages)", s->S, m->S);
		return EXIT_INPUT;
	}

	/* simulate */
	SimCost *cost = cost_from_option(copt, m, s, &why);
	if (!cost) {
		diag_plain("%s", why);
		return EXIT_INPUT;
	}
	b->spec = spec;
	b->s = s;
	b->cost = cost;
	b->r = sched_simulate(s, cost);
	/* generate: every round runs the same program, planned once; so does
	 * every step of an asynchronous schedule */
	b->round = s->kind == SK_GENERATE ? sched_generate_template(s)
	         : s->async ? sched_async_template(s) : s;
	return 0;
}

/* What rank `rank` of round will hold: its memory plan, and a training
 * program's evaluation arena when that is larger (es: sched_eval's, or
 * NULL). */
RankMemory pipec_rank_memory(const IrModel *m, const Schedule *round, const Schedule *es,
                              int rank)
{
	RankMemory r = memplan_memory(m, round, memplan_rank(m, round, rank));
	int64_t eval_arena = es ? memplan_rank(m, es, rank)->arena_bytes : 0;
	if (eval_arena > r.arena)
		r.arena = eval_arena;
	return r;
}

/* The fullest rank's total: the largest peak_memory_predicted of the
 * compiled programs.  Replicas hold the same as replica 0, so only its
 * ranks are planned. */
int64_t pipec_peak_memory(const IrModel *m, const Schedule *round)
{
	const Schedule *es = round->training ? sched_eval(round) : NULL;
	int64_t peak = 0;
	int n = round->nranks < round->P ? round->nranks : round->P;
	if (round->disagg)
		n = round->nranks;
	for (int rank = 0; rank < n; rank++) {
		int64_t t = memplan_total(pipec_rank_memory(m, round, es, rank));
		if (t > peak)
			peak = t;
	}
	return peak;
}

