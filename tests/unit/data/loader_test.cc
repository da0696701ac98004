#include "data/loader.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "data/image_source.h"
#include "data/shuffle.h"
#include "data_test_util.h"

namespace shardtrain {
namespace {

using testing::synthetic_pixel;
using testing::TempDir;
using testing::write_synthetic_split;

constexpr int64_t kN = 103;  // prime: no batch size divides it

// A loader over the image split o.path:/o.split (10 classes, no normalisation).
StatusOr<std::unique_ptr<ShardedLoader>> open_images(const LoaderOptions& o) {
  H5SplitOptions h;
  h.path = o.path;
  h.split = o.split;
  ASSIGN_OR_RETURN(auto src, ImageSource::open(h));
  return ShardedLoader::open(o, std::move(src));
}

std::vector<int32_t> labels(const Batch& b) {
  const BatchTensor* f = b.field("labels");
  return f ? std::vector<int32_t>(f->data<int32_t>(), f->data<int32_t>() + b.size) : std::vector<int32_t>{};
}
std::vector<float> images(const Batch& b) {
  const BatchTensor* f = b.field("images");
  const size_t n = f ? f->bytes.size() / sizeof(float) : 0;
  return f ? std::vector<float>(f->data<float>(), f->data<float>() + n) : std::vector<float>{};
}

class DataLoader : public ::testing::Test {
 protected:
  void SetUp() override { write_synthetic_split(path_, "train", kN); }

  LoaderOptions options(int64_t global_batch, int rank = 0, int world = 1) const {
    LoaderOptions o;
    o.path = path_;
    o.split = "train";
    o.global_batch = global_batch;
    o.rank = rank;
    o.world_size = world;
    o.seed = 1234;
    return o;
  }

  static std::unique_ptr<ShardedLoader> open(const LoaderOptions& o) {
    auto l = open_images(o);
    EXPECT_TRUE(l.ok()) << l.status().ToString();
    return l.ok() ? std::move(l).value() : nullptr;
  }

  static Batch next(ShardedLoader& l) {
    auto b = l.next();
    EXPECT_TRUE(b.ok()) << b.status().ToString();
    return b.ok() ? std::move(b).value() : Batch{};
  }

  // Every row holds the sample its `samples` entry names.
  static void expect_content(const Batch& b) {
    ASSERT_EQ(b.samples.size(), size_t(b.size));
    const std::vector<int32_t> lb = labels(b);
    const std::vector<float> im = images(b);
    ASSERT_EQ(lb.size(), size_t(b.size));
    ASSERT_EQ(im.size(), size_t(b.size * 12));
    for (int64_t k = 0; k < b.size; ++k) {
      EXPECT_EQ(lb[k], b.samples[k] % 10);
      for (int p = 0; p < 12; ++p)
        ASSERT_EQ(im[k * 12 + p], synthetic_pixel(b.samples[k], p) / 255.0f);
    }
  }

  TempDir dir_;
  std::string path_ = dir_.file("d.h5");
};

TEST_F(DataLoader, ShuffledGlobalBatchesFollowThePermutation) {
  auto l = open(options(12));
  ASSERT_EQ(l->fields().size(), 2u);
  EXPECT_EQ(l->fields()[0].name, "images");
  EXPECT_EQ(l->fields()[0].shape, (Shape{1, 4, 3}));
  EXPECT_EQ(l->fields()[1].name, "labels");
  EXPECT_EQ(l->num_samples(), kN);
  EXPECT_EQ(l->batches_per_epoch(), 8);  // drop_last: 103 / 12
  for (int64_t e = 0; e < 2; ++e) {
    const std::vector<int64_t> perm = shuffle_permutation(kN, 1234, e);
    for (int64_t b = 0; b < 8; ++b) {
      Batch batch = next(*l);
      EXPECT_EQ(batch.epoch, e);
      EXPECT_EQ(batch.index, b);
      EXPECT_EQ(batch.global_size, 12);
      EXPECT_EQ(batch.samples, std::vector<int64_t>(perm.begin() + b * 12, perm.begin() + b * 12 + 12));
      expect_content(batch);
    }
  }
  EXPECT_EQ(l->position().epoch, 2);
  EXPECT_EQ(l->position().batch, 0);
}

// For world sizes 1..4 the ranks' slices are disjoint, contiguous in rank order and
// together exactly the world-size-1 global batch (so every world size trains on the same
// global batches). Includes uneven slices (global batch 10, drop_last=false).
TEST_F(DataLoader, RankSlicesPartitionEachGlobalBatch) {
  for (bool drop_last : {true, false}) {
    const int64_t g = drop_last ? 12 : 10;
    LoaderOptions base = options(g);
    base.drop_last = drop_last;
    auto single = open(base);
    const int64_t batches = single->batches_per_epoch() + 3;  // crosses an epoch boundary
    std::vector<Batch> global;
    for (int64_t b = 0; b < batches; ++b) global.push_back(next(*single));
    for (int w = 1; w <= 4; ++w) {
      std::vector<std::unique_ptr<ShardedLoader>> ranks;
      for (int r = 0; r < w; ++r) {
        LoaderOptions o = base;
        o.rank = r;
        o.world_size = w;
        ranks.push_back(open(o));
      }
      for (int64_t b = 0; b < batches; ++b) {
        std::vector<int64_t> joined;
        for (int r = 0; r < w; ++r) {
          Batch part = next(*ranks[r]);
          expect_content(part);
          EXPECT_EQ(part.global_size, global[b].global_size);
          EXPECT_EQ(part.sample_offset, int64_t(joined.size())) << "w=" << w << " r=" << r;
          if (drop_last) {
            EXPECT_EQ(part.size, g / w);
          }
          joined.insert(joined.end(), part.samples.begin(), part.samples.end());
        }
        EXPECT_EQ(joined, global[b].samples) << "world " << w << " batch " << b;
        std::sort(joined.begin(), joined.end());
        EXPECT_EQ(std::adjacent_find(joined.begin(), joined.end()), joined.end());
      }
    }
  }
}

// Evaluation: drop_last=false covers every sample exactly once per epoch across ranks,
// including the short last batch (103 = 10 * 10 + 3, so with 4 ranks one slice is empty).
TEST_F(DataLoader, EvalPassCoversEverySampleOnce) {
  for (bool shuffle : {false, true}) {
    for (int w : {1, 3, 4}) {
      std::vector<int> seen(kN, 0);
      for (int r = 0; r < w; ++r) {
        LoaderOptions o = options(10, r, w);
        o.drop_last = false;
        o.shuffle = shuffle;
        auto l = open(o);
        ASSERT_EQ(l->batches_per_epoch(), 11);
        for (int64_t b = 0; b < 11; ++b) {
          Batch batch = next(*l);
          EXPECT_EQ(batch.global_size, b == 10 ? 3 : 10);
          expect_content(batch);
          for (int64_t s : batch.samples) ++seen[s];
        }
        EXPECT_EQ(l->position().epoch, 1);
      }
      EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), kN) << "w=" << w;
    }
  }
}

TEST_F(DataLoader, PrefetchGivesIdenticalBatches) {
  LoaderOptions on = options(8, 1, 2), off = on;
  off.prefetch = false;
  auto a = open(on), b = open(off);
  for (int i = 0; i < 30; ++i) {  // 12 batches per epoch: crosses two epoch boundaries
    Batch x = next(*a), y = next(*b);
    EXPECT_EQ(x.epoch, y.epoch);
    EXPECT_EQ(x.index, y.index);
    EXPECT_EQ(x.samples, y.samples);
    EXPECT_EQ(labels(x), labels(y));
    EXPECT_EQ(images(x), images(y));
    EXPECT_EQ(a->position().batch, b->position().batch);
  }
}

TEST_F(DataLoader, SeekResumesTheSameBatches) {
  for (bool prefetch : {true, false}) {
    LoaderOptions o = options(8, 0, 2);
    o.prefetch = prefetch;
    auto a = open(o);
    for (int i = 0; i < 17; ++i) next(*a);
    const LoaderPosition pos = a->position();  // not counting the prefetched batch
    EXPECT_EQ(pos.epoch, 1);
    EXPECT_EQ(pos.batch, 5);
    std::vector<Batch> rest;
    for (int i = 0; i < 10; ++i) rest.push_back(next(*a));
    auto b = open(o);  // a fresh process resuming from a checkpoint
    ASSERT_TRUE(b->seek(pos).ok());
    for (int i = 0; i < 10; ++i) {
      Batch x = next(*b);
      EXPECT_EQ(x.samples, rest[i].samples);
      EXPECT_EQ(images(x), images(rest[i]));
    }
    // Seeking back drops the prefetched batch and replays.
    ASSERT_TRUE(a->seek(pos).ok());
    EXPECT_EQ(next(*a).samples, rest[0].samples);
  }
}

TEST_F(DataLoader, SeekOutOfRangeIsInvalidArgument) {
  auto l = open(options(12));
  EXPECT_EQ(l->seek({0, 8}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(l->seek({-1, 0}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(l->seek({0, -1}).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(l->seek({5, 7}).ok());
  EXPECT_EQ(next(*l).epoch, 5);
}

TEST_F(DataLoader, IndivisibleGlobalBatchIsRejected) {
  auto l = open_images(options(100, 0, 3));
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(l.status().message(), "data.global_batch (100) must be divisible by the world size (3)");
  LoaderOptions eval = options(100, 0, 3);
  eval.drop_last = false;  // evaluation allows uneven slices
  EXPECT_TRUE(open_images(eval).ok());
}

TEST_F(DataLoader, GlobalBatchLargerThanSplitIsRejectedForTraining) {
  auto l = open_images(options(104));
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(l.status().message().find("data.global_batch (104)"), std::string::npos);
}

TEST_F(DataLoader, EvalBatchLargerThanSplitIsOneShortBatch) {
  LoaderOptions eval = options(1000, 1, 2);
  eval.drop_last = false;
  eval.shuffle = false;
  eval.batch_field = "data.eval_batch";
  auto l = open_images(eval);
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  ASSERT_EQ((*l)->batches_per_epoch(), 1);
  auto b = (*l)->next();
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->global_size, (*l)->num_samples());
  EXPECT_EQ(b->size, (*l)->num_samples() - (*l)->num_samples() / 2);  // rank 1's half
  eval.global_batch = 0;
  auto bad = open_images(eval);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("data.eval_batch (0)"), std::string::npos);  // names its own field
}

TEST_F(DataLoader, MissingFileMentionsPrepareData) {
  LoaderOptions o = options(12);
  o.path = dir_.file("missing.h5");
  auto l = open_images(o);
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.status().code(), StatusCode::kNotFound);
  EXPECT_NE(l.status().message().find("./launch/prepare-data.sh"), std::string::npos);
}

// A bad label read on the prefetch thread surfaces from next() at the right batch, and
// the position stays on that batch.
TEST_F(DataLoader, PrefetchErrorSurfacesFromNext) {
  const std::string bad = dir_.file("bad.h5");
  std::vector<uint8_t> px(20 * 12, 0), lb(20, 1);
  lb[15] = 12;
  ASSERT_TRUE(h5_write_split(bad, "train", {20, 1, 4, 3}, px.data(), lb.data()).ok());
  for (bool prefetch : {true, false}) {
    LoaderOptions o = options(5);
    o.path = bad;
    o.shuffle = false;
    o.prefetch = prefetch;
    auto l = open(o);
    for (int i = 0; i < 3; ++i) next(*l);
    auto b = l->next();
    ASSERT_FALSE(b.ok());
    EXPECT_EQ(b.status().code(), StatusCode::kDataLoss);
    EXPECT_NE(b.status().message().find("/train/labels[15] = 12"), std::string::npos);
    EXPECT_EQ(l->position().batch, 3);
  }
}

}  // namespace
}  // namespace shardtrain
