// Counter-based random numbers: a uniform float is a pure function of (seed, stream,
// index), so any element can be drawn independently of every other one. That is what
// makes dropout masks independent of thread count, launch shape and how a batch is split
// over ranks. Plain inline C++ with no CPU-only dependencies so CUDA kernels can include
// it too (ST_HOST_DEVICE expands to __host__ __device__ under nvcc).
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define ST_HOST_DEVICE __host__ __device__
#else
#define ST_HOST_DEVICE
#endif

namespace shardtrain {

// splitmix64's finaliser: a bijective mix with full avalanche, cheap enough per element.
ST_HOST_DEVICE inline uint64_t counter_rng_mix(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Combines two words into one key; not symmetric, so (a, b) and (b, a) differ.
ST_HOST_DEVICE inline uint64_t counter_rng_hash2(uint64_t a, uint64_t b) {
  return counter_rng_mix(counter_rng_mix(a) ^ (b + 0x632BE59BD9B4E019ull));
}

// One stream per purpose, mixed into every key, so the draws of one purpose never repeat
// another's (e.g. dropout of layer 1 at step k vs. the init of parameter k). Shuffling has
// its own generator (data/shuffle.cc).
enum CounterRngPurpose : uint64_t {
  kCounterRngInit = 1,     // parameter init: key (purpose, parameter index)
  kCounterRngDropout = 2,  // dropout masks: key (purpose, layer index, step)
  kCounterRngSample = 3,   // generation (model/sampling.h): key (purpose, sequence, step)
};

// Per-call part of the key; hoisted out of element loops.
ST_HOST_DEVICE inline uint64_t counter_rng_base(uint64_t seed, uint64_t stream) {
  return counter_rng_hash2(seed, stream);
}

// Uniform in [0, 1) from the top 24 bits, so every value is exactly representable in fp32
// and 1.0f is never returned.
ST_HOST_DEVICE inline float counter_rng_uniform(uint64_t base, uint64_t index) {
  uint64_t h = counter_rng_mix(base ^ counter_rng_mix(index));
  return static_cast<float>(h >> 40) * (1.0f / 16777216.0f);
}

}  // namespace shardtrain
