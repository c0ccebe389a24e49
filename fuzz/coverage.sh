#!/bin/sh
# fuzz/coverage.sh — how much of the readers the corpora reach: builds the
# harnesses with clang's source coverage, replays fuzz/corpus/NAME (and
# what fuzzing found, FUZZ_BUILD/corpus/NAME, when present) once, and
# prints llvm-cov's line, branch and function report for rt_json.c,
# rt_safetensors.c and rt_npy.c.  Needs clang, llvm-profdata, llvm-cov.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
CLANG=${CLANG:-clang}
MPICC=${MPICC:-mpicc}
found=${FUZZ_BUILD:-$here/build}
out=$found/cov
targets=${FUZZ_TARGETS:-json state safetensors npy}
for tool in "$CLANG" llvm-profdata llvm-cov; do
	command -v "$tool" >/dev/null 2>&1 || { echo "coverage: no $tool" >&2; exit 77; }
done
mkdir -p "$out"
rm -f "$out"/*.profraw
cc="env OMPI_CC=$CLANG MPICH_CC=$CLANG $MPICC"
flags="-g -O0 -std=c11 -D_GNU_SOURCE -fprofile-instr-generate -fcoverage-mapping -fsanitize=fuzzer"
bins=
for t in $targets; do
	$cc $flags -I"$top/runtime" "$here/fuzz_$t.c" "$top/runtime/rt_json.c" \
		"$top/runtime/rt_safetensors.c" "$top/runtime/rt_npy.c" "$top/runtime/rt_util.c" -lm \
		-o "$out/cov_$t"
	dirs="$here/corpus/$t"
	[ -d "$found/corpus/$t" ] && dirs="$dirs $found/corpus/$t"
	# shellcheck disable=SC2086  # dirs is a list
	LLVM_PROFILE_FILE="$out/$t.profraw" "$out/cov_$t" -runs=0 $dirs >"$out/$t.log" 2>&1
	# llvm-cov: the first binary plain, the others after -object.
	if [ -z "$bins" ]; then bins="$out/cov_$t"; else bins="$bins -object $out/cov_$t"; fi
done
llvm-profdata merge -sparse "$out"/*.profraw -o "$out/all.profdata"
# shellcheck disable=SC2086
llvm-cov report $bins -instr-profile="$out/all.profdata" \
	"$top/runtime/rt_json.c" "$top/runtime/rt_safetensors.c" "$top/runtime/rt_npy.c"
echo "coverage: per line: llvm-cov show $bins -instr-profile=$out/all.profdata $top/runtime/rt_json.c"
