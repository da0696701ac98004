// select_cuda_device: which GPU a rank takes, and what the user is told when there is
// none. Host logic only, so it runs (and must pass) on machines without a GPU.
#include <gtest/gtest.h>

#include "backend/device_select.h"

namespace shardtrain {
namespace {

TEST(SelectCudaDevice, RoundRobinOverVisibleDevices) {
  // One rank per GPU on an 8-GPU node.
  for (int rank = 0; rank < 8; ++rank) {
    auto d = select_cuda_device(rank, 8, "");
    ASSERT_TRUE(d.ok()) << d.status().message();
    EXPECT_EQ(*d, rank);
  }
  // More ranks than GPUs share them round-robin.
  const int expected[] = {0, 1, 2, 0, 1, 2, 0};
  for (int rank = 0; rank < 7; ++rank) {
    auto d = select_cuda_device(rank, 3, "");
    ASSERT_TRUE(d.ok()) << d.status().message();
    EXPECT_EQ(*d, expected[rank]) << "rank " << rank;
  }
  auto one = select_cuda_device(5, 1, "");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(*one, 0);
}

TEST(SelectCudaDevice, NoDevicesIsUnavailableWithAHint) {
  auto d = select_cuda_device(0, 0, "");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kUnavailable);
  const std::string& msg = d.status().message();
  EXPECT_NE(msg.find("no usable GPU"), std::string::npos) << msg;
  EXPECT_NE(msg.find("the CUDA runtime sees 0 devices"), std::string::npos) << msg;
  EXPECT_NE(msg.find("device=cpu"), std::string::npos) << msg;  // what to do instead
}

TEST(SelectCudaDevice, ProbeErrorTextReachesTheUser) {
  const std::string probe = "cudaGetDeviceCount failed: cudaErrorNoDevice (no CUDA-capable device is detected)";
  // A failed probe wins even if a count came back: the count is then meaningless.
  for (int count : {0, 2}) {
    auto d = select_cuda_device(1, count, probe);
    ASSERT_FALSE(d.ok()) << "count " << count;
    EXPECT_EQ(d.status().code(), StatusCode::kUnavailable);
    EXPECT_NE(d.status().message().find(probe), std::string::npos) << d.status().message();
    EXPECT_EQ(d.status().message().find("sees 0 devices"), std::string::npos) << d.status().message();
  }
}

TEST(SelectCudaDevice, NegativeLocalRankIsInvalid) {
  auto d = select_cuda_device(-1, 4, "");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(d.status().message().find("-1"), std::string::npos) << d.status().message();
  // Checked before the devices: a bad rank is a bug whatever the node has.
  auto none = select_cuda_device(-3, 0, "");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace shardtrain
