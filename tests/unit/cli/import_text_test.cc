// import-text as the CLI runs it: bytes in are tokens out, split at the right place.
#include "cli/commands.h"

#include <gtest/gtest.h>

#include "cli_test_util.h"
#include "data/text_import.h"
#include "data/token_dataset.h"
#include "data_test_util.h"
#include "token_test_util.h"

namespace shardtrain {
namespace {

using testing::TempDir;
using testing::write_file;

int run(std::vector<std::string> args, std::string* err = nullptr, std::string* out = nullptr) {
  return testing::run_command(cmd_import_text, "import-text", std::move(args), err, out);
}

std::vector<uint8_t> text_bytes(size_t n, uint8_t seed) {
  std::vector<uint8_t> b(n);
  for (size_t i = 0; i < n; ++i) b[i] = uint8_t(i * 31 + seed);  // every byte value occurs
  return b;
}

std::vector<int32_t> read_split(const std::string& path, const std::string& split) {
  return testing::read_all_tokens(path, split, 256);
}

class ImportText : public ::testing::Test {
 protected:
  void SetUp() override {
    write_file(a_, a_bytes_, false);
    write_file(b_, b_bytes_, false);
  }
  TempDir dir_;
  std::string a_ = dir_.file("a.txt"), b_ = dir_.file("b.txt"), out_ = dir_.file("out.h5");
  std::vector<uint8_t> a_bytes_ = text_bytes(3000, 1), b_bytes_ = text_bytes(1500, 7);
};

TEST_F(ImportText, BytesInAreTokensOutSplitAtTheEnd) {
  std::string out;
  ASSERT_EQ(run({"--input", a_, b_, "--out", out_, "--val-fraction", "0.1"}, nullptr, &out), 0);
  const int64_t val = text_val_token_count(4500, 0.1, TextImportOptions().min_val_tokens);
  ASSERT_EQ(val, 1025);  // 450 raised to one window: 4500 tokens hold two
  EXPECT_EQ(out, "import-text: wrote " + out_ + ": /train 3475 tokens, /val 1025 tokens (bytes, "
                 "vocab_size 256, 2 files)\n");
  auto r = TokenSplitReader::open(out_, "val");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->tokenizer(), "bytes");
  std::vector<int32_t> all = read_split(out_, "train"), val_ids = read_split(out_, "val");
  EXPECT_EQ(all.size(), 3475u);
  EXPECT_EQ(val_ids.size(), 1025u);
  all.insert(all.end(), val_ids.begin(), val_ids.end());
  std::vector<int32_t> want(a_bytes_.begin(), a_bytes_.end());  // a then b, in that order
  want.insert(want.end(), b_bytes_.begin(), b_bytes_.end());
  EXPECT_EQ(all, want);
}

TEST_F(ImportText, RepeatedInputFlagAndDefaultFraction) {
  ASSERT_EQ(run({"--input", b_, "--input=" + a_, "--out=" + out_}), 0);
  std::vector<int32_t> train = read_split(out_, "train");
  ASSERT_EQ(train.size(), 4500u - 1025u);
  EXPECT_EQ(train[0], b_bytes_[0]);  // b first, as given
  EXPECT_EQ(train[1500], a_bytes_[0]);
}

TEST_F(ImportText, StreamsTextLargerThanItsBuffer) {
  const std::vector<uint8_t> big = text_bytes((size_t{5} << 19) + 3, 9);  // 2.5 MiB + 3
  write_file(dir_.file("big.txt"), big, false);
  ASSERT_EQ(run({"--input", dir_.file("big.txt"), a_, "--out", out_}), 0);
  std::vector<int32_t> all = read_split(out_, "train"), val_ids = read_split(out_, "val");
  EXPECT_EQ(int64_t(val_ids.size()), text_val_token_count(int64_t(big.size()) + 3000, 0.05, 1025));
  all.insert(all.end(), val_ids.begin(), val_ids.end());
  std::vector<int32_t> want(big.begin(), big.end());
  want.insert(want.end(), a_bytes_.begin(), a_bytes_.end());
  EXPECT_EQ(all, want);  // the /train-/val boundary falls inside the third buffer
}

TEST_F(ImportText, RefusesAnExistingOut) {
  write_file(out_, {'k', 'e', 'e', 'p'}, false);
  std::string err;
  EXPECT_EQ(run({"--input", a_, "--out", out_}, &err), 1);
  EXPECT_EQ(err, "error: " + out_ + ": exists already; refusing to replace it\n");
  EXPECT_EQ(std::filesystem::file_size(out_), 4u);
}

TEST_F(ImportText, ErrorsNameTheProblem) {
  std::string err;
  EXPECT_EQ(run({"--input", dir_.file("none.txt"), "--out", out_}, &err), 1);
  EXPECT_EQ(err, "error: " + dir_.file("none.txt") + ": cannot open: No such file or directory\n");
  const std::string empty = dir_.file("empty.txt");
  write_file(empty, {}, false);
  EXPECT_EQ(run({"--input", empty, "--out", out_}, &err), 1);
  EXPECT_EQ(err, "error: import-text: the input holds 0 byte(s); /train and /val need at least one token each\n");
  for (const char* f : {"0", "0.6", "-1", "abc", ""}) {
    EXPECT_EQ(run({"--input", a_, "--out", out_, "--val-fraction", f}, &err), 2) << f;
    EXPECT_NE(err.find("--val-fraction must be a number in (0, 0.5]"), std::string::npos) << err;
  }
  EXPECT_EQ(run({"--out", out_}, &err), 2);
  EXPECT_NE(err.find("--input and --out are required"), std::string::npos);
  EXPECT_EQ(run({"--input", a_, "stray", "--out", out_}, &err), 1);  // stray is an input
  EXPECT_FALSE(std::filesystem::exists(out_));
  EXPECT_EQ(run({"--help"}), 0);
}

}  // namespace
}  // namespace shardtrain
