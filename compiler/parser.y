/* parser.y — the .pipe grammar.
 *
 * Actions only build the tree (ast.h); every check happens in sema.c, as in
 * PostgreSQL's gram.y.  Locations are byte ranges (Loc, diag.h).
 */

/* Pure (reentrant) parser: no globals, several parses per process. */
%define api.pure full
/* Locations on every symbol, in our own byte-range type. */
%locations
%define api.location.type {Loc}
/* The scanner handle goes to yylex and yyparse alike. */
%param {yyscan_t scanner}
/* Where the tree goes: the whole file, or one --set. */
%parse-param {Program *prog} {PipeItem **setting}
/* "unexpected X, expecting Y" with the tokens' string aliases, written by
 * yyreport_syntax_error below (custom: it hides SET_MODE, quotes keywords
 * and names a keyword used as a name). */
%define parse.error custom
/* Lookahead correction: the expected-token lists are exact. */
%define parse.lac full
/* The grammar is LALR(1) with no conflicts; keep it so. */
%expect 0

%code requires {
#include "ast.h"
typedef void *yyscan_t;
}

%code provides {
int yylex(YYSTYPE *yylval, YYLTYPE *yylloc, yyscan_t scanner);
}

%code {
#include <string.h>

/* The range of a rule is its first symbol's start to its last's end. */
#define YYLLOC_DEFAULT(Cur, Rhs, N) do { \
	if (N) { \
		(Cur).file = YYRHSLOC(Rhs, 1).file; \
		(Cur).off = YYRHSLOC(Rhs, 1).off; \
		(Cur).end = YYRHSLOC(Rhs, N).end; \
	} else { \
		(Cur).file = YYRHSLOC(Rhs, 0).file; \
		(Cur).off = (Cur).end = YYRHSLOC(Rhs, 0).end; \
	} \
} while (0)

/* Both are defined at the end, where the parser's own types are known. */
static void yyerror(YYLTYPE *loc, yyscan_t scanner, Program *prog, PipeItem **setting,
                    const char *msg);

static Loc no_loc;
}

%union {
	long long ival;
	double dval;
	char *str;
	Value *val;
	Arg *arg;
	ArgVec args;
	Dim dim;
	TensorDecl *tensor;
	LayerDecl *layer;
	PipeItem *item;
	StageRange *range;
}

%token MODEL "model" PIPELINE "pipeline" INPUT "input" TARGET "target"
       LAYER "layer" LOSS "loss" STAGE "stage" FROM "from"
%token DOTDOT ".."
%token <ival> INT "integer"
%token <dval> NUM "number"
%token <str> IDENT "identifier" WORD "word" STRING "string"
%token SET_MODE "start of setting"   /* never in a file: selects parse_setting */

%type <val> value block ranges
%type <arg> arg
%type <args> args list call_args
%type <dim> dim
%type <tensor> tensor_decl dims
%type <layer> layer_decl
%type <ival> count
%type <str> from
%type <item> pipe_item
%type <range> range

%%

start
	: file
	| SET_MODE setting
	;

file
	: model_block pipeline_block
	;

setting
	: IDENT '=' value opt_semi
		{ PipeItem *it = xalloc(sizeof *it); it->key = $1; it->key_loc = @1;
		  it->val = $3; it->loc = @$; *setting = it; }
	| IDENT block opt_semi
		{ PipeItem *it = xalloc(sizeof *it); it->key = $1; it->key_loc = @1;
		  it->val = $2; it->loc = @$; *setting = it; }
	;

opt_semi: %empty | ';' ;

model_block
	: MODEL IDENT '{' model_items '}'
		{ prog->name = $2; prog->name_loc = @2; }
	/* A missing '}': recover at 'pipeline' (the only token that may follow)
	 * and go on to check the pipeline block. */
	| MODEL IDENT '{' model_items error
		{ prog->name = $2; prog->name_loc = @2; }
	;

model_items
	: %empty
	| model_items model_item
	;

model_item
	: tensor_decl        { VEC_PUSH(prog->tensors, $1); }
	| layer_decl         { VEC_PUSH(prog->layers, $1); }
	| LOSS IDENT ';'
		{ LossDecl *l = xalloc(sizeof *l); l->kind = $2; l->kind_loc = @2; l->loc = @$;
		  VEC_PUSH(prog->losses, l); }
	| error ';'          { yyerrok; }
	;

tensor_decl
	: INPUT IDENT ':' IDENT '[' dims ']' ';'
		{ $$ = $6; $$->name = $2; $$->name_loc = @2; $$->dtype = $4; $$->dtype_loc = @4;
		  $$->loc = @$; }
	| TARGET IDENT ':' IDENT '[' dims ']' ';'
		{ $$ = $6; $$->is_target = 1; $$->name = $2; $$->name_loc = @2; $$->dtype = $4;
		  $$->dtype_loc = @4; $$->loc = @$; }
	;

dims
	: dim                { $$ = xalloc(sizeof *$$); VEC_PUSH($$->dims, $1); }
	| dims ',' dim       { $$ = $1; VEC_PUSH($$->dims, $3); }
	;

dim
	: IDENT              { $$.name = $1; $$.n = 0; $$.loc = @1; }
	| INT                { $$.name = NULL; $$.n = $1; $$.loc = @1; }
	;

layer_decl
	: LAYER IDENT count ':' IDENT call_args from ';'
		{ $$ = xalloc(sizeof *$$); $$->name = $2; $$->name_loc = @2; $$->count = $3;
		  $$->count_loc = @3; $$->kind = $5; $$->kind_loc = @5; $$->args = $6;
		  $$->has_parens = @6.end > @6.off; $$->from = $7; $$->from_loc = @7; $$->loc = @$; }
	;

count
	: %empty             { $$ = -1; }
	| '[' INT ']'        { $$ = $2; }
	;

call_args
	: %empty             { memset(&$$, 0, sizeof $$); }
	| '(' ')'            { memset(&$$, 0, sizeof $$); }
	| '(' args ')'       { $$ = $2; }
	;

from
	: %empty             { $$ = NULL; }
	| FROM STRING        { $$ = $2; }
	;

args
	: arg                { memset(&$$, 0, sizeof $$); VEC_PUSH($$, $1); }
	| args ',' arg       { $$ = $1; VEC_PUSH($$, $3); }
	;

arg
	: value              { $$ = ast_arg(NULL, no_loc, $1); }
	| IDENT '=' value    { $$ = ast_arg($1, @1, $3); }
	;

value
	: INT                { $$ = ast_value(V_INT, @1); $$->i = $1; $$->d = (double)$1; }
	| NUM                { $$ = ast_value(V_NUM, @1); $$->d = $1; }
	/* a negative number: every key and argument range-checks it (sema) */
	| '-' INT            { $$ = ast_value(V_INT, @$); $$->i = -$2; $$->d = -(double)$2; }
	| '-' NUM            { $$ = ast_value(V_NUM, @$); $$->d = -$2; }
	| IDENT              { $$ = ast_value(V_WORD, @1); $$->s = $1; }
	| WORD               { $$ = ast_value(V_WORD, @1); $$->s = $1; }
	| STRING             { $$ = ast_value(V_STRING, @1); $$->s = $1; }
	| '[' ']'            { $$ = ast_value(V_LIST, @$); }
	| '[' list ']'       { $$ = ast_value(V_LIST, @$); $$->args = $2; }
	| IDENT '(' ')'      { $$ = ast_value(V_CALL, @$); $$->s = $1; }
	| IDENT '(' args ')' { $$ = ast_value(V_CALL, @$); $$->s = $1; $$->args = $3; }
	/* a schedule with a hyphen that takes arguments: zb-auto(memory = 2) */
	| WORD '(' ')'       { $$ = ast_value(V_CALL, @$); $$->s = $1; }
	| WORD '(' args ')'  { $$ = ast_value(V_CALL, @$); $$->s = $1; $$->args = $3; }
	| block
	;

list
	: value              { memset(&$$, 0, sizeof $$); VEC_PUSH($$, ast_arg(NULL, no_loc, $1)); }
	| list ',' value     { $$ = $1; VEC_PUSH($$, ast_arg(NULL, no_loc, $3)); }
	;

block
	: '{' ranges '}'     { $$ = $2; $$->loc = @$; }
	;

ranges
	: %empty             { $$ = ast_value(V_BLOCK, @$); }
	| ranges range       { $$ = $1; if ($2) VEC_PUSH($$->ranges, $2); }
	;

range
	: STAGE INT ':' IDENT DOTDOT IDENT ';'
		{ $$ = xalloc(sizeof *$$); $$->index = $2; $$->index_loc = @2;
		  $$->first = $4; $$->first_loc = @4; $$->last = $6; $$->last_loc = @6;
		  $$->loc = @$; }
	| STAGE INT ':' IDENT ';'
		{ $$ = xalloc(sizeof *$$); $$->index = $2; $$->index_loc = @2;
		  $$->first = $$->last = $4; $$->first_loc = $$->last_loc = @4; $$->loc = @$; }
	| error ';'          { $$ = NULL; yyerrok; }
	;

pipeline_block
	: PIPELINE '{' pipe_items '}'   { prog->pipeline_loc = @1; }
	;

pipe_items
	: %empty
	| pipe_items pipe_item   { if ($2) VEC_PUSH(prog->items, $2); }
	;

pipe_item
	: IDENT '=' value ';'
		{ $$ = xalloc(sizeof *$$); $$->key = $1; $$->key_loc = @1; $$->val = $3; $$->loc = @$; }
	| IDENT block
		{ $$ = xalloc(sizeof *$$); $$->key = $1; $$->key_loc = @1; $$->val = $2; $$->loc = @$; }
	| error ';'          { $$ = NULL; yyerrok; }
	;

%%

static void yyerror(YYLTYPE *loc, yyscan_t scanner, Program *prog, PipeItem **setting,
                    const char *msg)
{
	(void)scanner; (void)prog; (void)setting;
	/* With parse.error custom, bison calls this only when its stack is
	 * full ("memory exhausted"), which only nesting such as [[[...]]] or
	 * f(f(...)) can do: bad input, not a lack of memory. */
	if (!strcmp(msg, "memory exhausted"))
		diag_error(*loc, "nested too deeply (more than %d levels)", YYMAXDEPTH);
	else
		diag_error(*loc, "%s", msg);
}

static int is_keyword(yysymbol_kind_t k)
{
	return k >= YYSYMBOL_MODEL && k <= YYSYMBOL_FROM;
}

/* A token's name in a message: keywords and ".." in quotes, like the
 * punctuation ("unexpected 'model'"); classes bare ("identifier"). */
static const char *token_name(yysymbol_kind_t k)
{
	return is_keyword(k) || k == YYSYMBOL_DOTDOT ? xprintf("'%s'", yysymbol_name(k))
	                                             : yysymbol_name(k);
}

/* Bison's detailed message ("syntax error, unexpected X, expecting A or
 * B", at most four alternatives), except that the start-of-setting marker
 * is never offered, a keyword where a name belongs says so, and a block
 * left open at 'pipeline' or the end says that a '}' may be missing. */
static int yyreport_syntax_error(const yypcontext_t *ctx, yyscan_t scanner, Program *prog,
                                 PipeItem **setting)
{
	(void)scanner; (void)prog; (void)setting;
	yysymbol_kind_t exp[YYNTOKENS];
	/* < 0: lookahead correction ran out of stack (deep nesting); the
	 * message then goes without the expected tokens */
	int n = yypcontext_expected_tokens(ctx, exp, YYNTOKENS);
	yysymbol_kind_t tok = yypcontext_token(ctx);
	Loc loc = *yypcontext_location(ctx);
	int k = 0, want_name = 0;
	for (int i = 0; i < n; i++)
		if (exp[i] != YYSYMBOL_SET_MODE) {
			want_name |= exp[i] == YYSYMBOL_IDENT;
			exp[k++] = exp[i];
		}
	if (want_name && is_keyword(tok)) {
		diag_error(loc, "'%s' is a keyword and cannot be used as a name", yysymbol_name(tok));
		return 0;
	}
	const char *msg = "syntax error";
	int want_brace = 0;
	for (int i = 0; i < k; i++)
		want_brace |= exp[i] == YYTRANSLATE('}');
	if (tok != YYSYMBOL_YYEMPTY) {
		msg = xprintf("%s, unexpected %s", msg, token_name(tok));
		for (int i = 0; k <= 4 && i < k; i++)
			msg = xprintf("%s%s%s", msg, i ? " or " : ", expecting ", token_name(exp[i]));
		/* a block left open: say so, even when the list is too long to give */
		if (k > 4 && want_brace
		    && (tok == YYSYMBOL_YYEOF || tok == YYSYMBOL_MODEL || tok == YYSYMBOL_PIPELINE))
			msg = xprintf("%s; is a '}' missing?", msg);
	}
	diag_error(loc, "%s", msg);
	return 0;
}
