#!/usr/bin/env python3
"""fuzz/differential.py — our safetensors reader against the reference
library, file by file.

    python3 fuzz/differential.py LIBPIPERT.A DIR...

Every file in DIR (a corpus: fuzz/corpus/safetensors, or what fuzzing found
in fuzz/build/corpus/safetensors) is given to both readers — inputs in the
harness's "header NUL data" form are turned into files first — and every
file one accepts and the other refuses is listed with both verdicts,
grouped by our reason.  Needs the `safetensors` Python package (not a
dependency of the build: run by hand) and mpicc for fuzz/st-open.c.  The
expected disagreements are docs/file-formats.md's: we are stricter on
repeated names, blanks before the header's '{', and our size limits
(8 dimensions, 2^40 per dimension, 2^50 elements, offsets below 2^53).
"""
import collections
import os
import struct
import subprocess
import sys
import tempfile

try:
    from safetensors import safe_open
except ImportError:
    print("differential: no safetensors package; nothing compared", file=sys.stderr)
    sys.exit(77)

here = os.path.dirname(os.path.abspath(__file__))
lib, dirs = sys.argv[1], sys.argv[2:]
tmp = tempfile.mkdtemp(prefix="st-diff-")
exe = os.path.join(tmp, "st-open")
subprocess.run(["mpicc", "-I" + os.path.join(here, "..", "runtime"), os.path.join(here, "st-open.c"),
                lib, "-lopenblas", "-lm", "-o", exe], check=True)

files = []
for d in dirs:
    for name in sorted(os.listdir(d)):
        data = open(os.path.join(d, name), "rb").read()
        if data[:1] == b"{":          # the harness's form: header NUL data
            h, _, rest = data.partition(b"\0")
            data = struct.pack("<Q", len(h)) + h + rest
        path = os.path.join(tmp, "f%05d" % len(files))
        open(path, "wb").write(data)
        files.append((os.path.join(d, name), path))

ours = subprocess.run([exe] + [p for _, p in files], capture_output=True, text=True,
                      errors="replace").stdout.splitlines()
disagree = collections.defaultdict(list)
agree = 0
for (src, path), mine in zip(files, ours):
    try:
        with safe_open(path, framework="numpy") as f:
            for k in f.keys():
                f.get_slice(k)
        ref = "ok"
    except Exception as e:            # the library raises several kinds
        ref = "refused: " + str(e).splitlines()[0][:100]
    if (mine == "ok") == (ref == "ok"):
        agree += 1
        continue
    why = mine.replace(path, "FILE")
    disagree[why.split(":")[0] + ": " + why.split(": ", 2)[-1][:60]].append((src, ref))
print("differential: %d files, %d agree, %d disagree" % (len(files), agree, len(files) - agree))
for why, cases in sorted(disagree.items(), key=lambda kv: -len(kv[1])):
    print("  %4d  ours %s" % (len(cases), why))
    for src, ref in cases[:2]:
        print("          e.g. %s; reference %s" % (src, ref))
