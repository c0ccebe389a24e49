#!/usr/bin/env python3
"""fuzz/make-corpus.py — writes the seed corpora under fuzz/corpus/ (committed;
rerun after changing this script).  Valid files of each format, then the
malicious ones the readers must refuse.  The safetensors and .npy harnesses
also take "header NUL data" inputs (see their comments): seeds of both kinds.
Crash reproducers found by fuzzing are added to the corpus by hand, named
crash-*, and never regenerated away (this script does not delete files)."""
import json
import os
import struct
import sys

top = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(kind, name, data):
    d = os.path.join(top, kind)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- JSON ----
J = {
    "empty-obj": "{}",
    "empty-arr": "[]",
    "scalars": '[null, true, false, 0, -0, 1.5e-3, -12E+2, 1e308, "s"]',
    "escapes": r'{"a\"b":"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"}',
    "utf8": '{"\u00e9t\u00e9":"\u4e2d\u6587 \U0001f600"}',
    "nested": '{"a":[{"b":[1,2,{"c":null}]}],"d":{}}',
    "header": '{"__metadata__":{"format":"pt"},"fc.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}',
    "dup-key": '{"a":1,"b":2,"a":3}',
    "dup-key-many": "{" + ",".join('"k%d":%d' % (i, i) for i in range(20)) + ',"k7":0}',
    "deep": "[" * 100 + "]" * 100,
    "deep-obj": '{"a":' * 70 + "1" + "}" * 70,
    "leading-zero": "[01]",
    "huge-number": "[1e999]",
    "bad-surrogate": r'["\udc00"]',
    "lone-high": r'["\ud800x"]',
    "nul-escape": r'["a\u0000b"]',
    "bad-utf8": b'["\xc0\xaf"]',
    "surrogate-utf8": b'["\xed\xa0\x80"]',
    "overlong3": b'["\xe0\x80\xaf"]',
    "above-max": b'["\xf4\x90\x80\x80"]',
    "trunc-utf8": b'["\xe4\xb8"]',
    "control": b'["a\x01"]',
    "trailing": "{} x",
    "unterminated": '{"a":"b',
    "bad-escape": r'["\x"]',
    "minus-alone": "[-]",
    "dot-alone": "[1.]",
    "exp-alone": "[1e]",
    "long-number": "[" + "1" * 80 + "]",
}
for k, v in J.items():
    put("json", k, v)

# ---- state.json, as a checkpoint writes it ----
S = {
    "state": {"step": 120, "epoch": 2, "position": 40, "seed": 7, "shuffle": True,
              "lr_step": 120, "model": "gpt", "pipeline": {"stages": 2, "schedule": "1f1b",
              "replicas": 1}, "data": {"rows": 1000, "position": 40}, "version": 1},
    "state-min": {"step": 0},
}
for k, v in S.items():
    put("state", k, json.dumps(v))
put("state", "state-negative", '{"step": -1, "epoch": 1.5, "position": 9007199254740993}')
put("state", "state-types", '{"step": "12", "epoch": null, "model": [1], "pipeline": 3}')
put("state", "state-dup", '{"step": 1, "step": 2}')
put("state", "state-deep", '{"data":' * 80 + "0" + "}" * 80)
put("state", "state-trunc", '{"step": 12, "epoch"')


# ---- safetensors ----
def st(header, data=b"", raw_len=None):
    h = header.encode() if isinstance(header, str) else header
    n = len(h) if raw_len is None else raw_len
    return struct.pack("<Q", n) + h + data


def st_split(header, data=b""):
    """The harness's 'header NUL data' form."""
    return header.encode() + b"\0" + data


def hdr(entries, meta=True):
    d = {"__metadata__": {"format": "pt"}} if meta else {}
    d.update(entries)
    return json.dumps(d, separators=(",", ":"))


w = struct.pack("<6f", 1, -2, 3.5, 0, 1e-30, -7)
b = struct.pack("<3f", 9, 8, 7)
good = hdr({"fc.weight": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
            "fc.bias": {"dtype": "F32", "shape": [3], "data_offsets": [24, 36]}})
put("safetensors", "good", st(good, w + b))
put("safetensors", "good-split", st_split(good, w + b))
conv = hdr({"h": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]},
            "b": {"dtype": "BF16", "shape": [1], "data_offsets": [2, 4]},
            "d": {"dtype": "F64", "shape": [], "data_offsets": [4, 12]},
            "i": {"dtype": "I32", "shape": [1, 1], "data_offsets": [12, 16]},
            "z": {"dtype": "U8", "shape": [0], "data_offsets": [16, 16]}})
put("safetensors", "dtypes", st(conv, b"\x00\x3e\x00\xc0" + struct.pack("<d", 0.25) + b"\1\0\0\0"))
put("safetensors", "dtypes-split", st_split(conv, b"\x00\x3e\x00\xc0" + struct.pack("<d", 0.25) + b"\1\0\0\0"))
put("safetensors", "empty", st("{}"))
# fc.bias's bytes inside fc.weight's: the file is the right size
ov = hdr({"fc.weight": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
          "fc.bias": {"dtype": "F32", "shape": [3], "data_offsets": [8, 20]}})
put("safetensors", "overlap", st(ov, w))
put("safetensors", "overlap-split", st_split(ov, w))
gap = hdr({"fc.weight": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
           "fc.bias": {"dtype": "F32", "shape": [3], "data_offsets": [28, 40]}})
put("safetensors", "gap", st(gap, w + b"\0" * 4 + b))
put("safetensors", "trailing", st(good, w + b + b"\0" * 8))
put("safetensors", "not-from-zero", st(hdr({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}), b"\0" * 8))
put("safetensors", "claims-more", st(good, w + b, raw_len=1 << 40))
put("safetensors", "huge-header", st(good, w + b, raw_len=100000001))
put("safetensors", "overflow-shape", st(hdr({"a": {"dtype": "F64", "shape": [4294967296, 4294967296, 16],
                                                    "data_offsets": [0, 8]}}), b"\0" * 8))
put("safetensors", "overflow-offset", st(hdr({"a": {"dtype": "U8", "shape": [1],
                                                     "data_offsets": [18446744073709551615, 0]}}), b"\0"))
put("safetensors", "bad-metadata", st(hdr({"__metadata__": {"format": 1}}, meta=False)))
put("safetensors", "nine-dims", st(hdr({"a": {"dtype": "F32", "shape": [1] * 9, "data_offsets": [0, 4]}}), b"abcd"))
put("safetensors", "float-offset", st('{"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4e0]}}', b"abcd"))
put("safetensors", "meta-null", st('{"__metadata__":null,"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', b"abcd"))
put("safetensors", "zero-size-ends", st(hdr({"z0": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]},
                                             "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                                             "z1": {"dtype": "U8", "shape": [2, 0], "data_offsets": [4, 4]}}), b"abcd"))
put("safetensors", "zero-size-inside", st(hdr({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                               "z": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]}}), b"\0" * 8))
put("safetensors", "leading-space", st(" " + good, w + b))
put("safetensors", "dup-name", st('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                                  '"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', b"abcd"))
put("safetensors", "short", b"\x10\0\0")

# ---- .npy ----
def npy(d, data, version=1):
    pre = 10 if version == 1 else 12
    h = d.encode()
    pad = (64 - (pre + len(h) + 1) % 64) % 64
    h = h + b" " * pad + b"\n"
    ln = struct.pack("<H", len(h)) if version == 1 else struct.pack("<I", len(h))
    return b"\x93NUMPY" + bytes([version, 0]) + ln + h + data


f6 = struct.pack("<6f", 1, 2, 3, 4, 5, 6)
put("npy", "f4", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", f6))
put("npy", "f4-split", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\0".encode() + f6)
put("npy", "f8-v2", npy("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", struct.pack("<3d", .5, -1, 3), 2))
put("npy", "i8-v3", npy('{"descr": "<i8", "fortran_order": False, "shape": (2,), }', struct.pack("<2q", 7, 1 << 40), 3))
put("npy", "i4-fortran", npy("{'descr': '<i4', 'fortran_order': True, 'shape': (2, 3), }", struct.pack("<6i", 1, 4, 2, 5, 3, 6)))
put("npy", "scalar", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", struct.pack("<f", 2)))
put("npy", "empty", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }", b""))
put("npy", "py2-long", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3L), }", f6))
put("npy", "big-endian", npy("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", f6))
put("npy", "u1", npy("{'descr': '|u1', 'fortran_order': False, 'shape': (6,), }", b"123456"))
put("npy", "structured", npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (6,), }", f6))
put("npy", "truncated", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", f6[:-4]))
put("npy", "overflow-shape", npy("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296, 16), }", b"\0" * 8))
put("npy", "huge-dim", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,), }", b""))
put("npy", "not-tuple", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (6), }", f6))
put("npy", "fortran-word", npy("{'descr': '<f4', 'fortran_order': Truely, 'shape': (6,), }", f6))
put("npy", "dup-key", npy("{'descr': '<f4', 'descr': '<f8', 'fortran_order': False, 'shape': (6,), }", f6))
put("npy", "extra-key", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (6,), 'x': 1}", f6))
put("npy", "nine-dims", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", struct.pack("<f", 1)))
huge = bytearray(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", struct.pack("<f", 1), 2))
huge[8:12] = struct.pack("<I", 0xfffffff0)
put("npy", "huge-header", bytes(huge))
put("npy", "version9", b"\x93NUMPY\x09\x00\x10\x00{}")
put("npy", "nul-in-header", npy("{'descr': '<f4'\0, 'fortran_order': False, 'shape': (1,), }", struct.pack("<f", 1)))
