// GradReducer under mpirun: buckets issued during "backward" and at finish() sum the
// gradient buffer over ranks, for in-place (view) buckets and packed (staged) ones alike,
// and leave everything outside the gradient tensors alone.
#include <mpi.h>

#include <gtest/gtest.h>

#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "comm/grad_bucketer.h"
#include "comm/mpi/mpi_communicator.h"

namespace shardtrain {
namespace {

class GradReducerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = MpiCommunicator::create(MPI_COMM_WORLD);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    comm = std::move(c).value();
  }
  // Value rank r puts at element i; the sum over ranks is (i + 1) * world * (world + 1) / 2.
  float mine(int64_t i) const { return static_cast<float>((i + 1) * (comm->rank() + 1)); }
  float summed(int64_t i) const {
    const int w = comm->world_size();
    return static_cast<float>((i + 1) * (w * (w + 1) / 2));
  }
  // Runs two steps through a reducer over `tensors` inside a buffer of `total` floats:
  // readiness is reported tensor by tensor in backward order, as the Model does.
  void run(const std::vector<GradTensor>& tensors, int64_t total, int64_t cap_bytes) {
    CpuBackend be(1);
    std::vector<float> flat(total);
    GradReducer reducer(*comm, be, flat.data(), tensors, cap_bytes);
    for (int step = 0; step < 2; ++step) {
      for (int64_t i = 0; i < total; ++i) flat[i] = mine(i);
      for (int t = static_cast<int>(tensors.size()) - 1; t >= 0; --t) reducer.ready_from(t);
      ASSERT_TRUE(reducer.finish().ok());
      std::vector<bool> in_tensor(total, false);
      for (const GradTensor& t : tensors)
        for (int64_t i = t.offset; i < t.offset + t.numel; ++i) in_tensor[i] = true;
      for (int64_t i = 0; i < total; ++i)
        ASSERT_EQ(flat[i], in_tensor[i] ? summed(i) : mine(i)) << "element " << i << " step " << step;
    }
  }
  std::unique_ptr<MpiCommunicator> comm;
};

TEST_F(GradReducerTest, AdjacentTensorsReduceInPlace) {
  std::vector<GradTensor> t = {{0, 100}, {100, 7}, {107, 3000}, {3107, 1}};
  for (int64_t cap : {int64_t{0}, int64_t{64}, int64_t{4096}, int64_t{1} << 20}) run(t, 3108, cap);
}

TEST_F(GradReducerTest, TensorsWithGapsArePackedAndUnpacked) {
  std::vector<GradTensor> t = {{0, 10}, {13, 10}, {30, 500}, {531, 2}, {540, 40}};
  for (int64_t cap : {int64_t{0}, int64_t{100}, int64_t{4000}}) run(t, 600, cap);
}

TEST_F(GradReducerTest, FinishAloneIssuesEverything) {
  CpuBackend be(1);
  std::vector<float> flat(64);
  GradReducer reducer(*comm, be, flat.data(), {{0, 32}, {40, 24}}, 64);
  for (int64_t i = 0; i < 64; ++i) flat[i] = mine(i);
  ASSERT_TRUE(reducer.finish().ok());  // a rank with no samples reports no layer at all
  EXPECT_EQ(flat[0], summed(0));
  EXPECT_EQ(flat[35], mine(35));
  EXPECT_EQ(flat[63], summed(63));
}

}  // namespace
}  // namespace shardtrain
