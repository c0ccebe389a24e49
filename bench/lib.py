"""bench/lib.py — what every experiment shares: paths, running pipec and the
emitted programs, parsing their output, medians, CSV.

Standard library only, so that any python3 runs the benchmarks; the PyTorch
side (torch_pipe.py) runs in its own interpreter (BENCH_TORCH_PYTHON).
"""
import csv
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
BUILD = os.environ.get("PIPEC_BUILD", os.path.join(ROOT, "build"))
PIPEC = os.path.join(BUILD, "compiler", "pipec")
CORES = os.cpu_count() or 1


class Config:
    """How much to measure.  --quick: a few minutes, noisy; full: the numbers
    docs/performance.md quotes."""

    def __init__(self, quick, out, work, torch_python):
        self.quick = quick
        self.out = out                  # CSV and SVG
        self.work = work                # compiled programs, weights, data (scratch)
        self.torch_python = torch_python
        self.reps = 2 if quick else 5   # timed runs per configuration (after a warm-up run)
        self.log = open(os.path.join(out, "bench.log"), "a")

    def say(self, msg):
        line = time.strftime("%H:%M:%S ") + msg
        print(line, flush=True)
        self.log.write(line + "\n")
        self.log.flush()


def env_pipec(threads=None):
    """The environment of pipec and of the programs it emits, with a fixed
    BLAS thread count.  The build tree's pipec finds the source tree's
    templates and runtime by itself (docs/running.md)."""
    env = dict(os.environ)
    if threads is not None:
        for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[k] = str(threads)
    return env


def run(cmd, env=None, timeout=900, cwd=None):
    """Run a command; its stdout, or an exception carrying its stderr."""
    p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError("command failed (%d): %s\n%s%s" % (
            p.returncode, " ".join(cmd), p.stdout[-2000:], p.stderr[-4000:]))
    return p.stdout


def time_and_rss(cmd, env=None, cwd=None):
    """(wall seconds, peak RSS in bytes) of one command.  GNU time reports the
    command's own peak; without it, wait4's figure also counts the Python
    image the child was forked from (an upper bound)."""
    gnu = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
    full = [gnu, "-f", "maxrss_kb=%M"] + list(cmd) if gnu else list(cmd)
    t0 = time.perf_counter()
    p = subprocess.Popen(full, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    err = p.stderr.read().decode()
    p.stderr.close()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise RuntimeError("command failed (%d): %s\n%s" % (p.returncode, " ".join(cmd), err[-4000:]))
    m = re.search(r"maxrss_kb=(\d+)", err)
    return wall, (int(m.group(1)) if m else ru.ru_maxrss) * 1024


def sets_args(sets):
    out = []
    for s in sets:
        out += ["--set", s]
    return out


def model_path(name):
    """A model by short name: models/NAME.pipe, else bench/models/NAME.pipe."""
    for d in (os.path.join(ROOT, "models"), os.path.join(BENCH, "models")):
        p = os.path.join(d, name + ".pipe")
        if os.path.exists(p):
            return p
    if os.path.exists(name):
        return name
    raise FileNotFoundError(name)


def key_of(model, sets, extra=""):
    """A compiled program's name: the model, the settings, and the compiler,
    runtime and templates that built it (a rebuilt pipec recompiles)."""
    h = hashlib.sha1()
    with open(model, "rb") as f:
        h.update(f.read())
    h.update(("\0".join(sets) + "\0" + extra).encode())
    for dep in (PIPEC, os.path.join(BUILD, "runtime", "libpipert.a"),
                os.path.join(ROOT, "runtime", "pipert.h"),
                os.path.join(ROOT, "templates", "rank.c.tmpl"),
                os.path.join(ROOT, "templates", "Makefile.in.tmpl"),
                os.path.join(ROOT, "templates", "run.tmpl")):
        try:
            st = os.stat(dep)
            h.update(("%s %d %d" % (dep, st.st_size, st.st_mtime_ns)).encode())
        except OSError:
            pass
    return os.path.splitext(os.path.basename(model))[0] + "-" + h.hexdigest()[:10]


def compile_model(cfg, model, sets, build=True):
    """pipec compile into WORK/KEY (once per model and settings) and build the
    ranks; returns the directory."""
    d = os.path.join(cfg.work, "prog", key_of(model, sets))
    stamp = os.path.join(d, ".built")
    if os.path.exists(stamp):
        return d
    if os.path.exists(d):
        shutil.rmtree(d)
    os.makedirs(os.path.dirname(d), exist_ok=True)
    run([PIPEC, "compile", model, "-o", d] + sets_args(sets), env=env_pipec())
    if build:
        run(["make", "-s", "-C", d], env=env_pipec())
    with open(stamp, "w") as f:
        f.write("ok\n")
    return d


def parse_summary(text):
    """`step N loss L` lines and the `key: value` summary of a run."""
    s = {"losses": []}
    for line in text.splitlines():
        m = re.match(r"step (\d+) loss (\S+)$", line)
        if m:
            s["losses"].append(float(m.group(2)))
            continue
        m = re.match(r"([a-z_]+): (.*)$", line)
        if m:
            s[m.group(1)] = m.group(2).strip()
    for k in ("step_time", "step_time_mean", "samples_per_s", "bubble_measured",
              "bubble_predicted", "peak_memory_bytes", "peak_memory_predicted"):
        if k in s:
            s[k] = float(s[k])
    if "bubble_measured_ranks" in s:
        s["bubble_measured_ranks"] = [float(v) for v in s["bubble_measured_ranks"].split()]
    if "peak_memory_ranks" in s:
        s["peak_memory_ranks"] = [tuple(float(x) for x in v.split("/"))
                                  for v in s["peak_memory_ranks"].split()]
    s["oversubscribed"] = s.get("oversubscribed", "").startswith("yes")
    return s


def run_program(d, args, threads, timeout=900):
    """One run of an emitted program; its parsed summary."""
    out = run([os.path.join(d, "run")] + list(args), env=env_pipec(threads), timeout=timeout)
    s = parse_summary(out)
    if "step_time" not in s:
        raise RuntimeError("no summary from %s:\n%s" % (d, out[-2000:]))
    return s


def schedule(model, sets, cost="uniform", fmt="text", extra=()):
    """`pipec schedule`: its text (fmt text: also the parsed summary)."""
    out = run([PIPEC, "schedule", model, "--cost", cost, "--format", fmt] + sets_args(sets)
              + list(extra), env=env_pipec())
    if fmt != "text":
        return out
    s = {}
    for line in out.splitlines():
        m = re.match(r"(step_time|bubble_fraction|bubble_overhead): (\S+)$", line)
        if m:
            s[m.group(1)] = float(m.group(2))
    s["text"] = out
    return s


def actions_per_rank(model, sets):
    """Actions per rank and per op in one step (`pipec schedule --format csv`)."""
    out = schedule(model, sets, fmt="csv")
    per = {}
    for row in csv.DictReader(out.splitlines()):
        r = int(row["rank"])
        per.setdefault(r, {})
        per[r][row["op"]] = per[r].get(row["op"], 0) + 1
    return per


def check_model(model, sets):
    return run([PIPEC, "check", model] + sets_args(sets), env=env_pipec())


def linear_layers(model, sets):
    """(rows per micro-batch, [(rank, in, out), ...]): a model's linear layers
    and the rank whose stage holds each, from `pipec check`."""
    out = check_model(model, sets)
    rows = int(re.search(r"micro-batch(?:es)? of (\d+) rows", out).group(1))
    layers = re.findall(r"^  (\S+)\s+(\w+)\s+(\d+) -> (\d+)\s", out, re.M)
    names = [l[0] for l in layers]
    owner = {}
    for first, last, rank in [(m.group(3), m.group(4) or m.group(3), int(m.group(2)))
                              for m in re.finditer(r"^  (\d+)\s+(\d+)\s+(\S+)(?: \.\. (\S+))?\s+[\d,]+\s",
                                                   out, re.M)]:
        for i in range(names.index(first), names.index(last) + 1):
            owner[names[i]] = rank
    return rows, [(owner[n], int(i), int(o)) for n, k, i, o in layers if k == "linear"]


def median(v):
    return statistics.median(v) if v else float("nan")


def write_csv(path, rows, columns=None):
    columns = columns or list(rows[0].keys()) if rows else (columns or [])
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: fmt(r.get(k, "")) for k in columns})


def fmt(v):
    if isinstance(v, float):
        return "%.9g" % v
    if isinstance(v, bool):
        return "yes" if v else "no"
    return v


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def save_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)


def load_json(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return default


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def torch_run(cfg, model, sets, steps, warmup, threads, weights_out=None, data_out=None,
              timeout=1200):
    """One run of bench/torch_pipe.py; its JSON result."""
    cmd = [cfg.torch_python, os.path.join(BENCH, "torch_pipe.py"), "--pipec", PIPEC,
           "--model", model, "--steps", str(steps), "--warmup", str(warmup),
           "--threads", str(threads)] + sets_args(sets)
    if weights_out:
        cmd += ["--weights-out", weights_out]
    if data_out:
        cmd += ["--data-out", data_out]
    try:
        out = run(cmd, env=env_pipec(threads), timeout=timeout)
    except RuntimeError as e:       # one retry: gloo's start-up can fail transiently
        cfg.say("torch_pipe failed, once more: %s" % str(e).splitlines()[0])
        out = run(cmd, env=env_pipec(threads), timeout=timeout)
    last = [l for l in out.splitlines() if l.startswith("{")]
    if not last:
        raise RuntimeError("torch_pipe printed no result:\n" + out[-2000:])
    return json.loads(last[-1])


def rel_diff(a, b):
    return abs(a - b) / max(abs(a), abs(b), 1e-30)
