"""kill -9 of one rank, again and again, each time followed by `--resume auto` in the same
run dir: the run must end bitwise equal to one that was never interrupted.

20+ trials back to back on tiny_mlp with a checkpoint after every step:
  - 12 kill a random rank (0 or 1) after the run has saved 1-3 new checkpoints;
  - at least 8 kill rank 0 *during a save*. How that is ensured: rank 0 writes each
    checkpoint under the name ckpt-NNNNNNNN.h5.tmp-<its pid> (created first, then filled,
    fsynced and renamed), so the test polls the checkpoint dir and kills exactly the pid
    in the first such name it sees. A kill counts as "during a save" only if that temp
    file is still there after the job is gone, i.e. the writer died before the rename;
    kills that landed just after the rename are counted as ordinary trials and the test
    tries again (up to 16 times) until 8 landed inside a save.
"""
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import st_util as st

STEPS = 80
ARGS = ["--set", "train.steps=%d" % STEPS, "--set", "checkpoint.every=1", "--set", "train.log_every=1000"]
RANDOM_KILLS, SAVE_KILLS, MAX_SAVE_ATTEMPTS = 12, 8, 16
TEMP = re.compile(r"^ckpt-\d+\.h5\.tmp-(\d+)$")


def rank_pids(mpirun_pid):
    """{rank: pid} of the shardtrain processes mpirun started (its children)."""
    out = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/stat" % pid) as f:
                stat = f.read()
            if int(stat.rsplit(")", 1)[1].split()[1]) != mpirun_pid or "(shardtrain)" not in stat:
                continue
            with open("/proc/%s/environ" % pid, "rb") as f:
                env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
            out[int(env[b"OMPI_COMM_WORLD_RANK"])] = int(pid)
        except (OSError, KeyError, ValueError, IndexError):
            continue  # exited meanwhile, or not ours
    return out


def latest_step(ckpt_dir):
    try:
        return int(re.match(r"ckpt-(\d+)\.h5", os.readlink(os.path.join(ckpt_dir, "latest"))).group(1))
    except OSError:
        return 0


class KillResumeTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="st_kill_")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start(self, run_dir):
        cmd = st.command(2, "train", st.config("tiny_mlp.pbtxt"), "--run-dir", run_dir, "--resume", "auto", *ARGS)
        return subprocess.Popen(cmd, cwd=st.SRC, env=st.mpi_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)

    def poll_until(self, job, what, check, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            found = check()
            if found:
                return found
            if job.poll() is not None:
                self.fail("the job ended (code %s) before %s:\n%s" % (job.returncode, what, job.stderr.read()))
            time.sleep(0.001)
        self.fail("timed out waiting for " + what)

    def kill_during_save(self, job, ckpt_dir):
        """Kills rank 0 while a temp file of its is in the checkpoint dir; returns that path."""
        ranks = set(self.poll_until(job, "both ranks", lambda: len(rank_pids(job.pid)) == 2 and rank_pids(job.pid))
                    .values())

        def writer_temp():
            for name in os.listdir(ckpt_dir) if os.path.isdir(ckpt_dir) else []:
                m = TEMP.match(name)
                if m and int(m.group(1)) in ranks:  # not a stale one from an earlier trial
                    return int(m.group(1)), os.path.join(ckpt_dir, name)
            return None
        pid, temp = self.poll_until(job, "a checkpoint write", writer_temp)
        os.kill(pid, signal.SIGKILL)
        return temp

    def kill_random_rank(self, job, ckpt_dir, rng):
        target = latest_step(ckpt_dir) + rng.randint(1, 3)
        self.poll_until(job, "step %d" % target, lambda: latest_step(ckpt_dir) >= target)
        rank = rng.randint(0, 1)
        pid = self.poll_until(job, "rank %d" % rank, lambda: rank_pids(job.pid).get(rank))
        os.kill(pid, signal.SIGKILL)

    def test_kill9_twenty_times_then_resume_is_bitwise(self):
        t0 = time.time()
        ref = os.path.join(self.tmp, "ref")
        r = st.run(2, "train", st.config("tiny_mlp.pbtxt"), "--run-dir", ref, *ARGS)
        self.assertEqual(r.returncode, 0, r.stderr)

        run_dir = os.path.join(self.tmp, "run")
        ckpt_dir = os.path.join(run_dir, "checkpoints")
        rng = random.Random(9)
        plan = ["random"] * RANDOM_KILLS + ["save"] * MAX_SAVE_ATTEMPTS
        rng.shuffle(plan)
        trials = in_save = 0
        for kind in plan:
            if kind == "save" and in_save == SAVE_KILLS:
                continue
            job = self.start(run_dir)
            try:
                if kind == "save":
                    temp = self.kill_during_save(job, ckpt_dir)
                else:
                    self.kill_random_rank(job, ckpt_dir, rng)
                job.wait(timeout=60)  # mpirun takes the other rank down and exits
            finally:
                if job.poll() is None:
                    os.killpg(job.pid, signal.SIGKILL)
                    job.wait()
                job.stderr.close()
            self.assertNotEqual(job.returncode, 0)
            trials += 1
            if kind == "save" and os.path.exists(temp):
                in_save += 1
            self.assertLess(latest_step(ckpt_dir), STEPS, "the run finished before the trials did")
        self.assertGreaterEqual(trials, RANDOM_KILLS + SAVE_KILLS)
        self.assertEqual(in_save, SAVE_KILLS, "too few kills landed inside a checkpoint write")

        r = st.run(2, "train", st.config("tiny_mlp.pbtxt"), "--run-dir", run_dir, "--resume", "auto", *ARGS)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse([n for n in os.listdir(ckpt_dir) if TEMP.match(n)], "stale temp files left behind")
        self.assertEqual(os.readlink(os.path.join(ckpt_dir, "latest")), "ckpt-%08d.h5" % STEPS)
        name = "ckpt-%08d.h5" % STEPS
        self.assertEqual(st.checkpoint_differences(os.path.join(ref, "checkpoints", name), os.path.join(ckpt_dir, name)),
                         [], "differs from the uninterrupted run after %d kills" % trials)
        print("%d kill -9 trials (%d inside a save) in %.0f s" % (trials, in_save, time.time() - t0))


if __name__ == "__main__":
    unittest.main(verbosity=2)
