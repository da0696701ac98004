"""The sbatch templates of cluster/slurm/ on a real, throwaway Slurm (cluster/local/start.sh:
slurmctld + slurmd + munged on this machine), with a tiny CPU config on 2 ranks:
  - one-node.sbatch (srun --mpi=pmix): `scancel --signal=USR1` mid-run; every rank saves and
    exits 75, the job requeues itself, runs to the end, and ends bitwise equal to an
    uninterrupted run; its log holds both runs;
  - multi-node-mpirun.sbatch (mpirun in the allocation, B:USR1 forwarded by the batch shell):
    the same, stopped with `scancel --batch --signal=USR1`, and requeued by RequeueExit=75
    (no usable scontrol in the job);
  - multi-node.sbatch (on one node) with a 1-minute time limit and the signal 50 s ahead:
    it stops before the limit, requeues, and ends bitwise equal to an uninterrupted run.
Every job's log must hold all its runs (--open-mode=append).
The requeue delay Slurm adds (about 2 minutes) is skipped with `scontrol update StartTime=now`.
Skips only when Slurm's or munge's programs are not installed (launch/install-deps.sh
installs them) or when not run as root.
"""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import st_util as st

LOCAL = os.path.join(st.SRC, "cluster", "local")
TEMPLATES = os.path.join(st.SRC, "cluster", "slurm")
SBIN_PATH = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
TOOLS = ["munged", "slurmctld", "slurmd", "sbatch", "srun", "scontrol", "scancel", "sinfo"]
MISSING = [t for t in TOOLS if shutil.which(t, path=SBIN_PATH) is None]
SKIP = (f"Slurm is not installed ({', '.join(MISSING)} not found; launch/install-deps.sh installs slurm-wlm and munge)"
        if MISSING else "the test cluster runs as root" if os.geteuid() != 0 else "")

STEPS = 600  # tiny_mlp on 2 ranks: a few seconds
ARGS = f"--set train.log_every=20 --set train.steps={STEPS}"


@unittest.skipIf(SKIP, SKIP)
class SlurmTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="st_slurm_")
        cls.cluster = os.path.join(cls.tmp, "cluster")
        cls.env = dict(st.mpi_env(), SLURM_CONF=os.path.join(cls.cluster, "slurm.conf"), PATH=SBIN_PATH)
        try:
            r = subprocess.run([os.path.join(LOCAL, "start.sh"), cls.cluster], env=cls.env, capture_output=True,
                               text=True, timeout=120)
            assert r.returncode == 0, f"cluster/local/start.sh failed:\n{r.stdout}\n{r.stderr}"
            # The uninterrupted run every stopped and requeued job must match.
            cls.reference = os.path.join(cls.tmp, "reference")
            r = st.run(2, "train", st.config("tiny_mlp.pbtxt"), "--run-dir", cls.reference, *ARGS.split())
            assert r.returncode == 0, f"uninterrupted run failed:\n{r.stdout}\n{r.stderr}"
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            subprocess.run([os.path.join(LOCAL, "stop.sh"), cls.cluster], env=cls.env, capture_output=True, timeout=120)
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def slurm(self, *cmd, timeout=30):
        r = subprocess.run(list(cmd), env=self.env, capture_output=True, text=True, timeout=timeout)
        self.assertEqual(r.returncode, 0, f"{' '.join(cmd)}: {r.stdout}{r.stderr}")
        return r.stdout

    def submit(self, name, template, *sbatch_args, args=ARGS, path=None):
        """Submits a template the way a user would (from the checkout, parameters in the
        environment), with 2 CPU ranks on the one node. Returns (job id, log, run dir)."""
        log, run_dir = os.path.join(self.tmp, name + ".log"), os.path.join(self.tmp, name)
        env = dict(self.env, ST_CONFIG=st.config("tiny_mlp.pbtxt"), ST_RUN_DIR=run_dir, ST_ARGS=args, ST_BIN=st.BIN,
                   PATH=path or self.env["PATH"])
        r = subprocess.run(["sbatch", "--parsable", "--gpus-per-node=0", "--ntasks-per-node=2", f"--output={log}",
                            *sbatch_args, os.path.join(TEMPLATES, template)],
                           env=env, cwd=st.SRC, capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r.stdout.strip().split(";")[0], log, run_dir

    @staticmethod
    def log_text(log):
        return st.read(log) if os.path.exists(log) else "(no log yet)"

    def job(self, job_id):
        """scontrol's fields of the job: {"JobState": "RUNNING", "Restarts": "0", ...}."""
        return dict(re.findall(r"(\w+)=(\S*)", self.slurm("scontrol", "show", "job", "-o", job_id)))

    def wait_for_log(self, job_id, log, text, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if os.path.exists(log) and text in st.read(log):
                return
            state = self.job(job_id)["JobState"]
            self.assertIn(state, ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED"),
                          f"job {job_id} is {state} before {text!r}:\n{self.log_text(log)}")
            time.sleep(0.2)
        self.fail(f"{text!r} not in the log within {timeout} s:\n{self.log_text(log)}")

    def run_to_completion(self, job_id, log, timeout=300):
        """Waits for the job to complete, starting each requeued run at once. Returns the
        job's fields."""
        deadline = time.time() + timeout
        held_since = None
        while time.time() < deadline:
            info = self.job(job_id)
            if info["JobState"] == "COMPLETED":
                return info
            self.assertIn(info["JobState"], ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED"),
                          f"job {job_id}: {info['JobState']} ({info.get('Reason')}):\n{self.log_text(log)}")
            if info["JobState"] == "PENDING" and info.get("Reason") == "BeginTime":
                held_since = held_since or time.time()
                # Not at once: a run started in the second the last one was requeued fails
                # ("Job credential revoked"); Slurm's own delay is about 2 minutes.
                if time.time() - held_since > 2:
                    self.slurm("scontrol", "update", f"JobId={job_id}", "StartTime=now")
                    held_since = None
            time.sleep(0.5)
        self.fail(f"job {job_id} not complete within {timeout} s:\n{self.log_text(log)}")

    def assert_stopped_requeued_and_exact(self, job_id, log, run_dir, signame):
        info = self.run_to_completion(job_id, log)
        text = st.read(log)
        self.assertGreaterEqual(int(info["Restarts"]), 1, text)
        self.assertEqual(info["ExitCode"], "0:0", text)
        stops = re.findall(rf"stop: {signame} at step (\d+): checkpoint saved in [0-9.]+ s", text)
        self.assertTrue(stops, text)
        for step in stops:
            self.assertLess(int(step), STEPS, text)
            self.assertIn(f"resuming from {run_dir}/checkpoints/ckpt-{int(step):08d}.h5 at step {step}", text)
        # The log holds every run (--open-mode=append), and each stop requeued the job.
        for run in range(1, len(stops) + 2):
            self.assertIn(f"=== job {job_id} run {run} on ", text)
        self.assertEqual(text.count(f"=== job {job_id}: stopped after a checkpoint; requeueing"), len(stops), text)
        self.assertIn(f"=== job {job_id}: training complete", text)
        self.assertNotIn("DUE TO TIME LIMIT", text)
        final = f"checkpoints/ckpt-{STEPS:08d}.h5"
        self.assertEqual(st.state_differences(os.path.join(self.reference, final), os.path.join(run_dir, final)), [])
        return text

    def test_scancel_usr1_requeues_and_resumes_bitwise(self):
        job_id, log, run_dir = self.submit("srun", "one-node.sbatch")
        self.wait_for_log(job_id, log, f"step 40/{STEPS}")
        self.slurm("scancel", "--signal=USR1", job_id)
        self.wait_for_log(job_id, log, "requeueing")
        text = st.read(log)
        # srun reports every rank's exit code: both stopped with 75.
        self.assertRegex(text, r"srun: error: \S+: tasks 0-1: Exited with exit code 75")
        self.assert_stopped_requeued_and_exact(job_id, log, run_dir, "SIGUSR1")

    def test_mpirun_template_forwards_batch_signal_and_requeue_exit(self):
        # Also the requeue where the job cannot run scontrol (a container): a scontrol that
        # only fails comes first on the job's PATH, so the script exits 75 and slurm.conf's
        # RequeueExit=75 requeues the job.
        shim = os.path.join(self.tmp, "no-scontrol")
        os.makedirs(shim, exist_ok=True)
        with open(os.path.join(shim, "scontrol"), "w") as f:
            f.write("#!/bin/sh\necho 'scontrol: not available here' >&2\nexit 1\n")
        os.chmod(os.path.join(shim, "scontrol"), 0o755)
        job_id, log, run_dir = self.submit("mpirun", "multi-node-mpirun.sbatch", "--nodes=1",
                                           path=shim + ":" + self.env["PATH"])
        self.wait_for_log(job_id, log, f"step 40/{STEPS}")
        self.slurm("scancel", "--batch", "--signal=USR1", job_id)
        self.wait_for_log(job_id, log, "exiting 75 for RequeueExit=75")
        self.assertIn("mpirun: Forwarding signal 10 to job", st.read(log))
        self.assert_stopped_requeued_and_exact(job_id, log, run_dir, "SIGUSR1")

    def rank_pids(self, job_id):
        """PIDs of the job's shardtrain processes (its ranks), from scontrol listpids."""
        pids = []
        for line in self.slurm("scontrol", "listpids", job_id).splitlines()[1:]:
            pid = line.split()[0]
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() == "shardtrain":
                        pids.append(int(pid))
            except OSError:
                pass
        return pids

    @staticmethod
    def pending_or_gone(pid, signo):
        """Whether signal signo waits to be delivered to process pid (/proc's ShdPnd mask),
        or the process has ended."""
        try:
            with open(f"/proc/{pid}/status") as f:
                mask = int(re.search(r"^ShdPnd:\s*([0-9a-f]+)", f.read(), re.M).group(1), 16)
        except OSError:
            return True
        return bool(mask >> (signo - 1) & 1)

    def test_time_limit_signal_stops_before_the_limit(self):
        # --time=1 with USR1 50 s ahead. Slurm checks limits every 30 s and signals at the
        # first check that is within reach of T, here the first one after the start (0-30 s
        # in); the limit itself is enforced 60-90 s in. Standing in for a job long enough
        # to still be training when the signal comes, the ranks are frozen (SIGSTOP) from
        # step 20 until Slurm's SIGUSR1 is pending, then let go (SIGCONT). If it came
        # earlier, they have already stopped by themselves. Each requeued run has the same
        # limit and may be stopped again.
        job_id, log, run_dir = self.submit("timelimit", "multi-node.sbatch", "--nodes=1", "--time=1",
                                           "--signal=USR1@50")
        self.wait_for_log(job_id, log, f"step 20/{STEPS}")
        pids = self.rank_pids(job_id)
        try:
            for pid in pids:
                os.kill(pid, signal.SIGSTOP)
            deadline = time.time() + 60
            while not all(self.pending_or_gone(pid, signal.SIGUSR1) for pid in pids):
                self.assertLess(time.time(), deadline, "Slurm sent no SIGUSR1 ahead of the time limit")
                time.sleep(0.2)
        except ProcessLookupError:
            pass  # the ranks stopped by themselves before they could be frozen
        finally:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
        self.assert_stopped_requeued_and_exact(job_id, log, run_dir, "SIGUSR1")


if __name__ == "__main__":
    unittest.main()
