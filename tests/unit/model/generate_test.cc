// Generation with the KV cache against a reference that recomputes every step from
// position 0 over the whole context: the same tokens, across prompt crops and slides.
#include "model/generate.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "config/config.h"

namespace shardtrain {
namespace {

constexpr int64_t kT = 16;        // context
constexpr int64_t kVocab = 250;   // padded to 256 logits columns (pad_to 64)

// gpt_ref's shape with a padded vocabulary: every GPT layer type, a tied head.
std::unique_ptr<Model> small_gpt(Backend& be) {
  auto cfg = parse_config_text(R"(model {
      layer { name: "wte" embedding { num_embeddings: 250 dim: 32 } }
      layer { name: "wpe" position_embedding { max_seq: 16 } }
      layer { name: "h" transformer_block { n_head: 2 count: 2 } }
      layer { name: "ln_f" layer_norm {} }
      layer { name: "lm_head" lm_head { tied_to: "wte" } } } train { steps: 1 })",
                               "test");
  EXPECT_TRUE(cfg.ok()) << cfg.status().ToString();
  const std::vector<ModelInput> in = {{"tokens", {{kT}, DType::kInt32}}, {"targets", {{kT}, DType::kInt32}}};
  auto m = Model::build(cfg->model(), in, kVocab, be);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  (*m)->init_params(3);
  return std::move(m).value();
}

// The tokens of every sequence, [samples][new_tokens].
std::vector<std::vector<int32_t>> with_cache(Model& m, const std::vector<int32_t>& prompt, const GenerateOptions& o) {
  std::vector<std::vector<int32_t>> out(o.samples);
  Status st = generate(m, prompt, o, [&](const int32_t* t, int64_t n) {
    for (int64_t b = 0; b < n; ++b) out[b].push_back(t[b]);
  });
  EXPECT_TRUE(st.ok()) << st.ToString();
  return out;
}

// No cache: each step runs the whole context from position 0, one sequence at a time.
// The context rule written out plainly: at most T - 1 prompt tokens; past T, keep T/2.
std::vector<int32_t> recomputed(Model& m, const std::vector<int32_t>& prompt, const GenerateOptions& o, int64_t seq) {
  std::vector<int32_t> ctx(prompt.end() - std::min<int64_t>(prompt.size(), kT - 1), prompt.end()), out;
  for (int64_t step = 0; step < o.new_tokens; ++step) {
    auto logits = m.decode(ctx.data(), 1, ctx.size(), 0);
    EXPECT_TRUE(logits.ok()) << logits.status().ToString();
    if (!logits.ok()) return out;
    EXPECT_EQ(logits->size(), 256u);
    out.push_back(sample_token(logits->data(), o.vocab, o.sampling, sampling_uniform(o.seed, seq, step)));
    ctx.push_back(out.back());
    if (static_cast<int64_t>(ctx.size()) > kT) ctx.erase(ctx.begin(), ctx.end() - kT / 2);
  }
  return out;
}

std::vector<int32_t> prompt_of(int64_t n) {
  std::vector<int32_t> p;
  for (int64_t i = 0; i < n; ++i) p.push_back(static_cast<int32_t>((i * 37 + 11) % kVocab));
  return p;
}

TEST(Generate, GreedyWithCacheEqualsRecomputingEveryStep) {
  CpuBackend be(1);
  auto m = small_gpt(be);
  GenerateOptions o;
  o.new_tokens = 45;  // several slides at T = 16
  o.vocab = kVocab;
  o.sampling = {0.0, 0};
  for (int64_t len : {int64_t{1}, int64_t{5}, kT - 1, kT, int64_t{40}}) {  // 16 and 40 are cropped to T - 1
    const auto got = with_cache(*m, prompt_of(len), o);
    EXPECT_EQ(got[0], recomputed(*m, prompt_of(len), o, 0)) << "prompt of " << len;
  }
}

TEST(Generate, SampledBatchEqualsRecomputingEachSequence) {
  CpuBackend be(1);
  auto m = small_gpt(be);
  GenerateOptions o;
  o.new_tokens = 30;
  o.samples = 3;
  o.vocab = kVocab;
  o.sampling = {1.0, 20};
  o.seed = 42;
  const auto got = with_cache(*m, prompt_of(6), o);
  ASSERT_EQ(got.size(), 3u);
  for (int64_t b = 0; b < 3; ++b) {
    EXPECT_EQ(got[b], recomputed(*m, prompt_of(6), o, b)) << "sequence " << b;
    for (int32_t t : got[b]) EXPECT_LT(t, kVocab);  // never a padding column
  }
  EXPECT_NE(got[0], got[1]);  // each sequence draws its own stream
  EXPECT_EQ(with_cache(*m, prompt_of(6), o), got);  // same seed, same tokens
}

TEST(Generate, RejectsBadArguments) {
  CpuBackend be(1);
  auto m = small_gpt(be);
  GenerateOptions o;
  o.vocab = kVocab;
  auto sink = [](const int32_t*, int64_t) {};
  EXPECT_FALSE(generate(*m, {}, o, sink).ok());
  EXPECT_FALSE(generate(*m, {kVocab}, o, sink).ok());  // outside the vocabulary
  o.new_tokens = 0;
  EXPECT_FALSE(generate(*m, {1}, o, sink).ok());
  o.new_tokens = 1;
  o.sampling.temperature = -1;
  EXPECT_FALSE(generate(*m, {1}, o, sink).ok());
  o.sampling.temperature = 1;
  o.vocab = 300;  // wider than the logits
  EXPECT_FALSE(generate(*m, {1}, o, sink).ok());
}

}  // namespace
}  // namespace shardtrain
