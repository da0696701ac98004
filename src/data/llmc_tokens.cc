#include "data/llmc_tokens.h"

#include <algorithm>

#include "data/token_writer.h"

namespace shardtrain {

namespace {

constexpr int64_t kBufferTokens = int64_t{1} << 20;  // 2 MiB of a shard read per step

int32_t le32(const unsigned char* p) {
  return static_cast<int32_t>(uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) |
                              (uint32_t{p[3]} << 24));
}

}  // namespace

StatusOr<LlmcShard> llmc_shard_open(const std::string& path) {
  LlmcShard shard;
  ASSIGN_OR_RETURN(shard.file, InputFile::open(path));
  const int64_t size = shard.file->size();
  if (size < kLlmcHeaderBytes) {
    return Status::DataLoss(path + ": truncated llm.c shard: " + std::to_string(size) +
                            " bytes, shorter than the " + std::to_string(kLlmcHeaderBytes) +
                            "-byte header");
  }
  unsigned char header[kLlmcHeaderBytes];
  RETURN_IF_ERROR(shard.file->read_exact(header, sizeof header, "the llm.c header"));
  const int32_t magic = le32(header), version = le32(header + 4), count = le32(header + 8);
  if (magic != kLlmcMagic) {
    return Status::InvalidArgument(path + ": not an llm.c token shard (magic " + std::to_string(magic) +
                                   ", expected " + std::to_string(kLlmcMagic) + ")");
  }
  if (version != kLlmcVersion) {
    return Status::InvalidArgument(path + ": llm.c shard version " + std::to_string(version) +
                                   " is not supported (expected " + std::to_string(kLlmcVersion) +
                                   ": uint16 GPT-2 tokens)");
  }
  if (count < 0) {
    return Status::DataLoss(path + ": corrupt llm.c header: token count " + std::to_string(count));
  }
  const int64_t expected = kLlmcHeaderBytes + 2 * int64_t{count};
  if (size != expected) {
    return Status::DataLoss(path + ": " + (size < expected ? "truncated" : "trailing bytes in") +
                            " llm.c shard: the header says " + std::to_string(count) + " tokens (" +
                            std::to_string(expected) + " bytes) but the file has " +
                            std::to_string(size) + " bytes");
  }
  shard.num_tokens = count;
  return shard;
}

StatusOr<int64_t> llmc_import(const std::vector<std::string>& shards, const std::string& out,
                              const std::string& split) {
  if (shards.empty()) return Status::InvalidArgument("import-tokens: no shard files");
  // Check every shard first (and close it again: there may be hundreds), so a bad one
  // fails before the output is touched.
  int64_t total = 0;
  for (const std::string& path : shards) {
    ASSIGN_OR_RETURN(LlmcShard s, llmc_shard_open(path));
    total += s.num_tokens;
  }
  if (total == 0) return Status::InvalidArgument("import-tokens: the shards hold no tokens");

  ASSIGN_OR_RETURN(std::unique_ptr<TokenFileWriter> w, TokenFileWriter::open_or_create(out, kTokenFileGpt2));
  RETURN_IF_ERROR(w->begin_split(split, total));
  std::vector<unsigned char> bytes(2 * kBufferTokens);
  std::vector<uint16_t> ids(kBufferTokens);
  int64_t written = 0;
  for (const std::string& path : shards) {
    // Reopened and checked again: the size checked above is what the loop below reads.
    ASSIGN_OR_RETURN(LlmcShard s, llmc_shard_open(path));
    for (int64_t done = 0; done < s.num_tokens;) {
      const int64_t n = std::min(kBufferTokens, s.num_tokens - done);
      RETURN_IF_ERROR(s.file->read_exact(bytes.data(), static_cast<size_t>(2 * n),
                                         "tokens from index " + std::to_string(done)));
      for (int64_t i = 0; i < n; ++i) {
        ids[i] = static_cast<uint16_t>(bytes[2 * i] | (bytes[2 * i + 1] << 8));
        if (ids[i] >= kTokenFileGpt2.vocab_size) {
          return Status::InvalidArgument(path + ": token " + std::to_string(ids[i]) + " at index " +
                                         std::to_string(done + i) + " is >= GPT-2 vocab_size " +
                                         std::to_string(kTokenFileGpt2.vocab_size));
        }
      }
      if (written + n > total) {
        return Status::DataLoss(path + ": holds more tokens than when first checked (did it change?)");
      }
      RETURN_IF_ERROR(w->append(ids.data(), n));
      done += n;
      written += n;
    }
  }
  RETURN_IF_ERROR(w->end_split());
  RETURN_IF_ERROR(w->commit());
  return total;
}

}  // namespace shardtrain
