// llm.c shards: the header checks, and import of one or several shards into a split.
#include "data/llmc_tokens.h"

#include <gtest/gtest.h>

#include "data/token_dataset.h"
#include "data_test_util.h"
#include "token_test_util.h"

namespace shardtrain {
namespace {

using testing::gpt2_ids;
using testing::llmc_shard_bytes;
using testing::TempDir;
using testing::write_file;

TEST(LlmcShard, OpensAValidShard) {
  TempDir dir;
  const std::string path = dir.file("s.bin");
  write_file(path, llmc_shard_bytes(gpt2_ids(10, 1)), false);
  auto s = llmc_shard_open(path);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->num_tokens, 10);
  EXPECT_EQ(s->file->offset(), kLlmcHeaderBytes);
}

TEST(LlmcShard, EachDefectIsNamed) {
  TempDir dir;
  const std::string p = dir.file("s.bin");
  struct Case {
    std::vector<uint8_t> bytes;
    StatusCode code;
    std::string message;
  };
  std::vector<uint8_t> truncated = llmc_shard_bytes(gpt2_ids(10, 1));
  truncated.resize(truncated.size() - 3);
  std::vector<uint8_t> trailing = llmc_shard_bytes(gpt2_ids(10, 1));
  trailing.push_back(0);
  const std::vector<Case> cases = {
      {llmc_shard_bytes(gpt2_ids(4, 1), 12345), StatusCode::kInvalidArgument,
       p + ": not an llm.c token shard (magic 12345, expected 20240520)"},
      {llmc_shard_bytes(gpt2_ids(4, 1), 20240520, 2), StatusCode::kInvalidArgument,
       p + ": llm.c shard version 2 is not supported (expected 1: uint16 GPT-2 tokens)"},
      {truncated, StatusCode::kDataLoss,
       p + ": truncated llm.c shard: the header says 10 tokens (1044 bytes) but the file has 1041 bytes"},
      {trailing, StatusCode::kDataLoss,
       p + ": trailing bytes in llm.c shard: the header says 10 tokens (1044 bytes) but the file has 1045 bytes"},
      {std::vector<uint8_t>(100, 0), StatusCode::kDataLoss,
       p + ": truncated llm.c shard: 100 bytes, shorter than the 1024-byte header"},
      {llmc_shard_bytes({}, 20240520, 1, -5), StatusCode::kDataLoss,
       p + ": corrupt llm.c header: token count -5"},
  };
  for (const Case& c : cases) {
    std::filesystem::remove(p);
    write_file(p, c.bytes, false);
    auto s = llmc_shard_open(p);
    ASSERT_FALSE(s.ok()) << c.message;
    EXPECT_EQ(s.status().code(), c.code) << c.message;
    EXPECT_EQ(s.status().message(), c.message);
  }
  auto missing = llmc_shard_open(dir.file("none.bin"));
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

TEST(LlmcImport, ConcatenatesShardsInOrder) {
  TempDir dir;
  const std::vector<uint16_t> a = gpt2_ids(1000, 1), b = gpt2_ids(1, 2), c = gpt2_ids(2500, 3);
  write_file(dir.file("a.bin"), llmc_shard_bytes(a), false);
  write_file(dir.file("b.bin"), llmc_shard_bytes(b), false);
  write_file(dir.file("c.bin"), llmc_shard_bytes(c), false);
  write_file(dir.file("empty.bin"), llmc_shard_bytes({}), false);
  const std::string out = dir.file("t.h5");
  auto n = llmc_import({dir.file("a.bin"), dir.file("empty.bin"), dir.file("b.bin"), dir.file("c.bin")},
                       out, "train");
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 3501);
  auto r = TokenSplitReader::open(out, "train");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)->vocab_size(), 50257);
  EXPECT_EQ((*r)->tokenizer(), "gpt2");
  std::vector<int32_t> got(3501);
  ASSERT_TRUE((*r)->read(0, 3501, got.data()).ok());
  std::vector<int32_t> want(a.begin(), a.end());
  want.insert(want.end(), b.begin(), b.end());
  want.insert(want.end(), c.begin(), c.end());
  EXPECT_EQ(got, want);
}

TEST(LlmcImport, StreamsShardsLargerThanItsBuffer) {
  TempDir dir;
  const std::vector<uint16_t> big = gpt2_ids((size_t{3} << 19) + 7, 5);  // 1.5 Mi + 7 tokens
  write_file(dir.file("big.bin"), llmc_shard_bytes(big), false);
  const std::string out = dir.file("t.h5");
  auto n = llmc_import({dir.file("big.bin")}, out, "val");
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, int64_t(big.size()));
  EXPECT_EQ(testing::read_all_tokens(out, "val"), std::vector<int32_t>(big.begin(), big.end()));
}

TEST(LlmcImport, ABadShardLeavesNoOutput) {
  TempDir dir;
  write_file(dir.file("a.bin"), llmc_shard_bytes(gpt2_ids(10, 1)), false);
  write_file(dir.file("bad.bin"), llmc_shard_bytes(gpt2_ids(10, 1), 7), false);
  write_file(dir.file("big_id.bin"), llmc_shard_bytes({1, 2, 50257}), false);
  const std::string out = dir.file("t.h5");
  auto n = llmc_import({dir.file("a.bin"), dir.file("bad.bin")}, out, "train");
  EXPECT_EQ(n.status().message(), dir.file("bad.bin") + ": not an llm.c token shard (magic 7, expected 20240520)");
  n = llmc_import({dir.file("a.bin"), dir.file("big_id.bin")}, out, "train");
  EXPECT_EQ(n.status().message(), dir.file("big_id.bin") + ": token 50257 at index 2 is >= GPT-2 vocab_size 50257");
  EXPECT_FALSE(std::filesystem::exists(out));
  std::vector<std::string> left;
  for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(out).parent_path()))
    left.push_back(e.path().filename().string());
  EXPECT_EQ(left.size(), 3u);  // the three shards, no temporary
}

}  // namespace
}  // namespace shardtrain
