"""PyTorch side of launch/bench.sh: trains the same model as a shardtrain config with the
same global batch and optimizer, and prints steady-state throughput as one JSON line.

  /usr/bin/python3 tests/reference/torch_bench.py {mlp|cnn} --threads N --steps S [--device cuda]
  /usr/bin/python3 tests/reference/torch_bench.py gpt --threads N --steps S --warmup W \\
      [--batch 8] [--n-layer 12 --n-head 12 --d-model 768 --seq-len 1024 --vocab 50257] \\
      [--device cuda] [--precision bf16|fp32] [--compile] [--explicit-attention] [--peak-tflops 989]

mlp / cnn (fashion_mlp / fashion_cnn): fp32 (no TF32 on CUDA, as shardtrain). --data is the
HDF5 file, or an .npz with the arrays images/labels (for machines whose Python has torch but
no h5py, such as the lent GPU machine). The timed steps cycle over the first 100 batches:
step time does not depend on which samples a batch holds.

gpt (gpt_torch.GPT, the model of the GPT reference test) on random tokens, AdamW with
nanoGPT's two groups. On CUDA by default as a tuned PyTorch run would be: bf16 autocast
(fp32 master weights), F.scaled_dot_product_attention when this torch has it (else
nanoGPT's explicit attention), fused AdamW when available, optionally torch.compile.
Adds tokens/s and MFU to the JSON line (see mfu()).

The first --warmup steps are not timed.
"""
import argparse
import inspect
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpt_torch  # noqa: E402


def build(model):
    if model == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                             nn.Linear(128, 10))
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.25), nn.Linear(128, 10))


def load(path, n):
    """The first n training images [n, 1, 28, 28] and labels."""
    if path.endswith(".npz"):
        d = np.load(path)
        return d["images"][:n], d["labels"][:n]
    import h5py  # only needed for the HDF5 file
    with h5py.File(path, "r") as f:
        return f["train/images"][:n], f["train/labels"][:n]


def image_setup(a):
    """(model, optimizer, batch(step) -> (x, y), loss(model, x, y)) for mlp / cnn."""
    n = min(a.steps, 100) * a.batch
    images, labels = load(a.data, n)
    x = torch.from_numpy((images.astype(np.float32) / 255 - 0.2860) / 0.3530).to(a.device)
    y = torch.from_numpy(labels.astype(np.int64)).to(a.device)
    count = n // a.batch
    model = build(a.model).to(a.device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    loss_fn = nn.CrossEntropyLoss()

    def batch(s):
        b = s % count
        return x[b * a.batch:(b + 1) * a.batch], y[b * a.batch:(b + 1) * a.batch]
    return model, opt, batch, lambda m, xb, yb: loss_fn(m(xb), yb)


def gpt_setup(a):
    """(model, optimizer, batch(step), loss) for gpt, plus what the JSON line reports."""
    sdpa = not a.explicit_attention and hasattr(torch.nn.functional, "scaled_dot_product_attention")
    model = gpt_torch.GPT(a.n_layer, a.n_head, a.d_model, a.vocab, max_seq=a.seq_len, use_sdpa=sdpa)
    model.init_gpt2(0).to(a.device)
    fused = a.device == "cuda" and "fused" in inspect.signature(torch.optim.AdamW).parameters
    opt = gpt_torch.make_adamw(model, 6e-4, (0.9, 0.95), 1e-8, 0.1, **({"fused": True} if fused else {}))
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(a.vocab, (10, a.batch, a.seq_len + 1), generator=g).to(a.device)

    def batch(s):
        return tokens[s % 10, :, :-1], tokens[s % 10, :, 1:]
    info = {"params": gpt_torch.param_count(model), "attention": "sdpa" if sdpa else "explicit",
            "fused_adamw": fused}
    return model, opt, batch, lambda m, xb, yb: gpt_torch.masked_loss(m(xb), yb, a.vocab), info


def mfu(params, a, tokens_per_s):
    """Model FLOPs utilisation with llm.c's count (Kaplan et al. 2020, sec. 2.1):
    6N + 6*L*T*d FLOPs per trained token, N = ALL parameters (wte with its padded rows, wpe,
    biases, LayerNorm; wte is the tied head, so it does take part in a matmul). nanoGPT's
    PaLM count, 6N + 12*L*T*d, would read higher. Returns (flops per token, MFU)."""
    per_token = 6 * params + 6 * a.n_layer * a.seq_len * a.d_model
    return per_token, tokens_per_s * per_token / (a.peak_tflops * 1e12)


def parse_args(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("model", choices=["mlp", "cnn", "gpt"])
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--batch", type=int, help="samples (gpt: sequences) per step; default 128, gpt 8")
    ap.add_argument("--data", default="data/fashion_mnist.h5", help="mlp / cnn only")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--precision", choices=["fp32", "bf16"], help="default: bf16 for gpt on cuda, else fp32")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model (torch >= 2.0)")
    g = ap.add_argument_group("gpt")
    g.add_argument("--n-layer", type=int, default=12)
    g.add_argument("--n-head", type=int, default=12)
    g.add_argument("--d-model", type=int, default=768)
    g.add_argument("--seq-len", type=int, default=1024)
    g.add_argument("--vocab", type=int, default=50257, help="real vocabulary; padded to a multiple of 64")
    g.add_argument("--explicit-attention", action="store_true", help="nanoGPT's softmax path, not SDPA")
    g.add_argument("--peak-tflops", type=float, default=989.0, help="for MFU; 989: H100/H200 dense bf16")
    a = ap.parse_args(argv)
    if not 0 <= a.warmup < a.steps:
        ap.error(f"--warmup {a.warmup} must be in [0, --steps {a.steps})")
    a.batch = a.batch or (8 if a.model == "gpt" else 128)
    a.precision = a.precision or ("bf16" if a.model == "gpt" and a.device == "cuda" else "fp32")
    return a


def main(argv=None):
    a = parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.device == "cuda":
        # fp32 as shardtrain: no TF32 in matmuls or convolutions (bf16 autocast is opt-in).
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    info = {}
    if a.model == "gpt":
        model, opt, batch, loss_of, info = gpt_setup(a)
    else:
        model, opt, batch, loss_of = image_setup(a)
    if a.compile and not hasattr(torch, "compile"):
        print(f"torch_bench: torch {torch.__version__} has no torch.compile; running eagerly", file=sys.stderr)
        a.compile = False
    run = torch.compile(model) if a.compile else model
    autocast = torch.autocast(device_type=a.device, dtype=torch.bfloat16, enabled=a.precision == "bf16")
    sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)
    t0 = None
    for s in range(a.steps):
        if s == a.warmup:
            sync()
            t0 = time.perf_counter()
        xb, yb = batch(s)
        opt.zero_grad(set_to_none=True)
        with autocast:
            loss = loss_of(run, xb, yb)
        loss.backward()
        opt.step()
    sync()
    dt = time.perf_counter() - t0
    timed = a.steps - a.warmup
    out = {"samples_per_s": timed * a.batch / dt, "step_ms": 1000 * dt / timed}
    if a.model == "gpt":
        tokens_per_s = timed * a.batch * a.seq_len / dt
        per_token, util = mfu(info["params"], a, tokens_per_s)
        out.update(tokens_per_s=tokens_per_s, mfu=util, flops_per_token=per_token, peak_tflops=a.peak_tflops,
                   precision=a.precision, compile=a.compile, torch=torch.__version__, **info)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
