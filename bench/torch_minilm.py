#!/usr/bin/env python3
"""bench/torch_minilm.py — the sentence-transformers side of bench/exp_minilm.py
(run in the PyTorch interpreter, BENCH_TORCH_PYTHON, with sentence-transformers).

  torch_minilm.py prep --model DIR --batch B --max-len T --seed S --out-prefix P
      B passages cut from /usr/share/common-licenses (word counts drawn so
      that, for T = 128, some are cut at T tokens and some padded; at least one
      reaches T, so the batch is padded to exactly T as sentence-transformers
      pads it), written as P.txt (one per line); P.ids.npy / P.mask.npy: int32
      [B, T] from scripts/bert-tokenize.py's tokenize() (what pipec reads),
      checked equal to sentence-transformers' own tokenization with
      max_seq_length = T.  Prints {"T", "real_tokens", "sentences"}.
  torch_minilm.py time --model DIR --sentences P.txt --max-len T --threads N
                       --warmup W --reps R [--emb-out E.npy]
      one process, torch.set_num_threads(N), model.max_seq_length = T:
      W untimed then R timed calls of SentenceTransformer.encode(sentences,
      batch_size = B) (tokenization, forward, pooling, normalisation: the
      whole call), then W + R calls of the forward alone on pre-tokenized
      features under inference_mode (the part pipec does).  Prints one JSON
      object with both lists of seconds.
  torch_minilm.py cos --ref E.npy --got O.npy
      per-row cosine between two [B, 384] embedding files; prints
      {"min_cos", "max_abs_diff"}.
"""
import argparse
import glob
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_st(model_dir, max_len):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers
    transformers.logging.set_verbosity_error()
    from sentence_transformers import SentenceTransformer
    m = SentenceTransformer(model_dir, device="cpu")
    m.max_seq_length = max_len
    m.eval()
    return m


def passages(batch, max_len, seed):
    import numpy as np
    files = sorted(f for f in glob.glob("/usr/share/common-licenses/*") if os.path.isfile(f))
    words = " ".join(open(f, encoding="utf-8", errors="replace").read() for f in files).split()
    rng = np.random.default_rng(seed)
    # About 1.3 word pieces a word in these texts: word counts from 0.35 T to
    # 1.25 T give a mix of padded rows and rows cut at T.
    lo, hi = max(3, int(0.35 * max_len)), max(4, int(1.25 * max_len))
    out = []
    for i in range(batch):
        n = int(rng.integers(lo, hi + 1)) if i else hi      # row 0 reaches T
        s = int(rng.integers(0, len(words) - n))
        out.append(" ".join(words[s:s + n]))
    return out


def cmd_prep(a):
    import numpy as np
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import importlib
    bt = importlib.import_module("bert-tokenize")
    sents = passages(a.batch, a.max_len, a.seed)
    ids, mask, _ = bt.tokenize(os.path.join(a.model, "tokenizer.json"), sents, a.max_len)
    if ids.shape != (a.batch, a.max_len):
        raise SystemExit("torch_minilm: tokenized to %s, wanted [%d, %d]"
                         % (ids.shape, a.batch, a.max_len))
    m = load_st(a.model, a.max_len)
    f = m.tokenize(sents)
    st_ids = f["input_ids"].numpy()
    st_mask = f["attention_mask"].numpy()
    if st_ids.shape != ids.shape or (st_ids != ids).any() or (st_mask != mask).any():
        raise SystemExit("torch_minilm: bert-tokenize.py and sentence-transformers tokenize "
                         "differently (%s vs %s)" % (ids.shape, st_ids.shape))
    with open(a.out_prefix + ".txt", "w", encoding="utf-8") as fh:
        for s in sents:
            fh.write(s.replace("\n", " ") + "\n")
    np.save(a.out_prefix + ".ids.npy", ids.astype(np.int32))
    np.save(a.out_prefix + ".mask.npy", mask.astype(np.int32))
    print(json.dumps({"T": int(ids.shape[1]), "real_tokens": int(mask.sum()),
                      "sentences": len(sents)}))


def cmd_time(a):
    import numpy as np
    import torch
    torch.set_num_threads(a.threads)
    m = load_st(a.model, a.max_len)
    with open(a.sentences, encoding="utf-8") as fh:
        sents = [l.rstrip("\n") for l in fh if l.strip()]
    enc = []
    emb = None
    for i in range(a.warmup + a.reps):
        t0 = time.perf_counter()
        emb = m.encode(sents, batch_size=len(sents), convert_to_numpy=True,
                       show_progress_bar=False)
        dt = time.perf_counter() - t0
        if i >= a.warmup:
            enc.append(dt)
    feats = m.tokenize(sents)
    fwd = []
    with torch.inference_mode():
        for i in range(a.warmup + a.reps):
            t0 = time.perf_counter()
            out = m(dict(feats))["sentence_embedding"]
            dt = time.perf_counter() - t0
            if i >= a.warmup:
                fwd.append(dt)
    if a.emb_out:
        np.save(a.emb_out, emb.astype(np.float32))
    # The forward-only embeddings must be encode()'s (encode sorts by length
    # and restores the order; one batch here).
    diff = float(np.abs(out.numpy() - emb).max())
    print(json.dumps({"threads": a.threads, "T": int(feats["input_ids"].shape[1]),
                      "batch": len(sents), "encode": enc, "forward": fwd,
                      "fwd_vs_encode_max_abs": diff, "torch": torch.__version__}))


def cmd_cos(a):
    import numpy as np
    r = np.load(a.ref).astype(np.float64)
    g = np.load(a.got).astype(np.float64)
    if r.shape != g.shape:
        raise SystemExit("torch_minilm: shapes differ: %s vs %s" % (r.shape, g.shape))
    cos = (r * g).sum(1) / (np.linalg.norm(r, axis=1) * np.linalg.norm(g, axis=1))
    print(json.dumps({"min_cos": float(cos.min()), "max_abs_diff": float(np.abs(r - g).max())}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prep")
    p.add_argument("--model", required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--max-len", type=int, required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out-prefix", required=True)
    p = sub.add_parser("time")
    p.add_argument("--model", required=True)
    p.add_argument("--sentences", required=True)
    p.add_argument("--max-len", type=int, required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--emb-out")
    p = sub.add_parser("cos")
    p.add_argument("--ref", required=True)
    p.add_argument("--got", required=True)
    a = ap.parse_args()
    {"prep": cmd_prep, "time": cmd_time, "cos": cmd_cos}[a.cmd](a)


if __name__ == "__main__":
    main()
