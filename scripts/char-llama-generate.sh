#!/bin/sh
# scripts/char-llama-generate.sh — let the character Llama write.
#
# Loads the weights scripts/train-char-llama.sh wrote
# (build/char-llama/model.safetensors) into models/char-llama-generate.pipe
# and generates 48 characters after each text prompt through a 2-stage
# pipeline (4 groups of 2 sequences in flight, prefill then one decode step
# per character, each stage's key/value cache in its arena), then prints
# each prompt in brackets followed by what the model wrote, and the run's
# time to first token, time per output token and tokens/s.  Prompts longer
# than 16 characters keep their last 16.  Any number of prompts: the
# program's 8 sequence slots take them in turn (continuous batching).
#   scripts/char-llama-generate.sh [PROMPT...]
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
out=build/char-llama
py=/usr/bin/python3
weights=$out/model.safetensors
if [ ! -f "$weights" ]; then
	echo "char-llama-generate: no $weights: train the model first (scripts/train-char-llama.sh)" >&2
	exit 1
fi
sh scripts/setup.sh build >/dev/null
[ $# -gt 0 ] || set -- "This program is " "You may " "the GNU General " "WITHOUT ANY " \
	"Permission is " "the copyright " "distribute " "free software"
$py scripts/char-text.py encode "$out/prompts.npy" 16 "$@"
build/compiler/pipec compile models/char-llama-generate.pipe -o "$out/gen"
"$out/gen/run" --weights-in "$weights" --input "$out/prompts.npy" \
	--output "$out/tokens.npy" > "$out/gen.log"
$py scripts/char-text.py decode "$out/tokens.npy" 16
grep -E '^(requests_per_s|ttft_median|tpot_median|tokens_per_s):' "$out/gen.log"
