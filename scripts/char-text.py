#!/usr/bin/env python3
"""char-text.py — text to and from the character ids of char-gpt-data.py.

    python3 scripts/char-text.py encode OUT.npy LEN TEXT...   one row per TEXT,
        each cut or left-padded with spaces to LEN characters (int32 [rows, LEN])
    python3 scripts/char-text.py decode TOKENS.npy [PROMPT_LEN]
        one line per row; with PROMPT_LEN the prompt is shown in brackets

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
            rows.append([ord(" ")] * (n - len(b)) + b)
        np.save(out, np.array(rows, dtype=np.int32))
        return
    a = np.load(sys.argv[2])
    k = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    for row in a:
        s = "".join(chr(c) if 32 <= c < 127 else " " for c in row)
        print(("[%s]%s" % (s[:k], s[k:])) if k else s)


if __name__ == "__main__":
    main()
