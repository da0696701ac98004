// Finite-difference check of the softmax cross-entropy backward against its forward.
#include <gtest/gtest.h>

#include "backend/cpu/cpu_backend.h"
#include "grad_check.h"

namespace shardtrain {
namespace {

TEST(LayerGrad, SoftmaxCrossEntropy) {
  CpuBackend be(1);
  const int64_t n = 4, c = 5;
  auto logits = testing::random_uniform(n * c, -3.0f, 3.0f, 17);
  std::vector<int32_t> labels{0, 3, 4, 2};
  std::vector<float> stats(n * 2), losses(n), dlogits(n * c);
  const float scale = 1.0f / n;  // mean loss, as the trainer uses
  auto loss = [&]() {
    be.softmax_xent_forward(logits.data(), c, labels.data(), n, c, stats.data(), losses.data());
    double l = 0.0;
    for (float v : losses) l += v;
    return l * scale;
  };
  loss();
  be.softmax_xent_backward(logits.data(), c, stats.data(), labels.data(), n, c, scale, dlogits.data());
  std::vector<testing::GradTarget> targets{{"dlogits", logits.data(), dlogits}};
  testing::expect_gradients_match(loss, targets);
}

}  // namespace
}  // namespace shardtrain
