#!/usr/bin/env python3
"""bench/exp_plan_pick.py — does `pipec plan` pick what is fastest here?

    bench/exp_plan_pick.py [--models mlp4,char-gpt] [--ranks 2] [--reps 5]
                           [--steps 20] [--max 24 | --all] [--out DIR] [--work DIR]
                           [--reuse-calibration]

For each model (models/mlp4.pipe, models/char-gpt.pipe) over 2 ranks:
1. calibrate: bench/calibrate.c --sweep (two MPI ranks, one BLAS thread
   each) on the model's own GEMMs (mlp4's linears; the GPT's block GEMMs and
   head), each rank its stage's, at 1, 2, 4 ... 256 rows; the cost model's
   line fitted to those points gives --flops, --flops-backward and
   --weight-bandwidth (a GEMM pass costs its FLOPs at the rate plus one read
   of its weights: why few rows run slowly); the link's latency and bandwidth
   and the SGD step's memory bandwidth from the same runs give --bandwidth,
   --latency and --mem-bandwidth (--reuse-calibration: bench/results/
   calibration.json's figures instead, docs/performance.md section 4).
2. plan: `pipec plan MODEL --ranks 2 --format csv` with those costs.
3. measure: every feasible row with --all; by default (--max 24) the plan's
   first row and the plan's best row of each (stages, replicas, schedule)
   group, taken round-robin over the stage counts, cut at --max.  Each is compiled (`pipec compile`
   with the row's --sets) and run --steps steps (OpenBLAS one thread a rank,
   as the calibration); the runtime's samples_per_s (batch / the median
   step).  Rounds go round-robin through all the configurations (--reps
   rounds), so that a change of the machine's load reaches every
   configuration alike; each configuration's figure is its median over the
   rounds, and the spread (max - min) / median says how noisy it was.
4. verdict: the plan's first row's measured median against the fastest
   measured median: within 10% or not.
5. memory: `pipec plan mlp4 --ranks 2 --memory L` with L just under the
   unlimited best's predicted peak; its best row compiled and run: the
   measured peak of each rank (peak_memory_ranks: resident memory above
   start-up) within L.

Writes OUT/plan_pick_MODEL.csv (one row per measured configuration: the
plan's figures, the measured median, min, max) and OUT/plan_pick.json, and
prints the tables.  Standard library only.
"""
import argparse
import csv
import io
import json
import os
import random
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
import exp_overhead  # noqa: E402

MODELS = {"mlp4": "mlp4", "char-gpt": "char-gpt"}


def row_sets(row, limit=None):
    s = ["stages=" + row["stages"], "replicas=" + row["replicas"], "schedule=" + row["schedule"],
         "microbatches=" + row["microbatches"], "partition=auto"]
    if row["partition"] == "auto+mem":
        s.append("memory=%d" % limit)
    if row["recompute"] != "none":
        s.append("recompute=[%s]" % ", ".join([row["recompute"]] * int(row["stages"])))
    return s


def gemm_layers(model, sets):
    """[(rank, in, out), ...]: the GEMMs of a model's layers, with the rank
    whose stage holds each: a linear or lm_head is one; a GPT-2 block is four
    (q/k/v d x 3d, the projection d x d, the MLP's d x 4d and 4d x d)."""
    out = lib.check_model(model, sets)
    layers = re.findall(r"^  (\S+)\s+(\w+)\s+(\d+) -> (\d+)\s", out, re.M)
    names = [l[0] for l in layers]
    owner = {}
    for m in re.finditer(r"^  (\d+)\s+(\d+)\s+(\S+)(?: \.\. (\S+))?\s+[\d,]+\s", out, re.M):
        first, last = m.group(3), m.group(4) or m.group(3)
        for i in range(names.index(first), names.index(last) + 1):
            owner[names[i]] = int(m.group(2))
    g = []
    for n, k, i, o in layers:
        i, o = int(i), int(o)
        if k in ("linear", "lm_head"):
            g.append((owner[n], i, o))
        elif k == "gpt2_block":
            g += [(owner[n], i, 3 * i), (owner[n], i, i), (owner[n], i, 4 * i),
                  (owner[n], 4 * i, i)]
    return g


def calibrate(cfg, model, reuse):
    """The cost model's constants for this machine: the GEMM line (rate and
    weight bandwidth) fitted over 1 to 256 rows of the model's own GEMMs
    (calibrate --sweep), the link and the memory from the same runs."""
    if reuse:
        cal = lib.load_json(os.path.join(lib.BENCH, "results", "calibration.json"))
        own = cal["models"].get(model) or cal["generic"]
        g = cal["generic"]
        return {"flops_fwd": own.get("gemm_flops_fwd", own["gemm_flops"]),
                "flops_bwd": own.get("gemm_flops_bwd", own["gemm_flops"]),
                "latency": g["latency"], "bandwidth": g["bandwidth"],
                "mem_bandwidth": g["mem_bandwidth"], "source": "bench/results/calibration.json"}
    gl = gemm_layers(lib.model_path(model), ["stages=2", "partition=auto"])
    layers = ["--sweep"] + ["%d:1x%dx%d" % (rk, i, o) for rk, i, o in gl]
    runs = [exp_overhead.calibrate(cfg, layers) for _ in range(cfg.reps_cal)]
    med = lambda k: lib.median([r[k] for r in runs if isinstance(r.get(k), float)])  # noqa: E731
    wbw = med("fit_weight_bandwidth")
    return {"flops_fwd": med("fit_flops_fwd"), "flops_bwd": med("fit_flops_bwd"),
            "weight_bandwidth": wbw if wbw == wbw else None,
            "fit_error_max": med("fit_error_max"), "fit_error_median": med("fit_error_median"),
            "rows": {k: r[k] for r in runs[:1] for k in r if k.startswith("gemm_rows_")},
            "latency": med("latency"), "bandwidth": med("bandwidth"),
            "mem_bandwidth": med("mem_bandwidth"),
            "source": "calibrate.c --sweep, %s's %d GEMMs at 1..256 rows, %d runs"
                      % (model, len(gl), len(runs))}


def cost_args(c):
    return ["--flops", "%.6g" % c["flops_fwd"], "--flops-backward", "%.6g" % c["flops_bwd"],
            "--bandwidth", "%.6g" % c["bandwidth"], "--latency", "%.6g" % c["latency"],
            "--mem-bandwidth", "%.6g" % c["mem_bandwidth"]] + (
        ["--weight-bandwidth", "%.6g" % c["weight_bandwidth"]] if c.get("weight_bandwidth")
        else [])


def plan(model, ranks, extra):
    out = lib.run([lib.PIPEC, "plan", model, "--ranks", str(ranks), "--format", "csv"] + extra,
                  env=lib.env_pipec())
    body = "\n".join(ln for ln in out.splitlines() if not ln.startswith("best:"))
    return list(csv.DictReader(io.StringIO(body)))


def select(rows, limit, everything):
    """Every feasible row (--all), or: the plan's first row, then the best
    row of each (stages, replicas, schedule) group taken round-robin over
    the stage counts (so that every stage count is measured, not only the
    one the plan prefers), in the plan's order, up to limit."""
    feas = [r for r in rows if r["fits"] == "yes"]
    if everything:
        return feas
    groups = {}
    for i, r in enumerate(feas):
        groups.setdefault((r["stages"], r["replicas"], r["schedule"]), i)
    by_stages = {}
    for g, i in sorted(groups.items(), key=lambda kv: kv[1]):
        by_stages.setdefault(g[0], []).append(i)
    pick = [0]
    queues = [q for _, q in sorted(by_stages.items(), key=lambda kv: kv[1][0])]
    while len(pick) < limit and any(queues):
        for q in queues:
            if q and len(pick) < limit:
                i = q.pop(0)
                if i not in pick:
                    pick.append(i)
    return [feas[i] for i in sorted(pick)]


def measure(cfg, model, confs, steps, reps):
    dirs = []
    for c in confs:
        dirs.append(lib.compile_model(cfg, model, c["sets"]))
    res = [[] for _ in confs]
    order = list(range(len(confs)))
    rng = random.Random(7)
    for rnd in range(reps):
        rng.shuffle(order)
        for i in order:
            s = lib.run_program(dirs[i], ["--steps", str(steps)], threads=1)
            res[i].append(s["samples_per_s"])
        cfg.say("plan_pick: %s round %d of %d done (load %s)" % (os.path.basename(model), rnd + 1,
                                                                 reps, lib.loadavg()))
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="mlp4,char-gpt")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--steps", type=int, default=0,
                    help="steps a run (default: 10 for mlp4, 40 for the GPT)")
    ap.add_argument("--max", type=int, default=24)
    ap.add_argument("--all", action="store_true")
    ap.add_argument("--reuse-calibration", action="store_true")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--out", default=os.path.join(lib.BENCH, "results"))
    ap.add_argument("--work", default=os.path.join(lib.ROOT, "bench-work"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    os.makedirs(a.work, exist_ok=True)
    cfg = lib.Config(False, a.out, a.work, None)
    cfg.reps_cal = 3
    report = {"machine": {"cores": lib.CORES, "load_start": lib.loadavg()}, "models": {}}
    for name in a.models.split(","):
        model = lib.model_path(MODELS.get(name, name))
        cal = calibrate(cfg, name, a.reuse_calibration)
        cost = cost_args(cal)
        cfg.say("plan_pick: %s: costs %s (%s)" % (name, " ".join(cost), cal["source"]))
        t0 = time.time()
        rows = plan(model, a.ranks, cost)
        plan_s = time.time() - t0
        confs = select(rows, a.max, a.all)
        for c in confs:
            c["sets"] = row_sets(c)
        feas = sum(r["fits"] == "yes" for r in rows)
        cfg.say("plan_pick: %s: %d rows, %d feasible, %d measured (plan %.2f s)"
                % (name, len(rows), feas, len(confs), plan_s))
        steps = a.steps or (10 if name == "mlp4" else 40)
        res = measure(cfg, model, confs, steps, a.reps)
        out = []
        for rank, (c, r) in enumerate(zip(confs, res)):
            med = lib.median(r)
            out.append({"plan_rank": rows.index(c) + 1, "stages": c["stages"],
                        "replicas": c["replicas"], "schedule": c["schedule"],
                        "microbatches": c["microbatches"], "recompute": c["recompute"],
                        "predicted_samples_per_s": float(c["samples_per_s"]),
                        "measured_samples_per_s": med, "measured_min": min(r),
                        "measured_max": max(r), "spread": (max(r) - min(r)) / med,
                        "samples": " ".join("%.1f" % x for x in r),
                        "runs": len(r)})
        fastest = max(out, key=lambda o: o["measured_samples_per_s"])
        first = out[0]
        ratio = first["measured_samples_per_s"] / fastest["measured_samples_per_s"]
        # the best run of each: on a shared machine the least disturbed one
        fastest_best = max(out, key=lambda o: o["measured_max"])
        ratio_best = first["measured_max"] / fastest_best["measured_max"]
        lib.write_csv(os.path.join(a.out, "plan_pick_%s.csv" % name), out)
        spreads = sorted(o["spread"] for o in out)
        verdict = {"first": first, "fastest": fastest, "first_over_fastest": ratio,
                   "within_10pct": ratio >= 0.9, "best_run_ratio": ratio_best,
                   "fastest_by_best_run": fastest_best, "rows": len(rows), "feasible": feas,
                   "measured": len(out), "costs": cost, "calibration": cal["source"],
                   "spread_median": lib.median(spreads), "spread_max": spreads[-1],
                   "plan_seconds": plan_s}
        report["models"][name] = verdict
        print("\n%s over %d ranks: %d feasible rows, %d measured, %d rounds of %d steps"
              % (name, a.ranks, feas, len(out), a.reps, steps))
        print("%4s %6s %8s  %-20s %4s %12s %12s %12s %7s" % (
            "rank", "stages", "replicas", "schedule", "M", "predicted", "measured",
            "min-max", "spread"))
        for o in sorted(out, key=lambda o: -o["measured_samples_per_s"]):
            print("%4d %6s %8s  %-20s %4s %12.1f %12.1f %5.0f-%-6.0f %6.1f%%" % (
                o["plan_rank"], o["stages"], o["replicas"], o["schedule"], o["microbatches"],
                o["predicted_samples_per_s"], o["measured_samples_per_s"], o["measured_min"],
                o["measured_max"], 100 * o["spread"]))
        print("plan's first choice measures %.1f%% of the fastest measured (%s): %s"
              % (100 * ratio, "%s/%s/%s/M=%s" % (fastest["stages"], fastest["replicas"],
                                                 fastest["schedule"], fastest["microbatches"]),
                 "within 10%" if ratio >= 0.9 else "NOT within 10%"))
        print("by each configuration's best run: %.1f%% of the fastest (%s)"
              % (100 * ratio_best, "%s/%s/%s/M=%s" % (
                  fastest_best["stages"], fastest_best["replicas"], fastest_best["schedule"],
                  fastest_best["microbatches"])))

    if not a.no_memory:
        mlp = lib.model_path("mlp4")
        cal = calibrate(cfg, "mlp4", True)
        rows = plan(mlp, a.ranks, cost_args(cal))
        limit = int(float(rows[0]["peak_memory"]) * 0.7)
        rows = plan(mlp, a.ranks, cost_args(cal) + ["--memory", str(limit)])
        best = rows[0]
        d = lib.compile_model(cfg, mlp, row_sets(best, limit))
        s = lib.run_program(d, ["--steps", "5"], threads=1)
        peaks = [p[0] for p in s.get("peak_memory_ranks", [])]
        mem = {"limit": limit, "best": {k: best[k] for k in ("stages", "replicas", "schedule",
                                                               "microbatches", "partition",
                                                               "recompute", "peak_memory")},
               "measured_peaks": peaks, "predicted": s.get("peak_memory_predicted"),
               "raw": s.get("peak_memory_ranks"),
               "within": bool(peaks) and max(peaks) <= limit}
        report["memory"] = mem
        print("\nmemory: --memory %d: best %s; measured peaks per rank %s: %s"
              % (limit, mem["best"], peaks, "within" if mem["within"] else "NOT within"))
    report["machine"]["load_end"] = lib.loadavg()
    lib.save_json(os.path.join(a.out, "plan_pick.json"), report)


if __name__ == "__main__":
    main()
