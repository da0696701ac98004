// residual_layer_norm: (a, b) -> (a + b, LayerNorm(a + b)). Its gradients against finite
// differences, and the same bits as the add and layer_norm nodes it replaces, forward and
// backward (including outputs nothing takes a gradient from).
#include <gtest/gtest.h>

#include "backend/cpu/cpu_backend.h"
#include "grad_check.h"
#include "layers/add.h"
#include "layers/layer_norm.h"
#include "layers/registry.h"
#include "layers/residual_layer_norm.h"

namespace shardtrain {
namespace {

using testing::check_node_gradients;
using testing::LayerInput;
using testing::random_uniform;

ForwardContext train_ctx(int64_t batch) {
  ForwardContext ctx;
  ctx.global_batch = batch;
  ctx.grad_scale = 1.0f / static_cast<float>(batch);
  return ctx;
}

std::vector<float> host(Backend& be, const Tensor& t) {
  std::vector<float> h(t.numel());
  be.copy_to_host(t, h.data());
  return h;
}

Tensor upload(Backend& be, const Shape& shape, const std::vector<float>& v) {
  Tensor t = be.alloc(shape, DType::kFloat32);
  be.copy_from_host(t, v.data());
  return t;
}

TEST(ResidualLayerNorm, GradientsMatchFiniteDifferences) {
  CpuBackend be(1);
  ResidualLayerNormLayer layer("ln_2", be, 1e-5f);
  check_node_gradients(layer, be,
                       {LayerInput{{4, 6}, random_uniform(48, -2.0f, 2.0f, 3), {}},
                        LayerInput{{4, 6}, random_uniform(48, -1.0f, 1.0f, 4), {}}},
                       2, train_ctx(2));
}

// The fused node against add then layer_norm with the unfused graph's gradient rule for a
// value read twice (res_1: by the LayerNorm and by a later add): dsum = dres + dln_x.
// Every combination of present and absent output gradients. Bit for bit on the CPU.
TEST(ResidualLayerNorm, EqualsAddThenLayerNormBitForBit) {
  CpuBackend be(1);
  const Shape shape = {3, 5, 8};
  const int64_t n = 3 * 5 * 8;
  ParamStore fused_store(be), plain_store(be);
  ResidualLayerNormLayer fused("h.0.ln_2", be, 1e-5f);
  AddLayer add("h.0.res_1", be);
  LayerNormLayer ln("h.0.ln_2", be, 1e-5f);
  const ValueSpec spec{{5, 8}, DType::kFloat32};
  auto fo = fused.configure({spec, spec}, fused_store);
  ASSERT_TRUE(fo.ok()) << fo.status().message();
  ASSERT_EQ(fo->size(), 2u);
  EXPECT_EQ((*fo)[0].shape, spec.shape);
  EXPECT_EQ((*fo)[1].shape, spec.shape);
  ASSERT_TRUE(add.configure({spec, spec}, plain_store).ok());
  ASSERT_TRUE(ln.configure({spec}, plain_store).ok());
  // The same parameter names, so checkpoints do not see the fusion.
  ASSERT_EQ(fused_store.params().size(), 2u);
  for (size_t i = 0; i < 2; ++i) EXPECT_EQ(fused_store.params()[i].name, plain_store.params()[i].name);
  EXPECT_EQ(fused_store.params()[0].name, "h.0.ln_2.weight");
  fused_store.allocate();
  plain_store.allocate();
  const std::vector<float> p = random_uniform(fused_store.num_params(), -1.5f, 1.5f, 5);
  be.copy_from_host(fused_store.flat_params(), p.data());
  be.copy_from_host(plain_store.flat_params(), p.data());

  Tensor a = upload(be, shape, random_uniform(n, -3.0f, 3.0f, 6)), b = upload(be, shape, random_uniform(n, -1.0f, 1.0f, 7));
  Tensor dres = upload(be, shape, random_uniform(n, -1.0f, 1.0f, 8)), dln = upload(be, shape, random_uniform(n, -1.0f, 1.0f, 9));
  auto fresh = [&] { return be.alloc(shape, DType::kFloat32); };
  Tensor sum1 = fresh(), y1 = fresh(), sum2 = fresh(), y2 = fresh();
  const ForwardContext ctx = train_ctx(3);
  fused.forward(ctx, {&a, &b}, {&sum1, &y1});
  add.forward(ctx, {&a, &b}, {&sum2});
  ln.forward(ctx, {&sum2}, {&y2});
  EXPECT_EQ(host(be, sum1), host(be, sum2));
  EXPECT_EQ(host(be, y1), host(be, y2));

  for (const bool with_dres : {true, false})
    for (const bool with_dln : {true, false}) {
      SCOPED_TRACE(std::string("dres ") + (with_dres ? "yes" : "no") + ", dln " + (with_dln ? "yes" : "no"));
      fused_store.zero_grads();
      plain_store.zero_grads();
      Tensor da1 = fresh(), db1 = fresh(), da2 = fresh(), db2 = fresh(), dsum = fresh(), zeros = fresh();
      be.fill(zeros, 0.0f);
      fused.backward(ctx, {&a, &b}, {&sum1, &y1}, {with_dres ? &dres : nullptr, with_dln ? &dln : nullptr},
                     {&da1, &db1});
      // Unfused, as Model::backward runs it: the later add's gradient first, then the
      // LayerNorm's input gradient added to it, then the residual add copies it to both.
      // (The model hands an output nothing reads a zero gradient.)
      be.copy(with_dres ? dres : zeros, dsum);
      Tensor s = fresh();
      ln.backward(ctx, {&sum2}, {&y2}, {with_dln ? &dln : &zeros}, {&s});
      be.add(dsum, s, dsum);
      add.backward(ctx, {&a, &b}, {&sum2}, {&dsum}, {&da2, &db2});
      EXPECT_EQ(host(be, da1), host(be, da2));
      EXPECT_EQ(host(be, db1), host(be, db2));
      EXPECT_EQ(host(be, fused_store.flat_grads()), host(be, plain_store.flat_grads()));
    }
}

// Only parameter gradients wanted (both inputs are data): the parameter gradients are
// the same, and nothing is written to the inputs.
TEST(ResidualLayerNorm, ParameterGradientsWithoutInputGradients) {
  CpuBackend be(1);
  ParamStore store(be);
  ResidualLayerNormLayer layer("r", be, 1e-5f);
  const ValueSpec spec{{6}, DType::kFloat32};
  ASSERT_TRUE(layer.configure({spec, spec}, store).ok());
  store.allocate();
  store.init(1);
  Tensor a = upload(be, {4, 6}, random_uniform(24, -1.0f, 1.0f, 1)), b = upload(be, {4, 6}, random_uniform(24, -1.0f, 1.0f, 2));
  Tensor dres = upload(be, {4, 6}, random_uniform(24, -1.0f, 1.0f, 3)), dln = upload(be, {4, 6}, random_uniform(24, -1.0f, 1.0f, 4));
  Tensor sum = be.alloc({4, 6}, DType::kFloat32), y = be.alloc({4, 6}, DType::kFloat32);
  Tensor da = be.alloc({4, 6}, DType::kFloat32), db = be.alloc({4, 6}, DType::kFloat32);
  const ForwardContext ctx = train_ctx(4);
  layer.forward(ctx, {&a, &b}, {&sum, &y});
  store.zero_grads();
  layer.backward(ctx, {&a, &b}, {&sum, &y}, {&dres, &dln}, {&da, &db});
  const std::vector<float> with_inputs = host(be, store.flat_grads());
  store.zero_grads();
  be.fill(da, 7.0f);
  layer.backward(ctx, {&a, &b}, {&sum, &y}, {&dres, &dln}, {nullptr, nullptr});
  EXPECT_EQ(host(be, store.flat_grads()), with_inputs);
  EXPECT_EQ(host(be, da), std::vector<float>(24, 7.0f));
  // One input wanted: it alone is written, with the same values as before.
  layer.backward(ctx, {&a, &b}, {&sum, &y}, {&dres, &dln}, {nullptr, &da});
  EXPECT_EQ(host(be, da), host(be, db));
}

TEST(ResidualLayerNorm, ConfigErrorsNameTheLayer) {
  CpuBackend be(1);
  ParamStore store(be);
  ResidualLayerNormLayer layer("r", be, 1e-5f);
  layer.set_where("model.layer[4] (r)");
  auto bad = layer.configure({ValueSpec{{4, 6}}, ValueSpec{{4, 5}}}, store);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "model.layer[4] (r): residual_layer_norm needs two floating-point inputs of one shape and dtype, got "
            "[4, 6] float32 and [4, 5] float32");
  auto one = layer.configure({ValueSpec{{4, 6}}}, store);
  ASSERT_FALSE(one.ok());
  EXPECT_EQ(one.status().message(), "model.layer[4] (r): residual_layer_norm takes two inputs, got 1");

  config::LayerConfig cfg;
  cfg.mutable_residual_layer_norm()->set_eps(0.0f);
  auto made = make_layer(cfg, 3, be);
  ASSERT_FALSE(made.ok());
  EXPECT_NE(made.status().message().find("residual_layer_norm.eps must be > 0"), std::string::npos)
      << made.status().message();
}

}  // namespace
}  // namespace shardtrain
