#!/usr/bin/env python3
"""bench/torch_generate.py — the transformers side of the generation benchmark
(bench/exp_generate.py runs it in the PyTorch interpreter, BENCH_TORCH_PYTHON).

  torch_generate.py init  --shape NAME --seed S --weights-out W.safetensors
                          --prompts-out P.npy --batch B --prompt-len T0
      a GPT2LMHeadModel of that shape with transformers' own random
      initialisation (normal, std 0.02; the residual projections 0.02/√(2L)),
      written without the tied lm_head.weight (pipec's --weights-in takes
      transformer.wte.weight once), and B random prompts of T0 tokens (int32).
      Prints {"params": N} (the tied head counted once, as `pipec check` does).
  torch_generate.py time  --shape NAME --weights W --jobs JOBS.json
      JOBS: [{"name", "prompts", "new", "threads", "warmup", "reps",
      "tokens_out"}]: per job, `warmup` untimed and `reps` timed calls of
      model.generate(do_sample=False, max_new_tokens=new) on the prompts with
      torch.set_num_threads(threads).  Each call's time to first token comes
      from a StoppingCriteria that stamps the clock as each token is appended
      (the first stamp: prefill and the first pick); per output token is
      (total − TTFT) / (new − 1), as pipec's runtime counts it.  Prints one
      JSON object {name: {"total": [...], "ttft": [...]}}.
  torch_generate.py check --shape NAME --weights W --pairs PAIRS.json
      PAIRS: [{"name", "ref", "got", "prompt_len"}] (int32 token files):
      rows equal, and for each row that differs, the first position that does
      and the logit gap there between transformers' pick and the other's,
      from a forward pass over the common prefix (a gap near zero is a near
      tie decided by rounding; a large one is a wrong computation).
  torch_generate.py versions
      torch's and transformers' versions, torch's BLAS and CPU capability.
"""
import argparse
import json
import os
import time

SHAPES = {
    # name: vocab, positions, width, blocks, heads
    "tiny": (128, 64, 64, 4, 4),
    "gpt2": (50257, 1024, 768, 12, 12),
}


def model_of(shape, weights=None):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    vocab, pos, d, L, h = SHAPES[shape]
    cfg = GPT2Config(vocab_size=vocab, n_positions=pos, n_embd=d, n_layer=L, n_head=h,
                     bos_token_id=0, eos_token_id=0)
    m = GPT2LMHeadModel(cfg)
    if weights:
        from safetensors.torch import load_file
        sd = load_file(weights)
        missing, unexpected = m.load_state_dict(sd, strict=False)
        missing = [k for k in missing if k != "lm_head.weight" and not k.endswith(".attn.bias")
                   and not k.endswith(".attn.masked_bias")]
        if missing or unexpected:
            raise SystemExit("torch_generate: %s: missing %s, unexpected %s"
                             % (weights, missing[:5], unexpected[:5]))
        m.tie_weights()
    m.eval()
    gc = m.generation_config
    gc.eos_token_id = None      # never stop early: every run makes `new` tokens
    gc.bos_token_id = None
    gc.pad_token_id = 0
    gc.do_sample = False
    return m


def cmd_init(a):
    import numpy as np
    import torch
    from safetensors.torch import save_file
    torch.manual_seed(a.seed)
    m = model_of(a.shape)
    sd = {k: v.detach().contiguous() for k, v in m.state_dict().items()
          if k != "lm_head.weight" and not k.endswith(".attn.bias")
          and not k.endswith(".attn.masked_bias")}
    save_file(sd, a.weights_out)
    vocab = SHAPES[a.shape][0]
    rng = np.random.default_rng(a.seed)
    np.save(a.prompts_out, rng.integers(0, vocab, size=(a.batch, a.prompt_len), dtype=np.int32))
    print(json.dumps({"params": int(sum(v.numel() for v in sd.values()))}))


def cmd_time(a):
    import numpy as np
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class Stamp(StoppingCriteria):
        def __init__(self):
            self.t = []

        def __call__(self, input_ids, scores, **kw):
            self.t.append(time.perf_counter())
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    m = model_of(a.shape, a.weights)
    with open(a.jobs) as f:
        jobs = json.load(f)
    res = {}
    for j in jobs:
        torch.set_num_threads(int(j["threads"]))
        ids = torch.from_numpy(np.load(j["prompts"]).astype(np.int64))
        mask = torch.ones_like(ids)
        new = int(j["new"])
        r = {"total": [], "ttft": [], "threads": torch.get_num_threads()}
        out = None
        for i in range(int(j["warmup"]) + int(j["reps"])):
            st = Stamp()
            with torch.inference_mode():
                t0 = time.perf_counter()
                out = m.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new,
                                 min_new_tokens=new, do_sample=False,
                                 stopping_criteria=StoppingCriteriaList([st]))
                t1 = time.perf_counter()
            if out.shape[1] != ids.shape[1] + new:
                raise SystemExit("torch_generate: %s made %d tokens, not %d"
                                 % (j["name"], out.shape[1] - ids.shape[1], new))
            if i >= int(j["warmup"]):
                r["total"].append(t1 - t0)
                r["ttft"].append(st.t[0] - t0)
        if j.get("tokens_out"):
            np.save(j["tokens_out"], out.numpy().astype(np.int32))
        res[j["name"]] = r
    print(json.dumps(res))


def cmd_check(a):
    import numpy as np
    import torch
    m = model_of(a.shape, a.weights)
    with open(a.pairs) as f:
        pairs = json.load(f)
    res = {}
    for p in pairs:
        ref, got = np.load(p["ref"]), np.load(p["got"])
        t0 = int(p["prompt_len"])
        r = {"rows": int(ref.shape[0]), "shape_ok": ref.shape == got.shape}
        if not r["shape_ok"]:
            r.update(rows_equal=0, tokens_equal=0, tokens=int(ref.size), diverged=[])
            res[p["name"]] = r
            continue
        r["prompts_equal"] = bool((ref[:, :t0] == got[:, :t0]).all())
        r["rows_equal"] = int((ref == got).all(axis=1).sum())
        r["tokens_equal"] = int((ref[:, t0:] == got[:, t0:]).sum())
        r["tokens"] = int(ref[:, t0:].size)
        div = []
        for row in np.nonzero(~(ref == got).all(axis=1))[0]:
            j = int(np.nonzero(ref[row] != got[row])[0][0])
            with torch.inference_mode():
                z = m(torch.from_numpy(ref[row:row + 1, :j].astype(np.int64))).logits[0, -1]
            a_, b_ = int(ref[row, j]), int(got[row, j])
            spread = float(z.max() - z.min())
            div.append({"row": int(row), "pos": j, "ref": a_, "got": b_,
                        "gap": float(z[a_] - z[b_]), "logit_spread": spread})
        r["diverged"] = div
        res[p["name"]] = r
    print(json.dumps(res))


def cmd_versions(a):
    import torch
    import transformers
    print(json.dumps({"torch": torch.__version__, "transformers": transformers.__version__,
                      "torch_isa": torch.backends.cpu.get_cpu_capability(),
                      "torch_blas": "MKL" if "BLAS_INFO=mkl" in torch.__config__.show() else "?"}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    i = sub.add_parser("init")
    i.add_argument("--shape", choices=sorted(SHAPES), required=True)
    i.add_argument("--seed", type=int, default=1)
    i.add_argument("--weights-out", required=True)
    i.add_argument("--prompts-out", required=True)
    i.add_argument("--batch", type=int, required=True)
    i.add_argument("--prompt-len", type=int, required=True)
    t = sub.add_parser("time")
    t.add_argument("--shape", choices=sorted(SHAPES), required=True)
    t.add_argument("--weights", required=True)
    t.add_argument("--jobs", required=True)
    c = sub.add_parser("check")
    c.add_argument("--shape", choices=sorted(SHAPES), required=True)
    c.add_argument("--weights", required=True)
    c.add_argument("--pairs", required=True)
    sub.add_parser("versions")
    a = ap.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    {"init": cmd_init, "time": cmd_time, "check": cmd_check, "versions": cmd_versions}[a.cmd](a)


if __name__ == "__main__":
    main()
