// Stop signals and the step vote's encoding, in one process: a signal is only recorded
// (the first one wins, with its time), the handlers go away with the object, a second
// SIGINT exits 130 at once, and the vote's slots decode to what the ranks put in.
#include <gtest/gtest.h>

#include <csignal>

#include "config/signal_list.h"
#include "train/step_vote.h"
#include "train/stop_signals.h"

namespace shardtrain {
namespace {

TEST(SignalList, ParsesNamesInOrderOnce) {
  auto s = parse_signal_list("f", "USR2, SIGTERM,USR2");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s.value(), (std::vector<int>{SIGUSR2, SIGTERM}));
  EXPECT_TRUE(parse_signal_list("f", " ").value().empty());
  EXPECT_EQ(parse_signal_list("f", "KILL").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(signal_name(SIGUSR1), "SIGUSR1");
  EXPECT_EQ(signal_name(SIGINT), "SIGINT");
}

TEST(StopSignals, RecordsTheFirstSignalOnlyAndRestoresOnDestruction) {
  {
    auto s = StopSignals::install({SIGUSR1, SIGUSR2});
    ASSERT_TRUE(s.ok()) << s.status().message();
    EXPECT_EQ(s.value()->received(), 0);
    EXPECT_EQ(s.value()->seconds_since_received(), 0);
    EXPECT_FALSE(StopSignals::install({SIGUSR1}).ok());  // one at a time
    ASSERT_EQ(raise(SIGUSR2), 0);                         // would terminate the test without a handler
    ASSERT_EQ(raise(SIGUSR1), 0);
    EXPECT_EQ(s.value()->received(), SIGUSR2);
    EXPECT_GE(s.value()->seconds_since_received(), 0);
    EXPECT_LT(s.value()->seconds_since_received(), 5);
  }
  struct sigaction now;
  ASSERT_EQ(sigaction(SIGUSR1, nullptr, &now), 0);
  EXPECT_EQ(now.sa_handler, SIG_DFL);
  // A new instance starts clean.
  auto again = StopSignals::install({SIGTERM});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again.value()->received(), 0);
}

TEST(StopSignals, ChangeToKeepsWhatArrivedAndReleasesTheRest) {
  auto s = StopSignals::install({SIGUSR1, SIGTERM});
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(raise(SIGTERM), 0);
  ASSERT_TRUE(s.value()->change_to({SIGUSR2}).ok());
  EXPECT_EQ(s.value()->received(), SIGTERM);  // asked for while starting: still a stop
  struct sigaction now;
  ASSERT_EQ(sigaction(SIGUSR1, nullptr, &now), 0);
  EXPECT_EQ(now.sa_handler, SIG_DFL);
  ASSERT_EQ(sigaction(SIGUSR2, nullptr, &now), 0);
  EXPECT_NE(now.sa_handler, SIG_DFL);
}

TEST(StopSignalsDeathTest, SecondSigintExitsAt130) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        auto s = StopSignals::install({});
        raise(SIGINT);  // the first asks for a stop
        if (s.value()->received() != SIGINT) std::_Exit(1);
        raise(SIGINT);  // the second exits at once
        std::_Exit(2);
      },
      testing::ExitedWithCode(130), "second SIGINT: exiting now without a checkpoint");
}

TEST(StepVote, StopSlotsDecodeToSignalRanksAndAge) {
  EXPECT_EQ(step_vote_stop(StepVote{}, 4).signo, 0);
  // What MAX over ranks 1 (SIGTERM, 2.5 s ago) and 3 (SIGUSR1, 0.1 s ago) of 4 gives.
  StepVote r1, r3, agreed;
  step_vote_add_stop(&r1, SIGTERM, 2.5, 1, 4);
  step_vote_add_stop(&r3, SIGUSR1, 0.1, 3, 4);
  for (int i = 0; i < StepVote::kSlotCount; ++i) agreed.slot[i] = std::max(r1.slot[i], r3.slot[i]);
  const StopRequest req = step_vote_stop(agreed, 4);
  EXPECT_EQ(req.signo, SIGTERM);  // the larger number
  EXPECT_EQ(req.lowest_rank, 1);
  EXPECT_EQ(req.highest_rank, 3);
  EXPECT_DOUBLE_EQ(req.age_s, 2.5);  // the earliest signal
}

}  // namespace
}  // namespace shardtrain
