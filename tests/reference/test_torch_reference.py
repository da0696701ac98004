"""PyTorch (Debian's python3-torch, CPU) as the numeric reference.

shardtrain trains the ref_mlp config 3 steps on 2 ranks and checkpoints; PyTorch loads that
checkpoint via h5py (parameters AND optimizer state), and shardtrain resumes it for 3 more
steps. PyTorch takes the same 3 steps on the same batches with torch.optim.SGD / AdamW; the
parameters must agree within 1e-5 relative. Done for SGD (momentum, weight decay) and AdamW.
"""
import os
import shutil
import sys
import tempfile
import unittest

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
import st_util as st  # noqa: E402

BATCH, MEAN, STD = 32, 0.2860, 0.3530


def batches(first, count):
    with h5py.File(st.DATA, "r") as f:
        x = f["train/images"][first * BATCH:(first + count) * BATCH]
        y = f["train/labels"][first * BATCH:(first + count) * BATCH]
    x = (x.astype(np.float32) / np.float32(255) - np.float32(MEAN)) / np.float32(STD)
    return [(torch.from_numpy(x[i * BATCH:(i + 1) * BATCH]), torch.from_numpy(y[i * BATCH:(i + 1) * BATCH].astype(np.int64)))
            for i in range(count)]


class TorchReferenceTest(unittest.TestCase):
    def setUp(self):
        torch.set_num_threads(1)
        self.tmp = tempfile.mkdtemp(prefix="st_ref_")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_shardtrain(self, overrides):
        run_dir = os.path.join(self.tmp, "run")
        sets = sum((["--set", o] for o in overrides), [])
        r = st.run(2, "train", st.config("ref_mlp.pbtxt"), "--run-dir", run_dir, *sets)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = st.run(2, "train", st.config("ref_mlp.pbtxt"), "--run-dir", run_dir, "--resume", "auto",
                   "--set", "train.steps=6", "--set", "checkpoint.every=3", *sets)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        ck = os.path.join(run_dir, "checkpoints")
        return os.path.join(ck, "ckpt-00000003.h5"), os.path.join(ck, "ckpt-00000006.h5")

    def torch_model(self, ckpt):
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 64), torch.nn.ReLU(),
                                    torch.nn.Linear(64, 10))
        names = {"1.weight": "fc1.weight", "1.bias": "fc1.bias", "3.weight": "fc2.weight", "3.bias": "fc2.bias"}
        with h5py.File(ckpt, "r") as f:
            with torch.no_grad():
                for tname, p in model.named_parameters():
                    p.copy_(torch.from_numpy(f["params"][names[tname]][()]))
        return model, names

    def check(self, model, names, ckpt_before, ckpt_after, what):
        with h5py.File(ckpt_before, "r") as f0, h5py.File(ckpt_after, "r") as f:
            for tname, p in model.named_parameters():
                ours = f["params"][names[tname]][()]
                rel = st.max_rel_diff(ours, p.detach().numpy())
                self.assertLess(rel, 1e-5, f"{what}: {names[tname]} differs from PyTorch by {rel:.2e} relative")
                # The comparison means something only if the 3 steps moved the parameters.
                self.assertGreater(st.max_rel_diff(ours, f0["params"][names[tname]][()]), 1e-4)

    def train_torch(self, model, opt, first_batch):
        loss_fn = torch.nn.CrossEntropyLoss()
        for x, y in batches(first_batch, 3):
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()

    def test_sgd_momentum_matches_pytorch(self):
        c3, c6 = self.run_shardtrain([])
        model, names = self.torch_model(c3)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=0.001)
        with h5py.File(c3, "r") as f:
            self.assertEqual(f["meta"].attrs["optimizer_kind"], "sgd")
            for tname, p in model.named_parameters():
                opt.state[p]["momentum_buffer"] = torch.from_numpy(f["optimizer/momentum_buffer"][names[tname]][()]).clone()
        self.train_torch(model, opt, first_batch=3)
        self.check(model, names, c3, c6, "SGD")

    def test_adamw_matches_pytorch(self):
        c3, c6 = self.run_shardtrain(["optimizer.kind=adamw", "optimizer.lr=0.003", "optimizer.weight_decay=0.05"])
        model, names = self.torch_model(c3)
        opt = torch.optim.AdamW(model.parameters(), lr=0.003, weight_decay=0.05, betas=(0.9, 0.999), eps=1e-8)
        with h5py.File(c3, "r") as f:
            self.assertEqual(f["meta"].attrs["optimizer_step"], 3)
            for tname, p in model.named_parameters():
                opt.state[p]["step"] = torch.tensor(3.0)
                opt.state[p]["exp_avg"] = torch.from_numpy(f["optimizer/exp_avg"][names[tname]][()]).clone()
                opt.state[p]["exp_avg_sq"] = torch.from_numpy(f["optimizer/exp_avg_sq"][names[tname]][()]).clone()
        self.train_torch(model, opt, first_batch=3)
        self.check(model, names, c3, c6, "AdamW")


if __name__ == "__main__":
    unittest.main(verbosity=2)
