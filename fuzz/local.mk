## fuzz/local.mk — the libFuzzer harnesses of the runtime's file readers
## (fuzz/README.md).  Not part of `make check`: `make fuzz-smoke` builds them
## with clang and runs each for FUZZ_SECONDS over its committed corpus; CI
## runs it in the sanitizer build (scripts/test.sh).  Without clang (or its
## libFuzzer) it says SKIPPED and that nothing was fuzzed.

FUZZ_SECONDS = 20
EXTRA_DIST += %D%/README.md %D%/run.sh %D%/coverage.sh %D%/make-corpus.py %D%/fuzz_common.h \
	%D%/fuzz_json.c %D%/fuzz_state.c %D%/fuzz_safetensors.c %D%/fuzz_npy.c %D%/corpus \
	%D%/json.dict %D%/state.dict %D%/safetensors.dict %D%/npy.dict \
	%D%/differential.py %D%/verdicts.c

## The harnesses build in fuzz-build/ (not fuzz/: in an in-tree build that
## is the source directory).
fuzz-smoke:
	@FUZZ_BUILD="$(abs_builddir)/fuzz-build" sh $(srcdir)/%D%/run.sh $(FUZZ_SECONDS); \
	st=$$?; \
	if test $$st -eq 77; then \
	  echo "fuzz-smoke: SKIPPED: the file readers were NOT fuzzed (reason above)"; \
	  exit 0; \
	fi; \
	exit $$st

clean-local: clean-local-fuzz
clean-local-fuzz:
	-rm -rf fuzz-build
.PHONY: fuzz-smoke clean-local-fuzz
