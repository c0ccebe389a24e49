"""tapy -- TAP output and the test environment for the Python tests in t/.

The harness (t/local.mk) exports PIPEC, PIPEC_SRC, PIPEC_BUILD,
PIPEC_HAVE_RUNTIME and PYTHON_NUMPY; run by hand (`prove t/010-*.t` from the
repository root) they default to the build in ./build.
"""
import os
import shutil
import sys
import tempfile


class TAP:
    def __init__(self):
        self.n = 0
        self.failed = 0
        self.planned = None

    def plan(self, n):
        self.planned = n
        print("1..%d" % n, flush=True)

    def skip_all(self, why):
        print("1..0 # SKIP %s" % why, flush=True)
        sys.exit(0)

    def ok(self, cond, desc):
        self.n += 1
        if not cond:
            self.failed += 1
        print("%s %d - %s" % ("ok" if cond else "not ok", self.n, desc), flush=True)
        return cond

    def diag(self, text):
        for line in str(text).splitlines():
            print("# " + line, flush=True)

    def done(self):
        if self.planned is None:
            print("1..%d" % self.n)
        elif self.planned != self.n:
            print("# planned %d tests but ran %d" % (self.planned, self.n))
            return 1
        return 1 if self.failed else 0


class Env:
    pass


def env_setup(t, need_runtime=True, need_numpy=True):
    E = Env()
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    E.src = os.environ.get("PIPEC_SRC") or os.path.dirname(here)
    E.build = os.environ.get("PIPEC_BUILD") or os.path.join(E.src, "build")
    E.pipec = os.environ.get("PIPEC") or os.path.join(E.build, "compiler", "pipec")
    E.python = os.environ.get("PYTHON_NUMPY") or "/usr/bin/python3"
    if not os.path.exists(E.pipec):
        t.skip_all("pipec is not built (%s)" % E.pipec)
    if need_runtime:
        have = os.environ.get("PIPEC_HAVE_RUNTIME")
        # the build tree's pipec links its runtime/ (PIPEC_RUNTIME_LIB overrides)
        lib = os.path.join(os.environ.get("PIPEC_RUNTIME_LIB") or os.path.join(E.build, "runtime"),
                           "libpipert.a")
        if have == "" or not os.path.exists(lib):
            t.skip_all("the runtime is not built here (needs MPI and a CBLAS)")
    if need_numpy and os.system(E.python + " -c 'import numpy' 2>/dev/null") != 0:
        t.skip_all("no python with numpy for the reference")
    E._tmp = []

    def tmpdir(tag):
        d = tempfile.mkdtemp(prefix="pipec-%s-" % tag)
        E._tmp.append(d)
        return d

    E.tmpdir = tmpdir
    import atexit
    atexit.register(lambda: [shutil.rmtree(d, ignore_errors=True) for d in E._tmp])
    return E


def import_numpy(t, E):
    """numpy, for a test whose interpreter may lack it: the test re-runs
    itself once under E.python (which env_setup found to have numpy), and
    skips only if that has none either."""
    try:
        import numpy
        return numpy
    except ImportError:
        if os.environ.get("PIPEC_REEXEC") != "1":
            os.environ["PIPEC_REEXEC"] = "1"
            os.execv(E.python, [E.python] + sys.argv)
        t.skip_all("no numpy")


# ---- what the emitted programs print, and the reference's data ----

def losses_of(text):
    """The L of every `step N loss L` line, in order."""
    return [float(line.split()[3]) for line in text.splitlines() if line.startswith("step ")]


def peak_pairs(text):
    """`peak_memory_ranks:` as (measured, predicted) bytes per rank."""
    for line in text.splitlines():
        if line.startswith("peak_memory_ranks:"):
            return [tuple(map(float, x.split("/"))) for x in line.split()[1:]]
    return []


def reference_data(E, model, tag, rows, tmp, seed_w=3, seed_d=4):
    """Initial weights and rows of data for `model` from t/ref/pipe_ref.py:
    (weights.safetensors, x.npy, y.npy) in tmp."""
    import subprocess
    ref = [E.python, os.path.join(E.src, "t", "ref", "pipe_ref.py")]
    w0 = os.path.join(tmp, tag + "-w0.safetensors")
    x = os.path.join(tmp, tag + "-x.npy")
    y = os.path.join(tmp, tag + "-y.npy")
    subprocess.run(ref + ["init", model, "--seed", str(seed_w), "--out", w0], check=True,
                   capture_output=True)
    subprocess.run(ref + ["data", model, "--seed", str(seed_d), "--rows", str(rows),
                          "--input", x, "--target", y], check=True, capture_output=True)
    return w0, x, y


def compile_and_run(E, model, d, sets, run_args, timeout=600):
    """`pipec compile MODEL -o D --set ...`, then `D/run RUN_ARGS`:
    (the run's CompletedProcess, "") or (None, why)."""
    import subprocess
    args = []
    for s in sets:
        args += ["--set", s]
    r = subprocess.run([E.pipec, "compile", model, "-o", d] + args, capture_output=True,
                       text=True)
    if r.returncode != 0:
        return None, "compile: " + r.stderr[-1500:]
    r = subprocess.run([os.path.join(d, "run")] + list(run_args), capture_output=True,
                       text=True, timeout=timeout)
    if r.returncode != 0:
        return None, "run: " + r.stdout[-1500:] + r.stderr[-1500:]
    return r, ""
