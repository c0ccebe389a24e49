#!/usr/bin/python3
"""048-checkpoint.t -- checkpoints survive a crash and resume bit for bit.

Oracles, each independent of the checkpoint code:
  * the uninterrupted run: N steps with --save-every K.  The same program
    killed (SIGKILL, one rank, PIPERT_FAULT) after step K+1, or killed while
    rank 0 writes a checkpoint (PIPERT_FAULT_CKPT), then resumed, must print
    every later loss and write final weights bit for bit equal to it --
    1f1b, pipedream-2bw and bf16 here, interleaved, pipedream, replicas 2
    and bf16 2BW under PIPEC_FULL=1.  Adam, so that the optimizer's state
    and step count matter (a resume that lost them changes the numbers).
    The resumed run is not given --save-every: it keeps the checkpoint's,
    and with it pipedream's segments.  One pipedream model has 64 KB
    messages, which wait for the peer's next step (the per-step stop vote
    must not block between steps there);
  * pipedream-2bw keeps its older weight version across a drain, so a run
    cut into segments by --save-every equals the plain run bit for bit, with
    dropout (masks by global step; a segment that counted from 0 would
    differ);
  * resumed at another stage count and schedule: within float rounding of
    the uninterrupted run (rtol 1e-5 on losses and weights, numpy);
  * SIGINT to DIR/run mid-run with --checkpoint: exit 130, a checkpoint at
    the last printed step, and the resumed run equals an uninterrupted run
    of the same steps (1f1b; 2BW under PIPEC_FULL=1);
  * the file layout against the spec: PyTorch's optimizer names for every
    parameter, the last two checkpoints kept, no temporaries left;
  * a truncated, a garbled and a foreign checkpoint: exit 1 naming the file.
"""
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tapy import TAP, env_setup, losses_of, reference_data  # noqa: E402

t = TAP()
E = env_setup(t)
FULL = bool(os.environ.get("PIPEC_FULL"))
tmp = E.tmpdir("ckpt")
CE = os.path.join(E.src, "t", "models", "small-ce.pipe")
MSE = os.path.join(E.src, "t", "models", "small-mse.pipe")
# 72 rows: 3 batches of 24, so 6 steps cycle through two epochs
w0, X, Y = reference_data(E, CE, "ce", 72, tmp)
_, XM, YM = reference_data(E, MSE, "mse", 32, tmp)
DATA = ["--input", X, "--target", Y, "--quiet"]
W0 = ["--weights-in", w0]      # fresh runs; a resumed one has the checkpoint's
ADAM = "optimizer=adam(lr=0.01)"

# Messages of 64 KB between the stages: past the MPI library's eager limit,
# a send completes only when the peer's next step receives it (an
# asynchronous rank that waited on a collective between its steps would
# deadlock here; small-ce's 512-byte messages never show it)
WIDE = os.path.join(tmp, "wide.pipe")
with open(WIDE, "w") as f:
    f.write("""model wide {
    input  x : f32[batch, 12];
    target y : i32[batch];
    layer fc1  : linear(12, 4096);
    layer act1 : relu;
    layer head : linear(4096, 5);
    loss cross_entropy;
}
pipeline {
    stages = 2; batch = 24; microbatches = 6; schedule = pipedream;
    partition = [2, 1]; optimizer = adam(lr = 0.001); steps = 4; seed = 1;
}
""")

# small-ce with a dropout layer (p > 0), for the dropout-by-global-step check
DROP = os.path.join(tmp, "small-drop.pipe")
with open(CE) as f:
    src = f.read()
with open(DROP, "w") as f:
    f.write(src.replace("layer act1 : gelu;", "layer act1 : gelu;\n    layer drop : dropout(0.3);"))


def sh(cmd, env=None, timeout=300):
    e = dict(os.environ)
    e.pop("PIPERT_FAULT", None)
    e.pop("PIPERT_FAULT_CKPT", None)
    e.update(env or {})
    return subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=timeout)


progs = {}


def prog(tag, sets, model=CE):
    """Compiles once; the program directory."""
    if tag not in progs:
        d = os.path.join(tmp, tag)
        r = sh([E.pipec, "compile", model, "-o", d] + sum([["--set", s] for s in sets], []))
        if r.returncode != 0:
            t.diag("compile %s: %s" % (tag, r.stderr[-800:]))
        progs[tag] = d
    return progs[tag]


def run(d, args, env=None):
    return sh([os.path.join(d, "run")] + args, env=env)


def read_st(path):
    """safetensors -> {name: (shape, bytes)}, read with its own parser here."""
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    h = json.loads(raw[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        out[k] = (v["shape"], raw[8 + n + b:8 + n + e], v["dtype"])
    return out


def floats(blob):
    import numpy as np
    return np.frombuffer(blob, dtype="<f4").astype("float64")


def say(r):
    t.diag("status %d\n%s%s" % (r.returncode, r.stdout[-600:], r.stderr[-1200:]))


def crash_and_resume(tag, sets, model=CE, data=DATA, steps=6, K=2, init=True):
    """Uninterrupted vs killed after step K+1 and resumed: bit for bit."""
    W0 = globals()["W0"] if init else []
    d = prog(tag, sets, model)
    full_dir, kill_dir = os.path.join(tmp, tag + "-F"), os.path.join(tmp, tag + "-K")
    wf, wr = os.path.join(tmp, tag + "-full.st"), os.path.join(tmp, tag + "-res.st")
    common = data + ["--steps", str(steps), "--save-every", str(K)]
    full = run(d, common + W0 + ["--checkpoint", full_dir, "--weights-out", wf])
    killed = run(d, common + W0 + ["--checkpoint", kill_dir],
                 env={"PIPERT_FAULT": "kill:1:%d:0" % (K + 2)})
    latest = os.path.realpath(os.path.join(kill_dir, "latest"))
    res = run(d, data + ["--steps", str(steps), "--resume", kill_dir, "--weights-out", wr])
    lf, lr = losses_of(full.stdout), losses_of(res.stdout)
    good = (full.returncode == 0 and killed.returncode != 0 and res.returncode == 0 and
            os.path.basename(latest) == "step-%d" % K and len(lf) == steps and
            lf[K:] == lr and open(wf, "rb").read() == open(wr, "rb").read())
    t.ok(good, "%s: killed after step %d, resumed from step-%d: losses %d..%d and final "
         "weights bit for bit the uninterrupted run's" % (tag, K + 1, K, K + 1, steps))
    if not good:
        for r in (full, killed, res):
            say(r)
    return full_dir, wf, lf


# ---- 1. crash and resume, bit for bit ----

P2 = ["stages=2", "partition=[4, 4]", ADAM]
fdir, wfull, lfull = crash_and_resume("1f1b", P2)
crash_and_resume("2bw", P2 + ["schedule=pipedream-2bw"])
crash_and_resume("bf16", P2 + ["dtype=bf16"])
crash_and_resume("pipedream-wide", [], model=WIDE, init=False)
if FULL:
    crash_and_resume("interleaved", ["stages=2", "schedule=interleaved(2)", "partition=auto", ADAM])
    crash_and_resume("pipedream", P2 + ["schedule=pipedream"])
    crash_and_resume("replicas", P2 + ["replicas=2"])
    crash_and_resume("bf16-2bw", P2 + ["dtype=bf16", "schedule=pipedream-2bw"])
    crash_and_resume("sgd-momentum", ["stages=2", "partition=[4, 4]",
                                      "optimizer=sgd(lr=0.05, momentum=0.9)"])

# ---- 2. the layout ----

names = sorted(os.listdir(fdir))
t.ok(names == ["latest", "step-4", "step-6"] and os.readlink(os.path.join(fdir, "latest")) == "step-6",
     "the directory keeps the last two checkpoints, latest -> step-6, no temporaries")
if names != ["latest", "step-4", "step-6"]:
    t.diag(" ".join(names))
model = read_st(os.path.join(fdir, "step-6", "model.safetensors"))
opt = read_st(os.path.join(fdir, "step-6", "optimizer.safetensors"))
want = set()
for k, (shape, _, _) in model.items():
    want |= {k + ".exp_avg", k + ".exp_avg_sq", k + ".step"}
good = (set(opt) == want and all(opt[k + ".exp_avg"][0] == model[k][0] for k in model) and
        all(opt[k + ".step"][0] == [] and floats(opt[k + ".step"][1])[0] == 6 for k in model))
t.ok(good, "optimizer.safetensors: exp_avg, exp_avg_sq (the parameter's shape) and step (a "
     "scalar, 6) for every parameter of model.safetensors")
if not good:
    t.diag("%s vs %s" % (sorted(opt)[:6], sorted(want)[:6]))
good = open(os.path.join(fdir, "step-6", "model.safetensors"), "rb").read() == open(wfull, "rb").read()
t.ok(good, "model.safetensors is what --weights-out writes")
st = json.load(open(os.path.join(fdir, "step-6", "state.json")))
good = (st.get("step") == 6 and st.get("model") == "small_ce" and st["optimizer"]["step"] == 6 and
        st["data"]["batches_per_epoch"] == 3 and st["data"]["epoch"] == 2 and
        st["data"]["batch_in_epoch"] == 0)
t.ok(good, "state.json: step 6, model small_ce, Adam's step count, epoch 2 batch 0 of 3")
if not good:
    t.diag(json.dumps(st))

# ---- 3. killed while a checkpoint is written ----

d = prog("1f1b", P2)
kd = os.path.join(tmp, "mid-save")
r = run(d, DATA + W0 + ["--steps", "6", "--save-every", "2", "--checkpoint", kd],
        env={"PIPERT_FAULT_CKPT": "4"})
left = sorted(os.listdir(kd))
good = (r.returncode != 0 and os.readlink(os.path.join(kd, "latest")) == "step-2" and
        any(n.startswith("step-4.tmp-") for n in left) and
        sorted(os.listdir(os.path.join(kd, "step-2"))) ==
        ["model.safetensors", "optimizer.safetensors", "state.json"])
t.ok(good, "killed while writing step-4: latest still names the whole step-2, the partial "
     "one is a temporary")
if not good:
    t.diag(" ".join(left))
    say(r)
wr = os.path.join(tmp, "mid-save.st")
r = run(d, DATA + ["--steps", "6", "--resume", kd, "--weights-out", wr])
good = (r.returncode == 0 and losses_of(r.stdout) == lfull[2:] and
        open(wr, "rb").read() == open(wfull, "rb").read() and
        not any(".tmp-" in n for n in os.listdir(kd)))
t.ok(good, "resumed: bit for bit the uninterrupted run, the dead writer's temporary removed")
if not good:
    say(r)
    t.diag(" ".join(sorted(os.listdir(kd))))

# ---- 4. 2BW: segments do not change its numbers (dropout by global step) ----

d = prog("2bw-drop", ["stages=2", "partition=[5, 4]", ADAM, "schedule=pipedream-2bw"], model=DROP)
plain = run(d, DATA + W0 + ["--steps", "6"])
seg = run(d, DATA + W0 + ["--steps", "6", "--checkpoint", os.path.join(tmp, "2bw-seg"), "--save-every", "2"])
good = plain.returncode == 0 and seg.returncode == 0 and plain.stdout == seg.stdout and \
    len(losses_of(plain.stdout)) == 6
t.ok(good, "pipedream-2bw with dropout: drained every 2 steps, the losses are the plain run's bit "
     "for bit")
if not good:
    say(plain)
    say(seg)

# ---- 5. another stage count, schedule, replica count ----


def close(a, b, rtol=1e-5):
    import numpy as np
    a, b = np.asarray(a, dtype="float64"), np.asarray(b, dtype="float64")
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= rtol * (np.abs(b) + 1e-3)))


others = [("p4-gpipe", ["stages=4", "partition=[2, 2, 2, 2]", "schedule=gpipe", ADAM])]
if FULL:
    others += [("p1", ["stages=1", "partition=[8]", ADAM]),
               ("p2-r2-zb", ["stages=2", "partition=[3, 5]", "replicas=2", "schedule=zb-h1", ADAM])]
at2 = os.path.join(tmp, "at-2")     # the 1f1b run's checkpoint after step 2
r = run(prog("1f1b", P2), DATA + W0 + ["--steps", "2", "--checkpoint", at2])
if r.returncode != 0:
    say(r)
for tag, sets in others:
    d = prog(tag, sets)
    src = os.path.join(tmp, "from-" + tag)
    shutil.copytree(at2, src, symlinks=True)
    wo = os.path.join(tmp, tag + ".st")
    r = run(d, DATA + ["--steps", "6", "--resume", src, "--weights-out", wo])
    ok = r.returncode == 0 and close(losses_of(r.stdout), lfull[2:])
    if ok:
        a, b = read_st(wo), read_st(wfull)
        ok = set(a) == set(b) and all(close(floats(a[k][1]), floats(b[k][1])) for k in a)
    t.ok(ok, "the 1f1b P=2 checkpoint resumed as %s: losses and weights within 1e-5" % tag)
    if not ok:
        say(r)

# ---- 6. SIGINT ----


def sigint(tag, sets):
    """SIGINT mid-run: 130, a checkpoint at the last printed step, resumable,
    and (1f1b, 2BW: a drain changes nothing) bit for bit."""
    d = prog(tag, sets)
    sd = os.path.join(tmp, "sigint-" + tag)
    e = dict(os.environ)
    e.pop("PIPERT_FAULT", None)
    outf = os.path.join(tmp, "sigint-%s.out" % tag)
    with open(outf, "w") as fo:
        # as a job in the foreground of a terminal: SIGINT not ignored (make
        # check's driver runs tests in the background, where it is), its own
        # process group so that a failure below can end all of it
        p = subprocess.Popen([os.path.join(d, "run")] + DATA + W0 + ["--steps", "1000000",
                             "--checkpoint", sd], stdout=fo, stderr=subprocess.PIPE, text=True,
                             env=e, start_new_session=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for _ in range(600):            # the ranks run: stop them mid-run
        time.sleep(0.1)
        if "step " in open(outf).read():
            break
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    t0 = time.time()
    try:
        _, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGTERM)       # mpirun ends the ranks
        try:
            _, err = p.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            _, err = p.communicate()
    took = time.time() - t0
    printed = losses_of(open(outf).read())
    state = json.load(open(os.path.join(sd, "latest", "state.json"))) if os.path.exists(
        os.path.join(sd, "latest")) else {}
    good = p.returncode == 130 and state.get("step") == len(printed) and len(printed) >= 1 and \
        took < 20
    t.ok(good, "%s: SIGINT to DIR/run: exit 130 within seconds, the checkpoint at the last "
         "printed step" % tag)
    if not good:
        t.diag("status %s after %.1f s, %d losses, state %s\n%s" % (
            p.returncode, took, len(printed), state, err[-1500:]))
    n = len(printed)
    r1 = run(d, DATA + ["--steps", str(n + 3), "--resume", sd])
    r2 = run(d, DATA + W0 + ["--steps", str(n + 3)])
    good = r1.returncode == 0 and losses_of(r1.stdout) == losses_of(r2.stdout)[n:] and \
        len(losses_of(r1.stdout)) == 3
    t.ok(good, "%s: resumed after SIGINT (step %d): steps %d..%d bit for bit an uninterrupted "
         "run's" % (tag, n, n + 1, n + 3))
    if not good:
        say(r1)


sigint("1f1b", P2)
if FULL:
    sigint("2bw", P2 + ["schedule=pipedream-2bw"])

# ---- 7. bad checkpoints and steps ----
# Each refused twice: by DIR/run's checks before any rank starts
# (pipert-check), and by the ranks themselves (PIPEC_RUNTIME_CHECK=/bin/true
# skips the former, as a job started under mpirun by hand would).


def bad(desc, path_args, want_status, pre, ranks):
    for how, env, needles in (("DIR/run's check", None, pre),
                              ("the ranks", {"PIPEC_RUNTIME_CHECK": "/bin/true"}, ranks)):
        if needles is None:
            continue
        r = run(prog("1f1b", P2), DATA + path_args, env=env)
        good = r.returncode == want_status and all(x in r.stderr for x in needles) and \
            "loss" not in r.stdout
        t.ok(good, "%s (%s)" % (desc, how))
        if not good:
            say(r)


dmg = os.path.join(tmp, "damaged")
shutil.copytree(fdir, dmg, symlinks=True)
mfile = os.path.join(dmg, "step-6", "model.safetensors")
with open(mfile, "r+b") as f:
    f.truncate(os.path.getsize(mfile) // 2)
bad("a truncated model.safetensors: exit 1 naming it", ["--steps", "8", "--resume", dmg], 1,
    [os.path.join(dmg, "latest", "model.safetensors")], [mfile])
gbl = os.path.join(tmp, "garbled")
shutil.copytree(fdir, gbl, symlinks=True)
sfile = os.path.join(gbl, "step-6", "state.json")
with open(sfile, "w") as f:
    f.write('{"format": "pipec-checkpoint", "format_version": 1, "step": ')
bad("a garbled state.json: exit 1 naming it", ["--steps", "8", "--resume", gbl], 1,
    [os.path.join(gbl, "latest", "state.json")], [sfile, "damaged"])
dm = prog("mse", ["stages=2", "partition=[4, 3]", ADAM], model=MSE)
fdir2 = os.path.join(tmp, "foreign")
r = sh([os.path.join(dm, "run"), "--input", XM, "--target", YM, "--steps", "2", "--quiet",
        "--checkpoint", fdir2])
bad("a checkpoint of another model: exit 1 naming the file", ["--steps", "8", "--resume", fdir2],
    1, [os.path.join(fdir2, "latest", "model.safetensors")],
    [os.path.join(fdir2, "step-2", "state.json"), "another model"])
none = os.path.join(tmp, "none")
os.makedirs(none)
bad("no checkpoint in the directory: exit 1 naming DIR/latest", ["--steps", "8", "--resume", none],
    1, [os.path.join(none, "latest")], [os.path.join(none, "latest")])
bad("--steps below the checkpoint's step: exit 2", ["--steps", "4", "--resume", fdir], 2,
    None, ["at step 6 already"])
r = run(prog("1f1b", P2), DATA + ["--steps", "6", "--resume", fdir])
t.ok(r.returncode == 0 and "nothing to run" in r.stderr and "loss" not in r.stdout,
     "--steps equal to the checkpoint's step: a note, exit 0")
bad("--resume with --weights-in: exit 2 (which weights?)",
    ["--steps", "8", "--resume", fdir] + W0, 2, None, ["--weights-in"])
bad("a new run into a directory holding a checkpoint: exit 2, pointing at --resume",
    ["--steps", "2", "--checkpoint", fdir], 2, None, ["--resume " + fdir])

t.done()
