#!/usr/bin/env python3
"""bench/exp_llama.py — a Llama-shaped model of 100 M parameters on one core:
pipec's training step beside transformers' LlamaForCausalLM, and a batch-1
decode step against the memory floor.

    bench/exp_llama.py [--quick] [--reps N] [--out DIR] [--work DIR] [--torch-python PY]

The model: bench/models/llama-100m.pipe (width 768, 14 blocks of 12 query
heads and 4 key/value heads, SwiGLU 2048, vocabulary 8192, untied head:
100,685,568 parameters), with transformers' own random initialisation
(bench/torch_llama.py init) loaded by pipec with --weights-in, so that both
sides train the same model on the same 2 x 128 random token ids.

Training: pipec's 1-stage program, one BLAS thread (Adam, lr 3e-4), against
LlamaForCausalLM with torch.set_num_threads(1) (model(ids, labels=ids).loss,
backward, Adam, zero_grad).  Per round each side runs 1 + S steps; the step
time is the median of the S after the first (pipec's summary `step_time`;
transformers' timed around the step).  The losses of the first steps must
agree (both sides compute the same thing).  Because the machine is shared,
CPU time per step is measured too: transformers' process time per step, and
for pipec the CPU time of a (1 + S)-step run less that of a 1-step run,
over S.  CPU time is what this process got of a core, and is less affected
by other processes than wall time (caches and memory bandwidth are still
shared).

Decode: bench/models/llama-100m-generate.pipe (batch 1, a 16-token prompt,
64 new tokens, greedy): the runtime's time_per_output_token, and the CPU
time of the 64-token program less the 1-token program's, over 63.
transformers: generate(do_sample=False) of 64 and of 1 new tokens, the
difference of the medians over 63 (wall and process CPU time).  The tokens
must equal.  The floor: the weights' bytes (f32) over the one-thread read
bandwidth bench/membw.c measures in the same round (a 512 MiB array): a decode step reads
every weight once.

Rounds alternate pipec and transformers (and membw), so that noise lands on
both alike; the tables give medians over rounds.  Results: llama.csv (one
row per measurement), llama_runs.csv (every round), llama_machine.csv;
bench/tf_report.py adds them to transformers.md.
"""
import json
import os
import re
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
import tf_common as tc  # noqa: E402
import exp_generate as eg  # noqa: E402

BATCH, T, PROMPT, NEW = 2, 128, 16, 64
LR = 0.0003
TRAIN = "bench/models/llama-100m.pipe"
GEN = "bench/models/llama-100m-generate.pipe"
LOSS_RTOL = 1e-4        # first steps' losses, pipec against transformers


def cpu_children():
    t = os.times()
    return t.children_user + t.children_system


def run_cpu(cmd, threads=1, timeout=3600):
    """Run an emitted program; (its parsed summary, CPU seconds it used)."""
    c0 = cpu_children()
    out = lib.run(cmd, env=lib.env_pipec(threads), timeout=timeout)
    return lib.parse_summary(out), cpu_children() - c0, out


def main():
    ap = tc.parse_args(__doc__)
    a = ap.parse_args()
    cfg = tc.Cfg(a.quick, a.out, a.work, a.torch_python, "llama.log")
    if a.reps:
        cfg.reps = a.reps
    steps = 2 if cfg.quick else 3          # timed steps per run, after the first
    t_start = time.time()
    info = tc.machine(cfg)
    info["load_start"] = lib.loadavg()
    wdir = os.path.join(cfg.work, "llama")
    os.makedirs(wdir, exist_ok=True)
    weights = os.path.join(wdir, "w.safetensors")
    ids = os.path.join(wdir, "ids.npy")
    prompt = os.path.join(wdir, "prompt.npy")
    if not os.path.exists(weights):
        r = tc.torch_json(cfg, "torch_llama.py",
                          ["init", "--seed", 1, "--weights-out", weights, "--ids-out", ids,
                           "--batch", BATCH, "--len", T, "--prompt-out", prompt,
                           "--prompt-len", PROMPT])
        info["params_transformers"] = r["params"]
    chk = lib.check_model(os.path.join(lib.ROOT, TRAIN), [])
    params = int(re.search(r"([0-9,]+) parameters", chk).group(1).replace(",", ""))
    info["params"] = params
    wbytes = 4 * params
    cfg.say("llama: %d parameters (%.0f MB of f32 weights)" % (params, wbytes / 1e6))

    d_train = lib.compile_model(cfg, os.path.join(lib.ROOT, TRAIN), [])
    d_gen = lib.compile_model(cfg, os.path.join(lib.ROOT, GEN), [])
    d_gen1 = lib.compile_model(cfg, os.path.join(lib.ROOT, GEN), ["max_new_tokens=1"])
    train_args = ["--weights-in", weights, "--input", ids]

    runs = []
    res = {k: [] for k in ("pipec_step", "pipec_step_cpu", "torch_step", "torch_step_cpu",
                           "pipec_tpot", "pipec_tpot_cpu", "torch_tpot", "torch_tpot_cpu",
                           "read_bw")}
    first_losses = {}
    tokens = {}
    for rnd in range(-1 if not cfg.quick else 0, cfg.reps):
        timed = rnd >= 0
        load0 = lib.loadavg()
        # training: pipec (1 + S steps, and 1 step for the CPU difference), transformers
        s1, c1, _ = run_cpu([os.path.join(d_train, "run")] + train_args + ["--steps", "1"])
        sn, cn, _ = run_cpu([os.path.join(d_train, "run")] + train_args
                            + ["--steps", str(1 + steps)])
        pt = tc.torch_json(cfg, "torch_llama.py",
                           ["train", "--weights", weights, "--ids", ids, "--steps", 1 + steps,
                            "--warmup", 1, "--threads", 1, "--lr", LR])
        first_losses = {"pipec": sn["losses"], "transformers": pt["losses"]}
        # decode: pipec 64 and 1 new tokens, transformers, the bandwidth
        out64 = os.path.join(wdir, "gen64.npy")
        g64, cg64, _ = run_cpu([os.path.join(d_gen, "run"), "--weights-in", weights,
                                "--input", prompt, "--output", out64])
        g1, cg1, _ = run_cpu([os.path.join(d_gen1, "run"), "--weights-in", weights,
                              "--input", prompt, "--output", os.path.join(wdir, "gen1.npy")])
        pd = tc.torch_json(cfg, "torch_llama.py",
                           ["decode", "--weights", weights, "--prompt", prompt, "--new", NEW,
                            "--reps", 2 if cfg.quick else 3, "--threads", 1])
        tokens = {"pipec": out64, "transformers": pd["tokens"]}
        bw = {}
        for line in lib.run([eg._membw_bin(cfg), "512", "bw"], env=lib.env_pipec(1)).splitlines():
            k, _, v = line.partition(": ")
            bw[k] = float(v) if k.startswith("read_bw") else v
        row = {"round": rnd if timed else "warm-up",
               "pipec_step": sn["step_time"], "pipec_step_cpu": (cn - c1) / steps,
               "torch_step": lib.median(pt["wall"]), "torch_step_cpu": lib.median(pt["cpu"]),
               "pipec_tpot": float(g64["time_per_output_token"]),
               "pipec_tpot_cpu": (cg64 - cg1) / (NEW - 1),
               "torch_tpot": pd["tpot_s"], "torch_tpot_cpu": pd["tpot_cpu_s"],
               "read_bw": bw["read_bw"], "load_start": load0, "load_end": lib.loadavg()}
        runs.append(row)
        if timed:
            for k in res:
                res[k].append(row[k])
        cfg.say("llama: round %s: step pipec %.2f s (%.2f s CPU), transformers %.2f s (%.2f s "
                "CPU); decode pipec %.1f ms (%.1f ms CPU), transformers %.1f ms (%.1f ms CPU); "
                "read %.1f GB/s; load %s"
                % (row["round"], row["pipec_step"], row["pipec_step_cpu"], row["torch_step"],
                   row["torch_step_cpu"], 1e3 * row["pipec_tpot"], 1e3 * row["pipec_tpot_cpu"],
                   1e3 * row["torch_tpot"], 1e3 * row["torch_tpot_cpu"], row["read_bw"] / 1e9,
                   row["load_end"]))

    # the same computation on both sides: losses and greedy tokens
    lp, lt = first_losses["pipec"], first_losses["transformers"]
    loss_diff = max(abs(x - y) / abs(y) for x, y in zip(lp, lt))
    got = json.loads(lib.run([cfg.torch_python, "-c", "import numpy as np, sys, json; "
                              "print(json.dumps(np.load(sys.argv[1]).tolist()))",
                              tokens["pipec"]]))
    got = got[0][PROMPT:] if len(got[0]) > NEW else got[0]
    ref = tokens["transformers"]
    same = next((i for i, (x, y) in enumerate(zip(got, ref)) if x != y), len(ref))

    med = {k: lib.median(v) for k, v in res.items()}
    floor = wbytes / med["read_bw"]
    rows = [
        {"what": "training step", "impl": "pipec", "seconds": med["pipec_step"],
         "cpu_seconds": med["pipec_step_cpu"], "tokens_s": BATCH * T / med["pipec_step"],
         "vs_transformers": med["torch_step"] / med["pipec_step"],
         "vs_transformers_cpu": med["torch_step_cpu"] / med["pipec_step_cpu"]},
        {"what": "training step", "impl": "transformers", "seconds": med["torch_step"],
         "cpu_seconds": med["torch_step_cpu"], "tokens_s": BATCH * T / med["torch_step"]},
        {"what": "decode token", "impl": "pipec", "seconds": med["pipec_tpot"],
         "cpu_seconds": med["pipec_tpot_cpu"], "tokens_s": 1 / med["pipec_tpot"],
         "vs_transformers": med["torch_tpot"] / med["pipec_tpot"],
         "vs_transformers_cpu": med["torch_tpot_cpu"] / med["pipec_tpot_cpu"],
         "over_floor": med["pipec_tpot"] / floor, "over_floor_cpu": med["pipec_tpot_cpu"] / floor},
        {"what": "decode token", "impl": "transformers", "seconds": med["torch_tpot"],
         "cpu_seconds": med["torch_tpot_cpu"], "tokens_s": 1 / med["torch_tpot"],
         "over_floor": med["torch_tpot"] / floor, "over_floor_cpu": med["torch_tpot_cpu"] / floor},
        {"what": "memory floor", "impl": "weights / read_bw", "seconds": floor,
         "tokens_s": 1 / floor},
    ]
    for r in rows:
        r.update({"rounds": len(res["pipec_step"]), "params": params, "batch": BATCH, "T": T})
    lib.write_csv(os.path.join(cfg.out, "llama.csv"), rows,
                  ["what", "impl", "seconds", "cpu_seconds", "tokens_s", "vs_transformers",
                   "vs_transformers_cpu", "over_floor", "over_floor_cpu", "rounds", "params",
                   "batch", "T"])
    lib.write_csv(os.path.join(cfg.out, "llama_runs.csv"), runs,
                  ["round", "pipec_step", "pipec_step_cpu", "torch_step", "torch_step_cpu",
                   "pipec_tpot", "pipec_tpot_cpu", "torch_tpot", "torch_tpot_cpu", "read_bw",
                   "load_start", "load_end"])
    info.update({"load_end": lib.loadavg(), "mode": "quick" if cfg.quick else "full",
                 "rounds": cfg.reps, "seconds": round(time.time() - t_start),
                 "weights_bytes": wbytes, "read_bw": med["read_bw"],
                 "losses_pipec": " ".join("%.6f" % x for x in lp),
                 "losses_transformers": " ".join("%.6f" % x for x in lt),
                 "loss_max_rel_diff": loss_diff, "tokens_equal": same, "tokens": len(ref),
                 "steps_timed": steps, "new_tokens": NEW, "prompt_len": PROMPT})
    lib.write_csv(os.path.join(cfg.out, "llama_machine.csv"),
                  [{"key": k, "value": v} for k, v in sorted(info.items())], ["key", "value"])
    cfg.say("llama: training step pipec %.2f s, transformers %.2f s (%.2fx; CPU %.2fx); decode "
            "pipec %.1f ms/token, transformers %.1f ms, floor %.1f ms (%.0f MB at %.1f GB/s); "
            "losses within %.1e; %d of %d tokens equal"
            % (med["pipec_step"], med["torch_step"], rows[0]["vs_transformers"],
               rows[0]["vs_transformers_cpu"], 1e3 * med["pipec_tpot"], 1e3 * med["torch_tpot"],
               1e3 * floor, wbytes / 1e6, med["read_bw"] / 1e9, loss_diff, same, len(ref)))
    try:
        import tf_report
        tf_report.main([cfg.out])
    except Exception as e:      # the report is regenerated by tf_report.py alone
        cfg.say("llama: transformers.md not written: %s" % e)
    if loss_diff > LOSS_RTOL:
        raise SystemExit("llama: pipec's losses %s differ from transformers' %s" % (lp, lt))


if __name__ == "__main__":
    main()
