"""shardtrain's GPT against PyTorch (gpt_torch.py) on one training step.

shardtrain trains configs/gpt_ref.pbtxt for 2 steps on data/fortunes.h5 and checkpoints.
The C++ tool gpt_step_dump (env ST_GPT_STEP_DUMP; default tests/reference/gpt_step_dump
beside the shardtrain binary's build directory) is run as

    gpt_step_dump CONFIG CHECKPOINT OUT.h5

It loads the checkpoint, takes the next training batch, runs forward + backward and one
AdamW step, and writes OUT.h5:
  /batch/tokens, /batch/targets   int32 [B, T]
  /grads/<name>                   float32, gradient of the mean loss (before any clipping)
  /params_after/<name>            float32, parameters after the AdamW step
  attributes (root)               loss, lr, beta1, beta2, eps, weight_decay (float64; lr is
                                  the scheduled lr of this step; decay applies to dim >= 2
                                  tensors only), n_layer, n_head, d_model, vocab_size,
                                  padded_vocab, max_seq (int64); optional clip_grad_norm
                                  (float64, 0 or absent: no clipping)
PyTorch builds the model from the checkpoint's /params, loads its AdamW state
(/optimizer/exp_avg, /optimizer/exp_avg_sq, /meta optimizer_step), runs the same batch and
takes the same step. Loss, every gradient and every updated parameter must agree within
1e-4 relative (max |ours - torch| / max |torch| per tensor).
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import h5py
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, HERE)
import gpt_torch  # noqa: E402
import st_util as st  # noqa: E402

DUMP = os.environ.get("ST_GPT_STEP_DUMP", os.path.join(os.path.dirname(st.BIN), "tests", "reference", "gpt_step_dump"))
TOKENS = os.path.join(st.SRC, "data", "fortunes.h5")
CONFIG = st.config("gpt_ref.pbtxt")
TOL = 1e-4
DIMS = ("n_layer", "n_head", "d_model", "vocab_size", "padded_vocab", "max_seq")


def read_group(f, group):
    return {name: ds[()] for name, ds in f[group].items()}


def torch_step(ckpt, dump):
    """The model built from ckpt, run on dump's batch with dump's hyperparameters: returns
    (model, loss, {name: grad}, {name: param after the step}, batch)."""
    a = dump["attrs"]
    model = gpt_torch.GPT(*(int(a[k]) for k in DIMS))
    model.load_params(ckpt["params"])
    opt = gpt_torch.make_adamw(model, float(a["lr"]), (float(a["beta1"]), float(a["beta2"])), float(a["eps"]),
                               float(a["weight_decay"]))
    gpt_torch.load_adamw_state(opt, model, ckpt["exp_avg"], ckpt["exp_avg_sq"], ckpt["optimizer_step"])
    idx, targets = (torch.from_numpy(dump[k].astype(np.int64)) for k in ("tokens", "targets"))
    loss = model.loss(model(idx), targets)
    loss.backward()
    grads = {n: p.grad.numpy().copy() for n, p in model.named_tensors().items()}
    if float(a.get("clip_grad_norm", 0.0)) > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), float(a["clip_grad_norm"]))
    opt.step()
    after = {n: p.detach().numpy().copy() for n, p in model.named_tensors().items()}
    return model, float(loss), grads, after, (idx, targets)


class GptReferenceTest(unittest.TestCase):
    """Train, dump and the PyTorch step run once (setUpClass); each test checks one part."""

    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(1)
        cls.tmp = tempfile.mkdtemp(prefix="st_gpt_ref_")
        run_dir = os.path.join(cls.tmp, "run")
        r = st.run(1, "train", CONFIG, "--run-dir", run_dir, "--set", "train.steps=2")
        if r.returncode != 0:
            raise AssertionError(f"shardtrain train gpt_ref.pbtxt failed:\n{r.stdout}{r.stderr}")
        ckpt_path = os.path.join(run_dir, "checkpoints", "ckpt-00000002.h5")
        dump_path = os.path.join(cls.tmp, "step.h5")
        r = subprocess.run([DUMP, CONFIG, ckpt_path, dump_path], cwd=st.SRC, capture_output=True, text=True,
                           timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
        if r.returncode != 0:
            raise AssertionError(f"{DUMP} failed (rc {r.returncode}):\n{r.stdout}{r.stderr}")
        with h5py.File(ckpt_path, "r") as f:
            cls.ckpt = {"params": read_group(f, "params"), "exp_avg": read_group(f, "optimizer/exp_avg"),
                        "exp_avg_sq": read_group(f, "optimizer/exp_avg_sq"),
                        "optimizer_step": int(f["meta"].attrs["optimizer_step"]),
                        "optimizer_kind": f["meta"].attrs["optimizer_kind"]}
        with h5py.File(dump_path, "r") as f:
            cls.dump = {"attrs": dict(f.attrs), "tokens": f["batch/tokens"][()], "targets": f["batch/targets"][()],
                        "grads": read_group(f, "grads"), "params_after": read_group(f, "params_after")}
        cls.model, cls.loss, cls.grads, cls.after, cls.batch = torch_step(cls.ckpt, cls.dump)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def assert_tensors_match(self, ours, ref, what):
        self.assertEqual(sorted(ours), sorted(ref), f"{what}: shardtrain's tensor names differ from the model's")
        worst = (0.0, "")
        for name, want in ref.items():
            self.assertEqual(ours[name].shape, want.shape, f"{what} {name}: shape")
            rel = st.max_rel_diff(ours[name], want)
            worst = max(worst, (rel, name))
            self.assertLess(rel, TOL, f"{what} {name} differs from PyTorch by {rel:.2e} relative "
                                      f"(max |torch| {np.abs(want).max():.3e})")
        print(f"\n{what}: largest difference from PyTorch {worst[0]:.2e} relative ({worst[1]})", file=sys.stderr)

    def test_dump_describes_the_checkpoint_and_a_real_batch(self):
        a, d = self.dump["attrs"], self.dump
        self.assertEqual(self.ckpt["optimizer_kind"], "adamw")
        self.assertEqual(self.ckpt["optimizer_step"], 2)
        self.assertEqual(int(a["padded_vocab"]), gpt_torch.pad_vocab(int(a["vocab_size"])))
        self.assertGreater(float(a["lr"]), 0.0, "a zero lr would make the parameter check vacuous")
        self.assertEqual(d["tokens"].dtype, np.int32)
        self.assertEqual(d["targets"].dtype, np.int32)
        self.assertEqual(d["tokens"].shape, d["targets"].shape)
        self.assertLessEqual(d["tokens"].shape[1], int(a["max_seq"]))
        self.assertTrue(np.array_equal(d["targets"][:, :-1], d["tokens"][:, 1:]), "targets are not tokens shifted by one")
        self.assertLess(int(max(d["tokens"].max(), d["targets"].max())), int(a["vocab_size"]))

    def test_batch_rows_are_windows_of_the_train_split(self):
        # Window w of the training tokens is tokens[w*T : w*T + T + 1]: inputs its first T,
        # targets its last T (as torch_gpt_train.py reads the same file).
        with h5py.File(TOKENS, "r") as f:
            train = f["train/tokens"][()].astype(np.int64)
        t = self.dump["tokens"].shape[1]
        n = (len(train) - 1) // t
        windows = np.lib.stride_tricks.as_strided(train, (n, t + 1), (t * train.strides[0], train.strides[0]))
        rows = np.concatenate([self.dump["tokens"], self.dump["targets"][:, -1:]], axis=1).astype(np.int64)
        for r, row in enumerate(rows):
            self.assertTrue((windows == row).all(axis=1).any(), f"batch row {r} is no window of /train/tokens")

    def test_loss_matches_pytorch(self):
        ours = float(self.dump["attrs"]["loss"])
        rel = abs(ours - self.loss) / abs(self.loss)
        self.assertLess(rel, TOL, f"loss {ours:.7f} vs PyTorch {self.loss:.7f}: {rel:.2e} relative")

    def test_every_gradient_matches_pytorch(self):
        self.assert_tensors_match(self.dump["grads"], self.grads, "gradient")

    def test_tied_wte_gradient_has_both_uses(self):
        # PyTorch's wte gradient sums the embedding lookup and the head. Each part alone must
        # be far from the sum, so that dropping either one fails the gradient check.
        idx, targets = self.batch
        model = self.model.load_params(self.ckpt["params"])  # undo setUpClass's step
        model.zero_grad()
        head = model.wte.weight.detach().clone().requires_grad_(True)
        model.loss(model(idx, head_weight=head), targets).backward()
        full = self.grads["wte.weight"]
        ours = self.dump["grads"]["wte.weight"]
        for part, g in (("embedding lookup", model.wte.weight.grad.numpy()), ("tied head", head.grad.numpy())):
            self.assertGreater(st.max_rel_diff(g, full), 10 * TOL, f"the {part} alone is the whole wte gradient")
            self.assertGreater(st.max_rel_diff(ours, g), 10 * TOL,
                               f"shardtrain's wte gradient is only the {part}'s contribution")
        rel = st.max_rel_diff(ours, full)
        self.assertLess(rel, TOL, f"gradient wte.weight differs from PyTorch's (both uses) by {rel:.2e} relative")

    def test_every_updated_parameter_matches_pytorch(self):
        self.assert_tensors_match(self.dump["params_after"], self.after, "parameter after the step")
        for name, before in self.ckpt["params"].items():
            # Meaningful only if the step moved every tensor by more than the tolerance.
            self.assertGreater(st.max_rel_diff(self.after[name], before), TOL, f"{name} did not move")


if __name__ == "__main__":
    unittest.main(verbosity=2)
