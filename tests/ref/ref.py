#!/usr/bin/env python3
"""Independent numpy reference for `lifsim record` (tests and benchmarks).

It shares no code with lifsim: its own safetensors reader and writer, its own
float64 implementation of OPT, Llama and the Mixtral / Qwen2-MoE / Qwen3-MoE
mixtures of experts over the whole sequence (a causal mask,
no KV cache), its own GPT-2 byte-level BPE.

  ref.py write DIR --family opt|llama|mixtral|qwen2_moe|qwen3_moe [--dtype f32|f16|bf16] [--shards N]
                   [--post-norm] [--proj DIM] [--byte] [--bpe] [--shape micro|tiny|opt-1.3b]
      a random-weight checkpoint in the Hugging Face format (config.json,
      model.safetensors or model-0000k-of-0000n.safetensors + index)
  ref.py run DIR --tokens FILE [--generate N] [--target-sparsity S | --threshold T] --out P
      greedy run; writes P.logits (float32 (T, V)), P.act (float32 (T, L, F):
      OPT fc1 pre-activation, Llama |silu(gate)*up|), P.inputs (float32
      (T, L, D)), P.thr (float64 (L)), P.ids (text: every token id); for an MoE
      family P.logits, P.inputs (the router inputs), P.experts (int16 (T, L, k)
      the selected experts, descending probability), P.gates (float32 (T, L,
      k) their weights as applied), P.probs (float32 (T, L, E) the router's
      softmax) and P.ids
  ref.py encode DIR TEXTFILE   print the GPT-2 BPE ids of the text
  ref.py decode DIR IDS...     print the decoded text
Needs only python3-numpy.
"""
import argparse
import json
import os
import re
import struct
import sys

import numpy as np

# ---------------------------------------------------------------- safetensors

DT = {"F32": (np.float32, 4), "F16": (np.float16, 2), "BF16": (np.uint16, 2)}


def to_file_dtype(a, dtype):
    a = np.ascontiguousarray(a, dtype=np.float32)
    if dtype == "F32":
        return a
    if dtype == "F16":
        return a.astype(np.float16)
    u = a.view(np.uint32).astype(np.uint64)  # bf16: round to nearest even
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def write_safetensors(path, tensors, dtype):
    """tensors: list of (name, shape, generator() -> float32 array)."""
    header, off = {}, 0
    for name, shape, _ in tensors:
        n = int(np.prod(shape)) * DT[dtype][1]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for name, shape, gen in tensors:
            f.write(to_file_dtype(gen(), dtype).tobytes())


def read_checkpoint(d):
    """All tensors of a checkpoint directory as float64 arrays."""
    idx = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(idx):
        files = sorted(set(json.load(open(idx))["weight_map"].values()))
    else:
        files = sorted(f for f in os.listdir(d) if f.endswith(".safetensors"))
    out = {}
    for fn in files:
        raw = open(os.path.join(d, fn), "rb").read()
        (n,) = struct.unpack("<Q", raw[:8])
        header = json.loads(raw[8:8 + n])
        for name, e in header.items():
            if name == "__metadata__":
                continue
            b, en = e["data_offsets"]
            t, _ = DT[e["dtype"]]
            a = np.frombuffer(raw[8 + n + b:8 + n + en], dtype=t)
            if e["dtype"] == "BF16":
                a = (a.astype(np.uint32) << 16).view(np.float32)
            out[name] = a.astype(np.float64).reshape(e["shape"])
    return out


# ---------------------------------------------------------------- checkpoints

SHAPES = {
    # micro: small enough for a fuzz seed (tests/fuzz/corpus/checkpoint)
    "micro": dict(vocab=32, d=8, ffn=24, layers=2, heads=2, kv_heads=1, max_pos=16),
    "tiny": dict(vocab=300, d=64, ffn=256, layers=3, heads=4, kv_heads=2, max_pos=128),
    "opt-125m": dict(vocab=50272, d=768, ffn=3072, layers=12, heads=12, kv_heads=12, max_pos=2048),
    "opt-1.3b": dict(vocab=50272, d=2048, ffn=8192, layers=24, heads=32, kv_heads=32, max_pos=2048),
}


def opt_tensors(s, post_norm, proj, rng):
    d, f, e = s["d"], s["ffn"], proj or s["d"]
    ts = []

    def lin(name, o, i, bias=True):
        ts.append((name + ".weight", (o, i), lambda: rng.standard_normal((o, i), np.float32) / np.sqrt(i)))
        if bias:
            ts.append((name + ".bias", (o,), lambda: 0.1 * rng.standard_normal(o, np.float32)))

    def ln(name):
        ts.append((name + ".weight", (d,), lambda: 1 + 0.1 * rng.standard_normal(d, np.float32)))
        ts.append((name + ".bias", (d,), lambda: 0.1 * rng.standard_normal(d, np.float32)))

    p = "model.decoder."
    ts.append((p + "embed_tokens.weight", (s["vocab"], e), lambda: rng.standard_normal((s["vocab"], e), np.float32)))
    ts.append((p + "embed_positions.weight", (s["max_pos"] + 2, d),
               lambda: 0.5 * rng.standard_normal((s["max_pos"] + 2, d), np.float32)))
    if proj:
        lin(p + "project_in", d, e, bias=False)
        lin(p + "project_out", e, d, bias=False)
    if not post_norm:
        ln(p + "final_layer_norm")
    for l in range(s["layers"]):
        q = p + "layers.%d." % l
        for m in ("q_proj", "k_proj", "v_proj", "out_proj"):
            lin(q + "self_attn." + m, d, d)
        ln(q + "self_attn_layer_norm")
        lin(q + "fc1", f, d)
        lin(q + "fc2", d, f)
        ln(q + "final_layer_norm")
    cfg = dict(model_type="opt", architectures=["OPTForCausalLM"], vocab_size=s["vocab"], hidden_size=d,
               ffn_dim=f, num_hidden_layers=s["layers"], num_attention_heads=s["heads"],
               max_position_embeddings=s["max_pos"], do_layer_norm_before=not post_norm,
               word_embed_proj_dim=e, activation_function="relu", enable_bias=True)
    return ts, cfg


def llama_tensors(s, rng):
    d, f, hd = s["d"], s["ffn"] * 2 // 3, s["d"] // s["heads"]
    ts = []

    def lin(name, o, i):
        ts.append((name + ".weight", (o, i), lambda: rng.standard_normal((o, i), np.float32) / np.sqrt(i)))

    def rms(name):
        ts.append((name + ".weight", (d,), lambda: 1 + 0.1 * rng.standard_normal(d, np.float32)))

    ts.append(("model.embed_tokens.weight", (s["vocab"], d), lambda: rng.standard_normal((s["vocab"], d), np.float32)))
    rms("model.norm")
    lin("lm_head", s["vocab"], d)
    for l in range(s["layers"]):
        q = "model.layers.%d." % l
        lin(q + "self_attn.q_proj", s["heads"] * hd, d)
        lin(q + "self_attn.k_proj", s["kv_heads"] * hd, d)
        lin(q + "self_attn.v_proj", s["kv_heads"] * hd, d)
        lin(q + "self_attn.o_proj", d, s["heads"] * hd)
        lin(q + "mlp.gate_proj", f, d)
        lin(q + "mlp.up_proj", f, d)
        lin(q + "mlp.down_proj", d, f)
        rms(q + "input_layernorm")
        rms(q + "post_attention_layernorm")
    cfg = dict(model_type="llama", architectures=["LlamaForCausalLM"], vocab_size=s["vocab"], hidden_size=d,
               intermediate_size=f, num_hidden_layers=s["layers"], num_attention_heads=s["heads"],
               num_key_value_heads=s["kv_heads"], max_position_embeddings=s["max_pos"], rms_norm_eps=1e-5,
               rope_theta=10000.0, hidden_act="silu", tie_word_embeddings=False)
    return ts, cfg


def moe_tensors(s, family, rng):
    """Mixtral, Qwen2-MoE or Qwen3-MoE: Llama attention, a sparse MoE FFN."""
    d, E, fe, k = s["d"], 8, 48, 2
    hd = 32 if family == "qwen3_moe" else d // s["heads"]
    ts = []

    def lin(name, o, i, bias=False, scale=1.0):
        ts.append((name + ".weight", (o, i), lambda: scale * rng.standard_normal((o, i), np.float32) / np.sqrt(i)))
        if bias:
            ts.append((name + ".bias", (o,), lambda: 0.1 * rng.standard_normal(o, np.float32)))

    def rms(name, n=d):
        ts.append((name + ".weight", (n,), lambda: 1 + 0.1 * rng.standard_normal(n, np.float32)))

    ts.append(("model.embed_tokens.weight", (s["vocab"], d), lambda: rng.standard_normal((s["vocab"], d), np.float32)))
    rms("model.norm")
    lin("lm_head", s["vocab"], d)
    for l in range(s["layers"]):
        q = "model.layers.%d." % l
        qb = family == "qwen2_moe"
        lin(q + "self_attn.q_proj", s["heads"] * hd, d, qb)
        lin(q + "self_attn.k_proj", s["kv_heads"] * hd, d, qb)
        lin(q + "self_attn.v_proj", s["kv_heads"] * hd, d, qb)
        lin(q + "self_attn.o_proj", d, s["heads"] * hd)
        if family == "qwen3_moe":
            rms(q + "self_attn.q_norm", hd)
            rms(q + "self_attn.k_norm", hd)
        rms(q + "input_layernorm")
        rms(q + "post_attention_layernorm")
        p = q + ("block_sparse_moe." if family == "mixtral" else "mlp.")
        lin(p + "gate", E, d, scale=3.0)  # a decisive router: clear top-k margins
        names = ("w1", "w3", "w2") if family == "mixtral" else ("gate_proj", "up_proj", "down_proj")
        for e in range(E):
            lin(p + "experts.%d.%s" % (e, names[0]), fe, d)
            lin(p + "experts.%d.%s" % (e, names[1]), fe, d)
            lin(p + "experts.%d.%s" % (e, names[2]), d, fe)
        if family == "qwen2_moe":
            lin(p + "shared_expert.gate_proj", 96, d)
            lin(p + "shared_expert.up_proj", 96, d)
            lin(p + "shared_expert.down_proj", d, 96)
            lin(p + "shared_expert_gate", 1, d)
    cfg = dict(model_type=family, vocab_size=s["vocab"], hidden_size=d, num_hidden_layers=s["layers"],
               num_attention_heads=s["heads"], num_key_value_heads=s["kv_heads"],
               max_position_embeddings=s["max_pos"], rms_norm_eps=1e-5, hidden_act="silu",
               tie_word_embeddings=False, num_experts_per_tok=k)
    if family == "mixtral":
        cfg.update(architectures=["MixtralForCausalLM"], intermediate_size=fe, num_local_experts=E,
                   rope_theta=1e6, sliding_window=None, router_aux_loss_coef=0.02)
    else:
        cfg.update(architectures=["Qwen2MoeForCausalLM" if qb else "Qwen3MoeForCausalLM"],
                   intermediate_size=4 * d, moe_intermediate_size=fe, num_experts=E,
                   norm_topk_prob=family == "qwen3_moe", decoder_sparse_step=1, mlp_only_layers=[],
                   rope_theta=10000.0, use_sliding_window=False)
        if qb:
            cfg["shared_expert_intermediate_size"] = 96
        else:
            cfg.update(head_dim=hd, attention_bias=False)
    return ts, cfg


def cmd_write(a):
    os.makedirs(a.dir, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    s = SHAPES[a.shape]
    if a.family == "opt":
        ts, cfg = opt_tensors(s, a.post_norm, a.proj, rng)
    elif a.family == "llama":
        ts, cfg = llama_tensors(s, rng)
    else:
        ts, cfg = moe_tensors(s, a.family, rng)
    if a.byte:
        cfg["lifsim_tokenizer"] = "byte"
    dtype = a.dtype.upper()
    cfg["torch_dtype"] = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[dtype]
    json.dump(cfg, open(os.path.join(a.dir, "config.json"), "w"), indent=2)
    if a.shards <= 1:
        write_safetensors(os.path.join(a.dir, "model.safetensors"), ts, dtype)
    else:
        wm = {}
        for k in range(a.shards):
            fn = "model-%05d-of-%05d.safetensors" % (k + 1, a.shards)
            part = ts[k::a.shards]
            write_safetensors(os.path.join(a.dir, fn), part, dtype)
            wm.update({name: fn for name, _, _ in part})
        json.dump({"metadata": {}, "weight_map": wm}, open(os.path.join(a.dir, "model.safetensors.index.json"), "w"))
    if a.bpe:
        write_bpe(a.dir, s["vocab"])


# ---------------------------------------------------------------- models

def layer_norm(x, w, b, eps=1e-5):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * w + b


def rms_norm(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def attend(q, k, v, heads, kv_heads):
    """q (T, H*hd), k, v (T, KV*hd): causal multi-head attention, (T, H*hd)."""
    T = q.shape[0]
    hd = q.shape[1] // heads
    q = q.reshape(T, heads, hd).transpose(1, 0, 2)
    k = np.repeat(k.reshape(T, kv_heads, hd).transpose(1, 0, 2), heads // kv_heads, axis=0)
    v = np.repeat(v.reshape(T, kv_heads, hd).transpose(1, 0, 2), heads // kv_heads, axis=0)
    s = q @ k.transpose(0, 2, 1)
    s = np.where(np.tril(np.ones((T, T), bool)), s, -np.inf)
    return (softmax(s) @ v).transpose(1, 0, 2).reshape(T, heads * hd)


def opt_forward(W, c, ids):
    p, L = "model.decoder.", c["num_hidden_layers"]
    H = c["num_attention_heads"]
    pre = c.get("do_layer_norm_before", True)
    lin = lambda x, n: x @ W[n + ".weight"].T + W.get(n + ".bias", 0)
    h = W[p + "embed_tokens.weight"][ids]
    if p + "project_in.weight" in W:
        h = h @ W[p + "project_in.weight"].T
    h = h + W[p + "embed_positions.weight"][np.arange(len(ids)) + 2]
    ins, acts = [], []
    for l in range(L):
        q = p + "layers.%d." % l
        r = h
        x = layer_norm(h, W[q + "self_attn_layer_norm.weight"], W[q + "self_attn_layer_norm.bias"]) if pre else h
        hd = x.shape[1] // H
        a = attend(lin(x, q + "self_attn.q_proj") * hd ** -0.5, lin(x, q + "self_attn.k_proj"),
                   lin(x, q + "self_attn.v_proj"), H, H)
        h = r + lin(a, q + "self_attn.out_proj")
        if not pre:
            h = layer_norm(h, W[q + "self_attn_layer_norm.weight"], W[q + "self_attn_layer_norm.bias"])
        r = h
        x = layer_norm(h, W[q + "final_layer_norm.weight"], W[q + "final_layer_norm.bias"]) if pre else h
        pa = lin(x, q + "fc1")
        ins.append(x)
        acts.append(pa)
        h = r + lin(np.maximum(pa, 0), q + "fc2")
        if not pre:
            h = layer_norm(h, W[q + "final_layer_norm.weight"], W[q + "final_layer_norm.bias"])
    if p + "final_layer_norm.weight" in W:
        h = layer_norm(h, W[p + "final_layer_norm.weight"], W[p + "final_layer_norm.bias"])
    if p + "project_out.weight" in W:
        h = h @ W[p + "project_out.weight"].T
    return h @ W[p + "embed_tokens.weight"].T, np.stack(ins, 1), np.stack(acts, 1)


def rope(x, heads, theta):
    T, n = x.shape
    hd = n // heads
    inv = theta ** (-np.arange(0, hd, 2) / hd)
    ang = np.arange(T)[:, None] * inv[None, :]
    cos = np.concatenate([np.cos(ang)] * 2, 1)[:, None, :]
    sin = np.concatenate([np.sin(ang)] * 2, 1)[:, None, :]
    x = x.reshape(T, heads, hd)
    rot = np.concatenate([-x[..., hd // 2:], x[..., :hd // 2]], -1)
    return (x * cos + rot * sin).reshape(T, n)


def llama_forward(W, c, ids):
    H, KV, eps = c["num_attention_heads"], c["num_key_value_heads"], c["rms_norm_eps"]
    theta = c.get("rope_theta", 10000.0)
    h = W["model.embed_tokens.weight"][ids]
    ins, acts = [], []
    for l in range(c["num_hidden_layers"]):
        q = "model.layers.%d." % l
        lin = lambda x, n: x @ W[q + n + ".weight"].T
        x = rms_norm(h, W[q + "input_layernorm.weight"], eps)
        hd = c["hidden_size"] // H
        a = attend(rope(lin(x, "self_attn.q_proj"), H, theta) * hd ** -0.5,
                   rope(lin(x, "self_attn.k_proj"), KV, theta), lin(x, "self_attn.v_proj"), H, KV)
        h = h + lin(a, "self_attn.o_proj")
        x = rms_norm(h, W[q + "post_attention_layernorm.weight"], eps)
        g = lin(x, "mlp.gate_proj")
        m = g / (1 + np.exp(-g)) * lin(x, "mlp.up_proj")
        ins.append(x)
        acts.append(np.abs(m))
        h = h + lin(m, "mlp.down_proj")
    h = rms_norm(h, W["model.norm.weight"], eps)
    head = W.get("lm_head.weight", W["model.embed_tokens.weight"])
    return h @ head.T, np.stack(ins, 1), np.stack(acts, 1)


def moe_forward(W, c, ids):
    """Mixtral / Qwen2-MoE / Qwen3-MoE; returns logits, router inputs, and the
    router's (experts, gates, probabilities) per token and layer."""
    H, KV, eps = c["num_attention_heads"], c["num_key_value_heads"], c["rms_norm_eps"]
    theta, k = c.get("rope_theta", 10000.0), c["num_experts_per_tok"]
    hd = c.get("head_dim") or c["hidden_size"] // H
    mix = c["model_type"] == "mixtral"
    norm_topk = True if mix else c.get("norm_topk_prob", False)
    silu = lambda g: g / (1 + np.exp(-g))
    h = W["model.embed_tokens.weight"][ids]
    T = len(ids)
    ins, sel, gts, prs = [], [], [], []
    for l in range(c["num_hidden_layers"]):
        q = "model.layers.%d." % l
        lin = lambda x, n: x @ W[q + n + ".weight"].T + W.get(q + n + ".bias", 0)
        x = rms_norm(h, W[q + "input_layernorm.weight"], eps)
        qs, ks = lin(x, "self_attn.q_proj"), lin(x, "self_attn.k_proj")
        if q + "self_attn.q_norm.weight" in W:  # Qwen3: per-head RMSNorm before the rotation
            qs = rms_norm(qs.reshape(T, H, hd), W[q + "self_attn.q_norm.weight"], eps).reshape(T, H * hd)
            ks = rms_norm(ks.reshape(T, KV, hd), W[q + "self_attn.k_norm.weight"], eps).reshape(T, KV * hd)
        a = attend(rope(qs, H, theta) * hd ** -0.5, rope(ks, KV, theta), lin(x, "self_attn.v_proj"), H, KV)
        h = h + lin(a, "self_attn.o_proj")
        x = rms_norm(h, W[q + "post_attention_layernorm.weight"], eps)
        p = "block_sparse_moe." if mix else "mlp."
        names = ("w1", "w3", "w2") if mix else ("gate_proj", "up_proj", "down_proj")
        pr = softmax(lin(x, p + "gate"))
        top = np.argsort(-pr, axis=1, kind="stable")[:, :k]
        w = np.take_along_axis(pr, top, 1)
        if norm_topk:
            w = w / w.sum(1, keepdims=True)
        out = np.zeros_like(x)
        for t in range(T):
            for j in range(k):
                e = p + "experts.%d." % top[t, j]
                m = silu(lin(x[t], e + names[0])) * lin(x[t], e + names[1])
                out[t] += w[t, j] * lin(m, e + names[2])
        if q + p + "shared_expert.gate_proj.weight" in W:
            s = p + "shared_expert."
            m = silu(lin(x, s + "gate_proj")) * lin(x, s + "up_proj")
            out += 1 / (1 + np.exp(-lin(x, p + "shared_expert_gate"))) * lin(m, s + "down_proj")
        h = h + out
        ins.append(x)
        sel.append(top)
        gts.append(w)
        prs.append(pr)
    h = rms_norm(h, W["model.norm.weight"], eps)
    head = W.get("lm_head.weight", W["model.embed_tokens.weight"])
    return h @ head.T, np.stack(ins, 1), (np.stack(sel, 1), np.stack(gts, 1), np.stack(prs, 1))


def cmd_run(a):
    c = json.load(open(os.path.join(a.dir, "config.json")))
    W = read_checkpoint(a.dir)
    fwd = {"opt": opt_forward, "llama": llama_forward}.get(c["model_type"], moe_forward)
    ids = [int(t) for t in open(a.tokens).read().split()]
    nprompt = len(ids)
    for _ in range(a.generate):  # greedy, recomputing the whole sequence
        logits, _, _ = fwd(W, c, np.array(ids))
        ids.append(int(np.argmax(logits[-1])))
    logits, ins, acts = fwd(W, c, np.array(ids))
    if fwd is moe_forward:  # router choices instead of activations
        sel, gts, prs = acts
        logits.astype(np.float32).tofile(a.out + ".logits")
        ins.astype(np.float32).tofile(a.out + ".inputs")
        sel.astype(np.int16).tofile(a.out + ".experts")
        gts.astype(np.float32).tofile(a.out + ".gates")
        prs.astype(np.float32).tofile(a.out + ".probs")
        open(a.out + ".ids", "w").write(" ".join(map(str, ids)) + "\n")
        return
    L = acts.shape[1]
    thr = np.zeros(L)
    if c["model_type"] == "llama":
        if a.threshold is not None:
            thr[:] = a.threshold
        else:
            s = 0.5 if a.target_sparsity is None else a.target_sparsity
            for l in range(L):
                v = np.sort(acts[:nprompt, l].astype(np.float32).ravel())
                k = int(np.floor(s * v.size + 0.5))
                thr[l] = v[k - 1] if k > 0 else -1.0
    logits.astype(np.float32).tofile(a.out + ".logits")
    acts.astype(np.float32).tofile(a.out + ".act")
    ins.astype(np.float32).tofile(a.out + ".inputs")
    thr.astype(np.float64).tofile(a.out + ".thr")
    open(a.out + ".ids", "w").write(" ".join(map(str, ids)) + "\n")


# ---------------------------------------------------------------- GPT-2 BPE

def bytes_to_unicode():
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


# GPT-2's pattern with \p{L} as [^\W\d_] and \p{N} as \d (Python's re).
PAT = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+""")
CORPUS = ("the quick brown fox jumps over the lazy dog. the dog's bark isn't loud, "
          "but the fox's is! 12345 numbers and   spaces\n\nnew lines there there the then")


def write_bpe(d, vocab_size):
    """Learn a few merges on CORPUS; write vocab.json, merges.txt, tokenizer.json."""
    b2u = bytes_to_unicode()
    words = [[b2u[b] for b in w.encode()] for w in PAT.findall(CORPUS)]
    vocab = {ch: i for i, ch in enumerate(b2u[b] for b in range(256))}
    merges = []
    while len(vocab) < min(vocab_size, 300) - 4:
        counts = {}
        for w in words:
            for pair in zip(w, w[1:]):
                counts[pair] = counts.get(pair, 0) + 1
        if not counts:
            break
        best = max(sorted(counts), key=lambda p: counts[p])
        merges.append(best)
        vocab[best[0] + best[1]] = len(vocab)
        for w in words:
            i = 0
            while i < len(w) - 1:
                if (w[i], w[i + 1]) == best:
                    w[i:i + 2] = [best[0] + best[1]]
                i += 1
    json.dump(vocab, open(os.path.join(d, "vocab.json"), "w"))
    with open(os.path.join(d, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n")
        for l, r in merges:
            f.write("%s %s\n" % (l, r))
    tj = {"version": "1.0", "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False},
          "model": {"type": "BPE", "vocab": vocab, "merges": ["%s %s" % m for m in merges]}}
    json.dump(tj, open(os.path.join(d, "tokenizer.json.alt"), "w"))


def load_bpe(d):
    vocab = json.load(open(os.path.join(d, "vocab.json")))
    lines = open(os.path.join(d, "merges.txt")).read().split("\n")[1:]
    ranks = {tuple(l.split(" ")): i for i, l in enumerate(x for x in lines if x)}
    return vocab, ranks


def cmd_encode(a):
    vocab, ranks = load_bpe(a.dir)
    b2u = bytes_to_unicode()
    out = []
    for piece in PAT.findall(open(a.text, encoding="utf-8").read()):
        w = [b2u[b] for b in piece.encode()]
        while len(w) > 1:
            pairs = [(ranks.get(p, 1 << 30), i) for i, p in enumerate(zip(w, w[1:]))]
            r, i = min(pairs)
            if r == 1 << 30:
                break
            pair = (w[i], w[i + 1])
            j, nw = 0, []
            while j < len(w):
                if j < len(w) - 1 and (w[j], w[j + 1]) == pair:
                    nw.append(w[j] + w[j + 1])
                    j += 2
                else:
                    nw.append(w[j])
                    j += 1
            w = nw
        out += [vocab[t] for t in w]
    print(" ".join(map(str, out)))


def cmd_decode(a):
    vocab, _ = load_bpe(a.dir)
    inv = {v: k for k, v in vocab.items()}
    u2b = {u: b for b, u in bytes_to_unicode().items()}
    sys.stdout.buffer.write(bytes(u2b[ch] for i in a.ids for ch in inv.get(i, "")))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("dir")
    w.add_argument("--family", choices=["opt", "llama", "mixtral", "qwen2_moe", "qwen3_moe"], required=True)
    w.add_argument("--dtype", choices=["f32", "f16", "bf16"], default="f32")
    w.add_argument("--shards", type=int, default=1)
    w.add_argument("--post-norm", action="store_true")
    w.add_argument("--proj", type=int, default=0)
    w.add_argument("--byte", action="store_true")
    w.add_argument("--bpe", action="store_true")
    w.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    w.add_argument("--seed", type=int, default=1)
    r = sub.add_parser("run")
    r.add_argument("dir")
    r.add_argument("--tokens", required=True)
    r.add_argument("--generate", type=int, default=0)
    r.add_argument("--target-sparsity", type=float)
    r.add_argument("--threshold", type=float)
    r.add_argument("--out", required=True)
    e = sub.add_parser("encode")
    e.add_argument("dir")
    e.add_argument("text")
    dd = sub.add_parser("decode")
    dd.add_argument("dir")
    dd.add_argument("ids", type=int, nargs="*")
    a = ap.parse_args()
    {"write": cmd_write, "run": cmd_run, "encode": cmd_encode, "decode": cmd_decode}[a.cmd](a)


if __name__ == "__main__":
    main()
