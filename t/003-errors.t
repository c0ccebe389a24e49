#!/bin/sh
# 003-errors.t — the error suite: every t/errors/*.pipe is a small program
# with one thing wrong (or, in multi-*.pipe, several independent things),
# and says in comments what pipec must print:
#
#   # args: --set stages=3                     extra arguments (optional)
#   # expect: 17:20: the partition lists ...   each error line, in order
#   # note: --set 'stages=3':1:8: 'stages' ... a note that must appear (optional)
#
# For each file: exit 1, nothing on stdout, exactly the expected
# `FILE:LINE:COL: error: MESSAGE` lines in that order, and after the first
# one the source line and a caret under the column.  Then, so that no
# check goes untested: every diag_error()/sema_unknown() call site in the
# semantic pass (compiler/sema*.c), lexer.l and parser.y must have a case
# here (t/diag-sites.py).
. "$(dirname "$0")/lib.sh"
LC_ALL=C
export LC_ALL

dir=$PIPEC_SRC/t/errors
q="'"

# expected_lines FILE TAG: the `# TAG:` lines as pipec prints them.
expected_lines() {
	awk -v f="$1" -v tag="# $2: " -v kind="$3" -v q="$q" '
		index($0, tag) == 1 {
			s = substr($0, length(tag) + 1)
			if (match(s, "^(--set " q "[^" q "]*" q ":)?[0-9]+:[0-9]+: ")) {
				pre = substr(s, 1, RLENGTH - 2)
				print (pre ~ /^--set / ? "" : f ":") pre ": " kind ": " substr(s, RLENGTH + 1)
			} else {
				print "malformed " tag s
			}
		}' "$1"
}

n=0
for f in "$dir"/*.pipe; do
	name=${f##*/}
	n=$((n + 1))
	args=$(sed -n 's/^# args: //p' "$f")
	# shellcheck disable=SC2086
	run_pipec check "$f" $args
	is "$rc" 1 "$name: exit 1"
	is "$out" "" "$name: nothing on stdout"

	want=$(expected_lines "$f" expect error)
	got=$(printf '%s\n' "$err" | grep -E '^[^ ].*:[0-9]+:[0-9]+: error: ')
	if [ -z "$want" ]; then
		fail "$name: has '# expect:' lines"
	elif [ "$got" = "$want" ]; then
		pass "$name: $(printf '%s\n' "$want" | wc -l | tr -d ' ') error line(s) as expected"
	else
		fail "$name: the error lines are the expected ones"
		diag "  expected:"
		printf '%s\n' "$want" | sed 's/^/    /' | diag
		diag "  got (all of stderr):"
		printf '%s\n' "$err" | head -30 | sed 's/^/    /' | diag
	fi

	notes=$(expected_lines "$f" note note)
	if [ -n "$notes" ]; then
		missing=$(printf '%s\n' "$notes" | while IFS= read -r line; do
			printf '%s\n' "$err" | grep -Fqx -e "$line" || printf '%s\n' "$line"
		done)
		if [ -z "$missing" ]; then pass "$name: the expected notes"; else
			fail "$name: the expected notes"; printf '%s\n' "$missing" | diag; fi
	fi

	# The first error: its source line and the caret under its column.
	first=$(printf '%s\n' "$want" | head -1)
	case $first in
	--set*) continue ;;
	esac
	lc=${first#"$f":}
	line=${lc%%:*}
	col=${lc#*:}
	col=${col%%:*}
	shown=$(printf '%s\n' "$err" | grep -Fx -A2 -e "$first" | sed -n 2,3p)
	src_line=$(sed -n "${line}p" "$f")
	if printf '%s\n' "$shown" | head -1 | grep -Eq "^ *$line \| "; then
		# short printable lines are shown as they are
		if [ ${#src_line} -le 160 ] && printf '%s\n' "$src_line" | grep -q '^[ -~]*$'; then
			is "$(printf '%s\n' "$shown" | head -1 | sed 's/^ *[0-9]* | //')" "$src_line" \
				"$name: the source line is shown"
		else
			pass "$name: the source line is shown (windowed or escaped)"
		fi
	else
		fail "$name: the source line is shown"
		printf '%s\n' "$err" | head -5 | diag
	fi
	caret=$(printf '%s\n' "$shown" | sed -n 2p)
	if [ ${#src_line} -le 160 ] && printf '%s\n' "$src_line" | grep -q '^[ -~]*$'; then
		pad=$(printf '%s\n' "$caret" | sed 's/^ *| //; s/\^.*//')
		if printf '%s\n' "$caret" | grep -q '^ *| *\^~*$' && [ $((${#pad} + 1)) -eq "$col" ]; then
			pass "$name: the caret is under column $col"
		else
			fail "$name: the caret is under column $col"
			printf '%s\n' "$shown" | diag
		fi
	else
		case $caret in
		*'|'*'^'*) pass "$name: a caret line" ;;
		*) fail "$name: a caret line"; printf '%s\n' "$shown" | diag ;;
		esac
	fi
done
[ "$n" -ge 100 ] && pass "$n error cases" || fail "at least 100 error cases (found $n)"

# Every error message the front end can print has a case.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3 || true)
if [ -z "$PY" ]; then
	skip "every diag_error site has a case" "no python3"
else
	"$PY" "$PIPEC_SRC/t/diag-sites.py" "$PIPEC_SRC"/compiler/sema*.c \
		"$PIPEC_SRC/compiler/lexer.l" "$PIPEC_SRC/compiler/parser.y" -- "$dir"/*.pipe \
		>"$T/sites" 2>&1
	[ $? -eq 0 ] || { fail "t/diag-sites.py runs"; diag <"$T/sites"; }
	sites=0
	while IFS= read -r line; do
		sites=$((sites + 1))
		case $line in
		covered\ *) pass "${line#covered }" ;;
		*) fail "${line#missing } -- add a case to t/errors/" ;;
		esac
	done <"$T/sites"
	[ "$sites" -ge 80 ] && pass "$sites call sites found" || fail "at least 80 call sites (found $sites)"
fi

done_testing
