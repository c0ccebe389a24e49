#!/usr/bin/python3
"""runtime-ref.py — numpy reference for the two-rank fixture (t/rt-fixtures/two_rank.c).

    runtime-ref.py make DIR      write DIR/w0.safetensors, DIR/x.npy, DIR/y.npy, DIR/y_mse.npy
    runtime-ref.py check DIR OPTIM STEPS RUN_STDOUT WEIGHTS_OUT OUTPUT_NPY

OPTIM is sgd (SGD, momentum 0.9, lr 0.1), adam (Adam, lr 0.01), mse (SGD
as above with the mse loss and the float targets of y_mse.npy) or infer
(forward only over every row of x.npy: no loss lines, the weights unchanged).

`check` trains the same model (fc1 = linear(8, 16), relu, fc2 = linear(16, 4),
cross-entropy or mse, batch 16) in float64, on the whole batch at once — no pipeline, no
micro-batches, no replicas — and compares the losses printed by the run, the
weights it wrote and its output with that.  It reads and writes safetensors and
.npy with its own code (json + numpy), independent of the runtime's.

Tolerances.  The run computes in float32: one value passes through two GEMMs of
length <= 16, a softmax and the updates; each float32 operation errs by at most
2^-24 relative, so per-step relative errors are ~1e-6, and over a few steps of
SGD (lr 0.1) or Adam (lr 0.01) they stay near 1e-7 (measured: 4e-8 on weights
and outputs after 5 SGD steps).  Adam's normalised step can amplify the error of
a near-zero gradient (bounded by lr per step); none occurs with this data, and
the check reports the worst element if one does.  We allow 1e-5 (relative on
losses, absolute on weights and outputs of magnitude <= 1): 100x the expected
error, 1000x below what a wrong formula or a lost micro-batch produces.
"""
import json
import struct
import sys

import numpy as np

B, IN, HID, OUT = 16, 8, 16, 4


def st_read(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    hdr = json.loads(data[8:8 + n])
    out = {}
    for name, e in hdr.items():
        if name == "__metadata__":
            continue
        assert e["dtype"] == "F32", (name, e["dtype"])
        b, end = e["data_offsets"]
        out[name] = np.frombuffer(data[8 + n + b:8 + n + end], dtype="<f4").reshape(e["shape"])
    return out, list(k for k in hdr if k != "__metadata__")


def st_write(path, tensors):
    hdr, off, blobs = {}, 0, []
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype="<f4")
        hdr[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        off += a.nbytes
        blobs.append(a.tobytes())
    h = json.dumps(hdr).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def make(d):
    rng = np.random.default_rng(2024)
    w = {
        "fc1.weight": rng.uniform(-0.35, 0.35, (HID, IN)),
        "fc1.bias": rng.uniform(-0.35, 0.35, (HID,)),
        "fc2.weight": rng.uniform(-0.25, 0.25, (OUT, HID)),
        "fc2.bias": rng.uniform(-0.25, 0.25, (OUT,)),
    }
    st_write(f"{d}/w0.safetensors", w)
    x = rng.standard_normal((2 * B, IN)).astype(np.float32)      # k = 2 batches
    y = (x @ rng.standard_normal((IN, OUT))).argmax(1).astype(np.int64)
    np.save(f"{d}/x.npy", x)
    np.save(f"{d}/y.npy", y)
    np.save(f"{d}/y_mse.npy", np.tanh(x @ rng.standard_normal((IN, OUT))).astype(np.float32))


def train(d, optim, steps):
    w = {k: v.astype(np.float64) for k, v in st_read(f"{d}/w0.safetensors")[0].items()}
    x_all = np.load(f"{d}/x.npy").astype(np.float64)
    mse = optim == "mse"
    y_all = np.load(f"{d}/y_mse.npy" if mse else f"{d}/y.npy")
    k = x_all.shape[0] // B
    state = {n: [np.zeros_like(v), np.zeros_like(v)] for n, v in w.items()}
    losses, z = [], None
    if optim == "infer":
        # An inference run over a file scores every row once, in order.
        h = x_all @ w["fc1.weight"].T + w["fc1.bias"]
        return losses, w, np.maximum(h, 0) @ w["fc2.weight"].T + w["fc2.bias"]
    for t in range(steps):
        x = x_all[(t % k) * B:(t % k + 1) * B]
        y = y_all[(t % k) * B:(t % k + 1) * B]
        h = x @ w["fc1.weight"].T + w["fc1.bias"]
        a = np.maximum(h, 0)
        z = a @ w["fc2.weight"].T + w["fc2.bias"]
        if mse:
            losses.append(float(np.mean((z - y) ** 2)))
            dz = 2 * (z - y) / (B * OUT)
        else:
            m = z.max(1, keepdims=True)
            lse = m[:, 0] + np.log(np.exp(z - m).sum(1))
            losses.append(float(np.mean(lse - z[np.arange(B), y])))
            dz = np.exp(z - lse[:, None])
            dz[np.arange(B), y] -= 1
            dz /= B
        g = {"fc2.weight": dz.T @ a, "fc2.bias": dz.sum(0)}
        dh = (dz @ w["fc2.weight"]) * (h > 0)
        g["fc1.weight"] = dh.T @ x
        g["fc1.bias"] = dh.sum(0)
        for n in w:
            s = state[n]
            if optim != "adam":         # torch.optim.SGD(lr=0.1, momentum=0.9)
                s[0] = 0.9 * s[0] + g[n]
                w[n] = w[n] - 0.1 * s[0]
            else:                       # torch.optim.Adam(lr=0.01)
                s[0] = 0.9 * s[0] + 0.1 * g[n]
                s[1] = 0.999 * s[1] + 0.001 * g[n] ** 2
                mh = s[0] / (1 - 0.9 ** (t + 1))
                vh = s[1] / (1 - 0.999 ** (t + 1))
                w[n] = w[n] - 0.01 * mh / (np.sqrt(vh) + 1e-8)
    return losses, w, z


def check(d, optim, steps, stdout_path, wout, outnpy):
    want_l, want_w, want_z = train(d, optim, int(steps))
    errors = []
    got_l = []
    for line in open(stdout_path):
        p = line.split()
        if len(p) == 4 and p[0] == "step" and p[2] == "loss":
            got_l.append((int(p[1]), float(p[3])))
    want_n = [] if optim == "infer" else list(range(1, int(steps) + 1))
    if [n for n, _ in got_l] != want_n:
        errors.append(f"loss lines numbered {[n for n, _ in got_l]}, want {want_n}")
    for (n, gl), wl in zip(got_l, want_l):
        if abs(gl - wl) > 1e-5 * max(1.0, abs(wl)):
            errors.append(f"step {n}: loss {gl!r}, reference {wl!r}")
    got_w, order = st_read(wout)
    if order != sorted(want_w):
        errors.append(f"{wout}: tensors {order}, want {sorted(want_w)} (sorted by name)")
    for n, v in want_w.items():
        if n not in got_w or got_w[n].shape != v.shape:
            errors.append(f"{wout}: tensor {n} missing or misshapen")
            continue
        e = np.abs(got_w[n] - v).max()
        if e > 1e-5:
            errors.append(f"{wout}: {n} differs from the reference by {e:.3g}")
    z = np.load(outnpy)
    if z.shape != want_z.shape or z.dtype != np.float32:
        errors.append(f"{outnpy}: shape {z.shape} {z.dtype}, want {want_z.shape} float32")
    elif np.abs(z - want_z).max() > 1e-5:
        errors.append(f"{outnpy}: the output differs by {np.abs(z - want_z).max():.3g}")
    for e in errors:
        print("# " + e)
    if not errors:
        print(f"# {len(want_l)} losses, 4 tensors and the output agree with numpy"
              + (f" (last loss {want_l[-1]:.6f})" if want_l else ""))
    return 1 if errors else 0


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2])
    else:
        sys.exit(check(*sys.argv[2:]))
