// How import-text divides a corpus between /train and /val (the round trip through the
// CLI is in unit/cli/import_text_test.cc).
#include "data/text_import.h"

#include <gtest/gtest.h>

namespace shardtrain {
namespace {

TEST(TextImportSplit, ValIsTheFractionWithAWindowAtLeast) {
  EXPECT_EQ(text_val_token_count(1'000'000, 0.05, 1025), 50'000);
  EXPECT_EQ(text_val_token_count(1'000'000, 0.5, 1025), 500'000);
  EXPECT_EQ(text_val_token_count(10'000, 0.05, 1025), 1025);  // 500 raised to one window
  EXPECT_EQ(text_val_token_count(2050, 0.05, 1025), 1025);    // both splits hold a window
  EXPECT_EQ(text_val_token_count(2049, 0.05, 1025), 102);     // not possible: the fraction
  EXPECT_EQ(text_val_token_count(100, 0.05, 1025), 5);
  EXPECT_EQ(text_val_token_count(10, 0.01, 1025), 1);         // never an empty split
  EXPECT_EQ(text_val_token_count(2, 0.5, 1025), 1);
}

TEST(TextImport, RejectsBadOptionsBeforeReading) {
  TextImportOptions o;
  o.out = "/nonexistent/dir/x.h5";
  EXPECT_EQ(text_import(o).status().code(), StatusCode::kInvalidArgument);  // no inputs
  o.inputs = {"/nonexistent/a.txt"};
  for (double f : {0.0, -0.1, 0.51, 1.0}) {
    o.val_fraction = f;
    EXPECT_EQ(text_import(o).status().code(), StatusCode::kInvalidArgument) << f;
  }
  o.val_fraction = 0.05;
  EXPECT_EQ(text_import(o).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace shardtrain
