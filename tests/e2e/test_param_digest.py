"""Pins the numerics of the image models across structural changes.

The digests below were recorded with the layer-stack model (commit dad6884) before the
model became a graph over a parameter store; the graph must reproduce them bit for bit.
A digest is sha256 over every /params and /optimizer tensor of the step-20 checkpoint
(sorted by name, raw little-endian float32 bytes).

Bits depend on the GEMM kernel OpenBLAS picks for the CPU, so the runs pin it
(OPENBLAS_CORETYPE=Haswell: AVX2+FMA, what x86-64 machines since 2013 run) and one
thread; the test skips on a CPU without AVX2/FMA, where that kernel cannot run.
"""
import hashlib
import os
import shutil
import tempfile
import unittest

import st_util as st

PINNED = {
    ("tiny_mlp.pbtxt", 1): "c8fe150ed193802869eb010865311624f6f5d467804fcd3449049a21eaad31fa",
    ("tiny_cnn.pbtxt", 1): "75a636f799c555cf9c265bfcfab365f49d8cdb9f9a17f1b833cd740d4924e33e",
    ("tiny_cnn.pbtxt", 2): "1f8852a2862bfe8db92c7f241d801f29bf55fb8a4ba27b330bb8421ca2fd5cd6",
}


def cpu_has_avx2_fma():
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((l for l in f if l.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx2" in flags and "fma" in flags


def checkpoint_digest(path):
    ckpt = st.read_checkpoint(path)
    h = hashlib.sha256()
    for name in sorted(k for k in ckpt if k.startswith(("/params/", "/optimizer/"))):
        h.update(name.encode())
        h.update(ckpt[name].astype("<f4").tobytes())
    return h.hexdigest()


def run_digest(cfg, np_ranks, run_dir):
    env_before = os.environ.get("OPENBLAS_CORETYPE")
    os.environ["OPENBLAS_CORETYPE"] = "Haswell"
    try:
        r = st.run(np_ranks, "train", st.config(cfg), "--run-dir", run_dir, "--set", "train.threads=1")
    finally:
        if env_before is None:
            del os.environ["OPENBLAS_CORETYPE"]
        else:
            os.environ["OPENBLAS_CORETYPE"] = env_before
    if r.returncode != 0:
        raise AssertionError(f"train failed:\n{r.stdout}\n{r.stderr}")
    return checkpoint_digest(os.path.join(run_dir, "checkpoints", "latest"))


@unittest.skipUnless(cpu_has_avx2_fma(), "the pinned digests were recorded with OpenBLAS's Haswell (AVX2+FMA) kernels")
class ParamDigestTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="st_digest_")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_image_models_reproduce_pinned_digests(self):
        for (cfg, np_ranks), want in PINNED.items():
            with self.subTest(cfg=cfg, np=np_ranks):
                got = run_digest(cfg, np_ranks, os.path.join(self.tmp, f"{cfg}-{np_ranks}"))
                self.assertEqual(got, want, f"{cfg} at np={np_ranks}: parameters after 20 steps changed")


if __name__ == "__main__":
    import sys
    if len(sys.argv) > 1 and sys.argv[1] == "--print":
        tmp = tempfile.mkdtemp(prefix="st_digest_")
        for cfg, np_ranks in PINNED:
            print(cfg, np_ranks, run_digest(cfg, np_ranks, os.path.join(tmp, f"{cfg}-{np_ranks}")))
        shutil.rmtree(tmp)
    else:
        unittest.main()
