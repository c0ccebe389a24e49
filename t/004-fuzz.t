#!/bin/sh
# 004-fuzz.t — bad input never crashes pipec.  t/fuzz.py makes seeded,
# repeatable random mutations of the bundled models and the error cases
# (byte flips, deletions, duplications, line and token shuffles, token
# replacements, truncation, splices between files, huge numbers, deep
# nesting, long lines and names, many layers, random binary, mutated
# --set) and runs `pipec check` on each: exit 0 or 1 (2 only for a bad
# --set), located messages with a caret, never a signal, an internal error,
# a sanitizer report or a hang.
#
#   make check                 5,000 cases (about 25 s on 2 cores in the
#                              sanitizer build, 8 s in the normal one)
#   PIPEC_FULL=1 make check    50,000 cases
#   PIPEC_FUZZ_CASES=N         N cases;  PIPEC_FUZZ_SEED=S  another seed
#
# In the sanitizer build (PIPEC_SANITIZERS set by make check) pipec runs
# under ASan and UBSan with leak checking on; a report fails the case.
. "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3 || true)
[ -n "$PY" ] || skip_all "no python3 to drive the mutations"

cases=${PIPEC_FUZZ_CASES:-5000}
[ -n "${PIPEC_FULL:-}" ] && [ -z "${PIPEC_FUZZ_CASES:-}" ] && cases=50000
seed=${PIPEC_FUZZ_SEED:-20261123}
jobs=$(nproc 2>/dev/null || echo 2)

if [ -n "${PIPEC_SANITIZERS:-}" ]; then
	# A report must be unmistakable: its own exit status, and the text
	# t/fuzz.py looks for.  pipec frees its arena at exit, so leaks count.
	ASAN_OPTIONS=detect_leaks=1:exitcode=86:abort_on_error=0
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=87
	export ASAN_OPTIONS UBSAN_OPTIONS
	timeout_s=60
else
	timeout_s=20
fi

diag "seed $seed, $cases cases, $jobs jobs, ${timeout_s} s per case${PIPEC_SANITIZERS:+, sanitizers on}"
# Failing inputs are kept for a look (t/tmp is ignored by git).
"$PY" "$PIPEC_SRC/t/fuzz.py" --pipec "$PIPEC" --seed "$seed" --cases "$cases" \
	--jobs "$jobs" --timeout "$timeout_s" --keep "${PIPEC_FUZZ_KEEP:-$PWD/t/tmp/fuzz-failures}" \
	"$PIPEC_SRC"/models/*.pipe "$PIPEC_SRC"/t/errors/*.pipe
exit $?
