#!/usr/bin/env python3
"""bench/exp_gpt_train.py — GPT-2 training steps: pipec's 1F1B over 2 stages against
torch.distributed.pipelining's Schedule1F1B on a transformers GPT2LMHeadModel.

    bench/exp_gpt_train.py [--quick] [--reps N] [--out DIR] [--work DIR] [--torch-python PY]

Models (GPT-2 blocks: pre-LN, causal attention, tanh gelu; tied head;
next-token loss; Adam; character vocabulary of 128):
  char-gpt   models/char-gpt.pipe: 4 blocks of width 64, 4 heads, 64 positions,
             batch 32 (212 K parameters)
  gpt-mid    bench/models/gpt-train-mid.pipe: 8 blocks of width 256, 4 heads of
             64, 128 positions, batch 16 (6.4 M parameters)
Both sides start from the same weights (transformers' own initialisation,
written by bench/torch_gpt_train.py as safetensors, loaded by pipec with
--weights-in) and train on the same batch (scripts/char-gpt-data.py windows
of the license texts), the same one every step.

pipec: the .pipe file's 1f1b at P = 2 (auto partition) and M = 4 and 8, one
BLAS thread per rank; its runtime's median step time (timed between barriers,
optimizer and the tied-embedding gradient sum included, the first step left
out; every run makes the same number of steps as PyTorch's, so the
losses line up).  PyTorch (bench/torch_gpt_train.py): 2 processes (gloo), Schedule1F1B
with the same M and the same partition; the stage modules either from
torch.distributed.pipelining's own tracer (pipeline() on the GPT2LMHeadModel,
split at pipec's boundary: "traced") or hand-built from the model's HF
modules ("manual", at the file's M only); stage 1's head is a copy of the tied
embedding and the two gradients are summed (all_reduce) before Adam, as pipec
does; each step timed between barriers, the first 2 left out.  Unpipelined
baselines for context: pipec P = 1 (M = 1) and transformers in one process
(model(ids, labels=ids).loss), each with 1 and 2 threads.

Checks: the two sides' losses of the first step agree (relative 1e-4) and are
reported for later steps; PyTorch's compute order per rank equals pipec's
1F1B (`pipec schedule --format torch`).  Every configuration runs once as a
warm-up, then rounds through all configurations; tables give medians over
rounds, with the load average of every run.

Results: gpt_train.csv, gpt_train_runs.csv, gpt_train_machine.csv; then
bench/tf_report.py writes transformers.md.
"""
import os
import re
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
import tf_common as tc  # noqa: E402

MODELS = {
    # name: .pipe, transformers shape (vocab, positions, width, blocks, heads),
    #       M values (the first is the file's), timed steps full / quick
    "char-gpt": ("char-gpt", (128, 64, 64, 4, 4), (4, 8), 20, 8),
    "gpt-mid": ("gpt-train-mid", (128, 128, 256, 8, 4), (4, 8), 5, 3),
}
LOSS_RTOL = 1e-4
SEED = 1


def describe(model, sets):
    """batch, T, lr, the blocks on stage 0 and the parameter count, from `pipec check`."""
    out = lib.check_model(model, sets)
    d = {}
    m = re.search(r"batch (\d+) = (\d+) micro-batch", out)
    d["batch"], d["M"] = int(m.group(1)), int(m.group(2))
    d["T"] = int(re.search(r"input ids: i32\[batch, (\d+)\]", out).group(1))
    d["lr"] = float(re.search(r"adam\(lr = ([0-9.e+-]+)\)", out).group(1))
    d["params"] = int(re.search(r"([\d,]+) parameters", out).group(1).replace(",", ""))
    st = re.search(r"^\s+0\s+0\s+(\S+) \.\. h(\d+)\s", out, re.M)
    if not st or st.group(1) not in ("wte", "emb"):
        raise RuntimeError("gpt_train: stage 0 is not embeddings .. a block:\n" + out)
    d["split"] = int(st.group(2)) + 1
    return d


def pipec_order(model, sets):
    out = lib.schedule(model, sets, fmt="torch")
    return [[a for a in line.split(",") if a] for line in out.splitlines() if line.strip()]


def main():
    ap = tc.parse_args(__doc__)
    ap.add_argument("--models", default=",".join(MODELS))
    a = ap.parse_args()
    cfg = tc.Cfg(a.quick, a.out, a.work, a.torch_python, "gpt_train.log")
    if a.reps:
        cfg.reps = a.reps
    t_start = time.time()
    info = tc.machine(cfg)
    info["load_start"] = lib.loadavg()
    wdir = os.path.join(cfg.work, "gpt_train")
    os.makedirs(wdir, exist_ok=True)

    confs = []
    meta = {}
    for name in a.models.split(","):
        fname, shape, Ms, n_full, n_quick = MODELS[name]
        model = lib.model_path(fname)
        n = n_quick if cfg.quick else n_full
        d0 = describe(model, ["stages=2"])
        weights = os.path.join(wdir, "%s-seed%d.safetensors" % (name, SEED))
        r = tc.torch_json(cfg, "torch_gpt_train.py",
                          ["init", "--shape", ",".join(map(str, shape)), "--seed", SEED,
                           "--weights-out", weights])
        if r["params"] != d0["params"]:
            raise RuntimeError("gpt_train: %s: transformers has %d parameters, pipec check %d"
                               % (name, r["params"], d0["params"]))
        ddir = os.path.join(wdir, "%s-data" % name)
        lib.run([cfg.torch_python, os.path.join(lib.ROOT, "scripts", "char-gpt-data.py"),
                 "--out", ddir, "--len", str(d0["T"]), "--rows", str(d0["batch"]),
                 "--seed", str(SEED)])
        ids = os.path.join(ddir, "ids.npy")
        meta[name] = dict(d0, shape=shape, attn=r["attn_implementation"], steps_timed=n)
        cfg.say("gpt_train: %s: %d parameters, batch %d, T %d, stage 0 = embeddings + %d blocks, "
                "Adam lr %g, attention %s" % (name, d0["params"], d0["batch"], d0["T"],
                                              d0["split"], d0["lr"], r["attn_implementation"]))
        common = ["--shape", ",".join(map(str, shape)), "--weights", weights, "--ids", ids,
                  "--lr", d0["lr"]]
        base = {"model": name, "batch": d0["batch"], "T": d0["T"]}
        for M in Ms:
            sets = ["stages=2", "microbatches=%d" % M]
            split = describe(model, sets)["split"]
            confs.append(dict(base, impl="pipec", P=2, M=M, threads=1, sets=sets,
                              dir=lib.compile_model(cfg, model, sets), model_path=model,
                              args=["--weights-in", weights, "--input", ids, "--steps", n + 2]))
            for how in (("traced", "manual") if M == Ms[0] else ("traced",)):
                confs.append(dict(base, impl="torch-pipelining-" + how, P=2, M=M, threads=1,
                                  args=["pipe"] + common + ["--microbatches", M, "--split",
                                                            split, "--stages", how,
                                                            "--steps", n + 2, "--warmup", 2]))
        for th in (1, 2):
            sets = ["stages=1", "microbatches=1"]
            confs.append(dict(base, impl="pipec", P=1, M=1, threads=th, sets=sets,
                              dir=lib.compile_model(cfg, model, sets), model_path=model,
                              args=["--weights-in", weights, "--input", ids, "--steps", n + 2]))
            confs.append(dict(base, impl="transformers-1-process", P=1, M=1, threads=th,
                              args=["single"] + common + ["--threads", th, "--steps", n + 2,
                                                          "--warmup", 2]))
    for c in confs:
        c.update(times=[], losses=None)

    def label(c):
        return "%s %s P=%d M=%d threads=%d" % (c["model"], c["impl"], c["P"], c["M"], c["threads"])

    runs = []

    def once(c, rnd, timed):
        load0 = lib.loadavg()
        if c["impl"] == "pipec":
            s = lib.run_program(c["dir"], [str(x) for x in c["args"]], threads=c["threads"],
                                timeout=1800)
            fig, losses = s["step_time"], s["losses"]
            c["bubble"] = s.get("bubble_measured")
            c["bubble_predicted"] = s.get("bubble_predicted")
            c["oversubscribed"] = s["oversubscribed"]
        else:
            args = list(c["args"])
            if args[0] == "pipe":
                args += ["--threads", c["threads"]]
            r = tc.torch_json(cfg, "torch_gpt_train.py", args, retry=True)
            fig, losses = r["step_time"], r["losses"]
            if "order" in r:
                c["order"] = r["order"]
                c["logits_check"] = r["logits_check"]
        if c["losses"] is None:
            c["losses"] = losses
        if timed:
            c["times"].append(fig)
        runs.append({"model": c["model"], "config": label(c),
                     "round": rnd if timed else "warm-up", "step_s": fig,
                     "loss_step1": losses[0], "load_start": load0, "load_end": lib.loadavg()})
        cfg.say("gpt_train: %-52s %s: %.4g s/step, loss %.7g .. %.7g  load %s"
                % (label(c), rnd if timed else "warm-up", fig, losses[0], losses[-1],
                   lib.loadavg()))

    cfg.say("gpt_train: %d configurations, warm-up round then %d rounds (load %s)"
            % (len(confs), cfg.reps, lib.loadavg()))
    for c in confs:
        once(c, "-", False)
    busy = []
    for rnd in range(cfg.reps):
        m0 = tc.cpu_mark()
        for c in confs:
            once(c, rnd, True)
        busy.append(tc.others(m0, tc.cpu_mark()))
        runs.append({"config": "(other processes)", "round": rnd, "others_cores": busy[-1],
                     "load_end": lib.loadavg()})
        cfg.say("gpt_train: round %d: other processes kept %.2f cores busy" % (rnd, busy[-1]))

    rows, bad = [], []
    for c in confs:
        med = lib.median(c["times"])
        # The reference of each: pipec at the same P, M and threads.
        ref = next(x for x in confs if x["model"] == c["model"] and x["impl"] == "pipec"
                   and x["P"] == c["P"] and x["M"] == c["M"] and x["threads"] == c["threads"])
        row = {"model": c["model"], "impl": c["impl"], "P": c["P"], "M": c["M"],
               "threads": c["threads"], "batch": c["batch"], "T": c["T"],
               "params": meta[c["model"]]["params"], "runs": len(c["times"]),
               "steps_timed": meta[c["model"]]["steps_timed"], "step_s": med,
               "samples_s": c["batch"] / med, "tokens_s": c["batch"] * c["T"] / med,
               "min_s": min(c["times"]), "max_s": max(c["times"]),
               "loss_step1": c["losses"][0], "loss_last": c["losses"][-1]}
        if c is not ref:
            pl, tl = ref["losses"], c["losses"]
            k = min(len(pl), len(tl))
            row["pipec_speed_vs_this"] = med / lib.median(ref["times"])
            row["loss1_rel_diff"] = lib.rel_diff(pl[0], tl[0])
            row["loss_max_rel_diff"] = max(lib.rel_diff(x, y) for x, y in zip(pl[:k], tl[:k]))
            row["loss_steps_compared"] = k
            if row["loss1_rel_diff"] > LOSS_RTOL:
                bad.append("%s: first-step loss %.9g, pipec %.9g" % (label(c), tl[0], pl[0]))
        if c["impl"] == "pipec":
            row.update({"bubble_measured": c["bubble"], "bubble_predicted": c["bubble_predicted"],
                        "oversubscribed": c["oversubscribed"]})
        if "order" in c:
            want = pipec_order(ref["model_path"], ref["sets"])
            row["same_order"] = c["order"] == want
            row["logits_check"] = c["logits_check"]
        rows.append(row)
    cols = ["model", "impl", "P", "M", "threads", "batch", "T", "params", "runs", "steps_timed",
            "step_s", "samples_s", "tokens_s", "min_s", "max_s", "pipec_speed_vs_this",
            "loss_step1", "loss_last", "loss1_rel_diff", "loss_max_rel_diff",
            "loss_steps_compared", "same_order", "logits_check", "bubble_measured",
            "bubble_predicted", "oversubscribed"]
    lib.write_csv(os.path.join(cfg.out, "gpt_train.csv"), rows, cols)
    lib.write_csv(os.path.join(cfg.out, "gpt_train_runs.csv"), runs,
                  ["model", "config", "round", "step_s", "loss_step1", "others_cores",
                   "load_start", "load_end"])
    info.update({"load_end": lib.loadavg(), "mode": "quick" if cfg.quick else "full",
                 "rounds": cfg.reps, "seconds": round(time.time() - t_start),
                 "others_cores_median": lib.median(busy), "others_cores_max": max(busy)})
    for name, m in meta.items():
        info["attn_%s" % name] = m["attn"]
        info["split_%s" % name] = "stage 0 = embeddings + %d blocks" % m["split"]
    lib.write_csv(os.path.join(cfg.out, "gpt_train_machine.csv"),
                  [{"key": k, "value": v} for k, v in sorted(info.items())], ["key", "value"])
    try:
        import tf_report
        tf_report.main([cfg.out])
    except Exception as e:
        cfg.say("gpt_train: transformers.md not written: %s" % e)
    if bad:
        raise SystemExit("gpt_train: losses disagree:\n  " + "\n  ".join(bad))


if __name__ == "__main__":
    main()
