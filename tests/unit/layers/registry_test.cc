// The registry builds every LayerConfig type and names bad values and bad shapes.
#include <gtest/gtest.h>
#include <google/protobuf/text_format.h>

#include "backend/cpu/cpu_backend.h"
#include "layers/registry.h"

namespace shardtrain {
namespace {

using config::LayerConfig;

LayerConfig parse(const std::string& text) {
  LayerConfig cfg;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &cfg)) << text;
  return cfg;
}

// Walks the oneof in the proto descriptor, so a new layer type added to the schema
// without a registry entry fails here.
TEST(LayerRegistry, EveryOneofCaseBuilds) {
  CpuBackend be(1);
  const auto* oneof = LayerConfig::descriptor()->FindOneofByName("type");
  ASSERT_NE(oneof, nullptr);
  ASSERT_GT(oneof->field_count(), 0);
  for (int i = 0; i < oneof->field_count(); ++i) {
    const auto* field = oneof->field(i);
    LayerConfig cfg;
    google::protobuf::Message* sub = cfg.GetReflection()->MutableMessage(&cfg, field);
    // Required-by-meaning fields without a usable default.
    if (const auto* f = sub->GetDescriptor()->FindFieldByName("out_features")) sub->GetReflection()->SetInt64(sub, f, 4);
    if (const auto* f = sub->GetDescriptor()->FindFieldByName("out_channels")) sub->GetReflection()->SetInt64(sub, f, 4);
    for (const char* name : {"num_embeddings", "dim", "max_seq", "n_head"})
      if (const auto* f = sub->GetDescriptor()->FindFieldByName(name)) sub->GetReflection()->SetInt64(sub, f, 4);
    if (const auto* f = sub->GetDescriptor()->FindFieldByName("tied_to")) sub->GetReflection()->SetString(sub, f, "wte");
    LayerBuildContext lc;
    lc.num_classes = 10;
    auto layer = make_layer(cfg, 5, be, lc);
    if (field->name() == "transformer_block") {  // expanded by the model into layers
      ASSERT_FALSE(layer.ok());
      EXPECT_NE(layer.status().message().find("expanded by the model"), std::string::npos);
      continue;
    }
    ASSERT_TRUE(layer.ok()) << field->name() << ": " << layer.status().message();
    EXPECT_STREQ((*layer)->type(), field->name() == "gelu" ? "gelu" : field->name().c_str());
    EXPECT_EQ((*layer)->name(), field->name() + "5");
    EXPECT_EQ((*layer)->index(), 5);
  }
}

TEST(LayerRegistry, ExplicitNameIsKept) {
  CpuBackend be(1);
  auto layer = make_layer(parse("name: 'fc1' linear { out_features: 10 }"), 0, be);
  ASSERT_TRUE(layer.ok());
  EXPECT_EQ((*layer)->name(), "fc1");
}

TEST(LayerRegistry, NoTypeSet) {
  CpuBackend be(1);
  auto layer = make_layer(parse("name: 'x'"), 3, be);
  ASSERT_FALSE(layer.ok());
  EXPECT_EQ(layer.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(layer.status().message(), "model.layer[3]: no layer type set");
}

TEST(LayerRegistry, BadValuesNameTheLayerAndField) {
  CpuBackend be(1);
  struct Case {
    std::string text, message;
  };
  const Case cases[] = {
      {"name: 'fc1' linear { out_features: 0 }", "model.layer[3] (fc1): linear.out_features must be > 0"},
      {"linear {}", "model.layer[3] (linear3): linear.out_features must be > 0"},
      {"conv2d { out_channels: -1 }", "model.layer[3] (conv2d3): conv2d.out_channels must be > 0"},
      {"conv2d { out_channels: 4 kernel_size: 0 }", "model.layer[3] (conv2d3): conv2d.kernel_size must be > 0"},
      {"conv2d { out_channels: 4 stride: 0 }", "model.layer[3] (conv2d3): conv2d.stride must be > 0"},
      {"conv2d { out_channels: 4 padding: -1 }", "model.layer[3] (conv2d3): conv2d.padding must be >= 0"},
      {"max_pool2d { kernel_size: 0 }", "model.layer[3] (max_pool2d3): max_pool2d.kernel_size must be > 0"},
      {"max_pool2d { stride: 0 }", "model.layer[3] (max_pool2d3): max_pool2d.stride must be > 0"},
  };
  for (const Case& c : cases) {
    auto layer = make_layer(parse(c.text), 3, be);
    ASSERT_FALSE(layer.ok()) << c.text;
    EXPECT_EQ(layer.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(layer.status().message(), c.message);
  }
  auto drop = make_layer(parse("dropout { p: 1.0 }"), 1, be);
  ASSERT_FALSE(drop.ok());
  EXPECT_NE(drop.status().message().find("model.layer[1] (dropout1): dropout.p must be in [0, 1)"), std::string::npos);
}

TEST(LayerRegistry, ConfigureErrorsNameTheLayer) {
  CpuBackend be(1);
  auto conv = make_layer(parse("name: 'conv1' conv2d { out_channels: 4 kernel_size: 5 }"), 2, be);
  ASSERT_TRUE(conv.ok());
  ParamStore store(be);
  auto configure = [&](Layer& l, const Shape& in) { return l.configure({ValueSpec{in, DType::kFloat32}}, store); };
  auto s = configure(**conv, {1, 3, 3});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().message(), "model.layer[2] (conv1): kernel 5 larger than padded input 3x3");

  auto fc = make_layer(parse("linear { out_features: 10 }"), 0, be);
  ASSERT_TRUE(fc.ok());
  auto f = configure(**fc, {1, 28, 28});
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().message(),
            "model.layer[0] (linear0): linear expects a [D] or [T, D] input, got [1, 28, 28]: add a flatten layer");

  auto pool = make_layer(parse("max_pool2d { kernel_size: 4 }"), 1, be);
  ASSERT_TRUE(pool.ok());
  EXPECT_FALSE(configure(**pool, {2, 3, 8}).ok());
  auto ok = configure(**pool, {2, 9, 8});
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ((*ok)[0].shape, (Shape{2, 2, 2}));

  // An integer input (token ids) straight into a float layer.
  auto fc2 = make_layer(parse("linear { out_features: 10 }"), 4, be);
  ASSERT_TRUE(fc2.ok());
  auto i = (*fc2)->configure({ValueSpec{{16}, DType::kInt32}}, store);
  ASSERT_FALSE(i.ok());
  EXPECT_NE(i.status().message().find("model.layer[4] (linear4): linear expects a floating-point input"), std::string::npos);
}

}  // namespace
}  // namespace shardtrain
