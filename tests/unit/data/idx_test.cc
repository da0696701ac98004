#include "data/idx.h"

#include <gtest/gtest.h>

#include "data_test_util.h"

namespace shardtrain {
namespace {

using testing::idx_bytes;
using testing::TempDir;
using testing::write_file;

const std::vector<uint8_t> kPixels = {0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255};  // 2x2x3

class DataIdx : public ::testing::TestWithParam<bool> {};  // param: gzipped

TEST_P(DataIdx, ReadsImagesAndLabels) {
  TempDir dir;
  const std::string im = dir.file("images"), lb = dir.file("labels");
  write_file(im, idx_bytes(0x0803, {2, 2, 3}, kPixels), GetParam());
  write_file(lb, idx_bytes(0x0801, {2}, {7, 9}), GetParam());
  StatusOr<IdxSplit> s = idx_read_split(im, lb);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->images.count, 2);
  EXPECT_EQ(s->images.rows, 2);
  EXPECT_EQ(s->images.cols, 3);
  EXPECT_EQ(s->images.pixels, kPixels);
  EXPECT_EQ(s->labels, (std::vector<uint8_t>{7, 9}));
}

TEST_P(DataIdx, BadMagicNamesFileAndMagic) {
  TempDir dir;
  const std::string path = dir.file("train-images-idx3-ubyte.gz");
  write_file(path, idx_bytes(0x0801, {2}, {1, 2}), GetParam());  // a label file
  StatusOr<IdxImages> r = idx_read_images(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(),
            path + ": not an IDX file (magic 0x0801, expected 0x0803)");
}

TEST_P(DataIdx, TruncatedDataIsDataLoss) {
  TempDir dir;
  const std::string path = dir.file("images");
  std::vector<uint8_t> short_pixels(kPixels.begin(), kPixels.end() - 1);
  write_file(path, idx_bytes(0x0803, {2, 2, 3}, short_pixels), GetParam());
  StatusOr<IdxImages> r = idx_read_images(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find(path + ": truncated"), std::string::npos)
      << r.status().message();
}

TEST_P(DataIdx, TruncatedHeaderIsDataLoss) {
  TempDir dir;
  const std::string path = dir.file("labels");
  write_file(path, {0, 0, 8, 1, 0, 0}, GetParam());  // magic + half a dimension
  StatusOr<std::vector<uint8_t>> r = idx_read_labels(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find(path), std::string::npos);
}

TEST_P(DataIdx, CountMismatchNamesBothFiles) {
  TempDir dir;
  const std::string im = dir.file("images"), lb = dir.file("labels");
  write_file(im, idx_bytes(0x0803, {2, 2, 3}, kPixels), GetParam());
  write_file(lb, idx_bytes(0x0801, {3}, {1, 2, 3}), GetParam());
  StatusOr<IdxSplit> s = idx_read_split(im, lb);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().message(), "image/label count mismatch: " + im + " holds 2 images but " +
                                      lb + " holds 3 labels");
}

INSTANTIATE_TEST_SUITE_P(Plain, DataIdx, ::testing::Values(false));
INSTANTIATE_TEST_SUITE_P(Gzip, DataIdx, ::testing::Values(true));

TEST(DataIdxFile, MissingFileIsNotFound) {
  StatusOr<IdxImages> r = idx_read_images("/tmp/st_no_such_dir/images.gz");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("/tmp/st_no_such_dir/images.gz"), std::string::npos);
}

TEST(DataIdxFile, CorruptGzipStreamIsDataLoss) {
  TempDir dir;
  const std::string gz = dir.file("images.gz");
  std::vector<uint8_t> payload(5000, 0);
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = uint8_t(i * 31);
  write_file(gz, idx_bytes(0x0803, {5, 10, 100}, payload), true);
  // Cut the compressed stream in half: gzread must report it, not return short data.
  std::filesystem::resize_file(gz, std::filesystem::file_size(gz) / 2);
  StatusOr<IdxImages> r = idx_read_images(gz);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find(gz + ": truncated"), std::string::npos)
      << r.status().message();
}

}  // namespace
}  // namespace shardtrain
