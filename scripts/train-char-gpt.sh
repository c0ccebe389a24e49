#!/bin/sh
# scripts/train-char-gpt.sh — a real training run, interrupted and resumed.
#
# Trains the character GPT-2 of models/char-gpt-train.pipe (AdamW, warm-up
# and cosine decay, clipping, shuffled epochs) over 2 pipeline stages on the
# license texts, evaluating on held-out text every 100 steps and saving a
# checkpoint every 100 steps.  It trains twice:
#   A  uninterrupted, STEPS steps;
#   B  the same, but a rank is killed (SIGKILL, no chance to save) once it
#      has passed step KILL; the run is then resumed from its last
#      checkpoint with --resume.
# Then it shows that B's final weights are A's, bit for bit (sha256), and
# that every loss B printed after the resume is the one A printed.
#   scripts/train-char-gpt.sh [STEPS [KILL]]     (default 600 250; ~4 min on 2 cores)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
sh scripts/setup.sh build
pipec=build/compiler/pipec
py=/usr/bin/python3
steps=${1:-600}
kill_at=${2:-250}
every=100
out=build/train-char-gpt
rm -rf "$out"
mkdir -p "$out"

$py scripts/char-gpt-data.py --out "$out" --eval-rows 512
$pipec compile models/char-gpt-train.pipe -o "$out/prog"
set -- --input "$out/ids.npy" --eval-input "$out/eval_ids.npy" --eval-every $every \
	--save-every $every --steps "$steps" --quiet

echo "== A: $steps steps, uninterrupted"
"$out/prog/run" "$@" --checkpoint "$out/ckpt-a" --metrics "$out/a.jsonl" \
	--weights-out "$out/a.safetensors" | tee "$out/a.log" | grep -E '^(eval|step [0-9]*00 )'

echo
echo "== B: the same run, a rank killed after step $kill_at"
"$out/prog/run" "$@" --checkpoint "$out/ckpt-b" > "$out/b1.log" 2>&1 &
job=$!
while kill -0 $job 2>/dev/null; do
	if grep -q "^step $((kill_at + 1)) " "$out/b1.log" 2>/dev/null; then
		# rank 1's process alone (its command line starts with its
		# binary; the launcher's names it further on)
		pkill -KILL -f "^$(cd "$out/prog" && pwd)/rank1( |\$)" || true
		break
	fi
	sleep 0.2
done
wait $job || echo "(the job ended with status $? after the kill, as it should)"
tail -n 3 "$out/b1.log"
echo "checkpoint left: $(readlink "$out/ckpt-b/latest")"

echo
echo "== B: resumed from $out/ckpt-b"
"$out/prog/run" "$@" --resume "$out/ckpt-b" --weights-out "$out/b.safetensors" \
	| tee "$out/b2.log" | grep -E '^(eval|step [0-9]*00 )'

echo
echo "== the final weights"
( cd "$out" && sha256sum a.safetensors b.safetensors )
# The resumed run printed the steps after its checkpoint: the same lines
# as the uninterrupted run's from that step on.
first=$(sed -n 's/^step \([0-9]*\) .*/\1/p' "$out/b2.log" | head -n 1)
grep -E '^(step|eval)' "$out/b2.log" > "$out/b-tail.log"
grep -E '^(step|eval)' "$out/a.log" | sed -n "/^step $first /,\$p" > "$out/a-tail.log"
if cmp -s "$out/a.safetensors" "$out/b.safetensors" && cmp -s "$out/a-tail.log" "$out/b-tail.log"
then
	echo "equal: the resumed run's weights, and every loss from step $first on, are the uninterrupted run's"
else
	echo "DIFFERENT: the resumed run does not reproduce the uninterrupted one" >&2
	exit 1
fi
