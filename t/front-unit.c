/* front-unit.c — the front end's internals: the scanner's words and
 * numbers, locations, the grammar's tree, repeat expansion, the width
 * chain, parameter and FLOP counts against hand-computed values, --set
 * parsing and the "did you mean" helpers.
 *
 * Diagnostics a case expects are captured (stderr goes to a temporary file
 * while it runs) and checked, so the TAP stream stays clean.
 */
#include "ast.h"
#include "ir.h"
#include "sema.h"
#include "tap.h"
#include "util.h"

#include <stdlib.h>
#include <unistd.h>

/* ---- stderr capture ---------------------------------------------- */

static FILE *cap_file;
static int cap_saved = -1;

static void capture_begin(void)
{
	fflush(stderr);
	cap_file = tmpfile();
	if (!cap_file) {
		perror("tmpfile");
		exit(99);
	}
	cap_saved = dup(2);
	dup2(fileno(cap_file), 2);
}

/* Ends the capture; returns what was written (arena memory). */
static const char *capture_end(void)
{
	fflush(stderr);
	dup2(cap_saved, 2);
	close(cap_saved);
	long n = ftell(cap_file);
	char *text = xalloc((size_t)(n > 0 ? n : 0) + 1);
	rewind(cap_file);
	if (n > 0 && fread(text, 1, (size_t)n, cap_file) != (size_t)n)
		text[0] = 0;
	fclose(cap_file);
	return text;
}

static int contains(const char *hay, const char *needle)
{
	return hay && strstr(hay, needle) != NULL;
}

#define like(text, needle, ...) do { \
	const char *t_ = (text); \
	if (!ok(contains(t_, needle), __VA_ARGS__)) \
		diagf("  '%s' not in:\n%s", needle, t_ ? t_ : "(null)"); \
} while (0)

/* ---- helpers ------------------------------------------------------- */

static Program *parse(const char *text)
{
	return parse_file(src_from_string("s.pipe", text));
}

/* Parses and checks; NULL on any error (the messages are captured). */
static IrModel *check(const char *text, const char **errors)
{
	capture_begin();
	Program *p = parse(text);
	IrModel *m = p ? sema_check(p, NULL, 0) : NULL;
	const char *e = capture_end();
	if (errors)
		*errors = e;
	return m;
}

static const Value *item_value(const Program *p, const char *key)
{
	for (int i = 0; p && i < p->items.n; i++)
		if (!strcmp(p->items.v[i]->key, key))
			return p->items.v[i]->val;
	return NULL;
}

static const IrLayer *layer_named(const IrModel *m, const char *name)
{
	for (int i = 0; m && i < m->nlayers; i++)
		if (!strcmp(m->layers[i].name, name))
			return &m->layers[i];
	return NULL;
}

static void linecol_is(Loc loc, int line, int col, const char *what)
{
	int l, c;
	loc_linecol(loc, &l, &c);
	if (!ok(l == line && c == col, "location of %s is %d:%d", what, line, col))
		diagf("  got %d:%d", l, c);
}

/* The seed experiment's MLP, as in models/mlp4.pipe. */
static const char mlp4[] =
	"model mlp4 {\n"
	"    input  x : f32[batch, 100];\n"
	"    target y : i32[batch];\n"
	"    layer fc1  : linear(100, 1024);\n"
	"    layer act1 : relu;\n"
	"    layer fc2  : linear(1024, 1024);\n"
	"    layer act2 : relu;\n"
	"    layer fc3  : linear(1024, 2048);\n"
	"    layer act3 : relu;\n"
	"    layer fc4  : linear(2048, 2048);\n"
	"    layer act4 : relu;\n"
	"    layer fc5  : linear(2048, 1024);\n"
	"    layer act5 : relu;\n"
	"    layer fc6  : linear(1024, 1024);\n"
	"    layer act6 : relu;\n"
	"    layer fc7  : linear(1024, 512);\n"
	"    layer act7 : relu;\n"
	"    layer head : linear(512, 10);\n"
	"    loss cross_entropy;\n"
	"}\n"
	"pipeline {\n"
	"    stages       = 4;\n"
	"    batch        = 256;\n"
	"    microbatches = 32;\n"
	"    schedule     = 1f1b;\n"
	"    partition    = [4, 4, 4, 3];\n"
	"    optimizer    = sgd(lr = 0.01);\n"
	"}\n";

/* ---- the tests ----------------------------------------------------- */

static void test_tree(void)
{
	Program *p = parse(mlp4);
	ok(p != NULL, "mlp4 parses");
	if (!p)
		return;
	is_str(p->name, "mlp4", "model name");
	is_int(p->tensors.n, 2, "two tensor declarations");
	ok(!p->tensors.v[0]->is_target && p->tensors.v[1]->is_target, "input, then target");
	is_int(p->tensors.v[0]->dims.n, 2, "x has two dimensions");
	is_str(p->tensors.v[0]->dims.v[0].name, "batch", "the first is batch");
	is_int(p->tensors.v[0]->dims.v[1].n, 100, "the second is 100");
	is_int(p->layers.n, 15, "15 layer declarations");
	is_str(p->layers.v[0]->kind, "linear", "fc1 is linear");
	is_int(p->layers.v[0]->args.n, 2, "linear has 2 arguments");
	ok(!p->layers.v[1]->has_parens && p->layers.v[1]->args.n == 0, "relu has no parentheses");
	is_int(p->layers.v[0]->count, -1, "fc1 is not repeated");
	is_int(p->losses.n, 1, "one loss");
	is_int(p->items.n, 6, "six pipeline items");
	const Value *part = item_value(p, "partition");
	ok(part && part->kind == V_LIST && part->args.n == 4, "partition is a list of 4");
	const Value *opt = item_value(p, "optimizer");
	ok(opt && opt->kind == V_CALL && !strcmp(opt->s, "sgd") && opt->args.n == 1
	   && !strcmp(opt->args.v[0]->key, "lr") && opt->args.v[0]->val->kind == V_NUM
	   && opt->args.v[0]->val->d == 0.01, "optimizer is sgd(lr = 0.01)");
}

static void test_locations(void)
{
	Program *p = parse(mlp4);
	if (!p) {
		ok(0, "mlp4 parses (locations)");
		return;
	}
	linecol_is(p->name_loc, 1, 7, "the model name");
	linecol_is(p->layers.v[0]->name_loc, 4, 11, "fc1's name");
	linecol_is(p->layers.v[0]->kind_loc, 4, 18, "fc1's kind");
	linecol_is(p->layers.v[0]->args.v[1]->val->loc, 4, 30, "fc1's second argument");
	linecol_is(p->pipeline_loc, 21, 1, "the pipeline keyword");
	const Value *part = item_value(p, "partition");
	linecol_is(part->loc, 26, 20, "the partition list");
	is_int(part->loc.end - part->loc.off, 12, "the list's range spans '[4, 4, 4, 3]'");

	/* tabs count one column, CRLF line ends are whitespace */
	Program *q = parse("model m {\r\n\tinput x : f32[batch, 2];\r\n\tlayer a : relu;\r\n}\r\n"
	                   "pipeline { stages = 1; batch = 2; }\r\n");
	ok(q != NULL, "tabs and CRLF parse");
	if (q)
		linecol_is(q->layers.v[0]->name_loc, 3, 8, "a name after a tab");

	SrcFile *f = src_from_string("t", "ab\ncd");
	Loc past = { f, 99, 99 };
	linecol_is(past, 2, 3, "an offset past the end (clamped)");
	Loc none = { NULL, 0, 0 };
	linecol_is(none, 1, 1, "no file");
}

/* The first pipeline value of `pipeline { stages = VALUE; ... }`. */
static const Value *scan_value(const char *value)
{
	char *text = xprintf("model m { input x : f32[batch, 2]; layer a : relu; }\n"
	                     "pipeline { seed = %s; }", value);
	Program *p = parse(text);
	return p ? item_value(p, "seed") : NULL;
}

static void test_words_and_numbers(void)
{
	static const struct { const char *text; ValueKind kind; double d; } cases[] = {
		{ "1f1b", V_WORD, 0 }, { "zb-h1", V_WORD, 0 }, { "zb-v", V_WORD, 0 },
		{ "pipedream-2bw", V_WORD, 0 }, { "16GiB", V_WORD, 0 }, { "gpipe", V_WORD, 0 },
		{ "1e-3", V_NUM, 1e-3 }, { "1e3", V_NUM, 1e3 }, { "2.5E+2", V_NUM, 250 },
		{ "0.01", V_NUM, 0.01 }, { ".5", V_NUM, 0.5 }, { "7.", V_NUM, 7 },
		{ "256", V_INT, 256 }, { "0", V_INT, 0 }, { "-5", V_INT, -5 }, { "- 5", V_INT, -5 },
		{ "-0.05", V_NUM, -0.05 }, { "-1e-3", V_NUM, -1e-3 },
		{ "-9223372036854775807", V_INT, -9223372036854775807.0 },
		{ "9223372036854775807", V_INT, 9223372036854775807.0 },
		{ "\"orders/my-schedule.csv\"", V_STRING, 0 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const Value *v = scan_value(cases[i].text);
		ok(v && v->kind == cases[i].kind && (cases[i].kind == V_WORD
		                                     || cases[i].kind == V_STRING
		                                     || v->d == cases[i].d),
		   "'%s' scans as %s", cases[i].text, value_kind_name(cases[i].kind));
		if (v && (v->kind == V_WORD))
			is_str(v->s, cases[i].text, "... the word is '%s'", cases[i].text);
	}
	const Value *neg = scan_value("-0.05");
	linecol_is(neg ? neg->loc : (Loc){ 0 }, 2, 19, "-0.05: the minus sign");
	ok(neg && neg->loc.end - neg->loc.off == 5, "-0.05's range covers the sign and the number");
	const Value *ni = scan_value("-7");
	ok(ni && ni->i == -7, "-7 holds the integer -7");
	const Value *s = scan_value("\"orders/my-schedule.csv\"");
	is_str(s ? s->s : NULL, "orders/my-schedule.csv", "a string loses its quotes");
	const Value *c = scan_value("interleaved(2)");
	ok(c && c->kind == V_CALL && !strcmp(c->s, "interleaved") && c->args.n == 1
	   && c->args.v[0]->val->i == 2, "interleaved(2) is a call with one argument");

	/* keywords are not names; layer kinds, keys and dtypes are */
	ok(parse("model m { input x : f32[batch, 2]; layer relu : relu; }\n"
	         "pipeline { stages = 1; batch = 2; }") != NULL, "'layer relu : relu;' is legal");
	const char *err;
	ok(!check("model m { input x : f32[batch, 2]; layer stage : relu; }\n"
	          "pipeline { stages = 1; batch = 2; }", &err), "a keyword as a name is an error");
	like(err, "s.pipe:1:42: error: 'stage' is a keyword and cannot be used as a name",
	     "... saying so, at the keyword");
	ok(!check("model m { input x : f32[batch, 2]; layer a : relu; }\n"
	          "pipeline { stages = 1; batch = 99999999999999999999; }", &err),
	   "an integer beyond 64 bits is an error");
	like(err, "s.pipe:2:32: error: integer '99999999999999999999' is too large",
	     "... located at the integer");
}

static void test_syntax_errors(void)
{
	const char *err;
	ok(!check("", &err), "an empty file is an error");
	like(err, "s.pipe:1:1: error: syntax error, unexpected end of file, expecting 'model'",
	     "... at 1:1, expecting 'model'");
	ok(!contains(err, "start of setting"), "... the --set marker is never offered");
	ok(!check("model m { input x : f32[batch, 2]; layer a : relu; }\n\n\n", &err),
	   "no pipeline block is an error");
	like(err, "s.pipe:1:53: error: syntax error, unexpected end of file, expecting 'pipeline'",
	     "... just after the last token, not on the blank lines after it");
	ok(!check("model m { input x : f32[batch, 2]; layer a : relu;\n"
	          "pipeline { stages = 1; batch = 2; }", &err), "an unclosed model block");
	like(err, "s.pipe:2:1: error: syntax error, unexpected 'pipeline'; is a '}' missing?",
	     "... says a '}' may be missing, once");
	ok(!contains(strstr(err, "missing?") + 1, "error:"), "... and nothing more");

	/* recovery: three bad statements, three errors */
	ok(!check("model m {\n input x : f32[batch 2];\n layer a : relu relu;\n"
	          " layer b : relu;\n}\npipeline { stages = 1 1; batch = 2; }", &err),
	   "several syntax errors");
	like(err, "s.pipe:2:22:", "... the first");
	like(err, "s.pipe:3:17:", "... the second (recovered at ';')");
	like(err, "s.pipe:6:23:", "... the third, in the pipeline block");

	/* deep nesting: an error, not a crash */
	char *deep = xalloc(30000);
	strcpy(deep, "model m { input x : f32[batch, 2]; layer a : relu; }\npipeline { seed = ");
	size_t n = strlen(deep);
	memset(deep + n, '[', 12000);
	strcpy(deep + n + 12000, "; }");
	ok(!check(deep, &err), "12,000 nested lists are an error");
	like(err, "nested too deeply (more than 10000 levels)", "... saying so");

	/* stray bytes */
	ok(!check("model m { input x : f32[batch, 2]; layer a : r\xc3\xa9lu; }\n"
	          "pipeline { stages = 1; batch = 2; }", &err), "a non-ASCII name");
	like(err, "s.pipe:1:46: error: 'r\xc3\xa9lu' is not a valid name", "... quoted back once");
	ok(!check("model m \xff { }", &err), "a byte that is not UTF-8");
	like(err, "s.pipe:1:9: error: stray byte 0xff in program", "... named by its value");
	like(err, "    1 | model m ? { }", "... shown as '?' in the source line");
	is_int(src_utf8_invalid("r\xc3\xa9lu", 5), -1, "'r\xc3\xa9lu' is UTF-8");
	is_int(src_utf8_invalid("ab\xc3", 3), 2, "a cut sequence is not");
	is_int(src_utf8_invalid("a\x80", 2), 1, "a lone continuation byte is not");
}

static void test_diag_long_line(void)
{
	char *text = xalloc(2000);
	strcpy(text, "model m { input x : f32[batch, 2]; layer a : relu; }\npipeline {");
	size_t n = strlen(text);
	memset(text + n, ' ', 1000);
	strcpy(text + n + 1000, "$ stages = 1; batch = 2; }");
	const char *err;
	check(text, &err);
	like(err, "s.pipe:2:1011: error: stray '$' in program", "a stray character on a long line");
	like(err, "    2 | ...", "... the line is shown as a window");
	const char *caret = strstr(err, "      | ");
	ok(caret && strchr(caret, '^') && strchr(caret, '^') - caret < 80,
	   "... with the caret inside the window");
}

static void test_repeat_and_chain(void)
{
	const char *err;
	IrModel *m = check("model r {\n input x : f32[batch, 4];\n layer in : linear(4, 8);\n"
	                   " layer fc[3] : linear(8, 8);\n layer norm : layernorm(8);\n"
	                   " layer out : linear(8, 2, bias = false);\n}\n"
	                   "pipeline { stages = 2; batch = 4; }", &err);
	ok(m != NULL, "a model with fc[3] checks");
	if (!m) {
		diagf("%s", err);
		return;
	}
	is_int(m->nlayers, 6, "fc[3] expands to three layers");
	is_str(m->layers[1].name, "fc0", "the first copy is fc0");
	is_str(m->layers[3].name, "fc2", "the last copy is fc2");
	is_str(m->layers[2].params[0].name, "fc1.weight", "fc1's weight is named fc1.weight");
	int chained = 1;
	for (int i = 1; i < m->nlayers; i++)
		chained &= m->layers[i].in == m->layers[i - 1].out
		           && m->layers[i].in_w == m->layers[i - 1].out_w;
	ok(chained, "each layer reads the previous one's output, width for width");
	is_int(m->layers[0].in, 0, "the first layer reads the input tensor");
	is_int(m->layers[5].out_w, 2, "the output is 2 wide");
	is_int(m->layers[5].nparams, 1, "bias = false: one parameter");
	is_int(m->layers[5].nparam_elems, 16, "... 2 x 8 weights");
	is_int(m->layers[4].nparam_elems, 16, "layernorm(8): weight and bias, 16");
	is_int(m->tensors[m->layers[4].out].dims[0], 8, "layernorm keeps the width");

	/* the chain is checked at the first layer that breaks it */
	m = check("model r {\n input x : f32[batch, 4];\n layer a : linear(4, 16);\n"
	          " layer b : relu;\n layer c : linear(12, 4);\n}\n"
	          "pipeline { stages = 1; batch = 4; }", &err);
	ok(!m, "a width that does not chain is an error");
	like(err, "s.pipe:5:19: error: linear(12, 4) in 'c' expects 12 inputs, but 'b' outputs 16",
	     "... naming both layers and both widths");
	like(err, "    5 |  layer c : linear(12, 4);", "... with the source line");
	like(err, "      |                   ^~", "... and a caret under the 12");
}

static void test_mlp4_counts(void)
{
	const char *err;
	IrModel *m = check(mlp4, &err);
	ok(m != NULL, "mlp4 checks");
	if (!m)
		return;
	/* By hand: widths 100 1024 1024 2048 2048 1024 1024 512 10.
	 * weights  100*1024 + 1024*1024 + 1024*2048 + 2048*2048 + 2048*1024
	 *          + 1024*1024 + 1024*512 + 512*10 = 11,117,568
	 * biases   1024 + 1024 + 2048 + 2048 + 1024 + 1024 + 512 + 10 = 8,714 */
	long long params = 0;
	double ff = 0, fb = 0, fw = 0;
	for (int i = 0; i < m->nlayers; i++) {
		params += m->layers[i].nparam_elems;
		ff += m->layers[i].flops_f;
		fb += m->layers[i].flops_b;
		fw += m->layers[i].flops_w;
	}
	is_int(params, 11126282, "mlp4 has 11,126,282 parameters");
	is_int(m->nlayers, 15, "15 layers");
	const IrLayer *fc1 = layer_named(m, "fc1");
	is_int(fc1->nparam_elems, 103424, "fc1: 100 x 1024 + 1024 = 103,424 parameters");
	is_int(fc1->params[0].dims[0], 1024, "fc1.weight is [out, in]: 1024 ...");
	is_int(fc1->params[0].dims[1], 100, "... x 100");
	/* forward: 2*in*out per linear (11,117,568 * 2 = 22,235,136) + its bias
	 * adds (8,714) + one per ReLU element (8,704) = 22,252,554 */
	is_near(ff, 22252554.0, 0.5, "forward FLOPs per sample: 22,252,554");
	/* backward: input gradient 2*in*out + ReLU 1 per element, except
	 * fc1's (2 * 100 * 1024 = 204,800: the model input needs no
	 * gradient, and the runtime computes none); weight gradient 2*in*out
	 * + the bias sums */
	is_near(fb, 22235136.0 + 8704.0 - 204800.0, 0.5,
	        "input-gradient FLOPs: 22,039,040 (none for the model input)");
	is_near(fw, 22235136.0 + 8714.0, 0.5, "weight-gradient FLOPs: 22,243,850");
	/* kept for backward: a ReLU's output (its backward reads it), the
	 * last output (the loss gradient lands there); a linear's output that
	 * feeds a ReLU is not kept */
	is_int(layer_named(m, "act1")->act_bytes, 1024 * 4, "act1 keeps 1024 floats");
	is_int(layer_named(m, "fc1")->act_bytes, 0, "fc1's output is not kept");
	is_int(layer_named(m, "head")->act_bytes, 10 * 4, "head's output is kept (loss)");
	is_int(m->pipe.P, 4, "4 stages");
	is_int(m->pipe.M, 32, "32 micro-batches");
	is_int(m->pipe.B, 256, "batch 256");
	ok(m->pipe.optim == OPT_SGD && m->pipe.lr == 0.01, "sgd(lr = 0.01)");
	ok(m->pipe.npart == 4 && m->pipe.part_counts[3] == 3, "partition [4, 4, 4, 3]");
	ok(m->loss == LOSS_CROSS_ENTROPY && m->target_width == 1, "cross_entropy on class ids");

	/* the boundary index against a direct count */
	int same = 1;
	int64_t *direct = xalloc((size_t)(m->nlayers + 1) * sizeof *direct);
	int64_t *saved = m->cross;
	m->cross = NULL;
	for (int b = 0; b <= m->nlayers; b++)
		direct[b] = ir_boundary_bytes(m, b);
	m->cross = saved;
	for (int b = 0; b <= m->nlayers; b++)
		same &= direct[b] == ir_boundary_bytes(m, b);
	ok(same, "ir_boundary_bytes: the index agrees with the direct count");
	is_int(ir_boundary_bytes(m, 0), 100 * 4, "the input crosses boundary 0");
	is_int(ir_boundary_bytes(m, 4), 2048 * 0 + 1024 * 4, "act2's output crosses into fc3");
	is_int(ir_boundary_bytes(m, m->nlayers), 0, "nothing crosses after the last layer");
}

static void test_settings(void)
{
	static const struct { const char *text; const char *key; ValueKind kind; } good[] = {
		{ "stages=2", "stages", V_INT },
		{ "stages = 2;", "stages", V_INT },
		{ "schedule=interleaved(2)", "schedule", V_CALL },
		{ "schedule=zb-h1", "schedule", V_WORD },
		{ "partition=[1, 2, 3]", "partition", V_LIST },
		{ "partition=auto", "partition", V_WORD },
		{ "partition { stage 0 : a .. b; stage 1 : c; }", "partition", V_BLOCK },
		{ "optimizer=adam(lr = 1e-3)", "optimizer", V_CALL },
		{ "memory=16GiB", "memory", V_WORD },
		{ "recompute=[0.5, 1]", "recompute", V_LIST },
	};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		PipeItem *it = parse_setting(src_from_string("--set", good[i].text));
		ok(it && !strcmp(it->key, good[i].key) && it->val->kind == good[i].kind,
		   "--set '%s' is %s = %s", good[i].text, good[i].key, value_kind_name(good[i].kind));
	}
	static const char *const bad[] = {
		"stages", "=2", "stages=", "stages=[", "stages=2;;", "stages=2 batch=4", "model=2",
		"stages=2 }", "", "partition { stage 0 : a .. ; }",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		capture_begin();
		PipeItem *it = parse_setting(src_from_string("--set", bad[i]));
		const char *err = capture_end();
		ok(!it && contains(err, "error:"), "--set '%s' is malformed, with a message", bad[i]);
	}
	capture_begin();
	parse_setting(src_from_string("--set 'model=2'", "model=2"));
	const char *err = capture_end();
	like(err, "--set 'model=2':1:1: error: 'model' is a keyword", "a keyword as a --set key");

	/* --set overrides: each replaces the file's key; the last one wins */
	Program *p = parse(mlp4);
	PipeItem *sets[3] = {
		parse_setting(src_from_string("--set", "stages=2")),
		parse_setting(src_from_string("--set", "partition=auto")),
		parse_setting(src_from_string("--set", "stages=3")),
	};
	IrModel *m = p ? sema_check(p, sets, 3) : NULL;
	ok(m && m->pipe.P == 3 && m->pipe.part_auto, "--set stages=2 partition=auto stages=3: "
	   "3 stages, automatic partition");
	capture_begin();
	m = p ? sema_check(p, sets, 1) : NULL;
	err = capture_end();
	ok(!m, "--set stages=2 against the file's 4-stage partition fails");
	like(err, "--set:1:8: note: 'stages' is set here", "... with a note naming the --set");
}

/* The training keys: torch.optim's defaults where nothing is said, the
 * horizon resolved to the steps, every form settable with --set. */
static IrModel *check_with(const char *pipeline_keys, const char *set, const char **errors)
{
	char *text = xprintf("model m { input x : f32[batch, 4]; target y : i32[batch];\n"
	                     "  layer fc : linear(4, 3); loss cross_entropy; }\n"
	                     "pipeline { stages = 1; batch = 4; steps = 40; %s }", pipeline_keys);
	capture_begin();
	Program *p = parse(text);
	PipeItem *sets[1] = { set ? parse_setting(src_from_string("--set", set)) : NULL };
	IrModel *m = p && (!set || sets[0]) ? sema_check(p, sets, set ? 1 : 0) : NULL;
	const char *e = capture_end();
	if (errors)
		*errors = e;
	return m;
}

static void test_training_keys(void)
{
	const char *err;
	IrModel *m = check_with("optimizer = sgd(lr = 0.1);", NULL, &err);
	const Pipeline *pp = m ? &m->pipe : NULL;
	ok(pp && pp->optim == OPT_SGD && pp->momentum == 0 && pp->weight_decay == 0
	   && !pp->nesterov && !pp->decoupled, "sgd(lr): momentum 0, weight_decay 0, no nesterov");
	ok(pp && pp->lr_schedule == LR_CONSTANT && pp->lr_warmup == 0 && pp->lr_total == 40
	   && pp->min_lr == 0 && pp->clip_grad_norm == 0 && !pp->shuffle && !pp->decay_matrices,
	   "no training keys: constant lr, horizon = steps (40), no clipping, no shuffle, decay all");

	m = check_with("optimizer = adam(lr = 1e-3);", NULL, NULL);
	pp = m ? &m->pipe : NULL;
	ok(pp && pp->optim == OPT_ADAM && !pp->decoupled && pp->beta1 == 0.9 && pp->beta2 == 0.999
	   && pp->eps == 1e-8 && pp->weight_decay == 0, "adam: torch.optim.Adam's defaults "
	   "(0.9, 0.999, 1e-8, weight_decay 0)");
	m = check_with("optimizer = adamw(lr = 1e-3);", NULL, NULL);
	pp = m ? &m->pipe : NULL;
	ok(pp && pp->optim == OPT_ADAM && pp->decoupled && pp->weight_decay == 0.01
	   && pp->beta1 == 0.9 && pp->beta2 == 0.999 && pp->eps == 1e-8,
	   "adamw: Adam's state, decoupled, torch.optim.AdamW's weight_decay 0.01");

	m = check_with("optimizer = adamw(lr = 3e-4, beta1 = 0.8, beta2 = 0.95, eps = 1e-6, "
	               "weight_decay = 0.1); decay = matrices; lr_schedule = cosine(warmup = 5, "
	               "min_lr = 3e-5); clip_grad_norm = 1.0; shuffle = true;", NULL, &err);
	pp = m ? &m->pipe : NULL;
	ok(pp && pp->lr == 3e-4 && pp->beta1 == 0.8 && pp->beta2 == 0.95 && pp->eps == 1e-6
	   && pp->weight_decay == 0.1 && pp->decay_matrices, "adamw's arguments and decay = matrices");
	ok(pp && pp->lr_schedule == LR_COSINE && pp->lr_warmup == 5 && pp->lr_total == 40
	   && pp->min_lr == 3e-5, "cosine(warmup = 5, min_lr = 3e-5): total defaults to steps = 40");
	ok(pp && pp->clip_grad_norm == 1.0 && pp->shuffle, "clip_grad_norm = 1.0, shuffle = true");
	if (!m)
		diagf("%s", err);

	m = check_with("optimizer = sgd(lr = 0.1, momentum = 0.9, nesterov = true, "
	               "weight_decay = 5e-4); lr_schedule = linear(warmup = 0, total = 100);",
	               NULL, NULL);
	pp = m ? &m->pipe : NULL;
	ok(pp && pp->nesterov && pp->momentum == 0.9 && pp->weight_decay == 5e-4
	   && pp->lr_schedule == LR_LINEAR && pp->lr_total == 100, "sgd with nesterov and "
	   "weight decay; linear with its own total");
	m = check_with("optimizer = sgd(lr = 0.1); lr_schedule = constant(warmup = 100);", NULL,
	               NULL);
	pp = m ? &m->pipe : NULL;
	ok(pp && pp->lr_schedule == LR_CONSTANT && pp->lr_warmup == 100,
	   "constant(warmup = 100): a warm-up may outlast the run (no horizon)");

	/* --set: the same grammar, so every new key and form */
	m = check_with("optimizer = sgd(lr = 0.1);", "lr_schedule=cosine(warmup=2, total=30)", NULL);
	ok(m && m->pipe.lr_schedule == LR_COSINE && m->pipe.lr_total == 30,
	   "--set lr_schedule=cosine(warmup=2, total=30)");
	m = check_with("optimizer = sgd(lr = 0.1); clip_grad_norm = 2;", "clip_grad_norm=0.5", NULL);
	ok(m && m->pipe.clip_grad_norm == 0.5, "--set clip_grad_norm=0.5 replaces the file's 2");
	m = check_with("optimizer = sgd(lr = 0.1);", "optimizer=adamw(lr=1e-3, weight_decay=0)",
	               NULL);
	ok(m && m->pipe.decoupled && m->pipe.weight_decay == 0, "--set optimizer=adamw(..., "
	   "weight_decay=0): no decay");
	m = check_with("optimizer = sgd(lr = 0.1);", "shuffle=false", NULL);
	ok(m && !m->pipe.shuffle, "--set shuffle=false");
	ok(!check_with("optimizer = sgd(lr = 0.1);", "optimizer=sgd(lr=-1)", &err),
	   "--set optimizer=sgd(lr=-1) is refused");
	like(err, "--set:1:18: error: 'lr' must be > 0, not -1", "... by the range check, at "
	     "the number");
	ok(!check_with("optimizer = sgd(lr = 0.1); clip_grad_norm = 1;", "schedule=pipedream", &err),
	   "clip_grad_norm with --set schedule=pipedream is refused");
	ok(contains(err, "--set:1:10: note: 'schedule' is set here"), "... naming the --set");
	ok(check_with("optimizer = sgd(lr = 0.1); clip_grad_norm = 1; microbatches = 1;",
	              "schedule=pipedream-2bw", &err) != NULL,
	   "clip_grad_norm with pipedream-2bw is accepted");
}

static void test_did_you_mean(void)
{
	is_int(edit_distance("kitten", "sitting"), 3, "kitten -> sitting: 3 edits");
	is_int(edit_distance("stages", "stagse"), 1, "a transposition is one edit");
	is_int(edit_distance("", "abc"), 3, "from nothing: one per letter");
	is_int(edit_distance("same", "same"), 0, "equal: 0");
	char longer[100];
	memset(longer, 'a', 99);
	longer[99] = 0;
	ok(edit_distance(longer, "a") >= 1000, "names over 64 letters are never close");
	is_str(closest_name("stagse", sema_pipeline_keys, 12), "stages", "stagse -> stages");
	is_str(closest_name("microbatch", sema_pipeline_keys, 12), "microbatches",
	       "microbatch -> microbatches");
	ok(closest_name("colour", sema_pipeline_keys, 12) == NULL, "colour: nothing close");
	static const char *const dt[] = { "f32", "f16", "bf16", "i32" };
	ok(closest_name("f64", dt, 4) == NULL, "short names allow one edit: f64 is not f32");
	is_str(closest_name("bf61", dt, 4), "bf16", "bf61 -> bf16");

	const char *err;
	check("model m { input x : f32[batch, 2]; layer a : lineer(2, 2); }\n"
	      "pipeline { stages = 1; batch = 2; }", &err);
	like(err, "unknown layer kind 'lineer'; did you mean 'linear'?", "a misspelt layer kind");
	check("model m { input x : f32[batch, 2]; layer a : relu; }\n"
	      "pipeline { stages = 1; batch = 2; schedul = gpipe; }", &err);
	like(err, "unknown pipeline key 'schedul'; did you mean 'schedule'?", "a misspelt key");
}

/* The layer catalogue is consistent: what sema and the emitter rely on. */
static void test_catalogue(void)
{
	for (int k = 0; k < LK_COUNT; k++) {
		const LayerCatalogue *c = LAYER(k);
		const char *nm = layer_kind_name(k);
		is_int(layer_kind_from_name(nm), k, "%s: found by its name", nm);
		ok(c->usage && !strncmp(c->usage, nm, strlen(nm)), "%s: its usage names it", nm);
		ok(c->nargs <= LAYER_MAX_ARGS, "%s: at most %d arguments", nm, LAYER_MAX_ARGS);
		ok(c->fwd.fn && (c->bwd.fn || c->wgt.fn), "%s: a forward and a backward", nm);
		ok(!c->fused_bwd || (c->bwd.fn && c->wgt.fn), "%s: a fused backward has a weight "
		   "half for split schedules", nm);
		ok(!c->wgt.fn == !c->nparams, "%s: a weight gradient exactly when it has parameters",
		   nm);
		ok(!(c->bwd_reads_in && c->bwd_reads_out), "%s: backward reads its input or its "
		   "output", nm);
		ok(!layer_is_embedding(k) || !c->bwd.fn, "%s: an embedding has no input gradient",
		   nm);
		ok((c->side != LS_NONE) == layer_takes(k, RA_SIDE), "%s: a side input exactly when "
		   "a call takes it", nm);
		int has_ffn = layer_arg_index(k, LF_FFN) >= 0 || c->derive;
		for (int i = 0; i < c->nparams; i++)
			ok(has_ffn || (c->params[i].dim[0] != LZ_FFN && c->params[i].dim[1] != LZ_FFN),
			   "%s: parameter %s's size is known", nm, c->params[i].name);
	}
	is_int(layer_kind_from_name("lineer"), -1, "an unknown kind is -1");
}

static void test_errors_then_success(void)
{
	/* The library keeps one error count for the process: a good program
	 * checked after bad ones must still be checked completely. */
	const char *err;
	check("model m { input x : f32[batch, 2]; layer a : frob; }\n"
	      "pipeline { stages = 1; batch = 2; }", &err);
	IrModel *m = check(mlp4, &err);
	ok(m != NULL, "mlp4 checks after a failed check");
	ok(m && layer_named(m, "act1")->act_bytes == 4096, "... with its activation bytes");
	ok(m && m->cross != NULL, "... and its boundary index");

	/* a 20,000-layer model by repetition */
	m = check("model big { input x : f32[batch, 8]; layer fc[10000] : linear(8, 8);"
	          " layer act[10000] : relu; }\npipeline { stages = 4; batch = 8; }", &err);
	ok(m && m->nlayers == 20000, "fc[10000] and act[10000]: 20,000 layers");
	ok(m && !strcmp(m->layers[19999].name, "act9999"), "... the last is act9999");
	m = check("model big { input x : f32[batch, 8]; layer fc[3] : relu; layer fc1 : relu; }\n"
	          "pipeline { stages = 1; batch = 8; }", &err);
	ok(!m, "a name clashing with a repeated layer's copy");
	like(err, "s.pipe:1:64: error: 'fc1' is already declared", "... at the later name");
}

int main(void)
{
	test_tree();
	test_locations();
	test_words_and_numbers();
	test_syntax_errors();
	test_diag_long_line();
	test_repeat_and_chain();
	test_mlp4_counts();
	test_settings();
	test_training_keys();
	test_did_you_mean();
	test_catalogue();
	test_errors_then_success();
	int rc = done_testing();
	pool_free_all();
	return rc;
}
