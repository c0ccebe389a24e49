/* lex-extra.h — the scanner's per-scan state (flex's yyextra). */
#ifndef PIPEC_LEX_EXTRA_H
#define PIPEC_LEX_EXTRA_H

#include "diag.h"

typedef struct LexExtra {
	const SrcFile *file;
	uint32_t off;           /* byte offset of the next token */
	int start_token;        /* returned first, then 0 (selects a --set parse) */
} LexExtra;

#endif
