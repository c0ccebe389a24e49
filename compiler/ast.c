/* ast.c — the syntax tree's constructors (called by the grammar's actions)
 * and its debug dump (pipec -dA).  The parser's entry points are parse.c's. */
#include "ast.h"

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
