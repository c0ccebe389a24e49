"""bench/tf_common.py — what bench/exp_minilm.py and bench/exp_gpt_train.py share:
their configuration (a log of their own, not bench.log), the PyTorch helper
runs, the machine's facts, and how busy other processes kept the machine.

Standard library only (like lib.py).
"""
import argparse
import json
import os
import time

import lib


class Cfg:
    """lib.Config's fields, with the log in the scratch directory."""

    def __init__(self, quick, out, work, torch_python, logname):
        self.quick = quick
        self.out = out
        self.work = work
        self.torch_python = torch_python
        self.reps = 2 if quick else 5
        os.makedirs(out, exist_ok=True)
        os.makedirs(work, exist_ok=True)
        self.logpath = os.path.join(work, logname)
        self.log = open(self.logpath, "a")

    def say(self, msg):
        line = time.strftime("%H:%M:%S ") + msg
        print(line, flush=True)
        self.log.write(line + "\n")
        self.log.flush()


def parse_args(doc):
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 timed runs, fewer steps: a smoke test")
    ap.add_argument("--reps", type=int, help="timed runs per configuration (default 5)")
    ap.add_argument("--out", default=os.path.join(lib.BENCH, "results"))
    ap.add_argument("--work", default=os.path.join(lib.BUILD, "bench-work"))
    ap.add_argument("--torch-python",
                    default=os.environ.get("BENCH_TORCH_PYTHON", "/work/venv-torch/bin/python"))
    return ap


def torch_json(cfg, script, args, timeout=1800, retry=False):
    """One run of a PyTorch helper (bench/SCRIPT): its last JSON line.
    torch.set_num_threads decides the threads: the BLAS variables are unset."""
    cmd = [cfg.torch_python, os.path.join(lib.BENCH, script)] + [str(a) for a in args]
    env = lib.env_pipec(None)
    for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(k, None)
    env["HF_HUB_OFFLINE"] = "1"
    env["TOKENIZERS_PARALLELISM"] = "false"
    try:
        out = lib.run(cmd, env=env, timeout=timeout)
    except RuntimeError as e:
        if not retry:
            raise
        cfg.say("%s failed, once more: %s" % (script, str(e).splitlines()[0]))
        out = lib.run(cmd, env=env, timeout=timeout)
    last = [l for l in out.splitlines() if l.startswith("{")]
    if not last:
        raise RuntimeError("%s printed no result:\n%s" % (script, out[-2000:]))
    return json.loads(last[-1])


def cpu_mark():
    """(wall, CPU seconds of the whole machine, CPU seconds of this process
    and its waited-for descendants)."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        busy = (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        busy = float("nan")
    t = os.times()
    return time.time(), busy, t.user + t.system + t.children_user + t.children_system


def others(m0, m1):
    """Cores other processes kept busy on average between two marks (the
    machine's CPU time less this benchmark's, its programs being its
    children).  The load average cannot tell the two apart."""
    return max(0.0, ((m1[1] - m0[1]) - (m1[2] - m0[2])) / max(m1[0] - m0[0], 1e-9))


def machine(cfg):
    """bench.py's machine facts (nproc, CPU, OpenBLAS and its kernel, torch's BLAS)."""
    import bench
    info = bench.machine(cfg)
    info.pop("mode", None)
    return info
