# runtime-lib.sh — shared set-up of the runtime's TAP tests (sourced by
# t/5??-runtime-*.t).  Finds the sources, builds or finds libpipert.a, and
# defines helpers to build fixture ranks and run them under mpirun.
#
# Environment:
#   PIPEC_BUILD   top build directory holding runtime/libpipert.a.  Default:
#                 the current directory when its runtime/libpipert.a is newer
#                 than every runtime source (make check runs there);
#                 otherwise the test compiles runtime/*.c itself into its
#                 scratch directory, so `prove t/...` works from a bare
#                 checkout.
#   PIPEC_CFLAGS  extra compiler flags, e.g. "-fsanitize=address,undefined -g"
#                 (LeakSanitizer is turned off: Open MPI's allocations read as
#                 leaks).  Default: $PIPEC_SANITIZERS, which make check sets
#                 to the build's sanitizer flags, so test programs link with
#                 a sanitized libpipert.a.
#   PIPEC_HAVE_RUNTIME  set by make check: anything but "yes" skips the tests
#                 (configure found no MPI or no CBLAS).
#   PIPEC_TMP     scratch root (default t/tmp under the current directory).
#   MPICC, MPIRUN, PYTHON   default mpicc, mpirun, and $PYTHON_NUMPY or
#                 /usr/bin/python3 (Debian's numpy belongs to it; a pyenv
#                 python3 on PATH may lack it).

rt_name=$(basename "$0" .t)
rt_top=$(cd "${srcdir:-$(dirname "$0")/..}" && pwd)
[ -f "$rt_top/runtime/pipert.h" ] || rt_top=$(cd "$(dirname "$0")/.." && pwd)
MPICC=${MPICC:-mpicc}
MPIRUN=${MPIRUN:-mpirun}
PYTHON=${PYTHON:-${PYTHON_NUMPY:-/usr/bin/python3}}
T=${PIPEC_TMP:-$PWD/t/tmp}/$rt_name
RT_CFLAGS="-std=c11 -O2 -Wall -Wextra -Werror ${PIPEC_CFLAGS:-${PIPEC_SANITIZERS:-}}"
RT_LIBS="-lopenblas -lm"

# Every way this machine needs Open MPI told: root in containers, more
# ranks than cores, waiting ranks that yield (docs/running.md).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# A sanitizer report exits with a status no test expects, so it fails.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:exitcode=86}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:exitcode=87}
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
MPIRUN_FLAGS="--oversubscribe --bind-to none --mca mpi_yield_when_idle 1"

tap_n=0
tap_failed=0
# ok STATUS DESCRIPTION: STATUS 0 passes.
ok() {
	tap_n=$((tap_n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $tap_n - $2"
	else
		echo "not ok $tap_n - $2"
		tap_failed=1
	fi
}
diag() { sed 's/^/# /'; }
done_testing() { echo "1..$tap_n"; exit $tap_failed; }

if [ -n "${PIPEC_HAVE_RUNTIME+set}" ] && [ "$PIPEC_HAVE_RUNTIME" != yes ]; then
	echo "1..0 # SKIP the runtime is not built (configure found no MPI or no CBLAS)"
	exit 0
fi
command -v "$MPICC" >/dev/null 2>&1 && command -v "$MPIRUN" >/dev/null 2>&1 || {
	echo "1..0 # SKIP no MPI ($MPICC, $MPIRUN)"
	exit 0
}

rm -rf "$T"
mkdir -p "$T" || { echo "Bail out! cannot create $T"; exit 1; }

# The library: the build's when it is at least as new as every runtime
# source, else compiled here.
rt_stale() {
	[ -n "$(find "$rt_top/runtime" -name '*.[ch]' -newer "$1" 2>/dev/null | head -n 1)" ]
}
if [ -n "${PIPEC_BUILD:-}" ]; then
	RT_LIB=$PIPEC_BUILD/runtime/libpipert.a
elif [ -f runtime/libpipert.a ] && ! rt_stale runtime/libpipert.a; then
	RT_LIB=$PWD/runtime/libpipert.a
else
	mkdir -p "$T/lib"
	for f in "$rt_top"/runtime/*.c; do
		$MPICC $RT_CFLAGS -fvect-cost-model=dynamic -I"$rt_top/runtime" -c "$f" \
			-o "$T/lib/$(basename "$f" .c).o" 2>"$T/lib/build.log" || {
			diag <"$T/lib/build.log"
			echo "Bail out! the runtime does not compile: $f"
			exit 1
		}
	done
	ar rcs "$T/lib/libpipert.a" "$T"/lib/*.o
	RT_LIB=$T/lib/libpipert.a
fi
[ -f "$RT_LIB" ] || { echo "Bail out! no $RT_LIB"; exit 1; }

# cc_test OUT SOURCE: a C test program against the library.
cc_test() {
	$MPICC $RT_CFLAGS -I"$rt_top/runtime" "$2" "$RT_LIB" $RT_LIBS -o "$1" 2>"$1.log" || {
		diag <"$1.log"
		echo "Bail out! $2 does not compile"
		exit 1
	}
}

# build_fixture NAME [CFLAGS...]: t/rt-fixtures/two_rank.c as the binaries
# NAME.r<rank> of a job with REPLICAS (from the flags, default 1).
build_fixture() {
	bf_name=$1
	shift
	bf_reps=1
	for bf_a in "$@"; do
		case $bf_a in -DREPLICAS=*) bf_reps=${bf_a#-DREPLICAS=} ;; esac
	done
	bf_j=0
	while [ $bf_j -lt "$bf_reps" ]; do
		for bf_p in 0 1; do
			$MPICC $RT_CFLAGS -I"$rt_top/runtime" -DPRANK=$bf_p -DREPLICA=$bf_j "$@" \
				"$rt_top/t/rt-fixtures/two_rank.c" "$RT_LIB" $RT_LIBS \
				-o "$T/$bf_name.r$((bf_j * 2 + bf_p))" 2>"$T/$bf_name.log" || {
				diag <"$T/$bf_name.log"
				echo "Bail out! the fixture does not compile ($*)"
				exit 1
			}
		done
		bf_j=$((bf_j + 1))
	done
}

# run_fixture NAME NRANKS OUTPREFIX [OPTIONS...]: runs the job MPMD (one
# binary per rank, all given OPTIONS); stdout, stderr to OUTPREFIX.out/.err,
# returns mpirun's status.
run_fixture() {
	rf_name=$1 rf_n=$2 rf_out=$3
	shift 3
	rf_apps=""
	rf_r=0
	while [ $rf_r -lt "$rf_n" ]; do
		[ $rf_r -gt 0 ] && rf_apps="$rf_apps :"
		rf_apps="$rf_apps -np 1 $T/$rf_name.r$rf_r"
		for rf_a in "$@"; do rf_apps="$rf_apps $rf_a"; done
		rf_r=$((rf_r + 1))
	done
	# shellcheck disable=SC2086  # rf_apps is a word list built above
	timeout 120 $MPIRUN $MPIRUN_FLAGS $rf_apps >"$rf_out.out" 2>"$rf_out.err"
}
