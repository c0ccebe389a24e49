#!/usr/bin/python3
"""fuzz.py -- seeded random mutations of .pipe files, run through `pipec check`.

Used by t/004-fuzz.t; runnable by hand:

    python3 t/fuzz.py --pipec build/compiler/pipec --cases 3000 models/*.pipe t/errors/*.pipe
    python3 t/fuzz.py --pipec build/compiler/pipec --only 1234 --keep /tmp/f models/*.pipe

Every case is derived from (--seed, case number) alone, so one failing case
is reproduced with --only N, and --keep DIR writes its input there.

`--command schedule` or `compile` runs that instead of `check` (compile: into
a scratch directory, the cpu and cuda backends on alternate cases).

The rule checked: whatever the bytes, `pipec check` exits 0 (the mutation
happened to be valid) or 1 (bad input, reported); with a mutated --set also
2 (bad command line).  Never a signal, never 3 (internal error), never a
sanitizer report, never longer than --timeout seconds.  Every exit 1 must
say why on stderr, and a located message must follow GNU form.

Output is TAP: one test per mutation strategy (all its cases), then one
that the whole run stayed within its time.
"""
import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

TOKEN_RE = re.compile(rb'"[^"\n]*"?|[A-Za-z0-9_.+-]+|\.\.|#[^\n]*|\s+|.', re.S)

KEYWORDS = [b"model", b"pipeline", b"input", b"target", b"layer", b"loss", b"stage", b"from"]
EXTRA_TOKENS = KEYWORDS + [
    b"linear", b"relu", b"gelu", b"tanh", b"sigmoid", b"dropout", b"layernorm", b"softmax",
    b"batch", b"f32", b"f16", b"bf16", b"i32", b"auto", b"true", b"false",
    b"stages", b"batch", b"microbatches", b"schedule", b"partition", b"recompute",
    b"replicas", b"dtype", b"optimizer", b"steps", b"seed", b"memory", b"inflight",
    b"1f1b", b"gpipe", b"naive", b"zb-h1", b"zb-v", b"pipedream", b"pipedream-2bw",
    b"inference", b"interleaved", b"file", b"sgd", b"adam", b"lr", b"momentum",
    b"interleaved-zb", b"looped-bfs", b"dualpipev",
    b"cross_entropy", b"mse", b"next_token", b"16GiB", b"..", b"{", b"}", b"(", b")",
    b"[", b"]", b";", b":", b",", b"=", b'"', b"#", b"\n", b"-", b".",
]
# (Not 100000: a 100,000-layer model is valid, and partition = auto takes
# minutes on it under the sanitizers -- the partitioner's cost, reported.)
HUGE_NUMBERS = [
    b"0", b"-1", b"1", b"2", b"3", b"4097", b"65", b"2147483647", b"2147483648",
    b"4294967296", b"9223372036854775807", b"9223372036854775808",
    b"99999999999999999999999999999", b"1e308", b"1e309", b"1e-400", b"0.0", b".5",
    b"1.", b"0e0", b"1e999999", b"100001", b"1000000", b"0x10", b"1e+3",
    b"1099511627776", b"1e-3",
]

STRATEGIES = ["byteflip", "delete", "duplicate", "lines", "tokswap", "tokreplace",
              "truncate", "splice", "hugenum", "deep", "binary", "set"]


def tokens(data):
    return TOKEN_RE.findall(data)


def mutate(rng, strategy, seeds, valid):
    """Returns (bytes of the file, list of --set arguments).  Most cases
    start from a valid program (`valid`), the rest from any seed."""
    pool = valid if valid and (strategy == "set" or rng.random() < 0.6) else seeds
    name, data = rng.choice(pool)
    data = bytearray(data)
    sets = []
    n = len(data)
    if strategy == "byteflip":
        for _ in range(rng.randint(1, 8)):
            if not data:
                break
            i = rng.randrange(len(data))
            r = rng.random()
            if r < 0.05:
                data[i] = 0
            elif r < 0.5:
                data[i] = rng.randrange(256)
            else:
                data[i] = rng.choice(b"{}()[];:,=.#\"\n -_0123456789aez")
    elif strategy == "delete":
        for _ in range(rng.randint(1, 4)):
            if not data:
                break
            i = rng.randrange(len(data))
            del data[i:i + rng.randint(1, 40)]
    elif strategy == "duplicate":
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(n)
            chunk = data[i:i + rng.randint(1, 200)]
            j = rng.randrange(len(data) + 1)
            data[j:j] = chunk * rng.randint(1, 5)
    elif strategy == "lines":
        lines = bytes(data).split(b"\n")
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(3)
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            if op == 0:
                lines[i], lines[j] = lines[j], lines[i]
            elif op == 1 and len(lines) > 1:
                del lines[i]
            else:
                lines.insert(j, lines[i])
        data = bytearray(b"\n".join(lines))
    elif strategy in ("tokswap", "tokreplace", "hugenum"):
        toks = tokens(bytes(data))
        idx = [i for i, t in enumerate(toks) if not t.isspace() and not t.startswith(b"#")]
        if not idx:                 # only comments: give it a token to work on
            toks.append(b"model")
            idx = [len(toks) - 1]
        for _ in range(rng.randint(1, 4)):
            if strategy == "tokswap":
                a, b = rng.choice(idx), rng.choice(idx)
                toks[a], toks[b] = toks[b], toks[a]
            elif strategy == "tokreplace":
                a = rng.choice(idx)
                pool = EXTRA_TOKENS if rng.random() < 0.5 else [toks[i] for i in idx]
                r = rng.random()
                if r < 0.7:
                    toks[a] = rng.choice(pool)
                elif r < 0.85:
                    toks[a] = b""
                else:
                    toks.insert(a, rng.choice(pool) + b" ")
            else:
                nums = [i for i in idx if toks[i][:1].isdigit()] or idx
                toks[rng.choice(nums)] = rng.choice(HUGE_NUMBERS)
        data = bytearray(b"".join(toks))
    elif strategy == "truncate":
        data = data[:rng.randrange(n + 1)]
    elif strategy == "splice":
        _, other = rng.choice(seeds)
        data = data[:rng.randrange(n + 1)] + other[rng.randrange(len(other) + 1):]
    elif strategy == "deep":
        i = rng.randrange(n + 1)
        kind = rng.randrange(8)
        depth = rng.choice([10, 100, 1000, 9999, 10001, 20000, 100000])
        if kind == 0:
            ins = b"[" * depth + b"1" + b"]" * depth
        elif kind == 1:
            ins = b"f(" * depth + b")" * depth
        elif kind == 2:
            ins = b"{" * depth + b"}" * depth
        elif kind == 3:            # a long line
            ins = b" " * rng.choice([500, 5000, 100000]) + b"$"
        elif kind == 4:            # a long name
            ins = b"x" * rng.choice([64, 65, 1000, 100000])
        elif kind == 5:            # a long string
            ins = b'"' + b"p" * rng.choice([1000, 100000]) + rng.choice([b'"', b""])
        elif kind == 6:            # many layers
            ins = b"layer big[%d] : relu;\n" % rng.choice([1000, 20000, 100001])
        else:                      # many list elements
            ins = b"[" + b"1, " * depth + b"1]"
        data[i:i] = ins
    elif strategy == "binary":
        size = rng.choice([0, 1, 7, 100, 4096, 70000])
        r = rng.random()
        if r < 0.3:
            data = bytearray(rng.randrange(256) for _ in range(size))
        elif r < 0.6:
            data = bytearray(rng.randrange(1, 256) for _ in range(size))   # no NUL
        else:
            data = bytearray(rng.randrange(32, 127) for _ in range(size))
    elif strategy == "set":
        key = rng.choice([b"stages", b"batch", b"microbatches", b"schedule", b"partition",
                          b"recompute", b"replicas", b"dtype", b"optimizer", b"steps",
                          b"seed", b"memory", b"inflight", b"stagse", b"model", b""])
        val = rng.choice(EXTRA_TOKENS + HUGE_NUMBERS + [
            b"[1, 2]", b"[1]", b"[]", b"interleaved(2)", b"interleaved(0)", b"file(\"x.csv\")",
            b"sgd(lr = 0.1)", b"adam()", b"{ stage 0 : fc1 .. head; }", b"[0.5, 2]", b"auto",
            b"[3, 2, 1]", b"[1, 2]", b"[4, 3, 2, 1]", b"interleaved-zb(2)", b"looped-bfs(3)",
            b"dualpipev"])
        if rng.random() < 0.3:
            t = bytearray(val)
            for _ in range(rng.randint(1, 3)):
                if t:
                    t[rng.randrange(len(t))] = rng.randrange(1, 256)
            val = bytes(t)
        for _ in range(rng.randint(1, 3)):
            sets.append(key + rng.choice([b"=", b" = ", b"==", b""]) + val)
            key = rng.choice([b"stages", b"partition", b"schedule"])
            val = rng.choice([b"1", b"2", b"4", b"auto", b"1f1b", b"zb-v", b"pipedream",
                              b"pipedream-2bw", b"dualpipev"])
    return bytes(data), sets


SAN_RE = re.compile(r"AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:|"
                    r"internal error|Assertion|Segmentation")
LOC_RE = re.compile(r"^(.*):(\d+):(\d+): (error|warning|note): ")


def judge(rc, err, with_sets):
    """Why this outcome is wrong, or None."""
    allowed = (0, 1, 2) if with_sets else (0, 1)
    if rc == "timeout":
        return "timed out"
    if rc < 0:
        return "killed by signal %d" % -rc
    m = SAN_RE.search(err)
    if m:
        return "stderr has '%s'" % m.group(0)
    if rc not in allowed:
        return "exit %d (allowed: %s)" % (rc, ", ".join(map(str, allowed)))
    if rc == 1:
        if "error" not in err:
            return "exit 1 without an error message"
        lines = err.split("\n")
        for i, line in enumerate(lines):
            lm = LOC_RE.match(line)
            if lm and not lm.group(1).startswith("--set"):
                if int(lm.group(2)) < 1 or int(lm.group(3)) < 1:
                    return "bad location in '%s'" % line
                # the source line and the caret follow (unless the line is empty)
                if i + 2 >= len(lines) or "|" not in lines[i + 1] or "^" not in lines[i + 2]:
                    return "no source line and caret after '%s'" % line
    if rc == 0 and err.strip():
        return "exit 0 but stderr is not empty"
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pipec", required=True)
    ap.add_argument("--seed", type=int, default=20261123)
    ap.add_argument("--cases", type=int, default=3000)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--timeout", type=float, default=20)
    ap.add_argument("--budget", type=float, default=0,
                    help="fail the last test if the run takes longer (seconds; 0: no limit)")
    ap.add_argument("--only", type=int, default=-1, help="run just this case number")
    ap.add_argument("--command", choices=("check", "schedule", "compile"), default="check",
                    help="what pipec does with each case (compile: into a scratch directory, "
                         "both backends in turn)")
    ap.add_argument("--keep", help="write the failing (or --only) inputs here")
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()

    seeds = []
    for f in a.files:
        with open(f, "rb") as fp:
            seeds.append((os.path.basename(f), fp.read()))
    tmp = tempfile.mkdtemp(prefix="pipec-fuzz.", dir=os.environ.get("TMPDIR", "/tmp"))
    valid = []
    for name, data in seeds:
        path = os.path.join(tmp, "seed.pipe")
        with open(path, "wb") as fp:
            fp.write(data)
        if subprocess.run([a.pipec, "check", path], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0:
            valid.append((name, data))
        os.unlink(path)
    cases = [a.only] if a.only >= 0 else range(a.cases)
    results = {s: [0, [], {}] for s in STRATEGIES}     # cases, failures, exit counts
    lock = threading.Lock()

    def run(k):
        rng = random.Random(a.seed * 1000003 + k)
        strategy = STRATEGIES[k % len(STRATEGIES)]
        data, sets = mutate(rng, strategy, seeds, valid)
        path = os.path.join(tmp, "case%d.pipe" % k)
        with open(path, "wb") as fp:
            fp.write(data)
        out = os.path.join(tmp, "out%d" % k)
        argv = [a.pipec, a.command, path]
        if a.command == "compile":
            argv += ["-o", out, "--backend", "cuda" if k % 2 else "cpu"]
        for s in sets:
            argv += ["--set", s.decode("latin-1").replace("\0", "")]
        try:
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, timeout=a.timeout)
            rc, err = p.returncode, p.stderr.decode("utf-8", "replace")
        except subprocess.TimeoutExpired:
            rc, err = "timeout", ""
        why = judge(rc, err, bool(sets))
        if a.keep and (why or a.only >= 0):
            os.makedirs(a.keep, exist_ok=True)
            with open(os.path.join(a.keep, "case%d.pipe" % k), "wb") as fp:
                fp.write(data)
        os.unlink(path)
        shutil.rmtree(out, ignore_errors=True)
        with lock:
            results[strategy][0] += 1
            results[strategy][2][rc] = results[strategy][2].get(rc, 0) + 1
            if why:
                tail = "\n".join(err.strip().split("\n")[-6:])
                results[strategy][1].append((k, why, sets, tail))

    start = time.time()
    with ThreadPoolExecutor(max_workers=max(1, a.jobs)) as ex:
        list(ex.map(run, cases))
    elapsed = time.time() - start
    os.rmdir(tmp)

    ran = [s for s in STRATEGIES if results[s][0]]
    print("1..%d" % (len(ran) + 1))
    print("# %d seed files, %d of them valid programs" % (len(seeds), len(valid)))
    n = failed = 0
    for s in ran:
        count, bad, rcs = results[s]
        n += 1
        print("%s %d - %s: %d cases exit 0 or 1%s, no crash, no sanitizer report, no hang"
              % ("not ok" if bad else "ok", n, s, count, " (or 2 for --set)" if s == "set" else ""))
        print("#   exits: " + ", ".join("%s: %d" % (k, v) for k, v in
                                       sorted(rcs.items(), key=lambda kv: str(kv[0]))))
        for k, why, sets, tail in bad[:10]:
            print("#   case %d: %s; reproduce: python3 t/fuzz.py --pipec PIPEC --seed %d "
                  "--only %d --keep DIR FILES...%s" % (k, why, a.seed, k,
                                                       " (--set %r)" % sets if sets else ""))
            for line in tail.split("\n"):
                print("#     " + line)
        if len(bad) > 10:
            print("#   ... and %d more" % (len(bad) - 10))
        if bad:
            kinds = {}
            for _, why, _, _ in bad:
                w = re.sub(r"'.*", "", why)
                kinds[w] = kinds.get(w, 0) + 1
            print("#   failures by kind: " + "; ".join("%d x %s" % (c, w) for w, c in
                                                      sorted(kinds.items())))
        failed += bool(bad)
    n += 1
    slow = a.budget and elapsed > a.budget
    print("%s %d - %d cases in %.1f s with %d jobs%s" % (
        "not ok" if slow else "ok", n, len(cases), elapsed, a.jobs,
        " (over the %g s budget)" % a.budget if slow else ""))
    return 1 if failed or slow else 0


if __name__ == "__main__":
    sys.exit(main())
