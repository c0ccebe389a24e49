#!/bin/sh
# 024-torch-schedules.t -- the built-in interleaved-zb(V), looped-bfs(V) and
# dualpipev generators against PyTorch: its own pipeline_order of
# ScheduleInterleavedZeroBubble, ScheduleLoopedBFS and ScheduleDualPipeV
# (t/fixtures/torch/{interleavedzb,loopedbfs,dualpipev}-*.csv, written by
# t/fixtures/gen_torch_orders.py, an OVERLAP_F_B cell as its forward then
# its backward) comes out byte for byte for every P, V, M there; every
# configuration sema accepts for P <= 4, M <= 12 verifies; the placements;
# interleaved-zb(1) is zb-h1; the constraints' refusals; the uniform
# bubbles against interleaved(2).  Numerics: t/010-train-oracle.t.
. "$(dirname "$0")/lib.sh"
fx="$PIPEC_SRC/t/fixtures/torch"
model="$PIPEC_SRC/models/deep-narrow.pipe"     # 28 layers: up to 28 stages
set -- "$fx"/interleavedzb-*.csv "$fx"/loopedbfs-*.csv "$fx"/dualpipev-*.csv
plan $(($# + 12))

sched() {       # P M SCHEDULE [pipec schedule options...]
	p=$1 m=$2 sc=$3
	shift 3
	"$PIPEC" schedule "$model" --set batch=27720 --set stages=$p --set microbatches=$m \
		--set "schedule=$sc" --set partition=auto "$@"
}

for f in "$@"; do
	b=$(basename "$f" .csv)
	kind=${b%%-*}
	pvm=$(echo "${b#*-}" | sed 's/^p\([0-9]*\)-v\([0-9]*\)-m\([0-9]*\)$/\1 \2 \3/')
	set -- $pvm
	case $kind in
	interleavedzb) sc="interleaved-zb($2)" ;;
	loopedbfs)     sc="looped-bfs($2)" ;;
	*)             sc=dualpipev ;;
	esac
	sched $1 $3 "$sc" --format torch >"$T/got.csv" 2>"$T/err"
	cmp -s "$T/got.csv" "$f"
	r=$?; ok "$sc at P=$1, M=$3 is PyTorch's order ($b.csv)" test $r -eq 0
	[ $r -eq 0 ] || { diff "$f" "$T/got.csv" | head -5; cat "$T/err"; } >&2
done

# Every configuration sema accepts verifies (pipec schedule exits 0) and
# every one it refuses is refused by the constraint, not by the verifier.
bad=""
for p in 1 2 3 4; do
	for m in 1 2 3 4 5 6 7 8 9 10 11 12; do
		for sc in "interleaved-zb(1)" "interleaved-zb(2)" "interleaved-zb(3)" \
		          "looped-bfs(2)" "looped-bfs(3)" dualpipev; do
			sched $p $m "$sc" --format csv >/dev/null 2>"$T/err"
			r=$?
			[ $r -eq 0 ] && continue
			if [ $r -ne 1 ] || ! grep -q "needs at least 2 x stages\|rounds of equal size" \
			        "$T/err"; then
				bad="$bad $sc:P=$p:M=$m"
			fi
		done
	done
done
[ -z "$bad" ]
r=$?; ok "P <= 4, M <= 12: every configuration verifies or is refused by its constraint (failed:${bad:- none})" test $r -eq 0

# Refusals: dualpipev below 2P micro-batches, interleaved-zb with uneven rounds.
sched 4 7 dualpipev --format csv >/dev/null 2>"$T/err"
r=$?
test $r -eq 1 && grep -q "dualpipev needs at least 2 x stages microbatches.*microbatches = 7 and stages = 4 (try microbatches = 8)" "$T/err"
r=$?; ok "dualpipev at P=4, M=7 exits 1 and asks for M >= 2P" test $r -eq 0
sched 4 8 dualpipev --format csv >/dev/null 2>&1
r=$?; ok "dualpipev at P=4, M=8 (= 2P) is accepted" test $r -eq 0
sched 4 9 "interleaved-zb(2)" --format csv >/dev/null 2>"$T/err"
r=$?
test $r -eq 1 && grep -q "2 does not divide microbatches = 9" "$T/err"
r=$?; ok "interleaved-zb(2) at P=4, M=9 (two rounds) exits 1" test $r -eq 0

# Placements, read from the compute rows of pipec's CSV.
place() {
	sched 4 8 "$1" --format csv | awk -F, '$3 == "F" { print $1, $4 }' | sort -u -k1,1n -k2,2n |
		awk '{ s[$1] = s[$1] " " $2 } END { for (r in s) print r ":" s[r] }' | sort
}
place dualpipev >"$T/place"
printf '0: 0 7\n1: 1 6\n2: 2 5\n3: 3 4\n' | cmp -s - "$T/place"
r=$?; ok "dualpipev: rank r holds stages r and 2P-1-r" test $r -eq 0
{ place "interleaved-zb(2)"; place "looped-bfs(3)"; } >"$T/place"
printf '0: 0 4\n1: 1 5\n2: 2 6\n3: 3 7\n0: 0 4 8\n1: 1 5 9\n2: 2 6 10\n3: 3 7 11\n' |
	cmp -s - "$T/place"
r=$?; ok "interleaved-zb and looped-bfs: rank r holds stages r, r+P, ..." test $r -eq 0

sched 4 8 "interleaved-zb(1)" --format torch >"$T/a" && sched 4 8 zb-h1 --format torch >"$T/b" &&
	cmp -s "$T/a" "$T/b"
r=$?; ok "interleaved-zb(1) is zb-h1" test $r -eq 0

# dualpipev's file read back (schedule = file): a B cell beside I cells is
# a whole backward again, so the order and its cells come back unchanged.
for pm in "4 8" "2 7"; do
	set -- $pm
	f="$fx/dualpipev-p$1-v2-m$2.csv"
	"$PIPEC" schedule "$model" --set batch=27720 --set stages=$1 --set microbatches=$2 \
		--set "schedule=file(\"$f\")" --format torch >"$T/back.csv" 2>"$T/err" &&
		cmp -s "$T/back.csv" "$f"
	r=$?; ok "dualpipev-p$1-v2-m$2.csv read as a file verifies and is written back unchanged" test $r -eq 0
	[ $r -eq 0 ] || cat "$T/err" >&2
done

# Uniform cost, P = 4, M = 8: the W's fill interleaved 1F1B's bubble;
# looped BFS has interleaved's bubble but holds every micro-batch.
bub() {
	sched 4 8 "$1" --cost uniform | sed -n 's/^bubble_fraction: //p'
}
izb=$(bub "interleaved-zb(2)")
il=$(bub "interleaved(2)")
bfs=$(bub "looped-bfs(2)")
awk -v a="$izb" -v b="$il" 'BEGIN { exit !(a + 0 > 0 && a + 0 < b / 2) }'
r=$?; ok "interleaved-zb(2)'s uniform bubble ($izb) is under half interleaved(2)'s ($il)" test $r -eq 0
# The closed forms under the uniform cost (F = 1, B + W = 2 per stage,
# split into halves of 1/V each): interleaved-zb (P-1)/(3VM+P-1) and
# looped-bfs (P-1)/(VM+P-1) once M >= P, dualpipev (P-1)/(6M+P-1).
bad=""
for p in 2 3 4; do
	for m in $p $((p + 1)) $((2 * p)) $((2 * p + 1)) $((3 * p)); do
		for sc in "interleaved-zb(1)" "interleaved-zb(2)" "interleaved-zb(3)" \
		          "looped-bfs(2)" "looped-bfs(3)" dualpipev; do
			v=$(echo "$sc" | sed -n 's/.*(\(.*\))/\1/p')
			case $sc in
			interleaved-zb*) k=$((m / p))      # refused unless the rounds divide M
			                 [ $((m % k)) -eq 0 ] || continue
			                 want="($p-1)/(3*$v*$m+$p-1)" ;;
			looped-bfs*)     want="($p-1)/($v*$m+$p-1)" ;;
			*)               [ $m -ge $((2 * p)) ] || continue
			                 want="($p-1)/(6*$m+$p-1)" ;;
			esac
			got=$(sched $p $m "$sc" --cost uniform 2>/dev/null |
				sed -n 's/^bubble_fraction: //p')
			awk -v g="$got" "BEGIN { w = $want; d = g - w; exit !(g != \"\" && d < 1e-6 && d > -1e-6) }" ||
				bad="$bad $sc:P=$p:M=$m:$got"
		done
	done
done
[ -z "$bad" ]
r=$?; ok "uniform bubbles match the closed forms for P = 2..4, M = P..3P (off:${bad:- none})" test $r -eq 0
peak=$(sched 4 8 "looped-bfs(2)" --cost uniform | sed -n 's/^rank 0: idle [^,]*, peak \([0-9]*\) .*/\1/p')
awk -v a="$bfs" -v b="$il" -v p="$peak" 'BEGIN { exit !(a == b && p == 16) }'
r=$?; ok "looped-bfs(2): interleaved(2)'s bubble ($bfs), all 2 x 8 micro-batches in flight on rank 0 ($peak)" test $r -eq 0
