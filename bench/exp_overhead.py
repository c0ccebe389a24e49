"""bench/exp_overhead.py — calibration, per-action overhead, bubble, prediction.

calibrate  bench/calibrate.c on 2 ranks: the GEMM rate of the runtime's own
           linear kernels (a generic 64x1024x1024 layer, and each benchmarked
           model's layers at its micro-batch rows), MPI latency and bandwidth.
overhead   bench/models/tiny.pipe (4 linear(16, 16) layers, one row per
           micro-batch) at P = 2, 1F1B, many micro-batches: per rank,
           (step time - compute time) / actions, from the run's own summary
           (bubble_measured_ranks = 1 - busy / step time); the slope of step
           time over actions; a --trace breakdown by op; PyTorch on the same.
bubble     bench/models/uniform.pipe (8 equal layers: balanced stages) at
           P = 2, for gpipe, 1f1b and interleaved(2), M from 2 up: measured
           bubble against the simulator (uniform and calibrated model cost),
           the compiler's own prediction and the formula (P-1)/(V*M + P-1).
predict    `pipec schedule --cost model` with the calibrated constants against
           the measured step times of compare and bubble (P = 2).
"""
import json
import os

import lib
import svgplot


# ---- calibration --------------------------------------------------------------

def _calibrate_bin(cfg):
    exe = os.path.join(cfg.work, "calibrate")
    src = os.path.join(lib.BENCH, "calibrate.c")
    if not os.path.exists(exe) or os.path.getmtime(exe) < os.path.getmtime(src):
        lib.run(["mpicc", "-O2", "-std=c11", "-I" + os.path.join(lib.ROOT, "runtime"), src,
                 "-o", exe, "-L" + os.path.join(lib.BUILD, "runtime"), "-lpipert", "-lopenblas",
                 "-lm"])
    return exe


def _mpirun_env(threads=1):
    env = lib.env_pipec(threads)
    if os.geteuid() == 0:
        env["OMPI_ALLOW_RUN_AS_ROOT"] = env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    return env


def blas_info(cfg):
    """OpenBLAS's configuration and the kernel it picked on this machine."""
    out = lib.run([_calibrate_bin(cfg), "--blas"], env=_mpirun_env(1), timeout=120)
    return out.split(": ", 1)[1].strip() if ": " in out else out.strip()


def calibrate(cfg, layers=()):
    """One calibration run: {key: value} (floats where they are numbers)."""
    exe = _calibrate_bin(cfg)
    extra = ["--oversubscribe"] if lib.CORES < 2 else []
    out = lib.run(["mpirun", "-np", "2", "--bind-to", "none"] + extra + [exe] + list(layers),
                  env=_mpirun_env(1), timeout=600)
    res = {}
    for line in out.splitlines():
        k, _, v = line.partition(": ")
        try:
            res[k] = float(v)
        except ValueError:
            res[k] = v
    return res


# The benchmarked configurations whose step times predict() predicts; each
# gets its own GEMM rate from its own layer shapes.
PREDICT_MODELS = {
    "mlp4": ("mlp4", ["stages=2", "partition=auto"]),
    "deep-narrow": ("deep-narrow", ["stages=2"]),
    "uniform": ("uniform", ["stages=2"]),
}


def calibrate_all(cfg):
    rows = []
    # Every calibration run also measures the link: the link's figures are
    # the medians over all of them (one noisy ping-pong does not decide).
    runs = [calibrate(cfg) for _ in range(1 if cfg.quick else 3)]
    gen = {k: lib.median([r[k] for r in runs]) for k in runs[0] if isinstance(runs[0][k], float)}
    gen["blas"] = runs[0].get("blas", "?")
    cal = {"generic": gen, "models": {}}
    rows.append({"what": "generic layer 64x1024x1024", "gemm_flops": gen["gemm_flops"]})
    for name, (fname, sets) in PREDICT_MODELS.items():
        rowsmb, layers = lib.linear_layers(lib.model_path(fname), sets)
        rs = [calibrate(cfg, ["%d:%dx%dx%d" % (rk, rowsmb, i, o) for rk, i, o in layers])
              for _ in range(1 if cfg.quick else 3)]
        runs += rs
        flops = lib.median([r["gemm_flops"] for r in rs])
        cal["models"][name] = {"gemm_flops": flops, "rows": rowsmb}
        rows.append({"what": "%s layers at %d rows" % (name, rowsmb), "gemm_flops": flops})
        for k, what in (("gemm_flops_fwd", "forward"), ("gemm_flops_bwd", "backward")):
            if all(k in r for r in rs):
                cal["models"][name][k] = lib.median([r[k] for r in rs])
                rows.append({"what": "%s layers at %d rows, %s alone" % (name, rowsmb, what),
                             "gemm_flops": cal["models"][name][k]})
        cfg.say("calibrate: %s at %d rows: %.3g FLOP/s (forward %.3g, backward %.3g)"
                % (name, rowsmb, flops, cal["models"][name].get("gemm_flops_fwd", 0),
                   cal["models"][name].get("gemm_flops_bwd", 0)))
    for k in [k for k in runs[0] if k.startswith("pingpong_")] + ["latency", "bandwidth",
                                                                    "mem_bandwidth"]:
        if k in runs[0]:
            gen[k] = lib.median([r[k] for r in runs if k in r])
    for k in sorted((k for k in gen if k.startswith("pingpong_")), key=lambda k: int(k[9:])):
        rows.append({"what": "one-way message, %s B" % k[9:], "latency_s": gen[k]})
    rows.append({"what": "link (fit)", "latency_s": gen["latency"], "bandwidth_Bps": gen["bandwidth"]})
    if "mem_bandwidth" in gen:
        rows.append({"what": "memory: the runtime's SGD step, 16 B a parameter",
                     "bandwidth_Bps": gen["mem_bandwidth"]})
    cfg.say("calibrate: generic %.3g FLOP/s, latency %.3g s, bandwidth %.3g B/s (%s)"
            % (gen["gemm_flops"], gen["latency"], gen["bandwidth"], gen["blas"]))
    lib.write_csv(os.path.join(cfg.out, "calibration.csv"), rows,
                  ["what", "gemm_flops", "latency_s", "bandwidth_Bps"])
    lib.save_json(os.path.join(cfg.out, "calibration.json"), cal)
    return cal


def _cal(cfg):
    cal = lib.load_json(os.path.join(cfg.out, "calibration.json"))
    if not cal:
        cal = calibrate_all(cfg)
    return cal


def cost_args(cal, model=None):
    """The calibrated constants as pipec options: a model's own layers give
    forward and backward rates apart (their GEMMs' shapes differ).  Rates
    timed at the model's own rows already include the GEMMs' reads of their
    weights, so the cost model's separate term for them is off."""
    c = cal["generic"]
    own = cal["models"][model] if model else c
    flops = own["gemm_flops"]
    extra = ["--mem-bandwidth", "%.6g" % c["mem_bandwidth"]] if "mem_bandwidth" in c else []
    if "gemm_flops_fwd" in own and "gemm_flops_bwd" in own:
        flops = own["gemm_flops_fwd"]
        extra += ["--flops-backward", "%.6g" % own["gemm_flops_bwd"]]
    return ["--flops", "%.6g" % flops, "--bandwidth", "%.6g" % c["bandwidth"],
            "--latency", "%.6g" % c["latency"], "--weight-bandwidth", "off"] + extra


# ---- per-action overhead --------------------------------------------------------

def _trace_breakdown(path, actions):
    """Mean µs per op over steps 2.. of a --trace, and the glue between actions."""
    with open(path) as f:
        ev = [e for e in json.load(f)["traceEvents"] if e.get("ph") == "X"]
    by_rank = {}
    for e in ev:
        by_rank.setdefault(e["pid"], []).append(e)
    out = {}
    for r, es in by_rank.items():
        es.sort(key=lambda e: e["ts"])
        n = actions[r]
        steps = [es[i:i + n] for i in range(n, len(es) - n + 1, n)]   # step 1 left out
        ops, glue, span = {}, 0.0, 0.0
        for st in steps:
            for e in st:
                o = ops.setdefault(e["args"]["op"], [0, 0.0])
                o[0] += 1
                o[1] += e["dur"]
            s = st[-1]["ts"] + st[-1]["dur"] - st[0]["ts"]
            span += s
            glue += s - sum(e["dur"] for e in st)
        k = len(steps) * n
        out[r] = {"ops": {op: v[1] / v[0] for op, v in ops.items()},
                  "glue_us_per_action": glue / k if k else float("nan"),
                  "span_us_per_action": span / k if k else float("nan")}
    return out


def overhead(cfg):
    model = lib.model_path("tiny")
    Ms = [64, 256] if cfg.quick else [16, 64, 256, 1024]
    steps = 20 if cfg.quick else 50
    rows = []
    for M in Ms:
        sets = ["microbatches=%d" % M, "batch=%d" % M]
        d = lib.compile_model(cfg, model, sets)
        acts = lib.actions_per_rank(model, sets)
        nact = {r: sum(v.values()) for r, v in acts.items()}
        lib.run_program(d, ["--steps", "5"], threads=1)          # warm-up
        runs = [lib.run_program(d, ["--steps", str(steps)], threads=1) for _ in range(cfg.reps)]
        per_rank = {}
        for r in nact:
            vals = [s["step_time_mean"] * s["bubble_measured_ranks"][r] / nact[r] for s in runs]
            per_rank[r] = lib.median(vals)
        step = lib.median([s["step_time"] for s in runs])
        row = {"M": M, "actions_rank0": nact[0], "actions_rank1": nact[1],
               "step_s": step, "step_per_action_us": 1e6 * step / max(nact.values()),
               "overhead_rank0_us": 1e6 * per_rank[0], "overhead_rank1_us": 1e6 * per_rank[1],
               "overhead_us": 1e6 * lib.median(list(per_rank.values())),
               "bubble_measured": lib.median([s["bubble_measured"] for s in runs]),
               "bubble_predicted": runs[0]["bubble_predicted"]}
        rows.append(row)
        cfg.say("overhead: M=%d: step %.4g s, %.3g µs per action all-in, %.3g µs non-compute"
                % (M, step, row["step_per_action_us"], row["overhead_us"]))
    # Marginal cost: slope of step time over actions per rank (least squares).
    xs = [max(r["actions_rank0"], r["actions_rank1"]) for r in rows]
    ys = [r["step_s"] for r in rows]
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    # A trace of the largest M: where the time of an action goes.
    M = Ms[-1]
    sets = ["microbatches=%d" % M, "batch=%d" % M]
    d = lib.compile_model(cfg, model, sets)
    tr = os.path.join(cfg.work, "tiny-trace.json")
    lib.run_program(d, ["--steps", str(min(steps, 20)), "--trace", tr], threads=1)
    acts = lib.actions_per_rank(model, sets)
    br = _trace_breakdown(tr, {r: sum(v.values()) for r, v in acts.items()})
    ops = sorted({op for b in br.values() for op in b["ops"]})
    trace_rows = []
    for op in ops:
        trace_rows.append({"op": op, **{"rank%d_us" % r: br[r]["ops"].get(op, "") for r in sorted(br)}})
    trace_rows.append({"op": "(glue between actions)",
                       **{"rank%d_us" % r: br[r]["glue_us_per_action"] for r in sorted(br)}})
    lib.write_csv(os.path.join(cfg.out, "overhead_trace.csv"), trace_rows,
                  ["op"] + ["rank%d_us" % r for r in sorted(br)])
    # PyTorch on the same tiny model and schedule.
    Mt = 64
    sets = ["microbatches=%d" % Mt, "batch=%d" % Mt]
    acts = lib.actions_per_rank(model, sets)
    tsteps = 10 if cfg.quick else 30
    t = [lib.torch_run(cfg, model, sets, tsteps, 2, 1)["step_time"]
         for _ in range(1 if cfg.quick else cfg.reps)]
    tstep = lib.median(t)
    pm = next(r for r in rows if r["M"] == Mt) if any(r["M"] == Mt for r in rows) else None
    summary = {"slope_us_per_action": 1e6 * slope,
               "torch_step_s_M64": tstep,
               "torch_step_per_action_us": 1e6 * tstep / max(sum(v.values()) for v in acts.values()),
               "pipec_step_per_action_us_M64": pm["step_per_action_us"] if pm else "",
               "trace_glue_us": lib.median([b["glue_us_per_action"] for b in br.values()])}
    for r in rows:
        r.update({k: v for k, v in summary.items()})
    lib.write_csv(os.path.join(cfg.out, "overhead.csv"), rows)
    cfg.say("overhead: slope %.3g µs per action; PyTorch %.3g µs per action (step %.4g s at M=64)"
            % (summary["slope_us_per_action"], summary["torch_step_per_action_us"], tstep))
    svgplot.line_chart(
        os.path.join(cfg.out, "overhead.svg"),
        "Cost per action: tiny layers, P = 2, 1F1B, 1 row per micro-batch",
        "micro-batches M", "µs per action",
        [{"label": "pipec: step / actions",
          "points": [(r["M"], r["step_per_action_us"]) for r in rows]},
         {"label": "pipec: (step − compute) / actions",
          "points": [(r["M"], r["overhead_us"]) for r in rows]},
         {"label": "PyTorch: step / actions, M = 64", "line": False,
          "points": [(Mt, summary["torch_step_per_action_us"])]}],
        logx=True, logy=True, notes="--quick (noisy)" if cfg.quick else "")
    return rows


# ---- bubble vs M ----------------------------------------------------------------

ROWS_PER_MB = 32
BUBBLE_SCHEDULES = [("gpipe", 1), ("1f1b", 1), ("interleaved(2)", 2)]


def formula(P, V, M):
    """Idle share of the pipeline (Narayanan et al. 2021: bubble time / ideal
    = (P-1)/(V*M); as a share of the step, (P-1)/(V*M + P-1))."""
    return (P - 1) / (V * M + P - 1)


def bubble(cfg):
    cal = _cal(cfg)
    model = lib.model_path("uniform")
    Ms = [2, 8, 32] if cfg.quick else [2, 4, 8, 16, 32, 64]
    steps = 6 if cfg.quick else 15
    rows = []
    confs = []
    for sched, V in BUBBLE_SCHEDULES:
        for M in Ms:
            sets = ["stages=2", "schedule=%s" % sched, "microbatches=%d" % M,
                    "batch=%d" % (ROWS_PER_MB * M)]
            confs.append((sched, V, M, sets, lib.compile_model(cfg, model, sets)))
    # Warm-up: every configuration once (full), the first only (quick).
    for c in confs[:1] if cfg.quick else confs:
        lib.run_program(c[4], ["--steps", "3"], threads=1)
    meas = {(c[2], c[0]): [] for c in confs}
    for rep in range(cfg.reps):
        for sched, V, M, sets, d in confs:
            meas[(M, sched)].append(lib.run_program(d, ["--steps", str(steps)], threads=1))
    for sched, V, M, sets, d in confs:
        runs = meas[(M, sched)]
        uni = lib.schedule(model, sets, cost="uniform")
        mod = lib.schedule(model, sets, cost="model", extra=cost_args(cal, "uniform"))
        row = {"schedule": sched, "P": 2, "V": V, "M": M, "batch": ROWS_PER_MB * M,
               "measured": lib.median([s["bubble_measured"] for s in runs]),
               "measured_min": min(s["bubble_measured"] for s in runs),
               "measured_max": max(s["bubble_measured"] for s in runs),
               "compiler_predicted": runs[0]["bubble_predicted"],
               "sim_uniform": uni["bubble_fraction"], "sim_model_calibrated": mod["bubble_fraction"],
               "formula": formula(2, V, M),
               "step_s": lib.median([s["step_time"] for s in runs]),
               "pred_step_s": mod["step_time"]}
        row["measured_minus_sim"] = row["measured"] - row["sim_model_calibrated"]
        rows.append(row)
        cfg.say("bubble: %-15s M=%-3d measured %.4f, simulator %.4f (uniform %.4f), formula %.4f"
                % (sched, M, row["measured"], row["sim_model_calibrated"], row["sim_uniform"],
                   row["formula"]))
    # The simulator at P = 4 (not measured: 4 ranks on 2 cores time-share).
    for sched, V in BUBBLE_SCHEDULES:
        for M in Ms:
            if M < 4:
                continue
            sets = ["stages=4", "schedule=%s" % sched, "microbatches=%d" % M,
                    "batch=%d" % (ROWS_PER_MB * M)]
            uni = lib.schedule(model, sets, cost="uniform")
            rows.append({"schedule": sched, "P": 4, "V": V, "M": M, "batch": ROWS_PER_MB * M,
                         "sim_uniform": uni["bubble_fraction"], "formula": formula(4, V, M)})
    cols = ["schedule", "P", "V", "M", "batch", "measured", "measured_min", "measured_max",
            "compiler_predicted", "sim_uniform", "sim_model_calibrated", "formula",
            "measured_minus_sim", "step_s", "pred_step_s"]
    lib.write_csv(os.path.join(cfg.out, "bubble.csv"), rows, cols)
    series = []
    for i, (sched, V) in enumerate(BUBBLE_SCHEDULES):
        rs = [r for r in rows if r["schedule"] == sched and r["P"] == 2]
        series.append({"label": "%s measured" % sched, "color": i,
                       "points": [(r["M"], r["measured"]) for r in rs]})
        series.append({"label": "%s simulator" % sched, "dashed": True, "color": i,
                       "points": [(r["M"], r["sim_model_calibrated"]) for r in rs]})
    svgplot.line_chart(os.path.join(cfg.out, "bubble.svg"),
                       "Bubble vs M, uniform model, P = 2, %d rows per micro-batch" % ROWS_PER_MB,
                       "micro-batches M", "bubble fraction (idle / rank-time)",
                       series, logx=True, notes="--quick (noisy)" if cfg.quick else "")
    return rows


# ---- predicted vs measured step time ---------------------------------------------

def predict(cfg):
    cal = _cal(cfg)
    rows = []
    comp = os.path.join(cfg.out, "compare.csv")
    todo = []
    if os.path.exists(comp):
        for r in lib.read_csv(comp):
            if int(r["P"]) != 2:
                continue
            fname, sets = PREDICT_MODELS[r["model"]]
            todo.append((r["model"], r["schedule"], int(r["M"]),
                         sets + ["schedule=%s" % r["schedule"]], float(r["pipec_step_s"])))
    bub = os.path.join(cfg.out, "bubble.csv")
    if os.path.exists(bub):
        for r in lib.read_csv(bub):
            if r["P"] != "2" or not r["step_s"]:
                continue
            M = int(r["M"])
            todo.append(("uniform", r["schedule"], M,
                         ["stages=2", "schedule=%s" % r["schedule"], "microbatches=%d" % M,
                          "batch=%d" % (ROWS_PER_MB * M)], float(r["step_s"])))
    for name, sched, M, sets, measured in todo:
        model = lib.model_path(PREDICT_MODELS[name][0])
        dflt = lib.schedule(model, sets, cost="model")["step_time"]
        gen = lib.schedule(model, sets, cost="model", extra=cost_args(cal))["step_time"]
        own = lib.schedule(model, sets, cost="model", extra=cost_args(cal, name))["step_time"]
        rows.append({"model": name, "schedule": sched, "M": M, "measured_s": measured,
                     "pred_default_s": dflt, "err_default": dflt / measured - 1,
                     "pred_generic_s": gen, "err_generic": gen / measured - 1,
                     "pred_calibrated_s": own, "err_calibrated": own / measured - 1})
    if not rows:
        raise RuntimeError("predict: no measured step times (run compare and/or bubble first)")
    lib.write_csv(os.path.join(cfg.out, "predict.csv"), rows)
    lo = min(min(r["measured_s"], r["pred_calibrated_s"]) for r in rows)
    hi = max(max(r["measured_s"], r["pred_calibrated_s"]) for r in rows)
    series = []
    for name in PREDICT_MODELS:
        rs = [r for r in rows if r["model"] == name]
        if rs:
            series.append({"label": "%s, own layers" % name, "line": False,
                           "points": [(r["measured_s"], r["pred_calibrated_s"]) for r in rs]})
    series.append({"label": "generic calibration", "line": False,
                   "points": [(r["measured_s"], r["pred_generic_s"]) for r in rows]})
    series.append({"label": "predicted = measured", "dashed": True, "markers": False,
                   "points": [(lo, lo), (hi, hi)]})
    svgplot.line_chart(os.path.join(cfg.out, "predict.svg"),
                       "Predicted (--cost model) vs measured step time, P = 2",
                       "measured step time (s)", "predicted step time (s)", series,
                       logx=True, logy=True, notes="--quick (noisy)" if cfg.quick else "")
    for r in rows:
        cfg.say("predict: %-12s %-15s M=%-3d measured %.4g s, calibrated %.4g s (%+.0f%%), "
                "generic %+.0f%%, default %+.0f%%" % (r["model"], r["schedule"], r["M"],
                                                      r["measured_s"], r["pred_calibrated_s"],
                                                      100 * r["err_calibrated"], 100 * r["err_generic"],
                                                      100 * r["err_default"]))
    return rows
