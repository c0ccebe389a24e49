## compiler/local.mk — the pipec binary, and its passes as a library that
## the C unit tests in t/ link against.

bin_PROGRAMS += %D%/pipec
noinst_LIBRARIES = %D%/libpipec.a

# The front end's generated sources are build products (never committed).
AM_YFLAGS = -d -Wall -Wno-yacc
BUILT_SOURCES += %D%/parser.h

# Where compile finds the templates and the runtime (compiler/files.c): the
# installed directories, or, for the pipec of this build tree, the source
# tree's templates/ and runtime/ and this tree's runtime libraries.
PIPEC_CPPFLAGS = -I$(srcdir)/%D% -I%D% -I$(srcdir)/runtime \
	-DPIPEC_TEMPLATEDIR='"$(templatesdir)"' \
	-DPIPEC_LIBDIR='"$(libdir)"' -DPIPEC_INCLUDEDIR='"$(includedir)"' \
	-DPIPEC_BINDIR='"$(bindir)"' \
	-DPIPEC_SRCDIR='"$(abs_top_srcdir)"' -DPIPEC_BUILDDIR='"$(abs_top_builddir)"' \
	-DPIPEC_SAN_CFLAGS='"$(SAN_CFLAGS)"'

%C%_libpipec_a_CPPFLAGS = $(PIPEC_CPPFLAGS)
%C%_libpipec_a_SOURCES = \
	%D%/util.c %D%/util.h \
	%D%/diag.c %D%/diag.h \
	%D%/ast.c %D%/ast.h %D%/parse.c %D%/lex-extra.h \
	%D%/parser.y %D%/lexer.l \
	%D%/sema.c %D%/sema.h %D%/sema_int.h %D%/sema_model.c %D%/sema_pipe.c \
	%D%/ir.c %D%/ir.h \
	%D%/layers.c %D%/layers.h \
	%D%/partition.c %D%/partition.h \
	%D%/part.c %D%/part.h \
	%D%/costmodel.c %D%/costmodel.h \
	%D%/sched.c %D%/schedule.h runtime/pipert_ops.h \
	%D%/sched_gen.c %D%/sched_auto.c %D%/sched_cb.c %D%/sched_async.c %D%/sched_lower.c \
	%D%/sched_verify.c \
	%D%/sched_interp.c %D%/sched_interp.h \
	%D%/sched_sim.c %D%/sched_fmt.c %D%/sched_read.c \
	%D%/memplan.c %D%/memplan.h \
	%D%/step.c %D%/step_emit.c %D%/step_verify.c %D%/step.h \
	%D%/emit_c.c %D%/emit.h \
	%D%/files.c %D%/files.h

%C%_pipec_CPPFLAGS = $(PIPEC_CPPFLAGS)
%C%_pipec_SOURCES = %D%/main.c %D%/plan.c %D%/plan.h %D%/passes.c %D%/passes.h
%C%_pipec_LDADD = %D%/libpipec.a -lm
