#include "comm/watchdog.h"

#include <algorithm>
#include <cstdio>

#include "comm/sequence_check.h"

namespace shardtrain {

const char* collective_op_name(CollectiveOp op) {
  switch (op) {
    case CollectiveOp::kAllReduce: return "all_reduce";
    case CollectiveOp::kBroadcast: return "broadcast";
    case CollectiveOp::kAllGather: return "all_gather";
    case CollectiveOp::kReduceScatter: return "reduce_scatter";
    case CollectiveOp::kBarrier: return "barrier";
  }
  return "?";
}

std::string collective_text(const Collective& c, const std::string& comm) {
  std::string text = std::string(collective_op_name(c.desc.op)) + " #" + std::to_string(c.seq) + " (";
  if (c.desc.op != CollectiveOp::kBarrier)
    text += std::to_string(c.desc.count) + " " + comm_dtype_name(c.desc.dtype) + ", ";
  if (c.desc.op == CollectiveOp::kBroadcast) text += "root " + std::to_string(c.desc.root) + ", ";
  return text + "step " + std::to_string(c.step) + ", comm " + comm + ")";
}

std::string peers_text(int64_t seq, int self, const std::vector<PeerProgress>& peers) {
  constexpr int kMaxNamed = 8;
  std::string text;
  int named = 0, more = 0, unknown = 0, others = 0;
  auto name = [&](const PeerProgress& p, const std::string& state) {
    if (named == kMaxNamed) {
      ++more;
      return;
    }
    ++named;
    text += "; rank " + std::to_string(p.rank) + " last completed #" + std::to_string(p.completed) + state;
  };
  for (const PeerProgress& p : peers) {
    if (p.rank == self) continue;
    ++others;
    if (!p.known) {
      ++unknown;
      continue;
    }
    if (p.completed >= seq) continue;
    const bool inside = p.issued > p.completed;  // in some collective, waiting for it
    if (inside && p.silent_s >= kPeerSilentS) {
      char silent[32];
      std::snprintf(silent, sizeof silent, "%.1f s", p.silent_s);
      name(p, std::string(", unresponsive for ") + silent + " inside #" + std::to_string(p.issued) + " (stuck)");
    } else if (p.issued >= seq) {
      continue;  // joined it and polling: not the one holding it up
    } else if (inside) {
      name(p, ", waiting in #" + std::to_string(p.issued));
    } else {
      name(p, " (stuck)");
    }
  }
  if (more > 0) text += "; " + std::to_string(more) + " more rank(s) held it up";
  if (named == 0 && unknown < others) text += "; every rank on this host joined it and is polling";
  if (unknown > 0) {
    text += "; " + std::to_string(unknown) + (unknown == others ? " peer(s)" : " rank(s) on other hosts") +
            ": progress unknown";
  }
  return text;
}

Watchdog::Watchdog(double timeout_s) : timeout_s_(timeout_s) {}
Watchdog::~Watchdog() = default;

void Watchdog::set_sequence_check(std::unique_ptr<SequenceCheck> check) { check_ = std::move(check); }

Status Watchdog::failure() const {
  if (!failed()) return Status::Ok();
  std::lock_guard<std::mutex> lock(mu_);
  return failure_;
}

bool Watchdog::failure_agreed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return !failure_.ok() && agreed_;
}

Status Watchdog::fail(const Status& why, bool agreed) {
  std::lock_guard<std::mutex> lock(mu_);
  if (failure_.ok() && !why.ok()) {
    failure_ = why;
    agreed_ = agreed;
    failed_.store(true, std::memory_order_release);
  }
  return failure_;
}

void Watchdog::alive() {
  std::lock_guard<std::mutex> lock(boards_mu_);
  for (ProgressBoard* b : boards_) b->publish_alive();
}

void Watchdog::attach(ProgressBoard* board) {
  std::lock_guard<std::mutex> lock(boards_mu_);
  boards_.push_back(board);
}

void Watchdog::detach(ProgressBoard* board) {
  std::lock_guard<std::mutex> lock(boards_mu_);
  boards_.erase(std::remove(boards_.begin(), boards_.end(), board), boards_.end());
}

CollectiveTracker::CollectiveTracker(std::shared_ptr<Watchdog> watchdog, std::string label, int rank, int world_size,
                                     std::unique_ptr<ProgressBoard> board)
    : watchdog_(std::move(watchdog)), label_(std::move(label)), rank_(rank), world_size_(world_size),
      board_(std::move(board)) {
  if (board_) watchdog_->attach(board_.get());
}

CollectiveTracker::~CollectiveTracker() {
  if (board_) watchdog_->detach(board_.get());
}

Collective CollectiveTracker::begin(const CollectiveDesc& d) {
  Collective c;
  c.desc = d;
  c.seq = issued_.load(std::memory_order_relaxed) + 1;
  c.step = watchdog_->step();
  c.issued = WatchdogClock::now();
  issued_.store(c.seq);
  if (board_) board_->publish_issued(c.seq);
  return c;
}

void CollectiveTracker::complete(const Collective& c) {
  int64_t seen = completed_.load();
  while (seen < c.seq && !completed_.compare_exchange_weak(seen, c.seq)) {
  }
  if (board_) board_->publish_completed(c.seq);
}

bool CollectiveTracker::overdue(const Collective& c, WatchdogClock::time_point now,
                                WatchdogClock::duration not_running) const {
  const double limit = watchdog_->timeout_s();
  return limit > 0 && std::chrono::duration<double>(now - c.issued - not_running).count() > limit;
}

Status CollectiveTracker::expire(const Collective& c) {
  char after[32];
  std::snprintf(after, sizeof after, "%g s", watchdog_->timeout_s());
  std::string line = "rank " + std::to_string(rank_) + ": collective " + collective_text(c, label_) +
                     " not completed after " + after;
  if (board_) {
    line += peers_text(c.seq, rank_, board_->read());
  } else if (world_size_ > 1) {
    line += "; peers' progress unknown (no shared-memory board)";
  }
  return watchdog_->fail(Status::DeadlineExceeded(line), /*agreed=*/false);
}

}  // namespace shardtrain
