"""PyTorch CPU side of launch/bench.sh: trains the same model as a shardtrain config
(fashion_mlp / fashion_cnn) with the same global batch and optimizer on the same data, and
prints steady-state samples/s and step time as one JSON line.

  /usr/bin/python3 tests/reference/torch_bench.py {mlp|cnn} --threads N --steps S
"""
import argparse
import json
import time

import h5py
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", choices=["mlp", "cnn"])
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--data", default="data/fashion_mnist.h5")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    with h5py.File(a.data, "r") as f:
        n = a.steps * a.batch
        x = torch.from_numpy((f["train/images"][:n].astype(np.float32) / 255 - 0.2860) / 0.3530)
        y = torch.from_numpy(f["train/labels"][:n].astype(np.int64))
    model = build(a.model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    loss_fn = nn.CrossEntropyLoss()
    t0 = None
    for s in range(a.steps):
        if s == a.warmup:
            t0 = time.perf_counter()
        xb, yb = x[s * a.batch:(s + 1) * a.batch], y[s * a.batch:(s + 1) * a.batch]
        opt.zero_grad()
        loss_fn(model(xb), yb).backward()
        opt.step()
    dt = time.perf_counter() - t0
    timed = a.steps - a.warmup
    print(json.dumps({"samples_per_s": timed * a.batch / dt, "step_ms": 1000 * dt / timed}))


if __name__ == "__main__":
    main()
