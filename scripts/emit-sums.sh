#!/bin/sh
# scripts/emit-sums.sh [PIPEC] > SUMS — the checksums of everything pipec
# prints and emits, for every bundled model (models/*.pipe) and every test
# model (t/models/*.pipe) under each schedule it allows, and under a few
# variations (dtype, replicas, recompute, stage counts, the CUDA backend).
#
# A change that promises byte-identical output (a refactoring of the
# compiler) is checked by running this before and after it and comparing:
#
#   scripts/emit-sums.sh build/compiler/pipec > /tmp/before
#   ... change, rebuild ...
#   scripts/emit-sums.sh build/compiler/pipec > /tmp/after
#   diff /tmp/before /tmp/after
#
# One line per output: MODEL VARIANT WHAT SHA256.  WHAT is `check`,
# `schedule` (the text chart on the uniform cost), `csv`, `dM` (the memory
# plan dump), `rc` (the exit status and a checksum of stderr, for a
# refusal) or, for `compile`, the emitted file's name.  Paths that depend
# on where pipec runs from (the templates, and the runtime's include and
# library directories in the generated Makefile) are fixed through the
# PIPEC_* variables below, so the sums depend on pipec alone (a copy of a
# pipec outside its build tree gives the same sums).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
pipec=${1:-$top/build/compiler/pipec}
case $pipec in /*) ;; *) pipec=$PWD/$pipec ;; esac
[ -x "$pipec" ] || { echo "emit-sums: no pipec at $pipec" >&2; exit 2; }

export PIPEC_TEMPLATES="$top/templates"
export PIPEC_RUNTIME_INCLUDE=/fixed/include PIPEC_RUNTIME_LIB=/fixed/lib
tmp=$(mktemp -d "${TMPDIR:-/tmp}/emit-sums.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

sum() { sha256sum | cut -c1-16; }

# run NAME VARIANT ARGS...: every view of one configuration.
run() {
	name=$1 variant=$2
	shift 2
	cd "$top"
	rc=0
	"$pipec" check "$@" > "$tmp/out" 2> "$tmp/err" || rc=$?
	if [ $rc -ne 0 ]; then
		echo "$name $variant rc $rc $(sum < "$tmp/err")"
		return 0
	fi
	echo "$name $variant check $(sum < "$tmp/out")"
	for what in schedule csv; do
		fmt=text
		[ $what = csv ] && fmt=csv
		rc=0
		"$pipec" schedule "$@" --cost uniform --format $fmt > "$tmp/out" 2> "$tmp/err" || rc=$?
		echo "$name $variant $what $rc $(cat "$tmp/out" "$tmp/err" | sum)"
	done
	for backend in cpu cuda; do
		rm -rf "$tmp/o"
		rc=0
		"$pipec" compile "$@" --backend $backend -o "$tmp/o" > /dev/null 2> "$tmp/err" || rc=$?
		if [ $rc -ne 0 ]; then
			echo "$name $variant $backend rc $rc $(sum < "$tmp/err")"
			continue
		fi
		for out in $(cd "$tmp/o" && ls); do
			echo "$name $variant $backend:$out $(sum < "$tmp/o/$out")"
		done
	done
	rc=0
	"$pipec" compile "$@" -dM -o "$tmp/o2" > /dev/null 2> "$tmp/err" || rc=$?
	echo "$name $variant dM $rc $(sum < "$tmp/err")"
	rm -rf "$tmp/o2"
}

cd "$top"
for f in models/*.pipe t/models/*.pipe; do
	[ -f "$f" ] || continue
	run "$f" as-written "$f"
	for s in naive gpipe 1f1b 'interleaved(2)' zb-h1 zb-v pipedream pipedream-2bw \
	         inference generate; do
		run "$f" "$s" "$f" --set "schedule=$s"
	done
	run "$f" bf16 "$f" --set dtype=bf16
	run "$f" f16-gpipe "$f" --set dtype=f16 --set schedule=gpipe
	run "$f" replicas2 "$f" --set replicas=2
	run "$f" stages1 "$f" --set stages=1 --set partition=auto
	run "$f" stages3 "$f" --set stages=3 --set partition=auto
	run "$f" recompute "$f" --set stages=2 --set partition=auto --set 'recompute=[0.5, 1]'
	run "$f" disagg "$f" --set prefill=disaggregated
	run "$f" adam "$f" --set 'optimizer=adam(lr = 0.001)'
	run "$f" m1 "$f" --set microbatches=1
done
