// llm.c token shards (karpathy/llm.c, dev/data/data_common.py write_datafile), imported
// by shardtrain import-tokens:
//   header  256 int32, little-endian: [0] magic 20240520, [1] version 1, [2] token count
//   body    that many uint16 little-endian GPT-2 token ids (vocab 50257)
// so a shard is exactly 1024 + 2 * count bytes. (llm.c's LLaMA-3 shards use another magic
// and uint32 ids; they are rejected by the magic check.)
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "data/input_file.h"

namespace shardtrain {

inline constexpr int32_t kLlmcMagic = 20240520;
inline constexpr int32_t kLlmcVersion = 1;
inline constexpr int64_t kLlmcHeaderInts = 256;
inline constexpr int64_t kLlmcHeaderBytes = kLlmcHeaderInts * 4;

struct LlmcShard {
  std::unique_ptr<InputFile> file;  // positioned at the first token
  int64_t num_tokens = 0;
};

// Opens a shard and checks its header and size. Errors name the file: NotFound (cannot
// open); DataLoss for a file shorter than the header, a negative count, or a size other
// than 1024 + 2 * count ("truncated" / "trailing bytes"); InvalidArgument for a wrong
// magic ("not an llm.c token shard") or version.
StatusOr<LlmcShard> llmc_shard_open(const std::string& path);

// Imports `shards`, concatenated in order, as split `split` of `out`: a new gpt2 token
// file, or an existing one without that split (TokenFileWriter::open_or_create: the
// split is added in place, as import-idx does). Every shard is checked before anything
// is written; tokens then stream through a bounded buffer, and an id >= 50257 is
// InvalidArgument naming the shard and token index. On failure `out` is left as it was.
// Returns the number of tokens written.
StatusOr<int64_t> llmc_import(const std::vector<std::string>& shards, const std::string& out,
                              const std::string& split);

}  // namespace shardtrain
