#!/usr/bin/python3
"""051-llama-real-config.t -- the bundled Llama 3.2 1B and Qwen2 0.5B load and run.

models/llama-3.2-1b.pipe and models/qwen2-0.5b.pipe are there for users who
have the published weights, which cannot be fetched here.  This test stands
in for them: numpy writes a checkpoint with the real models' tensor names,
shapes and dtype (bf16, as published) but random values and only two of the
layers, the bundled model block cut to those two layers is compiled into
2-stage programs, and

- the checkpoint loads: every tensor is bound, none is left over (no note);
- inference gives finite logits equal to a float64 numpy forward of the
  same weights (the Llama layer written out below from Hugging Face's
  LlamaModel: RMSNorm, rotary embedding with rotate-half and, for Llama
  3.2, Llama 3's frequency scaling, grouped-query attention, SwiGLU);
- a few greedy tokens generated through the KV caches equal the
  reference's greedy choices (compared up to the first choice whose margin
  is below 1e-3, where float32 could legitimately pick the other);
- Qwen2's `--weights-out` writes every tensor back under its name and shape,
  with the values it loaded;
- a checkpoint without one layer's k_proj, or with a k_proj as wide as q
  (what a model without GQA would have), is exit 1 naming the tensor.

The embedding alone is 128256 x 2048 (1 GB in f32, on both stages with the
tied head): this runs only under PIPEC_FULL=1 (`make check-full`).

Tolerance: the logits are O(1) sums of products of O(1) activations with
weights of std 0.02; float32 rounding (2^-24 relative per operation,
growing with the square root of the 8192-term reductions) stays near 1e-5
(measured: 5.9e-6 for Llama, 2.9e-6 for Qwen2).  5e-5 absolute passes that
and fails the mistakes this configuration can hide: in the reference, the
Llama logits move by 4.3e-4 with the RoPE scaling's factor 8 instead of
32, 4.5e-3 without the scaling, 0.08 with eps 1e-6, 0.78 with rope_theta
10000.
"""
import json
import os
import re
import struct
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tapy import TAP, env_setup, import_numpy  # noqa: E402

t = TAP()
if os.environ.get("PIPEC_FULL") != "1":
    t.skip_all("PIPEC_FULL=1 only (make check-full): the cut checkpoints are ~0.8 GB and "
               "their programs hold the 1 GB embedding twice")
E = env_setup(t)
np = import_numpy(t, E)

tmp = E.tmpdir("llama-real")
LAYERS = 2          # the cut
T = 8               # prompt length
NEW = 4             # generated tokens
ROWS = 2

# The published configurations (their config.json), written here again
# rather than read from the .pipe files: a wrong value there must show.
CONFIGS = {
    "llama-3.2-1b": dict(vocab=128256, d=2048, heads=32, kv=8, ffn=8192, eps=1e-5,
                         theta=500000.0, bias=False,
                         llama3=dict(factor=32.0, low=1.0, high=4.0, original=8192)),
    "qwen2-0.5b": dict(vocab=151936, d=896, heads=14, kv=2, ffn=4864, eps=1e-6,
                       theta=1000000.0, bias=True, llama3=None),
}


def sh(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


# ---------------------------------------------------------------- checkpoint

def bf16_bits(a):
    """float32 -> the nearest bfloat16's bits (ties to even)."""
    u = a.view(np.uint32)
    return ((u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1)))
            >> np.uint32(16)).astype(np.uint16)


def bits_f32(b):
    return (b.astype(np.uint32) << np.uint32(16)).view(np.float32)


def tensor_list(c):
    """(name, shape, std, mean) in HF's order, LAYERS layers."""
    d, kvw, f = c["d"], c["kv"] * c["d"] // c["heads"], c["ffn"]
    out = [("model.embed_tokens.weight", (c["vocab"], d), 0.02, 0.0)]
    for i in range(LAYERS):
        p = "model.layers.%d." % i
        out += [(p + "input_layernorm.weight", (d,), 0.1, 1.0),
                (p + "self_attn.q_proj.weight", (d, d), 0.02, 0.0),
                (p + "self_attn.k_proj.weight", (kvw, d), 0.02, 0.0),
                (p + "self_attn.v_proj.weight", (kvw, d), 0.02, 0.0),
                (p + "self_attn.o_proj.weight", (d, d), 0.02, 0.0)]
        if c["bias"]:
            out += [(p + "self_attn.q_proj.bias", (d,), 0.1, 0.0),
                    (p + "self_attn.k_proj.bias", (kvw,), 0.1, 0.0),
                    (p + "self_attn.v_proj.bias", (kvw,), 0.1, 0.0)]
        out += [(p + "post_attention_layernorm.weight", (d,), 0.1, 1.0),
                (p + "mlp.gate_proj.weight", (f, d), 0.02, 0.0),
                (p + "mlp.up_proj.weight", (f, d), 0.02, 0.0),
                (p + "mlp.down_proj.weight", (d, f), 0.02, 0.0)]
    return out + [("model.norm.weight", (d,), 0.1, 1.0)]


def make_weights(c, seed):
    """Random bf16-exact float32 tensors, drawn in row chunks (the
    embedding would need 2 GB of temporaries at once)."""
    rng = np.random.default_rng(seed)
    W = {}
    for name, shape, std, mean in tensor_list(c):
        a = np.empty(shape, dtype=np.float32)
        flat = a.reshape(shape[0], -1)
        for r in range(0, shape[0], 8192):
            x = rng.standard_normal(flat[r:r + 8192].shape, dtype=np.float32)
            x *= np.float32(std)
            x += np.float32(mean)
            flat[r:r + 8192] = bits_f32(bf16_bits(x))
        W[name] = a
    return W


def write_bf16(path, W, drop=(), replace=None):
    """safetensors with every tensor stored as BF16, in the file order of
    W; `drop` leaves tensors out, `replace` {name: array} swaps some in."""
    replace = replace or {}
    names = [n for n in W if n not in drop]
    header, off = {}, 0
    for n in names:
        a = replace.get(n, W[n])
        header[n] = {"dtype": "BF16", "shape": list(a.shape),
                     "data_offsets": [off, off + 2 * a.size]}
        off += 2 * a.size
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for n in names:
            a = replace.get(n, W[n])
            flat = a.reshape(a.shape[0], -1) if a.ndim > 1 else a.reshape(1, -1)
            for r in range(0, flat.shape[0], 8192):
                f.write(bf16_bits(np.ascontiguousarray(flat[r:r + 8192])).tobytes())


def read_safetensors(path):
    """{name: (shape, float32 array)}, F32 tensors as --weights-out writes them."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        arr = (np.frombuffer(data[a:b], dtype="<f4").reshape(v["shape"]) if v["dtype"] == "F32"
               else None)
        out[k] = (v["shape"], arr)
    return out


# ---------------------------------------------------------------- reference

def inv_freq(c):
    hd = c["d"] // c["heads"]
    inv = 1.0 / (c["theta"] ** (np.arange(0, hd, 2, dtype=np.float64) / hd))
    s = c["llama3"]
    if s:
        # transformers' _compute_llama3_parameters
        low_wl, high_wl = s["original"] / s["low"], s["original"] / s["high"]
        wl = 2 * np.pi / inv
        scaled = np.where(wl > low_wl, inv / s["factor"], inv)
        smooth = (s["original"] / wl - s["low"]) / (s["high"] - s["low"])
        smoothed = (1 - smooth) * scaled / s["factor"] + smooth * scaled
        medium = ~(wl < high_wl) & ~(wl > low_wl)
        inv = np.where(medium, smoothed, scaled)
    return inv


def rmsnorm(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def rope(x, cos, sin):
    """x [T, heads, hd]; transformers' rotate-half."""
    h = x.shape[-1] // 2
    rot = np.concatenate([-x[..., h:], x[..., :h]], axis=-1)
    return x * cos[:, None, :] + rot * sin[:, None, :]


def logits_last(c, W, ids):
    """float64 logits of every position of one row of ids."""
    d, H, KV = c["d"], c["heads"], c["kv"]
    hd = d // H
    Tn = len(ids)
    ang = np.arange(Tn, dtype=np.float64)[:, None] * inv_freq(c)[None, :]
    ang = np.concatenate([ang, ang], axis=1)
    cos, sin = np.cos(ang), np.sin(ang)
    x = W["model.embed_tokens.weight"][ids].astype(np.float64)
    causal = np.triu(np.full((Tn, Tn), -np.inf), 1)
    for i in range(LAYERS):
        p = "model.layers.%d." % i
        g = lambda n: W[p + n].astype(np.float64)  # noqa: E731
        h = rmsnorm(x, g("input_layernorm.weight"), c["eps"])
        q, k, v = (h @ g("self_attn.%s_proj.weight" % n).T for n in "qkv")
        if c["bias"]:
            q, k, v = (a + g("self_attn.%s_proj.bias" % n) for a, n in zip((q, k, v), "qkv"))
        q = rope(q.reshape(Tn, H, hd), cos, sin)
        k = rope(k.reshape(Tn, KV, hd), cos, sin)
        v = v.reshape(Tn, KV, hd)
        att = np.empty((Tn, H, hd))
        for j in range(H):
            kv = j // (H // KV)           # query head j reads kv head j / (H / KV)
            s = q[:, j] @ k[:, kv].T / np.sqrt(hd) + causal
            s = np.exp(s - s.max(-1, keepdims=True))
            att[:, j] = (s / s.sum(-1, keepdims=True)) @ v[:, kv]
        x = x + att.reshape(Tn, d) @ g("self_attn.o_proj.weight").T
        h = rmsnorm(x, g("post_attention_layernorm.weight"), c["eps"])
        gate, up = h @ g("mlp.gate_proj.weight").T, h @ g("mlp.up_proj.weight").T
        x = x + (gate / (1 + np.exp(-gate)) * up) @ g("mlp.down_proj.weight").T
    x = rmsnorm(x, W["model.norm.weight"].astype(np.float64), c["eps"])
    emb = W["model.embed_tokens.weight"]
    out = np.empty((Tn, c["vocab"]))
    for r in range(0, c["vocab"], 16384):       # the tied head, a slice at a time
        out[:, r:r + 16384] = x @ emb[r:r + 16384].astype(np.float64).T
    return out


# ---------------------------------------------------------------- programs

def cut_pipe(name, pipeline):
    """The bundled model block with LAYERS layers and prompts of T tokens,
    followed by our own pipeline block."""
    src = open(os.path.join(E.src, "models", name + ".pipe")).read()
    model = re.search(r"^model .*?^}", src, re.S | re.M)
    if not model:
        return None
    text = re.sub(r"(layer \w+)\[\d+\]", r"\g<1>[%d]" % LAYERS, model.group(0))
    text = re.sub(r"i32\[batch, \d+\]", "i32[batch, %d]" % T, text)
    return text + "\n\npipeline {\n" + "".join("    %s;\n" % p for p in pipeline) + "}\n"


def program(name, tag, pipeline):
    path = os.path.join(tmp, "%s-%s.pipe" % (name, tag))
    text = cut_pipe(name, pipeline)
    if text is None:
        return None, "no model block in models/%s.pipe" % name
    open(path, "w").write(text)
    d = os.path.join(tmp, "%s-%s" % (name, tag))
    r = sh([E.pipec, "compile", path, "-o", d])
    if r.returncode != 0:
        return None, "compile: " + r.stderr
    return os.path.join(d, "run"), ""


for name, c in CONFIGS.items():
    W = make_weights(c, seed=24)
    ckpt = os.path.join(tmp, name + ".safetensors")
    write_bf16(ckpt, W)
    rng = np.random.default_rng(7)
    prompts = rng.integers(0, c["vocab"], size=(ROWS, T)).astype(np.int32)
    prompts[0, -1] = c["vocab"] - 1          # the table's last row too
    pfile = os.path.join(tmp, name + "-prompts.npy")
    np.save(pfile, prompts)

    # ---- inference: logits against the float64 reference ----
    run, why = program(name, "inf", ["stages = 2", "batch = %d" % ROWS, "microbatches = 2",
                                     "schedule = inference"])
    r = None
    if run:
        out = os.path.join(tmp, name + "-logits.npy")
        wout = os.path.join(tmp, name + "-out.safetensors")
        r = sh([run, "--weights-in", ckpt, "--input", pfile, "--output", out]
               + (["--weights-out", wout] if c["bias"] else []), timeout=900)
    ran = r is not None and r.returncode == 0
    if not t.ok(ran, "%s, 2 layers over 2 stages: the bf16 checkpoint of its real names and "
                "shapes loads and inference runs" % name):
        t.diag(why if r is None else "exit %d\n%s%s" % (r.returncode, r.stdout[-2000:],
                                                        r.stderr[-2000:]))
    if not t.ok(ran and not re.search(r"note|unused|missing|warning", r.stderr, re.I),
                "%s: no tensor missing, none left over (stderr says nothing)" % name):
        t.diag(r.stderr[-2000:] if r else "")
    got = np.load(out) if ran else None
    t.ok(got is not None and got.shape == (ROWS, T, c["vocab"]) and np.isfinite(got).all(),
         "%s: logits [%d, %d, %d], all finite (got %s)"
         % (name, ROWS, T, c["vocab"], None if got is None else got.shape))
    ref = [logits_last(c, W, prompts[b]) for b in range(ROWS)]
    if got is not None and got.shape == (ROWS, T, c["vocab"]):
        err = max(np.abs(got[b] - ref[b]).max() for b in range(ROWS))
        scale = max(np.abs(x).max() for x in ref)
        if not t.ok(err <= 5e-5, "%s: logits equal a float64 numpy Llama forward within 5e-5 "
                    "(max |diff| %.2e, max |logit| %.2f)" % (name, err, scale)):
            t.diag("row 0 position 0: got %s, want %s" % (got[0, 0, :5], ref[0][0, :5]))
    else:
        t.ok(False, "%s: logits equal a float64 numpy Llama forward" % name)

    # ---- the checkpoint written back: the same names, shapes and values ----
    if c["bias"] and ran:
        back = read_safetensors(wout)
        same = sorted(back) == sorted(W) and all(
            back[n][0] == list(W[n].shape) and np.array_equal(back[n][1], W[n]) for n in W)
        if not t.ok(same, "%s: --weights-out writes every tensor back under its name, shape "
                    "and value (f32; the bf16 values exactly)" % name):
            t.diag("names only here: %s; only there: %s"
                   % (sorted(set(back) - set(W))[:5], sorted(set(W) - set(back))[:5]))
        del back

    # ---- generation: a few greedy tokens through the caches ----
    run, why = program(name, "gen", ["stages = 2", "batch = %d" % ROWS, "microbatches = 2",
                                     "schedule = generate", "max_new_tokens = %d" % NEW,
                                     "sampling = greedy"])
    r = None
    if run:
        out = os.path.join(tmp, name + "-tokens.npy")
        r = sh([run, "--weights-in", ckpt, "--input", pfile, "--output", out], timeout=900)
    ran = r is not None and r.returncode == 0
    if not t.ok(ran, "%s: generation of %d tokens over 2 stages runs" % (name, NEW)):
        t.diag(why if r is None else "exit %d\n%s%s" % (r.returncode, r.stdout[-2000:],
                                                        r.stderr[-2000:]))
    toks = np.load(out) if ran else None
    same, compared = ran and toks.shape == (ROWS, T + NEW), 0
    for b in range(ROWS if same else 0):
        seq = list(prompts[b])
        for j in range(NEW):
            lg = logits_last(c, W, np.array(seq))[-1] if j else ref[b][-1]
            top = np.sort(lg)[-2:]
            if top[1] - top[0] < 1e-3:
                break           # a near-tie: float32 may choose either, stop here
            want = int(np.argmax(lg))
            if toks[b, T + j] != want:
                same = False
                t.diag("row %d token %d: got %d, the reference's greedy %d"
                       % (b, j, toks[b, T + j], want))
            compared += 1
            seq.append(want)
    t.ok(same and compared >= 2 and (toks[:, :T] == prompts).all(),
         "%s: the generated tokens are the reference's greedy choices (%d compared)"
         % (name, compared))

    # ---- a checkpoint that is not this model's: exit 1 naming the tensor ----
    if name == "qwen2-0.5b":
        run, _ = program(name, "inf", ["stages = 2", "batch = %d" % ROWS, "microbatches = 2",
                                       "schedule = inference"])
        k0 = "model.layers.1.self_attn.k_proj.weight"
        bad = os.path.join(tmp, "bad.safetensors")
        for what, kw, pattern in (
                ("without " + k0, dict(drop=(k0,)), re.escape(k0)),
                ("with a k_proj as wide as q (no GQA)",
                 dict(replace={k0: np.zeros((c["d"], c["d"]), np.float32)}),
                 re.escape(k0) + r".*128, 896|128, 896.*" + re.escape(k0))):
            write_bf16(bad, W, **kw)
            r = sh([run, "--weights-in", bad, "--input", pfile], timeout=900) if run else None
            if not t.ok(r is not None and r.returncode == 1 and re.search(pattern, r.stderr, re.S),
                        "%s: a checkpoint %s is exit 1 naming the tensor" % (name, what)):
                t.diag("" if r is None else "exit %d: %s" % (r.returncode, r.stderr[-1500:]))
    del W, ref

sys.exit(t.done())
