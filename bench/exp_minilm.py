#!/usr/bin/env python3
"""bench/exp_minilm.py — all-MiniLM-L6-v2 sentence embeddings: pipec's inference
pipeline against sentence-transformers' SentenceTransformer.encode on the CPU.

    bench/exp_minilm.py [--quick] [--reps N] [--out DIR] [--work DIR] [--torch-python PY]

The model: models/minilm.pipe (6 BERT layers of width 384, mean pooling, L2
normalisation) with the published checkpoint (scripts/minilm-fetch.sh: the
same model.safetensors and tokenizer.json that sentence-transformers loads).
The data: 64 passages of the license texts in /usr/share/common-licenses,
tokenized once (scripts/bert-tokenize.py, checked equal to
sentence-transformers' own tokenization), at two lengths: T = 128 (the
passages cut or padded to 128 tokens: 87 % real tokens) and T = 32; both sides
compute on the same [64, T] ids and mask (sentence-transformers pads to the
longest passage, which reaches T).

pipec: schedule = inference, batch 64, at P = 1 (one BLAS thread, and two) and
P = 2 (one thread per rank; M = 2, 4, 8 micro-batches); a run's figure is its
runtime's median step time (one batch through the pipeline, timed between
barriers; the first step and start-up left out).  sentence-transformers: one
process per thread count (torch.set_num_threads 1 and 2), model.max_seq_length
= T, encode(sentences, batch_size = 64) timed whole (tokenization included)
after a warm-up call, and the model's forward alone on the pre-tokenized batch
(the part pipec does); a run's figure is the median of its calls.

Every configuration runs once as a warm-up; then rounds, each going through
every configuration (sentence-transformers and pipec alternating), so that
noise lands on all of them alike; tables give the median over rounds.  The
load average is recorded with every run, and the cores other processes kept
busy during each round.  Embeddings: every pipec configuration's output
against sentence-transformers' (cosine per sentence, at least 0.9999).

Results: minilm.csv (one row per T and configuration), minilm_runs.csv (every
run), minilm_machine.csv; then bench/tf_report.py writes transformers.md.
"""
import os
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
import tf_common as tc  # noqa: E402

BATCH = 64
LENGTHS = (128, 32)
COS_MIN = 0.9999
MODEL = "minilm"


def pipec_configs():
    # (P, M, BLAS threads per rank)
    return [(1, 1, 1), (1, 1, 2), (2, 2, 1), (2, 4, 1), (2, 8, 1)]


def model_dir(cfg):
    env = dict(os.environ)
    env.setdefault("PYTHON", cfg.torch_python)
    out = subprocess.run(["sh", os.path.join(lib.ROOT, "scripts", "minilm-fetch.sh")], env=env,
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError("minilm-fetch.sh failed:\n" + out.stderr[-2000:])
    return out.stdout.strip().splitlines()[-1]


def steps_for(cfg, T):
    if T >= 128:
        return (3, 2) if cfg.quick else (4, 3)      # pipec steps (first left out), ST timed calls
    return (5, 4) if cfg.quick else (10, 8)


def main():
    ap = tc.parse_args(__doc__)
    a = ap.parse_args()
    cfg = tc.Cfg(a.quick, a.out, a.work, a.torch_python, "minilm.log")
    if a.reps:
        cfg.reps = a.reps
    t_start = time.time()
    info = tc.machine(cfg)
    info["load_start"] = lib.loadavg()
    mdir = model_dir(cfg)
    weights = os.path.join(mdir, "model.safetensors")
    wdir = os.path.join(cfg.work, "minilm")
    os.makedirs(wdir, exist_ok=True)
    model = lib.model_path(MODEL)

    confs = []
    for T in LENGTHS:
        prefix = os.path.join(wdir, "t%d" % T)
        prep = tc.torch_json(cfg, "torch_minilm.py", ["prep", "--model", mdir, "--batch", BATCH,
                                                      "--max-len", T, "--out-prefix", prefix])
        cfg.say("minilm: T=%d: %d sentences, %d of %d tokens real"
                % (T, BATCH, prep["real_tokens"], BATCH * T))
        info["real_tokens_T%d" % T] = prep["real_tokens"]
        psteps, sreps = steps_for(cfg, T)
        for th in (1, 2):
            confs.append({"T": T, "impl": "sentence-transformers", "P": "", "M": "", "threads": th,
                          "prefix": prefix, "reps": sreps, "enc": [], "fwd": [],
                          "emb": prefix + ".st-t%d.npy" % th})
        for P, M, th in pipec_configs():
            sets = ["stages=%d" % P, "batch=%d" % BATCH, "microbatches=%d" % M]
            d = lib.compile_model(cfg, model, sets)
            confs.append({"T": T, "impl": "pipec", "P": P, "M": M, "threads": th, "dir": d,
                          "prefix": prefix, "steps": psteps, "times": [], "cos": [],
                          "out": os.path.join(wdir, "t%d-P%d-M%d-th%d.npy" % (T, P, M, th))})

    def label(c):
        if c["impl"] == "pipec":
            return "pipec P=%d M=%d threads=%d" % (c["P"], c["M"], c["threads"])
        return "sentence-transformers threads=%d" % c["threads"]

    runs = []

    def once(c, rnd, timed):
        load0 = lib.loadavg()
        if c["impl"] == "pipec":
            args = ["--weights-in", weights, "--input", "ids=" + c["prefix"] + ".ids.npy",
                    "--input", "mask=" + c["prefix"] + ".mask.npy", "--output", c["out"],
                    "--steps", str(c["steps"])]
            s = lib.run_program(c["dir"], args, threads=c["threads"], timeout=1800)
            fig = s["step_time"]
            c["bubble"] = s.get("bubble_measured")
            c["peak"] = s.get("peak_memory_bytes")
            c["oversubscribed"] = s["oversubscribed"]
            row = {"step_s": fig, "bubble_measured": s.get("bubble_measured")}
            if timed:
                c["times"].append(fig)
        else:
            r = tc.torch_json(cfg, "torch_minilm.py",
                              ["time", "--model", mdir, "--sentences", c["prefix"] + ".txt",
                               "--max-len", c["T"], "--threads", c["threads"], "--warmup", 1,
                               "--reps", c["reps"], "--emb-out", c["emb"]])
            if r["T"] != c["T"] or r["batch"] != BATCH:
                raise RuntimeError("sentence-transformers computed [%d, %d], not [%d, %d]"
                                   % (r["batch"], r["T"], BATCH, c["T"]))
            fig, fwd = lib.median(r["encode"]), lib.median(r["forward"])
            row = {"step_s": fig, "forward_s": fwd}
            if timed:
                c["enc"].append(fig)
                c["fwd"].append(fwd)
        row.update({"T": c["T"], "config": label(c), "round": rnd if timed else "warm-up",
                    "load_start": load0, "load_end": lib.loadavg()})
        runs.append(row)
        cfg.say("minilm: T=%d %-36s %s: %.4g s/batch (%.1f sentences/s)%s  load %s"
                % (c["T"], label(c), rnd if timed else "warm-up", fig, BATCH / fig,
                   ", forward alone %.4g s" % row["forward_s"] if "forward_s" in row else "",
                   row["load_end"]))

    def check_embeddings(c):
        ref = [x for x in confs if x["T"] == c["T"] and x["impl"] != "pipec"
               and x["threads"] == 1][0]["emb"]
        r = tc.torch_json(cfg, "torch_minilm.py", ["cos", "--ref", ref, "--got", c["out"]])
        c["cos"].append(r["min_cos"])
        c["maxdiff"] = max(c.get("maxdiff", 0.0), r["max_abs_diff"])

    cfg.say("minilm: %d configurations, warm-up round then %d rounds (load %s)"
            % (len(confs), cfg.reps, lib.loadavg()))
    order = sorted(confs, key=lambda c: (-c["T"], c["threads"], c["impl"] == "pipec"))
    for c in order:
        once(c, "-", False)
        if c["impl"] == "pipec":
            check_embeddings(c)
    busy = []
    for rnd in range(cfg.reps):
        m0 = tc.cpu_mark()
        for c in order:
            once(c, rnd, True)
        busy.append(tc.others(m0, tc.cpu_mark()))
        runs.append({"config": "(other processes)", "round": rnd, "others_cores": busy[-1],
                     "load_end": lib.loadavg()})
        cfg.say("minilm: round %d: other processes kept %.2f cores busy" % (rnd, busy[-1]))
    for c in confs:
        if c["impl"] == "pipec":
            check_embeddings(c)

    rows = []
    for T in LENGTHS:
        st = {c["threads"]: lib.median(c["enc"]) for c in confs
              if c["T"] == T and c["impl"] != "pipec"}
        for c in [x for x in confs if x["T"] == T]:
            if c["impl"] == "pipec":
                v = c["times"]
                cores = c["P"] * c["threads"]
            else:
                v = c["enc"]
                cores = c["threads"]
            med = lib.median(v)
            row = {"T": T, "impl": c["impl"], "P": c["P"], "M": c["M"], "threads": c["threads"],
                   "cores": cores, "batch": BATCH, "runs": len(v), "step_s": med,
                   "sentences_s": BATCH / med, "min_s": min(v), "max_s": max(v),
                   "vs_st_1thread": st[1] / med, "vs_st_2threads": st[2] / med,
                   "vs_st_same_cores": st[min(cores, 2)] / med}
            if c["impl"] == "pipec":
                row.update({"min_cos": min(c["cos"]), "max_abs_diff": c["maxdiff"],
                            "bubble_measured": c["bubble"], "peak_memory_bytes": c["peak"],
                            "oversubscribed": c["oversubscribed"]})
            else:
                f = lib.median(c["fwd"])
                row.update({"forward_s": f, "forward_sentences_s": BATCH / f})
            rows.append(row)
    cols = ["T", "impl", "P", "M", "threads", "cores", "batch", "runs", "step_s", "sentences_s",
            "min_s", "max_s", "forward_s", "forward_sentences_s", "vs_st_1thread",
            "vs_st_2threads", "vs_st_same_cores", "min_cos", "max_abs_diff", "bubble_measured",
            "peak_memory_bytes", "oversubscribed"]
    lib.write_csv(os.path.join(cfg.out, "minilm.csv"), rows, cols)
    lib.write_csv(os.path.join(cfg.out, "minilm_runs.csv"), runs,
                  ["T", "config", "round", "step_s", "forward_s", "bubble_measured",
                   "others_cores", "load_start", "load_end"])
    info.update({"load_end": lib.loadavg(), "mode": "quick" if cfg.quick else "full",
                 "rounds": cfg.reps, "seconds": round(time.time() - t_start),
                 "others_cores_median": lib.median(busy), "others_cores_max": max(busy),
                 "model_dir": mdir, "batch": BATCH})
    lib.write_csv(os.path.join(cfg.out, "minilm_machine.csv"),
                  [{"key": k, "value": v} for k, v in sorted(info.items())], ["key", "value"])
    bad = [r for r in rows if r["impl"] == "pipec" and r["min_cos"] < COS_MIN]
    try:
        import tf_report
        tf_report.main([cfg.out])
    except Exception as e:      # the report is regenerated by tf_report.py alone
        cfg.say("minilm: transformers.md not written: %s" % e)
    if bad:
        raise SystemExit("minilm: embeddings differ from sentence-transformers': "
                         + "; ".join("T=%d P=%s M=%s cos %.6f" % (r["T"], r["P"], r["M"],
                                                                  r["min_cos"]) for r in bad))


if __name__ == "__main__":
    main()
