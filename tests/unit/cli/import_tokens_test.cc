// import-tokens as the CLI runs it: llm.c shards in, a gpt2 token split out.
#include "cli/commands.h"

#include <gtest/gtest.h>

#include "cli_test_util.h"
#include "data/token_dataset.h"
#include "data_test_util.h"
#include "token_test_util.h"

namespace shardtrain {
namespace {

using testing::gpt2_ids;
using testing::llmc_shard_bytes;
using testing::TempDir;
using testing::write_file;

int run(std::vector<std::string> args, std::string* err = nullptr, std::string* out = nullptr) {
  return testing::run_command(cmd_import_tokens, "import-tokens", std::move(args), err, out);
}

std::vector<int32_t> read_split(const std::string& path, const std::string& split) {
  return testing::read_all_tokens(path, split, 50257);
}

class ImportTokens : public ::testing::Test {
 protected:
  void SetUp() override {
    write_file(train0_, llmc_shard_bytes(t0_), false);
    write_file(train1_, llmc_shard_bytes(t1_), false);
    write_file(val_, llmc_shard_bytes(v_), false);
  }
  TempDir dir_;
  std::string train0_ = dir_.file("fw_train_000001.bin"), train1_ = dir_.file("fw_train_000002.bin"),
              val_ = dir_.file("fw_val_000000.bin"), out_ = dir_.file("fw.h5");
  std::vector<uint16_t> t0_ = gpt2_ids(2000, 1), t1_ = gpt2_ids(333, 2), v_ = gpt2_ids(500, 3);
};

TEST_F(ImportTokens, ShardsConcatenateAndSplitsShareOneFile) {
  std::string out;
  ASSERT_EQ(run({"--llmc", val_, "--out", out_, "--split", "val"}, nullptr, &out), 0);
  EXPECT_EQ(out, "import-tokens: wrote " + out_ + ":/val: 500 tokens from 1 shard (gpt2, vocab_size 50257)\n");
  ASSERT_EQ(run({"--llmc", train0_, train1_, "--out", out_}, nullptr, &out), 0);  // default split: train
  EXPECT_EQ(out, "import-tokens: wrote " + out_ + ":/train: 2333 tokens from 2 shards (gpt2, vocab_size 50257)\n");
  std::vector<int32_t> want(t0_.begin(), t0_.end());
  want.insert(want.end(), t1_.begin(), t1_.end());
  EXPECT_EQ(read_split(out_, "train"), want);
  EXPECT_EQ(read_split(out_, "val"), std::vector<int32_t>(v_.begin(), v_.end()));

  std::string err;
  EXPECT_EQ(run({"--llmc", val_, "--out", out_, "--split", "val"}, &err), 1);
  EXPECT_EQ(err, "error: " + out_ + ": split /val already exists; refusing to overwrite it\n");
}

TEST_F(ImportTokens, BadShardsFailWithOneLineAndNoOutput) {
  const std::string bad = dir_.file("bad.bin");
  struct Case {
    std::vector<uint8_t> bytes;
    std::string error;
  };
  std::vector<uint8_t> truncated = llmc_shard_bytes(gpt2_ids(10, 4));
  truncated.resize(1030);
  const std::vector<Case> cases = {
      {llmc_shard_bytes(gpt2_ids(10, 4), 20240801), "not an llm.c token shard (magic 20240801, expected 20240520)"},
      {llmc_shard_bytes(gpt2_ids(10, 4), 20240520, 7), "llm.c shard version 7 is not supported (expected 1: uint16 GPT-2 tokens)"},
      {truncated, "truncated llm.c shard: the header says 10 tokens (1044 bytes) but the file has 1030 bytes"},
  };
  for (const Case& c : cases) {
    std::filesystem::remove(bad);
    write_file(bad, c.bytes, false);
    std::string err;
    EXPECT_EQ(run({"--llmc", train0_, bad, "--out", out_}, &err), 1);
    EXPECT_EQ(err, "error: " + bad + ": " + c.error + "\n");
    EXPECT_FALSE(std::filesystem::exists(out_));
  }
}

TEST_F(ImportTokens, UsageErrorsExit2) {
  std::string err;
  EXPECT_EQ(run({"--llmc", train0_}, &err), 2);
  EXPECT_NE(err.find("--llmc and --out are required"), std::string::npos);
  EXPECT_EQ(run({"--llmc", train0_, "--out", out_, "--split", "a/b"}, &err), 2);
  EXPECT_EQ(run({"--llmc", train0_, "--out", out_, "--split", "x", "--split", "y"}, &err), 2);
  EXPECT_NE(err.find("--split given twice"), std::string::npos);
  EXPECT_EQ(run({"--help"}), 0);
}

TEST_F(ImportTokens, RefusesToAddGpt2TokensToAByteFile) {
  const std::string text = dir_.file("a.txt");
  write_file(text, std::vector<uint8_t>(100, 'a'), false);
  ASSERT_EQ(testing::run_command(cmd_import_text, "import-text", {"--input", text, "--out", out_}), 0);
  std::string err;
  EXPECT_EQ(run({"--llmc", train0_, "--out", out_, "--split", "more"}, &err), 1);
  EXPECT_EQ(err, "error: " + out_ + ": holds tokenizer 'bytes' with vocab_size 256, not 'gpt2' with "
                 "vocab_size 50257; refusing to mix them in one file\n");
}

}  // namespace
}  // namespace shardtrain
