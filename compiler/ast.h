/* ast.h — the syntax tree of a .pipe file, built only by parser.y's actions.
 *
 * Nothing here is checked: names may be unknown, numbers out of range.  The
 * semantic pass (sema.c) reads this tree and produces the model IR (ir.h).
 * Every node is arena-allocated (util.h), so the grammar needs no
 * %destructor: an aborted parse leaks nothing that pool_free_all misses.
 */
#ifndef PIPEC_AST_H
#define PIPEC_AST_H

#include "diag.h"

typedef struct Value Value;

/* One argument of a call or a layer: `12` or `lr = 0.01`. */
typedef struct Arg {
	const char *key;        /* NULL for a positional argument */
	Loc key_loc;
	Value *val;
} Arg;

typedef VEC(Arg *) ArgVec;

#define VALUE_KINDS(X) \
	X(V_INT,    "an integer") \
	X(V_NUM,    "a number") \
	X(V_WORD,   "a name") \
	X(V_STRING, "a string") \
	X(V_LIST,   "a list") \
	X(V_CALL,   "a call") \
	X(V_BLOCK,  "a partition block")

typedef enum {
#define X(e, s) e,
	VALUE_KINDS(X)
#undef X
} ValueKind;

typedef struct StageRange {     /* stage 0 : fc1 .. act2; */
	long long index;
	Loc index_loc;
	const char *first, *last;
	Loc first_loc, last_loc;
	Loc loc;
} StageRange;

struct Value {
	ValueKind kind;
	Loc loc;
	long long i;            /* V_INT */
	double d;               /* V_INT and V_NUM (an integer's value as a double too) */
	const char *s;          /* V_WORD, V_STRING; V_CALL: the callee */
	ArgVec args;            /* V_LIST: the elements (key NULL); V_CALL: the arguments */
	VEC(StageRange *) ranges;   /* V_BLOCK */
};

typedef struct Dim {            /* `batch` or `100` */
	const char *name;       /* NULL for a number */
	long long n;
	Loc loc;
} Dim;

typedef struct TensorDecl {     /* input x : f32[batch, 100]; */
	int is_target;
	const char *name;
	const char *dtype;
	VEC(Dim) dims;
	Loc loc, name_loc, dtype_loc;
} TensorDecl;

typedef struct LayerDecl {      /* layer fc[3] : linear(100, 10) from "p{i}"; */
	const char *name;
	long long count;        /* -1: not repeated */
	const char *kind;
	int has_parens;
	ArgVec args;
	const char *from;       /* NULL if absent */
	Loc loc, name_loc, count_loc, kind_loc, from_loc;
} LayerDecl;

typedef struct LossDecl {
	const char *kind;
	Loc loc, kind_loc;
} LossDecl;

typedef struct PipeItem {       /* key = value;  or  partition { ... } */
	const char *key;
	Value *val;
	Loc loc, key_loc;
} PipeItem;

typedef struct Program {
	const SrcFile *file;
	const char *name;
	Loc name_loc;
	VEC(TensorDecl *) tensors;      /* inputs and targets in order */
	VEC(LayerDecl *) layers;
	VEC(LossDecl *) losses;
	VEC(PipeItem *) items;
	Loc pipeline_loc;
} Program;

/* Constructors used by the grammar. */
Value *ast_value(ValueKind kind, Loc loc);
Arg *ast_arg(const char *key, Loc key_loc, Value *val);

const char *value_kind_name(ValueKind k);

/* The front end (parse.c).  Parses a whole file; NULL after reporting errors. */
Program *parse_file(const SrcFile *f);
/* Parses one `KEY = VALUE` (a --set); NULL after reporting errors. */
PipeItem *parse_setting(const SrcFile *f);

/* Debug dump (pipec -dA). */
void ast_dump(FILE *out, const Program *p);

#endif
