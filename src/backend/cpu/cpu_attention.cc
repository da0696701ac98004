// CpuBackend: causal self-attention, the fp32 reference of kernels/attention*.cu.
//
// Training (forward and backward) works one (sequence, head) pair at a time with GEMMs on
// that head's strided q, k, v columns (OpenBLAS, single-threaded inside the pair's OpenMP
// task): scores S = scale Q K^T over [T, T], causal softmax row by row, O = P V. The CPU
// keeps S for the pair being computed (T^2 floats per thread) because a GEMM is many
// times faster here than T dot products per row; the GPU kernels are the ones that never
// hold a [T, T] matrix. Forward saves each row's log-sum-exp; backward recomputes
// P = exp(S - lse) from it, as flash attention does:
//   dV = P^T dO,  dP = dO V^T,  dS = P (dP - rowsum(dO * O)),  dQ = scale dS K,
//   dK = scale dS^T Q.
// Determinism: pairs own disjoint columns of out, lse and dqkv, and every sum has a fixed
// order (a single-threaded GEMM, a row loop), whatever the thread count.
//
// Decoding (attention_decode) attends a few new queries over the KV cache with one dot
// product per cached position: there, n is small and the cache is the work.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_require.h"

namespace shardtrain {
namespace {

// C[m, n] = alpha * A[m, k] B^T (B stored [n, k]) or A B (B stored [k, n]); row-major with
// leading dimensions, so a head's columns of qkv are used where they lie.
void gemm_ld(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
             const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b,
              static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

// Row i of the [T, T] scores, in place: softmax over j <= i, zeros after. Returns the
// log-sum-exp of the row's causal part.
float causal_softmax_row(float* s, int64_t i, int64_t t) {
  float mx = s[0];
  for (int64_t j = 1; j <= i; ++j) mx = std::max(mx, s[j]);
  double denom = 0.0;
  for (int64_t j = 0; j <= i; ++j) {
    s[j] = std::exp(s[j] - mx);
    denom += s[j];
  }
  const float inv = static_cast<float>(1.0 / denom);
  for (int64_t j = 0; j <= i; ++j) s[j] *= inv;
  std::fill(s + i + 1, s + t, 0.0f);
  return mx + static_cast<float>(std::log(denom));
}

float dot(const float* a, const float* b, int64_t n) {
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// One query over n_keys cached keys (key j at k + j * stride, v likewise): o = softmax v.
void attend_row(const float* q, const float* k, const float* v, int64_t stride, int64_t n_keys, int64_t d,
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
}

}  // namespace

void CpuBackend::attention_forward(const Tensor& qkv, const AttentionGeometry& g, Tensor& out, Tensor& lse) {
  cpu_require_f32("attention_forward", {&qkv, &out, &lse});
  const int64_t B = g.batch, T = g.seq, H = g.heads, D = g.head_dim, C = g.channels();
  cpu_require(qkv.numel() == B * T * 3 * C && out.numel() == B * T * C && lse.numel() == B * H * T,
              "attention_forward", "shapes do not match the geometry");
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const float* base = qkv.f32();
  float *po = out.f32(), *pl = lse.f32();
#pragma omp parallel
  {
    std::vector<float> s(T * T);
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < B * H; ++bh) {
      const int64_t b = bh / H, h = bh % H;
      const float* q = base + b * T * 3 * C + h * D;
      gemm_ld(false, true, T, T, D, scale, q, 3 * C, q + C, 3 * C, 0.0f, s.data(), T);
      for (int64_t i = 0; i < T; ++i) pl[bh * T + i] = causal_softmax_row(s.data() + i * T, i, T);
      gemm_ld(false, false, T, D, T, 1.0f, s.data(), T, q + 2 * C, 3 * C, 0.0f, po + b * T * C + h * D, C);
    }
  }
}

void CpuBackend::attention_backward(const Tensor& dout, const Tensor& qkv, const Tensor& out, const Tensor& lse,
                                    const AttentionGeometry& g, Tensor& dqkv) {
  cpu_require_f32("attention_backward", {&dout, &qkv, &out, &lse, &dqkv});
  const int64_t B = g.batch, T = g.seq, H = g.heads, D = g.head_dim, C = g.channels();
  cpu_require(qkv.numel() == B * T * 3 * C && dqkv.numel() == qkv.numel() && out.numel() == B * T * C &&
                  dout.numel() == out.numel() && lse.numel() == B * H * T,
              "attention_backward", "shapes do not match the geometry");
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const float *pq = qkv.f32(), *pdo = dout.f32(), *po = out.f32(), *pl = lse.f32();
  float* pdq = dqkv.f32();
  const int64_t row = 3 * C;
#pragma omp parallel
  {
    std::vector<float> p(T * T), dp(T * T);
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < B * H; ++bh) {
      const int64_t b = bh / H, h = bh % H;
      const float* q = pq + b * T * row + h * D;
      const float *k = q + C, *v = q + 2 * C;
      const float* dob = pdo + b * T * C + h * D;  // this head's dO, row stride C
      const float* ob = po + b * T * C + h * D;
      float* dq = pdq + b * T * row + h * D;
      // P = exp(scale Q K^T - lse), causal.
      gemm_ld(false, true, T, T, D, scale, q, row, k, row, 0.0f, p.data(), T);
      for (int64_t i = 0; i < T; ++i) {
        float* pi = p.data() + i * T;
        const float l = pl[bh * T + i];
        for (int64_t j = 0; j <= i; ++j) pi[j] = std::exp(pi[j] - l);
        std::fill(pi + i + 1, pi + T, 0.0f);
      }
      gemm_ld(true, false, T, D, T, 1.0f, p.data(), T, dob, C, 0.0f, dq + 2 * C, row);  // dV = P^T dO
      gemm_ld(false, true, T, T, D, 1.0f, dob, C, v, row, 0.0f, dp.data(), T);         // dP = dO V^T
      for (int64_t i = 0; i < T; ++i) {  // dS = P (dP - D_i), D_i = dO_i . O_i
        const float di = dot(dob + i * C, ob + i * C, D);
        float *pi = p.data() + i * T, *dpi = dp.data() + i * T;
        for (int64_t j = 0; j <= i; ++j) dpi[j] = pi[j] * (dpi[j] - di);
        std::fill(dpi + i + 1, dpi + T, 0.0f);
      }
      gemm_ld(false, false, T, D, T, scale, dp.data(), T, k, row, 0.0f, dq, row);      // dQ = scale dS K
      gemm_ld(true, false, T, D, T, scale, dp.data(), T, q, row, 0.0f, dq + C, row);   // dK = scale dS^T Q
    }
  }
}

void CpuBackend::attention_decode(const Tensor& qkv, int64_t pos, const AttentionGeometry& g, Tensor& cache,
                                  Tensor& out) {
  cpu_require_f32("attention_decode", {&qkv, &cache, &out});
  const int64_t B = g.batch, n = g.seq, H = g.heads, D = g.head_dim, C = g.channels();
  const int64_t max_seq = cache.numel() / (B * 2 * C);
  cpu_require(qkv.numel() == B * n * 3 * C && out.numel() == B * n * C && cache.numel() == B * max_seq * 2 * C &&
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

}  // namespace shardtrain
