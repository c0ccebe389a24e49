#!/bin/sh
# Bad command lines, bad launches and bad files: every rank exits with the
# documented status (2 options or launch, 1 a file, a shape, a checkpoint)
# and one message names the problem — no rank hangs, nothing crashes.
. "$(dirname "$0")/runtime-lib.sh"

build_fixture fx
"$PYTHON" "$rt_top/t/runtime-ref.py" make "$T" || { echo "Bail out! numpy reference data"; exit 1; }
"$PYTHON" - "$T" "$rt_top/t/runtime-ref.py" <<'PY' || { echo "Bail out! bad files"; exit 1; }
import importlib.util, struct, sys
import numpy as np
d = sys.argv[1]
spec = importlib.util.spec_from_file_location("ref", sys.argv[2])
ref = importlib.util.module_from_spec(spec); spec.loader.exec_module(ref)
w, _ = ref.st_read(f"{d}/w0.safetensors")
x, y = np.load(f"{d}/x.npy"), np.load(f"{d}/y.npy")
np.save(f"{d}/x_width.npy", x[:, :7])
np.save(f"{d}/x_rows.npy", x[:8])
yb = y.copy(); yb[5] = 4
np.save(f"{d}/y_class.npy", yb)
np.save(f"{d}/y_rows.npy", y[:16])
np.save(f"{d}/y_float.npy", y.astype(np.float32))
ref.st_write(f"{d}/w_missing.safetensors", {k: v for k, v in w.items() if k != "fc2.bias"})
ref.st_write(f"{d}/w_shape.safetensors", dict(w, **{"fc1.weight": w["fc1.weight"].T}))
ref.st_write(f"{d}/w_extra.safetensors", dict(w, **{"fc9.weight": w["fc1.weight"]}))
data = open(f"{d}/w0.safetensors", "rb").read()
open(f"{d}/w_trunc.safetensors", "wb").write(data[:-10])
# fc1.bias as I32: rewrite its dtype in the header (same size, 4 bytes).
n = struct.unpack("<Q", data[:8])[0]
h = data[8:8 + n].replace(b'"fc1.bias": {"dtype": "F32"', b'"fc1.bias": {"dtype": "I32"')
open(f"{d}/w_dtype.safetensors", "wb").write(data[:8] + h + data[8 + n:])
PY

# expect NAME STATUS PATTERN DESCRIPTION OPTIONS...: runs the fixture with
# OPTIONS, wants exit STATUS and PATTERN (grep -E) on stderr exactly ATMOST
# once (a message said by every rank would be noise).
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

good="--weights-in $T/w0.safetensors --input $T/x.npy --target $T/y.npy --steps 2"

run_fixture fx 2 "$T/help" --help
st=$?
n=$(grep -c '^Usage' "$T/help.out")
opts=0
for o in --weights-in --weights-out --input --target --output --steps --trace --timeout --check-messages; do
	grep -q -- "$o" "$T/help.out" || opts=1
done
[ $st -eq 0 ] && [ "$n" -eq 1 ] && [ $opts -eq 0 ]
ok $? "--help lists every option once and exits 0"

expect opt 2 "unknown option '--bogus'" "an unknown option" --bogus
expect steps 2 "--steps: '0'" "--steps 0" --steps 0
expect timeout 2 "--timeout: 'abc'" "--timeout abc" --timeout abc
expect novalue 2 "needs a value" "an option without its value" --input

# A launch that does not match the program: rank 1's binary started alone.
timeout 60 $MPIRUN $MPIRUN_FLAGS -np 1 "$T/fx.r1" >"$T/launch.out" 2>"$T/launch.err"
st=$?
grep -q "rank 1 of a 2-rank job, but MPI started it as rank 0 of 1" "$T/launch.err"
[ $? -eq 0 ] && [ $st -eq 2 ]
ok $? "a binary started outside its job says so and exits 2"
timeout 60 $MPIRUN $MPIRUN_FLAGS -np 1 "$T/fx.r1" : -np 1 "$T/fx.r0" >"$T/swap.out" 2>"$T/swap.err"
[ $? -eq 2 ]
ok $? "ranks started in the wrong order exit 2"

expect nofile 1 "nope.npy: cannot open" "a missing input file" $good --input "$T/nope.npy"
expect width 1 "x_width.npy: input of shape \[N, 8\] \(N >= 16 rows\) expected, found \[32, 7\]" \
	"an input of the wrong width names file, expected and found shape" \
	--weights-in "$T/w0.safetensors" --input "$T/x_width.npy" --target "$T/y.npy"
expect rows 1 "x_rows.npy: input of shape .*N >= 16 rows.*found \[8, 8\]" \
	"an input of fewer rows than a batch" --input "$T/x_rows.npy" --target "$T/y.npy"
expect class 1 "y_class.npy: row 5: class 4 outside 0..3" "a class id out of range names the row" \
	$good --target "$T/y_class.npy"
expect trows 1 "y_rows.npy: 16 rows, but the input has 32" "targets not row for row with the input" \
	$good --target "$T/y_rows.npy"
expect tfloat 1 "y_float.npy: class ids: expected integer data" "float class ids are refused" \
	$good --target "$T/y_float.npy"
expect missing 1 "missing tensor 'fc2.bias' \(expected shape \[4\], F32\)" \
	"a checkpoint without a parameter names it and its shape" $good --weights-in "$T/w_missing.safetensors"
expect shape 1 "tensor 'fc1.weight' has shape \[8, 16\], expected \[16, 8\]" \
	"a parameter of the wrong shape names expected and found" $good --weights-in "$T/w_shape.safetensors"
expect dtype 1 "tensor 'fc1.bias' has dtype I32, expected F32" "a parameter of the wrong dtype" \
	$good --weights-in "$T/w_dtype.safetensors"
expect trunc 1 "w_trunc.safetensors: tensor .*data_offsets outside" "a truncated checkpoint" \
	$good --weights-in "$T/w_trunc.safetensors"
expect extra 0 "note: .*1 tensor not used by the model: 'fc9.weight'" \
	"extra tensors in a checkpoint are noted once, not an error" $good --weights-in "$T/w_extra.safetensors"
expect outdir 1 "no/such/dir/o.npy: cannot write" "an unwritable --output" $good --output "$T/no/such/dir/o.npy"

done_testing
