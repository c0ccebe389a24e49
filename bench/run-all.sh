#!/usr/bin/env bash
# bench/run-all.sh [--quick] [--only LIST] [--out DIR] [--no-docs]
#
# Regenerates every benchmark result of issue 11 — bench/results/*.csv and
# *.svg — and of the generation benchmark (`generate`: bench/exp_generate.py,
# run after bench/bench.py's experiments), and docs/performance.md from them.
#   --only generate   the generation benchmark alone (quick: about 3 minutes;
#                     full: about 8), then docs/performance.md from it and the
#                     other experiments' results already in bench/results
#   --only async      the asynchronous schedules' benchmark alone
#                     (bench/exp_async.py: quick about 3 minutes, full about 10)
#   BENCH_GEN_QUIET_WAIT=S   generate waits up to S seconds before each round
#                     for other processes to leave the cores (shared machines)
# Builds what it needs first:
# pipec and the runtime (make in build/, or scripts/setup.sh on a bare
# checkout), bench/calibrate.c, and a PyTorch to compare with:
#   BENCH_TORCH_PYTHON=/path/to/python   use that interpreter (must import torch);
#   else /work/venv-torch/bin/python or .venv-bench-torch/bin/python if they
#   import torch; else a private venv .venv-bench-torch gets `pip install torch`
#   (PyPI; about 5 GB with its CUDA libraries; it runs on the CPU all the same);
#   `generate` also needs transformers (installed into the private venv when
#   missing there).
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

# ---- the options first: --help must not build or install anything ----
only="" only_given=0 nodocs=0 quick=() out=() pass=()
while [ $# -gt 0 ]; do
	case $1 in
	--only) [ $# -ge 2 ] || { say "--only needs a list"; exit 2; }
		only=$2; only_given=1; shift 2; continue ;;
	--only=*) only=${1#--only=}; only_given=1 ;;
	--quick) quick=(--quick); pass+=("$1") ;;
	--out) [ $# -ge 2 ] || { say "--out needs a directory"; exit 2; }
		out=(--out "$2"); pass+=("$1" "$2"); shift 2; continue ;;
	--out=*) out=(--out "${1#--out=}"); pass+=("$1") ;;
	--no-docs) nodocs=1 ;;
	-h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) pass+=("$1") ;;
	esac
	shift
done

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

# ---- which experiments: bench.py's, and generate (bench/exp_generate.py) ----
gen=1 asy=1 rest=""
if [ "$only_given" = 1 ]; then
	gen=0 asy=0
	IFS=, read -r -a names <<<"$only"
	for x in "${names[@]}"; do
		case $x in
		generate) gen=1 ;;
		async) asy=1 ;;
		"") ;;
		*) rest=${rest:+$rest,}$x ;;
		esac
	done
fi

if [ "$gen" = 1 ] && ! "$torch_py" -c 'import transformers, safetensors, numpy' >/dev/null 2>&1; then
	if [ "$torch_py" = "$top/.venv-bench-torch/bin/python" ]; then
		say "installing transformers into $top/.venv-bench-torch"
		"$top/.venv-bench-torch/bin/pip" install --quiet transformers safetensors numpy >&2
	fi
	"$torch_py" -c 'import transformers, safetensors, numpy' >/dev/null 2>&1 || {
		say "$torch_py cannot import transformers (pip install transformers safetensors numpy)"
		exit 1; }
fi

export PIPEC_BUILD=$build
rc=0
if [ "$only_given" = 0 ] || [ -n "$rest" ]; then
	"$py" "$top/bench/bench.py" --torch-python "$torch_py" --work "$build/bench-work" \
		${rest:+--only "$rest"} --no-docs ${pass[@]+"${pass[@]}"} || rc=$?
fi
if [ "$gen" = 1 ]; then
	"$py" "$top/bench/exp_generate.py" --torch-python "$torch_py" --work "$build/bench-work" \
		--no-docs ${quick[@]+"${quick[@]}"} ${out[@]+"${out[@]}"} || rc=1
fi
if [ "$asy" = 1 ]; then
	"$py" "$top/bench/exp_async.py" --work "$build/bench-work" --no-docs \
		${quick[@]+"${quick[@]}"} ${out[@]+"${out[@]}"} || rc=1
fi
# docs/performance.md quotes bench/results only: results written elsewhere
# (--out) do not replace it.
if [ "$nodocs" = 0 ] && [ -n "${out[1]+x}" ] \
   && [ "$(cd "${out[1]}" 2>/dev/null && pwd -P)" != "$(cd "$top/bench/results" 2>/dev/null && pwd -P)" ]; then
	say "results in ${out[1]}: docs/performance.md left as it is (python3 bench/report.py ${out[1]} would rewrite it)"
	nodocs=1
fi
if [ "$nodocs" = 0 ]; then
	"$py" "$top/bench/report.py" || rc=1
fi
exit $rc
