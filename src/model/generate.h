// Autoregressive generation with the model's KV caches (Model::decode).
//
// Every sequence of the batch has the same length, so they advance in lock-step: the
// prompt is prefilled by one decode call, then each new token costs one position.
//
// The context window (T = model.max_context(), the model's seq_len):
//   - a prompt longer than T - 1 tokens keeps its last T - 1, so the first sampled token
//     still fits the cache and the second prediction sees a full window of T;
//   - when a new token does not fit (the context already holds T tokens), the context
//     slides: its last T/2 tokens (the new one included) are prefilled again from
//     position 0 and generation goes on. Learned position embeddings tie a token's
//     representation to its position, so cached keys and values cannot simply be shifted;
//     a re-prefill every T/2 tokens costs one extra pass over T/2 positions, instead of
//     a pass over T for every token (which is what nanoGPT's crop to the last T does).
// Thread-safety: none (uses the model's activations and caches).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "model/model.h"
#include "model/sampling.h"

namespace shardtrain {

struct GenerateOptions {
  int64_t new_tokens = 200;  // per sequence
  int64_t samples = 1;       // sequences, one decode batch
  int64_t vocab = 0;         // real vocabulary (data.num_classes): logits columns [0, vocab)
  SamplingOptions sampling;
  uint64_t seed = 0;         // sequence b's draw at step s: sampling_uniform(seed, b, s)
};

// The context rules above, for a model of context T >= 1.
inline int64_t generate_prompt_keep(int64_t t) { return t > 1 ? t - 1 : 1; }
inline int64_t generate_slide_keep(int64_t t) { return t > 1 ? t / 2 : 1; }

// Receives each step's new tokens, one per sequence (tokens[0, samples)).
using GenerateSink = std::function<void(const int32_t* tokens, int64_t samples)>;

// Generates opts.new_tokens tokens for each of opts.samples sequences that all start with
// `prompt` (its last generate_prompt_keep(T) tokens are the first context), calling `emit`
// after each step. InvalidArgument: the model does not read tokens, an empty prompt, a
// prompt id outside [0, vocab), vocab wider than the logits, new_tokens or samples < 1,
// bad sampling options. FailedPrecondition: non-finite logits (a diverged checkpoint).
Status generate(Model& model, const std::vector<int32_t>& prompt, const GenerateOptions& opts,
                const GenerateSink& emit);

}  // namespace shardtrain
