#!/usr/bin/env python3
"""char-gpt-data.py — a character-level language-modelling set from text files.

    python3 scripts/char-gpt-data.py --out DIR [--len 64] [--rows 2048] [--seed 1]
        [--eval-rows N] [--arch gpt2|llama] [FILE...]
                                      (default: every file in /usr/share/common-licenses)

Each character becomes its byte value (non-ASCII bytes map to '?', so the
vocabulary is 128 ids).  Writes DIR/ids.npy, int32 [rows, len]: windows of
the concatenated text at random offsets (seeded), for `loss next_token`;
with --eval-rows N, the last tenth of the text is held out: the training
windows come from the rest and DIR/eval_ids.npy, int32 [N, len], from it
(an evaluation set that shares no text with the training set);
and DIR/config.json, the transformers GPT2Config of models/char-gpt.pipe, so
that after `run --weights-out DIR/model.safetensors`
`GPT2LMHeadModel.from_pretrained(DIR)` loads the trained model (with
--arch llama, the LlamaConfig of models/char-llama.pipe, for
`LlamaForCausalLM.from_pretrained(DIR)`).
Needs numpy only.
"""
import argparse
import glob
import json
import os

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--out", required=True)
    ap.add_argument("--len", type=int, default=64)
    ap.add_argument("--rows", type=int, default=2048)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--eval-rows", type=int, default=0)
    ap.add_argument("--arch", choices=("gpt2", "llama"), default="gpt2")
    ap.add_argument("files", nargs="*")
    a = ap.parse_args()
    files = a.files or sorted(f for f in glob.glob("/usr/share/common-licenses/*")
                              if os.path.isfile(f))
    text = b"".join(open(f, "rb").read() for f in files)
    ids = np.frombuffer(text, dtype=np.uint8).astype(np.int32)
    ids[ids >= 128] = ord("?")
    if len(ids) <= a.len:
        raise SystemExit("char-gpt-data: %d characters are fewer than one window" % len(ids))
    rng = np.random.default_rng(a.seed)
    held = ids[len(ids) - len(ids) // 10:] if a.eval_rows > 0 else ids[:0]
    train = ids[:len(ids) - len(held)]
    if len(train) <= a.len or (a.eval_rows > 0 and len(held) <= a.len):
        raise SystemExit("char-gpt-data: too little text for windows of %d" % a.len)
    start = rng.integers(0, len(train) - a.len, size=a.rows)
    windows = np.stack([train[s:s + a.len] for s in start]).astype(np.int32)
    os.makedirs(a.out, exist_ok=True)
    np.save(os.path.join(a.out, "ids.npy"), windows)
    if a.eval_rows > 0:
        start = rng.integers(0, len(held) - a.len, size=a.eval_rows)
        np.save(os.path.join(a.out, "eval_ids.npy"),
                np.stack([held[s:s + a.len] for s in start]).astype(np.int32))
    if a.arch == "llama":
        # models/char-llama.pipe
        config = {"model_type": "llama", "architectures": ["LlamaForCausalLM"],
                  "vocab_size": 128, "max_position_embeddings": a.len, "hidden_size": 128,
                  "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
                  "intermediate_size": 384, "hidden_act": "silu", "rms_norm_eps": 1e-5,
                  "rope_theta": 10000.0, "attention_bias": False, "mlp_bias": False,
                  "tie_word_embeddings": True, "bos_token_id": None, "eos_token_id": None}
    else:
        config = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"],
                  "vocab_size": 128, "n_positions": a.len, "n_embd": 64, "n_layer": 4,
                  "n_head": 4, "n_inner": None, "activation_function": "gelu_new",
                  "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
                  "layer_norm_epsilon": 1e-5, "tie_word_embeddings": True,
                  "bos_token_id": None, "eos_token_id": None}
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    print("char-gpt-data: %d characters from %d files -> %s/ids.npy [%d, %d]"
          % (len(ids), len(files), a.out, a.rows, a.len))


if __name__ == "__main__":
    main()
