#include "data/shuffle.h"

#include <cstddef>
#include <numeric>
#include <utility>

namespace shardtrain {

namespace {
constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ULL;  // 2^64 / phi, SplitMix64's increment
// Separates the shuffling stream from any other stream derived from the same user seed.
constexpr uint64_t kShuffleTag = 0x53485546464c4531ULL;  // "SHUFFLE1"
}  // namespace

uint64_t splitmix64_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t SplitMix64::next() {
  state_ += kGolden;
  return splitmix64_mix(state_);
}

uint64_t SplitMix64::below(uint64_t n) {
  // Accept only draws >= 2^64 mod n: the accepted range [t, 2^64) holds an exact multiple
  // of n values, so r % n is uniform. Rejection probability is < n / 2^64 (tiny).
  const uint64_t threshold = (0 - n) % n;
  for (;;) {
    uint64_t r = next();
    if (r >= threshold) return r % n;
  }
}

std::vector<int64_t> shuffle_permutation(int64_t n, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> perm(static_cast<size_t>(n));
  std::iota(perm.begin(), perm.end(), int64_t{0});
  // Mix seed and epoch through the bijection separately so (seed, epoch) and
  // (seed + 1, epoch - 1) do not collide.
  SplitMix64 rng(splitmix64_mix(seed ^ kShuffleTag) ^
                 splitmix64_mix(static_cast<uint64_t>(epoch) + kGolden));
  for (int64_t i = n - 1; i > 0; --i) {
    int64_t j = static_cast<int64_t>(rng.below(static_cast<uint64_t>(i) + 1));
    std::swap(perm[i], perm[j]);
  }
  return perm;
}

}  // namespace shardtrain
