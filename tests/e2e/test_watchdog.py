"""The collective watchdog end to end: the real binary under mpirun, with faults.

  - a rank that sleeps (debug.fault) is named, and the job ends with exit code 76 within
    comm.timeout_s + 10 s;
  - a rank stopped with a real SIGSTOP is named, and the waiting rank sleeps instead of
    spinning (its CPU time, read from /proc, stays far below the wall time);
  - a rank that skips a collective is caught by comm.check_sequence: both ranks' values
    in one line, exit 1 on every rank, no waiting for the timeout;
  - without faults the timeout does not fire and check_sequence changes no bit.
"""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest

import numpy as np

import st_util as st

TIMEOUT_S = 5
GRAD_COUNT = 25450  # tiny_mlp's parameters: one gradient bucket


class Job:
    """`shardtrain train` under mpirun in the background; output lines are timestamped."""

    def __init__(self, np_ranks, run_dir, *sets):
        args = [st.BIN, "train", st.config("tiny_mlp.pbtxt"), "--run-dir", run_dir, "--set", "train.threads=1"]
        for s in sets:
            args += ["--set", s]
        cmd = ["mpirun", "-np", str(np_ranks), "--oversubscribe", "--bind-to", "none", *args]
        env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(cmd, cwd=st.SRC, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=True)
        self.lines = []  # (time, line)
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.lock:
                self.lines.append((time.monotonic(), line.rstrip("\n")))

    def output(self):
        with self.lock:
            return "\n".join(l for _, l in self.lines)

    def wait_for_line(self, pattern, timeout):
        """Time at which a line matching `pattern` appeared; fails after `timeout` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for t, line in self.lines:
                    if re.search(pattern, line):
                        return t
            if self.proc.poll() is not None and not self.reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r} within {timeout} s:\n{self.output()}")

    def wait(self, timeout):
        """Exit code and the time the job ended."""
        rc = self.proc.wait(timeout=timeout)
        ended = time.monotonic()
        self.reader.join(timeout=10)
        self.proc.stdout.close()
        return rc, ended

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        self.reader.join(timeout=10)
        self.proc.stdout.close()


def rank_pids(run_dir):
    """{rank: pid} of the shardtrain processes of the job writing to run_dir."""
    pids = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            if not argv[0].endswith(b"shardtrain") or run_dir.encode() not in argv:
                continue
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
            pids[int(env[b"OMPI_COMM_WORLD_RANK"])] = int(entry)
        except (OSError, KeyError, ValueError):
            continue
    return pids


def cpu_seconds(pid):
    """User + system CPU time of a process, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


TIMEOUT_LINE = (r"^error: rank 0: collective all_reduce #(\d+) \(" + str(GRAD_COUNT) +
                r" float32, step (\d+), comm grad\) not completed after 5 s; ")
# A rank stopped at a random moment may be caught in the step's gradient all-reduce or in
# its per-step check (6 int64 on the control communicator).
ANY_TIMEOUT_LINE = (r"^error: rank 0: collective all_reduce #(\d+) \((?:" + str(GRAD_COUNT) +
                    r" float32, step (\d+), comm grad|6 int64, step (\d+), comm control)\) not completed after 5 s; ")


class WatchdogTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="st_watchdog_")
        self.jobs = []

    def tearDown(self):
        for job in self.jobs:
            job.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def job(self, name, *sets, np_ranks=2):
        j = Job(np_ranks, os.path.join(self.tmp, name), *sets)
        self.jobs.append(j)
        return j

    def test_sleeping_rank_is_named_and_the_job_ends_with_76(self):
        job = self.job("sleep", f"comm.timeout_s={TIMEOUT_S}", "train.steps=10", "debug.fault.rank=1",
                       "debug.fault.step=5", "debug.fault.action=sleep", "debug.fault.seconds=1000")
        fault_at = job.wait_for_line(r"debug\.fault: rank 1 sleeps 1000 s at step 5", timeout=120)
        rc, ended = job.wait(timeout=120)
        out = job.output()
        self.assertEqual(rc, 76, out)
        self.assertLessEqual(ended - fault_at, TIMEOUT_S + 10, out)
        self.assertRegex(out, re.compile(TIMEOUT_LINE + r"rank 1 last completed #\d+ \(stuck\)$", re.M))
        self.assertEqual(len(re.findall(r"not completed after", out)), 1, out)
        m = re.search(TIMEOUT_LINE, out, re.M)
        self.assertEqual(m.group(2), "5", "the step the rank slept in")

    def test_stopped_rank_is_named_and_the_waiting_rank_does_not_spin(self):
        run_dir = os.path.join(self.tmp, "stop")
        job = self.job("stop", f"comm.timeout_s={TIMEOUT_S}", "train.steps=1000000", "train.log_every=200",
                       "checkpoint.every=0")
        job.wait_for_line(r"^step 200/", timeout=120)  # training is under way
        pids = rank_pids(run_dir)
        self.assertEqual(sorted(pids), [0, 1], f"rank processes of {run_dir}: {pids}")
        os.kill(pids[1], signal.SIGSTOP)
        stopped_at = time.monotonic()
        try:
            # Rank 0 soon waits in a collective; measure it well before the timeout fires.
            time.sleep(0.5)
            cpu0, wall0 = cpu_seconds(pids[0]), time.monotonic()
            time.sleep(3.0)
            cpu1, wall1 = cpu_seconds(pids[0]), time.monotonic()
            rc, ended = job.wait(timeout=120)
        finally:
            try:
                os.kill(pids[1], signal.SIGCONT)
            except ProcessLookupError:
                pass
        out = job.output()
        self.assertEqual(rc, 76, out)
        self.assertLessEqual(ended - stopped_at, TIMEOUT_S + 10, out)
        # Stopped while computing, or inside the collective after joining it.
        self.assertRegex(out, re.compile(
            ANY_TIMEOUT_LINE + r"rank 1 last completed #\d+(, unresponsive for [\d.]+ s inside #\d+)? \(stuck\)$",
            re.M))
        # A spinning wait burns a core (~1 CPU s per wall s); a sleeping one ~0.01.
        used = (cpu1 - cpu0) / (wall1 - wall0)
        self.assertLess(used, 0.25, f"waiting rank 0 used {used:.0%} of a core while rank 1 was stopped")

    def test_skipped_collective_is_reported_by_check_sequence(self):
        # The skip would hang until the timeout (60 s) without the check: the job must end
        # long before it, on every rank, with both ranks' values.
        job = self.job("skip", "comm.timeout_s=60", "comm.check_sequence=true", "train.steps=10",
                       "debug.fault.rank=1", "debug.fault.step=3", "debug.fault.action=skip_collective")
        rc, ended = job.wait(timeout=120)
        out = job.output()
        self.assertEqual(rc, 1, out)
        self.assertLess(ended - job.started, 50, out)
        # Grad comm: #1 is the parameter broadcast, #2 and #3 steps 1 and 2; rank 1 skipped
        # step 3's (#4) and went on to the step's check on the control communicator (the
        # per-step all-reduce of 6 int64: non-finite check and stop vote), whose number
        # depends on start-up agreements, so it is matched loosely.
        want = re.compile(r"comm\.check_sequence: ranks issued different collectives: "
                          rf"rank 0 issued all_reduce #4 of {GRAD_COUNT} float32 \(step 3, comm grad\), "
                          r"rank 1 issued all_reduce #\d+ of 6 int64 \(step 3, comm control\)$")
        errors = [l for l in out.splitlines() if "error:" in l]
        self.assertEqual(len(errors), 1, out)  # one line, for every rank
        self.assertTrue(errors[0].startswith("error: ") and want.search(errors[0]), out)
        self.assertNotIn("MPI_ABORT", out)

    def test_without_faults_nothing_fires_and_no_bit_changes(self):
        plain = self.job("plain", "train.steps=12")
        checked = self.job("checked", "train.steps=12", f"comm.timeout_s={TIMEOUT_S}", "comm.check_sequence=true")
        for job in (plain, checked):
            rc, _ = job.wait(timeout=300)
            self.assertEqual(rc, 0, job.output())
            self.assertNotIn("not completed", job.output())
        a = st.read_checkpoint(os.path.join(self.tmp, "plain", "checkpoints", "latest"))
        b = st.read_checkpoint(os.path.join(self.tmp, "checked", "checkpoints", "latest"))
        self.assertEqual(sorted(st.tensors(a)), sorted(st.tensors(b)))
        for name, value in st.tensors(a).items():
            self.assertTrue(np.array_equal(value, b[name]), f"{name} differs")


if __name__ == "__main__":
    unittest.main()
