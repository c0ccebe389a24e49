#!/usr/bin/env python3
"""bench/torch_train_real.py — the PyTorch side of bench/exp_train_real.py: a whole
training run of a transformers GPT2LMHeadModel (tied head, next-token loss) with
models/char-gpt-train.pipe's recipe, pipelined over 2 processes with
torch.distributed.pipelining (Schedule1F1B, gloo, CPU) or in one process.
Runs in the PyTorch interpreter with transformers.

  torch_train_real.py pipe|single --shape V,POS,D,L,H --weights W.safetensors
      --ids IDS.npy --eval-ids EVAL.npy --batch B --steps N --eval-every E
      --recipe JSON [--microbatches M --split K] [--threads T] [--seed S]

The recipe (the .pipe file's, as JSON: lr, beta1, beta2, eps, weight_decay,
warmup, total, min_lr, clip) is applied as a PyTorch user writes it:
torch.optim.AdamW over two parameter groups (weight decay on parameters of
two or more dimensions only), a LambdaLR of the warm-up + cosine formula,
torch.nn.utils.clip_grad_norm_'s rule on the global norm, shuffled epochs of
floor(rows / B) batches.  pipe: stage 0 = embeddings + blocks 0..K-1, stage 1
= the rest + ln_f + a head holding a copy of the tied embedding (the two
gradients are summed before every step; the tied matrix counts once in the
norm, which the two ranks combine with one all_reduce).  single: the whole
batch in one process.  The data order is each epoch's permutation of
bench/exp_train_real.py's shuffle() (pipec's algorithm, docs/training.md).

Prints one JSON object: the training's wall time (evaluations left out),
samples/s, every step's loss, the evaluation losses.
"""
import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_gpt_train as tg  # noqa: E402


def lr_factor(r, t):
    """lr(t) / lr for optimizer step t = 1, 2, ... (docs/training.md)."""
    lr, W, T, m = r["lr"], r["warmup"], r["total"], r["min_lr"]
    if W > 0 and t <= W:
        return t / W
    if t >= T:
        return m / lr
    return (m + (lr - m) * 0.5 * (1 + math.cos(math.pi * (t - W) / (T - W)))) / lr


def batches(a, n):
    """The row indices of every step's batch: shuffled epochs, drop_last."""
    import numpy as np
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from exp_train_real import shuffle
    nb = n // a.batch
    out, epoch = [], -1
    perm = None
    for s in range(a.steps):
        if s // nb != epoch:
            epoch = s // nb
            perm = np.asarray(shuffle(a.seed, epoch, n))
        i = s % nb
        out.append(perm[i * a.batch:(i + 1) * a.batch])
    return out


def groups(torch, params, wd):
    named = list(params)
    return [{"params": [p for _, p in named if p.dim() >= 2], "weight_decay": wd},
            {"params": [p for _, p in named if p.dim() < 2], "weight_decay": 0.0}]


def eval_loss_single(torch, m, ev, B):
    tot, n = 0.0, 0
    with torch.no_grad():
        for i in range(0, ev.shape[0], B):
            x = ev[i:i + B]
            lg = m(x).logits
            V = lg.shape[-1]
            tot += float(torch.nn.functional.cross_entropy(
                lg[:, :-1].reshape(-1, V), x[:, 1:].reshape(-1), reduction="sum"))
            n += x.shape[0] * (x.shape[1] - 1)
    return tot / n


def cmd_single(a, r):
    import numpy as np
    import torch
    torch.set_num_threads(a.threads)
    m = tg.make_model(tg.shape_of(a.shape), a.weights)
    ids = tg.load_ids(torch, a.ids)
    ev = tg.load_ids(torch, a.eval_ids)
    opt = torch.optim.AdamW(groups(torch, m.named_parameters(), r["weight_decay"]), lr=r["lr"],
                            betas=(r["beta1"], r["beta2"]), eps=r["eps"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: lr_factor(r, i + 1))
    losses, evals, train_s = [], [], 0.0
    for s, rows in enumerate(batches(a, ids.shape[0])):
        x = ids[torch.from_numpy(np.asarray(rows, dtype=np.int64))]
        t0 = time.perf_counter()
        loss = m(x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), r["clip"])
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        train_s += time.perf_counter() - t0
        losses.append(float(loss.detach()))
        if (s + 1) % a.eval_every == 0 or s + 1 == a.steps:
            evals.append([s + 1, eval_loss_single(torch, m, ev, a.batch)])
    return {"train_s": train_s, "losses": losses, "evals": evals}


def worker(rank, a, r, store, result):
    import numpy as np
    import torch
    import torch.distributed as dist
    from torch.distributed.pipelining import PipelineStage, Schedule1F1B
    torch.set_num_threads(a.threads)
    dist.init_process_group("gloo", init_method="file://" + store, rank=rank, world_size=2)
    V, pos, d, L, H = tg.shape_of(a.shape)
    m = tg.make_model((V, pos, d, L, H), a.weights)
    ids = tg.load_ids(torch, a.ids)
    ev = tg.load_ids(torch, a.eval_ids)
    B, T, M = a.batch, ids.shape[1], a.microbatches
    mb = B // M
    first, last = tg.manual_stages(torch, m, a.split)
    mod = first if rank == 0 else last
    if rank == 0:
        stage = PipelineStage(mod, 0, 2, torch.device("cpu"),
                              input_args=torch.zeros(mb, T, dtype=torch.int64),
                              output_args=torch.empty(mb, T, d, requires_grad=True))
        tied = mod.wte.weight
    else:
        stage = PipelineStage(mod, 1, 2, torch.device("cpu"),
                              input_args=torch.empty(mb, T, d, requires_grad=True),
                              output_args=torch.empty(mb, T, V, requires_grad=True))
        tied = mod.head.weight
    del m
    sched = Schedule1F1B(stage, M, loss_fn=lambda out, tgt: tg.next_token_loss(torch, out, tgt))
    opt = torch.optim.AdamW(groups(torch, mod.named_parameters(), r["weight_decay"]), lr=r["lr"],
                            betas=(r["beta1"], r["beta2"]), eps=r["eps"])
    lrs = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: lr_factor(r, i + 1))
    params = list(mod.parameters())
    losses, evals, train_s = [], [], 0.0

    def evaluate():
        tot, n = 0.0, 0
        with torch.no_grad():
            for i in range(0, ev.shape[0], B):
                x = ev[i:i + B]
                if rank == 0:
                    dist.send(mod(x).contiguous(), 1)
                else:
                    h = torch.empty(x.shape[0], T, d)
                    dist.recv(h, 0)
                    lg = mod(h)
                    tot += float(torch.nn.functional.cross_entropy(
                        lg[:, :-1].reshape(-1, V), x[:, 1:].reshape(-1), reduction="sum"))
                    n += x.shape[0] * (T - 1)
        return tot / n if n else None

    for s, rows in enumerate(batches(a, ids.shape[0])):
        x = ids[torch.from_numpy(np.asarray(rows, dtype=np.int64))]
        step_losses = []
        dist.barrier()
        t0 = time.perf_counter()
        if rank == 0:
            sched.step(x)
        else:
            sched.step(target=x, losses=step_losses)
        dist.all_reduce(tied.grad)
        # clip_grad_norm_ over both stages: the tied matrix once (stage 0's).
        sq = sum(float(p.grad.double().pow(2).sum()) for p in params
                 if p.grad is not None and (rank == 0 or p is not tied))
        tot = torch.tensor([sq], dtype=torch.float64)
        dist.all_reduce(tot)
        coef = r["clip"] / (math.sqrt(float(tot)) + 1e-6)
        if coef < 1:
            for p in params:
                if p.grad is not None:
                    p.grad.mul_(coef)
        opt.step()
        lrs.step()
        opt.zero_grad(set_to_none=True)
        dist.barrier()
        train_s += time.perf_counter() - t0
        if rank == 1:
            losses.append(float(sum(float(l) for l in step_losses) / len(step_losses)))
        if (s + 1) % a.eval_every == 0 or s + 1 == a.steps:
            e = evaluate()
            if rank == 1:
                evals.append([s + 1, e])
    with open(result + ".%d" % rank, "w") as f:
        json.dump({"train_s": train_s, "losses": losses, "evals": evals}, f)
    dist.destroy_process_group()


def cmd_pipe(a, r):
    import torch.multiprocessing as mp
    tmp = tempfile.mkdtemp(prefix="torch_train_real.")
    try:
        mp.spawn(worker, args=(a, r, os.path.join(tmp, "store"), os.path.join(tmp, "res")),
                 nprocs=2, join=True)
        with open(os.path.join(tmp, "res.1")) as f:
            res = json.load(f)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=["pipe", "single"])
    ap.add_argument("--shape", required=True)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--ids", required=True)
    ap.add_argument("--eval-ids", required=True)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--eval-every", type=int, required=True)
    ap.add_argument("--recipe", required=True, help="JSON: lr beta1 beta2 eps weight_decay "
                    "warmup total min_lr clip")
    ap.add_argument("--microbatches", type=int, default=4)
    ap.add_argument("--split", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    r = json.loads(a.recipe)
    import torch
    res = (cmd_pipe if a.mode == "pipe" else cmd_single)(a, r)
    res.update({"torch": torch.__version__, "mode": a.mode, "threads": a.threads,
                "steps": a.steps, "samples_per_s": a.steps * a.batch / res["train_s"]})
    print(json.dumps(res))


if __name__ == "__main__":
    main()
