"""Every bad input: one clear error line naming the file/field/tensor, a non-zero exit
(2 for usage/config errors) from the whole job under mpirun (no hang: every run has a
timeout), and nothing already on disk changed."""
import os
import shutil
import subprocess
import tempfile
import unittest

import h5py
import numpy as np

import st_util as st

TIMEOUT = 120  # a hang fails the test instead of blocking CI
TEXT = os.path.join(st.SRC, "data", "fortunes.h5")


class BadInputTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # One good run whose checkpoints the cases below must never touch.
        cls.tmp = tempfile.mkdtemp(prefix="st_bad_")
        cls.run_dir = os.path.join(cls.tmp, "good")
        r = st.run(2, "train", st.config("tiny_mlp.pbtxt"), "--run-dir", cls.run_dir)
        assert r.returncode == 0, r.stderr
        cls.ckpt_dir = os.path.join(cls.run_dir, "checkpoints")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.before = st.tree_digest(self.run_dir)

    def tearDown(self):
        self.assertEqual(st.tree_digest(self.run_dir), self.before, "a bad input changed files on disk")

    def write(self, name, text):
        p = os.path.join(self.tmp, name)
        with open(p, "w") as f:
            f.write(text)
        return p

    def fails(self, np_ranks, args, code, *needles):
        r = st.run(np_ranks, *args, timeout=TIMEOUT)
        out = r.stdout + r.stderr
        self.assertNotEqual(r.returncode, 0, out)
        if code is not None:
            self.assertEqual(r.returncode, code, out)
        errors = [l for l in r.stderr.splitlines() if "error:" in l]
        self.assertEqual(len(errors), 1, "expected exactly one error line:\n" + out)
        for n in needles:
            self.assertIn(n, errors[0], out)
        self.assertNotIn("terminate called", out)  # no C++ exception escaped
        return errors[0]

    def good_config_text(self):
        with open(st.config("tiny_mlp.pbtxt")) as f:
            return f.read()

    # ---- config
    def test_syntax_error_names_file_line_col(self):
        p = self.write("syntax.pbtxt", "name: \"x\"\ntrain { steps: 5 \n")
        self.fails(2, ["train", p, "--run-dir", os.path.join(self.tmp, "r1")], 2, "syntax.pbtxt:3:")

    def test_unknown_field(self):
        p = self.write("unknown.pbtxt", self.good_config_text().replace("log_every: 5", "log_evry: 5"))
        self.fails(2, ["train", p, "--run-dir", os.path.join(self.tmp, "r2")], 2, "unknown.pbtxt:", "log_evry")

    def test_impossible_value_names_field(self):
        self.fails(2, ["train", st.config("tiny_mlp.pbtxt"), "--set", "optimizer.lr=-1",
                       "--run-dir", os.path.join(self.tmp, "r3")], 2, "optimizer.lr")

    def test_unknown_override_path(self):
        self.fails(2, ["train", st.config("tiny_mlp.pbtxt"), "--set", "train.stepz=3",
                       "--run-dir", os.path.join(self.tmp, "r4")], 2, "stepz")

    def test_unknown_flag(self):
        self.fails(2, ["train", st.config("tiny_mlp.pbtxt"), "--bogus"], 2, "--bogus")

    def test_missing_config_file(self):
        self.fails(2, ["train", os.path.join(self.tmp, "nope.pbtxt")], 2, "nope.pbtxt")

    def test_global_batch_not_divisible_by_world_size(self):
        self.fails(2, ["train", st.config("tiny_mlp.pbtxt"), "--set", "data.global_batch=25",
                       "--run-dir", os.path.join(self.tmp, "r5")], 2, "data.global_batch", "world size")

    def test_bf16_on_cpu_names_the_field(self):
        self.fails(2, ["train", st.config("gpt_tiny.pbtxt"), "--set", "train.precision=BF16",
                       "--run-dir", os.path.join(self.tmp, "bf16")], 2, "train.precision=BF16", "device=cuda")

    def test_layer_shape_error_names_layer(self):
        p = self.write("nolatten.pbtxt", self.good_config_text().replace('layer { name: "flatten" flatten {} }', ""))
        self.fails(2, ["train", p, "--run-dir", os.path.join(self.tmp, "r6")], None, "fc1")

    # ---- data
    def test_missing_data_file_names_prepare_script(self):
        self.fails(2, ["train", st.config("tiny_mlp.pbtxt"), "--set", "data.path=" + os.path.join(self.tmp, "no.h5"),
                       "--run-dir", os.path.join(self.tmp, "r7")], None, "no.h5", "prepare-data.sh")

    def test_data_file_not_hdf5(self):
        p = self.write("garbage.h5", "this is not hdf5\n" * 100)
        self.fails(2, ["train", st.config("tiny_mlp.pbtxt"), "--set", "data.path=" + p,
                       "--run-dir", os.path.join(self.tmp, "r8")], None, "garbage.h5")

    def test_wrong_dataset_shape_names_dataset(self):
        p = os.path.join(self.tmp, "badshape.h5")
        with h5py.File(p, "w") as f:
            for split in ("train", "test"):
                f.create_dataset(f"{split}/images", data=np.zeros((100, 28), np.uint8))
                f.create_dataset(f"{split}/labels", data=np.zeros((99,), np.uint8))
        self.fails(2, ["train", st.config("tiny_mlp.pbtxt"), "--set", "data.path=" + p,
                       "--run-dir", os.path.join(self.tmp, "r9")], None, "badshape.h5", "/train/images", "[100, 28]")

    def test_one_rank_failing_mid_training_takes_the_job_down(self):
        # Sample 100 has label 77: only the rank whose slice holds it (rank 0, batch 4 =
        # samples 96..119 unshuffled) fails, at step 5, while rank 1 waits in the gradient
        # all-reduce. The job must end (MPI_Abort), not hang, with that rank's error line.
        p = os.path.join(self.tmp, "badlabel.h5")
        rng = np.random.default_rng(0)
        with h5py.File(p, "w") as f:
            for split, n in (("train", 200), ("test", 50)):
                f.create_dataset(f"{split}/images", data=rng.integers(0, 255, (n, 1, 28, 28), dtype=np.uint8))
                labels = rng.integers(0, 10, n, dtype=np.uint8)
                if split == "train":
                    labels[100] = 77
                f.create_dataset(f"{split}/labels", data=labels)
        r = st.run(2, "train", st.config("tiny_mlp.pbtxt"), "--set", "data.path=" + p, "--set", "data.shuffle=false",
                   "--set", "train.log_every=1", "--run-dir", os.path.join(self.tmp, "r10"), timeout=TIMEOUT)
        out = r.stdout + r.stderr
        self.assertNotEqual(r.returncode, 0, out)
        self.assertIn("step 4/20", out)  # it really failed mid-run, after good steps
        errors = [l for l in r.stderr.splitlines() if "error:" in l]
        self.assertEqual(len(errors), 1, out)
        self.assertIn("[rank 0]", errors[0])
        self.assertIn("badlabel.h5", errors[0])
        self.assertIn("100", errors[0])

    # ---- token data (configs/gpt_ref.pbtxt: seq_len 16, num_classes 256, wpe max_seq 16)
    def token_file(self, name, train, dtype=np.uint16, vocab_size=256):
        """An import-text-like token file: /train/tokens (given), /val/tokens (100 windows)."""
        p = os.path.join(self.tmp, name)
        rng = np.random.default_rng(2)
        with h5py.File(p, "w") as f:
            if vocab_size is not None:
                f.attrs["vocab_size"] = np.int64(vocab_size)
            f.create_dataset("train/tokens", data=np.asarray(train).astype(dtype))
            f.create_dataset("val/tokens", data=rng.integers(0, 256, 1601).astype(np.uint16))
        return p

    def random_tokens(self, n=4001):
        return np.random.default_rng(3).integers(0, 256, n)

    def gpt_text(self):
        with open(st.config("gpt_ref.pbtxt")) as f:
            return f.read()

    def fails_at_start(self, args, code, *needles):
        """fails() for a train command that must stop before creating its (fresh) run dir."""
        run_dir = os.path.join(self.tmp, "never_" + self.id().split(".")[-1])
        line = self.fails(2, ["train", *args, "--run-dir", run_dir], code, *needles)
        self.assertFalse(os.path.exists(run_dir), "a failed start created the run dir")
        return line

    def test_token_dataset_of_float_names_file_dataset_and_type(self):
        p = self.token_file("float_tokens.h5", self.random_tokens(), dtype=np.float32)
        self.fails_at_start([st.config("gpt_ref.pbtxt"), "--set", "data.path=" + p], 2,
                            "float_tokens.h5", "/train/tokens", "float32")

    def test_seq_len_longer_than_position_embedding_names_wpe(self):
        self.fails_at_start([st.config("gpt_ref.pbtxt"), "--set", "data.seq_len=32"], 2,
                            "(wpe)", "32", "max_seq 16", "data.seq_len")

    def test_token_id_beyond_vocabulary_names_file_position_and_value(self):
        # No vocab_size attribute, so nothing can be caught at start: the id is found when its
        # window is read. Unshuffled, window 5 (tokens 80..96) is in rank 1's half of the
        # first batch; rank 1 fails at step 1 while rank 0 waits in the all-reduce.
        tokens = self.random_tokens()
        tokens[87] = 300
        p = self.token_file("beyond_vocab.h5", tokens, vocab_size=None)
        line = self.fails(2, ["train", st.config("gpt_ref.pbtxt"), "--set", "data.path=" + p, "--set",
                              "data.shuffle=false", "--run-dir", os.path.join(self.tmp, "tv1")], None,
                          "beyond_vocab.h5", "/train/tokens[87]", "token 300", "256")
        self.assertIn("[rank 1]", line)

    def test_file_vocabulary_larger_than_num_classes_fails_at_start(self):
        p = self.token_file("gpt2_vocab.h5", self.random_tokens(), vocab_size=50257)
        self.fails_at_start([st.config("gpt_ref.pbtxt"), "--set", "data.path=" + p], 2,
                            "gpt2_vocab.h5", "/train/tokens", "50257", "256", "data.num_classes")

    def test_token_split_shorter_than_one_window(self):
        p = self.token_file("short_tokens.h5", self.random_tokens(10))
        self.fails_at_start([st.config("gpt_ref.pbtxt"), "--set", "data.path=" + p], 2,
                            "short_tokens.h5", "/train/tokens", "10 tokens", "17")

    def test_tokens_without_seq_len_names_field(self):
        p = self.write("no_seq_len.pbtxt", self.gpt_text().replace("  seq_len: 16\n", ""))
        self.fails_at_start([p], 2, "no_seq_len.pbtxt", "data.seq_len")

    def test_image_model_on_token_file_names_missing_images(self):
        self.fails_at_start([st.config("tiny_mlp.pbtxt"), "--set", "data.path=" + TEXT], 2,
                            "fortunes.h5", "/train/images")

    def test_lm_head_tied_to_missing_layer_names_parameter(self):
        p = self.write("tie_missing.pbtxt", self.gpt_text().replace('tied_to: "wte"', 'tied_to: "tok_emb"'))
        self.fails_at_start([p], 2, "(lm_head)", "tok_emb.weight")

    def test_lm_head_tied_to_a_vector_names_shapes(self):
        # ln_f.weight is [32]: it used to read "is [32] but the input has 32 features".
        p = self.write("tie_vector.pbtxt", self.gpt_text().replace('tied_to: "wte"', 'tied_to: "ln_f"'))
        self.fails_at_start([p], 2, "(lm_head)", "ln_f.weight is [32]", "[V, 32]")

    def test_embedding_smaller_than_vocabulary_names_layer_and_both_sizes(self):
        # The loader checks ids against data.num_classes (256), so ids up to 255 reach the
        # token table. With 128 rows and an untied head they were read out of bounds (the CPU
        # backend aborted); with 200 rows padded to 256 (pad_to 64) and the tied head, ids
        # 200..255 silently trained the padding rows. Random bytes use the whole range.
        p = self.token_file("all_bytes.h5", self.random_tokens())
        untied = self.gpt_text().replace("num_embeddings: 256", "num_embeddings: 128").replace(
            'lm_head { tied_to: "wte" }', "linear { out_features: 256 }")
        tied = self.gpt_text().replace("num_embeddings: 256", "num_embeddings: 200")
        for name, text, rows in (("emb128_untied.pbtxt", untied, "128"), ("emb200_tied.pbtxt", tied, "200")):
            with self.subTest(name):
                self.fails_at_start([self.write(name, text), "--set", "data.path=" + p], 2,
                                    "(wte)", "embedding.num_embeddings", rows, "data.num_classes", "256")

    # ---- checkpoints
    def corrupt_copy(self, how):
        d = os.path.join(tempfile.mkdtemp(prefix="corrupt_" + how + "_", dir=self.tmp), "run")
        shutil.copytree(self.run_dir, d, symlinks=True)
        ckpts = sorted(os.listdir(os.path.join(d, "checkpoints")))
        newest = os.path.join(d, "checkpoints", [c for c in ckpts if c.startswith("ckpt-")][-1])
        size = os.path.getsize(newest)
        if how == "truncate":
            os.truncate(newest, size // 2)
        else:  # flip bytes in the middle of the file (tensor data)
            with open(newest, "r+b") as f:
                f.seek(size // 2)
                b = f.read(64)
                f.seek(size // 2)
                f.write(bytes(x ^ 0xFF for x in b))
        return d, newest

    def test_truncated_checkpoint_explicit_resume(self):
        d, newest = self.corrupt_copy("truncate")
        before = st.tree_digest(d)
        self.fails(2, ["train", st.config("tiny_mlp.pbtxt"), "--run-dir", d, "--resume", newest], 1,
                   os.path.basename(newest))
        self.assertEqual(st.tree_digest(d), before)

    def test_corrupt_checkpoint_eval(self):
        d, newest = self.corrupt_copy("flip")
        self.fails(2, ["eval", st.config("tiny_mlp.pbtxt"), "--checkpoint", newest], 1, os.path.basename(newest))

    def test_resume_auto_skips_truncated_newest(self):
        d, newest = self.corrupt_copy("truncate")
        r = st.run(2, "train", st.config("tiny_mlp.pbtxt"), "--run-dir", d, "--resume", "auto", timeout=TIMEOUT)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("skipping", r.stderr)
        self.assertIn("resuming from", r.stderr)
        self.assertIn("at step 10", r.stderr)
        # The unreadable step-20 file was moved aside (kept), not overwritten.
        self.assertTrue(os.path.exists(newest + ".corrupt"))
        self.assertEqual(st.read_checkpoint(newest)["meta"]["step"], 20)

    def test_checkpoint_tensor_mismatch_names_tensor_and_shapes(self):
        p = self.write("wider.pbtxt", self.good_config_text().replace("out_features: 32", "out_features: 64"))
        self.fails(2, ["eval", p, "--checkpoint", os.path.join(self.ckpt_dir, "latest")], None,
                   "fc1.weight", "[32, 784]", "[64, 784]")

    def test_fresh_run_into_used_run_dir_refuses(self):
        self.fails(2, ["train", st.config("tiny_mlp.pbtxt"), "--run-dir", self.run_dir], None, "--resume auto")

    def test_resume_auto_with_only_unreadable_checkpoints_refuses(self):
        # Unreadable is not absent: starting afresh would prune them later.
        d, newest = self.corrupt_copy("truncate")
        for f in os.listdir(os.path.join(d, "checkpoints")):
            if f.startswith("ckpt-") and f.endswith(".h5") and os.path.join(d, "checkpoints", f) != newest:
                os.truncate(os.path.join(d, "checkpoints", f), 100)
        before = st.tree_digest(d)
        self.fails(2, ["train", st.config("tiny_mlp.pbtxt"), "--run-dir", d, "--resume", "auto"], 1,
                   "none of the 2 checkpoint(s)")
        self.assertEqual(st.tree_digest(d), before)

    def test_resume_other_runs_checkpoint_into_used_run_dir_refuses(self):
        other = os.path.join(self.tmp, "other")
        r = st.run(1, "train", st.config("tiny_mlp.pbtxt"), "--run-dir", other, "--set", "train.steps=10",
                   timeout=TIMEOUT)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.fails(2, ["train", st.config("tiny_mlp.pbtxt"), "--run-dir", self.run_dir, "--resume",
                       os.path.join(other, "checkpoints", "ckpt-00000010.h5")], None, "would mix two runs")

    def test_train_and_test_sample_shapes_must_match(self):
        p = os.path.join(self.tmp, "mixed.h5")
        rng = np.random.default_rng(1)
        with h5py.File(p, "w") as f:
            for split, n, side in (("train", 300, 28), ("test", 100, 14)):
                f.create_dataset(f"{split}/images", data=rng.integers(0, 255, (n, 1, side, side), dtype=np.uint8))
                f.create_dataset(f"{split}/labels", data=rng.integers(0, 10, n, dtype=np.uint8))
        self.fails(2, ["train", st.config("tiny_mlp.pbtxt"), "--set", "data.path=" + p,
                       "--run-dir", os.path.join(self.tmp, "r11")], 2, "mixed.h5", "[1, 14, 14]", "[1, 28, 28]")

    def test_ranks_seeing_different_run_dirs_fail_cleanly(self):
        # Two "nodes" with node-local run dirs: rank 0's holds checkpoints, rank 1's is empty.
        # Rank 0 decides where to resume; rank 1 cannot read that file and the whole job
        # stops with one error line, instead of ranks training from different steps.
        node_a, node_b = os.path.join(self.tmp, "nodeA"), os.path.join(self.tmp, "nodeB")
        shutil.copytree(self.run_dir, os.path.join(node_a, "run"), symlinks=True)
        os.makedirs(node_b)
        args = [st.BIN, "train", st.config("tiny_mlp.pbtxt"), "--run-dir", "run", "--resume", "auto",
                "--set", "data.path=" + st.DATA]
        cmd = ["mpirun", "--oversubscribe", "--bind-to", "none", "-np", "1", "-wdir", node_a, *args, ":",
               "-np", "1", "-wdir", node_b, *args]
        env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1")
        before = st.tree_digest(node_a)
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
        self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
        errors = [l for l in r.stderr.splitlines() if "error:" in l]
        self.assertEqual(len(errors), 1, r.stdout + r.stderr)
        self.assertIn("ckpt-00000020.h5", errors[0])
        self.assertEqual(st.tree_digest(node_a), before)
        self.assertEqual(os.listdir(node_b), [])

    def test_missing_checkpoint(self):
        self.fails(2, ["eval", st.config("tiny_mlp.pbtxt"), "--checkpoint", os.path.join(self.tmp, "none.h5")],
                   None, "none.h5")


if __name__ == "__main__":
    unittest.main(verbosity=2)
