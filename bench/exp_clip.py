#!/usr/bin/env python3
"""bench/exp_clip.py — what gradient clipping and the run's reports cost.

models/mlp4.pipe at P = 2 (partition auto, its SGD with momentum, one BLAS
thread a rank) is run as compiled and with `clip_grad_norm = 1` plus
`--metrics FILE --log-every 1`: the clipped run adds a sum of squares over
every gradient, one allreduce of one double over the job, the scaling in
the update, and a JSON line a step.  The two runs alternate (A B A B ...)
so that a slow minute of a shared machine falls on both; each run's figure
is its median step time (the summary's step_time), the result the median
of those per variant and the ratio clipped / plain in the same invocation.

On a shared machine the whole step varies by more than the cost measured,
so each run also writes a --trace, and the OPTIM action's median duration
per rank is compared too: the increase on the rank that reaches OPTIM last
(which waits for no one in the norm's allreduce) over the plain median
step is the part of the step that clipping and metrics add.

  python3 bench/exp_clip.py [--runs N] [--steps N] [--work DIR]

Until the compiler takes `clip_grad_norm` in the pipeline block, the
clipped program is the plain one with the field set in each rank's
rt_program initialiser.
"""
import argparse
import json
import os
import platform
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

SETS = ["stages=2", "partition=auto"]


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def build(work, clip):
    """The program, plain or with clipping; its directory."""
    d = os.path.join(work, "clip" if clip else "plain")
    shutil.rmtree(d, ignore_errors=True)
    model = lib.model_path("mlp4")
    sets = SETS + (["clip_grad_norm=1"] if clip else [])
    try:
        lib.run([lib.PIPEC, "compile", model, "-o", d] + lib.sets_args(sets), env=lib.env_pipec())
    except RuntimeError:
        if not clip:
            raise
        # the compiler does not know the key yet: set the field directly
        lib.run([lib.PIPEC, "compile", model, "-o", d] + lib.sets_args(SETS), env=lib.env_pipec())
        for name in os.listdir(d):
            if re.match(r"rank\d+\.c$", name):
                p = os.path.join(d, name)
                src = open(p).read()
                src, n = re.subn(r"\n\t\.steps = ", "\n\t.clip_grad_norm = 1, .steps = ", src,
                                 count=1)
                if n != 1:
                    raise SystemExit("exp_clip.py: no .steps in " + p)
                open(p, "w").write(src)
    lib.run(["make", "-s", "-C", d], env=lib.env_pipec())
    return d


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="timed runs of each variant")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--work", default=os.path.join(lib.BUILD, "bench-work", "clip"))
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    plain, clip = build(a.work, False), build(a.work, True)
    metrics = os.path.join(a.work, "metrics.jsonl")
    args = ["--steps", str(a.steps)]
    times = {"plain": [], "clip": []}
    optim = {"plain": {}, "clip": {}}      # rank: [OPTIM durations, seconds]
    trace = os.path.join(a.work, "trace.json")
    norms = None
    # a warm-up pair (page cache, first BLAS calls), then the timed pairs
    for i in range(a.runs + 1):
        for name, d, extra in (("plain", plain, []),
                               ("clip", clip, ["--metrics", metrics, "--log-every", "1"])):
            out = lib.run([os.path.join(d, "run")] + args + extra + ["--trace", trace],
                          env=lib.env_pipec(1), timeout=1800)
            s = lib.parse_summary(out)
            if i > 0:
                times[name].append(s["step_time"])
                with open(trace) as f:
                    ev = json.load(f)
                for e in ev["traceEvents"] if isinstance(ev, dict) else ev:
                    if e.get("name") == "OPTIM":
                        optim[name].setdefault(e["pid"], []).append(e["dur"] * 1e-6)
            print("%s run %d: step_time %.6g s" % (name, i, s["step_time"]), flush=True)
            if name == "clip":
                with open(metrics) as f:
                    norms = [line for line in f if '"grad_norm"' in line]
    mp, mc = lib.median(times["plain"]), lib.median(times["clip"])
    print("machine: %s, %d cores, load %s" % (cpu_name(), lib.CORES, lib.loadavg()))
    print("mlp4 P=2: median step %.6g s plain, %.6g s with clipping and metrics "
          "(%d runs each of %d steps)" % (mp, mc, a.runs, a.steps))
    print("ratio clipped/plain: %.4f (overhead %+.2f%%)" % (mc / mp, 100 * (mc / mp - 1)))
    print("metrics lines with grad_norm in the last clipped run: %d" % len(norms or []))
    inc = []
    for r in sorted(optim["plain"]):
        op, oc = lib.median(optim["plain"][r]), lib.median(optim["clip"].get(r, [0]))
        inc.append(oc - op)
        print("rank %d: OPTIM median %.6g s plain, %.6g s clipped" % (r, op, oc))
    print("OPTIM increase on the last-arriving rank: %.6g s = %.3f%% of the plain step"
          % (min(inc), 100 * min(inc) / mp))


if __name__ == "__main__":
    main()
