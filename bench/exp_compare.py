"""bench/exp_compare.py — pipec beside torch.distributed.pipelining on the CPU.

Same model (pipec's layers, rebuilt in PyTorch from `pipec check`), same
partition, same initial weights (written by PyTorch as safetensors, loaded by
pipec with --weights-in), same data, same P, M, schedule and batch, one
process per pipeline rank on both sides, one BLAS thread per process.
Every configuration: one warm-up run per side, then cfg.reps timed runs,
alternating pipec and PyTorch and going round the configurations, so that a
burst of noise lands on both sides and on every configuration alike.  A
run's figure is its median step time (steps timed between barriers, the first
left out); the table gives the median over runs.

The two must agree on the first step's loss (relative 1e-4): that is the
check that they do the same work.
"""
import os

import lib
import svgplot

MODELS = {
    # name: (file, steps quick, steps full)
    "mlp4": ("mlp4", 4, 12),
    "deep-narrow": ("deep-narrow", 30, 100),
}
SCHEDULES = ["gpipe", "1f1b", "interleaved(2)"]
TORCH_WARMUP = 2          # PyTorch steps left out of its median (pipec leaves out 1)
LOSS_RTOL = 1e-4


def configs(cfg):
    for name in MODELS:
        for P in (2, 4):
            for sched in SCHEDULES:
                # --quick: one oversubscribed point, the cheap one.
                if cfg.quick and P == 4 and (sched != "1f1b" or name != "deep-narrow"):
                    continue
                yield {"model": name, "P": P, "schedule": sched,
                       "sets": ["stages=%d" % P, "schedule=%s" % sched, "partition=auto"]}


def run(cfg):
    confs = list(configs(cfg))
    data = {}
    # Weights and data per model, written by PyTorch (its first run is also
    # its warm-up).
    for name, (fname, sq, sf) in MODELS.items():
        model = lib.model_path(fname)
        d = os.path.join(cfg.work, "data", name)
        os.makedirs(d, exist_ok=True)
        c0 = next(c for c in confs if c["model"] == name)
        cfg.say("compare: %s: weights and data from PyTorch (its warm-up run)" % name)
        lib.torch_run(cfg, model, c0["sets"], 4, TORCH_WARMUP, 1,
                      weights_out=os.path.join(d, "w.safetensors"), data_out=d)
        data[name] = ["--weights-in", os.path.join(d, "w.safetensors"),
                      "--input", os.path.join(d, "x.npy"), "--target", os.path.join(d, "y.npy")]
    for c in confs:
        c["path"] = lib.model_path(MODELS[c["model"]][0])
        c["steps"] = MODELS[c["model"]][1 if cfg.quick else 2]
        c["dir"] = lib.compile_model(cfg, c["path"], c["sets"])
        c["pipec"], c["torch"], c["loss_p"], c["loss_t"] = [], [], [], []
        c["runs"] = []

    def once(c, rep, timed):
        s = lib.run_program(c["dir"], data[c["model"]] + ["--steps", str(c["steps"])], threads=1)
        t = lib.torch_run(cfg, c["path"], c["sets"], c["steps"] + TORCH_WARMUP - 1, TORCH_WARMUP, 1)
        c["loss_p"].append(s["losses"][0])
        c["loss_t"].append(t["losses"][0])
        # Step 2's loss follows one backward pass and one optimizer step: not
        # asserted (rounding of gradients summed in different orders), reported.
        c["loss2"] = (s["losses"][1], t["losses"][1]) if len(s["losses"]) > 1 else (None, None)
        c["oversubscribed"] = s["oversubscribed"]
        c["bubble_measured"] = c.get("bubble_measured", []) + [s["bubble_measured"]]
        c["bubble_predicted"] = s["bubble_predicted"]
        c["barrier"] = t["barrier_s"]
        c["order"] = t["order"]
        c["batch"], c["M"] = t["batch"], t["M"]
        if timed:
            c["pipec"].append(s["step_time"])
            c["torch"].append(t["step_time"])
        c["runs"].append({"model": c["model"], "P": c["P"], "schedule": c["schedule"], "rep": rep,
                          "timed": timed, "pipec_step_s": s["step_time"],
                          "torch_step_s": t["step_time"], "loss_pipec": s["losses"][0],
                          "loss_torch": t["losses"][0], "load": lib.loadavg()})
        cfg.say("compare: %-12s P=%d %-15s rep %s: pipec %.4g s, torch %.4g s, loss %.9g / %.9g"
                % (c["model"], c["P"], c["schedule"], rep if timed else "warm-up", s["step_time"],
                   t["step_time"], s["losses"][0], t["losses"][0]))

    if not cfg.quick:
        for c in confs:
            once(c, "-", False)
    for rep in range(cfg.reps):
        for c in confs:
            once(c, rep, True)

    rows, bad = [], []
    for c in confs:
        p, t = lib.median(c["pipec"]), lib.median(c["torch"])
        worst = max(lib.rel_diff(a, b) for a, b in zip(c["loss_p"], c["loss_t"]))
        ref = pipec_order(c)
        same = "yes" if ref == c["order"] else "no"
        row = {
            "model": c["model"], "P": c["P"], "schedule": c["schedule"], "M": c["M"],
            "batch": c["batch"], "threads": 1, "oversubscribed": c["oversubscribed"],
            "runs": len(c["pipec"]),
            "pipec_step_s": p, "pipec_samples_s": c["batch"] / p,
            "pipec_min_s": min(c["pipec"]), "pipec_max_s": max(c["pipec"]),
            "torch_step_s": t, "torch_samples_s": c["batch"] / t,
            "torch_min_s": min(c["torch"]), "torch_max_s": max(c["torch"]),
            "ratio": t / p,
            "loss_pipec": c["loss_p"][0], "loss_torch": c["loss_t"][0], "loss_rel_diff": worst,
            "loss2_pipec": c["loss2"][0], "loss2_torch": c["loss2"][1],
            "loss2_rel_diff": lib.rel_diff(*c["loss2"]) if c["loss2"][0] is not None else "",
            "same_order": same, "torch_barrier_s": c["barrier"],
            "bubble_measured": lib.median(c["bubble_measured"]),
            "bubble_predicted": c["bubble_predicted"],
        }
        rows.append(row)
        if worst > LOSS_RTOL:
            bad.append("%s P=%d %s: first-step loss pipec %.9g, PyTorch %.9g (relative %.2g)"
                       % (c["model"], c["P"], c["schedule"], c["loss_p"][0], c["loss_t"][0], worst))
    lib.write_csv(os.path.join(cfg.out, "compare.csv"), rows)
    lib.write_csv(os.path.join(cfg.out, "compare_runs.csv"), [r for c in confs for r in c["runs"]])
    figures(cfg, rows)
    if bad:
        raise RuntimeError("pipec and PyTorch disagree on the first step's loss:\n  "
                           + "\n  ".join(bad))
    return rows


def pipec_order(c):
    """pipec's schedule as PyTorch's compute-only CSV, one list per rank."""
    out = lib.schedule(c["path"], c["sets"], fmt="torch")
    return [[a for a in line.split(",") if a] for line in out.splitlines() if line.strip()]


def figures(cfg, rows):
    for name in MODELS:
        rs = [r for r in rows if r["model"] == name]
        groups = ["%s P=%d%s\npipec/PyTorch %.2gx" % (r["schedule"], r["P"],
                                                      " (oversub.)" if r["oversubscribed"] else "",
                                                      r["ratio"]) for r in rs]
        svgplot.bar_chart(
            os.path.join(cfg.out, "compare-%s.svg" % name),
            "%s: samples/s, pipec vs PyTorch pipelining (CPU)" % name,
            "samples/s (median of runs)", groups,
            [{"label": "pipec", "values": [r["pipec_samples_s"] for r in rs]},
             {"label": "PyTorch", "values": [r["torch_samples_s"] for r in rs]}],
            notes="1 BLAS thread per process; %s" % ("--quick (noisy)" if cfg.quick else "full run"),
            value_fmt="%.0f")
