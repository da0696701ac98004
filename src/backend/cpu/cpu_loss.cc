// CpuBackend: softmax cross-entropy, accuracy counting and the fixed-order reductions.
//
// sum / sum_squares split the input into fixed 4096-element chunks, sum each chunk in
// double, then add the chunk sums in chunk order on one thread. The chunking does not
// depend on the thread count, so the result is bitwise identical for any thread count
// (an OpenMP reduction clause combines partials in an unspecified order).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "backend/cpu/cpu_backend.h"

namespace shardtrain {

void CpuBackend::softmax_xent_forward(const float* logits, int64_t ld, const int32_t* labels, int64_t n, int64_t c,
                                      float* stats, float* losses) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float* z = logits + i * ld;
    float mx = z[0];  // subtracting the max keeps exp() from overflowing
    for (int64_t j = 1; j < c; ++j) mx = std::max(mx, z[j]);
    double denom = 0.0;
    for (int64_t j = 0; j < c; ++j) denom += std::exp(z[j] - mx);
    stats[2 * i] = mx;
    stats[2 * i + 1] = static_cast<float>(1.0 / denom);
    // -log softmax via log-sum-exp: finite even when the label's probability underflows.
    losses[i] = static_cast<float>(std::log(denom) - (static_cast<double>(z[labels[i]]) - mx));
  }
}

void CpuBackend::softmax_xent_backward(const float* logits, int64_t ld, const float* stats, const int32_t* labels,
                                       int64_t n, int64_t c, float scale, float* dlogits) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float* z = logits + i * ld;
    float* d = dlogits + i * ld;
    const float mx = stats[2 * i], inv = stats[2 * i + 1];
    for (int64_t j = 0; j < c; ++j) d[j] = std::exp(z[j] - mx) * inv * scale;  // softmax * scale
    for (int64_t j = c; j < ld; ++j) d[j] = 0.0f;
    d[labels[i]] -= scale;
  }
}

int64_t CpuBackend::count_correct(const float* logits, int64_t ld, const int32_t* labels, int64_t n, int64_t c) {
  int64_t correct = 0;
  // Integer addition is exact, so the reduction order cannot change the result.
#pragma omp parallel for schedule(static) reduction(+ : correct)
  for (int64_t i = 0; i < n; ++i) {
    const float* z = logits + i * ld;
    int64_t best = 0;
    for (int64_t j = 1; j < c; ++j)
      if (z[j] > z[best]) best = j;  // strict: first maximum on ties
    correct += best == labels[i] ? 1 : 0;
  }
  return correct;
}

namespace {

constexpr int64_t kReduceChunk = 4096;

template <typename F>
double chunked_sum(const float* x, int64_t n, F term) {
  const int64_t chunks = (n + kReduceChunk - 1) / kReduceChunk;
  std::vector<double> partial(chunks);
#pragma omp parallel for schedule(static)
  for (int64_t ch = 0; ch < chunks; ++ch) {
    const int64_t end = std::min(n, (ch + 1) * kReduceChunk);
    double acc = 0.0;
    for (int64_t i = ch * kReduceChunk; i < end; ++i) acc += term(x[i]);
    partial[ch] = acc;
  }
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}

}  // namespace

double CpuBackend::sum(const float* x, int64_t n) {
  return chunked_sum(x, n, [](float v) { return static_cast<double>(v); });
}

double CpuBackend::sum_squares(const float* x, int64_t n) {
  return chunked_sum(x, n, [](float v) { return static_cast<double>(v) * v; });
}

// An inf or NaN is a float whose exponent bits are all ones. Testing for that with
// integer operations and OR-ing the answers has no float arithmetic and no order to keep,
// so the compiler vectorizes it (even with only SSE2) and the pass runs at memory speed,
// several times cheaper than sum_squares's chain of double adds. One thread: the trainer
// calls it once per step on the gradients, too little work to share.
bool CpuBackend::all_finite(const float* x, int64_t n) {
  constexpr uint32_t kExponent = 0x7f800000u;
  uint32_t bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, x + i, sizeof bits);
    bad |= static_cast<uint32_t>((bits & kExponent) == kExponent);
  }
  return bad == 0;
}

}  // namespace shardtrain
