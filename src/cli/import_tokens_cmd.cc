#include "cli/args.h"
#include "cli/commands.h"

#include <cstdio>
#include <string>

#include "data/llmc_tokens.h"

namespace shardtrain {

namespace {

const CommandSpec kImportTokensSpec = {
    "import-tokens",
    {},
    "Converts llm.c token shards (GPT-2 ids: a 1024-byte header with magic 20240520 and\n"
    "version 1, then uint16 tokens) into FILE.h5:/SPLIT/tokens (uint16 [N]; vocab_size\n"
    "50257, tokenizer \"gpt2\"). Several shards are concatenated in the order given, streamed\n"
    "through a bounded buffer. FILE.h5 is created if missing (under a temporary name, linked\n"
    "into place when complete); a new split may be added to an existing gpt2 token file, but\n"
    "an existing split is never overwritten. Adding a split writes into the existing file in\n"
    "place, as import-idx does: a crash mid-write can damage it, so import into a copy when\n"
    "it matters.",
    {
        {"llmc", "F", "llm.c shard(s) (*.bin), in order", false, true},
        {"out", "F.h5", "HDF5 token file to write"},
        {"split", "NAME", "split (group) name (default: train; llm.c's *_val_*.bin: val)"},
    },
    "example:\n  shardtrain import-tokens --llmc fineweb_val_000000.bin --out data/fineweb.h5 --split val\n"
    "  shardtrain import-tokens --llmc fineweb_train_*.bin --out data/fineweb.h5\n",
};

}  // namespace

int cmd_import_tokens(int argc, char** argv) {
  Args args;
  if (int code = parse_plain_command(kImportTokensSpec, argc, argv, &args); code >= 0) return code;
  const std::vector<std::string> shards = args.get_all("llmc");
  const std::string out = args.get("out"), split = args.get("split", "train");
  if (shards.empty() || out.empty()) {
    return plain_usage_error(kImportTokensSpec, "--llmc and --out are required");
  }
  if (split.empty() || split.find('/') != std::string::npos) {
    return plain_usage_error(kImportTokensSpec,
                             "--split must be a non-empty name without '/' (got '" + split + "')");
  }

  StatusOr<int64_t> tokens = llmc_import(shards, out, split);
  if (!tokens.ok()) {
    std::fprintf(stderr, "error: %s\n", tokens.status().message().c_str());
    return 1;
  }
  std::printf("import-tokens: wrote %s:/%s: %lld tokens from %zu shard%s (gpt2, vocab_size 50257)\n",
              out.c_str(), split.c_str(), static_cast<long long>(*tokens), shards.size(),
              shards.size() == 1 ? "" : "s");
  return 0;
}

}  // namespace shardtrain
