// TokenSource through the sharded loader: windows of seq_len + 1 tokens, targets shifted
// by one, each rank's slices disjoint and covering every global batch, the same batches
// for every world size and across a resume (seek), and out-of-vocabulary ids named.
#include "data/token_source.h"

#include <gtest/gtest.h>

#include <set>

#include "data/loader.h"
#include "data_test_util.h"
#include "token_test_util.h"

namespace shardtrain {
namespace {

using testing::TempDir;
using testing::write_h5_ints;

constexpr int64_t kTokens = 1001, kSeq = 8;  // (1001 - 1) / 8 = 125 windows
int64_t token_at(int64_t i) { return (i * 7 + 3) % 251; }

class TokenLoader : public ::testing::Test {
 protected:
  void SetUp() override {
    std::vector<int64_t> t(kTokens);
    for (int64_t i = 0; i < kTokens; ++i) t[i] = token_at(i);
    write_h5_ints(path_, "/train/tokens", H5T_STD_U16LE, {kTokens}, t, 64);
  }

  std::unique_ptr<ShardedLoader> open(int rank, int world, int64_t batch = 12, int64_t vocab = 256) {
    TokenSourceOptions t;
    t.path = path_;
    t.split = "train";
    t.seq_len = kSeq;
    t.vocab_size = vocab;
    auto src = TokenSource::open(t);
    EXPECT_TRUE(src.ok()) << src.status().ToString();
    LoaderOptions o;
    o.path = path_;
    o.split = "train";
    o.global_batch = batch;
    o.rank = rank;
    o.world_size = world;
    o.seed = 99;
    auto l = ShardedLoader::open(o, std::move(src).value());
    EXPECT_TRUE(l.ok()) << l.status().ToString();
    return std::move(l).value();
  }

  TempDir dir_;
  std::string path_ = dir_.file("t.h5");
};

const int32_t* field(const Batch& b, const char* name) { return b.field(name)->data<int32_t>(); }

TEST_F(TokenLoader, SamplesAreWindowsWithShiftedTargets) {
  auto l = open(0, 1);
  EXPECT_EQ(l->num_samples(), 125);
  EXPECT_EQ(l->batches_per_epoch(), 10);  // drop_last: 125 / 12
  ASSERT_EQ(l->fields().size(), 2u);
  EXPECT_EQ(l->fields()[0].name, "tokens");
  EXPECT_EQ(l->fields()[0].shape, (Shape{kSeq}));
  EXPECT_EQ(l->fields()[1].name, "targets");
  auto b = l->next();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  for (int64_t k = 0; k < b->size; ++k)
    for (int64_t t = 0; t < kSeq; ++t) {
      const int64_t pos = b->samples[k] * kSeq + t;  // window w starts at token w * T
      EXPECT_EQ(field(*b, "tokens")[k * kSeq + t], token_at(pos));
      EXPECT_EQ(field(*b, "targets")[k * kSeq + t], token_at(pos + 1));
    }
}

TEST_F(TokenLoader, RanksSplitEveryGlobalBatchDisjointlyAndIdenticallyToOneRank) {
  for (int world : {2, 3, 4}) {
    auto whole = open(0, 1);
    std::vector<std::unique_ptr<ShardedLoader>> ranks;
    for (int r = 0; r < world; ++r) ranks.push_back(open(r, world));
    for (int step = 0; step < 15; ++step) {  // crosses an epoch boundary
      auto all = whole->next();
      ASSERT_TRUE(all.ok());
      std::vector<int64_t> joined;
      std::vector<int32_t> tokens;
      std::set<int64_t> seen;
      for (auto& l : ranks) {
        auto b = l->next();
        ASSERT_TRUE(b.ok());
        for (int64_t s : b->samples) EXPECT_TRUE(seen.insert(s).second) << "window " << s << " on two ranks";
        joined.insert(joined.end(), b->samples.begin(), b->samples.end());
        tokens.insert(tokens.end(), field(*b, "tokens"), field(*b, "tokens") + b->size * kSeq);
      }
      EXPECT_EQ(joined, all->samples) << "world " << world << " step " << step;
      EXPECT_EQ(tokens, std::vector<int32_t>(field(*all, "tokens"), field(*all, "tokens") + all->size * kSeq));
    }
  }
}

TEST_F(TokenLoader, SeekReproducesTheBatchesOfAStraightRun) {
  auto straight = open(1, 2);
  std::vector<std::vector<int64_t>> want;
  for (int i = 0; i < 14; ++i) want.push_back(straight->next()->samples);
  auto resumed = open(1, 2);
  ASSERT_TRUE(resumed->seek({1, 2}).ok());  // epoch 1, batch 2 = the 13th batch
  EXPECT_EQ(resumed->next()->samples, want[12]);
  EXPECT_EQ(resumed->next()->samples, want[13]);
}

TEST_F(TokenLoader, TokenOutsideTheVocabularyIsNamed) {
  auto l = open(0, 1, 125, /*vocab=*/200);  // token_at reaches 250
  auto b = l->next();
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find(path_), std::string::npos) << b.status().message();
  EXPECT_NE(b.status().message().find("/train/tokens["), std::string::npos) << b.status().message();
  EXPECT_NE(b.status().message().find("200"), std::string::npos) << b.status().message();
}

TEST_F(TokenLoader, SplitShorterThanOneWindowIsRefused) {
  TokenSourceOptions t;
  t.path = path_;
  t.split = "train";
  t.seq_len = kTokens;  // needs kTokens + 1
  t.vocab_size = 256;
  auto src = TokenSource::open(t);
  ASSERT_FALSE(src.ok());
  EXPECT_NE(src.status().message().find("fewer than one window"), std::string::npos) << src.status().message();
}

}  // namespace
}  // namespace shardtrain
