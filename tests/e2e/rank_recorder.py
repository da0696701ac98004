"""Runs one rank of a job as a child and records what a test needs to see of it.

    mpirun -np 2 /usr/bin/python3 rank_recorder.py DIR -- build/shardtrain train ...

Writes DIR/pid.RANK (the child's PID, so a test can signal one rank) and, when the child
ends, DIR/exit.RANK (its exit code, or -N if signal N killed it), then exits the same way.
mpirun reports only the first non-zero exit of the job; this shows every rank's.
Signals that mpirun forwards (USR1, USR2) and TERM/INT reach the child unchanged.
"""
import os
import signal
import subprocess
import sys


def main():
    out_dir, sep, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
    assert sep == "--" and cmd, __doc__
    rank = os.environ.get("OMPI_COMM_WORLD_RANK") or os.environ.get("SLURM_PROCID") or "0"
    child = subprocess.Popen(cmd)
    for s in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda signo, _frame: child.send_signal(signo))
    with open(os.path.join(out_dir, f"pid.{rank}.tmp"), "w") as f:
        f.write(str(child.pid))
    os.rename(os.path.join(out_dir, f"pid.{rank}.tmp"), os.path.join(out_dir, f"pid.{rank}"))
    rc = child.wait()  # retried across the handlers above (PEP 475)
    with open(os.path.join(out_dir, f"exit.{rank}"), "w") as f:
        f.write(str(rc))
    sys.exit(rc if rc >= 0 else 128 - rc)


if __name__ == "__main__":
    main()
