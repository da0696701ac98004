// The collective watchdog across real ranks (mpirun -np 2 and -np 3): a rank that never
// joins, or joins and is stopped (SIGSTOP), is named when the others' timeout passes, the
// waiting ranks sleep instead of spinning, nothing new starts after a timeout, and
// comm.check_sequence reports the first mismatch identically on every rank.
//
// The last rank plays the faulty one. Buffers that a timed-out collective may still write
// are static: MPI cannot cancel a collective, and it finishes later, when the late rank
// joins and the others progress it in the MPI_Barrier that ends each test.
#include <mpi.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "comm/mpi/mpi_communicator.h"
#include "comm/progress_board.h"
#include "comm/sequence_check.h"
#include "comm/watchdog.h"

namespace shardtrain {
namespace {

using Clock = std::chrono::steady_clock;

int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
int world_size() {
  int n = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

std::unique_ptr<MpiCommunicator> make_comm(std::shared_ptr<Watchdog> wd, const std::string& label = "test") {
  auto c = MpiCommunicator::create_dup(MPI_COMM_WORLD, std::move(wd), label);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? std::move(c).value() : nullptr;
}

// A watchdog with comm.check_sequence on (collective); null on failure.
std::shared_ptr<Watchdog> checking_watchdog() {
  auto check = SequenceCheck::create(MPI_COMM_WORLD);
  EXPECT_TRUE(check.ok()) << check.status().ToString();
  if (!check.ok()) return nullptr;
  auto wd = std::make_shared<Watchdog>(30);
  wd->set_sequence_check(std::move(check).value());
  return wd;
}

// User plus system CPU seconds of this process (every thread).
double cpu_seconds() {
  rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + 1e-6 * (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

TEST(Watchdog, TimeoutNamesTheRankThatNeverJoinedAndWaitsWithoutSpinning) {
  const int rank = world_rank(), last = world_size() - 1;
  auto wd = std::make_shared<Watchdog>(rank == last ? 60 : 1);
  auto comm = make_comm(wd);
  ASSERT_NE(comm, nullptr);
  wd->set_step(3);
  static float buf[4] = {1, 1, 1, 1};
  if (rank == last) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // computing, or stopped
    EXPECT_TRUE(comm->all_reduce(buf, 4, CommDType::kFloat32, ReduceOp::kSum).ok());
  } else {
    const double cpu0 = cpu_seconds();
    const auto t0 = Clock::now();
    const Status s = comm->all_reduce(buf, 4, CommDType::kFloat32, ReduceOp::kSum);
    const double wall = seconds_since(t0), cpu = cpu_seconds() - cpu0;
    EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded) << s.ToString();
    const std::string head = "rank " + std::to_string(rank) +
                             ": collective all_reduce #1 (4 float32, step 3, comm test) not completed after 1 s; ";
    EXPECT_EQ(s.message().substr(0, head.size()), head) << s.message();
    EXPECT_NE(s.message().find("rank " + std::to_string(last) + " last completed #0 (stuck)"), std::string::npos)
        << s.message();
    EXPECT_GE(wall, 1.0);
    EXPECT_LT(wall, 2.4) << "the timeout fired late";
    // Waiting sleeps: far below one core (spinning would be ~wall).
    EXPECT_LT(cpu, 0.3 * wall) << "cpu " << cpu << " s over " << wall << " s";
    // The job is going down: no communicator of the watchdog starts anything new.
    const Status again = comm->barrier();
    EXPECT_EQ(again.message(), s.message());
    EXPECT_TRUE(wd->failed());
    EXPECT_FALSE(wd->failure_agreed());
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST(Watchdog, StoppedPeerInsideTheCollectiveIsNamedUnresponsive) {
  const int rank = world_rank(), last = world_size() - 1;
  std::vector<int> pids(world_size());
  int mine = getpid();
  MPI_Allgather(&mine, 1, MPI_INT, pids.data(), 1, MPI_INT, MPI_COMM_WORLD);
  // The waiting ranks, to continue the stopped one only once all of them have looked.
  MPI_Comm waiting = MPI_COMM_NULL;
  MPI_Comm_split(MPI_COMM_WORLD, rank == last ? MPI_UNDEFINED : 0, rank, &waiting);
  auto wd = std::make_shared<Watchdog>(rank == last ? 60 : 2);
  auto comm = make_comm(wd);
  ASSERT_NE(comm, nullptr);
  // The stopped rank issues #1 and stops. Whether the others can finish #1 without it
  // depends on MPI's algorithm (its data may already be on its way); #2 they cannot.
  static float buf1[4] = {1, 1, 1, 1}, buf2[4] = {1, 1, 1, 1};
  if (rank == last) {
    auto w1 = comm->all_reduce_async(buf1, 4, CommDType::kFloat32, ReduceOp::kSum);
    ASSERT_TRUE(w1.ok());
    raise(SIGSTOP);  // joined, then stopped: rank 0 continues it after its timeout
    EXPECT_TRUE((*w1)->wait().ok());
    EXPECT_TRUE(comm->all_reduce(buf2, 4, CommDType::kFloat32, ReduceOp::kSum).ok());  // late, for cleanup
  } else {
    auto w1 = comm->all_reduce_async(buf1, 4, CommDType::kFloat32, ReduceOp::kSum);
    auto w2 = comm->all_reduce_async(buf2, 4, CommDType::kFloat32, ReduceOp::kSum);
    ASSERT_TRUE(w1.ok() && w2.ok());
    Status s = (*w1)->wait();
    if (s.ok()) s = (*w2)->wait();
    MPI_Barrier(waiting);
    MPI_Comm_free(&waiting);
    if (rank == 0) kill(pids[last], SIGCONT);
    EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded) << s.ToString();
    const std::string want = "rank " + std::to_string(last) + " last completed #0, unresponsive for ";
    EXPECT_NE(s.message().find(want), std::string::npos) << s.message();
    EXPECT_NE(s.message().find(" inside #1 (stuck)"), std::string::npos) << s.message();
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST(Watchdog, LatePeerWithinTheTimeoutOrWithNoTimeoutIsWaitedFor) {
  const int rank = world_rank(), last = world_size() - 1;
  for (double timeout : {30.0, 0.0}) {
    auto wd = std::make_shared<Watchdog>(timeout);
    auto comm = make_comm(wd);
    ASSERT_NE(comm, nullptr);
    if (rank == last) std::this_thread::sleep_for(std::chrono::milliseconds(300));
    int64_t v = 1;
    const Status s = comm->all_reduce(&v, 1, CommDType::kInt64, ReduceOp::kSum);
    EXPECT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(v, world_size());
    EXPECT_TRUE(comm->barrier().ok());
  }
}

TEST(SequenceCheck, MismatchIsReportedIdenticallyOnEveryRankBeforeAnythingRuns) {
  const int rank = world_rank(), last = world_size() - 1;
  auto wd = checking_watchdog();
  ASSERT_NE(wd, nullptr);
  auto comm = make_comm(wd);
  ASSERT_NE(comm, nullptr);

  int64_t v = 1;  // matching collectives pass the check and run
  ASSERT_TRUE(comm->all_reduce(&v, 1, CommDType::kInt64, ReduceOp::kSum).ok());
  EXPECT_EQ(v, world_size());

  wd->set_step(5);
  std::vector<float> a(100, 1.0f);
  std::vector<int64_t> b(4, 7);
  const Status s = rank == last ? comm->broadcast(b.data(), 4, CommDType::kInt64, 0)
                                : comm->all_reduce(a.data(), 100, CommDType::kFloat32, ReduceOp::kSum);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.message(), "comm.check_sequence: ranks issued different collectives: rank 0 issued all_reduce #2 of "
                         "100 float32 (step 5, comm test), rank " + std::to_string(last) +
                             " issued broadcast #2 of 4 int64 from root 0 (step 5, comm test)");
  EXPECT_TRUE(wd->failure_agreed());
  EXPECT_EQ(a[0], 1.0f);  // nothing ran
  EXPECT_EQ(b[0], 7);
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST(SequenceCheck, SkippedCollectiveIsCaughtEvenOnAnotherCommunicator) {
  const int rank = world_rank(), last = world_size() - 1;
  auto wd = checking_watchdog();
  ASSERT_NE(wd, nullptr);
  auto grad = make_comm(wd, "grad");
  auto control = make_comm(wd, "control");
  ASSERT_TRUE(grad && control);

  if (rank == last) wd->skip_next_collective();  // debug.fault ACTION_SKIP_COLLECTIVE
  std::vector<float> g(8, 1.0f);
  Status s = grad->all_reduce(g.data(), 8, CommDType::kFloat32, ReduceOp::kSum);
  if (rank == last) {
    EXPECT_TRUE(s.ok()) << "a skipped collective returns at once";
    EXPECT_EQ(g[0], 1.0f);
    double m[2] = {0, 0};
    s = control->all_reduce(m, 2, CommDType::kFloat64, ReduceOp::kSum);
  }
  EXPECT_EQ(s.message(), "comm.check_sequence: ranks issued different collectives: rank 0 issued all_reduce #1 of "
                         "8 float32 (step 0, comm grad), rank " + std::to_string(last) +
                             " issued all_reduce #1 of 2 float64 (step 0, comm control)");
  EXPECT_TRUE(wd->failure_agreed());
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST(ProgressBoard, EveryRankOnTheHostSeesEveryOthersProgress) {
  auto board = ProgressBoard::create(MPI_COMM_WORLD);
  ASSERT_TRUE(board.ok()) << board.status().ToString();
  ASSERT_NE(board->get(), nullptr) << "no shared memory here";
  const int rank = world_rank();
  (*board)->publish_issued(rank + 10);
  (*board)->publish_completed(rank + 5);
  (*board)->publish_completed(rank + 4);  // out of order: the largest stays
  MPI_Barrier(MPI_COMM_WORLD);
  const std::vector<PeerProgress> seen = (*board)->read();
  ASSERT_EQ(static_cast<int>(seen.size()), world_size());
  for (int r = 0; r < world_size(); ++r) {
    EXPECT_EQ(seen[r].rank, r);
    EXPECT_TRUE(seen[r].known);  // mpirun on one host
    EXPECT_EQ(seen[r].issued, r + 10);
    EXPECT_EQ(seen[r].completed, r + 5);
    EXPECT_LT(seen[r].silent_s, 30);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

}  // namespace
}  // namespace shardtrain
