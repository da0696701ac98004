// Deterministic shuffling: the same (seed, epoch) gives the same permutation on every rank,
// every platform and every run, so a resumed run sees exactly the batches it would have.
//
// std:: distributions are deliberately not used: their output is implementation-defined
// (libstdc++ and libc++ differ). The generator is SplitMix64 and bounded draws use
// rejection sampling, both fully specified here.
#pragma once

#include <cstdint>
#include <vector>

namespace shardtrain {

// SplitMix64 (Steele, Lea, Flood 2014): a 64-bit state advanced by a fixed odd constant
// and passed through a bijective mixer. Small, fast and good enough for shuffling.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t state) : state_(state) {}
  uint64_t next();
  // A uniform draw from [0, n) with no modulo bias. REQUIRES: n > 0.
  uint64_t below(uint64_t n);

 private:
  uint64_t state_;
};

// The SplitMix64 output function on its own: a bijective 64-bit mixer.
uint64_t splitmix64_mix(uint64_t x);

// A permutation of [0, n) that depends only on (seed, epoch): Fisher–Yates driven by a
// SplitMix64 stream whose starting state mixes both. Different epochs give unrelated
// permutations. REQUIRES: n >= 0, epoch >= 0.
std::vector<int64_t> shuffle_permutation(int64_t n, uint64_t seed, int64_t epoch);

}  // namespace shardtrain
