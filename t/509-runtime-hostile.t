#!/bin/sh
# Hostile files through the real loading path: safetensors checkpoints
# (--weights-in) and .npy inputs (--input) crafted to lie — tensors whose
# bytes overlap (fc1.bias read from fc1.weight's), gaps, trailing bytes, a
# header claiming more bytes than the file holds or more than the format's
# 100,000,000-byte limit, shapes whose products overflow 64 bits, JSON nested
# thousands deep, repeated keys, invalid UTF-8.  Each must exit 1 with one
# message naming the file and the reason, and nothing worse: in the
# sanitizer build, an ASan or UBSan report changes the exit status
# (runtime-lib.sh) and fails the test.  The fuzzers (fuzz/) look for the
# cases nobody thought of; these are the ones somebody did.
. "$(dirname "$0")/runtime-lib.sh"

build_fixture fx
"$PYTHON" "$rt_top/t/runtime-ref.py" make "$T" || { echo "Bail out! numpy reference data"; exit 1; }
"$PYTHON" - "$T" <<'PY' || { echo "Bail out! hostile files"; exit 1; }
import json, struct, sys
import numpy as np
d = sys.argv[1]
raw = open(f"{d}/w0.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
hdr, data = json.loads(raw[8:8 + n]), raw[8 + n:]

def st(name, h, body=data, length=None, text=None):
    t = text if text is not None else json.dumps(h).encode()
    t += b" " * (-len(t) % 8)
    with open(f"{d}/{name}.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(t) if length is None else length) + t + body)

def edit(**kw):
    h = json.loads(json.dumps(hdr))
    for k, v in kw.items():
        h[k.replace("_", ".")].update(v)
    return h

w, b = hdr["fc1.weight"]["data_offsets"], hdr["fc1.bias"]["data_offsets"]
nb = b[1] - b[0]
# fc1.bias's range moved inside fc1.weight's: the file keeps its size, the
# bias's old bytes become a gap, and a loose reader reads weights as bias.
st("overlap", edit(fc1_bias={"data_offsets": [w[0] + 8, w[0] + 8 + nb]}))
# Every tensor after fc1.bias (in offset order) moved 4 bytes on.
h = json.loads(json.dumps(hdr))
for t in h.values():
    if t["data_offsets"][0] >= b[1]:
        t["data_offsets"] = [t["data_offsets"][0] + 4, t["data_offsets"][1] + 4]
st("gap", h, data[:b[1]] + b"\0" * 4 + data[b[1]:])
st("trailing", hdr, data + b"\0" * 8)
st("claims", hdr, length=1 << 20)
st("hugehdr", hdr, length=(1 << 63) + 16)
st("overflow", edit(fc1_weight={"shape": [1 << 32, 1 << 32, 16]}))
st("bigoffset", edit(fc2_bias={"data_offsets": [2 ** 64 - 4, 2 ** 64]}))
deep = b'{"x":' + b"[" * 5000 + b"]" * 5000 + b"," + json.dumps(hdr).encode()[1:]
st("deep", None, text=deep)
t = json.dumps(hdr).encode()
st("dupkey", None, text=t[:-1] + b', "fc1.bias": ' + json.dumps(hdr["fc1.bias"]).encode() + b"}")
st("utf8", None, text=t.replace(b'"fc2.bias"', b'"fc2.\xc0\xafbias"'))
h = json.loads(json.dumps(hdr)); h["__metadata__"] = {"format": 1}
st("meta", h)

x = np.load(f"{d}/x.npy")
def npy(name, dict_text, body, version=1):
    pre = 10 if version == 1 else 12
    t = dict_text.encode()
    t += b" " * (-(pre + len(t) + 1) % 64) + b"\n"
    ln = struct.pack("<H" if version == 1 else "<I", len(t))
    with open(f"{d}/{name}.npy", "wb") as f:
        f.write(b"\x93NUMPY" + bytes([version, 0]) + ln + t + body)
shape = "(%d, %d)" % x.shape
npy("n_trunc", "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }" % shape, x.tobytes()[:-4])
npy("n_overflow", "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 16), }", x.tobytes())
npy("n_fortran", "{'descr': '<f4', 'fortran_order': Maybe, 'shape': %s, }" % shape, x.tobytes())
npy("n_dtype", "{'descr': '<f2', 'fortran_order': False, 'shape': %s, }" % shape, x.tobytes())
npy("n_dup", "{'descr': '<f4', 'fortran_order': False, 'shape': %s, 'shape': (1,), }" % shape, x.tobytes())
npy("n_int", "{'descr': '<f4', 'fortran_order': False, 'shape': (%d), }" % x.size, x.tobytes())
with open(f"{d}/n_hugehdr.npy", "wb") as f:
    f.write(b"\x93NUMPY\x02\x00" + struct.pack("<I", 0xfffffff0) + b"{}" + x.tobytes())
# The control: Fortran order, as numpy writes it, is accepted and transposed.
np.save(f"{d}/n_ok_fortran.npy", np.asfortranarray(x))
PY

# expect NAME STATUS PATTERN DESCRIPTION OPTIONS...: exit STATUS, PATTERN
# (grep -E) exactly once in the output (refusals: on stderr), no sanitizer
# report.
expect() {
	name=$1 want=$2 pat=$3 desc=$4
	shift 4
	run_fixture fx 2 "$T/$name" "$@"
	st=$?
	n=$(cat "$T/$name.out" "$T/$name.err" | grep -cE -e "$pat")
	san=$(grep -c 'Sanitizer\|runtime error:' "$T/$name.err")
	[ $st -eq "$want" ] && [ "$n" -eq 1 ] && [ "$san" -eq 0 ]
	ok $? "$desc (exit $want)"
	if [ $st -ne "$want" ] || [ "$n" -ne 1 ] || [ "$san" -ne 0 ]; then
		echo "status $st, $n matching lines; stderr:" | diag
		head -n 20 "$T/$name.err" | diag
	fi
}

data="--input $T/x.npy --target $T/y.npy --steps 2"
w() { echo "--weights-in $T/$1.safetensors"; }

# shellcheck disable=SC2046  # w's words are meant to split
{
expect good 0 "^step 2 loss" "the untouched checkpoint loads (the control)" $data $(w w0)
expect overlap 1 "overlap.safetensors: tensors 'fc1.weight' \[.*\) and 'fc1.bias' \[.*\) overlap" \
	"fc1.bias's bytes inside fc1.weight's are refused, naming both" $data $(w overlap)
expect gap 1 "gap.safetensors: a gap in the data section: bytes \[[0-9]+, [0-9]+\) belong to no tensor" \
	"a gap between tensors is refused" $data $(w gap)
expect trailing 1 "trailing.safetensors: the tensors end at data byte [0-9]+, but the data section has [0-9]+" \
	"bytes after the last tensor are refused" $data $(w trailing)
expect claims 1 "claims.safetensors: not a safetensors file \(header length 1048576, but the file holds [0-9]+ bytes" \
	"a header claiming more bytes than the file holds is refused" $data $(w claims)
expect hugehdr 1 "hugehdr.safetensors: .*header length 9223372036854775824 is over the format's limit of 100000000" \
	"a header length over 100,000,000 bytes is refused" $data $(w hugehdr)
expect overflow 1 "overflow.safetensors: tensor 'fc1.weight': shape too large" \
	"a shape whose product overflows is refused" $data $(w overflow)
expect bigoffset 1 "bigoffset.safetensors: tensor 'fc2.bias': data_offsets outside" \
	"offsets near 2^64 are refused" $data $(w bigoffset)
expect deep 1 "deep.safetensors: header: bad JSON at byte [0-9]+: nesting too deep" \
	"JSON nested 5000 deep is refused without recursing" $data $(w deep)
expect dupkey 1 "dupkey.safetensors: header: .*key 'fc1.bias' appears twice" \
	"a tensor named twice is refused" $data $(w dupkey)
expect utf8 1 "utf8.safetensors: header: bad JSON at byte [0-9]+: invalid UTF-8" \
	"an overlong UTF-8 sequence in a name is refused" $data $(w utf8)
expect meta 1 "meta.safetensors: __metadata__ must map strings to strings" \
	"a __metadata__ value that is not a string is refused" $data $(w meta)

nw="$(w w0) --target $T/y.npy --steps 2"
expect n_trunc 1 "n_trunc.npy: [0-9]+ data bytes, but the shape needs [0-9]+ \(truncated\?\)" \
	"an .npy with less data than its shape is refused" $nw --input "$T/n_trunc.npy"
expect n_overflow 1 "n_overflow.npy: shape too large" \
	"an .npy shape whose product overflows is refused" $nw --input "$T/n_overflow.npy"
expect n_hugehdr 1 "n_hugehdr.npy: header length 4294967280 is over the limit" \
	"an .npy header length of 4 GB is refused before allocating" $nw --input "$T/n_hugehdr.npy"
expect n_fortran 1 "n_fortran.npy: bad fortran_order" "fortran_order must be True or False" \
	$nw --input "$T/n_fortran.npy"
expect n_dtype 1 "n_dtype.npy: dtype '<f2' is not supported" "an unsupported dtype is named" \
	$nw --input "$T/n_dtype.npy"
expect n_dup 1 "n_dup.npy: header key 'shape' appears twice" "a repeated header key is refused" \
	$nw --input "$T/n_dup.npy"
expect n_int 1 "n_int.npy: bad shape" "a shape that is an integer, not a tuple, is refused" \
	$nw --input "$T/n_int.npy"
expect n_ok_fortran 0 "^step 2 loss" "a Fortran-order input as numpy writes it is accepted" \
	$nw --input "$T/n_ok_fortran.npy"
}

# And the same losses as the C-order file: the transpose is right.
grep '^step [0-9]* loss' "$T/good.out" >"$T/l_good"
grep '^step [0-9]* loss' "$T/n_ok_fortran.out" >"$T/l_fortran"
[ -s "$T/l_good" ] && cmp -s "$T/l_good" "$T/l_fortran"
ok $? "the Fortran-order input trains exactly as the C-order one"

done_testing
