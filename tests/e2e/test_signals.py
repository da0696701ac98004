"""Stop signals under mpirun, without Slurm (tests/e2e/test_slurm.py has the real cluster):
  - SIGUSR1 to mpirun (which forwards it): every rank saves the step after the signal
    and exits 75; the log names the signal, the step and the save time; --resume auto
    then ends bitwise equal to a run that was never stopped;
  - SIGTERM to one rank only: the step vote stops every rank the same way;
  - a second SIGINT exits at once with 130; a signal left out of train.stop_signals
    keeps its default action;
  - a signal during the last step is the normal end: final save and evaluation, exit 0.
"""
import os
import re
import shutil
import signal
import tempfile
import time
import unittest

import st_util as st

STEPS = 300
# tiny_mlp (checkpoints every 10 steps) made long enough to signal it mid-run.
ARGS = ["--set", f"train.steps={STEPS}", "--set", "train.log_every=10"]


class SignalsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="st_signals_")
        cls.straight = os.path.join(cls.tmp, "straight")
        r = st.run(2, "train", st.config("tiny_mlp.pbtxt"), "--run-dir", cls.straight, *ARGS)
        assert r.returncode == 0, f"uninterrupted run failed:\n{r.stdout}\n{r.stderr}"

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def final_checkpoint(self, run_dir):
        return os.path.join(run_dir, "checkpoints", f"ckpt-{STEPS:08d}.h5")

    def stop_mid_run(self, name, send):
        """Starts 2 ranks, calls send(proc, record_dir) once step 20 is logged, and checks the
        stop: exit 75 on every rank, a checkpoint of the stop step, the log line. Returns
        (run_dir, log text, signal name, stop step)."""
        run_dir, rec = os.path.join(self.tmp, name), os.path.join(self.tmp, name + "-ranks")
        os.makedirs(rec)
        log = os.path.join(self.tmp, name + ".log")
        proc = st.start(2, "train", st.config("tiny_mlp.pbtxt"), "--run-dir", run_dir, *ARGS,
                        log_path=log, record_dir=rec)
        rc = st.signal_when_printed(proc, log, f"step 20/{STEPS}", lambda: send(proc, rec))
        text = st.read(log)
        self.assertEqual(rc, 75, text)
        for rank in (0, 1):
            self.assertEqual(st.read(os.path.join(rec, f"exit.{rank}")), "75", f"rank {rank}:\n{text}")
        m = re.search(r"stop: (SIG\w+) at step (\d+): checkpoint saved in [0-9.]+ s, [0-9.]+ s after the signal; "
                      r"exiting with code 75", text)
        self.assertIsNotNone(m, text)
        step = int(m.group(2))
        self.assertTrue(20 <= step < STEPS, text)
        latest = os.path.join(run_dir, "checkpoints", "latest")
        self.assertEqual(os.readlink(latest), f"ckpt-{step:08d}.h5")
        self.assertEqual(st.read_checkpoint(latest)["meta"]["step"], step)
        return run_dir, text, m.group(1), step

    def resume_matches_straight_run(self, run_dir):
        r = st.run(2, "train", st.config("tiny_mlp.pbtxt"), "--run-dir", run_dir, "--resume", "auto", *ARGS)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("resuming from", r.stdout + r.stderr)
        self.assertEqual(st.state_differences(self.final_checkpoint(self.straight), self.final_checkpoint(run_dir)), [])

    def test_usr1_to_mpirun_stops_every_rank_and_resumes_bitwise(self):
        run_dir, text, sig, _ = self.stop_mid_run("usr1", lambda proc, _: proc.send_signal(signal.SIGUSR1))
        self.assertEqual(sig, "SIGUSR1")
        self.assertIn("every rank stops after step", text)
        self.resume_matches_straight_run(run_dir)

    def test_term_to_one_rank_stops_every_rank(self):
        def term_rank1(_, rec):
            os.kill(int(st.read(os.path.join(rec, "pid.1"))), signal.SIGTERM)

        run_dir, text, sig, _ = self.stop_mid_run("term", term_rank1)
        self.assertEqual(sig, "SIGTERM")
        self.assertIn("SIGTERM received (on rank 1)", text)
        self.resume_matches_straight_run(run_dir)

    def test_signal_during_the_last_step_ends_normally(self):
        # Rank 0 sleeps 3 s at the start of step 30 of 30 (debug.fault), so a SIGUSR1 sent
        # once step 29 is logged arrives during the last step.
        run_dir, log = os.path.join(self.tmp, "last"), os.path.join(self.tmp, "last.log")
        proc = st.start(2, "train", st.config("tiny_mlp.pbtxt"), "--run-dir", run_dir, "--set", "train.steps=30",
                        "--set", "train.log_every=1", "--set", "debug.fault.rank=0", "--set", "debug.fault.step=30",
                        "--set", "debug.fault.action=sleep", "--set", "debug.fault.seconds=3", log_path=log)
        rc = st.signal_when_printed(proc, log, "step 29/30", lambda: proc.send_signal(signal.SIGUSR1))
        text = st.read(log)
        self.assertEqual(rc, 0, text)
        self.assertNotIn("exiting with code 75", text)
        self.assertIn("test accuracy", text)  # the final evaluation ran
        self.assertEqual(st.read_checkpoint(os.path.join(run_dir, "checkpoints", "latest"))["meta"]["step"], 30)

    def test_second_sigint_exits_at_once(self):
        # One process, no mpirun (a person at a terminal). Large batches make each step take
        # long enough (~0.2 s) that the second SIGINT lands before the first one's stop, which
        # waits for the end of the step, is done.
        run_dir, log = os.path.join(self.tmp, "int"), os.path.join(self.tmp, "int.log")
        proc = st.start(0, "train", st.config("tiny_mlp.pbtxt"), "--run-dir", run_dir, "--set", "train.steps=100000",
                        "--set", "train.log_every=1", "--set", "data.global_batch=8192", "--set", "checkpoint.every=0",
                        log_path=log)
        sent = []

        def two_sigints():
            proc.send_signal(signal.SIGINT)
            # Two pending SIGINTs would merge into one; the first is handled within
            # microseconds, while the stop it asks for waits for the end of the step.
            time.sleep(0.005)
            proc.send_signal(signal.SIGINT)
            sent.append(time.time())

        rc = st.signal_when_printed(proc, log, "step 2/100000", two_sigints, timeout=60)
        took = time.time() - sent[0]
        text = st.read(log)
        self.assertEqual(rc, 130, text)
        self.assertIn("second SIGINT: exiting now without a checkpoint (code 130)", text)
        self.assertLess(took, 5, text)
        self.assertFalse(os.path.exists(os.path.join(run_dir, "checkpoints", "latest")), text)

    def test_signal_not_in_stop_signals_keeps_default_action(self):
        run_dir, log = os.path.join(self.tmp, "usr2only"), os.path.join(self.tmp, "usr2only.log")
        proc = st.start(0, "train", st.config("tiny_mlp.pbtxt"), "--run-dir", run_dir, *ARGS,
                        "--set", "train.stop_signals=USR2", log_path=log)
        rc = st.signal_when_printed(proc, log, f"step 20/{STEPS}", lambda: proc.send_signal(signal.SIGUSR1))
        self.assertEqual(rc, -signal.SIGUSR1, st.read(log))

    def test_unknown_stop_signal_is_a_config_error(self):
        r = st.run(2, "train", st.config("tiny_mlp.pbtxt"), "--run-dir", os.path.join(self.tmp, "bad"),
                   "--set", "train.stop_signals=USR1,HUP")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn('train.stop_signals: unknown signal "HUP"', r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "bad")))


if __name__ == "__main__":
    unittest.main()
