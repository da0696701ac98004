// import-idx as the CLI runs it (argv in, exit code and stderr out).
#include "cli/commands.h"

#include <gtest/gtest.h>

#include "cli_test_util.h"
#include "data_test_util.h"

namespace shardtrain {
namespace {

using testing::idx_bytes;
using testing::TempDir;
using testing::write_file;

int run(std::vector<std::string> args, std::string* err = nullptr) {
  return testing::run_command(cmd_import_idx, "import-idx", std::move(args), err);
}

class DataImportIdx : public ::testing::Test {
 protected:
  void SetUp() override {
    std::vector<uint8_t> px(3 * 28 * 28);
    for (size_t i = 0; i < px.size(); ++i) px[i] = uint8_t(i);
    write_file(images_, idx_bytes(0x0803, {3, 28, 28}, px), true);
    write_file(labels_, idx_bytes(0x0801, {3}, {4, 0, 9}), false);
  }
  TempDir dir_;
  std::string images_ = dir_.file("images.gz"), labels_ = dir_.file("labels"),
              out_ = dir_.file("out.h5");
};

TEST_F(DataImportIdx, WritesSplitsAndNeverOverwrites) {
  ASSERT_EQ(run({"--images", images_, "--labels", labels_, "--out", out_}), 0);
  ASSERT_EQ(run({"--images=" + images_, "--labels=" + labels_, "--out=" + out_, "--split=test"}), 0);
  for (const char* split : {"train", "test"}) {
    H5SplitOptions o;
    o.path = out_;
    o.split = split;
    auto r = H5SplitReader::open(o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ((*r)->num_samples(), 3);
    EXPECT_EQ((*r)->sample_shape(), (Shape{1, 28, 28}));
    std::vector<float> images(784);
    std::vector<int32_t> labels(1);
    ASSERT_TRUE((*r)->read({2}, images.data(), labels.data()).ok());
    EXPECT_EQ(labels[0], 9);
    EXPECT_EQ(images[5], uint8_t(2 * 784 + 5) / 255.0f);
  }
  std::string err;
  EXPECT_EQ(run({"--images", images_, "--labels", labels_, "--out", out_, "--split", "test"}, &err), 1);
  EXPECT_EQ(err, "error: " + out_ + ": split /test already exists; refusing to overwrite it\n");
}

TEST_F(DataImportIdx, UsageErrorsExit2) {
  std::string err;
  EXPECT_EQ(run({"--images", images_}, &err), 2);
  EXPECT_NE(err.find("error: --images, --labels and --out are required"), std::string::npos);
  EXPECT_EQ(run({"--bogus", "x"}, &err), 2);
  EXPECT_NE(err.find("unknown option --bogus"), std::string::npos);
  EXPECT_EQ(run({"--images", images_, "--labels"}, &err), 2);
  EXPECT_EQ(run({"--help"}), 0);
}

TEST_F(DataImportIdx, BadInputExits1WithOneLine) {
  std::string err;
  EXPECT_EQ(run({"--images", labels_, "--labels", labels_, "--out", out_}, &err), 1);
  EXPECT_EQ(err, "error: " + labels_ + ": not an IDX file (magic 0x0801, expected 0x0803)\n");
  EXPECT_FALSE(std::filesystem::exists(out_));
}

}  // namespace
}  // namespace shardtrain
