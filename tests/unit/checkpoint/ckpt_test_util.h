// Shared by the checkpoint tests: a private temp directory and a small checkpoint.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "checkpoint/checkpoint.h"

namespace shardtrain {

// A fresh directory under $TMPDIR (or /tmp), removed after the test.
class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/st_ckpt_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string file(const std::string& name) const { return dir_ + "/" + name; }
  std::string dir_;
};

// A small AdamW-style checkpoint; values depend on `step` so files differ.
inline CheckpointData sample_checkpoint(int64_t step = 100) {
  CheckpointData d;
  d.step = step;
  d.world_size = 4;
  d.config_text = "model {\n  layer { linear { out: 3 } }\n}\nseed: 42\n";
  const float s = static_cast<float>(step);
  d.params = {{"fc1.weight", {2, 3}, {1.5f, -2.25f, 3.0f, 0.1f, -0.0f, 1e-30f + s}},
              {"fc1.bias", {3}, {0.5f, -0.5f, s}},
              {"scale", {}, {7.0f}}};
  d.optimizer_kind = "adamw";
  d.optimizer_step = step;
  d.optimizer = {{"exp_avg/fc1.weight", {2, 3}, {1, 2, 3, 4, 5, s}},
                 {"exp_avg/fc1.bias", {3}, {6, 7, 8}},
                 {"exp_avg_sq/fc1.weight", {2, 3}, {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f}},
                 {"exp_avg_sq/fc1.bias", {3}, {0.7f, 0.8f, 0.9f}}};
  d.seed = 0xFEDCBA9876543210ull;  // above INT64_MAX: checks it is stored unsigned
  d.data_epoch = 2;
  d.data_batch = 17;
  d.samples_seen = 123456789012ll;
  return d;
}

}  // namespace shardtrain
