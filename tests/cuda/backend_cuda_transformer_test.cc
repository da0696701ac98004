// CudaBackend against the CPU reference, part 3: the transformer primitives (residual add,
// LayerNorm, the two fused, causal attention and its KV-cached decoding, embeddings), at shapes that hit
// the kernels' edges: sequences that are not a multiple of the 64-position tile, T = 1,
// head dims 16 to 128, several heads and sequences, LayerNorm rows across the 64-row
// chunks of the parameter sums, embedding ids repeated many times. Outputs that
// accumulate are also run twice to check they are bitwise reproducible. Skips with the
// reason on a machine without a usable GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>

#include "backend_compare.h"

namespace shardtrain {
namespace {

using testing::expect_close;
using testing::expect_same;
using testing::rms;
using testing::rnd;

// Attention reorders its sums (tiles, online softmax, FMAs): a few 1e-6 relative.
constexpr double kAttentionRtol = 1e-4;

class CudaTransformerTest : public testing::CudaVsCpuTest {
 protected:
  // A CPU tensor of the given shape holding `host`.
  template <typename T>
  Tensor cpu_up(const std::vector<T>& host, Shape shape) { return testing::upload(cpu_, host, std::move(shape)); }
  template <typename T>
  Tensor gpu_up(const std::vector<T>& host, Shape shape) { return testing::upload(*gpu_, host, std::move(shape)); }
  // A GPU tensor full of NaN: whatever the primitive leaves unwritten shows up.
  Tensor gpu_nan(Shape shape) {
    Tensor t = gpu_->alloc(shape, DType::kFloat32);
    gpu_->fill(t, NAN);
    return t;
  }
  std::vector<float> cpu_down(const Tensor& t) { return testing::download(cpu_, t); }
};

TEST_F(CudaTransformerTest, AddIncludingInPlace) {
  const int64_t n = 100003;
  const auto a = rnd(n, 1), b = rnd(n, 2);
  Tensor ca = cpu_up(a, {n}), cb = cpu_up(b, {n}), cy = cpu_.alloc({n}, DType::kFloat32);
  cpu_.add(ca, cb, cy);
  Tensor ga = gpu_up(a, {n}), gb = gpu_up(b, {n}), gy = gpu_nan({n});
  gpu_->add(ga, gb, gy);
  const auto want = cpu_down(cy);
  expect_same(down(gy), want, "add");  // one fp32 add per element: exact
  gpu_->add(ga, gb, ga);               // y aliasing a, as a residual stream does
  expect_same(down(ga), want, "add in place");
}

// ---------------------------------------------------------------------------- LayerNorm

TEST_F(CudaTransformerTest, LayerNormForwardAndBackward) {
  uint32_t seed = 100;
  // Rows around the 64-row chunks of the dweight / dbias sums; C around the 256-column
  // slices and the 32 lanes of a row's warp.
  for (auto [rows, c] : {std::pair<int64_t, int64_t>{1, 1}, {5, 1}, {37, 64}, {300, 768}, {130, 300},
                         {64, 1000}, {1, 4096}, {129, 33}}) {
    const std::string what = std::to_string(rows) + "x" + std::to_string(c);
    const float eps = 1e-5f;
    const auto x = rnd(rows * c, seed++, -2.0f, 3.0f), w = rnd(c, seed++, 0.5f, 1.5f), b = rnd(c, seed++);
    const auto dy = rnd(rows * c, seed++), dw0 = rnd(c, seed++), db0 = rnd(c, seed++);
    const Shape xs{rows, c}, cs{c}, rs{rows};

    Tensor cx = cpu_up(x, xs), cw = cpu_up(w, cs), cb = cpu_up(b, cs), cy = cpu_.alloc(xs, DType::kFloat32);
    Tensor cm = cpu_.alloc(rs, DType::kFloat32), cr = cpu_.alloc(rs, DType::kFloat32);
    cpu_.layernorm_forward(cx, cw, cb, eps, cy, cm, cr);
    Tensor gx = gpu_up(x, xs), gw = gpu_up(w, cs), gb = gpu_up(b, cs), gy = gpu_nan(xs);
    Tensor gm = gpu_nan(rs), gr = gpu_nan(rs);
    gpu_->layernorm_forward(gx, gw, gb, eps, gy, gm, gr);
    // Statistics in double on both sides: the same fp32 values but for the rare last bit.
    expect_close(down(gm), cpu_down(cm), 1.0, "mean " + what);
    expect_close(down(gr), cpu_down(cr), 0.0, "rstd " + what);
    expect_close(down(gy), cpu_down(cy), 1.0, "y " + what);

    Tensor cdy = cpu_up(dy, xs), cdx = cpu_.alloc(xs, DType::kFloat32), cdw = cpu_up(dw0, cs), cdb = cpu_up(db0, cs);
    cpu_.layernorm_backward(cdy, cx, cw, cm, cr, cdx, cdw, cdb);
    Tensor gdy = gpu_up(dy, xs), gdx = gpu_nan(xs), gdw = gpu_up(dw0, cs), gdb = gpu_up(db0, cs);
    gpu_->layernorm_backward(gdy, gx, gw, gm, gr, gdx, gdw, gdb);
    const auto want_dx = cpu_down(cdx), want_dw = cpu_down(cdw), want_db = cpu_down(cdb);
    const auto got_dx = down(gdx), got_dw = down(gdw), got_db = down(gdb);
    // dx cancels (g - mean g - xhat mean(g xhat)); the parameter gradients are sums over
    // rows added to O(1) values: floors are the magnitudes of what was added.
    expect_close(got_dx, want_dx, std::max(rms(want_dx), 1.0), "dx " + what);
    expect_close(got_dw, want_dw, std::max(rms(want_dw), 1.0), "dweight " + what);
    expect_close(got_db, want_db, std::max(rms(want_db), 1.0), "dbias " + what);

    // Accumulated deterministically: the same start gives the same bits.
    Tensor gdx2 = gpu_nan(xs), gdw2 = gpu_up(dw0, cs), gdb2 = gpu_up(db0, cs);
    gpu_->layernorm_backward(gdy, gx, gw, gm, gr, gdx2, gdw2, gdb2);
    expect_same(down(gdx2), got_dx, "dx rerun " + what);
    expect_same(down(gdw2), got_dw, "dweight rerun " + what);
    expect_same(down(gdb2), got_db, "dbias rerun " + what);
  }
}

// The residual add fused into the LayerNorm forward: against the CPU reference (add then
// layernorm_forward) within the LayerNorm tolerances above, and against the GPU's own add
// and layernorm_forward bit for bit (the fused kernel does their arithmetic), also with
// sum written over a, as a residual stream is.
TEST_F(CudaTransformerTest, AddLayerNormForwardIsAddThenLayerNorm) {
  uint32_t seed = 400;
  for (auto [rows, c] : {std::pair<int64_t, int64_t>{1, 1}, {37, 64}, {300, 768}, {129, 33}, {1, 4096}}) {
    const std::string what = std::to_string(rows) + "x" + std::to_string(c);
    const float eps = 1e-5f;
    const auto a = rnd(rows * c, seed++, -2.0f, 3.0f), b = rnd(rows * c, seed++);
    const auto w = rnd(c, seed++, 0.5f, 1.5f), bias = rnd(c, seed++);
    const Shape xs{rows, c}, cs{c}, rs{rows};
    Tensor ca = cpu_up(a, xs), cb = cpu_up(b, xs), cw = cpu_up(w, cs), cbias = cpu_up(bias, cs);
    Tensor csum = cpu_.alloc(xs, DType::kFloat32), cy = cpu_.alloc(xs, DType::kFloat32);
    Tensor cm = cpu_.alloc(rs, DType::kFloat32), cr = cpu_.alloc(rs, DType::kFloat32);
    cpu_.add_layernorm_forward(ca, cb, cw, cbias, eps, csum, cy, cm, cr);  // the base: add, then layernorm

    Tensor ga = gpu_up(a, xs), gb = gpu_up(b, xs), gw = gpu_up(w, cs), gbias = gpu_up(bias, cs);
    Tensor gsum = gpu_nan(xs), gy = gpu_nan(xs), gm = gpu_nan(rs), gr = gpu_nan(rs);
    gpu_->add_layernorm_forward(ga, gb, gw, gbias, eps, gsum, gy, gm, gr);
    const auto sum = down(gsum), y = down(gy), mean = down(gm), rstd = down(gr);
    expect_same(sum, cpu_down(csum), "sum " + what);  // one fp32 add per element: exact
    expect_close(mean, cpu_down(cm), 1.0, "mean " + what);
    expect_close(rstd, cpu_down(cr), 0.0, "rstd " + what);
    expect_close(y, cpu_down(cy), 1.0, "y " + what);

    Tensor usum = gpu_nan(xs), uy = gpu_nan(xs), um = gpu_nan(rs), ur = gpu_nan(rs);
    gpu_->add(ga, gb, usum);
    gpu_->layernorm_forward(usum, gw, gbias, eps, uy, um, ur);
    expect_same(y, down(uy), "y vs unfused " + what);
    expect_same(mean, down(um), "mean vs unfused " + what);
    expect_same(rstd, down(ur), "rstd vs unfused " + what);

    Tensor iy = gpu_nan(xs), im = gpu_nan(rs), ir = gpu_nan(rs);
    gpu_->add_layernorm_forward(ga, gb, gw, gbias, eps, ga, iy, im, ir);  // sum over a
    expect_same(down(ga), sum, "sum in place " + what);
    expect_same(down(iy), y, "y with sum in place " + what);
  }
}

// ---------------------------------------------------------------------------- attention

std::string geometry_str(const AttentionGeometry& g) {
  return "B" + std::to_string(g.batch) + " T" + std::to_string(g.seq) + " H" + std::to_string(g.heads) + " D" +
         std::to_string(g.head_dim);
}

TEST_F(CudaTransformerTest, AttentionForwardAndBackward) {
  uint32_t seed = 200;
  for (const AttentionGeometry& g :
       {AttentionGeometry{1, 1, 1, 32}, {2, 17, 3, 32}, {1, 64, 2, 64}, {2, 100, 2, 64}, {1, 65, 1, 128},
        {2, 130, 2, 48}, {1, 200, 4, 16}, {3, 63, 2, 80}, {1, 1030, 1, 64}}) {
    const std::string what = geometry_str(g);
    const int64_t B = g.batch, T = g.seq, H = g.heads, C = g.channels();
    const Shape qs{B, T, 3 * C}, os{B, T, C}, ls{B, H, T};
    const auto qkv = rnd(B * T * 3 * C, seed++, -2.0f, 2.0f), dout = rnd(B * T * C, seed++);

    Tensor cq = cpu_up(qkv, qs), co = cpu_.alloc(os, DType::kFloat32), cl = cpu_.alloc(ls, DType::kFloat32);
    cpu_.attention_forward(cq, g, co, cl);
    Tensor gq = gpu_up(qkv, qs), go = gpu_nan(os), gl = gpu_nan(ls);
    gpu_->attention_forward(gq, g, go, gl);
    const auto want_out = cpu_down(co);
    expect_close(down(go), want_out, rms(want_out), "out " + what, kAttentionRtol);
    expect_close(down(gl), cpu_down(cl), 1.0, "lse " + what, kAttentionRtol);

    Tensor cdo = cpu_up(dout, os), cdq = cpu_.alloc(qs, DType::kFloat32);
    cpu_.attention_backward(cdo, cq, co, cl, g, cdq);
    Tensor gdo = gpu_up(dout, os), gdq = gpu_nan(qs);  // every element must be written
    gpu_->attention_backward(gdo, gq, go, gl, g, gdq);
    const auto want_d = cpu_down(cdq), got_d = down(gdq);
    // Per part (dq, dk, dv), the floor is that part's RMS: each is a sum over up to T
    // terms of its own size. dq and dk are sums of P (dP - D) terms, and dP - D cancels
    // exactly when a row sees a single key (T = 1): the reference is then 0, and what is
    // left on the GPU is the rounding of dP and D (~1e-7 of their O(1) size), hence 0.1.
    for (int part = 0; part < 3; ++part) {
      std::vector<float> want, got;
      for (int64_t r = 0; r < B * T; ++r)
        for (int64_t e = part * C; e < (part + 1) * C; ++e) {
          want.push_back(want_d[r * 3 * C + e]);
          got.push_back(got_d[r * 3 * C + e]);
        }
      expect_close(got, want, std::max(rms(want), 0.1), std::string("d") + "qkv"[part] + " " + what, kAttentionRtol);
    }
    Tensor gdq2 = gpu_nan(qs);  // no atomics: a rerun gives the same bits
    gpu_->attention_backward(gdo, gq, go, gl, g, gdq2);
    expect_same(down(gdq2), got_d, "dqkv rerun " + what);
  }
}

TEST_F(CudaTransformerTest, AttentionDecodeWithKvCache) {
  uint32_t seed = 300;
  for (const AttentionGeometry& base : {AttentionGeometry{2, 0, 3, 32}, {1, 0, 2, 64}, {2, 0, 1, 128}}) {
    const int64_t B = base.batch, C = base.channels(), max_seq = 40;
    const Shape cache_shape{B, max_seq, 2 * C};
    Tensor ccache = cpu_.alloc(cache_shape, DType::kFloat32), gcache = gpu_->alloc(cache_shape, DType::kFloat32);
    // A prompt of 7, single tokens, a chunk of 3 (queries see each other causally), and
    // a chunk that fills the cache: every (pos, n) the generator uses.
    int64_t pos = 0;
    for (int64_t n : {7, 1, 3, 1, 28}) {
      AttentionGeometry g = base;
      g.seq = n;
      const std::string what = geometry_str(g) + " pos " + std::to_string(pos);
      const auto qkv = rnd(B * n * 3 * C, seed++, -2.0f, 2.0f);
      Tensor cq = cpu_up(qkv, {B, n, 3 * C}), co = cpu_.alloc({B, n, C}, DType::kFloat32);
      cpu_.attention_decode(cq, pos, g, ccache, co);
      Tensor gq = gpu_up(qkv, {B, n, 3 * C}), go = gpu_nan({B, n, C});
      gpu_->attention_decode(gq, pos, g, gcache, go);
      expect_same(down(gcache), cpu_down(ccache), "cache " + what);  // copies: exact
      const auto want = cpu_down(co);
      expect_close(down(go), want, rms(want), "out " + what, kAttentionRtol);
      pos += n;
    }
    ASSERT_EQ(pos, max_seq);
  }
}

// --------------------------------------------------------------------------- embeddings

TEST_F(CudaTransformerTest, EmbeddingForwardAndBackwardAreExact) {
  uint32_t seed = 400;
  struct Case {
    int64_t n, vocab, dim;
  };
  for (const Case& k :
       {Case{300, 50, 37}, Case{512, 1000, 768}, Case{1, 5, 1}, Case{64, 3, 64}, Case{2000, 50257, 32}}) {
    const std::string what = std::to_string(k.n) + " ids, " + std::to_string(k.vocab) + "x" + std::to_string(k.dim);
    // Skewed ids: half of them from the first three, so some rows collect hundreds of
    // tokens (a frequent word, padding) and most collect none.
    std::mt19937 gen(seed++);
    std::vector<int32_t> ids(k.n);
    for (int32_t& id : ids)
      id = static_cast<int32_t>(gen() % 2 ? gen() % std::min<int64_t>(3, k.vocab) : gen() % k.vocab);
    const auto table = rnd(k.vocab * k.dim, seed++), dy = rnd(k.n * k.dim, seed++);
    const auto dt0 = rnd(k.vocab * k.dim, seed++);
    const Shape ts{k.vocab, k.dim}, ys{k.n, k.dim};

    Tensor cid = cpu_up(ids, {k.n}), ct = cpu_up(table, ts), cy = cpu_.alloc(ys, DType::kFloat32);
    cpu_.embedding_forward(cid, ct, cy);
    Tensor gid = gpu_up(ids, {k.n}), gt = gpu_up(table, ts), gy = gpu_nan(ys);
    gpu_->embedding_forward(gid, gt, gy);
    expect_same(down(gy), cpu_down(cy), "embedding_forward " + what);

    // Both add each row's tokens in increasing position in fp32: the CPU's bits.
    Tensor cdy = cpu_up(dy, ys), cdt = cpu_up(dt0, ts);
    cpu_.embedding_backward(cid, cdy, cdt);
    Tensor gdy = gpu_up(dy, ys), gdt = gpu_up(dt0, ts);
    gpu_->embedding_backward(gid, gdy, gdt);
    const auto got = down(gdt);
    expect_same(got, cpu_down(cdt), "embedding_backward " + what);
    Tensor gdt2 = gpu_up(dt0, ts);
    gpu_->embedding_backward(gid, gdy, gdt2);
    expect_same(down(gdt2), got, "embedding_backward rerun " + what);
  }
}

TEST_F(CudaTransformerTest, EmbeddingIdOutOfRangeGivesNanRowAndNoGradient) {
  const int64_t vocab = 4, dim = 3;
  const std::vector<int32_t> ids = {1, 4, -1, 1};
  const auto table = rnd(vocab * dim, 500);
  Tensor gid = gpu_up(ids, {4}), gt = gpu_up(table, {vocab, dim}), gy = gpu_->alloc({4, dim}, DType::kFloat32);
  gpu_->embedding_forward(gid, gt, gy);
  const auto y = down(gy);
  for (int64_t d = 0; d < dim; ++d) {
    EXPECT_EQ(y[d], table[dim + d]);
    EXPECT_TRUE(std::isnan(y[dim + d]) && std::isnan(y[2 * dim + d])) << d;
  }
  Tensor gdt = gpu_->alloc({vocab, dim}, DType::kFloat32);
  gpu_->embedding_backward(gid, gpu_up(std::vector<float>(4 * dim, 1.0f), {4, dim}), gdt);
  std::vector<float> want(vocab * dim, 0.0f);
  for (int64_t d = 0; d < dim; ++d) want[dim + d] = 2.0f;  // row 1 twice; the bad ids skipped
  expect_same(down(gdt), want, "gradient of valid ids only");
}

// ------------------------------------------------------------------------ misuse

Tensor f32(CudaBackend& be, const Shape& shape) { return be.alloc(shape, DType::kFloat32); }

TEST_F(CudaTransformerTest, WrongDtypeOrShapeIsAStickyErrorNamingThePrimitive) {
  expect_failed_backend_ = true;
  struct Misuse {
    const char* primitive;
    void (*call)(CudaBackend&);
  };
  const Misuse cases[] = {
      {"add",
       [](CudaBackend& be) {
         Tensor a = f32(be, {4}), i = be.alloc({4}, DType::kInt32);
         be.add(a, i, a);
       }},
      {"layernorm_forward",
       [](CudaBackend& be) {
         Tensor x = f32(be, {3, 5}), w = f32(be, {4}), s = f32(be, {3});
         be.layernorm_forward(x, w, w, 1e-5f, x, s, s);
       }},
      {"add_layernorm_forward",
       [](CudaBackend& be) {
         Tensor a = f32(be, {3, 4}), b = f32(be, {3, 4}), w = f32(be, {4}), s = f32(be, {3});
         Tensor h = be.alloc({3, 4}, DType::kBFloat16);  // sum of another dtype
         be.add_layernorm_forward(a, b, w, w, 1e-5f, h, a, s, s);
       }},
      {"attention_forward",
       [](CudaBackend& be) {
         const AttentionGeometry g{1, 2, 1, 256};  // head_dim past the kernels' 128
         Tensor qkv = f32(be, {1, 2, 768}), out = f32(be, {1, 2, 256}), lse = f32(be, {1, 1, 2});
         be.attention_forward(qkv, g, out, lse);
       }},
      {"attention_decode",
       [](CudaBackend& be) {
         const AttentionGeometry g{1, 2, 1, 32};
         Tensor qkv = f32(be, {1, 2, 96}), cache = f32(be, {1, 3, 64}), out = f32(be, {1, 2, 32});
         be.attention_decode(qkv, 2, g, cache, out);  // positions 2, 3 of a 3-row cache
       }},
      {"embedding_forward",
       [](CudaBackend& be) {
         Tensor ids = f32(be, {2}), table = f32(be, {5, 3}), y = f32(be, {2, 3});  // float ids
         be.embedding_forward(ids, table, y);
       }},
  };
  for (const Misuse& m : cases) {
    auto be = CudaBackend::create(0);
    ASSERT_TRUE(be.ok()) << be.status().ToString();
    m.call(**be);
    const Status s = (*be)->synchronize();
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << m.primitive << ": " << s.ToString();
    EXPECT_EQ(s.message().rfind(std::string("cuda:0: ") + m.primitive + ": ", 0), 0u) << s.message();
  }
}

}  // namespace
}  // namespace shardtrain
