#!/usr/bin/env python3
"""bench/exp_contbatch.py — continuous batching against static batches and
transformers' batched generate, on a mixed workload.

    python3 bench/exp_contbatch.py [--reps R] [--requests N] [--out DIR] [--work DIR]

Needs the python with torch and transformers (it is the oracle and the rival).

The model: bench/models/contbatch.pipe, a GPT-2 of 4 blocks of width 128 (4
heads, vocabulary 512, 160 positions) with transformers' initialisation
(seed 1) redrawn as below, prompts of up to 64 tokens, up to 64 new ones, 16 sequence slots
in 4 groups over P = 2 stages.

The workload: N requests (64 by default), prompt lengths uniform in 4..64,
greedy decoding with an eos id, at most 64 new tokens.  The eos id is chosen
from a first run without it: the token whose first appearance in the rows'
continuations is the most spread out (rows then stop at random places; some
never do and take all 64).  Every configuration generates the same tokens.

Compared, on the same weights, prompts and eos:
  continuous   one run of the pipec program over the N prompts
  static       the same program over the prompts in batches of 16 (one run
               per batch: a slot that finishes waits for its batch's longest
               row), times summed
  transformers GPT2LMHeadModel.generate(do_sample=False, eos_token_id=...) in
               batches of 16, left-padded with an attention mask, with 1 and
               with 2 threads (the cores pipec's 2 ranks use), times summed;
               the ratio is against the better of the two
pipec's times are what its runtime prints (generation_time, between
barriers: start-up and weight loading not counted); transformers' are timed
around generate() in a warm process.  Each configuration runs once as a
warm-up (transformers: one batch), then R times (default 3), interleaved;
figures are medians.
--width D runs the same at width D (D / 32 heads).  Writes contbatch-D.json and
prints a table.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PIPEC = os.path.join(os.environ.get("PIPEC_BUILD", os.path.join(ROOT, "build")),
                     "compiler", "pipec")
MODEL = os.path.join(ROOT, "bench", "models", "contbatch.pipe")
T0, NEW, SLOTS, VOCAB = 64, 64, 16, 512
CFG = dict(vocab_size=VOCAB, n_embd=128, n_head=4, n_layer=4, n_positions=160,
           resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=1e-5,
           tie_word_embeddings=True, activation_function="gelu_new",
           bos_token_id=None, eos_token_id=None, pad_token_id=None)


def sh(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise SystemExit("failed (%d): %s\n%s%s" % (r.returncode, " ".join(cmd), r.stdout[-2000:],
                                                    r.stderr[-2000:]))
    return r.stdout


def summary(text):
    kv = {}
    for line in text.splitlines():
        k, sep, v = line.partition(": ")
        if sep:
            kv[k] = v.split()[0]
    return kv


def pipec_run(d, weights, prompts_path, out_path, eos):
    args = [os.path.join(d, "run"), "--weights-in", weights, "--input", prompts_path,
            "--output", out_path]
    if eos is not None:
        args += ["--eos", str(eos)]
    return summary(sh(args, timeout=1800))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--width", type=int, default=128,
                    help="the model's width d (heads: d / 32); default 128")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    ap.add_argument("--work", default=None)
    a = ap.parse_args()
    import torch
    import transformers
    from safetensors.torch import save_file
    from transformers import GPT2Config, GPT2LMHeadModel
    transformers.logging.set_verbosity_error()
    torch.set_num_threads(2)
    work = a.work or tempfile.mkdtemp(prefix="contbatch-")
    os.makedirs(work, exist_ok=True)
    os.makedirs(a.out, exist_ok=True)

    torch.manual_seed(1)
    CFG.update(n_embd=a.width, n_head=max(1, a.width // 32))
    cfg = GPT2Config(**CFG)
    cfg._attn_implementation = "eager"
    model = GPT2LMHeadModel(cfg).eval()
    # transformers' initialisation copies the last token for ever (the tied
    # head's logit of the current token wins); t/fixtures/gen_tf_fixtures.py's
    # scheme makes the continuations move on, so an eos id stops rows at
    # different places: weights N(0, 0.5²), norms 1 + N(0, 0.5²), positions ×6
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape) * 0.5
            p.copy_(1.0 + r if ".ln_" in name and name.endswith(".weight") else r)
        model.transformer.wpe.weight.mul_(6.0)
    model.generation_config.pad_token_id = 0
    weights = os.path.join(work, "w.safetensors")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()
               if k != "lm_head.weight" and not k.endswith(".attn.bias")}, weights)

    rng = np.random.default_rng(7)
    N = a.requests
    lengths = rng.integers(4, T0 + 1, N)
    prompts = np.full((N, T0), -1, np.int32)
    for i, L in enumerate(lengths):
        prompts[i, :L] = rng.integers(0, VOCAB, L)
    ppath = os.path.join(work, "prompts.npy")
    np.save(ppath, prompts)

    d = os.path.join(work, "prog")
    model_file = MODEL
    if a.width != 128:      # the bundled model at another width
        text = open(MODEL).read()
        for old_s, new_s in (("(512, 128, 160)", "(512, %d, 160)" % a.width),
                             ("gpt2_block(128, 4)", "gpt2_block(%d, %d)" % (a.width, CFG["n_head"])),
                             ("layernorm(128", "layernorm(%d" % a.width),
                             ("lm_head(512, 128", "lm_head(512, %d" % a.width)):
            text = text.replace(old_s, new_s)
        model_file = os.path.join(work, "contbatch-%d.pipe" % a.width)
        with open(model_file, "w") as f:
            f.write(text)
    sh([PIPEC, "compile", model_file, "-o", d])
    sh(["make", "-s", "-C", d])

    # the eos id: the token whose first appearance is the most spread out
    first = pipec_run(d, weights, ppath, os.path.join(work, "noeos.npy"), None)
    noeos = np.load(os.path.join(work, "noeos.npy"))
    best, eos = -1.0, None
    for tok in range(VOCAB):
        pos = []
        for i, L in enumerate(lengths):
            hit = np.nonzero(noeos[i, L:L + NEW] == tok)[0]
            pos.append(int(hit[0]) + 1 if len(hit) else NEW)
        stopped = sum(p < NEW for p in pos)
        score = float(np.std(pos)) + (1000.0 if 0.6 * N <= stopped <= 0.9 * N else 0.0)
        if score > best:
            best, eos = score, tok
    new_len = []
    for i, L in enumerate(lengths):
        hit = np.nonzero(noeos[i, L:L + NEW] == eos)[0]
        new_len.append(int(hit[0]) + 1 if len(hit) else NEW)
    del first

    batches = []
    for b in range(0, N, SLOTS):
        bp = os.path.join(work, "batch%d.npy" % b)
        np.save(bp, prompts[b:b + SLOTS])
        batches.append(bp)

    def run_continuous():
        kv = pipec_run(d, weights, ppath, os.path.join(work, "cont.npy"), eos)
        return float(kv["generation_time"]), kv

    def run_static():
        total, outs = 0.0, []
        for k, bp in enumerate(batches):
            o = os.path.join(work, "static%d.npy" % k)
            kv = pipec_run(d, weights, bp, o, eos)
            total += float(kv["generation_time"])
            outs.append(np.load(o))
        np.save(os.path.join(work, "static.npy"), np.concatenate(outs))
        return total, None

    def run_hf(threads, upto=N):
        torch.set_num_threads(threads)
        total, rows = 0.0, []
        for b in range(0, upto, SLOTS):
            chunk = [prompts[i, :lengths[i]].tolist() for i in range(b, min(b + SLOTS, N))]
            width = max(len(p) for p in chunk)
            ids = torch.zeros((len(chunk), width), dtype=torch.long)
            mask = torch.zeros_like(ids)
            for r, p in enumerate(chunk):
                ids[r, width - len(p):] = torch.tensor(p)
                mask[r, width - len(p):] = 1
            t0 = time.perf_counter()
            with torch.no_grad():
                out = model.generate(ids, attention_mask=mask, do_sample=False, num_beams=1,
                                     max_new_tokens=NEW, eos_token_id=eos, pad_token_id=0)
            total += time.perf_counter() - t0
            for r, p in enumerate(chunk):
                new = out[r, width:].tolist()
                if eos in new:
                    new = new[:new.index(eos) + 1]
                row = np.full(T0 + NEW, -1, np.int32)
                row[:len(p)] = p
                row[len(p):len(p) + len(new)] = new
                rows.append(row)
        if upto == N:
            np.save(os.path.join(work, "hf.npy"), np.stack(rows))
        return total, None

    runs = {"continuous": run_continuous, "static": run_static,
            "transformers-1t": lambda: run_hf(1), "transformers-2t": lambda: run_hf(2)}
    times = {k: [] for k in runs}
    last = {}
    run_continuous()                   # warm-up (transformers: one batch each)
    run_static()
    run_hf(1, SLOTS)
    run_hf(2, SLOTS)
    for rep in range(a.reps):
        for k, f in runs.items():
            t, kv = f()
            times[k].append(t)
            if kv:
                last[k] = kv
    cont = np.load(os.path.join(work, "cont.npy"))
    static = np.load(os.path.join(work, "static.npy"))
    hf = np.load(os.path.join(work, "hf.npy"))         # the last one: 2 threads
    gen_tokens = int(sum(new_len))
    res = dict(width=a.width, requests=N, slots=SLOTS, stages=2, groups=4, eos=int(eos), reps=a.reps,
               prompt_lengths=[int(x) for x in lengths], new_tokens=new_len,
               generated_tokens=gen_tokens, machine=os.uname().nodename,
               cores=os.cpu_count(), load=os.getloadavg(),
               rows_equal_static=int((cont == static).all(1).sum()),
               rows_equal_transformers=int((cont == hf).all(1).sum()),
               date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), configs={})
    for k in runs:
        med = statistics.median(times[k])
        res["configs"][k] = dict(times=times[k], median_s=med, requests_per_s=N / med,
                                 tokens_per_s=gen_tokens / med)
    kv = last.get("continuous", {})
    res["configs"]["continuous"].update({m: float(kv[m]) for m in (
        "ttft_median", "ttft_p90", "tpot_median", "tpot_p90") if m in kv})
    print("width %d" % a.width)
    print("workload: %d requests, prompts %d-%d tokens, new tokens %d-%d (eos %d; %d of %d rows "
          "stop before %d), %d generated tokens" % (N, min(lengths), max(lengths), min(new_len),
                                                   max(new_len), eos,
                                                   sum(n < NEW for n in new_len), N, NEW,
                                                   gen_tokens))
    print("rows equal to continuous: static %d/%d, transformers %d/%d"
          % (res["rows_equal_static"], N, res["rows_equal_transformers"], N))
    print("%-13s %10s %12s %12s" % ("", "median s", "requests/s", "tokens/s"))
    for k in runs:
        c = res["configs"][k]
        print("%-13s %10.4f %12.2f %12.1f" % (k, c["median_s"], c["requests_per_s"],
                                               c["tokens_per_s"]))
    c = res["configs"]
    hf_best = max(c["transformers-1t"]["requests_per_s"], c["transformers-2t"]["requests_per_s"])
    res["continuous_over_static"] = c["continuous"]["requests_per_s"] / c["static"]["requests_per_s"]
    res["continuous_over_transformers"] = c["continuous"]["requests_per_s"] / hf_best
    print("continuous / static: %.2fx   continuous / transformers (its better thread count): "
          "%.2fx requests/s" % (res["continuous_over_static"], res["continuous_over_transformers"]))
    with open(os.path.join(a.out, "contbatch-%d.json" % a.width), "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    print("continuous: ttft median %.4f p90 %.4f s, tpot median %.5f p90 %.5f s"
          % tuple(c["continuous"].get(m, float("nan"))
                  for m in ("ttft_median", "ttft_p90", "tpot_median", "tpot_p90")))


if __name__ == "__main__":
    sys.exit(main())
