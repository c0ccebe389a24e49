#!/bin/sh
# The runtime under MPI: the hand-written two-rank program of
# t/rt-fixtures/two_rank.c (a 2-stage MLP in 1F1B, written as pipec emits it)
# trains to the same losses, weights and outputs as a numpy reference of the
# same computation (t/runtime-ref.py), with SGD+momentum and Adam, with one
# replica and with two (allreduce on per-stage communicators); its trace,
# summary and synthetic data are checked too.
. "$(dirname "$0")/runtime-lib.sh"

build_fixture sgd
build_fixture adam -DADAM
build_fixture sgd2 -DREPLICAS=2
build_fixture mse -DMSE
build_fixture infer -DINFER
"$PYTHON" "$rt_top/t/runtime-ref.py" make "$T" || { echo "Bail out! numpy reference data"; exit 1; }

io="--weights-in $T/w0.safetensors --input $T/x.npy --target $T/y.npy --steps 5"

# check_run NAME NRANKS OPTIM DESCRIPTION [OPTIONS]
check_run() {
	run_fixture "$1" "$2" "$T/$1" ${io_run:-$io} $5 --weights-out "$T/$1.w.safetensors" \
		--output "$T/$1.o.npy" --trace "$T/$1.trace.json" --check-messages --timeout 60
	st=$?
	ok $st "$4: the job succeeds (--check-messages on)"
	[ $st -eq 0 ] || diag <"$T/$1.err"
	"$PYTHON" "$rt_top/t/runtime-ref.py" check "$T" "$3" 5 "$T/$1.out" \
		"$T/$1.w.safetensors" "$T/$1.o.npy" >"$T/$1.cmp" 2>&1
	ok $? "$4: losses, --weights-out and --output match numpy (1e-5)"
	cat "$T/$1.cmp"
}
check_run sgd 2 sgd "SGD momentum, P=2 R=1 M=4"
check_run adam 2 adam "Adam, P=2 R=1 M=4"
check_run sgd2 4 sgd "SGD momentum, P=2 R=2 M=4 (4 ranks on 2 cores)"
check_run mse 2 mse "MSE loss with float targets, SGD momentum" "--target $T/y_mse.npy"
# Inference reads no targets, and scores every row of its input (--steps
# does not apply): the output is the whole file's.
io_run="--weights-in $T/w0.safetensors --input $T/x.npy --steps 5" \
	check_run infer 2 infer "inference over a file (no gradients kept, no loss, no optimizer)"

n=$(grep -c '^step [0-9]* loss ' "$T/sgd2.out")
[ "$n" -eq 5 ]
ok $? "each loss line is printed once, by one rank (got $n for 5 steps)"

missing=""
for k in step_time samples_per_s bubble_measured bubble_predicted peak_memory_bytes peak_memory_predicted; do
	grep -q "^$k: [0-9.e+-]*" "$T/sgd.out" || missing="$missing $k"
done
[ -z "$missing" ]
ok $? "the summary has step time, samples/s, bubble and peak memory, measured and predicted${missing:+ (missing:$missing)}"

"$PYTHON" - "$T/sgd2.trace.json" 4 5 4 >"$T/trace.cmp" 2>&1 <<'PY'
import json, sys
path, nranks, steps, M = sys.argv[1], *map(int, sys.argv[2:])
ev = json.load(open(path))["traceEvents"]
errs = []
names = {e["pid"]: e["args"]["name"] for e in ev if e.get("ph") == "M" and e["name"] == "process_name"}
if sorted(names) != list(range(nranks)):
    errs.append(f"process_name for pids {sorted(names)}")
X = [e for e in ev if e.get("ph") == "X"]
for e in X:
    a = e.get("args", {})
    if set(a) != {"op", "stage", "microbatch"} or e["dur"] < 0:
        errs.append(f"bad slice {e}")
        break
for pid in range(nranks):
    comp = sorted((e["ts"], e["ts"] + e["dur"]) for e in X
                  if e["pid"] == pid and e["args"]["op"] in ("F", "B", "W", "R"))
    if any(b[0] < a[1] - 1e-3 for a, b in zip(comp, comp[1:])):
        errs.append(f"rank {pid}: compute slices overlap")
    nf = sum(1 for e in X if e["pid"] == pid and e["args"]["op"] == "F")
    if nf != steps * M:
        errs.append(f"rank {pid}: {nf} F slices, want {steps * M}")
    if not any(e["pid"] == pid and e["args"]["op"] == "ALLREDUCE" for e in X):
        errs.append(f"rank {pid}: no ALLREDUCE slice")
print("\n".join("# " + e for e in errs) or f"# {len(X)} slices checked")
sys.exit(1 if errs else 0)
PY
ok $? "--trace: one Chrome trace of all ranks, process names, args op/stage/microbatch, no overlapping compute"
cat "$T/trace.cmp"

# Without --weights-in and --input: deterministic init and synthetic data.
# They depend only on (seed, name) and (seed, element), so one replica and
# two must train identically.
run_fixture sgd 2 "$T/syn1" --steps 40 --weights-out "$T/syn1.safetensors"
ok $? "synthetic run, R=1"
run_fixture sgd2 4 "$T/syn2" --steps 40 --weights-out "$T/syn2.safetensors"
ok $? "synthetic run, R=2"
"$PYTHON" - "$T/syn1.out" "$T/syn1.safetensors" "$T/syn2.safetensors" >"$T/syn.cmp" 2>&1 <<PY
import sys
sys.path.insert(0, "$rt_top/t")
import numpy as np
spec = __import__("importlib.util").util.spec_from_file_location("ref", "$rt_top/t/runtime-ref.py")
ref = __import__("importlib.util").util.module_from_spec(spec); spec.loader.exec_module(ref)
losses = [float(l.split()[3]) for l in open(sys.argv[1]) if l.startswith("step ")]
a, _ = ref.st_read(sys.argv[2]); b, _ = ref.st_read(sys.argv[3])
d = max(float(np.abs(a[k] - b[k]).max()) for k in a)
first, last = np.mean(losses[:5]), np.mean(losses[-5:])
print(f"# loss {first:.4f} -> {last:.4f}; R=1 vs R=2 weights differ by {d:.3g}")
sys.exit(0 if last < 0.7 * first and d < 1e-5 and len(losses) == 40 else 1)
PY
ok $? "the loss falls on the synthetic task, and R=1 and R=2 end with the same weights"
cat "$T/syn.cmp"
run_fixture mse 2 "$T/synm" --steps 40
first=$(awk '$1 == "step" && $2 == 1 { print $4 }' "$T/synm.out")
last=$(awk '$1 == "step" && $2 == 40 { print $4 }' "$T/synm.out")
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < 0.7 * a) }'
ok $? "synthetic float targets for mse: the loss falls too ($first -> $last)"

done_testing
