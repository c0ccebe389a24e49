#!/usr/bin/env python3
"""bench/tf_report.py [RESULTS_DIR] — transformers.md from the results of
bench/exp_minilm.py (minilm*.csv), bench/exp_gpt_train.py (gpt_train*.csv) and
bench/exp_llama.py (llama*.csv):
the tables, the machine, the load, and a verdict computed from the figures.
Either half may be missing (its section then says so).  Standard library only.
"""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402


def _f(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def _read(out, name):
    p = os.path.join(out, name)
    return lib.read_csv(p) if os.path.exists(p) else None


def _kv(rows):
    return {r["key"]: r["value"] for r in rows} if rows else {}


def _table(header, rows):
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join(" ---: " if i else " --- " for i in range(len(header))) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _loads(runs):
    vals = []
    for r in runs or []:
        for k in ("load_start", "load_end"):
            v = (r.get(k) or "").split()
            if v:
                vals.append(float(v[0]))
    return (min(vals), lib.median(vals), max(vals)) if vals else None


def machine_section(mm, gm, lm=None):
    m = mm or gm or lm
    lines = ["## The machine", ""]
    if not m:
        return lines + ["(no results)", ""]
    lines += [
        "- `nproc`: %s; CPU: %s; kernel %s" % (m.get("nproc"), m.get("cpu"), m.get("kernel")),
        "- pipec's BLAS: %s (`OPENBLAS_CORETYPE` %s); MPI: %s; cc: %s"
        % (m.get("openblas"), m.get("openblas_coretype"), m.get("mpi"), m.get("cc")),
        "- PyTorch %s (BLAS %s, ISA %s)" % (m.get("torch"), m.get("torch_blas"), m.get("torch_isa")),
    ]
    for name, x in (("MiniLM", mm), ("GPT-2 training", gm), ("Llama", lm)):
        if x:
            lines.append("- %s run: %s, git %s, %s, %s rounds, %s s; load average (1, 5, 15 min) "
                         "%s at the start, %s at the end"
                         % (name, x.get("date"), x.get("git"), x.get("mode"), x.get("rounds"),
                            x.get("seconds"), x.get("load_start"), x.get("load_end"))
                         + ("; other processes kept %.2f cores busy per round (median; at most "
                            "%.2f)" % (_f(x.get("others_cores_median")) or 0,
                                       _f(x.get("others_cores_max")) or 0)
                            if "others_cores_median" in x else "")
                         + ("; on %s (`nproc` %s), pipec's BLAS %s, PyTorch %s (BLAS %s, ISA %s)"
                            % (x.get("cpu"), x.get("nproc"), x.get("openblas"), x.get("torch"),
                               x.get("torch_blas"), x.get("torch_isa"))
                            if x.get("cpu") != m.get("cpu") else ""))
    return lines + [""]


def llama_section(rows, runs, lm):
    """bench/exp_llama.py: one core, a training step and a decode step."""
    lines = ["## A Llama-shaped model of 100 M parameters on one core", ""]
    if not rows:
        return lines + ["*(not measured: `bench/exp_llama.py`)*", ""]
    by = {(r["what"], r["impl"]): r for r in rows}
    params = int(float(rows[0]["params"]))
    lines += [
        "`bench/models/llama-100m.pipe`: width 768, 14 blocks of 12 query heads and 4 key/value "
        "heads, SwiGLU 2048, vocabulary 8192, untied head, %s parameters, with transformers' "
        "random initialisation on both sides. Training: batch %s × %s tokens, Adam, one thread "
        "each (pipec: one BLAS thread; transformers: `torch.set_num_threads(1)`), the median "
        "step after the first. Decode: batch 1, a %s-token prompt, %s new tokens, greedy. "
        "*Floor*: the f32 weights (%.0f MB) over the one-thread read bandwidth measured in "
        "the same rounds (`bench/membw.c`, %.1f GB/s). Figures are medians over %s rounds; "
        "*CPU* columns are the CPU time each side got, less disturbed by other processes "
        "than wall time on a shared machine; × is transformers' time over pipec's (> 1: "
        "pipec faster)."
        % ("{:,}".format(params), rows[0]["batch"], rows[0]["T"], lm.get("prompt_len"),
           lm.get("new_tokens"), _f(lm.get("weights_bytes")) / 1e6,
           _f(lm.get("read_bw")) / 1e9, rows[0]["rounds"]), ""]
    t = []
    for what, impl in (("training step", "pipec"), ("training step", "transformers"),
                       ("decode token", "pipec"), ("decode token", "transformers"),
                       ("memory floor", "weights / read_bw")):
        r = by.get((what, impl))
        if not r:
            continue
        sec, cpu = _f(r["seconds"]), _f(r.get("cpu_seconds"))
        ms = what != "training step"
        unit = (lambda x: "%.1f ms" % (1e3 * x)) if ms else (lambda x: "%.2f s" % x)
        t.append([what, impl, unit(sec), unit(cpu) if cpu is not None else "",
                  "%.2f" % _f(r["vs_transformers"]) if _f(r.get("vs_transformers")) else "",
                  "%.2f" % _f(r["vs_transformers_cpu"]) if _f(r.get("vs_transformers_cpu")) else "",
                  "%.2f" % _f(r["over_floor"]) if _f(r.get("over_floor")) else "",
                  "%.2f" % _f(r["over_floor_cpu"]) if _f(r.get("over_floor_cpu")) else ""])
    lines += [_table(["what", "implementation", "time", "CPU time", "×", "× (CPU)",
                      "/ floor", "/ floor (CPU)"], t), ""]
    ld = _loads(runs)
    lines += ["Losses of the %s steps, pipec: %s; transformers: %s (largest relative difference "
              "%.1e). Greedy tokens: the first %s of %s equal. Load average (1 min) over the "
              "runs: %s."
              % (len(lm.get("losses_pipec", "").split()), lm.get("losses_pipec"),
                 lm.get("losses_transformers"), _f(lm.get("loss_max_rel_diff")) or 0,
                 lm.get("tokens_equal"), lm.get("tokens"),
                 "%.2f to %.2f, median %.2f on %s cores" % (ld[0], ld[2], ld[1], lm.get("nproc"))
                 if ld else "–"), ""]
    return lines


def minilm_section(rows, runs, mm):
    lines = ["## all-MiniLM-L6-v2 embeddings: pipec vs sentence-transformers", ""]
    if not rows:
        return lines + ["Not measured (no `minilm.csv`): run `bench/exp_minilm.py`.", ""]
    lines += [
        "The published checkpoint (`scripts/minilm-fetch.sh`) on both sides; %s sentences per "
        "batch, cut from the license texts and tokenized once (the same ids and mask on both "
        "sides), padded or cut to T tokens (%s of %d real at T = 128, %s of %d at T = 32). "
        "pipec: `models/minilm.pipe`, `schedule = inference`; sentence-transformers %s: "
        "`SentenceTransformer.encode(sentences, batch_size = %s)` timed whole (tokenization "
        "included), and its forward alone on the pre-tokenized batch. Figures: medians over "
        "rounds of each run's median batch time; *vs ST* is pipec's sentences/s over "
        "sentence-transformers' encode with as many threads as pipec uses cores (so > 1: pipec "
        "faster). *cos*: the smallest per-sentence cosine between pipec's embeddings and "
        "sentence-transformers'."
        % (mm.get("batch", "64"), mm.get("real_tokens_T128", "?"), 64 * 128,
           mm.get("real_tokens_T32", "?"), 64 * 32, "6.2", mm.get("batch", "64")), ""]
    for T in sorted({int(r["T"]) for r in rows}, reverse=True):
        rs = [r for r in rows if int(r["T"]) == T]
        out = []
        for r in rs:
            if r["impl"] == "pipec":
                what = "pipec P=%s M=%s, %s BLAS thread%s%s" % (
                    r["P"], r["M"], r["threads"], "s" if r["threads"] != "1" else "",
                    " per rank" if r["P"] != "1" else "")
                vs = "%.2f" % _f(r["vs_st_same_cores"])
                cos = "%.7f" % _f(r["min_cos"])
            else:
                what = "sentence-transformers encode, %s thread%s" % (
                    r["threads"], "s" if r["threads"] != "1" else "")
                vs, cos = "(baseline)", "(reference)" if r["threads"] == "1" else ""
            out.append([what, r["cores"], "%.1f" % _f(r["sentences_s"]),
                        "%.3f" % _f(r["step_s"]), "%.3f–%.3f" % (_f(r["min_s"]), _f(r["max_s"])),
                        vs, cos])
            if r["impl"] != "pipec":
                out.append(["  … its forward alone", r["cores"],
                            "%.1f" % _f(r["forward_sentences_s"]), "%.3f" % _f(r["forward_s"]),
                            "", "", ""])
        lines += ["### T = %d" % T, "",
                  _table(["configuration", "cores", "sentences/s", "s/batch", "min–max",
                          "vs ST", "cos"], out), ""]
    # Verdict
    v = []
    for T in sorted({int(r["T"]) for r in rows}, reverse=True):
        pp = [r for r in rows if int(r["T"]) == T and r["impl"] == "pipec"]
        st = {r["threads"]: r for r in rows if int(r["T"]) == T and r["impl"] != "pipec"}
        p1 = next((r for r in pp if r["P"] == "1" and r["threads"] == "1"), None)
        p12 = next((r for r in pp if r["P"] == "1" and r["threads"] == "2"), None)
        p2 = max((r for r in pp if r["P"] == "2"), key=lambda r: _f(r["sentences_s"]),
                 default=None)
        parts = []
        if p1:
            parts.append("one core: pipec %.1f sentences/s, sentence-transformers %.1f (%.2f×)"
                         % (_f(p1["sentences_s"]), _f(st["1"]["sentences_s"]),
                            _f(p1["vs_st_same_cores"])))
        if p2:
            parts.append("two cores: pipec's best pipeline (P=2, M=%s) %.1f, sentence-"
                         "transformers with 2 threads %.1f (%.2f×)"
                         % (p2["M"], _f(p2["sentences_s"]), _f(st["2"]["sentences_s"]),
                            _f(p2["vs_st_same_cores"])))
        if p12 and p2:
            parts.append("pipec P=1 with 2 BLAS threads %.1f (the pipeline is %.2f× that)"
                         % (_f(p12["sentences_s"]), _f(p2["sentences_s"]) / _f(p12["sentences_s"])))
        v.append("- T = %d: %s." % (T, "; ".join(parts)))
    cmin = min(_f(r["min_cos"]) for r in rows if r["impl"] == "pipec")
    dmax = max(_f(r["max_abs_diff"]) for r in rows if r["impl"] == "pipec")
    v.append("- Embeddings: every pipec configuration agrees with sentence-transformers, smallest "
             "cosine %.7f, largest element difference %.2g." % (cmin, dmax))
    lo = _loads(runs)
    if lo:
        v.append("- Load average (1 min) over the runs: %.2f to %.2f, median %.2f on %s cores "
                 "(it counts the benchmark's own processes; the machine section says what "
                 "other processes used)." % (lo[0], lo[2], lo[1], mm.get("nproc")))
    return lines + ["**Figures in short**", ""] + v + [""]


def gpt_section(rows, runs, gm):
    lines = ["## GPT-2 training steps: pipec 1F1B vs torch.distributed.pipelining", ""]
    if not rows:
        return lines + ["Not measured (no `gpt_train.csv`): run `bench/exp_gpt_train.py`.", ""]
    lines += [
        "Same weights (transformers' initialisation, loaded by pipec with `--weights-in`), "
        "the same batch of character windows every step, Adam, next-token loss over B·(T−1) "
        "positions, tied head. pipec: the `.pipe` file's `schedule = 1f1b` at P = 2 (auto "
        "partition), one BLAS thread per rank. PyTorch: `torch.distributed.pipelining`'s "
        "`Schedule1F1B`, 2 processes (gloo), one thread each, the same partition and M; its "
        "stages either *traced* (`pipeline()` on the GPT2LMHeadModel, split where pipec "
        "splits) or *manual* (an nn.Module per stage holding the model's own GPT2Block "
        "modules); the head's copy of the tied embedding has its gradient summed with the "
        "embedding's before Adam, as pipec does. Unpipelined baselines: pipec P = 1 and "
        "transformers in one process (`model(ids, labels=ids).loss`). Step times: medians "
        "over rounds of each run's median step (barrier to barrier, optimizer included). "
        "*pipec ×*: this row's step time over pipec's at the same P, M and threads (> 1: "
        "pipec faster). Every run trains the same number of steps from the same start; "
        "*largest loss rel. diff* is the largest relative difference between this row's "
        "per-step losses and pipec's (same P, M, threads) over all of them.", ""]
    for name in [m for m in dict.fromkeys(r["model"] for r in rows)]:
        rs = [r for r in rows if r["model"] == name]
        r0 = rs[0]
        out = []
        for r in rs:
            px = _f(r.get("pipec_speed_vs_this"))
            out.append([r["impl"], r["P"], r["M"], r["threads"], "%.1f" % (1e3 * _f(r["step_s"])),
                        "%.1f–%.1f" % (1e3 * _f(r["min_s"]), 1e3 * _f(r["max_s"])),
                        "%.0f" % _f(r["tokens_s"]), "%.2f" % px if px else "(reference)",
                        "%.6f" % _f(r["loss_step1"]), "%.5f" % _f(r["loss_last"]),
                        "%.1e" % _f(r["loss_max_rel_diff"]) if r.get("loss_max_rel_diff") else "",
                        {"yes": "same", "no": "DIFFERS"}.get(r.get("same_order", ""), "")])
        lines += ["### %s (%s parameters, batch %s, T %s, %s steps timed per run; %s)"
                  % (name, "{:,}".format(int(r0["params"])), r0["batch"], r0["T"],
                     r0["steps_timed"], gm.get("split_%s" % name, "")), "",
                  _table(["implementation", "P", "M", "threads", "ms/step", "min–max", "tokens/s",
                          "pipec ×", "loss, step 1", "loss, step %d" % (int(r0["steps_timed"]) + 2),
                          "largest loss rel. diff", "1F1B order"], out), ""]
    v = []
    for name in dict.fromkeys(r["model"] for r in rows):
        for r in rows:
            if (r["model"] == name and r["impl"].startswith("torch-pipelining")):
                pipec = next(x for x in rows if x["model"] == name and x["impl"] == "pipec"
                             and x["P"] == r["P"] and x["M"] == r["M"])
                v.append("- %s, M = %s: pipec %.1f ms/step, PyTorch pipelining (%s stages) "
                         "%.1f ms: pipec %.2f× as fast" % (
                             name, r["M"], 1e3 * _f(pipec["step_s"]),
                             r["impl"].rsplit("-", 1)[1], 1e3 * _f(r["step_s"]),
                             _f(r["pipec_speed_vs_this"])))
        for th in ("1", "2"):
            p1 = next((x for x in rows if x["model"] == name and x["impl"] == "pipec"
                       and x["P"] == "1" and x["threads"] == th), None)
            t1 = next((x for x in rows if x["model"] == name and x["impl"] != "pipec"
                       and x["P"] == "1" and x["threads"] == th), None)
            if p1 and t1:
                v.append("- %s unpipelined, %s thread%s: pipec %.1f ms/step, transformers %.1f "
                         "ms: pipec %.2f× as fast" % (name, th, "s" if th != "1" else "",
                                                      1e3 * _f(p1["step_s"]),
                                                      1e3 * _f(t1["step_s"]),
                                                      _f(t1["pipec_speed_vs_this"])))
    worst = max((_f(r["loss1_rel_diff"]) for r in rows if r.get("loss1_rel_diff")), default=0)
    worst_all = max((_f(r["loss_max_rel_diff"]) for r in rows if r.get("loss_max_rel_diff")),
                    default=0)
    v.append("- Losses: first step within %.1e (relative) of PyTorch's in every configuration; "
             "over all timed steps within %.1e. PyTorch's 1F1B order equals pipec's: %s."
             % (worst, worst_all, "yes" if all(r.get("same_order") in ("yes", "", None)
                                               for r in rows) else "NO"))
    lo = _loads(runs)
    if lo:
        v.append("- Load average (1 min) over the runs: %.2f to %.2f, median %.2f on %s cores "
                 "(it counts the benchmark's own processes; the machine section says what "
                 "other processes used)." % (lo[0], lo[2], lo[1], gm.get("nproc")))
    return lines + ["**Figures in short**", ""] + v + [""]


NOTES_PATH = "transformers-notes.md"


def measured(out):
    """Whether either experiment left its results in OUT."""
    return any(os.path.exists(os.path.join(out, n))
               for n in ("minilm.csv", "gpt_train.csv", "llama.csv"))


def body(out):
    """The machine, the two sections and the hand-written notes, as lines
    (without transformers.md's title and preamble): docs/performance.md's
    section 8 (bench/report.py) is these lines with the headings one level down."""
    mrows, mruns = _read(out, "minilm.csv"), _read(out, "minilm_runs.csv")
    grows, gruns = _read(out, "gpt_train.csv"), _read(out, "gpt_train_runs.csv")
    mm, gm = _kv(_read(out, "minilm_machine.csv")), _kv(_read(out, "gpt_train_machine.csv"))
    lrows, lruns = _read(out, "llama.csv"), _read(out, "llama_runs.csv")
    lm = _kv(_read(out, "llama_machine.csv"))
    text = machine_section(mm, gm, lm)
    text += minilm_section(mrows, mruns, mm)
    text += gpt_section(grows, gruns, gm)
    text += llama_section(lrows, lruns, lm)
    notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), NOTES_PATH)
    if os.path.exists(notes):
        with open(notes) as f:
            text += [f.read().rstrip(), ""]
    return text


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    out = argv[0] if argv else os.path.join(lib.BENCH, "results")
    text = ["# Transformers on the CPU: MiniLM embeddings and GPT-2 training, pipec beside PyTorch",
            "",
            "Written by `bench/tf_report.py` from `bench/results/minilm*.csv` "
            "(`bench/exp_minilm.py`) and `bench/results/gpt_train*.csv` "
            "(`bench/exp_gpt_train.py`). Timings on a shared 2-core machine: read the ratios "
            "(both sides measured in the same rounds), not the absolute figures.", ""]
    text += body(out)
    with open(os.path.join(out, "transformers.md"), "w") as f:
        f.write("\n".join(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
