// CpuBackend: the transformer primitives other than attention (residual add, LayerNorm,
// embeddings; attention is cpu_attention.cc), the fp32 reference the CUDA kernels are
// checked against.
//
// Determinism: every sum runs in a fixed order that does not depend on the thread count.
// LayerNorm's weight and bias gradients are summed per column over rows in row order;
// embedding gradients are accumulated per column slice in increasing token order.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_require.h"

namespace shardtrain {

void CpuBackend::add(const Tensor& a, const Tensor& b, Tensor& y) {
  cpu_require_f32("add", {&a, &b, &y});
  cpu_require(a.numel() == b.numel() && a.numel() == y.numel(), "add", "operands differ in size");
  const float *pa = a.f32(), *pb = b.f32();
  float* py = y.f32();
  const int64_t n = y.numel();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) py[i] = pa[i] + pb[i];
}

void CpuBackend::layernorm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps, Tensor& y,
                                   Tensor& mean, Tensor& rstd) {
  cpu_require_f32("layernorm_forward", {&x, &weight, &bias, &y, &mean, &rstd});
  const int64_t c = weight.numel(), rows = x.numel() / c;
  cpu_require(rows * c == x.numel() && y.numel() == x.numel() && bias.numel() == c && mean.numel() == rows &&
              rstd.numel() == rows,
          "layernorm_forward", "shapes do not match");
  const float *px = x.f32(), *w = weight.f32(), *b = bias.f32();
  float *py = y.f32(), *pm = mean.f32(), *pr = rstd.f32();
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = px + r * c;
    double s = 0.0;
    for (int64_t i = 0; i < c; ++i) s += xr[i];
    const float m = static_cast<float>(s / c);
    double v = 0.0;
    for (int64_t i = 0; i < c; ++i) v += static_cast<double>(xr[i] - m) * (xr[i] - m);
    const float rs = static_cast<float>(1.0 / std::sqrt(v / c + eps));
    float* yr = py + r * c;
    for (int64_t i = 0; i < c; ++i) yr[i] = (xr[i] - m) * rs * w[i] + b[i];
    pm[r] = m;
    pr[r] = rs;
  }
}

void CpuBackend::layernorm_backward(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& mean,
                                    const Tensor& rstd, Tensor& dx, Tensor& dweight, Tensor& dbias) {
  cpu_require_f32("layernorm_backward", {&dy, &x, &weight, &mean, &rstd, &dx, &dweight, &dbias});
  const int64_t c = weight.numel(), rows = x.numel() / c;
  cpu_require(rows * c == x.numel() && dy.numel() == x.numel() && dx.numel() == x.numel() && dweight.numel() == c &&
              dbias.numel() == c && mean.numel() == rows && rstd.numel() == rows,
          "layernorm_backward", "shapes do not match");
  const float *pdy = dy.f32(), *px = x.f32(), *w = weight.f32(), *pm = mean.f32(), *pr = rstd.f32();
  float *pdx = dx.f32(), *dw = dweight.f32(), *db = dbias.f32();
  // dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * w, row by row.
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float *dyr = pdy + r * c, *xr = px + r * c;
    const float m = pm[r], rs = pr[r];
    double sg = 0.0, sgx = 0.0;
    for (int64_t i = 0; i < c; ++i) {
      const float g = dyr[i] * w[i];
      sg += g;
      sgx += static_cast<double>(g) * ((xr[i] - m) * rs);
    }
    const float mg = static_cast<float>(sg / c), mgx = static_cast<float>(sgx / c);
    float* dxr = pdx + r * c;
    for (int64_t i = 0; i < c; ++i) dxr[i] = rs * (dyr[i] * w[i] - mg - (xr[i] - m) * rs * mgx);
  }
  // dweight += sum_r dy * xhat, dbias += sum_r dy: each column summed over rows in order.
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < c; ++i) {
    double sw = dw[i], sb = db[i];
    for (int64_t r = 0; r < rows; ++r) {
      const float g = pdy[r * c + i];
      sw += static_cast<double>(g) * ((px[r * c + i] - pm[r]) * pr[r]);
      sb += g;
    }
    dw[i] = static_cast<float>(sw);
    db[i] = static_cast<float>(sb);
  }
}

void CpuBackend::embedding_forward(const Tensor& ids, const Tensor& table, Tensor& y) {
  cpu_require(ids.dtype() == DType::kInt32, "embedding_forward", "ids must be int32");
  cpu_require_f32("embedding_forward", {&table, &y});
  const int64_t n = ids.numel(), d = table.dim(-1), v = table.numel() / d;
  cpu_require(y.numel() == n * d, "embedding_forward", "output size is not ids x dim");
  const int32_t* id = ids.data<int32_t>();
  const float* w = table.f32();
  float* py = y.f32();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    cpu_require(id[i] >= 0 && id[i] < v, "embedding_forward", "id out of range");
    std::memcpy(py + i * d, w + static_cast<int64_t>(id[i]) * d, d * sizeof(float));
  }
}

void CpuBackend::embedding_backward(const Tensor& ids, const Tensor& dy, Tensor& dtable) {
  cpu_require(ids.dtype() == DType::kInt32, "embedding_backward", "ids must be int32");
  cpu_require_f32("embedding_backward", {&dy, &dtable});
  const int64_t n = ids.numel(), d = dtable.dim(-1);
  cpu_require(dy.numel() == n * d, "embedding_backward", "gradient size is not ids x dim");
  const int32_t* id = ids.data<int32_t>();
  const float* pdy = dy.f32();
  float* dw = dtable.f32();
  // Threads own column slices; within one, tokens add in increasing order.
  constexpr int64_t kSlice = 64;
#pragma omp parallel for schedule(static)
  for (int64_t c0 = 0; c0 < d; c0 += kSlice) {
    const int64_t c1 = std::min(d, c0 + kSlice);
    for (int64_t i = 0; i < n; ++i) {
      float* row = dw + static_cast<int64_t>(id[i]) * d;
      const float* g = pdy + i * d;
      for (int64_t c = c0; c < c1; ++c) row[c] += g[c];
    }
  }
}

}  // namespace shardtrain
