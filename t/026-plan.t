#!/usr/bin/python3
"""026-plan.t -- `pipec plan`: every configuration of N ranks, ranked.

Oracles:
  reproduce   every printed row (--top K here, every row under PIPEC_FULL=1)
              is what `pipec schedule` prints for the row's --sets and the
              same --cost: step_time and bubble_fraction as printed, samples/s
              = the file's batch / step_time (computed here), peak memory = the
              largest total of schedule's memory table (not its peak_memory
              line), on mlp4 and the character GPT, the model cost and
              times(...);
  order       the fitting rows first, each group by samples/s, non-increasing;
  best        the best: line is the first row's --sets, and `pipec compile`
              builds it (exit 0);
  limit       with --memory, a fitting row's peak is within it and a row that
              does not fit is over it; a limit that 1f1b's plain rows miss is
              met by recompute (a row with recompute); nothing fits: exit 1,
              the reason on stderr, every row 'no';
  weights     mlp4 over 2 ranks: data parallelism at M = 1 first, as measured
              on this kind of machine (docs/performance.md section 5); FLOPs
              alone (--weight-bandwidth off) would pick a pipeline at M = 256,
              and with the weights' reads every 2-stage kind ranks M = 256
              below its other M;
  kinds       every schedule kind of compiler/schedule.h's SCHED_KINDS that
              `pipec schedule` accepts for the shape appears in the plan (so a
              new kind is planned without touching plan.c);
  shapes      M < P (batch 2 over 4 stages) and one rank (every row one stage,
              one replica), reproduced like the others;
  size        a 28.4-billion-parameter GPT (bench/models/gpt-28b.pipe, 106 GiB
              of f32 parameters) through check, schedule and plan over 32 ranks:
              each process's peak resident memory under 512 MiB (4 GiB under
              the sanitizers; nothing of the model allocated);
  options     bad --ranks, --memory, --top, --format, --schedules, a plan
              option on another command, no --ranks: exit 2.
"""
import csv
import io
import os
import re
import shlex
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tapy import TAP, env_setup  # noqa: E402

t = TAP()
E = env_setup(t, need_runtime=False, need_numpy=False)
tmp = E.tmpdir("plan")
FULL = bool(os.environ.get("PIPEC_FULL"))
TOP = None if FULL else 8
MLP = os.path.join(E.src, "models", "mlp4.pipe")
GPT = os.path.join(E.src, "models", "char-gpt.pipe")
BIG = os.path.join(E.src, "bench", "models", "gpt-28b.pipe")


def pipec(*args):
    """(exit status, stdout, stderr)."""
    p = subprocess.run([E.pipec] + [str(a) for a in args], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL,
                       timeout=int(os.environ.get("PIPEC_TIMEOUT", "300")))
    return p.returncode, p.stdout, p.stderr


def pipec_rss(*args):
    """Runs pipec and returns (status, stdout, stderr, its own max RSS in KiB)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.dup2(w, 1)
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 2)
        os.execv(E.pipec, [E.pipec] + [str(a) for a in args])
    os.close(w)
    chunks = []
    while True:
        b = os.read(r, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(r)
    _, status, ru = os.wait4(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode(), "", ru.ru_maxrss


def batch_of(path):
    with open(path) as f:
        return int(re.search(r"^\s*batch\s*=\s*(\d+)", f.read(), re.M).group(1))


def plan(model, ranks, *extra):
    """(status, rows as dicts, best line or None, stderr)."""
    rc, out, err = pipec("plan", model, "--ranks", ranks, "--format", "csv", *extra)
    lines = out.splitlines()
    best = [ln for ln in lines if ln.startswith("best:")]
    body = "\n".join(ln for ln in lines if not ln.startswith("best:"))
    rows = list(csv.DictReader(io.StringIO(body))) if body else []
    return rc, rows, best[0] if best else None, err, lines[:1]


def row_sets(row, limit):
    s = ["--set", "stages=" + row["stages"], "--set", "replicas=" + row["replicas"],
         "--set", "schedule=" + row["schedule"], "--set", "microbatches=" + row["microbatches"],
         "--set", "partition=auto"]
    if row["partition"] == "auto+mem":
        s += ["--set", "memory=%d" % limit]
    if row["recompute"] != "none":
        s += ["--set", "recompute=[%s]" % ", ".join([row["recompute"]] * int(row["stages"]))]
    return s


def schedule_figures(model, sets, cost):
    rc, out, err = pipec("schedule", model, *sets, *cost)
    if rc != 0:
        return None, err
    d = {}
    for ln in out.splitlines():
        m = re.match(r"(step_time|bubble_fraction): (\S+)$", ln)
        if m:
            d[m.group(1)] = m.group(2)
    totals = [int(m.group(1)) for m in re.finditer(r"^  \d+ +\d+ +\d+ +\d+ +\d+ +(\d+)", out, re.M)]
    d["peak"] = max(totals) if totals else None
    return d, ""


def check_rows(tag, model, rows, cost, limit=None):
    B = batch_of(model)
    bad = []
    for row in rows:
        d, err = schedule_figures(model, row_sets(row, limit), cost)
        if d is None:
            bad.append((row, err.strip()[-200:]))
            continue
        sps = B / float(d["step_time"])
        same = (d["step_time"] == "%.9g" % float(row["step_time"])
                and d["bubble_fraction"] == "%.9g" % float(row["bubble_fraction"])
                and abs(sps - float(row["samples_per_s"])) <= 1e-7 * sps
                and d["peak"] == int(row["peak_memory"]))
        if not same:
            bad.append((row, d))
    t.ok(rows and not bad, "%s: all %d printed rows reproduced by pipec schedule with their "
         "--sets %s" % (tag, len(rows), bad[:2]))


def check_order(tag, rows):
    key = [(r["fits"] == "yes", float(r["samples_per_s"])) for r in rows]
    ok = all(key[i][0] >= key[i + 1][0] and (key[i][0] != key[i + 1][0]
                                             or key[i][1] >= key[i + 1][1] * (1 - 1e-9))
             for i in range(len(key) - 1))
    # equal samples/s (to 1e-9): fewer micro-batches first
    ties = all(int(a["microbatches"]) <= int(b["microbatches"])
               for a, b in zip(rows, rows[1:]) if a["fits"] == b["fits"]
               and abs(float(a["samples_per_s"]) - float(b["samples_per_s"]))
               <= 1e-9 * float(a["samples_per_s"]) * 0.5)
    t.ok(ok and ties, "%s: fitting rows first, then by samples/s (ties: fewer micro-batches)"
         % tag)


# ---- the bundled models, the model cost and times(...) ----
TIMES = ["--cost", "times(F = 1, B = 1.5, W = 0.7, comm = 0.05)"]
cases = [("mlp4 over 2", MLP, 2, []),
         ("char-gpt over 2", GPT, 2, []),
         ("char-gpt over 4, times(...)", GPT, 4, TIMES),
         ("mlp4 over 4, uniform", MLP, 4, ["--cost", "uniform"])]
for tag, model, N, cost in cases:
    top = ["--top", TOP] if TOP else []
    rc, rows, best, err, _ = plan(model, N, *top, *cost)
    t.ok(rc == 0 and rows and best, "%s: exit 0, rows and a best line %s" % (tag, err[-200:]))
    check_rows(tag, model, rows, cost)
    check_order(tag, rows)
    want = "best: " + " ".join(("'%s'" % a if re.search(r"[()\[\] ,]", a) or a.startswith("schedule=")
                                else a) for a in row_sets(rows[0], None)) if rows else None
    t.ok(best == want, "%s: best: is the first row's --sets (%s)" % (tag, best))
    if tag.startswith("mlp4 over 2") or tag.startswith("char-gpt over 2"):
        d = os.path.join(tmp, "best-%d" % len(os.listdir(tmp)))
        crc, _, cerr = pipec("compile", model, *row_sets(rows[0], None), "-o", d)
        t.ok(crc == 0 and os.path.exists(os.path.join(d, "Makefile")),
             "%s: pipec compile builds the best row %s" % (tag, cerr[-200:]))

# the full ranking without --top: ordered, and as long as --top's prefix says
rc, rows_all, _, _, _ = plan(MLP, 2)
check_order("mlp4 over 2, every row", rows_all)
rc, rows8, _, _, _ = plan(MLP, 2, "--top", 8)
t.ok(rows_all[:8] == rows8, "--top 8 prints the first 8 rows of the full ranking")
names = {r["schedule"] for r in rows_all}
t.ok(not any(n.startswith(("pipedream", "file")) for n in names),
     "asynchronous schedules and file(...) are not planned by default (%s)" % sorted(names))

# ---- the weights' reads: more micro-batches are not free ----
# Measured on this kind of machine (docs/performance.md section 5), mlp4
# over 2 ranks trains at about 2,000 samples/s as two replicas and 795 as
# a 2-stage 1F1B pipeline at 32 micro-batches.  Priced by FLOPs alone
# (--weight-bandwidth off) the plan ranks some 2-stage pipeline first at
# the most micro-batches the batch allows; with each GEMM pass reading its
# weights (the default) it ranks data parallelism first at M = 1, and no
# 2-stage row at the largest M above one at a smaller M of its kind.
rc, rows, best, err, _ = plan(MLP, 2)
rc2, rows2, _, _, _ = plan(MLP, 2, "--weight-bandwidth", "off")
first, first2 = (rows[0] if rows else {}), (rows2[0] if rows2 else {})
maxm = max((int(r["microbatches"]) for r in rows2 if r["stages"] == "2"), default=0)
t.ok(rc == rc2 == 0 and (first.get("stages"), first.get("replicas"), first.get("microbatches"))
     == ("1", "2", "1") and first2.get("stages") == "2"
     and int(first2.get("microbatches", 0)) == maxm == 256,
     "mlp4 over 2 ranks: data parallelism at M = 1 first (%s x %s, M = %s); FLOPs alone "
     "would put a 2-stage %s at M = %s first"
     % (first.get("stages"), first.get("replicas"), first.get("microbatches"),
        first2.get("schedule"), first2.get("microbatches")))
pos = {}
for i, r in enumerate(rows):
    if r["stages"] == "2":
        pos.setdefault(r["schedule"], {})[int(r["microbatches"])] = i
worse = sorted(k for k, ms in pos.items() if 256 in ms and len(ms) > 1
               and ms[256] != max(ms.values()))
t.ok(pos and not worse,
     "every 2-stage kind ranks M = 256 below its other M (%d kinds; out of order: %s)"
     % (len(pos), worse))

# ---- every schedule kind the compiler has and accepts for the shape ----
with open(os.path.join(E.src, "compiler", "schedule.h")) as f:
    kinds = re.findall(r'X\(SK_\w+,\s*"([^"]+)",\s*(\d)\)', f.read())
missing = []
for name, has_v in kinds:
    if name in ("file", "pipedream", "pipedream-2bw"):
        continue
    label = "%s(2)" % name if has_v == "1" else "zb-auto(memory = 1)" if name == "zb-auto" else name
    ok = any(pipec("schedule", MLP, "--set", "stages=2", "--set", "schedule=" + label,
                   "--set", "microbatches=%d" % M, "--set", "partition=auto")[0] == 0
             for M in (4, 8))
    if ok and label not in names:
        missing.append(label)
t.ok(len(kinds) >= 10 and not missing,
     "every kind of SCHED_KINDS that schedule accepts is planned (%d kinds; missing %s)"
     % (len(kinds), missing))

# ---- a memory limit ----
rc, rows_gpt, _, _, _ = plan(GPT, 2, "--schedules", "1f1b,gpipe,zb-h1")
plain = [int(r["peak_memory"]) for r in rows_gpt if r["schedule"] == "1f1b" and r["stages"] == "2"]
limit = int(min(plain)) - 1
rc, rows, best, err, _ = plan(GPT, 2, "--schedules", "1f1b,gpipe,zb-h1", "--memory", limit)
fits = [r for r in rows if r["fits"] == "yes"]
over = [r for r in rows if r["fits"] == "no"]
t.ok(rc == 0 and all(int(r["peak_memory"]) <= limit for r in fits)
     and all(int(r["peak_memory"]) > limit for r in over),
     "--memory %d: fitting rows within it, the others over it (%d / %d)"
     % (limit, len(fits), len(over)))
t.ok(any(r["recompute"] != "none" and r["schedule"] == "1f1b" and r["stages"] == "2" for r in fits),
     "a limit below 1f1b's plain 2-stage peaks is met with recompute")
t.ok(all(r["partition"] in ("auto", "auto+mem") for r in rows)
     and all(r["partition"] == "auto" for r in over),
     "partition: auto, or auto+mem where the limit bounded it (never on a row that does not fit)")
check_rows("char-gpt over 2, --memory", GPT, fits[:TOP or len(fits)] + over[:2], [], limit)
d = os.path.join(tmp, "best-limit")
args = shlex.split(best[len("best:"):]) if best else []
crc, _, cerr = pipec("compile", GPT, *args, "-o", d)
t.ok(best and "recompute=" in best and crc == 0,
     "the best: line under --memory (with its recompute) compiles as the shell splits it %s"
     % cerr[-200:])
check_order("char-gpt over 2, --memory", rows)

rc, rows, best, err, _ = plan(MLP, 2, "--memory", "1000")
t.ok(rc == 1 and "nothing fits" in err and "1000" in err and rows
     and all(r["fits"] == "no" for r in rows) and best is None,
     "nothing fits in 1000 bytes: exit 1 with the reason (%s)" % err.strip()[-160:])

# ---- M < P and one rank ----
SMALL = os.path.join(tmp, "small.pipe")
with open(SMALL, "w") as f:
    f.write("""model small {
    input  x : f32[batch, 8];
    target y : f32[batch, 8];
    layer fc[6] : linear(8, 8);
    loss mse;
}
pipeline {
    stages       = 2;
    batch        = 2;
    microbatches = 2;
    schedule     = 1f1b;
    optimizer    = sgd(lr = 0.1);
}
""")
rc, rows, best, err, _ = plan(SMALL, 4)
mlp = [r for r in rows if r["stages"] == "4" and int(r["microbatches"]) < 4]
t.ok(rc == 0 and mlp, "batch 2 over 4 stages: rows with M < P (%d)" % len(mlp))
check_rows("M < P", SMALL, mlp[:TOP or len(mlp)], [])
rc, rows, best, err, _ = plan(SMALL, 1)
t.ok(rc == 0 and rows and all(r["stages"] == "1" and r["replicas"] == "1" for r in rows),
     "one rank: every row one stage, one replica (%d rows)" % len(rows))
check_rows("one rank", SMALL, rows[:TOP or len(rows)], [])

# ---- a 28.4B-parameter GPT: nothing of it allocated ----
# The model's parameters alone are 106 GiB in f32: any bound far below that
# shows none of it is allocated.  Under the sanitizers the shadow memory and
# the freed-memory quarantine count too, so their bound is 4 GiB.
limit_kib = (4096 if os.environ.get("PIPEC_SANITIZERS") else 512) * 1024
for args in (["check", BIG], ["schedule", BIG, "--set", "stages=32", "--set", "microbatches=64"],
             ["plan", BIG, "--ranks", 32, "--schedules", "1f1b,zb-h1,interleaved",
              "--memory", "80GiB", "--top", 5]):  # fits at 32 stages, with recompute
    t0 = time.time()
    rc, out, _, kib = pipec_rss(*args)
    t.ok(rc == 0 and kib < limit_kib, "gpt-28b %s: exit %d, peak resident %d KiB (< %d), %.1f s"
         % (args[0], rc, kib, limit_kib, time.time() - t0))

# ---- bad command lines ----
for args, what in ((["--ranks", "0"], "--ranks 0"), (["--ranks", "x"], "--ranks x"),
                   ([], "no --ranks"), (["--ranks", "2", "--memory", "12XB"], "--memory 12XB"),
                   (["--ranks", "2", "--memory", "-5"], "--memory -5"),
                   (["--ranks", "2", "--memory", "1e300"], "--memory 1e300"),
                   (["--ranks", "2", "--top", "0"], "--top 0"),
                   (["--ranks", "2", "--format", "svg"], "--format svg"),
                   (["--ranks", "2", "--schedules", "1f1b,nope"], "--schedules nope"),
                   (["--ranks", "2", "--cost", "times(F = 1"], "malformed --cost")):
    rc, out, err = pipec("plan", MLP, *args)
    t.ok(rc == 2 and err.strip() and not out, "plan %s: exit 2 with a message (%s)"
         % (what, err.strip().splitlines()[0] if err.strip() else ""))
rc, out, err = pipec("schedule", MLP, "--ranks", "2")
t.ok(rc == 2 and "plan" in err, "--ranks on schedule: exit 2 (%s)" % err.strip()[:100])
rc, out, err = pipec("plan", os.path.join(tmp, "missing.pipe"), "--ranks", "2")
t.ok(rc == 1 and "cannot read" in err, "a missing file: exit 1")

sys.exit(t.done())
