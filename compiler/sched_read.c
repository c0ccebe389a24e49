/* sched_read.c — `schedule = file("order.csv")`: custom per-rank orders.
 *
 * Two forms are read, told apart by the first line:
 *   pipec's CSV      header `rank,index,op,stage,microbatch,peer`, one action
 *                    a row (what `--format csv` writes).  With communication
 *                    or optimizer rows (anything but F, B, W) the program is
 *                    taken as it is and only verified; with compute rows only
 *                    (peer -1) the lowering adds the rest, as for a built-in
 *                    schedule.  Rows may come in any order: `index` orders
 *                    each rank's actions and must count 0..n-1.  An op this
 *                    version does not know but that is spelled like one
 *                    (capitals, digits, '_') is skipped with a warning, as
 *                    docs/schedules.md asks of readers.
 *   PyTorch's CSV    torch.distributed.pipelining's compute-only action
 *                    list: no header, row r is pipeline rank r, cells
 *                    `{stage}{type}{microbatch}` with type F, B (full
 *                    backward), I and W (input and weight halves of a split
 *                    backward); empty cells (PyTorch's idle slots) are
 *                    skipped.  In a file with I cells, a B cell is a full
 *                    backward (PyTorch's DualPipeV mixes the two): its
 *                    halves back to back, B marked whole and then W.  In a
 *                    file with W but no I cells, B cells are input halves
 *                    (older PyTorch wrote them so).
 * Lines starting with '#' and blank lines at the end are ignored.
 *
 * Which rank holds which stage is read from the rows (the rank running a
 * stage's compute); a stage on two ranks is an error.  S is the largest
 * stage + 1 and every rank must hold S / P of them, V = S / P.  The file's
 * micro-batches must be 0..M-1 with M = `microbatches`, and its number of
 * (pipeline) ranks must be `stages`.  A lowered pipec CSV holds every
 * replica's program (P * replicas ranks); a compute-only file holds the P
 * pipeline ranks and the lowering copies them onto each replica.
 *
 * Every error names the file, line and column with the line and a caret.
 */
#include "schedule.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const char header[] = "rank,index,op,stage,microbatch,peer";

typedef struct Row {
	int rank, index, op, stage, mb, peer;   /* op -1: an unknown op, skipped */
	uint32_t off;                           /* where the row's op is */
} Row;

typedef struct Rd {
	const SrcFile *src;
	const SchedSpec *spec;
	int nerr;
	VEC(Row) rows;
	int warned_comm;
} Rd;

/* An error at [off, end); with end <= off, at the field or cell starting at
 * off (up to the next ',' or the end of the line). */
PRINTF_LIKE(4, 5)
static void err(Rd *rd, uint32_t off, uint32_t end, const char *fmt, ...)
{
	va_list ap;
	if (end <= off) {
		const char *t = rd->src->text;
		end = off;
		while (end < rd->src->len && t[end] != ',' && t[end] != '\n' && t[end] != '\r')
			end++;
	}
	va_start(ap, fmt);
	diag_verror((Loc){ rd->src, off, end > off ? end : off + 1 }, fmt, ap);
	va_end(ap);
	rd->nerr++;
}

static int line_of(const Rd *rd, uint32_t off)
{
	int line, col;
	loc_linecol((Loc){ rd->src, off, off }, &line, &col);
	return line;
}

/* A field [*b, *e) of a line, spaces trimmed. */
static void trim(const char *t, uint32_t *b, uint32_t *e)
{
	while (*b < *e && (t[*b] == ' ' || t[*b] == '\t'))
		(*b)++;
	while (*e > *b && (t[*e - 1] == ' ' || t[*e - 1] == '\t' || t[*e - 1] == '\r'))
		(*e)--;
}

/* Parses an integer field; -2 (with a message) when malformed. */
static int parse_int(Rd *rd, uint32_t b, uint32_t e, const char *what, int *out)
{
	const char *t = rd->src->text;
	uint32_t i = b;
	int neg = 0;
	long long v = 0;
	if (i < e && t[i] == '-') {
		neg = 1;
		i++;
	}
	if (i == e) {
		err(rd, b, e, "%s is empty; expected a number", what);
		return -2;
	}
	for (; i < e; i++) {
		if (!isdigit((unsigned char)t[i])) {
			err(rd, b, e, "malformed %s '%.*s'; expected a whole number", what,
			    (int)(e - b), t + b);
			return -2;
		}
		v = v * 10 + (t[i] - '0');
		if (v > 100000000) {
			err(rd, b, e, "%s '%.*s' is too large", what, (int)(e - b), t + b);
			return -2;
		}
	}
	*out = (int)(neg ? -v : v);
	return 0;
}

static int is_op_spelling(const char *s)
{
	if (!isupper((unsigned char)s[0]))
		return 0;
	for (; *s; s++)
		if (!isupper((unsigned char)*s) && !isdigit((unsigned char)*s) && *s != '_')
			return 0;
	return 1;
}

static const char *suggest_op(const char *s)
{
	const char *names[OP_COUNT];
	char up[64];
	size_t i;
	for (int k = 0; k < OP_COUNT; k++)
		names[k] = op_name(k);
	for (i = 0; s[i] && i + 1 < sizeof up; i++)
		up[i] = (char)toupper((unsigned char)s[i]);
	up[i] = 0;
	return closest_name(up, names, OP_COUNT);
}

/* One row of pipec's CSV, [b, e) without the newline. */
static void read_pipec_row(Rd *rd, uint32_t b, uint32_t e)
{
	const char *t = rd->src->text;
	static const char *const col[6] = { "rank", "index", "op", "stage", "microbatch", "peer" };
	uint32_t fb[6], fe[6];
	int nf = 0;
	uint32_t p = b;
	for (;;) {
		uint32_t q = p;
		while (q < e && t[q] != ',')
			q++;
		if (nf < 6) {
			fb[nf] = p;
			fe[nf] = q;
			trim(t, &fb[nf], &fe[nf]);
		}
		nf++;
		if (q >= e)
			break;
		p = q + 1;
	}
	if (nf != 6) {
		err(rd, b, e, "expected 6 fields (%s), found %d", header, nf);
		return;
	}
	Row r = { .off = fb[2] };
	int *dst[6] = { &r.rank, &r.index, NULL, &r.stage, &r.mb, &r.peer };
	int bad = 0;
	for (int f = 0; f < 6; f++) {
		if (f == 2)
			continue;
		if (parse_int(rd, fb[f], fe[f], col[f], dst[f]))
			bad = 1;
		else if (*dst[f] < (f <= 1 ? 0 : -1)) {
			err(rd, fb[f], fe[f], "%s %d is out of range (it is %s)", col[f], *dst[f],
			    f <= 1 ? "0 or more" : "-1 or more");
			bad = 1;
		}
	}
	char *name = xstrndup(t + fb[2], fe[2] - fb[2]);
	r.op = op_from_name(name);
	if (r.op < 0) {
		const char *s = suggest_op(name);
		if (!*name) {
			err(rd, fb[2], fe[2], "the op is empty");
			bad = 1;
		} else if (is_op_spelling(name)) {
			Loc l = { rd->src, fb[2], fe[2] };
			if (s)
				diag_warning(l, "unknown op '%s' skipped (did you mean '%s'?)", name, s);
			else
				diag_warning(l, "unknown op '%s' skipped (readers skip ops they "
				             "do not know)", name);
		} else if (s) {
			err(rd, fb[2], fe[2], "unknown op '%s'; did you mean '%s'?", name, s);
			bad = 1;
		} else {
			err(rd, fb[2], fe[2], "unknown op '%s' (ops: F, B, W, R, SEND_F, RECV_F, "
			    "SEND_B, RECV_B, ALLREDUCE, OPTIM)", name);
			bad = 1;
		}
	}
	if (!bad)
		VEC_PUSH(rd->rows, r);
}

/* One row of PyTorch's CSV: pipeline rank `rank`. */
static void read_torch_row(Rd *rd, uint32_t b, uint32_t e, int rank, int *index)
{
	const char *t = rd->src->text;
	uint32_t p = b;
	for (;;) {
		uint32_t q = p;
		while (q < e && t[q] != ',')
			q++;
		uint32_t cb = p, ce = q;
		trim(t, &cb, &ce);
		if (cb < ce) {
			uint32_t i = cb;
			while (i < ce && isdigit((unsigned char)t[i]))
				i++;
			uint32_t tb = i;
			while (i < ce && (isupper((unsigned char)t[i]) || t[i] == '_'))
				i++;
			uint32_t te = i;
			while (i < ce && isdigit((unsigned char)t[i]))
				i++;
			int stage = 0, mb = 0;
			if (tb == cb || te == tb || i != ce) {
				err(rd, cb, ce, "malformed action '%.*s': expected "
				    "{stage}{F|B|I|W}{microbatch}, e.g. 0F1", (int)(ce - cb), t + cb);
			} else {
				char *type = xstrndup(t + tb, te - tb);
				int op = !strcmp(type, "F") ? OP_F : !strcmp(type, "B") ? OP_B
					: !strcmp(type, "I") ? OP_B : !strcmp(type, "W") ? OP_W : -1;
				if (op < 0) {
					static const char *const comm[] = { "SEND_F", "RECV_F", "SEND_B",
						"RECV_B", "UNSHARD", "RESHARD", "REDUCE_GRAD" };
					int known = 0;
					for (size_t c = 0; c < sizeof comm / sizeof *comm; c++)
						known |= !strcmp(type, comm[c]);
					if (known) {
						if (!rd->warned_comm++)
							diag_warning((Loc){ rd->src, cb, ce }, "PyTorch's "
							             "communication actions are skipped; pipec "
							             "adds its own");
					} else {
						err(rd, tb, te, "unknown action type '%s' in '%.*s' "
						    "(PyTorch's compute actions are F, B, I and W)",
						    type, (int)(ce - cb), t + cb);
					}
				} else if (te == i) {
					err(rd, cb, ce, "action '%.*s' has no micro-batch: expected "
					    "{stage}{F|B|I|W}{microbatch}, e.g. 0F1",
					    (int)(ce - cb), t + cb);
				} else if (!parse_int(rd, cb, tb, "stage", &stage)
				           && !parse_int(rd, te, ce, "micro-batch", &mb)) {
					Row r = { rank, (*index)++, op, stage, mb, -1, cb };
					if (!strcmp(type, "I"))
						r.peer = -2;    /* marks an I cell: the file splits */
					VEC_PUSH(rd->rows, r);
				}
			}
		}
		if (q >= e)
			break;
		p = q + 1;
	}
}

/* The checks and the Schedule, once every row parsed. */
static Schedule *build(Rd *rd, int nranks, int torch)
{
	const SchedSpec *spec = rd->spec;
	Row *rows = rd->rows.v;
	int n = rd->rows.n;
	Loc top = { rd->src, 0, 0 };
	int lowered = 0, has_b = 0, has_w = 0, has_i = 0, maxst = -1, maxmb = -1;
	int maxmb_row = -1;
	for (int i = 0; i < n; i++) {
		Row *r = &rows[i];
		if (r->op < 0)
			continue;
		if (r->op != OP_F && r->op != OP_B && r->op != OP_W)
			lowered = 1;
		if (r->op == OP_B)
			has_b = 1;
		if (r->op == OP_W || r->peer == -2)
			has_w = 1;
		if (r->peer == -2)
			has_i = 1;
		if (r->op == OP_F || r->op == OP_B || r->op == OP_W || r->op == OP_R) {
			if (r->stage < 0)
				err(rd, r->off, r->off, "%s needs a stage (0 or more), not %d",
				    op_name(r->op), r->stage);
			if (r->mb < 0)
				err(rd, r->off, r->off, "%s needs a micro-batch (0 or more), not %d",
				    op_name(r->op), r->mb);
			if (r->stage > maxst)
				maxst = r->stage;
			if (r->mb > maxmb) {
				maxmb = r->mb;
				maxmb_row = i;
			}
		}
	}
	if (rd->nerr)
		return NULL;
	if (maxst < 0) {
		diag_error(top, "the schedule file has no compute actions (F, B, W)");
		return NULL;
	}
	int R = spec->R > 0 ? spec->R : 1, P;
	if (lowered) {
		if (nranks % R) {
			diag_error(top, "the file has %d ranks, which is not a multiple of "
			           "replicas = %d", nranks, R);
			return NULL;
		}
		P = nranks / R;
	} else if (R > 1 && spec->P > 0 && nranks == spec->P * R) {
		/* every replica's compute order written out: they must agree */
		P = spec->P;
		for (int i = 0, j; i < n; i = j) {
			for (j = i; j < n && rows[j].rank == rows[i].rank; j++)
				;
			if (rows[i].rank < P)
				continue;
			int base = 0;
			while (base < n && rows[base].rank != rows[i].rank % P)
				base++;
			for (int q = 0; q < j - i; q++) {
				Row *b = &rows[i + q], *a = base + q < n ? &rows[base + q] : NULL;
				if (!a || a->rank != b->rank % P || a->op != b->op
				    || a->stage != b->stage || a->mb != b->mb) {
					err(rd, b->off, b->off, "rank %d (replica %d) runs another order "
					    "than rank %d: every replica runs the same program",
					    b->rank, b->rank / P, b->rank % P);
					return NULL;
				}
			}
			if (base + (j - i) < n && rows[base + (j - i)].rank == rows[i].rank % P) {
				err(rd, rows[j - 1].off, rows[j - 1].off, "rank %d (replica %d) has "
				    "fewer actions than rank %d", rows[i].rank, rows[i].rank / P,
				    rows[i].rank % P);
				return NULL;
			}
		}
		int m = 0;
		for (int i = 0; i < n; i++)
			if (rows[i].rank < P)
				rows[m++] = rows[i];
		rd->rows.n = n = m;
		nranks = P;
	} else {
		P = nranks;
	}
	if (spec->P > 0 && P != spec->P) {
		diag_error(top, "the file has %d pipeline rank%s%s, but the pipeline has "
		           "stages = %d", P, P == 1 ? "" : "s", lowered && R > 1 ? " per replica"
		           : "", spec->P);
		return NULL;
	}
	int M = spec->M;
	if (maxmb >= M) {
		Row *r = &rows[maxmb_row];
		err(rd, r->off, r->off, "micro-batch %d is out of range: microbatches = %d "
		    "(0..%d)", r->mb, M, M - 1);
		return NULL;
	}
	if (maxmb + 1 < M) {
		diag_error(top, "the file has %d micro-batch%s (0..%d), but microbatches = %d",
		           maxmb + 1, maxmb ? "es" : "", maxmb, M);
		return NULL;
	}
	if (spec->training && !has_b) {
		diag_error(top, "the pipeline trains (it has an optimizer), but the file has "
		           "no backward (B) actions");
		return NULL;
	}
	if (!spec->training && (has_b || has_w)) {
		diag_error(top, "the file has backward actions, but the pipeline has no "
		           "optimizer (it only runs forward)");
		return NULL;
	}

	/* Placement: the rank running a stage's compute. */
	int S = maxst + 1;
	int *where = xalloc((size_t)S * sizeof *where);
	int *where_row = xalloc((size_t)S * sizeof *where_row);
	for (int st = 0; st < S; st++)
		where[st] = -1;
	for (int i = 0; i < n; i++) {
		Row *r = &rows[i];
		if (r->op != OP_F && r->op != OP_B && r->op != OP_W && r->op != OP_R)
			continue;
		int p = r->rank % P;
		if (where[r->stage] < 0) {
			where[r->stage] = p;
			where_row[r->stage] = i;
		} else if (where[r->stage] != p) {
			err(rd, r->off, r->off, "stage %d runs on rank %d here, but on rank %d at "
			    "line %d: a stage lives on one rank", r->stage, r->rank,
			    rows[where_row[r->stage]].rank, line_of(rd, rows[where_row[r->stage]].off));
			return NULL;
		}
	}
	for (int st = 0; st < S; st++)
		if (where[st] < 0) {
			diag_error(top, "stage %d never runs (the file's stages are 0..%d)",
			           st, S - 1);
			return NULL;
		}
	if (S % P) {
		diag_error(top, "the file has %d stages on %d ranks: every rank must hold "
		           "the same number of stages", S, P);
		return NULL;
	}
	int V = S / P;
	int *held = xalloc((size_t)P * sizeof *held);
	for (int st = 0; st < S; st++)
		held[where[st]]++;
	for (int p = 0; p < P; p++)
		if (held[p] != V) {
			diag_error(top, "rank %d holds %d stage%s, but every rank must hold "
			           "S / P = %d of the %d stages", p, held[p], held[p] == 1 ? "" : "s",
			           V, S);
			return NULL;
		}

	/* Nothing twice. */
	int nk = (lowered ? R : 1) * S * M;
	int *first[3];
	for (int o = 0; o < 3; o++) {
		first[o] = xalloc((size_t)nk * sizeof *first[o]);
		for (int k = 0; k < nk; k++)
			first[o][k] = -1;
	}
	for (int i = 0; i < n; i++) {
		Row *r = &rows[i];
		if (r->op != OP_F && r->op != OP_B && r->op != OP_W)
			continue;
		if (!lowered && r->peer >= 0) {
			err(rd, r->off, r->off, "%s takes no peer (peer -1), but peer is %d",
			    op_name(r->op), r->peer);
			continue;
		}
		int k = ((r->rank / P) * S + r->stage) * M + r->mb;
		int *f = &first[r->op][k];
		if (*f >= 0) {
			int line, col;
			loc_linecol((Loc){ rd->src, rows[*f].off, rows[*f].off }, &line, &col);
			char desc[64];
			Action a = { r->op, r->stage, r->mb, -1, 0, 0 };
			err(rd, r->off, r->off, "rank %d, action %d (%s): micro-batch %d of stage "
			    "%d runs %s twice (first at line %d%s)", r->rank, r->index,
			    sched_action_desc(desc, sizeof desc, &a), r->mb, r->stage,
			    torch && r->op == OP_B && has_w && (r->peer == -2 || !has_i) ? "I"
			    : op_name(r->op), line,
			    torch ? xprintf(", column %d", col) : "");
		} else
			*f = i;
	}
	if (rd->nerr)
		return NULL;

	Schedule *s = sched_new(SK_FILE, P, V, M, R, spec->training, has_w);
	for (int st = 0; st < S; st++)
		s->stage_rank[st] = where[st];
	s->lowered = lowered;
	s->src = rd->src;
	s->src_off = xalloc((size_t)s->nranks * sizeof *s->src_off);
	int lists = lowered ? nranks : P;
	int *cnt = xalloc((size_t)lists * sizeof *cnt);
	/* a full backward beside I cells: B marked whole, then its W */
#define WHOLE_B(r) (torch && has_i && (r)->op == OP_B && (r)->peer != -2)
	for (int i = 0; i < n; i++)
		if (rows[i].op >= 0)
			cnt[rows[i].rank] += 1 + WHOLE_B(&rows[i]);
	for (int k = 0; k < lists; k++) {
		s->rank[k].a = xalloc((size_t)(cnt[k] ? cnt[k] : 1) * sizeof(Action));
		s->rank[k].cap = cnt[k] ? cnt[k] : 1;
		s->src_off[k] = xalloc((size_t)(cnt[k] ? cnt[k] : 1) * sizeof **s->src_off);
	}
	/* rows are in program order per rank (sorted by index before). */
	for (int i = 0; i < n; i++) {
		Row *r = &rows[i];
		if (r->op < 0)
			continue;
		ActList *l = &s->rank[r->rank];
		s->src_off[r->rank][l->n] = r->off;
		l->a[l->n++] = (Action){ r->op, r->stage, r->mb, r->peer < -1 ? -1 : r->peer, 0,
		                         WHOLE_B(r) };
		if (WHOLE_B(r)) {
			s->src_off[r->rank][l->n] = r->off;
			l->a[l->n++] = (Action){ OP_W, r->stage, r->mb, -1, 0, 0 };
		}
	}
#undef WHOLE_B
	return s;
}

static int cmp_row(const void *a, const void *b)
{
	const Row *x = a, *y = b;
	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

/* pipec CSV: ranks 0..max all present, indices 0..n-1 once each. */
static int order_rows(Rd *rd, int *nranks)
{
	Row *rows = rd->rows.v;
	int n = rd->rows.n, maxr = -1;
	for (int i = 0; i < n; i++)
		if (rows[i].rank > maxr)
			maxr = rows[i].rank;
	if (n > 0)              /* rows is NULL when there are none */
		qsort(rows, (size_t)n, sizeof *rows, cmp_row);
	int i = 0;
	for (int k = 0; k <= maxr; k++) {
		int want = 0;
		if (i >= n || rows[i].rank != k) {
			diag_error((Loc){ rd->src, 0, 0 }, "rank %d has no actions (the file "
			           "has ranks 0..%d)", k, maxr);
			return -1;
		}
		for (; i < n && rows[i].rank == k; i++, want++) {
			if (rows[i].index == want)
				continue;
			if (rows[i].index < want)
				err(rd, rows[i].off, rows[i].off, "rank %d has two actions with "
				    "index %d (the other at line %d)", k, rows[i].index,
				    line_of(rd, rows[i - 1].off));
			else
				err(rd, rows[i].off, rows[i].off, "rank %d has no action with index "
				    "%d: each rank's indices count 0, 1, 2, ...", k, want);
			return -1;
		}
	}
	*nranks = maxr + 1;
	return 0;
}

Schedule *sched_read_file(const SchedSpec *spec, Loc where)
{
	const char *path = spec->path;
	if (!path)
		die("file schedule without a path");
	FILE *fp = fopen(path, "rb");
	if (!fp) {
		diag_error(where, "cannot read schedule file '%s': %s", path, strerror(errno));
		return NULL;
	}
	fclose(fp);
	SrcFile *src = src_load(path);
	if (!src)
		return NULL;
	Rd rd = { .src = src, .spec = spec };
	const char *t = src->text;
	uint32_t len = (uint32_t)src->len, bol = 0;
	int torch = -1, nrows = 0, index = 0, blank_run = 0;
	uint32_t blank_at = 0;
	while (bol < len) {
		uint32_t eol = bol;
		while (eol < len && t[eol] != '\n')
			eol++;
		uint32_t b = bol, e = eol;
		trim(t, &b, &e);
		if (b < e && t[b] == '#') {
			/* a comment */
		} else if (b == e) {
			if (!blank_run++)
				blank_at = bol;
		} else {
			if (torch < 0) {
				torch = strncmp(t + b, "rank,", 5) != 0 && strncmp(t + b, "rank ", 5) != 0;
				int r0, i0, used = 0;
				char op0[16];
				char *first = xstrndup(t + b, e - b);
				if (torch && sscanf(first, "%d,%d,%15[A-Z_],%n", &r0, &i0, op0, &used) == 3
				    && used > 0 && op_from_name(op0) >= 0) {
					err(&rd, b, e, "this looks like pipec's CSV without its header; "
					    "add the line '%s' first", header);
					break;
				}
				if (!torch) {
					char *h = xstrndup(t + b, e - b);
					for (char *c = h, *d = h;; c++) {
						if (*c != ' ' && *c != '\t')
							*d++ = *c;
						if (!*c)
							break;
					}
					if (strcmp(h, header))
						err(&rd, b, e, "expected the header '%s'", header);
					bol = eol + 1;
					continue;
				}
			}
			if (blank_run && torch) {
				err(&rd, blank_at, blank_at, "an empty row: rank %d has no actions",
				    nrows);
				nrows += blank_run;
			}
			blank_run = 0;
			if (torch) {
				index = 0;
				read_torch_row(&rd, b, e, nrows, &index);
			} else {
				read_pipec_row(&rd, b, e);
			}
			nrows++;
		}
		bol = eol + 1;
	}
	if (torch < 0) {
		diag_error((Loc){ src, 0, 0 }, "the schedule file is empty");
		return NULL;
	}
	if (rd.nerr)
		return NULL;
	int nranks = nrows;
	if (!torch && order_rows(&rd, &nranks))
		return NULL;
	if (!torch && rd.rows.n == 0) {
		diag_error((Loc){ src, 0, 0 }, "the schedule file has a header but no rows");
		return NULL;
	}
	if (torch)
		for (int k = 0, i = 0; k < nranks; k++) {
			int c = 0;
			while (i < rd.rows.n && rd.rows.v[i].rank == k) {
				i++;
				c++;
			}
			if (!c) {
				diag_error((Loc){ src, 0, 0 }, "rank %d (row %d) has no actions", k, k + 1);
				return NULL;
			}
		}
	return build(&rd, nranks, torch);
}
