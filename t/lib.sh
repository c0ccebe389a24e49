# t/lib.sh — a small TAP library for the end-to-end tests of pipec (POSIX sh).
#
#   . "$(dirname "$0")/lib.sh"
#   plan 2
#   run_pipec check "$PIPEC_SRC/models/mlp4.pipe"
#   is "$rc" 0 "mlp4 checks"
#   like "$out" '11,126,282 parameters' "check prints the parameter count"
#   done_testing
#
# Environment (make check sets it through t/local.mk's AM_TESTS_ENVIRONMENT;
# by hand, `prove t/001-cli.t` from the repository root uses the defaults):
#   PIPEC      the pipec binary (default: build/compiler/pipec in the source tree)
#   PIPEC_SRC  the source tree (default: the directory above this file), for
#              models/ and t/ when srcdir != builddir
#   TMPDIR     where the scratch directory $T goes (removed on exit)
#
# Assertions print "ok N - DESC" or "not ok N - DESC" followed by "#" lines
# saying what was expected and what was got.  done_testing exits non-zero
# when any failed.

lib_dir=$(cd "$(dirname "$0")" && pwd)
PIPEC_SRC=${PIPEC_SRC:-$(cd "$lib_dir/.." && pwd)}
PIPEC=${PIPEC:-$PIPEC_SRC/build/compiler/pipec}
export PIPEC PIPEC_SRC

T=$(mktemp -d "${TMPDIR:-/tmp}/pipec-test.XXXXXX") || {
	echo "Bail out! cannot create a scratch directory under ${TMPDIR:-/tmp}"
	exit 1
}
trap 'rm -rf "$T"' EXIT
trap 'rm -rf "$T"; exit 130' INT TERM HUP

tap_n=0
tap_failed=0
tap_planned=

# plan N: the number of tests (or call done_testing without a plan).
plan() {
	tap_planned=$1
	echo "1..$1"
}

# skip_all REASON: the whole file is skipped.
skip_all() {
	echo "1..0 # SKIP $*"
	exit 0
}

# diag MESSAGE...: a TAP comment; with no argument, stdin is quoted line by line.
diag() {
	if [ $# -gt 0 ]; then
		printf '%s\n' "$*" | sed 's/^/# /'
	else
		sed 's/^/# /'
	fi
}

# pass DESC / fail DESC: one result.
pass() {
	tap_n=$((tap_n + 1))
	echo "ok $tap_n - $*"
}
fail() {
	tap_n=$((tap_n + 1))
	tap_failed=$((tap_failed + 1))
	echo "not ok $tap_n - $*"
}

# skip DESC REASON: a test that cannot run here.
skip() {
	tap_n=$((tap_n + 1))
	echo "ok $tap_n - $1 # SKIP $2"
}

# ok DESC COMMAND...: passes when COMMAND exits 0.
ok() {
	ok_desc=$1
	shift
	if "$@"; then
		pass "$ok_desc"
	else
		fail "$ok_desc"
		diag "  command failed: $*"
	fi
}

# is GOT WANT DESC: string equality.
is() {
	if [ "$1" = "$2" ]; then
		pass "$3"
	else
		fail "$3"
		diag "  got:      '$1'"
		diag "  expected: '$2'"
		return 1
	fi
}

# like TEXT REGEX DESC: some line of TEXT matches the extended regex.
like() {
	if printf '%s\n' "$1" | grep -Eq -e "$2"; then
		pass "$3"
	else
		fail "$3"
		diag "  no line matches: $2"
		printf '%s\n' "$1" | head -20 | diag
		return 1
	fi
}

# unlike TEXT REGEX DESC: no line of TEXT matches.
unlike() {
	if printf '%s\n' "$1" | grep -Eq -e "$2"; then
		fail "$3"
		diag "  a line matches: $2"
		printf '%s\n' "$1" | grep -E -e "$2" | head -5 | diag
		return 1
	else
		pass "$3"
	fi
}

# contains TEXT STRING DESC: TEXT contains STRING literally.
contains() {
	case $1 in
	*"$2"*) pass "$3" ;;
	*)
		fail "$3"
		diag "  does not contain: $2"
		printf '%s\n' "$1" | head -20 | diag
		return 1
		;;
	esac
}

# run_pipec ARGS...: runs $PIPEC with stdin from /dev/null and a time limit
# (PIPEC_TIMEOUT seconds, default 60).  Sets rc (the exit status; 124 on a
# time-out), out and err (stdout and stderr, also in $T/stdout, $T/stderr).
# shellcheck disable=SC2034  # rc, out and err are for the test that sourced this
run_pipec() {
	if command -v timeout >/dev/null 2>&1; then
		timeout "${PIPEC_TIMEOUT:-60}" "$PIPEC" "$@" <"/dev/null" >"$T/stdout" 2>"$T/stderr"
	else
		"$PIPEC" "$@" <"/dev/null" >"$T/stdout" 2>"$T/stderr"
	fi
	rc=$?
	out=$(cat "$T/stdout")
	err=$(cat "$T/stderr")
	return 0
}

# done_testing: the plan if none was given; exit 1 if anything failed or
# the count is off.
done_testing() {
	if [ -z "$tap_planned" ]; then
		echo "1..$tap_n"
	elif [ "$tap_planned" -ne "$tap_n" ]; then
		echo "# planned $tap_planned tests but ran $tap_n"
		exit 1
	fi
	[ "$tap_failed" -eq 0 ] || echo "# failed $tap_failed of $tap_n"
	[ "$tap_failed" -eq 0 ]
	exit $?
}

# The binary must exist; saying so beats a page of failures.
[ -x "$PIPEC" ] || {
	echo "Bail out! no pipec at '$PIPEC' (build it, or set PIPEC)"
	exit 1
}
