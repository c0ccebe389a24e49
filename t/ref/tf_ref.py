#!/usr/bin/python3
"""tf_ref.py — float64 numpy reference of the runtime's transformer kernels (runtime/rt_tf.c).

    tf_ref.py --selftest          every backward below against central finite differences (TAP)
    tf_ref.py check DRIVER DIR    the self-test, then the C kernels (t/runtime-tf.c built as
                                  DRIVER, scratch files in DIR) against this reference (TAP)

Written from Hugging Face's definitions, not from rt_tf.c: BertLayer (post-layernorm, erf gelu,
the extended attention mask (1 - mask) * finfo(float32).min added to the scores), GPT2Block
(pre-layernorm, tanh gelu, Conv1D weights [in, out], future keys' scores replaced by finfo.min
with torch.where and the padding mask added after), the two embeddings, sentence-transformers'
mean pooling, F.normalize and the next-token cross-entropy.  Every backward is derived by hand
and checked here against central differences in float64 (h = 1e-6: truncation ~1e-12,
cancellation ~1e-10, so 1e-6 relative to the largest gradient leaves a wide margin and still
catches any wrong term).  Attention rows whose every key is masked are left out of the
finite differences: their scores sit at -3.4e38, where float64 cannot see a change of 1e-6,
so the differences read 0 where autograd (and the kernels) pass the gradient on.

The C comparison (float32 kernels against float64): one value passes through a few GEMMs of
length <= 16, a softmax and two layernorms; float32 rounding gives relative errors ~1e-6 there,
so |c - ref| <= 1e-4 * max(1, max|ref|) per array is 100x the expected error and far below
what a wrong formula, a wrong layout or a lost mask gives (O(1e-1)).
"""
import math
import os
import subprocess
import sys

import numpy as np

MIN = float(np.finfo(np.float32).min)   # transformers' mask value in float32 models


# ---- primitives: each forward returns (output, cache); backward takes the cache ----

def layernorm_fwd(x, g, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    rstd = 1.0 / np.sqrt(var + eps)
    xh = (x - mu) * rstd
    return xh * g + b, (xh, rstd, g)


def layernorm_bwd(cache, dy):
    xh, rstd, g = cache
    dxh = dy * g
    dx = rstd * (dxh - dxh.mean(-1, keepdims=True) - xh * (dxh * xh).mean(-1, keepdims=True))
    red = tuple(range(dy.ndim - 1))
    return dx, (dy * xh).sum(red), dy.sum(red)


_erf = np.vectorize(math.erf, otypes=[np.float64])


def gelu_erf_fwd(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def gelu_erf_bwd(x, dy):
    cdf = 0.5 * (1.0 + _erf(x / math.sqrt(2.0)))
    pdf = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    return dy * (cdf + x * pdf)


GK = math.sqrt(2.0 / math.pi)


def gelu_tanh_fwd(x):
    return 0.5 * x * (1.0 + np.tanh(GK * (x + 0.044715 * x ** 3)))


def gelu_tanh_bwd(x, dy):
    t = np.tanh(GK * (x + 0.044715 * x ** 3))
    return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GK * (1.0 + 3 * 0.044715 * x * x))


def linear_fwd(x, w, b):            # nn.Linear: w [out, in]
    return x @ w.T + b


def linear_bwd(x, w, dy):
    x2, d2 = x.reshape(-1, x.shape[-1]), dy.reshape(-1, dy.shape[-1])
    return dy @ w, d2.T @ x2, d2.sum(0)


def conv1d_fwd(x, w, b):            # transformers' Conv1D: w [in, out]
    return x @ w + b


def conv1d_bwd(x, w, dy):
    x2, d2 = x.reshape(-1, x.shape[-1]), dy.reshape(-1, dy.shape[-1])
    return dy @ w.T, x2.T @ d2, d2.sum(0)


def softmax(s):
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def attention_fwd(q, k, v, heads, mask, causal):
    """q, k, v [B, T, d]; mask [B, T] (1 = token) or None."""
    B, T, d = q.shape
    dh = d // heads

    def split(a):
        return a.reshape(B, T, heads, dh).transpose(0, 2, 1, 3)
    qh, kh, vh = split(q), split(k), split(v)
    s = qh @ kh.transpose(0, 1, 3, 2) / math.sqrt(dh)
    future = np.triu(np.ones((T, T), bool), 1)
    if causal:
        s = np.where(future, MIN, s)
    if mask is not None:
        s = s + (1.0 - mask.astype(np.float64))[:, None, None, :] * MIN
    p = softmax(s)
    ctx = (p @ vh).transpose(0, 2, 1, 3).reshape(B, T, d)
    return ctx, (qh, kh, vh, p, future if causal else None, dh)


def attention_bwd(cache, dctx):
    qh, kh, vh, p, future, dh = cache
    B, heads, T, _ = qh.shape
    dch = dctx.reshape(B, T, heads, dh).transpose(0, 2, 1, 3)
    dp = dch @ vh.transpose(0, 1, 3, 2)
    dvh = p.transpose(0, 1, 3, 2) @ dch
    ds = p * (dp - (dp * p).sum(-1, keepdims=True))
    if future is not None:
        ds = np.where(future, 0.0, ds)      # torch.where: nothing flows to a replaced score
    dqh = ds @ kh / math.sqrt(dh)
    dkh = ds.transpose(0, 1, 3, 2) @ qh / math.sqrt(dh)

    def merge(a):
        return a.transpose(0, 2, 1, 3).reshape(B, T, heads * dh)
    return merge(dqh), merge(dkh), merge(dvh)


# ---- parameters, in pipert.h's order and Hugging Face's layouts ----

def bert_layer_params(d, f):
    return [("attention.self.query.weight", (d, d)), ("attention.self.query.bias", (d,)),
            ("attention.self.key.weight", (d, d)), ("attention.self.key.bias", (d,)),
            ("attention.self.value.weight", (d, d)), ("attention.self.value.bias", (d,)),
            ("attention.output.dense.weight", (d, d)), ("attention.output.dense.bias", (d,)),
            ("attention.output.LayerNorm.weight", (d,)), ("attention.output.LayerNorm.bias", (d,)),
            ("intermediate.dense.weight", (f, d)), ("intermediate.dense.bias", (f,)),
            ("output.dense.weight", (d, f)), ("output.dense.bias", (d,)),
            ("output.LayerNorm.weight", (d,)), ("output.LayerNorm.bias", (d,))]


def gpt2_block_params(d, f):
    return [("ln_1.weight", (d,)), ("ln_1.bias", (d,)),
            ("attn.c_attn.weight", (d, 3 * d)), ("attn.c_attn.bias", (3 * d,)),
            ("attn.c_proj.weight", (d, d)), ("attn.c_proj.bias", (d,)),
            ("ln_2.weight", (d,)), ("ln_2.bias", (d,)),
            ("mlp.c_fc.weight", (d, f)), ("mlp.c_fc.bias", (f,)),
            ("mlp.c_proj.weight", (f, d)), ("mlp.c_proj.bias", (d,))]


def bert_emb_params(d, vocab, positions, types):
    return [("word_embeddings.weight", (vocab, d)), ("position_embeddings.weight", (positions, d)),
            ("token_type_embeddings.weight", (types, d)), ("LayerNorm.weight", (d,)),
            ("LayerNorm.bias", (d,))]


def gpt2_emb_params(d, vocab, positions):
    return [("wte.weight", (vocab, d)), ("wpe.weight", (positions, d))]


def unflatten(spec, flat):
    out, o = {}, 0
    for name, shape in spec:
        n = int(np.prod(shape))
        out[name] = flat[o:o + n].reshape(shape)
        o += n
    assert o == flat.size, (o, flat.size)
    return out


def flatten(spec, grads):
    return np.concatenate([grads[name].reshape(-1) for name, _ in spec])


def nparams(spec):
    return sum(int(np.prod(s)) for _, s in spec)


# ---- layers: forward (y, cache); backward (dx, {name: grad}) ----

def bert_layer_fwd(P, x, mask, heads, eps):
    q = linear_fwd(x, P["attention.self.query.weight"], P["attention.self.query.bias"])
    k = linear_fwd(x, P["attention.self.key.weight"], P["attention.self.key.bias"])
    v = linear_fwd(x, P["attention.self.value.weight"], P["attention.self.value.bias"])
    ctx, ac = attention_fwd(q, k, v, heads, mask, False)
    ao = linear_fwd(ctx, P["attention.output.dense.weight"], P["attention.output.dense.bias"])
    a, l1 = layernorm_fwd(x + ao, P["attention.output.LayerNorm.weight"],
                          P["attention.output.LayerNorm.bias"], eps)
    hp = linear_fwd(a, P["intermediate.dense.weight"], P["intermediate.dense.bias"])
    ha = gelu_erf_fwd(hp)
    o = linear_fwd(ha, P["output.dense.weight"], P["output.dense.bias"])
    y, l2 = layernorm_fwd(a + o, P["output.LayerNorm.weight"], P["output.LayerNorm.bias"], eps)
    return y, (P, x, ac, ctx, l1, a, hp, ha, l2)


def bert_layer_bwd(cache, dy):
    P, x, ac, ctx, l1, a, hp, ha, l2 = cache
    G = {}
    dr2, G["output.LayerNorm.weight"], G["output.LayerNorm.bias"] = layernorm_bwd(l2, dy)
    dha, G["output.dense.weight"], G["output.dense.bias"] = linear_bwd(ha, P["output.dense.weight"], dr2)
    dhp = gelu_erf_bwd(hp, dha)
    da, G["intermediate.dense.weight"], G["intermediate.dense.bias"] = linear_bwd(
        a, P["intermediate.dense.weight"], dhp)
    da = da + dr2
    dr1, G["attention.output.LayerNorm.weight"], G["attention.output.LayerNorm.bias"] = \
        layernorm_bwd(l1, da)
    dctx, G["attention.output.dense.weight"], G["attention.output.dense.bias"] = linear_bwd(
        ctx, P["attention.output.dense.weight"], dr1)
    dq, dk, dv = attention_bwd(ac, dctx)
    dx = dr1
    for name, dz in (("query", dq), ("key", dk), ("value", dv)):
        dxi, G["attention.self.%s.weight" % name], G["attention.self.%s.bias" % name] = linear_bwd(
            x, P["attention.self.%s.weight" % name], dz)
        dx = dx + dxi
    return dx, G


def gpt2_block_fwd(P, x, mask, heads, eps):
    d = x.shape[-1]
    h0, l1 = layernorm_fwd(x, P["ln_1.weight"], P["ln_1.bias"], eps)
    qkv = conv1d_fwd(h0, P["attn.c_attn.weight"], P["attn.c_attn.bias"])
    ctx, ac = attention_fwd(qkv[..., :d], qkv[..., d:2 * d], qkv[..., 2 * d:], heads, mask, True)
    h1 = x + conv1d_fwd(ctx, P["attn.c_proj.weight"], P["attn.c_proj.bias"])
    h2, l2 = layernorm_fwd(h1, P["ln_2.weight"], P["ln_2.bias"], eps)
    f1 = conv1d_fwd(h2, P["mlp.c_fc.weight"], P["mlp.c_fc.bias"])
    g1 = gelu_tanh_fwd(f1)
    y = h1 + conv1d_fwd(g1, P["mlp.c_proj.weight"], P["mlp.c_proj.bias"])
    return y, (P, l1, h0, ac, ctx, l2, h2, f1, g1)


def gpt2_block_bwd(cache, dy):
    P, l1, h0, ac, ctx, l2, h2, f1, g1 = cache
    G = {}
    dg1, G["mlp.c_proj.weight"], G["mlp.c_proj.bias"] = conv1d_bwd(g1, P["mlp.c_proj.weight"], dy)
    df1 = gelu_tanh_bwd(f1, dg1)
    dh2, G["mlp.c_fc.weight"], G["mlp.c_fc.bias"] = conv1d_bwd(h2, P["mlp.c_fc.weight"], df1)
    dln2, G["ln_2.weight"], G["ln_2.bias"] = layernorm_bwd(l2, dh2)
    dh1 = dy + dln2
    dctx, G["attn.c_proj.weight"], G["attn.c_proj.bias"] = conv1d_bwd(ctx, P["attn.c_proj.weight"], dh1)
    dqkv = np.concatenate(attention_bwd(ac, dctx), -1)
    dh0, G["attn.c_attn.weight"], G["attn.c_attn.bias"] = conv1d_bwd(h0, P["attn.c_attn.weight"], dqkv)
    dln1, G["ln_1.weight"], G["ln_1.bias"] = layernorm_bwd(l1, dh0)
    return dh1 + dln1, G


def bert_emb_fwd(P, ids, types, eps):
    B, T = ids.shape
    tt = np.zeros_like(ids) if types is None else types
    e = (P["word_embeddings.weight"][ids] + P["position_embeddings.weight"][np.arange(T)][None]
         + P["token_type_embeddings.weight"][tt])
    y, ln = layernorm_fwd(e, P["LayerNorm.weight"], P["LayerNorm.bias"], eps)
    return y, (P, ids, tt, ln)


def bert_emb_bwd(cache, dy):
    P, ids, tt, ln = cache
    T = ids.shape[1]
    G = {name: np.zeros_like(v) for name, v in P.items()}
    de, G["LayerNorm.weight"], G["LayerNorm.bias"] = layernorm_bwd(ln, dy)
    np.add.at(G["word_embeddings.weight"], ids, de)
    np.add.at(G["position_embeddings.weight"], np.broadcast_to(np.arange(T), ids.shape), de)
    np.add.at(G["token_type_embeddings.weight"], tt, de)
    return G


def gpt2_emb_fwd(P, ids):
    T = ids.shape[1]
    return P["wte.weight"][ids] + P["wpe.weight"][np.arange(T)][None]


def gpt2_emb_bwd(P, ids, dy):
    T = ids.shape[1]
    G = {name: np.zeros_like(v) for name, v in P.items()}
    np.add.at(G["wte.weight"], ids, dy)
    np.add.at(G["wpe.weight"], np.broadcast_to(np.arange(T), ids.shape), dy)
    return G


def mean_pool_fwd(x, mask):
    m = np.ones(x.shape[:2]) if mask is None else mask.astype(np.float64)
    cnt = np.maximum(m.sum(1), 1e-9)
    return (x * m[..., None]).sum(1) / cnt[:, None]


def mean_pool_bwd(x_shape, mask, dy):
    m = np.ones(x_shape[:2]) if mask is None else mask.astype(np.float64)
    cnt = np.maximum(m.sum(1), 1e-9)
    return dy[:, None, :] * m[..., None] / cnt[:, None, None]


def l2_normalize_fwd(x):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def l2_normalize_bwd(x, dy):
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    inner = dy / np.maximum(n, 1e-12) - x * (x * dy).sum(-1, keepdims=True) / np.maximum(n, 1e-12) ** 3
    return np.where(n > 1e-12, inner, dy / 1e-12)


def next_token_loss(logits, ids, scale):
    """(loss sum, dlogits = scale * d(sum)/dlogits)."""
    B, T, V = logits.shape
    if T < 2:
        return 0.0, np.zeros_like(logits)
    z = logits[:, :T - 1]
    tgt = ids[:, 1:]
    mx = z.max(-1, keepdims=True)
    lse = mx[..., 0] + np.log(np.exp(z - mx).sum(-1))
    pick = np.take_along_axis(z, tgt[..., None], -1)[..., 0]
    d = np.zeros_like(logits)
    p = np.exp(z - lse[..., None])
    np.put_along_axis(p, tgt[..., None], np.take_along_axis(p, tgt[..., None], -1) - 1.0, -1)
    d[:, :T - 1] = p * scale
    return float((lse - pick).sum()), d


# ---- TAP ----

class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, desc, diag=None):
        self.n += 1
        print("%s %d - %s" % ("ok" if cond else "not ok", self.n, desc))
        if not cond:
            self.failed += 1
            if diag:
                for line in str(diag).splitlines():
                    print("#   " + line)
        sys.stdout.flush()
        return cond

    def done(self):
        print("1..%d" % self.n)
        return 1 if self.failed else 0


# ---- self-test: every backward against central differences ----

def numgrad(loss, a, h=1e-6):
    g = np.zeros_like(a)
    flat, gf = a.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        keep = flat[i]
        flat[i] = keep + h
        lp = loss()
        flat[i] = keep - h
        lm = loss()
        flat[i] = keep
        gf[i] = (lp - lm) / (2 * h)
    return g


def fd_ok(tap, desc, analytic, numeric):
    err = np.abs(analytic - numeric).max()
    scale = max(np.abs(numeric).max(), 1e-3)
    return tap.ok(err <= 1e-6 * scale and np.abs(analytic).max() > 0, desc,
                  "max |analytic - numeric| = %.3g, max |numeric| = %.3g" % (err, scale))


def selftest(tap):
    rng = np.random.default_rng(7)
    B, T, d, heads, f = 2, 5, 8, 2, 16
    pad = np.array([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], np.int32)

    x = rng.normal(size=(B, T, d))
    g, b = 1 + 0.1 * rng.normal(size=d), 0.1 * rng.normal(size=d)
    r = rng.normal(size=(B, T, d))
    y, c = layernorm_fwd(x, g, b, 1e-5)
    dx, dg, db = layernorm_bwd(c, r)
    fd_ok(tap, "reference layernorm: dx", dx, numgrad(lambda: (layernorm_fwd(x, g, b, 1e-5)[0] * r).sum(), x))
    fd_ok(tap, "reference layernorm: dgamma", dg, numgrad(lambda: (layernorm_fwd(x, g, b, 1e-5)[0] * r).sum(), g))
    fd_ok(tap, "reference layernorm: dbeta", db, numgrad(lambda: (layernorm_fwd(x, g, b, 1e-5)[0] * r).sum(), b))

    z = rng.uniform(-4, 4, size=40)
    rz = rng.normal(size=40)
    fd_ok(tap, "reference gelu (erf) backward", gelu_erf_bwd(z, rz), numgrad(lambda: (gelu_erf_fwd(z) * rz).sum(), z))
    fd_ok(tap, "reference gelu (tanh) backward", gelu_tanh_bwd(z, rz), numgrad(lambda: (gelu_tanh_fwd(z) * rz).sum(), z))
    tap.ok(np.abs(gelu_tanh_fwd(z) - gelu_erf_fwd(z)).max() < 1e-2 and np.abs(gelu_erf_fwd(np.array([1.0]))[0] - 0.8413447460685429) < 1e-12,
           "reference gelu: erf form at 1 is Φ(1), the tanh form is within 1e-2 of it")

    for causal, mask, what in ((False, pad, "padding mask"), (True, None, "causal"),
                               (True, pad, "causal and padding mask"), (False, None, "no mask")):
        q, k, v = (rng.normal(size=(B, T, d)) for _ in range(3))
        rc = rng.normal(size=(B, T, d))

        def L():
            return (attention_fwd(q, k, v, heads, mask, causal)[0] * rc).sum()
        ctx, c = attention_fwd(q, k, v, heads, mask, causal)
        dq, dk, dv = attention_bwd(c, rc)
        for name, an, arr in (("dq", dq, q), ("dk", dk, k), ("dv", dv, v)):
            fd_ok(tap, "reference attention (%s): %s" % (what, name), an, numgrad(L, arr))
    # Masked keys get no weight: the padded positions of a sample do not change its context.
    q, k, v = (rng.normal(size=(B, T, d)) for _ in range(3))
    c1 = attention_fwd(q, k, v, heads, pad, False)[0]
    v2 = v.copy()
    v2[pad == 0] += 10.0
    k2 = k.copy()
    k2[pad == 0] -= 3.0
    c2 = attention_fwd(q, k2, v2, heads, pad, False)[0]
    c3 = attention_fwd(q, k, v2, heads, None, True)[0]
    c4 = attention_fwd(q, k, v, heads, None, True)[0]
    # v2 differs from v at positions 3, 4 of sample 0 and 1 .. 4 of sample 1.
    tap.ok(np.abs(c1 - c2).max() < 1e-12 and np.abs(c3[0, :3] - c4[0, :3]).max() < 1e-12
           and np.abs(c3[1, 0] - c4[1, 0]).max() < 1e-12 and np.abs(c3[1, 1:] - c4[1, 1:]).max() > 1e-3,
           "reference attention: padded keys are ignored; causal attention ignores later positions",
           "padding: %.3g; causal, earlier: %.3g; causal, later: %.3g"
           % (np.abs(c1 - c2).max(), np.abs(c3[0, :3] - c4[0, :3]).max(), np.abs(c3[1, 1:] - c4[1, 1:]).max()))

    for kind, spec, fwd, bwd, eps, mask in (
            ("bert_layer", bert_layer_params(d, f), bert_layer_fwd, bert_layer_bwd, 1e-12, pad),
            ("gpt2_block", gpt2_block_params(d, f), gpt2_block_fwd, gpt2_block_bwd, 1e-5, pad)):
        flat = rng.normal(size=nparams(spec)) * 0.3
        P = unflatten(spec, flat)
        for name, _ in spec:
            if "LayerNorm.weight" in name or name in ("ln_1.weight", "ln_2.weight"):
                P[name][:] = 1 + 0.1 * rng.normal(size=P[name].shape)
        x = rng.normal(size=(B, T, d))
        rc = rng.normal(size=(B, T, d))

        def L():
            return (fwd(P, x, mask, heads, eps)[0] * rc).sum()
        y, c = fwd(P, x, mask, heads, eps)
        dx, G = bwd(c, rc)
        fd_ok(tap, "reference %s: dx" % kind, dx, numgrad(L, x))
        an = flatten(spec, G)
        num = numgrad(L, flat)
        bad = [name for name, _ in spec
               if np.abs(G[name] - unflatten(spec, num)[name]).max() > 1e-6 * max(np.abs(num).max(), 1e-3)]
        fd_ok(tap, "reference %s: every parameter's gradient%s" % (kind, " (wrong: %s)" % ", ".join(bad) if bad else ""),
              an, num)

    vocab, positions, types = 11, 9, 2
    ids = rng.integers(0, vocab, size=(B, T)).astype(np.int32)
    ids[0, :2] = 3                                  # a repeated id: the scatter adds
    tt = rng.integers(0, types, size=(B, T)).astype(np.int32)
    spec = bert_emb_params(d, vocab, positions, types)
    flat = rng.normal(size=nparams(spec))
    P = unflatten(spec, flat)
    rc = rng.normal(size=(B, T, d))
    G = bert_emb_bwd(bert_emb_fwd(P, ids, tt, 1e-12)[1], rc)
    fd_ok(tap, "reference bert embeddings: every parameter's gradient", flatten(spec, G),
          numgrad(lambda: (bert_emb_fwd(P, ids, tt, 1e-12)[0] * rc).sum(), flat))
    spec = gpt2_emb_params(d, vocab, positions)
    flat = rng.normal(size=nparams(spec))
    P = unflatten(spec, flat)
    G = gpt2_emb_bwd(P, ids, rc)
    fd_ok(tap, "reference gpt2 embeddings: every parameter's gradient", flatten(spec, G),
          numgrad(lambda: (gpt2_emb_fwd(P, ids) * rc).sum(), flat))

    x = rng.normal(size=(B, T, d))
    rp = rng.normal(size=(B, d))
    for mask, what in ((pad, "mask"), (None, "no mask")):
        fd_ok(tap, "reference mean pool (%s) backward" % what, mean_pool_bwd(x.shape, mask, rp),
              numgrad(lambda: (mean_pool_fwd(x, mask) * rp).sum(), x))
    tap.ok(np.abs(mean_pool_fwd(x, pad)[1] - x[1, 0]).max() < 1e-15,
           "reference mean pool: one valid token pools to that token")
    xn = rng.normal(size=(4, d))
    rn = rng.normal(size=(4, d))
    fd_ok(tap, "reference l2 normalize backward", l2_normalize_bwd(xn, rn),
          numgrad(lambda: (l2_normalize_fwd(xn) * rn).sum(), xn))
    tap.ok(np.abs(np.linalg.norm(l2_normalize_fwd(xn), axis=1) - 1).max() < 1e-12,
           "reference l2 normalize gives unit rows")

    V = 13
    logits = rng.normal(size=(B, T, V)) * 2
    loss, dl = next_token_loss(logits, ids, 1.0)
    fd_ok(tap, "reference next-token loss backward", dl, numgrad(lambda: next_token_loss(logits, ids, 1.0)[0], logits))
    direct = sum(-math.log(softmax(logits[bb, t])[ids[bb, t + 1]]) for bb in range(B) for t in range(T - 1))
    tap.ok(abs(loss - direct) < 1e-10 and not dl[:, T - 1].any(),
           "reference next-token loss is the sum of -log p(next id); the last position gets no gradient")


# ---- the C kernels against the reference ----

def f32(a):
    return np.ascontiguousarray(a, dtype=np.float32)


class Case:
    """One run of the driver: inputs written to DIR, outputs read back."""

    def __init__(self, driver, root, name, kind, B, T, d=8, heads=2, ffn=16, eps=1e-5,
                 vocab=0, positions=0, types=0, mask=None, tt=None, scale=1.0):
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir, exist_ok=True)
        self.name, self.kind = name, kind
        self.args = [driver, kind, self.dir] + [str(v) for v in (
            B, T, d, heads, ffn, repr(eps), vocab, positions, types,
            int(mask is not None), int(tt is not None), repr(scale))]
        self.B, self.T = B, T

    def put(self, name, a):
        a.tofile(os.path.join(self.dir, name + ".bin"))

    def get(self, name, dtype=np.float32):
        return np.fromfile(os.path.join(self.dir, "out_" + name + ".bin"), dtype).astype(np.float64)

    def run(self, tap):
        p = subprocess.run(self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True, timeout=60)
        if not tap.ok(p.returncode == 0, "%s: the driver runs" % self.name,
                      "exit %d: %s" % (p.returncode, p.stdout[-2000:])):
            return False
        with open(os.path.join(self.dir, "checks.txt")) as fh:
            for line in fh:
                passed, _, desc = line.rstrip("\n").partition(" ")
                desc, _, diag = desc.partition(" | ")
                tap.ok(passed == "1", "%s: %s" % (self.name, desc), diag)
        return True


def close(tap, desc, got, want, tol=1e-4):
    got, want = np.asarray(got, np.float64).reshape(-1), np.asarray(want, np.float64).reshape(-1)
    if got.size != want.size:
        return tap.ok(False, desc, "got %d values, want %d" % (got.size, want.size))
    lim = tol * max(1.0, np.abs(want).max() if want.size else 1.0)
    err = np.abs(got - want)
    worst = int(err.argmax()) if err.size else 0
    good = bool(np.all(np.isfinite(got)) and (err.size == 0 or err.max() <= lim))
    return tap.ok(good, desc, "worst element %d: got %.9g, want %.9g (tolerance %.3g); %d NaN"
                  % (worst, got[worst] if got.size else 0, want[worst] if want.size else 0, lim,
                     int(np.isnan(got).sum())))


def init_params(rng, spec):
    P = {}
    for name, shape in spec:
        if name.endswith("LayerNorm.weight") or name in ("ln_1.weight", "ln_2.weight"):
            P[name] = 1 + 0.1 * rng.normal(size=shape)
        elif "embeddings" in name or name.startswith("w"):
            P[name] = rng.normal(size=shape)
        else:
            P[name] = rng.normal(size=shape) * (0.3 if len(shape) == 2 else 0.1)
        P[name] = f32(P[name]).astype(np.float64)     # the reference sees the C's exact values
    return P


def check_block(tap, driver, root, rng, kind, B, T, d, heads, mask, label):
    ffn = 16
    eps = 1e-12 if kind == "bert_layer" else 1e-5
    spec = bert_layer_params(d, ffn) if kind == "bert_layer" else gpt2_block_params(d, ffn)
    fwd = bert_layer_fwd if kind == "bert_layer" else gpt2_block_fwd
    bwd = bert_layer_bwd if kind == "bert_layer" else gpt2_block_bwd
    name = "%s B=%d T=%d d=%d heads=%d, %s" % (kind, B, T, d, heads, label)
    case = Case(driver, root, "%s-%d-%d-%d-%d-%s" % (kind, B, T, d, heads,
                                                    "".join(ch for ch in label if ch.isalnum())),
                kind, B, T, d, heads, ffn, eps, mask=mask)
    case.name = name
    P = init_params(rng, spec)
    x = f32(rng.normal(size=(B, T, d))).astype(np.float64)
    dy = f32(rng.normal(size=(B, T, d))).astype(np.float64)
    g0 = f32(rng.normal(size=nparams(spec)))
    case.put("w", f32(flatten(spec, P)))
    case.put("x", f32(x))
    case.put("dy", f32(dy))
    case.put("g0", g0)
    if mask is not None:
        case.put("mask", np.ascontiguousarray(mask, np.int32))
    if not case.run(tap):
        return
    y, c = fwd(P, x, mask, heads, eps)
    dx, G = bwd(c, dy)
    close(tap, "%s: forward" % name, case.get("y"), y)
    close(tap, "%s: input gradient" % name, case.get("dx"), dx)
    got = unflatten(spec, case.get("g") - g0.astype(np.float64))
    for pname, _ in spec:
        close(tap, "%s: gradient of %s (accumulated)" % (name, pname), got[pname], G[pname])


def check_c(tap, driver, root):
    rng = np.random.default_rng(2024)
    right = np.array([[1] * 7, [1] * 4 + [0] * 3, [1] + [0] * 6], np.int32)
    for kind in ("bert_layer", "gpt2_block"):
        check_block(tap, driver, root, rng, kind, 3, 7, 12, 3, right,
                    "padding of 0, 3 and 6 tokens")
        check_block(tap, driver, root, rng, kind, 2, 6, 8, 2, None, "mask NULL")
        check_block(tap, driver, root, rng, kind, 3, 5, 12, 2,
                    np.array([[0, 0, 1, 1, 1], [1, 0, 1, 0, 1], [0, 0, 0, 0, 1]], np.int32),
                    "left padding and holes")
        check_block(tap, driver, root, rng, kind, 2, 4, 8, 2,
                    np.array([[0, 0, 0, 0], [1, 1, 0, 0]], np.int32), "a sample of padding only")
        check_block(tap, driver, root, rng, kind, 2, 1, 8, 2, None, "one position")

    # Embeddings.
    for B, T, d, with_types in ((3, 7, 12, True), (2, 5, 8, False)):
        vocab, positions, types = 11, 9, 3
        spec = bert_emb_params(d, vocab, positions, types)
        name = "bert_emb B=%d T=%d d=%d, types %s" % (B, T, d, "given" if with_types else "NULL")
        P = init_params(rng, spec)
        ids = rng.integers(0, vocab, size=(B, T)).astype(np.int32)
        ids[0, :3] = 5
        tt = rng.integers(0, types, size=(B, T)).astype(np.int32) if with_types else None
        dy = f32(rng.normal(size=(B, T, d))).astype(np.float64)
        g0 = f32(rng.normal(size=nparams(spec)))
        case = Case(driver, root, "bert_emb-%d-%d" % (B, T), "bert_emb", B, T, d, 1, 1, 1e-12,
                    vocab, positions, types, tt=tt)
        case.name = name
        case.put("w", f32(flatten(spec, P)))
        case.put("ids", ids)
        case.put("dy", f32(dy))
        case.put("g0", g0)
        if tt is not None:
            case.put("types", tt)
        if case.run(tap):
            y, c = bert_emb_fwd(P, ids, tt, 1e-12)
            G = bert_emb_bwd(c, dy)
            close(tap, "%s: forward" % name, case.get("y"), y)
            got = unflatten(spec, case.get("g") - g0.astype(np.float64))
            for pname, _ in spec:
                close(tap, "%s: gradient of %s (accumulated)" % (name, pname), got[pname], G[pname])
    B, T, d, vocab, positions = 3, 7, 8, 11, 9
    spec = gpt2_emb_params(d, vocab, positions)
    name = "gpt2_emb B=%d T=%d d=%d" % (B, T, d)
    P = init_params(rng, spec)
    ids = rng.integers(0, vocab, size=(B, T)).astype(np.int32)
    ids[1, 2:5] = 4
    dy = f32(rng.normal(size=(B, T, d))).astype(np.float64)
    g0 = f32(rng.normal(size=nparams(spec)))
    case = Case(driver, root, "gpt2_emb", "gpt2_emb", B, T, d, 1, 1, 0, vocab, positions)
    case.name = name
    case.put("w", f32(flatten(spec, P)))
    case.put("ids", ids)
    case.put("dy", f32(dy))
    case.put("g0", g0)
    if case.run(tap):
        G = gpt2_emb_bwd(P, ids, dy)
        close(tap, "%s: forward" % name, case.get("y"), gpt2_emb_fwd(P, ids))
        got = unflatten(spec, case.get("g") - g0.astype(np.float64))
        for pname, _ in spec:
            close(tap, "%s: gradient of %s (accumulated)" % (name, pname), got[pname], G[pname])

    # Pooling, normalisation, gelu.
    for mask, label in ((np.array([[1, 1, 1, 0, 0], [0, 0, 0, 0, 0], [0, 1, 0, 0, 0]], np.int32),
                         "mask with an empty row"), (None, "mask NULL")):
        B, T, d = 3, 5, 12
        x = f32(rng.normal(size=(B, T, d))).astype(np.float64)
        dy = f32(rng.normal(size=(B, d))).astype(np.float64)
        case = Case(driver, root, "mean_pool-%d" % (mask is None), "mean_pool", B, T, d, mask=mask)
        case.name = "mean_pool, %s" % label
        case.put("x", f32(x))
        case.put("dy", f32(dy))
        if mask is not None:
            case.put("mask", mask)
        if case.run(tap):
            close(tap, "%s: forward" % case.name, case.get("y"), mean_pool_fwd(x, mask))
            close(tap, "%s: backward" % case.name, case.get("dx"), mean_pool_bwd(x.shape, mask, dy))
    B, d = 5, 12
    x = f32(rng.normal(size=(B, d)) * np.array([[1], [1e3], [1e-3], [0], [1]])).astype(np.float64)
    dy = f32(rng.normal(size=(B, d))).astype(np.float64)
    case = Case(driver, root, "l2_normalize", "l2_normalize", B, 1, d)
    case.name = "l2_normalize, rows of norm ~1, 1e3, 1e-3 and 0"
    case.put("x", f32(x))
    case.put("dy", f32(dy))
    if case.run(tap):
        close(tap, "%s: forward" % case.name, case.get("y"), l2_normalize_fwd(x))
        want = l2_normalize_bwd(x, dy)
        got = case.get("dx").reshape(B, d)
        for r in range(B):      # rows differ by up to 1e15 in scale: each its own
            close(tap, "%s: backward, row %d" % (case.name, r), got[r], want[r])
    n = 200
    x = f32(np.concatenate([np.linspace(-8, 8, n - 40), rng.normal(size=40) * 2])).astype(np.float64)
    dy = f32(rng.normal(size=n)).astype(np.float64)
    case = Case(driver, root, "gelu_tanh", "gelu_tanh", 1, 1, n)
    case.name = "gelu_tanh on [-8, 8]"
    case.put("x", f32(x))
    case.put("dy", f32(dy))
    if case.run(tap):
        close(tap, "%s: forward" % case.name, case.get("y"), gelu_tanh_fwd(x), 1e-5)
        close(tap, "%s: backward" % case.name, case.get("dx"), gelu_tanh_bwd(x, dy), 1e-5)

    # Next-token loss.
    for B, T in ((3, 7), (2, 1)):
        V = 13
        scale = 1.0 / (2 * B * max(T - 1, 1))
        logits = f32(rng.normal(size=(B, T, V)) * 3).astype(np.float64)
        ids = rng.integers(0, V, size=(B, T)).astype(np.int32)
        case = Case(driver, root, "loss-%d" % T, "loss", B, T, V, scale=scale)
        case.name = "loss_next_token B=%d T=%d vocab=%d" % (B, T, V)
        case.put("logits", f32(logits))
        case.put("ids", ids)
        if case.run(tap):
            loss, dl = next_token_loss(logits, ids, scale)
            got = case.get("loss", np.float64)
            tap.ok(abs(got[0] - loss) <= 1e-5 * max(1.0, abs(loss)),
                   "%s: the loss sum reaches rt_loss_add" % case.name,
                   "got %.9g, want %.9g" % (got[0], loss))
            close(tap, "%s: dlogits (scale %.4g)" % (case.name, scale), case.get("dlogits"), dl)


def main(argv):
    tap = Tap()
    if len(argv) == 2 and argv[1] == "--selftest":
        selftest(tap)
        return tap.done()
    if len(argv) == 4 and argv[1] == "check":
        selftest(tap)
        check_c(tap, argv[2], argv[3])
        return tap.done()
    sys.stderr.write("usage: tf_ref.py --selftest | check DRIVER DIR\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
