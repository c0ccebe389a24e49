#!/usr/bin/env python3
"""bench/torch_llama.py — the transformers side of bench/exp_llama.py (run in the
PyTorch interpreter, BENCH_TORCH_PYTHON, with transformers): a LlamaForCausalLM
of bench/models/llama-100m.pipe's shape, in float32 on the CPU.

  torch_llama.py init --seed S --weights-out W.safetensors --ids-out IDS.npy
                      --batch B --len T --prompt-out P.npy --prompt-len N
      transformers' own random initialisation (every tensor, lm_head.weight
      included: the head is untied), B x T random token ids for training and
      one prompt of N.  Prints {"params": N}.
  torch_llama.py train --weights W --ids IDS.npy --steps N --warmup K --threads T --lr LR
      torch.set_num_threads(T); N steps of loss = model(ids, labels=ids).loss,
      backward, Adam, zero_grad, each timed whole (wall and process CPU time);
      the first K left out of the medians.  Prints {"wall", "cpu", "losses"}.
  torch_llama.py decode --weights W --prompt P.npy --new N --reps R --threads T
      generate(do_sample=False) of N and of 1 new tokens, R times each (after
      one untimed call of each); time per decoded token = (median N-token
      time - median 1-token time) / (N - 1): the prefill and the first token
      cancel; the same in process CPU time.  Prints {"tpot_s", "tpot_cpu_s", "tokens"}.
"""
import argparse
import json
import os
import statistics
import time

SHAPE = dict(vocab_size=8192, hidden_size=768, intermediate_size=2048, num_hidden_layers=14,
             num_attention_heads=12, num_key_value_heads=4, max_position_embeddings=256,
             rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
             attention_bias=False, mlp_bias=False, hidden_act="silu")


def make_model(weights=None):
    import torch
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM
    transformers.logging.set_verbosity_error()
    cfg = LlamaConfig(**SHAPE, bos_token_id=None, eos_token_id=None, pad_token_id=None)
    cfg._attn_implementation = "eager"
    m = LlamaForCausalLM(cfg).float()
    if weights:
        from safetensors.torch import load_file
        missing, unexpected = m.load_state_dict(load_file(weights), strict=False)
        if unexpected or [k for k in missing if "rotary" not in k]:
            raise SystemExit("torch_llama: %s does not fit (missing %s, unexpected %s)"
                             % (weights, missing, unexpected))
    return m, torch


def cmd_init(a):
    import numpy as np
    import torch
    torch.manual_seed(a.seed)
    m, _ = make_model()
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, a.weights_out)
    rng = np.random.default_rng(a.seed)
    np.save(a.ids_out, rng.integers(0, SHAPE["vocab_size"], (a.batch, a.len)).astype(np.int32))
    np.save(a.prompt_out, rng.integers(0, SHAPE["vocab_size"], (1, a.prompt_len)).astype(np.int32))
    print(json.dumps({"params": sum(p.numel() for p in m.parameters())}))


def cmd_train(a):
    import numpy as np
    m, torch = make_model(a.weights)
    torch.set_num_threads(a.threads)
    ids = torch.from_numpy(np.load(a.ids).astype(np.int64))
    m.train()
    opt = torch.optim.Adam(m.parameters(), lr=a.lr)
    wall, cpu, losses = [], [], []
    for i in range(a.steps):
        w0, c0 = time.perf_counter(), time.process_time()
        loss = m(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=False)
        w1, c1 = time.perf_counter(), time.process_time()
        losses.append(float(loss.detach()))
        if i >= a.warmup:
            wall.append(w1 - w0)
            cpu.append(c1 - c0)
    print(json.dumps({"wall": wall, "cpu": cpu, "losses": losses, "torch": torch.__version__}))


def cmd_decode(a):
    import numpy as np
    m, torch = make_model(a.weights)
    torch.set_num_threads(a.threads)
    m.eval()
    prompt = torch.from_numpy(np.load(a.prompt).astype(np.int64))
    mask = torch.ones_like(prompt)

    def gen(n):
        t0, c0 = time.perf_counter(), time.process_time()
        with torch.inference_mode():
            out = m.generate(prompt, attention_mask=mask, do_sample=False, max_new_tokens=n,
                             min_new_tokens=n, pad_token_id=0)
        return time.perf_counter() - t0, time.process_time() - c0, out

    times = {1: [], a.new: []}
    cpu = {1: [], a.new: []}
    tokens = None
    for r in range(a.reps + 1):
        for n in (1, a.new):
            dt, dc, out = gen(n)
            if r:
                times[n].append(dt)
                cpu[n].append(dc)
            if n == a.new:
                tokens = out[0, prompt.shape[1]:].tolist()
    med = statistics.median
    print(json.dumps({"tpot_s": (med(times[a.new]) - med(times[1])) / (a.new - 1),
                      "tpot_cpu_s": (med(cpu[a.new]) - med(cpu[1])) / (a.new - 1),
                      "tokens": tokens, "gen_s": times[a.new], "gen1_s": times[1]}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("init")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--weights-out", required=True)
    p.add_argument("--ids-out", required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--len", type=int, required=True)
    p.add_argument("--prompt-out", required=True)
    p.add_argument("--prompt-len", type=int, required=True)
    p = sub.add_parser("train")
    p.add_argument("--weights", required=True)
    p.add_argument("--ids", required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--lr", type=float, required=True)
    p = sub.add_parser("decode")
    p.add_argument("--weights", required=True)
    p.add_argument("--prompt", required=True)
    p.add_argument("--new", type=int, required=True)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    {"init": cmd_init, "train": cmd_train, "decode": cmd_decode}[a.cmd](a)


if __name__ == "__main__":
    main()
