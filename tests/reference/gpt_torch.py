"""The GPT shardtrain trains, in PyTorch: nanoGPT's GPT-2 with a padded, tied vocabulary.

This is the numeric reference for the C++ model, so it spells out every choice instead of
inheriting library defaults:
  x      = wte[idx] + wpe[0:T]
  block  : x = x + attn.c_proj(attention(ln_1(x)));  x = x + mlp.c_proj(gelu_tanh(mlp.c_fc(ln_2(x))))
  logits = ln_f(x) @ wte.weight.T                     [B, T, Vp], the head tied to wte
  loss   = mean cross-entropy over the first V columns (columns [V, Vp) are padding: they
           take no part in the softmax and get zero gradient)
LayerNorm has eps 1e-5 and a bias; GELU is the tanh approximation; no dropout. Attention
splits c_attn's output as q = [0, C), k = [C, 2C), v = [2C, 3C), head h owning columns
[h*D, (h+1)*D) of each, and scales scores by 1/sqrt(D).

Parameter names are exactly shardtrain's checkpoint names (/params/<name>), nn.Linear
layout [out, in]: wte.weight, wpe.weight, h.{i}.ln_1.weight, ..., ln_f.bias. There is no
lm_head tensor.

Imports torch only (no h5py), so torch_bench.py can use it on a machine without h5py.
"""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

LAYERNORM_EPS = 1e-5
VOCAB_PAD_MULTIPLE = 64


def pad_vocab(vocab_size):
    """The embedding rows shardtrain allocates: vocab_size rounded up to a multiple of 64."""
    return (vocab_size + VOCAB_PAD_MULTIPLE - 1) // VOCAB_PAD_MULTIPLE * VOCAB_PAD_MULTIPLE


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model, n_head, use_sdpa):
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(d_model, 3 * d_model)
        self.c_proj = nn.Linear(d_model, d_model)
        self.use_sdpa = use_sdpa

    def forward(self, x):
        B, T, C = x.shape
        D = C // self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, D).transpose(1, 2) for t in (q, k, v))  # [B, H, T, D]
        if self.use_sdpa:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            # nanoGPT's explicit path: the reference, and all torch 1.13 has.
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(D))
            causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
            att = att.masked_fill(~causal, float("-inf")).softmax(dim=-1)
            y = att @ v
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class MLP(nn.Module):
    def __init__(self, d_model):
        super().__init__()
        self.c_fc = nn.Linear(d_model, 4 * d_model)
        self.c_proj = nn.Linear(4 * d_model, d_model)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, d_model, n_head, use_sdpa):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d_model, eps=LAYERNORM_EPS)
        self.attn = CausalSelfAttention(d_model, n_head, use_sdpa)
        self.ln_2 = nn.LayerNorm(d_model, eps=LAYERNORM_EPS)
        self.mlp = MLP(d_model)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """use_sdpa: attention through F.scaled_dot_product_attention (torch >= 2.0; the
    benchmark's fast path). The reference always uses the explicit softmax."""

    def __init__(self, n_layer, n_head, d_model, vocab_size, padded_vocab=None, max_seq=1024, use_sdpa=False):
        super().__init__()
        if d_model % n_head:
            raise ValueError(f"d_model {d_model} is not a multiple of n_head {n_head}")
        padded_vocab = padded_vocab or pad_vocab(vocab_size)
        if padded_vocab < vocab_size:
            raise ValueError(f"padded_vocab {padded_vocab} < vocab_size {vocab_size}")
        if use_sdpa and not hasattr(F, "scaled_dot_product_attention"):
            raise ValueError(f"use_sdpa: torch {torch.__version__} has no F.scaled_dot_product_attention")
        self.n_layer, self.n_head, self.d_model = n_layer, n_head, d_model
        self.vocab_size, self.padded_vocab, self.max_seq = vocab_size, padded_vocab, max_seq
        self.wte = nn.Embedding(padded_vocab, d_model)
        self.wpe = nn.Embedding(max_seq, d_model)
        self.h = nn.ModuleList(Block(d_model, n_head, use_sdpa) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d_model, eps=LAYERNORM_EPS)

    def init_gpt2(self, seed):
        """GPT-2's init (as nanoGPT): N(0, 0.02) weights and embeddings, N(0, 0.02/sqrt(2L))
        for the two residual projections, zero biases, LayerNorm (1, 0). For training from
        scratch; the reference tests load shardtrain's parameters instead."""
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith(("attn.c_proj.weight", "mlp.c_proj.weight")):
                    p.copy_(torch.randn(p.shape, generator=g) * (0.02 / math.sqrt(2 * self.n_layer)))
                elif p.dim() >= 2:
                    p.copy_(torch.randn(p.shape, generator=g) * 0.02)
                elif ".ln_" in name or name.startswith("ln_f."):
                    p.fill_(1.0 if name.endswith(".weight") else 0.0)
                else:
                    p.zero_()
        return self

    def named_tensors(self):
        """{checkpoint name: parameter} in model order; the names are shardtrain's."""
        return dict(self.named_parameters())

    def load_params(self, params):
        """Copies {name: np.ndarray} into the parameters. Every parameter must be present
        with its exact shape and nothing else may be: a mismatch raises naming the tensor."""
        own = self.named_tensors()
        missing, extra = sorted(set(own) - set(params)), sorted(set(params) - set(own))
        if missing or extra:
            raise ValueError(f"parameters do not match the model: missing {missing}, unexpected {extra}")
        with torch.no_grad():
            for name, p in own.items():
                src = np.asarray(params[name])
                if tuple(src.shape) != tuple(p.shape):
                    raise ValueError(f"{name}: shape {list(src.shape)} given, model has {list(p.shape)}")
                p.copy_(torch.from_numpy(src.astype(np.float32)))
        return self

    def forward(self, idx, head_weight=None):
        """Logits [B, T, Vp]. head_weight replaces wte.weight in the head only (tests use it
        to separate the two uses of the tied matrix)."""
        T = idx.shape[1]
        if T > self.max_seq:
            raise ValueError(f"sequence length {T} > max_seq {self.max_seq}")
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for block in self.h:
            x = block(x)
        x = self.ln_f(x)
        return F.linear(x, self.wte.weight if head_weight is None else head_weight)

    def loss(self, logits, targets):
        return masked_loss(logits, targets, self.vocab_size)


def masked_loss(logits, targets, vocab_size):
    """Mean cross-entropy over all positions, softmax over the first vocab_size columns."""
    real = logits[..., :vocab_size]
    return F.cross_entropy(real.reshape(-1, vocab_size), targets.reshape(-1))


def adamw_groups(model, weight_decay):
    """nanoGPT's two groups: decay for tensors of dim >= 2 (weights, embeddings), none
    for dim-1 tensors (biases, LayerNorm)."""
    params = list(model.parameters())
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]


def make_adamw(model, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, **kwargs):
    """torch.optim.AdamW over adamw_groups(model). kwargs go to AdamW (e.g. fused=True)."""
    return torch.optim.AdamW(adamw_groups(model, weight_decay), lr=lr, betas=betas, eps=eps, **kwargs)


def load_adamw_state(opt, model, exp_avg, exp_avg_sq, step):
    """Gives opt (from make_adamw) shardtrain's AdamW state: {name: np.ndarray} moments and
    `step` optimizer steps already taken (checkpoint /meta optimizer_step), so the next
    opt.step() is step + 1 with the same bias correction as shardtrain's."""
    for name, p in model.named_tensors().items():
        for what, src in (("exp_avg", exp_avg), ("exp_avg_sq", exp_avg_sq)):
            if name not in src:
                raise ValueError(f"optimizer state {what}/{name} is missing")
            if tuple(src[name].shape) != tuple(p.shape):
                raise ValueError(f"optimizer state {what}/{name}: shape {list(src[name].shape)}, "
                                 f"parameter has {list(p.shape)}")
        opt.state[p]["step"] = torch.tensor(float(step))
        opt.state[p]["exp_avg"] = torch.from_numpy(np.array(exp_avg[name], dtype=np.float32)).to(p.device)
        opt.state[p]["exp_avg_sq"] = torch.from_numpy(np.array(exp_avg_sq[name], dtype=np.float32)).to(p.device)


def param_count(model):
    return sum(p.numel() for p in model.parameters())
