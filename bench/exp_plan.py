#!/usr/bin/env python3
"""bench/exp_plan.py — how long `pipec plan` takes, and where the time goes.

    bench/exp_plan.py [--out DIR] [--quick]

1. The bundled models (models/*.pipe that train) over 2, 4 and 8 ranks.
2. bench/models/gpt-28b.pipe (28.4 billion parameters, 65 layers: 62 GPT-2
   blocks of width 6144 between the embedding and the head) over 8, 16 and
   32 ranks: every schedule, and without zb-auto (--schedules of the
   others), whose search has a fixed budget per candidate; with the model
   cost and with --memory 80GiB (recompute tried level by level), and every
   schedule under docs/schedules.md's GPU profile with --memory 80GiB.
3. Layers: a stack of L linear layers (L = 16, 32, 64, 128, 256) over 8
   ranks, batch 64, every schedule but zb-auto.
Each row: wall and CPU seconds (user + system of the pipec process, from
wait4: CPU time is what a busy 2-core machine does not distort much),
candidates tried, rows printed, peak resident memory, and PIPEC_PLAN_TIMES's
split: check (sema), partition, schedule (generate + lower + verify +
simulate) and memory (the memory plan of every rank), and the seconds per
schedule kind.  Writes OUT/plan_time.csv and OUT/plan_time.json.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

# docs/schedules.md's cluster profile: an A100-class device at 40% of its peak
GPU = ("gpu(flops = 312e12, bandwidth = 25e9, latency = 1e-5, efficiency = 0.4, "
       "mem_bandwidth = 1.5e12)")
NO_AUTO = "naive,gpipe,1f1b,interleaved,zb-h1,zb-v,zb-h2,interleaved-zb,looped-bfs,dualpipev"


def kinds_known():
    """The kinds this pipec has (a --schedules list may name only those)."""
    with open(os.path.join(lib.ROOT, "compiler", "schedule.h")) as f:
        return set(re.findall(r'X\(SK_\w+,\s*"([^"]+)"', f.read()))


def no_auto():
    have = kinds_known()
    return ",".join(k for k in NO_AUTO.split(",") if k in have)


def measured(model, ranks, extra=()):
    """One plan run with its CPU time and peak RSS (GNU time when present)."""
    env = lib.env_pipec()
    env["PIPEC_PLAN_TIMES"] = "1"
    cmd = [lib.PIPEC, "plan", model, "--ranks", str(ranks), "--format", "csv"] + list(extra)
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = p.stderr.read().decode()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    rc = os.waitstatus_to_exitcode(status)
    r = {"exit": rc, "wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime,
         "maxrss_kib": ru.ru_maxrss}
    m = re.search(r"plan_time: (\S+) s, (\d+) candidates tried, (\d+) rows", err)
    if m:
        r["internal_s"], r["tried"], r["rows"] = float(m.group(1)), int(m.group(2)), int(m.group(3))
    for k, v in re.findall(r"plan_phase (\w+): (\S+) s", err):
        r["phase_" + k] = float(v)
    r["kinds"] = {k: float(v) for k, v in re.findall(r"plan_kind (\S+): (\S+) s", err)}
    return r


def stack_model(path, L):
    with open(path, "w") as f:
        f.write("model stack%d {\n    input x : f32[batch, 256];\n    target y : f32[batch, 256];\n"
                "    layer fc[%d] : linear(256, 256);\n    loss mse;\n}\npipeline {\n"
                "    stages = 2;\n    batch = 64;\n    microbatches = 8;\n    schedule = 1f1b;\n"
                "    optimizer = sgd(lr = 0.1);\n}\n" % (L, L))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(lib.BENCH, "results"))
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rows = []

    def add(what, model, ranks, extra=()):
        r = measured(model, ranks, extra)
        r.update({"what": what, "ranks": ranks})
        rows.append(r)
        top = sorted(r["kinds"].items(), key=lambda kv: -kv[1])[:3]
        print("%-44s %3d ranks: wall %6.2f s, cpu %6.2f s, %5s tried, %4s rows, %6.1f MiB; "
              "check %.2f partition %.2f schedule %.2f memory %.2f; %s"
              % (what, ranks, r["wall_s"], r["cpu_s"], r.get("tried"), r.get("rows"),
                 r["maxrss_kib"] / 1024, r.get("phase_check", 0), r.get("phase_partition", 0),
                 r.get("phase_schedule", 0), r.get("phase_memory", 0),
                 ", ".join("%s %.2f s" % kv for kv in top)), flush=True)

    for name in ("mlp4", "char-gpt", "deep-narrow", "minilm"):
        try:
            model = lib.model_path(name)
        except FileNotFoundError:
            continue
        for n in ((2,) if a.quick else (2, 4, 8)):
            add(name, model, n)
    big = lib.model_path("gpt-28b")
    for n in ((8,) if a.quick else (8, 16, 32)):
        add("gpt-28b, every schedule", big, n)
        add("gpt-28b, no zb-auto", big, n, ["--schedules", no_auto()])
        add("gpt-28b, no zb-auto, --memory 80GiB", big, n,
            ["--schedules", no_auto(), "--memory", "80GiB"])
        add("gpt-28b, every schedule, gpu profile, --memory 80GiB", big, n,
            ["--cost", GPU, "--memory", "80GiB"])
    with tempfile.TemporaryDirectory() as d:
        for L in ((16, 64) if a.quick else (16, 32, 64, 128, 256)):
            p = os.path.join(d, "stack%d.pipe" % L)
            stack_model(p, L)
            add("stack of %d linear layers, no zb-auto" % L, p, 8, ["--schedules", no_auto()])
    cols = ["what", "ranks", "exit", "wall_s", "cpu_s", "tried", "rows", "maxrss_kib",
            "phase_check", "phase_partition", "phase_schedule", "phase_memory"]
    lib.write_csv(os.path.join(a.out, "plan_time.csv"), rows, cols)
    lib.save_json(os.path.join(a.out, "plan_time.json"), {"rows": rows, "cores": lib.CORES,
                                                          "load": lib.loadavg()})


if __name__ == "__main__":
    main()
