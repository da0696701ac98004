"""Helpers for end-to-end tests: run the real binary under mpirun, read checkpoints.

Environment (set by ctest): ST_SOURCE_DIR (project root, for configs/ and data/) and
ST_BINARY (build/shardtrain). Runs under Debian's /usr/bin/python3 (h5py, numpy, torch).
"""
import hashlib
import os
import subprocess
import tempfile

import h5py
import numpy as np

SRC = os.environ.get("ST_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BIN = os.environ.get("ST_BINARY", os.path.join(SRC, "build", "shardtrain"))
DATA = os.path.join(SRC, "data", "fashion_mnist.h5")


def mpi_env():
    return dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1")


def mpirun_cmd(np_ranks, *args):
    """The command line run() uses: `shardtrain args...` under mpirun (np_ranks 0: without)."""
    cmd = [BIN, *args]
    if np_ranks:
        cmd = ["mpirun", "-np", str(np_ranks), "--oversubscribe", "--bind-to", "none", *cmd]
    return cmd


def run(np_ranks, *args, timeout=300, cwd=None):
    """Runs `shardtrain args...` on np_ranks ranks (0: no mpirun). Returns CompletedProcess."""
    return subprocess.run(mpirun_cmd(np_ranks, *args), cwd=cwd or SRC, env=mpi_env(), capture_output=True,
                          text=True, timeout=timeout)


def run_each_rank(np_ranks, *args, timeout=300):
    """run(), plus each rank's own exit code: (CompletedProcess, [code of rank 0, 1, ...]).

    mpirun normally kills the other ranks as soon as one exits non-zero, so its exit code
    says only what the first rank returned. Here it lets every rank finish
    (orte_abort_on_non_zero_status 0) and a shell around each rank records its code;
    a rank that never exits makes the run time out.
    """
    with tempfile.TemporaryDirectory(prefix="st_codes_") as d:
        record = 'code=0; "$0" "$@" || code=$?; echo $code > "%s/rank.$OMPI_COMM_WORLD_RANK"; exit $code' % d
        cmd = ["mpirun", "-np", str(np_ranks), "--oversubscribe", "--bind-to", "none",
               "--mca", "orte_abort_on_non_zero_status", "0", "sh", "-c", record, BIN, *args]
        r = subprocess.run(cmd, cwd=SRC, env=mpi_env(), capture_output=True, text=True, timeout=timeout)
        codes = []
        for rank in range(np_ranks):
            p = os.path.join(d, "rank.%d" % rank)
            if not os.path.exists(p):
                codes.append(None)
                continue
            with open(p) as f:
                codes.append(int(f.read()))
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
