#!/usr/bin/env python3
"""fuzz/differential.py — our readers against independent ones, file by file.

    python3 fuzz/differential.py st   LIBPIPERT.A DIR...
    python3 fuzz/differential.py json LIBPIPERT.A DIR...

Every file in DIR (a corpus: fuzz/corpus/NAME, or what fuzzing found in
fuzz/build/corpus/NAME) is given to both readers, and every file one accepts
and the other refuses is listed with both verdicts, grouped by our reason.

st: against the format's reference library (the `safetensors` Python
package; not a dependency of the build: run by hand).  Inputs in the
harness's "header NUL data" form are turned into files first.  The expected
disagreements are docs/file-formats.md's: we are stricter on repeated
names, blanks before the header's '{', and our size limits (8 dimensions,
2^40 per dimension, 2^50 elements, offsets below 2^53).

json: against Python's json module held to our documented policy (strict
UTF-8, no repeated keys, no NaN or Infinity, finite numbers of at most 63
characters, no surrogate or NUL in a string, at most 64 levels): any
difference is a bug on one side.

Our verdicts come from fuzz/verdicts.c, built here with mpicc.
"""
import collections
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

here = os.path.dirname(os.path.abspath(__file__))
mode, lib, dirs = sys.argv[1], sys.argv[2], sys.argv[3:]
tmp = tempfile.mkdtemp(prefix="differential-")
exe = os.path.join(tmp, "verdicts")
subprocess.run(["mpicc", "-I" + os.path.join(here, "..", "runtime"), os.path.join(here, "verdicts.c"),
                lib, "-lopenblas", "-lm", "-o", exe], check=True)


def reference_st(path):
    from safetensors import safe_open
    with safe_open(path, framework="numpy") as f:
        for k in f.keys():
            f.get_slice(k)


def reference_json(path):
    def no_nul(s):
        if "\0" in s or any(0xd800 <= ord(c) < 0xe000 for c in s):
            raise ValueError("NUL or surrogate")

    def pairs(kv):
        keys = [k for k, _ in kv]
        if len(set(keys)) != len(keys):
            raise ValueError("repeated key")
        for k in keys:
            no_nul(k)
        return dict(kv)

    def number(text):
        if len(text) > 63 or not math.isfinite(float(text)):
            raise ValueError("number")
        return float(text)

    def const(text):
        raise ValueError(text)

    def depth(v, d):
        if isinstance(v, str):
            no_nul(v)
        elif isinstance(v, (list, dict)):
            if d > 64:
                raise ValueError("too deep")
            for x in (v.values() if isinstance(v, dict) else v):
                depth(x, d + 1)

    text = open(path, "rb").read().decode("utf-8")        # strict: no surrogates, overlongs
    depth(json.loads(text, object_pairs_hook=pairs, parse_float=number, parse_int=number,
                     parse_constant=const), 1)


if mode == "st":
    try:
        import safetensors  # noqa: F401
    except ImportError:
        print("differential: no safetensors package; nothing compared", file=sys.stderr)
        sys.exit(77)
reference = reference_st if mode == "st" else reference_json

files = []
for d in dirs:
    for name in sorted(os.listdir(d)):
        data = open(os.path.join(d, name), "rb").read()
        if mode == "st" and data[:1] == b"{":   # the harness's form: header NUL data
            h, _, rest = data.partition(b"\0")
            data = struct.pack("<Q", len(h)) + h + rest
        path = os.path.join(tmp, "f%05d" % len(files))
        open(path, "wb").write(data)
        files.append((os.path.join(d, name), path))

ours = subprocess.run([exe, mode] + [p for _, p in files], capture_output=True, text=True,
                      errors="replace").stdout.splitlines()
disagree = collections.defaultdict(list)
agree = 0
for (src, path), mine in zip(files, ours):
    try:
        reference(path)
        ref = "ok"
    except Exception as e:            # each reader raises several kinds
        ref = "refused: " + (str(e).splitlines() or [type(e).__name__])[0][:100]
    if (mine == "ok") == (ref == "ok"):
        agree += 1
        continue
    why = mine.replace(path, "FILE")
    disagree[why.split(":")[0] + ": " + why.split(": ", 2)[-1][:60]].append((src, ref))
print("differential %s: %d files, %d agree, %d disagree" % (mode, len(files), agree,
                                                           len(files) - agree))
for why, cases in sorted(disagree.items(), key=lambda kv: -len(kv[1])):
    print("  %4d  ours %s" % (len(cases), why))
    for src, ref in cases[:2]:
        print("          e.g. %s; reference %s" % (src, ref))
