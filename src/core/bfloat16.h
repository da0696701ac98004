// bf16: the storage type of bfloat16 values (the top 16 bits of an IEEE fp32), and the
// host conversions. Layout-compatible with CUDA's __nv_bfloat16, which kernels/*.cu
// reinterpret it as; plain C++ so that headers shared by host code and kernels can name it
// without including CUDA's headers.
//
// Rounding is round-to-nearest-even, as __float2bfloat16_rn on the device, so host and
// device conversions give the same bits for every value but NaN; NaN stays NaN (quiet:
// here with its payload's top bits, on the device as the canonical 0x7fff), infinities
// stay infinite.
#pragma once

#include <cstdint>
#include <cstring>

namespace shardtrain {

struct bf16 {
  uint16_t bits;
};
static_assert(sizeof(bf16) == 2, "bf16 is two bytes");

inline bf16 bf16_from_float(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{static_cast<uint16_t>((u >> 16) | 0x0040u)};  // NaN: keep, quiet
  const uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);  // ties to even
  return bf16{static_cast<uint16_t>((u + rounding) >> 16)};
}

inline float bf16_to_float(bf16 h) {
  const uint32_t u = static_cast<uint32_t>(h.bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

}  // namespace shardtrain
