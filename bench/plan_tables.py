#!/usr/bin/env python3
"""bench/plan_tables.py — the tables of docs/schedules.md "Choosing a configuration".

    bench/plan_tables.py MODEL --ranks N [--per-stages K | --fit-and-not K]
                         [-- PIPEC-PLAN-ARGS...]

Runs `pipec plan MODEL --ranks N --format csv` (with the arguments after
`--`: --cost, --memory, --flops ...) and prints a Markdown table of its rows:
with --per-stages K (default 3) the K best rows of each stage count; with
--fit-and-not K the K best fitting rows of each stage count that fits and
the K best of each that does not.  Then the row count and the `best:` line.
The docs' tables are this script's output, so that they can be made again
when the cost model changes.  Standard library only.
"""
import argparse
import csv
import io
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402


def mem(b):
    b = float(b)
    return "%.1f GiB" % (b / 2 ** 30) if b >= 2 ** 30 else "%.1f MiB" % (b / 2 ** 20)


def num(v):
    return "%.4g" % float(v)


def main():
    argv = sys.argv[1:]
    extra = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--ranks", type=int, required=True)
    ap.add_argument("--per-stages", type=int, default=3)
    ap.add_argument("--fit-and-not", type=int, default=0)
    a = ap.parse_args(argv)
    model = a.model if os.path.exists(a.model) else lib.model_path(a.model)
    # exit 1 (nothing fits) still prints the rows
    p = subprocess.run([lib.PIPEC, "plan", model, "--ranks", str(a.ranks), "--format", "csv"]
                       + extra, env=lib.env_pipec(), capture_output=True, text=True)
    if p.returncode not in (0, 1):
        sys.exit("plan_tables: pipec plan failed (%d): %s" % (p.returncode, p.stderr.strip()))
    out = p.stdout
    best = [ln for ln in out.splitlines() if ln.startswith("best:")]
    body = "\n".join(ln for ln in out.splitlines() if not ln.startswith("best:"))
    rows = list(csv.DictReader(io.StringIO(body)))
    for i, r in enumerate(rows):
        r["row"] = i + 1
    pick, seen = [], {}
    for r in rows:
        k = (r["stages"], r["fits"] if a.fit_and_not else "")
        if a.fit_and_not and r["fits"] == "no" and any(
                x["stages"] == r["stages"] and x["fits"] == "yes" for x in rows):
            continue            # a stage count that fits: its fitting rows only
        seen[k] = seen.get(k, 0) + 1
        if seen[k] <= (a.fit_and_not or a.per_stages):
            pick.append(r)
    print("| row | stages × replicas | schedule | M | recompute | step time (s) | samples/s "
          "| bubble | peak memory | fits |")
    print("| ---: | --- | --- | ---: | --- | ---: | ---: | ---: | ---: | --- |")
    for r in pick:
        print("| %d | %s × %s | %s | %s | %s | %s | %s | %.3f | %s | %s |"
              % (r["row"], r["stages"], r["replicas"], r["schedule"], r["microbatches"],
                 r["recompute"], num(r["step_time"]), num(r["samples_per_s"]),
                 float(r["bubble_fraction"]), mem(r["peak_memory"]), r["fits"]))
    fits = sum(r["fits"] == "yes" for r in rows)
    print("\n%d rows, %d fit%s" % (len(rows), fits,
                                   "; `%s`" % best[0] if best else " (exit %d: %s)" % (p.returncode, p.stderr.strip())))


if __name__ == "__main__":
    main()
