#!/usr/bin/python3
"""021-custom-schedule.t -- the custom schedule shipped in models/, end to end.

models/mlp4-zbv.pipe runs the seed MLP with schedule = file("orders/mlp4-zbv.csv"),
PyTorch's own ScheduleZBVZeroBubble order for 4 ranks and 8 micro-batches:
two stages per rank in a V (rank r holds stages r and 7 - r), so stages 3
and 4 meet on rank 3 and hand over locally, and a split backward whose
weight gradients fill the bubble.  This test checks, through the command
line, that

  - `pipec check` cuts the model into 8 stages placed as the file says;
  - `pipec schedule` reads the placement from the file, verifies the order,
    has no message between stages 3 and 4, beats zb-h1's and 1f1b's bubble
    at the same M, and `--format torch` gives the file back byte for byte;
  - `pipec compile` and 3 training steps under MPI give the same losses and
    --weights-out as the model on ONE stage (float32 tolerance), as the
    built-in 4-stage zb-h1 (bit for bit: same micro-batches, same sums), and
    as the independent numpy reference (t/ref/pipe_ref.py), with the
    untrained weights as a negative control;
  - other placements with local hand-offs train to the reference numbers
    too, on the small test model: PyTorch's ZB-V (also with recompute and
    with 2 replicas), interleaved zero-bubble and looped-BFS orders for 2
    ranks (t/fixtures/torch/), and a hand-written contiguous placement
    (rank 0 holds stages 0 and 1, rank 1 stages 2 and 3).
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tapy import TAP, env_setup  # noqa: E402

t = TAP()
E = env_setup(t)
ref = [E.python, os.path.join(E.src, "t", "ref", "pipe_ref.py")]
tmp = E.tmpdir("custom")
ZBV = os.path.join(E.src, "models", "mlp4-zbv.pipe")
ORDER = os.path.join(E.src, "models", "orders", "mlp4-zbv.csv")
CE = os.path.join(E.src, "t", "models", "small-ce.pipe")
FIX = os.path.join(E.src, "t", "fixtures", "torch")


def sh(cmd, **kw):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, **kw)


def pipec(*args):
    return sh([E.pipec] + list(args), timeout=300)


def bubble(text):
    m = re.search(r"^bubble_fraction: (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


t.plan(19)

# ---- check: 8 stages, placed as the file says
r = pipec("check", ZBV)
ranks = [int(m.group(1)) for m in re.finditer(r"^  \d+ +(\d+) +\S", r.stdout.split(
    "stage  rank")[-1], re.M)] if "stage  rank" in r.stdout else []
if not t.ok(r.returncode == 0 and "4 stages x 2 virtual" in r.stdout
            and ranks == [0, 1, 2, 3, 3, 2, 1, 0],
            "check: 4 stages x 2 virtual, stages 0..7 on ranks 0 1 2 3 3 2 1 0 (the V)"):
    t.diag(r.stderr or r.stdout)

# ---- schedule
r = pipec("schedule", ZBV, "--cost", "uniform")
zbv = bubble(r.stdout)
h1 = bubble(pipec("schedule", ZBV, "--cost", "uniform", "--set", "schedule=zb-h1",
                  "--set", "partition=[4, 4, 4, 3]").stdout)
one = bubble(pipec("schedule", ZBV, "--cost", "uniform", "--set", "schedule=1f1b",
                   "--set", "partition=[4, 4, 4, 3]").stdout)
if not t.ok(r.returncode == 0 and zbv is not None and h1 and one and zbv < h1 < one,
            "schedule --cost uniform: the order verifies; bubble %s < zb-h1's %s < 1f1b's %s"
            % (zbv, h1, one)):
    t.diag(r.stderr)
t.ok(r.stdout.startswith('file("') and "S = 8 stages (V = 2)" in r.stdout.replace("\n    ", " "),
     "schedule's text names the file and 8 stages, V = 2")
r = pipec("schedule", ZBV, "--format", "csv")
rows = [l.split(",") for l in r.stdout.splitlines()[1:]]
r3 = {(x[2], x[3]) for x in rows if x[0] == "3"}
t.ok(r.returncode == 0 and ("RECV_F", "3") in r3 and ("SEND_F", "4") in r3
     and ("SEND_F", "3") not in r3 and ("RECV_F", "4") not in r3
     and ("SEND_B", "4") not in r3 and ("RECV_B", "3") not in r3,
     "rank 3 hands stage 3's output to stage 4 (and the gradient back) with no message")
r = pipec("schedule", ZBV, "--format", "torch")
t.ok(r.returncode == 0 and r.stdout == open(ORDER).read(),
     "--format torch writes the file back byte for byte (PyTorch loads what pipec verified)")

# ---- compile and train: 3 steps, against one stage, zb-h1 and the reference
w0 = os.path.join(tmp, "w0.safetensors")
x = os.path.join(tmp, "x.npy")
y = os.path.join(tmp, "y.npy")
sh(ref + ["init", ZBV, "--seed", "3", "--out", w0], check=True)
sh(ref + ["data", ZBV, "--seed", "4", "--rows", "256", "--input", x, "--target", y],
   check=True)


def train(tag, model, sets, steps=3):
    d = os.path.join(tmp, tag)
    args = []
    for s in sets:
        args += ["--set", s]
    c = pipec("compile", model, "-o", d, *args)
    if c.returncode != 0:
        return None, c.stderr
    wout = os.path.join(tmp, tag + ".safetensors")
    r = sh([os.path.join(d, "run"), "--weights-in", w0, "--input", x, "--target", y,
            "--steps", str(steps), "--weights-out", wout, "--timeout", "120"], timeout=600)
    if r.returncode != 0:
        return None, r.stdout[-2000:] + r.stderr[-2000:]
    losses = [float(l.split()[3]) for l in r.stdout.splitlines() if l.startswith("step ")]
    return (wout, losses), r.stdout


def compare(a, b, rtol, atol):
    c = sh(ref + ["compare", a, b, "--rtol", str(rtol), "--atol", str(atol)])
    return c.returncode == 0, c.stdout.strip()


got, log = train("zbv", ZBV, [])
if not t.ok(got is not None and len(got[1]) == 3,
            "mlp4-zbv compiles and trains 3 steps on 4 ranks"):
    t.diag(log)
single, log1 = train("one", ZBV, ["stages=1", "schedule=1f1b"])
if not t.ok(single is not None, "the same model on one stage (1f1b, 8 micro-batches) trains"):
    t.diag(log1)
h1run, logh = train("h1", ZBV, ["schedule=zb-h1", "partition=[4, 4, 4, 3]"])
if not t.ok(h1run is not None, "the built-in zb-h1 on 4 stages trains"):
    t.diag(logh)
ok = got is not None and single is not None
if ok:
    same, msg = compare(got[0], single[0], 1e-5, 1e-6)
if not t.ok(ok and same, "--weights-out of the V-shaped order equals the one-stage run "
            "(rtol 1e-5, atol 1e-6)"):
    t.diag(msg if ok else "no weights")
t.ok(ok and all(abs(a - b) <= 1e-6 * abs(b) for a, b in zip(got[1], single[1])),
     "... and so do the losses (%s vs %s)" % (got[1] if got else None,
                                               single[1] if single else None))
ok2 = got is not None and h1run is not None
if ok2:
    same, msg = compare(got[0], h1run[0], 0, 0)
if not t.ok(ok2 and same and got[1] == h1run[1],
            "weights and losses equal the built-in zb-h1's bit for bit"):
    t.diag(msg if ok2 else "no weights")
wref = os.path.join(tmp, "ref.safetensors")
lref = os.path.join(tmp, "ref.txt")
rr = sh(ref + ["train", ZBV, "--weights", w0, "--input", x, "--target", y, "--steps", "3",
               "--weights-out", wref, "--losses", lref])
if got is not None and rr.returncode == 0:
    same, msg = compare(got[0], wref, 1e-4, 1e-5)
    want = [float(l.split()[3]) for l in open(lref) if l.startswith("step ")]
    if not t.ok(same and all(abs(a - b) <= 1e-5 * abs(b) for a, b in zip(got[1], want)),
                "weights and losses equal the numpy reference (rtol 1e-4, atol 1e-5)"):
        t.diag(msg)
    bad, msg = compare(w0, wref, 1e-4, 1e-5)
    t.ok(not bad, "negative control: the untrained weights fail that comparison (%s)" % msg)
else:
    t.ok(False, "weights and losses equal the numpy reference")
    t.diag(rr.stderr)
    t.ok(False, "negative control")

# ---- other placements with local hand-offs, on the small model
cw0 = os.path.join(tmp, "cw0.safetensors")
cx = os.path.join(tmp, "cx.npy")
cy = os.path.join(tmp, "cy.npy")
sh(ref + ["init", CE, "--seed", "3", "--out", cw0], check=True)
sh(ref + ["data", CE, "--seed", "4", "--rows", "24", "--input", cx, "--target", cy],
   check=True)
cref = os.path.join(tmp, "cref.safetensors")
sh(ref + ["train", CE, "--set=microbatches=4", "--weights", cw0, "--input", cx, "--target",
          cy, "--steps", "3", "--weights-out", cref, "--losses",
          os.path.join(tmp, "cref.txt")], check=True)
contig = os.path.join(tmp, "contig-p2-v2-m4.csv")
with open(contig, "w") as f:       # rank 0: stages 0, 1; rank 1: stages 2, 3
    f.write("0F0,1F0,0F1,1F1,0F2,1F2,0F3,1F3,1B0,0B0,1B1,0B1,1B2,0B2,1B3,0B3\n"
            "2F0,3F0,2F1,3F1,2F2,3F2,3B0,2B0,2F3,3F3,3B1,2B1,3B2,2B2,3B3,2B3\n")
ZBV2 = os.path.join(FIX, "zbv-p2-v2-m4.csv")
for k, (name, path, extra) in enumerate((
        ("PyTorch's ZB-V (rank r: r, 3-r)", ZBV2, []),
        ("PyTorch's ZB-V with recompute [1, 0.5] (each rank's ratio on its two stages)",
         ZBV2, ["recompute=[1, 0.5]"]),
        ("PyTorch's ZB-V on 2 replicas (4 ranks, all-reduce per stage)", ZBV2,
         ["replicas=2"]),
        ("PyTorch's interleaved zero-bubble", os.path.join(FIX, "interleavedzb-p2-v2-m4.csv"),
         []),
        ("PyTorch's looped BFS", os.path.join(FIX, "loopedbfs-p2-v2-m4.csv"), []),
        ("a contiguous placement (rank 0: 0, 1; rank 1: 2, 3)", contig, []))):
    tag = "small%d" % k
    d = os.path.join(tmp, tag)
    sets = []
    for e in ["stages=2", "microbatches=4", "partition=auto",
              'schedule=file("%s")' % path] + extra:
        sets += ["--set", e]
    c = pipec("compile", CE, "-o", d, *sets)
    wout = os.path.join(tmp, tag + ".safetensors")
    r = c
    if c.returncode == 0:
        r = sh([os.path.join(d, "run"), "--weights-in", cw0, "--input", cx, "--target", cy,
                "--steps", "3", "--weights-out", wout, "--timeout", "120", "--quiet"],
               timeout=600)
    same, msg = compare(wout, cref, 1e-4, 1e-5) if r.returncode == 0 else (False, "")
    if not t.ok(same, "small model, %s: trains to the reference weights" % name):
        t.diag(msg or (r.stdout[-1500:] + r.stderr[-1500:]))

sys.exit(t.done())
