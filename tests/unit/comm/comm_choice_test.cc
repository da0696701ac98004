// choose_comm and find_shared_device: which communicator a job gets, and the messages a
// user sees when ranks share a GPU. Pure logic: no MPI, no GPU.
#include "comm/comm_choice.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace shardtrain {
namespace {

using Cfg = config::CommConfig;
const std::vector<std::string> kTwoGpus = {"node1/GPU-aaa", "node1/GPU-bbb"};
const std::vector<std::string> kOneGpuTwice = {"node1/GPU-aaa", "node1/GPU-aaa"};

TEST(FindSharedDevice, NoneWhenAllDiffer) {
  EXPECT_FALSE(find_shared_device({}).has_value());
  EXPECT_FALSE(find_shared_device({"node1/GPU-aaa"}).has_value());
  EXPECT_FALSE(find_shared_device(kTwoGpus).has_value());
}

TEST(FindSharedDevice, FindsThePairOfTwoRanks) {
  auto pair = find_shared_device(kOneGpuTwice);
  ASSERT_TRUE(pair.has_value());
  EXPECT_EQ(pair->first, 0);
  EXPECT_EQ(pair->second, 1);
}

TEST(FindSharedDevice, ThreeRanksTwoSharing) {
  auto pair = find_shared_device({"n/GPU-a", "n/GPU-b", "n/GPU-a"});
  ASSERT_TRUE(pair.has_value());
  EXPECT_EQ(pair->first, 0);
  EXPECT_EQ(pair->second, 2);
  pair = find_shared_device({"n/GPU-a", "n/GPU-b", "n/GPU-b"});
  ASSERT_TRUE(pair.has_value());
  EXPECT_EQ(pair->first, 1);
  EXPECT_EQ(pair->second, 2);
}

TEST(FindSharedDevice, ReturnsTheFirstPairInRankOrder) {
  // Ranks 1 and 3 share, and so do 2 and 4: the pair with the lowest first rank wins.
  auto pair = find_shared_device({"n/GPU-a", "n/GPU-b", "n/GPU-c", "n/GPU-b", "n/GPU-c"});
  ASSERT_TRUE(pair.has_value());
  EXPECT_EQ(pair->first, 1);
  EXPECT_EQ(pair->second, 3);
}

TEST(FindSharedDevice, SameUuidOnDifferentHostsIsNotShared) {
  // The identity includes the hostname, so equal device strings on two nodes differ.
  EXPECT_FALSE(find_shared_device({"node1/GPU-aaa", "node2/GPU-aaa"}).has_value());
  EXPECT_FALSE(find_shared_device({"node1/cpu", "node2/cpu"}).has_value());
}

TEST(CommKindName, NamesEveryKind) {
  EXPECT_STREQ(comm_kind_name(CommKind::kMpi), "mpi");
  EXPECT_STREQ(comm_kind_name(CommKind::kMpiHostStaged), "mpi (host-staged)");
  EXPECT_STREQ(comm_kind_name(CommKind::kNccl), "nccl");
}

TEST(ChooseComm, CpuIsAlwaysMpi) {
  // Several CPU ranks on one host have equal identities; that is fine for MPI.
  for (auto requested : {Cfg::BACKEND_AUTO, Cfg::BACKEND_MPI}) {
    for (bool built : {false, true}) {
      auto c = choose_comm(requested, Device::kCpu, built, {"node1/cpu", "node1/cpu"});
      ASSERT_TRUE(c.ok()) << c.status().ToString();
      EXPECT_EQ(c->kind, CommKind::kMpi);
      EXPECT_EQ(c->note, "");
    }
  }
}

TEST(ChooseComm, CudaWithMpiIsHostStagedWithoutNote) {
  for (const auto& ids : {kTwoGpus, kOneGpuTwice}) {
    auto c = choose_comm(Cfg::BACKEND_MPI, Device::kCuda, true, ids);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    EXPECT_EQ(c->kind, CommKind::kMpiHostStaged);
    EXPECT_EQ(c->note, "");
  }
}

TEST(ChooseComm, CudaAutoPicksNcclWhenEveryRankHasItsGpu) {
  auto c = choose_comm(Cfg::BACKEND_AUTO, Device::kCuda, true, kTwoGpus);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->kind, CommKind::kNccl);
  EXPECT_EQ(c->note, "");
}

TEST(ChooseComm, CudaAutoFallsBackToHostStagedWhenRanksShareAGpu) {
  auto c = choose_comm(Cfg::BACKEND_AUTO, Device::kCuda, true, {"n/GPU-a", "n/GPU-b", "n/GPU-b"});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->kind, CommKind::kMpiHostStaged);
  EXPECT_EQ(c->note,
            "ranks 1 and 2 share GPU n/GPU-b: NCCL cannot run two ranks on one GPU, using MPI with host "
            "staging instead");
}

TEST(ChooseComm, CudaAutoWithoutNcclBuiltFallsBackWithANote) {
  auto c = choose_comm(Cfg::BACKEND_AUTO, Device::kCuda, false, kTwoGpus);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->kind, CommKind::kMpiHostStaged);
  EXPECT_NE(c->note.find("no NCCL"), std::string::npos) << c->note;
}

TEST(ChooseComm, CudaNcclExplicitWhenEveryRankHasItsGpu) {
  auto c = choose_comm(Cfg::BACKEND_NCCL, Device::kCuda, true, kTwoGpus);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->kind, CommKind::kNccl);
}

TEST(ChooseComm, CudaNcclExplicitWithSharedGpuIsAnErrorNamingTheRanks) {
  auto c = choose_comm(Cfg::BACKEND_NCCL, Device::kCuda, true, kOneGpuTwice);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(c.status().message(),
            "comm.backend=NCCL: ranks 0 and 1 share GPU node1/GPU-aaa (NCCL needs one GPU per rank): use "
            "comm.backend=AUTO or MPI, or fewer ranks per node");
}

TEST(ChooseComm, CudaNcclExplicitWithoutNcclBuiltIsUnavailable) {
  auto c = choose_comm(Cfg::BACKEND_NCCL, Device::kCuda, false, kTwoGpus);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(c.status().message(), "comm.backend=NCCL but this build has no NCCL (-DSHARDTRAIN_CUDA=OFF)");
}

TEST(ChooseComm, CudaSingleRankAutoIsNccl) {
  auto c = choose_comm(Cfg::BACKEND_AUTO, Device::kCuda, true, {"node1/GPU-aaa"});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->kind, CommKind::kNccl);
}

}  // namespace
}  // namespace shardtrain
