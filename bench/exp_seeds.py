"""bench/exp_seeds.py — the seed experiments, each against baselines measured
in the same run.

stages     throughput of mlp4 and uniform: a single process (no pipeline,
           the whole batch at once) with 1 and with 2 BLAS threads, pure data
           parallelism on 2 processes (stages = 1, replicas = 2), the
           pipeline at P = 2 (1f1b) and at P = 4 (oversubscribed: 4 ranks on
           2 cores time-share).
microbatch mlp4, P = 2, 1f1b: samples/s and step time (the latency of a
           batch) against M at a fixed batch of 256, and against the rows per
           micro-batch at a fixed M = 8.
memory     mlp4, every schedule, P = 2 and 4: peak memory per rank, measured
           (the run's peak resident memory above its start-up baseline) and
           predicted by the compiler.
"""
import os

import lib
import svgplot


def _measure(cfg, model, sets, steps, threads, warm=True):
    d = lib.compile_model(cfg, model, sets)
    if warm:
        lib.run_program(d, ["--steps", "2"], threads=threads)
    runs = [lib.run_program(d, ["--steps", str(steps)], threads=threads) for _ in range(cfg.reps)]
    return runs


def stages(cfg):
    steps = 5 if cfg.quick else 12
    confs = [
        ("single process, 1 thread", ["stages=1", "microbatches=1", "partition=auto"], 1, 1),
        ("single process, 2 threads", ["stages=1", "microbatches=1", "partition=auto"], 2, 1),
        ("data parallel, 2 x 1 thread", ["stages=1", "replicas=2", "microbatches=1",
                                         "partition=auto"], 1, 2),
        ("pipeline P=2 1f1b", ["stages=2", "schedule=1f1b", "partition=auto"], 1, 2),
        ("pipeline P=2 interleaved(2)", ["stages=2", "schedule=interleaved(2)", "partition=auto"], 1, 2),
        ("pipeline P=4 1f1b (oversubscribed)", ["stages=4", "schedule=1f1b", "partition=auto"], 1, 4),
    ]
    rows = []
    for name in ("mlp4", "uniform"):
        model = lib.model_path(name)
        base = None
        for label, sets, threads, procs in confs:
            runs = _measure(cfg, model, sets, steps, threads)
            st = lib.median([s["step_time"] for s in runs])
            batch = runs[0]["samples_per_s"] * runs[0]["step_time"]
            r = {"model": name, "config": label, "processes": procs, "threads_per_process": threads,
                 "M": int(runs[0]["microbatches"]), "batch": round(batch),
                 "step_s": st, "samples_s": batch / st,
                 "min_s": min(s["step_time"] for s in runs), "max_s": max(s["step_time"] for s in runs),
                 "bubble_measured": lib.median([s["bubble_measured"] for s in runs]),
                 "oversubscribed": runs[0]["oversubscribed"]}
            if base is None:
                base = r["samples_s"]
            r["speedup_vs_single_1thread"] = r["samples_s"] / base
            rows.append(r)
            cfg.say("seeds: %-7s %-36s %.4g s/step, %.4g samples/s (x%.2f)"
                    % (name, label, st, r["samples_s"], r["speedup_vs_single_1thread"]))
    lib.write_csv(os.path.join(cfg.out, "stages.csv"), rows)
    for name in ("mlp4", "uniform"):
        rs = [r for r in rows if r["model"] == name]
        svgplot.bar_chart(
            os.path.join(cfg.out, "stages-%s.svg" % name),
            "%s: samples/s by configuration (2 cores)" % name, "samples/s",
            [r["config"].replace(" (oversubscribed)", "\n(oversubscribed)")
             .replace(", ", ",\n").replace("pipeline ", "pipeline\n") for r in rs],
            [{"label": "samples/s", "values": [r["samples_s"] for r in rs]}],
            notes="--quick (noisy)" if cfg.quick else "", value_fmt="%.0f")
    return rows


def microbatch(cfg):
    model = lib.model_path("mlp4")
    Ms = [2, 8, 32] if cfg.quick else [2, 4, 8, 16, 32, 64, 128]
    sizes = [4, 32] if cfg.quick else [1, 4, 16, 64, 256]

    def steps_for(work):
        # Long steps need fewer of them: about the same time per run.
        return 5 if cfg.quick else max(4, min(12, int(12 * 32 / work)))
    rows = []
    for M in Ms:
        sets = ["stages=2", "schedule=1f1b", "partition=auto", "batch=256", "microbatches=%d" % M]
        runs = _measure(cfg, model, sets, steps_for(M), 1, warm=not cfg.quick)
        st = lib.median([s["step_time"] for s in runs])
        rows.append({"sweep": "M at batch 256", "M": M, "rows_per_mb": 256 // M, "batch": 256,
                     "step_s": st, "samples_s": 256 / st,
                     "bubble_measured": lib.median([s["bubble_measured"] for s in runs]),
                     "bubble_predicted": runs[0]["bubble_predicted"]})
        cfg.say("seeds: mlp4 P=2 M=%-3d batch 256: %.4g s/step, %.4g samples/s" % (M, st, 256 / st))
    for rws in sizes:
        B = 8 * rws
        sets = ["stages=2", "schedule=1f1b", "partition=auto", "batch=%d" % B, "microbatches=8"]
        runs = _measure(cfg, model, sets, steps_for(B / 8), 1, warm=not cfg.quick)
        st = lib.median([s["step_time"] for s in runs])
        rows.append({"sweep": "rows per micro-batch at M 8", "M": 8, "rows_per_mb": rws, "batch": B,
                     "step_s": st, "samples_s": B / st,
                     "bubble_measured": lib.median([s["bubble_measured"] for s in runs]),
                     "bubble_predicted": runs[0]["bubble_predicted"]})
        cfg.say("seeds: mlp4 P=2 M=8 rows %-4d: %.4g s/step, %.4g samples/s" % (rws, st, B / st))
    lib.write_csv(os.path.join(cfg.out, "microbatch.csv"), rows)
    note = "--quick (noisy)" if cfg.quick else ""
    a = [r for r in rows if r["sweep"].startswith("M at")]
    b = [r for r in rows if r["sweep"].startswith("rows")]
    svgplot.line_chart(os.path.join(cfg.out, "microbatch-count.svg"),
                       "mlp4, P = 2, 1F1B, batch 256: samples/s vs M",
                       "micro-batches M (rows per micro-batch = 256 / M)", "samples/s",
                       [{"label": "samples/s", "points": [(r["M"], r["samples_s"]) for r in a]}],
                       logx=True, notes=note)
    svgplot.line_chart(os.path.join(cfg.out, "microbatch-size.svg"),
                       "mlp4, P = 2, 1F1B, M = 8: step time vs micro-batch size",
                       "rows per micro-batch", "step time (s)",
                       [{"label": "step time (s)", "points": [(r["rows_per_mb"], r["step_s"]) for r in b]}],
                       logx=True, logy=True, notes=note)
    return rows


def memory(cfg):
    model = lib.model_path("mlp4")
    rows = []
    for P in (2, 4):
        for sched in ("gpipe", "1f1b", "interleaved(2)"):
            sets = ["stages=%d" % P, "schedule=%s" % sched, "partition=auto"]
            d = lib.compile_model(cfg, model, sets)
            s = lib.run_program(d, ["--steps", "3"], threads=1)
            for r, (meas, pred) in enumerate(s["peak_memory_ranks"]):
                rows.append({"model": "mlp4", "P": P, "schedule": sched, "M": int(s["microbatches"]),
                             "rank": r, "measured_bytes": int(meas), "predicted_bytes": int(pred),
                             "error": meas / pred - 1 if pred else ""})
            cfg.say("seeds: memory mlp4 P=%d %-15s largest rank %.1f MB measured, %.1f MB predicted"
                    % (P, sched, s["peak_memory_bytes"] / 1e6, s["peak_memory_predicted"] / 1e6))
    lib.write_csv(os.path.join(cfg.out, "memory.csv"), rows)
    groups, meas, pred = [], [], []
    for r in rows:
        groups.append("%s\nP=%d r%d" % (r["schedule"].replace("interleaved(2)", "interl.(2)"), r["P"], r["rank"]))
        meas.append(r["measured_bytes"] / 1e6)
        pred.append(r["predicted_bytes"] / 1e6)
    # Two pictures (P = 2, P = 4): 18 groups would not fit one.
    for P in (2, 4):
        idx = [i for i, r in enumerate(rows) if r["P"] == P]
        svgplot.bar_chart(os.path.join(cfg.out, "memory-p%d.svg" % P),
                          "mlp4, P = %d: peak memory per rank (MB)" % P, "MB",
                          [groups[i] for i in idx],
                          [{"label": "measured", "values": [meas[i] for i in idx]},
                           {"label": "predicted", "values": [pred[i] for i in idx]}],
                          value_fmt="%.0f")
    return rows


def run(cfg):
    failed = []
    for f in (stages, microbatch, memory):
        try:
            f(cfg)
        except Exception as e:
            failed.append("%s: %s" % (f.__name__, e))
            cfg.say("!! seeds/%s failed: %s" % (f.__name__, e))
    if failed:
        raise RuntimeError("; ".join(failed))
