#!/usr/bin/python3
"""050-generate-real.t -- generation for real: continuous batching, run-time sampling.

The oracle is t/fixtures/genreal, written by t/fixtures/gen_generate_real.py with
torch and transformers: a tiny GPT-2 and a tiny Llama (grouped-query attention),
40 prompts of 3 to 20 tokens right-padded with -1, and for each prompt
transformers' generate(do_sample=False) of that prompt alone (batch 1), with
and without an eos id; every greedy step's top two logits differ by at least
0.05, so float summation order cannot flip a token.

The programs have 8 sequence slots in 4 groups over 2 stages, so the 40
prompts go through the slots with continuous batching: a slot that finishes
takes the next prompt while the others decode.  Checked: every row equals
transformers' (GPT-2 and Llama, with and without eos); --max-new-tokens cuts
the rows; --top-k 1 is greedy; a seed gives one output and another seed
another; a row's tokens, sampled too, do not change when other prompts join
the run or the pipeline changes; --check-messages; the summary's metrics are
consistent with the output and the run's time; bad prompts and options are
refused before anything runs.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tapy import TAP, env_setup, import_numpy  # noqa: E402

t = TAP()
E = env_setup(t)
np = import_numpy(t, E)
import json  # noqa: E402

FX = os.path.join(E.src, "t", "fixtures", "genreal")
META = json.load(open(os.path.join(FX, "meta.json")))
PROMPTS = os.path.join(FX, "prompts.npy")
prompts = np.load(PROMPTS)
N, T0, K = prompts.shape[0], prompts.shape[1], META["new"]
lengths = [int((r >= 0).sum()) for r in prompts]
tmp = E.tmpdir("genreal")


def sh(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


built = {}


def program(kind, sets=()):
    """The compiled program's directory (compiled once per settings)."""
    key = (kind, tuple(sets))
    if key not in built:
        d = os.path.join(tmp, "%s%d" % (kind, len(built)))
        args = [E.pipec, "compile", os.path.join(E.src, "t", "models", "gen-real-%s.pipe" % kind),
                "-o", d]
        for s in sets:
            args += ["--set", s]
        r = sh(args)
        built[key] = d if r.returncode == 0 else None
        if r.returncode != 0:
            t.diag("compile %s %s: %s" % (kind, sets, r.stderr[-800:]))
    return built[key]


def run(kind, args, sets=(), inp=PROMPTS, tag="out"):
    """(tokens or None, stdout, why)."""
    d = program(kind, sets)
    if d is None:
        return None, "", "compile failed"
    out = os.path.join(d, tag + ".npy")
    if os.path.exists(out):
        os.unlink(out)
    r = sh([os.path.join(d, "run"), "--weights-in", os.path.join(FX, kind + ".safetensors"),
            "--input", inp, "--output", out] + args, timeout=600)
    if r.returncode != 0:
        return None, r.stdout, "exit %d: %s%s" % (r.returncode, r.stdout[-800:], r.stderr[-800:])
    return np.load(out), r.stdout, ""


def summary(text):
    kv = {}
    for line in text.splitlines():
        k, sep, v = line.partition(": ")
        if sep:
            kv[k] = v.split()[0]
    return kv


def same(got, want, name, why):
    ok = got is not None and got.shape == want.shape and (got == want).all()
    if not t.ok(ok, name):
        if got is None:
            t.diag(why)
        else:
            bad = [i for i in range(len(want)) if got.shape != want.shape or
                   not (got[i] == want[i]).all()]
            t.diag("rows that differ: %s\ngot  %s\nwant %s" % (bad[:8], got[bad[0]] if bad else "",
                                                              want[bad[0]] if bad else ""))
    return ok


# ---- every row equals transformers' generate of its prompt alone ----
outs = {}
for kind in ("gpt2", "llama"):
    eos = META["models"][kind]["eos"]
    greedy = np.load(os.path.join(FX, kind + "_greedy.npy"))
    with_eos = np.load(os.path.join(FX, kind + "_eos.npy"))
    got, out, why = run(kind, [])
    outs[kind] = out
    same(got, greedy, "%s: %d prompts of %d-%d tokens through 8 slots (4 groups, 2 stages): "
         "every row is transformers' greedy generate of its prompt alone"
         % (kind, N, min(lengths), max(lengths)), why)
    got, _, why = run(kind, ["--eos", str(eos)], tag="eos")
    stopped = META["models"][kind]["rows_stopped_by_eos"]
    same(got, with_eos, "%s: --eos %d: %d rows end at it (kept), then -1; every row is "
         "transformers' generate with eos_token_id" % (kind, eos, stopped), why)

greedy = np.load(os.path.join(FX, "gpt2_greedy.npy"))

# ---- run-time settings ----
got, _, why = run("gpt2", ["--max-new-tokens", "4"], tag="k4")
want = np.full((N, T0 + 4), -1, np.int32)
for i, L in enumerate(lengths):
    want[i, :L + 4] = greedy[i, :L + 4]
same(got, want, "--max-new-tokens 4: [40, 24], each prompt's first 4 greedy tokens", why)

got, _, why = run("gpt2", ["--temperature", "0.9", "--top-k", "1", "--seed", "7"], tag="k1")
same(got, greedy, "--temperature 0.9 --top-k 1 is greedy decoding", why)

samp = ["--temperature", "1.5", "--top-k", "20", "--top-p", "0.95"]
a, _, why_a = run("gpt2", samp + ["--seed", "11"], tag="s11")
b, _, why_b = run("gpt2", samp + ["--seed", "11"], tag="s11b")
c, _, why_c = run("gpt2", samp + ["--seed", "12"], tag="s12")
ok = a is not None and b is not None and c is not None
t.ok(ok and (a == b).all(), "sampling: the same seed gives the same tokens")
new_ok = ok and all(((a[i, L:L + K] >= 0) & (a[i, L:L + K] < 48)).all() and
                    (a[i, :L] == prompts[i, :L]).all() for i, L in enumerate(lengths))
t.ok(ok and new_ok and not (a == c).all() and not (a == greedy).all(),
     "sampling: token ids after each prompt; another seed gives other tokens, and neither "
     "is greedy")
if not ok:
    t.diag(why_a or why_b or why_c)

# A row's tokens do not depend on the other prompts of the run, nor on how
# the slots are grouped and the layers partitioned: the first 5 prompts alone,
# and the 40 on one stage with 3 slots in one group, sampled.
few = os.path.join(tmp, "few.npy")
np.save(few, prompts[:5])
g5, _, why = run("gpt2", [], inp=few, tag="few")
same(g5, greedy[:5], "greedy: the first 5 prompts alone give the same 5 rows", why)
s5, _, why5 = run("gpt2", samp + ["--seed", "11"], inp=few, tag="fews")
s1, _, why1 = run("gpt2", samp + ["--seed", "11"], sets=("stages=1", "batch=3",
                                                            "microbatches=1"), tag="p1")
if a is None:
    a = np.full((N, T0 + K), -2, np.int32)      # fails the comparisons below
same(s5, a[:5], "sampled: the first 5 prompts alone give the same 5 rows as among 40", why5)
same(s1, a, "sampled: 1 stage with 3 slots in one group gives the same rows as 2 stages with "
     "8 slots in 4 groups", why1)

got, _, why = run("gpt2", ["--check-messages", "--eos", str(META["models"]["gpt2"]["eos"])],
                  tag="chk")
same(got, np.load(os.path.join(FX, "gpt2_eos.npy")), "--check-messages: every activation "
     "message is the size its rows' descriptor says; tokens unchanged", why)

# ---- the summary ----
kv = summary(outs["gpt2"])
try:
    total = float(kv["generation_time"])
    rps, tps = float(kv["requests_per_s"]), float(kv["tokens_per_s"])
    t50, t90 = float(kv["ttft_median"]), float(kv["ttft_p90"])
    p50, p90 = float(kv["tpot_median"]), float(kv["tpot_p90"])
    metrics = (total > 0 and abs(rps - N / total) <= 1e-3 * rps and
               abs(tps - N * K / total) <= 1e-3 * tps and 0 < t50 <= t90 <= total and
               0 < p50 <= p90 < total and int(kv["generated_tokens"]) == N * K)
except (KeyError, ValueError):
    metrics = False
if not t.ok(metrics, "summary: requests_per_s = 40 / generation_time, tokens_per_s = 400 / it, "
            "0 < ttft median <= p90 <= the run, 0 < tpot median <= p90"):
    t.diag(kv)
r_eos = sh([os.path.join(program("gpt2"), "run"), "--weights-in",
            os.path.join(FX, "gpt2.safetensors"), "--input", PROMPTS, "--eos",
            str(META["models"]["gpt2"]["eos"])])
with_eos = np.load(os.path.join(FX, "gpt2_eos.npy"))
n_eos = int(sum(((with_eos[i, L:] >= 0).sum()) for i, L in enumerate(lengths)))
kv = summary(r_eos.stdout)
t.ok(r_eos.returncode == 0 and int(kv.get("generated_tokens", -1)) == n_eos and
     abs(float(kv.get("tokens_per_s", 0)) - n_eos / float(kv.get("generation_time", 1)))
     <= 1e-3 * float(kv.get("tokens_per_s", 1)),
     "summary with eos: generated_tokens counts each row's tokens up to its eos (%d), "
     "tokens_per_s them over the run" % n_eos)

# ---- pipec schedule --requests: continuous batching's timeline ----
gmodel = os.path.join(E.src, "t", "models", "gen-real-gpt2.pipe")
r = sh([E.pipec, "schedule", gmodel, "--requests", "40:3", "--cost", "uniform", "--width", "80"])
lines = r.stdout.splitlines()
charts = [ln for ln in lines if ln.startswith("rank ")]
kv = {}
for ln in lines:
    if ln.startswith(("continuous:", "static batches")):
        kv[ln.split(":")[0]] = float(ln.split("requests_per_s ")[1].split(",")[0])
t.ok(r.returncode == 0 and len(charts) == 2 and all(len(c) == len("rank 0 |") + 81 for c in charts)
     and any(ch.isdigit() for ch in charts[0][8:]) and any(ch.islower() for ch in charts[0][8:])
     and kv.get("continuous", 0) > kv.get("static batches of 8", 1e9) > 0,
     "pipec schedule --requests 40: a timeline per rank of prefill and decode rounds; under "
     "uniform cost continuous batching serves more requests/s than static batches")
r = sh([E.pipec, "schedule", os.path.join(E.src, "models", "mlp4.pipe"), "--requests", "4"])
t.ok(r.returncode == 1 and "generate" in r.stderr, "--requests on a training schedule: exit 1")

# ---- refused before anything runs ----
long_p = os.path.join(tmp, "long.npy")
np.save(long_p, np.zeros((3, T0 + 1), np.int32))
d = program("gpt2")
for args, code, needle, what in [
        (["--input", long_p], 1, "20", "a prompt longer than the declared 20 (the caches hold "
                                        "20 + 10): exit 1"),
        (["--input", PROMPTS, "--max-new-tokens", "11"], 2, "10",
         "--max-new-tokens beyond the compiled 10: exit 2"),
        (["--input", PROMPTS, "--eos", "48"], 2, "48", "--eos outside the vocabulary: exit 2"),
        (["--input", PROMPTS, "--top-p", "0"], 2, "top-p", "--top-p 0: exit 2"),
        (["--input", PROMPTS, "--temperature", "-1"], 2, "temperature",
         "a negative --temperature: exit 2")]:
    r = sh([os.path.join(d, "run")] + args)
    if not t.ok(r.returncode == code and needle in r.stderr and "Traceback" not in r.stderr,
                what):
        t.diag("exit %d: %s" % (r.returncode, r.stderr[-600:]))
sys.exit(t.done())
