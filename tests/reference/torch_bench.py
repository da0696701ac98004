"""PyTorch side of launch/bench.sh: trains the same model as a shardtrain config
(fashion_mlp / fashion_cnn) with the same global batch and optimizer on the same data, and
prints steady-state samples/s and step time as one JSON line.

  /usr/bin/python3 tests/reference/torch_bench.py {mlp|cnn} --threads N --steps S [--device cuda]

--data is the HDF5 file, or an .npz with the arrays images/labels (for machines whose
Python has torch but no h5py, such as the lent GPU machine). The timed steps cycle over the
first 100 batches: step time does not depend on which samples a batch holds.
"""
import argparse
import json
import time

import numpy as np
import torch
import torch.nn as nn


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", choices=["mlp", "cnn"])
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--data", default="data/fashion_mnist.h5")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.device == "cuda":
        # fp32 as shardtrain: no TF32 in matmuls or convolutions.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    n = min(a.steps, 100) * a.batch
    images, labels = load(a.data, n)
    x = torch.from_numpy((images.astype(np.float32) / 255 - 0.2860) / 0.3530).to(a.device)
    y = torch.from_numpy(labels.astype(np.int64)).to(a.device)
    batches = n // a.batch
    model = build(a.model).to(a.device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    loss_fn = nn.CrossEntropyLoss()
    sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)
    t0 = None
    for s in range(a.steps):
        if s == a.warmup:
            sync()
            t0 = time.perf_counter()
        b = s % batches
        xb, yb = x[b * a.batch:(b + 1) * a.batch], y[b * a.batch:(b + 1) * a.batch]
        opt.zero_grad()
        loss_fn(model(xb), yb).backward()
        opt.step()
    sync()
    dt = time.perf_counter() - t0
    timed = a.steps - a.warmup
    print(json.dumps({"samples_per_s": timed * a.batch / dt, "step_ms": 1000 * dt / timed}))


if __name__ == "__main__":
    main()
