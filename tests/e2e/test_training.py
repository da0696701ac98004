"""End-to-end training properties on the real Fashion-MNIST data under mpirun:
  - 1 rank and 2 ranks with the same global batch end with the same parameters (1e-5 rel);
  - a run of 2N steps and a run of N steps resumed to 2N are bitwise identical;
  - eval and inspect read what train wrote.
"""
import os
import shutil
import subprocess
import tempfile
import unittest

import numpy as np

import st_util as st


class TrainingTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="st_e2e_")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def train(self, np_ranks, cfg, run_dir, *extra):
        r = st.run(np_ranks, "train", st.config(cfg), "--run-dir", run_dir, *extra)
        self.assertEqual(r.returncode, 0, f"train failed:\n{r.stdout}\n{r.stderr}")
        return r

    def assert_world_size_invariant(self, cfg):
        a, b = os.path.join(self.tmp, "np1"), os.path.join(self.tmp, "np2")
        self.train(1, cfg, a)
        self.train(2, cfg, b)
        ca = st.read_checkpoint(os.path.join(a, "checkpoints", "latest"))
        cb = st.read_checkpoint(os.path.join(b, "checkpoints", "latest"))
        self.assertEqual(ca["meta"]["step"], 20)
        self.assertEqual(cb["meta"]["step"], 20)
        params = [k for k in st.tensors(ca) if k.startswith("/params/")]
        self.assertTrue(params)
        for k in params:
            rel = st.max_rel_diff(cb[k], ca[k])
            self.assertLess(rel, 1e-5, f"{cfg} {k}: 1 rank vs 2 ranks differ by {rel:.2e} relative")
            # And training actually moved the parameters away from each other's init... not a no-op:
        self.assertGreater(st.max_rel_diff(ca["/params/fc1.weight"], np.zeros_like(ca["/params/fc1.weight"])), 0)

    def test_one_and_two_ranks_agree_mlp(self):
        self.assert_world_size_invariant("tiny_mlp.pbtxt")

    def test_one_and_two_ranks_agree_cnn_with_dropout(self):
        # Dropout masks are keyed by global sample index, so splitting the batch over ranks
        # must not change them.
        self.assert_world_size_invariant("tiny_cnn.pbtxt")

    def assert_bitwise_resume(self, cfg, np_ranks):
        straight = os.path.join(self.tmp, "straight")
        resumed = os.path.join(self.tmp, "resumed")
        # Run 1: 20 steps straight (checkpoints at 10 and 20).
        self.train(np_ranks, cfg, straight)
        # Run 2: 10 steps, then a new process resumes to 20. --set train.steps would change
        # the schedule, so stop with the run's own step-10 checkpoint: a fresh run dir that
        # holds only ckpt 10, resumed with --resume auto in a new mpirun.
        os.makedirs(os.path.join(resumed, "checkpoints"))
        shutil.copy(os.path.join(straight, "checkpoints", "ckpt-00000010.h5"),
                    os.path.join(resumed, "checkpoints"))
        r = self.train(np_ranks, cfg, resumed, "--resume", "auto")
        self.assertIn("resuming from", r.stderr + r.stdout)
        a = st.read_checkpoint(os.path.join(straight, "checkpoints", "ckpt-00000020.h5"))
        b = st.read_checkpoint(os.path.join(resumed, "checkpoints", "ckpt-00000020.h5"))
        self.assertEqual(sorted(st.tensors(a)), sorted(st.tensors(b)))
        self.assertTrue(any(k.startswith("/optimizer/") for k in st.tensors(a)))
        for k in st.tensors(a):
            self.assertTrue(np.array_equal(a[k], b[k]), f"{cfg}: {k} differs after resume")
        for key in ("step", "optimizer_step"):
            self.assertEqual(a["meta"][key], b["meta"][key])

    def test_bitwise_resume_sgd_momentum_np2(self):
        self.assert_bitwise_resume("tiny_mlp.pbtxt", 2)

    def test_bitwise_resume_adamw_dropout_cosine_np2(self):
        self.assert_bitwise_resume("tiny_cnn.pbtxt", 2)

    def test_bitwise_resume_np1(self):
        self.assert_bitwise_resume("tiny_cnn.pbtxt", 1)

    def test_resume_after_interruption(self):
        # A run that is killed and restarted with --resume auto continues from its last
        # checkpoint (here: the first run ends at 10 of 20 because we ask for fewer steps,
        # then the same run dir continues to 20) and leaves metrics for both parts.
        run_dir = os.path.join(self.tmp, "run")
        self.train(2, "tiny_mlp.pbtxt", run_dir, "--set", "train.steps=10")
        r = self.train(2, "tiny_mlp.pbtxt", run_dir, "--resume", "auto")
        self.assertIn("at step 10", r.stderr + r.stdout)
        ckpt = st.read_checkpoint(os.path.join(run_dir, "checkpoints", "latest"))
        self.assertEqual(ckpt["meta"]["step"], 20)
        with open(os.path.join(run_dir, "metrics.jsonl")) as f:
            steps = [line for line in f if '"kind":"train"' in line]
        self.assertGreaterEqual(len(steps), 4)

    def test_mpirun_wrapper_keeps_the_callers_directory(self):
        # launch/mpirun.sh from another directory: a relative config path and run dir are
        # the caller's (the wrapper used to cd to the repository root first).
        with open(st.config("tiny_mlp.pbtxt")) as f:
            text = f.read().replace('"data/fashion_mnist.h5"', '"' + st.DATA + '"')
        with open(os.path.join(self.tmp, "mine.pbtxt"), "w") as f:
            f.write(text)
        r = subprocess.run([os.path.join(st.SRC, "launch", "mpirun.sh"), "2", "train", "mine.pbtxt", "--run-dir",
                            "wrapped", "--set", "train.steps=3"], cwd=self.tmp, env=st.mpi_env(),
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertTrue(os.path.exists(os.path.join(self.tmp, "wrapped", "checkpoints", "latest")))
        bad = subprocess.run([os.path.join(st.SRC, "launch", "mpirun.sh"), "two", "train"], cwd=self.tmp,
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(bad.returncode, 2)
        self.assertIn("NP: a number of ranks", bad.stderr)

    def test_eval_and_inspect_read_the_checkpoint(self):
        run_dir = os.path.join(self.tmp, "run")
        r = self.train(2, "tiny_mlp.pbtxt", run_dir)
        latest = os.path.join(run_dir, "checkpoints", "latest")
        ev = st.run(2, "eval", st.config("tiny_mlp.pbtxt"), "--checkpoint", latest)
        self.assertEqual(ev.returncode, 0, ev.stderr)
        self.assertRegex(ev.stdout, r"test accuracy \d+\.\d\d% \(10000 samples\)")
        # eval's accuracy equals the trainer's final eval (same params, same data).
        train_acc = [l for l in r.stdout.splitlines() if "test accuracy" in l][-1].split("test accuracy ")[1][:6]
        self.assertIn("test accuracy " + train_acc, ev.stdout)
        ins = st.run(0, "inspect", latest)
        self.assertEqual(ins.returncode, 0, ins.stderr)
        self.assertIn("fc1.weight", ins.stdout)
        self.assertTrue(os.path.exists(os.path.join(run_dir, "config.pbtxt")))


if __name__ == "__main__":
    unittest.main(verbosity=2)
