#!/usr/bin/env python3
"""bench/bench.py — run the benchmarks of issue 11 and write their results.

    bench/bench.py [--quick] [--only LIST] [--out DIR] [--work DIR] [--no-docs]

Experiments (--only takes a comma-separated subset, in this order):
  calibrate  this machine's GEMM rate, MPI latency and bandwidth (bench/calibrate.c)
  compare    pipec vs torch.distributed.pipelining, samples/s and first-step loss
  overhead   runtime cost per schedule action (tiny layers, many micro-batches)
  bubble     bubble vs M per schedule: measured at P = 2, simulator, formula
  predict    predicted (calibrated `model` cost) vs measured step time
  seeds      throughput vs stages, vs micro-batch count and size; baselines; memory
  compiler   pipec time and memory, emitted source size, C compile time
Results: DIR/*.csv and DIR/*.svg (default bench/results), then
docs/performance.md is regenerated from bench/performance.md.in.
bench/run-all.sh builds what is needed and calls this.
"""
import argparse
import glob
import os
import platform
import subprocess
import sys
import time
import traceback

sys.dont_write_bytecode = True      # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

ORDER = ["calibrate", "compare", "overhead", "bubble", "predict", "seeds", "compiler"]
# What the experiments write into the results directory.
OUTPUTS = ["calibration.*", "compare.csv", "compare_runs.csv", "compare-*.svg", "overhead*",
           "bubble.*", "predict.*", "stages*", "microbatch*", "memory*", "compiler*",
           "machine.json", "bench.log"]


def machine(cfg):
    """What the results were measured on."""
    info = {"nproc": lib.CORES, "mode": "quick" if cfg.quick else "full",
            "date": time.strftime("%Y-%m-%d %H:%M %Z"), "load_start": lib.loadavg(),
            "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "(not set)"),
            "kernel": platform.release()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        info["cpu"] = platform.processor()
    for key, cmd in (("mpi", ["mpirun", "--version"]), ("cc", ["cc", "--version"]),
                     ("git", ["git", "-C", lib.ROOT, "describe", "--always", "--dirty"])):
        try:
            info[key] = subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()[0]
        except (OSError, IndexError):
            info[key] = "?"
    try:
        info["pipec"] = lib.run([lib.PIPEC, "--version"]).strip().splitlines()[0]
    except (RuntimeError, OSError):
        info["pipec"] = "?"
    try:
        import exp_overhead
        info["openblas"] = exp_overhead.blas_info(cfg)
    except (RuntimeError, OSError) as e:
        info["openblas"] = "? (%s)" % str(e).splitlines()[0]
    try:
        out = subprocess.run(
            [cfg.torch_python, "-c", "import torch; print(torch.__version__); "
             "c = torch.__config__.show(); print('MKL' if 'BLAS_INFO=mkl' in c else "
             "'BLAS: ' + c.split('BLAS_INFO=')[1].split(',')[0] if 'BLAS_INFO=' in c else '?'); "
             "print(torch.backends.cpu.get_cpu_capability())"],
            capture_output=True, text=True, timeout=300).stdout.split()
        info["torch"], info["torch_blas"], info["torch_isa"] = out[0], out[1], out[2]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        info["torch"] = info["torch_blas"] = info["torch_isa"] = "?"
    return info


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a few minutes; noisy figures")
    ap.add_argument("--only", default=",".join(ORDER), help="experiments to run (comma-separated)")
    ap.add_argument("--out", default=os.path.join(lib.BENCH, "results"))
    ap.add_argument("--work", default=os.path.join(lib.BUILD, "bench-work"),
                    help="scratch directory: compiled programs, weights, data (default BUILD/bench-work)")
    ap.add_argument("--no-docs", action="store_true", help="do not regenerate docs/performance.md")
    ap.add_argument("--torch-python", default=os.environ.get("BENCH_TORCH_PYTHON", sys.executable))
    a = ap.parse_args()

    only = [x for x in a.only.split(",") if x]
    for x in only:
        if x not in ORDER:
            ap.error("unknown experiment '%s' (known: %s)" % (x, ", ".join(ORDER)))
    os.makedirs(a.out, exist_ok=True)
    if set(only) == set(ORDER):
        # A whole run replaces every result of these experiments: no figure of
        # an older run survives into the document beside this run's.  (Other
        # scripts' results in the same directory are left alone.)
        for pat in OUTPUTS:
            for f in glob.glob(os.path.join(a.out, pat)):
                os.remove(f)
    work = a.work
    os.makedirs(work, exist_ok=True)
    cfg = lib.Config(a.quick, a.out, work, a.torch_python)
    cfg.say("bench: %s mode, results in %s, load %s" % ("quick" if a.quick else "full", a.out,
                                                        lib.loadavg()))
    meta_path = os.path.join(a.out, "machine.json")
    meta = lib.load_json(meta_path, {})
    meta.update(machine(cfg))
    lib.save_json(meta_path, meta)

    import exp_compare
    import exp_overhead
    import exp_seeds
    import exp_compiler
    steps = {
        "calibrate": exp_overhead.calibrate_all,
        "compare": exp_compare.run,
        "overhead": exp_overhead.overhead,
        "bubble": exp_overhead.bubble,
        "predict": exp_overhead.predict,
        "seeds": exp_seeds.run,
        "compiler": exp_compiler.run,
    }
    failed = []
    for x in ORDER:
        if x not in only:
            continue
        t0 = time.time()
        cfg.say("== %s" % x)
        try:
            steps[x](cfg)
        except Exception as e:       # one experiment's failure leaves the others' results
            failed.append(x)
            cfg.say("!! %s failed: %s" % (x, e))
            traceback.print_exc(file=cfg.log)
        meta.setdefault("seconds", {})[x] = round(time.time() - t0, 1)
    meta["load_end"] = lib.loadavg()
    meta["experiments"] = only
    meta["failed"] = failed
    lib.save_json(meta_path, meta)
    if not a.no_docs:
        import report
        report.write(cfg)
    cfg.say("bench: done%s" % (" — FAILED: " + ", ".join(failed) if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
