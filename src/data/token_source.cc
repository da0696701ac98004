#include "data/token_source.h"

#include <algorithm>

namespace shardtrain {

StatusOr<std::unique_ptr<TokenSource>> TokenSource::open(const TokenSourceOptions& opts) {
  std::unique_ptr<TokenSource> s(new TokenSource());
  s->opts_ = opts;
  ASSIGN_OR_RETURN(s->reader_, TokenSplitReader::open(opts.path, opts.split, opts.dataset));
  const std::string where = opts.path + ": /" + opts.split + "/" + opts.dataset;
  const int64_t file_vocab = s->reader_->vocab_size();
  if (file_vocab > opts.vocab_size)
    return Status::InvalidArgument(where + " holds token ids of a vocabulary of " + std::to_string(file_vocab) +
                                   " but the model's is " + std::to_string(opts.vocab_size) +
                                   " (data.num_classes): raise it, and the embedding's num_embeddings");
  s->windows_ = token_window_count(s->reader_->num_tokens(), opts.seq_len);
  if (s->windows_ == 0)
    return Status::InvalidArgument(where + " has " + std::to_string(s->reader_->num_tokens()) +
                                   " tokens, fewer than one window of data.seq_len + 1 = " +
                                   std::to_string(opts.seq_len + 1));
  s->fields_ = {{"tokens", {opts.seq_len}, DType::kInt32}, {"targets", {opts.seq_len}, DType::kInt32}};
  return s;
}

Status TokenSource::read(const std::vector<int64_t>& indices, std::vector<BatchTensor>* out) {
  const int64_t t = opts_.seq_len;
  out->assign(2, BatchTensor{});
  for (int f = 0; f < 2; ++f) {
    (*out)[f].spec = fields_[f];
    (*out)[f].bytes.resize(indices.size() * fields_[f].row_bytes());
  }
  std::vector<int32_t> window(t + 1);
  for (size_t i = 0; i < indices.size(); ++i) {
    const int64_t start = indices[i] * t;
    RETURN_IF_ERROR(reader_->read(start, t + 1, window.data()));
    RETURN_IF_ERROR(reader_->check_ids(window.data(), t + 1, start, opts_.vocab_size));
    std::copy_n(window.begin(), t, (*out)[0].data<int32_t>() + i * t);
    std::copy_n(window.begin() + 1, t, (*out)[1].data<int32_t>() + i * t);
  }
  return Status::Ok();
}

}  // namespace shardtrain
