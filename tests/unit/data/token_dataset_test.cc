// TokenSplitReader: what it accepts, the errors for what it does not, reads of arbitrary
// ranges; the window arithmetic and the vocabulary check.
#include "data/token_dataset.h"

#include <gtest/gtest.h>

#include <numeric>

#include "data/token_writer.h"
#include "data_test_util.h"
#include "token_test_util.h"

namespace shardtrain {
namespace {

using testing::TempDir;
using testing::write_h5_ints;

std::vector<int64_t> iota64(size_t n, int64_t first = 0) {
  std::vector<int64_t> v(n);
  std::iota(v.begin(), v.end(), first);
  return v;
}

// Values that fit uint16 and differ everywhere: tokens read back must match position.
int64_t token_at(int64_t i) { return (i * 37 + 11) % 50000; }

TEST(TokenSplitReader, ReadsArbitraryRangesExactly) {
  TempDir dir;
  const std::string path = dir.file("t.h5");
  std::vector<int64_t> tokens(5000);
  for (int64_t i = 0; i < 5000; ++i) tokens[i] = token_at(i);
  write_h5_ints(path, "/train/tokens", H5T_STD_U16LE, {5000}, tokens, /*chunk=*/256);
  auto r = TokenSplitReader::open(path, "train");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->num_tokens(), 5000);
  EXPECT_EQ((*r)->vocab_size(), 0);  // no attribute in this file
  EXPECT_EQ((*r)->tokenizer(), "");
  EXPECT_EQ((*r)->dataset_path(), "/train/tokens");
  int64_t selected = 0;
  // Within a chunk, across chunk boundaries, the very first and very last tokens.
  for (auto [start, count] : std::vector<std::pair<int64_t, int64_t>>{
           {0, 1}, {3, 10}, {250, 13}, {1000, 1025}, {4999, 1}, {0, 5000}, {17, 0}}) {
    std::vector<int32_t> out(static_cast<size_t>(count) + 1, -7);
    ASSERT_TRUE((*r)->read(start, count, out.data()).ok()) << start << "+" << count;
    for (int64_t i = 0; i < count; ++i) ASSERT_EQ(out[i], token_at(start + i)) << start + i;
    EXPECT_EQ(out[count], -7);  // nothing written past count
    selected += count;
  }
  EXPECT_EQ((*r)->tokens_read(), selected);  // exactly the ranges asked for, no more
}

TEST(TokenSplitReader, RangeOutsideTheSplitIsAnError) {
  TempDir dir;
  const std::string path = dir.file("t.h5");
  write_h5_ints(path, "/val/tokens", H5T_STD_U16LE, {100}, iota64(100));
  auto r = TokenSplitReader::open(path, "val");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::vector<int32_t> out(200);
  for (auto [start, count] : std::vector<std::pair<int64_t, int64_t>>{{99, 2}, {-1, 1}, {0, 101}, {101, 0}}) {
    Status st = (*r)->read(start, count, out.data());
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << start << "+" << count;
  }
  EXPECT_EQ((*r)->read(90, 20, out.data()).message(),
            path + ": /val/tokens: cannot read tokens [90, 110) of [0, 100)");
  EXPECT_EQ((*r)->tokens_read(), 0);
}

TEST(TokenSplitReader, AcceptsIntegersUpTo32Bits) {
  TempDir dir;
  const std::string path = dir.file("t.h5");
  const std::vector<std::pair<std::string, hid_t>> types = {
      {"u8", H5T_STD_U8LE}, {"i8", H5T_STD_I8LE}, {"u16", H5T_STD_U16BE},
      {"i16", H5T_STD_I16LE}, {"u32", H5T_STD_U32LE}, {"i32", H5T_STD_I32BE}};
  for (const auto& [name, type] : types) {
    const bool is_signed = name[0] == 'i';
    write_h5_ints(path, "/" + name + "/tokens", type, {5}, {0, 1, 2, is_signed ? -3 : 3, 100});
    auto r = TokenSplitReader::open(path, name);
    ASSERT_TRUE(r.ok()) << name << ": " << r.status().ToString();
    std::vector<int32_t> out(5);
    ASSERT_TRUE((*r)->read(0, 5, out.data()).ok()) << name;
    EXPECT_EQ(out, (std::vector<int32_t>{0, 1, 2, is_signed ? -3 : 3, 100})) << name;
  }
}

TEST(TokenSplitReader, WrongTypeOrShapeIsOneClearError) {
  TempDir dir;
  const std::string path = dir.file("x.h5");
  const std::string tail = "; token datasets must be a 1-D integer type of at most 32 bits (uint16 as import-text writes)";
  write_h5_ints(path, "/f/tokens", H5T_IEEE_F32LE, {1000}, iota64(1000));
  write_h5_ints(path, "/i64/tokens", H5T_STD_I64LE, {10}, iota64(10));
  write_h5_ints(path, "/two_d/tokens", H5T_STD_U16LE, {10, 100}, iota64(1000));
  for (auto [split, found] : std::vector<std::pair<std::string, std::string>>{
           {"f", "float32 [1000]"}, {"i64", "int64 [10]"}, {"two_d", "uint16 [10, 100]"}}) {
    auto r = TokenSplitReader::open(path, split);
    ASSERT_FALSE(r.ok()) << split;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(r.status().message(), path + ": /" + split + "/tokens is " + found + tail);
  }
}

TEST(TokenSplitReader, MissingFileSplitOrDatasetNameWhatIsMissing) {
  TempDir dir;
  const std::string path = dir.file("t.h5");
  auto r = TokenSplitReader::open(path, "train");
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("token file " + path + " not found"), std::string::npos);

  write_h5_ints(path, "/train/tokens", H5T_STD_U16LE, {10}, iota64(10));
  write_h5_ints(path, "/test/ids", H5T_STD_U16LE, {10}, iota64(10));
  r = TokenSplitReader::open(path, "val");
  EXPECT_EQ(r.status().message(),
            path + ": no split /val (expected dataset /val/tokens; the file has /test, /train)");
  r = TokenSplitReader::open(path, "test");
  EXPECT_EQ(r.status().message(), path + ": dataset /test/tokens not found");
  r = TokenSplitReader::open(path, "test", "ids");  // another dataset name works
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->num_tokens(), 10);

  const std::string text = dir.file("not.h5");
  testing::write_file(text, {'h', 'i'}, false);
  r = TokenSplitReader::open(text, "train");
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(r.status().message(), text + ": not an HDF5 file (or corrupt)");
}

TEST(TokenSplitReader, ReadsTheFileAttributesTheWriterStores) {
  TempDir dir;
  const std::string path = dir.file("t.h5");
  auto w = TokenFileWriter::create(path, kTokenFileGpt2);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  testing::write_token_split(w->get(), "train", {50256, 0, 7, 42});
  ASSERT_TRUE((*w)->commit().ok());
  auto r = TokenSplitReader::open(path, "train");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->vocab_size(), 50257);
  EXPECT_EQ((*r)->tokenizer(), "gpt2");
  EXPECT_EQ(testing::read_all_tokens(path, "train"), (std::vector<int32_t>{50256, 0, 7, 42}));
}

TEST(TokenWindows, CountStartAndSpan) {
  static_assert(token_window_count(10, 10) == 0);  // N < T + 1: not one whole window
  static_assert(token_window_count(11, 10) == 1);
  static_assert(token_window_count(20, 10) == 1);  // the 20th token has no target
  static_assert(token_window_count(21, 10) == 2);
  static_assert(token_window_count(0, 4) == 0 && token_window_count(5, 0) == 0);
  EXPECT_EQ(token_window_count(1'000'001, 1024), 976);
  EXPECT_EQ(token_window_start(3, 128), 384);
  EXPECT_EQ(token_window_span(128), 129);
  // The last window ends exactly at or before N.
  for (int64_t n = 2; n < 60; ++n) {
    for (int64_t t = 1; t < 8; ++t) {
      const int64_t w = token_window_count(n, t);
      if (w > 0) {
        EXPECT_LE(token_window_start(w - 1, t) + token_window_span(t), n);
      }
      EXPECT_GT(token_window_start(w, t) + token_window_span(t), n);  // no room for another
    }
  }
}

TEST(TokenWindows, InputsAndTargetsShiftByOne) {
  const int32_t window[5] = {10, 11, 12, 13, 14};
  int32_t inputs[4], targets[4];
  token_window_split(window, 4, inputs, targets);
  EXPECT_EQ(std::vector<int32_t>(inputs, inputs + 4), (std::vector<int32_t>{10, 11, 12, 13}));
  EXPECT_EQ(std::vector<int32_t>(targets, targets + 4), (std::vector<int32_t>{11, 12, 13, 14}));
}

TEST(TokenIdsCheck, NamesFileDatasetIndexAndValue) {
  const int32_t ids[4] = {0, 255, 12345, 3};
  EXPECT_TRUE(token_ids_check(ids, 2, 985, 256, "data/x.h5", "/train/tokens").ok());
  Status st = token_ids_check(ids, 4, 985, 256, "data/x.h5", "/train/tokens");
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message(), "data/x.h5: token 12345 at /train/tokens[987] is >= the vocabulary size 256 (data.num_classes)");
  const int32_t negative[2] = {5, -1};
  EXPECT_EQ(token_ids_check(negative, 2, 0, 256, "d.h5", "/val/tokens").message(),
            "d.h5: token -1 at /val/tokens[1] is negative");
  EXPECT_FALSE(token_ids_check(ids, 1, 0, 0, "d.h5", "/val/tokens").ok());  // no vocab
}

}  // namespace
}  // namespace shardtrain
