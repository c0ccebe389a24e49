"""bench/report.py — docs/performance.md from bench/performance.md.in and the
results (CSV, JSON) of the last run.

The template holds the prose; `@@NAME@@` lines are replaced by generated
tables and pictures, `@@VAL:NAME@@` by single figures, so the document and
the numbers it quotes always come from the same run.
"""
import os
import re
import sys

sys.dont_write_bytecode = True     # run as a script: no __pycache__ in the source tree
import lib  # noqa: E402

DOCS = os.path.join(lib.ROOT, "docs")


def _f(v, spec):
    if v in ("", None):
        return "–"
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v)
    if x != x:
        return "–"
    return spec % x


def table(rows, cols):
    """cols: [(header, key or function, printf spec or None)]"""
    out = ["| " + " | ".join(h for h, _, _ in cols) + " |",
           "|" + "|".join(" ---: " if s else " --- " for _, _, s in cols) + "|"]
    for r in rows:
        cells = []
        for _, k, spec in cols:
            v = k(r) if callable(k) else r.get(k, "")
            cells.append(_f(v, spec) if spec else str(v))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def _csv(cfg, name):
    p = os.path.join(cfg.out, name)
    return lib.read_csv(p) if os.path.exists(p) else []


def _img(cfg, name, alt):
    p = os.path.join(cfg.out, name)
    if not os.path.exists(p):
        return "*(no picture: %s was not produced by this run)*" % name
    return "![%s](%s)" % (alt, os.path.relpath(p, DOCS))


def _missing(what):
    return "*(not measured in this run: `bench/run-all.sh --only %s`)*" % what


def blocks(cfg):
    b, v = {}, {}
    meta = lib.load_json(os.path.join(cfg.out, "machine.json"), {})
    quick = meta.get("mode") == "quick"
    b["MODE"] = (
        "> **These figures come from a `--quick` run** (%s) on a machine that other jobs were "
        "using at the same time (load average %s at the start, %s at the end): few runs, "
        "noisy. Treat them as a smoke test; `bench/run-all.sh` on a quiet machine gives the "
        "figures to quote." % (meta.get("date", "?"), meta.get("load_start", "?"),
                                meta.get("load_end", "?"))
        if quick else
        "> Figures from a full run (%s), load average %s at the start and %s at the end."
        % (meta.get("date", "?"), meta.get("load_start", "?"), meta.get("load_end", "?")))
    ran = meta.get("experiments") or []
    order = ["calibrate", "compare", "overhead", "bubble", "predict", "seeds", "compiler"]
    if ran and set(order) - set(ran):
        b["MODE"] += ("\n>\n> That run (`--only %s`) redid only those experiments; the other "
                      "sections' results (%s) are an earlier run's, left in place."
                      % (",".join(ran), ", ".join(x for x in order if x not in ran)))
    if meta.get("failed"):
        b["MODE"] += "\n>\n> Experiments that failed in this run: %s (see bench/results/bench.log)." \
            % ", ".join(meta["failed"])
    v["nproc"] = meta.get("nproc", "?")
    b["MACHINE"] = table([
        {"k": "CPU", "v": meta.get("cpu", "?")},
        {"k": "cores (`nproc`)", "v": meta.get("nproc", "?")},
        {"k": "OpenBLAS (config; kernel)", "v": meta.get("openblas", "?").replace(" | ", "; kernel ")},
        {"k": "OPENBLAS_CORETYPE", "v": meta.get("openblas_coretype", "?")},
        {"k": "MPI", "v": meta.get("mpi", "?")},
        {"k": "C compiler", "v": meta.get("cc", "?")},
        {"k": "PyTorch", "v": "%s (BLAS: %s, CPU capability %s)" % (
            meta.get("torch", "?"), meta.get("torch_blas", "?"), meta.get("torch_isa", "?"))},
        {"k": "pipec", "v": "%s, tree %s" % (meta.get("pipec", "?"), meta.get("git", "?"))},
        {"k": "Linux", "v": meta.get("kernel", "?")},
        {"k": "mode", "v": "%s, %s timed runs per configuration after a warm-up" % (
            meta.get("mode", "?"), 2 if quick else 5)},
        {"k": "seconds per experiment", "v": ", ".join("%s %s" % kv for kv in
                                                      meta.get("seconds", {}).items())},
    ], [("", "k", None), ("", "v", None)])

    # ---- compare ----
    rows = _csv(cfg, "compare.csv")
    if rows:
        b["COMPARE"] = table(rows, [
            ("model", "model", None), ("P", "P", None), ("schedule", "schedule", None),
            ("M", "M", None), ("batch", "batch", None),
            ("oversub.", "oversubscribed", None), ("runs", "runs", None),
            ("pipec step (s)", "pipec_step_s", "%.4g"), ("pipec samples/s", "pipec_samples_s", "%.0f"),
            ("PyTorch step (s)", "torch_step_s", "%.4g"), ("PyTorch samples/s", "torch_samples_s", "%.0f"),
            ("pipec / PyTorch", "ratio", "%.2f×"),
            ("step-1 loss pipec", "loss_pipec", "%.9g"), ("step-1 loss PyTorch", "loss_torch", "%.9g"),
            ("rel. diff", "loss_rel_diff", "%.1e"), ("step-2 rel. diff", "loss2_rel_diff", "%.1e"),
            ("same order", "same_order", None)])
        b["COMPARE_SPREAD"] = table(rows, [
            ("model", "model", None), ("P", "P", None), ("schedule", "schedule", None),
            ("pipec min–max (s)", lambda r: "%.4g–%.4g" % (float(r["pipec_min_s"]), float(r["pipec_max_s"])), None),
            ("PyTorch min–max (s)", lambda r: "%.4g–%.4g" % (float(r["torch_min_s"]), float(r["torch_max_s"])), None),
            ("gloo barrier pair (µs)", lambda r: 1e6 * float(r["torch_barrier_s"]), "%.0f"),
            ("pipec bubble measured", "bubble_measured", "%.3f"),
            ("pipec bubble predicted", "bubble_predicted", "%.3f")])
        for r in rows:
            if r["P"] == "2":
                v["ratio_%s_%s" % (r["model"], r["schedule"])] = "%.2f×" % float(r["ratio"])
        dn = [float(r["ratio"]) for r in rows if r["model"] == "deep-narrow" and r["P"] == "2"]
        ml = [float(r["ratio"]) for r in rows if r["model"] == "mlp4" and r["P"] == "2"]
        v["ratio_deep_min"] = "%.1f×" % min(dn) if dn else "–"
        v["ratio_deep_max"] = "%.1f×" % max(dn) if dn else "–"
        v["ratio_mlp4_min"] = "%.2f×" % min(ml) if ml else "–"
        v["ratio_mlp4_max"] = "%.2f×" % max(ml) if ml else "–"
        v["loss_maxdiff"] = "%.1e" % max(float(r["loss_rel_diff"]) for r in rows)
    else:
        b["COMPARE"] = b["COMPARE_SPREAD"] = _missing("compare")
    b["FIG_COMPARE"] = "\n\n".join([_img(cfg, "compare-mlp4.svg", "mlp4: pipec vs PyTorch"),
                                    _img(cfg, "compare-deep-narrow.svg", "deep-narrow: pipec vs PyTorch")])

    # ---- overhead ----
    rows = _csv(cfg, "overhead.csv")
    if rows:
        b["OVERHEAD"] = table(rows, [
            ("M", "M", None), ("actions per rank", "actions_rank0", None),
            ("step (s)", "step_s", "%.4g"), ("step / actions (µs)", "step_per_action_us", "%.3f"),
            ("(step − compute) / actions, rank 0 (µs)", "overhead_rank0_us", "%.3f"),
            ("rank 1 (µs)", "overhead_rank1_us", "%.3f"),
            ("bubble measured", "bubble_measured", "%.3f"),
            ("compiler's predicted bubble", "bubble_predicted", "%.3f")])
        last = rows[-1]
        v["overhead_us"] = "%.2f µs" % float(last["overhead_us"])
        v["overhead_allin_us"] = "%.2f µs" % float(last["step_per_action_us"])
        v["overhead_slope_us"] = "%.2f µs" % float(last["slope_us_per_action"])
        v["overhead_M"] = last["M"]
        v["torch_action_us"] = "%.0f µs" % float(last["torch_step_per_action_us"])
        v["pipec_action_us_64"] = ("%.2f µs" % float(last["pipec_step_per_action_us_M64"])
                                   if last["pipec_step_per_action_us_M64"] else "–")
        v["trace_glue_us"] = "%.2f µs" % float(last["trace_glue_us"])
    else:
        b["OVERHEAD"] = _missing("overhead")
    rows = _csv(cfg, "overhead_trace.csv")
    b["OVERHEAD_TRACE"] = table(rows, [("op", "op", None)] + [
        ("%s: mean µs" % k.replace("_us", "").replace("rank", "rank "), k, "%.3f")
        for k in (rows[0].keys() if rows else []) if k != "op"]) if rows else _missing("overhead")
    b["FIG_OVERHEAD"] = _img(cfg, "overhead.svg", "per-action cost")

    # ---- calibration and prediction ----
    rows = _csv(cfg, "calibration.csv")
    b["CALIBRATION"] = table(rows, [
        ("measured", "what", None), ("GEMM FLOP/s per rank", "gemm_flops", "%.3g"),
        ("one-way latency (s)", "latency_s", "%.3g"), ("bandwidth (B/s)", "bandwidth_Bps", "%.3g")]) \
        if rows else _missing("calibrate")
    cal = lib.load_json(os.path.join(cfg.out, "calibration.json"))
    if cal:
        g = cal["generic"]
        v["cal_flops"] = "%.3g" % g["gemm_flops"]
        v["cal_latency"] = "%.3g" % g["latency"]
        v["cal_bandwidth"] = "%.3g" % g["bandwidth"]
    rows = _csv(cfg, "bubble.csv")
    meas = [r for r in rows if r["P"] == "2"]
    if meas:
        b["BUBBLE"] = table(meas, [
            ("schedule", "schedule", None), ("M", "M", None),
            ("measured", "measured", "%.3f"),
            ("runs min–max", lambda r: "%.3f–%.3f" % (float(r["measured_min"]), float(r["measured_max"])), None),
            ("simulator, calibrated", "sim_model_calibrated", "%.3f"),
            ("measured − simulator", "measured_minus_sim", "%+.3f"),
            ("compiler's prediction", "compiler_predicted", "%.3f"),
            ("simulator, uniform cost", "sim_uniform", "%.3f"),
            ("formula (P−1)/(VM+P−1)", "formula", "%.3f")])
        d = [abs(float(r["measured_minus_sim"])) for r in meas]
        v["bubble_maxdiff"] = "%.3f" % max(d)
        v["bubble_meddiff"] = "%.3f" % lib.median(d)
        big = [abs(float(r["measured_minus_sim"])) for r in meas if int(r["M"]) >= 8]
        v["bubble_maxdiff_m8"] = "%.3f" % max(big) if big else "–"
    else:
        b["BUBBLE"] = _missing("bubble")
    p4 = [r for r in rows if r["P"] == "4"]
    b["BUBBLE_P4"] = table(p4, [("schedule", "schedule", None), ("M", "M", None),
                                ("simulator, uniform cost", "sim_uniform", "%.3f"),
                                ("formula", "formula", "%.3f")]) if p4 else _missing("bubble")
    b["FIG_BUBBLE"] = _img(cfg, "bubble.svg", "bubble vs M")
    rows = _csv(cfg, "predict.csv")
    if rows:
        b["PREDICT"] = table(rows, [
            ("model", "model", None), ("schedule", "schedule", None), ("M", "M", None),
            ("measured (s)", "measured_s", "%.4g"),
            ("calibrated on its layers (s)", "pred_calibrated_s", "%.4g"),
            ("error", lambda r: 100 * float(r["err_calibrated"]), "%+.0f%%"),
            ("generic calibration (s)", "pred_generic_s", "%.4g"),
            ("error ", lambda r: 100 * float(r["err_generic"]), "%+.0f%%"),
            ("pipec's defaults (s)", "pred_default_s", "%.4g"),
            ("error  ", lambda r: 100 * float(r["err_default"]), "%+.0f%%")])
        e = [abs(float(r["err_calibrated"])) for r in rows]
        v["pred_maxerr"] = "%.0f%%" % (100 * max(e))
        v["pred_mederr"] = "%.0f%%" % (100 * lib.median(e))
        v["pred_within10"] = "%d of %d" % (sum(1 for x in e if x <= 0.10), len(e))
    else:
        b["PREDICT"] = _missing("predict")
    b["FIG_PREDICT"] = _img(cfg, "predict.svg", "predicted vs measured")

    # ---- seeds ----
    rows = _csv(cfg, "stages.csv")
    b["STAGES"] = table(rows, [
        ("model", "model", None), ("configuration", "config", None),
        ("processes", "processes", None), ("threads each", "threads_per_process", None),
        ("M", "M", None), ("batch", "batch", None), ("step (s)", "step_s", "%.4g"),
        ("samples/s", "samples_s", "%.0f"),
        ("vs single process, 1 thread", "speedup_vs_single_1thread", "%.2f×"),
        ("bubble measured", "bubble_measured", "%.3f")]) if rows else _missing("seeds")
    for r in rows:
        v["stages_%s_%s" % (r["model"], re.sub(r"\W+", "_", r["config"]).strip("_"))] = \
            "%.2f×" % float(r["speedup_vs_single_1thread"])
    b["FIG_STAGES"] = "\n\n".join([_img(cfg, "stages-mlp4.svg", "mlp4 by configuration"),
                                   _img(cfg, "stages-uniform.svg", "uniform by configuration")])
    rows = _csv(cfg, "microbatch.csv")
    b["MICROBATCH"] = table(rows, [
        ("sweep", "sweep", None), ("M", "M", None), ("rows per micro-batch", "rows_per_mb", None),
        ("batch", "batch", None), ("step = latency (s)", "step_s", "%.4g"),
        ("samples/s", "samples_s", "%.0f"), ("bubble measured", "bubble_measured", "%.3f"),
        ("bubble predicted", "bubble_predicted", "%.3f")]) if rows else _missing("seeds")
    b["FIG_MICROBATCH"] = "\n\n".join([_img(cfg, "microbatch-count.svg", "throughput vs M"),
                                       _img(cfg, "microbatch-size.svg", "latency vs micro-batch size")])
    rows = _csv(cfg, "memory.csv")
    if rows:
        b["MEMORY"] = table(rows, [
            ("P", "P", None), ("schedule", "schedule", None), ("rank", "rank", None),
            ("measured (MB)", lambda r: float(r["measured_bytes"]) / 1e6, "%.2f"),
            ("predicted (MB)", lambda r: float(r["predicted_bytes"]) / 1e6, "%.2f"),
            ("error", lambda r: 100 * float(r["error"]), "%+.2f%%")])
        # The figure that decides whether a model fits is the largest rank's;
        # small ranks' relative errors are page-granularity noise, so the
        # absolute error is given beside it.
        big = {}
        for r in rows:
            k = (r["P"], r["schedule"])
            if k not in big or float(r["predicted_bytes"]) > float(big[k]["predicted_bytes"]):
                big[k] = r
        v["mem_maxerr"] = "%.2f%%" % max(100 * abs(float(r["error"])) for r in big.values())
        v["mem_maxabs"] = "%.2f MB" % max(abs(float(r["measured_bytes"]) - float(r["predicted_bytes"])) / 1e6
                                          for r in rows)
    else:
        b["MEMORY"] = _missing("seeds")
    b["FIG_MEMORY"] = "\n\n".join([_img(cfg, "memory-p2.svg", "memory P=2"),
                                   _img(cfg, "memory-p4.svg", "memory P=4")])

    # ---- compiler ----
    rows = _csv(cfg, "compiler.csv")
    if rows:
        b["COMPILER"] = table(rows, [
            ("sweep", "sweep", None), ("layers", "layers", None), ("P", "P", None), ("M", "M", None),
            ("pipec (s)", "pipec_s", "%.3f"), ("pipec peak RSS (MB)", "pipec_rss_MB", "%.1f"),
            ("C, all ranks (KB)", "source_total_KB", "%.0f"),
            ("C, largest rank (KB)", "source_largest_KB", "%.0f"),
            ("lines", "largest_rank_lines", None),
            ("cc -O2 largest rank (s)", "cc_largest_s", "%.2f"),
            ("cc peak RSS (MB)", "cc_rss_MB", "%.0f"), ("binary (KB)", "binary_KB", "%.0f")])
        big = max(rows, key=lambda r: int(r["P"]) * int(r["M"]) if r["sweep"] == "PxM" else 0)
        v["cc_big"] = "%.1f s" % float(big["cc_largest_s"])
        v["cc_big_pm"] = "P = %s, M = %s" % (big["P"], big["M"])
        v["cc_big_kb"] = "%.0f KB" % float(big["source_largest_KB"])
        v["cc_big_bin"] = "%.0f KB" % float(big["binary_KB"])
        v["pipec_big"] = "%.3f s" % float(big["pipec_s"])
    else:
        b["COMPILER"] = _missing("compiler")
    b["FIG_COMPILER"] = "\n\n".join([_img(cfg, "compiler-pm.svg", "compile time vs PxM"),
                                     _img(cfg, "compiler-layers.svg", "compile time vs layers")])
    b["GOALS"] = goals(cfg, v)
    gen_blocks(cfg, b, v)
    tf_blocks(cfg, b, v)
    async_blocks(cfg, b, v)
    train_real_blocks(cfg, b)
    return b, v


# ---- training for real (bench/exp_train_real.py) ----

def train_real_blocks(cfg, b):
    """Section 10 from train_real.csv and train_real_runs.csv."""
    path = os.path.join(cfg.out, "train_real.csv")
    if not os.path.exists(path):
        b["TRAIN_REAL"] = "*(not measured in this run: `bench/exp_train_real.py`)*"
        return
    rows = lib.read_csv(path)
    runs = lib.read_csv(os.path.join(cfg.out, "train_real_runs.csv"))
    what = {"pipec": "pipec, P = 2 (1F1B, M = 4)",
            "torch-pipelining": "torch.distributed.pipelining, 2 processes (Schedule1F1B, M = 4)",
            "torch-1-process": "transformers, 1 process, 2 threads"}
    out = ["| run | samples/s (median) | runs (samples/s) | final eval loss | pipec's samples/s ÷ this |",
           "| --- | --- | --- | --- | --- |"]
    base = float(rows[0]["samples_per_s"])
    for r in rows:
        mine = [float(x["samples_per_s"]) for x in runs if x["impl"] == r["impl"]]
        sps = float(r["samples_per_s"])
        out.append("| %s | %.0f | %s | %.4f | %.2f× |"
                   % (what.get(r["impl"], r["impl"]), sps, ", ".join("%.0f" % x for x in mine),
                      float(r["final_eval_loss"]), base / sps))
    busy = [float(x["others_busy"]) for x in runs if x.get("others_busy") not in ("", None)]
    out.append("")
    out.append("%d steps, batch %s, on %s; other processes kept at most %.2f cores busy during "
               "the runs." % (int(rows[0]["steps"]), rows[0]["batch"], rows[0]["machine"] or "?",
                              max(busy) if busy else float("nan")))
    b["TRAIN_REAL"] = "\n".join(out)


# ---- generation (bench/exp_generate.py) ----

def _num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def _yes(x):
    return str(x).strip().lower() in ("yes", "true", "1")


def gen_goals(cfg):
    """The generation issue's goals from the generate_*.csv of the last run:
    [(goal, achieved, True / False / None)]."""
    meta = lib.load_json(os.path.join(cfg.out, "generate.json"), {})
    g2 = meta.get("gpt2", {})
    out = []
    rows = _csv(cfg, "generate_gpt2.csv")
    r1 = [r for r in rows if r["impl"] == "pipec" and r["batch"] == "1"]
    if r1 and g2.get("floor_s"):
        x = float(r1[0]["x_floor"])
        out.append(("batch-1 decode (GPT-2 small, P = 1, one thread) within 1.3× of the memory floor",
                    "%.1f ms per token = %.2f× the floor (%.1f ms: %.0f MB of weights / %.1f GB/s)"
                    % (1e3 * float(r1[0]["tpot_s"]), x, 1e3 * g2["floor_s"],
                       g2["weight_bytes"] / 1e6, g2["read_bw"] / 1e9), x <= 1.3))
    else:
        out.append(("batch-1 decode within 1.3× of the memory floor", _missing("generate"), None))
    r8 = [r for r in rows if r["impl"] == "pipec" and r["batch"] == "8"]
    t8 = [r for r in rows if r["impl"] == "transformers" and r["batch"] == "8"]
    if r8 and t8:
        v = float(r8[0]["vs_torch_decode"])
        out.append(("batched decode (GPT-2 small, batch 8, one thread) at least as fast as "
                    "transformers",
                    "%.1f ms per decode step vs transformers' %.1f ms: %.2f× its speed"
                    % (1e3 * float(r8[0]["tpot_s"]), 1e3 * float(t8[0]["tpot_s"]), v), v >= 1))
    else:
        out.append(("batched decode at least as fast as transformers", _missing("generate"), None))
    t = [r for r in _csv(cfg, "generate_tiny.csv") if r["impl"] == "pipec" and r["P"] == "2"]
    if t:
        best = max(t, key=lambda r: float(r["tokens_s"]))
        vm, vb = float(best["vs_torch_matching"]), float(best["vs_torch_best"])
        out.append(("≥ 5× transformers' tokens/s on the tiny model (P = 2, ranks ≤ cores)",
                    "%.0f tokens/s at M = %s: %.2f× transformers with %s threads (the cores pipec "
                    "uses), %.2f× transformers at its faster thread count"
                    % (float(best["tokens_s"]), best["M"], vm, best["torch_threads_matching"], vb),
                    min(vm, vb) >= 5))
    else:
        out.append(("≥ 5× transformers' tokens/s on the tiny model", _missing("generate"), None))
    return out


def gen_blocks(cfg, b, v):
    meta = lib.load_json(os.path.join(cfg.out, "generate.json"), {})
    lines = []
    for part, what in (("tiny", "tiny model"), ("gpt2", "GPT-2 small")):
        m = meta.get(part)
        if not m:
            lines.append("> The %s part was not measured (`bench/run-all.sh --only generate`)." % what)
            continue
        oc = m.get("others_cores") or []
        busy = ("; other processes kept %.2f cores busy on average over its rounds (median; "
                "largest %.2f)" % (lib.median(oc), max(oc))) if oc else ""
        lines.append("> %s: a %s run (%s, %.0f s), load average %s at its start and %s at its "
                     "end%s%s." % (what[0].upper() + what[1:], "`--quick`" if m.get("mode") == "quick"
                                   else "full", m.get("date", "?"), m.get("seconds", 0),
                                   m.get("load_start", "?"), m.get("load_end", "?"), busy,
                                   " — **it failed** (bench/results/bench.log)" if m.get("failed")
                                   else ""))
    b["GEN_MODE"] = "\n>\n".join(lines)
    g2 = meta.get("gpt2", {})
    v["gen_read_bw"] = "%.1f GB/s" % (g2["read_bw"] / 1e9) if g2.get("read_bw") else "–"
    v["gen_read_bw_1stream"] = ("%.1f GB/s" % (g2["read_bw_1stream"] / 1e9)
                                if _num(g2.get("read_bw_1stream")) else "–")
    v["gen_read_bw_streams"] = str(int(g2["read_bw_streams"])) if g2.get("read_bw_streams") else "–"
    v["gen_read_bw_runs"] = ", ".join("%.1f" % (x / 1e9) for x in g2.get("read_bw_runs", [])) or "–"
    v["gen_weight_mb"] = "%.0f MB" % (g2["weight_bytes"] / 1e6) if g2.get("weight_bytes") else "–"
    v["gen_floor_ms"] = "%.1f ms" % (1e3 * g2["floor_s"]) if g2.get("floor_s") else "–"
    v["gen_blas"] = g2.get("blas", "–")

    rows = _csv(cfg, "generate_tiny.csv")
    if rows:
        b["GEN_TINY"] = table(rows, [
            ("", "impl", None), ("P", "P", None), ("M", "M", None), ("threads", "threads", None),
            ("oversub.", "oversubscribed", None), ("runs", "runs", None),
            ("tokens/s", "tokens_s", "%.0f"), ("decode tokens/s", "decode_tokens_s", "%.0f"),
            ("TTFT (ms)", lambda r: 1e3 * float(r["ttft_s"]), "%.2f"),
            ("per output token (ms)", lambda r: 1e3 * float(r["tpot_s"]), "%.3f"),
            ("run min–max (ms)", lambda r: "%.1f–%.1f" % (1e3 * float(r["gen_min_s"]),
                                                         1e3 * float(r["gen_max_s"])), None),
            ("tokens/s vs transformers, same cores", "vs_torch_matching", "%.2f×"),
            ("vs its best", "vs_torch_best", "%.2f×"),
            ("decode vs same cores", "decode_vs_torch_matching", "%.2f×"),
            ("TTFT vs same cores", "ttft_vs_torch_matching", "%.2f×"),
            ("rows equal", lambda r: r["rows_equal"] or r["tokens_equal"], None)])
        div = ["- %s P = %s M = %s: %s" % (r["impl"], r["P"], r["M"], r["diverged"])
               for r in rows if r.get("diverged")]
        b["GEN_TINY_DIVERGED"] = ("Rows whose tokens differ from transformers' (1 thread), at "
                                  "their first difference, with the logit gap there (transformers' "
                                  "pick minus the other's) and the spread of that row's logits:\n\n"
                                  + "\n".join(div)) if div else \
            "Every configuration's tokens equal transformers' (greedy, 1 thread), row for row."
        p2 = [r for r in rows if r["impl"] == "pipec" and r["P"] == "2"]
        tr = {r["threads"]: r for r in rows if r["impl"] == "transformers"}
        if p2:
            best = max(p2, key=lambda r: float(r["tokens_s"]))
            v["gen_tiny_best_M"] = best["M"]
            v["gen_tiny_best_tps"] = "%.0f" % float(best["tokens_s"])
            v["gen_tiny_best_ratio"] = "%.2f×" % float(best["vs_torch_matching"])
            v["gen_tiny_best_ratio_best"] = "%.2f×" % float(best["vs_torch_best"])
            v["gen_tiny_m1_tps"] = "%.0f" % float(next(r for r in p2 if r["M"] == "1")["tokens_s"])
        p1 = [r for r in rows if r["impl"] == "pipec" and r["P"] == "1"]
        if p1:
            v["gen_tiny_p1_tps"] = "%.0f" % float(p1[0]["tokens_s"])
        for t, r in tr.items():
            v["gen_tiny_torch_t%s_tps" % t] = "%.0f" % float(r["tokens_s"])
            v["gen_tiny_torch_t%s_tpot" % t] = "%.2f ms" % (1e3 * float(r["tpot_s"]))
    else:
        b["GEN_TINY"] = _missing("generate")
        b["GEN_TINY_DIVERGED"] = ""
    b["FIG_GEN_TINY"] = _img(cfg, "generate-tiny.svg", "tiny GPT-2: tokens/s against M")

    rows = _csv(cfg, "generate_gpt2.csv")
    if rows:
        b["GEN_GPT2"] = table(rows, [
            ("", "impl", None), ("batch", "batch", None), ("threads", "threads", None),
            ("runs", "runs", None),
            ("per output token (ms)", lambda r: 1e3 * float(r["tpot_s"]), "%.1f"),
            ("× the floor", "x_floor", "%.2f×"),
            ("decode tokens/s", "decode_tokens_s", "%.1f"),
            ("TTFT (ms)", lambda r: 1e3 * float(r["ttft_s"]), "%.0f"),
            ("tokens/s (whole run)", "tokens_s", "%.1f"),
            ("decode speed vs transformers", "vs_torch_decode", "%.2f×"),
            ("rows equal", lambda r: r["rows_equal"] or r["tokens_equal"], None)])
        div = ["- batch %s: %s" % (r["batch"], r["diverged"]) for r in rows if r.get("diverged")]
        b["GEN_GPT2_DIVERGED"] = ("Rows whose tokens differ from transformers', at their first "
                                  "difference (logit gap there; spread of the row's logits):\n\n"
                                  + "\n".join(div)) if div else \
            "pipec's tokens equal transformers' at batch 1 and batch 8, row for row."
        for r in rows:
            k = "gen_gpt2_%s_b%s" % ("pipec" if r["impl"] == "pipec" else "torch", r["batch"])
            v[k + "_ms"] = "%.1f ms" % (1e3 * float(r["tpot_s"]))
            v[k + "_xfloor"] = "%.2f×" % float(r["x_floor"])
    else:
        b["GEN_GPT2"] = _missing("generate")
        b["GEN_GPT2_DIVERGED"] = ""
    rows = _csv(cfg, "generate_blas.csv")
    if rows:
        b["GEN_BLAS"] = table(rows, [
            ("product", "product", None), ("shape (in × out)", "shape", None),
            ("per step", "per_step", None),
            ("weights (MB)", lambda r: float(r["bytes"]) / 1e6, "%.1f"),
            ("sgemm, 1 row (ms)", lambda r: 1e3 * float(r["gemm_m1_s"]), "%.3f"),
            ("GB/s", "gemm_m1_GBps", "%.1f"),
            ("sgemv (ms)", lambda r: 1e3 * float(r["gemv_s"]), "%.3f"),
            ("GB/s ", "gemv_GBps", "%.1f"),
            ("sgemm, 8 rows (ms)", lambda r: 1e3 * float(r["gemm_m8_s"]), "%.3f"),
            ("GB/s  ", "gemm_m8_GBps", "%.1f")])
        tot = rows[-1]
        v["gen_blas_m1_ms"] = "%.1f ms" % (1e3 * float(tot["gemm_m1_s"]))
        v["gen_blas_gemv_ms"] = "%.1f ms" % (1e3 * float(tot["gemv_s"]))
        v["gen_blas_m8_ms"] = "%.1f ms" % (1e3 * float(tot["gemm_m8_s"]))
        v["gen_blas_m1_over_gemv"] = "%.1f×" % (float(tot["gemm_m1_s"]) / float(tot["gemv_s"]))
    else:
        b["GEN_BLAS"] = _missing("generate")
    b["GEN_GOALS"] = table([{"goal": g, "got": a, "ok": "–" if ok is None else
                             ("met" if ok else "**missed**")} for g, a, ok in gen_goals(cfg)],
                           [("goal", "goal", None), ("achieved", "got", None),
                            ("verdict", "ok", None)])


# ---- transformers (bench/exp_minilm.py, bench/exp_gpt_train.py) ----

def tf_blocks(cfg, b, v):
    """Section 8: bench/tf_report.py's transformers.md without its title and
    preamble (the machine, both tables, their figures in short, and the
    hand-written bench/transformers-notes.md), every heading one level down."""
    import tf_report
    if not tf_report.measured(cfg.out):
        b["TRANSFORMERS"] = ("*(not measured in this run: `bench/exp_minilm.py` and "
                             "`bench/exp_gpt_train.py`)*")
        return
    out, fenced = [], False
    for line in tf_report.body(cfg.out):
        for l in line.split("\n"):
            if l.startswith("```"):
                fenced = not fenced
            out.append("#" + l if not fenced and re.match(r"#+ ", l) else l)
    b["TRANSFORMERS"] = "\n".join(out).rstrip()


def goals(cfg, v):
    """The issue's goals with the achieved figure and a verdict."""
    def verdict(ok):
        return "–" if ok is None else ("met" if ok else "**missed**")

    def num(s):
        try:
            return float(re.sub(r"[^0-9.eE+-]", "", s))
        except (TypeError, ValueError):
            return None

    rows = []
    o = num(v.get("overhead_us"))
    rows.append({"goal": "per-action runtime overhead on the CPU < 2 µs",
                 "got": "%s (step − compute) / actions at M = %s; %s all-in (step / actions); "
                        "slope %s" % (v.get("overhead_us", "–"), v.get("overhead_M", "–"),
                                      v.get("overhead_allin_us", "–"), v.get("overhead_slope_us", "–")),
                 "ok": verdict(None if o is None else o < 2)})
    d = num(v.get("ratio_deep_min"))
    rows.append({"goal": "≥ 3× PyTorch's samples/s where per-action overhead matters (deep-narrow, P = 2)",
                 "got": "%s–%s" % (v.get("ratio_deep_min", "–"), v.get("ratio_deep_max", "–")),
                 "ok": verdict(None if d is None else d >= 3)})
    m = num(v.get("ratio_mlp4_min"))
    rows.append({"goal": "no slower than PyTorch where GEMMs dominate (mlp4, P = 2)",
                 "got": "%s–%s" % (v.get("ratio_mlp4_min", "–"), v.get("ratio_mlp4_max", "–")),
                 "ok": verdict(None if m is None else m >= 1)})
    bd = num(v.get("bubble_maxdiff"))
    rows.append({"goal": "measured bubble within 0.03 of the prediction, balanced stages (uniform, P = 2)",
                 "got": "largest absolute difference between measured and simulated %s "
                        "(median %s; %s for M ≥ 8)"
                        % (v.get("bubble_maxdiff", "–"), v.get("bubble_meddiff", "–"),
                           v.get("bubble_maxdiff_m8", "–")),
                 "ok": verdict(None if bd is None else bd <= 0.03)})
    pe = num(v.get("pred_maxerr"))
    rows.append({"goal": "predicted step time within 10% of measured after calibration (P = 2)",
                 "got": "largest error %s, median %s; %s within 10%%"
                        % (v.get("pred_maxerr", "–"), v.get("pred_mederr", "–"), v.get("pred_within10", "–")),
                 "ok": verdict(None if pe is None else pe <= 10)})
    me = num(v.get("mem_maxerr"))
    rows.append({"goal": "(not a goal of the issue) peak memory of the largest rank as predicted",
                 "got": "largest error %s; largest absolute error over all ranks %s"
                        % (v.get("mem_maxerr", "–"), v.get("mem_maxabs", "–")),
                 "ok": verdict(None if me is None else me <= 5)})
    return table(rows, [("goal", "goal", None), ("achieved", "got", None), ("verdict", "ok", None)])


# ---- asynchronous schedules (bench/exp_async.py) ----

def _key(*parts):
    return "_".join(re.sub(r"[^0-9A-Za-z]+", "", str(p)) for p in parts)


def _mb(x):
    return float(x) / 1e6 if x not in ("", None) else ""


def async_blocks(cfg, b, v):
    """Section 9 from async_*.csv and async.json."""
    meta = lib.load_json(os.path.join(cfg.out, "async.json"), {})
    names = ("ASYNC_MODE", "ASYNC_LOSS", "ASYNC_FINDINGS", "FIG_ASYNC_LOSS", "ASYNC_LR",
             "FIG_ASYNC_LR", "ASYNC_DELAY", "ASYNC_THROUGHPUT", "FIG_ASYNC_THROUGHPUT",
             "ASYNC_ZB", "FIG_ASYNC_ZB", "ASYNC_MEMORY", "ASYNC_MEMORY_MLP")
    if not meta:
        for n in names:
            b[n] = ""
        b["ASYNC_MODE"] = "*(not measured in this run: `bench/exp_async.py`)*"
        return
    oc = meta.get("others_cores") or []
    b["ASYNC_MODE"] = (
        "> %s run of `bench/exp_async.py` (%s, %.0f s): load average %s at its start and %s at "
        "its end (the load average counts the benchmark's own ranks); other processes kept "
        "%s cores busy during the loss-curve runs and %s in the %d timing rounds (median %.2f, "
        "largest %.2f). %s, tree %s."
        % ("A `--quick`" if meta.get("mode") == "quick" else "A full", meta.get("date", "?"),
           meta.get("seconds", 0), meta.get("load_start", "?"), meta.get("load_end", "?"),
           "%.2f" % meta["others_cores_curves"] if _num(meta.get("others_cores_curves")) is not None
           else "?", ", ".join("%.2f" % x for x in oc) or "?", len(oc),
           lib.median(oc) if oc else float("nan"), max(oc) if oc else float("nan"),
           meta.get("pipec", "?"), meta.get("git", "?")))
    mm, gm = meta.get("mlp", {}), meta.get("gpt", {})
    cal = meta.get("calibration", {})
    v["async_mlp_steps"] = mm.get("steps", "–")
    v["async_mlp_tsteps"] = mm.get("time_steps", "–")
    v["async_mlp_samples"] = "{:,}".format(mm["steps"] * mm["batch"]) if mm.get("steps") else "–"
    v["async_mlp_lr"] = "%g" % mm["lr"] if mm.get("lr") else "–"
    v["async_mlp_passes"] = ("%.1f" % (mm["steps"] * mm["batch"] / mm["rows"])
                             if mm.get("rows") else "–")
    v["async_mlp_lr_m"] = "%g" % (mm["lr"] / mm["M"]) if mm.get("lr") else "–"
    v["async_mlp_classes"] = mm.get("classes", "–")
    v["async_gpt_steps"] = gm.get("steps", "–")
    v["async_gpt_tsteps"] = gm.get("time_steps", "–")
    v["async_gpt_samples"] = "{:,}".format(gm["steps"] * gm["batch"]) if gm.get("steps") else "–"
    v["async_rounds"] = len(oc)
    v["async_cal"] = ("%.1f GFLOP/s on the MLP's layers at %d rows, link latency %.2g s and "
                      "%.2g GB/s%s" % (cal["gemm_flops"] / 1e9, cal.get("rows", 0),
                                       cal["latency"], cal["bandwidth"] / 1e9,
                                       ", memory %.1f GB/s" % (cal["mem_bandwidth"] / 1e9)
                                       if cal.get("mem_bandwidth") else "")) if cal else "–"

    # ---- statistical efficiency ----
    rows = _csv(cfg, "async_loss.csv")
    order = {"mlp": 0, "gpt": 1}
    rows.sort(key=lambda r: (order.get(r["model"], 2), int(r["P"])))
    if rows:
        def s2t(r):
            if not r["samples_to_target"]:
                return "not reached"
            ref = next(x for x in rows if x["model"] == r["model"] and x["P"] == r["P"]
                       and x["config"] == "1f1b")
            return "{:,} ({:.2f}×)".format(int(float(r["samples_to_target"])),
                                           float(r["samples_to_target"])
                                           / float(ref["samples_to_target"]))
        b["ASYNC_LOSS"] = table(rows, [
            ("model", lambda r: "MLP" if r["model"] == "mlp" else "char GPT", None),
            ("P", lambda r: r["P"] + (" (oversub.)" if _yes(r["oversubscribed"]) else ""), None),
            ("schedule", "label", None), ("lr", "lr", "%g"),
            ("step 1", "loss_first", "%.4f"),
            ("¼ of the samples", "smooth_at_25", "%.4f"), ("½", "smooth_at_50", "%.4f"),
            ("all", "smooth_at_100", "%.4f"),
            ("at equal time", lambda r: "%.4f (%.2f s)" % (float(r["smooth_at_equal_time"]),
                                                        float(r["equal_time_s"])), None),
            ("samples to 1f1b's final loss", s2t, None),
            ("seconds to it", "seconds_to_target", "%.2f"),
            ("same step 1 as 1f1b", "first_step_equals_1f1b", None),
            ("runs repeat", "losses_repeat", None)])
        for r in rows:
            k = _key(r["model"], "p" + r["P"], r["config"])
            v["async_l100_" + k] = "%.3f" % float(r["smooth_at_100"])
            v["async_l50_" + k] = "%.3f" % float(r["smooth_at_50"])
            v["async_l25_" + k] = "%.3f" % float(r["smooth_at_25"])
            v["async_teq_" + k] = "%.2f s" % float(r["equal_time_s"])
            v["async_t2t_" + k] = ("%.1f s" % float(r["seconds_to_target"])
                                   if r["seconds_to_target"] else "never")
            v["async_lt_" + k] = "%.3f" % float(r["smooth_at_equal_time"])
            v["async_s2t_" + k] = s2t(r)
        b["ASYNC_FINDINGS"] = _async_findings(rows)
    else:
        b["ASYNC_LOSS"] = "*(no async_loss.csv)*"
        b["ASYNC_FINDINGS"] = ""
    b["FIG_ASYNC_LOSS"] = "\n\n".join(
        _img(cfg, "async-%s.svg" % n, "loss vs %s" % n.split("-")[-1]) for n in
        ("mlp-p2-samples", "mlp-p2-time", "mlp-p4-samples", "gpt-p2-samples", "gpt-p2-time"))

    rows = _csv(cfg, "async_lr.csv")
    if rows:
        piv = []
        for lr in sorted({float(r["lr"]) for r in rows}):
            g = {r["schedule"]: r for r in rows if float(r["lr"]) == lr}
            piv.append(dict({"lr": lr}, **{"%s_%s" % (s, k): g[s][k] for s in g
                                           for k in ("smooth_at_50", "smooth_at_100")}))
            for s in g:
                v["async_lr_%s_%s" % (_key(s), _key("%g" % lr))] = \
                    "%.3f" % float(g[s]["smooth_at_100"])
        b["ASYNC_LR"] = table(piv, [("lr", "lr", "%g")] + [
            (h, "%s_%s" % (s, k), "%.3f")
            for s in ("1f1b", "pipedream", "pipedream-2bw")
            for h, k in (("%s, half way" % s, "smooth_at_50"), ("%s, end" % s, "smooth_at_100"))])
    else:
        b["ASYNC_LR"] = "*(no async_lr.csv)*"
    b["FIG_ASYNC_LR"] = _img(cfg, "async-mlp-lr.svg", "final loss vs learning rate")
    dc = meta.get("delay_check") or {}
    b["ASYNC_DELAY"] = " ".join(
        "2BW's delay, checked (%s): its losses of steps 2 and 3 (%s) %s 1f1b's on the data "
        "without batch 1 (step 1: the initial weights on batch 2) and without batch 2 (step 2: "
        "one update on batch 1, then batch 3) (%s): as W(t−1) says." % (
            "MLP" if m == "mlp" else "char GPT", ", ".join("%.9g" % x for x in r["2bw"]),
            "equal" if r["equal"] else "**differ from**", ", ".join("%.9g" % x for x in r["1f1b"]))
        for m, r in sorted(dc.items(), key=lambda kv: kv[0] != "mlp"))

    # ---- throughput ----
    rows = _csv(cfg, "async_throughput.csv")
    rows.sort(key=lambda r: (order.get(r["model"], 2), int(r["P"])))
    if rows:
        b["ASYNC_THROUGHPUT"] = table(rows, [
            ("model", lambda r: "MLP" if r["model"] == "mlp" else "char GPT", None),
            ("P", lambda r: r["P"] + (" (oversub.)" if _yes(r["oversubscribed"]) else ""), None),
            ("schedule", "label", None), ("runs", "runs", None),
            ("step (ms)", lambda r: 1e3 * float(r["step_s"]), "%.2f"),
            ("samples/s", "samples_s", "%.0f"),
            ("vs 1f1b", "ratio_vs_1f1b", "%.2f×"),
            ("per round: median (range)",
             lambda r: "%.2f× (%.2f–%.2f)" % (float(r["ratio_round_median"]),
                                              float(r["ratio_round_min"]),
                                              float(r["ratio_round_max"])), None),
            ("vs 1f1b, mean step", "ratio_mean_vs_1f1b", "%.2f×"),
            ("bubble measured", "bubble_measured", "%.3f"),
            ("simulated: uniform", "pred_uniform_ratio", "%.2f×"),
            ("model, defaults", "pred_model_ratio", "%.2f×"),
            ("model, calibrated", "pred_calibrated_ratio", "%.2f×"),
            ("calibrated step vs measured", lambda r: (100 * float(r["pred_calibrated_err"])
                                                       if r.get("pred_calibrated_err") else ""),
             "%+.0f%%")])
        for r in rows:
            k = _key(r["model"], "p" + r["P"], r["config"])
            v["async_ratio_" + k] = "%.2f×" % float(r["ratio_vs_1f1b"])
            v["async_range_" + k] = "%.2f–%.2f" % (float(r["ratio_round_min"]),
                                                   float(r["ratio_round_max"]))
            for cost in ("uniform", "model", "calibrated"):
                if r.get("pred_%s_ratio" % cost):
                    v["async_pred_%s_%s" % (cost, k)] = "%.2f×" % float(r["pred_%s_ratio" % cost])
            v["async_step_" + k] = "%.1f ms" % (1e3 * float(r["step_s"]))
            v["async_minmax_" + k] = "%.1f–%.1f ms" % (1e3 * float(r["min_s"]), 1e3 * float(r["max_s"]))
            v["async_rmed_" + k] = "%.2f×" % float(r["ratio_round_median"])
            if r.get("pred_calibrated_err"):
                v["async_err_" + k] = "%+.0f%%" % (100 * float(r["pred_calibrated_err"]))
            v["async_bubble_" + k] = "%.3f" % float(r["bubble_measured"])
    else:
        b["ASYNC_THROUGHPUT"] = "*(no async_throughput.csv)*"
    b["FIG_ASYNC_THROUGHPUT"] = _img(cfg, "async-throughput.svg", "samples/s relative to 1f1b")

    # ---- zero-bubble V under the uniform cost ----
    rows = _csv(cfg, "async_zb.csv")
    if rows:
        piv = []
        for P, M in sorted({(int(r["P"]), int(r["M"])) for r in rows}):
            g = {r["schedule"]: r for r in rows if int(r["P"]) == P and int(r["M"]) == M}
            piv.append({"P": P, "M": M, "MP": M / P,
                        **{"%s_%s" % (s, k): g[s][k] for s in g
                           for k in ("bubble_fraction", "step_time", "peak_stage_mbs",
                                     "peak_bytes_vs_1f1b", "idle_per_rank_max")}})
        b["ASYNC_ZB"] = table(piv, [
            ("P", "P", None), ("M", "M", None),
            ("bubble 1f1b", "1f1b_bubble_fraction", "%.3f"),
            ("zb-h1", "zb-h1_bubble_fraction", "%.3f"), ("zb-v", "zb-v_bubble_fraction", "%.3f"),
            ("step 1f1b", "1f1b_step_time", "%g"), ("zb-h1", "zb-h1_step_time", "%g"),
            ("zb-v", "zb-v_step_time", "%g"),
            ("zb-v idle per rank", "zb-v_idle_per_rank_max", "%g"),
            ("peak stage activations 1f1b / zb-h1 / zb-v",
             lambda r: "%g / %g / %g" % (float(r["1f1b_peak_stage_mbs"]),
                                         float(r["zb-h1_peak_stage_mbs"]),
                                         float(r["zb-v_peak_stage_mbs"])), None),
            ("peak bytes vs 1f1b: zb-h1 / zb-v",
             lambda r: "%.2f× / %.2f×" % (float(r["zb-h1_peak_bytes_vs_1f1b"]),
                                           float(r["zb-v_peak_bytes_vs_1f1b"])), None)])
        for r in piv:
            for s in ("1f1b", "zb-h1", "zb-v"):
                v["async_zb_%s_p%d_m%d" % (_key(s), r["P"], r["M"])] = \
                    "%.3f" % float(r["%s_bubble_fraction" % s])
        two = [r for r in piv if r["M"] == 2 * r["P"]]
        v["async_zbv_2p"] = ", ".join("%.3f (P = %d)" % (float(r["zb-v_bubble_fraction"]), r["P"])
                                      for r in two)
        v["async_1f1b_2p"] = ", ".join("%.3f" % float(r["1f1b_bubble_fraction"]) for r in two)
        v["async_zbh1_2p"] = ", ".join("%.3f" % float(r["zb-h1_bubble_fraction"]) for r in two)
        by = [float(r["zb-v_peak_bytes_vs_1f1b"]) for r in piv]
        v["async_zbv_bytes"] = "%.2f–%.2f×" % (min(by), max(by))
    else:
        b["ASYNC_ZB"] = "*(no async_zb.csv)*"
    b["FIG_ASYNC_ZB"] = _img(cfg, "async-zb-bubble.svg", "bubble under the uniform cost")

    # ---- memory ----
    rows = _csv(cfg, "async_memory.csv")
    if rows:
        m4 = [r for r in rows if r["model"] == "mlp4"]
        b["ASYNC_MEMORY"] = table(m4, [
            ("P", lambda r: r["P"] + (" (oversub.)" if _yes(r["oversubscribed"]) else ""), None),
            ("schedule", "schedule", None), ("rank", "rank", None),
            ("weights (MB)", lambda r: _mb(r["weights"]), "%.1f"),
            ("gradients (MB)", lambda r: _mb(r["gradients"]), "%.1f"),
            ("optimizer (MB)", lambda r: _mb(r["optimizer"]), "%.1f"),
            ("arena (MB)", lambda r: _mb(r["arena"]), "%.1f"),
            ("predicted (MB)", lambda r: _mb(r["predicted_bytes"]), "%.1f"),
            ("measured (MB)", lambda r: _mb(r["measured_bytes"]), "%.1f"),
            ("error", lambda r: 100 * float(r["error"]) if r["error"] else "", "%+.1f%%")])
        mm_ = [r for r in rows if r["model"] != "mlp4"]
        groups = []
        for r in mm_:
            key = (r["P"], r["schedule"])
            if not groups or groups[-1]["key"] != key:
                groups.append({"key": key, "P": r["P"], "schedule": r["schedule"], "ranks": []})
            groups[-1]["ranks"].append(r)
        b["ASYNC_MEMORY_MLP"] = table(groups, [
            ("P", "P", None), ("schedule", "schedule", None),
            ("measured / predicted per rank (MB)",
             lambda g: ", ".join("%.2f / %.2f" % (_mb(r["measured_bytes"]), _mb(r["predicted_bytes"]))
                                 for r in g["ranks"]), None),
            ("largest error", lambda g: max((100 * abs(float(r["error"])) for r in g["ranks"]
                                             if r["error"]), default=""), "%.1f%%")])
        err = [abs(float(r["error"])) for r in rows if r["error"]]
        v["async_mem_maxerr"] = "%.1f%%" % (100 * max(err)) if err else "–"
        for r in m4:
            v["async_mem_%s_p%s_%s_r%s" % ("mlp4", r["P"], _key(r["schedule"]), r["rank"])] = \
                "%.1f MB" % _mb(r["measured_bytes"])
            v["async_w_%s_p%s_%s_r%s" % ("mlp4", r["P"], _key(r["schedule"]), r["rank"])] = \
                "%.1f MB" % _mb(r["weights"]) if r["weights"] else "–"
    else:
        b["ASYNC_MEMORY"] = b["ASYNC_MEMORY_MLP"] = "*(no async_memory.csv)*"


def _async_findings(rows):
    """Sentences that read the loss table, per model and P."""
    out = []

    def get(model, P, config):
        return next((r for r in rows if r["model"] == model and r["P"] == P
                     and r["config"] == config), None)

    def f(r, k):
        return float(r[k])
    for model, P in sorted({(r["model"], r["P"]) for r in rows},
                           key=lambda x: ({"mlp": 0, "gpt": 1}.get(x[0], 2), int(x[1]))):
        ref = get(model, P, "1f1b")
        what = "%s, P = %s%s" % ("MLP" if model == "mlp" else "char GPT", P,
                                 " (oversubscribed; samples only)" if int(P) > lib.CORES else "")
        parts = []
        for c, name in (("pipedream", "pipedream"), ("pipedream-2bw", "pipedream-2bw")):
            r = get(model, P, c)
            if not r or not ref:
                continue
            s = "%s ends at %.3f against 1f1b's %.3f (half way: %.3f against %.3f)" % (
                name, f(r, "smooth_at_100"), f(ref, "smooth_at_100"), f(r, "smooth_at_50"),
                f(ref, "smooth_at_50"))
            if r["samples_to_target"]:
                s += ", reaching 1f1b's final loss after %.2f× its samples" % (
                    f(r, "samples_to_target") / f(ref, "samples_to_target"))
            else:
                s += ", never reaching 1f1b's final loss"
            parts.append(s)
        pl, ct = get(model, P, "pipedream-lr/M"), get(model, P, "1f1b-per-microbatch")
        if pl and ct:
            d = f(pl, "smooth_at_100") - f(ct, "smooth_at_100")
            parts.append("with the same updates as synchronous per-micro-batch SGD (lr/M), "
                         "staleness costs %+.3f in final loss (pipedream lr/M %.3f, without stale "
                         "weights %.3f; half way %+.3f)"
                         % (d, f(pl, "smooth_at_100"), f(ct, "smooth_at_100"),
                            f(pl, "smooth_at_50") - f(ct, "smooth_at_50")))
        out.append("- **%s:** %s." % (what, "; ".join(parts)))
    return "\n".join(out)


def write(cfg, template=None, out=None):
    template = template or os.path.join(lib.BENCH, "performance.md.in")
    out = out or os.path.join(DOCS, "performance.md")
    b, v = blocks(cfg)
    with open(template) as f:
        text = f.read()

    def val(m):
        return str(v.get(m.group(1), "–"))
    text = re.sub(r"@@VAL:(\w+)@@", val, text)

    def blk(m):
        return b.get(m.group(1), "*(unknown block %s)*" % m.group(1))
    text = re.sub(r"@@(\w+)@@", blk, text)
    with open(out, "w") as f:
        f.write(text)
    cfg.say("report: wrote %s" % os.path.relpath(out, lib.ROOT))


class _Cfg:
    def __init__(self, out):
        self.out = out

    def say(self, msg):
        print(msg, flush=True)


if __name__ == "__main__":
    # python3 bench/report.py [RESULTS_DIR]: docs/performance.md from the
    # results already there, without running anything.
    write(_Cfg(sys.argv[1] if len(sys.argv) > 1 else os.path.join(lib.BENCH, "results")))
