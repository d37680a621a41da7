#!/usr/bin/python3
"""Train lifsim's tiny mixture-of-experts model (traces/tinymoe) on free text.

The model is a standard Hugging Face Mixtral decoder (RMSNorm, rotary
positions, grouped-query attention, a sparse MoE FFN in every layer: a linear
router, softmax, top-k, renormalized gate weights, SwiGLU experts w1/w3/w2)
over a byte vocabulary: token ids are the UTF-8 bytes of the text. It writes

  OUT/config.json        a real Mixtral config (+ "lifsim_tokenizer": "byte")
  OUT/model.safetensors  fp16 weights under the standard HF Mixtral tensor names
  OUT/recipe.json        hyperparameters, seed, data, time taken, losses, routing
  OUT/heldout.txt        the held-out bytes the check below evaluates (GPL-2+ text)

and then checks the written checkpoint with an independent numpy forward (no
torch): held-out loss and how the router spreads tokens over the experts.
--check-only runs only that check on an existing OUT (with --expect-recipe,
against the figures in OUT/recipe.json).

Training needs Debian's python3-torch and the text of debian-reference-en
(./quickstart train-deps installs both); the check needs only python3-numpy.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tinyio import load_text, read_safetensors, split, write_safetensors  # noqa: E402

DEFAULT_TEXT = "/usr/share/debian-reference/debian-reference.en.txt.gz"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--text", default=DEFAULT_TEXT, help="training text (.txt or .txt.gz)")
    p.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--experts", type=int, default=16)
    p.add_argument("--top-k", type=int, default=2)
    p.add_argument("--d-expert", type=int, default=64)
    p.add_argument("--aux-coef", type=float, default=0.02,
                   help="load-balancing loss weight (Mixtral-8x7B's router_aux_loss_coef)")
    p.add_argument("--ctx", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--holdout", type=float, default=0.05, help="last fraction of the text held out")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-minutes", type=float, default=15.0,
                   help="stop training early (cosine schedule cut) past this wall time")
    p.add_argument("--eval-tokens", type=int, default=4096,
                   help="held-out bytes the numpy check evaluates")
    p.add_argument("--check-only", action="store_true")
    p.add_argument("--expect-recipe", action="store_true",
                   help="with --check-only: fail unless the loss and routing match OUT/recipe.json")
    return p.parse_args()


def mixtral_config(a):
    return {
        "_name_or_path": "lifsim-tinymoe",
        "architectures": ["MixtralForCausalLM"],
        "model_type": "mixtral",
        "vocab_size": 256,
        "hidden_size": a.d_model,
        "intermediate_size": a.d_expert,
        "num_hidden_layers": a.layers,
        "num_attention_heads": a.heads,
        "num_key_value_heads": a.kv_heads,
        "num_local_experts": a.experts,
        "num_experts_per_tok": a.top_k,
        "max_position_embeddings": 2 * a.ctx,
        "rope_theta": 10000.0,
        "rms_norm_eps": 1e-5,
        "hidden_act": "silu",
        "sliding_window": None,
        "router_aux_loss_coef": a.aux_coef,
        "output_router_logits": False,
        "tie_word_embeddings": True,
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
        "bos_token_id": 2,
        "eos_token_id": 2,
        "use_cache": True,
        "torch_dtype": "float16",
        "lifsim_tokenizer": "byte",
    }


# ---------------------------------------------------------------- numpy forward

def np_rms(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def np_rope(x, heads, theta):
    T, n = x.shape
    hd = n // heads
    ang = np.arange(T)[:, None] * theta ** (-np.arange(0, hd, 2) / hd)[None, :]
    cos, sin = (np.concatenate([f(ang)] * 2, 1)[:, None, :] for f in (np.cos, np.sin))
    x = x.reshape(T, heads, hd)
    rot = np.concatenate([-x[..., hd // 2:], x[..., :hd // 2]], -1)
    return (x * cos + rot * sin).reshape(T, n)


def np_forward(W, c, ids, counts=None):
    """Logits (T, 256) of one window; counts (layers, experts), if given,
    receives how often each expert is selected."""
    T, H, KV = len(ids), c["num_attention_heads"], c["num_key_value_heads"]
    hd, eps, k = c["hidden_size"] // H, c["rms_norm_eps"], c["num_experts_per_tok"]
    x = W["model.embed_tokens.weight"][ids]
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        lin = lambda v, n: v @ W[p + n + ".weight"].T
        h = np_rms(x, W[p + "input_layernorm.weight"], eps)
        q = np_rope(lin(h, "self_attn.q_proj"), H, c["rope_theta"]).reshape(T, H, hd).transpose(1, 0, 2)
        kk = np_rope(lin(h, "self_attn.k_proj"), KV, c["rope_theta"]).reshape(T, KV, hd).transpose(1, 0, 2)
        v = lin(h, "self_attn.v_proj").reshape(T, KV, hd).transpose(1, 0, 2)
        kk, v = (np.repeat(t, H // KV, axis=0) for t in (kk, v))
        s = q @ kk.transpose(0, 2, 1) * hd ** -0.5 + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        x = x + lin((s @ v).transpose(1, 0, 2).reshape(T, H * hd), "self_attn.o_proj")
        h = np_rms(x, W[p + "post_attention_layernorm.weight"], eps)
        z = lin(h, "block_sparse_moe.gate")
        pr = np.exp(z - z.max(-1, keepdims=True))
        pr /= pr.sum(-1, keepdims=True)
        top = np.argsort(-pr, axis=1, kind="stable")[:, :k]
        w = np.take_along_axis(pr, top, 1)
        w /= w.sum(1, keepdims=True)
        out = np.zeros_like(x)
        for e in range(c["num_local_experts"]):
            tok, slot = np.nonzero(top == e)
            if counts is not None:
                counts[l, e] += len(tok)
            if len(tok):
                pe = p + f"block_sparse_moe.experts.{e}."
                g = h[tok] @ W[pe + "w1.weight"].T
                m = g / (1 + np.exp(-g)) * (h[tok] @ W[pe + "w3.weight"].T)
                out[tok] += w[tok, slot][:, None] * (m @ W[pe + "w2.weight"].T)
        x = x + out
    x = np_rms(x, W["model.norm.weight"], eps)
    return x @ W.get("lm_head.weight", W["model.embed_tokens.weight"]).T


def np_check(out_dir, held, ctx, eval_tokens):
    """Held-out loss (nats/byte) over windows of ctx bytes, and per layer the
    share of selections of the most and least used expert."""
    c = json.load(open(os.path.join(out_dir, "config.json")))
    W = read_safetensors(os.path.join(out_dir, "model.safetensors"), np.float64)
    counts = np.zeros((c["num_hidden_layers"], c["num_local_experts"]))
    nll, n = 0.0, 0
    for s in range(0, min(eval_tokens, len(held) - 1) - ctx + 1, ctx):
        seq = held[s:s + ctx + 1].astype(np.int64)
        z = np_forward(W, c, seq[:-1], counts)
        z = z - z.max(-1, keepdims=True)
        lp = z - np.log(np.exp(z).sum(-1, keepdims=True))
        nll -= lp[np.arange(ctx), seq[1:]].sum()
        n += ctx
    share = counts / counts.sum(1, keepdims=True)
    return nll / n, [round(float(v), 4) for v in share.max(1)], [round(float(v), 4) for v in share.min(1)]


# ---------------------------------------------------------------- training

def train(a, train_data, held):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    d, H, KV, E, K = a.d_model, a.heads, a.kv_heads, a.experts, a.top_k
    hd = d // H
    causal = torch.ones(a.ctx, a.ctx, dtype=torch.bool).triu(1)
    inv = 10000.0 ** (-torch.arange(0, hd, 2, dtype=torch.float32) / hd)
    ang = torch.arange(a.ctx, dtype=torch.float32)[:, None] * inv[None, :]
    cos, sin = torch.cat([ang.cos()] * 2, 1), torch.cat([ang.sin()] * 2, 1)

    def rope(x):  # (B, heads, T, hd), HF rotate-half
        T = x.shape[2]
        rot = torch.cat([-x[..., hd // 2:], x[..., :hd // 2]], -1)
        return x * cos[:T] + rot * sin[:T]

    class RMSNorm(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(d))

        def forward(self, x):
            return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + 1e-5) * self.weight

    class Expert(nn.Module):
        def __init__(self):
            super().__init__()
            self.w1 = nn.Linear(d, a.d_expert, bias=False)
            self.w3 = nn.Linear(d, a.d_expert, bias=False)
            self.w2 = nn.Linear(a.d_expert, d, bias=False)

        def forward(self, x):
            return self.w2(F.silu(self.w1(x)) * self.w3(x))

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.input_layernorm, self.post_attention_layernorm = RMSNorm(), RMSNorm()
            self.q_proj, self.o_proj = nn.Linear(d, H * hd, bias=False), nn.Linear(H * hd, d, bias=False)
            self.k_proj, self.v_proj = nn.Linear(d, KV * hd, bias=False), nn.Linear(d, KV * hd, bias=False)
            self.gate = nn.Linear(d, E, bias=False)
            self.experts = nn.ModuleList(Expert() for _ in range(E))

        def forward(self, x):
            B, T, _ = x.shape
            h = self.input_layernorm(x)
            q = rope(self.q_proj(h).view(B, T, H, hd).transpose(1, 2))
            k = rope(self.k_proj(h).view(B, T, KV, hd).transpose(1, 2)).repeat_interleave(H // KV, 1)
            v = self.v_proj(h).view(B, T, KV, hd).transpose(1, 2).repeat_interleave(H // KV, 1)
            s = (q @ k.transpose(-1, -2)) * hd ** -0.5
            o = torch.softmax(s.masked_fill(causal[:T, :T], float("-inf")), -1) @ v
            x = x + self.o_proj(o.transpose(1, 2).reshape(B, T, H * hd))
            h = self.post_attention_layernorm(x).reshape(B * T, d)
            probs = torch.softmax(self.gate(h), -1)
            w, top = torch.topk(probs, K, -1)
            w = w / w.sum(-1, keepdim=True)
            out = torch.zeros_like(h)
            for e, ex in enumerate(self.experts):
                tok, slot = torch.nonzero(top == e, as_tuple=True)
                if len(tok):
                    out.index_add_(0, tok, w[tok, slot, None] * ex(h[tok]))
            # Switch-style load balancing (Fedus et al.; HF load_balancing_loss_func)
            frac = F.one_hot(top, E).float().sum(1).mean(0) / K
            aux = E * (frac * probs.mean(0)).sum()
            return x + out.view(B, T, d), aux

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed_tokens = nn.Embedding(256, d)
            self.layers = nn.ModuleList(Layer() for _ in range(a.layers))
            self.norm = RMSNorm()
            for m in self.modules():
                if isinstance(m, (nn.Linear, nn.Embedding)):
                    nn.init.normal_(m.weight, std=0.02)

        def forward(self, ids):
            x, aux = self.embed_tokens(ids), 0.0
            for layer in self.layers:
                x, a1 = layer(x)
                aux = aux + a1
            return self.norm(x) @ self.embed_tokens.weight.T, aux / len(self.layers)

    model = Model()
    nparams = sum(p.numel() for p in model.parameters())
    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=a.lr, betas=(0.9, 0.95))
    g = torch.Generator().manual_seed(a.seed)
    tr, hv = torch.from_numpy(train_data.astype(np.int64)), torch.from_numpy(held.astype(np.int64))

    def batch(src, gen):
        ix = torch.randint(len(src) - a.ctx - 1, (a.batch,), generator=gen)
        x = torch.stack([src[i:i + a.ctx + 1] for i in ix])
        return x[:, :-1], x[:, 1:]

    def lr_at(step, total):
        if step < a.warmup:
            return a.lr * (step + 1) / a.warmup
        t = (step - a.warmup) / max(1, total - a.warmup)
        return a.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))

    def held_loss():
        model.eval()
        ge = torch.Generator().manual_seed(12345)
        with torch.no_grad():
            ls = [F.cross_entropy(model(x)[0].reshape(-1, 256), y.reshape(-1)).item()
                  for x, y in (batch(hv, ge) for _ in range(8))]
        model.train()
        return sum(ls) / len(ls)

    print(f"tinymoe: {nparams} parameters, {len(train_data)} training bytes, {len(held)} held-out bytes",
          flush=True)
    t0, total, step, log, cut_at, ema = time.time(), a.steps, 0, [], None, None
    while step < total:
        for grp in opt.param_groups:
            grp["lr"] = lr_at(step, total)
        x, y = batch(tr, g)
        logits, aux = model(x)
        ce = F.cross_entropy(logits.reshape(-1, 256), y.reshape(-1))
        loss = ce + a.aux_coef * aux
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema = ce.item() if ema is None else 0.98 * ema + 0.02 * ce.item()
        step += 1
        el = time.time() - t0
        if step % 50 == 0 or step == total:
            hl = held_loss()
            log.append({"step": step, "train_loss_ema": round(ema, 4), "held_loss": round(hl, 4),
                        "aux_loss": round(float(aux), 4), "seconds": round(el, 1)})
            print(f"step {step}/{total} train {ema:.3f} held {hl:.3f} aux {float(aux):.3f} "
                  f"({el:.0f} s, {step * a.batch * a.ctx / el:.0f} tok/s)", flush=True)
        if el > a.max_minutes * 60 and total > step + 25:
            total, cut_at = step + 25, step  # a short anneal instead of an abrupt stop
            print(f"time budget reached after step {step}: stopping at step {total}", flush=True)
    secs = time.time() - t0
    hl = held_loss()
    # the same held-out windows np_check evaluates, for a side-by-side check
    model.eval()
    with torch.no_grad():
        nll, n = 0.0, 0
        for s in range(0, min(a.eval_tokens, len(held) - 1) - a.ctx + 1, a.ctx):
            seq = hv[s:s + a.ctx + 1][None]
            nll += F.cross_entropy(model(seq[:, :-1])[0].reshape(-1, 256), seq[0, 1:], reduction="sum").item()
            n += a.ctx
    print(f"torch fp32 held-out loss on the numpy-check windows: {nll / n:.4f} nats/byte", flush=True)
    W = {"model.embed_tokens.weight": model.embed_tokens.weight, "model.norm.weight": model.norm.weight}
    for l, layer in enumerate(model.layers):
        p = f"model.layers.{l}."
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            W[p + f"self_attn.{name}.weight"] = getattr(layer, name).weight
        W[p + "input_layernorm.weight"] = layer.input_layernorm.weight
        W[p + "post_attention_layernorm.weight"] = layer.post_attention_layernorm.weight
        W[p + "block_sparse_moe.gate.weight"] = layer.gate.weight
        for e, ex in enumerate(layer.experts):
            for name in ("w1", "w2", "w3"):
                W[p + f"block_sparse_moe.experts.{e}.{name}.weight"] = getattr(ex, name).weight
    W = {k: v.detach().numpy().astype(np.float16) for k, v in W.items()}
    return W, {"parameters": nparams, "steps": step, "anneal_started_after_step": cut_at,
               "train_seconds": round(secs, 1), "final_train_loss_ema": round(ema, 4),
               "final_held_loss_torch_fp32": round(hl, 4),
               "held_out_loss_torch_fp32_on_check_windows": round(nll / n, 4), "log": log}


def main():
    a = parse_args()
    os.makedirs(a.out, exist_ok=True)
    if a.check_only:
        held = load_text(os.path.join(a.out, "heldout.txt") if a.text == DEFAULT_TEXT else a.text)
        rec = json.load(open(os.path.join(a.out, "recipe.json")))
        ctx = rec["hyperparameters"]["ctx"]
        loss, mx, mn = np_check(a.out, held, ctx, a.eval_tokens)
        print(f"held-out loss {loss:.4f} nats/byte; most used expert's share per layer {mx}, "
              f"least used {mn}")
        if a.expect_recipe:
            want = rec["numpy_check"]
            if abs(loss - want["held_out_loss_nats_per_byte_fp16"]) > 1e-3 or \
                    max(abs(x - y) for x, y in zip(mx, want["max_expert_share_per_layer"])) > 1e-3:
                sys.exit(f"check differs from {a.out}/recipe.json: {want}")
            print("matches recipe.json")
        return
    data = load_text(a.text)
    tr, held = split(data, a.holdout)
    W, result = train(a, tr, held)
    cfg = mixtral_config(a)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    write_safetensors(os.path.join(a.out, "model.safetensors"), W)  # fp16 arrays
    with open(os.path.join(a.out, "heldout.txt"), "wb") as f:
        f.write(held[:a.eval_tokens + 1].tobytes())
    loss, mx, mn = np_check(a.out, held, a.ctx, a.eval_tokens)
    print(f"numpy check on {a.eval_tokens} held-out bytes: {loss:.4f} nats/byte; most used expert's "
          f"share per layer {mx}, least used {mn} (uniform: {1 / a.experts:.4f})", flush=True)
    import torch
    recipe = {"command": " ".join(sys.argv), "data": {"path": a.text, "package": "debian-reference-en",
              "bytes": int(len(data)), "train_bytes": int(len(tr)), "held_out_bytes": int(len(held)),
              "held_out": f"last {a.holdout} of the text"},
              "hyperparameters": {k: v for k, v in vars(a).items() if k not in ("text", "out", "check_only",
                                                                             "expect_recipe")},
              "optimizer": "AdamW betas (0.9, 0.95), linear warmup then cosine to 0.1*lr, grad clip 1.0, "
                           "no dropout, init N(0, 0.02); loss = cross-entropy + aux_coef * Switch "
                           "load-balancing loss (mean over layers)",
              "torch_version": torch.__version__, "result": result,
              "numpy_check": {"held_out_loss_nats_per_byte_fp16": round(float(loss), 4),
                              "eval_bytes": a.eval_tokens, "max_expert_share_per_layer": mx,
                              "min_expert_share_per_layer": mn}}
    with open(os.path.join(a.out, "recipe.json"), "w") as f:
        json.dump(recipe, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
