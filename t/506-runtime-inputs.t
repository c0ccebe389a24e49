#!/bin/sh
# Sequence models in the runtime: named inputs (--input NAME=FILE), the run's
# sequence length known to every rank, per-position outputs, the next-token
# loss's mean, RT_INIT_NORMAL, tied weights on two ranks, and every input
# and checkpoint error with its located message.  The program is
# t/runtime-inputs.c (a tied embedding / lm_head on two ranks); the numbers
# are checked against a float64 numpy reference of the same model.
. "$(dirname "$0")/runtime-lib.sh"

# build NAME [CFLAGS...]: t/runtime-inputs.c as NAME.r<rank> (REPLICAS from
# the flags, default 1).
build() {
	b_name=$1
	shift
	b_reps=1
	for b_a in "$@"; do
		case $b_a in -DREPLICAS=*) b_reps=${b_a#-DREPLICAS=} ;; esac
	done
	b_j=0
	while [ $b_j -lt "$b_reps" ]; do
		for b_p in 0 1; do
			$MPICC $RT_CFLAGS -I"$rt_top/runtime" -DPRANK=$b_p -DREPLICA=$b_j "$@" \
				"$rt_top/t/runtime-inputs.c" "$RT_LIB" $RT_LIBS \
				-o "$T/$b_name.r$((b_j * 2 + b_p))" 2>"$T/$b_name.log" || {
				diag <"$T/$b_name.log"
				echo "Bail out! t/runtime-inputs.c does not compile ($*)"
				exit 1
			}
		done
		b_j=$((b_j + 1))
	done
}
build fx
build fx2 -DREPLICAS=2
build fxe -DEVAL

# The reference and the files: written by numpy, read back with its own
# safetensors code (json + numpy), independent of the runtime's.
cat >"$T/ref.py" <<'PY'
import json, struct, sys
import numpy as np

V, D, STAT, B, LR = 50, 4, 64, 4, 0.5

def st_write(path, tensors):
    hdr, off, blobs = {}, 0, []
    for name, a in tensors.items():
        dt = {np.float32: "F32", np.float16: "F16", np.int64: "I64"}[a.dtype.type]
        b = np.ascontiguousarray(a).tobytes()
        hdr[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(hdr).encode()
    h += b" " * (-len(h) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))

def st_read(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    hdr = json.loads(data[8:8 + n])
    out = {}
    for name, e in hdr.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        out[name] = np.frombuffer(data[8 + n + b:8 + n + end], dtype="<f4").reshape(e["shape"])
    return out, [k for k in hdr if k != "__metadata__"]

def step(W, ids, mask, types):
    """One batch: loss (mean over B·(T-1) positions), logits, dL/dW of the tied W."""
    Bn, T = ids.shape
    h = (W[ids] + 0.1 * types[..., None]) * mask[..., None]
    logits = h @ W.T
    lg, tgt = logits[:, :T - 1], ids[:, 1:]
    m = lg.max(-1, keepdims=True)
    e = np.exp(lg - m)
    p = e / e.sum(-1, keepdims=True)
    lse = m[..., 0] + np.log(e.sum(-1))
    n = Bn * (T - 1)
    loss = (lse - np.take_along_axis(lg, tgt[..., None], -1)[..., 0]).sum() / n
    dlog = np.zeros_like(logits)
    onehot = np.zeros_like(p)
    np.put_along_axis(onehot, tgt[..., None], 1.0, -1)
    dlog[:, :T - 1] = (p - onehot) / n
    g = np.einsum("btv,btd->vd", dlog, h)           # the head's half
    np.add.at(g, ids, (dlog @ W) * mask[..., None])   # the embedding's half
    return loss, logits, g

def make(d):
    rng = np.random.default_rng(5)
    w = {"emb.weight": (rng.standard_normal((V, D)) * 0.5).astype(np.float32),
         "stat.weight": (rng.standard_normal((STAT, STAT)) * 0.25).astype(np.float32)}
    st_write(f"{d}/w0.safetensors", w)
    st_write(f"{d}/w_f16.safetensors", {k: v.astype(np.float16) for k, v in w.items()})
    # what the run should compute with: the F16 values, exactly, as float32
    st_write(f"{d}/w_f16_as32.safetensors",
             {k: v.astype(np.float16).astype(np.float32) for k, v in w.items()})
    st_write(f"{d}/w_i64.safetensors", dict(w, **{"emb.weight": np.zeros((V, D), np.int64)}))
    st_write(f"{d}/w_posids.safetensors",
             dict(w, **{"embeddings.position_ids": np.arange(512, dtype=np.int64)[None]}))
    ids = rng.integers(0, V, (2 * B, 5)).astype(np.int32)      # k = 2 batches, T = 5
    mask = np.ones_like(ids)
    mask[1, 3:] = 0                                             # padded rows
    mask[6, 4:] = 0
    types = (rng.random(ids.shape) < 0.5).astype(np.int32)
    np.save(f"{d}/ids.npy", ids)
    np.save(f"{d}/mask.npy", mask)
    np.save(f"{d}/types.npy", types)
    np.save(f"{d}/ids64.npy", ids.astype(np.int64))
    np.save(f"{d}/ids_long.npy", rng.integers(0, V, (B, 10)).astype(np.int32))
    np.save(f"{d}/mask6.npy", np.ones((2 * B, 6), np.int32))
    np.save(f"{d}/mask_rows.npy", np.ones((B, 5), np.int32))
    bad = ids.copy(); bad[2, 3] = 60
    np.save(f"{d}/ids_vocab.npy", bad)
    neg = ids.copy(); neg[5, 0] = -1
    np.save(f"{d}/ids_neg.npy", neg)
    bad = mask.copy(); bad[1, 4] = 2
    np.save(f"{d}/mask_bad.npy", bad)
    bad = types.copy(); bad[0, 1] = 3
    np.save(f"{d}/types_bad.npy", bad)
    np.save(f"{d}/ids_one.npy", ids[:, :1].copy())
    np.save(f"{d}/mask_one.npy", mask[:, :1].copy())
    np.save(f"{d}/types_one.npy", types[:, :1].copy())
    big = ids.astype(np.int64); big[3, 2] = 1 << 40
    np.save(f"{d}/ids_big.npy", big)
    np.save(f"{d}/ids_float.npy", ids.astype(np.float32))
    np.save(f"{d}/ids_1d.npy", ids[:, 0].copy())
    np.save(f"{d}/ids_rows.npy", ids[:2].copy())
    # An evaluation set of 5 sequences (1.25 batches), and one of T = 6.
    ev = rng.integers(0, V, (5, 5)).astype(np.int32)
    emask = np.ones_like(ev)
    emask[4, 2:] = 0
    np.save(f"{d}/ids_eval.npy", ev)
    np.save(f"{d}/mask_eval.npy", emask)
    np.save(f"{d}/types_eval.npy", (rng.random(ev.shape) < 0.5).astype(np.int32))
    np.save(f"{d}/ids_eval6.npy", rng.integers(0, V, (5, 6)).astype(np.int32))
    np.save(f"{d}/mask_eval6.npy", np.ones((5, 6), np.int32))
    np.save(f"{d}/types_eval6.npy", np.zeros((5, 6), np.int32))

def evaluate(d, wout, stdout):
    """The mean next-token loss over every predicted position of the set."""
    W = st_read(wout)[0]["emb.weight"].astype(np.float64)
    ids, mask, types = (np.load(f"{d}/{n}_eval.npy").astype(np.int64)
                        for n in ("ids", "mask", "types"))
    loss = step(W, ids, mask, types.astype(np.float64))[0]
    got = [float(l.split()[2]) for l in open(stdout) if l.startswith("eval loss ")]
    if len(got) != 1 or abs(got[0] - loss) > 1e-5 * abs(loss):
        print(f"eval loss {got}, reference {loss} (mean over 5 rows x 4 positions)")
        return 1
    print(f"eval loss {got[0]}, reference {loss}")
    return 0

def check(d, stdout, wout, out, steps, win):
    w0, _ = st_read(f"{d}/{win}")
    ids, mask, types = (np.load(f"{d}/{n}.npy").astype(np.int64) for n in ("ids", "mask", "types"))
    W = w0["emb.weight"].astype(np.float64)
    k = ids.shape[0] // B
    losses, logits = [], None
    for n in range(steps):
        r = slice((n % k) * B, (n % k + 1) * B)
        loss, logits, g = step(W, ids[r], mask[r], types[r].astype(np.float64))
        losses.append(loss)
        W = W - LR * g
    got = [float(l.split()[3]) for l in open(stdout) if l.startswith("step ")]
    bad = []
    if len(got) != steps or any(abs(a - b) > 1e-5 * abs(b) for a, b in zip(got, losses)):
        bad.append(f"losses {got}, reference {losses}")
    w, names = st_read(wout)
    if names != ["emb.weight", "stat.weight"]:
        bad.append(f"--weights-out holds {names}, expected emb.weight (once) and stat.weight")
    else:
        err = np.abs(w["emb.weight"] - W).max()
        if err > 1e-5:
            bad.append(f"emb.weight differs from the reference by {err}")
        if not np.array_equal(w["stat.weight"], w0["stat.weight"].astype(np.float32)):
            bad.append("stat.weight (zero gradient) changed")
    o = np.load(out)
    if o.shape != logits.shape:
        bad.append(f"--output is {o.shape}, expected {logits.shape}")
    elif np.abs(o - logits).max() > 1e-5:
        bad.append(f"--output differs from the reference logits by {np.abs(o - logits).max()}")
    for b in bad:
        print(b)
    return 1 if bad else 0

def stats(wout, wout2):
    w, _ = st_read(wout)
    w2, _ = st_read(wout2)
    s = w["stat.weight"].astype(np.float64)
    bad = []
    # 4096 draws: the mean's standard error is 0.25/64 = 0.004, the std's 0.003.
    if abs(s.mean()) > 0.016 or abs(s.std() - 0.25) > 0.0125:
        bad.append(f"stat.weight: mean {s.mean()}, std {s.std()}; expected 0 and 0.25")
    if not all(np.array_equal(w[k], w2[k]) for k in w):
        bad.append("two runs initialised differently")
    e = w["emb.weight"]
    if e.shape != (V, D) or not (0.3 < e.std() < 0.7):
        bad.append(f"emb.weight: shape {e.shape}, std {e.std()} (N(0, 0.5²), trained 2 steps)")
    for b in bad:
        print(b)
    return 1 if bad else 0

def shape(path, *dims):
    a = np.load(path)
    if a.shape != tuple(int(x) for x in dims) or not np.isfinite(a).all():
        print(f"{path}: shape {a.shape}, expected {dims} (finite)")
        return 1
    return 0

cmd = sys.argv[1]
if cmd == "make":
    make(sys.argv[2])
elif cmd == "check":
    sys.exit(check(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]),
                   sys.argv[7] if len(sys.argv) > 7 else "w0.safetensors"))
elif cmd == "eval":
    sys.exit(evaluate(sys.argv[2], sys.argv[3], sys.argv[4]))
elif cmd == "stats":
    sys.exit(stats(sys.argv[2], sys.argv[3]))
elif cmd == "shape":
    sys.exit(shape(*sys.argv[2:]))
PY
"$PYTHON" "$T/ref.py" make "$T" || { echo "Bail out! numpy reference data"; exit 1; }
ref() { "$PYTHON" "$T/ref.py" "$@" >"$T/ref.out" 2>&1; r=$?; diag <"$T/ref.out"; return $r; }

inputs="--input ids=$T/ids.npy --input mask=$T/mask.npy --input types=$T/types.npy"

# ---- Named inputs, T, outputs, the loss, tied weights: against numpy. ----
run_fixture fx 2 "$T/named" --weights-in "$T/w0.safetensors" $inputs --steps 3 \
	--output "$T/named.npy" --weights-out "$T/named.safetensors"
st=$?
ok $st "named inputs: a three-input sequence model trains (exit 0)"
[ $st -eq 0 ] || head -n 20 "$T/named.err" | diag
ref check "$T" "$T/named.out" "$T/named.safetensors" "$T/named.npy" 3
ok $? "losses (mean over B*(T-1)), tied weights after 3 SGD steps and [B, T, V] output equal the reference"
grep -q "^seq_len rank 1: 5$" "$T/named.out"
ok $? "rank 1, which reads no file, knows T = 5 from its first step"

# tied_lines FILE RANKS...: every step, the grads (before OPTIM) of the
# listed ranks differ, their weights after are bitwise equal.
tied_lines() {
	tl_f=$1
	shift
	tl_s=1
	while [ $tl_s -le 3 ]; do
		tl_g="" tl_w=""
		for tl_r in "$@"; do
			tl_l=$(grep "^tied rank $tl_r step $tl_s:" "$tl_f") || return 1
			tl_g="$tl_g $(echo "$tl_l" | awk '{print $7}')"
			tl_w="$tl_w $(echo "$tl_l" | awk '{print $9}')"
		done
		[ "$(echo $tl_g | tr ' ' '\n' | sort -u | wc -l)" -eq $# ] || return 1
		[ "$(echo $tl_w | tr ' ' '\n' | sort -u | wc -l)" -eq 1 ] || return 1
		tl_s=$((tl_s + 1))
	done
}
tied_lines "$T/named.out" 0 1
ok $? "tied copies: different gradients before OPTIM, bitwise equal weights after, every step"
[ $? -eq 0 ] || grep "^tied" "$T/named.out" | diag

run_fixture fx 2 "$T/i64" --weights-in "$T/w0.safetensors" --input "ids=$T/ids64.npy" \
	--input "mask=$T/mask.npy" --input "types=$T/types.npy" --steps 3 \
	--output "$T/i64.npy" --weights-out "$T/i64.safetensors"
st=$?
[ $st -eq 0 ] && ref check "$T" "$T/i64.out" "$T/i64.safetensors" "$T/i64.npy" 3
ok $? "int64 ids are converted: the same run"

run_fixture fx2 4 "$T/rep" --weights-in "$T/w0.safetensors" $inputs --steps 3 \
	--output "$T/rep.npy" --weights-out "$T/rep.safetensors"
st=$?
[ $st -eq 0 ] && ref check "$T" "$T/rep.out" "$T/rep.safetensors" "$T/rep.npy" 3 &&
	tied_lines "$T/rep.out" 0 1 && tied_lines "$T/rep.out" 2 3
ok $? "two replicas: the tied sum follows the data-parallel allreduce, results unchanged"
[ $st -eq 0 ] || head -n 20 "$T/rep.err" | diag

run_fixture fx 2 "$T/f16" --weights-in "$T/w_f16.safetensors" $inputs --steps 2 \
	--output "$T/f16.npy" --weights-out "$T/f16.safetensors"
st=$?
[ $st -eq 0 ] && ref check "$T" "$T/f16.out" "$T/f16.safetensors" "$T/f16.npy" 2 \
	w_f16_as32.safetensors
ok $? "an F16 checkpoint is converted to float32 on loading"

# ---- Synthetic sequences: T = seq_max, ids below the vocabulary, masks 1,
# types 0, deterministic; RT_INIT_NORMAL's statistics. ----
run_fixture fx 2 "$T/syn" --output "$T/syn.npy" --weights-out "$T/syn.safetensors"
st=$?
ok $st "without --input: synthetic sequences (exit 0)"
grep -q "^seq_len rank 1: 8$" "$T/syn.out" && grep -q "^seq_len rank 0: 8$" "$T/syn.out"
ok $? "synthetic sequences are seq_max = 8 long, on every rank"
line=$(grep "^data rank 0 step 1:" "$T/syn.out")
echo "$line" | grep -Eq "ids [0-9]+\.\.(4[0-9]|[0-9]) hash [0-9a-f]+, mask ones 32/32, types zeros 32/32$" &&
	[ "$(echo "$line" | sed 's/.*ids \([0-9]*\)\.\.\([0-9]*\) .*/\1 \2/' | awk '{print ($1 < $2)}')" = 1 ]
ok $? "synthetic ids vary within [0, 50), masks are all 1, token types all 0"
echo "$line" | diag
ref shape "$T/syn.npy" 4 8 50 && grep -Eq "^step 2 loss [0-9.]+$" "$T/syn.out"
ok $? "synthetic run: --output is [B, T, V] = [4, 8, 50], the loss is printed"
run_fixture fx 2 "$T/syn2" --output "$T/syn2.npy" --weights-out "$T/syn2.safetensors"
# rank 0 prints the data line and the last stage the losses: mpirun may
# interleave two ranks' lines either way, so compare them sorted
[ "$(grep -E '^(data|step [0-9])' "$T/syn.out" | sort)" = \
  "$(grep -E '^(data|step [0-9])' "$T/syn2.out" | sort)" ]
ok $? "synthetic data and losses are the same in a second run"
ref stats "$T/syn.safetensors" "$T/syn2.safetensors"
ok $? "RT_INIT_NORMAL: mean 0, std as given (4096 draws), the same in every run"

# ---- Errors: one message, the documented status, no hang. ----
expect() {
	name=$1 want=$2 pat=$3 desc=$4
	shift 4
	start=$(date +%s)
	run_fixture fx 2 "$T/$name" "$@"
	st=$?
	took=$(($(date +%s) - start))
	n=$(grep -cE -e "$pat" "$T/$name.err")
	[ $st -eq "$want" ] && [ "$n" -eq 1 ] && [ $took -lt 30 ]
	ok $? "$desc (exit $want, one message)"
	if [ $st -ne "$want" ] || [ "$n" -ne 1 ]; then
		echo "status $st, $n matching lines, ${took}s; stderr:" | diag
		head -n 20 "$T/$name.err" | diag
	fi
}
m="--input mask=$T/mask.npy"
ty="--input types=$T/types.npy"
id="--input ids=$T/ids.npy"

expect long 1 "ids_long.npy: a sequence of 10 tokens is longer than the model's 8" \
	"a sequence longer than the model's" --input "ids=$T/ids_long.npy" $m $ty
expect mask6 1 "mask6.npy is \[8, 6\], but .*/ids.npy is \[8, 5\]: a mask has the shape of the ids" \
	"a mask of another length than the ids" $id --input "mask=$T/mask6.npy" $ty
expect maskrows 1 "mask_rows.npy is \[4, 5\], but .*/ids.npy is \[8, 5\]: a mask has the shape" \
	"a mask of other rows than the ids" $id --input "mask=$T/mask_rows.npy" $ty
expect vocab 1 "ids_vocab.npy: row 2, column 3: token id 60 is outside the vocabulary \[0, 50\)" \
	"a token id beyond the vocabulary names file, row and column" --input "ids=$T/ids_vocab.npy" $m $ty
expect neg 1 "ids_neg.npy: row 5, column 0: token id -1 is outside the vocabulary" \
	"a negative token id (in the second batch of the file)" --input "ids=$T/ids_neg.npy" $m $ty
expect maskval 1 "mask_bad.npy: row 1, column 4: mask value 2 is not 0 or 1" \
	"a mask value other than 0 or 1" $id --input "mask=$T/mask_bad.npy" $ty
expect types 1 "types_bad.npy: row 0, column 1: token type 3 is outside \[0, 2\)" \
	"a token type beyond the model's" $id $m --input "types=$T/types_bad.npy"
expect one 1 "ids_one.npy: next-token training needs sequences of at least 2 tokens, found 1" \
	"next-token training on one-token sequences" --input "ids=$T/ids_one.npy" \
	--input "mask=$T/mask_one.npy" --input "types=$T/types_one.npy"
expect big 1 "ids_big.npy: row 3, column 2: token id 1099511627776 does not fit int32" \
	"an int64 id outside int32" --input "ids=$T/ids_big.npy" $m $ty
expect float 1 "ids_float.npy: token ids are integers \(int32 or int64\), found float32" \
	"float token ids" --input "ids=$T/ids_float.npy" $m $ty
expect ids1d 1 "ids_1d.npy: input 'ids' is sequences of shape \[N, T\] \(N >= 4 rows.*found \[8\]" \
	"1-D ids" --input "ids=$T/ids_1d.npy" $m $ty
expect idsrows 1 "ids_rows.npy: input 'ids' is sequences of shape .*found \[2, 5\]" \
	"ids of fewer rows than a batch" --input "ids=$T/ids_rows.npy" $m $ty
expect nofile 1 "nope.npy: cannot open" "a missing file" --input "ids=$T/nope.npy" $m $ty

expect unknown 2 "--input foo=.*: the model has no input 'foo' \(its inputs: ids, mask, types\)" \
	"an unknown input name lists the names" $id $m $ty --input "foo=$T/ids.npy"
expect bare 2 "the model has 3 inputs \(ids, mask, types\): give each as --input NAME=FILE.npy" \
	"the bare --input form with several inputs" --input "$T/ids.npy"
expect absent 2 "no file for input 'types'" "an input left out when others are given" $id $m
expect twice 2 "input 'ids' is given twice" "an input given twice" $id $m $ty --input "ids=$T/ids.npy"
expect target 2 "--target: this model's loss reads its targets from the input ids" \
	"--target with a next-token loss" $id $m $ty --target "$T/ids.npy"

expect i64w 1 "w_i64.safetensors: tensor 'emb.weight' has dtype I64, expected F32" \
	"an integer tensor bound to a parameter names tensor and dtype" \
	--weights-in "$T/w_i64.safetensors" $id $m $ty
expect posids 0 "note: .*1 tensor not used by the model: 'embeddings.position_ids'" \
	"an unused I64 buffer (position_ids) is parsed and noted once" \
	--weights-in "$T/w_posids.safetensors" $id $m $ty

# The evaluation set: 5 sequences, a padded second batch, the mean over
# every predicted position (5 x 4), with the trained weights.
ev="--eval-input ids=$T/ids_eval.npy --eval-input mask=$T/mask_eval.npy"
ev="$ev --eval-input types=$T/types_eval.npy"
run_fixture fxe 2 "$T/eval" --weights-in "$T/w0.safetensors" $inputs $ev --steps 2 \
	--weights-out "$T/eval.w.safetensors" --check-messages
ok $? "training with a 5-sequence evaluation set runs"
ref eval "$T" "$T/eval.w.safetensors" "$T/eval.out"
ok $? "the eval loss is numpy's next-token mean over the 5 x 4 predicted positions"
ev6="--eval-input ids=$T/ids_eval6.npy --eval-input mask=$T/mask_eval6.npy"
ev6="$ev6 --eval-input types=$T/types_eval6.npy"
run_fixture fxe 2 "$T/eval6" $inputs $ev6
st=$?
n=$(grep -c "ids_eval6.npy: evaluation sequences of 6 tokens, but the training data's are 5" \
	"$T/eval6.err")
[ $st -eq 1 ] && [ "$n" -eq 1 ]
ok $? "an evaluation set of another sequence length is exit 1, one message (got $st, $n)"

run_fixture fx 2 "$T/help" --help
grep -q "^  ids  *int32 (or int64) \[N, T <= 8\], each token id in \[0, 50)" "$T/help.out" &&
	grep -q "no --target" "$T/help.out" && grep -q "\[B, T, 50\]" "$T/help.out"
ok $? "--help lists the inputs, their shapes and limits"

done_testing
