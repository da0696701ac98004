"""Self-checks of the PyTorch GPT reference (gpt_torch.py), which test_gpt_reference.py
holds shardtrain's C++ GPT to. A reference is only as good as its own checks, so:
  - the forward (logits and loss) equals an independent float64 NumPy implementation
    written from the spec with explicit loops over heads: fixes the q/k/v split, the head
    layout, tanh GELU, LayerNorm eps, the causal mask, the tied head and the masked loss;
  - autograd's gradients equal finite differences (torch.autograd.gradcheck, float64);
  - padded vocabulary columns take no part in the loss and get exactly zero gradient;
  - the tied wte gradient is the sum of the embedding use and the head use;
  - the two-group AdamW, with state loaded as from a checkpoint, equals a hand-written step.
And the scripts built on the model: torch_gpt_train.py (shardtrain's schedule, its windows,
that it learns) and torch_bench.py's gpt mode.
Sizes are tiny: the whole file runs in seconds on one thread.
"""
import json
import math
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpt_torch  # noqa: E402
import torch_gpt_train  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

L, H, C, V, T, B = 2, 2, 8, 5, 4, 2  # Vp = 64


def tiny_model(seed=0, dtype=torch.float64):
    """A tiny GPT whose parameters are all random (LayerNorm and biases too, so none of
    them is a trivial 1 or 0 and the padded rows of wte are nonzero)."""
    torch.manual_seed(seed)
    model = gpt_torch.GPT(L, H, C, V, max_seq=T + 2).to(dtype)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, dtype=dtype) * 0.5)
    return model


def batch(seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(V, (B, T), generator=g), torch.randint(V, (B, T), generator=g)


def numpy_forward(p, idx):
    """Logits [B, T, Vp] of the spec, in float64 NumPy, one head at a time."""
    def layernorm(x, w, b):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-5) * w + b

    def linear(x, name):
        return x @ p[name + ".weight"].T + p[name + ".bias"]

    nb, nt = idx.shape
    d = C // H
    x = p["wte.weight"][idx] + p["wpe.weight"][:nt]
    for i in range(L):
        qkv = linear(layernorm(x, p[f"h.{i}.ln_1.weight"], p[f"h.{i}.ln_1.bias"]), f"h.{i}.attn.c_attn")
        y = np.zeros_like(x)
        for s in range(nb):
            for h in range(H):
                cols = slice(h * d, (h + 1) * d)
                q, k, v = qkv[s, :, :C][:, cols], qkv[s, :, C:2 * C][:, cols], qkv[s, :, 2 * C:][:, cols]
                for t in range(nt):  # query t sees keys 0..t
                    scores = q[t] @ k[:t + 1].T / math.sqrt(d)
                    w = np.exp(scores - scores.max())
                    y[s, t, cols] = (w / w.sum()) @ v[:t + 1]
        x = x + linear(y, f"h.{i}.attn.c_proj")
        f = linear(layernorm(x, p[f"h.{i}.ln_2.weight"], p[f"h.{i}.ln_2.bias"]), f"h.{i}.mlp.c_fc")
        g = 0.5 * f * (1 + np.tanh(math.sqrt(2 / math.pi) * (f + 0.044715 * f ** 3)))
        x = x + linear(g, f"h.{i}.mlp.c_proj")
    return layernorm(x, p["ln_f.weight"], p["ln_f.bias"]) @ p["wte.weight"].T


def numpy_loss(logits, targets):
    z = logits[..., :V]
    z = z - z.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return -np.take_along_axis(logp, targets[..., None], -1).mean()


def as_numpy(model):
    return {n: t.detach().numpy().copy() for n, t in model.named_tensors().items()}


class GptTorchModelTest(unittest.TestCase):
    def setUp(self):
        torch.set_num_threads(1)

    def test_parameter_names_and_shapes_are_shardtrains(self):
        vp = 64
        want = {"wte.weight": [vp, C], "wpe.weight": [T + 2, C], "ln_f.weight": [C], "ln_f.bias": [C]}
        for i in range(L):
            want.update({f"h.{i}.ln_1.weight": [C], f"h.{i}.ln_1.bias": [C],
                         f"h.{i}.attn.c_attn.weight": [3 * C, C], f"h.{i}.attn.c_attn.bias": [3 * C],
                         f"h.{i}.attn.c_proj.weight": [C, C], f"h.{i}.attn.c_proj.bias": [C],
                         f"h.{i}.ln_2.weight": [C], f"h.{i}.ln_2.bias": [C],
                         f"h.{i}.mlp.c_fc.weight": [4 * C, C], f"h.{i}.mlp.c_fc.bias": [4 * C],
                         f"h.{i}.mlp.c_proj.weight": [C, 4 * C], f"h.{i}.mlp.c_proj.bias": [C]})
        got = {n: list(t.shape) for n, t in tiny_model().named_tensors().items()}
        self.assertEqual(got, want)
        self.assertEqual([gpt_torch.pad_vocab(v) for v in (5, 64, 65, 256, 50257)], [64, 64, 128, 256, 50304])

    def test_forward_matches_independent_numpy(self):
        model = tiny_model()
        idx, targets = batch()
        logits = model(idx)
        self.assertEqual(list(logits.shape), [B, T, 64])
        ref = numpy_forward(as_numpy(model), idx.numpy())
        np.testing.assert_allclose(logits.detach().numpy(), ref, rtol=1e-10, atol=1e-10)
        self.assertAlmostEqual(model.loss(logits, targets).item(), numpy_loss(ref, targets.numpy()), places=10)

    def test_attention_is_causal(self):
        model = tiny_model()
        idx, _ = batch()
        changed = idx.clone()
        changed[:, -1] = (changed[:, -1] + 1) % V
        a, b = model(idx), model(changed)
        self.assertTrue(torch.equal(a[:, :-1], b[:, :-1]), "a later token changed earlier logits")
        self.assertFalse(torch.equal(a[:, -1], b[:, -1]))

    def test_gradients_match_finite_differences(self):
        model = tiny_model()
        idx, targets = batch()
        names = list(model.named_tensors())

        def loss_of(*params):
            logits = torch.nn.utils.stateless.functional_call(model, dict(zip(names, params)), (idx,))
            return model.loss(logits, targets)

        params = tuple(t.detach().clone().requires_grad_(True) for t in model.named_tensors().values())
        self.assertTrue(torch.autograd.gradcheck(loss_of, params, eps=1e-6, atol=1e-7, rtol=1e-5))

    def test_padded_columns_take_no_part_and_get_zero_gradient(self):
        model = tiny_model(dtype=torch.float32)
        idx, targets = batch()
        logits = model(idx)
        logits.retain_grad()
        loss = model.loss(logits, targets)
        loss.backward()
        self.assertEqual(float(logits.grad[..., V:].abs().max()), 0.0)
        self.assertGreater(float(logits.grad[..., :V].abs().max()), 0.0)
        # Only the head touches rows >= V (no token indexes them): exactly zero there.
        self.assertEqual(float(model.wte.weight.grad[V:].abs().max()), 0.0)
        unmasked = torch.nn.functional.cross_entropy(logits.reshape(-1, 64), targets.reshape(-1))
        self.assertGreater(abs(unmasked.item() - loss.item()), 1e-3, "padding would have changed the loss")

    def test_tied_wte_gradient_is_sum_of_both_uses(self):
        model = tiny_model()
        idx, targets = batch()
        model.loss(model(idx), targets).backward()
        tied = model.wte.weight.grad.clone()
        model.zero_grad()
        head = model.wte.weight.detach().clone().requires_grad_(True)
        model.loss(model(idx, head_weight=head), targets).backward()
        embedding = model.wte.weight.grad
        self.assertGreater(float(embedding.abs().max()), 1e-3)
        self.assertGreater(float(head.grad.abs().max()), 1e-3)
        np.testing.assert_allclose(tied.numpy(), (embedding + head.grad).numpy(), rtol=1e-12, atol=1e-14)

    def test_load_params_round_trips_and_names_mismatches(self):
        src, dst = tiny_model(seed=0, dtype=torch.float32), tiny_model(seed=5, dtype=torch.float32)
        params = as_numpy(src)
        dst.load_params(params)
        for n, t in dst.named_tensors().items():
            self.assertTrue(np.array_equal(t.detach().numpy(), params[n]), n)
        missing = dict(params)
        del missing["h.1.mlp.c_fc.bias"]
        with self.assertRaisesRegex(ValueError, r"h\.1\.mlp\.c_fc\.bias"):
            dst.load_params(missing)
        extra = dict(params, **{"lm_head.weight": params["wte.weight"]})
        with self.assertRaisesRegex(ValueError, r"lm_head\.weight"):
            dst.load_params(extra)
        wrong = dict(params, **{"wpe.weight": np.zeros((T, C), np.float32)})
        with self.assertRaisesRegex(ValueError, r"wpe\.weight: shape \[4, 8\]"):
            dst.load_params(wrong)

    def test_adamw_two_groups_match_a_handwritten_step(self):
        model = tiny_model(dtype=torch.float32)
        lr, (b1, b2), eps, wd, done = 3e-3, (0.9, 0.95), 1e-8, 0.1, 2
        opt = gpt_torch.make_adamw(model, lr, (b1, b2), eps, wd)
        decayed = {id(p) for p in opt.param_groups[0]["params"]}
        for n, p in model.named_tensors().items():
            self.assertEqual(id(p) in decayed, p.dim() >= 2, n)
        rng = np.random.default_rng(0)
        names = model.named_tensors()
        m = {n: rng.normal(0, 0.1, p.shape).astype(np.float32) for n, p in names.items()}
        v = {n: rng.uniform(0, 0.01, p.shape).astype(np.float32) for n, p in names.items()}
        gpt_torch.load_adamw_state(opt, model, m, v, done)
        before = as_numpy(model)
        idx, targets = batch()
        model.loss(model(idx), targets).backward()
        grads = {n: p.grad.numpy().astype(np.float64) for n, p in names.items()}
        opt.step()
        t = done + 1
        for n, p in names.items():
            g = grads[n]
            mt = b1 * m[n] + (1 - b1) * g
            vt = b2 * v[n] + (1 - b2) * g * g
            decay = wd if p.dim() >= 2 else 0.0
            want = before[n] * (1 - lr * decay) - lr * (mt / (1 - b1 ** t)) / (np.sqrt(vt / (1 - b2 ** t)) + eps)
            got = p.detach().numpy()
            rel = float(np.max(np.abs(got - want)) / np.max(np.abs(want)))
            self.assertLess(rel, 1e-6, f"{n}: AdamW step differs from the hand-written one by {rel:.2e}")
            self.assertEqual(float(opt.state[p]["step"]), t)
        with self.assertRaisesRegex(ValueError, r"exp_avg_sq/ln_f\.bias"):
            gpt_torch.load_adamw_state(opt, model, m, {k: x for k, x in v.items() if k != "ln_f.bias"}, done)


def run_script(name, *args):
    """JSON lines printed by tests/reference/<name> run with args."""
    r = subprocess.run([sys.executable, os.path.join(HERE, name), *map(str, args)], capture_output=True, text=True,
                       timeout=120, env=dict(os.environ, OMP_NUM_THREADS="1"))
    if r.returncode != 0:
        raise AssertionError(f"{name} failed (rc {r.returncode}):\n{r.stdout}{r.stderr}")
    return [json.loads(line) for line in r.stdout.splitlines()]


class GptTorchScriptsTest(unittest.TestCase):
    def setUp(self):
        torch.set_num_threads(1)

    def test_schedule_is_shardtrains(self):
        lr, warmup, total, min_lr = 1e-3, 4, 14, 1e-4
        got = [torch_gpt_train.lr_at(s, total, lr, warmup, min_lr) for s in range(total)]
        np.testing.assert_allclose(got[:warmup], [lr * (i + 1) / warmup for i in range(warmup)])
        self.assertAlmostEqual(got[warmup], lr)                      # cosine starts at lr ...
        self.assertAlmostEqual(got[-1], min_lr)                      # ... ends at the last step
        t = 4 / (total - warmup - 1)
        self.assertAlmostEqual(got[warmup + 4], min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * t)))
        self.assertTrue(all(a >= b for a, b in zip(got[warmup:], got[warmup + 1:])))

    def test_train_batches_are_shuffled_windows_each_seen_once_per_epoch(self):
        seq, nb = 4, 3
        tokens = torch.arange(10 * seq + 1)  # window w starts with token w * seq
        batches = torch_gpt_train.TrainBatches(tokens, seq, nb, seed=7)
        self.assertEqual((batches.n_windows, batches.per_epoch), (10, 3))
        for epoch in range(2):
            seen = []
            for b in range(batches.per_epoch):
                x, y = batches(epoch * batches.per_epoch + b)
                self.assertTrue(torch.equal(x[:, 1:], y[:, :-1]))
                self.assertTrue(torch.equal(x, x[:, :1] + torch.arange(seq)), "rows are not whole windows")
                seen += (x[:, 0] // seq).tolist()
            want = np.random.default_rng([7, epoch]).permutation(10)[:9].tolist()
            self.assertEqual(seen, want, f"epoch {epoch}: windows in the wrong order")

    def test_train_script_learns_and_reports_json(self):
        import h5py
        with tempfile.TemporaryDirectory() as tmp:
            data = os.path.join(tmp, "tokens.h5")
            with h5py.File(data, "w") as f:  # a cycle of 12 tokens: each predicts the next
                cycle = np.random.default_rng(0).permutation(12).astype(np.uint16)
                f["train/tokens"] = np.tile(cycle, 200)
                f["val/tokens"] = np.tile(cycle, 20)
                f.attrs["vocab_size"] = 12
            lines = run_script("torch_gpt_train.py", "--data", data, "--n-layer", 1, "--n-head", 2, "--d-model", 32,
                               "--seq-len", 16, "--batch", 8, "--lr", 1e-2, "--warmup", 5, "--min-lr", 1e-3,
                               "--weight-decay", 0.1, "--clip-grad-norm", 1.0, "--steps", 60, "--eval-every", 25,
                               "--val-windows", 8)
        self.assertEqual([line.get("step") for line in lines[:-1]], [25, 50, 60])
        final = lines[-1]
        self.assertTrue(final["final"])
        self.assertEqual(final["steps"], 60)
        self.assertEqual(final["val_loss"], lines[-2]["val_loss"])
        self.assertLess(final["val_loss"], 0.25 * math.log(12), "did not learn a deterministic sequence")

    def test_bench_gpt_reports_tokens_per_second_and_mfu(self):
        out, = run_script("torch_bench.py", "gpt", "--threads", 1, "--steps", 3, "--warmup", 1, "--batch", 2,
                          "--n-layer", 1, "--n-head", 2, "--d-model", 32, "--seq-len", 16, "--vocab", 100)
        model = gpt_torch.GPT(1, 2, 32, 100, max_seq=16)
        self.assertEqual(out["params"], gpt_torch.param_count(model))
        self.assertEqual(out["flops_per_token"], 6 * out["params"] + 6 * 1 * 16 * 32)
        self.assertAlmostEqual(out["tokens_per_s"], 16 * out["samples_per_s"])
        self.assertAlmostEqual(out["mfu"], out["tokens_per_s"] * out["flops_per_token"] / 989e12)


if __name__ == "__main__":
    unittest.main(verbosity=2)
