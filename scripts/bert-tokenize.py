#!/usr/bin/env python3
"""bert-tokenize.py — sentences to the int32 `ids` / `mask` inputs of a BERT-style .pipe model.

    python3 scripts/bert-tokenize.py --tokenizer MODEL_DIR/tokenizer.json \\
        --out-ids ids.npy --out-mask mask.npy [--out-types types.npy] \\
        [--max-len 128] SENTENCE...
    python3 scripts/bert-tokenize.py --tokenizer ... --out-ids ... --out-mask ... --file F

Sentences come from the command line or, with `--file F` (`-` = stdin), one per
line (blank lines skipped).  Tokenization is that of the tokenizer.json itself
(for all-MiniLM-L6-v2: lowercasing BERT normalizer, WordPiece, the [CLS] A [SEP]
template), through the Hugging Face `tokenizers` package only — not
transformers.  The padding and truncation stored in tokenizer.json (MiniLM's
pads every sentence to 128) are replaced: sentences are truncated at
`--max-len` tokens (special tokens included) and padded with the tokenizer's pad
id (0 = [PAD] for BERT) to the longest sentence of the batch, which is what
sentence-transformers' encode() does.  This gives [N, T] int32 arrays: `ids`,
`mask` (1 = token, 0 = padding) and, with `--out-types`, `types` (all 0 for
single sentences).

Needs: numpy, tokenizers (pip install numpy tokenizers).
"""
import argparse
import os
import sys

try:
    import numpy as np
except ImportError:
    sys.exit("bert-tokenize.py: needs numpy (pip install numpy)")


def load_tokenizer(tokenizer_json, max_len=128):
    """The tokenizer of `tokenizer_json`, truncating at max_len, padding to the longest."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tokenizer_json)
    stored = tok.padding or {}
    pad_id = stored.get("pad_id")
    pad_token = stored.get("pad_token")
    if pad_id is None or pad_token is None:
        pad_token = "[PAD]" if tok.token_to_id("[PAD]") is not None else None
        pad_id = tok.token_to_id(pad_token) if pad_token else 0
        if pad_token is None:
            pad_token = tok.id_to_token(0) or "[PAD]"
    tok.no_padding()
    tok.no_truncation()
    tok.enable_truncation(max_length=max_len)
    tok.enable_padding(direction="right", pad_id=pad_id, pad_type_id=0,
                       pad_token=pad_token)      # length=None: to the longest
    return tok


def tokenize(tokenizer_json, sentences, max_len=128):
    """(ids, mask, types): int32 [N, T] arrays for the sentences, T = the longest (≤ max_len)."""
    if not sentences:
        raise ValueError("no sentences to tokenize")
    tok = load_tokenizer(tokenizer_json, max_len)
    encs = tok.encode_batch(list(sentences))
    ids = np.array([e.ids for e in encs], dtype=np.int32)
    mask = np.array([e.attention_mask for e in encs], dtype=np.int32)
    types = np.array([e.type_ids for e in encs], dtype=np.int32)
    return ids, mask, types


def read_sentences(path):
    f = sys.stdin if path == "-" else open(path, encoding="utf-8")
    try:
        return [line.rstrip("\r\n") for line in f if line.strip()]
    finally:
        if f is not sys.stdin:
            f.close()


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Tokenize sentences into int32 ids/mask .npy inputs (BERT-style).")
    ap.add_argument("--tokenizer", required=True, help="tokenizer.json of the model")
    ap.add_argument("--out-ids", required=True, help="output .npy, int32 [N, T]")
    ap.add_argument("--out-mask", required=True, help="output .npy, int32 [N, T]")
    ap.add_argument("--out-types", help="output .npy of token types, int32 [N, T]")
    ap.add_argument("--max-len", type=int, default=128,
                    help="truncate at this many tokens, [CLS]/[SEP] included (default 128)")
    ap.add_argument("--file", help="read sentences, one per line, from F ('-' = stdin)")
    ap.add_argument("sentences", nargs="*", metavar="SENTENCE")
    a = ap.parse_args(argv)

    sentences = list(a.sentences)
    if a.file:
        sentences += read_sentences(a.file)
    if not sentences:
        ap.error("no sentences: give them as arguments or with --file")
    if a.max_len < 2:
        ap.error("--max-len must be at least 2")
    try:
        ids, mask, types = tokenize(a.tokenizer, sentences, a.max_len)
    except ImportError:
        sys.exit("bert-tokenize.py: needs the Hugging Face `tokenizers` package "
                 "(pip install tokenizers)")
    except Exception as e:  # unreadable tokenizer.json and the like
        sys.exit("bert-tokenize.py: %s: %s" % (a.tokenizer, e))
    np.save(a.out_ids, ids)
    np.save(a.out_mask, mask)
    if a.out_types:
        np.save(a.out_types, types)
    print("%d sentences, %d tokens each (%d real)"
          % (ids.shape[0], ids.shape[1], int(mask.sum())), file=sys.stderr)


if __name__ == "__main__":
    main()
