#!/usr/bin/env python3
"""bench/minilm_cpu.py — MiniLM's one-core forward by CPU time: pipec programs
(P = 1, one BLAS thread) beside sentence-transformers' forward with one thread.

    bench/minilm_cpu.py ROUNDS T[,T...] NAME=RANK0[,NAME=RANK0...] [--torch-python PY]

Where bench/exp_minilm.py times wall clock, this counts the CPU time each
side got, which other processes on a shared machine disturb far less (they
still share the caches and the memory bus): for comparing two builds of the
runtime, or pipec with sentence-transformers, on a busy machine.

Each RANK0 is the rank0 of `pipec compile models/minilm.pipe --set stages=1
--set batch=64 --set microbatches=1`, built against the runtime to measure
(set PIPEC_RUNTIME_LIB to another build's runtime/ for a before/after).
Inputs: bench/exp_minilm.py's work files (WORK/minilm/tT.{ids,mask,txt}),
tiled here to 2 and 8 batches of 64; a program's CPU time per batch is that
of the 8-batch run less the 2-batch run's, over 6 (start-up and weight
loading cancel).  sentence-transformers: the model's forward alone on the
pre-tokenized batch under inference_mode, process time, median of the calls
after one warm-up.  Every round runs every program and sentence-transformers
once per T, in turn; prints each round and the medians over rounds.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

ST = r'''
import json, os, sys, time
os.environ["HF_HUB_OFFLINE"] = "1"
import torch
torch.set_num_threads(1)
sys.path.insert(0, sys.argv[5])
import torch_minilm as tm
m = tm.load_st(sys.argv[1], int(sys.argv[3]))
sents = [l.rstrip("\n") for l in open(sys.argv[2], encoding="utf-8") if l.strip()]
feats = m.tokenize(sents)
cpu = []
with torch.inference_mode():
    for i in range(int(sys.argv[4]) + 1):
        c0 = time.process_time()
        m(dict(feats))
        if i:
            cpu.append(time.process_time() - c0)
print(json.dumps({"cpu": cpu}))
'''


def children_cpu():
    t = os.times()
    return t.children_user + t.children_system


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rounds", type=int)
    ap.add_argument("lengths")
    ap.add_argument("programs")
    ap.add_argument("--work", default=os.path.join(lib.BUILD, "bench-work"))
    ap.add_argument("--torch-python", default=os.environ.get("BENCH_TORCH_PYTHON", "python3"))
    a = ap.parse_args()
    model = subprocess.run(["sh", os.path.join(lib.ROOT, "scripts", "minilm-fetch.sh")],
                           capture_output=True, text=True, check=True).stdout.strip()
    w = os.path.join(a.work, "minilm")
    progs = [p.split("=", 1) for p in a.programs.split(",")]
    lengths = [int(t) for t in a.lengths.split(",")]
    for T in lengths:
        for n in (2, 8):
            for k in ("ids", "mask"):
                dst = os.path.join(w, "t%d.%s.x%d.npy" % (T, k, n))
                if not os.path.exists(dst):
                    lib.run([a.torch_python, "-c", "import numpy as np, sys; np.save(sys.argv[2], "
                             "np.tile(np.load(sys.argv[1]), (int(sys.argv[3]), 1)))",
                             os.path.join(w, "t%d.%s.npy" % (T, k)), dst, str(n)])
    env = lib.env_pipec(1)
    res = {}
    for rnd in range(a.rounds):
        for T in lengths:
            for name, prog in progs:
                cpu = {}
                for n in (2, 8):
                    c0 = children_cpu()
                    lib.run([prog, "--weights-in", os.path.join(model, "model.safetensors"),
                             "--input", "ids=%s/t%d.ids.x%d.npy" % (w, T, n),
                             "--input", "mask=%s/t%d.mask.x%d.npy" % (w, T, n),
                             "--output", os.path.join(w, "cpu-out.npy")], env=env, timeout=3600)
                    cpu[n] = children_cpu() - c0
                res.setdefault((T, name), []).append((cpu[8] - cpu[2]) / 6)
            out = lib.run([a.torch_python, "-c", ST, model, os.path.join(w, "t%d.txt" % T), str(T),
                           "5" if T >= 128 else "12", lib.BENCH], env=env, timeout=3600)
            st = json.loads(out.strip().splitlines()[-1])["cpu"]
            res.setdefault((T, "sentence-transformers"), []).append(statistics.median(st))
            print("round %d T=%d: %s (CPU s per batch of 64); load %s"
                  % (rnd, T, ", ".join("%s %.3f" % (k[1], v[-1]) for k, v in res.items()
                                       if k[0] == T), lib.loadavg()), flush=True)
    print("medians over %d rounds (CPU s per batch of 64):" % a.rounds)
    for T in lengths:
        st = statistics.median(res[(T, "sentence-transformers")])
        for (t, name), v in res.items():
            if t == T:
                m = statistics.median(v)
                print("T=%d %-24s %.3f  sentence-transformers / this %.2f  [%s]"
                      % (T, name, m, st / m, " ".join("%.3f" % x for x in v)))


if __name__ == "__main__":
    main()
