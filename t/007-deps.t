#!/bin/sh
# t/007-deps.t — no call or include loops between source files, and no
# runtime file that includes a compiler header: scripts/deps.py, which
# reads the build tree's object files with nm.  A loop makes two files one
# module in all but name (docs/contributing.md, "The map").
. "$(dirname "$0")/lib.sh"

command -v nm > /dev/null 2>&1 || skip_all "no nm to read the object files"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3 || true)
[ -n "$PY" ] || skip_all "no python3"

out=$("$PY" "$PIPEC_SRC/scripts/deps.py" "$PIPEC_BUILD" 2>&1) || true
plan 6
for what in "calls, compiler" "calls, runtime (cpu)" "calls, runtime (cuda)" "includes" "layers"; do
	line=$(printf '%s\n' "$out" | grep -F "$what:" | head -1)
	case $line in
	*"not built"*) skip "$what: no loop" "not built here" ;;
	*": 0 "*) pass "$line" ;;
	*) fail "${line:-$what: no report}"; printf '%s\n' "$out" | diag ;;
	esac
done
# the tool itself finds a loop (a negative control on two tiny objects)
d="$T/loop"
mkdir -p "$d/compiler" "$d/runtime"
printf 'int b(void);\nint a(void) { return b(); }\n' > "$d/compiler/libpipec_a-x.c"
printf 'int a(void);\nint b(void) { return a() + 1; }\n' > "$d/compiler/libpipec_a-y.c"
(cd "$d/compiler" && cc -c libpipec_a-x.c libpipec_a-y.c) 2> /dev/null
neg=$("$PY" "$PIPEC_SRC/scripts/deps.py" "$d" 2>&1 | grep -F "calls, compiler:")
like "$neg" "^calls, compiler: 1 loop" "deps.py reports a planted two-file call loop"
