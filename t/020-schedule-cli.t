#!/usr/bin/python3
"""020-schedule-cli.t -- `pipec schedule` end to end, as a user drives it.

Everything goes through the command line (sched-unit.c tests the same
module as a library):

  formats     text (step_time / bubble_fraction / bubble_overhead lines, one
              chart row per rank, every line within --width 80/120/160),
              csv (header, six columns, indices counting from 0, ops, peers),
              chrome (JSON, traceEvents, one X slice per action with the
              csv's op/stage/microbatch, compute slices of a rank never
              overlap), svg (well-formed XML), torch (one row per pipeline
              rank, cells {stage}{F|B|I|W}{mb}), -o writing what stdout shows;
  refusals    --format torch with recompute or replicas: exit 1, the reason,
              nothing written;
  formulas    uniform-cost bubble fractions over --set sweeps equal the
              published ones: gpipe and 1f1b (P-1)/(M+P-1), interleaved(V)
              (P-1)/(VM+P-1), forward-only (P-1)/(M+P-1), naive (P-1)/P,
              zb-h1 (P-1)/(3M+P-1) and under 1f1b's once M >= P;
  memory      1f1b's peak in-flight micro-batches on rank r is min(P-r, M),
              gpipe's M, from the text output;
  round trip  every built-in schedule exported with --format csv and with
              --format torch and read back through schedule = file("...")
              (a copy of the model with that line, and --set) gives the
              identical csv;
  refused     broken programs through file(...): a dropped RECV, a swapped
              order (deadlock), a micro-batch twice or never, a backward
              before its forward, a stage on two ranks: exit 1 with
              FILE:LINE:COL: error: rank R, action I (ACTION): REASON, the line
              and a caret;
  shapes      M < P, P = 1, one layer per stage, uneven partitions;
  partition   partition = auto with memory = SIZE too small: exit 1, named;
  cost model  --cost model states its constants; --flops, --bandwidth and
              --latency change them and the step time as computed by hand.

PIPEC_FULL=1 widens the sweeps.  Under a sanitizer build (PIPEC_SANITIZERS)
any sanitizer report on stderr fails the run that printed it.
"""
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tapy import TAP, env_setup  # noqa: E402

t = TAP()
E = env_setup(t, need_runtime=False, need_numpy=False)
tmp = E.tmpdir("sched")
FULL = bool(os.environ.get("PIPEC_FULL"))
MLP = os.path.join(E.src, "models", "mlp4.pipe")
ZBV = os.path.join(E.src, "models", "mlp4-zbv.pipe")

# A 64-layer model for the sweeps: every stage count up to 16 (and 4 chunks
# of 16) has layers to spare, and a run takes milliseconds.
WIDE = os.path.join(tmp, "wide.pipe")
with open(WIDE, "w") as f:
    f.write("""model wide {
    input  x : f32[batch, 16];
    target y : f32[batch, 16];
    layer fc[64] : linear(16, 16);
    loss mse;
}
pipeline {
    stages       = 4;
    batch        = 64;
    microbatches = 8;
    schedule     = 1f1b;
    partition    = auto;
    optimizer    = sgd(lr = 0.1);
}
""")

SAN_RE = re.compile(r"(AddressSanitizer|UndefinedBehaviorSanitizer|LeakSanitizer|"
                    r"runtime error:)")
runs = {"n": 0, "san": []}


def pipec(*args):
    """Runs pipec; (exit status, stdout, stderr)."""
    runs["n"] += 1
    try:
        p = subprocess.run([E.pipec] + [str(a) for a in args], capture_output=True,
                           text=True, stdin=subprocess.DEVNULL,
                           timeout=int(os.environ.get("PIPEC_TIMEOUT", "120")))
    except subprocess.TimeoutExpired:
        return 124, "", "timed out"
    if SAN_RE.search(p.stderr):
        runs["san"].append((args, p.stderr[-1500:]))
    return p.returncode, p.stdout, p.stderr


def sets(**kw):
    out = []
    for k, v in kw.items():
        out += ["--set", "%s=%s" % (k, v)]
    return out


def summary(text):
    """The text format's summary: step_time, bubble_*, per-rank idle / peak."""
    d = {"idle": {}, "peak": {}, "rows": {}}
    for line in text.splitlines():
        m = re.match(r"(step_time|bubble_fraction|bubble_overhead): (\S+)$", line)
        if m:
            d[m.group(1)] = float(m.group(2))
        m = re.match(r"rank (\d+): idle (\S+), peak (\d+) micro-batch", line)
        if m:
            d["idle"][int(m.group(1))] = float(m.group(2))
            d["peak"][int(m.group(1))] = int(m.group(3))
        m = re.match(r"rank (\d+) +([-.=~+#A-Z0-9]+)$", line)
        if m:
            d["rows"][int(m.group(1))] = m.group(2)
    return d


def csv_rows(text):
    lines = text.splitlines()
    return lines[0] if lines else "", [l.split(",") for l in lines[1:]]


def write(name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def file_sched(path):
    return ["--set", 'schedule=file("%s")' % path]


# ------------------------------------------------------------------ formats

COMPUTE = {"F", "B", "W", "R"}
OPS = COMPUTE | {"SEND_F", "RECV_F", "SEND_B", "RECV_B", "ALLREDUCE", "OPTIM"}

FORMAT_CASES = [
    ("mlp4", MLP, []),
    ("mlp4 zb-h1 + recompute", MLP, ["--set", "schedule=zb-h1",
                                     "--set", "recompute=[0.5, 0.5, 0.5, 0.5]"]),
    ("mlp4 interleaved(2) x 2 replicas", MLP, ["--set", "schedule=interleaved(2)",
                                               "--set", "partition=auto",
                                               "--set", "replicas=2",
                                               "--set", "microbatches=8"]),
    ("mlp4-zbv (custom V-shaped order)", ZBV, []),
]

for name, model, extra in FORMAT_CASES:
    rc, csv, err = pipec("schedule", model, "--format", "csv", *extra)
    header, rows = csv_rows(csv)
    good = (rc == 0 and header == "rank,index,op,stage,microbatch,peer" and rows
            and all(len(r) == 6 for r in rows))
    per_rank = {}
    why = ""
    if good:
        for r in rows:
            try:
                k, i, op, st, mb, peer = int(r[0]), int(r[1]), r[2], int(r[3]), int(r[4]), int(r[5])
            except ValueError:
                why = "a non-integer field in %s" % r
                break
            per_rank.setdefault(k, []).append((i, op, st, mb, peer))
            if op not in OPS:
                why = "unknown op %s" % op
            elif (op in COMPUTE or op in ("OPTIM", "ALLREDUCE")) and peer != -1:
                why = "%s with peer %d" % (op, peer)
            elif op.startswith(("SEND", "RECV")) and peer < 0:
                why = "%s without a peer" % op
            elif op == "OPTIM" and (st, mb) != (-1, -1):
                why = "OPTIM with stage %d mb %d" % (st, mb)
        for k, acts in per_rank.items():
            if [a[0] for a in acts] != list(range(len(acts))):
                why = why or "rank %d's indices do not count 0, 1, 2, ..." % k
            if acts[-1][1] != "OPTIM":
                why = why or "rank %d does not end with OPTIM" % k
        nsend = sum(1 for r in rows if r[2].startswith("SEND"))
        nrecv = sum(1 for r in rows if r[2].startswith("RECV"))
        if nsend != nrecv or nsend == 0:
            why = why or "%d sends but %d receives" % (nsend, nrecv)
    if not t.ok(good and not why, "%s: csv has the header, six integer columns, known ops, "
                "indices from 0 per rank, OPTIM last" % name):
        t.diag(why or err or csv[:500])
    nranks = len(per_rank)

    # text, at three widths
    for width in (80, 120, 160):
        rc, text, err = pipec("schedule", model, "--width", width, *extra)
        s = summary(text)
        wide = [l for l in text.splitlines() if len(l) > width]
        good = (rc == 0 and "step_time" in s and 0 <= s.get("bubble_fraction", -1) <= 1
                and "bubble_overhead" in s and sorted(s["rows"]) == list(range(nranks))
                and sorted(s["idle"]) == list(range(nranks)) and not wide)
        if not t.ok(good, "%s: text at --width %d: step_time, bubble_fraction in 0..1, "
                    "%d chart rows, idle and peak per rank, no line wider" % (name, width, nranks)):
            t.diag(err or "\n".join(wide[:5]) or text[:1500])

    # chrome: parses, one X slice per action with the csv's values, compute
    # slices of a rank in program order and never overlapping
    rc, js, err = pipec("schedule", model, "--format", "chrome", *extra)
    why = ""
    try:
        doc = json.loads(js)
        ev = doc["traceEvents"]
    except (ValueError, KeyError, TypeError) as e:
        why = "not trace-event JSON: %s" % e
        ev = []
    slices = {}
    for e in ev:
        if e.get("ph") == "X":
            slices.setdefault(e["pid"], []).append(e)
    if not why and sorted(slices) != sorted(per_rank):
        why = "slices for ranks %s, csv has ranks %s" % (sorted(slices), sorted(per_rank))
    for k in sorted(slices):
        if why:
            break
        got = [(e["args"]["op"], e["args"]["stage"], e["args"]["microbatch"]) for e in slices[k]]
        want = [(a[1], a[2], a[3]) for a in per_rank.get(k, [])]
        if got != want:
            why = "rank %d's slices are not its csv actions in order" % k
            break
        comp = sorted((e for e in slices[k] if e["args"]["op"] in COMPUTE),
                      key=lambda e: e["ts"])
        if any(e["dur"] < 0 for e in slices[k]):
            why = "rank %d has a negative duration" % k
        for a, b in zip(comp, comp[1:]):
            if a["ts"] + a["dur"] > b["ts"] + 1e-6:
                why = "rank %d: %s overlaps %s" % (k, a["name"], b["name"])
                break
    names = {e["pid"] for e in ev if e.get("ph") == "M" and e.get("name") == "process_name"}
    if not why and names != set(per_rank):
        why = "process_name metadata for %s" % sorted(names)
    if not t.ok(rc == 0 and not why, "%s: chrome is trace-event JSON, one slice per csv "
                "action with its op/stage/microbatch, compute never overlapping" % name):
        t.diag(why or err)

    # svg: well-formed, a row label and a bar per compute action
    rc, svg, err = pipec("schedule", model, "--format", "svg", *extra)
    why = ""
    try:
        root = ET.fromstring(svg)
        ns = "{http://www.w3.org/2000/svg}"
        if root.tag != ns + "svg":
            why = "the root is %s" % root.tag
        labels = [x.text for x in root.iter(ns + "text")]
        bars = [x for x in root.iter(ns + "rect") if x.find(ns + "title") is not None]
        # actions that take time (a parameter-free stage's W takes none)
        ncomp = sum(1 for k in slices for e in slices[k]
                    if e["args"]["op"] in COMPUTE and e["dur"] > 0)
        if not why and any("rank %d" % k not in labels for k in per_rank):
            why = "a rank without its label"
        if not why and (len(bars) < ncomp or ncomp == 0):
            why = "%d bars for %d compute actions that take time" % (len(bars), ncomp)
    except ET.ParseError as e:
        why = "not well-formed XML: %s" % e
    if not t.ok(rc == 0 and not why, "%s: svg is well-formed XML with a labelled row per "
                "rank and a bar per compute action that takes time" % name):
        t.diag(why or err)

# torch: one row per pipeline rank; refused with recompute and replicas
rc, csv, err = pipec("schedule", MLP, "--format", "csv", "--set", "schedule=zb-h1")
_, rows = csv_rows(csv)
rc, torch, err = pipec("schedule", MLP, "--format", "torch", "--set", "schedule=zb-h1")
lines = torch.splitlines()
cells = [l.split(",") for l in lines]
cell_re = re.compile(r"^(\d+)([FBIW])(\d+)$")
good = rc == 0 and len(lines) == 4 and all(cell_re.match(c) for row in cells for c in row)
if good:
    for k in range(4):
        want = ["%s%s%s" % (r[3], "I" if r[2] == "B" else r[2], r[4])
                for r in rows if int(r[0]) == k and r[2] in COMPUTE]
        good = good and cells[k] == want
if not t.ok(good, "torch: one row per rank, no header, the rank's compute actions "
            "in order, zb-h1's B written as I"):
    t.diag(err or torch[:400])

for what, extra, reason in [
        ("recompute", ["--set", "recompute=[1, 0, 0, 0.5]"], "cannot express recompute"),
        ("replicas", ["--set", "replicas=2", "--set", "microbatches=4"],
         "cannot express replicas = 2")]:
    out = os.path.join(tmp, "refused-%s.csv" % what)
    rc, so, err = pipec("schedule", MLP, "--format", "torch", "-o", out, *extra)
    if not t.ok(rc == 1 and so == "" and reason in err and err.startswith("pipec: error:")
                and not os.path.exists(out),
                "torch with %s: exit 1, '%s', no output file" % (what, reason)):
        t.diag("exit %d; stderr: %s; file written: %s" % (rc, err, os.path.exists(out)))

# -o writes what stdout shows, for every format
same = []
for fmt in ("text", "csv", "torch", "chrome", "svg"):
    out = os.path.join(tmp, "o." + fmt)
    rc1, so, _ = pipec("schedule", MLP, "--format", fmt, "--cost", "uniform")
    rc2, so2, _ = pipec("schedule", MLP, "--format", fmt, "--cost", "uniform", "-o", out)
    if rc1 == 0 and rc2 == 0 and so2 == "" and open(out).read() == so:
        same.append(fmt)
if not t.ok(len(same) == 5, "-o FILE writes exactly what stdout shows (text, csv, torch, "
            "chrome, svg)"):
    t.diag("only %s" % same)

# ------------------------------------------------------------------ formulas


def bubble(P, M, sched, V=1, training=True, R=1):
    extra = sets(stages=P, microbatches=M, batch=M * R * 2, replicas=R)
    extra += ["--set", "schedule=" + sched]
    if not training:
        extra += ["--set", "optimizer=none"]
    rc, text, err = pipec("schedule", WIDE, "--cost", "uniform", *extra)
    s = summary(text)
    return (s.get("bubble_fraction"), s) if rc == 0 else (None, err)


def sweep(desc, cases, formula):
    bad = []
    for case in cases:
        got, s = bubble(*case[:2], **case[2])
        want = formula(*case[:2], **case[2])
        if got is None or abs(got - want) > 1e-8:
            bad.append("%s P=%d M=%d %s: got %s, want %.9g" % (
                desc, case[0], case[1], case[2], got, want))
    if not t.ok(not bad, "uniform %s: bubble_fraction = the published formula in %d "
                "--set cases" % (desc, len(cases))):
        t.diag("\n".join(bad[:10]))
        if bad and isinstance(s, str):
            t.diag(s)


Ps = [1, 2, 3, 4, 8, 16] if FULL else [1, 2, 3, 4, 8]
Ms = [1, 2, 3, 4, 5, 8, 16, 32] if FULL else [1, 2, 3, 5, 8, 16]
sweep("gpipe (P-1)/(M+P-1)", [(P, M, {"sched": "gpipe"}) for P in Ps for M in Ms],
      lambda P, M, **k: (P - 1) / (M + P - 1))
sweep("1f1b (P-1)/(M+P-1)", [(P, M, {"sched": "1f1b"}) for P in Ps for M in Ms]
      + [(P, M, {"sched": "1f1b", "R": 2}) for P in (2, 4) for M in (1, 4)],
      lambda P, M, **k: (P - 1) / (M + P - 1))
sweep("inference (P-1)/(M+P-1)",
      [(P, M, {"sched": "inference", "training": False}) for P in Ps for M in Ms],
      lambda P, M, **k: (P - 1) / (M + P - 1))
sweep("naive (P-1)/P", [(P, M, {"sched": "naive"}) for P in Ps for M in Ms[:4]],
      lambda P, M, **k: (P - 1) / P)
inter = [(P, M, {"sched": "interleaved(%d)" % V, "V": V})
         for V in ((2, 3, 4) if FULL else (2, 3)) for P in (2, 3, 4, 8)
         for M in (P, 2 * P, 4 * P) if P * V <= 64]
sweep("interleaved(V) (P-1)/(VM+P-1), M % P == 0", inter,
      lambda P, M, V=1, **k: (P - 1) / (V * M + P - 1))
zbh1 = [(P, M, {"sched": "zb-h1"}) for P in (2, 3, 4, 8) for M in (P, 2 * P, 3 * P + 1)]
sweep("zb-h1 (P-1)/(3M+P-1), M >= P", zbh1, lambda P, M, **k: (P - 1) / (3 * M + P - 1))
under = []
for P, M, _ in zbh1:
    z, _s = bubble(P, M, "zb-h1")
    o, _s = bubble(P, M, "1f1b")
    if z is None or o is None or not z < 0.5 * o:
        under.append("P=%d M=%d: zb-h1 %s, 1f1b %s" % (P, M, z, o))
if not t.ok(not under, "zb-h1's bubble is under half of 1f1b's once M >= P (%d cases)"
            % len(zbh1)):
    t.diag("\n".join(under))

# peak in-flight micro-batches, from the text output
bad = []
n = 0
for P in (1, 2, 3, 4, 8):
    for M in (1, 2, 3, 4, 8, 12):
        for sched, want in (("1f1b", lambda r: min(P - r, M)), ("gpipe", lambda r: M)):
            got, s = bubble(P, M, sched)
            n += 1
            peaks = s["peak"] if got is not None else {}
            if peaks != {r: want(r) for r in range(P)}:
                bad.append("%s P=%d M=%d: peak %s" % (sched, P, M, peaks))
if not t.ok(not bad, "peak in-flight per rank: 1f1b min(P-r, M), gpipe M (%d schedules "
            "through the text output)" % n):
    t.diag("\n".join(bad[:10]))

# ------------------------------------------------------------------ round trip

BUILTIN = [
    ("naive", {}), ("gpipe", {}), ("1f1b", {}), ("zb-h1", {}),
    ("interleaved(2)", {"microbatches": 8}), ("interleaved(3)", {"microbatches": 4}),
    ("inference", {"optimizer": "none"}),
    ("1f1b", {"microbatches": 2}),                           # M < P
    ("zb-h1", {"stages": 1}),                                # P = 1
    ("gpipe", {"microbatches": 3, "batch": 6}),              # M % P != 0
    ("1f1b", {"stages": 8, "microbatches": 3, "batch": 6}),
]
BUILTIN_LOWERED_ONLY = [   # what PyTorch's compute-only CSV cannot hold
    ("1f1b", {"replicas": 2, "microbatches": 4}),
    ("zb-h1", {"recompute": "[1, 0.5, 0, 1]"}),
    ("interleaved(2)", {"replicas": 2, "microbatches": 4, "recompute": "[1, 1, 0, 0]"}),
]
if FULL:
    BUILTIN += [(s, {"stages": P, "microbatches": M, "batch": 2 * M})
                for s in ("naive", "gpipe", "1f1b", "zb-h1") for P in (2, 5, 16)
                for M in (1, 3, 16)]
    BUILTIN += [("interleaved(%d)" % V, {"stages": P, "microbatches": M, "batch": 2 * M})
                for V in (2, 4) for P in (2, 4) for M in (P, 3 * P)]

bad_csv, bad_torch, n_csv, n_torch = [], [], 0, 0
for k, (sched, kw) in enumerate(BUILTIN + BUILTIN_LOWERED_ONLY):
    base = ["--set", "schedule=" + sched] + sets(**kw)
    rc, csv, err = pipec("schedule", WIDE, "--format", "csv", *base)
    if rc != 0:
        bad_csv.append("%s %s: exit %d: %s" % (sched, kw, rc, err))
        continue
    keep = sets(**kw)
    path = write("rt%d.csv" % k, csv)
    rc, back, err = pipec("schedule", WIDE, "--format", "csv", *(keep + file_sched(path)))
    n_csv += 1
    if rc != 0 or back != csv:
        bad_csv.append("%s %s: exit %d, %s" % (sched, kw, rc, err or "a different program"))
    if (sched, kw) in BUILTIN_LOWERED_ONLY:
        continue
    tpath = os.path.join(tmp, "rt%d.torch.csv" % k)
    rc, _, err = pipec("schedule", WIDE, "--format", "torch", "-o", tpath, *base)
    rc2, back, err2 = pipec("schedule", WIDE, "--format", "csv", *(keep + file_sched(tpath)))
    n_torch += 1
    if rc != 0 or rc2 != 0 or back != csv:
        bad_torch.append("%s %s: exit %d/%d, %s" % (sched, kw, rc, rc2,
                                                    err or err2 or "a different program"))
if not t.ok(not bad_csv, "every built-in schedule's --format csv read back with "
            "schedule = file(...) is the identical program (%d, replicas and recompute "
            "included)" % n_csv):
    t.diag("\n".join(bad_csv[:8]))
if not t.ok(not bad_torch, "every built-in schedule's --format torch read back with "
            "schedule = file(...) lowers to the identical program (%d)" % n_torch):
    t.diag("\n".join(bad_torch[:8]))

# The same through a copy of the model that names the file, relative to it.
os.makedirs(os.path.join(tmp, "copy", "orders"))
rc, torch, _ = pipec("schedule", MLP, "--format", "torch", "--set", "schedule=zb-h1")
write(os.path.join("copy", "orders", "h1.csv"), torch)
text = open(MLP).read().replace("schedule     = 1f1b;", 'schedule     = file("orders/h1.csv");')
copy = write(os.path.join("copy", "mlp4-file.pipe"), text)
rc1, want, _ = pipec("schedule", MLP, "--format", "csv", "--set", "schedule=zb-h1")
rc2, got, err = pipec("schedule", copy, "--format", "csv")
rc3, txt1, _ = pipec("schedule", MLP, "--set", "schedule=zb-h1")
rc4, txt2, _ = pipec("schedule", copy)
s1, s2 = summary(txt1), summary(txt2)
if not t.ok(rc1 == rc2 == rc3 == rc4 == 0 and got == want and 'file(' in text
            and s1["step_time"] == s2["step_time"] and s1["peak"] == s2["peak"],
            "a model copy with schedule = file(\"orders/h1.csv\") (relative to the model) "
            "runs zb-h1's exported order: same program, step time and memory"):
    t.diag(err)

# ------------------------------------------------------------------ refused


def refused(desc, text, extra, where, pattern, model=WIDE):
    """A broken file: exit 1, nothing on stdout, the first line
    FILE:LINE:COL: error: rank R, action I (...): REASON, then the source
    line and a caret under the column."""
    path = write("bad%d.csv" % runs["n"], text)
    rc, out, err = pipec("schedule", model, *(extra + file_sched(path)))
    lines = err.splitlines()
    line, col = where
    head = "%s:%d:%d: error: " % (path, line, col)
    good = (rc == 1 and out == "" and len(lines) >= 3 and lines[0].startswith(head)
            and re.search(pattern, lines[0]) is not None)
    if good:
        src = text.splitlines()[line - 1]
        m = re.match(r"^ *(\d+) \| (.*)$", lines[1])
        c = re.match(r"^ *\| ( *)\^", lines[2])
        good = bool(m and int(m.group(1)) == line and m.group(2) == src
                    and c and len(c.group(1)) == col - 1)
    if not t.ok(good, "refused: %s" % desc):
        t.diag("exit %d; want %s... /%s/" % (rc, head, pattern))
        t.diag(err or out)


P2 = sets(stages=2, microbatches=2, batch=4)
rc, csv, _ = pipec("schedule", WIDE, "--format", "csv", "--set", "schedule=1f1b", *P2)
lines = csv.splitlines()
# drop rank 1's first RECV_F and renumber its actions
drop = next(i for i, l in enumerate(lines) if l.startswith("1,") and ",RECV_F," in l)
dropped, k = [], 0
for i, l in enumerate(lines):
    if i == drop:
        continue
    f = l.split(",")
    if f[0] == "1":
        f[1] = str(k)
        k += 1
    dropped.append(",".join(f))
fline = next(i for i, l in enumerate(dropped) if l.startswith("1,0,"))
refused("a dropped RECV_F (rank 1 runs F without its input)", "\n".join(dropped) + "\n", P2,
        (fline + 1, 5), r"rank 1, action 0 \(F stage 1 mb 0\): its input never arrives: "
        r"no RECV_F of stage 1 mb 0")
refused("a swapped order (rank 1 runs F1 before B0): deadlock, the cycle named",
        "0F0,0B0,0F1,0B1\n1F0,1F1,1B0,1B1\n", P2, (1, 5),
        r"rank 0, action 2 \(RECV_B stage 0 mb 0\): deadlock: waits forever for its "
        r"SEND_B; 2 ranks blocked: .*\(a cycle\)")
refused("a swapped RECV_B / SEND_F in pipec's CSV deadlocks",
        "rank,index,op,stage,microbatch,peer\n0,0,F,0,0,-1\n0,1,RECV_B,0,0,1\n"
        "0,2,SEND_F,0,0,1\n0,3,B,0,0,-1\n0,4,OPTIM,-1,-1,-1\n1,0,RECV_F,1,0,0\n"
        "1,1,F,1,0,-1\n1,2,B,1,0,-1\n1,3,SEND_B,1,0,0\n1,4,OPTIM,-1,-1,-1\n",
        sets(stages=2, microbatches=1, batch=2), (3, 5),
        r"rank 0, action 1 \(RECV_B stage 0 mb 0\): deadlock")
refused("a micro-batch run twice (both places named)",
        "0F0,0F1,0B0,0B1\n1F0,1B0,1F1,1F1,1B1\n", P2, (2, 13),
        r"rank 1, action 3 \(F stage 1 mb 1\): micro-batch 1 of stage 1 runs F twice "
        r"\(first at line 2, column 9\)")
refused("a backward before its forward",
        "0F0,0F1,0B0,0B1\n1B0,1F0,1F1,1B1\n", P2, (2, 1),
        r"rank 1, action 0 \(B stage 1 mb 0\): backward before its forward")
refused("a micro-batch never run backward",
        "rank,index,op,stage,microbatch,peer\n0,0,F,0,0,-1\n0,1,F,0,1,-1\n0,2,B,0,0,-1\n"
        "0,3,B,0,1,-1\n1,0,F,1,0,-1\n1,1,F,1,1,-1\n1,2,B,1,0,-1\n", P2, (8, 5),
        r"rank 1, action \d+ \(OPTIM\): OPTIM before all backward work: micro-batch 1 "
        r"of stage 1 has not run B")
refused("a weight gradient before its backward (split, zb-h1 style)",
        "0F0,0F1,0I0,0W0,0I1,0W1\n1F0,1W0,1I0,1F1,1I1,1W1\n", P2, (2, 5),
        r"rank 1, action \d+ \(W stage 1 mb 0\): W before its B")
refused("a stage on two ranks", "0F0,0F1,0B0,0B1\n0F0,0B0,0F1,0B1\n", P2, (2, 1),
        r"stage 0 runs on rank 1 here, but on rank 0 at line 1")

# ------------------------------------------------------------------ shapes

# M < P: every schedule verifies and the formula holds
bad = []
for sched in ("naive", "gpipe", "1f1b", "zb-h1"):
    for P, M in ((4, 1), (4, 2), (8, 3), (16, 5)):
        got, s = bubble(P, M, sched)
        want = ((P - 1) / P if sched == "naive" else (P - 1) / (M + P - 1)
                if sched != "zb-h1" else None)
        if got is None or (want is not None and abs(got - want) > 1e-8):
            bad.append("%s P=%d M=%d: %s (want %s)" % (sched, P, M, got, want))
if not t.ok(not bad, "M < P: naive, gpipe, 1f1b and zb-h1 schedule, verify and match "
            "their formulas (16 cases)"):
    t.diag("\n".join(bad))

# P = 1: no messages, no bubble
rc, csv, _ = pipec("schedule", MLP, "--format", "csv", *sets(stages=1, partition="auto"))
rc2, text, _ = pipec("schedule", MLP, "--cost", "uniform", *sets(stages=1, partition="auto"))
s = summary(text)
t.ok(rc == rc2 == 0 and "SEND" not in csv and "RECV" not in csv
     and s.get("bubble_fraction") == 0 and list(s["rows"]) == [0],
     "P = 1: one rank, no SEND/RECV, bubble_fraction 0")

# one layer per stage: mlp4 on 15 ranks
rc, text, err = pipec("schedule", MLP, "--cost", "uniform", *sets(stages=15, partition="auto"))
rc2, csv, _ = pipec("schedule", MLP, "--format", "csv", *sets(stages=15, partition="auto"))
s = summary(text)
_, rows = csv_rows(csv)
t.ok(rc == rc2 == 0 and sorted(s["rows"]) == list(range(15))
     and {int(r[0]) for r in rows} == set(range(15))
     and abs(s["bubble_fraction"] - 14 / (32 + 14)) < 1e-8,
     "one layer per stage: mlp4 on 15 ranks, 15 chart rows, bubble 14/46")

# uneven partitions: the model cost sees them, the uniform cost does not
rc, text, err = pipec("schedule", MLP, *sets(partition="[1, 1, 1, 12]"))
s = summary(text)
rc2, text2, _ = pipec("schedule", MLP, "--cost", "uniform", *sets(partition="[1, 1, 1, 12]"))
s2 = summary(text2)
t.ok(rc == rc2 == 0 and s["idle"] and min(s["idle"], key=s["idle"].get) == 3
     and s["bubble_fraction"] > 0.5
     and abs(s2["bubble_fraction"] - 3 / 35) < 1e-8,
     "uneven partition [1, 1, 1, 12]: the model cost makes rank 3 the busiest "
     "(bubble %.3f), the uniform cost keeps 3/35" % s.get("bubble_fraction", -1))
rc, text, err = pipec("schedule", MLP, *sets(partition="[13, 1, 1]", stages=3))
s = summary(text)
t.ok(rc == 0 and s["idle"] and min(s["idle"], key=s["idle"].get) == 0,
     "uneven partition [13, 1, 1] on 3 ranks: rank 0 is the busiest")

# ------------------------------------------------------------------ partition / memory

rc, out, err = pipec("schedule", MLP, *sets(partition="auto", memory="1MiB"))
t.ok(rc == 1 and out == "" and re.search(r"error: no partition of 15 layers into 4 stages "
                                         r"fits memory = 1048576 bytes per rank", err),
     "partition = auto with memory = 1MiB: exit 1, 'no partition ... fits memory'")
if rc != 1:
    t.diag(err or out[:300])
rc, text, err = pipec("schedule", MLP, *sets(partition="auto", memory="16GiB"))
t.ok(rc == 0, "partition = auto with memory = 16GiB schedules")
# a cap that only the balanced partition fits, checked through compile's own
# memory table: every rank's weights + gradients + optimizer state under it
rc, text, err = pipec("schedule", MLP, *sets(partition="auto", memory="120MiB"))
tot = [int(m.group(1)) + int(m.group(2)) + int(m.group(3)) for m in
       re.finditer(r"^  \d+ +(\d+) +(\d+) +(\d+) +\d+ +\d+$", text, re.M)]
t.ok(rc == 0 and len(tot) == 4 and max(tot) <= 120 * 2 ** 20,
     "partition = auto with memory = 120MiB: every rank's parameter state fits (%s)"
     % [round(x / 2 ** 20, 1) for x in tot])

# ------------------------------------------------------------------ the model cost


def cost_line(text):
    m = re.search(r"^cost: (.*(?:\n      .*)*)", text, re.M)
    return re.sub(r"\s+", " ", m.group(1)) if m else ""


rc, text, err = pipec("schedule", MLP)
c = cost_line(text)
t.ok(rc == 0 and re.search(r"model: compute 5e\+10 FLOP/s per rank \(--flops\), plus each "
                           r"GEMM pass's weights once at 2e\+10 B/s \(--weight-bandwidth\); messages "
                           r"2e-06 s \(--latency\) \+ bytes at 8e\+09 B/s \(--bandwidth\); "
                           r"optimizer 24 bytes a parameter at 2e\+10 B/s \(--mem-bandwidth\)", c),
     "--cost model (the default) states its constants: %s" % c)
rc, text, err = pipec("schedule", MLP, "--flops", "1.5e12", "--bandwidth", "2.5e10",
                      "--latency", "3e-5")
c = cost_line(text)
t.ok(rc == 0 and "1.5e+12 FLOP/s" in c and "3e-05 s (--latency)" in c
     and "2.5e+10 B/s (--bandwidth)" in c,
     "--flops, --bandwidth, --latency override them, and the cost line says so")

# Hand-computed step times.  mlp4 forward: 22,252,554 FLOP per sample.  The
# FLOPs alone first (--weight-bandwidth off), the weights' reads after.
INF = sets(schedule="inference", optimizer="none") + ["--weight-bandwidth", "off"]
rc, text, _ = pipec("schedule", MLP, "--flops", "1e9", *(INF + sets(stages=1, partition="auto")))
want = 256 * 22252554 / 1e9
got = summary(text).get("step_time", -1)
t.ok(rc == 0 and abs(got - want) <= 1e-9 * want,
     "model cost, one rank: step_time = 256 x 22,252,554 FLOP / 1e9 FLOP/s = %.9g (got %s)"
     % (want, got))
rc, text, _ = pipec("schedule", MLP, "--flops", "1e300", "--bandwidth", "1e9",
                    "--latency", "1e-3", *(INF + sets(stages=2, partition="[8, 7]",
                                                      microbatches=1)))
want = 1e-3 + 256 * 2048 * 4 / 1e9
got = summary(text).get("step_time", -1)
t.ok(rc == 0 and abs(got - want) <= 1e-9 * want,
     "model cost, two ranks, free compute: step_time = latency + 256 x 2048 x 4 B / "
     "bandwidth = %.9g (got %s)" % (want, got))
r1 = summary(pipec("schedule", MLP, "--flops", "2e10", *INF)[1]).get("step_time")
r2 = summary(pipec("schedule", MLP, "--flops", "4e10", "--latency", "1e-300",
                   "--bandwidth", "1e300", *INF)[1]).get("step_time")
r3 = summary(pipec("schedule", MLP, "--flops", "2e10", "--latency", "1e-300",
                   "--bandwidth", "1e300", *INF)[1]).get("step_time")
t.ok(r1 and r2 and r3 and abs(r3 / r2 - 2) < 1e-7 and r1 > r3,
     "doubling --flops halves a free-communication step; messages add time "
     "(%s, %s, %s)" % (r1, r2, r3))
# --flops-backward: B at its own rate.  One rank, the optimizer free: the
# step is 256 x (forward FLOP / --flops + backward FLOP / --flops-backward)
ONE = sets(stages=1, partition="auto") + ["--mem-bandwidth", "1e300",
                                           "--weight-bandwidth", "off"]
tb = [summary(pipec("schedule", MLP, "--flops", "1e9", "--flops-backward", fb, *ONE)[1])
      .get("step_time", -1) for fb in ("1e9", "2e9", "1e300")]
rc, text, _ = pipec("schedule", MLP, "--flops", "1e9", "--flops-backward", "2e9", *ONE)
t.ok(abs(tb[2] - 256 * 22252554 / 1e9) <= 1e-9 * tb[2]
     and abs(tb[1] - (tb[0] + tb[2]) / 2) <= 1e-8 * tb[1]   # 9 printed digits
     and "backward 2e+09 (--flops-backward)" in cost_line(text),
     "--flops-backward times B alone: free backward leaves 256 x 22,252,554 / 1e9, twice "
     "the rate halves the backward share (%s)" % tb)
# --weight-bandwidth: each GEMM pass (forward; input- and weight-gradient)
# reads its weights once, whatever its rows: mlp4's linears hold
# 11,117,568 weights.  Inference on one rank, 32 micro-batches:
# 256 x 22,252,554 / 1e9 + 32 x 11,117,568 x 4 B / 1e9 B/s.
NW = 100 * 1024 + 1024 * 1024 + 1024 * 2048 + 2048 * 2048 + 2048 * 1024 + 1024 * 1024 \
    + 1024 * 512 + 512 * 10
INFW = sets(schedule="inference", optimizer="none", stages=1, partition="auto")
got = summary(pipec("schedule", MLP, "--flops", "1e9", "--weight-bandwidth", "1e9",
                    *INFW)[1]).get("step_time", -1)
want = 256 * 22252554 / 1e9 + 32 * NW * 4 / 1e9
t.ok(abs(got - want) <= 1e-8 * want,
     "--weight-bandwidth: inference over 32 micro-batches adds 32 reads of the 11,117,568 "
     "weights: %.9g (got %s)" % (want, got))
# Training, compute and optimizer free: F, and B's two passes (input and
# weight gradient), each one read a micro-batch, but for fc1's input-gradient
# pass, which does not run (it reads the model's input): 3 x 11,117,568 -
# 102,400 weights a micro-batch, at M = 8 and M = 32 alike; the default
# (2e10) and `off` (nothing) around it.
FREE = ["--flops", "1e300", "--mem-bandwidth", "1e300"] + sets(stages=1, partition="auto")
tw = {}
for mb in (8, 32):
    tw[mb] = summary(pipec("schedule", MLP, *FREE, "--weight-bandwidth", "4e9",
                           *sets(microbatches=mb))[1]).get("step_time", -1)
dflt = summary(pipec("schedule", MLP, *FREE)[1]).get("step_time", -1)
off = summary(pipec("schedule", MLP, *FREE, "--weight-bandwidth", "off")[1]).get("step_time", -1)
R3 = 3 * NW - 100 * 1024
t.ok(all(abs(tw[mb] - mb * R3 * 4 / 4e9) <= 1e-8 * tw[mb] for mb in tw)
     and abs(dflt - 32 * R3 * 4 / 2e10) <= 1e-8 * dflt and 0 <= off < 1e-200,
     "--weight-bandwidth in training: a read a micro-batch for F, B and W, none for fc1's "
     "B: %s at M = 8, 32 (want %.9g, %.9g); default 2e10: %s; off: %s"
     % (tw, 8 * R3 * 4 / 4e9, 32 * R3 * 4 / 4e9, dflt, off))
# zb-h1 splits the backward: W is its own action, still one read
zb = summary(pipec("schedule", MLP, *FREE, "--weight-bandwidth", "4e9",
                   *sets(schedule="zb-h1"))[1]).get("step_time", -1)
t.ok(abs(zb - 32 * R3 * 4 / 4e9) <= 1e-8 * zb,
     "split backward (zb-h1, one stage): the same reads (%s)" % zb)
rc, out, err = pipec("schedule", MLP, "--weight-bandwidth", "0")
t.ok(rc == 2 and "needs a positive number" in err,
     "--weight-bandwidth 0 is a usage error (off turns the term off)")

rc, text, _ = pipec("schedule", MLP, "--cost", "uniform", "--flops", "1e9")
t.ok(rc == 0 and cost_line(text).startswith("uniform: F = 1, B = 2")
     and summary(text)["step_time"] == 105,
     "--cost uniform ignores --flops: F = 1, B = 2, step 105 = 3 x (32 + 3)")
for bad_arg in (["--flops", "0"], ["--bandwidth", "-1"], ["--latency", "x"],
                ["--flops-backward", "0"]):
    rc, out, err = pipec("schedule", MLP, *bad_arg)
    t.ok(rc == 2 and "needs a positive number" in err,
         "%s %s: exit 2, needs a positive number" % tuple(bad_arg))

# ------------------------------------------------------------------ the end

if not t.ok(not runs["san"], "no sanitizer reports in %d pipec runs" % runs["n"]):
    for args, tail in runs["san"][:3]:
        t.diag("pipec %s\n%s" % (" ".join(map(str, args)), tail))
sys.exit(t.done())
