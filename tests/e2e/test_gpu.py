"""End-to-end training on a GPU (skipped, with the reason, on machines without one):
  - a GPU run's loss curve and final parameters match the CPU run's (1e-3 relative: every
    primitive agrees to ~1e-6, and 20 steps of AdamW let that drift a little);
  - a run resumed on the GPU is bitwise identical to one that never stopped;
  - one rank uses NCCL; two ranks on one GPU fall back to host-staged MPI with one log
    line and agree with one rank; comm.backend=NCCL with ranks sharing a GPU is refused;
  - gpt_tiny in bf16 (train.precision=BF16, gradients summed in bf16 too) learns like fp32
    on the GPU, resumes bitwise, and its checkpoint (fp32 master weights) samples on CPU.
"""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

import st_util as st
from test_training import TrainingTest


def gpu_count():
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


GPUS = gpu_count()
NO_GPU = "no GPU on this machine (nvidia-smi -L lists none)"
CUDA = ("--set", "device=cuda")


def train_losses(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        recs = [json.loads(line) for line in f]
    return [(r["step"], r["loss"]) for r in recs if r["kind"] == "train"]


@unittest.skipIf(GPUS == 0, NO_GPU)
class GpuTrainingTest(TrainingTest):
    """The CPU e2e properties that must also hold on the GPU, plus GPU-vs-CPU checks.
    Inherits TrainingTest's tests, with every run on device=cuda."""

    def train(self, np_ranks, cfg, run_dir, *extra):
        return super().train(np_ranks, cfg, run_dir, *CUDA, *extra)

    def cpu_train(self, np_ranks, cfg, run_dir, *extra):
        return super().train(np_ranks, cfg, run_dir, *extra)

    def test_gpu_loss_curve_matches_cpu(self):
        for cfg in ("tiny_mlp.pbtxt", "tiny_cnn.pbtxt"):
            cpu, gpu = os.path.join(self.tmp, cfg + "cpu"), os.path.join(self.tmp, cfg + "gpu")
            self.cpu_train(1, cfg, cpu, "--set", "train.log_every=1")
            r = self.train(1, cfg, gpu, "--set", "train.log_every=1")
            self.assertIn("cuda:", r.stdout, "the GPU run must say it ran on cuda")
            lc, lg = train_losses(cpu), train_losses(gpu)
            self.assertEqual([s for s, _ in lc], [s for s, _ in lg])
            self.assertEqual(len(lc), 20)
            for (step, a), (_, b) in zip(lc, lg):
                self.assertLess(abs(a - b) / abs(a), 1e-3, f"{cfg} step {step}: cpu loss {a} vs gpu {b}")
            ca = st.read_checkpoint(os.path.join(cpu, "checkpoints", "latest"))
            cg = st.read_checkpoint(os.path.join(gpu, "checkpoints", "latest"))
            for k in st.tensors(ca):
                if k.startswith("/params/"):
                    self.assertLess(st.max_rel_diff(cg[k], ca[k]), 1e-3, f"{cfg} {k}")

    def test_eval_and_inspect_read_the_checkpoint(self):
        # As on the CPU, but eval runs on the GPU too: the trainer's final eval did, and
        # CPU logits can differ in the last bit, which may flip one argmax.
        run_dir = os.path.join(self.tmp, "run")
        r = self.train(2, "tiny_mlp.pbtxt", run_dir)
        latest = os.path.join(run_dir, "checkpoints", "latest")
        ev = st.run(2, "eval", st.config("tiny_mlp.pbtxt"), "--checkpoint", latest, *CUDA)
        self.assertEqual(ev.returncode, 0, ev.stderr)
        train_acc = [l for l in r.stdout.splitlines() if "test accuracy" in l][-1].split("test accuracy ")[1][:6]
        self.assertIn("test accuracy " + train_acc, ev.stdout)

    def test_one_rank_uses_nccl(self):
        r = self.train(1, "tiny_mlp.pbtxt", os.path.join(self.tmp, "nccl"))
        self.assertIn("comm: nccl", r.stdout + r.stderr)

    @unittest.skipIf(GPUS > 1, "more than one GPU: two ranks would not share one")
    def test_two_ranks_on_one_gpu_use_host_staged_mpi(self):
        r = self.train(2, "tiny_mlp.pbtxt", os.path.join(self.tmp, "staged"))
        out = r.stdout + r.stderr
        self.assertEqual(out.count("host staging"), 1, out)

    @unittest.skipIf(GPUS > 1, "more than one GPU: two ranks would not share one")
    def test_explicit_nccl_with_a_shared_gpu_is_refused(self):
        run_dir = os.path.join(self.tmp, "refused")
        r = st.run(2, "train", st.config("tiny_mlp.pbtxt"), "--run-dir", run_dir, *CUDA,
                   "--set", "comm.backend=nccl")
        self.assertNotEqual(r.returncode, 0)
        errors = [l for l in r.stderr.splitlines() if "error:" in l]
        self.assertEqual(len(errors), 1, r.stdout + r.stderr)
        self.assertIn("ranks 0 and 1 share GPU", errors[0])
        self.assertFalse(os.path.exists(os.path.join(run_dir, "checkpoints")))


GPT_SHORT = ("--set", "train.steps=60", "--set", "train.log_every=10", "--set", "train.eval_every=0",
             "--set", "checkpoint.every=30")


@unittest.skipIf(GPUS == 0, NO_GPU)
class GpuBf16Test(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="st_bf16_")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def gpt(self, run_dir, *extra):
        r = st.run(1, "train", st.config("gpt_tiny.pbtxt"), "--run-dir", run_dir, *CUDA, *GPT_SHORT, *extra,
                   timeout=600)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r

    def test_bf16_learns_like_fp32(self):
        fp32, bf16 = os.path.join(self.tmp, "fp32"), os.path.join(self.tmp, "bf16")
        self.gpt(fp32)
        self.gpt(bf16, "--set", "train.precision=BF16", "--set", "comm.grad_dtype=BF16")
        a, b = train_losses(fp32), train_losses(bf16)
        self.assertEqual([s for s, _ in a], [s for s, _ in b])
        self.assertLess(b[-1][1], 0.8 * b[0][1], f"bf16 did not learn: {b}")
        # bf16 rounds activations to 8 bits: the curves agree to a few percent, not 1e-3.
        for (step, x), (_, y) in zip(a, b):
            self.assertLess(abs(x - y) / x, 0.03, f"step {step}: fp32 loss {x} vs bf16 {y}")
        # The checkpoint holds fp32 master weights; sampling it on the CPU works.
        ck = os.path.join(bf16, "checkpoints", "latest")
        self.assertEqual(st.read_checkpoint(ck)["/params/wte.weight"].dtype.name, "float32")
        r = st.run(0, "sample", st.config("gpt_tiny.pbtxt"), "--checkpoint", ck, "--prompt", "The",
                   "--tokens", "20", "--set", "train.precision=BF16")
        self.assertNotEqual(r.returncode, 0, "BF16 sampling on the CPU must be refused")
        r = st.run(0, "sample", st.config("gpt_tiny.pbtxt"), "--checkpoint", ck, "--prompt", "The", "--tokens", "20")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_bf16_resumes_bitwise(self):
        straight, resumed = os.path.join(self.tmp, "straight"), os.path.join(self.tmp, "resumed")
        bf = ("--set", "train.precision=BF16")
        self.gpt(straight, *bf)
        os.makedirs(os.path.join(resumed, "checkpoints"))
        shutil.copy(os.path.join(straight, "checkpoints", "ckpt-00000030.h5"), os.path.join(resumed, "checkpoints"))
        self.gpt(resumed, *bf, "--resume", "auto")
        a = st.read_checkpoint(os.path.join(straight, "checkpoints", "ckpt-00000060.h5"))
        b = st.read_checkpoint(os.path.join(resumed, "checkpoints", "ckpt-00000060.h5"))
        for k in st.tensors(a):
            self.assertTrue((a[k] == b[k]).all(), f"{k} differs after a bf16 resume")


# TrainingTest itself would run again (on the CPU) as an import of this module: drop it.
del TrainingTest

if __name__ == "__main__":
    unittest.main()
