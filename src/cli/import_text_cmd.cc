#include "cli/args.h"
#include "cli/commands.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "data/text_import.h"

namespace shardtrain {

namespace {

const CommandSpec kImportTextSpec = {
    "import-text",
    {},
    "Converts plain text files into a byte-level token file: every byte is one token\n"
    "(vocab_size 256, tokenizer \"bytes\"), the files concatenated in the order given. The\n"
    "last --val-fraction of the bytes become FILE.h5:/val/tokens, the rest /train/tokens\n"
    "(uint16 [N] each). /val gets at least 1025 tokens (one window of seq_len 1024) when\n"
    "the text is large enough for both splits to hold that many. --out must not exist: the\n"
    "file is written beside it under a temporary name and linked into place when complete.",
    {
        {"input", "F", "text file(s) to import, in order", false, true},
        {"out", "F.h5", "token file to create (never replaced)"},
        {"val-fraction", "X", "share of the tokens for /val, in (0, 0.5] (default: 0.05)"},
    },
    "example:\n  shardtrain import-text --input /usr/share/games/fortunes/art \\\n"
    "      /usr/share/games/fortunes/science --out data/fortunes.h5 --val-fraction 0.05\n",
};

}  // namespace

int cmd_import_text(int argc, char** argv) {
  Args args;
  if (int code = parse_plain_command(kImportTextSpec, argc, argv, &args); code >= 0) return code;
  TextImportOptions opts;
  opts.inputs = args.get_all("input");
  opts.out = args.get("out");
  if (opts.inputs.empty() || opts.out.empty()) {
    return plain_usage_error(kImportTextSpec, "--input and --out are required");
  }
  if (args.has("val-fraction")) {
    const std::string text = args.get("val-fraction");
    char* end = nullptr;
    opts.val_fraction = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || !(opts.val_fraction > 0 && opts.val_fraction <= 0.5)) {
      return plain_usage_error(kImportTextSpec,
                               "--val-fraction must be a number in (0, 0.5] (got '" + text + "')");
    }
  }

  StatusOr<TextImportCounts> counts = text_import(opts);
  if (!counts.ok()) {
    std::fprintf(stderr, "error: %s\n", counts.status().message().c_str());
    return 1;
  }
  std::printf("import-text: wrote %s: /train %lld tokens, /val %lld tokens (bytes, vocab_size 256, %zu file%s)\n",
              opts.out.c_str(), static_cast<long long>(counts->train_tokens),
              static_cast<long long>(counts->val_tokens), opts.inputs.size(),
              opts.inputs.size() == 1 ? "" : "s");
  return 0;
}

}  // namespace shardtrain
