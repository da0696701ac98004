// Choosing the next token from one row of a language model's logits: greedy, or a draw
// from softmax(logits / temperature) over the top-k logits. The draw is a uniform number
// the caller passes in, so sample_token() is a pure function; sampling_uniform() makes
// that number from (seed, sequence, step) with the counter RNG, so the same seed gives the
// same text whatever else runs (and however many sequences are generated beside it).
#pragma once

#include <cstdint>

#include "core/status.h"

namespace shardtrain {

struct SamplingOptions {
  double temperature = 0.8;  // 0: greedy (argmax); > 0 divides the logits before softmax
  int64_t top_k = 40;        // candidates: the k largest logits (ties: lower index first); 0: all
};

// InvalidArgument unless temperature is finite and >= 0 and top_k >= 0, e.g.
// "temperature must be a number >= 0 (got -1)".
Status sampling_options_check(const SamplingOptions& opts);

// The token chosen from logits[0, vocab). A row may be wider than the vocabulary (a
// padded embedding table); its columns from `vocab` on are never read, so never chosen.
// Greedy (temperature 0, or top_k 1): the lowest index of the largest logit; `u` unused.
// Otherwise the candidates are weighted by exp((logit - max) / temperature) and `u`
// picks one by inverse CDF (candidates ordered by index, or by decreasing logit under
// top-k), so a u near 0 picks the first and u near 1 the last.
// REQUIRES: vocab >= 1; opts valid; logits[0, vocab) finite; 0 <= u < 1.
int32_t sample_token(const float* logits, int64_t vocab, const SamplingOptions& opts, float u);

// The uniform draw in [0, 1) for sequence `sequence` at generation step `step`.
float sampling_uniform(uint64_t seed, int64_t sequence, int64_t step);

}  // namespace shardtrain
