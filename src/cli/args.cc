#include "cli/args.h"

#include <cstdio>

namespace shardtrain {

std::string CommandSpec::usage() const {
  std::string u = "usage: shardtrain " + name;
  for (const auto& p : positionals) u += " " + p;
  if (!flags.empty()) u += " [options]";
  u += "\n\n" + summary + "\n";
  if (!flags.empty()) {
    u += "\noptions:\n";
    for (const FlagSpec& f : flags) {
      std::string left = "  --" + f.name + (f.value_name.empty() ? "" : " " + f.value_name);
      if (f.multi) left += " [" + f.value_name + " ...]";
      if (left.size() < 28) left.resize(28, ' ');
      else left += "\n" + std::string(28, ' ');
      u += left + f.help + (f.repeatable ? " (repeatable)" : "") + "\n";
    }
  }
  u += "  --help                    show this help\n";
  if (!epilog.empty()) u += "\n" + epilog;
  return u;
}

StatusOr<Args> Args::parse(const CommandSpec& spec, int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    if (s == "--help" || s == "-h") {
      a.help_ = true;
      return a;
    }
  }
  const std::string hint = " (see shardtrain " + spec.name + " --help)";
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    if (s.rfind("--", 0) != 0) {
      a.positionals_.push_back(s);
      continue;
    }
    std::string name = s.substr(2), value;
    bool inline_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    const FlagSpec* f = nullptr;
    for (const FlagSpec& c : spec.flags)
      if (c.name == name) f = &c;
    if (!f) return Status::InvalidArgument("unknown option --" + name + hint);
    if (f->value_name.empty()) {
      if (inline_value) return Status::InvalidArgument("--" + name + " takes no value" + hint);
      value = "true";
    } else if (!inline_value) {
      if (i + 1 >= argc) return Status::InvalidArgument("--" + name + " needs a value " + f->value_name + hint);
      value = argv[++i];
    }
    if (!f->repeatable && !f->multi && a.values_.count(name))
      return Status::InvalidArgument("--" + name + " given twice" + hint);
    a.values_[name].push_back(value);
    // A multi-valued flag also takes the arguments after it, up to the next --flag.
    while (f->multi && i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0)
      a.values_[name].push_back(argv[++i]);
  }
  if (a.positionals_.size() != spec.positionals.size()) {
    std::string want;
    for (const auto& p : spec.positionals) want += " " + p;
    return Status::InvalidArgument("expected" + (want.empty() ? std::string(" no arguments") : want) + ", got " +
                                   std::to_string(a.positionals_.size()) + " argument(s)" + hint);
  }
  return a;
}

std::string Args::get(const std::string& flag, const std::string& fallback) const {
  auto it = values_.find(flag);
  return it == values_.end() ? fallback : it->second.back();
}

std::vector<std::string> Args::get_all(const std::string& flag) const {
  auto it = values_.find(flag);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

std::vector<std::string> checkpoint_overrides(const Args& args) {
  std::vector<std::string> sets = {"train.precision=FP32"};
  for (const std::string& s : args.get_all("set")) sets.push_back(s);
  return sets;
}

int parse_plain_command(const CommandSpec& spec, int argc, char** argv, Args* args) {
  auto parsed = Args::parse(spec, argc, argv);
  if (!parsed.ok()) {
    std::fprintf(stderr, "error: %s\n", parsed.status().message().c_str());
    return 2;
  }
  if (parsed->help()) {
    std::fputs(spec.usage().c_str(), stdout);
    return 0;
  }
  *args = std::move(parsed).value();
  return -1;
}

int plain_usage_error(const CommandSpec& spec, const std::string& msg) {
  std::fprintf(stderr, "error: %s (see shardtrain %s --help)\n", msg.c_str(), spec.name.c_str());
  return 2;
}

}  // namespace shardtrain
