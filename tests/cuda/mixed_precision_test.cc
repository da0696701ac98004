// bf16 mixed precision on the GPU against the fp32 CPU reference: conversions bit for bit
// against the host's round-to-nearest-even, cuBLASLt bf16 GEMMs against fp32 GEMMs of the
// same (bf16-rounded) inputs, bf16 gradient buckets, and a tiny GPT in bf16 against the
// same GPT in fp32 (loss, every gradient by direction and size, decode). Skips with the
// reason on a machine without a usable GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "backend_compare.h"
#include "config/config.h"
#include "core/bfloat16.h"
#include "model/model.h"

namespace shardtrain {
namespace {

using testing::download;
using testing::upload;
using testing::expect_close;
using testing::rms;
using testing::rnd;

class MixedPrecisionTest : public testing::CudaVsCpuTest {
 protected:
  // A bf16 tensor on the GPU holding `host` rounded to bf16.
  Tensor up_bf16(const std::vector<float>& host, Shape shape = {}) {
    std::vector<bf16> h(host.size());
    for (size_t i = 0; i < host.size(); ++i) h[i] = bf16_from_float(host[i]);
    if (shape.empty()) shape = {static_cast<int64_t>(host.size())};
    Tensor t = gpu_->alloc(shape, DType::kBFloat16);
    gpu_->copy_from_host(t, h.data());
    return t;
  }
  std::vector<float> down_bf16(const Tensor& t) {
    std::vector<bf16> h(t.numel());
    gpu_->copy_to_host(t, h.data());
    std::vector<float> out(h.size());
    for (size_t i = 0; i < h.size(); ++i) out[i] = bf16_to_float(h[i]);
    return out;
  }
};

std::vector<float> rounded(const std::vector<float>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = bf16_to_float(bf16_from_float(v[i]));
  return out;
}

// 1 - cos(a, b): 0 for vectors pointing the same way.
double cosine_gap(const std::vector<float>& a, const std::vector<float>& b) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ab += static_cast<double>(a[i]) * b[i];
    aa += static_cast<double>(a[i]) * a[i];
    bb += static_cast<double>(b[i]) * b[i];
  }
  return aa == 0 && bb == 0 ? 0.0 : 1.0 - ab / std::sqrt(aa * bb);
}

TEST_F(MixedPrecisionTest, ConvertRoundsToNearestEvenLikeTheHost) {
  std::vector<float> x = rnd(4099, 3, -1e4f, 1e4f);
  // Ties (exactly half an ulp of bf16) both ways, specials, subnormals.
  const uint32_t patterns[] = {0x3f808000u, 0x3f818000u, 0x7f800000u, 0xff800000u, 0x7fc00000u,
                               0x00000001u, 0x80000000u, 0x7f7fffffu};
  for (uint32_t p : patterns) {
    float f;
    std::memcpy(&f, &p, sizeof f);
    x.push_back(f);
  }
  Tensor src = up(x), dst = gpu_->alloc({static_cast<int64_t>(x.size())}, DType::kBFloat16);
  gpu_->convert(src, dst);
  std::vector<bf16> got(x.size());
  gpu_->copy_to_host(dst, got.data());
  for (size_t i = 0; i < x.size(); ++i) {
    const bf16 want = bf16_from_float(x[i]);
    if (std::isnan(x[i])) {
      EXPECT_TRUE(std::isnan(bf16_to_float(got[i]))) << "element " << i;
    } else {
      EXPECT_EQ(got[i].bits, want.bits) << "element " << i << " = " << x[i];
    }
  }
  // And back: bf16 -> fp32 is exact.
  Tensor back = gpu_->alloc({static_cast<int64_t>(x.size())}, DType::kFloat32);
  gpu_->convert(dst, back);
  const auto wide = down(back);
  for (size_t i = 0; i < x.size(); ++i)
    if (!std::isnan(x[i])) {
      EXPECT_EQ(wide[i], bf16_to_float(got[i])) << "element " << i;
    }
}

// cuBLASLt bf16 GEMMs, every op combination, sizes aligned and not: the reference is the
// CPU's fp32 GEMM of the same bf16-rounded inputs, so only the output rounding (bf16 C) or
// the summation order (fp32 C) differs.
TEST_F(MixedPrecisionTest, GemmBf16MatchesFp32OfTheRoundedInputs) {
  struct Case {
    int64_t m, n, k;
  };
  for (const Case c : {Case{64, 128, 96}, Case{37, 53, 61}, Case{1, 7, 300}}) {
    for (int ops = 0; ops < 4; ++ops) {
      const GemmOp ta = ops & 1 ? GemmOp::kTrans : GemmOp::kNoTrans, tb = ops & 2 ? GemmOp::kTrans : GemmOp::kNoTrans;
      const std::string what = "m" + std::to_string(c.m) + " n" + std::to_string(c.n) + " k" + std::to_string(c.k) +
                               " op" + std::to_string(ops);
      const auto a = rounded(rnd(c.m * c.k, 10 + ops)), b = rounded(rnd(c.k * c.n, 20 + ops));
      const auto c0 = rnd(c.m * c.n, 30 + ops);
      // fp32 C accumulated (beta = 1), as parameter gradients are.
      std::vector<float> want = c0;
      cpu_.gemm(ta, tb, c.m, c.n, c.k, 0.5f, a.data(), b.data(), 1.0f, want.data());
      Tensor ga = up_bf16(a), gb = up_bf16(b), gc = up(c0);
      gpu_->gemm(ta, tb, c.m, c.n, c.k, 0.5f, ga, gb, 1.0f, gc);
      expect_close(down(gc), want, rms(want), what + " fp32 C", 1e-5);
      // bf16 C overwritten (beta = 0), as activations are: one rounding of the result.
      std::vector<float> want0(c.m * c.n);
      cpu_.gemm(ta, tb, c.m, c.n, c.k, 1.0f, a.data(), b.data(), 0.0f, want0.data());
      Tensor gy = gpu_->alloc({c.m * c.n}, DType::kBFloat16);
      gpu_->gemm(ta, tb, c.m, c.n, c.k, 1.0f, ga, gb, 0.0f, gy);
      expect_close(down_bf16(gy), want0, rms(want0) * 1e-2, what + " bf16 C", 8e-3);
    }
  }
}

// A GEMM on a 2-byte-aligned slice (as parameters inside the flat bf16 copy are).
TEST_F(MixedPrecisionTest, GemmBf16OnUnalignedSlices) {
  const int64_t m = 9, n = 11, k = 13;
  const auto a = rounded(rnd(m * k + 1, 40)), b = rounded(rnd(k * n + 3, 41));
  Tensor ga = up_bf16(a), gb = up_bf16(b);
  Tensor sa = ga.slice(1, {m, k}), sb = gb.slice(3, {k, n});
  Tensor gc = gpu_->alloc({m * n}, DType::kFloat32);
  gpu_->gemm(GemmOp::kNoTrans, GemmOp::kNoTrans, m, n, k, 1.0f, sa, sb, 0.0f, gc);
  std::vector<float> want(m * n);
  cpu_.gemm(GemmOp::kNoTrans, GemmOp::kNoTrans, m, n, k, 1.0f, a.data() + 1, b.data() + 3, 0.0f, want.data());
  expect_close(down(gc), want, rms(want), "unaligned", 1e-5);
}

// linear_act_forward in bf16: the fused cuBLASLt GELU_AUX_BIAS epilogue (aligned bias and
// out % 8 == 0) and the unfused fallback (a 2-byte-aligned bias slice) both give the fp32
// reference's pre-activation and GELU output to bf16 rounding.
TEST_F(MixedPrecisionTest, LinearWithGeluFusedAndFallbackMatchFp32) {
  const int64_t n = 24, in = 40, out = 64;
  const auto x = rounded(rnd(n * in, 60)), w = rounded(rnd(out * in, 61, -0.3f, 0.3f));
  const auto b = rounded(rnd(out + 1, 62));
  std::vector<float> want_pre(n * out), want_y(n * out);
  Tensor cx = upload(cpu_, x), cw = upload(cpu_, w), cb = upload(cpu_, std::vector<float>(b.begin(), b.begin() + out));
  Tensor cpre = cpu_.alloc({n * out}, DType::kFloat32), cy = cpu_.alloc({n * out}, DType::kFloat32);
  cpu_.linear_act_forward(cx, cw, cb, Activation::kGeluTanh, n, in, out, cpre, cy);
  want_pre = download(cpu_, cpre);
  want_y = download(cpu_, cy);
  Tensor gx = up_bf16(x), gw = up_bf16(w), gb = up_bf16(b);
  for (const bool aligned : {true, false}) {
    const std::string what = aligned ? "fused" : "fallback";
    Tensor bias = aligned ? gb.slice(0, {out}) : gb.slice(1, {out});
    std::vector<float> shifted = want_pre, shifted_y = want_y;
    if (!aligned) {  // the fallback's bias is b[1..out]: recompute the reference for it
      Tensor cb1 = upload(cpu_, std::vector<float>(b.begin() + 1, b.end()));
      cpu_.linear_act_forward(cx, cw, cb1, Activation::kGeluTanh, n, in, out, cpre, cy);
      shifted = download(cpu_, cpre);
      shifted_y = download(cpu_, cy);
    }
    Tensor pre = gpu_->alloc({n * out}, DType::kBFloat16), y = gpu_->alloc({n * out}, DType::kBFloat16);
    gpu_->linear_act_forward(gx, gw, bias, Activation::kGeluTanh, n, in, out, pre, y);
    expect_close(down_bf16(pre), shifted, rms(shifted) * 1e-2, what + " pre", 8e-3);
    expect_close(down_bf16(y), shifted_y, rms(shifted_y) * 1e-2, what + " y", 1.6e-2);
  }
}

TEST_F(MixedPrecisionTest, Bf16GradientBucketsRoundTrip) {
  const auto x = rounded(rnd(1000, 50)), y = rounded(rnd(37, 51));
  Tensor gx = up(x), gy = up(y);
  const GradSegment segs[] = {{gx.f32(), 1000}, {gy.f32(), 37}};
  Tensor flat = gpu_->alloc({1037}, DType::kBFloat16);
  gpu_->grad_bucket_pack(segs, 2, 1.0f, flat);
  gpu_->fill(gx, 0.0f);
  gpu_->fill(gy, 0.0f);
  gpu_->grad_bucket_unpack(flat, 2.0f, segs, 2);
  const auto bx = down(gx), by = down(gy);
  for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(bx[i], 2.0f * x[i]) << i;
  for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(by[i], 2.0f * y[i]) << i;
}

TEST_F(MixedPrecisionTest, WrongDtypeCombinationIsAStickyErrorNamingThePrimitive) {
  expect_failed_backend_ = true;
  Tensor a = gpu_->alloc({4}, DType::kBFloat16);
  Tensor b = gpu_->alloc({4}, DType::kFloat32);
  Tensor y = gpu_->alloc({4}, DType::kBFloat16);
  gpu_->add(a, b, y);
  const Status s = gpu_->synchronize();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("add"), std::string::npos) << s.ToString();
}

const char* kTinyGpt = R"(
  model {
    layer { name: "wte" embedding { num_embeddings: 256 dim: 64 } }
    layer { name: "wpe" position_embedding { max_seq: 32 } }
    layer { name: "h" transformer_block { n_head: 2 count: 2 } }
    layer { name: "ln_f" layer_norm {} }
    layer { name: "lm_head" lm_head { tied_to: "wte" } }
  }
  train { steps: 1 })";

// The same GPT in bf16 on the GPU and in fp32 on the CPU, from the same fp32 parameters:
// bf16 rounds every activation to 8 significant bits, so values are compared by size and
// direction with tolerances of a few bf16 ulps, not elementwise at fp32 precision.
TEST_F(MixedPrecisionTest, TinyGptInBf16TracksFp32) {
  auto cfg = parse_config_text(kTinyGpt, "tiny_gpt");
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  const int64_t t = 32, n = 4;
  const std::vector<ModelInput> inputs = {{"tokens", {{t}, DType::kInt32}}, {"targets", {{t}, DType::kInt32}}};
  auto cpu_model = Model::build(cfg->model(), inputs, 256, cpu_);
  auto gpu_model = Model::build(cfg->model(), inputs, 256, *gpu_, DType::kBFloat16);
  ASSERT_TRUE(cpu_model.ok()) << cpu_model.status().ToString();
  ASSERT_TRUE(gpu_model.ok()) << gpu_model.status().ToString();
  (*cpu_model)->init_params(9);
  (*gpu_model)->init_params(9);
  std::vector<int32_t> tokens(n * t), targets(n * t);
  std::mt19937 gen(78);
  for (int32_t& v : tokens) v = static_cast<int32_t>(gen() % 256);
  for (size_t i = 0; i < targets.size(); ++i) targets[i] = (tokens[i] + 1) % 256;
  ForwardContext ctx;
  ctx.training = true;
  ctx.global_batch = n;
  ctx.grad_scale = 1.0f / n;
  const BatchResult want = (*cpu_model)->forward_backward(ctx, {tokens.data(), targets.data()}, n);
  const BatchResult got = (*gpu_model)->forward_backward(ctx, {tokens.data(), targets.data()}, n);
  ASSERT_TRUE(gpu_->synchronize().ok()) << gpu_->status().ToString();
  EXPECT_NEAR(got.loss_sum, want.loss_sum, 1e-2 * std::fabs(want.loss_sum));
  const auto gg = download(*gpu_, (*gpu_model)->flat_grads()), cg = download(cpu_, (*cpu_model)->flat_grads());
  for (const ParamInfo& p : (*cpu_model)->params()) {
    const int64_t k = shape_numel(p.shape);
    const std::vector<float> g(gg.begin() + p.offset, gg.begin() + p.offset + k);
    const std::vector<float> c(cg.begin() + p.offset, cg.begin() + p.offset + k);
    EXPECT_LT(cosine_gap(g, c), 2e-3) << p.name << " gradient direction";
    EXPECT_NEAR(rms(g), rms(c), 3e-2 * rms(c)) << p.name << " gradient size";
  }
  // Decode in bf16 with the KV cache against fp32.
  std::vector<int32_t> prompt;
  for (int64_t b = 0; b < n; ++b)
    for (int64_t i = 0; i < 6; ++i) prompt.push_back(tokens[b * t + i]);
  auto cl = (*cpu_model)->decode(prompt.data(), n, 6, 0);
  auto gl = (*gpu_model)->decode(prompt.data(), n, 6, 0);
  ASSERT_TRUE(cl.ok() && gl.ok()) << gl.status().ToString();
  EXPECT_LT(cosine_gap(*gl, *cl), 2e-3) << "decode logits";
}

TEST_F(MixedPrecisionTest, ConvLayersRefuseBf16NamingTheLayer) {
  auto cfg = parse_config_text(R"(model { layer { name: "conv1" conv2d { out_channels: 4 kernel_size: 3 } } }
                                  train { steps: 1 })", "cnn");
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  const std::vector<ModelInput> inputs = {{"images", {{1, 8, 8}, DType::kFloat32}}, {"labels", {{}, DType::kInt32}}};
  auto m = Model::build(cfg->model(), inputs, 10, *gpu_, DType::kBFloat16);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("conv1"), std::string::npos) << m.status().ToString();
  EXPECT_NE(m.status().message().find("float32 only"), std::string::npos) << m.status().ToString();
}

}  // namespace
}  // namespace shardtrain
