// Finite-difference gradient checks for the transformer layers: embeddings, LayerNorm,
// causal attention, residual add, the tied LM head, the padded loss head and GELU-tanh.
#include <gtest/gtest.h>

#include "backend/cpu/cpu_backend.h"
#include "grad_check.h"
#include "layers/activation.h"
#include "layers/add.h"
#include "layers/attention.h"
#include "layers/embedding.h"
#include "layers/layer_norm.h"
#include "layers/linear.h"
#include "layers/softmax_xent.h"

namespace shardtrain {
namespace {

using testing::check_layer_gradients;
using testing::check_node_gradients;
using testing::LayerInput;
using testing::random_uniform;

// Checks every element, not a spread sample: these tensors are small.
testing::GradCheckOptions every_element() {
  testing::GradCheckOptions o;
  o.max_checks = 1 << 20;
  return o;
}

ForwardContext train_ctx(int64_t batch) {
  ForwardContext ctx;
  ctx.training = true;
  ctx.global_batch = batch;
  ctx.grad_scale = 1.0f / static_cast<float>(batch);
  return ctx;
}

TEST(TransformerGrad, EmbeddingTableOnly) {
  CpuBackend be(1);
  EmbeddingLayer layer("wte", be, 7, 5, 4, 0.02f);  // 7 rows padded to 8
  // Two samples of 6 tokens: repeats within and across samples, the last real id (6), and
  // rows 1 and 4 never used (their gradient, like the padding row's, must stay 0).
  const std::vector<int32_t> ids{0, 3, 3, 6, 2, 3, 5, 0, 6, 6, 2, 3};
  check_node_gradients(layer, be, {LayerInput{{6}, {}, ids}}, 2, train_ctx(2), every_element());
  ASSERT_EQ(layer.param_ids().size(), 1u);
}

TEST(TransformerGrad, EmbeddingShapeAndParameter) {
  CpuBackend be(1);
  EmbeddingLayer layer("wte", be, 7, 5, 4, 0.02f);
  ParamStore store(be);
  auto out = layer.configure({ValueSpec{{6}, DType::kInt32}}, store);
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_EQ((*out)[0].shape, (Shape{6, 5}));
  EXPECT_EQ((*out)[0].dtype, DType::kFloat32);
  ASSERT_EQ(store.params().size(), 1u);
  EXPECT_EQ(store.params()[0].name, "wte.weight");
  EXPECT_EQ(store.params()[0].shape, (Shape{8, 5}));
  EXPECT_EQ(store.params()[0].init.kind, ParamInit::kNormal);
  EXPECT_FLOAT_EQ(store.params()[0].init.value, 0.02f);
}

TEST(TransformerGrad, PositionEmbedding) {
  CpuBackend be(1);
  PositionEmbeddingLayer layer("wpe", be, 7, 0.02f);  // rows 5 and 6 unused by T = 5
  check_layer_gradients(layer, be, {5, 4}, 3, train_ctx(3), {}, every_element());
}

TEST(TransformerGrad, LayerNorm) {
  CpuBackend be(1);
  LayerNormLayer layer("ln", be, 1e-5f);
  check_layer_gradients(layer, be, {4, 6}, 2, train_ctx(2), random_uniform(48, -2.0f, 2.0f, 3));
}

TEST(TransformerGrad, CausalSelfAttention) {
  CpuBackend be(1);
  CausalSelfAttentionLayer layer("attn", be, 2);  // C = 4: two heads of 2
  check_layer_gradients(layer, be, {5, 12}, 2, train_ctx(2), random_uniform(120, -2.0f, 2.0f, 4),
                        every_element());
}

TEST(TransformerGrad, AddTwoInputs) {
  CpuBackend be(1);
  AddLayer layer("res", be);
  check_node_gradients(layer, be, {LayerInput{{3, 4}, {}, {}}, LayerInput{{3, 4}, {}, {}}}, 2, train_ctx(2));
}

TEST(TransformerGrad, GeluTanh) {
  CpuBackend be(1);
  ActivationLayer layer("gelu", be, Activation::kGeluTanh);
  check_layer_gradients(layer, be, {20}, 2, train_ctx(2), random_uniform(40, -3.0f, 3.0f, 5));
}

// GPT-2's MLP input layer: linear and GELU (tanh) as one node.
TEST(TransformerGrad, LinearWithGeluTanh) {
  CpuBackend be(1);
  LinearLayer layer("c_fc", be, 6, true, 0.0f, /*gelu_tanh=*/true);
  EXPECT_STREQ(layer.type(), "linear_gelu");
  check_layer_gradients(layer, be, {3, 5}, 2, train_ctx(2));
}

// ...and the same numbers as a linear layer followed by a GELU layer, bit for bit on the
// CPU (the fused layer runs the same three primitives).
TEST(TransformerGrad, LinearWithGeluEqualsLinearThenGelu) {
  CpuBackend be(1);
  ParamStore fused_store(be), plain_store(be);
  LinearLayer fused("fc", be, 6, true, 0.0f, true), plain("fc", be, 6, true);
  ActivationLayer gelu("gelu", be, Activation::kGeluTanh);
  ASSERT_TRUE(fused.configure({ValueSpec{{4, 5}}}, fused_store).ok());
  ASSERT_TRUE(plain.configure({ValueSpec{{4, 5}}}, plain_store).ok());
  ASSERT_TRUE(gelu.configure({ValueSpec{{4, 6}}}, plain_store).ok());
  fused_store.allocate();
  plain_store.allocate();
  fused_store.init(3);
  plain_store.init(3);
  const auto xv = random_uniform(2 * 4 * 5, -2.0f, 2.0f, 9);
  Tensor x = be.alloc({2, 4, 5}, DType::kFloat32);
  be.copy_from_host(x, xv.data());
  Tensor y1 = be.alloc({2, 4, 6}, DType::kFloat32), h = be.alloc({2, 4, 6}, DType::kFloat32),
         y2 = be.alloc({2, 4, 6}, DType::kFloat32);
  const ForwardContext ctx = train_ctx(2);
  fused.forward(ctx, {&x}, {&y1});
  plain.forward(ctx, {&x}, {&h});
  gelu.forward(ctx, {&h}, {&y2});
  for (int64_t i = 0; i < y1.numel(); ++i) ASSERT_EQ(y1.f32()[i], y2.f32()[i]) << i;
}

// The tied head's weight is the embedding table: the same parameter, no new one, and its
// gradient wrt that shared table is right.
TEST(TransformerGrad, LmHeadTiedToEmbedding) {
  CpuBackend be(1);
  ParamStore store(be);
  EmbeddingLayer wte("wte", be, 10, 6, 4, 0.02f);  // [12, 6]
  ASSERT_TRUE(wte.configure({ValueSpec{{5}, DType::kInt32}}, store).ok());
  LinearLayer head("lm_head", be, "wte.weight");
  testing::check_node_gradients_in(store, head, be, {LayerInput{{5, 6}, {}, {}}}, 2, train_ctx(2), every_element());
  EXPECT_STREQ(head.type(), "lm_head");
  ASSERT_EQ(store.params().size(), 1u) << "the tied head must not declare a parameter";
  EXPECT_EQ(head.param_ids(), wte.param_ids());
}

TEST(TransformerGrad, LmHeadOutputsEveryPaddedRowAndChecksWidth) {
  CpuBackend be(1);
  ParamStore store(be);
  EmbeddingLayer wte("wte", be, 10, 6, 4, 0.02f);
  ASSERT_TRUE(wte.configure({ValueSpec{{5}, DType::kInt32}}, store).ok());
  LinearLayer head("lm_head", be, "wte.weight");
  head.set_where("model.layer[4] (lm_head)");
  auto out = head.configure({ValueSpec{{5, 6}, DType::kFloat32}}, store);
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_EQ((*out)[0].shape, (Shape{5, 12}));

  LinearLayer wide("lm_head", be, "wte.weight");
  wide.set_where("model.layer[4] (lm_head)");
  auto bad = wide.configure({ValueSpec{{5, 7}, DType::kFloat32}}, store);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "model.layer[4] (lm_head): tied weight wte.weight is [12, 6] but must be [V, 7]: a row of the "
            "input's 7 features per output (token table)");

  LinearLayer orphan("lm_head", be, "wfe.weight");
  orphan.set_where("model.layer[4] (lm_head)");
  auto missing = orphan.configure({ValueSpec{{5, 6}, DType::kFloat32}}, store);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("model.layer[4] (lm_head)"), std::string::npos);
  EXPECT_NE(missing.status().message().find("wfe.weight"), std::string::npos);
}

// The loss head ignores dout: its backward seeds the pass with the gradient of
// grad_scale * (sum of its losses) / positions, so that is the L checked here.
TEST(TransformerGrad, SoftmaxCrossEntropyPaddedLogits) {
  CpuBackend be(1);
  const int64_t B = 2, T = 3, classes = 5, ld = 8;
  SoftmaxCrossEntropyLayer layer("loss", be, classes, /*padded=*/true);
  ParamStore store(be);
  auto out = layer.configure({ValueSpec{{T, ld}, DType::kFloat32}, ValueSpec{{T}, DType::kInt32}}, store);
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_EQ((*out)[0].shape, (Shape{T}));
  EXPECT_EQ(layer.positions_per_sample(), T);
  store.allocate();

  auto lv = random_uniform(B * T * ld, -2.0f, 2.0f, 6);
  for (int64_t r = 0; r < B * T; ++r)
    for (int64_t j = classes; j < ld; ++j) lv[r * ld + j] = 50.0f;  // would dominate if it took part
  Tensor logits = be.alloc({B, T, ld}, DType::kFloat32), labels = be.alloc({B, T}, DType::kInt32);
  Tensor losses = be.alloc({B, T}, DType::kFloat32), dlogits = be.alloc({B, T, ld}, DType::kFloat32);
  be.copy_from_host(logits, lv.data());
  const std::vector<int32_t> lab{0, 4, 2, 4, 1, 0};
  be.copy_from_host(labels, lab.data());
  const ForwardContext ctx = train_ctx(B);
  auto loss = [&]() {
    layer.forward(ctx, {&logits, &labels}, {&losses});
    double l = 0;
    for (int64_t i = 0; i < B * T; ++i) l += losses.f32()[i];
    return l * ctx.grad_scale / T;
  };
  const double l0 = loss();
  EXPECT_GT(l0, 0.1);
  EXPECT_LT(l0, 5.0) << "padding columns must not take part in the softmax";
  be.fill(dlogits, 9.0f);  // overwritten
  layer.backward(ctx, {&logits, &labels}, {&losses}, {&losses}, {&dlogits, nullptr});
  std::vector<float> analytic(dlogits.f32(), dlogits.f32() + dlogits.numel());
  for (int64_t r = 0; r < B * T; ++r)
    for (int64_t j = classes; j < ld; ++j) EXPECT_EQ(analytic[r * ld + j], 0.0f) << "row " << r << " column " << j;
  std::vector<testing::GradTarget> targets{{"dlogits", logits.f32(), analytic}};
  testing::expect_gradients_match(loss, targets, every_element());  // padding included: numeric 0
}

TEST(TransformerGrad, SoftmaxCrossEntropyWidthMustFitClasses) {
  CpuBackend be(1);
  ParamStore store(be);
  const ValueSpec labels{{3}, DType::kInt32};
  SoftmaxCrossEntropyLayer dense("loss", be, 5, false), padded("loss", be, 5, true);
  EXPECT_FALSE(dense.configure({ValueSpec{{3, 8}, DType::kFloat32}, labels}, store).ok());
  EXPECT_TRUE(dense.configure({ValueSpec{{3, 5}, DType::kFloat32}, labels}, store).ok());
  EXPECT_FALSE(padded.configure({ValueSpec{{3, 4}, DType::kFloat32}, labels}, store).ok());
  EXPECT_FALSE(padded.configure({ValueSpec{{4, 8}, DType::kFloat32}, labels}, store).ok());  // 4 rows, 3 labels
}

}  // namespace
}  // namespace shardtrain
