#include "model/generate.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace shardtrain {
namespace {

Status generate_check(const Model& model, const std::vector<int32_t>& prompt, const GenerateOptions& opts) {
  if (model.max_context() == 0) return Status::InvalidArgument("the model does not read token sequences");
  if (prompt.empty()) return Status::InvalidArgument("the prompt is empty");
  if (opts.new_tokens < 1 || opts.samples < 1)
    return Status::InvalidArgument("tokens and samples must be >= 1 (got " + std::to_string(opts.new_tokens) + " and " +
                                   std::to_string(opts.samples) + ")");
  for (size_t i = 0; i < prompt.size(); ++i)
    if (prompt[i] < 0 || prompt[i] >= opts.vocab)
      return Status::InvalidArgument("prompt token " + std::to_string(i) + " is " + std::to_string(prompt[i]) +
                                     ", outside the vocabulary [0, " + std::to_string(opts.vocab) + ")");
  return sampling_options_check(opts.sampling);
}

}  // namespace

Status generate(Model& model, const std::vector<int32_t>& prompt, const GenerateOptions& opts,
                const GenerateSink& emit) {
  RETURN_IF_ERROR(generate_check(model, prompt, opts));
  const int64_t t = model.max_context(), batch = opts.samples;
  const int64_t keep = std::min<int64_t>(prompt.size(), generate_prompt_keep(t));
  // The context of every sequence, [batch, len] row-major; len <= t.
  std::vector<int32_t> ctx;
  for (int64_t b = 0; b < batch; ++b) ctx.insert(ctx.end(), prompt.end() - keep, prompt.end());
  int64_t len = keep;

  // Runs context positions [first, len) (the cache holds those before) for every sequence.
  std::vector<int32_t> fresh;
  auto run = [&](int64_t first) {
    fresh.clear();
    for (int64_t b = 0; b < batch; ++b)
      fresh.insert(fresh.end(), ctx.begin() + b * len + first, ctx.begin() + (b + 1) * len);
    return model.decode(fresh.data(), batch, len - first, first);
  };
  ASSIGN_OR_RETURN(std::vector<float> logits, run(0));
  const int64_t width = static_cast<int64_t>(logits.size()) / batch;
  if (opts.vocab > width)
    return Status::InvalidArgument("vocabulary of " + std::to_string(opts.vocab) + " tokens (data.num_classes) but " +
                                   "the model's logits have " + std::to_string(width) + " columns");

  std::vector<int32_t> next(batch);
  for (int64_t step = 0; step < opts.new_tokens; ++step) {
    for (int64_t b = 0; b < batch; ++b) {
      const float* row = logits.data() + b * width;
      for (int64_t i = 0; i < opts.vocab; ++i)
        if (!std::isfinite(row[i]))
          return Status::FailedPrecondition("the model's logits are not finite (logit " + std::to_string(i) +
                                            " of sequence " + std::to_string(b) + " at step " + std::to_string(step) +
                                            "): a diverged checkpoint?");
      next[b] = sample_token(row, opts.vocab, opts.sampling, sampling_uniform(opts.seed, b, step));
    }
    emit(next.data(), batch);
    if (step + 1 == opts.new_tokens) break;  // no prediction needed after the last token

    // Append the new tokens; when they do not fit, keep the last slide_keep of each row.
    const int64_t grown = len + 1, kept = grown > t ? generate_slide_keep(t) : grown;
    std::vector<int32_t> moved(batch * kept);
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t i = 0; i + 1 < kept; ++i) moved[b * kept + i] = ctx[b * len + len - (kept - 1) + i];
      moved[b * kept + kept - 1] = next[b];
    }
    ctx.swap(moved);
    len = kept;
    ASSIGN_OR_RETURN(logits, run(kept == grown ? len - 1 : 0));
  }
  return Status::Ok();
}

}  // namespace shardtrain
