// A small command-line parser for the subcommands: positional arguments and --flags
// (--flag VALUE or --flag=VALUE; repeatable ones collect every value; multi-valued ones
// also take the arguments after them: --input a.txt b.txt). Each subcommand declares its
// flags in a CommandSpec, which also renders its --help text.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/status.h"

namespace shardtrain {

struct FlagSpec {
  std::string name;       // without the dashes: "run-dir"
  std::string value_name; // "DIR"; empty for a boolean switch
  std::string help;
  bool repeatable = false;
  // Takes every argument after it up to the next --flag (`--input a b c`, as a shell glob
  // expands) and may be repeated; implies repeatable. A command with such a flag should
  // not also take positionals, which would be swallowed.
  bool multi = false;
};

struct CommandSpec {
  std::string name;                     // "train"
  std::vector<std::string> positionals; // "CONFIG"
  std::string summary;                  // one line
  std::vector<FlagSpec> flags;
  std::string epilog;                   // examples
  std::string usage() const;
};

class Args;

// The --set overrides of a command that computes with a checkpoint (eval, sample):
// "train.precision=FP32" first, since the checkpoint holds fp32 master weights and a BF16
// training config must also run on a CPU, then the user's (--set train.precision=BF16
// asks for bf16 again on a GPU).
std::vector<std::string> checkpoint_overrides(const Args& args);

class Args {
 public:
  // argv[0] is the subcommand name. `--help`/`-h` anywhere sets help() and skips checks.
  static StatusOr<Args> parse(const CommandSpec& spec, int argc, char** argv);
  bool help() const { return help_; }
  const std::string& positional(size_t i) const { return positionals_[i]; }
  bool has(const std::string& flag) const { return values_.count(flag) > 0; }
  std::string get(const std::string& flag, const std::string& fallback = "") const;
  std::vector<std::string> get_all(const std::string& flag) const;

 private:
  bool help_ = false;
  std::vector<std::string> positionals_;
  std::map<std::string, std::vector<std::string>> values_;
};

// For subcommands that run without MPI (import-idx, inspect): parses into *args, printing
// --help (returns 0) or a usage error (returns 2) itself. Returns -1 to go on.
int parse_plain_command(const CommandSpec& spec, int argc, char** argv, Args* args);

// For errors in flag values found after parsing: prints
// "error: MSG (see shardtrain NAME --help)" and returns 2 (the usage exit code).
int plain_usage_error(const CommandSpec& spec, const std::string& msg);

}  // namespace shardtrain
