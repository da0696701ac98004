// Collectives of MpiCommunicator and HostStagedCommunicator, agree_on_status and
// make_device_communicator for CPU ranks, run by ctest under mpirun -np 2 and -np 3. Every
// rank runs every test; expectations are computed from rank and world size.
#include <mpi.h>

#include <gtest/gtest.h>

#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "comm/agree.h"
#include "comm/host_staged_communicator.h"
#include "comm/make_communicator.h"
#include "comm/mpi/mpi_communicator.h"
#include "comm/mpi/topology.h"

namespace shardtrain {
namespace {

// Every collective test runs on both communicators for host buffers: plain MPI, and MPI
// with host staging over the CPU backend (the real staging code path, with host memory
// playing the device).
class CommTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "mpi") {
      auto c = MpiCommunicator::create(MPI_COMM_WORLD);
      ASSERT_TRUE(c.ok()) << c.status().ToString();
      comm = std::move(c).value();
    } else {
      auto mpi = MpiCommunicator::create_dup(MPI_COMM_WORLD);
      ASSERT_TRUE(mpi.ok()) << mpi.status().ToString();
      comm = std::make_unique<HostStagedCommunicator>(std::move(mpi).value(), backend);
    }
    rank = comm->rank();
    world = comm->world_size();
  }
  CpuBackend backend{1};
  std::unique_ptr<Communicator> comm;
  int rank = 0, world = 1;
};

INSTANTIATE_TEST_SUITE_P(Comms, CommTest, ::testing::Values("mpi", "host_staged"));

TEST_P(CommTest, AllReduceSumFloat) {
  std::vector<float> buf(1000);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<float>(rank + 1) * (i + 1);
  ASSERT_TRUE(comm->all_reduce(buf.data(), buf.size(), CommDType::kFloat32, ReduceOp::kSum).ok());
  const float ranks_sum = world * (world + 1) / 2.0f;
  for (size_t i = 0; i < buf.size(); ++i) ASSERT_FLOAT_EQ(buf[i], ranks_sum * (i + 1)) << i;
}

TEST_P(CommTest, AllReduceMaxInt64AndSumDouble) {
  int64_t v = 10 * rank;
  ASSERT_TRUE(comm->all_reduce(&v, 1, CommDType::kInt64, ReduceOp::kMax).ok());
  EXPECT_EQ(v, 10 * (world - 1));
  double d[2] = {0.5, static_cast<double>(rank)};
  ASSERT_TRUE(comm->all_reduce(d, 2, CommDType::kFloat64, ReduceOp::kSum).ok());
  EXPECT_DOUBLE_EQ(d[0], 0.5 * world);
  EXPECT_DOUBLE_EQ(d[1], world * (world - 1) / 2.0);
}

TEST_P(CommTest, BroadcastFromLastRank) {
  std::vector<float> buf(17, static_cast<float>(rank));
  ASSERT_TRUE(comm->broadcast(buf.data(), buf.size(), CommDType::kFloat32, world - 1).ok());
  for (float x : buf) EXPECT_EQ(x, static_cast<float>(world - 1));
}

TEST_P(CommTest, AllGatherOrdersByRank) {
  int32_t send[2] = {rank, 100 + rank};
  std::vector<int32_t> recv(2 * world, -1);
  ASSERT_TRUE(comm->all_gather(send, recv.data(), 2, CommDType::kInt32).ok());
  for (int r = 0; r < world; ++r) {
    EXPECT_EQ(recv[2 * r], r);
    EXPECT_EQ(recv[2 * r + 1], 100 + r);
  }
}

TEST_P(CommTest, ReduceScatterGivesEachRankItsBlock) {
  const int count = 5;
  std::vector<float> send(count * world);
  for (size_t i = 0; i < send.size(); ++i) send[i] = static_cast<float>(i) + rank;
  std::vector<float> recv(count, -1);
  ASSERT_TRUE(comm->reduce_scatter(send.data(), recv.data(), count, CommDType::kFloat32, ReduceOp::kSum).ok());
  const float rank_sum = world * (world - 1) / 2.0f;
  for (int i = 0; i < count; ++i) EXPECT_FLOAT_EQ(recv[i], world * static_cast<float>(rank * count + i) + rank_sum);
}

TEST_P(CommTest, AgreeAllOk) { EXPECT_TRUE(agree_on_status(*comm, Status::Ok()).ok()); }

TEST_P(CommTest, AgreeReturnsLowestFailingRanksErrorEverywhere) {
  // Ranks >= 1 fail with their own message; every rank must get rank 1's (lowest failing).
  Status local = rank >= 1 ? Status::NotFound("rank " + std::to_string(rank) + " missing file")
                           : Status::Ok();
  Status agreed = agree_on_status(*comm, local);
  ASSERT_FALSE(agreed.ok());
  EXPECT_EQ(agreed.code(), StatusCode::kNotFound);
  EXPECT_EQ(agreed.message(), "rank 1 missing file");
}

TEST_P(CommTest, AgreeCarriesCodeAndLongMessage) {
  std::string long_msg(5000, 'x');
  Status local = rank == 0 ? Status::InvalidArgument(long_msg) : Status::Ok();
  Status agreed = agree_on_status(*comm, local);
  EXPECT_EQ(agreed.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(agreed.message(), long_msg);
}

TEST_P(CommTest, TopologyMatchesWorld) {
  auto t = discover_topology(MPI_COMM_WORLD);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->rank, rank);
  EXPECT_EQ(t->world_size, world);
  // One node: every rank is local.
  EXPECT_EQ(t->local_size, world);
  EXPECT_EQ(t->local_rank, rank);
  int local_sum = t->local_rank;
  MPI_Allreduce(MPI_IN_PLACE, &local_sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  EXPECT_EQ(local_sum, world * (world - 1) / 2);  // local ranks are 0..world-1, each once
}

TEST_P(CommTest, DescribesItself) {
  EXPECT_EQ(comm->name(), GetParam() == "mpi" ? "mpi" : "mpi (host-staged)");
  EXPECT_EQ(comm->buffer_device(), Device::kCpu);  // host memory / the CPU backend's device
}

TEST_P(CommTest, ZeroCountIsANoOp) {
  ASSERT_TRUE(comm->all_reduce(nullptr, 0, CommDType::kFloat32, ReduceOp::kSum).ok());
  ASSERT_TRUE(comm->barrier().ok());
}

TEST_P(CommTest, NegativeCountIsRejectedBeforeAnyCommunication) {
  float x = 0;
  auto work = comm->all_reduce_async(&x, -1, CommDType::kFloat32, ReduceOp::kSum);
  ASSERT_FALSE(work.ok());
  EXPECT_EQ(work.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(work.status().message().find("all_reduce"), std::string::npos) << work.status().message();
}

TEST_P(CommTest, SeveralWorksInFlightWaitedInReverseOrder) {
  // Each work owns its staging area, so all four collectives may be outstanding at once
  // and finish in any order.
  std::vector<float> a(64, static_cast<float>(rank + 1));
  std::vector<int64_t> b(8, rank);
  std::vector<int32_t> gathered(4 * world, -1);
  const int32_t mine[4] = {rank, rank, rank, rank};
  std::vector<float> scatter_send(2 * world, 1.0f), scatter_recv(2, -1);
  std::vector<CommWorkPtr> works;
  auto issue = [&](StatusOr<CommWorkPtr> w) {
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    works.push_back(std::move(w).value());
  };
  issue(comm->all_reduce_async(a.data(), a.size(), CommDType::kFloat32, ReduceOp::kSum));
  issue(comm->broadcast_async(b.data(), b.size(), CommDType::kInt64, 0));
  issue(comm->all_gather_async(mine, gathered.data(), 4, CommDType::kInt32));
  issue(comm->reduce_scatter_async(scatter_send.data(), scatter_recv.data(), 2, CommDType::kFloat32, ReduceOp::kSum));
  ASSERT_EQ(works.size(), 4u);
  for (auto it = works.rbegin(); it != works.rend(); ++it) ASSERT_TRUE((*it)->wait().ok());
  // A second wait is harmless.
  EXPECT_TRUE(works[0]->wait().ok());

  for (float x : a) EXPECT_FLOAT_EQ(x, world * (world + 1) / 2.0f);
  for (int64_t x : b) EXPECT_EQ(x, 0);
  for (int r = 0; r < world; ++r) EXPECT_EQ(gathered[4 * r], r);
  for (float x : scatter_recv) EXPECT_FLOAT_EQ(x, static_cast<float>(world));
}

TEST_P(CommTest, DestroyingAnUnwaitedWorkFinishesIt) {
  std::vector<float> a(10, 1.0f);
  {
    auto w = comm->all_reduce_async(a.data(), a.size(), CommDType::kFloat32, ReduceOp::kSum);
    ASSERT_TRUE(w.ok());
  }  // destroyed here without wait(): it waits, uploads, and leaves nothing in flight
  for (float x : a) EXPECT_FLOAT_EQ(x, static_cast<float>(world));
  EXPECT_TRUE(comm->barrier().ok());
}

TEST(MakeDeviceCommunicator, CpuRanksGetPlainMpi) {
  auto topo = discover_topology(MPI_COMM_WORLD);
  ASSERT_TRUE(topo.ok()) << topo.status().ToString();
  auto control = MpiCommunicator::create(MPI_COMM_WORLD);
  ASSERT_TRUE(control.ok()) << control.status().ToString();
  CpuBackend backend(1);
  for (auto requested : {config::CommConfig::BACKEND_AUTO, config::CommConfig::BACKEND_MPI}) {
    config::CommConfig cfg;
    cfg.set_backend(requested);
    auto comm = make_device_communicator(cfg, backend, **control, *topo);
    ASSERT_TRUE(comm.ok()) << comm.status().ToString();
    EXPECT_EQ((*comm)->name(), "mpi");
    EXPECT_EQ((*comm)->buffer_device(), Device::kCpu);
    EXPECT_EQ((*comm)->world_size(), topo->world_size);
    int64_t v = 1;
    ASSERT_TRUE((*comm)->all_reduce(&v, 1, CommDType::kInt64, ReduceOp::kSum).ok());
    EXPECT_EQ(v, topo->world_size);
  }
}

}  // namespace
}  // namespace shardtrain
