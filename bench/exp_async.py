#!/usr/bin/env python3
"""bench/exp_async.py — the asynchronous schedules (pipedream, pipedream-2bw) and
zero-bubble V against 1f1b: statistical efficiency, throughput, bubble, memory.

    bench/exp_async.py [--quick] [--reps N] [--out DIR] [--work DIR] [--no-docs]

1. Statistical efficiency (loss against samples and against seconds), the
   honest measure of an asynchronous schedule (PipeDream, PipeDream-2BW):
   mlp  bench/models/async-mlp.pipe (32 -> 5 x 512 -> 10, relu, cross
        entropy, SGD lr 0.05 momentum 0.9, batch 128 = 8 micro-batches of 16)
        on a fixed learnable data set written here with numpy: gaussian
        inputs labelled by a random teacher network (32 -> 64 tanh -> 10,
        argmax), 64 batches of 128 rows, step n uses batch n mod 64; 300
        steps.  Same
        initial weights for every run (t/ref/pipe_ref.py init, seed 3,
        --weights-in).  P = 2 and P = 4 (oversubscribed), each with 1f1b,
        pipedream, pipedream-2bw, and two controls that separate staleness
        from update granularity: pipedream at lr/M (the same step per
        sample as 1f1b), and synchronous 1f1b with batch B/M at lr/M
        ("1f1b per micro-batch"): the very updates pipedream at lr/M makes,
        in the same data order, without stale weights.
   gpt  bench/models/async-gpt.pipe (models/char-gpt.pipe with an untied
        head: the asynchronous schedules refuse tied weights) at P = 2,
        1f1b, pipedream, pipedream-2bw, Adam lr 0.003, on
        scripts/char-gpt-data.py's windows of the license texts (2048 rows,
        64 batches of 32), 400 steps; initial weights from the program's
        own seeded initialisation, the same for every schedule
        (runtime/rt_init.c).
   Losses are the runtime's printed per-step losses (the mean over the
   step's micro-batches; the control's M steps are averaged into one point
   of B samples); curves and tables use the trailing mean over one pass over
   the data (64 steps; a quarter of a --quick run), so that easy and hard
   batches even out.  Seconds: step n at n x the measured mean step time
   (the runtime's step_time_mean: steps after the first, for pipedream and
   2BW without barriers between steps and with the drain's time in the last
   step), median over the timing rounds.  Also: the MLP at P = 2 over
   learning rates (0.01, 0.02, 0.05, 0.1) for 1f1b, pipedream and 2BW, final
   loss only; and a check of 2BW's delay: its steps 2 and 3 must equal
   1f1b's on the data without batch 1 (W(0) on batch 2) and without batch 2
   (W(1) on batch 3).
2. Throughput: the runtime's median step time (samples/s), median over
   rounds, as a ratio to 1f1b's in the same rounds; P = 4 is four ranks on
   two cores (oversubscribed).  Beside it the simulator's steady-state step
   (`pipec schedule`, --cost uniform, --cost model with its defaults, and
   --cost model calibrated: bench/calibrate.c's GEMM rate on this model's
   layers at 16 rows, its link figures, and the memory bandwidth of
   bench/results/generate.json if there is one).
3. zb-v against zb-h1 and 1f1b: bubble and step time under the uniform cost
   (bench/models/async-uniform.pipe, 16 equal layers) at P = 2, 4, 8 and
   M = P, 2P, 4P, with each rank's peak of stashed activations; measured
   samples/s at P = 2 on the MLP in the same rounds as section 2.
4. Memory per rank, predicted against measured (peak_memory_ranks), for
   1f1b, pipedream, pipedream-2bw, zb-v and zb-h1 on models/mlp4.pipe (11 M
   parameters: a stashed weight version is visible) at P = 2 and (not
   zb) P = 4, and on the MLP above from the timed runs.

Each configuration first makes one long run for its loss curve (300 MLP and
400 GPT steps; 80 and 40 with --quick); then timing rounds (11; 3 with
--quick) of shorter runs (60 MLP steps, 40 GPT; 30 and 16 with --quick; the
control M times as many) go round-robin through all configurations, so that
load from other processes hits all alike; every round records how many cores
other processes kept busy (/proc/stat less the benchmark's own CPU time) and
the load average.  Every timing run must repeat the long run's first losses
exactly (the schedule is static: timing cannot change the numbers).  About
10 minutes on 2 idle cores; --quick about 3.

Results: async_curves.csv, async_loss.csv, async_throughput.csv,
async_runs.csv, async_zb.csv, async_memory.csv, async_lr.csv, async.json,
async-*.svg; bench/report.py turns them into docs/performance.md's section 9.
"""
import argparse
import os
import re
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
import svgplot  # noqa: E402
import tf_common as tc  # noqa: E402

PY = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
MLP, GPT, UNIFORM, MLP4 = "async-mlp", "async-gpt", "async-uniform", "mlp4"
MLP_ROWS_K = 64                  # batches in the MLP's data set
EPOCH = 64                       # steps per pass over either data set (MLP, GPT)
MLP_SEED, DATA_SEED, GPT_SEED = 3, 7, 1
ASYNC = ("pipedream", "pipedream-2bw")


# ---------------------------------------------------------------- helpers

def model_info(model, sets=()):
    """batch, M, optimizer text and lr from `pipec check`."""
    out = lib.check_model(model, list(sets))
    m = re.search(r"batch (\d+) = (\d+) micro-batch", out)
    opt = re.search(r"schedule \S+, (\w+\(.*\))$", out, re.M).group(1)
    return {"batch": int(m.group(1)), "M": int(m.group(2)), "optimizer": opt,
            "lr": float(re.search(r"lr = ([0-9.e+-]+)", opt).group(1))}


def with_lr(opt, lr):
    return re.sub(r"lr = [0-9.e+-]+", "lr = %.6g" % lr, opt)


def sim(model, sets, cost_args):
    """Steady-state seconds (or units) per step and bubble fraction from `pipec
    schedule`.  A synchronous step is the same every step; an asynchronous
    schedule is simulated as one stream of steps x M micro-batches, so it is
    simulated at two lengths and the difference taken (whether the figure
    printed is per step or for the whole stream)."""
    cost = cost_args[0]
    extra = cost_args[1:]
    sched = next((s.split("=", 1)[1] for s in sets if s.startswith("schedule=")), "")
    if sched not in ASYNC:
        s = lib.schedule(model, sets, cost=cost, extra=extra)
        return s["step_time"], s["bubble_fraction"], s["text"]
    n1, n2 = 20, 40
    a = lib.schedule(model, sets + ["steps=%d" % n1], cost=cost, extra=extra)
    b = lib.schedule(model, sets + ["steps=%d" % n2], cost=cost, extra=extra)
    t1, t2 = a["step_time"], b["step_time"]
    if t2 > 1.5 * t1:       # the whole stream's time
        step = (t2 - t1) / (n2 - n1)
    else:                   # an average per step, fill and drain included
        step = (n2 * t2 - n1 * t1) / (n2 - n1)
    return step, b["bubble_fraction"], b["text"]


def sched_memory(text):
    """The `memory per rank` table of `pipec schedule`: {rank: {column: bytes}}."""
    out, cols = {}, None
    for line in text.splitlines():
        if re.match(r"\s+rank\s+weights", line):
            cols = line.split()[1:]
            continue
        if cols:
            m = re.match(r"\s+(\d+)\s+([\d\s]+)$", line)
            if not m:
                cols = None if out else cols
                continue
            out[int(m.group(1))] = dict(zip(cols, [int(x) for x in m.group(2).split()]))
    return out


_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3}


def sched_peaks(text):
    """[(rank, idle, peak micro-batches, peak bytes)] of `pipec schedule`."""
    out = []
    for m in re.finditer(r"^rank (\d+): idle ([0-9.e+-]+), peak (\d+) micro-batch(?:es)? "
                         r"\(([0-9.]+) (B|KiB|MiB|GiB)\)", text, re.M):
        out.append((int(m.group(1)), float(m.group(2)), int(m.group(3)),
                    float(m.group(4)) * _UNITS[m.group(5)]))
    return out


def trailing(v, w):
    """Trailing means over w values (fewer at the start)."""
    out, s = [], 0.0
    for i, x in enumerate(v):
        s += x
        if i >= w:
            s -= v[i - w]
        out.append(s / min(i + 1, w))
    return out


# ---------------------------------------------------------------- set-up

def mlp_data(cfg, wdir, batch):
    """A random teacher network's labels of gaussian inputs (numpy, seeded),
    and the student's initial weights (t/ref/pipe_ref.py init)."""
    x, y = os.path.join(wdir, "mlp-x.npy"), os.path.join(wdir, "mlp-y.npy")
    w0 = os.path.join(wdir, "mlp-w0-seed%d.safetensors" % MLP_SEED)
    code = ("import numpy as np\n"
            "rng = np.random.default_rng(%d)\n"
            "N = %d\n"
            "X = rng.standard_normal((N, 32)).astype(np.float32)\n"
            "W1 = rng.standard_normal((32, 64)) / np.sqrt(32)\n"
            "W2 = rng.standard_normal((64, 10)) / np.sqrt(64)\n"
            "y = np.argmax(np.tanh(2 * X @ W1) @ W2, 1).astype(np.int32)\n"
            "np.save(%r, X); np.save(%r, y)\n"
            "print(' '.join(str(c) for c in np.bincount(y, minlength=10)))\n"
            % (DATA_SEED, MLP_ROWS_K * batch, x, y))
    counts = lib.run([PY, "-c", code]).strip()
    lib.run([PY, os.path.join(lib.ROOT, "t", "ref", "pipe_ref.py"), "init", lib.model_path(MLP),
             "--seed", str(MLP_SEED), "--out", w0])
    cfg.say("async: MLP data %d x 32, classes %s; initial weights %s"
            % (MLP_ROWS_K * batch, counts, os.path.relpath(w0, lib.ROOT)))
    return x, y, w0, counts


def gpt_data(cfg, wdir):
    d = os.path.join(wdir, "gpt-data")
    lib.run([PY, os.path.join(lib.ROOT, "scripts", "char-gpt-data.py"), "--out", d,
             "--rows", "2048", "--seed", str(GPT_SEED)])
    return os.path.join(d, "ids.npy")


def calibration(cfg):
    """--cost model constants measured here: calibrate.c's GEMM rate on the
    MLP's own layers at 16 rows and its link; the read bandwidth of the
    generation benchmark if it ran."""
    import exp_overhead
    rows, layers = lib.linear_layers(lib.model_path(MLP), ["stages=2"])
    runs = [exp_overhead.calibrate(cfg, ["%d:%dx%dx%d" % (rk, rows, i, o) for rk, i, o in layers])
            for _ in range(1 if cfg.quick else 3)]
    cal = {k: lib.median([r[k] for r in runs]) for k in ("gemm_flops", "latency", "bandwidth")}
    cal["rows"] = rows
    gen = lib.load_json(os.path.join(cfg.out, "generate.json"), {}) or {}
    bw = (gen.get("gpt2") or {}).get("read_bw")
    args = ["--flops", "%.6g" % cal["gemm_flops"], "--bandwidth", "%.6g" % cal["bandwidth"],
            "--latency", "%.6g" % cal["latency"], "--weight-bandwidth", "off"]  # rate at its rows
    if bw:
        args += ["--mem-bandwidth", "%.6g" % bw]
        cal["mem_bandwidth"] = bw
    cal["args"] = " ".join(args)
    cfg.say("async: calibration: %.3g FLOP/s on the MLP's layers at %d rows, latency %.3g s, "
            "bandwidth %.3g B/s%s" % (cal["gemm_flops"], rows, cal["latency"], cal["bandwidth"],
                                      ", memory %.3g B/s" % bw if bw else ""))
    return cal, args


# ---------------------------------------------------------------- configurations

def configs(cfg, wdir):
    mlp = lib.model_path(MLP)
    gpt = lib.model_path(GPT)
    mi = model_info(mlp)
    gi = model_info(gpt)
    B, M, lr = mi["batch"], mi["M"], mi["lr"]
    x, y, w0, counts = mlp_data(cfg, wdir, B)
    ids = gpt_data(cfg, wdir)
    mlp_steps = 80 if cfg.quick else 300          # the loss curves
    gpt_steps = 40 if cfg.quick else 400
    mlp_tsteps = 30 if cfg.quick else 60          # each timing run
    gpt_tsteps = 16 if cfg.quick else 40
    confs = []

    def add(model, name, P, label, sets, batch, steps, group=1, data=(), curve=True, lr_=None):
        sets = ["stages=%d" % P] + sets
        tsteps = (mlp_tsteps if model == "mlp" else gpt_tsteps) * group
        confs.append({"model": model, "name": name, "P": P, "label": label, "sets": sets,
                      "batch": batch, "steps": steps, "time_steps": tsteps, "group": group,
                      "curve": curve,
                      "lr": lr_, "path": mlp if model == "mlp" else gpt,
                      "data": list(data),
                      "oversubscribed": P > lib.CORES})
    data = ["--input", x, "--target", y, "--weights-in", w0]
    for P in (2, 4):
        for s in ("1f1b",) + ASYNC:
            add("mlp", s, P, s, ["schedule=" + s], B, mlp_steps, data=data, lr_=lr)
        add("mlp", "pipedream-lr/M", P, "pipedream, lr/M",
            ["schedule=pipedream", "optimizer=" + with_lr(mi["optimizer"], lr / M)], B,
            mlp_steps, data=data, lr_=lr / M)
        # The control: pipedream's updates at lr/M, synchronously (batch B/M
        # per step, the same rows in the same order), M steps per point.
        add("mlp", "1f1b-per-microbatch", P, "1f1b per micro-batch (batch B/M), lr/M",
            ["schedule=1f1b", "batch=%d" % (B // M), "microbatches=%d" % P,
             "optimizer=" + with_lr(mi["optimizer"], lr / M)], B // M, mlp_steps * M, group=M,
            data=data, lr_=lr / M)
        if P == 2:
            for s in ("zb-v", "zb-h1"):
                add("mlp", s, P, s, ["schedule=" + s], B, mlp_steps, data=data, lr_=lr)
    for s in ("1f1b",) + ASYNC:
        add("gpt", s, 2, s, ["schedule=" + s], gi["batch"], gpt_steps, data=["--input", ids],
            lr_=gi["lr"])
    meta = {"mlp": dict(mi, steps=mlp_steps, time_steps=mlp_tsteps, rows=MLP_ROWS_K * B,
                        classes=counts, data_seed=DATA_SEED, weights_seed=MLP_SEED),
            "gpt": dict(gi, steps=gpt_steps, time_steps=gpt_tsteps, rows=2048,
                        data_seed=GPT_SEED)}
    return confs, meta


# ---------------------------------------------------------------- measuring

def measure(cfg, confs):
    """One long run per configuration for its loss curve (the numbers are
    deterministic), then cfg.reps timing rounds of shorter runs, round-robin
    over all configurations."""
    for c in confs:
        c["dir"] = lib.compile_model(cfg, c["path"], c["sets"])
        c.update(runs=[], losses=None, repeat_equal=True)
    runs, busy = [], []

    def once(c, rnd):
        load0 = lib.loadavg()
        steps = c["steps"] if rnd == "curve" else c["time_steps"]
        t0 = time.perf_counter()
        s = lib.run_program(c["dir"], ["--steps", str(steps)] + c["data"], threads=1,
                            timeout=1800)
        wall = time.perf_counter() - t0
        if rnd == "curve":
            c["losses"] = s["losses"]
            c["curve_run"] = s
        else:
            # A static schedule: a shorter run repeats the long run's first losses.
            if s["losses"] != c["losses"][:len(s["losses"])]:
                c["repeat_equal"] = False
            c["runs"].append(s)
        runs.append({"model": c["model"], "P": c["P"], "config": c["name"], "round": rnd,
                     "steps": steps, "step_s": s["step_time"], "step_mean_s": s["step_time_mean"],
                     "wall_s": wall, "bubble_measured": s.get("bubble_measured"),
                     "loss_last": s["losses"][-1], "load_start": load0,
                     "load_end": lib.loadavg()})
        cfg.say("async: %-4s P=%d %-20s %-5s %4d steps: %.4g s/step (mean %.4g), wall %.1f s, "
                "loss %.4g -> %.4g  load %s" % (c["model"], c["P"], c["name"], rnd, steps,
                                                 s["step_time"], s["step_time_mean"], wall,
                                                 s["losses"][0], s["losses"][-1], lib.loadavg()))

    cfg.say("async: %d configurations: one loss-curve run each, then %d timing rounds (load %s)"
            % (len(confs), cfg.reps, lib.loadavg()))
    m0 = tc.cpu_mark()
    for c in confs:
        once(c, "curve")
    curve_busy = tc.others(m0, tc.cpu_mark())
    cfg.say("async: loss-curve runs: other processes kept %.2f cores busy" % curve_busy)
    for rnd in range(cfg.reps):
        m0 = tc.cpu_mark()
        for c in confs:
            once(c, rnd)
        busy.append(tc.others(m0, tc.cpu_mark()))
        runs.append({"config": "(other processes)", "round": rnd, "others_cores": busy[-1],
                     "load_end": lib.loadavg()})
        cfg.say("async: round %d: other processes kept %.2f cores busy" % (rnd, busy[-1]))
    return runs, busy, curve_busy


# ---------------------------------------------------------------- results

def summarise(cfg, confs, cal_args):
    """Per configuration: medians, ratios to 1f1b, predictions, curves."""
    thr, curves, loss_rows = [], [], []
    for c in confs:
        c["step_med"] = lib.median([s["step_time"] for s in c["runs"]])
        c["step_mean_med"] = lib.median([s["step_time_mean"] for s in c["runs"]])
    for c in confs:
        ref = next(x for x in confs if x["model"] == c["model"] and x["P"] == c["P"]
                   and x["name"] == "1f1b")
        per_round = [r["step_time"] / s["step_time"] for r, s in zip(ref["runs"], c["runs"])]
        row = {"model": c["model"], "P": c["P"], "config": c["name"], "label": c["label"],
               "oversubscribed": c["oversubscribed"], "runs": len(c["runs"]),
               "batch": c["batch"], "steps": c["time_steps"], "step_s": c["step_med"],
               "step_mean_s": c["step_mean_med"],
               "min_s": min(s["step_time"] for s in c["runs"]),
               "max_s": max(s["step_time"] for s in c["runs"]),
               "samples_s": c["batch"] / c["step_med"],
               "samples_s_mean": c["batch"] / c["step_mean_med"],
               "ratio_vs_1f1b": (c["batch"] / c["step_med"]) / (ref["batch"] / ref["step_med"]),
               "ratio_mean_vs_1f1b": (c["batch"] / c["step_mean_med"])
               / (ref["batch"] / ref["step_mean_med"]),
               "ratio_round_min": min(per_round) * c["batch"] / ref["batch"],
               "ratio_round_median": lib.median(per_round) * c["batch"] / ref["batch"],
               "ratio_round_max": max(per_round) * c["batch"] / ref["batch"],
               "bubble_measured": lib.median([s["bubble_measured"] for s in c["runs"]]),
               "losses_repeat": c["repeat_equal"]}
        for cost, args in (("uniform", ["uniform"]), ("model", ["model"]),
                           ("calibrated", ["model"] + cal_args)):
            if cost == "calibrated" and c["model"] != "mlp":
                continue
            st, bub, text = sim(c["path"], c["sets"], args)
            row["pred_%s_step" % cost] = st
            row["pred_%s_bubble" % cost] = bub
            c["pred_%s" % cost] = st
        thr.append(row)
    for row, c in zip(thr, confs):
        ref = next(x for x in confs if x["model"] == c["model"] and x["P"] == c["P"]
                   and x["name"] == "1f1b")
        for cost in ("uniform", "model", "calibrated"):
            if "pred_%s" % cost in c:
                row["pred_%s_ratio" % cost] = (c["batch"] / c["pred_%s" % cost]) / \
                    (ref["batch"] / ref["pred_%s" % cost])
        if c["model"] == "mlp" and "pred_calibrated" in c:
            row["pred_calibrated_err"] = c["pred_calibrated"] / c["step_med"] - 1
    # Curves: one point per B samples (the control's M steps averaged).
    for c in confs:
        if not c["curve"]:
            continue
        g = c["group"]
        L = c["losses"]
        pts = [sum(L[i:i + g]) / g for i in range(0, len(L) - g + 1, g)]
        step_s = c["step_mean_med"] * g          # seconds per point
        # One pass over the data set (64 batches) evens out easy and hard
        # batches; a short --quick run takes a quarter of its points.
        sm = trailing(pts, min(EPOCH, max(1, len(pts) // 4)))
        c["curve_pts"] = [((i + 1) * c["batch"] * g, (i + 1) * step_s, l, s)
                          for i, (l, s) in enumerate(zip(pts, sm))]
        for i, (n, t, l, s) in enumerate(c["curve_pts"]):
            curves.append({"model": c["model"], "P": c["P"], "config": c["name"], "step": i + 1,
                           "samples": n, "seconds": t, "loss": l, "loss_smooth": s})
    # Loss at equal samples, equal time; samples and time to 1f1b's final loss.
    for (model, P) in sorted({(c["model"], c["P"]) for c in confs}):
        group = [c for c in confs if c["model"] == model and c["P"] == P and c["curve"]]
        ref = next(c for c in group if c["name"] == "1f1b")
        target = ref["curve_pts"][-1][3]
        t_eq = min(c["curve_pts"][-1][1] for c in group)
        n_pts = len(ref["curve_pts"])
        for c in group:
            pts = c["curve_pts"]
            row = {"model": model, "P": P, "config": c["name"], "label": c["label"],
                   "oversubscribed": c["oversubscribed"], "lr": c["lr"],
                   "loss_first": pts[0][2], "target": target, "equal_time_s": t_eq}
            for frac in (0.25, 0.5, 1.0):
                k = max(1, int(round(frac * n_pts))) - 1
                row["smooth_at_%d" % int(frac * 100)] = pts[k][3]
                row["samples_at_%d" % int(frac * 100)] = pts[k][0]
            k = max(i for i, p in enumerate(pts) if p[1] <= t_eq * (1 + 1e-9))
            row["smooth_at_equal_time"] = pts[k][3]
            row["samples_at_equal_time"] = pts[k][0]
            hit = next((p for p in pts if p[3] <= target), None)
            row["samples_to_target"] = hit[0] if hit else ""
            row["seconds_to_target"] = hit[1] if hit else ""
            row["first_step_equals_1f1b"] = (c["losses"][0] == ref["losses"][0]
                                             if c["group"] == 1 else "")
            row["losses_repeat"] = c["repeat_equal"]
            loss_rows.append(row)
    return thr, curves, loss_rows


def lr_sweep(cfg, confs):
    """The MLP at P = 2 over learning rates: the final loss of 1f1b, pipedream and
    pipedream-2bw (one run each: the numbers are deterministic; the file's
    own rate is the loss-curve run)."""
    base = next(c for c in confs if c["model"] == "mlp" and c["P"] == 2 and c["name"] == "1f1b")
    opt = model_info(base["path"])["optimizer"]
    lrs = (0.01, 0.1) if cfg.quick else (0.01, 0.02, 0.05, 0.1)
    rows = []
    for lr in sorted(set(lrs) | {base["lr"]}):
        for s in ("1f1b",) + ASYNC:
            same = next((c for c in confs if c["model"] == "mlp" and c["P"] == 2
                         and c["name"] == s and abs(c["lr"] - lr) < 1e-12), None)
            if same:
                losses = same["losses"]
            else:
                sets = ["stages=2", "schedule=" + s, "optimizer=" + with_lr(opt, lr)]
                d = lib.compile_model(cfg, base["path"], sets)
                losses = lib.run_program(d, ["--steps", str(base["steps"])] + base["data"],
                                         threads=1, timeout=1800)["losses"]
            sm = trailing(losses, min(EPOCH, max(1, len(losses) // 4)))
            n = len(sm)
            rows.append({"lr": lr, "schedule": s, "steps": n,
                         "smooth_at_50": sm[n // 2 - 1], "smooth_at_100": sm[-1],
                         "smooth_best": min(x for x in sm if x == x) if any(x == x for x in sm)
                         else float("nan"), "loss_last": losses[-1]})
            cfg.say("async: lr sweep: %-14s lr %-6g loss (epoch mean) half way %.4f, end %.4f"
                    % (s, lr, rows[-1]["smooth_at_50"], rows[-1]["smooth_at_100"]))
    return rows


def delay_check(cfg, confs, wdir):
    """pipedream-2bw computes step t with W(t-1), and W(1) is one ordinary update
    of W(0) with batch 1's gradient: its step 2 must equal 1f1b's step 1 on the
    data without batch 1 (the initial weights on batch 2), its step 3 1f1b's
    step 2 on the data without batch 2 (W(1) on batch 3)."""
    out = {}
    for c in confs:
        if c["name"] != "pipedream-2bw" or c["P"] != 2:
            continue
        ref = next(x for x in confs if x["model"] == c["model"] and x["P"] == 2
                   and x["name"] == "1f1b")
        got = []
        for drop in (0, 1):
            data, cut = list(c["data"]), []
            for i, a in enumerate(data):
                if i > 0 and data[i - 1] in ("--input", "--target"):
                    r = os.path.join(wdir, "drop%d-%s" % (drop, os.path.basename(a)))
                    lib.run([PY, "-c", "import numpy as np; x = np.load(%r); B = %d; "
                             "np.save(%r, np.concatenate([x[:%d * B], x[(%d + 1) * B:]]))"
                             % (a, c["batch"], r, drop, drop)])
                    a = r
                cut.append(a)
            got.append(lib.run_program(ref["dir"], ["--steps", str(drop + 1)] + cut,
                                       threads=1)["losses"][drop])
        want = c["losses"][1:3]
        out[c["model"]] = {"1f1b": got, "2bw": want, "equal": got == want}
        cfg.say("async: 2BW delay check (%s): steps 2, 3 %s; 1f1b without batch 1, 2: %s: %s"
                % (c["model"], " ".join("%.9g" % x for x in want),
                   " ".join("%.9g" % x for x in got),
                   "equal" if out[c["model"]]["equal"] else "DIFFERENT"))
    return out


def zb_sweep(cfg):
    """Uniform cost, 16 equal layers: bubble, step and peak activations."""
    model = lib.model_path(UNIFORM)
    rows = []
    for P in (2, 4, 8):
        for M in (P, 2 * P, 4 * P):
            for s in ("1f1b", "zb-h1", "zb-v"):
                sets = ["stages=%d" % P, "microbatches=%d" % M, "schedule=" + s]
                r = lib.schedule(model, sets, cost="uniform")
                pk = sched_peaks(r["text"])
                V = 2 if s == "zb-v" else 1
                rows.append({"P": P, "M": M, "schedule": s, "step_time": r["step_time"],
                             "bubble_fraction": r["bubble_fraction"],
                             "bubble_overhead": r.get("bubble_overhead"),
                             "idle_per_rank_max": max(p[1] for p in pk),
                             # stage-sized micro-batch activations (a zb-v chunk is half a stage)
                             "peak_stage_mbs": max(p[2] for p in pk) / V,
                             "peak_bytes": max(p[3] for p in pk),
                             "formula_1f1b": (P - 1) / (M + P - 1)})
    for r in rows:
        ref = next(x for x in rows if x["P"] == r["P"] and x["M"] == r["M"]
                   and x["schedule"] == "1f1b")
        r["bubble_vs_1f1b"] = r["bubble_fraction"] / ref["bubble_fraction"]
        r["peak_vs_1f1b"] = r["peak_stage_mbs"] / ref["peak_stage_mbs"]
        r["peak_bytes_vs_1f1b"] = r["peak_bytes"] / ref["peak_bytes"]
    cfg.say("async: zero-bubble sweep: %s" % "; ".join(
        "P=%d M=%d %s %.3f" % (r["P"], r["M"], r["schedule"], r["bubble_fraction"])
        for r in rows if r["M"] == 2 * r["P"]))
    return rows


def memory(cfg, confs):
    """Peak memory per rank, predicted and measured: mlp4 (one short run per
    schedule) and the MLP's timed runs."""
    rows = []
    mlp4 = lib.model_path(MLP4)
    todo = [(2, s) for s in ("1f1b",) + ASYNC + ("zb-v", "zb-h1")] + \
           [(4, s) for s in ("1f1b",) + ASYNC]
    for P, s in todo:
        # P = 4: the file's partition; P = 2 needs another (auto)
        sets = ["stages=%d" % P, "schedule=" + s] + (["partition=auto"] if P != 4 else [])
        d = lib.compile_model(cfg, mlp4, sets)
        runs = [lib.run_program(d, ["--steps", "4"], threads=1) for _ in range(1 if cfg.quick else 2)]
        table = sched_memory(lib.schedule(mlp4, sets, cost="uniform")["text"])
        for r in range(len(runs[0]["peak_memory_ranks"])):
            meas = lib.median([x["peak_memory_ranks"][r][0] for x in runs])
            pred = runs[0]["peak_memory_ranks"][r][1]
            t = table.get(r, {})
            rows.append({"model": "mlp4", "P": P, "schedule": s, "rank": r,
                         "measured_bytes": int(meas), "predicted_bytes": int(pred),
                         "error": meas / pred - 1 if pred else "",
                         "weights": t.get("weights", ""), "gradients": t.get("gradients", ""),
                         "optimizer": t.get("optimizer", ""), "arena": t.get("arena", ""),
                         "total": t.get("total", ""), "oversubscribed": P > lib.CORES})
        cfg.say("async: memory mlp4 P=%d %-14s %s" % (P, s, "  ".join(
            "r%d %.1f/%.1f MB" % (x["rank"], x["measured_bytes"] / 1e6, x["predicted_bytes"] / 1e6)
            for x in rows if x["P"] == P and x["schedule"] == s and x["model"] == "mlp4")))
    for c in confs:
        if c["model"] != "mlp" or c["name"] not in ("1f1b", "zb-v", "zb-h1") + ASYNC:
            continue
        table = sched_memory(lib.schedule(c["path"], c["sets"], cost="uniform")["text"])
        for r in range(len(c["runs"][0]["peak_memory_ranks"])):
            meas = lib.median([x["peak_memory_ranks"][r][0] for x in c["runs"]])
            pred = c["runs"][0]["peak_memory_ranks"][r][1]
            t = table.get(r, {})
            rows.append({"model": MLP, "P": c["P"], "schedule": c["name"], "rank": r,
                         "measured_bytes": int(meas), "predicted_bytes": int(pred),
                         "error": meas / pred - 1 if pred else "",
                         "weights": t.get("weights", ""), "gradients": t.get("gradients", ""),
                         "optimizer": t.get("optimizer", ""), "arena": t.get("arena", ""),
                         "total": t.get("total", ""), "oversubscribed": c["oversubscribed"]})
    return rows


# ---------------------------------------------------------------- pictures

def pictures(cfg, confs, thr, zb, lrs):
    note = "--quick (noisy, short)" if cfg.quick else ""
    order = ["1f1b", "pipedream", "pipedream-2bw", "pipedream-lr/M", "1f1b-per-microbatch"]
    color = {n: i for i, n in enumerate(order)}
    for model, P, what in (("mlp", 2, "samples"), ("mlp", 2, "time"), ("mlp", 4, "samples"),
                           ("gpt", 2, "samples"), ("gpt", 2, "time")):
        group = [c for c in confs if c["model"] == model and c["P"] == P and c["curve"]
                 and c["name"] in order]
        if not group:
            continue
        ser = []
        for c in sorted(group, key=lambda c: order.index(c["name"])):
            ser.append({"label": c["label"], "color": color[c["name"]], "markers": False,
                        "dashed": c["name"] in ("pipedream-lr/M", "1f1b-per-microbatch"),
                        "points": [(p[0] if what == "samples" else p[1], p[3])
                                   for p in c["curve_pts"]]})
        lo = min(p[1] for s in ser for p in s["points"])
        name = "%s, P = %d%s" % ("MLP (bench/models/async-mlp.pipe)" if model == "mlp"
                                 else "char GPT (bench/models/async-gpt.pipe)", P,
                                 ", oversubscribed" if P > lib.CORES else "")
        svgplot.line_chart(
            os.path.join(cfg.out, "async-%s-p%d-%s.svg" % (model, P, what)),
            "Training loss vs %s: %s" % ("samples" if what == "samples" else "seconds", name),
            "samples seen" if what == "samples" else "seconds (steps x measured mean step time)",
            "loss (trailing mean)", ser, notes=note, ymin=max(0.0, lo - 0.1 * abs(lo)))
    # Throughput at P = 2: measured and predicted ratios to 1f1b.
    rows = [r for r in thr if r["P"] == 2 and r["config"] not in ("1f1b", "pipedream-lr/M")]
    if rows:
        svgplot.bar_chart(
            os.path.join(cfg.out, "async-throughput.svg"),
            "Samples/s relative to 1f1b (P = 2): measured and simulated",
            "ratio to 1f1b",
            ["%s\n%s" % (r["model"], r["config"].replace("1f1b-per-microbatch", "1f1b per mb"))
             for r in rows],
            [{"label": "measured", "values": [r["ratio_vs_1f1b"] for r in rows]},
             {"label": "model, calibrated", "values": [r.get("pred_calibrated_ratio") or None
                                                        for r in rows]},
             {"label": "model, defaults", "values": [r.get("pred_model_ratio") for r in rows]},
             {"label": "uniform", "values": [r.get("pred_uniform_ratio") for r in rows]}],
            notes=note, value_fmt="%.2f")
    svgplot.line_chart(
        os.path.join(cfg.out, "async-mlp-lr.svg"),
        "MLP, P = 2: final loss (mean over the last pass over the data) vs learning rate",
        "SGD learning rate (momentum 0.9)", "loss",
        [{"label": s, "color": color[s],
          "points": [(r["lr"], r["smooth_at_100"]) for r in lrs if r["schedule"] == s]}
         for s in ("1f1b",) + ASYNC], logx=True, notes=note)
    ser = []
    for i, s in enumerate(("1f1b", "zb-h1", "zb-v")):
        for j, P in enumerate((2, 4, 8)):
            ser.append({"label": "%s P=%d" % (s, P), "color": i, "dashed": j == 1,
                        "markers": j != 2,
                        "points": [(r["M"] / r["P"], r["bubble_fraction"]) for r in zb
                                   if r["schedule"] == s and r["P"] == P]})
    svgplot.line_chart(os.path.join(cfg.out, "async-zb-bubble.svg"),
                       "Bubble under the uniform cost (F = B = W per chunk): 1f1b, zb-h1, zb-v",
                       "micro-batches per stage, M / P", "bubble fraction", ser, logx=True,
                       notes="solid: P = 2; dashed: P = 4; no markers: P = 8")


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps and rounds: about 3 minutes, noisy")
    ap.add_argument("--reps", type=int, help="timing rounds (default 11; 3 with --quick)")
    ap.add_argument("--out", default=os.path.join(lib.BENCH, "results"))
    ap.add_argument("--work", default=os.path.join(lib.BUILD, "bench-work"))
    ap.add_argument("--no-docs", action="store_true", help="do not regenerate docs/performance.md")
    a = ap.parse_args()
    cfg = tc.Cfg(a.quick, a.out, a.work, None, "async.log")
    cfg.reps = a.reps or (3 if cfg.quick else 11)
    t_start = time.time()
    meta = {"mode": "quick" if cfg.quick else "full", "date": time.strftime("%Y-%m-%d %H:%M %Z"),
            "load_start": lib.loadavg(), "nproc": lib.CORES, "rounds": cfg.reps}
    cfg.say("async: %s mode, results in %s, load %s" % (meta["mode"], a.out, meta["load_start"]))
    wdir = os.path.join(cfg.work, "async")
    os.makedirs(wdir, exist_ok=True)

    zb = zb_sweep(cfg)
    cal, cal_args = calibration(cfg)
    confs, info = configs(cfg, wdir)
    runs, busy, curve_busy = measure(cfg, confs)
    thr, curves, loss_rows = summarise(cfg, confs, cal_args)
    mem = memory(cfg, confs)
    lrs = lr_sweep(cfg, confs)
    delay = delay_check(cfg, confs, wdir)

    lib.write_csv(os.path.join(cfg.out, "async_curves.csv"), curves,
                  ["model", "P", "config", "step", "samples", "seconds", "loss", "loss_smooth"])
    lib.write_csv(os.path.join(cfg.out, "async_loss.csv"), loss_rows,
                  ["model", "P", "config", "label", "oversubscribed", "lr", "loss_first",
                   "smooth_at_25", "samples_at_25", "smooth_at_50", "samples_at_50",
                   "smooth_at_100", "samples_at_100", "equal_time_s", "smooth_at_equal_time",
                   "samples_at_equal_time", "target", "samples_to_target", "seconds_to_target",
                   "first_step_equals_1f1b", "losses_repeat"])
    lib.write_csv(os.path.join(cfg.out, "async_throughput.csv"), thr,
                  ["model", "P", "config", "label", "oversubscribed", "runs", "batch", "steps",
                   "step_s", "step_mean_s", "min_s", "max_s", "samples_s", "samples_s_mean",
                   "ratio_vs_1f1b", "ratio_mean_vs_1f1b", "ratio_round_min", "ratio_round_median",
                   "ratio_round_max",
                   "bubble_measured", "pred_uniform_step", "pred_uniform_bubble",
                   "pred_uniform_ratio", "pred_model_step", "pred_model_bubble",
                   "pred_model_ratio", "pred_calibrated_step", "pred_calibrated_bubble",
                   "pred_calibrated_ratio", "pred_calibrated_err", "losses_repeat"])
    lib.write_csv(os.path.join(cfg.out, "async_runs.csv"), runs,
                  ["model", "P", "config", "round", "steps", "step_s", "step_mean_s", "wall_s",
                   "bubble_measured", "loss_last", "others_cores", "load_start", "load_end"])
    lib.write_csv(os.path.join(cfg.out, "async_zb.csv"), zb,
                  ["P", "M", "schedule", "step_time", "bubble_fraction", "bubble_overhead",
                   "bubble_vs_1f1b", "formula_1f1b", "idle_per_rank_max", "peak_stage_mbs",
                   "peak_vs_1f1b", "peak_bytes", "peak_bytes_vs_1f1b"])
    lib.write_csv(os.path.join(cfg.out, "async_memory.csv"), mem,
                  ["model", "P", "schedule", "rank", "measured_bytes", "predicted_bytes", "error",
                   "weights", "gradients", "optimizer", "arena", "total", "oversubscribed"])
    lib.write_csv(os.path.join(cfg.out, "async_lr.csv"), lrs,
                  ["lr", "schedule", "steps", "smooth_at_50", "smooth_at_100", "smooth_best",
                   "loss_last"])
    pictures(cfg, confs, thr, zb, lrs)
    meta.update({"load_end": lib.loadavg(), "seconds": round(time.time() - t_start),
                 "others_cores": busy, "others_cores_curves": curve_busy, "calibration": cal,
                 "delay_check": delay, "mlp": info["mlp"],
                 "gpt": info["gpt"], "pipec": lib.run([lib.PIPEC, "--version"]).strip(),
                 "git": lib.run(["git", "-C", lib.ROOT, "describe", "--always", "--dirty"]).strip()})
    lib.save_json(os.path.join(cfg.out, "async.json"), meta)
    cfg.say("async: done in %d s, load %s at the end; other processes kept %s cores busy"
            % (meta["seconds"], meta["load_end"], ", ".join("%.2f" % b for b in busy)))
    bad = ["%s P=%d %s" % (c["model"], c["P"], c["name"]) for c in confs if not c["repeat_equal"]]
    bad += ["2BW delay check (%s)" % m for m, r in delay.items() if not r["equal"]]
    if bad:
        cfg.say("async: FAILED: %s" % ", ".join(bad))
    if not a.no_docs and os.path.realpath(a.out) == os.path.realpath(os.path.join(lib.BENCH,
                                                                                  "results")):
        import report
        report.write(cfg)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
