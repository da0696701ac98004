// The bf16 launchers of the transformer kernels (LayerNorm, residual + LayerNorm,
// embedding, softmax cross-entropy, attention forward / backward / decode) against their
// fp32 twins on the same bf16-representable inputs: bf16 outputs are the fp32 outputs
// rounded once, fp32 outputs (statistics, lse, losses, master gradients) the same bits (see
// kernel_bf16_util.h). Shapes are small but cross every boundary the kernels have (rows
// past a 64-row chunk, columns past a warp, a vocabulary wide enough for a block per row,
// sequences past a 64-position tile, all three head-dim buckets). Skips without a GPU.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "kernel_bf16_util.h"
#include "kernels/attention.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/loss.h"
#include "kernels/norm.h"

namespace shardtrain {
namespace {

using testing::bf16_exact_uniform;
using testing::Bf16KernelTest;
using testing::DeviceBuffer;
using testing::expect_rounded;
using testing::expect_same_bits;
using testing::to_bf16;
using testing::widen;

TEST_F(Bf16KernelTest, LayerNormForwardAndBackward) {
  const int64_t rows = 70, c = 200;  // two 64-row chunks for dweight / dbias; c not a multiple of 32
  const auto x = bf16_exact_uniform(rows * c, 20, -3.0f, 3.0f), w = bf16_exact_uniform(c, 21, 0.5f, 1.5f);
  const auto b = bf16_exact_uniform(c, 22), dy = bf16_exact_uniform(rows * c, 23);
  DeviceBuffer<float> fx(x), fw(w), fb(b), fy(rows * c), fmean(rows), frstd(rows);
  DeviceBuffer<bf16> hx(to_bf16(x)), hw(to_bf16(w)), hb(to_bf16(b)), hy(rows * c);
  DeviceBuffer<float> hmean(rows), hrstd(rows);
  ASSERT_EQ(kernels::layernorm_forward(fx.get(), fw.get(), fb.get(), 1e-5f, rows, c, fy.get(), fmean.get(),
                                       frstd.get(), stream_),
            cudaSuccess);
  ASSERT_EQ(kernels::layernorm_forward(hx.get(), hw.get(), hb.get(), 1e-5f, rows, c, hy.get(), hmean.get(),
                                       hrstd.get(), stream_),
            cudaSuccess);
  expect_rounded(hy.download(), fy.download(), "layernorm y");
  expect_same_bits(hmean.download(), fmean.download(), "layernorm mean");
  expect_same_bits(hrstd.download(), frstd.download(), "layernorm rstd");

  const auto dw0 = testing::random_uniform(c, -1.0f, 1.0f, 24), db0 = testing::random_uniform(c, -1.0f, 1.0f, 25);
  DeviceBuffer<float> fdy(dy), fdx(rows * c), fdw(dw0), fdb(db0), hdw(dw0), hdb(db0);
  DeviceBuffer<bf16> hdy(to_bf16(dy)), hdx(rows * c);
  DeviceBuffer<char> workspace(kernels::layernorm_backward_workspace_bytes(rows, c));
  ASSERT_EQ(kernels::layernorm_backward(fdy.get(), fx.get(), fw.get(), fmean.get(), frstd.get(), rows, c,
                                        workspace.get(), fdx.get(), fdw.get(), fdb.get(), stream_),
            cudaSuccess);
  ASSERT_EQ(kernels::layernorm_backward(hdy.get(), hx.get(), hw.get(), hmean.get(), hrstd.get(), rows, c,
                                        workspace.get(), hdx.get(), hdw.get(), hdb.get(), stream_),
            cudaSuccess);
  expect_rounded(hdx.download(), fdx.download(), "layernorm dx");
  expect_same_bits(hdw.download(), fdw.download(), "layernorm dweight");
  expect_same_bits(hdb.download(), fdb.download(), "layernorm dbias");
}

// The fused residual add + LayerNorm in bf16: the bits of the bf16 add followed by the
// bf16 LayerNorm (sum rounded once, the statistics of that rounded sum), and so y is the
// fp32 LayerNorm of the widened bf16 sum rounded once.
TEST_F(Bf16KernelTest, AddLayerNormForwardIsAddThenLayerNorm) {
  const int64_t rows = 70, c = 200;
  const auto a = bf16_exact_uniform(rows * c, 40, -3.0f, 3.0f), b = bf16_exact_uniform(rows * c, 41);
  const auto w = bf16_exact_uniform(c, 42, 0.5f, 1.5f), bias = bf16_exact_uniform(c, 43);
  DeviceBuffer<bf16> ha(to_bf16(a)), hb(to_bf16(b)), hw(to_bf16(w)), hbias(to_bf16(bias));
  DeviceBuffer<bf16> fused_sum(rows * c), fused_y(rows * c), plain_sum(rows * c), plain_y(rows * c);
  DeviceBuffer<float> fused_mean(rows), fused_rstd(rows), plain_mean(rows), plain_rstd(rows);
  ASSERT_EQ(kernels::add_layernorm_forward(ha.get(), hb.get(), hw.get(), hbias.get(), 1e-5f, rows, c,
                                           fused_sum.get(), fused_y.get(), fused_mean.get(), fused_rstd.get(), stream_),
            cudaSuccess);
  ASSERT_EQ(kernels::add(ha.get(), hb.get(), plain_sum.get(), rows * c, stream_), cudaSuccess);
  ASSERT_EQ(kernels::layernorm_forward(plain_sum.get(), hw.get(), hbias.get(), 1e-5f, rows, c, plain_y.get(),
                                       plain_mean.get(), plain_rstd.get(), stream_),
            cudaSuccess);
  const auto sum = widen(fused_sum.download());
  expect_same_bits(sum, widen(plain_sum.download()), "sum");
  expect_same_bits(widen(fused_y.download()), widen(plain_y.download()), "y");
  expect_same_bits(fused_mean.download(), plain_mean.download(), "mean");
  expect_same_bits(fused_rstd.download(), plain_rstd.download(), "rstd");

  DeviceBuffer<float> fsum(sum), fw(w), fbias(bias), fy(rows * c), fmean(rows), frstd(rows);
  ASSERT_EQ(kernels::layernorm_forward(fsum.get(), fw.get(), fbias.get(), 1e-5f, rows, c, fy.get(), fmean.get(),
                                       frstd.get(), stream_),
            cudaSuccess);
  expect_rounded(fused_y.download(), fy.download(), "y vs fp32");
  expect_same_bits(fused_mean.download(), fmean.download(), "mean vs fp32");

  // n == 0 launches nothing and reports success.
  EXPECT_EQ(kernels::add_layernorm_forward(ha.get(), hb.get(), hw.get(), hbias.get(), 1e-5f, 0, c, fused_sum.get(),
                                           fused_y.get(), fused_mean.get(), fused_rstd.get(), stream_),
            cudaSuccess);
}

TEST_F(Bf16KernelTest, EmbeddingForwardCopiesAndBackwardAccumulatesIntoFp32) {
  const int64_t vocab = 50, dim = 70, n = 300;
  std::vector<int32_t> ids(n);
  for (int64_t i = 0; i < n; ++i) ids[i] = static_cast<int32_t>((i * i) % 13);  // frequent repeats
  ids[5] = -1;                                                                  // out of range: NaN row,
  ids[9] = static_cast<int32_t>(vocab);                                         // skipped in backward
  const auto table = bf16_exact_uniform(vocab * dim, 30), dy = bf16_exact_uniform(n * dim, 31);
  DeviceBuffer<int32_t> d_ids(ids);
  DeviceBuffer<float> ftable(table), fy(n * dim);
  DeviceBuffer<bf16> htable(to_bf16(table)), hy(n * dim);
  ASSERT_EQ(kernels::embedding_forward(d_ids.get(), n, ftable.get(), vocab, dim, fy.get(), stream_), cudaSuccess);
  ASSERT_EQ(kernels::embedding_forward(d_ids.get(), n, htable.get(), vocab, dim, hy.get(), stream_), cudaSuccess);
  expect_rounded(hy.download(), fy.download(), "embedding forward");

  size_t bytes = 0;
  ASSERT_EQ(kernels::embedding_backward_workspace_bytes(n, vocab, &bytes), cudaSuccess);
  DeviceBuffer<char> workspace(bytes);
  const auto dtable0 = testing::random_uniform(vocab * dim, -1.0f, 1.0f, 32);
  DeviceBuffer<float> fdy(dy), fdtable(dtable0), hdtable(dtable0);
  DeviceBuffer<bf16> hdy(to_bf16(dy));
  ASSERT_EQ(kernels::embedding_backward(d_ids.get(), n, fdy.get(), vocab, dim, workspace.get(), bytes,
                                        fdtable.get(), stream_),
            cudaSuccess);
  ASSERT_EQ(kernels::embedding_backward(d_ids.get(), n, hdy.get(), vocab, dim, workspace.get(), bytes,
                                        hdtable.get(), stream_),
            cudaSuccess);
  expect_same_bits(hdtable.download(), fdtable.download(), "embedding backward");
}

TEST_F(Bf16KernelTest, SoftmaxCrossEntropyAndCountCorrect) {
  // A warp per row (10 classes) and a block per row (1500 classes), each with padding.
  using Shape = std::tuple<int64_t, int64_t, int64_t>;  // rows, classes, row stride
  for (const auto& [n, c, ld] : {Shape{33, 10, 16}, Shape{5, 1500, 1536}}) {
    const std::string what = "c=" + std::to_string(c);
    auto logits = bf16_exact_uniform(n * ld, static_cast<uint32_t>(40 + c), -6.0f, 6.0f);
    for (int64_t r = 0; r < n; r += 4) logits[r * ld + 1] = logits[r * ld];  // tied maxima for the count
    std::vector<int32_t> labels(n);
    for (int64_t r = 0; r < n; ++r) labels[r] = static_cast<int32_t>((r * 7) % c);
    DeviceBuffer<int32_t> d_labels(labels);
    DeviceBuffer<float> flog(logits), fstats(2 * n), floss(n), fd(n * ld), hstats(2 * n), hloss(n);
    DeviceBuffer<bf16> hlog(to_bf16(logits)), hd(n * ld);
    ASSERT_EQ(kernels::softmax_xent_forward(flog.get(), ld, d_labels.get(), n, c, fstats.get(), floss.get(), stream_),
              cudaSuccess);
    ASSERT_EQ(kernels::softmax_xent_forward(hlog.get(), ld, d_labels.get(), n, c, hstats.get(), hloss.get(), stream_),
              cudaSuccess);
    expect_same_bits(hstats.download(), fstats.download(), "xent stats " + what);
    expect_same_bits(hloss.download(), floss.download(), "xent losses " + what);

    const float scale = 1.0f / static_cast<float>(n);
    ASSERT_EQ(kernels::softmax_xent_backward(flog.get(), ld, fstats.get(), d_labels.get(), n, c, scale, fd.get(),
                                             stream_),
              cudaSuccess);
    ASSERT_EQ(kernels::softmax_xent_backward(hlog.get(), ld, hstats.get(), d_labels.get(), n, c, scale, hd.get(),
                                             stream_),
              cudaSuccess);
    const auto dref = fd.download();
    expect_rounded(hd.download(), dref, "xent dlogits " + what);

    DeviceBuffer<unsigned long long> fcount(1), hcount(1);
    ASSERT_EQ(kernels::count_correct(flog.get(), ld, d_labels.get(), n, c, fcount.get(), stream_), cudaSuccess);
    ASSERT_EQ(kernels::count_correct(hlog.get(), ld, d_labels.get(), n, c, hcount.get(), stream_), cudaSuccess);
    EXPECT_EQ(hcount.download(), fcount.download()) << "count_correct " << what;

    // In place over the logits (the count read them above, before they are overwritten).
    ASSERT_EQ(kernels::softmax_xent_backward(hlog.get(), ld, hstats.get(), d_labels.get(), n, c, scale, hlog.get(),
                                             stream_),
              cudaSuccess);
    expect_rounded(hlog.download(), dref, "xent dlogits in place " + what);
  }
}

// Forward, backward and decoding for one geometry; head_dim picks the bucket.
void check_attention(cudaStream_t stream, const AttentionGeometry& g, uint32_t seed) {
  const std::string what = "T=" + std::to_string(g.seq) + " D=" + std::to_string(g.head_dim);
  const int64_t C = g.channels(), qkv_n = g.batch * g.seq * 3 * C, out_n = g.batch * g.seq * C;
  const int64_t lse_n = g.batch * g.heads * g.seq;
  const auto qkv = bf16_exact_uniform(qkv_n, seed, -2.0f, 2.0f), dout = bf16_exact_uniform(out_n, seed + 1);
  DeviceBuffer<float> fqkv(qkv), fout(out_n), flse(lse_n), hlse(lse_n);
  DeviceBuffer<bf16> hqkv(to_bf16(qkv)), hout(out_n);
  ASSERT_EQ(kernels::attention_forward(fqkv.get(), g, fout.get(), flse.get(), stream), cudaSuccess) << what;
  ASSERT_EQ(kernels::attention_forward(hqkv.get(), g, hout.get(), hlse.get(), stream), cudaSuccess) << what;
  const auto out_bf16 = hout.download();
  expect_rounded(out_bf16, fout.download(), "attention out " + what);
  expect_same_bits(hlse.download(), flse.download(), "attention lse " + what);

  // Backward from the bf16 forward's out: the fp32 launcher gets the same values widened.
  fout.upload(widen(out_bf16));
  DeviceBuffer<float> fdout(dout), fdqkv(qkv_n);
  DeviceBuffer<bf16> hdout(to_bf16(dout)), hdqkv(qkv_n);
  DeviceBuffer<char> workspace(kernels::attention_backward_workspace_bytes(g));
  ASSERT_EQ(kernels::attention_backward(fdout.get(), fqkv.get(), fout.get(), flse.get(), g, workspace.get(),
                                        fdqkv.get(), stream),
            cudaSuccess)
      << what;
  ASSERT_EQ(kernels::attention_backward(hdout.get(), hqkv.get(), hout.get(), hlse.get(), g, workspace.get(),
                                        hdqkv.get(), stream),
            cudaSuccess)
      << what;
  expect_rounded(hdqkv.download(), fdqkv.download(), "attention dqkv " + what);

  // Decoding: the first seq - 2 positions in one call, then one position at a time, into a
  // cache one row longer than needed. Each call's qkv rows are the sequence's rows at
  // those positions.
  const int64_t max_seq = g.seq + 1, cache_n = g.batch * max_seq * 2 * C;
  DeviceBuffer<float> fcache(std::vector<float>(cache_n, 0.0f));
  DeviceBuffer<bf16> hcache(to_bf16(std::vector<float>(cache_n, 0.0f)));
  for (int64_t pos = 0; pos < g.seq;) {
    const int64_t step = pos == 0 ? g.seq - 2 : 1;
    const AttentionGeometry gs{g.batch, step, g.heads, g.head_dim};
    std::vector<float> rows;
    for (int64_t b = 0; b < g.batch; ++b)
      rows.insert(rows.end(), qkv.begin() + (b * g.seq + pos) * 3 * C, qkv.begin() + (b * g.seq + pos + step) * 3 * C);
    DeviceBuffer<float> frows(rows), fo(g.batch * step * C);
    DeviceBuffer<bf16> hrows(to_bf16(rows)), ho(g.batch * step * C);
    ASSERT_EQ(kernels::attention_decode(frows.get(), pos, max_seq, gs, fcache.get(), fo.get(), stream), cudaSuccess);
    ASSERT_EQ(kernels::attention_decode(hrows.get(), pos, max_seq, gs, hcache.get(), ho.get(), stream), cudaSuccess);
    expect_rounded(ho.download(), fo.download(), "attention decode out pos=" + std::to_string(pos) + " " + what);
    pos += step;
  }
  expect_rounded(hcache.download(), fcache.download(), "attention decode cache " + what);
}

TEST_F(Bf16KernelTest, AttentionForwardBackwardAndDecodeInEveryHeadDimBucket) {
  check_attention(stream_, AttentionGeometry{2, 100, 3, 24}, 50);  // bucket 32, two tiles
  check_attention(stream_, AttentionGeometry{1, 130, 2, 64}, 60);  // bucket 64, three tiles
  check_attention(stream_, AttentionGeometry{2, 70, 2, 80}, 70);   // bucket 128, padded head dim
}

}  // namespace
}  // namespace shardtrain
