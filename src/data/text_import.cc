#include "data/text_import.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "data/input_file.h"
#include "data/token_writer.h"

namespace shardtrain {

namespace {

constexpr int64_t kBufferBytes = int64_t{1} << 20;  // bytes read and converted per step

}  // namespace

int64_t text_val_token_count(int64_t total, double val_fraction, int64_t min_val_tokens) {
  int64_t val = std::llround(static_cast<double>(total) * val_fraction);
  if (total >= 2 * min_val_tokens) val = std::max(val, min_val_tokens);
  return std::clamp<int64_t>(val, 1, total - 1);
}

StatusOr<TextImportCounts> text_import(const TextImportOptions& opts) {
  if (opts.inputs.empty()) return Status::InvalidArgument("import-text: no input files");
  if (!(opts.val_fraction > 0 && opts.val_fraction <= 0.5)) {
    return Status::InvalidArgument("import-text: val fraction " + std::to_string(opts.val_fraction) +
                                   " is outside (0, 0.5]");
  }
  // Every input is opened (and sized) before the output exists, so a missing one costs
  // nothing; they are read one after another below.
  std::vector<std::unique_ptr<InputFile>> files;
  int64_t total = 0;
  for (const std::string& path : opts.inputs) {
    ASSIGN_OR_RETURN(std::unique_ptr<InputFile> f, InputFile::open(path));
    total += f->size();
    files.push_back(std::move(f));
  }
  if (total < 2) {
    return Status::InvalidArgument("import-text: the input holds " + std::to_string(total) +
                                   " byte(s); /train and /val need at least one token each");
  }
  TextImportCounts counts;
  counts.val_tokens = text_val_token_count(total, opts.val_fraction, opts.min_val_tokens);
  counts.train_tokens = total - counts.val_tokens;

  ASSIGN_OR_RETURN(std::unique_ptr<TokenFileWriter> w, TokenFileWriter::create(opts.out, kTokenFileBytes));
  RETURN_IF_ERROR(w->begin_split("train", counts.train_tokens));
  int64_t pos = 0;  // tokens written so far, over both splits
  // Writes ids to /train until it is full, then switches to /val.
  auto emit = [&](const uint16_t* ids, int64_t n) -> Status {
    while (n > 0) {
      const bool in_train = pos < counts.train_tokens;
      const int64_t take = in_train ? std::min(n, counts.train_tokens - pos) : n;
      RETURN_IF_ERROR(w->append(ids, take));
      ids += take;
      n -= take;
      pos += take;
      if (in_train && pos == counts.train_tokens) {
        RETURN_IF_ERROR(w->end_split());
        RETURN_IF_ERROR(w->begin_split("val", counts.val_tokens));
      }
    }
    return Status::Ok();
  };

  std::vector<unsigned char> bytes(kBufferBytes);
  std::vector<uint16_t> ids(kBufferBytes);
  for (const auto& f : files) {
    while (f->offset() < f->size()) {
      const int64_t n = std::min(kBufferBytes, f->size() - f->offset());
      RETURN_IF_ERROR(f->read_exact(bytes.data(), static_cast<size_t>(n),
                                    "bytes from offset " + std::to_string(f->offset())));
      std::copy(bytes.begin(), bytes.begin() + n, ids.begin());  // one token per byte
      RETURN_IF_ERROR(emit(ids.data(), n));
    }
  }
  RETURN_IF_ERROR(w->end_split());
  RETURN_IF_ERROR(w->commit());
  return counts;
}

}  // namespace shardtrain
