// shardtrain: data-parallel training under mpirun / srun. Dispatches to a subcommand.
#include <cstdio>
#include <cstring>

#include "cli/commands.h"

namespace {

struct Subcommand {
  const char* name;
  int (*run)(int, char**);
  const char* summary;
};

// The one table of subcommands.
constexpr Subcommand kSubcommands[] = {
    {"train", shardtrain::cmd_train, "train a model from a config (run under mpirun for several ranks)"},
    {"eval", shardtrain::cmd_eval, "evaluate a checkpoint on the config's test split"},
    {"sample", shardtrain::cmd_sample, "generate text from a language model checkpoint (KV cache)"},
    {"inspect", shardtrain::cmd_inspect, "print what a checkpoint holds"},
    {"import-idx", shardtrain::cmd_import_idx, "convert IDX image/label files (e.g. Fashion-MNIST) to HDF5"},
    {"import-text", shardtrain::cmd_import_text, "convert text files to byte-level tokens (/train, /val) in HDF5"},
    {"import-tokens", shardtrain::cmd_import_tokens, "convert llm.c GPT-2 token shards (*.bin) to HDF5"},
};

void print_usage(std::FILE* out) {
  std::fprintf(out, "usage: shardtrain <command> [args] (shardtrain <command> --help for details)\n\ncommands:\n");
  for (const Subcommand& c : kSubcommands) std::fprintf(out, "  %-14s %s\n", c.name, c.summary);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    print_usage(stderr);
    return 2;
  }
  if (!std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    print_usage(stdout);
    return 0;
  }
  for (const Subcommand& c : kSubcommands)
    if (!std::strcmp(argv[1], c.name)) return c.run(argc - 1, argv + 1);
  std::fprintf(stderr, "error: unknown command '%s'\n", argv[1]);
  print_usage(stderr);
  return 2;
}
