#!/usr/bin/env python3
"""pipe_ref.py -- an independent numpy reference for pipec's numbers.

It reads a .pipe file with its own small parser (not pipec's), builds the
network in numpy (float64), and trains it exactly as docs/language.md and
docs/running.md define: y = x W^T + b, losses are means over the global
batch, SGD (momentum, weight decay, nesterov), Adam and AdamW with PyTorch's
semantics, and docs/training.md's learning-rate schedules, `decay` and
`clip_grad_norm`.  Tests compare pipec's printed losses, --weights-out and
--output against it.

With dtype = bf16 or f16 (docs/precision.md) it rounds where the programs
do: the f32 inputs, every layer's output and input-gradient, the loss
gradient and the weights each step computes with hold 16-bit values; the
optimizer updates unrounded master weights, which --weights-out holds.
The rounding is numpy's own (float16) or frexp's (bf16: 8 significant
bits, ties to even), not the runtime's bit manipulation.

Every synchronous schedule computes the same numbers as one whole-batch step;
the asynchronous ones follow the spec's "Asynchronous schedules" section:
`pipedream` updates every stage after each micro-batch, micro-batch k using
at stage s the weights after max(0, k - d_s) updates (d_s = inflight_s - 1,
inflight default P - s); `pipedream-2bw` computes step t with W(t-1).

  pipe_ref.py init  MODEL.pipe --seed S --out W.safetensors
  pipe_ref.py data  MODEL.pipe --seed S --rows N --input X.npy [--target Y.npy]
  pipe_ref.py train MODEL.pipe --weights W --input X --target Y --steps N
                    [--set KEY=VALUE]... --weights-out OUT --losses OUT.txt
                    [--output OUT.npy] [--log OUT.txt (each update's lr and norm)]
  pipe_ref.py compare A.safetensors B.safetensors --rtol R --atol A [--skip SUFFIX]...
"""
import json
import math
import re
import struct
import sys

import numpy as np

# ---------------------------------------------------------------- parsing


def strip_comments(text):
    return re.sub(r"#[^\n]*", "", text)


def fail(msg):
    sys.stderr.write("pipe_ref.py: %s\n" % msg)
    sys.exit(2)


def parse_pipe(path, sets):
    text = strip_comments(open(path).read())
    model = re.search(r"model\s+\w+\s*\{(.*?)\}\s*pipeline", text, re.S).group(1)
    pipe = re.search(r"pipeline\s*\{(.*)\}\s*$", text, re.S).group(1)
    keys = {}
    block = re.search(r"partition\s*(\{.*?\})", pipe, re.S)  # the explicit block form
    if block:
        keys["partition"] = block.group(1)
        pipe = pipe[:block.start()] + ";" + pipe[block.end():]
    layers = []
    loss = None
    target = None
    inputs = []
    for stmt in model.split(";"):
        stmt = stmt.strip()
        if not stmt:
            continue
        m = re.match(r"layer\s+(\w+)\s*(?:\[(\d+)\])?\s*:\s*(\w+)\s*(?:\((.*)\))?$", stmt, re.S)
        if m:
            name, count, kind, args = m.groups()
            pos, kw = [], {}
            for a in (args or "").split(","):
                a = a.strip()
                if not a:
                    continue
                if "=" in a:
                    k, v = a.split("=")
                    kw[k.strip()] = v.strip()
                else:
                    pos.append(a)
            names = [name] if count is None else ["%s%d" % (name, i) for i in range(int(count))]
            for n in names:
                layers.append((n, kind, pos, kw))
            continue
        m = re.match(r"(input|target)\s+(\w+)\s*:\s*(\w+)\s*\[(.*)\]$", stmt)
        if m:
            dims = [d.strip() for d in m.group(4).split(",")][1:]
            entry = (m.group(2), m.group(3), [int(d) for d in dims])
            if m.group(1) == "input":
                inputs.append(entry)
            else:
                target = entry
            continue
        m = re.match(r"loss\s+(\w+)$", stmt)
        if m:
            loss = m.group(1)
    for stmt in pipe.split(";"):
        if "=" in stmt and "{" not in stmt:
            k, v = stmt.split("=", 1)
            keys[k.strip()] = v.strip()
    for s in sets:
        k, v = s.split("=", 1)
        keys[k.strip()] = v.strip()
    return inputs, target, layers, loss, keys


def parse_call(spec, kinds, what):
    """NAME or NAME(k = v, ...) -> (NAME, {k: v}); true/false are 1/0."""
    m = re.match(r"\s*(\w+)\s*(?:\((.*)\))?\s*$", spec)
    if not m or m.group(1) not in kinds:
        fail("unknown %s %s" % (what, spec))
    args = {}
    for a in (m.group(2) or "").split(","):
        if not a.strip():
            continue
        k, v = a.split("=")
        v = v.strip()
        args[k.strip()] = {"true": 1.0, "false": 0.0}.get(v, None)
        if args[k.strip()] is None:
            args[k.strip()] = float(v)
    return m.group(1), args


def parse_optimizer(spec):
    if not spec or spec == "none":
        return None
    return parse_call(spec, ("sgd", "adam", "adamw"), "optimizer")


def lr_at(keys, lr, t):
    """The learning rate of optimizer step t = 1, 2, ... (docs/training.md's
    formulas for lr_schedule, warm-up W, horizon T, floor min_lr)."""
    kind, a = parse_call(keys.get("lr_schedule", "constant"),
                         ("constant", "cosine", "linear"), "lr_schedule")
    W = a.get("warmup", 0.0)
    T = a.get("total", float(keys.get("steps", "0")))
    m = a.get("min_lr", 0.0)
    if t <= W:
        return lr * t / W
    if kind == "constant":
        return lr
    if t > T:
        return m
    if kind == "cosine":
        return m + (lr - m) * 0.5 * (1 + math.cos(math.pi * (t - W) / (T - W)))
    return m + (lr - m) * (T - t) / (T - W)


def parse_list(value):
    return [v.strip() for v in value.strip()[1:-1].split(",")]


def stage_of_layers(keys, names):
    """The stage of each layer, from `partition` (counts or the block form)."""
    nstages = int(keys["stages"])
    part = keys.get("partition", "auto").strip()
    stage = []
    if part.startswith("["):
        for s, n in enumerate(parse_list(part)):
            stage += [s] * int(n)
        if len(parse_list(part)) != nstages:
            fail("partition %s does not have %d entries" % (part, nstages))
    elif part.startswith("{"):
        ranges = re.findall(r"stage\s+(\d+)\s*:\s*(\w+)\s*(?:\.\.\s*(\w+))?", part)
        for s, (n, first, last) in enumerate(ranges):
            if int(n) != s or first not in names or names.index(first) != len(stage) \
                    or (last or first) not in names:
                fail("partition block %s: want stages 0, 1, ... over the layers in order" % part)
            stage += [s] * (names.index(last or first) - len(stage) + 1)
        if len(ranges) != nstages:
            fail("partition %s does not have %d stages" % (part, nstages))
    else:
        fail("the asynchronous schedules need an explicit partition, not %r" % part)
    if len(stage) != len(names):
        fail("partition %s covers %d layers, the model has %d" % (part, len(stage), len(names)))
    return stage


def build(layers, in_width):
    """Layer objects with shapes; params as PyTorch names -> shapes."""
    net = []
    width = in_width
    for name, kind, pos, kw in layers:
        L = {"name": name, "kind": kind, "in": width}
        if kind == "linear":
            L["in"], L["out"] = int(pos[0]), int(pos[1])
            assert L["in"] == width, "width chain broken at %s" % name
            L["bias"] = kw.get("bias", "true") == "true"
            L["params"] = [(name + ".weight", (L["out"], L["in"]))]
            if L["bias"]:
                L["params"].append((name + ".bias", (L["out"],)))
            width = L["out"]
        elif kind == "layernorm":
            L["out"] = width
            L["eps"] = float(kw.get("eps", pos[1] if len(pos) > 1 else "1e-5"))
            L["params"] = [(name + ".weight", (width,)), (name + ".bias", (width,))]
        elif kind == "dropout":
            L["out"] = width
            L["p"] = float(pos[0] if pos else kw["p"])
            L["params"] = []
        else:
            L["out"] = width
            L["params"] = []
        net.append(L)
    return net


# ---------------------------------------------------------------- files


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32", (k, v["dtype"])
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(data[a:b], dtype="<f4").reshape(v["shape"]).astype(np.float64)
    return out


def write_safetensors(path, tensors):
    header = {}
    blobs = []
    off = 0
    for k in sorted(tensors):
        a = np.ascontiguousarray(tensors[k], dtype="<f4")
        header[k] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        blobs.append(a.tobytes())
        off += a.nbytes
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


# ---------------------------------------------------------------- math

_erf = np.vectorize(math.erf)


def round_bf16(x):
    """The nearest bfloat16 value (8 significant bits, ties to even); the
    tests' values are far from bf16's subnormals and its overflow."""
    m, e = np.frexp(x)
    return np.ldexp(np.round(m * 256.0), e - 8)


def round_f16(x):
    return np.asarray(x).astype(np.float16).astype(np.float64)


def Q(x):
    """The program's dtype applied to an activation-like tensor."""
    return x if DTYPE == "f32" else round_bf16(x) if DTYPE == "bf16" else round_f16(x)


def QP(P):
    """The weights the kernels read: the master weights, rounded."""
    return P if DTYPE == "f32" else {n: Q(w) for n, w in P.items()}


DTYPE = "f32"


def forward(net, P, x):
    """Returns the output and, per layer, what backward needs."""
    P = QP(P)
    saved = []
    for L in net:
        k = L["kind"]
        s = {"x": x}
        if k == "linear":
            y = x @ P[L["name"] + ".weight"].T
            if L["bias"]:
                y = y + P[L["name"] + ".bias"]
        elif k == "relu":
            y = np.maximum(x, 0)
        elif k == "gelu":
            y = 0.5 * x * (1 + _erf(x / math.sqrt(2)))
        elif k == "tanh":
            y = np.tanh(x)
        elif k == "sigmoid":
            y = 1 / (1 + np.exp(-x))
        elif k == "silu":
            y = x / (1 + np.exp(-x))
        elif k == "dropout":
            assert L["p"] == 0 or not TRAINING, "the reference has no dropout RNG"
            y = x
        elif k == "layernorm":
            mu = x.mean(-1, keepdims=True)
            var = ((x - mu) ** 2).mean(-1, keepdims=True)
            rstd = 1 / np.sqrt(var + L["eps"])
            xhat = (x - mu) * rstd
            s["xhat"], s["rstd"] = xhat, rstd
            y = xhat * P[L["name"] + ".weight"] + P[L["name"] + ".bias"]
        elif k == "softmax":
            e = np.exp(x - x.max(-1, keepdims=True))
            y = e / e.sum(-1, keepdims=True)
        else:
            raise SystemExit("reference: unknown layer kind " + k)
        y = Q(y)
        s["y"] = y
        saved.append(s)
        x = y
    return x, saved


def backward(net, P, saved, dy):
    P = QP(P)
    G = {}
    for L, s in zip(reversed(net), reversed(saved)):
        k = L["kind"]
        x, y = s["x"], s["y"]
        if k == "linear":
            W = P[L["name"] + ".weight"]
            G[L["name"] + ".weight"] = dy.T @ x
            if L["bias"]:
                G[L["name"] + ".bias"] = dy.sum(0)
            dx = dy @ W
        elif k == "relu":
            dx = dy * (y > 0)
        elif k == "gelu":
            pdf = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
            cdf = 0.5 * (1 + _erf(x / math.sqrt(2)))
            dx = dy * (cdf + x * pdf)
        elif k == "tanh":
            dx = dy * (1 - y * y)
        elif k == "sigmoid":
            dx = dy * y * (1 - y)
        elif k == "silu":
            sg = 1 / (1 + np.exp(-x))
            dx = dy * sg * (1 + x * (1 - sg))
        elif k == "dropout":
            dx = dy
        elif k == "layernorm":
            g = P[L["name"] + ".weight"]
            xhat, rstd = s["xhat"], s["rstd"]
            G[L["name"] + ".weight"] = (dy * xhat).sum(0)
            G[L["name"] + ".bias"] = dy.sum(0)
            dxhat = dy * g
            d = x.shape[-1]
            dx = rstd / d * (d * dxhat - dxhat.sum(-1, keepdims=True)
                             - xhat * (dxhat * xhat).sum(-1, keepdims=True))
        elif k == "softmax":
            dx = y * (dy - (dy * y).sum(-1, keepdims=True))
        dy = Q(dx)
    return G


def loss_and_grad(kind, out, t):
    B = out.shape[0]
    if kind == "cross_entropy":
        z = out - out.max(-1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
        t = t.astype(np.int64).reshape(-1)
        loss = -logp[np.arange(B), t].mean()
        d = np.exp(logp)
        d[np.arange(B), t] -= 1
        return loss, Q(d / B)
    if kind == "mse":
        t = t.reshape(out.shape)
        diff = out - t
        return (diff ** 2).mean(), Q(2 * diff / diff.size)
    raise SystemExit("reference: unknown loss " + str(kind))


TRAINING = True


def update(opt, state, name, w, g, lr, decay=True):
    """One optimizer step of parameter NAME (PyTorch's semantics): the new value.
    state[NAME] is its momentum buffer (SGD) or (m, v, t) (Adam, AdamW).
    lr: this step's; decay: whether weight decay applies to NAME."""
    kind, a = opt
    wd = a.get("weight_decay", 0.01 if kind == "adamw" else 0.0) if decay else 0.0
    if kind == "sgd":
        mom = a.get("momentum", 0.0)
        g = g + wd * w
        if mom:
            buf = state.get(name)
            buf = g.copy() if buf is None else mom * buf + g
            state[name] = buf
            g = g + mom * buf if a.get("nesterov", 0.0) else buf
        return w - lr * g
    b1, b2, eps = a.get("beta1", 0.9), a.get("beta2", 0.999), a.get("eps", 1e-8)
    if kind == "adamw":
        w = w - lr * wd * w
    else:
        g = g + wd * w
    m, v, t = state.get(name, (np.zeros_like(g), np.zeros_like(g), 0))
    t += 1
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    state[name] = (m, v, t)
    mhat = m / (1 - b1 ** t)
    vhat = v / (1 - b2 ** t)
    return w - lr * mhat / (np.sqrt(vhat) + eps)


def apply_update(keys, opt, state, P, G, t, log):
    """Step t's update of every parameter in G: the schedule's lr, global
    norm clipping (torch.nn.utils.clip_grad_norm_), decay = matrices."""
    lr = lr_at(keys, opt[1]["lr"], t)
    clip = float(keys.get("clip_grad_norm", "0"))
    norm = None
    if clip > 0:
        norm = math.sqrt(sum(float(np.sum(g * g)) for g in G.values()))
        coef = clip / (norm + 1e-6)
        if coef < 1:
            G = {n: g * coef for n, g in G.items()}
    log.append((t, lr, norm))
    matrices = keys.get("decay", "all") == "matrices"
    return dict(P, **{n: update(opt, state, n, P[n], g, lr, not matrices or P[n].ndim >= 2)
                      for n, g in G.items()})


def train_steps(net, P, X, Y, loss, opt, B, steps, delayed, keys, log):
    """One whole-batch update per step: every synchronous schedule, and
    pipedream-2bw (delayed: step t computes with W(t-1), W(-1) = W(0), and
    W(t+1) = opt(W(t), g_t)).  Returns the final weights, losses, last output."""
    k = X.shape[0] // B
    state = {}
    losses = []
    out = None
    prev = P
    for step in range(steps):
        rows = slice((step % k) * B, (step % k + 1) * B)
        W = prev if delayed else P
        out, saved = forward(net, W, X[rows])
        if not TRAINING:
            continue
        L, d = loss_and_grad(loss, out, Y[rows])
        losses.append(L)
        G = backward(net, W, saved, d)
        prev, P = P, apply_update(keys, opt, state, P, G, step + 1, log)
    return P, losses, out


def train_pipedream(net, P, X, Y, loss, opt, B, M, steps, lag, keys, log):
    """PipeDream with weight stashing: micro-batch k (micro-batch k mod M of
    step k // M) runs forward and backward with, for each parameter, the
    weights after max(0, k - lag[name]) updates, and every stage then applies
    k's gradient (of k's own mean loss) to its newest weights.  Each stage
    updates once per micro-batch, so version v is one dict for the model."""
    kdata = X.shape[0] // B
    b = B // M
    state = {}
    hist = [P]  # hist[v]: the weights after v updates
    losses, outs = [], []
    for k in range(steps * M):
        step, j = divmod(k, M)
        rows = slice((step % kdata) * B + j * b, (step % kdata) * B + (j + 1) * b)
        W = {n: hist[max(0, k - lag.get(n, 0))][n] for n in P}
        out, saved = forward(net, W, X[rows])
        L, d = loss_and_grad(loss, out, Y[rows])
        G = backward(net, W, saved, d)
        # the learning rate of the step that holds the micro-batch
        hist.append(apply_update(keys, opt, state, hist[k], G, step + 1, log))
        losses.append(L)
        outs.append(out)
    means = [float(np.mean(losses[n * M:(n + 1) * M])) for n in range(steps)]
    return hist[-1], means, np.concatenate(outs[-M:])


def train(args):
    global TRAINING, DTYPE
    inputs, target, layers, loss, keys = parse_pipe(args.model, args.set)
    net = build(layers, inputs[0][2][-1])
    P = read_safetensors(args.weights)
    X = np.load(args.input).astype(np.float64)
    DTYPE = keys.get("dtype", "f32")
    if DTYPE not in ("f32", "bf16", "f16"):
        fail("dtype %s: want f32, bf16 or f16" % DTYPE)
    X = Q(X)
    B = int(keys["batch"])
    opt = parse_optimizer(keys.get("optimizer"))
    TRAINING = opt is not None
    log = []
    Y = np.load(args.target) if args.target else None
    sched = keys.get("schedule", "1f1b" if TRAINING else "inference")
    if sched in ("pipedream", "pipedream-2bw"):
        if not TRAINING:
            fail("schedule %s needs an optimizer (it trains)" % sched)
        if int(keys.get("replicas", "1")) != 1:
            fail("the reference does not model replicas with schedule " + sched)
        stage = stage_of_layers(keys, [L["name"] for L in net])
    if sched == "pipedream":
        M = int(keys.get("microbatches", "1"))
        nstages = int(keys["stages"])
        if B % M:
            fail("microbatches %d does not divide batch %d" % (M, B))
        inflight = [int(i) for i in parse_list(keys["inflight"])] if "inflight" in keys \
            else [nstages - s for s in range(nstages)]
        if len(inflight) != nstages or min(inflight) < 1:
            fail("inflight %s: want %d integers >= 1" % (inflight, nstages))
        lag = {name: inflight[s] - 1 for L, s in zip(net, stage) for name, _ in L["params"]}
        P, losses, out = train_pipedream(net, P, X, Y, loss, opt, B, M, args.steps, lag,
                                         keys, log)
    else:
        P, losses, out = train_steps(net, P, X, Y, loss, opt, B, args.steps,
                                     sched == "pipedream-2bw", keys, log)
    if args.weights_out:
        write_safetensors(args.weights_out, P)
    if args.losses:
        with open(args.losses, "w") as f:
            for i, L in enumerate(losses):
                f.write("step %d loss %.9g\n" % (i + 1, L))
    if args.output is not None:
        np.save(args.output, out.astype(np.float32))
    if args.log:
        with open(args.log, "w") as f:
            for t, lr, norm in log:
                f.write("step %d lr %.17g grad_norm %s\n"
                        % (t, lr, "none" if norm is None else "%.17g" % norm))


def init(args):
    inputs, target, layers, loss, keys = parse_pipe(args.model, args.set)
    net = build(layers, inputs[0][2][-1])
    rng = np.random.default_rng(args.seed)
    P = {}
    for L in net:
        for name, shape in L["params"]:
            fan_in = L["in"]
            bound = 1 / math.sqrt(fan_in)
            if L["kind"] == "layernorm":
                P[name] = 1 + 0.1 * rng.standard_normal(shape) if name.endswith("weight") \
                    else 0.1 * rng.standard_normal(shape)
            else:
                P[name] = rng.uniform(-bound, bound, shape)
    write_safetensors(args.out, P)


def data(args):
    inputs, target, layers, loss, keys = parse_pipe(args.model, args.set)
    net = build(layers, inputs[0][2][-1])
    rng = np.random.default_rng(args.seed)
    X = rng.standard_normal((args.rows, inputs[0][2][-1])).astype(np.float32)
    np.save(args.input, X)
    if args.target:
        if loss == "cross_entropy":
            np.save(args.target, rng.integers(0, net[-1]["out"], args.rows).astype(np.int32))
        else:
            np.save(args.target, rng.standard_normal((args.rows, net[-1]["out"])).astype(np.float32))


def compare(args):
    A = read_safetensors(args.a)
    B = read_safetensors(args.b)
    if sorted(A) != sorted(B):
        print("names differ: %s vs %s" % (sorted(A), sorted(B)))
        return 1
    worst = 0.0
    for k in A:
        if any(k.endswith(s) for s in args.skip):
            continue
        if A[k].shape != B[k].shape:
            print("%s: shape %s vs %s" % (k, A[k].shape, B[k].shape))
            return 1
        err = np.abs(A[k] - B[k]) / (args.atol + args.rtol * np.abs(B[k]))
        if err.size and err.max() > worst:
            worst = err.max()
            where = k
    print("worst error / tolerance: %.3g%s" % (worst, " (%s)" % where if worst else ""))
    return 0 if worst <= 1 else 1


def main():
    import argparse
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("init", "data", "train"):
        p = sub.add_parser(name)
        p.add_argument("model")
        p.add_argument("--set", action="append", default=[])
        p.add_argument("--seed", type=int, default=0)
    sub.choices["init"].add_argument("--out", required=True)
    d = sub.choices["data"]
    d.add_argument("--rows", type=int, required=True)
    d.add_argument("--input", required=True)
    d.add_argument("--target")
    t = sub.choices["train"]
    t.add_argument("--weights", required=True)
    t.add_argument("--input", required=True)
    t.add_argument("--target")
    t.add_argument("--steps", type=int, default=1)
    t.add_argument("--weights-out")
    t.add_argument("--losses")
    t.add_argument("--output")
    t.add_argument("--log", help="per update: step, lr, gradient norm before clipping")
    c = sub.add_parser("compare")
    c.add_argument("a")
    c.add_argument("b")
    c.add_argument("--rtol", type=float, default=1e-4)
    c.add_argument("--atol", type=float, default=1e-5)
    c.add_argument("--skip", action="append", default=[],
                   help="leave out tensors whose names end so (repeatable)")
    args = ap.parse_args()
    rc = {"init": init, "data": data, "train": train, "compare": compare}[args.cmd](args)
    sys.exit(rc or 0)


if __name__ == "__main__":
    main()
