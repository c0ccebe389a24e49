#!/usr/bin/env python3
"""bench/torch_pipe.py — the PyTorch side of the side-by-side benchmark.

Runs the same model, partition, schedule, batch and micro-batch count as a
`.pipe` file with torch.distributed.pipelining on the CPU (gloo), one process
per pipeline rank (spawned here), and prints one JSON object with the step
times.  The model and the partition are read from `pipec check` (so the two
sides cannot drift apart); the weights and the data are made here and written
for pipec:

  --weights-out W.safetensors   every parameter, PyTorch names and layouts
  --data-out DIR                DIR/x.npy, DIR/y.npy: one batch (k = 1)

so that `DIR/run --weights-in W.safetensors --input x.npy --target y.npy`
does the same work; bench/exp_compare.py checks that the two first-step
losses agree.

Timing: every step is timed between two barriers (as pipec's runtime times
its steps), the first --warmup steps are left out, the median is reported.
Only the standard library and torch are needed (no numpy: tensors are written
through their raw bytes).
"""
import argparse
import ctypes
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
import time


# ---- the model, as pipec sees it ------------------------------------------

def pipec_check(pipec, model, sets):
    """Parse `pipec check`: layers, stages and the pipeline line."""
    cmd = [pipec, "check", model]
    for s in sets:
        cmd += ["--set", s]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    desc = {"layers": [], "stages": []}
    m = re.search(r"input \w+: f32\[batch, (\d+)\]", out)
    desc["in_width"] = int(m.group(1))
    m = re.search(r"target \w+: (\w+)\[batch(?:, (\d+))?\]", out)
    desc["target_dtype"] = m.group(1) if m else None
    desc["target_width"] = int(m.group(2)) if m and m.group(2) else 1
    desc["loss"] = re.search(r"; loss (\w+)", out).group(1)
    m = re.search(r"pipeline: (\d+) stages?(?: x (\d+) virtual)?(?: x (\d+) replicas)?.*?, "
                  r"batch (\d+) = (?:\d+ x )?(\d+) micro-batch(?:es)? of (\d+) rows, "
                  r"schedule (\S+), (.*)$", out, re.M)
    desc["P"] = int(m.group(1))
    desc["V"] = int(m.group(2) or 1)
    desc["R"] = int(m.group(3) or 1)
    desc["batch"] = int(m.group(4))
    desc["M"] = int(m.group(5))
    desc["schedule"] = m.group(7).rstrip(",")
    opt = m.group(8).strip()
    mo = re.match(r"(sgd|adam)\(lr = ([0-9.e+-]+)(?:, momentum = ([0-9.e+-]+))?\)", opt)
    if not mo:
        raise SystemExit("torch_pipe: cannot read the optimizer from: " + opt)
    desc["optim"] = (mo.group(1), float(mo.group(2)), float(mo.group(3) or 0))
    lay = re.search(r"^\s+layer\s+kind\s+width.*?\n(.*?)\n\s*\n", out, re.S | re.M)
    for line in lay.group(1).splitlines():
        f = line.split()
        # name kind IN -> OUT params ...
        name, kind, w_in, w_out, params = f[0], f[1], int(f[2]), int(f[4]), int(f[5].replace(",", ""))
        desc["layers"].append({"name": name, "kind": kind, "in": w_in, "out": w_out,
                               "bias": kind != "linear" or params == w_in * w_out + w_out})
    names = [l["name"] for l in desc["layers"]]
    st = re.search(r"^\s+stage\s+rank\s+layers.*?\n(.*?)\n\s*\(", out, re.S | re.M)
    for line in st.group(1).splitlines():
        f = line.split()
        first, last = (f[2], f[4]) if len(f) > 4 and f[3] == ".." else (f[2], f[2])
        desc["stages"].append({"stage": int(f[0]), "rank": int(f[1]),
                               "first": names.index(first), "last": names.index(last) + 1})
    if desc["R"] != 1:
        raise SystemExit("torch_pipe: replicas > 1 are not compared (pipeline only)")
    return desc


def make_layer(torch, l):
    nn = torch.nn
    k = l["kind"]
    if k == "linear":
        return nn.Linear(l["in"], l["out"], bias=l["bias"])
    if k == "relu":
        return nn.ReLU()
    if k == "gelu":
        return nn.GELU()
    if k == "tanh":
        return nn.Tanh()
    if k == "sigmoid":
        return nn.Sigmoid()
    if k == "layernorm":
        return nn.LayerNorm(l["in"], eps=1e-5)
    raise SystemExit("torch_pipe: layer kind '%s' is not supported here" % k)


def build_model(torch, desc, seed):
    """The whole model as one module whose attributes are pipec's layer names,
    so that its state_dict has pipec's (PyTorch's) parameter names."""
    torch.manual_seed(seed)
    model = torch.nn.Module()
    for l in desc["layers"]:
        model.add_module(l["name"], make_layer(torch, l))
    return model


def stage_module(torch, model, desc, s):
    names = [l["name"] for l in desc["layers"][s["first"]:s["last"]]]

    class Stage(torch.nn.Module):
        def __init__(self):
            super().__init__()
            for n in names:
                self.add_module(n, getattr(model, n))

        def forward(self, x):
            for n in names:
                x = getattr(self, n)(x)
            return x

    return Stage()


# ---- files for pipec: safetensors and npy, written from raw bytes -----------

def tensor_bytes(t):
    t = t.detach().contiguous()
    return ctypes.string_at(t.data_ptr(), t.numel() * t.element_size())


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        b = tensor_bytes(t.float())
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(torch, path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        a, b = h["data_offsets"]
        out[name] = torch.frombuffer(bytearray(data[a:b]), dtype=torch.float32).reshape(h["shape"])
    return out


def write_npy(path, t):
    shape = "".join("%d," % s for s in t.shape) if len(t.shape) == 1 else \
        ", ".join("%d" % s for s in t.shape)
    hdr = ("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }"
           % (torch_dtype_name(t), shape)).encode("latin1")
    pad = -(10 + len(hdr) + 1) % 64
    hdr += b" " * pad + b"\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr)
        f.write(tensor_bytes(t))


def torch_dtype_name(t):
    return {"torch.float32": "<f4", "torch.int32": "<i4", "torch.int64": "<i8"}[str(t.dtype)]


def make_data(torch, desc, seed):
    g = torch.Generator().manual_seed(seed + 1)
    B = desc["batch"]
    x = torch.randn(B, desc["in_width"], generator=g)
    if desc["loss"] == "cross_entropy":
        ncls = desc["layers"][-1]["out"]
        y = torch.randint(0, ncls, (B,), generator=g, dtype=torch.int64).to(torch.int32)
    else:
        y = torch.randn(B, desc["target_width"], generator=g)
    return x, y


# ---- one rank ---------------------------------------------------------------

def worker(rank, a, desc, store_path, weights_path, data_path, result_path):
    import torch
    import torch.distributed as dist
    from torch.distributed.pipelining import (PipelineStage, ScheduleGPipe, Schedule1F1B,
                                              ScheduleInterleaved1F1B)
    torch.set_num_threads(a.threads)
    dist.init_process_group("gloo", init_method="file://" + store_path, rank=rank,
                            world_size=desc["P"])

    model = build_model(torch, desc, a.seed)
    state = read_safetensors(torch, weights_path)
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(state[n])
    x, y = torch.load(data_path)
    if desc["loss"] == "cross_entropy":
        y = y.long()

        def loss_fn(out, tgt):
            return torch.nn.functional.cross_entropy(out, tgt)
    else:
        def loss_fn(out, tgt):
            return torch.nn.functional.mse_loss(out, tgt)

    mine = [s for s in desc["stages"] if s["rank"] == rank]
    nstages = len(desc["stages"])
    stages, params = [], []
    M = desc["M"]
    for s in mine:
        mod = stage_module(torch, model, desc, s)
        params += list(mod.parameters())
        # Static shapes: PyTorch's shape inference would exchange pickled
        # metadata (and needs numpy); pipec knows its shapes at compile time.
        rows = desc["batch"] // M
        lay = desc["layers"]
        stages.append(PipelineStage(
            mod, s["stage"], nstages, torch.device("cpu"),
            input_args=torch.empty(rows, lay[s["first"]]["in"], requires_grad=s["stage"] > 0),
            output_args=torch.empty(rows, lay[s["last"] - 1]["out"], requires_grad=True)))
    sched_name = desc["schedule"]
    if sched_name == "gpipe":
        sched = ScheduleGPipe(stages[0], M, loss_fn=loss_fn)
    elif sched_name == "1f1b":
        sched = Schedule1F1B(stages[0], M, loss_fn=loss_fn)
    elif sched_name.startswith("interleaved"):
        sched = ScheduleInterleaved1F1B(stages, M, loss_fn=loss_fn)
    else:
        raise SystemExit("torch_pipe: schedule %s has no PyTorch class here" % sched_name)

    # The compute order PyTorch runs, recorded during the first step in
    # pipec's `--format torch` notation, to say whether the two run the same
    # schedule.  (The schedules' pipeline_order attribute is not it for the
    # single-stage classes: there it is a picture, and 2.15's 1F1B picture of
    # the last rank starts at F1.)
    order = []

    def wrap(st, fn, kind):
        def rec(chunk, *args, **kwargs):
            order.append("%d%s%d" % (st.stage_index, kind, chunk))
            return fn(chunk, *args, **kwargs)
        return rec
    for st in stages:
        st.forward_one_chunk = wrap(st, st.forward_one_chunk, "F")
        st.backward_one_chunk = wrap(st, st.backward_one_chunk, "B")

    name, lr, mom = desc["optim"]
    if not params:          # a rank whose stages hold no parameters (relu-only chunks)
        opt = None
    elif name == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=mom)
    else:
        opt = torch.optim.Adam(params, lr=lr)
    has_first = any(s["stage"] == 0 for s in mine)
    has_last = any(s["stage"] == nstages - 1 for s in mine)

    times, losses_per_step = [], []
    for t in range(a.steps):
        losses = []
        dist.barrier()
        t0 = time.perf_counter()
        args = (x,) if has_first else ()
        kw = {"target": y, "losses": losses} if has_last else {}
        sched.step(*args, return_outputs=False, **kw)
        if opt:
            opt.step()
            opt.zero_grad(set_to_none=True)
        dist.barrier()
        times.append(time.perf_counter() - t0)
        for st in stages:           # recorded: the instance attributes go, the methods stay
            st.__dict__.pop("forward_one_chunk", None)
            st.__dict__.pop("backward_one_chunk", None)
        if has_last:
            losses_per_step.append(float(sum(l.item() for l in losses) / len(losses)))
    # The cost of a bare barrier pair, for the reader: it is inside every step.
    bar = []
    for _ in range(20):
        dist.barrier()
        t0 = time.perf_counter()
        dist.barrier()
        bar.append(time.perf_counter() - t0)
    res = {"rank": rank, "times": times, "losses": losses_per_step, "order": order,
           "barrier_s": sorted(bar)[len(bar) // 2]}
    with open(result_path + ".%d" % rank, "w") as f:
        json.dump(res, f)
    dist.destroy_process_group()


def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pipec", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=2, help="steps left out of the median")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--weights-out", help="write the initial weights (safetensors)")
    ap.add_argument("--data-out", help="write x.npy and y.npy (one batch) into this directory")
    ap.add_argument("--describe", action="store_true", help="print the model as parsed and exit")
    a = ap.parse_args()

    desc = pipec_check(a.pipec, a.model, a.sets)
    if a.describe:
        print(json.dumps(desc, indent=1))
        return
    import torch
    import torch.multiprocessing as mp
    torch.set_num_threads(a.threads)

    tmp = tempfile.mkdtemp(prefix="torch_pipe.")
    weights = a.weights_out or os.path.join(tmp, "w.safetensors")
    model = build_model(torch, desc, a.seed)
    write_safetensors(weights, dict(model.state_dict()))
    x, y = make_data(torch, desc, a.seed)
    if a.data_out:
        os.makedirs(a.data_out, exist_ok=True)
        write_npy(os.path.join(a.data_out, "x.npy"), x)
        write_npy(os.path.join(a.data_out, "y.npy"), y)
    data = os.path.join(tmp, "data.pt")
    torch.save((x, y), data)
    del model

    store = os.path.join(tmp, "store")
    result = os.path.join(tmp, "result")
    try:
        mp.spawn(worker, args=(a, desc, store, weights, data, result), nprocs=desc["P"], join=True)
        res = []
        for r in range(desc["P"]):
            with open(result + ".%d" % r) as f:
                res.append(json.load(f))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    # Every rank timed the same barrier-to-barrier intervals; rank 0's are reported.
    times = res[0]["times"][a.warmup:]
    losses = next(r["losses"] for r in res if r["losses"])
    step = median(times)
    out = {
        "torch_version": torch.__version__,
        "P": desc["P"], "V": desc["V"], "M": desc["M"], "batch": desc["batch"],
        "schedule": desc["schedule"], "threads": a.threads,
        "steps": a.steps, "steps_timed": len(times),
        "step_time": step, "samples_per_s": desc["batch"] / step,
        "times": times, "losses": losses, "barrier_s": res[0]["barrier_s"],
        "order": [r["order"] for r in res],
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
