## t/local.mk — the TAP test suite (see t/README.md).
##
## Every test speaks TAP and runs under Automake's TAP driver here or under
## `prove` by hand.  Shell tests are t/*.t; C unit tests are programs built
## from t/*-unit.c that link the compiler's passes (compiler/libpipec.a).

TEST_EXTENSIONS = .t
T_LOG_DRIVER = env AM_TAP_AWK='$(AWK)' $(SHELL) $(top_srcdir)/build-aux/tap-driver.sh
LOG_DRIVER = $(T_LOG_DRIVER)

AM_TESTS_ENVIRONMENT = \
	PIPEC='$(abs_top_builddir)/compiler/pipec'; export PIPEC; \
	PIPEC_PKGDATADIR='$(abs_top_srcdir)/templates'; export PIPEC_PKGDATADIR; \
	PIPEC_RUNTIME_INCLUDE='$(abs_top_srcdir)/runtime'; export PIPEC_RUNTIME_INCLUDE; \
	PIPEC_RUNTIME_LIB='$(abs_top_builddir)/runtime'; export PIPEC_RUNTIME_LIB; \
	PIPEC_BUILD='$(abs_top_builddir)'; export PIPEC_BUILD; \
	PIPEC_SRC='$(abs_top_srcdir)'; export PIPEC_SRC; \
	PYTHON_NUMPY='$(PYTHON_NUMPY)'; export PYTHON_NUMPY; \
	PIPEC_HAVE_RUNTIME='$(PIPEC_HAVE_RUNTIME)'; export PIPEC_HAVE_RUNTIME; \
	PIPEC_HAVE_CUDA_RUNTIME='$(PIPEC_HAVE_CUDA_RUNTIME)'; export PIPEC_HAVE_CUDA_RUNTIME; \
	PIPEC_SANITIZERS='$(SAN_CFLAGS)'; export PIPEC_SANITIZERS; \
	PIPEC_FULL='$(PIPEC_FULL)'; export PIPEC_FULL; \
	eval '$(SAN_ENV)'; export ASAN_OPTIONS UBSAN_OPTIONS;

UNIT_CPPFLAGS = -I$(top_srcdir)/compiler -I$(top_builddir)/compiler -I$(top_srcdir)/runtime -I$(top_srcdir)/t
UNIT_LDADD = compiler/libpipec.a -lm

check_PROGRAMS += %D%/sched-unit %D%/part-unit %D%/front-unit %D%/step-unit
%C%_sched_unit_SOURCES = %D%/sched-unit.c %D%/tap.h
%C%_sched_unit_CPPFLAGS = $(UNIT_CPPFLAGS)
%C%_sched_unit_LDADD = $(UNIT_LDADD)
%C%_part_unit_SOURCES = %D%/part-unit.c %D%/tap.h
%C%_part_unit_CPPFLAGS = $(UNIT_CPPFLAGS)
%C%_part_unit_LDADD = $(UNIT_LDADD)
%C%_front_unit_SOURCES = %D%/front-unit.c %D%/tap.h
%C%_front_unit_CPPFLAGS = $(UNIT_CPPFLAGS)
%C%_front_unit_LDADD = $(UNIT_LDADD)
%C%_step_unit_SOURCES = %D%/step-unit.c %D%/tap.h
%C%_step_unit_CPPFLAGS = $(UNIT_CPPFLAGS)
%C%_step_unit_LDADD = $(UNIT_LDADD)

TESTS += %D%/front-unit %D%/sched-unit %D%/part-unit %D%/step-unit
TESTS += $(PIPEC_SHELL_TESTS)
PIPEC_SHELL_TESTS = \
	%D%/001-cli.t \
	%D%/002-check-models.t \
	%D%/003-errors.t \
	%D%/004-fuzz.t \
	%D%/005-fuzz-compile.t \
	%D%/010-train-oracle.t \
	%D%/011-programs.t \
	%D%/020-schedule-cli.t \
	%D%/021-custom-schedule.t \
	%D%/022-zbv.t \
	%D%/040-transformers.t \
	%D%/041-minilm.t \
	%D%/042-generate.t \
	%D%/043-async.t \
	%D%/044-precision.t

EXTRA_DIST += $(PIPEC_SHELL_TESTS) %D%/lib.sh %D%/README.md %D%/errors %D%/fixtures \
	%D%/fuzz.py %D%/diag-sites.py \
	%D%/lib %D%/ref %D%/models

## GPT-2 generation's runtime kernels against the full-sequence ones; like
## runtime/local.mk's RUNTIME_TESTS, it builds its C driver with mpicc
## against libpipert.a (t/runtime-lib.sh) and skips itself without the runtime.
TESTS += %D%/507-runtime-kv.t
EXTRA_DIST += %D%/507-runtime-kv.t %D%/runtime-kv.c %D%/guarded.h

# Scratch the tests leave in the build tree (t/tmp: runtime fixtures, kept
# fuzz failures) goes with `make clean`, so distcheck's distclean is clean.
clean-local: clean-local-t
clean-local-t:
	-rm -rf t/tmp
.PHONY: clean-local-t
