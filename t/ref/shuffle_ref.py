"""t/ref/shuffle_ref.py — the runtime's --shuffle order, written from
docs/training.md ("Shuffling") alone: rt_init.c's counter-based generator
and rt_data.c's Fisher–Yates, in plain Python with numpy's arange."""
import numpy as np

M64 = (1 << 64) - 1


def mix64(x):
    x ^= x >> 30
    x = (x * 0xbf58476d1ce4e5b9) & M64
    x ^= x >> 27
    x = (x * 0x94d049bb133111eb) & M64
    return x ^ (x >> 31)


def hash_name(s):
    h = 0xcbf29ce484222325
    for ch in s.encode():
        h = ((h ^ ch) * 0x100000001b3) & M64
    return mix64(h)


def rand_at(seed, stream, k):
    return mix64((mix64(seed ^ mix64((stream + 0x9e3779b97f4a7c15) & M64))
                  + k * 0x9e3779b97f4a7c15) & M64)


def perm(seed, n, epoch):
    """Epoch `epoch`'s order of n rows for the program's seed."""
    stream = (hash_name("pipec.shuffle") + epoch) & M64
    p = np.arange(n)
    for i in range(n - 1, 0, -1):
        j = rand_at(seed, stream, i) % (i + 1)
        p[i], p[j] = p[j], p[i]
    return p
