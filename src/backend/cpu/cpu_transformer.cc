// CpuBackend: the transformer primitives (residual add, LayerNorm, causal attention,
// KV-cached attention, embeddings), the fp32 reference the CUDA kernels are checked
// against.
//
// Determinism: every sum runs in a fixed order that does not depend on the thread count.
// Threads own disjoint outputs: attention parallelises over (sequence, head) pairs, whose
// columns of q, k, v and of their gradients never overlap; LayerNorm's weight and bias
// gradients are summed per column over rows in row order; embedding gradients are
// accumulated per column slice in increasing token order.
//
// Attention keeps no [T, T] matrix: forward saves the log-sum-exp of each query row, and
// backward recomputes each probability as exp(score - lse), as flash attention does.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "backend/cpu/cpu_backend.h"

namespace shardtrain {
namespace {

// A dtype or shape that does not fit a primitive is a bug in the caller (layers check
// their configuration up front); the CPU backend has no sticky error to keep it in.
void require(bool ok, const char* primitive, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "fatal: cpu backend: %s: %s\n", primitive, what);
  std::abort();
}

void require_f32(const char* primitive, std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts) require(t->dtype() == DType::kFloat32, primitive, "expects float32 tensors");
}

float dot(const float* a, const float* b, int64_t n) {
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// One query row of causal attention: o = sum_j softmax(scale * q.k_j) v_j over j < n_keys,
// where key j is at k + j * stride (v likewise). Returns the log-sum-exp of the scaled
// scores. `p` is scratch for n_keys scores.
float attend_row(const float* q, const float* k, const float* v, int64_t stride, int64_t n_keys, int64_t d,
                 float scale, float* p, float* o) {
  float mx = -INFINITY;
  for (int64_t j = 0; j < n_keys; ++j) {
    p[j] = scale * dot(q, k + j * stride, d);
    mx = std::max(mx, p[j]);
  }
  double denom = 0.0;
  for (int64_t j = 0; j < n_keys; ++j) {
    p[j] = std::exp(p[j] - mx);
    denom += p[j];
  }
  const float inv = static_cast<float>(1.0 / denom);
  std::fill(o, o + d, 0.0f);
  for (int64_t j = 0; j < n_keys; ++j) {
    const float w = p[j] * inv;
    const float* vj = v + j * stride;
    for (int64_t e = 0; e < d; ++e) o[e] += w * vj[e];
  }
  return mx + static_cast<float>(std::log(denom));
}

}  // namespace

void CpuBackend::add(const Tensor& a, const Tensor& b, Tensor& y) {
  require_f32("add", {&a, &b, &y});
  require(a.numel() == b.numel() && a.numel() == y.numel(), "add", "operands differ in size");
  const float *pa = a.f32(), *pb = b.f32();
  float* py = y.f32();
  const int64_t n = y.numel();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) py[i] = pa[i] + pb[i];
}

void CpuBackend::layernorm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps, Tensor& y,
                                   Tensor& mean, Tensor& rstd) {
  require_f32("layernorm_forward", {&x, &weight, &bias, &y, &mean, &rstd});
  const int64_t c = weight.numel(), rows = x.numel() / c;
  require(rows * c == x.numel() && y.numel() == x.numel() && bias.numel() == c && mean.numel() == rows &&
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
  require_f32("layernorm_backward", {&dy, &x, &weight, &mean, &rstd, &dx, &dweight, &dbias});
  const int64_t c = weight.numel(), rows = x.numel() / c;
  require(rows * c == x.numel() && dy.numel() == x.numel() && dx.numel() == x.numel() && dweight.numel() == c &&
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

void CpuBackend::attention_forward(const Tensor& qkv, const AttentionGeometry& g, Tensor& out, Tensor& lse) {
  require_f32("attention_forward", {&qkv, &out, &lse});
  const int64_t B = g.batch, T = g.seq, H = g.heads, D = g.head_dim, C = g.channels();
  require(qkv.numel() == B * T * 3 * C && out.numel() == B * T * C && lse.numel() == B * H * T,
          "attention_forward", "shapes do not match the geometry");
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const float* base = qkv.f32();
  float *po = out.f32(), *pl = lse.f32();
#pragma omp parallel
  {
    std::vector<float> p(T);
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < B * H; ++bh) {
      const int64_t b = bh / H, h = bh % H;
      const float* q = base + b * T * 3 * C + h * D;
      for (int64_t i = 0; i < T; ++i)
        pl[bh * T + i] = attend_row(q + i * 3 * C, q + C, q + 2 * C, 3 * C, i + 1, D, scale, p.data(),
                                    po + (b * T + i) * C + h * D);
    }
  }
}

void CpuBackend::attention_backward(const Tensor& dout, const Tensor& qkv, const Tensor& out, const Tensor& lse,
                                    const AttentionGeometry& g, Tensor& dqkv) {
  require_f32("attention_backward", {&dout, &qkv, &out, &lse, &dqkv});
  const int64_t B = g.batch, T = g.seq, H = g.heads, D = g.head_dim, C = g.channels();
  require(qkv.numel() == B * T * 3 * C && dqkv.numel() == qkv.numel() && out.numel() == B * T * C &&
              dout.numel() == out.numel() && lse.numel() == B * H * T,
          "attention_backward", "shapes do not match the geometry");
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const float *pq = qkv.f32(), *pdo = dout.f32(), *po = out.f32(), *pl = lse.f32();
  float* pdq = dqkv.f32();
  const int64_t row = 3 * C;
#pragma omp parallel
  {
    std::vector<float> ds(T);
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < B * H; ++bh) {
      const int64_t b = bh / H, h = bh % H;
      const float* q = pq + b * T * row + h * D;
      const float *k = q + C, *v = q + 2 * C;
      float* dq = pdq + b * T * row + h * D;
      float *dk = dq + C, *dv = dq + 2 * C;
      for (int64_t t = 0; t < T; ++t) {  // this head's columns only: no other thread writes them
        std::fill(dq + t * row, dq + t * row + D, 0.0f);
        std::fill(dk + t * row, dk + t * row + D, 0.0f);
        std::fill(dv + t * row, dv + t * row + D, 0.0f);
      }
      for (int64_t i = 0; i < T; ++i) {
        const float* qi = q + i * row;
        const float* doi = pdo + (b * T + i) * C + h * D;
        const float di = dot(doi, po + (b * T + i) * C + h * D, D);  // sum_j P_ij dP_ij
        const float l = pl[bh * T + i];
        for (int64_t j = 0; j <= i; ++j) {
          const float p = std::exp(scale * dot(qi, k + j * row, D) - l);
          const float dp = dot(doi, v + j * row, D);
          ds[j] = p * (dp - di);
          float* dvj = dv + j * row;
          for (int64_t e = 0; e < D; ++e) dvj[e] += p * doi[e];
        }
        float* dqi = dq + i * row;
        for (int64_t j = 0; j <= i; ++j) {
          const float s = scale * ds[j];
          const float* kj = k + j * row;
          float* dkj = dk + j * row;
          for (int64_t e = 0; e < D; ++e) {
            dqi[e] += s * kj[e];
            dkj[e] += s * qi[e];
          }
        }
      }
    }
  }
}

void CpuBackend::attention_decode(const Tensor& qkv, int64_t pos, const AttentionGeometry& g, Tensor& cache,
                                  Tensor& out) {
  require_f32("attention_decode", {&qkv, &cache, &out});
  const int64_t B = g.batch, n = g.seq, H = g.heads, D = g.head_dim, C = g.channels();
  const int64_t max_seq = cache.numel() / (B * 2 * C);
  require(qkv.numel() == B * n * 3 * C && out.numel() == B * n * C && cache.numel() == B * max_seq * 2 * C &&
              pos >= 0 && pos + n <= max_seq,
          "attention_decode", "shapes do not match the geometry or the cache is full");
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const float* pq = qkv.f32();
  float *pc = cache.f32(), *po = out.f32();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t r = 0; r < n; ++r)  // k and v of the new positions into the cache
      std::memcpy(pc + (b * max_seq + pos + r) * 2 * C, pq + (b * n + r) * 3 * C + C, 2 * C * sizeof(float));
#pragma omp parallel
  {
    std::vector<float> p(pos + n);
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < B * H; ++bh) {
      const int64_t b = bh / H, h = bh % H;
      const float* kc = pc + b * max_seq * 2 * C + h * D;
      for (int64_t r = 0; r < n; ++r)
        attend_row(pq + (b * n + r) * 3 * C + h * D, kc, kc + C, 2 * C, pos + r + 1, D, scale, p.data(),
                   po + (b * n + r) * C + h * D);
    }
  }
}

void CpuBackend::embedding_forward(const Tensor& ids, const Tensor& table, Tensor& y) {
  require(ids.dtype() == DType::kInt32, "embedding_forward", "ids must be int32");
  require_f32("embedding_forward", {&table, &y});
  const int64_t n = ids.numel(), d = table.dim(-1), v = table.numel() / d;
  require(y.numel() == n * d, "embedding_forward", "output size is not ids x dim");
  const int32_t* id = ids.data<int32_t>();
  const float* w = table.f32();
  float* py = y.f32();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    require(id[i] >= 0 && id[i] < v, "embedding_forward", "id out of range");
    std::memcpy(py + i * d, w + static_cast<int64_t>(id[i]) * d, d * sizeof(float));
  }
}

void CpuBackend::embedding_backward(const Tensor& ids, const Tensor& dy, Tensor& dtable) {
  require(ids.dtype() == DType::kInt32, "embedding_backward", "ids must be int32");
  require_f32("embedding_backward", {&dy, &dtable});
  const int64_t n = ids.numel(), d = dtable.dim(-1);
  require(dy.numel() == n * d, "embedding_backward", "gradient size is not ids x dim");
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
