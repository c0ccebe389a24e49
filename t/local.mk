## t/local.mk — the TAP test suite (see t/README.md).
##
## Every test speaks TAP and runs under Automake's TAP driver here or under
## `prove` by hand.  Shell tests are t/*.t; C unit tests are programs built
## from t/*-unit.c that link the compiler's passes (compiler/libpipec.a).

TEST_EXTENSIONS = .t
T_LOG_DRIVER = env AM_TAP_AWK='$(AWK)' $(SHELL) $(top_srcdir)/build-aux/tap-driver.sh
LOG_DRIVER = $(T_LOG_DRIVER)

# The build tree's pipec finds the templates and the in-tree runtime itself
# (compiler/files.c): no PIPEC_TEMPLATES, PIPEC_RUNTIME_INCLUDE, _LIB here.
AM_TESTS_ENVIRONMENT = \
	PIPEC='$(abs_top_builddir)/compiler/pipec'; export PIPEC; \
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

## The one list of tests (t/README.md, "Numbering").  Every test is
## registered here, whatever it exercises: the runtime's and the CUDA
## backend's tests are listed unconditionally and skip themselves (TAP
## `1..0 # SKIP`) when configure did not build the library they need
## (PIPEC_HAVE_RUNTIME, PIPEC_HAVE_CUDA_RUNTIME above; t/runtime-lib.sh,
## t/030-cuda-build.t), so `make check` runs the same set everywhere.

## C unit tests: programs linking compiler/libpipec.a.
TESTS += %D%/front-unit %D%/sched-unit %D%/part-unit %D%/step-unit

## 0xx: pipec and the programs it emits.
TESTS += $(PIPEC_SHELL_TESTS)
PIPEC_SHELL_TESTS = \
	%D%/001-cli.t \
	%D%/002-check-models.t \
	%D%/003-errors.t \
	%D%/004-fuzz.t \
	%D%/005-fuzz-compile.t \
	%D%/006-docs.t \
	%D%/007-deps.t \
	%D%/010-train-oracle.t \
	%D%/011-programs.t \
	%D%/012-install.t \
	%D%/013-prerun.t \
	%D%/014-peak-memory.t \
	%D%/020-schedule-cli.t \
	%D%/021-custom-schedule.t \
	%D%/022-zbv.t \
	%D%/023-eval-step.t \
	%D%/024-torch-schedules.t \
	%D%/025-zbpaper.t \
	%D%/026-plan.t \
	%D%/040-transformers.t \
	%D%/041-minilm.t \
	%D%/042-generate.t \
	%D%/043-async.t \
	%D%/044-precision.t \
	%D%/045-training.t \
	%D%/046-optim.t \
	%D%/047-data-schedules.t \
	%D%/048-checkpoint.t \
	%D%/049-llama.t \
	%D%/050-generate-real.t \
	%D%/051-llama-real-config.t

EXTRA_DIST += $(PIPEC_SHELL_TESTS) %D%/lib.sh %D%/README.md %D%/errors %D%/fixtures \
	%D%/fuzz.py %D%/diag-sites.py %D%/doc-links.py \
	%D%/lib %D%/ref %D%/models

## 03x: the CUDA backend (runtime/cuda/): the emitted CUDA programs build
## (no GPU needed); the device kernels equal the CPU's (skips without a
## GPU).  Both skip where libpipert_cuda.a is not built.
CUDA_TESTS = %D%/030-cuda-build.t %D%/031-cuda-kernels.t
TESTS += $(CUDA_TESTS)
EXTRA_DIST += $(CUDA_TESTS) %D%/runtime-cuda-kernels.c

## 5xx: the runtime (runtime/, libpipert.a) on its own.  They compile their
## C programs and the two-rank fixture with mpicc against libpipert.a
## (t/runtime-lib.sh explains their environment) and skip themselves when
## the runtime is not built.  507 checks GPT-2 generation's key/value-cache
## kernels against the full-sequence ones.
RUNTIME_TESTS = \
	%D%/500-runtime-kernels.t \
	%D%/501-runtime-io.t \
	%D%/502-runtime-mpi.t \
	%D%/503-runtime-errors.t \
	%D%/504-runtime-faults.t \
	%D%/505-runtime-tf.t \
	%D%/506-runtime-inputs.t \
	%D%/507-runtime-kv.t \
	%D%/508-runtime-data.t \
	%D%/509-runtime-hostile.t \
	%D%/510-runtime-llama.t
TESTS += $(RUNTIME_TESTS)
EXTRA_DIST += $(RUNTIME_TESTS) %D%/runtime-lib.sh %D%/runtime-kernels.c %D%/runtime-io.c \
	%D%/runtime-ref.py %D%/runtime-data.c %D%/rt-fixtures/two_rank.c %D%/runtime-tf.c %D%/runtime-inputs.c \
	%D%/runtime-kv.c %D%/runtime-llama.c %D%/guarded.h

# Scratch the tests leave in the build tree (t/tmp: runtime fixtures, kept
# fuzz failures) goes with `make clean`, so distcheck's distclean is clean.
clean-local: clean-local-t
clean-local-t:
	-rm -rf t/tmp
.PHONY: clean-local-t
