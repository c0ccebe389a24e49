#!/usr/bin/python3
"""llama_ref.py — float64 numpy reference of the runtime's Llama kernels (runtime/rt_llama.c).

    llama_ref.py --selftest          every backward below against central finite differences (TAP)
    llama_ref.py check DRIVER DIR    the self-test, then the C kernels (t/runtime-llama.c built
                                     as DRIVER, scratch files in DIR) against this reference (TAP)

Written from Hugging Face's modeling_llama.py / modeling_qwen2.py, not from rt_llama.c:
LlamaRMSNorm (x * rsqrt(mean(x^2) + eps) * weight), the rotary embedding in the rotate-half
convention (q * cos + rotate_half(q) * sin, rotate_half(x) = cat(-x2, x1), cos and sin of
inv_freq * position repeated over both halves), inv_freq = 1 / theta^(2i/dh) with Llama 3's
scaling (_compute_llama3_parameters: wavelengths above original/low_freq_factor divided by
factor, those between original/high_freq_factor and that blended), grouped-query attention
(repeat_kv: query head j reads key/value head j // (heads/kv_heads)), causal, future scores
replaced by finfo(float32).min and a padding mask added after as for GPT-2, SwiGLU
down(silu(gate(x)) * up(x)), biases on q, k, v only (Qwen2).  Every backward is derived by hand
and checked against central differences (h = 1e-6; see t/ref/tf_ref.py for the margin).

The C comparison (float32 kernels against float64): as t/ref/tf_ref.py argues, float32 rounding
through a few GEMMs of length <= 32, a softmax and two norms gives relative errors ~1e-6;
|c - ref| <= 1e-4 * max(1, max|ref|) per array is 100x that and far below what a wrong
formula, a wrong layout, a rotation by the wrong angle or the wrong key head gives (O(1e-1)).
The rotation's angle is a float32 product in the kernels (as in transformers) and a float64
one here: at the positions below (< 16) they differ by ~1e-6 radians.
"""
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402

from tf_ref import (MIN, Tap, numgrad, fd_ok, f32, Case as TfCase, close, softmax,  # noqa: E402
                    unflatten, flatten, nparams)


# ---- primitives ----

def inv_freq(dh, theta, scaling=None):
    """transformers' inv_freq in float64; scaling = (factor, low, high, original)."""
    inv = 1.0 / theta ** (np.arange(0, dh, 2, dtype=np.float64) / dh)
    if scaling is None:
        return inv
    factor, low, high, orig = scaling
    low_wl, high_wl = orig / low, orig / high
    wl = 2 * math.pi / inv
    out = np.where(wl > low_wl, inv / factor, inv)
    smooth = (orig / wl - low) / (high - low)
    smoothed = (1 - smooth) * out / factor + smooth * out
    medium = ~(wl < high_wl) & ~(wl > low_wl)
    return np.where(medium, smoothed, out)


def rope_cs(T, inv, pos0=0):
    ang = (pos0 + np.arange(T, dtype=np.float64))[:, None] * inv[None, :]
    return np.cos(ang), np.sin(ang)


def rope_fwd(x, heads, cs):
    """x [B, T, heads*dh]: each head's pairs (i, i + dh/2) turned."""
    B, T, w = x.shape
    dh = w // heads
    c, s = cs
    xh = x.reshape(B, T, heads, dh)
    x1, x2 = xh[..., :dh // 2], xh[..., dh // 2:]
    c, s = c[None, :, None, :], s[None, :, None, :]
    return np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], -1).reshape(B, T, w)


def rope_bwd(dy, heads, cs):
    c, s = cs
    return rope_fwd(dy, heads, (c, -s))         # the transpose: the opposite angle


def rmsnorm_fwd(x, w, eps):
    r = 1.0 / np.sqrt((x * x).mean(-1, keepdims=True) + eps)
    xh = x * r
    return xh * w, (xh, r, w)


def rmsnorm_bwd(cache, dy):
    xh, r, w = cache
    gh = dy * w
    dx = r * (gh - xh * (gh * xh).mean(-1, keepdims=True))
    return dx, (dy * xh).reshape(-1, xh.shape[-1]).sum(0)


def silu(z):
    return z / (1.0 + np.exp(-z))


def silu_grad(z):
    s = 1.0 / (1.0 + np.exp(-z))
    return s * (1.0 + z * (1.0 - s))


def gqa_fwd(q, k, v, heads, kv_heads, mask):
    """q [B, T, d], k and v [B, T, kvw]; causal; mask [B, T] or None."""
    B, T, d = q.shape
    dh = d // heads
    g = heads // kv_heads
    qh = q.reshape(B, T, heads, dh).transpose(0, 2, 1, 3)
    kh = np.repeat(k.reshape(B, T, kv_heads, dh).transpose(0, 2, 1, 3), g, axis=1)
    vh = np.repeat(v.reshape(B, T, kv_heads, dh).transpose(0, 2, 1, 3), g, axis=1)
    s = qh @ kh.transpose(0, 1, 3, 2) / math.sqrt(dh)
    future = np.triu(np.ones((T, T), bool), 1)
    s = np.where(future, MIN, s)
    if mask is not None:
        s = s + (1.0 - mask.astype(np.float64))[:, None, None, :] * MIN
    p = softmax(s)
    ctx = (p @ vh).transpose(0, 2, 1, 3).reshape(B, T, d)
    return ctx, (qh, kh, vh, p, future, dh, g, kv_heads)


def gqa_bwd(cache, dctx):
    qh, kh, vh, p, future, dh, g, kv_heads = cache
    B, heads, T, _ = qh.shape
    dch = dctx.reshape(B, T, heads, dh).transpose(0, 2, 1, 3)
    dp = dch @ vh.transpose(0, 1, 3, 2)
    dvh = p.transpose(0, 1, 3, 2) @ dch
    ds = p * (dp - (dp * p).sum(-1, keepdims=True))
    ds = np.where(future, 0.0, ds)
    dqh = ds @ kh / math.sqrt(dh)
    dkh = ds.transpose(0, 1, 3, 2) @ qh / math.sqrt(dh)

    def merge(a, n):
        return a.transpose(0, 2, 1, 3).reshape(B, T, n * dh)
    # repeat_kv's gradient: each key/value head sums its g query heads'
    dkh = dkh.reshape(B, kv_heads, g, T, dh).sum(2)
    dvh = dvh.reshape(B, kv_heads, g, T, dh).sum(2)
    return merge(dqh, heads), merge(dkh, kv_heads), merge(dvh, kv_heads)


# ---- llama_block: parameters in pipert.h's order, Hugging Face's names and layouts ----

def block_params(d, f, heads, kv_heads, qkv_bias):
    kvw = kv_heads * (d // heads)
    spec = [("input_layernorm.weight", (d,)), ("self_attn.q_proj.weight", (d, d)),
            ("self_attn.k_proj.weight", (kvw, d)), ("self_attn.v_proj.weight", (kvw, d))]
    if qkv_bias:
        spec += [("self_attn.q_proj.bias", (d,)), ("self_attn.k_proj.bias", (kvw,)),
                 ("self_attn.v_proj.bias", (kvw,))]
    return spec + [("self_attn.o_proj.weight", (d, d)), ("post_attention_layernorm.weight", (d,)),
                   ("mlp.gate_proj.weight", (f, d)), ("mlp.up_proj.weight", (f, d)),
                   ("mlp.down_proj.weight", (d, f))]


class Cfg:
    def __init__(self, d, heads, kv_heads, ffn, eps=1e-6, theta=10000.0, qkv_bias=False,
                 scaling=None):
        self.d, self.heads, self.kv_heads, self.ffn = d, heads, kv_heads, ffn
        self.eps, self.theta, self.qkv_bias, self.scaling = eps, theta, qkv_bias, scaling
        self.inv = inv_freq(d // heads, theta, scaling)


def lin(x, P, name):
    y = x @ P[name + ".weight"].T
    return y + P[name + ".bias"] if name + ".bias" in P else y


def lin_bwd(x, P, name, dy, G):
    x2, d2 = x.reshape(-1, x.shape[-1]), dy.reshape(-1, dy.shape[-1])
    G[name + ".weight"] = d2.T @ x2
    if name + ".bias" in P:
        G[name + ".bias"] = d2.sum(0)
    return dy @ P[name + ".weight"]


def block_fwd(P, x, mask, c):
    T = x.shape[1]
    cs = rope_cs(T, c.inv)
    h0, n1 = rmsnorm_fwd(x, P["input_layernorm.weight"], c.eps)
    q = rope_fwd(lin(h0, P, "self_attn.q_proj"), c.heads, cs)
    k = rope_fwd(lin(h0, P, "self_attn.k_proj"), c.kv_heads, cs)
    v = lin(h0, P, "self_attn.v_proj")
    ctx, ac = gqa_fwd(q, k, v, c.heads, c.kv_heads, mask)
    h1 = x + lin(ctx, P, "self_attn.o_proj")
    h2, n2 = rmsnorm_fwd(h1, P["post_attention_layernorm.weight"], c.eps)
    gt, up = lin(h2, P, "mlp.gate_proj"), lin(h2, P, "mlp.up_proj")
    a = silu(gt) * up
    y = h1 + lin(a, P, "mlp.down_proj")
    return y, (P, x, c, cs, h0, n1, ac, ctx, h2, n2, gt, up, a)


def block_bwd(cache, dy):
    P, x, c, cs, h0, n1, ac, ctx, h2, n2, gt, up, a = cache
    G = {}
    da = lin_bwd(a, P, "mlp.down_proj", dy, G)
    dh2 = (lin_bwd(h2, P, "mlp.gate_proj", da * up * silu_grad(gt), G)
           + lin_bwd(h2, P, "mlp.up_proj", da * silu(gt), G))
    dn2, G["post_attention_layernorm.weight"] = rmsnorm_bwd(n2, dh2)
    dh1 = dy + dn2
    dctx = lin_bwd(ctx, P, "self_attn.o_proj", dh1, G)
    dq, dk, dv = gqa_bwd(ac, dctx)
    dh0 = (lin_bwd(h0, P, "self_attn.q_proj", rope_bwd(dq, c.heads, cs), G)
           + lin_bwd(h0, P, "self_attn.k_proj", rope_bwd(dk, c.kv_heads, cs), G)
           + lin_bwd(h0, P, "self_attn.v_proj", dv, G))
    dn1, G["input_layernorm.weight"] = rmsnorm_bwd(n1, dh0)
    return dh1 + dn1, G


# ---- self-test ----

def selftest(tap):
    rng = np.random.default_rng(11)
    B, T = 2, 5

    # inv_freq: the plain formula, and each of Llama 3's three bands
    inv = inv_freq(8, 10000.0)
    tap.ok(np.allclose(inv, [1, 0.1, 0.01, 0.001], rtol=1e-14, atol=0),
           "reference inv_freq: 1/theta^(2i/dh)")
    sc = inv_freq(8, 10000.0, (8.0, 1.0, 4.0, 64))
    # wavelengths 6.3, 63, 628, 6283 against 64/4 = 16 and 64/1 = 64
    sm = (64 / (2 * math.pi / 0.1) - 1) / 3
    tap.ok(abs(sc[0] - 1) < 1e-15 and abs(sc[1] - ((1 - sm) * 0.1 / 8 + sm * 0.1)) < 1e-15
           and np.allclose(sc[2:], [0.01 / 8, 0.001 / 8], rtol=1e-14, atol=0),
           "reference llama3 scaling: high frequencies kept, the middle blended, low ones / factor")

    x = rng.normal(size=(B, T, 12))
    w = 1 + 0.1 * rng.normal(size=12)
    r = rng.normal(size=(B, T, 12))
    cache = rmsnorm_fwd(x, w, 1e-6)[1]
    dx, dw = rmsnorm_bwd(cache, r)
    fd_ok(tap, "reference rmsnorm: dx", dx, numgrad(lambda: (rmsnorm_fwd(x, w, 1e-6)[0] * r).sum(), x))
    fd_ok(tap, "reference rmsnorm: dweight", dw, numgrad(lambda: (rmsnorm_fwd(x, w, 1e-6)[0] * r).sum(), w))

    cs = rope_cs(T, inv_freq(4, 10000.0))
    xr = rng.normal(size=(B, T, 8))
    rr = rng.normal(size=(B, T, 8))
    y = rope_fwd(xr, 2, cs)
    tap.ok(np.allclose(np.linalg.norm(y.reshape(B, T, 2, 2, 2), axis=3),
                       np.linalg.norm(xr.reshape(B, T, 2, 2, 2), axis=3), atol=1e-12)
           and np.allclose(y[:, 0], xr[:, 0], atol=0),
           "reference rope: a rotation of each pair (i, i + dh/2), none at position 0")
    fd_ok(tap, "reference rope backward", rope_bwd(rr, 2, cs), numgrad(lambda: (rope_fwd(xr, 2, cs) * rr).sum(), xr))
    # q·k after the rotation depends on the positions' difference only (RoPE's point)
    q1, k1 = rng.normal(size=(1, 1, 4)), rng.normal(size=(1, 1, 4))
    inv4 = inv_freq(4, 10000.0)
    dots = [(rope_fwd(q1, 1, rope_cs(1, inv4, p + 3)) * rope_fwd(k1, 1, rope_cs(1, inv4, p))).sum()
            for p in (0, 5, 11)]
    tap.ok(max(dots) - min(dots) < 1e-12, "reference rope: scores depend on relative positions only")

    pad = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], np.int32)
    for heads, kv_heads, mask in ((4, 2, None), (4, 1, pad), (2, 2, None)):
        d = 8
        kvw = kv_heads * d // heads
        q = rng.normal(size=(B, T, d))
        k, v = rng.normal(size=(B, T, kvw)), rng.normal(size=(B, T, kvw))
        rc = rng.normal(size=(B, T, d))

        def L():
            return (gqa_fwd(q, k, v, heads, kv_heads, mask)[0] * rc).sum()
        dq, dk, dv = gqa_bwd(gqa_fwd(q, k, v, heads, kv_heads, mask)[1], rc)
        for name, an, arr in (("dq", dq, q), ("dk", dk, k), ("dv", dv, v)):
            fd_ok(tap, "reference attention (%d heads, %d kv heads%s): %s"
                  % (heads, kv_heads, ", padding" if mask is not None else "", name), an, numgrad(L, arr))
    # GQA equals multi-head attention with the key/value heads repeated
    q = rng.normal(size=(B, T, 8))
    k, v = rng.normal(size=(B, T, 4)), rng.normal(size=(B, T, 4))
    rep = np.repeat(k.reshape(B, T, 2, 2), 2, axis=2).reshape(B, T, 8)
    repv = np.repeat(v.reshape(B, T, 2, 2), 2, axis=2).reshape(B, T, 8)
    tap.ok(np.abs(gqa_fwd(q, k, v, 4, 2, None)[0] - gqa_fwd(q, rep, repv, 4, 4, None)[0]).max() < 1e-14,
           "reference attention: 2 kv heads for 4 query heads = 4 heads with each kv head twice")

    for c in (Cfg(8, 4, 2, 12, qkv_bias=True, scaling=(8.0, 1.0, 4.0, 8)), Cfg(8, 2, 2, 12)):
        spec = block_params(c.d, c.ffn, c.heads, c.kv_heads, c.qkv_bias)
        flat = rng.normal(size=nparams(spec)) * 0.3
        P = unflatten(spec, flat)
        for name in ("input_layernorm.weight", "post_attention_layernorm.weight"):
            P[name][:] = 1 + 0.1 * rng.normal(size=c.d)
        x = rng.normal(size=(B, T, c.d))
        rc = rng.normal(size=(B, T, c.d))

        def L():
            return (block_fwd(P, x, None, c)[0] * rc).sum()
        dx, G = block_bwd(block_fwd(P, x, None, c)[1], rc)
        what = "llama_block (%d heads, %d kv heads%s)" % (c.heads, c.kv_heads, ", qkv bias, llama3" if c.qkv_bias else "")
        fd_ok(tap, "reference %s: dx" % what, dx, numgrad(L, x))
        num = numgrad(L, flat)
        bad = [name for name, _ in spec
               if np.abs(G[name] - unflatten(spec, num)[name]).max() > 1e-6 * max(np.abs(num).max(), 1e-3)]
        fd_ok(tap, "reference %s: every parameter's gradient%s" % (what, " (wrong: %s)" % ", ".join(bad) if bad else ""),
              flatten(spec, G), num)


# ---- the C kernels against the reference ----

class Case(TfCase):
    def __init__(self, driver, root, name, kind, B, T, c, vocab=0, mask=None):
        TfCase.__init__(self, driver, root, name, kind, B, T)
        sc = c.scaling or (0, 0, 0, 0)
        self.args = [driver, kind, self.dir] + [str(v) for v in (
            B, T, c.d, c.heads, c.kv_heads, c.ffn, repr(c.eps), repr(c.theta), int(c.qkv_bias),
            repr(sc[0]), repr(sc[1]), repr(sc[2]), sc[3], vocab, int(mask is not None))]


def check_block(tap, driver, root, rng, B, T, c, mask, label):
    spec = block_params(c.d, c.ffn, c.heads, c.kv_heads, c.qkv_bias)
    name = "llama_block B=%d T=%d d=%d heads=%d kv_heads=%d, %s" % (B, T, c.d, c.heads, c.kv_heads, label)
    case = Case(driver, root, "block-%d-%d-%d-%d-%d-%s" % (B, T, c.d, c.heads, c.kv_heads,
                                                           "".join(ch for ch in label if ch.isalnum())),
                "llama_block", B, T, c, mask=mask)
    case.name = name
    P = {}
    for pname, shape in spec:
        if pname.endswith("layernorm.weight"):
            a = 1 + 0.1 * rng.normal(size=shape)
        else:
            a = rng.normal(size=shape) * (0.3 if len(shape) == 2 else 0.1)
        P[pname] = f32(a).astype(np.float64)
    x = f32(rng.normal(size=(B, T, c.d))).astype(np.float64)
    dy = f32(rng.normal(size=(B, T, c.d))).astype(np.float64)
    g0 = f32(rng.normal(size=nparams(spec)))
    case.put("w", f32(flatten(spec, P)))
    case.put("x", f32(x))
    case.put("dy", f32(dy))
    case.put("g0", g0)
    if mask is not None:
        case.put("mask", np.ascontiguousarray(mask, np.int32))
    if not case.run(tap):
        return
    y, cache = block_fwd(P, x, mask, c)
    dx, G = block_bwd(cache, dy)
    close(tap, "%s: forward" % name, case.get("y"), y)
    if mask is None:
        close(tap, "%s: a prefill then one position at a time through the key/value cache" % name,
              case.get("ykv"), y)
    close(tap, "%s: input gradient" % name, case.get("dx"), dx)
    got = unflatten(spec, case.get("g") - g0.astype(np.float64))
    for pname, _ in spec:
        close(tap, "%s: gradient of %s (accumulated)" % (name, pname), got[pname], G[pname])


def check_c(tap, driver, root):
    rng = np.random.default_rng(2025)
    llama3 = (8.0, 1.0, 4.0, 64)
    # GQA with Llama 3's scaling at rope_theta 500000; head size 8: wavelengths 6.3,
    # 167, 4.4e3, 1.2e5 against 64/4 and 64/1 (one blended, two divided)
    check_block(tap, driver, root, rng, 3, 7, Cfg(32, 4, 2, 24, 1e-5, 500000.0, False, llama3),
                None, "GQA, rope_theta 500000, llama3 scaling")
    # Qwen2-like: q, k, v biases, one key/value head for all
    check_block(tap, driver, root, rng, 2, 6, Cfg(24, 3, 1, 16, 1e-6, 1000000.0, True),
                None, "MQA, qkv bias, rope_theta 1e6")
    # multi-head (kv_heads = heads) at theta 10000 with all three llama3 bands
    check_block(tap, driver, root, rng, 2, 9, Cfg(16, 2, 2, 20, 1e-6, 10000.0, False, llama3),
                None, "kv_heads = heads, llama3 scaling")
    check_block(tap, driver, root, rng, 3, 5, Cfg(16, 4, 2, 12, 1e-6, 10000.0, True),
                np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], np.int32),
                "GQA, padding of 0, 2 and 4 tokens")
    check_block(tap, driver, root, rng, 2, 1, Cfg(16, 4, 2, 12), None, "one position")

    for c in (Cfg(64, 2, 2, 1, theta=10000.0), Cfg(128, 2, 2, 1, theta=500000.0, scaling=(32.0, 1.0, 4.0, 8192)),
              Cfg(64, 1, 1, 1, theta=1000000.0, scaling=(8.0, 1.0, 4.0, 8192))):
        case = Case(driver, root, "inv_freq-%d-%g" % (c.d // c.heads, c.theta), "inv_freq", 1, 1, c)
        case.name = "inv_freq dh=%d theta=%g%s" % (c.d // c.heads, c.theta, ", llama3 scaling" if c.scaling else "")
        if case.run(tap):
            close(tap, "%s: equals the float64 formula within float32 rounding" % case.name,
                  case.get("inv") / c.inv, np.ones_like(c.inv), 1e-6)

    c = Cfg(12, 1, 1, 1, eps=1e-5)
    B, T = 3, 4
    x = f32(rng.normal(size=(B, T, c.d)) * np.array([1, 100, 1e-3])[:, None, None]).astype(np.float64)
    w = f32(1 + 0.1 * rng.normal(size=c.d)).astype(np.float64)
    dy = f32(rng.normal(size=(B, T, c.d))).astype(np.float64)
    g0 = f32(rng.normal(size=c.d))
    case = Case(driver, root, "rmsnorm", "rmsnorm", B, T, c)
    case.name = "rmsnorm rows of scale 1, 100 and 1e-3 (eps 1e-5)"
    for n, a in (("x", f32(x)), ("w", f32(w)), ("dy", f32(dy)), ("g0", g0)):
        case.put(n, a)
    if case.run(tap):
        y, cache = rmsnorm_fwd(x, w, c.eps)
        dx, dw = rmsnorm_bwd(cache, dy)
        close(tap, "%s: forward" % case.name, case.get("y"), y)
        got = case.get("dx").reshape(B, T, c.d)
        for b in range(B):      # the rows' gradients differ by 1e5 in scale: each its own
            close(tap, "%s: input gradient, sample %d" % (case.name, b), got[b], dx[b])
        close(tap, "%s: weight gradient (accumulated)" % case.name, case.get("g") - g0, dw)

    c = Cfg(8, 1, 1, 1)
    B, T, vocab = 3, 5, 11
    ids = rng.integers(0, vocab, size=(B, T)).astype(np.int32)
    ids[1, 1:4] = 7                                 # a repeated id: the scatter adds
    wt = f32(rng.normal(size=(vocab, c.d))).astype(np.float64)
    dy = f32(rng.normal(size=(B, T, c.d))).astype(np.float64)
    g0 = f32(rng.normal(size=(vocab, c.d)))
    case = Case(driver, root, "llama_emb", "llama_emb", B, T, c, vocab)
    case.name = "llama_emb B=%d T=%d d=%d" % (B, T, c.d)
    for n, a in (("w", f32(wt)), ("dy", f32(dy)), ("g0", g0), ("ids", ids)):
        case.put(n, a)
    if case.run(tap):
        G = np.zeros_like(wt)
        np.add.at(G, ids, dy)
        close(tap, "%s: forward" % case.name, case.get("y"), wt[ids])
        close(tap, "%s: gradient of embed_tokens.weight (accumulated)" % case.name,
              case.get("g") - g0.reshape(-1), G)


def main(argv):
    tap = Tap()
    if len(argv) == 2 and argv[1] == "--selftest":
        selftest(tap)
        return tap.done()
    if len(argv) == 4 and argv[1] == "check":
        selftest(tap)
        check_c(tap, argv[2], argv[3])
        return tap.done()
    sys.stderr.write("usage: llama_ref.py --selftest | check DRIVER DIR\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
