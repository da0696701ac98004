// Seeded random test inputs shared by the unit tests (std::mt19937: reproducible within
// one standard library, which is all a test needs).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace shardtrain {
namespace testing {

inline std::vector<float> random_uniform(int64_t n, float lo, float hi, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(gen);
  return v;
}

}  // namespace testing
}  // namespace shardtrain
