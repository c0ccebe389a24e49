#!/usr/bin/env python3
"""cosine.py — pairwise cosine similarities of the rows of an embeddings .npy.

    python3 scripts/cosine.py E.npy [SENTENCE...]

E.npy is a float array [N, D] (e.g. the output of a mean_pool/l2_normalize
.pipe model).  Prints the N×N matrix of cos(e_i, e_j) = e_i·e_j / (|e_i| |e_j|);
rows are labelled by the sentences when N of them are given (in the order they
were tokenized), else by their index.  Needs numpy only.
"""
import sys

try:
    import numpy as np
except ImportError:
    sys.exit("cosine.py: needs numpy (pip install numpy)")


def cosine_matrix(e):
    e = np.asarray(e, dtype=np.float64)
    if e.ndim != 2:
        raise ValueError("expected a 2-D array [N, D], got shape %s" % (e.shape,))
    n = np.linalg.norm(e, axis=1, keepdims=True)
    u = e / np.maximum(n, 1e-12)
    return u @ u.T


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    try:
        e = np.load(argv[0])
        c = cosine_matrix(e)
    except (OSError, ValueError) as exc:
        print("cosine.py: %s: %s" % (argv[0], exc), file=sys.stderr)
        return 1
    labels = argv[1:]
    n = c.shape[0]
    if labels and len(labels) != n:
        print("cosine.py: %d sentences given for %d rows" % (len(labels), n),
              file=sys.stderr)
        return 1
    if labels:
        for i, s in enumerate(labels):
            print("[%d] %s" % (i, s))
        print()
    print("     " + "".join("%8s" % ("[%d]" % j) for j in range(n)))
    for i in range(n):
        print("%-5s" % ("[%d]" % i) + "".join("%8.4f" % c[i, j] for j in range(n)))
    if labels and n > 1:
        off = [(c[i, j], i, j) for i in range(n) for j in range(i + 1, n)]
        best = max(off)
        print("\nmost similar: [%d] and [%d] (%.4f)" % (best[1], best[2], best[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
