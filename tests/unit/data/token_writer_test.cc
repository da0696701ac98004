// TokenFileWriter: a new file appears whole or not at all; an existing token file gets
// new splits but never loses or mixes anything.
#include "data/token_writer.h"

#include <gtest/gtest.h>

#include "data/token_dataset.h"
#include "data_test_util.h"
#include "token_test_util.h"

namespace shardtrain {
namespace {

using testing::read_all_tokens;
using testing::TempDir;
using testing::write_token_split;

// Only `names` are in the directory (no temporary left behind).
void expect_dir_holds(const TempDir& dir, std::vector<std::string> names) {
  std::vector<std::string> found;
  for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(dir.file(""))))
    found.push_back(e.path().filename().string());
  std::sort(found.begin(), found.end());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(found, names);
}

TEST(TokenFileWriter, NewFileAppearsOnlyOnCommit) {
  TempDir dir;
  const std::string path = dir.file("t.h5");
  {
    auto w = TokenFileWriter::create(path, kTokenFileBytes);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    write_token_split(w->get(), "train", {1, 2, 3});
    EXPECT_FALSE(std::filesystem::exists(path));  // still under its temporary name
  }  // no commit: the temporary goes
  expect_dir_holds(dir, {});

  auto w = TokenFileWriter::create(path, kTokenFileBytes);
  ASSERT_TRUE(w.ok());
  write_token_split(w->get(), "train", {1, 2, 3});
  write_token_split(w->get(), "val", {255});
  ASSERT_TRUE((*w)->commit().ok());
  expect_dir_holds(dir, {"t.h5"});
  EXPECT_EQ(read_all_tokens(path, "train"), (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(read_all_tokens(path, "val"), (std::vector<int32_t>{255}));

  auto again = TokenFileWriter::create(path, kTokenFileBytes);
  EXPECT_EQ(again.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(again.status().message(), path + ": exists already; refusing to replace it");
}

TEST(TokenFileWriter, CommitRefusesAFileThatAppearedMeanwhile) {
  TempDir dir;
  const std::string path = dir.file("t.h5");
  auto w = TokenFileWriter::create(path, kTokenFileBytes);
  ASSERT_TRUE(w.ok());
  write_token_split(w->get(), "train", {1, 2});
  testing::write_file(path, {'x'}, false);  // someone else's file
  Status st = (*w)->commit();
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(std::filesystem::file_size(path), 1u);  // untouched
  w->reset();
  expect_dir_holds(dir, {"t.h5"});
}

TEST(TokenFileWriter, AddsSplitsToAnExistingFileButNeverOverwrites) {
  TempDir dir;
  const std::string path = dir.file("t.h5");
  auto w = TokenFileWriter::open_or_create(path, kTokenFileGpt2);
  ASSERT_TRUE(w.ok());
  write_token_split(w->get(), "val", {7, 8});
  ASSERT_TRUE((*w)->commit().ok());

  w = TokenFileWriter::open_or_create(path, kTokenFileGpt2);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  Status st = (*w)->begin_split("val", 5);
  EXPECT_EQ(st.message(), path + ": split /val already exists; refusing to overwrite it");
  write_token_split(w->get(), "train", {50000, 1, 2});
  ASSERT_TRUE((*w)->commit().ok());
  EXPECT_EQ(read_all_tokens(path, "val"), (std::vector<int32_t>{7, 8}));
  EXPECT_EQ(read_all_tokens(path, "train"), (std::vector<int32_t>{50000, 1, 2}));

  {  // not committed: the split added in place is removed again
    auto w2 = TokenFileWriter::open_or_create(path, kTokenFileGpt2);
    ASSERT_TRUE(w2.ok());
    ASSERT_TRUE((*w2)->begin_split("test", 4).ok());
  }
  auto r = TokenSplitReader::open(path, "test");
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(read_all_tokens(path, "val"), (std::vector<int32_t>{7, 8}));
}

TEST(TokenFileWriter, ExistingFileMustHoldTheSameTokenizer) {
  TempDir dir;
  const std::string path = dir.file("t.h5");
  auto w = TokenFileWriter::create(path, kTokenFileBytes);
  ASSERT_TRUE(w.ok());
  write_token_split(w->get(), "train", {1});
  ASSERT_TRUE((*w)->commit().ok());
  auto mixed = TokenFileWriter::open_or_create(path, kTokenFileGpt2);
  EXPECT_EQ(mixed.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(mixed.status().message(), path + ": holds tokenizer 'bytes' with vocab_size 256, not 'gpt2' "
                                             "with vocab_size 50257; refusing to mix them in one file");

  const std::string images = dir.file("images.h5");
  testing::write_synthetic_split(images, "train", 2);
  auto not_tokens = TokenFileWriter::open_or_create(images, kTokenFileGpt2);
  EXPECT_EQ(not_tokens.status().message(),
            images + ": exists but is not a token file (no tokenizer attribute); refusing to add tokens to it");
}

TEST(TokenFileWriter, RejectsWhatItCannotStore) {
  TempDir dir;
  EXPECT_EQ(TokenFileWriter::create(dir.file("a.h5"), {"big", 70000}).status().code(),
            StatusCode::kInvalidArgument);
  auto w = TokenFileWriter::create(dir.file("a.h5"), kTokenFileBytes);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ((*w)->begin_split("train", 0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*w)->begin_split("a/b", 1).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE((*w)->begin_split("train", 3).ok());
  const uint16_t one = 1;
  ASSERT_TRUE((*w)->append(&one, 1).ok());
  EXPECT_EQ((*w)->end_split().code(), StatusCode::kInternal);  // 1 of 3 tokens
}

}  // namespace
}  // namespace shardtrain
