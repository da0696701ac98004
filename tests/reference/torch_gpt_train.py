"""Trains shardtrain's GPT (gpt_torch.GPT) in PyTorch on the same token file, for a number
of steps or a wall-time budget, so that shardtrain and PyTorch trained for the same wall
time can be compared by validation loss.

  /usr/bin/python3 tests/reference/torch_gpt_train.py --data data/fortunes.h5 \\
      --n-layer 4 --n-head 4 --d-model 128 --seq-len 64 --batch 32 --lr 1e-3 \\
      --steps 2000 [--seconds 300] [--warmup 100 --min-lr 1e-4] [--weight-decay 0.1] \\
      [--beta1 0.9 --beta2 0.95 --eps 1e-8] [--clip-grad-norm 1.0] [--vocab 256] \\
      [--seed 1234] [--threads 2] [--eval-every 200] [--val-windows 256] [--device cpu]

Data: HDF5 /train/tokens and /val/tokens (uint16, 1-D). Window w of a split is
tokens[w*T : w*T + T + 1]: inputs its first T tokens, targets its last T. Training visits the
windows of each epoch in the order np.random.default_rng([seed, epoch]).permutation(n);
a step takes the next --batch windows, and an epoch's last partial batch is dropped.

Optimizer and schedule as shardtrain's (optim/schedule.cc): AdamW with decay on dim >= 2
tensors only; step i (0-based) uses lr * (i+1) / warmup while i < warmup, then a cosine from
lr to min_lr reached at the last planned step (--steps; with --seconds training may stop
earlier, the schedule still spans --steps). Constant lr: --warmup 0 --min-lr LR.
Defaults not given above are shardtrain's config defaults. --vocab defaults to the data
file's vocab_size attribute.

stdout, one JSON object per line:
  {"step": S, "elapsed_s": E, "val_loss": L}   after every --eval-every steps and at the end
  {"final": true, "steps": ..., "elapsed_s": ..., "val_loss": ..., "tokens_per_s": ...}
val_loss is the mean cross-entropy in nats per token over all validation windows (or the
first --val-windows). elapsed_s is training time only: the clock stops while evaluating,
so how often one evaluates does not change how far a time budget gets.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpt_torch  # noqa: E402


def lr_at(step, total_steps, lr, warmup, min_lr):
    """shardtrain's KIND_WARMUP_COSINE (optim/schedule.cc) for 0-based step."""
    if step < warmup:
        return lr * (step + 1) / warmup
    t = min(max((step - warmup) / max(1, total_steps - warmup - 1), 0.0), 1.0)
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * t))


def windows(tokens, seq_len, which):
    """[len(which), seq_len + 1] token windows (torch int64) of a 1-D int64 tensor."""
    starts = torch.as_tensor(which, dtype=torch.int64) * seq_len
    return tokens[starts[:, None] + torch.arange(seq_len + 1)]


class TrainBatches:
    """Step s -> (inputs, targets) [batch, seq_len], shuffled per epoch by (seed, epoch)."""

    def __init__(self, tokens, seq_len, batch, seed):
        self.tokens, self.seq_len, self.batch, self.seed = tokens, seq_len, batch, seed
        self.n_windows = (len(tokens) - 1) // seq_len
        self.per_epoch = self.n_windows // batch
        if self.per_epoch == 0:
            raise SystemExit(f"--batch {batch} is more than the {self.n_windows} training windows")
        self.epoch, self.order = None, None

    def __call__(self, step):
        epoch, b = divmod(step, self.per_epoch)
        if epoch != self.epoch:
            self.epoch, self.order = epoch, np.random.default_rng([self.seed, epoch]).permutation(self.n_windows)
        w = windows(self.tokens, self.seq_len, self.order[b * self.batch:(b + 1) * self.batch])
        return w[:, :-1], w[:, 1:]


@torch.no_grad()
def evaluate(model, val, seq_len, n_windows, batch, device):
    """Mean cross-entropy (nats per token) over the first n_windows validation windows."""
    model.eval()
    total = 0.0
    for first in range(0, n_windows, batch):
        w = windows(val, seq_len, range(first, min(first + batch, n_windows))).to(device)
        total += float(model.loss(model(w[:, :-1]), w[:, 1:])) * (w.shape[0] * seq_len)
    model.train()
    return total / (n_windows * seq_len)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="data/fortunes.h5")
    ap.add_argument("--n-layer", type=int, required=True)
    ap.add_argument("--n-head", type=int, required=True)
    ap.add_argument("--d-model", type=int, required=True)
    ap.add_argument("--seq-len", type=int, required=True)
    ap.add_argument("--max-seq", type=int, help="wpe rows (default --seq-len)")
    ap.add_argument("--vocab", type=int, help="real vocabulary size (default: the data file's vocab_size)")
    ap.add_argument("--batch", type=int, required=True, help="sequences per step")
    ap.add_argument("--lr", type=float, required=True)
    ap.add_argument("--warmup", type=int, default=0, help="warmup steps")
    ap.add_argument("--min-lr", type=float, default=0.0)
    ap.add_argument("--weight-decay", type=float, default=0.0, help="on dim >= 2 tensors only")
    ap.add_argument("--beta1", type=float, default=0.9)
    ap.add_argument("--beta2", type=float, default=0.999)
    ap.add_argument("--eps", type=float, default=1e-8)
    ap.add_argument("--clip-grad-norm", type=float, default=0.0, help="global L2 norm; 0 disables")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, required=True, help="planned steps: the schedule's length")
    ap.add_argument("--seconds", type=float, help="stop once training time reaches this (<= --steps steps)")
    ap.add_argument("--eval-every", type=int, default=0, help="0: only at the end")
    ap.add_argument("--val-windows", type=int, help="evaluate the first N validation windows (default all)")
    ap.add_argument("--eval-batch", type=int, default=64)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    return ap.parse_args(argv)


def load_tokens(path):
    import h5py  # only this script reads HDF5
    with h5py.File(path, "r") as f:
        train, val = f["train/tokens"][()], f["val/tokens"][()]
        vocab = f.attrs.get("vocab_size")
    return torch.from_numpy(train.astype(np.int64)), torch.from_numpy(val.astype(np.int64)), vocab


def main(argv=None):
    a = parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    if a.device == "cuda":  # fp32 as shardtrain: no TF32
        torch.backends.cuda.matmul.allow_tf32 = False
    train, val, file_vocab = load_tokens(a.data)
    vocab = a.vocab or (int(file_vocab) if file_vocab is not None else None)
    if vocab is None:
        raise SystemExit(f"{a.data} has no vocab_size attribute: pass --vocab")
    top = int(max(train.max(), val.max()))
    if top >= vocab:
        raise SystemExit(f"{a.data} holds token {top}, not below --vocab {vocab}")
    n_val = (len(val) - 1) // a.seq_len
    n_val = min(n_val, a.val_windows) if a.val_windows else n_val
    batches = TrainBatches(train, a.seq_len, a.batch, a.seed)

    torch.manual_seed(a.seed)
    model = gpt_torch.GPT(a.n_layer, a.n_head, a.d_model, vocab, max_seq=a.max_seq or a.seq_len)
    model.init_gpt2(a.seed).to(a.device)
    opt = gpt_torch.make_adamw(model, a.lr, (a.beta1, a.beta2), a.eps, a.weight_decay)
    print(f"torch_gpt_train: {gpt_torch.param_count(model)} parameters (padded vocab {model.padded_vocab}), "
          f"{batches.n_windows} train / {n_val} val windows, torch {torch.__version__}, {a.threads} threads",
          file=sys.stderr)

    def report(step, elapsed):
        loss = evaluate(model, val, a.seq_len, n_val, a.eval_batch, a.device)
        print(json.dumps({"step": step, "elapsed_s": round(elapsed, 3), "val_loss": loss}), flush=True)
        return loss

    sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)
    wall0 = time.perf_counter()
    elapsed, step, val_loss, train_loss = 0.0, 0, None, None
    while step < a.steps and (a.seconds is None or elapsed < a.seconds):
        t0 = time.perf_counter()
        x, y = (t.to(a.device) for t in batches(step))
        for group in opt.param_groups:
            group["lr"] = lr_at(step, a.steps, a.lr, a.warmup, a.min_lr)
        opt.zero_grad(set_to_none=True)
        loss = model.loss(model(x), y)
        loss.backward()
        if a.clip_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip_grad_norm)
        opt.step()
        train_loss = float(loss)  # also synchronizes, so the step's time is all counted
        sync()
        elapsed += time.perf_counter() - t0
        step += 1
        val_loss = report(step, elapsed) if a.eval_every and step % a.eval_every == 0 else None
    if val_loss is None:
        val_loss = report(step, elapsed)
    print(json.dumps({"final": True, "steps": step, "planned_steps": a.steps, "elapsed_s": round(elapsed, 3),
                      "wall_s": round(time.perf_counter() - wall0, 3), "val_loss": val_loss,
                      "train_loss": train_loss, "tokens_per_s": step * a.batch * a.seq_len / max(elapsed, 1e-9),
                      "params": gpt_torch.param_count(model)}), flush=True)


if __name__ == "__main__":
    main()
