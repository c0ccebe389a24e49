#!/usr/bin/env python3
"""bench/exp_generate.py — `generate`: schedule = generate against transformers'
GPT2LMHeadModel.generate(do_sample=False) on the CPU.

    bench/exp_generate.py [--quick] [--out DIR] [--work DIR] [--torch-python PY] [--no-docs]
                          [--part tiny,gpt2] [--quiet-wait S]

(bench/run-all.sh runs it after bench/bench.py, or alone with --only generate.)

tiny   bench/models/gen-tiny.pipe (4 gpt2_blocks of width 64, 4 heads,
       vocabulary 128, 64 positions; batch 8, prompts of 16 tokens, 32 new
       ones): tokens/s, time to first token and time per output token against
       M (sequence groups in flight) at P = 1, 2 and 4 (P = 4 is four ranks on
       this machine's cores: oversubscribed), and transformers' generate with
       1 and with 2 threads (the cores pipec's ranks use) on the same weights,
       prompts and batch.
gpt2   bench/models/gen-gpt2.pipe (GPT-2 small's shape, 124 M parameters,
       random weights): decode time per token at P = 1, one thread, batch 1
       and batch 8, against the memory floor (weight bytes / the single-thread
       read bandwidth measured in the same run by bench/membw.c) and against
       transformers in one process with one thread; membw.c also times the
       decode step's BLAS calls alone (sgemm with 1 and 8 rows, sgemv).

Both: the same random weights (transformers' initialisation, written as
safetensors by bench/torch_generate.py and loaded by pipec with --weights-in)
and the same random prompts; the tokens must equal transformers' (greedy) —
a row that differs is reported with the logit gap at its first difference.
Timing: every configuration runs once as a warm-up; then rounds, each round
one transformers process (its own warm-up calls, then timed calls) followed
by every pipec configuration, so that noise lands on both sides alike; the
tables give medians over all timed runs.  pipec's figures are the ones its
runtime prints (timed between barriers inside the program: start-up and
weight loading are not counted); transformers' are timed around generate()
in a warm process, its time to first token stamped by a StoppingCriteria.

Results: generate_tiny.csv, generate_gpt2.csv, generate_blas.csv,
generate_tiny_runs.csv and generate_gpt2_runs.csv (every timed run, with the
load average), generate.json (each part's mode, date, load, read bandwidth,
floor), generate-tiny.svg; report.py turns them into docs/performance.md's
section "Generation", verdicts included.
"""
import argparse
import json
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
import svgplot  # noqa: E402

TINY_MODEL, GPT2_MODEL = "gen-tiny", "gen-gpt2"
BATCH, PROMPT, NEW = 8, 16, 32          # both models (the .pipe files' own values)
SEED = 1


def _torch(cfg, args, timeout=1800):
    """One bench/torch_generate.py call; its JSON line."""
    cmd = [cfg.torch_python, os.path.join(lib.BENCH, "torch_generate.py")] + list(args)
    env = lib.env_pipec(None)
    for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(k, None)              # torch.set_num_threads decides, per job
    out = lib.run(cmd, env=env, timeout=timeout)
    last = [l for l in out.splitlines() if l.startswith("{")]
    if not last:
        raise RuntimeError("torch_generate printed no result:\n" + out[-2000:])
    return json.loads(last[-1])


def _params(model, sets=()):
    out = lib.check_model(model, list(sets))
    import re
    return int(re.search(r"([\d,]+) parameters", out).group(1).replace(",", ""))


def _setup(cfg, shape, model, batch):
    """Weights and prompts, made once by transformers (kept in WORK/gen)."""
    d = os.path.join(cfg.work, "gen")
    os.makedirs(d, exist_ok=True)
    w = os.path.join(d, "%s-seed%d.safetensors" % (shape, SEED))
    p = os.path.join(d, "%s-prompts-b%d-t%d.npy" % (shape, batch, PROMPT))
    stamp = w + ".params"
    if not (os.path.exists(w) and os.path.exists(p) and os.path.exists(stamp)):
        cfg.say("generate: %s: random weights and prompts from transformers" % shape)
        r = _torch(cfg, ["init", "--shape", shape, "--seed", str(SEED), "--weights-out", w,
                         "--prompts-out", p, "--batch", str(batch), "--prompt-len", str(PROMPT)])
        with open(stamp, "w") as f:
            f.write("%d\n" % r["params"])
    with open(stamp) as f:
        n = int(f.read())
    want = _params(model)
    if n != want:
        raise RuntimeError("generate: %s: transformers has %d parameters, pipec check %d"
                           % (shape, n, want))
    return w, p, n


def _pipec(cfg, d, weights, prompts, out, env_threads=1):
    """One run of an emitted generating program: its summary's figures."""
    txt = lib.run([os.path.join(d, "run"), "--weights-in", weights, "--input", prompts,
                   "--output", out], env=lib.env_pipec(env_threads), timeout=1800)
    s = lib.parse_summary(txt)
    for k in ("time_to_first_token", "time_per_output_token", "tokens_per_s", "generation_time"):
        if k not in s:
            raise RuntimeError("no %s in the summary of %s:\n%s" % (k, d, txt[-2000:]))
        s[k] = float(s[k])
    return s


def _prompts_b1(cfg, prompts8):
    """Row 0 of the batch-8 prompts as a batch of one (through the torch side's numpy)."""
    p1 = prompts8.replace("-b8-", "-b1-")
    if not os.path.exists(p1):
        lib.run([cfg.torch_python, "-c", "import numpy as np, sys; "
                 "np.save(sys.argv[2], np.load(sys.argv[1])[:1])", prompts8, p1])
    return p1


def _med(v):
    return lib.median(v)


def _cpu_mark():
    """(wall, CPU seconds of the whole machine, CPU seconds of this process
    and its waited-for descendants)."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        busy = (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")   # less idle, iowait
    except (OSError, ValueError, IndexError):
        busy = float("nan")
    t = os.times()
    return time.time(), busy, t.user + t.system + t.children_user + t.children_system


def _wait_quiet(cfg):
    """With --quiet-wait S (or BENCH_GEN_QUIET_WAIT=S): before a round, wait up
    to S seconds for a 3-second window in which other processes keep less
    than 0.2 cores busy.  The machines here are shared; a round that starts
    in such a window is likelier to stay quiet.  Returns the seconds waited."""
    limit = getattr(cfg, "quiet_wait", 0.0)
    t0 = time.time()
    while limit > 0 and time.time() - t0 < limit:
        m0 = _cpu_mark()
        time.sleep(3)
        if _others(m0, _cpu_mark()) < 0.2:
            break
    return time.time() - t0


def _others(m0, m1):
    """Cores that other processes kept busy on average between two marks:
    the machine's CPU time less ours (the benchmark's own programs are its
    children).  The load average cannot tell the two apart."""
    return max(0.0, ((m1[1] - m0[1]) - (m1[2] - m0[2])) / max(m1[0] - m0[0], 1e-9))


def _row_torch(name, runs, batch, new):
    tot, ttft = runs["total"], runs["ttft"]
    tpot = [(t - f) / (new - 1) for t, f in zip(tot, ttft)]
    return {"impl": name, "runs": len(tot), "ttft_s": _med(ttft), "tpot_s": _med(tpot),
            "gen_time_s": _med(tot), "tokens_s": _med([batch * new / t for t in tot]),
            "decode_tokens_s": _med([batch / x for x in tpot]),
            "gen_min_s": min(tot), "gen_max_s": max(tot)}


def _row_pipec(runs, batch):
    return {"impl": "pipec", "runs": len(runs),
            "ttft_s": _med([r["time_to_first_token"] for r in runs]),
            "tpot_s": _med([r["time_per_output_token"] for r in runs]),
            "gen_time_s": _med([r["generation_time"] for r in runs]),
            "tokens_s": _med([r["tokens_per_s"] for r in runs]),
            "decode_tokens_s": _med([batch / r["time_per_output_token"] for r in runs]),
            "gen_min_s": min(r["generation_time"] for r in runs),
            "gen_max_s": max(r["generation_time"] for r in runs),
            "oversubscribed": runs[0]["oversubscribed"]}


def _equal_cols(res):
    if not res:
        return {"tokens_equal": "?", "rows_equal": "?", "diverged": ""}
    div = "; ".join("row %d pos %d: %d vs %d (gap %.2g of %.2g)"
                    % (x["row"], x["pos"], x["ref"], x["got"], x["gap"], x["logit_spread"])
                    for x in res["diverged"][:3])
    return {"rows_equal": "%d/%d" % (res["rows_equal"], res["rows"]),
            "tokens_equal": res["rows_equal"] == res["rows"] and res.get("prompts_equal", False),
            "diverged": div}


# ---- the tiny model: tokens/s against M ---------------------------------------------

def tiny_configs(cfg):
    yield 1, 1
    for P in (2, 4):
        for M in (1, 2, 4, 8):
            yield P, M


def tiny(cfg, raw):
    model = lib.model_path(TINY_MODEL)
    w, p, nparams = _setup(cfg, "tiny", model, BATCH)
    gdir = os.path.join(cfg.work, "gen")
    rounds = 3 if cfg.quick else 5
    per_round = 2 if cfg.quick else 3       # pipec runs of each configuration per round
    torch_reps = 3 if cfg.quick else 5      # timed generate() calls per round and thread count
    confs = []
    for P, M in tiny_configs(cfg):
        d = lib.compile_model(cfg, model, ["stages=%d" % P, "microbatches=%d" % M])
        out = os.path.join(gdir, "tiny-tokens-P%d-M%d.npy" % (P, M))
        _pipec(cfg, d, w, p, out)                        # warm-up run
        confs.append({"P": P, "M": M, "dir": d, "out": out, "runs": []})
    tthreads = sorted({1, min(2, lib.CORES)})
    jobs = [{"name": "t%d" % t, "prompts": p, "new": NEW, "threads": t, "warmup": 2,
             "reps": torch_reps,
             "tokens_out": os.path.join(gdir, "tiny-tokens-torch-t%d.npy" % t)} for t in tthreads]
    jpath = os.path.join(gdir, "tiny-jobs.json")
    with open(jpath, "w") as f:
        json.dump(jobs, f)
    tres = {j["name"]: {"total": [], "ttft": []} for j in jobs}
    others = []
    for r in range(rounds):
        waited = _wait_quiet(cfg)
        cfg.say("generate: tiny round %d/%d (load %s%s)" % (
            r + 1, rounds, lib.loadavg(), ", waited %.0f s for quiet" % waited if waited else ""))
        m0 = _cpu_mark()
        res = _torch(cfg, ["time", "--shape", "tiny", "--weights", w, "--jobs", jpath])
        for k, v in res.items():
            tres[k]["total"] += v["total"]
            tres[k]["ttft"] += v["ttft"]
            for a, b in zip(v["total"], v["ttft"]):
                raw.append({"model": "tiny", "impl": "transformers", "config": k, "round": r,
                            "gen_time_s": a, "ttft_s": b, "load": lib.loadavg()})
        for c in confs:
            for _ in range(per_round):
                s = _pipec(cfg, c["dir"], w, p, c["out"])
                c["runs"].append(s)
                raw.append({"model": "tiny", "impl": "pipec", "config": "P%d M%d" % (c["P"], c["M"]),
                            "round": r, "gen_time_s": s["generation_time"],
                            "ttft_s": s["time_to_first_token"],
                            "tpot_s": s["time_per_output_token"], "load": lib.loadavg()})
        others.append(_others(m0, _cpu_mark()))
        raw.append({"model": "tiny", "impl": "(machine)", "config": "other processes", "round": r,
                    "others_cores": others[-1], "load": lib.loadavg()})
        cfg.say("generate: other processes kept %.2f cores busy during round %d"
                % (others[-1], r + 1))
    # Tokens: every pipec configuration and transformers with 2 threads
    # against transformers with 1 thread.
    ref = jobs[0]["tokens_out"]
    pairs = [{"name": "P%d M%d" % (c["P"], c["M"]), "ref": ref, "got": c["out"],
              "prompt_len": PROMPT} for c in confs]
    pairs += [{"name": j["name"], "ref": ref, "got": j["tokens_out"], "prompt_len": PROMPT}
              for j in jobs[1:]]
    ppath = os.path.join(gdir, "tiny-pairs.json")
    with open(ppath, "w") as f:
        json.dump(pairs, f)
    eq = _torch(cfg, ["check", "--shape", "tiny", "--weights", w, "--pairs", ppath])
    rows = []
    trow = {}
    for j in jobs:
        t = int(j["threads"])
        row = _row_torch("transformers", tres[j["name"]], BATCH, NEW)
        row.update({"P": "–", "M": "–", "threads": t, "oversubscribed": False})
        row.update(_equal_cols(eq.get(j["name"])) if j is not jobs[0] else
                   {"tokens_equal": "(reference)", "rows_equal": "", "diverged": ""})
        trow[t] = row
        rows.append(row)
    best_t = max(trow.values(), key=lambda r: r["tokens_s"])
    for c in confs:
        row = _row_pipec(c["runs"], BATCH)
        match = trow[min(c["P"], max(tthreads))]
        row.update({"P": c["P"], "M": c["M"], "threads": "1 per rank",
                    "vs_torch_matching": row["tokens_s"] / match["tokens_s"],
                    "torch_threads_matching": match["threads"],
                    "vs_torch_best": row["tokens_s"] / best_t["tokens_s"],
                    "decode_vs_torch_matching": row["decode_tokens_s"] / match["decode_tokens_s"],
                    "ttft_vs_torch_matching": row["ttft_s"] / match["ttft_s"]})
        row.update(_equal_cols(eq.get("P%d M%d" % (c["P"], c["M"]))))
        rows.append(row)
        cfg.say("generate: tiny P=%d M=%d: %.0f tokens/s (%.2fx transformers with %d threads), "
                "TTFT %.3g s, per token %.3g s, tokens equal: %s"
                % (c["P"], c["M"], row["tokens_s"], row["vs_torch_matching"], match["threads"],
                   row["ttft_s"], row["tpot_s"], row["rows_equal"]))
    for t, r in trow.items():
        cfg.say("generate: tiny transformers %d thread(s): %.0f tokens/s, TTFT %.3g s, per token "
                "%.3g s" % (t, r["tokens_s"], r["ttft_s"], r["tpot_s"]))
    lib.write_csv(os.path.join(cfg.out, "generate_tiny.csv"), rows,
                  ["impl", "P", "M", "threads", "oversubscribed", "runs", "tokens_s",
                   "decode_tokens_s", "ttft_s", "tpot_s", "gen_time_s", "gen_min_s", "gen_max_s",
                   "vs_torch_matching", "torch_threads_matching", "vs_torch_best",
                   "decode_vs_torch_matching", "ttft_vs_torch_matching", "tokens_equal",
                   "rows_equal", "diverged"])
    series = []
    for P in (2, 4):
        pts = [(int(r["M"]), r["tokens_s"]) for r in rows if r["impl"] == "pipec" and r["P"] == P]
        series.append({"label": "pipec P = %d%s" % (P, " (oversub.)" if P > lib.CORES else ""),
                       "points": pts})
    Ms = [1, 2, 4, 8]
    p1 = [r for r in rows if r["impl"] == "pipec" and r["P"] == 1]
    if p1:
        series.append({"label": "pipec P = 1", "points": [(m, p1[0]["tokens_s"]) for m in Ms],
                       "dashed": True})
    for t, r in sorted(trow.items()):
        series.append({"label": "transformers, %d thread%s" % (t, "s" if t > 1 else ""),
                       "points": [(m, r["tokens_s"]) for m in Ms], "dashed": True})
    svgplot.line_chart(os.path.join(cfg.out, "generate-tiny.svg"),
                       "tiny GPT-2, batch 8, 32 new tokens: tokens/s against M",
                       "M (sequence groups in flight)", "tokens/s", series, logx=True, logy=True,
                       notes="%d cores; dashed: baselines (flat in M)" % lib.CORES)
    return {"tiny_params": nparams, "tiny_rows": rows, "others_cores": others}


# ---- GPT-2 small: decode against the memory floor --------------------------------------

def _membw_bin(cfg):
    exe = os.path.join(cfg.work, "membw")
    src = os.path.join(lib.BENCH, "membw.c")
    if not os.path.exists(exe) or os.path.getmtime(exe) < os.path.getmtime(src):
        try:
            lib.run(["cc", "-O3", "-march=native", "-std=c11", src, "-o", exe, "-lopenblas"])
        except RuntimeError:
            lib.run(["cc", "-O3", "-std=c11", src, "-o", exe, "-lopenblas"])
    return exe


def membw(cfg):
    out = lib.run([_membw_bin(cfg)], env=lib.env_pipec(1), timeout=600)
    res = {}
    for line in out.splitlines():
        k, _, v = line.partition(": ")
        try:
            res[k] = float(v)
        except ValueError:
            res[k] = v
    return res


# GPT-2 small's products per decode step: (membw name, per step, what)
GPT2_PRODUCTS = [("768x2304", 12, "attn.c_attn"), ("768x768", 12, "attn.c_proj"),
                 ("768x3072", 12, "mlp.c_fc"), ("3072x768", 12, "mlp.c_proj"),
                 ("768x50257t", 1, "lm_head (tied: x · wteᵀ)")]


def gpt2(cfg, raw):
    model = lib.model_path(GPT2_MODEL)
    w, p8, nparams = _setup(cfg, "gpt2", model, BATCH)
    p1 = _prompts_b1(cfg, p8)
    gdir = os.path.join(cfg.work, "gen")
    rounds = 2 if cfg.quick else 5
    weight_bytes = 4 * nparams
    confs = []
    for b, prompts in ((1, p1), (8, p8)):
        d = lib.compile_model(cfg, model, ["batch=%d" % b])
        out = os.path.join(gdir, "gpt2-tokens-b%d.npy" % b)
        cfg.say("generate: gpt2 batch %d: warm-up run" % b)
        _pipec(cfg, d, w, prompts, out)
        confs.append({"batch": b, "dir": d, "out": out, "prompts": prompts, "runs": []})
    jobs = [{"name": "b%d" % c["batch"], "prompts": c["prompts"], "new": NEW, "threads": 1,
             "warmup": 1, "reps": 2,
             "tokens_out": os.path.join(gdir, "gpt2-tokens-torch-b%d.npy" % c["batch"])}
            for c in confs]
    jpath = os.path.join(gdir, "gpt2-jobs.json")
    with open(jpath, "w") as f:
        json.dump(jobs, f)
    tres = {j["name"]: {"total": [], "ttft": []} for j in jobs}
    bws, others = [], []
    for r in range(rounds):
        waited = _wait_quiet(cfg)
        cfg.say("generate: gpt2 round %d/%d (load %s%s)" % (
            r + 1, rounds, lib.loadavg(), ", waited %.0f s for quiet" % waited if waited else ""))
        m0 = _cpu_mark()
        bw = membw(cfg)
        bws.append(bw)
        raw.append({"model": "membw", "impl": "membw.c", "config": "read_bw", "round": r,
                    "read_bw": bw["read_bw"], "load": lib.loadavg()})
        res = _torch(cfg, ["time", "--shape", "gpt2", "--weights", w, "--jobs", jpath])
        for k, v in res.items():
            tres[k]["total"] += v["total"]
            tres[k]["ttft"] += v["ttft"]
            for a, b in zip(v["total"], v["ttft"]):
                raw.append({"model": "gpt2", "impl": "transformers", "config": k, "round": r,
                            "gen_time_s": a, "ttft_s": b, "load": lib.loadavg()})
        for c in confs:
            s = _pipec(cfg, c["dir"], w, c["prompts"], c["out"])
            c["runs"].append(s)
            raw.append({"model": "gpt2", "impl": "pipec", "config": "b%d" % c["batch"], "round": r,
                        "gen_time_s": s["generation_time"], "ttft_s": s["time_to_first_token"],
                        "tpot_s": s["time_per_output_token"], "load": lib.loadavg()})
        others.append(_others(m0, _cpu_mark()))
        raw.append({"model": "gpt2", "impl": "(machine)", "config": "other processes", "round": r,
                    "others_cores": others[-1], "load": lib.loadavg()})
        cfg.say("generate: other processes kept %.2f cores busy during round %d"
                % (others[-1], r + 1))
    read_bw = _med([b["read_bw"] for b in bws])
    floor = weight_bytes / read_bw
    pairs = [{"name": "b%d" % c["batch"], "ref": j["tokens_out"], "got": c["out"],
              "prompt_len": PROMPT} for c, j in zip(confs, jobs)]
    ppath = os.path.join(gdir, "gpt2-pairs.json")
    with open(ppath, "w") as f:
        json.dump(pairs, f)
    eq = _torch(cfg, ["check", "--shape", "gpt2", "--weights", w, "--pairs", ppath])
    rows = []
    for c, j in zip(confs, jobs):
        b = c["batch"]
        t = _row_torch("transformers", tres[j["name"]], b, NEW)
        pr = _row_pipec(c["runs"], b)
        for row in (pr, t):
            row.update({"batch": b, "threads": 1, "floor_s": floor,
                        "x_floor": row["tpot_s"] / floor})
        pr["vs_torch_decode"] = t["tpot_s"] / pr["tpot_s"]       # > 1: pipec faster
        pr["vs_torch_tokens"] = pr["tokens_s"] / t["tokens_s"]
        pr.update(_equal_cols(eq.get("b%d" % b)))
        t.update({"tokens_equal": "(reference)", "rows_equal": "", "diverged": ""})
        rows += [pr, t]
        cfg.say("generate: gpt2 batch %d: pipec %.4g s per token (%.2fx the floor %.4g s), "
                "transformers %.4g s (%.2fx); tokens equal %s"
                % (b, pr["tpot_s"], pr["x_floor"], floor, t["tpot_s"], t["x_floor"],
                   pr["rows_equal"]))
    lib.write_csv(os.path.join(cfg.out, "generate_gpt2.csv"), rows,
                  ["impl", "batch", "threads", "runs", "tpot_s", "x_floor", "floor_s",
                   "decode_tokens_s", "ttft_s", "gen_time_s", "tokens_s", "gen_min_s", "gen_max_s",
                   "vs_torch_decode", "vs_torch_tokens", "tokens_equal", "rows_equal", "diverged"])
    # The decode step's BLAS calls alone (membw.c), summed as one step makes them.
    brows = []
    for name, per, what in GPT2_PRODUCTS:
        by = _med([b["bytes_" + name] for b in bws])
        r = {"product": what, "shape": name.rstrip("t").replace("x", " × "), "per_step": per,
             "bytes": by}
        for k in ("gemm_m1", "gemv", "gemm_m8"):
            r[k + "_s"] = _med([b["%s_%s" % (k, name)] for b in bws])
            r[k + "_GBps"] = by / r[k + "_s"] / 1e9
        brows.append(r)
    tot = {"product": "one decode step (sum)", "shape": "", "per_step": "",
           "bytes": sum(r["bytes"] * r["per_step"] for r in brows)}
    for k in ("gemm_m1", "gemv", "gemm_m8"):
        tot[k + "_s"] = sum(r[k + "_s"] * r["per_step"] for r in brows)
        tot[k + "_GBps"] = tot["bytes"] / tot[k + "_s"] / 1e9
    brows.append(tot)
    lib.write_csv(os.path.join(cfg.out, "generate_blas.csv"), brows,
                  ["product", "shape", "per_step", "bytes", "gemm_m1_s", "gemm_m1_GBps",
                   "gemv_s", "gemv_GBps", "gemm_m8_s", "gemm_m8_GBps"])
    cfg.say("generate: read bandwidth %.3g B/s (%d streams); the step's BLAS calls: sgemm 1 row "
            "%.4g s, sgemv %.4g s, sgemm 8 rows %.4g s"
            % (read_bw, int(bws[0].get("read_bw_streams", 1)), tot["gemm_m1_s"], tot["gemv_s"],
               tot["gemm_m8_s"]))
    return {"gpt2_params": nparams, "weight_bytes": weight_bytes, "read_bw": read_bw,
            "read_bw_runs": [b["read_bw"] for b in bws],
            "read_bw_1stream": _med([b.get("read_bw_1stream", float("nan")) for b in bws]),
            "read_bw_streams": bws[0].get("read_bw_streams"), "floor_s": floor,
            "blas": bws[0].get("blas", "?"), "gpt2_rows": rows, "blas_rows": brows,
            "others_cores": others}


def run(cfg, which=("tiny", "gpt2")):
    """The parts named in which; generate.json keeps the other part's facts."""
    meta_path = os.path.join(cfg.out, "generate.json")
    meta = lib.load_json(meta_path, {})
    for name in which:
        for f in ("generate_%s.csv" % name, "generate_%s_runs.csv" % name) + \
                 (("generate_blas.csv",) if name == "gpt2" else ("generate-tiny.svg",)):
            if os.path.exists(os.path.join(cfg.out, f)):
                os.remove(os.path.join(cfg.out, f))
    try:
        meta["versions"] = _torch(cfg, ["versions"])
    except RuntimeError as e:
        meta["versions"] = {"error": str(e).splitlines()[0]}
    meta["cpu"] = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                        if l.startswith("model name")), "?") if os.path.exists("/proc/cpuinfo") else "?"
    failed = []
    for name, fn in (("tiny", tiny), ("gpt2", gpt2)):
        if name not in which:
            continue
        t1 = time.time()
        m = {"mode": "quick" if cfg.quick else "full",
             "date": time.strftime("%Y-%m-%d %H:%M %Z"), "load_start": lib.loadavg(),
             "nproc": lib.CORES}
        raw = []
        try:
            res = fn(cfg, raw)
            for k in ("tiny_params", "gpt2_params", "weight_bytes", "read_bw", "read_bw_runs",
                      "read_bw_1stream", "read_bw_streams", "floor_s", "blas", "others_cores"):
                if k in res:
                    m[k] = res[k]
        except Exception as e:          # one part's failure keeps the other's results
            import traceback
            failed.append(name)
            m["failed"] = True
            cfg.say("!! generate %s failed: %s" % (name, e))
            traceback.print_exc(file=cfg.log)
        lib.write_csv(os.path.join(cfg.out, "generate_%s_runs.csv" % name), raw,
                      ["model", "impl", "config", "round", "gen_time_s", "ttft_s", "tpot_s",
                       "read_bw", "others_cores", "load"])
        m["load_end"] = lib.loadavg()
        m["seconds"] = round(time.time() - t1, 1)
        meta[name] = m
        lib.save_json(meta_path, meta)
    import report
    for g, got, ok in report.gen_goals(cfg):
        cfg.say("generate: goal: %s: %s — %s" % (g, got, {True: "met", False: "MISSED",
                                                          None: "?"}[ok]))
    if failed:
        raise RuntimeError("generate: failed: " + ", ".join(failed))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a few minutes; noisy figures")
    ap.add_argument("--out", default=os.path.join(lib.BENCH, "results"))
    ap.add_argument("--work", default=os.path.join(lib.BUILD, "bench-work"))
    ap.add_argument("--no-docs", action="store_true", help="do not regenerate docs/performance.md")
    ap.add_argument("--torch-python", default=os.environ.get("BENCH_TORCH_PYTHON", sys.executable))
    ap.add_argument("--part", default="tiny,gpt2", help="tiny, gpt2 or both (default)")
    ap.add_argument("--quiet-wait", type=float,
                    default=float(os.environ.get("BENCH_GEN_QUIET_WAIT", "0") or 0),
                    help="before each round, wait up to this many seconds for other processes "
                         "to leave the cores (default 0, or $BENCH_GEN_QUIET_WAIT)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    os.makedirs(a.work, exist_ok=True)
    cfg = lib.Config(a.quick, a.out, a.work, a.torch_python)
    cfg.quiet_wait = a.quiet_wait
    cfg.say("generate: %s mode, results in %s, load %s" % ("quick" if a.quick else "full", a.out,
                                                           lib.loadavg()))
    rc = 0
    try:
        run(cfg, [x for x in a.part.split(",") if x])
    except RuntimeError as e:
        cfg.say(str(e))
        rc = 1
    if not a.no_docs and os.path.realpath(a.out) == os.path.realpath(os.path.join(lib.BENCH,
                                                                                  "results")):
        import report       # docs/performance.md quotes bench/results only
        report.write(cfg)
    return rc


if __name__ == "__main__":
    sys.exit(main())
