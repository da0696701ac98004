#include "train/stop_signals.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <ctime>

#include "config/signal_list.h"
#include "core/log.h"

namespace shardtrain {
namespace {

// Only lock-free atomics may be touched from a signal handler.
static_assert(std::atomic<int>::is_always_lock_free && std::atomic<int64_t>::is_always_lock_free);
std::atomic<int> g_signo{0};          // first stop signal, 0 until one arrives
std::atomic<int64_t> g_when_ns{0};    // CLOCK_MONOTONIC time of that signal
std::atomic<int> g_sigints{0};        // SIGINTs so far
std::atomic<bool> g_installed{false};

int64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);  // async-signal-safe (POSIX); cannot fail for this clock
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

extern "C" void on_stop_signal(int signo) {
  const int saved_errno = errno;
  if (signo == SIGINT && g_sigints.fetch_add(1) >= 1) {
    static const char kMsg[] = "shardtrain: second SIGINT: exiting now without a checkpoint (code 130)\n";
    ssize_t ignored = write(STDERR_FILENO, kMsg, sizeof kMsg - 1);  // best effort: we exit either way
    (void)ignored;
    _exit(128 + SIGINT);
  }
  // The time first, so a reader that sees the signal number also sees its time.
  int64_t none = 0;
  g_when_ns.compare_exchange_strong(none, monotonic_ns());
  int no_signal = 0;
  g_signo.compare_exchange_strong(no_signal, signo);
  errno = saved_errno;
}

}  // namespace

StatusOr<std::unique_ptr<StopSignals>> StopSignals::install(const std::vector<int>& signals) {
  if (g_installed.exchange(true)) return Status::Internal("stop signal handlers are already installed");
  g_signo = 0;
  g_when_ns = 0;
  g_sigints = 0;
  std::unique_ptr<StopSignals> s(new StopSignals());  // restores what was installed so far on error
  RETURN_IF_ERROR(s->catch_signals(signals));
  return s;
}

StopSignals::~StopSignals() {
  restore();
  g_installed = false;
}

// Installs the new set before giving dropped signals their old action back, so a signal
// that stays caught is never without the handler (a SIGTERM in between would kill the rank).
Status StopSignals::change_to(const std::vector<int>& signals) {
  std::vector<Saved> old = std::move(saved_);
  saved_.clear();
  Status st = catch_signals(signals);
  // A signal caught before and now: what to restore at the end is its original action,
  // not this class's handler that catch_signals just saw.
  for (Saved& s : saved_)
    for (const Saved& o : old)
      if (o.signo == s.signo) s.previous = o.previous;
  for (const Saved& o : old) {
    bool kept = false;
    for (const Saved& s : saved_) kept = kept || s.signo == o.signo;
    if (!kept && sigaction(o.signo, &o.previous, nullptr) != 0)
      log_warn("cannot restore the handler of " + signal_name(o.signo) + ": " + std::strerror(errno));
  }
  return st;
}

Status StopSignals::catch_signals(const std::vector<int>& signals) {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sa.sa_flags = SA_RESTART;
  // Block the other stop signals while one is handled: no interleaving inside the handler.
  if (sigemptyset(&sa.sa_mask) != 0) return Status::Internal(std::string("sigemptyset: ") + std::strerror(errno));
  std::vector<int> all = signals;
  all.push_back(SIGINT);
  for (int signo : all)
    if (sigaddset(&sa.sa_mask, signo) != 0)
      return Status::Internal("sigaddset(" + signal_name(signo) + "): " + std::strerror(errno));
  for (int signo : all) {
    Saved saved{signo, {}};
    if (sigaction(signo, &sa, &saved.previous) != 0)
      return Status::Internal("cannot install a handler for " + signal_name(signo) + ": " + std::strerror(errno));
    saved_.push_back(saved);
  }
  return Status::Ok();
}

void StopSignals::restore() {
  for (auto it = saved_.rbegin(); it != saved_.rend(); ++it)
    if (sigaction(it->signo, &it->previous, nullptr) != 0)  // only for a bad number, which install() refused
      log_warn("cannot restore the handler of " + signal_name(it->signo) + ": " + std::strerror(errno));
  saved_.clear();
}

int StopSignals::received() const { return g_signo.load(); }

double StopSignals::seconds_since_received() const {
  if (g_signo.load() == 0) return 0;
  return static_cast<double>(monotonic_ns() - g_when_ns.load()) * 1e-9;
}

}  // namespace shardtrain
