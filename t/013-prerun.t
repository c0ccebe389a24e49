#!/usr/bin/python3
"""013-prerun.t -- what DIR/run refuses before it builds or starts a rank.

Each bad option, data file, weights file, output or hostfile is refused by
pipert-check within 2 s, with the documented exit status (2 options and
hostfile, 1 files), one line per problem, none of the MPI launcher's noise,
no rank program built and nothing written.  The data files are written by
numpy, the weights file by hand (the safetensors layout), so the shapes the
checker reads are not the runtime's own idea of them.  A good set of files
passes and the run goes on; Ctrl-C and SIGTERM end a run with 130 and 143.
"""
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tapy import TAP, env_setup  # noqa: E402

t = TAP()
E = env_setup(t)
tmp = E.tmpdir("prerun")
CE = os.path.join(E.src, "t", "models", "small-ce.pipe")     # B = 24, 12 features, 5 classes
BERT = os.path.join(E.src, "t", "models", "tiny-bert.pipe")  # ids, mask, types: T <= 9
t.plan(35)


def sh(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def compile_(model, d):
    r = sh([E.pipec, "compile", model, "-o", d])
    if r.returncode != 0:
        t.diag(r.stderr)
    return r.returncode == 0


def fresh(model, tag):
    d = os.path.join(tmp, tag)
    compile_(model, d)
    return d


def ranks_built(d):
    return [f for f in os.listdir(d) if f.startswith("rank") and not f.endswith(".c")]


# numpy writes the data files
gen = """
import numpy as np, sys
d = sys.argv[1]
np.save(d + '/x.npy', np.zeros((48, 12), np.float32))
np.save(d + '/y.npy', np.zeros(48, np.int32))
np.save(d + '/x13.npy', np.zeros((48, 13), np.float32))
np.save(d + '/x10.npy', np.zeros((10, 12), np.float32))
np.save(d + '/yf.npy', np.zeros(48, np.float32))
np.save(d + '/y30.npy', np.zeros(30, np.int64))
np.save(d + '/ids.npy', np.zeros((16, 8), np.int32))
np.save(d + '/idsf.npy', np.zeros((16, 8), np.float32))
np.save(d + '/ids99.npy', np.zeros((16, 99), np.int64))
np.save(d + '/mask7.npy', np.ones((16, 7), np.int32))
np.save(d + '/m.npy', np.zeros((32, 10), np.float32))
np.save(d + '/t5.npy', np.zeros((32, 5), np.float32))
np.save(d + '/x3d.npy', np.zeros((48, 3, 4), np.float32))
np.save(d + '/x43.npy', np.zeros((48, 4, 3), np.float32))
np.save(d + '/e10.npy', np.zeros((10, 12), np.float32))
np.save(d + '/ey10.npy', np.zeros(10, np.int32))
np.save(d + '/ey9.npy', np.zeros(9, np.int32))
"""
r = sh([E.python, "-c", gen, tmp])
if r.returncode != 0:
    t.diag(r.stderr)
open(os.path.join(tmp, "junk.npy"), "w").write("not numpy")


def safetensors(path, tensors):
    """tensors: name -> shape (F32 zeros)."""
    hdr, off = {}, 0
    for name, shape in tensors.items():
        n = 4
        for s in shape:
            n *= s
        hdr[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(hdr).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + bytes(off))


CE_PARAMS = {"fc1.weight": (32, 12), "fc1.bias": (32,), "norm.weight": (32,), "norm.bias": (32,),
             "fc2.weight": (24, 32), "fc2.bias": (24,), "fc3.weight": (16, 24),
             "head.weight": (5, 16), "head.bias": (5,)}
good_w = os.path.join(tmp, "good.safetensors")
safetensors(good_w, CE_PARAMS)
bad_w = os.path.join(tmp, "bad.safetensors")
safetensors(bad_w, dict(CE_PARAMS, **{"fc1.weight": (32, 13)}))
foreign_w = os.path.join(tmp, "foreign.safetensors")
safetensors(foreign_w, {"other.%d" % i: (3,) for i in range(3)})


def refused(d, args, status, lines, want, what):
    """DIR/run ARGS exits `status` within 2 s with `lines` lines, each a
    pipec-run: line, containing every string of `want`, nothing built."""
    before = sorted(os.listdir(d))
    t0 = time.time()
    r = sh([os.path.join(d, "run")] + args, cwd=tmp, timeout=120)
    took = time.time() - t0
    err = r.stderr.splitlines()
    good = (r.returncode == status and took < 2 and len(err) == lines and
            all(l.startswith("pipec-run: ") for l in err) and
            all(w in r.stderr for w in want) and "mpirun" not in r.stderr + r.stdout and
            sorted(os.listdir(d)) == before)
    if not t.ok(good, "%s: exit %d in %.2f s, %d line%s, nothing built or written"
                % (what, status, took, lines, "s" if lines > 1 else "")):
        t.diag("exit %d after %.2f s; stderr:\n%s" % (r.returncode, took, r.stderr[-1500:]))
    return r


ce = fresh(CE, "ce")
p = lambda f: os.path.join(tmp, f)   # noqa: E731

# --- options (exit 2)
refused(ce, ["--steps", "0"], 2, 1, ["--steps"], "--steps 0")
refused(ce, ["--no-such-option"], 2, 1, ["--no-such-option"], "an unknown option")
refused(ce, ["--input", p("x.npy")], 2, 1, ["--target"], "--input without --target")
refused(ce, ["--timeout", "-3"], 2, 1, ["--timeout"], "a negative --timeout")
refused(ce, ["--save-every", "5"], 2, 1, ["--checkpoint"], "--save-every without --checkpoint")
refused(ce, ["--output", p("o.npy"), "--trace", p("o.npy")], 2, 1, ["--output", "--trace"],
        "two outputs into one file")

# --- data files (exit 1), every problem at once
refused(ce, ["--input", p("missing.npy"), "--target", p("missing-y.npy")], 1, 2,
        ["missing.npy", "missing-y.npy"], "missing input and target files, both named")
refused(ce, ["--input", p("x13.npy"), "--target", p("yf.npy")], 1, 2,
        ["[48, 13]", "12", "float32"], "13 features for 12, float class ids")
refused(ce, ["--input", p("x10.npy"), "--target", p("junk.npy")], 1, 2,
        ["[10, 12]", "24", "not a .npy"], "fewer rows than a batch, a file that is not .npy")
refused(ce, ["--input", p("x.npy"), "--target", p("y30.npy")], 1, 1, ["30 rows", "48"],
        "targets not row for row with the input")
bert = fresh(BERT, "bert")
refused(bert, ["--input", "ids=" + p("idsf.npy"), "--input", "mask=" + p("mask7.npy"),
               "--input", "types=" + p("ids99.npy")], 1, 2, ["float32", "99", "9"],
        "float token ids, sequences longer than the model's")
refused(bert, ["--input", "ids=" + p("ids.npy"), "--input", "mask=" + p("mask7.npy"),
               "--input", "types=" + p("ids.npy")], 1, 1, ["7", "8"],
        "sequence inputs of different lengths")

mse = fresh(os.path.join(E.src, "t", "models", "small-mse.pipe"), "mse")   # B = 16, 6 outputs
refused(mse, ["--input", p("m.npy"), "--target", p("t5.npy")], 1, 1, ["[32, 5]", "6"],
        "mse targets of 5 values a row for 6")

# pipert-check by hand, on descriptions the compiler cannot write yet: a
# program with an evaluation step, an input declared [batch, 3, 4]
m = re.search(r'^check=\$\{PIPEC_RUNTIME_CHECK:-(.*)\}$', open(os.path.join(ce, "run")).read(), re.M)
checker = m.group(1) if m else "pipert-check"
desc = open(os.path.join(ce, "program.desc")).read()
ev = p("eval.desc")
open(ev, "w").write(desc.replace("eval_step 0", "eval_step 1")
                    .replace("input x f32 12 0 0 1 12 value", "input x f32 12 0 0 2 3 4 value"))


def check(args):
    return sh([checker, ev, "--"] + args, cwd=tmp)


r = check(["--input", p("x3d.npy"), "--target", p("y.npy"), "--eval-input", p("e10.npy"),
           "--eval-target", p("ey10.npy"), "--eval-every", "2"])
if not t.ok(r.returncode == 0 and r.stderr == "",
            "an evaluation set of 10 rows (less than a batch), an input in its declared "
            "shape [48, 3, 4]: accepted"):
    t.diag(r.stderr)
r = check(["--input", p("x.npy"), "--target", p("y.npy"), "--eval-input", p("x43.npy"),
           "--eval-target", p("ey9.npy")])
if not t.ok(r.returncode == 1 and len(r.stderr.splitlines()) == 1 and "[48, 4, 3]" in r.stderr
            and "3, 4]" in r.stderr, "the flattened input accepted, [48, 4, 3] for [3, 4] refused"):
    t.diag(r.stderr)
r = check(["--eval-input", p("e10.npy"), "--eval-target", p("ey9.npy")])
if not t.ok(r.returncode == 1 and "9 rows" in r.stderr and "--eval-input" in r.stderr,
            "evaluation targets not row for row with the evaluation input"):
    t.diag(r.stderr)

# --- weights and checkpoints (exit 1)
refused(ce, ["--weights-in", bad_w], 1, 1, ["fc1.weight", "[32, 13]", "[32, 12]"],
        "--weights-in with a parameter of the wrong shape")
r = refused(ce, ["--weights-in", foreign_w], 1, 5, ["missing tensor", "5 more"],
            "--weights-in of another model: the first 4 problems and a count")
refused(ce, ["--weights-in", p("junk.npy")], 1, 1, ["not a safetensors"],
        "--weights-in that is not safetensors")
refused(ce, ["--resume", p("no-checkpoint")], 1, 1, ["--resume"], "--resume without a checkpoint")
used = p("used-ckpt")
os.mkdir(used)
os.symlink("step-3", os.path.join(used, "latest"))
refused(ce, ["--checkpoint", used], 2, 1, ["holds a checkpoint already", "--resume"],
        "a fresh run into a directory that holds a checkpoint")

# --- outputs (exit 1): nothing created to find out
refused(ce, ["--weights-out", p("nodir/w.safetensors"), "--output", p("nodir/o.npy"),
             "--trace", tmp, "--metrics", p("nodir/m.jsonl")], 1, 4,
        ["nodir/w.safetensors", "nodir/o.npy", "is a directory", "nodir/m.jsonl"],
        "outputs into a missing directory or onto a directory")
refused(ce, ["--checkpoint", p("nodir/ck")], 1, 1, ["nodir"], "--checkpoint under a missing directory")
t.ok(not os.path.exists(p("nodir")), "... and no directory was created")
ro = p("readonly")
os.mkdir(ro)
os.chmod(ro, 0o555)
if os.access(ro, os.W_OK):      # root writes anywhere: nothing to refuse
    t.n += 1
    print("ok %d - an output into a read-only directory # SKIP running as root" % t.n)
else:
    refused(ce, ["--weights-out", os.path.join(ro, "w.safetensors")], 1, 1, ["readonly"],
            "an output into a read-only directory")

# --- hostfiles (exit 2)
def hostfile(name, text):
    f = p(name)
    open(f, "w").write(text)
    return f


refused(ce, ["--hostfile", p("no-hosts")], 2, 1, ["no-hosts"], "an unreadable hostfile")
refused(ce, ["--hostfile", hostfile("empty", "# nothing\n\n")], 2, 1, ["no host"], "an empty hostfile")
refused(ce, ["--hostfile", hostfile("one", "localhost slots=1\n")], 2, 1,
        ["1 slot", "4 ranks", "--oversubscribe"], "slots=1 for 4 ranks")
refused(ce, ["--hostfile", hostfile("twice", "localhost slots=2\n127.0.0.1 slots=2\n")], 2, 1,
        ["localhost", "127.0.0.1", "same machine"], "localhost and 127.0.0.1: one machine")
refused(ce, ["--hostfile", hostfile("bad", "localhost slots=4 foo=1\n")], 2, 1,
        ["line 1", "foo=1"], "a malformed hostfile line")

# --- --help needs no build
r = sh([os.path.join(ce, "run"), "--help"])
t.ok(r.returncode == 0 and "--weights-in" in r.stdout and "--hostfile" in r.stdout
     and not ranks_built(ce), "run --help lists the options without building the ranks")

# --- what passes the checks runs (and only now are the ranks built)
r = sh([os.path.join(ce, "run"), "--steps", "2", "--input", p("x.npy"), "--target", p("y.npy"),
        "--weights-in", good_w, "--weights-out", p("w.safetensors"),
        "--hostfile", hostfile("ok", "localhost slots=1\n"), "--mpi-arg", "--oversubscribe"],
       timeout=300)
if not t.ok(r.returncode == 0 and "step 2 loss" in r.stdout and os.path.exists(p("w.safetensors"))
            and len(ranks_built(ce)) == 4,
            "good files, a slots=1 hostfile with --oversubscribe: the run builds, runs, writes"):
    t.diag(r.stderr[-1500:])

# program.desc says what the rank programs say: the same help, from the
# description as from rank 0's own rt_program (widths, steps, inputs)
tail = lambda text: text[text.find("\n  --weights-in"):]   # noqa: E731
helps = [sh([os.path.join(ce, "run"), "--help"]).stdout, sh([os.path.join(ce, "rank0"), "--help"]).stdout]
t.ok("\n  --weights-in" in helps[1] and tail(helps[0]) == tail(helps[1]) and "12 features" in helps[0],
     "run --help (from program.desc) lists the options as rank 0 does")


# --- Ctrl-C and SIGTERM: run exits 128 + the signal, no rank left behind
def stopped(sig):
    pr = subprocess.Popen([os.path.join(ce, "run"), "--steps", "1000000000"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in pr.stdout:
        if line.startswith("step 3 "):
            break
    pr.send_signal(sig)
    try:
        rc = pr.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pr.kill()
        rc = None
    time.sleep(0.5)
    left = sh(["pgrep", "-f", os.path.join(ce, "rank")]).stdout.split()
    return rc, left


rc, left = stopped(signal.SIGINT)
t.ok(rc == 130 and not left, "SIGINT: run exits 130 (got %s), no rank left (%s)" % (rc, left))
rc, left = stopped(signal.SIGTERM)
t.ok(rc == 143 and not left, "SIGTERM: run exits 143 (got %s), no rank left (%s)" % (rc, left))
sys.exit(t.done())
