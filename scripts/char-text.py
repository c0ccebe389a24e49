#!/usr/bin/env python3
"""char-text.py — text to and from the character ids of char-gpt-data.py.

    python3 scripts/char-text.py encode OUT.npy LEN TEXT...   one row per TEXT,
        its last LEN characters, right-padded with -1 (int32 [rows, LEN]): a
        generating program reads a row's prompt as its ids before the first -1
    python3 scripts/char-text.py decode TOKENS.npy [PROMPT_LEN]
        one line per row, -1 left out; with PROMPT_LEN the prompt is shown in
        brackets

Ids are byte values; non-ASCII characters become '?' (the vocabulary is 128).
Needs numpy only.
"""
import sys

import numpy as np


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("encode", "decode"):
        raise SystemExit(__doc__)
    if sys.argv[1] == "encode":
        out, n, texts = sys.argv[2], int(sys.argv[3]), sys.argv[4:]
        rows = []
        for t in texts:
            b = [c if c < 128 else ord("?") for c in t.encode()[-n:]]
            if not b:
                raise SystemExit("char-text.py: an empty prompt")
            rows.append(b + [-1] * (n - len(b)))
        np.save(out, np.array(rows, dtype=np.int32))
        return
    a = np.load(sys.argv[2])
    k = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    def text(ids):
        return "".join(chr(c) if 32 <= c < 127 else " " for c in ids if c >= 0)
    for row in a:
        print("[%s]%s" % (text(row[:k]), text(row[k:])) if k else text(row))


if __name__ == "__main__":
    main()
