// agree_step_check under mpirun -np 2 and -np 3: every rank gets the same verdict, naming
// the lowest rank whose loss is not finite and what it was, and the gradient norm's kind.
#include <mpi.h>

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "comm/mpi/mpi_communicator.h"
#include "train/step_check.h"

namespace shardtrain {
namespace {

class StepCheckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = MpiCommunicator::create(MPI_COMM_WORLD);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    comm = std::move(c).value();
    rank = comm->rank();
  }
  std::unique_ptr<MpiCommunicator> comm;
  int rank = 0;
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = HUGE_VAL;
};

TEST_F(StepCheckTest, FiniteEverywhereIsFinite) {
  auto c = agree_step_check(*comm, 1e30 * (rank + 1), 12.5);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(c->finite());
  EXPECT_EQ(c->describe(), "");
}

TEST_F(StepCheckTest, NamesTheLowestRankWithANonFiniteLossAndItsValue) {
  // Rank 0 is fine, rank 1 sees -inf, rank 2 (with -np 3) NaN: every rank hears of rank 1.
  const double mine = rank == 0 ? 2.5 : rank == 1 ? -inf : nan;
  auto c = agree_step_check(*comm, mine, 3.0);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_FALSE(c->finite());
  EXPECT_EQ(c->loss_rank, 1);
  EXPECT_EQ(c->loss, NonfiniteKind::kNegInf);
  EXPECT_EQ(c->describe(), "loss is -inf on rank 1");
}

TEST_F(StepCheckTest, NamesANonFiniteGradientNorm) {
  auto c = agree_step_check(*comm, 1.0, inf);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_FALSE(c->finite());
  EXPECT_EQ(c->loss_rank, -1);
  EXPECT_EQ(c->describe(), "gradient norm is inf");
  c = agree_step_check(*comm, rank == 0 ? nan : 1.0, nan);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->describe(), "loss is nan on rank 0 and gradient norm is nan");
}

}  // namespace
}  // namespace shardtrain
