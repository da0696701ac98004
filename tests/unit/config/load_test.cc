// load_config / parse_config_text / config_to_text: what a user sees for good and bad files.
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <fstream>

#include "config/config.h"

namespace shardtrain {
namespace {

const char* kGoodConfig = R"(name: "mlp"
model {
  layer { name: "fc1" linear { out_features: 128 } }
  layer { relu {} }
  layer { name: "drop" dropout { p: 0.25 } }
  layer { name: "fc2" linear { out_features: 10 bias: false } }
}
data { path: "data/fm.h5" global_batch: 32 mean: 0.2860 std: 0.3530 }
optimizer {
  kind: KIND_ADAMW lr: 3e-4 weight_decay: 0.1
  schedule { kind: KIND_WARMUP_COSINE warmup_steps: 5 min_lr: 1e-5 }
}
train { steps: 100 log_every: 10 seed: 7 }
checkpoint { every: 50 keep_last: 2 }
device: DEVICE_CPU
)";

// Writes `text` to a fresh file in the test temp dir and returns its path.
std::string write_file(const std::string& name, const std::string& text) {
  const std::string path = testing::TempDir() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

TEST(ConfigLoad, GoodConfigParsesWithValuesAndDefaults) {
  auto cfg = load_config(write_file("good.pbtxt", kGoodConfig), {});
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ(cfg->name(), "mlp");
  ASSERT_EQ(cfg->model().layer_size(), 4);
  EXPECT_EQ(cfg->model().layer(0).linear().out_features(), 128);
  EXPECT_TRUE(cfg->model().layer(1).has_relu());
  EXPECT_FLOAT_EQ(cfg->model().layer(2).dropout().p(), 0.25f);
  EXPECT_FALSE(cfg->model().layer(3).linear().bias());
  EXPECT_EQ(cfg->data().global_batch(), 32);
  EXPECT_EQ(cfg->data().eval_batch(), 1000);  // default
  EXPECT_EQ(cfg->optimizer().kind(), config::OptimizerConfig::KIND_ADAMW);
  EXPECT_FLOAT_EQ(cfg->optimizer().lr(), 3e-4f);
  EXPECT_FLOAT_EQ(cfg->optimizer().beta2(), 0.999f);  // default
  EXPECT_EQ(cfg->optimizer().schedule().warmup_steps(), 5);
  EXPECT_EQ(cfg->train().steps(), 100);
  EXPECT_FALSE(cfg->train().has_epochs());
  EXPECT_EQ(cfg->train().seed(), 7u);
  EXPECT_EQ(cfg->checkpoint().keep_last(), 2);
}

TEST(ConfigLoad, MissingFileIsNotFoundNamingIt) {
  const std::string path = testing::TempDir() + "/does_not_exist.pbtxt";
  auto cfg = load_config(path, {});
  ASSERT_FALSE(cfg.ok());
  EXPECT_EQ(cfg.status().code(), StatusCode::kNotFound);
  EXPECT_NE(cfg.status().message().find(path), std::string::npos) << cfg.status().message();
}

TEST(ConfigLoad, UnknownFieldReportsFileLineColumn) {
  const std::string path = write_file("unknown.pbtxt",
                                      "model { layer { linear { out_features: 10 } } }\n"
                                      "data { path: \"x.h5\" }\n"
                                      "train {\n"
                                      "    stepz: 10\n"
                                      "}\n");
  auto cfg = load_config(path, {});
  ASSERT_FALSE(cfg.ok());
  EXPECT_EQ(cfg.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(cfg.status().message(),
            path + ":4:5: Message type \"shardtrain.config.TrainConfig\" has no field named \"stepz\".");
}

TEST(ConfigLoad, UnknownEnumValuePointsAtTheValue) {
  // Protobuf reports the token after the bad name (here on the next line); the column
  // must point at the name itself.
  const std::string path = write_file("enum.pbtxt", "name: \"x\"\ndevice: DEVICE_TPU\n");
  auto cfg = load_config(path, {});
  ASSERT_FALSE(cfg.ok());
  EXPECT_EQ(cfg.status().message(), path + ":2:9: Unknown enumeration value of \"DEVICE_TPU\" for field \"device\".");
}

TEST(ConfigLoad, SyntaxErrorReportsFileLineColumn) {
  const std::string path = write_file("syntax.pbtxt",
                                      "data { path: \"x.h5\" }\n"
                                      "train { steps: }\n");
  auto cfg = load_config(path, {});
  ASSERT_FALSE(cfg.ok());
  EXPECT_EQ(cfg.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(cfg.status().message().rfind(path + ":2:16: ", 0), 0u) << cfg.status().message();
}

TEST(ConfigLoad, ValidationErrorNamesFileAndField) {
  const std::string path = write_file("badlr.pbtxt",
                                      "model { layer { linear { out_features: 10 } } }\n"
                                      "optimizer { lr: -1 }\n"
                                      "train { steps: 10 }\n");
  auto cfg = load_config(path, {});
  ASSERT_FALSE(cfg.ok());
  EXPECT_EQ(cfg.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(cfg.status().message(), path + ": optimizer.lr must be > 0 (got -1)");
}

TEST(ConfigLoad, OverridesApplyInOrderBeforeValidation) {
  // The file alone is invalid (no steps/epochs); --set completes it, and the later
  // assignment of the same field wins.
  const std::string path = write_file("partial.pbtxt", "model { layer { linear { out_features: 10 } } }\n");
  auto cfg = load_config(path, {"train.steps=5", "train.steps=7", "optimizer.kind=adamw"});
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ(cfg->train().steps(), 7);
  EXPECT_EQ(cfg->optimizer().kind(), config::OptimizerConfig::KIND_ADAMW);

  auto bad = load_config(path, {"train.steps=5", "optimizer.lr=0"});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), path + ": optimizer.lr must be > 0 (got 0)");

  auto typo = load_config(path, {"train.stepz=5"});
  ASSERT_FALSE(typo.ok());
  EXPECT_EQ(typo.status().message(), "--set train.stepz=5: TrainConfig has no field 'stepz'");
}

TEST(ConfigLoad, TextRoundTripIsExact) {
  auto cfg = load_config(write_file("rt.pbtxt", kGoodConfig), {"optimizer.lr=0.1", "data.std=0.3081"});
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  const std::string text = config_to_text(*cfg);
  auto back = parse_config_text(text, "checkpoint");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*cfg, *back)) << text;
  EXPECT_EQ(config_to_text(*back), text);  // stable
}

TEST(ConfigLoad, ParseConfigTextNamesOriginAndValidates) {
  auto syntax = parse_config_text("train {", "checkpoint step_100.h5");
  ASSERT_FALSE(syntax.ok());
  EXPECT_EQ(syntax.status().message().rfind("checkpoint step_100.h5:1:", 0), 0u) << syntax.status().message();

  auto invalid = parse_config_text("model { layer { relu {} } }", "ckpt");
  ASSERT_FALSE(invalid.ok());
  EXPECT_EQ(invalid.status().message(), "ckpt: train: set exactly one of steps or epochs");
}

}  // namespace
}  // namespace shardtrain
