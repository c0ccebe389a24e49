#!/usr/bin/env bash
# bench/run-all.sh [--quick] [--only LIST] [--out DIR] [--no-docs]
#
# Regenerates every benchmark result of issue 11 — bench/results/*.csv and
# *.svg — and docs/performance.md from them.  Builds what it needs first:
# pipec and the runtime (make in build/, or scripts/setup.sh on a bare
# checkout), bench/calibrate.c, and a PyTorch to compare with:
#   BENCH_TORCH_PYTHON=/path/to/python   use that interpreter (must import torch);
#   else /work/venv-torch/bin/python or .venv-bench-torch/bin/python if they
#   import torch; else a private venv .venv-bench-torch gets `pip install torch`
#   (PyPI; about 5 GB with its CUDA libraries; it runs on the CPU all the same).
#
#   --quick    a few minutes: fewer configurations, 2 timed runs each; noisy
#   full run   (default) 5 timed runs of everything after a warm-up run each;
#              about an hour on 2 cores — run it on a quiet machine
#
# Not part of `make check`.  See bench/README.md.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
build=${PIPEC_BUILD:-$top/build}

say() { printf 'run-all: %s\n' "$*" >&2; }

# ---- pipec and the runtime ----
if [ -f "$build/Makefile" ]; then
	say "building pipec and the runtime in $build"
	make -s -C "$build" -j"$(nproc 2>/dev/null || echo 2)" >&2
else
	say "no build in $build: scripts/setup.sh"
	sh scripts/setup.sh "$build" >&2
fi
[ -x "$build/compiler/pipec" ] || { say "pipec was not built"; exit 1; }
[ -f "$build/runtime/libpipert.a" ] || { say "the runtime (MPI + CBLAS) was not built"; exit 1; }
for tool in mpicc mpirun make cc; do
	command -v "$tool" >/dev/null || { say "$tool is missing (scripts/install-deps.sh)"; exit 1; }
done

# ---- python for the driver (standard library only) and PyTorch ----
py=$(command -v python3) || { say "python3 is missing"; exit 1; }
has_torch() { [ -x "$1" ] && "$1" -c 'import torch.distributed.pipelining' >/dev/null 2>&1; }
torch_py=${BENCH_TORCH_PYTHON:-}
if [ -n "$torch_py" ]; then
	has_torch "$torch_py" || { say "BENCH_TORCH_PYTHON=$torch_py cannot import torch"; exit 1; }
else
	for cand in /work/venv-torch/bin/python "$top/.venv-bench-torch/bin/python"; do
		if has_torch "$cand"; then torch_py=$cand; break; fi
	done
	if [ -z "$torch_py" ]; then
		say "installing torch from PyPI into $top/.venv-bench-torch (a few minutes, ~5 GB)"
		"$py" -m venv "$top/.venv-bench-torch"
		"$top/.venv-bench-torch/bin/pip" install --quiet torch >&2
		torch_py=$top/.venv-bench-torch/bin/python
		has_torch "$torch_py" || { say "torch did not install"; exit 1; }
	fi
fi
say "PyTorch: $torch_py"

export PIPEC_BUILD=$build
exec "$py" "$top/bench/bench.py" --torch-python "$torch_py" --work "$build/bench-work" "$@"
