// The watchdog's bookkeeping without MPI: sequence numbers, steps, deadlines, the first
// failure, the one-line report and what it says about peers, the wait backoff, and the
// sequence check's comparison and message. (tests/mpi/watchdog_test.cc runs the real
// thing across ranks.)
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <vector>

#include "comm/fault_injection.h"
#include "comm/mpi/mpi_wait.h"
#include "comm/sequence_check.h"
#include "comm/watchdog.h"

namespace shardtrain {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::seconds;

CollectiveDesc all_reduce_desc(int64_t count) { return {CollectiveOp::kAllReduce, count, CommDType::kFloat32}; }

PeerProgress peer(int rank, int64_t issued, int64_t completed, double silent_s = 0, bool known = true) {
  PeerProgress p;
  p.rank = rank;
  p.known = known;
  p.issued = issued;
  p.completed = completed;
  p.silent_s = silent_s;
  return p;
}

TEST(Watchdog, TrackerNumbersCollectivesFromOneAndRecordsTheStep) {
  auto wd = std::make_shared<Watchdog>(10);
  CollectiveTracker t(wd, "grad", 0, 2, nullptr);
  wd->set_step(56);
  const Collective a = t.begin(all_reduce_desc(25690));
  wd->set_step(57);
  const Collective b = t.begin({CollectiveOp::kBroadcast, 4, CommDType::kInt64, 1});
  EXPECT_EQ(a.seq, 1);
  EXPECT_EQ(b.seq, 2);
  EXPECT_EQ(a.step, 56);
  EXPECT_EQ(b.step, 57);
  EXPECT_EQ(t.last_issued(), 2);
  // Completions may arrive out of order (NCCL's thread); the largest stays.
  t.complete(b);
  t.complete(a);
  EXPECT_EQ(t.last_completed(), 2);
}

TEST(Watchdog, CollectiveTextNamesEverything) {
  Collective c;
  c.desc = all_reduce_desc(25690);
  c.seq = 1234;
  c.step = 57;
  EXPECT_EQ(collective_text(c, "grad"), "all_reduce #1234 (25690 float32, step 57, comm grad)");
  c.desc = {CollectiveOp::kBroadcast, 4, CommDType::kInt64, 0};
  EXPECT_EQ(collective_text(c, "control"), "broadcast #1234 (4 int64, root 0, step 57, comm control)");
  c.desc = {CollectiveOp::kBarrier};
  EXPECT_EQ(collective_text(c, "control"), "barrier #1234 (step 57, comm control)");
}

TEST(Watchdog, OverdueOnlyPastTheTimeoutAndNeverWithZero) {
  auto wd = std::make_shared<Watchdog>(10);
  CollectiveTracker t(wd, "grad", 0, 2, nullptr);
  const Collective c = t.begin(all_reduce_desc(1));
  EXPECT_FALSE(t.overdue(c, c.issued + seconds(9)));
  EXPECT_TRUE(t.overdue(c, c.issued + seconds(11)));
  // Time this process itself did not run (stopped, then continued) is not the peers' fault.
  EXPECT_FALSE(t.overdue(c, c.issued + seconds(11), seconds(3)));
  wd->set_timeout(0);
  EXPECT_FALSE(t.overdue(c, c.issued + seconds(100000)));
}

TEST(Watchdog, ExpireGivesTheOneLineAndStopsNewWork) {
  auto wd = std::make_shared<Watchdog>(10);
  CollectiveTracker t(wd, "grad", 0, 2, nullptr);
  wd->set_step(57);
  const Collective c = t.begin(all_reduce_desc(25690));
  EXPECT_FALSE(wd->failed());
  const Status s = t.expire(c);
  EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(s.message(),
            "rank 0: collective all_reduce #1 (25690 float32, step 57, comm grad) not completed after 10 s; "
            "peers' progress unknown (no shared-memory board)");
  EXPECT_TRUE(wd->failed());
  EXPECT_FALSE(wd->failure_agreed());  // a timeout is this rank's view alone
  // The first failure wins: a later one (another communicator) returns the first.
  CollectiveTracker other(wd, "control", 0, 2, nullptr);
  const Status later = other.expire(other.begin(all_reduce_desc(4)));
  EXPECT_EQ(later.message(), s.message());
  EXPECT_EQ(wd->failure().message(), s.message());
}

TEST(Watchdog, SequenceMismatchIsAnAgreedFailure) {
  Watchdog wd;
  EXPECT_TRUE(wd.failure().ok());
  EXPECT_FALSE(wd.failure_agreed());
  (void)wd.fail(Status::FailedPrecondition("mismatch"), /*agreed=*/true);
  EXPECT_TRUE(wd.failure_agreed());
  EXPECT_EQ(wd.failure().message(), "mismatch");
}

TEST(Watchdog, SkipIsTakenOnce) {
  Watchdog wd;
  EXPECT_FALSE(wd.take_skip());
  wd.skip_next_collective();
  EXPECT_TRUE(wd.take_skip());
  EXPECT_FALSE(wd.take_skip());
}

TEST(Watchdog, PeersTextNamesTheRankThatDidNotJoin) {
  // Rank 0 waits in #1234; rank 1 is computing (or stopped) after completing #1233.
  EXPECT_EQ(peers_text(1234, 0, {peer(0, 1234, 1233), peer(1, 1233, 1233)}), "; rank 1 last completed #1233 (stuck)");
}

TEST(Watchdog, PeersTextNamesARankSilentInsideTheCollective) {
  // Rank 1 joined #1234 and then stopped polling (SIGSTOP): joining is not enough.
  EXPECT_EQ(peers_text(1234, 0, {peer(0, 1234, 1233), peer(1, 1234, 1233, 5.04)}),
            "; rank 1 last completed #1233, unresponsive for 5.0 s inside #1234 (stuck)");
  // Joined and polling: not the culprit.
  EXPECT_EQ(peers_text(1234, 0, {peer(0, 1234, 1233), peer(1, 1234, 1233, 0.001)}),
            "; every rank on this host joined it and is polling");
}

TEST(Watchdog, PeersTextOnThreeRanksAndOtherHosts) {
  const std::vector<PeerProgress> peers = {
      peer(0, 10, 9),             // self
      peer(1, 10, 9, 0.002),      // waiting with us
      peer(2, 8, 7, 0.003),       // waiting in an earlier collective
      peer(3, 9, 9),              // did not join: stuck
      peer(4, 0, 0, 0, false),    // another host
  };
  EXPECT_EQ(peers_text(10, 0, peers),
            "; rank 2 last completed #7, waiting in #8; rank 3 last completed #9 (stuck); "
            "1 rank(s) on other hosts: progress unknown");
  // A peer that already completed it is not named either.
  EXPECT_EQ(peers_text(10, 1, {peer(0, 11, 10), peer(1, 10, 9)}), "; every rank on this host joined it and is polling");
  EXPECT_EQ(peers_text(10, 0, {peer(0, 10, 9), peer(1, 0, 0, 0, false)}), "; 1 peer(s): progress unknown");
}

TEST(Watchdog, PeersTextNamesAtMostEight) {
  std::vector<PeerProgress> peers = {peer(0, 5, 4)};
  for (int r = 1; r <= 10; ++r) peers.push_back(peer(r, 4, 4));
  const std::string text = peers_text(5, 0, peers);
  EXPECT_NE(text.find("rank 8 last completed #4 (stuck)"), std::string::npos) << text;
  EXPECT_EQ(text.find("rank 9 "), std::string::npos) << text;
  EXPECT_NE(text.find("; 2 more rank(s) held it up"), std::string::npos) << text;
}

TEST(Watchdog, WaitBackoffSpinsThenPollsOftenWhileDataMayMoveThenEveryMillisecond) {
  EXPECT_EQ(wait_backoff(microseconds(0)).count(), 0);
  EXPECT_EQ(wait_backoff(microseconds(99)).count(), 0);  // spinning
  EXPECT_EQ(wait_backoff(microseconds(400)), microseconds(50));
  EXPECT_EQ(wait_backoff(microseconds(800)), microseconds(100));
  EXPECT_EQ(wait_backoff(milliseconds(99)), microseconds(100));  // a large collective's rounds
  EXPECT_EQ(wait_backoff(milliseconds(100)), milliseconds(1));   // a late peer
  EXPECT_EQ(wait_backoff(seconds(100)), milliseconds(1));
}

TEST(SequenceCheck, EqualRecordsAgreeAndTheFirstDifferentRankIsNamed) {
  Collective c;
  c.desc = all_reduce_desc(100);
  c.seq = 12;
  c.step = 5;
  std::vector<SequenceRecord> records(3, sequence_record(c, "grad"));
  EXPECT_EQ(sequence_first_mismatch(records), -1);

  Collective other = c;
  other.desc = {CollectiveOp::kBroadcast, 4, CommDType::kInt64, 0};
  records[2] = sequence_record(other, "control");
  Collective later = c;
  later.step = 6;  // same collective one step later: what a skipped collective looks like
  records[1] = sequence_record(later, "grad");
  ASSERT_EQ(sequence_first_mismatch(records), 1);
  EXPECT_EQ(sequence_mismatch_text(records, 1),
            "rank 0 issued all_reduce #12 of 100 float32 (step 5, comm grad), "
            "rank 1 issued all_reduce #12 of 100 float32 (step 6, comm grad)");
  EXPECT_EQ(sequence_mismatch_text(records, 2),
            "rank 0 issued all_reduce #12 of 100 float32 (step 5, comm grad), "
            "rank 2 issued broadcast #12 of 4 int64 from root 0 (step 5, comm control)");
}

TEST(SequenceCheck, LongLabelsAreCutNotOverrun) {
  Collective c;
  c.desc = {CollectiveOp::kBarrier};
  c.seq = 1;
  const SequenceRecord r = sequence_record(c, "a-very-long-communicator-name");
  const std::vector<SequenceRecord> records = {r, sequence_record(c, "other")};
  EXPECT_EQ(sequence_mismatch_text(records, 1),
            "rank 0 issued barrier #1 (step 0, comm a-very-long-com), rank 1 issued barrier #1 (step 0, comm other)");
}

TEST(FaultInjection, SkipArmsOnlyOnTheFaultsRankAndStep) {
  config::DebugConfig debug;
  auto* f = debug.mutable_fault();
  f->set_rank(1);
  f->set_step(5);
  f->set_action(config::FaultConfig::ACTION_SKIP_COLLECTIVE);
  Watchdog wd;
  fault_inject_at_step(debug, /*rank=*/0, 5, wd);
  EXPECT_FALSE(wd.take_skip());
  fault_inject_at_step(debug, /*rank=*/1, 4, wd);
  EXPECT_FALSE(wd.take_skip());
  fault_inject_at_step(debug, /*rank=*/1, 5, wd);
  EXPECT_TRUE(wd.take_skip());
}

TEST(FaultInjection, SleepBlocksForItsSeconds) {
  config::DebugConfig debug;
  auto* f = debug.mutable_fault();
  f->set_rank(0);
  f->set_step(1);
  f->set_action(config::FaultConfig::ACTION_SLEEP);
  f->set_seconds(0.2f);
  Watchdog wd;
  const auto start = std::chrono::steady_clock::now();
  fault_inject_at_step(debug, 0, 1, wd);
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(190));
  EXPECT_FALSE(wd.take_skip());
}

TEST(FaultInjection, RankMustExistInTheJob) {
  config::DebugConfig debug;
  EXPECT_TRUE(fault_check_rank(debug, 1).ok());
  debug.mutable_fault()->set_rank(2);
  EXPECT_TRUE(fault_check_rank(debug, 3).ok());
  const Status s = fault_check_rank(debug, 2);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "debug.fault.rank is 2 but the job has 2 rank(s)");
}

}  // namespace
}  // namespace shardtrain
