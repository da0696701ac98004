// CpuBackend: gradient bucket pack / unpack. One segment at a time, each an elementwise
// OpenMP loop; a multiply by 1.0f is exact, so scale = 1 is a plain copy.
#include "backend/cpu/cpu_backend.h"

namespace shardtrain {

void CpuBackend::grad_bucket_pack(const GradSegment* segs, int count, float scale, float* flat) {
  for (int s = 0; s < count; ++s) {
    const float* src = segs[s].data;
    const int64_t n = segs[s].numel;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) flat[i] = src[i] * scale;
    flat += n;
  }
}

void CpuBackend::grad_bucket_unpack(const float* flat, float scale, const GradSegment* segs, int count) {
  for (int s = 0; s < count; ++s) {
    float* dst = segs[s].data;
    const int64_t n = segs[s].numel;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) dst[i] = flat[i] * scale;
    flat += n;
  }
}

}  // namespace shardtrain
