#!/bin/sh
# scripts/minilm-example.sh [STAGES [SENTENCE...]] — embed sentences with
# all-MiniLM-L6-v2 pipelined over STAGES ranks (default 2) and print their
# cosine similarities.
#
# Sets everything up on a bare machine: builds pipec (scripts/setup.sh),
# fetches the published checkpoint and tokenizer once (scripts/minilm-fetch.sh),
# makes a small virtual environment with numpy and Hugging Face `tokenizers`
# for tokenising (.venv-tokenize), then compiles models/minilm.pipe with
# batch = the number of sentences and runs it.  Outputs land in build/minilm/.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
stages=${1:-2}
[ $# -gt 0 ] && shift
if [ $# -eq 0 ]; then
	set -- "A man is eating food." "A man is eating a piece of bread." \
	       "The girl is carrying a baby." "A man is riding a horse." \
	       "Pipeline parallelism splits a model into stages."
fi
n=$#

sh scripts/setup.sh build >&2
model=$(sh scripts/minilm-fetch.sh)
venv=$top/.venv-tokenize
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import numpy, tokenizers' 2>/dev/null; then
	echo "minilm-example: making $venv (numpy, tokenizers)" >&2
	python3 -m venv "$venv"
	"$venv/bin/pip" install -q numpy tokenizers >&2
fi
out=build/minilm
mkdir -p "$out"
"$venv/bin/python" scripts/bert-tokenize.py --tokenizer "$model/tokenizer.json" \
	--out-ids "$out/ids.npy" --out-mask "$out/mask.npy" "$@"

build/compiler/pipec compile models/minilm.pipe -o "$out/prog" --set stages="$stages" \
	--set batch="$n" --set microbatches="$n"
"$out/prog/run" --weights-in "$model/model.safetensors" --input ids="$out/ids.npy" \
	--input mask="$out/mask.npy" --output "$out/embeddings.npy"
echo
"$venv/bin/python" scripts/cosine.py "$out/embeddings.npy" "$@"
