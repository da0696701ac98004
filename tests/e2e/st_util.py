"""Helpers for end-to-end tests: run the real binary under mpirun, read checkpoints.

Environment (set by ctest): ST_SOURCE_DIR (project root, for configs/ and data/) and
ST_BINARY (build/shardtrain). Runs under Debian's /usr/bin/python3 (h5py, numpy, torch).
"""
import hashlib
import os
import subprocess

import h5py
import numpy as np

SRC = os.environ.get("ST_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BIN = os.environ.get("ST_BINARY", os.path.join(SRC, "build", "shardtrain"))
DATA = os.path.join(SRC, "data", "fashion_mnist.h5")


def run(np_ranks, *args, timeout=300, cwd=None):
    """Runs `shardtrain args...` on np_ranks ranks (0: no mpirun). Returns CompletedProcess."""
    cmd = [BIN, *args]
    if np_ranks:
        cmd = ["mpirun", "-np", str(np_ranks), "--oversubscribe", "--bind-to", "none", *cmd]
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMP_NUM_THREADS="1")
    return subprocess.run(cmd, cwd=cwd or SRC, env=env, capture_output=True, text=True, timeout=timeout)


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
