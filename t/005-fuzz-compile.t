#!/bin/sh
# 005-fuzz-compile.t — what 004 asks of `pipec check`, asked of `pipec
# compile`: the same seeded mutations of the bundled models, the error cases
# and the test models, each compiled (into a scratch directory, the cpu and
# cuda backends on alternate cases) past the checks into the partition, the
# schedule, the verifier, the memory plan and the emitter.  Exit 0 or 1 (2
# only for a bad --set), never a signal, an internal error, a sanitizer
# report or a hang.
#
#   make check                 1,000 cases (a few seconds; most mutations stop
#                              at the checks, the valid ones go all the way)
#   PIPEC_FULL=1 make check    10,000 cases
#   PIPEC_FUZZ_CASES=N         N cases;  PIPEC_FUZZ_SEED=S  another seed
. "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3 || true)
[ -n "$PY" ] || skip_all "no python3 to drive the mutations"

cases=${PIPEC_FUZZ_CASES:-1000}
[ -n "${PIPEC_FULL:-}" ] && [ -z "${PIPEC_FUZZ_CASES:-}" ] && cases=10000
seed=${PIPEC_FUZZ_SEED:-20261202}
jobs=$(nproc 2>/dev/null || echo 2)
timeout_s=20
if [ -n "${PIPEC_SANITIZERS:-}" ]; then
	ASAN_OPTIONS=detect_leaks=1:exitcode=86:abort_on_error=0
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=87
	export ASAN_OPTIONS UBSAN_OPTIONS
	timeout_s=60
fi

diag "seed $seed, $cases cases, $jobs jobs, ${timeout_s} s per case${PIPEC_SANITIZERS:+, sanitizers on}"
"$PY" "$PIPEC_SRC/t/fuzz.py" --pipec "$PIPEC" --command compile --seed "$seed" \
	--cases "$cases" --jobs "$jobs" --timeout "$timeout_s" \
	--keep "${PIPEC_FUZZ_KEEP:-$PWD/t/tmp/fuzz-compile-failures}" \
	"$PIPEC_SRC"/models/*.pipe "$PIPEC_SRC"/t/errors/*.pipe "$PIPEC_SRC"/t/models/*.pipe
exit $?
