## compiler/local.mk — the pipec binary, and its passes as a library that
## the C unit tests in t/ link against.

bin_PROGRAMS += %D%/pipec
noinst_LIBRARIES = %D%/libpipec.a

# The front end's generated sources are build products (never committed).
AM_YFLAGS = -d -Wall -Wno-yacc
BUILT_SOURCES += %D%/parser.h

PIPEC_CPPFLAGS = -I$(srcdir)/%D% -I%D% -I$(srcdir)/runtime \
	-DPIPEC_PKGDATADIR='"$(pkgdatadir)"' \
	-DPIPEC_LIBDIR='"$(libdir)"' -DPIPEC_INCLUDEDIR='"$(includedir)"' \
	-DPIPEC_SAN_CFLAGS='"$(SAN_CFLAGS)"'

%C%_libpipec_a_CPPFLAGS = $(PIPEC_CPPFLAGS)
%C%_libpipec_a_SOURCES = \
	%D%/util.c %D%/util.h \
	%D%/diag.c %D%/diag.h \
	%D%/ast.c %D%/ast.h %D%/lex-extra.h \
	%D%/parser.y %D%/lexer.l \
	%D%/sema.c %D%/sema.h \
	%D%/ir.c %D%/ir.h \
	%D%/partition.c %D%/partition.h \
	%D%/part.c %D%/part.h \
	%D%/costmodel.c %D%/costmodel.h \
	%D%/sched.c %D%/schedule.h runtime/pipert_ops.h \
	%D%/sched_gen.c %D%/sched_async.c %D%/sched_lower.c %D%/sched_verify.c \
	%D%/sched_sim.c %D%/sched_fmt.c %D%/sched_read.c \
	%D%/memplan.c %D%/memplan.h \
	%D%/step.c %D%/step_emit.c %D%/step_verify.c %D%/step.h \
	%D%/emit_c.c %D%/emit.h

%C%_pipec_CPPFLAGS = $(PIPEC_CPPFLAGS)
%C%_pipec_SOURCES = %D%/main.c
%C%_pipec_LDADD = %D%/libpipec.a -lm
