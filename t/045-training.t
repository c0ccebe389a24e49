#!/usr/bin/python3
"""045-training.t -- training for real equals PyTorch in float64.

The oracle is t/fixtures/train, written once by t/fixtures/gen_training.py
(PyTorch 2.15, float64; see its header): torch.optim.AdamW / SGD with their
knobs and `decay = matrices` as two parameter groups, a LambdaLR with
docs/training.md's warm-up / cosine / linear formulas, clip_grad_norm_ over
every parameter (the tied GPT-2 embedding once), epochs over 5 batches plus
a partial one (dropped), and the evaluation over every row of an evaluation
set of 2 batches plus a partial one (its padding left out of the mean).
Clipping acts on some steps and not on others (the generator asserts it).

Every run below compiles t/models/train-mlp.pipe or train-gpt2.pipe under
one schedule, runs it with --weights-in (the fixture's float32 initial
weights), --input/--target, --eval-input/--eval-target, --eval-every and
--metrics, and compares
  * every `step N loss L` line (stdout),
  * every `eval step N loss L` line: exactly the steps --eval-every asks
    for (every N-th and the last, once), with the fixture's eval loss,
  * every metrics line: loss (the same as stdout's), lr, grad_norm (before
    clipping), and the eval lines,
  * the weights --weights-out writes after the last step.

Tolerances.  pipec computes in float32, the oracle in float64.  The
generator runs the same training in float32 with torch and records its
deviation (t/fixtures/train/*.json, "f32"): at most 7e-7 relative in the
losses, 1.1e-6 in the grad norms, and weights within 0.11 of the weight
tolerance below (max |diff| 5e-5), over 24 steps.  pipec sums in other
orders (per micro-batch, per stage, across replicas, in its BLAS), which
is rounding of the same size.  Measured: today's pipec, given the part of
this recipe it already had (Adam, constant lr, no clipping, 5 whole
batches), reproduced the float64 losses to 2.8e-6 (MLP, 24 steps) and
2.7e-8 (GPT-2, 12 steps), the weights within 0.11 and 0.01 of the weight
tolerance; the new optimizer runtime, given the whole recipe in its
program table by hand (every case, --no-eval --whole-batches), the
losses to 6.6e-7, the grad norms to 8.7e-7, the lr to 2e-16 and the
weights within 0.05 of the tolerance.  So, with room for other BLAS
builds and machines: losses and eval losses 5e-5 relative, grad norms
1e-4 relative, lr 1e-5 relative (a metrics file may print fewer digits
than %.17g), weights |a - b| <= 2e-4 + 2e-3 |b| (Adam divides by
sqrt(v), which magnifies rounding in small gradients; 040 uses 1e-3/1e-4
for 4 Adam steps).  The generator also records how far each feature moves
the numbers when it is left out or done wrongly ("effects": no clipping
31 to 47 weight tolerances, decay on every tensor 19 to 82, no warm-up 15%
in the losses, the partial batch not dropped 30%, the eval's padding
averaged in 54%, the tied gradient counted twice 24% in the norm, 2BW run
synchronously 514 weight tolerances) and asserts each is at least 5 times
its tolerance; the first test here re-checks that from the fixtures, so
the comparisons can fail.

The GPT-2's key bias (the middle third of attn.c_attn.bias) is left out of
the weight comparison, as in 040-transformers.t: its gradient is zero in
exact arithmetic, so each side's is rounding noise, which Adam turns into
steps of arbitrary sign.

pipedream-2bw is compared against its own oracle: the generator trains with
its documented rule (docs/schedules.md: step t computes with W(t-1),
W(-1) = W(0), and applies the gradient to W(t)), the lr of step t being the
schedule's at t, and the evaluation after step t using W(t), the weights
--weights-out would write then.

`make check` runs the covering subset; PIPEC_FULL=1 (make check-full) adds
the other schedules and placements.  Piecewise:

    t/045-training.t --list               # the cases' names
    t/045-training.t mlp-1f1b gpt2-zb-v   # only those (any substring matches)
    PIPEC_KEEP=/tmp/k t/045-training.t mlp-2bw   # keep programs and outputs

and, to check some features before others exist, `--no-eval` (no
evaluation set: its checks are skipped) and `--whole-batches` (the data
files' first 5 batches only: the same numbers, since the partial batch is
dropped, without needing epochs over a partial batch); `--verbose`
prints the worst deviation of every comparison, passed or not.
"""
import json
import math
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tapy import TAP, env_setup, import_numpy  # noqa: E402

# name, model, fixture, --set's, extra run arguments, eval every (None: last only),
# in make check (else check-full only)
MLP_SGD_SETS = ["optimizer=sgd(lr=0.2,momentum=0.9,nesterov=true,weight_decay=0.01)",
                "decay=all", "lr_schedule=linear(warmup=2,total=18,min_lr=0.01)",
                "clip_grad_norm=0.6"]
CASES = [
    ("mlp-1f1b", "mlp", "mlp", [], 4, True),
    ("mlp-gpipe", "mlp", "mlp", ["schedule=gpipe"], 4, False),
    ("mlp-interleaved", "mlp", "mlp", ["schedule=interleaved(2)"], 4, True),
    ("mlp-zb-h1", "mlp", "mlp", ["schedule=zb-h1"], 4, False),
    ("mlp-zb-v", "mlp", "mlp", ["schedule=zb-v"], 4, True),
    ("mlp-replicas2", "mlp", "mlp", ["replicas=2", "microbatches=2"], 4, True),
    ("mlp-2bw", "mlp", "mlp_2bw", ["schedule=pipedream-2bw", "partition=[4,4]"], 4, True),
    ("mlp-4stages-gpipe", "mlp", "mlp", ["stages=4", "schedule=gpipe", "partition=[2,2,2,2]"],
     5, False),
    ("mlp-1f1b-recompute", "mlp", "mlp", ["recompute=[1,0.5]"], 4, False),
    ("mlp-2bw-3stages", "mlp", "mlp_2bw", ["schedule=pipedream-2bw", "stages=3",
                                           "partition=[3,3,2]"], 4, False),
    ("mlp-sgd-1f1b", "mlp", "mlp_sgd", MLP_SGD_SETS, None, True),
    ("mlp-sgd-zb-h1", "mlp", "mlp_sgd", MLP_SGD_SETS + ["schedule=zb-h1"], 6, False),
    ("gpt2-1f1b", "gpt2", "gpt2", [], 5, True),
    ("gpt2-gpipe", "gpt2", "gpt2", ["stages=3", "schedule=gpipe"], 5, False),
    ("gpt2-interleaved", "gpt2", "gpt2", ["schedule=interleaved(2)"], 4, False),
    ("gpt2-zb-h1", "gpt2", "gpt2", ["schedule=zb-h1"], 5, False),
    ("gpt2-zb-v", "gpt2", "gpt2", ["schedule=zb-v"], 4, True),
    ("gpt2-replicas2", "gpt2", "gpt2", ["replicas=2", "microbatches=2"], 5, False),
    ("gpt2-1stage", "gpt2", "gpt2", ["stages=1", "microbatches=2"], 5, False),
]
TOL = dict(loss=5e-5, lr=1e-5, grad_norm=1e-4, weight_rtol=2e-3, weight_atol=2e-4)
EFFECT_MARGIN = 5     # gen_training.py asserts each effect is this many tolerances
TESTS_PER_CASE = 7
PREFIX = "mlp-prefix"      # the --steps 10 run, after the cases

if "--list" in sys.argv[1:]:
    for c in CASES:
        print("%-20s %s%s" % (c[0], " ".join(c[3]) or "(as written)",
                              "" if c[5] else "   [check-full]"))
    print("%-20s %s" % (PREFIX, "--steps 10 of 24, --eval-every 4"))
    sys.exit(0)

t = TAP()
E = env_setup(t)
np = import_numpy(t, E)
sys.path.insert(0, os.path.join(E.src, "t", "ref"))
from pipe_ref import read_safetensors  # noqa: E402

FX = os.path.join(E.src, "t", "fixtures", "train")
MODELS = {"mlp": os.path.join(E.src, "t", "models", "train-mlp.pipe"),
          "gpt2": os.path.join(E.src, "t", "models", "train-gpt2.pipe")}
DATA = {"mlp": ["--weights-in", "mlp_init.safetensors", "--input", "mlp_x.npy",
                "--target", "mlp_y.npy", "--eval-input", "mlp_eval_x.npy",
                "--eval-target", "mlp_eval_y.npy"],
        "gpt2": ["--weights-in", "gpt2_init.safetensors", "--input", "gpt2_ids.npy",
                 "--eval-input", "gpt2_eval_ids.npy"]}
keep = os.environ.get("PIPEC_KEEP")
tmp = keep or E.tmpdir("training")
os.makedirs(tmp, exist_ok=True)

only = [a for a in sys.argv[1:] if not a.startswith("-")]
NO_EVAL = "--no-eval" in sys.argv[1:]
WHOLE = "--whole-batches" in sys.argv[1:]
VERBOSE = "--verbose" in sys.argv[1:]      # the worst deviation of every comparison
full = os.environ.get("PIPEC_FULL")
cases = [c for c in CASES if (any(o in c[0] for o in only) if only else full or c[5])]
do_prefix = not only or any(o in PREFIX for o in only)
if only and not cases and not do_prefix:
    t.skip_all("no case matches %s (--list shows them)" % " ".join(only))
fixtures = {k: json.load(open(os.path.join(FX, k + ".json")))
            for k in sorted({c[2] for c in cases} | ({"mlp"} if do_prefix else set()))}


def fx(arg):
    """A fixture's path; with --whole-batches a training file's first 5 batches."""
    path = os.path.join(FX, arg) if arg.endswith((".npy", ".safetensors")) else arg
    if WHOLE and arg in ("mlp_x.npy", "mlp_y.npy", "gpt2_ids.npy"):
        cut = os.path.join(tmp, "whole-" + arg)
        a = np.load(path)
        np.save(cut, a[:5 * (16 if arg.startswith("mlp") else 8)])
        path = cut
    return path


def run_args_of(model, every):
    args = []
    for a in DATA[model]:
        if NO_EVAL and (a.startswith("--eval-") or "_eval_" in a):
            continue
        args.append(fx(a))
    return args + (["--eval-every", str(every)] if every and not NO_EVAL else [])


def close(got, want, rtol, atol=0.0):
    return len(got) == len(want) and all(
        isinstance(g, (int, float)) and math.isfinite(g) and abs(g - w) <= atol + rtol * abs(w)
        for g, w in zip(got, want))


def worst(got, want):
    pairs = [(i + 1, g, w) for i, (g, w) in enumerate(zip(got, want))
             if isinstance(g, (int, float))]
    if not pairs:
        return "nothing to compare (got %d values, want %d)" % (len(got), len(want))
    i, g, w = max(pairs, key=lambda p: abs(p[1] - p[2]) / max(abs(p[2]), 1e-30))
    return "worst at step %d: got %.9g, want %.9g (rel %.2g); %d values, want %d" % (
        i, g, w, abs(g - w) / max(abs(w), 1e-30), len(got), len(want))


def eval_steps(steps, every):
    """The steps after which --eval-every EVERY evaluates: every EVERY-th and the last."""
    s = list(range(every, steps + 1, every)) if every else []
    return s if s and s[-1] == steps else s + [steps]


def parse_stdout(text):
    losses, evals = [], []
    for line in text.splitlines():
        w = line.split()
        if len(w) == 4 and w[0] == "step" and w[2] == "loss":
            losses.append((int(w[1]), float(w[3])))
        elif len(w) == 5 and w[:2] == ["eval", "step"] and w[3] == "loss":
            evals.append((int(w[2]), float(w[4])))
    return losses, evals


def parse_metrics(path):
    """(step records, eval records, problems): every line one JSON object."""
    steps, evals, bad = [], [], []
    try:
        lines = open(path).read().splitlines()
    except OSError as e:
        return [], [], ["cannot read %s: %s" % (path, e)]
    for n, line in enumerate(lines, 1):
        try:
            o = json.loads(line)
        except ValueError:
            bad.append("line %d is not JSON: %r" % (n, line[:80]))
            continue
        if not isinstance(o, dict) or not isinstance(o.get("step"), int):
            bad.append("line %d has no integer step: %r" % (n, line[:80]))
        elif "eval_loss" in o:
            evals.append(o)
        elif all(k in o for k in ("loss", "lr", "grad_norm", "step_time", "samples_per_s")):
            steps.append(o)
        else:
            bad.append("line %d lacks one of loss, lr, grad_norm, step_time, samples_per_s: "
                       "%r" % (n, line[:120]))
    return steps, evals, bad


def weights_pair(got_path, want_path, model):
    A, B = read_safetensors(got_path), read_safetensors(want_path)
    if model == "gpt2":
        for X in (A, B):          # the key bias: rounding noise on both sides (header)
            for k in X:
                if k.endswith("attn.c_attn.bias"):
                    X[k] = X[k].copy()
                    X[k][16:32] = 0
    return A, B


def weight_units(got_path, want_name, model):
    """The largest |a - b| / (atol + rtol |b|) over every weight."""
    A, B = weights_pair(got_path, os.path.join(FX, want_name), model)
    return max(float((np.abs(A[k] - B[k]) /
                      (TOL["weight_atol"] + TOL["weight_rtol"] * np.abs(B[k]))).max()) for k in B)


def compare_weights(got_path, want_path, model):
    try:
        A, B = weights_pair(got_path, want_path, model)
    except (OSError, ValueError, AssertionError) as e:
        return "cannot read the weights: %s" % e
    if sorted(A) != sorted(B):
        return "names differ: %s" % sorted(set(A) ^ set(B))
    bad = []
    for k in sorted(B):
        if A[k].shape != B[k].shape:
            bad.append("%s shape %s, want %s" % (k, A[k].shape, B[k].shape))
            continue
        units = np.abs(A[k] - B[k]) / (TOL["weight_atol"] + TOL["weight_rtol"] * np.abs(B[k]))
        if not np.all(units <= 1):
            bad.append("%s (max |diff| %.3g, %.1f tolerances)" % (
                k, np.abs(A[k] - B[k]).max(), units.max()))
    return ", ".join(bad[:4]) + (" and %d more" % (len(bad) - 4) if len(bad) > 4 else "")


def run_case(name, model, fixture, sets, every):
    want = fixtures[fixture]
    steps = want["steps"]
    d = os.path.join(tmp, name)
    metrics = os.path.join(tmp, name + ".jsonl")
    wout = os.path.join(tmp, name + "-final.safetensors")
    args = []
    for s in sets:
        args += ["--set", s]
    r = subprocess.run([E.pipec, "compile", MODELS[model], "-o", d] + args,
                       capture_output=True, text=True)
    run_args = run_args_of(model, every) + ["--metrics", metrics, "--weights-out", wout]
    if r.returncode == 0:
        try:
            r = subprocess.run([os.path.join(d, "run")] + run_args, capture_output=True,
                               text=True, timeout=600)
        except subprocess.TimeoutExpired:
            r = subprocess.CompletedProcess(r.args, 124, "", "timed out after 600 s")
        why = "run %s: exit %d\n%s%s" % (" ".join(run_args), r.returncode, r.stdout[-1500:],
                                          r.stderr[-1500:])
    else:
        why = "pipec compile %s: exit %d\n%s" % (" ".join(args), r.returncode, r.stderr[-1500:])
    what = "%s (%s)" % (name, " ".join(sets) or "as written")
    if not t.ok(r.returncode == 0, "%s compiles and trains %d steps%s"
                % (what, steps, "" if NO_EVAL else " with an evaluation set")):
        t.diag(why)
        for k in range(TESTS_PER_CASE - 1):
            t.ok(False, "%s: comparison %d of %d (nothing ran)" % (name, k + 2, TESTS_PER_CASE))
        return

    losses, evals = parse_stdout(r.stdout)
    got = [L for _, L in losses]
    ok = [s for s, _ in losses] == list(range(1, steps + 1)) and \
        close(got, want["loss"], TOL["loss"])
    if not t.ok(ok, "%s: every step's loss equals PyTorch's" % name) or VERBOSE:
        t.diag(worst(got, want["loss"]))

    wsteps = [] if NO_EVAL else eval_steps(steps, every)
    wevals = [want["eval_loss"][s - 1] for s in wsteps]
    ok = [s for s, _ in evals] == wsteps and close([L for _, L in evals], wevals, TOL["loss"])
    if NO_EVAL:
        t.ok(True, "%s: the eval losses # SKIP --no-eval" % name)
    elif not t.ok(ok, "%s: eval losses after steps %s equal PyTorch's (every row, padding "
                  "left out)" % (name, ",".join(map(str, wsteps)))):
        t.diag("got eval steps %s, want %s" % ([s for s, _ in evals], wsteps))
        t.diag(worst([L for _, L in evals], wevals))
    elif VERBOSE:
        t.diag(worst([L for _, L in evals], wevals))

    msteps, mevals, bad = parse_metrics(metrics)
    ok = not bad and [o["step"] for o in msteps] == list(range(1, steps + 1)) and \
        [o["step"] for o in mevals] == wsteps and \
        close([o["loss"] for o in msteps], got, 1e-5) and \
        close([o["eval_loss"] for o in mevals], [L for _, L in evals], 1e-5)
    if not t.ok(ok, "%s: --metrics has one JSON line per step and per evaluation, their "
                "losses those printed" % name):
        t.diag("; ".join(bad[:3]) or "steps %s, evals %s" % (
            [o["step"] for o in msteps], [o["step"] for o in mevals]))

    glr = [o.get("lr") for o in msteps]
    kind = want["recipe"]["sched"]["kind"]
    if not t.ok(close(glr, want["lr"], TOL["lr"], 1e-12),
                "%s: every step's lr is the schedule's (%s)" % (name, kind)) or VERBOSE:
        t.diag(worst(glr, want["lr"]))

    gnorm = [o.get("grad_norm") for o in msteps]
    ncl = sum(want["clipped"])
    if not t.ok(close(gnorm, want["grad_norm"], TOL["grad_norm"]),
                "%s: every step's grad_norm equals clip_grad_norm_'s (%d of %d steps clip)"
                % (name, ncl, steps)) or VERBOSE:
        t.diag(worst(gnorm, want["grad_norm"]))

    bad = compare_weights(wout, os.path.join(FX, want["final"]), model)
    if not t.ok(not bad, "%s: the weights after %d steps equal PyTorch's" % (name, steps)):
        t.diag(bad)
    elif VERBOSE:
        t.diag("weights within %.3g of the tolerance" % weight_units(wout, want["final"], model))


# ---------------------------------------------------------------- the plan

t.plan(2 + TESTS_PER_CASE * len(cases) + (1 if do_prefix else 0))

# The fixtures back the tolerances: float32 arithmetic alone stays well
# inside them, and every feature moves the numbers well outside.
probs = []
for k, f in fixtures.items():
    d32 = f["f32"]
    if not (d32["loss"] < TOL["loss"] / 4 and d32["eval_loss"] < TOL["loss"] / 4
            and d32["grad_norm"] < TOL["grad_norm"] / 4
            and d32["weights_in_tolerance_units"] < 0.25):
        probs.append("%s: torch's own float32 run is too close to the tolerances: %s" % (k, d32))
    for what, v in f["effects"].items():
        tol = 1.0 if "weights" in what else TOL["grad_norm"] if "norm" in what else TOL["loss"]
        if v < EFFECT_MARGIN * tol:
            probs.append("%s: %s moves the numbers by %g only" % (k, what, v))
    if not (0 < sum(f["clipped"]) < len(f["clipped"])):
        probs.append("%s: clipping acts on %d of %d steps" % (k, sum(f["clipped"]),
                                                             len(f["clipped"])))
if not t.ok(not probs, "the fixtures' float32 deviations sit inside the tolerances, each "
            "feature's effect at least %dx outside, and some steps clip, some not"
            % EFFECT_MARGIN):
    t.diag("\n".join(probs))

# Negative control: the initial weights fail the weight comparison.
k = sorted(fixtures)[0]
m = "gpt2" if k.startswith("gpt2") else "mlp"
t.ok(bool(compare_weights(os.path.join(FX, m + "_init.safetensors"),
                          os.path.join(FX, fixtures[k]["final"]), m)),
     "the weight comparison rejects untrained weights (negative control)")

for name, model, fixture, sets, every, _ in cases:
    run_case(name, model, fixture, sets, every)

# --steps shorter than compiled: the schedule's horizon stays the pipeline's
# steps (24), so the first 10 steps are the fixture's, and the last step (10)
# is evaluated too.
if do_prefix:
    want = fixtures["mlp"]
    d = os.path.join(tmp, "prefix")
    metrics = os.path.join(tmp, "prefix.jsonl")
    r = subprocess.run([E.pipec, "compile", MODELS["mlp"], "-o", d], capture_output=True,
                       text=True)
    if r.returncode == 0:
        r = subprocess.run([os.path.join(d, "run")] + run_args_of("mlp", 4) +
                           ["--steps", "10", "--metrics", metrics],
                           capture_output=True, text=True, timeout=600)
    losses, evals = parse_stdout(r.stdout) if r.returncode == 0 else ([], [])
    msteps = parse_metrics(metrics)[0] if r.returncode == 0 else []
    ok = r.returncode == 0 and [s for s, _ in losses] == list(range(1, 11)) and \
        close([L for _, L in losses], want["loss"][:10], TOL["loss"]) and \
        [s for s, _ in evals] == ([] if NO_EVAL else [4, 8, 10]) and \
        close([L for _, L in evals], [want["eval_loss"][s - 1] for s in
                                      ([] if NO_EVAL else (4, 8, 10))], TOL["loss"]) \
        and close([o.get("lr") for o in msteps], want["lr"][:10], TOL["lr"], 1e-12)
    if not t.ok(ok, "mlp --steps 10 of 24: the first 10 steps' losses and lr (the cosine's "
                "horizon stays 24), evaluations after steps 4, 8 and 10"):
        t.diag("exit %d: %s%s" % (r.returncode, r.stdout[-800:], r.stderr[-800:])
               if r.returncode else "losses %s\nevals %s" % (losses, evals))

sys.exit(t.done())
