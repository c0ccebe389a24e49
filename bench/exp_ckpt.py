#!/usr/bin/env python3
"""bench/exp_ckpt.py — what a checkpoint costs against writing its bytes.

mlp4 (8.9 M parameters) at P = 2 with Adam, so a checkpoint holds the
weights and two moments (about 107 MB): each run saves after every step
(--save-every 1) with PIPERT_CKPT_TIME=1, and the runtime prints each
checkpoint's wall time (gathering the parameters on rank 0, writing three
files with fsync, the renames and the link).  In the same round the disk's
own rate is measured on the same file system: `dd conv=fsync` of as many
bytes as the checkpoint directory holds.  Rounds alternate the two; the
ratio is median(checkpoint) / median(dd).  The issue asks for <= 1.5.

Also the price of the per-step stop agreement (one MPI_Iallreduce of an
int, how SIGINT reaches every rank at a step boundary) for an asynchronous
schedule, which had no per-step synchronisation before: pipedream's median
step time with this runtime against the same program linked with another
build's runtime (--base-build, e.g. main's build/), when given.

    python3 bench/exp_ckpt.py [--rounds 5] [--work DIR] [--dir CKDIR] [--base-build DIR]

--dir: where the checkpoints and dd's file go (default: under --work), e.g.
/dev/shm to take the disk out and see the runtime's own share.
"""
import argparse
import glob
import os
import re
import shutil
import statistics
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("PIPEC_BUILD", os.path.join(ROOT, "build"))
PIPEC = os.path.join(BUILD, "compiler", "pipec")
MLP4 = os.path.join(ROOT, "models", "mlp4.pipe")


def sh(cmd, env=None, check=True):
    e = dict(os.environ)
    e.setdefault("OPENBLAS_NUM_THREADS", "1")
    if os.geteuid() == 0:
        e["OMPI_ALLOW_RUN_AS_ROOT"] = e["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    e.update(env or {})
    r = subprocess.run(cmd, capture_output=True, text=True, env=e)
    if check and r.returncode != 0:
        raise SystemExit("%s: status %d\n%s%s" % (cmd[0], r.returncode, r.stdout[-1000:],
                                                  r.stderr[-2000:]))
    return r


def compile_prog(d, sets, base=None):
    env = {"PIPEC_RUNTIME_LIB": os.path.join(base, "runtime")} if base else None
    sh([PIPEC, "compile", MLP4, "-o", d] + sum([["--set", s] for s in sets], []), env=env)
    return d


def dir_bytes(d):
    return sum(os.path.getsize(f) for f in glob.glob(os.path.join(d, "*")))


def dd_time(path, nbytes):
    """Seconds dd takes to write nbytes with an fsync at the end."""
    mib = max(1, (nbytes + (1 << 20) - 1) >> 20)
    r = sh(["dd", "if=/dev/zero", "of=" + path, "bs=1M", "count=%d" % mib, "conv=fsync"])
    os.unlink(path)
    m = re.search(r"copied, ([0-9.]+) s", r.stderr)
    return float(m.group(1)) * nbytes / (mib << 20)


def step_times(out):
    m = re.search(r"^step_time: ([0-9.e+-]+)", out, re.M)
    return float(m.group(1)) if m else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--work", default=None)
    ap.add_argument("--base-build", default=None)
    ap.add_argument("--dir", default=None)
    a = ap.parse_args()
    work = a.work or tempfile.mkdtemp(prefix="pipec-bench-ckpt-")
    os.makedirs(work, exist_ok=True)
    sets = ["stages=2", "partition=[8, 7]", "optimizer=adam(lr=0.001)", "microbatches=8"]
    prog = compile_prog(os.path.join(work, "mlp4"), sets)
    ck, dd = [], []
    nbytes = 0
    for rnd in range(a.rounds):
        where = a.dir or work
        d = os.path.join(where, "pipec-bench-ck")
        shutil.rmtree(d, ignore_errors=True)
        r = sh([os.path.join(prog, "run"), "--steps", str(a.steps), "--quiet", "--checkpoint", d,
                "--save-every", "1"], env={"PIPERT_CKPT_TIME": "1"})
        ts = [float(x) for x in re.findall(r"checkpoint step-\d+ written in ([0-9.]+) s", r.stderr)]
        nbytes = dir_bytes(os.path.join(d, "latest"))
        ck += ts
        dd.append(dd_time(os.path.join(where, "pipec-bench-dd.bin"), nbytes))
        dd.append(dd_time(os.path.join(where, "pipec-bench-dd.bin"), nbytes))
        shutil.rmtree(d, ignore_errors=True)
        print("round %d: checkpoints %s s, dd %.4f %.4f s" % (rnd + 1, " ".join("%.4f" % x for x in ts),
                                                             dd[-2], dd[-1]), flush=True)
    mc, md = statistics.median(ck), statistics.median(dd)
    print("machine: %d cores, load average %s" % (os.cpu_count(), open("/proc/loadavg").read().split()[0]))
    print("checkpoint_bytes: %d" % nbytes)
    print("checkpoint_median_s: %.4f (%d checkpoints)" % (mc, len(ck)))
    print("dd_fsync_median_s: %.4f (%d writes, %.0f MB/s)" % (md, len(dd), nbytes / md / 1e6))
    print("ratio: %.2f" % (mc / md))
    if a.base_build:
        pd = sets + ["schedule=pipedream"]
        mine = compile_prog(os.path.join(work, "pd-mine"), pd)
        base = compile_prog(os.path.join(work, "pd-base"), pd, a.base_build)
        tm, tb = [], []
        for _ in range(a.rounds):
            for p, acc in ((mine, tm), (base, tb)):
                acc.append(step_times(sh([os.path.join(p, "run"), "--steps", "12"]).stdout))
        print("pipedream_step_s: this %.5f, base %.5f (medians of %d runs; %+.1f%%)" %
              (statistics.median(tm), statistics.median(tb), len(tm),
               100 * (statistics.median(tm) / statistics.median(tb) - 1)))


if __name__ == "__main__":
    main()
