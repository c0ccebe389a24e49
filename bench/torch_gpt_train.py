#!/usr/bin/env python3
"""bench/torch_gpt_train.py — the PyTorch side of bench/exp_gpt_train.py: training
steps of a transformers GPT2LMHeadModel (tied head, next-token loss, Adam),
pipelined over 2 processes with torch.distributed.pipelining (Schedule1F1B,
gloo, CPU), or in one process.  Runs in the PyTorch interpreter
(BENCH_TORCH_PYTHON) with transformers.

  torch_gpt_train.py init --shape V,POS,D,L,H --seed S --weights-out W.safetensors
      transformers' own random initialisation of that GPT2LMHeadModel, written
      without the tied lm_head.weight (pipec's --weights-in binds
      transformer.wte.weight to the embedding and the head).  Prints
      {"params": N} (the tied matrix counted once, as `pipec check` counts).
  torch_gpt_train.py pipe --shape ... --weights W --ids IDS.npy --microbatches M
                          --split K --stages traced|manual --steps N --warmup W
                          --threads T --lr LR
      2 processes, one stage each: stage 0 = embeddings + blocks 0..K-1,
      stage 1 = blocks K..L-1 + ln_f + head (pipec's partition, passed in).
      --stages traced: the stage modules come from torch.distributed.pipelining's
      own tracer, pipeline(model, split_spec={"transformer.h.K": BEGINNING}),
      and pipe.build_stage(); manual: an nn.Module per stage holding the HF
      modules themselves (wte, wpe, GPT2Block..., ln_f, a head Linear),
      PipelineStage with static shapes.  Either way stage 1 holds a copy of
      the tied embedding as its head; before every Adam step the two ranks sum
      the two gradients (all_reduce), as pipec's ranks do.  Loss per
      micro-batch: mean cross-entropy over its B/M·(T−1) predicted positions;
      the schedule's scale_grads divides by M, so the gradient is that of the
      global mean (transformers' labels = input_ids loss).  Every step is timed
      between two barriers (schedule step, tied-gradient sum, Adam step, zero
      grads); the first W are left out of the median.  Prints one JSON object
      (times, losses per step, the compute order PyTorch ran, a bare barrier
      pair's cost).
  torch_gpt_train.py single --shape ... --weights W --ids IDS.npy --steps N
                          --warmup W --threads T --lr LR
      the whole batch in one process: loss = model(ids, labels=ids).loss,
      backward, Adam: the unpipelined baseline.
"""
import argparse
import json
import os
import shutil
import tempfile
import time


def shape_of(s):
    V, pos, d, L, H = (int(x) for x in s.split(","))
    return V, pos, d, L, H


def make_model(shape, weights=None):
    import transformers
    from transformers import GPT2Config, GPT2LMHeadModel
    transformers.logging.set_verbosity_error()
    V, pos, d, L, H = shape
    cfg = GPT2Config(vocab_size=V, n_positions=pos, n_embd=d, n_layer=L, n_head=H,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                     layer_norm_epsilon=1e-5, activation_function="gelu_new",
                     tie_word_embeddings=True, use_cache=False,
                     bos_token_id=None, eos_token_id=None, pad_token_id=None)
    m = GPT2LMHeadModel(cfg)
    if weights:
        from safetensors.torch import load_file
        sd = load_file(weights)
        missing, unexpected = m.load_state_dict(sd, strict=False)
        missing = [k for k in missing if k != "lm_head.weight" and not k.endswith(".attn.bias")]
        if missing or unexpected:
            raise SystemExit("torch_gpt_train: %s: missing %s, unexpected %s"
                             % (weights, missing[:5], unexpected[:5]))
        m.tie_weights()
    assert m.lm_head.weight is m.transformer.wte.weight, "head not tied"
    m.train()
    return m


def load_ids(torch, path):
    import numpy as np
    return torch.from_numpy(np.load(path).astype(np.int64))


def next_token_loss(torch, logits, ids):
    V = logits.shape[-1]
    return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V),
                                             ids[:, 1:].reshape(-1))


def cmd_init(a):
    import torch
    from safetensors.torch import save_file
    torch.manual_seed(a.seed)
    m = make_model(shape_of(a.shape))
    sd = {k: v.detach().contiguous() for k, v in m.state_dict().items()
          if k != "lm_head.weight" and not k.endswith(".attn.bias")}
    save_file(sd, a.weights_out)
    print(json.dumps({"params": sum(v.numel() for v in sd.values()),
                      "attn_implementation": m.config._attn_implementation}))


# ---- pipelined ----------------------------------------------------------------

def manual_stages(torch, m, K):
    nn = torch.nn
    tr = m.transformer

    class First(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = tr.wte, tr.wpe
            self.h = nn.ModuleList(list(tr.h)[:K])

        def forward(self, ids):
            pos = torch.arange(ids.shape[1], device=ids.device)
            x = self.wte(ids) + self.wpe(pos)
            for b in self.h:
                x = b(x)
            return x

    class Last(nn.Module):
        def __init__(self):
            super().__init__()
            self.h = nn.ModuleList(list(tr.h)[K:])
            self.ln_f = tr.ln_f
            V, d = tr.wte.weight.shape
            self.head = nn.Linear(d, V, bias=False)
            with torch.no_grad():                 # the tied matrix, copied
                self.head.weight.copy_(tr.wte.weight)

        def forward(self, x):
            for b in self.h:
                x = b(x)
            return self.head(self.ln_f(x))

    return First(), Last()


def worker(rank, a, store, result):
    import torch
    import torch.distributed as dist
    from torch.distributed.pipelining import PipelineStage, Schedule1F1B
    torch.set_num_threads(a.threads)
    dist.init_process_group("gloo", init_method="file://" + store, rank=rank, world_size=2)
    shape = shape_of(a.shape)
    V, pos, d, L, H = shape
    m = make_model(shape, a.weights)
    ids = load_ids(torch, a.ids)
    B, T = ids.shape
    M = a.microbatches
    mb = B // M
    K = a.split

    if a.stages == "manual":
        first, last = manual_stages(torch, m, K)
        # The two halves must be the model: same logits as GPT2LMHeadModel.
        with torch.no_grad():
            ref = m(ids[:mb]).logits
            got = last(first(ids[:mb]))
            check = float((ref - got).abs().max())
        mod = first if rank == 0 else last
        if rank == 0:
            stage = PipelineStage(mod, 0, 2, torch.device("cpu"),
                                  input_args=torch.zeros(mb, T, dtype=torch.int64),
                                  output_args=torch.empty(mb, T, d, requires_grad=True))
        else:
            stage = PipelineStage(mod, 1, 2, torch.device("cpu"),
                                  input_args=torch.empty(mb, T, d, requires_grad=True),
                                  output_args=torch.empty(mb, T, V, requires_grad=True))
        tied = mod.wte.weight if rank == 0 else mod.head.weight
    else:
        from torch.distributed.pipelining import SplitPoint, pipeline
        pipe = pipeline(m, mb_args=(ids[:mb],),
                        split_spec={"transformer.h.%d" % K: SplitPoint.BEGINNING})
        if pipe.num_stages != 2:
            raise SystemExit("torch_gpt_train: the tracer made %d stages" % pipe.num_stages)
        with torch.no_grad():
            ref = m(ids[:mb]).logits
            got = pipe(ids[:mb])
            got = got[0] if isinstance(got, (tuple, list)) else got
            check = float((ref - got).abs().max())
        stage = pipe.build_stage(rank, torch.device("cpu"))
        mod = stage.submod
        tied = mod.get_parameter("transformer.wte.weight" if rank == 0 else "lm_head.weight")
    del m

    def loss_fn(out, tgt):
        return next_token_loss(torch, out, tgt)

    sched = Schedule1F1B(stage, M, loss_fn=loss_fn)
    order = []

    def wrap(st, fn, kind):
        def rec(chunk, *args, **kwargs):
            order.append("%d%s%d" % (st.stage_index, kind, chunk))
            return fn(chunk, *args, **kwargs)
        return rec
    stage.forward_one_chunk = wrap(stage, stage.forward_one_chunk, "F")
    stage.backward_one_chunk = wrap(stage, stage.backward_one_chunk, "B")

    params = list(mod.parameters())
    opt = torch.optim.Adam(params, lr=a.lr)
    times, losses_per_step = [], []
    for t in range(a.steps):
        losses = []
        dist.barrier()
        t0 = time.perf_counter()
        if rank == 0:
            sched.step(ids, return_outputs=False)
        else:
            sched.step(target=ids, losses=losses, return_outputs=False)
        dist.all_reduce(tied.grad)          # the tied matrix: both copies' gradients
        opt.step()
        opt.zero_grad(set_to_none=True)
        dist.barrier()
        times.append(time.perf_counter() - t0)
        stage.__dict__.pop("forward_one_chunk", None)
        stage.__dict__.pop("backward_one_chunk", None)
        if rank == 1:
            losses_per_step.append(float(sum(l.item() for l in losses) / len(losses)))
    bar = []
    for _ in range(20):
        dist.barrier()
        t0 = time.perf_counter()
        dist.barrier()
        bar.append(time.perf_counter() - t0)
    with open(result + ".%d" % rank, "w") as f:
        json.dump({"times": times, "losses": losses_per_step, "order": order,
                   "barrier_s": sorted(bar)[len(bar) // 2], "logits_check": check}, f)
    dist.destroy_process_group()


def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def cmd_pipe(a):
    import torch
    import torch.multiprocessing as mp
    tmp = tempfile.mkdtemp(prefix="torch_gpt_train.")
    try:
        mp.spawn(worker, args=(a, os.path.join(tmp, "store"), os.path.join(tmp, "res")),
                 nprocs=2, join=True)
        res = []
        for r in range(2):
            with open(os.path.join(tmp, "res.%d" % r)) as f:
                res.append(json.load(f))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    times = res[0]["times"][a.warmup:]
    print(json.dumps({"torch": torch.__version__, "stages": a.stages, "M": a.microbatches,
                      "threads": a.threads, "steps": a.steps, "steps_timed": len(times),
                      "step_time": median(times), "times": times, "losses": res[1]["losses"],
                      "order": [r["order"] for r in res], "barrier_s": res[0]["barrier_s"],
                      "logits_check": res[0]["logits_check"]}))


def cmd_single(a):
    import torch
    torch.set_num_threads(a.threads)
    m = make_model(shape_of(a.shape), a.weights)
    ids = load_ids(torch, a.ids)
    opt = torch.optim.Adam(m.parameters(), lr=a.lr)
    times, losses = [], []
    for t in range(a.steps):
        t0 = time.perf_counter()
        loss = m(ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
        losses.append(float(loss.item()))
    times = times[a.warmup:]
    print(json.dumps({"torch": torch.__version__, "threads": a.threads, "steps": a.steps,
                      "steps_timed": len(times), "step_time": median(times), "times": times,
                      "losses": losses, "attn_implementation": m.config._attn_implementation}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("init")
    p.add_argument("--shape", required=True, help="V,POS,D,L,H")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--weights-out", required=True)
    for name in ("pipe", "single"):
        p = sub.add_parser(name)
        p.add_argument("--shape", required=True)
        p.add_argument("--weights", required=True)
        p.add_argument("--ids", required=True)
        p.add_argument("--steps", type=int, default=6)
        p.add_argument("--warmup", type=int, default=2)
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--lr", type=float, required=True)
        if name == "pipe":
            p.add_argument("--microbatches", type=int, required=True)
            p.add_argument("--split", type=int, required=True,
                           help="blocks on stage 0 (it also holds the embeddings)")
            p.add_argument("--stages", choices=["traced", "manual"], default="manual")
    a = ap.parse_args()
    {"init": cmd_init, "pipe": cmd_pipe, "single": cmd_single}[a.cmd](a)


if __name__ == "__main__":
    main()
