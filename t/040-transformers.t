#!/usr/bin/python3
"""040-transformers.t -- BERT and GPT-2 through pipec equal Hugging Face.

The oracle is t/fixtures/tf, written once by t/fixtures/gen_tf_fixtures.py
with torch 2.15 and transformers 5.24 (see its header to rerun it):
  - a tiny BERT (3 layers, d 16, 2 heads): hidden states with token types,
    and sentence-transformers-style mean-pooled, normalised embeddings
    without them, for rows padded to different lengths;
  - a tiny GPT-2 (4 blocks, d 16, tied head): logits, and the losses and
    weights of 4 full-batch training steps with SGD, SGD with momentum
    and Adam.
Every pipeline below must reproduce them: several stage counts, uneven
partitions, every schedule, recompute, replicas (so the embedding and the
tied head sit on different ranks and their gradients must be summed).

Tolerances: pipec and torch both compute in float32 with different
summation orders; forward outputs agree to ~1e-6, so rtol 1e-4 / atol 1e-5.
Losses after 4 steps: rtol 2e-5.  Weights after 4 SGD steps: rtol 1e-4,
atol 2e-5 (Adam 1e-3 / 1e-4: it divides by sqrt(v) and magnifies rounding
in tiny gradients).  A negative control (the initial weights) must fail.

`make check` runs a covering subset; PIPEC_FULL=1 adds the cross product
of schedules x optimizers x recompute.
"""
import itertools
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tapy import TAP, compile_and_run, env_setup, losses_of, import_numpy  # noqa: E402

t = TAP()
E = env_setup(t)
np = import_numpy(t, E)
sys.path.insert(0, os.path.join(E.src, "t", "ref"))
from pipe_ref import read_safetensors  # noqa: E402

FX = os.path.join(E.src, "t", "fixtures", "tf")
tmp = E.tmpdir("tf")
BERT = os.path.join(E.src, "t", "models", "tiny-bert.pipe")
GPT = os.path.join(E.src, "t", "models", "tiny-gpt2.pipe")


def sh(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def fx(name):
    return os.path.join(FX, name)


def compile_run(model, sets, run_args, tag):
    return compile_and_run(E, model, os.path.join(tmp, tag), sets, run_args)


def close(a, b, rtol, atol):
    return a.shape == b.shape and np.allclose(a, b, rtol=rtol, atol=atol)


def variant(src, drop_types=False, drop_pool=False):
    """The tiny BERT without its token-type input or without pooling."""
    text = open(src).read()
    if drop_types:
        text = text.replace("    input types : i32[batch, 9];\n", "")
    if drop_pool:
        text = text.replace("    layer pool   : mean_pool;\n", "").replace(
            "    layer norm   : l2_normalize;\n", "")
    path = os.path.join(tmp, "bert-%d%d.pipe" % (drop_types, drop_pool))
    with open(path, "w") as f:
        f.write(text)
    return path


# ---------------------------------------------------------------- BERT

bert_embed = variant(BERT, drop_types=True)
bert_hidden = variant(BERT, drop_pool=True)
ids, mask, types = fx("bert_ids.npy"), fx("bert_mask.npy"), fx("bert_types.npy")
want_embed = np.load(fx("bert_embed.npy"))
want_hidden = np.load(fx("bert_hidden.npy"))

bert_cases = [
    (bert_embed, ["stages=1", "microbatches=1"], "embed"),
    (bert_embed, ["stages=2", "microbatches=5"], "embed"),
    (bert_embed, ["stages=3", "partition=[2,1,3]"], "embed"),
    (bert_embed, ["stages=6", "microbatches=5"], "embed"),       # one layer per stage
    (bert_hidden, ["stages=2", "partition=[1,3]"], "hidden"),
    (bert_hidden, ["stages=4", "microbatches=1"], "hidden"),
]
bert_full = [(bert_embed, ["stages=%d" % p, "microbatches=%d" % m], "embed")
             for p in (2, 3, 4, 5) for m in (1, 5)]

# ---------------------------------------------------------------- GPT-2

OPT = {"sgd": "sgd(lr=0.1)", "sgdm": "sgd(lr=0.05,momentum=0.9)", "adam": "adam(lr=0.01)"}
gpt_cases = [
    ("sgd", ["stages=2", "microbatches=4", "schedule=1f1b"]),
    ("sgd", ["stages=1", "microbatches=1", "schedule=naive"]),
    ("sgd", ["stages=4", "microbatches=2", "schedule=gpipe"]),               # M < P
    ("sgd", ["stages=3", "microbatches=4", "schedule=zb-h1", "recompute=[1,0.5,0]"]),
    ("sgd", ["stages=2", "microbatches=4", "schedule=interleaved(2)"]),
    ("sgd", ["stages=2", "microbatches=2", "replicas=2", "schedule=1f1b",
             "partition=[3,4]"]),                                             # uneven
    ("sgdm", ["stages=2", "microbatches=8", "schedule=gpipe", "recompute=[1,1]"]),
    ("sgdm", ["stages=3", "microbatches=4", "schedule=zb-h1"]),
    ("adam", ["stages=2", "microbatches=4", "schedule=zb-h1", "recompute=[0.5,1]"]),
    ("adam", ["stages=2", "microbatches=4", "schedule=zb-v"]),
]
gpt_full = []
for opt, (sched, p, m), rec in itertools.product(
        OPT, [("1f1b", 2, 4), ("gpipe", 3, 2), ("interleaved(2)", 2, 4), ("zb-h1", 4, 4),
              ("naive", 2, 8)],
        ["none", "some"]):
    sets = ["stages=%d" % p, "microbatches=%d" % m, "schedule=" + sched]
    if rec == "some":
        sets.append("recompute=[%s]" % ",".join(["1"] * p))
    gpt_full.append((opt, sets))

full = os.environ.get("PIPEC_FULL")
if full:
    bert_cases += bert_full
    gpt_cases += gpt_full

t.plan(len(bert_cases) + 2 * len(gpt_cases) + 4)

for i, (model, sets, what) in enumerate(bert_cases):
    out = os.path.join(tmp, "bert%d.npy" % i)
    args = ["--weights-in", fx("bert.safetensors"), "--input", "ids=" + ids,
            "--input", "mask=" + mask, "--output", out]
    if what == "hidden":
        args += ["--input", "types=" + types]
    r, err = compile_run(model, sets, args, "bert%d" % i)
    name = "BERT %s over %s equals transformers" % (what, " ".join(sets))
    if r is None:
        t.ok(False, name)
        t.diag(err)
        continue
    got = np.load(out)
    want = want_embed if what == "embed" else want_hidden
    ok = close(got, want, 1e-4, 1e-5)
    if what == "embed" and ok:
        cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
        ok = cos.min() >= 0.99999
    if not t.ok(ok, name):
        t.diag("max |diff| %s" % (np.abs(got - want).max() if got.shape == want.shape
                                  else "shape %s vs %s" % (got.shape, want.shape)))

# The checkpoint's pooler and position_ids are not used: noted, not an error.
r, err = compile_run(bert_embed, ["stages=2"], ["--weights-in", fx("bert.safetensors"),
                                                 "--input", "ids=" + ids, "--input",
                                                 "mask=" + mask], "bert-note")
t.ok(r is not None and "pooler.dense.weight" in r.stderr + r.stdout
     and "embeddings.position_ids" in r.stderr + r.stdout,
     "the checkpoint's unused tensors (pooler, position_ids) are noted")

# GPT-2 forward: logits.
out = os.path.join(tmp, "logits.npy")
r, err = compile_run(GPT, ["schedule=inference", "optimizer=none", "stages=3",
                           "microbatches=2"],
                     ["--weights-in", fx("gpt2.safetensors"), "--input", fx("gpt2_ids.npy"),
                      "--output", out], "gpt-logits")
ok = r is not None and close(np.load(out), np.load(fx("gpt2_logits.npy")), 1e-4, 1e-5)
if not t.ok(ok, "GPT-2 logits over 3 stages equal transformers'"):
    t.diag(err)


def compare_weights(a, b, rtol, atol, adam=False):
    A, B = read_safetensors(a), read_safetensors(b)
    if adam:
        # The key bias has a zero gradient in exact arithmetic (it adds the
        # same q.b_k to every score of a query, which softmax ignores), so
        # each side's is rounding noise, and Adam turns noise into +-lr
        # steps of arbitrary sign.  Compare everything else.
        for X in (A, B):
            for k in X:
                if k.endswith("attn.c_attn.bias"):
                    X[k] = X[k].copy()
                    X[k][16:32] = 0
    if sorted(A) != sorted(B):
        return "names differ: %s" % sorted(set(A) ^ set(B))
    bad = [k for k in A if not close(A[k], B[k], rtol, atol)]
    return ", ".join("%s (max |diff| %.3g)" % (k, np.abs(A[k] - B[k]).max()) for k in bad[:4])


first_out = None
for i, (opt, sets) in enumerate(gpt_cases):
    wout = os.path.join(tmp, "gpt%d.safetensors" % i)
    allsets = sets + ["optimizer=" + OPT[opt], "steps=4"]
    r, err = compile_run(GPT, allsets, ["--weights-in", fx("gpt2.safetensors"), "--input",
                                        fx("gpt2_ids.npy"), "--weights-out", wout],
                         "gpt%d" % i)
    name = "GPT-2 %s %s" % (opt, " ".join(sets))
    if r is None:
        t.ok(False, name + ": losses equal transformers'")
        t.diag(err)
        t.ok(False, name + ": weights (skipped after the failure)")
        continue
    got, want = losses_of(r.stdout), list(np.load(fx("gpt2_losses_%s.npy" % opt)))
    ok = len(got) == 4 and all(abs(a - b) <= 2e-5 * abs(b) for a, b in zip(got, want))
    if not t.ok(ok, name + ": losses equal transformers'"):
        t.diag("got %s\nwant %s" % (got, want))
    tol = (1e-3, 1e-4) if opt == "adam" else (1e-4, 2e-5)
    bad = compare_weights(wout, fx("gpt2_final_%s.safetensors" % opt), *tol, adam=opt == "adam")
    if not t.ok(not bad, name + ": trained weights equal transformers' (same names)"):
        t.diag(bad)
    if opt == "sgd" and first_out is None:
        first_out = wout

# Negative control: the initial weights do not pass the comparison.
bad = compare_weights(fx("gpt2.safetensors"), fx("gpt2_final_sgd.safetensors"), 1e-4, 2e-5)
t.ok(bool(bad), "the weight comparison rejects untrained weights (negative control)")

# --weights-out loads back: resuming from step 2's weights for 2 more steps
# gives the 4-step weights.
w2 = os.path.join(tmp, "w2.safetensors")
w4 = os.path.join(tmp, "w4.safetensors")
r1, e1 = compile_run(GPT, ["optimizer=" + OPT["sgd"]],
                     ["--weights-in", fx("gpt2.safetensors"), "--input", fx("gpt2_ids.npy"),
                      "--steps", "2", "--weights-out", w2], "gpt-resume")
r2 = sh([os.path.join(tmp, "gpt-resume", "run"), "--weights-in", w2, "--input",
         fx("gpt2_ids.npy"), "--steps", "2", "--weights-out", w4]) if r1 else None
bad = compare_weights(w4, fx("gpt2_final_sgd.safetensors"), 1e-4, 2e-5) if r2 and \
    r2.returncode == 0 else "did not run: " + e1
if not t.ok(not bad, "--weights-out loads back: 2 + 2 steps equal 4 steps"):
    t.diag(bad)
sys.exit(t.done())
