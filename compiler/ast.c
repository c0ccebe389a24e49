/* ast.c — tree constructors, the parser's entry points and a debug dump. */
#include "ast.h"
#include "parser.h"
#include "lex-extra.h"

/* flex's reentrant API, declared by hand so lexer.h is not needed here. */
typedef struct yy_buffer_state *YY_BUFFER_STATE;
int yylex_init_extra(LexExtra *extra, yyscan_t *scanner);
int yylex_destroy(yyscan_t scanner);
YY_BUFFER_STATE yy_scan_bytes(const char *bytes, int len, yyscan_t scanner);

static const char *const value_kind_names[] = {
#define X(e, s) s,
	VALUE_KINDS(X)
#undef X
};

const char *value_kind_name(ValueKind k)
{
	return value_kind_names[k];
}

Value *ast_value(ValueKind kind, Loc loc)
{
	Value *v = xalloc(sizeof *v);
	v->kind = kind;
	v->loc = loc;
	return v;
}

Arg *ast_arg(const char *key, Loc key_loc, Value *val)
{
	Arg *a = xalloc(sizeof *a);
	a->key = key;
	a->key_loc = key_loc;
	a->val = val;
	return a;
}

static int run_parser(const SrcFile *f, int start, Program *prog, PipeItem **setting)
{
	LexExtra extra = { .file = f, .off = 0, .start_token = start };
	yyscan_t scanner;
	if (yylex_init_extra(&extra, &scanner))
		die("cannot initialise the scanner");
	if (f->len > (size_t)1 << 30)
		die("source too large");
	yy_scan_bytes(f->text, (int)f->len, scanner);
	int before = diag_errors();
	int rc = yyparse(scanner, prog, setting);
	yylex_destroy(scanner);
	/* rc 2 is bison's full stack: too deep a nesting, reported by yyerror. */
	return rc == 0 && diag_errors() == before ? 0 : -1;
}

Program *parse_file(const SrcFile *f)
{
	Program *p = xalloc(sizeof *p);
	p->file = f;
	return run_parser(f, 0, p, NULL) == 0 ? p : NULL;
}

PipeItem *parse_setting(const SrcFile *f)
{
	PipeItem *it = NULL;
	Program dummy = { .file = f };
	if (run_parser(f, SET_MODE, &dummy, &it) != 0)
		return NULL;
	return it;
}

static void dump_value(FILE *out, const Value *v)
{
	switch (v->kind) {
	case V_INT: fprintf(out, "%lld", v->i); break;
	case V_NUM: fprintf(out, "%g", v->d); break;
	case V_WORD: fputs(v->s, out); break;
	case V_STRING: fprintf(out, "\"%s\"", v->s); break;
	case V_LIST:
	case V_CALL:
		if (v->kind == V_CALL)
			fputs(v->s, out);
		fputc(v->kind == V_LIST ? '[' : '(', out);
		for (int i = 0; i < v->args.n; i++) {
			if (i)
				fputs(", ", out);
			if (v->args.v[i]->key)
				fprintf(out, "%s = ", v->args.v[i]->key);
			dump_value(out, v->args.v[i]->val);
		}
		fputc(v->kind == V_LIST ? ']' : ')', out);
		break;
	case V_BLOCK:
		fputs("{", out);
		for (int i = 0; i < v->ranges.n; i++)
			fprintf(out, " stage %lld : %s .. %s;", v->ranges.v[i]->index,
			        v->ranges.v[i]->first, v->ranges.v[i]->last);
		fputs(" }", out);
		break;
	}
}

void ast_dump(FILE *out, const Program *p)
{
	fprintf(out, "model %s {\n", p->name ? p->name : "?");
	for (int i = 0; i < p->tensors.n; i++) {
		const TensorDecl *t = p->tensors.v[i];
		fprintf(out, "    %s %s : %s[", t->is_target ? "target" : "input", t->name, t->dtype);
		for (int j = 0; j < t->dims.n; j++) {
			if (j)
				fputs(", ", out);
			if (t->dims.v[j].name)
				fputs(t->dims.v[j].name, out);
			else
				fprintf(out, "%lld", t->dims.v[j].n);
		}
		fputs("];\n", out);
	}
	for (int i = 0; i < p->layers.n; i++) {
		const LayerDecl *l = p->layers.v[i];
		fprintf(out, "    layer %s", l->name);
		if (l->count >= 0)
			fprintf(out, "[%lld]", l->count);
		fprintf(out, " : %s", l->kind);
		if (l->has_parens) {
			Value call = { .kind = V_CALL, .s = "", .args = l->args };
			dump_value(out, &call);
		}
		if (l->from)
			fprintf(out, " from \"%s\"", l->from);
		fputs(";\n", out);
	}
	for (int i = 0; i < p->losses.n; i++)
		fprintf(out, "    loss %s;\n", p->losses.v[i]->kind);
	fputs("}\npipeline {\n", out);
	for (int i = 0; i < p->items.n; i++) {
		fprintf(out, "    %s = ", p->items.v[i]->key);
		dump_value(out, p->items.v[i]->val);
		fputs(";\n", out);
	}
	fputs("}\n", out);
}
