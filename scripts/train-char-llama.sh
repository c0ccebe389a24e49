#!/bin/sh
# scripts/train-char-llama.sh — train the character Llama of
# models/char-llama.pipe on the license texts.
#
# Cuts the texts under /usr/share/common-licenses into windows of 64
# characters (the last tenth held out for evaluation), trains over 2
# pipeline stages (1F1B; AdamW, warm-up and cosine decay, clipping,
# shuffled epochs), evaluating on the held-out text every 100 steps, and
# writes the weights, with transformers' names, to
# build/char-llama/model.safetensors beside a LlamaConfig config.json
# (LlamaForCausalLM.from_pretrained("build/char-llama") loads them).
# Then scripts/char-llama-generate.sh writes from text prompts with them.
#   scripts/train-char-llama.sh [STEPS]     (default 400; ~2 min on 2 cores)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
sh scripts/setup.sh build
pipec=build/compiler/pipec
py=/usr/bin/python3
steps=${1:-400}
out=build/char-llama
mkdir -p "$out"
rm -f "$out/model.safetensors"

$py scripts/char-gpt-data.py --arch llama --out "$out" --eval-rows 512
$pipec check models/char-llama.pipe --set steps="$steps" | head -n 1
$pipec compile models/char-llama.pipe -o "$out/train"
"$out/train/run" --input "$out/ids.npy" --eval-input "$out/eval_ids.npy" --eval-every 100 \
	--steps "$steps" --log-every 50 --metrics "$out/train.jsonl" \
	--weights-out "$out/model.safetensors" | tee "$out/train.log" |
	grep --line-buffered -E '^(step|eval|step_time|samples_per_s)'
echo
echo "weights: $out/model.safetensors"
echo "now:     scripts/char-llama-generate.sh \"This program is \" \"You may \""
