"""A job across three hosts, simulated on one machine with Linux network namespaces:

      host h1 (198.18.0.1)   host h2 (198.18.0.2)   host h3 (198.18.0.3)
            eth0                   eth0                   eth0
             |  veth pair           |                      |
      +------+----------------------+----------------------+------+
      |                 bridge br0 (in a "switch" namespace)       |
      +------------------------------------------------------------+

Each host is a network namespace with its own address from the benchmarking range
198.18.0.0/15 (never routed) and, per process, its own UTS hostname, so Open MPI sees
three nodes and talks TCP between them. mpirun starts inside h1 and reaches h2 and h3
through tests/e2e/netns_rsh.sh (its `plm_rsh_agent`: enter the namespace instead of ssh).
Everything is created and removed by the test, under names unique to this process, and
nothing is added to the machine's own network (the bridge lives in its own namespace).

  - 3 ranks on 3 hosts end bitwise equal to 3 ranks on one host;
  - a checkpoint of the 3-host run resumes on 2 hosts (a world-size change, allowed for
    replicated state) and finishes, bitwise equal to the same resume on one host.
"""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import unittest

import st_util as st

AGENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "netns_rsh.sh")
SUBNET = "198.18.0.0/24"
TIMEOUT = 120
# One thread per rank wherever it runs (a rank alone on its "host" would take every core),
# and every rank computes the same, so results can be compared bitwise.
ARGS = ["--set", "train.threads=1", "--set", "data.path=" + st.DATA]


def sh(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


class SimulatedHosts:
    """Three namespaces h1..h3 plus a switch namespace; hosts[i] is the name of host i."""

    def __init__(self, n=3):
        self.prefix = "st%d" % os.getpid()  # interface names must stay under 16 characters
        self.switch = self.prefix + "sw"
        self.hosts = ["%sh%d" % (self.prefix, i + 1) for i in range(n)]

    def up(self):
        def ok(*cmd):
            r = sh(*cmd)
            if r.returncode != 0:
                raise RuntimeError(" ".join(cmd) + ": " + r.stderr.strip())
        ok("ip", "netns", "add", self.switch)
        ok("ip", "-n", self.switch, "link", "add", "br0", "type", "bridge")
        ok("ip", "-n", self.switch, "link", "set", "br0", "up")
        for i, host in enumerate(self.hosts, start=1):
            ok("ip", "netns", "add", host)
            # Created in the host's namespace; the peer end moves into the switch.
            ok("ip", "-n", host, "link", "add", "eth0", "type", "veth", "peer", "name", "port%d" % i)
            ok("ip", "-n", host, "link", "set", "port%d" % i, "netns", self.switch)
            ok("ip", "-n", self.switch, "link", "set", "port%d" % i, "master", "br0", "up")
            ok("ip", "-n", host, "addr", "add", "198.18.0.%d/24" % i, "dev", "eth0")
            ok("ip", "-n", host, "link", "set", "eth0", "up")
            ok("ip", "-n", host, "link", "set", "lo", "up")

    def down(self):
        for ns in self.hosts + [self.switch]:
            pids = sh("ip", "netns", "pids", ns).stdout.split()  # a timed-out job's leftovers
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            sh("ip", "netns", "del", ns)  # its veth ends (and the bridge) go with it

    def mpirun(self, hosts, *args):
        """`shardtrain args...` with one rank on each of `hosts`, launched from hosts[0]."""
        mpi = ["mpirun", "-np", str(len(hosts)), "--host", ",".join(h + ":1" for h in hosts),
               "--mca", "plm_rsh_agent", AGENT,
               # Daemons and ranks talk over the simulated network only.
               "--mca", "oob_tcp_if_include", SUBNET, "--mca", "btl_tcp_if_include", SUBNET,
               "--display-map", "--bind-to", "none", st.BIN, *args]
        # mpirun itself runs on the first host, as a user logged in there would start it.
        cmd = ["ip", "netns", "exec", hosts[0], "unshare", "--uts", "--", "sh", "-c",
               'hostname "$0" && exec "$@"', hosts[0], *mpi]
        return subprocess.run(cmd, cwd=st.SRC, env=st.mpi_env(), capture_output=True, text=True, timeout=TIMEOUT)


class MultiHostTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("unshare"):
            raise unittest.SkipTest("needs root, `ip` (iproute2) and `unshare` to simulate hosts")
        cls.net = SimulatedHosts()
        probe = sh("ip", "netns", "add", cls.net.switch)
        if probe.returncode != 0:
            raise unittest.SkipTest("`ip netns add` is not permitted here: " + probe.stderr.strip())
        sh("ip", "netns", "del", cls.net.switch)
        try:
            cls.net.up()
        except Exception:
            cls.net.down()
            raise
        cls.tmp = tempfile.mkdtemp(prefix="st_multihost_")

    @classmethod
    def tearDownClass(cls):
        cls.net.down()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def train_on_hosts(self, hosts, run_dir, *extra):
        r = self.net.mpirun(hosts, "train", st.config("tiny_mlp.pbtxt"), "--run-dir", run_dir, *ARGS, *extra)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # Open MPI's own map of the job: one rank on each host, each host a node of its own.
        nodes = re.findall(r"Data for node: (\S+)\s+Num slots: \d+\s+Max slots: \d+\s+Num procs: (\d+)", r.stdout)
        self.assertEqual(sorted(set(nodes)), sorted((h, "1") for h in hosts), r.stdout)
        return r

    def train_one_host(self, np_ranks, run_dir, *extra):
        r = st.run(np_ranks, "train", st.config("tiny_mlp.pbtxt"), "--run-dir", run_dir, *ARGS, *extra,
                   timeout=TIMEOUT)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r

    def assert_bitwise(self, a_path, b_path):
        self.assertEqual(st.checkpoint_differences(a_path, b_path, meta=("step", "optimizer_step", "world_size")),
                         [], "%s vs %s" % (a_path, b_path))

    def ckpt(self, run_dir, step):
        return os.path.join(run_dir, "checkpoints", "ckpt-%08d.h5" % step)

    def test_three_hosts_equal_one_host_and_resume_on_two(self):
        hosts = os.path.join(self.tmp, "hosts3")
        self.train_on_hosts(self.net.hosts, hosts)
        local = os.path.join(self.tmp, "local3")
        self.train_one_host(3, local)
        self.assert_bitwise(self.ckpt(hosts, 20), self.ckpt(local, 20))
        self.assertEqual(st.read_checkpoint(self.ckpt(hosts, 20))["meta"]["world_size"], 3)

        # The 3-host run's step-10 checkpoint, continued on 2 hosts and on 1 host with 2 ranks.
        resumed = {}
        for name in ("hosts2", "local2"):
            resumed[name] = os.path.join(self.tmp, name)
            os.makedirs(os.path.join(resumed[name], "checkpoints"))
            shutil.copy(self.ckpt(hosts, 10), os.path.join(resumed[name], "checkpoints"))
        r = self.train_on_hosts(self.net.hosts[:2], resumed["hosts2"], "--resume", "auto")
        self.assertIn("at step 10", r.stderr)
        self.assertIn("written by 3 ranks, resuming on 2", r.stderr)
        self.train_one_host(2, resumed["local2"], "--resume", "auto")
        self.assert_bitwise(self.ckpt(resumed["hosts2"], 20), self.ckpt(resumed["local2"], 20))


if __name__ == "__main__":
    unittest.main(verbosity=2)
