// Collectives of MpiCommunicator and agree_on_status, run by ctest under mpirun -np 2 and
// -np 3. Every rank runs every test; expectations are computed from rank and world size.
#include <mpi.h>

#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "comm/agree.h"
#include "comm/mpi/mpi_communicator.h"
#include "comm/mpi/topology.h"

namespace shardtrain {
namespace {

class CommTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = MpiCommunicator::create(MPI_COMM_WORLD);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    comm = std::move(c).value();
    rank = comm->rank();
    world = comm->world_size();
  }
  std::unique_ptr<MpiCommunicator> comm;
  int rank = 0, world = 1;
};

TEST_F(CommTest, AllReduceSumFloat) {
  std::vector<float> buf(1000);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<float>(rank + 1) * (i + 1);
  ASSERT_TRUE(comm->all_reduce(buf.data(), buf.size(), CommDType::kFloat32, ReduceOp::kSum).ok());
  const float ranks_sum = world * (world + 1) / 2.0f;
  for (size_t i = 0; i < buf.size(); ++i) ASSERT_FLOAT_EQ(buf[i], ranks_sum * (i + 1)) << i;
}

TEST_F(CommTest, AllReduceMaxInt64AndSumDouble) {
  int64_t v = 10 * rank;
  ASSERT_TRUE(comm->all_reduce(&v, 1, CommDType::kInt64, ReduceOp::kMax).ok());
  EXPECT_EQ(v, 10 * (world - 1));
  double d[2] = {0.5, static_cast<double>(rank)};
  ASSERT_TRUE(comm->all_reduce(d, 2, CommDType::kFloat64, ReduceOp::kSum).ok());
  EXPECT_DOUBLE_EQ(d[0], 0.5 * world);
  EXPECT_DOUBLE_EQ(d[1], world * (world - 1) / 2.0);
}

TEST_F(CommTest, BroadcastFromLastRank) {
  std::vector<float> buf(17, static_cast<float>(rank));
  ASSERT_TRUE(comm->broadcast(buf.data(), buf.size(), CommDType::kFloat32, world - 1).ok());
  for (float x : buf) EXPECT_EQ(x, static_cast<float>(world - 1));
}

TEST_F(CommTest, AllGatherOrdersByRank) {
  int32_t send[2] = {rank, 100 + rank};
  std::vector<int32_t> recv(2 * world, -1);
  ASSERT_TRUE(comm->all_gather(send, recv.data(), 2, CommDType::kInt32).ok());
  for (int r = 0; r < world; ++r) {
    EXPECT_EQ(recv[2 * r], r);
    EXPECT_EQ(recv[2 * r + 1], 100 + r);
  }
}

TEST_F(CommTest, ReduceScatterGivesEachRankItsBlock) {
  const int count = 5;
  std::vector<float> send(count * world);
  for (size_t i = 0; i < send.size(); ++i) send[i] = static_cast<float>(i) + rank;
  std::vector<float> recv(count, -1);
  ASSERT_TRUE(comm->reduce_scatter(send.data(), recv.data(), count, CommDType::kFloat32, ReduceOp::kSum).ok());
  const float rank_sum = world * (world - 1) / 2.0f;
  for (int i = 0; i < count; ++i) EXPECT_FLOAT_EQ(recv[i], world * static_cast<float>(rank * count + i) + rank_sum);
}

TEST_F(CommTest, AgreeAllOk) { EXPECT_TRUE(agree_on_status(*comm, Status::Ok()).ok()); }

TEST_F(CommTest, AgreeReturnsLowestFailingRanksErrorEverywhere) {
  // Ranks >= 1 fail with their own message; every rank must get rank 1's (lowest failing).
  Status local = rank >= 1 ? Status::NotFound("rank " + std::to_string(rank) + " missing file")
                           : Status::Ok();
  Status agreed = agree_on_status(*comm, local);
  ASSERT_FALSE(agreed.ok());
  EXPECT_EQ(agreed.code(), StatusCode::kNotFound);
  EXPECT_EQ(agreed.message(), "rank 1 missing file");
}

TEST_F(CommTest, AgreeCarriesCodeAndLongMessage) {
  std::string long_msg(5000, 'x');
  Status local = rank == 0 ? Status::InvalidArgument(long_msg) : Status::Ok();
  Status agreed = agree_on_status(*comm, local);
  EXPECT_EQ(agreed.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(agreed.message(), long_msg);
}

TEST_F(CommTest, TopologyMatchesWorld) {
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

}  // namespace
}  // namespace shardtrain
