"""Helpers for end-to-end tests: run the real binary under mpirun, read checkpoints.

Environment (set by ctest): ST_SOURCE_DIR (project root, for configs/ and data/) and
ST_BINARY (build/shardtrain). Runs under Debian's /usr/bin/python3 (h5py, numpy, torch).
"""
import hashlib
import os
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("ST_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BIN = os.environ.get("ST_BINARY", os.path.join(SRC, "build", "shardtrain"))
DATA = os.path.join(SRC, "data", "fashion_mnist.h5")


def mpi_env():
    return dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1")


def command(np_ranks, *args, record_dir=None):
    """The command line of `shardtrain args...` on np_ranks ranks (0: no mpirun). With
    record_dir, each rank runs under rank_recorder.py (its PID and exit code land there)."""
    cmd = [BIN, *args]
    if record_dir:
        cmd = [sys.executable, os.path.join(HERE, "rank_recorder.py"), record_dir, "--", *cmd]
    if np_ranks:
        cmd = ["mpirun", "-np", str(np_ranks), "--oversubscribe", "--bind-to", "none", *cmd]
    return cmd


def run(np_ranks, *args, timeout=300, cwd=None):
    """Runs `shardtrain args...` on np_ranks ranks (0: no mpirun). Returns CompletedProcess."""
    return subprocess.run(command(np_ranks, *args), cwd=cwd or SRC, env=mpi_env(), capture_output=True, text=True,
                          timeout=timeout)


def start(np_ranks, *args, log_path, record_dir=None):
    """Starts `shardtrain args...` in the background, stdout and stderr into log_path. Popen."""
    with open(log_path, "w") as log:
        return subprocess.Popen(command(np_ranks, *args, record_dir=record_dir), cwd=SRC, env=mpi_env(),
                                stdout=log, stderr=subprocess.STDOUT)


def wait_for_text(path, text, proc, timeout=120):
    """Polls the file at path until it contains text; fails if proc ends first or on timeout."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open(path, errors="replace") as f:
            if text in f.read():
                return
        if proc.poll() is not None:
            raise AssertionError(f"process ended (code {proc.returncode}) before printing {text!r}:\n" + read(path))
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not printed within {timeout} s:\n" + read(path))


def signal_when_printed(proc, path, text, send, timeout=120):
    """Once the file at path contains text, calls send() and waits for proc to end (killing
    it if it does not within timeout). Returns proc's exit code."""
    try:
        wait_for_text(path, text, proc, timeout)
        send()
        return proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


def state_differences(path_a, path_b):
    """Names of the tensors (parameters, optimizer state) and meta steps in which two
    checkpoints differ bitwise; [] when identical. An absent tensor counts as different."""
    a, b = read_checkpoint(path_a), read_checkpoint(path_b)
    diffs = sorted(set(tensors(a)) ^ set(tensors(b)))
    diffs += [k for k in sorted(set(tensors(a)) & set(tensors(b))) if not np.array_equal(a[k], b[k])]
    diffs += [f"meta.{k}" for k in ("step", "optimizer_step") if a["meta"][k] != b["meta"][k]]
    if not any(k.startswith("/optimizer/") for k in tensors(a)):
        diffs.append("(no optimizer state in " + path_a + ")")
    return diffs


def run_each_rank(np_ranks, *args, timeout=300):
    """run(), plus each rank's own exit code: (CompletedProcess, [code of rank 0, 1, ...]).

    mpirun normally kills the other ranks as soon as one exits non-zero, so its exit code
    says only what the first rank returned. Here it lets every rank finish
    (orte_abort_on_non_zero_status 0) and rank_recorder.py records each rank's code (None
    for a rank that left none); a rank that never exits makes the run time out.
    """
    with tempfile.TemporaryDirectory(prefix="st_codes_") as d:
        cmd = command(np_ranks, *args, record_dir=d)
        cmd[1:1] = ["--mca", "orte_abort_on_non_zero_status", "0"]
        r = subprocess.run(cmd, cwd=SRC, env=mpi_env(), capture_output=True, text=True, timeout=timeout)
        codes = []
        for rank in range(np_ranks):
            p = os.path.join(d, "exit.%d" % rank)
            codes.append(int(read(p)) if os.path.exists(p) else None)
        return r, codes


def config(name):
    return os.path.join(SRC, "configs", name)


def read_checkpoint(path):
    """{"/params/fc1.weight": array, ...} for every dataset, plus meta attrs under "meta"."""
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out["/" + name] = obj[()]
        f.visititems(visit)
        out["meta"] = {k: v for k, v in f["meta"].attrs.items()}
    return out


def tensors(ckpt):
    return {k: v for k, v in ckpt.items() if k != "meta"}


def checkpoint_differences(a_path, b_path, meta=("step", "optimizer_step")):
    """What differs bitwise between two checkpoints: tensors (by name) and `meta` attributes."""
    a, b = read_checkpoint(a_path), read_checkpoint(b_path)
    ta, tb = tensors(a), tensors(b)
    diff = sorted(set(ta) ^ set(tb))
    diff += [k for k in sorted(set(ta) & set(tb)) if not np.array_equal(ta[k], tb[k])]
    diff += ["meta/" + k for k in meta if a["meta"][k] != b["meta"][k]]
    return diff


def tree_digest(path):
    """sha256 of every file under path (resolving nothing), to prove nothing changed."""
    digest = {}
    for root, _, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            if os.path.islink(p):
                digest[p] = "link:" + os.readlink(p)
            else:
                with open(p, "rb") as fh:
                    digest[p] = hashlib.sha256(fh.read()).hexdigest()
    return digest


def max_rel_diff(a, b):
    """max |a - b| / max(|b|_inf, 1e-12): relative to the tensor's scale."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-12))
