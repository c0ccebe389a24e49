#!/bin/sh
# scripts/char-gpt-demo.sh — train the character-level GPT-2 of
# models/char-gpt.pipe on the license texts (2 stages, 1F1B), then let it
# write: models/char-gpt-generate.pipe loads the trained weights and
# generates through a 2-stage pipeline (4 groups of 2 sequences in flight,
# prefill then one decode step per character), printing time to first token,
# time per output token and tokens/s.  About 90 seconds on 2 cores.
#   scripts/char-gpt-demo.sh [STEPS] [PROMPT...]
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
sh scripts/setup.sh build
pipec=build/compiler/pipec
py=/usr/bin/python3
steps=${1:-1000}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] || set -- "This program is " "You may " "the GNU General " "WITHOUT ANY " \
	"Permission is " "the copyright " "distribute " "free software"
out=build/char-gpt

echo "== training models/char-gpt.pipe for $steps steps (2 stages, 1F1B)"
$py scripts/char-gpt-data.py --out $out
$pipec compile models/char-gpt.pipe -o $out/train
$out/train/run --input $out/ids.npy --steps "$steps" --weights-out $out/model.safetensors \
	--quiet | awk 'NR == 1 || NR % 50 == 0'

echo
echo "== pipec schedule models/char-gpt-generate.pipe  (prefill F, decode D, the token ring)"
$pipec schedule models/char-gpt-generate.pipe --set max_new_tokens=6 --width 100 | sed -n '1,6p'
echo
echo "== generating through 2 stages: [prompt] and what the model wrote"
$py scripts/char-text.py encode $out/prompts.npy 16 "$@"
$pipec compile models/char-gpt-generate.pipe -o $out/gen
$out/gen/run --weights-in $out/model.safetensors --input $out/prompts.npy \
	--output $out/tokens.npy | grep -E '^(time_to_first_token|time_per_output_token|tokens_per_s):'
$py scripts/char-text.py decode $out/tokens.npy 16
