#!/bin/sh
# 001-cli.t — pipec's command line: help, version, exit status 2 for a bad
# command line (a malformed --set included), 1 for input that cannot be read
# or breaks a constraint (a well-formed --set too, named in the message),
# and what `check` prints.
. "$(dirname "$0")/lib.sh"

MLP=$PIPEC_SRC/models/mlp4.pipe

# usage_error DESC ARGS...: exit 2, a "pipec: ..." line and the --help hint.
usage_error() {
	ue_desc=$1
	shift
	run_pipec "$@"
	is "$rc" 2 "$ue_desc: exit 2"
	like "$err" "$ue_pattern" "$ue_desc: says why"
	[ -z "$out" ] || { fail "$ue_desc: nothing on stdout"; return; }
	pass "$ue_desc: nothing on stdout"
}

# --help and --version
run_pipec --help
is "$rc" 0 "--help exits 0"
like "$out" '^Usage: pipec COMMAND FILE\.pipe' "--help prints the usage line"
for word in check schedule compile --set --format -o --version 'Exit status'; do
	contains "$out" "$word" "--help mentions $word"
done
is "$err" "" "--help writes nothing on stderr"
run_pipec -h
is "$rc" 0 "-h is --help"
run_pipec check "$MLP" --help
is "$rc" 0 "--help after other arguments still helps"
run_pipec --version
is "$rc" 0 "--version exits 0"
like "$out" '^pipec [0-9]+\.[0-9]+\.[0-9]+' "--version prints 'pipec X.Y.Z'"

# Bad command lines: exit 2.
ue_pattern='no command given'
usage_error "no arguments"
ue_pattern="Try 'pipec --help'"
usage_error "no arguments (hint)"
ue_pattern="unknown command 'frobnicate'"
usage_error "unknown command" frobnicate "$MLP"
ue_pattern="unknown option '--frobnicate'"
usage_error "unknown option" check "$MLP" --frobnicate
ue_pattern="unknown option '-x'"
usage_error "unknown short option" check "$MLP" -x
ue_pattern='no input file given'
usage_error "missing input file" check
ue_pattern="unexpected argument 'extra.pipe'"
usage_error "a second file" check "$MLP" extra.pipe
ue_pattern="unknown --format 'xml'"
usage_error "unknown --format" schedule "$MLP" --format xml
ue_pattern="unknown --cost 'exact'"
usage_error "unknown --cost" schedule "$MLP" --cost exact
ue_pattern="unknown --backend 'tpu'"
usage_error "unknown --backend" compile "$MLP" -o "$T/out" --backend tpu
ue_pattern='compile needs -o DIR'
usage_error "compile without -o" compile "$MLP"
ue_pattern="option '--set' needs a value"
usage_error "--set without a value" check "$MLP" --set
ue_pattern="option '-o' needs a value"
usage_error "-o without a value" schedule "$MLP" -o
ue_pattern="--flops needs a positive number"
usage_error "--flops not a number" schedule "$MLP" --flops fast
ue_pattern="--flops needs a positive number"
usage_error "--flops infinite" schedule "$MLP" --flops 1e999
ue_pattern="--width must be between"
usage_error "--width with trailing junk" schedule "$MLP" --width 80x

# Malformed --set: exit 2, with the parse error located in the --set.
ue_pattern="--set needs KEY=VALUE, not 'stages'"
usage_error "--set without '='" check "$MLP" --set stages
ue_pattern="^--set 'stages=\[':1:9: error: syntax error, unexpected end of file"
usage_error "--set with an unfinished list" check "$MLP" --set 'stages=['
ue_pattern="malformed --set 'stages=\['"
usage_error "--set malformed (summary line)" check "$MLP" --set 'stages=['
ue_pattern="^--set '=4':1:1: error: syntax error, unexpected '=', expecting identifier"
usage_error "--set without a key" check "$MLP" --set '=4'
ue_pattern="'model' is a keyword and cannot be used as a name"
usage_error "--set with a keyword as key" check "$MLP" --set 'model=4'
ue_pattern="unexpected identifier, expecting end of file"
usage_error "two settings in one --set" check "$MLP" --set 'stages=2; batch=4'

# Well-formed --set that breaks a constraint: exit 1, naming the --set.
run_pipec check "$MLP" --set microbatches=7
is "$rc" 1 "--set microbatches=7 (does not divide 256): exit 1"
like "$err" "^--set 'microbatches=7':1:14: error: microbatches = 7 does not divide batch = 256" \
	"... the error is located in the --set"
run_pipec check "$MLP" --set stages=3
is "$rc" 1 "--set stages=3 against the file's 4-stage partition: exit 1"
like "$err" "mlp4.pipe:32:20: error: the partition lists 4 stages, but there are 3" \
	"... the error is at the file's partition"
like "$err" "^--set 'stages=3':1:8: note: 'stages' is set here" "... and a note names the --set"
run_pipec check "$MLP" --set batch=100
is "$rc" 1 "--set batch=100 (32 micro-batches do not divide it): exit 1"
like "$err" "^--set 'batch=100':1:7: note: 'batch' is set here" "... a note names the --set"
run_pipec check "$MLP" --set stagse=2
is "$rc" 1 "--set with a misspelt key: exit 1"
like "$err" "^--set 'stagse=2':1:1: error: unknown pipeline key 'stagse'; did you mean 'stages'\?" \
	"... with a suggestion"
run_pipec check "$MLP" --set stages=0
is "$rc" 1 "--set stages=0: exit 1"
like "$err" "'stages' must be at least 1, not 0" "... says the range"

# Well-formed --set that works; the last one of a key wins.
run_pipec check "$MLP" --set stages=2 --set partition=auto
is "$rc" 0 "--set stages=2 --set partition=auto: exit 0"
like "$out" "pipeline: 2 stages" "... the summary has 2 stages"
run_pipec check "$MLP" --set=stages=3 --set partition=auto --set stages=2
like "$out" "pipeline: 2 stages" "--set=KEY=VALUE form; a later --set of a key wins"
run_pipec check "$MLP" --set 'partition { stage 0 : fc1 .. act7; stage 1 : head; }' --set stages=2
is "$rc" 0 "a block --set, written as in the file (no '='): exit 0"
like "$out" "^ +1 +1 +head " "... the block is the partition"

# Input that cannot be read: exit 1 with a message.
run_pipec check "$T/no-such.pipe"
is "$rc" 1 "missing file: exit 1"
like "$err" "^pipec: error: cannot read '.*no-such\.pipe': No such file or directory" \
	"... says it cannot read it, and why"
mkdir "$T/dir.pipe"
run_pipec check "$T/dir.pipe"
is "$rc" 1 "a directory: exit 1"
like "$err" "cannot read '.*dir\.pipe': Is a directory" "... says it is a directory"
printf 'model m {\0}\n' >"$T/nul.pipe"
run_pipec check "$T/nul.pipe"
is "$rc" 1 "a file with NUL bytes: exit 1"
like "$err" "is a binary file \(it contains NUL bytes\)" "... says it is binary"
head -c 3000 /bin/sh >"$T/elf.pipe"
run_pipec check "$T/elf.pipe"
is "$rc" 1 "an executable: exit 1"
cp "$MLP" "$T/secret.pipe"
chmod 000 "$T/secret.pipe"
if [ -r "$T/secret.pipe" ]; then
	skip "an unreadable file: exit 1" "running as root, every file is readable"
	skip "... says permission denied" "running as root"
else
	run_pipec check "$T/secret.pipe"
	is "$rc" 1 "an unreadable file: exit 1"
	like "$err" "cannot read '.*secret\.pipe': Permission denied" "... says permission denied"
fi
: >"$T/empty.pipe"
run_pipec check "$T/empty.pipe"
is "$rc" 1 "an empty file: exit 1"
like "$err" "empty\.pipe:1:1: error: syntax error, unexpected end of file, expecting 'model'" \
	"... located at 1:1"

# check's summary.
run_pipec check "$MLP"
is "$rc" 0 "check mlp4: exit 0"
is "$err" "" "... nothing on stderr"
like "$out" "model mlp4, 15 layers, 11,126,282 parameters" "... layers and parameters"
like "$out" "pipeline: 4 stages, batch 256 = 32 micro-batches of 8 rows, schedule 1f1b" \
	"... stages, batch, micro-batches, schedule"
like "$out" "^ +stage +rank +layers +params +fwd FLOP +bwd FLOP +act bytes" "... a per-stage table"
like "$out" "^ +3 +3 +fc7 \.\. head +529,930 " "... stage 3 holds fc7 .. head, 529,930 params"
like "$out" "^ +fc4 +linear +2048 -> 2048 +4,196,352 " "... a per-layer table"
run_pipec check "$MLP" -dA
like "$err" "^    layer fc1 : linear\(100, 1024\);" "-dA dumps the syntax tree on stderr"
run_pipec compile "$MLP" -dP -o "$T/dump-step"
is "$rc" 0 "compile -dP: exit 0"
like "$err" "^rank 3: step program, [0-9]+ instructions for [0-9]+ actions, [0-9]+ request slots" \
	"-dP dumps every rank's step program on stderr"
like "$err" "^  [0-9]+ [0-9]+: SEND_F stage 0 mb 0 slot [0-9]+ to rank 1 tag \(1, 0, 0\) at A\+[0-9]+ size ROWS\*1024\*4$" \
	"... one instruction a line, with slot, peer, tag, offset and size"
like "$err" "^  [0-9]+ POST RECV_F stage 1 mb 0 slot [0-9]+ from rank 0 tag \(1, 0, 0\)" \
	"... and the posts of receives where they happen"
run_pipec --help
like "$out" "M memory plan, P step programs" "--help lists -dP"

# compile -o creates missing parent directories, and says why it cannot.
run_pipec compile "$MLP" -o "$T/new/parent/out"
is "$rc" 0 "compile -o into missing parents: exit 0"
[ -f "$T/new/parent/out/rank0.c" ] && [ -x "$T/new/parent/out/run" ]
is "$?" 0 "... the ranks and the launcher are there"
: >"$T/a-file"
run_pipec compile "$MLP" -o "$T/a-file/out"
is "$rc" 3 "compile -o under a plain file: exit 3"
like "$err" "cannot create directory '.*a-file/out': Not a directory" "... naming the path"

# A failed compile leaves nothing behind: a directory it created is removed
# with the parents it created; an existing one keeps exactly what it held.
PIPEC_TEMPLATES=$T/no-templates run_pipec compile "$MLP" -o "$T/gone/parent/out"
is "$rc" 3 "compile without its templates: exit 3"
like "$err" "cannot read template '.*no-templates/rank\.c\.tmpl'.*PIPEC_TEMPLATES" \
	"... naming the template and PIPEC_TEMPLATES"
[ ! -e "$T/gone" ]
is "$?" 0 "... and leaves no directory, nor the parents it created"
run_pipec compile "$T/empty.pipe" -o "$T/bad-input"
is "$rc" 1 "compile of bad input: exit 1"
[ ! -e "$T/bad-input" ]
is "$?" 0 "... and leaves no directory"
mkdir "$T/kept"
echo mine >"$T/kept/notes.txt"
PIPEC_TEMPLATES=$T/no-templates run_pipec compile "$MLP" -o "$T/kept/"
is "$rc" 3 "a failed compile into an existing directory: exit 3"
is "$(ls -A "$T/kept")" "notes.txt" "... leaves it as it was, without staged files"
run_pipec compile "$MLP" -o "$T/kept"
is "$(ls -A "$T/kept" | tr '\n' ' ')" "Makefile notes.txt program.desc rank0.c rank1.c rank2.c rank3.c run " \
	"a compile into an existing directory adds its files, keeps the others"
touch -t 200001010000 "$T/kept/rank0.c" "$T/marker"
sleep 1
touch "$T/marker"
run_pipec compile "$MLP" -o "$T/kept"
[ "$T/kept/rank0.c" -ot "$T/marker" ]
is "$?" 0 "... and a recompile leaves an unchanged file alone (its timestamp too)"

# ... nor does one stopped by a signal: here, blocked reading a template (a
# FIFO) after it wrote the ranks, then sent SIGTERM.
mkdir "$T/tpl"
cp "$PIPEC_SRC/templates/rank.c.tmpl" "$PIPEC_SRC/templates/run.tmpl" "$T/tpl/"
if mkfifo "$T/tpl/Makefile.in.tmpl" 2>/dev/null; then
	PIPEC_TEMPLATES=$T/tpl "$PIPEC" compile "$MLP" -o "$T/sig/out" >/dev/null 2>&1 &
	pid=$!
	i=0
	while [ $i -lt 100 ] && ! ls "$T"/sig/.out.pipec-*/rank3.c >/dev/null 2>&1; do
		sleep 0.1
		i=$((i + 1))
	done
	staged=$(ls "$T"/sig/.out.pipec-*/rank3.c 2>/dev/null)
	kill -TERM "$pid"
	wait "$pid"
	rc=$?
	[ -n "$staged" ] && [ "$rc" -ne 0 ] && [ ! -e "$T/sig" ]
	is "$?" 0 "a compile killed by SIGTERM while writing leaves no directory" ||
		diag "staged: ${staged:-nothing}; exit $rc; left: $(ls -A "$T/sig" 2>&1)"
else
	skip "a compile killed by SIGTERM while writing leaves no directory" "no mkfifo"
fi

# The build tree's pipec needs no variable: its Makefile names the source
# tree's runtime/ headers and the build tree's runtime/ libraries.
build=${PIPEC_BUILD:-$PIPEC_SRC/build}
if [ "$PIPEC" -ef "$build/compiler/pipec" ]; then
	(
		cd "$T" &&
		env -u PIPEC_TEMPLATES -u PIPEC_PKGDATADIR -u PIPEC_RUNTIME_INCLUDE \
			-u PIPEC_RUNTIME_LIB "$PIPEC" compile "$MLP" -o bare
	) >"$T/bare.log" 2>&1
	is "$?" 0 "the build tree's pipec compiles with no PIPEC_* variable, from anywhere"
	mk=$(cat "$T/bare/Makefile" 2>/dev/null)
	contains "$mk" "-I$(cd "$PIPEC_SRC" && pwd -P)/runtime " "... its Makefile includes the source tree's runtime/"
	contains "$mk" "-L$(cd "$build" && pwd -P)/runtime " "... and links the build tree's runtime/"
else
	skip "the build tree's pipec compiles with no PIPEC_* variable" "$PIPEC is not $build/compiler/pipec"
	skip "... its Makefile includes the source tree's runtime/" "not the build tree's pipec"
	skip "... and links the build tree's runtime/" "not the build tree's pipec"
fi
done_testing
