#!/usr/bin/python3
"""042-generate.t -- schedule = generate equals transformers' generate.

The oracle is t/fixtures/tf/gen_*.npy, written by t/fixtures/gen_tf_fixtures.py
with torch 2.15 and transformers 5.24: a tiny GPT-2 (4 blocks, d 16, tied
head) whose weights are chaotic enough that greedy decoding does not repeat
one token (every row has at least 4 distinct new tokens, and the top two
logits differ by at least 0.05 at every step, so float summation order
cannot flip a choice), and GPT2LMHeadModel.generate(do_sample=False) of 6
prompts of 4 tokens, 8 new tokens each.  The prompts are tiled to 24 rows so
that every M from 1 to 2P divides the batch.

Greedy tokens must be equal, exactly, for 1 to 4 stages, M from 1 to 2P and
uneven partitions.  Beyond the fixture: an end-of-sequence id stops its rows
(derived from the greedy tokens; the rest of the row is -1), sampling does not depend on P or M, the
uniform-cost timeline has the ring's closed-form length, and bad prompts are
exit 1 before anything runs.

`make check` runs a covering subset of the (P, M, partition) matrix;
PIPEC_FULL=1 runs all of it.
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tapy import TAP, env_setup, import_numpy  # noqa: E402

t = TAP()
E = env_setup(t)
np = import_numpy(t, E)

FX = os.path.join(E.src, "t", "fixtures", "tf")
MODEL = os.path.join(E.src, "t", "models", "tiny-gpt2-gen.pipe")
WEIGHTS = os.path.join(FX, "gen.safetensors")
tmp = E.tmpdir("gen")
FULL = os.environ.get("PIPEC_FULL") == "1"

prompts6 = np.load(os.path.join(FX, "gen_prompts.npy"))
tokens6 = np.load(os.path.join(FX, "gen_tokens.npy"))
T0, N = prompts6.shape[1], tokens6.shape[1] - prompts6.shape[1]
B = 24
prompts = np.tile(prompts6, (B // 6, 1)).astype(np.int32)
expected = np.tile(tokens6, (B // 6, 1))
PROMPTS = os.path.join(tmp, "prompts.npy")
np.save(PROMPTS, prompts)


def sh(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def sets_args(sets):
    args = []
    for s in sets:
        args += ["--set", s]
    return args


def compile_run(sets, run_args, tag, weights=True):
    """(tokens or None, stdout, why)."""
    d = os.path.join(tmp, tag)
    r = sh([E.pipec, "compile", MODEL, "-o", d, "--set", "batch=%d" % B] + sets_args(sets))
    if r.returncode != 0:
        return None, "", "compile: " + r.stderr
    out = os.path.join(d, "tokens.npy")
    args = (["--weights-in", WEIGHTS] if weights else []) + ["--output", out] + run_args
    r = sh([os.path.join(d, "run")] + args, timeout=600)
    if r.returncode != 0:
        return None, r.stdout, "run (exit %d): %s%s" % (r.returncode, r.stdout[-1500:],
                                                         r.stderr[-1500:])
    return np.load(out), r.stdout, ""


def summary(text):
    kv = {}
    for line in text.splitlines():
        k, sep, v = line.partition(": ")
        if sep:
            kv[k] = v
    return kv


# ---- greedy tokens equal transformers' over the (P, M, partition) matrix ----
UNEVEN = {2: "[5, 2]", 3: "[1, 5, 1]", 4: "[3, 1, 1, 2]"}
cases = []
for P in range(1, 5):
    for M in (1, 2, 3, 4, 6, 8):
        if M > 2 * P:
            continue
        cases.append((P, M, None))
        if P in UNEVEN:
            cases.append((P, M, UNEVEN[P]))
covering = [(1, 1, None), (2, 1, None), (2, 4, "[5, 2]"), (3, 3, None),
            (3, 6, "[1, 5, 1]"), (4, 2, None), (4, 8, "[3, 1, 1, 2]")]
for P, M, part in cases if FULL else covering:
    sets = ["stages=%d" % P, "microbatches=%d" % M]
    if part:
        sets.append("partition=" + part)
    name = "P=%d M=%d %s" % (P, M, "partition " + part if part else "auto partition")
    got, out, why = compile_run(sets, ["--input", PROMPTS], "p%dm%d%s" % (P, M, "u" if part else ""))
    ok = got is not None and got.shape == expected.shape and (got == expected).all()
    if not t.ok(ok, "greedy tokens equal transformers' generate: " + name):
        t.diag(why if got is None else "got\n%s\nexpected\n%s" % (got[:6], expected[:6]))
    if P == 2 and M == 4:
        kv = summary(out)
        ttft, tpot = float(kv.get("time_to_first_token", "-1")), float(
            kv.get("time_per_output_token", "-1"))
        tps, total = float(kv.get("tokens_per_s", "-1")), float(kv.get("generation_time", "-1"))
        t.ok(0 < ttft < total and tpot > 0 and
             abs(tpot - (total - ttft) / (N - 1)) <= 1e-6 * total + 1e-9 and
             abs(tps - B * N / total) <= 1e-3 * tps,
             "the run prints time to first token, per output token and tokens/s, consistent "
             "with the generation time (%s)" % {k: kv.get(k) for k in
                                                ("time_to_first_token", "time_per_output_token",
                                                 "tokens_per_s", "generation_time")})

# ---- disaggregated prefill: ranks 0..P-1 prefill, P..2P-1 decode ----
dcases = [(1, 1, None), (1, 3, None), (2, 2, None), (2, 4, "[5, 2]"), (3, 6, "[1, 5, 1]"),
          (4, 8, "[3, 1, 1, 2]"), (4, 3, None)]
for P, M, part in dcases if FULL else [(1, 3, None), (2, 4, "[5, 2]"), (3, 6, "[1, 5, 1]")]:
    sets = ["stages=%d" % P, "microbatches=%d" % M, "prefill=disaggregated"]
    if part:
        sets.append("partition=" + part)
    got, out, why = compile_run(sets, ["--input", PROMPTS], "d%dm%d" % (P, M))
    ok = got is not None and got.shape == expected.shape and (got == expected).all()
    if not t.ok(ok and "ranks: %d" % (2 * P) in out,
                "disaggregated prefill on %d + %d ranks, M=%d%s: tokens equal transformers'"
                % (P, P, M, ", partition " + part if part else "")):
        t.diag(why if got is None else "got\n%s\nexpected\n%s" % (got[:6], expected[:6]))

# --check-messages: the token ring and the cache hand-over cross a round (a
# round receives what the round before sent), and every message is checked
for sets, tag in ((["stages=2", "microbatches=4"], "chk-col"),
                  (["stages=2", "microbatches=4", "prefill=disaggregated"], "chk-dis")):
    got, out, why = compile_run(sets, ["--input", PROMPTS, "--check-messages"], tag)
    if not t.ok(got is not None and (got == expected).all(),
                "--check-messages, %s prefill: every token and cache message is the one the "
                "schedule says; tokens equal transformers'" % ("disaggregated" if "prefill="
                                                                "disaggregated" in sets
                                                                else "colocated")):
        t.diag(why)

# Negative control: other weights give other tokens, so the comparison can fail.
got, _, why = compile_run(["stages=2", "microbatches=2"], ["--input", PROMPTS], "noweights",
                          weights=False)
t.ok(got is not None and got.shape == expected.shape and (got[:, :T0] == prompts).all()
     and not (got == expected).all(),
     "negative control: initial weights keep the prompts and give other tokens")

# ---- eos: a row stops at its end-of-sequence id (kept), the rest of it is -1 ----
eos = int(expected[0, T0 + 4])   # some rows produce it, others never do
want = expected.copy()
for r in range(B):
    hit = [j for j in range(T0, T0 + N) if want[r, j] == eos]
    if hit:
        want[r, hit[0] + 1:] = -1
got, _, why = compile_run(["stages=2", "microbatches=3", "eos=%d" % eos], ["--input", PROMPTS],
                          "eos")
stopped = sum(1 for r in range(B) if eos in expected[r, T0:T0 + N - 1])
if not t.ok(got is not None and (got == want).all() and 0 < stopped < B,
            "eos = %d: %d rows stop at it (kept) and continue with -1; the others are unchanged"
            % (eos, stopped)):
    t.diag(why if got is None else "got\n%s\nwant\n%s" % (got[:6], want[:6]))

# ---- sampling: seeded per (row, round), so independent of P and M ----
samp = "sampling=sample(temperature = 0.9, top_k = 5, seed = 3)"
a, _, why_a = compile_run(["stages=1", "microbatches=1", samp], ["--input", PROMPTS], "s1")
b, _, why_b = compile_run(["stages=3", "microbatches=6", samp], ["--input", PROMPTS], "s3")
c, _, why_c = compile_run(["stages=2", "microbatches=2",
                           "sampling=sample(temperature = 0.9, top_k = 5, seed = 4)"],
                          ["--input", PROMPTS], "s4")
ok = a is not None and b is not None and c is not None
t.ok(ok and (a == b).all(), "sampled tokens are the same over 1 stage x 1 group and 3 stages "
     "x 6 groups")
if not ok:
    t.diag(why_a or why_b or why_c)
t.ok(ok and (a[:, :T0] == prompts).all() and a.min() >= 0 and a.max() < 40
     and not (a == expected).all() and not (a == c).all(),
     "sampled tokens are token ids, differ from greedy and change with the seed")
g1, _, why = compile_run(["stages=1", "microbatches=1",
                          "sampling=sample(temperature = 1, top_k = 1, seed = 9)"],
                         ["--input", PROMPTS], "topk1")
t.ok(g1 is not None and (g1 == expected).all(), "sample(top_k = 1) is greedy decoding")

d, _, why_d = compile_run(["stages=2", "microbatches=4", "prefill=disaggregated", samp],
                         ["--input", PROMPTS], "sd")
t.ok(d is not None and a is not None and (d == a).all(),
     "sampled tokens with disaggregated prefill equal the colocated ones")
e0 = int(expected[1, T0])     # row 1's first new token: a row can stop in the prefill
want0 = expected.copy()
for r in range(B):
    hit = [j for j in range(T0, T0 + N) if want0[r, j] == e0]
    if hit:
        want0[r, hit[0] + 1:] = -1
got, _, why = compile_run(["stages=2", "microbatches=2", "prefill=disaggregated",
                           "eos=%d" % e0], ["--input", PROMPTS], "deos")
if not t.ok(got is not None and (got == want0).all(),
            "eos = %d with disaggregated prefill: rows that stop in the prefill stay stopped"
            % e0):
    t.diag(why if got is None else "got\n%s\nwant\n%s" % (got[:6], want0[:6]))

# ---- shorter prompts: the same on every pipeline ----
short = os.path.join(tmp, "short.npy")
np.save(short, prompts[:, :2])
s1, _, w1 = compile_run(["stages=1", "microbatches=1"], ["--input", short], "short1")
s4, _, w4 = compile_run(["stages=4", "microbatches=8", "partition=[3, 1, 1, 2]"],
                        ["--input", short], "short4")
if not t.ok(s1 is not None and s4 is not None and s1.shape == (B, 2 + N) and (s1 == s4).all(),
            "prompts of 2 tokens (declared 4): [24, 10] tokens, equal on 1 and 4 stages"):
    t.diag(w1 or w4)

# ---- the schedule as data ----
r = sh([E.pipec, "schedule", MODEL, "--format", "csv", "--set", "stages=3",
        "--set", "microbatches=2"])
rows = [line.split(",") for line in r.stdout.splitlines()[1:]]
count = {}
for row in rows:
    count[(int(row[0]), row[2])] = count.get((int(row[0]), row[2]), 0) + 1
t.ok(r.returncode == 0 and count.get((0, "F")) == 2 and count.get((0, "DECODE")) == 2 * (N - 1)
     and count.get((0, "RECV_TOK")) == 2 * (N - 1) and count.get((2, "SEND_TOK")) == 2 * (N - 1)
     and (1, "SEND_TOK") not in count and (1, "RECV_TOK") not in count
     and all(0 <= int(row[4]) < 2 for row in rows),
     "csv: a prefill (F) and N-1 DECODEs per group and rank; the ring only between the "
     "last rank and the first; microbatch is the group")


def uniform_time(P, M, n):
    """The ring with unit steps and free messages: stage s starts group g's
    round t at max(M, P)*t + g + s, so the run lasts max(M, P)*(n-1) + M + P - 1."""
    return max(M, P) * (n - 1) + M + P - 1


bad = []
for P, M, n in [(1, 1, 8), (2, 1, 8), (2, 2, 8), (2, 5, 3), (3, 2, 8), (4, 4, 5), (4, 8, 2),
                (4, 3, 1)]:
    r = sh([E.pipec, "schedule", MODEL, "--cost", "uniform", "--set", "stages=%d" % P,
            "--set", "microbatches=%d" % M, "--set", "batch=%d" % (M * 2),
            "--set", "max_new_tokens=%d" % n])
    kv = summary(r.stdout)
    T = uniform_time(P, M, n)
    want_b = 1 - M * n / T
    if r.returncode != 0 or abs(float(kv.get("step_time", "nan")) - T) > 1e-9 or abs(
            float(kv.get("bubble_fraction", "nan")) - want_b) > 1e-9:
        bad.append((P, M, n, kv.get("step_time"), T, r.stderr[-300:]))
if not t.ok(not bad, "uniform cost: the run lasts max(M, P)(N-1) + M + P - 1 and the bubble is "
            "1 - MN / that, in 8 cases"):
    t.diag(bad)

r = sh([E.pipec, "schedule", MODEL, "--format", "chrome"])
try:
    ev = [e for e in json.loads(r.stdout)["traceEvents"] if e.get("ph") == "X"]
except ValueError:
    ev = []
rounds = {e["args"].get("round") for e in ev if e["args"]["op"] in ("F", "DECODE")}
t.ok(ev and rounds == set(range(N)) and any(e["args"]["op"] == "DECODE" for e in ev),
     "chrome: prefill and decode slices carry their round, 0 .. %d" % (N - 1))
trace = os.path.join(tmp, "trace.json")
got, _, why = compile_run(["stages=2", "microbatches=3"], ["--input", PROMPTS, "--trace", trace],
                          "trace")
try:
    tev = [e for e in json.load(open(trace))["traceEvents"] if e.get("ph") == "X"]
except (OSError, ValueError):
    tev = []
ops = [e["args"]["op"] for e in tev]
# every row runs N rounds; a group learns it has ended from the tokens of its
# last one, so round N runs it once more, empty, and sends no tokens
t.ok(got is not None and ops.count("F") == 2 * 3 and ops.count("DECODE") == 2 * 3 * N
     and ops.count("SEND_TOK") == 3 * N
     and {e["args"].get("round") for e in tev} == set(range(N + 1)),
     "--trace: the measured timeline has the prefills, decodes, tokens and rounds, and each "
     "group's empty last round")
r = sh([E.pipec, "schedule", MODEL, "--format", "torch"])
t.ok(r.returncode == 1 and "generate" in r.stderr, "--format torch refuses generate")

r = sh([E.pipec, "check", MODEL])
kvb = [line for line in r.stdout.splitlines() if line.strip().startswith("kv cache stage")]
# 4 blocks x keys and values x 24 rows... the model file's batch is 6: 6 x 12 positions x 16 x 4 B
per_block = 2 * 6 * (4 + N) * 16 * 4
t.ok(r.returncode == 0 and len(kvb) == 2 and
     sum(int(line.split(":")[1].split()[0].replace(",", "")) for line in kvb) == 4 * per_block,
     "check reports the key/value caches per stage: 4 blocks x %d bytes" % per_block)

# ---- bad prompts: exit 1, named, before any rank computes ----
d = os.path.join(tmp, "p2m3")
run = os.path.join(d, "run")
long_p = os.path.join(tmp, "long.npy")
np.save(long_p, np.zeros((B, 5), np.int32))
empty = os.path.join(tmp, "empty.npy")
o = prompts.copy()
o[5, :] = -1
np.save(empty, o)
oov = os.path.join(tmp, "oov.npy")
o = prompts.copy()
o[3, 1] = 40
np.save(oov, o)
r = sh([E.pipec, "compile", MODEL, "-o", d, "--set", "batch=%d" % B])
for path, what, needle in [(long_p, "prompts longer than the declared 4", "5"),
                           (empty, "an empty prompt (row 5 all -1)", "row 5"),
                           (oov, "a token id outside the vocabulary", "40")]:
    r = sh([run, "--weights-in", WEIGHTS, "--input", path])
    if not t.ok(r.returncode == 1 and needle in r.stderr and "Traceback" not in r.stderr,
                "%s: exit 1 with a message" % what):
        t.diag("exit %d: %s" % (r.returncode, r.stderr[-800:]))
r = sh([run, "--steps", "3"])
t.ok(r.returncode == 2 and "--max-new-tokens" in r.stderr, "--steps: exit 2, generation runs "
     "until every prompt has its tokens")
sys.exit(t.done())
