#!/bin/sh
# scripts/demo.sh — the main job: set everything up, then train the bundled
# 4-stage MLP (models/mlp4.pipe) with 1F1B on 4 ranks, printing the loss per
# step, throughput and measured vs predicted bubble.  Extra arguments go to
# the program (e.g. --steps 40 --trace trace.json).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
sh scripts/setup.sh build
pipec=build/compiler/pipec
model=models/mlp4.pipe

echo "== pipec check $model"
$pipec check "$model" | sed -n '1,5p'
echo
echo "== pipec schedule $model --set microbatches=8 --cost uniform  (the schedule, before anything runs)"
$pipec schedule "$model" --set microbatches=8 --cost uniform --width 100
echo
echo "== pipec compile $model -o build/mlp4 && build/mlp4/run"
$pipec compile "$model" -o build/mlp4
build/mlp4/run "$@"
