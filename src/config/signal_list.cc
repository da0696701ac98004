#include "config/signal_list.h"

#include <algorithm>
#include <csignal>

namespace shardtrain {
namespace {

struct NamedSignal {
  const char* name;  // without "SIG"
  int signo;
};
// The signals a scheduler sends ahead of a stop. SIGINT is handled separately (a second
// one exits at once); SIGKILL/SIGSTOP cannot be caught; SIGHUP/SIGQUIT mean other things.
constexpr NamedSignal kStopSignals[] = {{"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"TERM", SIGTERM}};

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

}  // namespace

StatusOr<std::vector<int>> parse_signal_list(const std::string& field, const std::string& text) {
  std::vector<int> out;
  if (trim(text).empty()) return out;
  size_t begin = 0;
  while (true) {
    const size_t comma = text.find(',', begin);
    std::string item = trim(text.substr(begin, comma == std::string::npos ? std::string::npos : comma - begin));
    std::string bare = item.rfind("SIG", 0) == 0 ? item.substr(3) : item;
    const auto* it = std::find_if(std::begin(kStopSignals), std::end(kStopSignals),
                                  [&](const NamedSignal& s) { return bare == s.name; });
    if (it == std::end(kStopSignals))
      return Status::InvalidArgument(field + ": unknown signal \"" + item +
                                     "\" (use a comma-separated list of USR1, USR2, TERM; SIGINT always stops)");
    if (std::find(out.begin(), out.end(), it->signo) == out.end()) out.push_back(it->signo);
    if (comma == std::string::npos) return out;
    begin = comma + 1;
  }
}

std::string signal_name(int signo) {
  if (signo == SIGINT) return "SIGINT";
  for (const NamedSignal& s : kStopSignals)
    if (s.signo == signo) return std::string("SIG") + s.name;
  return "signal " + std::to_string(signo);
}

}  // namespace shardtrain
