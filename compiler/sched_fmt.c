/* sched_fmt.c — printing schedules: csv, torch, text Gantt, chrome, svg.
 *
 * csv and torch print the program; text, chrome and svg print a simulated
 * timeline (SimResult).  Formats are specified in docs/schedules.md.
 */
#include "schedule.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The micro-batch as printed: generate prints the group (0..M-1); which
 * round an action belongs to is its place in the rank's program. */
static int mb_out(const Schedule *s, int mb)
{
	return mb >= 0 && s->kind == SK_GENERATE ? SCHED_GROUP(s, mb) : mb;
}

void sched_write_csv(FILE *out, const Schedule *s)
{
	fprintf(out, "rank,index,op,stage,microbatch,peer\n");
	int lists = s->lowered ? s->nranks : s->P;
	for (int k = 0; k < lists; k++)
		for (int i = 0; i < s->rank[k].n; i++) {
			const Action *a = &s->rank[k].a[i];
			fprintf(out, "%d,%d,%s,%d,%d,%d\n", k, i, sched_op_label(s, a), a->stage,
			        mb_out(s, a->mb), a->peer);
		}
}

const char *sched_torch_refusal(const Schedule *s)
{
	if (s->kind == SK_GENERATE)
		return xprintf("--format torch cannot express generate: PyTorch's schedules have "
		               "no token ring from the last stage back to the first");
	if (s->kind == SK_PIPEDREAM || s->kind == SK_2BW)
		return xprintf("--format torch cannot express the asynchronous schedule '%s': "
		               "PyTorch's schedules flush every step", sched_kind_name(s->kind));
	if (s->R > 1)
		return xprintf("--format torch cannot express replicas = %d: PyTorch's action "
		               "CSV describes one pipeline (one row per pipeline rank); run the "
		               "data-parallel copies with DDP/FSDP around it", s->R);
	for (int k = 0; k < s->P; k++)
		for (int i = 0; i < s->rank[k].n; i++)
			if (s->rank[k].a[i].op == OP_R)
				return "--format torch cannot express recompute: PyTorch's action CSV "
				       "has no recompute-forward action (use activation checkpointing "
				       "inside the stage module instead)";
	return NULL;
}

/* PyTorch's compute-only CSV: one row per pipeline rank, cells
 * {stage}{F|B|I|W}{mb}; a split backward's B is PyTorch's I, and a B
 * marked whole with its W (dualpipev's full backwards) PyTorch's B. */
int sched_write_torch(FILE *out, const Schedule *s)
{
	const char *why = sched_torch_refusal(s);
	if (why) {
		diag_plain("%s", why);
		return -1;
	}
	for (int k = 0; k < s->P; k++) {
		int first = 1;
		for (int i = 0; i < s->rank[k].n; i++) {
			const Action *a = &s->rank[k].a[i];
			char c;
			switch (a->op) {
			case OP_F: c = 'F'; break;
			case OP_B: c = s->split && !a->whole ? 'I' : 'B'; break;
			case OP_W: c = 'W'; break;
			default: continue;
			}
			fprintf(out, "%s%d%c%d", first ? "" : ",", a->stage, c, a->mb);
			first = 0;
			if (a->whole)   /* the W that completes this full backward */
				while (++i < s->rank[k].n && s->rank[k].a[i].op != OP_W)
					;
		}
		fputc('\n', out);
	}
	return 0;
}

/* ---- the text Gantt chart ---- */

/* "F3", or with several stages per rank "5F3" (stage 5), as PyTorch names
 * actions. */
static int cell_label(char *buf, size_t size, const Schedule *s, const Action *a)
{
	char c = a->op == OP_OPTIM ? 'O' : sched_op_label(s, a)[0];
	if (s->kind == SK_GENERATE)
		return snprintf(buf, size, "%c%d", c, mb_out(s, a->mb));
	if (a->op == OP_OPTIM)
		return snprintf(buf, size, "O");
	if (s->V > 1)
		return snprintf(buf, size, "%d%c%d", a->stage, c, a->mb);
	return snprintf(buf, size, "%c%d", c, a->mb);
}

static char fill_char(int op)
{
	switch (op) {
	case OP_F: return '-';
	case OP_B: return '=';
	case OP_W: return '~';
	case OP_R: return '+';
	default: return '#';
	}
}

static void human_bytes(char *buf, size_t size, double b)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int u = 0;
	while (b >= 1024 && u < 4) {
		b /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, size, "%.0f B", b);
	else
		snprintf(buf, size, "%.1f %s", b, unit[u]);
}

/* Prints text wrapped at `width` columns, continuation lines indented by
 * `indent`, then a newline.  Lines break after a ", " or "; " where they can
 * (so "V = 2" stays together), else at any space; a word longer than a line
 * stands alone. */
static void wrapped(FILE *out, const char *text, int width, int indent)
{
	int col = 0;
	const char *p = text;
	while (*p) {
		/* the next phrase: up to and including the next ", " or "; " */
		const char *e = p;
		while (*e && !((*e == ',' || *e == ';') && e[1] == ' '))
			e++;
		if (*e)
			e++;
		int len = (int)(e - p);
		if (col > indent && col + len > width) {
			fprintf(out, "\n%*s", indent, "");
			col = indent;
			while (*p == ' ')
				p++, len--;
		}
		if (col + len <= width || col > indent) {
			fprintf(out, "%.*s", len, p);
			col += len;
			p = e;
			continue;
		}
		/* a phrase longer than a line: break it at spaces */
		while (p < e) {
			const char *w = p;
			while (w < e && *w == ' ')
				w++;
			const char *we = w;
			while (we < e && *we != ' ')
				we++;
			int sp = (int)(w - p), wl = (int)(we - w);
			if (col > indent && col + sp + wl > width) {
				fprintf(out, "\n%*s", indent, "");
				col = indent;
				sp = 0;
			}
			fprintf(out, "%*s%.*s", sp, "", wl, w);
			col += sp + wl;
			p = we;
		}
	}
	fputc('\n', out);
}

/* The largest duration of which every compute / OPTIM action's start and
 * end are whole multiples (the shortest such action), or 0 if there is none. */
static double time_quantum(const Schedule *s, const SimResult *r)
{
	double q = INFINITY;
	for (int k = 0; k < s->nranks; k++)
		for (int i = 0; i < s->rank[k].n; i++) {
			double d = r->end[k][i] - r->start[k][i];
			if (d > 0 && d < q && (op_is_compute(s->rank[k].a[i].op)
			                       || s->rank[k].a[i].op == OP_OPTIM))
				q = d;
		}
	if (!(q < INFINITY))
		return 0;
	for (int k = 0; k < s->nranks; k++)
		for (int i = 0; i < s->rank[k].n; i++) {
			double a = r->start[k][i] / q, b = r->end[k][i] / q;
			if (fabs(a - floor(a + 0.5)) > 1e-6 || fabs(b - floor(b + 0.5)) > 1e-6)
				return 0;
		}
	return q;
}

/* Asynchronous schedules: which weights each forward computes with (its
 * R and B use the same, stashed), in runs of micro-batches: "mb 0-3 v0". */
static void write_versions(FILE *out, const Schedule *s, int width)
{
	fprintf(out, "weight versions (updates in the weights each forward computes with; its "
	        "backward uses the same, stashed):\n");
	for (int k = 0; k < s->nranks; k++) {
		char line[4096];
		int len = snprintf(line, sizeof line, "rank %d (%d slot%s):", k, s->nver[k],
		                   s->nver[k] == 1 ? "" : "s");
		const ActList *l = &s->rank[k];
		int from = -1, to = -1, ver = -1, more = 0;
		for (int i = 0; i <= l->n; i++) {
			const Action *a = i < l->n ? &l->a[i] : NULL;
			if (a && a->op != OP_F)
				continue;
			int v = a ? (a->ver > 0 ? a->ver : 0) : -2;
			if (a && v == ver && a->mb == to + 1) {
				to = a->mb;
				continue;
			}
			if (from >= 0) {
				char item[48];
				int n = from == to ? snprintf(item, sizeof item, " mb %d v%d,", from, ver)
				        : snprintf(item, sizeof item, " mb %d-%d v%d,", from, to, ver);
				if (len + n + 4 > width || len + n + 4 >= (int)sizeof line) {
					more = 1;
					break;
				}
				memcpy(line + len, item, (size_t)n + 1);
				len += n;
			}
			if (a) {
				from = to = a->mb;
				ver = v;
			}
		}
		if (len > 0 && line[len - 1] == ',')
			line[--len] = 0;
		fprintf(out, "%s%s\n", line, more ? " ..." : "");
	}
}

void sched_write_text(FILE *out, const Schedule *s, const SimResult *r, const SimCost *c,
                      const double *peak_bytes, const int *peak_mbs, int width)
{
	if (width < 80)
		width = 80;
	if (width > 160)
		width = 160;
	int n = s->nranks;
	char lab[32];
	int lw = snprintf(lab, sizeof lab, "rank %d ", n - 1);
	int cols = width - lw - 1;
	double T = r->step_time > 0 ? r->step_time : 1;
	double scale = cols / T;
	/* When every action starts and ends on a multiple of one quantum (the
	 * uniform cost's 1/V), each quantum gets the same whole number of
	 * columns, so that equal actions are drawn equally wide (unless that
	 * would leave more than a quarter of the width unused). */
	double q = time_quantum(s, r);
	if (q > 0) {
		long nq = lround(T / q);
		if (nq >= 1 && nq <= cols && (cols / nq) * nq * 4 >= 3 * (long)cols) {
			int per = (int)(cols / nq);
			cols = per * (int)nq;
			scale = per / q;
		}
	}
	char *row = xalloc((size_t)cols + 1);

	if (s->disagg)
		wrapped(out, xprintf("%s: P = %d, prefill on ranks 0..%d, decode on ranks %d..%d, "
		                     "S = %d stage%s, M = %d groups", s->label ? s->label
		                     : sched_kind_name(s->kind), s->P, s->P - 1, s->P, n - 1, s->S,
		                     s->S == 1 ? "" : "s", s->M), width, 4);
	else
		wrapped(out, xprintf("%s: P = %d x %d replica%s = %d rank%s, S = %d stage%s (V = %d), "
		                     "M = %d, %s", s->label ? s->label : sched_kind_name(s->kind), s->P,
		                     s->R, s->R == 1 ? "" : "s", n, n == 1 ? "" : "s", s->S,
		                     s->S == 1 ? "" : "s", s->V, s->M, !s->training ? "forward only"
		                     : s->split ? "training, split backward" : "training"), width, 4);
	/* time ruler: ticks at round times, at least 8 columns apart */
	double tick = pow(10, floor(log10(8 / scale)));
	while (tick * scale < 8)
		tick *= tick * scale * 2 >= 8 ? 2 : tick * scale * 5 >= 8 ? 5 : 10;
	memset(row, ' ', (size_t)cols);
	row[cols] = 0;
	char *ruler = xalloc((size_t)cols + 1);
	memset(ruler, '-', (size_t)cols);
	for (int j = 0;; j++) {
		int x = (int)floor(j * tick * scale + 0.5);
		if (x >= cols)
			break;
		char num[32];
		int len = snprintf(num, sizeof num, "%g", j * tick);
		if (x + len <= cols)
			memcpy(row + x, num, (size_t)len);
		ruler[x] = '|';
	}
	fprintf(out, "%-*s %s\n", lw, "time", row);
	fprintf(out, "%*s %s\n", lw, "", ruler);

	for (int k = 0; k < n; k++) {
		memset(row, '.', (size_t)cols);
		const ActList *l = &s->rank[k];
		for (int i = 0; i < l->n; i++) {
			const Action *a = &l->a[i];
			if (!op_is_compute(a->op) && a->op != OP_OPTIM)
				continue;
			double t0 = r->start[k][i], t1 = r->end[k][i];
			if (t1 <= t0)
				continue;
			int c0 = (int)floor(t0 * scale + 0.5), c1 = (int)floor(t1 * scale + 0.5);
			if (c1 <= c0)
				c1 = c0 + 1;
			if (c0 >= cols)
				c0 = cols - 1;
			if (c1 > cols)
				c1 = cols;
			char label[32];
			int len = cell_label(label, sizeof label, s, a);
			int w = c1 - c0;
			/* a label needs one fill column after it, or cells run together */
			if (len >= w && s->V > 1 && a->op != OP_OPTIM)   /* drop the stage */
				len = snprintf(label, sizeof label, "%c%d", op_name(a->op)[0], a->mb);
			char opch = a->op == OP_OPTIM ? 'O' : sched_op_label(s, a)[0];
			for (int x = 0; x < w; x++)
				row[c0 + x] = len < w || (len == w && a->op == OP_OPTIM)
				            ? (x < len ? label[x] : fill_char(a->op))
				            : x == 0 ? opch : fill_char(a->op);
		}
		snprintf(lab, sizeof lab, "rank %d", k);
		fprintf(out, "%-*s %s\n", lw, lab, row);
	}
	int has[OP_COUNT] = { 0 };
	for (int k = 0; k < n; k++)
		for (int i = 0; i < s->rank[k].n; i++)
			has[s->rank[k].a[i].op] = 1;
	const char *legend = s->kind == SK_GENERATE
		? xprintf("legend: F<group> prefill (the group's prompts), D<group> decode (one "
		          "token each), %d rounds; '.' idle; 1 column = %.3g %s; narrow cells "
		          "show less of their label", s->ntok, 1 / scale,
		          r->us_per_unit == 1000 ? "units" : "s")
		: xprintf("legend: %sF<mb> forward%s%s%s%s, '.' idle; 1 column = "
	                             "%.3g %s; narrow cells show less of their label",
	                             s->V > 1 ? "<stage>" : "",
	                             !has[OP_B] ? "" : s->split ? ", B<mb> backward (input "
	                             "gradient)" : ", B<mb> backward",
	                             has[OP_W] ? ", W<mb> weight gradient" : "",
	                             has[OP_R] ? ", R<mb> recompute" : "",
	                             has[OP_OPTIM] ? ", O optimizer" : "", 1 / scale,
	                             r->us_per_unit == 1000 ? "units" : "s");
	wrapped(out, legend, width, 8);
	fprintf(out, "# bubble_fraction: idle time / (ranks x step_time): the share of all\n"
	        "#   rank-time spent waiting, 0..1\n"
	        "# bubble_overhead: (step_time - ideal) / ideal, ideal = the busiest rank's\n"
	        "#   compute time: how much longer the step is than its compute alone\n"
	        "# bubble_rate: (S - C) / S of the rank with the longest span S (first\n"
	        "#   compute's start to last compute's end), C its compute time\n");
	if (s->async) {
		if (s->run_steps > s->ntok)
			fprintf(out, "# asynchronous: the run is one stream of %d steps, shown and "
			        "simulated: its first %d\n#   (every later step runs the same "
			        "program); step_time is their time over %d\n", s->run_steps, s->ntok,
			        s->ntok);
		else
			fprintf(out, "# asynchronous: the run is one stream of %d steps; step_time is "
			        "its time over the steps\n", s->ntok);
		fprintf(out, "run_time: %.9g\n", r->step_time);
		fprintf(out, "step_time: %.9g\n", r->step_time / s->ntok);
	} else {
		fprintf(out, "step_time: %.9g\n", r->step_time);
	}
	fprintf(out, "bubble_fraction: %.9g\n", r->bubble_fraction);
	fprintf(out, "bubble_overhead: %.9g\n", r->bubble_overhead);
	fprintf(out, "bubble_rate: %.9g\n", r->bubble_rate);
	if (s->kind == SK_GENERATE) {
		/* the run's own numbers, as a generating program prints them */
		double ttft = 0;
		for (int k = 0; k < n; k++)
			for (int i = 0; i < s->rank[k].n; i++) {
				const Action *a = &s->rank[k].a[i];
				if (a->op == OP_F && a->stage == s->S - 1 && a->mb < s->M
				    && r->end[k][i] > ttft)
					ttft = r->end[k][i];
			}
		fprintf(out, "time_to_first_token: %.9g\n", ttft);
		fprintf(out, "time_per_output_token: %.9g\n",
		        s->ntok > 1 ? (r->step_time - ttft) / (s->ntok - 1) : 0.0);
		fprintf(out, "# time to first token: until the last stage has every group's first "
		        "token; per output token:\n#   the rest of the run over the other rounds\n");
	}
	wrapped(out, xprintf("cost: %s", c && c->describe ? c->describe : c && c->name ? c->name
	                     : "?"), width, 6);
	for (int k = 0; k < n; k++) {
		fprintf(out, "rank %d: idle %.6g", k, r->idle[k]);
		if (peak_mbs) {
			fprintf(out, ", peak %d micro-batch%s", peak_mbs[k],
			        peak_mbs[k] == 1 ? "" : "es");
			if (peak_bytes) {
				char b[32];
				human_bytes(b, sizeof b, peak_bytes[k]);
				fprintf(out, " (%s)", b);
			}
		}
		fputc('\n', out);
	}
	if (s->async)
		write_versions(out, s, width);
}

/* The updates in the weights an action computes with (asynchronous). */
static int updates_of(const Action *a)
{
	return a->ver > 0 ? a->ver : 0;
}

/* ---- Chrome trace-event JSON ---- */

void sched_write_chrome(FILE *out, const Schedule *s, const SimResult *r)
{
	double us = r->us_per_unit > 0 ? r->us_per_unit : 1000;
	fprintf(out, "{\"traceEvents\":[\n");
	int first = 1;
	for (int k = 0; k < s->nranks; k++) {
		fprintf(out, "%s{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%d,"
		        "\"args\":{\"name\":\"rank %d\"}},\n", first ? "" : ",\n", k, k);
		fprintf(out, "{\"name\":\"process_sort_index\",\"ph\":\"M\",\"pid\":%d,"
		        "\"args\":{\"sort_index\":%d}},\n", k, k);
		fprintf(out, "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":0,"
		        "\"args\":{\"name\":\"compute\"}},\n", k);
		fprintf(out, "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":1,"
		        "\"args\":{\"name\":\"communication\"}}", k);
		first = 0;
		const ActList *l = &s->rank[k];
		for (int i = 0; i < l->n; i++) {
			const Action *a = &l->a[i];
			char name[48];
			if (op_is_compute(a->op))
				cell_label(name, sizeof name, s, a);
			else if (a->op == OP_OPTIM)
				snprintf(name, sizeof name, "OPTIM");
			else if (a->op == OP_ALLREDUCE)
				snprintf(name, sizeof name, "ALLREDUCE %d", a->stage);
			else
				snprintf(name, sizeof name, "%s %d", op_name(a->op), mb_out(s, a->mb));
			int tid = op_is_compute(a->op) || a->op == OP_OPTIM ? 0 : 1;
			/* start and end rounded to the printed nanosecond, the duration
			 * their difference: a slice ends where the next one starts,
			 * never after */
			double t0 = round(r->start[k][i] * us * 1000) / 1000;
			double t1 = round(r->end[k][i] * us * 1000) / 1000;
			const char *extra = s->kind == SK_GENERATE && a->mb >= 0
			        ? xprintf(",\"round\":%d", SCHED_ROUND(s, a->mb)) : "";
			if (s->async && (a->op == OP_F || a->op == OP_B || a->op == OP_R))
				extra = xprintf(",\"version\":%d,\"slot\":%d", updates_of(a),
				                sched_async_slot(s, k % s->P, a->ver));
			else if (s->async && a->op == OP_OPTIM)
				extra = xprintf(",\"writes_version\":%d,\"slot\":%d", a->ver,
				                sched_async_slot(s, k % s->P, a->ver));
			fprintf(out, ",\n{\"name\":\"%s\",\"cat\":\"%s\",\"ph\":\"X\",\"pid\":%d,"
			        "\"tid\":%d,\"ts\":%.3f,\"dur\":%.3f,\"args\":{\"op\":\"%s\","
			        "\"stage\":%d,\"microbatch\":%d%s}}",
			        name, op_name(a->op), k, tid, t0, t1 - t0, sched_op_label(s, a),
			        a->stage, mb_out(s, a->mb), extra);
		}
	}
	fprintf(out, "\n],\"displayTimeUnit\":\"ms\"}\n");
}

/* ---- SVG ---- */

static const char *op_color(int op)
{
	switch (op) {
	case OP_F: return "#4e79a7";
	case OP_B: return "#59a14f";
	case OP_W: return "#f28e2b";
	case OP_R: return "#b07aa1";
	case OP_OPTIM: return "#9c755f";
	case OP_ALLREDUCE: return "#e15759";
	default: return "#bab0ac";
	}
}

/* The op's colour, lightened for a rank's later chunks (V > 1). */
static const char *chunk_color(char *buf, size_t size, int op, int chunk, int V)
{
	const char *c = op_color(op);
	if (V <= 1 || chunk <= 0)
		return c;
	unsigned rgb = (unsigned)strtoul(c + 1, NULL, 16);
	double t = 0.55 * chunk / (V - 1 > 0 ? V - 1 : 1);
	unsigned out = 0;
	for (int sh = 16; sh >= 0; sh -= 8) {
		double v = (rgb >> sh) & 0xff;
		out |= (unsigned)(v + (255 - v) * t + 0.5) << sh;
	}
	snprintf(buf, size, "#%06x", out);
	return buf;
}

static void xml_text(FILE *out, const char *s)
{
	for (; *s; s++)
		switch (*s) {
		case '<': fputs("&lt;", out); break;
		case '>': fputs("&gt;", out); break;
		case '&': fputs("&amp;", out); break;
		case '"': fputs("&quot;", out); break;
		default: fputc(*s, out);
		}
}

void sched_write_svg(FILE *out, const Schedule *s, const SimResult *r, const char *title)
{
	int n = s->nranks;
	double left = 70, right = 20, top = 64, rowh = 22, gap = 4;
	double plotw = 1000;
	double W = left + plotw + right;
	double H = top + n * (rowh + gap) + 50;
	double T = r->step_time > 0 ? r->step_time : 1;
	double sx = plotw / T;
	fprintf(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
	        "viewBox=\"0 0 %.0f %.0f\" font-family=\"Helvetica, Arial, sans-serif\">\n",
	        W, H, W, H);
	fprintf(out, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
	fprintf(out, "<text x=\"%.0f\" y=\"22\" font-size=\"15\" font-weight=\"bold\">", left);
	xml_text(out, title ? title : sched_kind_name(s->kind));
	fprintf(out, "</text>\n");
	/* legend */
	static const int legend_ops[] = { OP_F, OP_B, OP_W, OP_R, OP_ALLREDUCE, OP_OPTIM };
	int has[OP_COUNT] = { 0 };
	for (int k = 0; k < n; k++)
		for (int i = 0; i < s->rank[k].n; i++)
			has[s->rank[k].a[i].op] = 1;
	double lx = left;
	for (size_t j = 0; j < sizeof legend_ops / sizeof *legend_ops; j++) {
		int op = legend_ops[j];
		if (!has[op])
			continue;
		const char *word = op == OP_F ? "forward" : op == OP_B
			? (s->split ? "backward (input)" : "backward") : op == OP_W ? "weight gradient"
			: op == OP_R ? "recompute" : op == OP_ALLREDUCE ? "all-reduce" : "optimizer";
		fprintf(out, "<rect x=\"%.0f\" y=\"32\" width=\"12\" height=\"12\" fill=\"%s\"/>"
		        "<text x=\"%.0f\" y=\"42\" font-size=\"11\">%s</text>\n",
		        lx, op_color(op), lx + 16, word);
		lx += 30 + 6.5 * (double)strlen(word);
	}
	fprintf(out, "<text x=\"%.0f\" y=\"42\" font-size=\"11\" fill=\"#555\">labels: "
	        "micro-batch%s; bubble %.1f%%, step %.4g</text>\n", lx + 10,
	        s->V > 1 ? " (stage:mb where room; lighter = later chunk)" : "",
	        100 * r->bubble_fraction, r->step_time);
	/* Label an op's cells only if all of them have room (no ragged labels):
	 * 2 = stage:mb, 1 = mb, 0 = none. */
	int labels[OP_COUNT];
	{
		double minw[OP_COUNT];
		for (int op = 0; op < OP_COUNT; op++)
			minw[op] = INFINITY;
		for (int k = 0; k < n; k++)
			for (int i = 0; i < s->rank[k].n; i++) {
				double w = (r->end[k][i] - r->start[k][i]) * sx;
				int op = s->rank[k].a[i].op;
				if (w > 0 && w < minw[op])
					minw[op] = w;
			}
		char buf[32];
		int mbw = snprintf(buf, sizeof buf, "%d", s->M - 1);
		int stw = snprintf(buf, sizeof buf, "%d:", s->S - 1) + mbw;
		for (int op = 0; op < OP_COUNT; op++)
			labels[op] = s->V > 1 && minw[op] >= 6.5 * stw + 2 ? 2
				: minw[op] >= 6.5 * mbw + 2 ? 1 : 0;
	}
	for (int k = 0; k < n; k++) {
		double y = top + k * (rowh + gap);
		fprintf(out, "<text x=\"%.0f\" y=\"%.1f\" font-size=\"12\" text-anchor=\"end\">"
		        "rank %d</text>\n", left - 8, y + rowh * 0.7, k);
		fprintf(out, "<rect x=\"%.0f\" y=\"%.1f\" width=\"%.1f\" height=\"%.0f\" "
		        "fill=\"#f2f2f2\"/>\n", left, y, plotw, rowh);
		const ActList *l = &s->rank[k];
		for (int i = 0; i < l->n; i++) {
			const Action *a = &l->a[i];
			if (!op_is_compute(a->op) && a->op != OP_OPTIM && a->op != OP_ALLREDUCE)
				continue;
			double t0 = r->start[k][i], t1 = r->end[k][i];
			if (t1 <= t0)
				continue;
			double x = left + t0 * sx, w = (t1 - t0) * sx;
			char col[16];
			int chunk = a->stage >= 0 ? a->stage / s->P : 0, shades = s->V;
			if (s->async && (a->op == OP_F || a->op == OP_B || a->op == OP_R)) {
				/* a version's shade: the forward and backward that share
				 * weights share a shade */
				shades = s->nver[k % s->P] > 1 ? s->nver[k % s->P] : 1;
				chunk = sched_async_slot(s, k % s->P, a->ver);
			}
			fprintf(out, "<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%.0f\" "
			        "fill=\"%s\" stroke=\"white\" stroke-width=\"0.5\"><title>%s stage %d "
			        "mb %d [%.4g, %.4g]</title></rect>\n", x, y, w, rowh,
			        s->kind == SK_GENERATE && a->op == OP_F && a->mb >= s->M ? "#76b7b2"
			        : chunk_color(col, sizeof col, a->op, chunk, shades),
			        sched_op_label(s, a), a->stage, mb_out(s, a->mb), t0, t1);
			if (a->mb >= 0 && labels[a->op]) {
				char lab[32];
				if (labels[a->op] == 2)
					snprintf(lab, sizeof lab, "%d:%d", a->stage, a->mb);
				else
					snprintf(lab, sizeof lab, "%d", mb_out(s, a->mb));
				fprintf(out, "<text x=\"%.2f\" y=\"%.1f\" font-size=\"10\" "
					        "fill=\"white\" text-anchor=\"middle\">%s</text>\n",
					        x + w / 2, y + rowh * 0.68, lab);
			}
		}
	}
	/* time axis */
	double ay = top + n * (rowh + gap) + 6;
	fprintf(out, "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#333\"/>\n",
	        left, ay, left + plotw, ay);
	double tick = pow(10, floor(log10(T)));    /* 1, 2 or 5 x 10^k, 5..12 ticks */
	while (T / tick < 5)
		tick /= T / (tick / 2) >= 5 ? 2 : T / (tick / 5) >= 5 ? 5 : 10;
	for (double t = 0; t <= T + 1e-9; t += tick) {
		double x = left + t * sx;
		fprintf(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>"
		        "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"middle\">%.4g"
		        "</text>\n", x, ay, x, ay + 4, x, ay + 16, t);
	}
	fprintf(out, "<text x=\"%.0f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"middle\">"
	        "time (%s)</text>\n", left + plotw / 2, ay + 34,
	        r->us_per_unit == 1000 ? "units" : "s");
	fprintf(out, "</svg>\n");
}
