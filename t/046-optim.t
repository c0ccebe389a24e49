#!/usr/bin/python3
"""046-optim.t -- the optimizers' knobs, learning-rate schedules, gradient
clipping and the run's reports (docs/training.md) against t/ref/pipe_ref.py.

pipe_ref.py is a numpy (float64) implementation written from the spec:
torch.optim's SGD (momentum, weight decay, nesterov), Adam (L2), AdamW
(decoupled), `decay = matrices`, the three schedules' formulas and
torch.nn.utils.clip_grad_norm_.  Each case compiles a small model, sets the
new rt_program fields in the emitted rank programs (the ones a .pipe's
`optimizer = adamw(...)`, `lr_schedule = ...`, `decay`, `clip_grad_norm`
compile to), runs it with --metrics and compares, step by step, the loss,
the learning rate and the gradient norm of the metrics file, then the final
weights, with the reference given the spec's forms of the same settings.

Tolerances: losses rtol 1e-5 and weights as t/010 (float32 against
float64); the learning rate is computed in double on both sides (rtol
1e-12); the norm is a float32 gradient's (rtol 1e-5).  Clipping cases
check that the threshold lies between the step norms, so some steps clip
and some do not.  Negative controls: the same comparison rejects a run
without the weight decay, and one with the norm counted on every replica.

The tied head of a GPT-2 (t/models/tiny-gpt2.pipe): its gradient norm is
the same at P = 1 (one copy) and P = 2 (a copy on each end, counted once),
and at replicas 2.
"""
import json
import math
import os
import pty
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tapy import TAP, env_setup, losses_of, reference_data  # noqa: E402

t = TAP()
E = env_setup(t)
ref = [E.python, os.path.join(E.src, "t", "ref", "pipe_ref.py")]
tmp = E.tmpdir("optim")
CE = os.path.join(E.src, "t", "models", "small-ce.pipe")
GPT = os.path.join(E.src, "t", "models", "tiny-gpt2.pipe")
w0, X, Y = reference_data(E, CE, "ce", 48, tmp)


def sh(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


FIELDS = ("optim", "lr", "momentum", "beta1", "beta2", "eps", "weight_decay", "nesterov",
          "decay_matrices", "lr_schedule", "lr_warmup", "lr_total", "min_lr",
          "clip_grad_norm")


def c_fields(opt, keys):
    """The rt_program initialiser fields of the spec's settings."""
    kind, a = opt
    f = {"optim": "RT_OPTIM_" + kind.upper(), "lr": a["lr"],
         "momentum": a.get("momentum", 0), "beta1": a.get("beta1", 0.9),
         "beta2": a.get("beta2", 0.999), "eps": a.get("eps", 1e-8),
         "weight_decay": a.get("weight_decay", 0.01 if kind == "adamw" else 0),
         "nesterov": int(a.get("nesterov", 0)),
         "decay_matrices": int(keys.get("decay") == "matrices"),
         "clip_grad_norm": keys.get("clip_grad_norm", 0)}
    m = re.match(r"(\w+)(?:\((.*)\))?$", keys.get("lr_schedule", "constant"))
    f["lr_schedule"] = "RT_LR_" + m.group(1).upper()
    for kv in (m.group(2) or "").split(","):
        if kv:
            k, v = kv.split("=")
            f[{"warmup": "lr_warmup", "total": "lr_total", "min_lr": "min_lr"}[k]] = v
    return f


def patch(d, fields):
    """Sets FIELDS in every rank's rt_program initialiser, then the run
    script rebuilds the ranks.  Any the emitter already wrote go first."""
    for name in os.listdir(d):
        if not re.match(r"rank\d+\.c$", name):
            continue
        path = os.path.join(d, name)
        src = open(path).read()
        for k in FIELDS:
            src = re.sub(r"\.%s = [^,\n]*,\s*" % k, "", src)
        init = "".join(".%s = %s, " % (k, v) for k, v in fields.items())
        src, n = re.subn(r"(\n\t\.steps = )", "\n\t" + init + r"\1", src, count=1)
        if n != 1:
            raise SystemExit("046-optim.t: no .steps in " + path)
        open(path, "w").write(src)


def opt_spec(opt):
    kind, a = opt
    return "%s(%s)" % (kind, ",".join(
        "%s=%s" % (k, ("true" if v else "false") if k == "nesterov" else repr(v))
        for k, v in a.items()))


def metrics_of(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def reference(sets, steps, tag):
    wref = os.path.join(tmp, tag + "-ref.safetensors")
    lref = os.path.join(tmp, tag + "-ref.txt")
    log = os.path.join(tmp, tag + "-ref.log")
    r = sh(ref + ["train", CE] + ["--set=" + s for s in sets] + [
        "--weights", w0, "--input", X, "--target", Y, "--steps", str(steps),
        "--weights-out", wref, "--losses", lref, "--log", log])
    if r.returncode != 0:
        raise SystemExit("046-optim.t: the reference failed: " + r.stderr)
    rows = []
    for line in open(log):
        _, s, _, lr, _, g = line.split()
        rows.append((int(s), float(lr), None if g == "none" else float(g)))
    return wref, losses_of(open(lref).read()), rows


def run(sets, fields, steps, tag, extra=()):
    """Compiles with the pipeline keys of SETS that pipec knows (the
    optimizer's fields come from the patch), runs with --metrics."""
    d = os.path.join(tmp, tag)
    args = []
    for s in sets:
        if s.split("=")[0] not in ("optimizer", "decay", "lr_schedule", "clip_grad_norm"):
            args += ["--set", s]
    r = sh([E.pipec, "compile", CE, "-o", d] + args)
    if r.returncode != 0:
        return None, None, "compile: " + r.stderr
    patch(d, fields)
    m = os.path.join(tmp, tag + ".jsonl")
    w = os.path.join(tmp, tag + ".safetensors")
    r = sh([os.path.join(d, "run"), "--weights-in", w0, "--input", X, "--target", Y,
            "--steps", str(steps), "--weights-out", w, "--metrics", m] + list(extra),
           timeout=600)
    if r.returncode != 0:
        return None, None, "run: " + r.stdout[-1500:] + r.stderr[-1500:]
    return r, (w, metrics_of(m)), ""


def close(a, b, rtol, atol=0.0):
    return a is not None and b is not None and abs(a - b) <= atol + rtol * abs(b)


def case(name, opt, keys, sets, steps=6, clips=False, control=None, ltol=1e-5, gtol=1e-5):
    """One configuration: 4 tests (losses, lr, norm, weights), one more if
    it clips, one more with a negative control.  ltol, gtol: the losses'
    and norms' relative tolerances (16-bit programs: a value near a rounding
    tie lands one 16-bit step apart now and then, as in t/044)."""
    pkeys = dict(keys)
    spec = ["optimizer=" + opt_spec(opt)] + ["%s=%s" % kv for kv in pkeys.items()] + sets
    tag = "c%d" % case.n
    case.n += 1
    if clips:
        # the threshold between the norms of an unclipped run: some steps clip
        _, _, rows = reference([s for s in spec if not s.startswith("clip_grad_norm")]
                               + ["clip_grad_norm=1e30"], steps, tag + "-free")
        norms = sorted(g for _, _, g in rows)
        pkeys["clip_grad_norm"] = "%.6g" % norms[len(norms) // 2]
        spec = ["optimizer=" + opt_spec(opt)] + ["%s=%s" % kv for kv in pkeys.items()] + sets
    wref, lref, rows = reference(spec, steps, tag)
    # pipedream logs an update per micro-batch, each with its step's lr
    rows = list({s: (s, lr, g) for s, lr, g in rows}.values())
    if clips:
        X_ = float(pkeys["clip_grad_norm"])
        above = sum(g > X_ for _, _, g in rows)
        t.ok(0 < above < len(rows), "%s: clip_grad_norm %s clips %d of %d steps"
             % (name, pkeys["clip_grad_norm"], above, len(rows)))
    r, got, why = run(spec, c_fields(opt, pkeys), steps, tag)
    if r is None:
        for what in ("losses", "lr", "grad_norm", "weights"):
            t.ok(False, "%s: %s (%s)" % (name, what, why.splitlines()[0] if why else ""))
        t.diag(why)
        return None
    w, met = got
    loss = losses_of(r.stdout)
    ok = len(loss) == len(lref) == steps and all(close(a, b, ltol, 1e-7)
                                                 for a, b in zip(loss, lref))
    if not t.ok(ok, "%s: losses equal the reference" % name):
        t.diag("got %s, want %s" % (loss, lref))
    ok = len(met) == steps and all(m["step"] == s and close(m["lr"], lr, 1e-12)
                                   for m, (s, lr, _) in zip(met, rows))
    if not t.ok(ok, "%s: every step's lr equals the schedule's formula" % name):
        t.diag("got %s, want %s" % ([m.get("lr") for m in met], [x[1] for x in rows]))
    if "clip_grad_norm" in pkeys:
        ok = all(close(m.get("grad_norm"), g, gtol) for m, (_, _, g) in zip(met, rows))
        desc = "every step's grad_norm equals the reference's"
    else:
        ok = all("grad_norm" not in m for m in met)
        desc = "no grad_norm where nothing computes it"
    if not t.ok(ok, "%s: %s" % (name, desc)):
        t.diag("got %s, want %s" % ([m.get("grad_norm") for m in met], [x[2] for x in rows]))
    tol = ["--rtol", "1e-3", "--atol", "1e-4"] if "adam" in opt[0] else \
        ["--rtol", "1e-4", "--atol", "1e-5"]
    c = sh(ref + ["compare", w, wref] + tol)
    if not t.ok(c.returncode == 0, "%s: weights equal the reference" % name):
        t.diag(c.stdout)
    if control:
        # the same comparison rejects a reference without this case's point
        cw, _, _ = reference([s for s in spec if not s.startswith(control[0])] + [control[1]],
                             steps, tag + "-ctl")
        c = sh(ref + ["compare", w, cw] + tol)
        t.ok(c.returncode != 0, "%s: the weights differ from a run with %s (negative control)"
             % (name, control[1]))
    return met


case.n = 0

# SGD: momentum, weight decay on matrices only, nesterov; linear warm-up/decay
case("sgd nesterov wd decay=matrices linear", ("sgd", {"lr": 0.1, "momentum": 0.9,
     "weight_decay": 0.05, "nesterov": 1}),
     {"decay": "matrices", "lr_schedule": "linear(warmup=2,total=5,min_lr=0.01)"}, [],
     control=("decay", "decay=all"))
# SGD momentum without nesterov, constant after warm-up, clipping, gpipe
case("sgd momentum constant(warmup) clip gpipe", ("sgd", {"lr": 0.2, "momentum": 0.8,
     "weight_decay": 0.01}),
     {"lr_schedule": "constant(warmup=3)"}, ["schedule=gpipe"], clips=True)
# Adam with L2 weight decay, cosine, replicas 2
case("adam wd cosine replicas=2", ("adam", {"lr": 0.01, "weight_decay": 0.1}),
     {"lr_schedule": "cosine(warmup=2,total=6)"}, ["replicas=2", "microbatches=3"],
     control=("optimizer", "optimizer=adam(lr=0.01)"))
# AdamW, decay = matrices, cosine past its horizon, clipping, 1f1b P = 4
case("adamw decay=matrices cosine clip", ("adamw", {"lr": 0.01, "beta1": 0.8, "beta2": 0.99,
     "eps": 1e-6, "weight_decay": 0.1}),
     {"decay": "matrices", "lr_schedule": "cosine(warmup=2,total=5,min_lr=0.001)"}, [],
     clips=True, control=("decay", "decay=all"))
# the same with replicas 2 on zb-h1: the norm counts each gradient once
case("adamw clip replicas=2 zb-h1", ("adamw", {"lr": 0.01, "weight_decay": 0.1}),
     {"decay": "matrices", "lr_schedule": "cosine(warmup=1,total=6)"},
     ["schedule=zb-h1", "replicas=2", "microbatches=4"], clips=True)
# interleaved, linear without warm-up, clipping, sgd
case("sgd clip interleaved(2) linear", ("sgd", {"lr": 0.3}),
     {"lr_schedule": "linear(total=6)"},
     ["schedule=interleaved(2)", "stages=2", "partition=auto"], clips=True)
# pipedream-2bw: one update a step, the schedule by step, clipping
case("adamw clip pipedream-2bw", ("adamw", {"lr": 0.01}),
     {"lr_schedule": "cosine(warmup=2,total=6)"}, ["schedule=pipedream-2bw", "stages=2",
     "partition=[4,4]", "microbatches=2"], clips=True)
# pipedream: one update per micro-batch, each with its step's learning rate
case("sgd pipedream linear(warmup)", ("sgd", {"lr": 0.1, "momentum": 0.5}),
     {"lr_schedule": "linear(warmup=2,total=5)"}, ["schedule=pipedream", "stages=2",
     "partition=[4,4]", "microbatches=2"], steps=4)

# bf16: the norm of the f32 gradients, the update of the f32 master weights
case("adamw clip bf16", ("adamw", {"lr": 0.01, "weight_decay": 0.1}),
     {"decay": "matrices", "lr_schedule": "cosine(warmup=2,total=6)"}, ["dtype=bf16"],
     clips=True, ltol=5e-5, gtol=1e-4)

# ---- The tied GPT-2 head: counted once in the norm. ----


def gpt_norms(sets, tag):
    d = os.path.join(tmp, tag)
    args = []
    for s in sets:
        args += ["--set", s]
    r = sh([E.pipec, "compile", GPT, "-o", d] + args)
    if r.returncode != 0:
        return None, "compile: " + r.stderr
    patch(d, c_fields(("adamw", {"lr": 0.01, "weight_decay": 0.1}),
                      {"decay": "matrices", "clip_grad_norm": 0.5}))
    m = os.path.join(tmp, tag + ".jsonl")
    r = sh([os.path.join(d, "run"), "--steps", "3", "--metrics", m], timeout=600)
    if r.returncode != 0:
        return None, "run: " + r.stdout[-1500:] + r.stderr[-1500:]
    return [x["grad_norm"] for x in metrics_of(m)], losses_of(r.stdout)


one, l1 = gpt_norms(["stages=1", "partition=auto", "schedule=gpipe"], "gpt1")
two, l2 = gpt_norms([], "gpt2")
rep, l3 = gpt_norms(["replicas=2", "microbatches=2"], "gpt3")
if one is None or two is None or rep is None:
    for _ in range(3):
        t.ok(False, "tiny GPT-2 runs")
    t.diag(str((l1, l2, l3)))
else:
    t.ok(all(0.5 < g for g in one[:1]), "tiny GPT-2: the first step's norm %.6g is above "
         "the threshold (it clips)" % one[0])
    t.ok(all(close(a, b, 1e-5) for a, b in zip(two, one)) and len(two) == 3,
         "tiny GPT-2: the norm with the tied head on another stage equals one copy's "
         "(%s vs %s)" % (two, one))
    t.ok(all(close(a, b, 1e-5) for a, b in zip(rep, one)) and len(rep) == 3
         and all(close(a, b, 1e-5) for a, b in zip(l3, l1)),
         "tiny GPT-2: replicas 2 give the same norms and losses")

# ---- Reports: --log-every, metrics of a diverged run, the progress line. ----
sets = ["optimizer=sgd(lr=0.1)"]
r, got, why = run(sets, c_fields(("sgd", {"lr": 0.1}), {}), 5, "log", ["--log-every", "2"])
steps = [int(x.split()[1]) for x in (r.stdout if r else "").splitlines()
         if x.startswith("step ")]
t.ok(steps == [2, 4, 5], "--log-every 2 over 5 steps prints steps 2, 4 and the last (%s)" % steps)
t.ok(got is not None and [m["step"] for m in got[1]] == [1, 2, 3, 4, 5]
     and all(set(m) == {"step", "loss", "lr", "step_time", "samples_per_s"} for m in got[1]),
     "--metrics has a line per step with loss, lr, step_time, samples_per_s")
r, got, why = run(sets, c_fields(("sgd", {"lr": '__builtin_nan("")'}), {}), 3, "nan")
if r is None:
    t.ok(False, "a diverging run completes (%s)" % why)
    t.ok(False, "its note")
else:
    t.ok(any(m["loss"] is None for m in got[1])
         and open(os.path.join(tmp, "nan.jsonl")).read().count("null") > 0,
         "a non-finite loss is null in the metrics (JSON has no NaN)")
    t.ok(r.stderr.count("the training diverged") == 1, "and the note says so once")

# The progress line on a terminal: stderr a pseudo-terminal.
master, slave = pty.openpty()
p = subprocess.Popen([os.path.join(tmp, "log", "run"), "--weights-in", w0, "--input", X,
                      "--target", Y, "--steps", "4", "--quiet"], stdout=subprocess.PIPE,
                     stderr=slave, text=True)
out, _ = p.communicate(timeout=600)
os.close(slave)
chunks = []
while True:
    try:
        b = os.read(master, 4096)
    except OSError:
        break
    if not b:
        break
    chunks.append(b)
os.close(master)
tty = b"".join(chunks).decode(errors="replace")
t.ok(p.returncode == 0 and re.search(r"\rstep 4/4  [0-9.e+]+ samples/s  ETA 00:00", tty)
     and tty.endswith("\r\033[K") and "\r" not in out,
     "on a terminal a progress line rewrites itself and is cleared at the end")
if not t.ok(len(losses_of(out)) == 4, "the step lines stay on stdout"):
    t.diag(repr(out))
sys.exit(t.done())
