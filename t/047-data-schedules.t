#!/usr/bin/python3
"""047-data-schedules.t -- epochs and --shuffle on every kind of schedule, and
inference over a whole file, through pipec-compiled programs.

Oracles:
  * --shuffle's order is the documented Fisher-Yates permutation of each
    epoch (docs/training.md, "Shuffling"), reimplemented here in Python: a
    shuffled run over X must equal, bit for bit (losses and --weights-out),
    an unshuffled run over the file that lists each epoch's batches in that
    order.  This holds for synchronous schedules, replicas and pipedream's
    asynchronous keys alike, whatever the schedule does with the rows.
    A negative control (the unshuffled run over X) must differ.
  * inference over 60 rows (2.5 batches) writes every row's output, equal to
    t/ref/pipe_ref.py's float64 forward of the whole file.
"""
import filecmp
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tapy import TAP, compile_and_run, env_setup, reference_data  # noqa: E402

t = TAP()
E = env_setup(t)
import numpy as np  # noqa: E402  (env_setup checked E.python has it; this is that python)

tmp = E.tmpdir("data")
CE = os.path.join(E.src, "t", "models", "small-ce.pipe")
B, SEED, ROWS, STEPS = 24, 1, 60, 5          # small-ce: batch 24, seed 1
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(E.src, "t", "ref"))
import shuffle_ref  # noqa: E402


def perm(n, epoch):
    return shuffle_ref.perm(SEED, n, epoch)


w0, x, y = reference_data(E, CE, "ce", ROWS, tmp)
nb = ROWS // B
epochs = (STEPS + nb - 1) // nb
order = np.concatenate([perm(ROWS, e)[:nb * B] for e in range(epochs)])
xp, yp = os.path.join(tmp, "xp.npy"), os.path.join(tmp, "yp.npy")
np.save(xp, np.load(x)[order])
np.save(yp, np.load(y)[order])

CASES = [
    ("1f1b", ["stages=2", "microbatches=3", "partition=[4,4]"]),
    ("gpipe, replicas 2", ["schedule=gpipe", "stages=2", "replicas=2", "microbatches=2",
                           "partition=[4,4]"]),
    ("interleaved", ["schedule=interleaved(2)", "stages=2", "microbatches=4"]),
    ("pipedream", ["schedule=pipedream", "stages=2", "microbatches=3", "partition=[4,4]"]),
]
t.plan(3 * len(CASES) + 2)


def run(tag, sets, data, extra=()):
    wout = os.path.join(tmp, tag + "-w.safetensors")
    r, why = compile_and_run(E, CE, os.path.join(tmp, tag), sets,
                             ["--weights-in", w0, "--input", data[0], "--target", data[1],
                              "--steps", str(STEPS), "--weights-out", wout] + list(extra),
                             timeout=300)
    if not r:
        t.diag(why)
        return None, None
    return [l for l in r.stdout.splitlines() if l.startswith("step ")], wout


for i, (name, sets) in enumerate(CASES):
    la, wa = run("s%d" % i, sets, (x, y), ["--shuffle"])
    lb, wb = run("p%d" % i, sets, (xp, yp))
    lc, _ = run("u%d" % i, sets, (x, y))
    same = la is not None and lb is not None and len(la) == STEPS and la == lb
    if not t.ok(same, "%s: --shuffle's losses are the run's over the permuted file, bit for bit"
                % name):
        t.diag("shuffled %s\npermuted file %s" % (la, lb))
    t.ok(same and filecmp.cmp(wa, wb, shallow=False),
         "%s: ... and so are its final weights" % name)
    t.ok(lc is not None and la is not None and lc != la,
         "%s: the unshuffled run differs (the check can fail)" % name)

# Inference over 2.5 batches: every row, in order, against the reference.
out, oref = os.path.join(tmp, "inf.npy"), os.path.join(tmp, "inf-ref.npy")
sets = ["schedule=inference", "optimizer=none", "stages=2", "microbatches=3", "partition=[4,4]"]
r, why = compile_and_run(E, CE, os.path.join(tmp, "inf"), sets,
                         ["--weights-in", w0, "--input", x, "--output", out], timeout=300)
t.ok(r is not None and "steps: 3" in r.stdout.splitlines(),
     "inference over 60 rows runs ceil(60/24) = 3 steps")
if r is None:
    t.diag(why)
rr = subprocess.run([E.python, os.path.join(E.src, "t", "ref", "pipe_ref.py"), "train", CE]
                    + ["--set=" + s for s in sets]
                    + ["--weights", w0, "--input", x, "--target", y, "--steps", "1",
                       "--output", oref], capture_output=True, text=True)
ok = r is not None and rr.returncode == 0 and os.path.exists(out)
if ok:
    a, b = np.load(out), np.load(oref)
    ok = a.shape == b.shape == (ROWS, 5) and np.allclose(a, b, rtol=1e-4, atol=1e-6)
    if not ok:
        t.diag("output %s, reference %s" % (a.shape, b.shape))
t.ok(ok, "--output holds all 60 rows' outputs, [60, 5], equal to the float64 forward")
sys.exit(t.done())
