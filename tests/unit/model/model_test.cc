// Model: building the layer stack from config, the flat parameter layout, seeded init.
#include <gtest/gtest.h>

#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "model_check.h"

namespace shardtrain {
namespace {

using testing::parse_model;

// The fields an image batch has: images [1, 28, 28] and int32 labels.
const std::vector<ModelInput> kImages = {{"images", {{1, 28, 28}, DType::kFloat32}}, {"labels", {{}, DType::kInt32}}};

const char* kCnn = R"(
  layer { name: "conv1" conv2d { out_channels: 4 kernel_size: 3 padding: 1 } }
  layer { relu {} }
  layer { max_pool2d { kernel_size: 2 } }
  layer { flatten {} }
  layer { name: "fc" linear { out_features: 10 } })";

TEST(Model, FlatLayoutFollowsLayerOrderWithPyTorchShapes) {
  CpuBackend be(1);
  auto m = Model::build(parse_model(kCnn), kImages, 10, be);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  const auto& p = (*m)->params();
  ASSERT_EQ(p.size(), 4u);
  EXPECT_EQ(p[0].name, "conv1.weight");
  EXPECT_EQ(p[0].shape, (Shape{4, 1, 3, 3}));
  EXPECT_EQ(p[1].name, "conv1.bias");
  EXPECT_EQ(p[2].name, "fc.weight");
  EXPECT_EQ(p[2].shape, (Shape{10, 4 * 14 * 14}));
  int64_t offset = 0;
  for (const ParamInfo& q : p) {
    EXPECT_EQ(q.offset, offset) << q.name;
    offset += shape_numel(q.shape);
  }
  EXPECT_EQ((*m)->num_params(), offset);
  EXPECT_EQ((*m)->flat_grads().numel(), offset);
}

// bf16 compute is for GPUs; the CPU backend is the fp32 reference and says so.
TEST(Model, Bf16OnTheCpuIsRefused) {
  CpuBackend be(1);
  auto m = Model::build(parse_model(kCnn), kImages, 10, be, DType::kBFloat16);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("cannot compute in bfloat16"), std::string::npos) << m.status().ToString();
}

TEST(Model, LastLayerMustOutputNumClasses) {
  CpuBackend be(1);
  auto m = Model::build(parse_model(R"(layer { flatten {} } layer { name: "head" linear { out_features: 7 } })"),
                        kImages, 10, be);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("head"), std::string::npos) << m.status().message();
  EXPECT_NE(m.status().message().find("data.num_classes"), std::string::npos) << m.status().message();
}

TEST(Model, ShapeErrorNamesTheLayer) {
  CpuBackend be(1);
  auto m = Model::build(parse_model(R"(layer { name: "fc1" linear { out_features: 10 } })"), kImages, 10, be);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("fc1"), std::string::npos) << m.status().message();
}

TEST(Model, InitIsSeededAndWithinPyTorchBounds) {
  CpuBackend be(1);
  auto a = Model::build(parse_model(kCnn), kImages, 10, be);
  auto b = Model::build(parse_model(kCnn), kImages, 10, be);
  ASSERT_TRUE(a.ok() && b.ok());
  (*a)->init_params(42);
  (*b)->init_params(42);
  const int64_t n = (*a)->num_params();
  std::vector<float> pa(n), pb(n), pc(n);
  be.copy_to_host((*a)->flat_params(), pa.data());
  be.copy_to_host((*b)->flat_params(), pb.data());
  EXPECT_EQ(pa, pb);
  (*b)->init_params(43);
  be.copy_to_host((*b)->flat_params(), pc.data());
  EXPECT_NE(pa, pc);
  for (const ParamInfo& p : (*a)->params()) {
    const float bound = 1.0f / std::sqrt(static_cast<float>(p.init.value));
    float lo = 1e9f, hi = -1e9f;
    for (int64_t i = 0; i < shape_numel(p.shape); ++i) {
      lo = std::min(lo, pa[p.offset + i]);
      hi = std::max(hi, pa[p.offset + i]);
    }
    EXPECT_GE(lo, -bound) << p.name;
    EXPECT_LE(hi, bound) << p.name;
    if (shape_numel(p.shape) >= 100) {  // enough draws that uniform values must spread out
      EXPECT_LT(lo, -0.9f * bound) << p.name << ": values should cover the range";
      EXPECT_GT(hi, 0.9f * bound) << p.name;
    }
  }
}

TEST(Model, ForwardBackwardGradientsSumOverSplitBatches) {
  // The data-parallel identity the trainer relies on: gradients of two half batches, each
  // scaled by 1/global_batch, add up to the gradient of the whole batch.
  CpuBackend be(1);
  auto m = Model::build(parse_model(kCnn), kImages, 10, be);
  ASSERT_TRUE(m.ok());
  (*m)->init_params(1);
  const int64_t n = 6, px = 28 * 28, np = (*m)->num_params();
  std::vector<float> x(n * px);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * i);
  std::vector<int32_t> y = {0, 3, 9, 1, 1, 5};
  ForwardContext ctx;
  ctx.grad_scale = 1.0f / n;
  auto grads = [&](int64_t begin, int64_t count) {
    (*m)->forward_backward(ctx, {x.data() + begin * px, y.data() + begin}, count);
    std::vector<float> g(np);
    be.copy_to_host((*m)->flat_grads(), g.data());
    return g;
  };
  std::vector<float> whole = grads(0, n), first = grads(0, 3), second = grads(3, 3);
  double max_abs = 0, max_err = 0;
  for (int64_t i = 0; i < np; ++i) {
    max_abs = std::max(max_abs, std::fabs(static_cast<double>(whole[i])));
    max_err = std::max(max_err, std::fabs(static_cast<double>(first[i]) + second[i] - whole[i]));
  }
  EXPECT_GT(max_abs, 0);
  EXPECT_LT(max_err, 1e-5 * max_abs);
}

}  // namespace
}  // namespace shardtrain
