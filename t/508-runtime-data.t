#!/bin/sh
# The runtime's data over whole files (docs/training.md, "Data" and
# "Evaluation"): epochs over any number of rows (a partial batch dropped,
# with a note), --shuffle's seeded order, N-D input files, inference over a
# whole file into the declared output shape, non-finite values named with
# their row, and the loss over an evaluation set with a padded last batch.
# The program is t/rt-fixtures/two_rank.c (a 2-stage MLP, batch 16, 4
# micro-batches); every number is checked against a float64 numpy
# reference, which reimplements the shuffle from its documented algorithm.
. "$(dirname "$0")/runtime-lib.sh"

build_fixture sgd
build_fixture nd -DINDIMS
build_fixture inf -DINFER -DINDIMS -DOUTDIMS
build_fixture inf2 -DINFER -DINDIMS -DOUTDIMS -DREPLICAS=2
build_fixture mse -DMSE
build_fixture ev -DEVAL -DEVAL_IN_STEP
build_fixture ev2 -DEVAL -DEVAL_IN_STEP -DREPLICAS=2

cat >"$T/ref.py" <<'PY'
import importlib.util, os, sys
import numpy as np

spec = importlib.util.spec_from_file_location("ref", sys.argv[1])
ref = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ref)
B, SEED = 16, 7
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(sys.argv[1])), "ref"))
import shuffle_ref  # rt_data.c's shuffle, as docs/training.md states it

def perm(n, epoch):
    return shuffle_ref.perm(SEED, n, epoch)

def forward(w, x):
    h = x @ w["fc1.weight"].T + w["fc1.bias"]
    return h, np.maximum(h, 0), np.maximum(h, 0) @ w["fc2.weight"].T + w["fc2.bias"]

def ce(z, y):
    m = z.max(1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(z - m).sum(1))
    return lse - z[np.arange(len(y)), y], lse

def weights(path):
    return {k: v.astype(np.float64) for k, v in ref.st_read(path)[0].items()}

def losses_of(path):
    return [float(l.split()[3]) for l in open(path) if l.startswith("step ")]

def close(got, want, what):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        print(f"# {what}: shape {got.shape}, want {want.shape}")
        return False
    err = np.abs(got - want).max() / max(1.0, np.abs(want).max()) if got.size else 0.0
    print(f"# {what}: worst relative error {err:.2g}")
    return err <= 1e-5

cmd, d = sys.argv[2], sys.argv[3]
if cmd == "make":
    rng = np.random.default_rng(23)
    w = {"fc1.weight": rng.uniform(-0.35, 0.35, (16, 8)), "fc1.bias": rng.uniform(-0.35, 0.35, 16),
         "fc2.weight": rng.uniform(-0.25, 0.25, (4, 16)), "fc2.bias": rng.uniform(-0.25, 0.25, 4)}
    ref.st_write(f"{d}/w0.safetensors", w)
    x = rng.standard_normal((88, 8)).astype(np.float32)        # 5 batches + 8 rows
    y = (x @ rng.standard_normal((8, 4))).argmax(1).astype(np.int64)
    np.save(f"{d}/x.npy", x)
    np.save(f"{d}/y.npy", y)
    np.save(f"{d}/x_nd.npy", x.reshape(88, 2, 4))
    np.save(f"{d}/x_bad.npy", x.reshape(88, 4, 2))
    np.save(f"{d}/x_inf.npy", x[:40].reshape(40, 2, 4))       # 2.5 batches
    xe = rng.standard_normal((40, 8)).astype(np.float32)
    np.save(f"{d}/x_eval.npy", xe)
    np.save(f"{d}/y_eval.npy", (xe @ rng.standard_normal((8, 4))).argmax(1).astype(np.int32))
    bad = x.copy()
    bad[17, 3] = np.nan
    np.save(f"{d}/x_nan.npy", bad)
    big = x.astype(np.float64)
    big[3, 0] = 1e300
    np.save(f"{d}/x_big.npy", big)
    ym = np.tanh(x[:, :4]).astype(np.float32)
    ym[30, 1] = -np.inf
    np.save(f"{d}/y_mse_inf.npy", ym)
    xn = xe.copy()
    xn[33, 5] = np.nan
    np.save(f"{d}/x_eval_nan.npy", xn)
elif cmd == "train":
    # SGD (lr 0.1, momentum 0.9) on epochs of 5 batches, drop_last.
    steps, shuffle, out = int(sys.argv[4]), sys.argv[5] == "1", sys.argv[6]
    w = weights(f"{d}/w0.safetensors")
    x_all = np.load(f"{d}/x.npy").astype(np.float64)
    y_all = np.load(f"{d}/y.npy")
    nb = len(x_all) // B
    mom = {k: np.zeros_like(v) for k, v in w.items()}
    want = []
    for t in range(steps):
        order = perm(len(x_all), t // nb) if shuffle else np.arange(len(x_all))
        rows = order[(t % nb) * B:(t % nb + 1) * B]
        x, y = x_all[rows], y_all[rows]
        h, a, z = forward(w, x)
        l, lse = ce(z, y)
        want.append(l.mean())
        dz = np.exp(z - lse[:, None])
        dz[np.arange(B), y] -= 1
        dz /= B
        dh = (dz @ w["fc2.weight"]) * (h > 0)
        g = {"fc2.weight": dz.T @ a, "fc2.bias": dz.sum(0), "fc1.weight": dh.T @ x,
             "fc1.bias": dh.sum(0)}
        for k in w:
            mom[k] = 0.9 * mom[k] + g[k]
            w[k] = w[k] - 0.1 * mom[k]
    sys.exit(0 if close(losses_of(out), want, f"{steps} losses") else 1)
elif cmd == "perm-differs":
    # The reimplementation is not the identity, and epochs differ.
    p0, p1 = perm(88, 0), perm(88, 1)
    sys.exit(0 if (p0 != np.arange(88)).any() and (p0 != p1).any() else 1)
elif cmd == "infer":
    w = weights(f"{d}/w0.safetensors")
    x = np.load(f"{d}/x_inf.npy").astype(np.float64).reshape(40, 8)
    got = np.load(sys.argv[4])
    ok = got.dtype == np.float32 and close(got, forward(w, x)[2].reshape(40, 2, 2), "output")
    sys.exit(0 if ok else 1)
elif cmd == "eval":
    w = weights(sys.argv[4])
    x = np.load(f"{d}/x_eval.npy").astype(np.float64)
    l, _ = ce(forward(w, x)[2], np.load(f"{d}/y_eval.npy"))
    got = [float(s.split()[2]) for s in open(sys.argv[5]) if s.startswith("eval loss ")]
    sys.exit(0 if len(got) == 1 and close(got, [l.mean()], "eval loss over 40 rows") else 1)
PY
ref() { "$PYTHON" "$T/ref.py" "$rt_top/t/runtime-ref.py" "$@"; }
# refcheck ARGS...: a reference check, its lines as diagnostics, its status.
refcheck() {
	ref "$@" >"$T/ref.log" 2>&1
	rc_ref=$?
	diag <"$T/ref.log"
	return $rc_ref
}
ref make "$T" || { echo "Bail out! numpy reference data"; exit 1; }
w0="--weights-in $T/w0.safetensors"

# ---- Epochs: 88 rows are 5 batches an epoch; 12 steps run 2.4 epochs. ----
run_fixture sgd 2 "$T/epochs" $w0 --input "$T/x.npy" --target "$T/y.npy" --steps 12
ok $? "88 rows (5 batches and 8 rows) train"
refcheck train "$T" 12 0 "$T/epochs.out"
ok $? "every loss is numpy's with epochs of batches 0..4 in row order, the partial batch dropped"
n=$(grep -c "note: 88 rows are 5 batches of 16: each epoch leaves 8 rows out" "$T/epochs.err")
[ "$n" -eq 1 ]
ok $? "the reporter notes the dropped rows once (got $n)"

# ---- --shuffle: numpy's permutation of (seed, epoch) gives the same losses. ----
run_fixture sgd 2 "$T/shuf" $w0 --input "$T/x.npy" --target "$T/y.npy" --steps 12 --shuffle
ok $? "--shuffle trains"
refcheck train "$T" 12 1 "$T/shuf.out"
ok $? "every shuffled loss is numpy's with the documented Fisher-Yates order of each epoch"
ref perm-differs "$T"
ok $? "the reference's order is a real shuffle, another each epoch"
run_fixture sgd 2 "$T/shuf2" $w0 --input "$T/x.npy" --target "$T/y.npy" --steps 12 --shuffle
grep '^step [0-9]' "$T/epochs.out" >"$T/epochs.l"
grep '^step [0-9]' "$T/shuf.out" >"$T/shuf.l"
grep '^step [0-9]' "$T/shuf2.out" >"$T/shuf2.l"
[ -s "$T/shuf.l" ] && ! cmp -s "$T/epochs.l" "$T/shuf.l"
ok $? "shuffled losses differ from the unshuffled ones"
[ -s "$T/shuf.l" ] && cmp -s "$T/shuf.l" "$T/shuf2.l"
ok $? "the same seed gives the same shuffled run"

# ---- N-D input files. ----
run_fixture nd 2 "$T/nd" $w0 --input "$T/x_nd.npy" --target "$T/y.npy" --steps 7
ok $? "an input of the declared shape [N, 2, 4] is accepted"
refcheck train "$T" 7 0 "$T/nd.out"
ok $? "... and trains as its flattened rows do"
run_fixture nd 2 "$T/ndflat" $w0 --input "$T/x.npy" --target "$T/y.npy" --steps 7
ok $? "the flattened [N, 8] is accepted too"
run_fixture nd 2 "$T/ndbad" $w0 --input "$T/x_bad.npy" --target "$T/y.npy" --steps 7
st=$?
want="x_bad.npy: input of shape \[N, 2, 4\] or \[N, 8\] (N >= 16 rows) expected, found \[88, 4, 2\]"
n=$(grep -c "$want" "$T/ndbad.err")
[ $st -eq 1 ] && [ "$n" -eq 1 ]
ok $? "a [N, 4, 2] file is refused, exit 1, naming both accepted shapes (status $st)"

# ---- Inference over a whole file: 40 rows = 2.5 batches. ----
for f in inf:2 inf2:4; do
	name=${f%:*} np=${f#*:}
	run_fixture "$name" "$np" "$T/$name" $w0 --input "$T/x_inf.npy" --output "$T/$name.o.npy" \
		--steps 7 --check-messages
	ok $? "inference over 40 rows on $np ranks runs"
	grep -q "^steps: 3$" "$T/$name.out"
	ok $? "... in ceil(40/16) = 3 steps, whatever --steps says"
	refcheck infer "$T" "$T/$name.o.npy"
	ok $? "... and --output holds every row's output in order, [40, 2, 2], as numpy's"
done

# ---- Non-finite values name their file and row. ----
# expect NAME FIXTURE PATTERN DESCRIPTION [OPTIONS...]: exit 1, one message.
expect() {
	name=$1 fx=$2 pat=$3 desc=$4
	shift 4
	run_fixture "$fx" 2 "$T/$name" $w0 "$@"
	st=$?
	n=$(grep -c -e "$pat" "$T/$name.err")
	[ $st -eq 1 ] && [ "$n" -eq 1 ]
	ok $? "$desc (exit 1, one message; got $st, $n)"
	[ $st -eq 1 ] && [ "$n" -eq 1 ] || head -n 5 "$T/$name.err" | diag
}
expect nan sgd "x_nan.npy: row 17 holds NaN" "a NaN in the input names file and row" \
	--input "$T/x_nan.npy" --target "$T/y.npy"
expect big sgd "x_big.npy: row 3 holds 1e+300, beyond float32's range" \
	"a float64 beyond float32's range" --input "$T/x_big.npy" --target "$T/y.npy"
expect mseinf mse "y_mse_inf.npy: row 30 holds -inf" "an infinite float target" \
	--input "$T/x.npy" --target "$T/y_mse_inf.npy"

# ---- The evaluation set: 40 rows, the last batch padded. ----
for f in ev:2 ev2:4; do
	name=${f%:*} np=${f#*:}
	run_fixture "$name" "$np" "$T/$name" $w0 --input "$T/x.npy" --target "$T/y.npy" --steps 6 \
		--eval-input "$T/x_eval.npy" --eval-target "$T/y_eval.npy" \
		--weights-out "$T/$name.w.safetensors" --check-messages
	ok $? "training with a 40-row evaluation set on $np ranks runs"
	refcheck eval "$T" "$T/$name.w.safetensors" "$T/$name.out"
	ok $? "... and its eval loss is numpy's mean over the 40 rows with the final weights"
done
expect evnan ev "x_eval_nan.npy: row 33 holds NaN" "a NaN in the evaluation input" \
	--input "$T/x.npy" --target "$T/y.npy" --eval-input "$T/x_eval_nan.npy" \
	--eval-target "$T/y_eval.npy"
expect evrows ev "y.npy: 88 rows, but the evaluation input has 40" \
	"evaluation targets not row for row with the evaluation input" \
	--input "$T/x.npy" --target "$T/y.npy" --eval-input "$T/x_eval.npy" --eval-target "$T/y.npy"
expect evwidth ev "x_nd.npy: evaluation input of shape \\[N, 8\\]" \
	"an evaluation input of another shape" \
	--input "$T/x.npy" --target "$T/y.npy" --eval-input "$T/x_nd.npy" --eval-target "$T/y.npy"

run_fixture sgd 2 "$T/tonly" $w0 --target "$T/y.npy"
st=$?
n=$(grep -c -e "--target needs --input" "$T/tonly.err")
[ $st -eq 2 ] && [ "$n" -eq 1 ]
ok $? "--target without --input is exit 2 (synthetic inputs have no rows to match; got $st, $n)"

# ---- The shape rule alone, as a checker before any rank calls it. ----
cc_test "$T/rules" "$rt_top/t/runtime-data.c"
"$T/rules" >"$T/rules.out" 2>&1
st=$?
n=0
while IFS= read -r line; do
	case $line in
	"ok "*) n=$((n + 1)); ok 0 "rt_data_check_header: ${line#* - }" ;;
	"not ok "*) n=$((n + 1)); ok 1 "rt_data_check_header: ${line#* - }" ;;
	"#"*) echo "$line" ;;
	esac
done <"$T/rules.out"
[ $st -eq 0 ] && [ $n -gt 20 ]
ok $? "the shape rule's unit test ran whole (status $st, $n cases)"

done_testing
