#!/usr/bin/env python3
"""bench/exp_train_real.py — a whole training run with a real recipe: pipec
against PyTorch, samples/s and the final evaluation loss side by side.

    bench/exp_train_real.py [--quick] [--reps N] [--out DIR] [--work DIR] [--torch-python PY]

The model and recipe are models/char-gpt-train.pipe's (the character GPT-2 of
scripts/train-char-gpt.sh: AdamW with decay on the matrices, warm-up + cosine,
clipping at a global norm of 1, shuffled epochs), trained for its 600 steps
(--quick: 120) on scripts/char-gpt-data.py's windows, evaluated on 512 windows of
held-out text every 100 steps and after the last.  Every side starts from the
same weights (transformers' initialisation, bench/torch_gpt_train.py init) and
visits the rows in the same order (pipec's shuffle, reimplemented below).

Configurations, each run --reps times (the first run of each is a warm-up,
left out), in rounds:
  pipec                  P = 2, 1F1B, M = 4, one BLAS thread per rank
  torch-pipelining       torch.distributed.pipelining Schedule1F1B, 2 processes
                         (gloo), the same partition and M, one thread each
  torch-1-process        transformers in one process with two threads
(bench/torch_train_real.py is the PyTorch side).  samples/s = steps · batch /
the training's wall time, evaluations left out; medians over the runs.

Results: train_real.csv (one row per configuration), train_real_runs.csv.
"""
import json
import os
import re
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
import tf_common as tc  # noqa: E402

MODEL = "char-gpt-train"
SHAPE = (128, 64, 64, 4, 4)
SEED = 1
EVAL_EVERY = 100


sys.path.insert(0, os.path.join(lib.ROOT, "t", "ref"))
import shuffle_ref  # noqa: E402  (pipec's --shuffle, as docs/training.md states it)


def shuffle(seed, epoch, n):
    """pipec's permutation of n rows in epoch `epoch`."""
    return [int(i) for i in shuffle_ref.perm(seed, n, epoch)]


def recipe(model):
    """The recipe's numbers, from the .pipe file itself."""
    text = open(model).read()

    def num(key, default=None):
        m = re.search(r"\b%s\s*=\s*([0-9.eE+-]+)" % key, text)
        return float(m.group(1)) if m else default
    return {"lr": num("lr"), "beta1": num("beta1", 0.9), "beta2": num("beta2", 0.999),
            "eps": num("eps", 1e-8), "weight_decay": num("weight_decay", 0.01),
            "warmup": int(num("warmup", 0)), "total": int(num("total")),
            "min_lr": num("min_lr", 0.0), "clip": num("clip_grad_norm"),
            "batch": int(num("batch")), "microbatches": int(num("microbatches")),
            "steps": int(num("steps"))}


def pipec_run(d, args, metrics):
    """One run: its evaluations, its losses and the training's wall time (the
    sum of the --metrics step times: evaluations and start-up left out, as
    the PyTorch side counts)."""
    out = lib.run([os.path.join(d, "run")] + args + ["--metrics", metrics],
                  env=lib.env_pipec(1), timeout=3600)
    with open(metrics) as f:
        train_s = sum(json.loads(l).get("step_time", 0.0) for l in f if l.strip())
    evals = [[int(m.group(1)), float(m.group(2))]
             for m in re.finditer(r"^eval step (\d+) loss (\S+)$", out, re.M)]
    losses = [float(m.group(1)) for m in re.finditer(r"^step \d+ loss (\S+)$", out, re.M)]
    return train_s, evals, losses


def main():
    ap = tc.parse_args(__doc__)
    a = ap.parse_args()
    cfg = tc.Cfg(a.quick, a.out, a.work, a.torch_python, "train_real.log")
    cfg.reps = a.reps or (2 if a.quick else 3)
    info = tc.machine(cfg)
    model = lib.model_path(MODEL)
    r = recipe(model)
    steps = 120 if cfg.quick else r["steps"]
    wdir = os.path.join(cfg.work, "train_real")
    os.makedirs(wdir, exist_ok=True)
    lib.run([sys.executable, os.path.join(lib.ROOT, "scripts", "char-gpt-data.py"),
             "--out", wdir, "--len", str(SHAPE[1]), "--eval-rows", "512", "--seed", str(SEED)])
    ids, ev = os.path.join(wdir, "ids.npy"), os.path.join(wdir, "eval_ids.npy")
    weights = os.path.join(wdir, "init.safetensors")
    tc.torch_json(cfg, "torch_gpt_train.py", ["init", "--shape", ",".join(map(str, SHAPE)),
                                              "--seed", SEED, "--weights-out", weights])
    d = lib.compile_model(cfg, model, [])
    pargs = ["--weights-in", weights, "--input", ids, "--eval-input", ev, "--eval-every",
             EVAL_EVERY, "--steps", steps, "--quiet"]
    targs = ["--shape", ",".join(map(str, SHAPE)), "--weights", weights, "--ids", ids,
             "--eval-ids", ev, "--batch", r["batch"], "--steps", steps, "--eval-every",
             EVAL_EVERY, "--recipe", json.dumps(r), "--microbatches", r["microbatches"],
             "--split", 2, "--seed", SEED]
    confs = {
        "pipec": None,
        "torch-pipelining": ["pipe"] + targs + ["--threads", 1],
        "torch-1-process": ["single"] + targs + ["--threads", 2],
    }
    runs = []
    for rep in range(cfg.reps + 1):
        for name, targ in confs.items():
            m0 = tc.cpu_mark()
            if targ is None:
                train_s, evals, losses = pipec_run(d, [str(x) for x in pargs],
                                                   os.path.join(wdir, "metrics.jsonl"))
                res = {"samples_per_s": steps * r["batch"] / train_s, "evals": evals,
                       "losses": losses}
            else:
                res = tc.torch_json(cfg, "torch_train_real.py", targ, timeout=7200)
            busy = tc.others(m0, tc.cpu_mark())
            final = res["evals"][-1][1] if res["evals"] else float("nan")
            cfg.say("train_real: %s run %d: %.1f samples/s, final eval loss %.4f (others %.2f)"
                    % (name, rep, res["samples_per_s"], final, busy))
            if rep > 0:
                runs.append({"impl": name, "rep": rep, "samples_per_s": res["samples_per_s"],
                             "final_eval_loss": final, "others_busy": busy,
                             "first_loss": res["losses"][0] if res["losses"] else ""})
    lib.write_csv(os.path.join(cfg.out, "train_real_runs.csv"), runs)
    rows = []
    for name in confs:
        mine = [x for x in runs if x["impl"] == name]
        rows.append({"impl": name, "steps": steps, "batch": r["batch"],
                     "samples_per_s": lib.median([x["samples_per_s"] for x in mine]),
                     "final_eval_loss": lib.median([x["final_eval_loss"] for x in mine]),
                     "runs": len(mine), "machine": info.get("cpu", "")})
    base = rows[0]["samples_per_s"]
    for row in rows:
        row["pipec_speedup"] = base / row["samples_per_s"] if row["samples_per_s"] else ""
    lib.write_csv(os.path.join(cfg.out, "train_real.csv"), rows)
    for row in rows:
        cfg.say("train_real: %-17s %8.1f samples/s  final eval loss %.4f  (pipec %.2fx)"
                % (row["impl"], row["samples_per_s"], row["final_eval_loss"],
                   row["pipec_speedup"] or 0))


if __name__ == "__main__":
    main()
