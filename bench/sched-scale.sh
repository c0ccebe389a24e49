#!/bin/sh
# bench/sched-scale.sh — how `pipec schedule` scales with P·M.
#
# Generates a 1,000-layer model (linear(64, 64) layers, mse) and, for each
# shape from P = 4, M = 8 up to P = 64, M = 512, V = 2, times
#
#   check_s   pipec check: parse, check, partition (the 1,000-layer auto
#             partition into P·V stages) — the part every command pays
#   csv_s     pipec schedule --format csv -o /dev/null: all of check, then
#             generate, lower, verify, simulate (model cost), peak memory,
#             and writing every action as CSV
#   text_s    pipec schedule (the default text format): the same, the Gantt
#             chart instead of the CSV, and the per-rank memory table, which
#             runs the emitter's memory planner (memplan.c) for every rank
#
# Each figure is the median of REPS runs (after one warm-up run) of the
# command, fork + exec'd by bench/sched-time.c, which also takes each run's
# peak resident memory from wait4() (maxrss_kib, of the csv runs).
# `actions` is the number of actions in the lowered program (the CSV's
# rows); bytes_per_action = (maxrss of schedule - maxrss of check) / actions,
# the memory the schedule passes add per action, shows it growing linearly.
#
# Writes bench/results/sched-scale.csv (OUT=...) and prints a table.
#
#   bench/sched-scale.sh                 # from the source tree, build/ built
#   REPS=11 PIPEC=/path/to/pipec bench/sched-scale.sh
#
# Not part of `make check`.  Needs a C compiler (CC, default cc) for the
# driver.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
PIPEC=${PIPEC:-$root/build/compiler/pipec}
REPS=${REPS:-5}
OUT=${OUT:-$here/results/sched-scale.csv}
CC=${CC:-cc}

[ -x "$PIPEC" ] || { echo "sched-scale: no pipec at $PIPEC (build it or set PIPEC)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/sched-scale.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

$CC -O2 -o "$work/sched-time" "$here/sched-time.c"

model=$work/layers1000.pipe
cat >"$model" <<'EOF'
# 1,000 layers for bench/sched-scale.sh
model layers1000 {
    input  x : f32[batch, 64];
    target y : f32[batch, 64];
    layer fc[1000] : linear(64, 64);
    loss mse;
}
pipeline {
    stages       = 4;
    batch        = 1024;
    microbatches = 8;
    schedule     = 1f1b;
    partition    = auto;
    optimizer    = sgd(lr = 0.01);
}
EOF

# P M schedule  (V is the schedule's: interleaved(2) is V = 2)
shapes='4 8 1f1b
4 32 1f1b
8 64 1f1b
8 64 interleaved(2)
16 128 1f1b
16 128 interleaved(2)
32 256 1f1b
32 256 zb-h1
32 256 interleaved(2)
64 128 interleaved(2)
64 256 interleaved(2)
64 512 1f1b
64 512 zb-h1
64 512 interleaved(2)'

mkdir -p "$(dirname "$OUT")"
echo "P,M,V,schedule,ranks,actions,check_s,csv_s,text_s,check_maxrss_kib,maxrss_kib,bytes_per_action,reps" >"$OUT"
printf '%4s %5s %2s %-15s %9s %9s %9s %9s %10s %8s\n' P M V schedule actions check_s \
	csv_s text_s maxrss_MiB B/action
echo "$shapes" | while read -r P M sched; do
	case $sched in interleaved\(*\)) V=${sched#interleaved(}; V=${V%)} ;; *) V=1 ;; esac
	set -- --set "stages=$P" --set "microbatches=$M" --set "schedule=$sched"
	actions=$("$PIPEC" schedule "$model" "$@" --format csv | tail -n +2 | wc -l)
	"$PIPEC" schedule "$model" "$@" --format csv -o /dev/null     # warm-up
	read -r check_s _ _ rss0 <<EOF2
$("$work/sched-time" "$REPS" "$PIPEC" check "$model" "$@")
EOF2
	read -r csv_s _ _ rss <<EOF2
$("$work/sched-time" "$REPS" "$PIPEC" schedule "$model" "$@" --format csv -o /dev/null)
EOF2
	read -r text_s _ _ _ <<EOF2
$("$work/sched-time" "$REPS" "$PIPEC" schedule "$model" "$@" -o /dev/null)
EOF2
	# (below 10,000 actions the difference is within the RSS's page noise)
	bpa=$(awk -v r="$rss" -v r0="$rss0" -v a="$actions" \
		'BEGIN { if (a < 10000) print "-"; else printf "%.0f", (r - r0) * 1024 / a }')
	echo "$P,$M,$V,$sched,$P,$actions,$check_s,$csv_s,$text_s,$rss0,$rss,$bpa,$REPS" >>"$OUT"
	printf '%4s %5s %2s %-15s %9s %9.4f %9.4f %9.4f %10.1f %8s\n' "$P" "$M" "$V" "$sched" \
		"$actions" "$check_s" "$csv_s" "$text_s" \
		"$(awk -v r="$rss" 'BEGIN { print r / 1024 }')" "$bpa"
done
echo "wrote $OUT (medians of $REPS runs; $(uname -m), $(nproc 2>/dev/null || echo '?') cores)"
