#!/usr/bin/python3
"""Train lifsim's tiny OPT-style model (traces/tinylm) on free English text.

The model is a standard Hugging Face OPT decoder (pre-LayerNorm, learned
positions with OPT's offset of 2, ReLU FFN, tied head) over a byte
vocabulary: token ids are the UTF-8 bytes of the text. The script writes

  OUT/config.json        a real OPT config (+ "lifsim_tokenizer": "byte")
  OUT/model.safetensors  fp16 weights under the standard HF OPT tensor names
  OUT/recipe.json        hyperparameters, seed, data, time taken, losses
  OUT/heldout.txt        the held-out bytes the check below evaluates (GPL-2+ text)

and then checks the written checkpoint with an independent numpy forward
(no torch): held-out loss and per-layer ReLU sparsity. --check-only runs only
that check on an existing OUT (with --expect-recipe, against the figures in
OUT/recipe.json, on OUT/heldout.txt: --text OUT/heldout.txt --holdout 1);
--dump-trace writes a lifsim-trace v1 HDF5 (traces/FORMAT.md, via h5py) of
the FFN inputs and active sets of held-out text, for validating predictors on
real activations.

Training needs Debian's python3-torch and the text of debian-reference-en
(./quickstart train-deps installs both); checking and dumping need only
python3-numpy (and python3-h5py for --dump-trace).
"""
import argparse
import json
import math
import os
import struct
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tinyio import load_text, read_safetensors, split, write_safetensors  # noqa: E402

DEFAULT_TEXT = "/usr/share/debian-reference/debian-reference.en.txt.gz"
OPT_POS_OFFSET = 2


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--text", default=DEFAULT_TEXT, help="training text (.txt or .txt.gz)")
    p.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--d-ffn", type=int, default=1024)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--ctx", type=int, default=256)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--holdout", type=float, default=0.05, help="last fraction of the text held out")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-minutes", type=float, default=25.0,
                   help="stop training early (cosine schedule cut) past this wall time")
    p.add_argument("--eval-tokens", type=int, default=16384,
                   help="held-out bytes the numpy check evaluates")
    p.add_argument("--anneal-at", type=int, default=0, metavar="STEP",
                   help="end training 50 steps after STEP (what --max-minutes does when the "
                        "budget runs out; replays a budget-cut run)")
    p.add_argument("--check-only", action="store_true")
    p.add_argument("--dump-trace", metavar="TRACE.h5")
    p.add_argument("--dump-tokens", type=int, default=2048)
    p.add_argument("--expect-recipe", action="store_true",
                   help="with --check-only: fail unless loss and sparsity match OUT/recipe.json")
    return p.parse_args()




# ---------------------------------------------------------------- config and safetensors

def opt_config(a):
    return {
        "_name_or_path": "lifsim-tinylm",
        "architectures": ["OPTForCausalLM"],
        "model_type": "opt",
        "vocab_size": 256,
        "hidden_size": a.d_model,
        "word_embed_proj_dim": a.d_model,
        "num_hidden_layers": a.layers,
        "num_attention_heads": a.heads,
        "ffn_dim": a.d_ffn,
        "max_position_embeddings": a.ctx,
        "do_layer_norm_before": True,
        "activation_function": "relu",
        "enable_bias": True,
        "layer_norm_elementwise_affine": True,
        "dropout": 0.0,
        "attention_dropout": 0.0,
        "activation_dropout": 0.0,
        "layerdrop": 0.0,
        "init_std": 0.02,
        "pad_token_id": 1,
        "bos_token_id": 2,
        "eos_token_id": 2,
        "tie_word_embeddings": True,
        "use_cache": True,
        "torch_dtype": "float16",
        "lifsim_tokenizer": "byte",
    }


# ---------------------------------------------------------------- numpy reference forward

def np_layernorm(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def np_forward(W, cfg, ids, collect=None):
    """Logits (T, vocab) for one sequence of T <= ctx byte ids. collect, if a
    list, receives per layer (ffn_input (T, d), relu_output (T, d_ffn))."""
    T, d, H = len(ids), cfg["hidden_size"], cfg["num_attention_heads"]
    hd = d // H
    x = W["model.decoder.embed_tokens.weight"][ids] + \
        W["model.decoder.embed_positions.weight"][np.arange(T) + OPT_POS_OFFSET]
    mask = np.triu(np.full((T, T), -np.inf, dtype=np.float32), 1)
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.decoder.layers.{l}."
        # attention block (pre-LN)
        h = np_layernorm(x, W[p + "self_attn_layer_norm.weight"], W[p + "self_attn_layer_norm.bias"])
        q = (h @ W[p + "self_attn.q_proj.weight"].T + W[p + "self_attn.q_proj.bias"]) * hd ** -0.5
        k = h @ W[p + "self_attn.k_proj.weight"].T + W[p + "self_attn.k_proj.bias"]
        v = h @ W[p + "self_attn.v_proj.weight"].T + W[p + "self_attn.v_proj.bias"]
        q, k, v = (t.reshape(T, H, hd).transpose(1, 0, 2) for t in (q, k, v))
        s = q @ k.transpose(0, 2, 1) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        o = (s @ v).transpose(1, 0, 2).reshape(T, d)
        x = x + o @ W[p + "self_attn.out_proj.weight"].T + W[p + "self_attn.out_proj.bias"]
        # FFN block (pre-LN, ReLU)
        h = np_layernorm(x, W[p + "final_layer_norm.weight"], W[p + "final_layer_norm.bias"])
        a = np.maximum(h @ W[p + "fc1.weight"].T + W[p + "fc1.bias"], 0)
        if collect is not None:
            collect.append((h, a))
        x = x + a @ W[p + "fc2.weight"].T + W[p + "fc2.bias"]
    x = np_layernorm(x, W["model.decoder.final_layer_norm.weight"], W["model.decoder.final_layer_norm.bias"])
    return x @ W["model.decoder.embed_tokens.weight"].T


MAX_CHECKPOINT_BYTES = 10 * 1000 * 1000


def expected_shapes(cfg):
    """Every tensor of an OPT checkpoint with word_embed_proj_dim == hidden_size
    and a tied head, under the Hugging Face names."""
    d, f, V = cfg["hidden_size"], cfg["ffn_dim"], cfg["vocab_size"]
    shapes = {"model.decoder.embed_tokens.weight": (V, d),
              "model.decoder.embed_positions.weight": (cfg["max_position_embeddings"] + OPT_POS_OFFSET, d),
              "model.decoder.final_layer_norm.weight": (d,),
              "model.decoder.final_layer_norm.bias": (d,)}
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.decoder.layers.{l}."
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            shapes[p + f"self_attn.{n}.weight"], shapes[p + f"self_attn.{n}.bias"] = (d, d), (d,)
        for n in ("self_attn_layer_norm", "final_layer_norm"):
            shapes[p + f"{n}.weight"], shapes[p + f"{n}.bias"] = (d,), (d,)
        shapes[p + "fc1.weight"], shapes[p + "fc1.bias"] = (f, d), (f,)
        shapes[p + "fc2.weight"], shapes[p + "fc2.bias"] = (d, f), (d,)
    return shapes


def validate_checkpoint(out_dir, cfg, W):
    """Raise ValueError naming the key or tensor unless out_dir is the
    checkpoint lifsim ships: a standard OPT config and tensors."""
    want = {"model_type": "opt", "do_layer_norm_before": True, "activation_function": "relu",
            "word_embed_proj_dim": cfg.get("hidden_size"), "lifsim_tokenizer": "byte",
            "enable_bias": True, "tie_word_embeddings": True}
    for k, v in want.items():
        if cfg.get(k) != v:
            raise ValueError(f"config.json: {k} is {cfg.get(k)!r}, expected {v!r}")
    if cfg["vocab_size"] < 256 or cfg["hidden_size"] % cfg["num_attention_heads"]:
        raise ValueError("config.json: vocab_size < 256 or heads do not divide hidden_size")
    shapes = expected_shapes(cfg)
    for name, shape in shapes.items():
        if name not in W:
            raise ValueError(f"model.safetensors: tensor {name} is missing")
        if tuple(W[name].shape) != shape:
            raise ValueError(f"model.safetensors: tensor {name} has shape {W[name].shape}, expected {shape}")
    extra = sorted(set(W) - set(shapes))
    if extra:
        raise ValueError(f"model.safetensors: unexpected tensor {extra[0]}")
    size = os.path.getsize(os.path.join(out_dir, "model.safetensors"))
    if size > MAX_CHECKPOINT_BYTES:
        raise ValueError(f"model.safetensors: {size} bytes, more than {MAX_CHECKPOINT_BYTES}")
    return sum(int(np.prod(s)) for s in shapes.values()), size


def np_check(out_dir, held, eval_tokens):
    """Held-out loss (nats/byte) and per-layer fraction of active ReLU outputs."""
    cfg = json.load(open(os.path.join(out_dir, "config.json")))
    W = read_safetensors(os.path.join(out_dir, "model.safetensors"))
    nparams, size = validate_checkpoint(out_dir, cfg, W)
    print(f"checkpoint OK: {len(W)} tensors, {nparams} parameters, {size} bytes")
    ctx, L = cfg["max_position_embeddings"], cfg["num_hidden_layers"]
    nll, n, active, rows = 0.0, 0, np.zeros(L), 0
    for s in range(0, min(eval_tokens, len(held) - 1) - ctx + 1, ctx):
        seq = held[s:s + ctx + 1].astype(np.int64)
        acts = []
        z = np_forward(W, cfg, seq[:-1], acts)
        z = z - z.max(-1, keepdims=True)
        lp = z - np.log(np.exp(z).sum(-1, keepdims=True))
        nll -= lp[np.arange(ctx), seq[1:]].sum()
        n += ctx
        for l, (_, a) in enumerate(acts):
            active[l] += (a > 0).mean() * ctx
        rows += ctx
    return nll / n, active / rows, cfg, W


# ---------------------------------------------------------------- trace dump (h5py)

def dump_trace(path, out_dir, held, tokens):
    import h5py
    cfg = json.load(open(os.path.join(out_dir, "config.json")))
    W = read_safetensors(os.path.join(out_dir, "model.safetensors"))
    ctx, L, d, f = (cfg["max_position_embeddings"], cfg["num_hidden_layers"],
                    cfg["hidden_size"], cfg["ffn_dim"])
    ids_all, inputs, bits = [], [], []
    for s in range(0, tokens, ctx):
        seq = held[s:s + min(ctx, tokens - s)].astype(np.int64)
        acts = []
        np_forward(W, cfg, seq, acts)
        ids_all.append(seq)
        inputs.append(np.stack([h for h, _ in acts], 1))                  # (T, L, d)
        bits.append(np.packbits(np.stack([a > 0 for _, a in acts], 1), axis=-1,
                                bitorder="little"))                        # (T, L, ceil(f/8))
    ids = np.concatenate(ids_all).astype(np.int32)
    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as h:
        # fixed-length, NUL-terminated strings, as lifsim's own writer stores them
        fixed = lambda s: np.bytes_(s.encode() + b"\0")
        h.attrs["schema"] = fixed("lifsim-trace")
        h.attrs["schema_version"] = np.int32(1)
        h.attrs["model"] = fixed("tinylm")
        h.attrs["layers"] = np.int32(L)
        h.attrs["d_ffn"] = np.int32(f)
        h.attrs["d_model"] = np.int32(d)
        h.attrs["tokens"] = np.int64(len(ids))
        h.attrs["source"] = fixed("recorded")
        h.attrs["generator"] = fixed("traces/tinylm/train.py --dump-trace (numpy forward, "
                                     "held-out text, sequences of %d bytes)" % ctx)
        h.attrs["seed"] = np.uint64(0)
        h.attrs["threshold"] = np.float64(0.0)
        h.create_dataset("tokens", data=ids, chunks=(1024,), maxshape=(None,))
        h.create_dataset("active", data=np.concatenate(bits), chunks=(64, 1, (f + 7) // 8),
                         maxshape=(None, L, (f + 7) // 8), compression="gzip")
        h.create_dataset("ffn_inputs", data=np.concatenate(inputs).astype("<f4"),
                         chunks=(16, 1, d), maxshape=(None, L, d), compression="gzip")
    os.replace(tmp, path)
    print(f"wrote {path}: {len(ids)} tokens, {L} layers, d_ffn {f}, d_model {d}")
    act = np.unpackbits(np.concatenate(bits), axis=-1, bitorder="little")[..., :f].astype(bool)
    print_activation_stats(act)


def print_activation_stats(act):
    """act: (T, L, f) bool. Per layer: active fraction; s_agg(k), the fraction
    of neurons active at least once in k consecutive tokens (mean over
    windows), whose complement is the paper's aggregated sparsity; and
    closest-friend co-activation: for each neuron i, max over j != i of
    P(j active | i active), median over neurons that fire; and the fractions
    of neurons never active and active in >= 99% of tokens."""
    T, L, f = act.shape
    ks = [k for k in (1, 2, 4, 8, 16, 32, 64) if k <= T]
    print("layer active_frac " + " ".join(f"agg_active(k={k})" for k in ks) +
          " friend_coact_median never_active_frac always_active_frac")
    for l in range(L):
        a = act[:, l].astype(np.int32)
        cs = np.concatenate([np.zeros((1, f), np.int32), np.cumsum(a, 0)])
        agg = [((cs[k:] - cs[:-k]) > 0).mean() for k in ks]
        c = a.T.astype(np.float64) @ a
        n = np.diag(c).copy()
        np.fill_diagonal(c, 0)
        fires = n > 0
        friend = np.median((c[fires] / n[fires, None]).max(1)) if fires.any() else float("nan")
        print(f"{l:5d} {a.mean():11.4f} " + " ".join(f"{v:15.4f}" for v in agg) +
              f" {friend:19.4f} {1 - fires.mean():17.4f} {(n >= 0.99 * T).mean():18.4f}")


# ---------------------------------------------------------------- torch training

def train(a, train_data, held):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    d, H = a.d_model, a.heads
    causal = torch.ones(a.ctx, a.ctx, dtype=torch.bool).triu(1)

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.self_attn_layer_norm = nn.LayerNorm(d)
            self.q_proj, self.k_proj = nn.Linear(d, d), nn.Linear(d, d)
            self.v_proj, self.out_proj = nn.Linear(d, d), nn.Linear(d, d)
            self.final_layer_norm = nn.LayerNorm(d)
            self.fc1, self.fc2 = nn.Linear(d, a.d_ffn), nn.Linear(a.d_ffn, d)

        def forward(self, x):
            B, T, _ = x.shape
            h = self.self_attn_layer_norm(x)
            q, k, v = (p(h).view(B, T, H, d // H).transpose(1, 2)
                       for p in (self.q_proj, self.k_proj, self.v_proj))
            s = (q * (d // H) ** -0.5) @ k.transpose(-1, -2)
            s = s.masked_fill(causal[:T, :T], float("-inf"))
            o = torch.softmax(s, -1) @ v
            x = x + self.out_proj(o.transpose(1, 2).reshape(B, T, d))
            return x + self.fc2(F.relu(self.fc1(self.final_layer_norm(x))))

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed_tokens = nn.Embedding(256, d)
            self.embed_positions = nn.Embedding(a.ctx + OPT_POS_OFFSET, d)
            self.layers = nn.ModuleList(Layer() for _ in range(a.layers))
            self.final_layer_norm = nn.LayerNorm(d)
            for m in self.modules():
                if isinstance(m, (nn.Linear, nn.Embedding)):
                    nn.init.normal_(m.weight, std=0.02)
                if isinstance(m, nn.Linear):
                    nn.init.zeros_(m.bias)

        def forward(self, ids):
            T = ids.shape[1]
            x = self.embed_tokens(ids) + self.embed_positions(
                torch.arange(T, device=ids.device) + OPT_POS_OFFSET)
            for layer in self.layers:
                x = layer(x)
            return self.final_layer_norm(x) @ self.embed_tokens.weight.T

    model = Model()
    nparams = sum(p.numel() for p in model.parameters())
    decay = [p for n, p in model.named_parameters() if p.dim() == 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95))
    g = torch.Generator().manual_seed(a.seed)
    tr = torch.from_numpy(train_data.astype(np.int64))
    hv = torch.from_numpy(held.astype(np.int64))

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
            ls = [F.cross_entropy(model(x).reshape(-1, 256), y.reshape(-1)).item()
                  for x, y in (batch(hv, ge) for _ in range(8))]
        model.train()
        return sum(ls) / len(ls)

    print(f"tinylm: {nparams} parameters, {len(train_data)} training bytes, "
          f"{len(held)} held-out bytes", flush=True)
    t0, total, step, log, cut_at = time.time(), a.steps, 0, [], None
    ema = None
    while step < total:
        for grp in opt.param_groups:
            grp["lr"] = lr_at(step, total)
        x, y = batch(tr, g)
        loss = F.cross_entropy(model(x).reshape(-1, 256), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        step += 1
        el = time.time() - t0
        if step % 100 == 0 or step == total:
            hl = held_loss()
            log.append({"step": step, "train_loss_ema": round(ema, 4), "held_loss": round(hl, 4),
                        "seconds": round(el, 1)})
            print(f"step {step}/{total} train {ema:.3f} held {hl:.3f} "
                  f"({el:.0f} s, {step * a.batch * a.ctx / el:.0f} tok/s)", flush=True)
        if (el > a.max_minutes * 60 or step == a.anneal_at) and total > step + 50:
            total = step + 50  # finish with a short anneal instead of an abrupt stop
            cut_at = step
            print(f"time budget reached after step {step}: stopping at step {total}", flush=True)
    secs = time.time() - t0
    hl = held_loss()
    # the same held-out windows np_check evaluates, for a side-by-side check
    model.eval()
    with torch.no_grad():
        nll, n = 0.0, 0
        for s in range(0, min(a.eval_tokens, len(held) - 1) - a.ctx + 1, a.ctx):
            seq = hv[s:s + a.ctx + 1][None]
            nll += F.cross_entropy(model(seq[:, :-1]).reshape(-1, 256), seq[0, 1:],
                                   reduction="sum").item()
            n += a.ctx
    print(f"torch fp32 held-out loss on the numpy-check windows: {nll / n:.4f} nats/byte", flush=True)

    # export under the standard HF OPT names, fp16
    W = {"model.decoder.embed_tokens.weight": model.embed_tokens.weight,
         "model.decoder.embed_positions.weight": model.embed_positions.weight,
         "model.decoder.final_layer_norm.weight": model.final_layer_norm.weight,
         "model.decoder.final_layer_norm.bias": model.final_layer_norm.bias}
    for l, layer in enumerate(model.layers):
        p = f"model.decoder.layers.{l}."
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            m = getattr(layer, name)
            W[p + f"self_attn.{name}.weight"], W[p + f"self_attn.{name}.bias"] = m.weight, m.bias
        for name in ("self_attn_layer_norm", "final_layer_norm", "fc1", "fc2"):
            m = getattr(layer, name)
            W[p + f"{name}.weight"], W[p + f"{name}.bias"] = m.weight, m.bias
    W = {k: v.detach().numpy().astype(np.float16) for k, v in W.items()}
    return W, {"parameters": nparams, "steps": step, "anneal_started_after_step": cut_at,
               "train_seconds": round(secs, 1),
               "final_train_loss_ema": round(ema, 4), "final_held_loss_torch_fp32": round(hl, 4),
               "held_out_loss_torch_fp32_on_check_windows": round(nll / n, 4),
               "log": log}


def compare_recipe(out_dir, loss, sparsity):
    r = json.load(open(os.path.join(out_dir, "recipe.json")))["numpy_check"]
    want = [r["held_out_loss_nats_per_byte_fp16"]] + r["active_fraction_per_layer"]
    got = [float(loss)] + [float(s) for s in sparsity]
    bad = [i for i, (g, w) in enumerate(zip(got, want)) if abs(g - w) > 1e-4]
    if bad or len(got) != len(want):
        print(f"train.py: {out_dir}: numpy check {got} does not match recipe.json {want}",
              file=sys.stderr)
        return 1
    print("loss and per-layer sparsity match recipe.json")
    return 0


def main():
    a = parse_args()
    data = load_text(a.text)
    train_data, held = split(data, a.holdout)
    if not a.check_only and not a.dump_trace:
        W, info = train(a, train_data, held)
        os.makedirs(a.out, exist_ok=True)
        tmp = os.path.join(a.out, "config.json.tmp")
        with open(tmp, "w") as f:
            json.dump(opt_config(a), f, indent=2)
            f.write("\n")
        os.replace(tmp, os.path.join(a.out, "config.json"))
        write_safetensors(os.path.join(a.out, "model.safetensors"), W)
        import torch
        recipe = {
            "command": " ".join(["traces/tinylm/train.py"] + sys.argv[1:]),
            "data": {"path": a.text, "package": "debian-reference-en", "bytes": int(len(data)),
                     "train_bytes": int(len(train_data)), "held_out_bytes": int(len(held)),
                     "held_out": f"last {a.holdout:g} of the text"},
            "hyperparameters": {k: getattr(a, k) for k in (
                "layers", "d_model", "d_ffn", "heads", "ctx", "batch", "steps", "lr", "warmup",
                "weight_decay", "seed", "threads", "max_minutes")},
            "optimizer": "AdamW betas (0.9, 0.95), linear warmup then cosine to 0.1*lr, "
                         "grad clip 1.0, no dropout, init N(0, 0.02), zero biases",
            "torch_version": torch.__version__,
            "result": info,
        }
    else:
        recipe = None
    if a.dump_trace:
        dump_trace(a.dump_trace, a.out, held, a.dump_tokens)
        return
    try:
        loss, sparsity, cfg, W = np_check(a.out, held, a.eval_tokens)
    except (ValueError, KeyError, OSError, struct.error) as e:
        print(f"train.py: {a.out}: {e}", file=sys.stderr)
        return 1
    size = os.path.getsize(os.path.join(a.out, "model.safetensors"))
    print(f"numpy check of {a.out}/model.safetensors ({size} bytes): held-out loss "
          f"{loss:.4f} nats/byte ({loss / math.log(2):.3f} bits/byte) over "
          f"{a.eval_tokens} bytes")
    for l, s in enumerate(sparsity):
        print(f"  layer {l}: {100 * s:.2f}% of FFN neurons active (sparsity {100 * (1 - s):.2f}%)")
    if a.expect_recipe:
        return compare_recipe(a.out, loss, sparsity)
    if recipe is not None:
        with open(os.path.join(a.out, "heldout.txt"), "wb") as f:
            f.write(held[:a.eval_tokens + 1].tobytes())
        recipe["numpy_check"] = {"held_out_loss_nats_per_byte_fp16": round(float(loss), 4),
                                 "eval_bytes": a.eval_tokens,
                                 "active_fraction_per_layer": [round(float(s), 4) for s in sparsity]}
        with open(os.path.join(a.out, "recipe.json"), "w") as f:
            json.dump(recipe, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    sys.exit(main())
