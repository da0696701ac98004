#include "model/sampling.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/counter_rng.h"

namespace shardtrain {

Status sampling_options_check(const SamplingOptions& opts) {
  if (!(std::isfinite(opts.temperature) && opts.temperature >= 0))
    return Status::InvalidArgument("temperature must be a number >= 0 (got " + std::to_string(opts.temperature) + ")");
  if (opts.top_k < 0) return Status::InvalidArgument("top-k must be >= 0 (got " + std::to_string(opts.top_k) + ")");
  return Status::Ok();
}

int32_t sample_token(const float* logits, int64_t vocab, const SamplingOptions& opts, float u) {
  if (opts.temperature == 0 || opts.top_k == 1)  // max_element: the first of equal maxima
    return static_cast<int32_t>(std::max_element(logits, logits + vocab) - logits);

  std::vector<int32_t> cand(vocab);
  for (int64_t i = 0; i < vocab; ++i) cand[i] = static_cast<int32_t>(i);
  if (opts.top_k > 0 && opts.top_k < vocab) {
    // A total order (value, then index), so exactly k candidates whatever the ties.
    std::partial_sort(cand.begin(), cand.begin() + opts.top_k, cand.end(), [&](int32_t a, int32_t b) {
      return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
    });
    cand.resize(opts.top_k);
  }
  float max = logits[cand[0]];
  for (int32_t c : cand) max = std::max(max, logits[c]);
  // Weights relative to the largest, in double: (l - max) <= 0, so a tiny temperature
  // sends the others to exp(-inf) = 0 instead of overflowing.
  std::vector<double> cum(cand.size());
  double total = 0;
  for (size_t i = 0; i < cand.size(); ++i) {
    total += std::exp((static_cast<double>(logits[cand[i]]) - max) / opts.temperature);
    cum[i] = total;
  }
  const double target = static_cast<double>(u) * total;
  const size_t pick = std::upper_bound(cum.begin(), cum.end(), target) - cum.begin();
  return cand[std::min(pick, cand.size() - 1)];  // u * total rounds up to total: the last
}

float sampling_uniform(uint64_t seed, int64_t sequence, int64_t step) {
  const uint64_t base = counter_rng_base(counter_rng_hash2(seed, kCounterRngSample), static_cast<uint64_t>(sequence));
  return counter_rng_uniform(base, static_cast<uint64_t>(step));
}

}  // namespace shardtrain
