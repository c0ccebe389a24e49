/* parse.c — the front end's entry points: a whole file, or one --set.
 *
 * Runs flex's reentrant scanner (lexer.l) under bison's pure parser
 * (parser.y), whose actions build the tree through ast.c.  Kept apart from
 * ast.c so that the grammar calls the tree's constructors and nothing
 * calls back: parse.c -> parser.y -> ast.c, parse.c -> lexer.l.
 */
#include "ast.h"
#include "parser.h"
#include "lex-extra.h"

/* flex's reentrant API, declared by hand so lexer.h is not needed here. */
typedef struct yy_buffer_state *YY_BUFFER_STATE;
int yylex_init_extra(LexExtra *extra, yyscan_t *scanner);
int yylex_destroy(yyscan_t scanner);
YY_BUFFER_STATE yy_scan_bytes(const char *bytes, int len, yyscan_t scanner);

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
