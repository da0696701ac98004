// CpuBackend causal attention (forward, backward, KV-cached decode) against explicit
// per-head loops in double, and bitwise independence from the thread count.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "host_tensors.h"
#include "test_random.h"

namespace shardtrain {
namespace {

using testing::random_uniform;
using testing::to_host;
using testing::from_host;

// Naive causal attention in double over qkv [B, T, 3C]: every score, softmax and sum
// written out. out [B, T, C], lse [B, H, T]; with `dout`, also dqkv [B, T, 3C].
struct NaiveAttention {
  std::vector<double> out, lse, dqkv;
};

NaiveAttention naive_attention(const std::vector<float>& qkv, const AttentionGeometry& g,
                               const std::vector<float>* dout = nullptr) {
  const int64_t B = g.batch, T = g.seq, H = g.heads, D = g.head_dim, C = g.channels();
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  NaiveAttention r;
  r.out.assign(B * T * C, 0.0);
  r.lse.assign(B * H * T, 0.0);
  r.dqkv.assign(B * T * 3 * C, 0.0);
  auto q = [&](int64_t b, int64_t t, int64_t h, int64_t e) { return qkv[(b * T + t) * 3 * C + h * D + e]; };
  auto k = [&](int64_t b, int64_t t, int64_t h, int64_t e) { return qkv[(b * T + t) * 3 * C + C + h * D + e]; };
  auto v = [&](int64_t b, int64_t t, int64_t h, int64_t e) { return qkv[(b * T + t) * 3 * C + 2 * C + h * D + e]; };
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < T; ++i) {
        std::vector<double> s(i + 1), p(i + 1);
        double mx = -INFINITY;
        for (int64_t j = 0; j <= i; ++j) {  // keys after i are masked out
          double dot = 0;
          for (int64_t e = 0; e < D; ++e) dot += static_cast<double>(q(b, i, h, e)) * k(b, j, h, e);
          s[j] = dot * scale;
          mx = std::max(mx, s[j]);
        }
        double z = 0;
        for (int64_t j = 0; j <= i; ++j) z += std::exp(s[j] - mx);
        const double lse = mx + std::log(z);
        r.lse[(b * H + h) * T + i] = lse;
        for (int64_t j = 0; j <= i; ++j) p[j] = std::exp(s[j] - lse);
        for (int64_t e = 0; e < D; ++e) {
          double o = 0;
          for (int64_t j = 0; j <= i; ++j) o += p[j] * v(b, j, h, e);
          r.out[(b * T + i) * C + h * D + e] = o;
        }
        if (!dout) continue;
        // out_i = sum_j p_j v_j, p = softmax(s): dv_j += p_j do_i, dp_j = do_i . v_j,
        // ds_j = p_j (dp_j - sum_l p_l dp_l), dq_i += scale ds_j k_j, dk_j += scale ds_j q_i.
        auto d_o = [&](int64_t e) { return static_cast<double>((*dout)[(b * T + i) * C + h * D + e]); };
        std::vector<double> dp(i + 1);
        double pdp = 0;
        for (int64_t j = 0; j <= i; ++j) {
          dp[j] = 0;
          for (int64_t e = 0; e < D; ++e) dp[j] += d_o(e) * v(b, j, h, e);
          pdp += p[j] * dp[j];
        }
        for (int64_t j = 0; j <= i; ++j) {
          const double ds = p[j] * (dp[j] - pdp);
          for (int64_t e = 0; e < D; ++e) {
            r.dqkv[(b * T + i) * 3 * C + h * D + e] += scale * ds * k(b, j, h, e);
            r.dqkv[(b * T + j) * 3 * C + C + h * D + e] += scale * ds * q(b, i, h, e);
            r.dqkv[(b * T + j) * 3 * C + 2 * C + h * D + e] += p[j] * d_o(e);
          }
        }
      }
  return r;
}

void expect_close(const std::vector<float>& got, const std::vector<double>& want, double tol, const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], tol * (1.0 + std::fabs(want[i]))) << what << "[" << i << "]";
}

// Several geometries: one head, many heads, T = 1 (a single key), T larger than D.
const AttentionGeometry kGeometries[] = {{1, 1, 1, 4}, {2, 5, 3, 4}, {1, 9, 2, 2}, {3, 4, 1, 8}, {2, 1, 4, 3}};

struct AttentionRun {
  std::vector<float> out, lse, dqkv;
};

// Forward then backward on `be`; scores are spread (|q.k| up to ~2.5 sqrt(D)) so the
// softmax is far from uniform.
AttentionRun run_attention(Backend& be, const AttentionGeometry& g, const std::vector<float>& qkv,
                           const std::vector<float>& dout) {
  const int64_t B = g.batch, T = g.seq, C = g.channels();
  Tensor x = from_host(be, {B, T, 3 * C}, qkv), out = be.alloc({B, T, C}, DType::kFloat32);
  Tensor lse = be.alloc({B, g.heads, T}, DType::kFloat32), dx = be.alloc({B, T, 3 * C}, DType::kFloat32);
  be.fill(dx, 123.0f);  // overwritten, not accumulated
  be.attention_forward(x, g, out, lse);
  Tensor dy = from_host(be, {B, T, C}, dout);
  be.attention_backward(dy, x, out, lse, g, dx);
  return {to_host(be, out), to_host(be, lse), to_host(be, dx)};
}

TEST(CpuAttention, ForwardAndBackwardMatchNaiveLoops) {
  CpuBackend be(1);
  uint32_t seed = 1;
  for (const AttentionGeometry& g : kGeometries) {
    SCOPED_TRACE("B=" + std::to_string(g.batch) + " T=" + std::to_string(g.seq) + " H=" + std::to_string(g.heads) +
                 " D=" + std::to_string(g.head_dim));
    const int64_t C = g.channels();
    auto qkv = random_uniform(g.batch * g.seq * 3 * C, -1.5f, 1.5f, seed++);
    auto dout = random_uniform(g.batch * g.seq * C, -1.0f, 1.0f, seed++);
    AttentionRun got = run_attention(be, g, qkv, dout);
    NaiveAttention want = naive_attention(qkv, g, &dout);
    expect_close(got.out, want.out, 1e-5, "out");
    expect_close(got.lse, want.lse, 1e-5, "lse");
    expect_close(got.dqkv, want.dqkv, 1e-5, "dqkv");
  }
}

TEST(CpuAttention, SingleKeyOutputIsItsValue) {
  // T = 1: the only key gets probability 1, so out = v exactly and lse = the one score.
  CpuBackend be(1);
  const AttentionGeometry g{2, 1, 2, 3};
  auto qkv = random_uniform(2 * 3 * 6, -1.0f, 1.0f, 9);
  AttentionRun r = run_attention(be, g, qkv, std::vector<float>(2 * 6, 1.0f));
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t c = 0; c < 6; ++c) EXPECT_FLOAT_EQ(r.out[b * 6 + c], qkv[b * 18 + 12 + c]);
  // q and k get no gradient: a softmax over one score is constant.
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t c = 0; c < 12; ++c) EXPECT_NEAR(r.dqkv[b * 18 + c], 0.0f, 1e-7);
}

TEST(CpuAttention, FutureKeysDoNotChangeEarlierOutputs) {
  CpuBackend be(1);
  const AttentionGeometry g{1, 6, 2, 4};
  const int64_t C = 8;
  auto qkv = random_uniform(6 * 3 * C, -1.0f, 1.0f, 4);
  auto dout = random_uniform(6 * C, -1.0f, 1.0f, 5);
  AttentionRun a = run_attention(be, g, qkv, dout);
  for (int64_t c = 0; c < 3 * C; ++c) qkv[5 * 3 * C + c] += 10.0f;  // the last position only
  AttentionRun b = run_attention(be, g, qkv, dout);
  for (int64_t i = 0; i < 5 * C; ++i) EXPECT_EQ(a.out[i], b.out[i]) << i;
  bool last_changed = false;
  for (int64_t c = 0; c < C; ++c) last_changed = last_changed || a.out[5 * C + c] != b.out[5 * C + c];
  EXPECT_TRUE(last_changed);
}

TEST(CpuAttention, BitwiseIndependentOfThreadCount) {
  const AttentionGeometry g{2, 7, 3, 4};
  auto qkv = random_uniform(2 * 7 * 36, -1.5f, 1.5f, 31);
  auto dout = random_uniform(2 * 7 * 12, -1.0f, 1.0f, 32);
  AttentionRun one, two;
  {
    CpuBackend be(1);
    one = run_attention(be, g, qkv, dout);
  }
  {
    CpuBackend be(2);  // the constructor sets the OpenMP thread count for what follows
    two = run_attention(be, g, qkv, dout);
  }
  EXPECT_EQ(one.out, two.out);
  EXPECT_EQ(one.lse, two.lse);
  EXPECT_EQ(one.dqkv, two.dqkv);
}

// Decoding in chunks: prefill `chunks[0]` positions, then the next chunks, each call
// attending over the cache. Returns out [B, T, C] assembled from the calls and the cache.
std::pair<std::vector<float>, std::vector<float>> decode_in_chunks(Backend& be, const AttentionGeometry& g,
                                                                   const std::vector<float>& qkv,
                                                                   const std::vector<int64_t>& chunks,
                                                                   int64_t max_seq) {
  const int64_t B = g.batch, C = g.channels();
  Tensor cache = be.alloc({B, max_seq, 2 * C}, DType::kFloat32);
  std::vector<float> out(B * g.seq * C);
  int64_t pos = 0;
  for (int64_t n : chunks) {
    std::vector<float> part(B * n * 3 * C);
    for (int64_t b = 0; b < B; ++b)
      std::copy(qkv.begin() + (b * g.seq + pos) * 3 * C, qkv.begin() + (b * g.seq + pos + n) * 3 * C,
                part.begin() + b * n * 3 * C);
    Tensor x = from_host(be, {B, n, 3 * C}, part), y = be.alloc({B, n, C}, DType::kFloat32);
    be.attention_decode(x, pos, AttentionGeometry{B, n, g.heads, g.head_dim}, cache, y);
    std::vector<float> yh = to_host(be, y);
    for (int64_t b = 0; b < B; ++b)
      std::copy(yh.begin() + b * n * C, yh.begin() + (b + 1) * n * C, out.begin() + (b * g.seq + pos) * C);
    pos += n;
  }
  return {out, to_host(be, cache)};
}

TEST(CpuAttention, DecodeMatchesFullForwardAndCachesKeysAndValues) {
  CpuBackend be(1);
  const AttentionGeometry g{2, 7, 2, 4};
  const int64_t B = 2, T = 7, C = 8, max_seq = 9;
  auto qkv = random_uniform(B * T * 3 * C, -1.5f, 1.5f, 41);
  AttentionRun full = run_attention(be, g, qkv, std::vector<float>(B * T * C, 0.0f));
  const std::vector<std::vector<int64_t>> schedules = {{1, 1, 1, 1, 1, 1, 1}, {3, 1, 1, 1, 1}, {7}, {2, 3, 1, 1}};
  for (const auto& chunks : schedules) {
    SCOPED_TRACE("first chunk " + std::to_string(chunks[0]) + " of " + std::to_string(chunks.size()));
    auto [out, cache] = decode_in_chunks(be, g, qkv, chunks, max_seq);
    for (size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], full.out[i], 1e-5) << i;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < max_seq; ++t)
        for (int64_t c = 0; c < 2 * C; ++c) {
          const float want = t < T ? qkv[(b * T + t) * 3 * C + C + c] : 0.0f;  // k then v; unused rows untouched
          ASSERT_EQ(cache[(b * max_seq + t) * 2 * C + c], want) << "b=" << b << " t=" << t << " c=" << c;
        }
  }
}

TEST(CpuAttention, DecodeIsBitwiseIndependentOfThreadCount) {
  const AttentionGeometry g{2, 5, 2, 4};
  auto qkv = random_uniform(2 * 5 * 24, -1.5f, 1.5f, 51);
  std::vector<float> one, two;
  {
    CpuBackend be(1);
    one = decode_in_chunks(be, g, qkv, {2, 1, 2}, 5).first;
  }
  {
    CpuBackend be(2);
    two = decode_in_chunks(be, g, qkv, {2, 1, 2}, 5).first;
  }
  EXPECT_EQ(one, two);
}

}  // namespace
}  // namespace shardtrain
