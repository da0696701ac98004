"""End-to-end properties of the GPT path (configs/gpt_ref.pbtxt on byte tokens) under mpirun:
  - 1 rank and 2 ranks with the same global batch end with the same parameters (1e-5 rel);
  - 20 straight steps and 10 steps resumed to 20 by a new process are bitwise identical:
    parameters, AdamW state, the loader's position and the losses logged after the resume;
  - `eval` prints the test loss that train's final evaluation logged, over every
    validation window; `inspect` shows one token table and no separate LM-head weight;
  - 20 steps on the real text take the validation loss from ln(256) (uniform over bytes)
    to well below it.
The first two train on a 60-window slice of data/fortunes.h5 (7 batches of 8 per epoch), so
20 steps cross two epoch boundaries, each epoch shuffled afresh, and step 10 is mid-epoch.
"""
import json
import math
import os
import re
import shutil
import tempfile
import unittest

import h5py
import numpy as np

import st_util as st

CFG = "gpt_ref.pbtxt"
SEQ = 16  # gpt_ref's data.seq_len
TEXT = os.path.join(st.SRC, "data", "fortunes.h5")
SLICE_WINDOWS, BATCH = 60, 8  # the slice's train windows; gpt_ref's data.global_batch


def windows(num_tokens):
    return (num_tokens - 1) // SEQ  # a window is SEQ inputs + the next token as last target


def metrics(run_dir, kind):
    """{step: record} of run_dir/metrics.jsonl, without the timing fields."""
    out = {}
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            rec = json.loads(line)
            if rec["kind"] == kind:
                for k in ("samples_per_s", "elapsed_s", "tokens_per_s", "flops_per_s", "mfu"):
                    rec.pop(k, None)
                out[rec["step"]] = rec
    return out


def data_position(path):
    with h5py.File(path, "r") as f:
        return {k: int(v) for k, v in f["data"].attrs.items()}


class GptTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="st_gpt_")
        cls.slice = os.path.join(cls.tmp, "slice.h5")
        with h5py.File(TEXT, "r") as src, h5py.File(cls.slice, "w") as dst:
            for k, v in src.attrs.items():
                dst.attrs[k] = v
            dst["train/tokens"] = src["train/tokens"][1000:1000 + SLICE_WINDOWS * SEQ + 1]
            dst["val/tokens"] = src["val/tokens"][:64 * SEQ + 1]
        cls.runs = {}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def train(self, np_ranks, run_dir, *extra):
        r = st.run(np_ranks, "train", st.config(CFG), "--run-dir", run_dir, *extra)
        self.assertEqual(r.returncode, 0, f"train failed:\n{r.stdout}\n{r.stderr}")
        return r

    def run_once(self, key, np_ranks, *extra):
        """Trains gpt_ref once per class for `key` (tests share runs); returns (run dir, result)."""
        if key not in self.runs:
            d = os.path.join(self.tmp, key)
            self.runs[key] = (d, self.train(np_ranks, d, *extra))
        return self.runs[key]

    def on_slice(self, np_ranks):
        return self.run_once(f"slice_np{np_ranks}", np_ranks, "--set", "data.path=" + self.slice)[0]

    def on_text(self):
        # log_every=1 so the first step's loss (the untrained model's) is logged too.
        return self.run_once("text_np2", 2, "--set", "train.log_every=1")

    # ---- 1 rank vs 2 ranks
    def test_one_and_two_ranks_agree(self):
        a = st.read_checkpoint(os.path.join(self.on_slice(1), "checkpoints", "latest"))
        b = st.read_checkpoint(os.path.join(self.on_slice(2), "checkpoints", "latest"))
        self.assertEqual((a["meta"]["step"], b["meta"]["step"]), (20, 20))
        params = [k for k in st.tensors(a) if k.startswith("/params/")]
        self.assertIn("/params/wte.weight", params)
        self.assertEqual(sorted(params), sorted(k for k in st.tensors(b) if k.startswith("/params/")))
        for k in params:
            x, y = a[k], b[k]
            if k.endswith(".attn.c_attn.bias"):
                # The key third of c_attn's bias adds one constant to a whole row of
                # attention scores, which softmax ignores: its gradient is 0 in exact
                # arithmetic and rounding noise (~1e-12) in practice, and AdamW turns that
                # noise into steps of ~lr * 1e-4 that differ with the reduction order (as in
                # PyTorch). Check it stayed at noise level in both runs; compare q and v.
                d = len(x) // 3
                for kb in (x[d:2 * d], y[d:2 * d]):
                    self.assertLess(float(np.max(np.abs(kb))), 1e-4, f"{k}: key bias left noise level")
                x, y = np.concatenate([x[:d], x[2 * d:]]), np.concatenate([y[:d], y[2 * d:]])
            rel = st.max_rel_diff(y, x)
            self.assertLess(rel, 1e-5, f"{k}: 1 rank vs 2 ranks differ by {rel:.2e} relative")

    # ---- resume
    def assert_bitwise_resume(self, np_ranks):
        straight = self.on_slice(np_ranks)
        resumed = os.path.join(self.tmp, f"resumed_np{np_ranks}")
        # A new run dir holding only the straight run's step-10 checkpoint, continued to 20
        # by a new mpirun (the same config, so the same schedule).
        os.makedirs(os.path.join(resumed, "checkpoints"))
        ckpt10 = os.path.join(straight, "checkpoints", "ckpt-00000010.h5")
        shutil.copy(ckpt10, os.path.join(resumed, "checkpoints"))
        r = self.train(np_ranks, resumed, "--set", "data.path=" + self.slice, "--resume", "auto")
        self.assertIn("at step 10", r.stderr + r.stdout)
        # The slice makes the resume land mid-epoch and the rest cross an epoch boundary.
        per_epoch = SLICE_WINDOWS // BATCH
        self.assertEqual(data_position(ckpt10), {"epoch": 10 // per_epoch, "batch": 10 % per_epoch,
                                                  "samples_seen": 10 * BATCH})
        a_path = os.path.join(straight, "checkpoints", "ckpt-00000020.h5")
        b_path = os.path.join(resumed, "checkpoints", "ckpt-00000020.h5")
        a, b = st.read_checkpoint(a_path), st.read_checkpoint(b_path)
        self.assertEqual(sorted(st.tensors(a)), sorted(st.tensors(b)))
        self.assertIn("/optimizer/exp_avg_sq/wte.weight", st.tensors(a))
        for k in st.tensors(a):
            self.assertTrue(np.array_equal(a[k], b[k]), f"np{np_ranks}: {k} differs after resume")
        for key in ("step", "optimizer_step"):
            self.assertEqual(a["meta"][key], b["meta"][key])
        want = {"epoch": 20 // per_epoch, "batch": 20 % per_epoch, "samples_seen": 20 * BATCH}
        self.assertEqual(data_position(a_path), want)
        self.assertEqual(data_position(b_path), want)
        # The resumed process read the same batches: its logged training losses and its
        # final evaluation are the straight run's, number for number.
        for kind, steps in (("train", [15, 20]), ("eval", [20])):
            got, ref = metrics(resumed, kind), metrics(straight, kind)
            self.assertEqual(sorted(got), steps, kind)
            for s in steps:
                self.assertEqual(got[s], ref[s], f"np{np_ranks}: {kind} record of step {s}")

    def test_bitwise_resume_np1(self):
        self.assert_bitwise_resume(1)

    def test_bitwise_resume_np2(self):
        self.assert_bitwise_resume(2)

    # ---- eval, inspect
    def test_eval_reproduces_train_final_test_loss(self):
        run_dir, r = self.on_text()
        latest = os.path.join(run_dir, "checkpoints", "latest")
        ev = st.run(2, "eval", st.config(CFG), "--checkpoint", latest)
        self.assertEqual(ev.returncode, 0, ev.stdout + ev.stderr)
        m = re.search(r"test loss (\d+\.\d+), test accuracy \d+\.\d\d% \((\d+) samples\)", ev.stdout)
        self.assertIsNotNone(m, ev.stdout)
        train_final = [l for l in r.stdout.splitlines() if l.startswith("eval step 20 ")]
        self.assertEqual(len(train_final), 1, r.stdout)
        self.assertIn(f"test loss {m.group(1)} ", train_final[0])
        self.assertAlmostEqual(float(m.group(1)), metrics(run_dir, "eval")[20]["test_loss"], delta=5e-5)
        # Every validation window once (the last, short eval batch included).
        with h5py.File(TEXT, "r") as f:
            self.assertEqual(int(m.group(2)), windows(len(f["val/tokens"])))

    def test_inspect_shows_tied_head(self):
        run_dir, _ = self.on_text()
        latest = os.path.join(run_dir, "checkpoints", "latest")
        ins = st.run(0, "inspect", latest)
        self.assertEqual(ins.returncode, 0, ins.stderr)
        self.assertRegex(ins.stdout, r"\n\s+wte\.weight\s+\[256, 32\]")
        self.assertNotIn("lm_head", ins.stdout)
        self.assertFalse([k for k in st.tensors(st.read_checkpoint(latest)) if "lm_head" in k])

    # ---- learning
    def test_validation_loss_falls_well_below_uniform(self):
        run_dir, _ = self.on_text()
        uniform = math.log(256)
        train, ev = metrics(run_dir, "train"), metrics(run_dir, "eval")
        # Untrained, the model predicts nearly uniformly over bytes: the yardstick is real.
        self.assertAlmostEqual(train[1]["loss"], uniform, delta=0.1)
        self.assertEqual(sorted(ev), [10, 20])
        self.assertLess(ev[20]["test_loss"], ev[10]["test_loss"])
        self.assertLess(ev[20]["test_loss"], uniform - 1.0, f"validation loss {ev[20]['test_loss']:.3f} after 20 steps")


if __name__ == "__main__":
    unittest.main(verbosity=2)
