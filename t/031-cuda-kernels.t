#!/bin/sh
# 031-cuda-kernels.t — libpipert_cuda.a's kernels against the CPU kernels,
# element by element (t/runtime-cuda-kernels.c says the tolerances).  Runs
# only where a GPU is visible; elsewhere it still compiles and links the
# test program, and skips.  bench/gpu/check-and-time.sh runs it on a GPU
# machine too.
#
# The compile and link flags are those of an emitted CUDA program's
# Makefile (pipec compile --backend cuda), so this test builds the way
# users' programs build.

src=${PIPEC_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
PIPEC=${PIPEC:-$src/compiler/pipec}
lib=${PIPEC_RUNTIME_LIB:-$src/runtime}
T=${PIPEC_TMP:-$PWD/t/tmp}/031-cuda-kernels

if [ -n "${PIPEC_HAVE_CUDA_RUNTIME+set}" ]; then
	if [ "$PIPEC_HAVE_CUDA_RUNTIME" != yes ]; then
		echo "1..0 # SKIP libpipert_cuda.a is not built (configure found no CUDA, cuBLAS or NCCL)"
		exit 0
	fi
elif [ ! -f "$lib/libpipert_cuda.a" ]; then
	echo "1..0 # SKIP no libpipert_cuda.a in $lib (configure found no CUDA, cuBLAS or NCCL)"
	exit 0
fi
rm -rf "$T"
mkdir -p "$T"
if ! "$PIPEC" compile "$src/t/models/small-ce.pipe" -o "$T/prog" --backend cuda >"$T/emit.log" 2>&1; then
	echo "1..0 # SKIP pipec compile --backend cuda: $(head -1 "$T/emit.log")"
	exit 0
fi
mk() { sed -n "s/^$1 *= *//p" "$T/prog/Makefile"; }
# shellcheck disable=SC2046
if ! $(mk CC) $(mk CFLAGS) -Wall -Wextra -Werror $(mk CPPFLAGS) -I"$src/runtime" -I"$src/runtime/cuda" \
	-o "$T/kernels" "$src/t/runtime-cuda-kernels.c" $(mk LDFLAGS) $(mk LDLIBS) >"$T/build.log" 2>&1; then
	echo "1..1"
	echo "not ok 1 - t/runtime-cuda-kernels.c compiles and links against libpipert_cuda.a"
	sed 's/^/# /' "$T/build.log"
	exit 1
fi
"$T/kernels"
rc=$?
# 77: no CUDA device; the program has printed the plan with the reason.
[ $rc -eq 77 ] && exit 0
exit $rc
