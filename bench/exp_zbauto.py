#!/usr/bin/env python3
"""bench/exp_zbauto.py — zb-auto: its search time, and its step time against
zb-h1, zb-h2 and 1f1b on this machine, measured beside the simulator.

search   `pipec schedule` wall time (median of 3) of zb-auto(memory = 1) and
         (memory = 2) against zb-h1's (which searches nothing: the rest of
         the pipeline's passes) over P = 4 .. 32 and M = P .. 8P, under the
         zero-bubble paper's 1.5B times (`--cost times(...)`): the search's
         own time is the difference;
step     bench/models/uniform.pipe (8 x linear(512, 512)) at P = 2 (this
         machine's 2 cores), M = 4, 8, 16: each schedule compiled with the
         calibrated constants (bench/calibrate.c, as exp_overhead.py's
         `calibrate` measures them: zb-auto searches its order for those
         costs), run `--steps 15` once as a warm-up and then cfg.reps times,
         configurations in turn each round; medians of the runs' median step
         time beside `pipec schedule`'s step_time and bubble_rate under the
         same constants.

Runs alone (not from run-all.sh):
    python3 bench/exp_zbauto.py [--quick] [--out DIR]
Writes DIR/zbauto_search.csv, zbauto_step.csv, zbauto.json and its own
calibration.json / .csv (default bench/results/zbauto, so that the main
run's calibration stays) and prints both tables as markdown.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
import exp_overhead  # noqa: E402

SCHEDS = ["1f1b", "zb-h1", "zb-h2", "zb-auto(memory = 1)", "zb-auto(memory = 2)"]
PAPER = "times(F = 18.522, B = 18.086, W = 9.337, comm = 0.601, mem_B = 1)"
ROWS_PER_MB = 32


def wide_model(work, layers=64):
    path = os.path.join(work, "zbauto-wide.pipe")
    with open(path, "w") as f:
        f.write("""model wide {
    input  x : f32[batch, 16];
    target y : f32[batch, 16];
    layer fc[%d] : linear(16, 16);
    loss mse;
}
pipeline {
    stages = 2;
    batch = 64;
    microbatches = 8;
    schedule = 1f1b;
    partition = auto;
    optimizer = sgd(lr = 0.1);
}
""" % layers)
    return path


def timed_schedule(model, sets, cost, n=3):
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        lib.run([lib.PIPEC, "schedule", model, "--cost", cost] + lib.sets_args(sets),
                env=lib.env_pipec())
        ts.append(time.perf_counter() - t0)
    return lib.median(ts)


def search(cfg):
    model = wide_model(cfg.work)
    rows = []
    shapes = [(4, 4), (4, 16), (8, 8), (8, 32), (8, 64)] + \
        ([] if cfg.quick else [(16, 16), (16, 64), (16, 128), (32, 32), (32, 128)])
    for P, M in shapes:
        sets = ["stages=%d" % P, "microbatches=%d" % M, "batch=%d" % (4 * M)]
        base = timed_schedule(model, sets + ["schedule=zb-h1"], PAPER)
        row = {"P": P, "M": M, "zb_h1_s": base}
        for R in (1, 2):
            s = "zb-auto(memory = %d)" % R
            t = timed_schedule(model, sets + ["schedule=" + s], PAPER)
            out = lib.run([lib.PIPEC, "schedule", model, "--cost", PAPER] +
                          lib.sets_args(sets + ["schedule=" + s]), env=lib.env_pipec())
            rate = [l.split()[1] for l in out.splitlines() if l.startswith("bubble_rate:")]
            row["auto%d_s" % R] = t
            row["auto%d_search_s" % R] = max(t - base, 0.0)
            row["auto%d_bubble_rate" % R] = float(rate[0]) if rate else float("nan")
        rows.append(row)
        cfg.say("search: P=%d M=%d: zb-h1 %.3f s, zb-auto(1) %.3f s, zb-auto(2) %.3f s"
                % (P, M, base, row["auto1_s"], row["auto2_s"]))
    return rows


def compile_with(cfg, model, sets, cost_args):
    key = lib.key_of(model, sets, " ".join(cost_args))
    d = os.path.join(cfg.work, "prog", "zbauto-" + key)
    stamp = os.path.join(d, ".built")
    if not os.path.exists(stamp):
        lib.run([lib.PIPEC, "compile", model, "-o", d] + lib.sets_args(sets) + cost_args,
                env=lib.env_pipec())
        lib.run(["make", "-s", "-C", d], env=lib.env_pipec())
        with open(stamp, "w") as f:
            f.write("ok\n")
    return d


def step(cfg, cal):
    model = lib.model_path("uniform")
    cargs = exp_overhead.cost_args(cal, "uniform")
    Ms = [4, 16] if cfg.quick else [4, 8, 16]
    steps = 8 if cfg.quick else 15
    confs = []
    for M in Ms:
        for s in SCHEDS:
            sets = ["stages=2", "schedule=%s" % s, "microbatches=%d" % M,
                    "batch=%d" % (ROWS_PER_MB * M)]
            confs.append((s, M, sets, compile_with(cfg, model, sets, cargs)))
    for c in confs:
        lib.run_program(c[3], ["--steps", "3"], threads=1)
    meas = {(c[0], c[1]): [] for c in confs}
    for rep in range(cfg.reps):
        for s, M, sets, d in confs:
            meas[(s, M)].append(lib.run_program(d, ["--steps", str(steps)], threads=1))
    rows = []
    for s, M, sets, d in confs:
        runs = meas[(s, M)]
        out = lib.run([lib.PIPEC, "schedule", model, "--cost", "model"] + lib.sets_args(sets)
                      + cargs, env=lib.env_pipec())
        pred = {}
        for line in out.splitlines():
            k, _, v = line.partition(": ")
            if k in ("step_time", "bubble_fraction", "bubble_rate"):
                pred[k] = float(v)
        meas_s = lib.median([r["step_time"] for r in runs])
        rows.append({"schedule": s, "P": 2, "M": M, "batch": ROWS_PER_MB * M,
                     "measured_s": meas_s, "min_s": min(r["step_time"] for r in runs),
                     "max_s": max(r["step_time"] for r in runs),
                     "bubble_measured": lib.median([r["bubble_measured"] for r in runs]),
                     "pred_s": pred.get("step_time"), "err": pred.get("step_time") / meas_s - 1,
                     "pred_bubble_fraction": pred.get("bubble_fraction"),
                     "pred_bubble_rate": pred.get("bubble_rate")})
        cfg.say("step: %-20s M=%-3d measured %.4f s, simulator %.4f s (bubble %.3f measured, "
                "%.3f predicted)" % (s, M, meas_s, pred.get("step_time"),
                                      rows[-1]["bubble_measured"], pred.get("bubble_fraction")))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=os.path.join(lib.BENCH, "results", "zbauto"))
    ap.add_argument("--work", default=os.path.join(lib.BUILD, "bench-work"))
    ap.add_argument("--only", default="search,step")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    os.makedirs(a.work, exist_ok=True)
    cfg = lib.Config(a.quick, a.out, a.work, None)
    t0 = time.time()
    meta = {"load_start": lib.loadavg()}
    only = a.only.split(",")
    if "search" in only:
        rows = search(cfg)
        lib.write_csv(os.path.join(a.out, "zbauto_search.csv"), rows,
                      ["P", "M", "zb_h1_s", "auto1_s", "auto1_search_s", "auto1_bubble_rate",
                       "auto2_s", "auto2_search_s", "auto2_bubble_rate"])
        print("\n| P | M | zb-h1 (s) | zb-auto(1) (s) | its search (s) | zb-auto(2) (s) | "
              "its search (s) | bubble_rate (1) / (2) |\n| --- | --- | --- | --- | --- | --- "
              "| --- | --- |")
        for r in rows:
            print("| %d | %d | %.3f | %.3f | %.3f | %.3f | %.3f | %.4f / %.4f |"
                  % (r["P"], r["M"], r["zb_h1_s"], r["auto1_s"], r["auto1_search_s"],
                     r["auto2_s"], r["auto2_search_s"], r["auto1_bubble_rate"],
                     r["auto2_bubble_rate"]))
    if "step" in only:
        # calibrated here, into this experiment's own directory's file
        cal = exp_overhead.calibrate_all(cfg)
        meta["calibration"] = cal
        rows = step(cfg, cal)
        lib.write_csv(os.path.join(a.out, "zbauto_step.csv"), rows,
                      ["schedule", "P", "M", "batch", "measured_s", "min_s", "max_s",
                       "bubble_measured", "pred_s", "err", "pred_bubble_fraction",
                       "pred_bubble_rate"])
        print("\n| M | schedule | measured step (ms, median) | min–max | simulator (ms) | "
              "error | bubble measured | predicted | bubble_rate |\n| --- | --- | --- | --- | "
              "--- | --- | --- | --- | --- |")
        for r in rows:
            print("| %d | %s | %.2f | %.2f–%.2f | %.2f | %+.1f%% | %.3f | %.3f | %.3f |"
                  % (r["M"], r["schedule"], 1e3 * r["measured_s"], 1e3 * r["min_s"],
                     1e3 * r["max_s"], 1e3 * r["pred_s"], 100 * r["err"],
                     r["bubble_measured"], r["pred_bubble_fraction"], r["pred_bubble_rate"]))
    meta.update({"load_end": lib.loadavg(), "seconds": round(time.time() - t0),
                 "pipec": lib.run([lib.PIPEC, "--version"]).strip(),
                 "git": lib.run(["git", "-C", lib.ROOT, "describe", "--always",
                                 "--dirty"]).strip()})
    lib.save_json(os.path.join(a.out, "zbauto.json"), meta)
    cfg.say("zbauto: done in %d s, load %s at the start, %s at the end"
            % (meta["seconds"], meta["load_start"], meta["load_end"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
