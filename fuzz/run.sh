#!/bin/sh
# fuzz/run.sh [SECONDS] — builds the libFuzzer harnesses with clang (under
# AddressSanitizer and UndefinedBehaviorSanitizer) and runs each for SECONDS
# (default 60) over its corpus in fuzz/corpus/NAME.  New inputs that reach new
# coverage go to a scratch corpus (fuzz/build/corpus/NAME), never into the
# committed one; a crash leaves its reproducer in fuzz/build/ and fails.
#
# Environment: CLANG (default clang), MPICC (default mpicc: the harnesses
# link the runtime's rt_util.c, which calls MPI), FUZZ_BUILD (default
# fuzz/build), FUZZ_TARGETS (default "json state safetensors npy"),
# FUZZ_JOBS (parallel fuzzer processes per target, default 1).
# Exit: 0 all ran clean, 1 a crash or a build failure, 77 no clang with
# libFuzzer (the message says so: not a pass).
set -eu
secs=${1:-60}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
CLANG=${CLANG:-clang}
MPICC=${MPICC:-mpicc}
out=${FUZZ_BUILD:-$here/build}
targets=${FUZZ_TARGETS:-json state safetensors npy}
jobs=${FUZZ_JOBS:-1}

if ! command -v "$CLANG" >/dev/null 2>&1; then
	echo "fuzz: SKIPPED: no clang ($CLANG) on PATH; the fuzzers need clang's libFuzzer" >&2
	exit 77
fi
mkdir -p "$out"
# libFuzzer ships with clang on Debian, but not with every clang.
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }' >"$out/probe.c"
if ! "$CLANG" -fsanitize=fuzzer "$out/probe.c" -o "$out/probe" 2>/dev/null; then
	echo "fuzz: SKIPPED: $CLANG cannot link -fsanitize=fuzzer (libFuzzer missing)" >&2
	exit 77
fi
if ! command -v "$MPICC" >/dev/null 2>&1; then
	echo "fuzz: SKIPPED: no $MPICC (the runtime's headers and rt_util.c need MPI)" >&2
	exit 77
fi

# Instrument the readers themselves (coverage + sanitizers); the harness
# is linked with -fsanitize=fuzzer for libFuzzer's main.
cflags="-g -O1 -std=c11 -Wall -Wextra -Werror -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined"
cc="env OMPI_CC=$CLANG MPICH_CC=$CLANG $MPICC"
for f in rt_json rt_safetensors rt_npy rt_util; do
	$cc $cflags -fsanitize=fuzzer-no-link -I"$top/runtime" -c "$top/runtime/$f.c" -o "$out/$f.o" ||
		{ echo "fuzz: cannot build runtime/$f.c" >&2; exit 1; }
done
for t in $targets; do
	$cc $cflags -D_GNU_SOURCE -fsanitize=fuzzer -I"$top/runtime" "$here/fuzz_$t.c" \
		"$out/rt_json.o" "$out/rt_safetensors.o" "$out/rt_npy.o" "$out/rt_util.o" -lm \
		-o "$out/fuzz_$t" || { echo "fuzz: cannot build fuzz_$t.c" >&2; exit 1; }
done

# Leaks are bugs too, but only the readers' own: detect them.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
status=0
for t in $targets; do
	mkdir -p "$out/corpus/$t"
	dict= par=
	[ "$jobs" -gt 1 ] && par="-jobs=$jobs -workers=$jobs"
	[ -f "$here/$t.dict" ] && dict="-dict=$here/$t.dict"
	echo "fuzz: $t for ${secs}s"
	# -max_len: bigger inputs are slower, and nothing in these formats
	# needs more than a few kilobytes to reach every branch.
	if ! (cd "$out" && "./fuzz_$t" -max_total_time="$secs" -max_len=8192 -rss_limit_mb=2048 \
		-timeout=10 -print_final_stats=1 $par \
		-artifact_prefix="$out/$t-" $dict "$out/corpus/$t" "$here/corpus/$t" \
		>"$out/$t.log" 2>&1); then
		echo "fuzz: $t FAILED (reproducer: $out/$t-crash-* (or -leak-, -timeout-, -oom-); log: $out/$t.log)" >&2
		tail -40 "$out/$t.log" >&2
		status=1
	else
		grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "$out/$t.log" | tail -2 | sed "s/^/fuzz: $t: /"
	fi
done
exit $status
