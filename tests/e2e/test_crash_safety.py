"""Bad states a job must survive with its run dir intact, under mpirun on the real data:
  - the disk fills up during a save: one line naming the errno and the run dir, exit 1 on
    every rank, no crash, the previous checkpoint and `latest` intact and resumable;
  - the loss diverges to NaN/inf: detected before the optimizer update on every rank,
    train.on_nonfinite stop (exit 3) or skip (parameters untouched, up to a limit);
    nothing non-finite is checkpointed and metrics.jsonl stays valid JSON;
  - a second job started into a run dir that a job holds: refused at once naming the
    holder, touching nothing; the first job is unaffected; eval/inspect still read.
(kill -9 during training and saves: test_kill_resume.py.)
"""
import glob
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

import numpy as np

import st_util as st

TIMEOUT = 180  # a hang fails the test instead of blocking CI
CFG = st.config("tiny_mlp.pbtxt")  # 20 steps, checkpoints every 10, constant lr


def error_lines(r):
    return [l for l in r.stderr.splitlines() if "error:" in l]


def ckpt_files(run_dir):
    return sorted(os.listdir(os.path.join(run_dir, "checkpoints")))


def metrics(run_dir):
    """Every line of metrics.jsonl parsed by a strict JSON parser (NaN is not JSON)."""
    def no_constants(name):
        raise ValueError("non-JSON constant " + name)
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line, parse_constant=no_constants) for line in f]


class CrashSafetyTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="st_crash_")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def train(self, run_dir, *extra, np_ranks=2):
        r = st.run(np_ranks, "train", CFG, "--run-dir", run_dir, *extra, timeout=TIMEOUT)
        self.assertEqual(r.returncode, 0, f"train failed:\n{r.stdout}\n{r.stderr}")
        return r

    def assert_same_state(self, a_path, b_path):
        """Parameters and optimizer state bitwise equal (the step may differ)."""
        self.assertEqual(st.checkpoint_differences(a_path, b_path, meta=("optimizer_step",)), [],
                         f"{a_path} vs {b_path}")

    def assert_no_crash(self, r):
        out = r.stdout + r.stderr
        for crash in ("Segmentation", "signal", "Signal:", "terminate called", "MPI_ABORT"):
            self.assertNotIn(crash, out)

    # ------------------------------------------------------------------ full disk
    def test_full_disk_during_save_keeps_previous_checkpoint_and_exits_1(self):
        ref = os.path.join(self.tmp, "ref")
        self.train(ref, "--set", "checkpoint.keep_last=0")
        size = os.path.getsize(os.path.join(ref, "checkpoints", "ckpt-00000010.h5"))
        # A file system with room for the step-10 checkpoint (plus config, metrics and the
        # lock) but not for a second one at step 20.
        disk = os.path.join(self.tmp, "disk")
        os.makedirs(disk)
        kib = (size * 3 // 2 + 64 * 1024) // 1024
        m = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dk" % kib, "tmpfs", disk],
                           capture_output=True, text=True)
        if m.returncode != 0:
            self.skipTest("cannot mount a small tmpfs to fill up (needs root / CAP_SYS_ADMIN): " + m.stderr.strip())
        try:
            run_dir = os.path.join(disk, "run")
            r, codes = st.run_each_rank(2, "train", CFG, "--run-dir", run_dir, "--set", "checkpoint.keep_last=0",
                                        timeout=TIMEOUT)
            out = r.stdout + r.stderr
            self.assertEqual(codes, [1, 1], out)
            self.assert_no_crash(r)
            errors = error_lines(r)
            self.assertEqual(len(errors), 1, out)
            self.assertIn(os.strerror(28), errors[0])  # ENOSPC: "No space left on device"
            self.assertIn(run_dir, errors[0])
            self.assertIn("step 20", errors[0])
            # The step-10 checkpoint and `latest` are as they were, the temp file is gone.
            self.assertEqual(ckpt_files(run_dir), ["ckpt-00000010.h5", "latest"])
            self.assertEqual(os.readlink(os.path.join(run_dir, "checkpoints", "latest")), "ckpt-00000010.h5")
            self.assert_same_state(os.path.join(run_dir, "checkpoints", "latest"),
                                   os.path.join(ref, "checkpoints", "ckpt-00000010.h5"))
            metrics(run_dir)
            # With room again, --resume auto continues from it to the same final state.
            subprocess.run(["mount", "-o", "remount,size=%dk" % (4 * kib), disk], check=True)
            r = self.train(run_dir, "--resume", "auto", "--set", "checkpoint.keep_last=0")
            self.assertIn("at step 10", r.stderr)
            self.assert_same_state(os.path.join(run_dir, "checkpoints", "ckpt-00000020.h5"),
                                   os.path.join(ref, "checkpoints", "ckpt-00000020.h5"))
        finally:
            subprocess.run(["umount", disk], capture_output=True)

    # ------------------------------------------------------------------ non-finite
    DIVERGE = ("--set", "optimizer.lr=1e6", "--set", "train.log_every=1", "--set", "checkpoint.every=1",
               "--set", "checkpoint.keep_last=0")

    def first_bad_step(self, text):
        """The first step the step check named non-finite. (tiny_mlp clips gradients, so an
        update can never overflow the parameters themselves: the check sees it first.)"""
        m = re.search(r"step (\d+): (loss is (nan|inf|-inf) on rank \d+|gradient norm is (nan|inf))", text)
        self.assertIsNotNone(m, "no non-finite step named:\n" + text)
        return int(m.group(1))

    def skipped_steps(self, r):
        return [int(m.group(1)) for m in re.finditer(r"step (\d+): .*; skipped its update", r.stderr)]

    def assert_all_finite(self, path):
        for k, v in st.tensors(st.read_checkpoint(path)).items():
            if k.startswith("/params/"):
                self.assertTrue(np.all(np.isfinite(v)), f"{path}: {k} is not finite")

    def test_nonfinite_loss_stops_with_exit_3_on_every_rank(self):
        run_dir = os.path.join(self.tmp, "stop")
        r, codes = st.run_each_rank(2, "train", CFG, "--run-dir", run_dir, *self.DIVERGE, timeout=TIMEOUT)
        out = r.stdout + r.stderr
        self.assertEqual(codes, [3, 3], out)
        self.assert_no_crash(r)
        errors = error_lines(r)
        self.assertEqual(len(errors), 1, out)
        bad = self.first_bad_step(errors[0])
        self.assertIn("stopping", errors[0])
        self.assertGreater(bad, 1)
        # Saved up to the step before the bad one, nothing after; all of it finite.
        names = [f for f in ckpt_files(run_dir) if f.startswith("ckpt-")]
        self.assertEqual(names[-1], "ckpt-%08d.h5" % (bad - 1))
        for f in names:
            self.assert_all_finite(os.path.join(run_dir, "checkpoints", f))
        self.assertEqual(os.readlink(os.path.join(run_dir, "checkpoints", "latest")), names[-1])
        steps = [m["step"] for m in metrics(run_dir) if m["kind"] == "train"]
        self.assertEqual(steps, list(range(1, bad)))

    def test_nonfinite_loss_skip_leaves_parameters_untouched(self):
        run_dir = os.path.join(self.tmp, "skip")
        r = self.train(run_dir, *self.DIVERGE, "--set", "train.on_nonfinite=skip",
                       "--set", "train.max_skipped_steps=100", "--set", "train.max_consecutive_skipped_steps=100")
        skipped = self.skipped_steps(r)
        self.assertTrue(skipped, r.stdout + r.stderr)
        self.assertEqual(skipped[0], self.first_bad_step(r.stderr))
        # A skipped step changes nothing: its checkpoint holds the previous step's state.
        ck = os.path.join(run_dir, "checkpoints")
        for step in skipped:
            self.assert_same_state(os.path.join(ck, "ckpt-%08d.h5" % step), os.path.join(ck, "ckpt-%08d.h5" % (step - 1)))
        for step in range(1, 21):
            self.assert_all_finite(os.path.join(ck, "ckpt-%08d.h5" % step))
        last = st.read_checkpoint(os.path.join(ck, "ckpt-00000020.h5"))["meta"]
        self.assertEqual(last["optimizer_step"], 20 - len(skipped))
        recs = [m for m in metrics(run_dir) if m["kind"] == "train"]
        self.assertEqual([m["step"] for m in recs], list(range(1, 21)))
        for m in recs:
            if m["step"] in skipped:  # nothing applied in that one-step window: null, not NaN
                self.assertIsNone(m["loss"])
        self.assertEqual(recs[-1]["skipped_steps"], len(skipped))

    def test_nonfinite_skip_limit_stops_with_exit_3(self):
        run_dir = os.path.join(self.tmp, "limit")
        r = st.run(2, "train", CFG, "--run-dir", run_dir, *self.DIVERGE, "--set", "train.on_nonfinite=skip",
                   "--set", "train.max_consecutive_skipped_steps=2", timeout=TIMEOUT)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 3, out)
        errors = error_lines(r)
        self.assertEqual(len(errors), 1, out)
        self.assertIn("3 steps in a row skipped", errors[0])
        bad = self.first_bad_step(out)
        self.assertEqual(self.skipped_steps(r), [bad, bad + 1], out)
        self.assertIn("step %d: " % (bad + 2), errors[0])
        names = [f for f in ckpt_files(run_dir) if f.startswith("ckpt-")]
        self.assertEqual(names[-1], "ckpt-%08d.h5" % (bad + 1))  # the skipped steps were saved...
        self.assert_same_state(os.path.join(run_dir, "checkpoints", names[-1]),
                               os.path.join(run_dir, "checkpoints", "ckpt-%08d.h5" % (bad - 1)))  # ...unchanged

    # ------------------------------------------------------------------ run-dir lock
    def wait_for_holder(self, job, lock, timeout=60):
        """The .lock line of a job that holds its run dir ("host H pid P")."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.assertIsNone(job.poll(), "job A ended before it was seen holding its run dir")
            if os.path.exists(lock):
                with open(lock) as f:
                    line = f.read().strip()
                if line and glob.glob(os.path.join(os.path.dirname(lock), "checkpoints", "ckpt-*.h5")):
                    return line
            time.sleep(0.05)
        self.fail("job A never took the run-dir lock")

    def test_second_job_into_a_held_run_dir_fails_fast_and_touches_nothing(self):
        run_dir = os.path.join(self.tmp, "shared")
        lock = os.path.join(run_dir, ".lock")
        steps = 1000  # long enough to still be running while the other jobs start and fail
        a_args = ["train", CFG, "--run-dir", run_dir, "--set", "train.steps=%d" % steps,
                  "--set", "train.log_every=50"]
        job_a = subprocess.Popen(st.command(2, *a_args), cwd=st.SRC, env=st.mpi_env(), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            holder = self.wait_for_holder(job_a, lock)
            host, pid = re.fullmatch(r"host (\S+) pid (\d+)", holder).groups()
            with open(os.path.join(run_dir, "config.pbtxt")) as f:
                config_a = f.read()
            # Same seed resuming, and a fresh run with another seed: both refused at once.
            for extra in (["--resume", "auto"], ["--set", "train.seed=99"]):
                t0 = time.time()
                r, codes = st.run_each_rank(2, "train", CFG, "--run-dir", run_dir, "--set", "train.steps=%d" % steps,
                                            *extra, timeout=TIMEOUT)
                out = r.stdout + r.stderr
                self.assertEqual(codes, [1, 1], out)
                errors = error_lines(r)
                self.assertEqual(len(errors), 1, out)
                self.assertIn(run_dir, errors[0])
                self.assertIn("pid %s on host %s" % (pid, host), errors[0])
                self.assertNotIn("resuming", out)  # it stopped before looking at checkpoints
                self.assertLess(time.time() - t0, 30)
            # Readers need no lock.
            latest = os.path.join(run_dir, "checkpoints", "latest")
            ins = st.run(0, "inspect", latest, timeout=TIMEOUT)
            self.assertEqual(ins.returncode, 0, ins.stderr)
            ev = st.run(1, "eval", CFG, "--checkpoint", latest, timeout=TIMEOUT)
            self.assertEqual(ev.returncode, 0, ev.stderr)
            self.assertIsNone(job_a.poll(), "job A ended before the other jobs were refused: make it longer")
            out_a, err_a = job_a.communicate(timeout=TIMEOUT)
        finally:
            if job_a.poll() is None:
                os.killpg(job_a.pid, 9)
                job_a.wait()
        self.assertEqual(job_a.returncode, 0, out_a + err_a)
        # Job A's files are its own: its config, its metrics in order, its checkpoints.
        with open(os.path.join(run_dir, "config.pbtxt")) as f:
            self.assertEqual(f.read(), config_a)
        steps_logged = [m["step"] for m in metrics(run_dir) if m["kind"] == "train"]
        self.assertEqual(steps_logged, list(range(50, steps + 1, 50)))
        self.assertEqual(ckpt_files(run_dir), ["ckpt-%08d.h5" % (steps - 10), "ckpt-%08d.h5" % steps, "latest"])
        self.assertEqual(os.readlink(os.path.join(run_dir, "checkpoints", "latest")), "ckpt-%08d.h5" % steps)
        self.assertEqual(os.path.getsize(lock), 0)  # released: the holder line is gone
        # After A, the same command continues the run.
        r = self.train(run_dir, "--resume", "auto", "--set", "train.steps=%d" % (steps + 10))
        self.assertIn("at step %d" % steps, r.stderr)
        self.assertEqual(os.readlink(os.path.join(run_dir, "checkpoints", "latest")), "ckpt-%08d.h5" % (steps + 10))


if __name__ == "__main__":
    unittest.main(verbosity=2)
