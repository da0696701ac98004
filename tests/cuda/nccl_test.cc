// Communicators on GPU buffers, run by ctest under mpirun:
//   -np 1: the NCCL communicator itself (make_nccl_communicator), every collective on
//          device buffers, ordering against the backend's compute stream, barrier;
//   -np 2: on one GPU both ranks land on device 0, so make_device_communicator must pick
//          host-staged MPI (and an explicit NCCL must be refused naming both ranks); the
//          collectives must still give the right sums on device buffers.
// Where ranks have a GPU each (a multi-GPU node), the -np 2 run checks NCCL instead.
// Without a usable GPU on every rank, every test skips with the reason, on every rank
// alike (see skip_reason()). main() is tests/mpi/mpi_gtest_main.cc.
#include <mpi.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "comm/make_communicator.h"
#include "comm/mpi/topology.h"
#include "comm/nccl/nccl_communicator.h"
#include "cuda_test_util.h"

namespace shardtrain {
namespace {

// "" when every rank has a usable GPU, else why not. Agreed over MPI on first use, which
// is the first test's SetUp on every rank alike (all ranks run the same tests in order):
// a test that ran on some ranks only would leave them waiting in its collectives.
const std::string& skip_reason() {
  static const std::string reason = [] {
    const std::string mine = testing::cuda_unusable_reason();
    int unusable = mine.empty() ? 0 : 1, any = 0;
    MPI_Allreduce(&unusable, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (!any) return std::string();
    return mine.empty() ? std::string("another rank has no usable GPU") : mine;
  }();
  return reason;
}

#define SKIP_UNLESS_EVERY_RANK_HAS_A_GPU()                       \
  do {                                                           \
    if (!skip_reason().empty()) GTEST_SKIP() << skip_reason();   \
  } while (0)

int world_size() {
  int n = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

// Host <-> device helpers over the backend (so copies are ordered on its compute stream).
template <typename T>
Tensor upload(CudaBackend& b, const std::vector<T>& host, DType dtype) {
  Tensor t = b.alloc({static_cast<int64_t>(host.size())}, dtype);
  b.copy_from_host(t, host.data());
  return t;
}
template <typename T>
std::vector<T> download(CudaBackend& b, const Tensor& t) {
  std::vector<T> host(t.numel());
  b.copy_to_host(t, host.data());
  return host;
}

// The four collectives on device buffers, any world size; expectations from rank/world.
void check_collectives(Communicator& comm, CudaBackend& b) {
  const int rank = comm.rank(), world = comm.world_size();
  ASSERT_EQ(comm.buffer_device(), Device::kCuda);

  std::vector<float> v(1000);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(rank + 1) * (i + 1);
  Tensor x = upload(b, v, DType::kFloat32);
  ASSERT_TRUE(comm.all_reduce(x.f32(), x.numel(), CommDType::kFloat32, ReduceOp::kSum).ok());
  const float ranks_sum = world * (world + 1) / 2.0f;
  std::vector<float> got = download<float>(b, x);
  for (size_t i = 0; i < got.size(); ++i) ASSERT_FLOAT_EQ(got[i], ranks_sum * (i + 1)) << i;

  Tensor m = upload(b, std::vector<int32_t>{10 * rank, -rank}, DType::kInt32);
  ASSERT_TRUE(comm.all_reduce(m.data<int32_t>(), 2, CommDType::kInt32, ReduceOp::kMax).ok());
  EXPECT_EQ(download<int32_t>(b, m), (std::vector<int32_t>{10 * (world - 1), 0}));

  Tensor bc = upload(b, std::vector<float>(17, static_cast<float>(rank)), DType::kFloat32);
  ASSERT_TRUE(comm.broadcast(bc.f32(), bc.numel(), CommDType::kFloat32, world - 1).ok());
  for (float f : download<float>(b, bc)) EXPECT_EQ(f, static_cast<float>(world - 1));

  Tensor mine = upload(b, std::vector<int32_t>{rank, 100 + rank, 200 + rank}, DType::kInt32);
  Tensor all = b.alloc({3 * world}, DType::kInt32);
  ASSERT_TRUE(comm.all_gather(mine.data<int32_t>(), all.data<int32_t>(), 3, CommDType::kInt32).ok());
  const std::vector<int32_t> gathered = download<int32_t>(b, all);
  for (int r = 0; r < world; ++r)
    for (int j = 0; j < 3; ++j) EXPECT_EQ(gathered[3 * r + j], 100 * j + r);

  const int count = 5;
  std::vector<float> send(count * world);
  for (size_t i = 0; i < send.size(); ++i) send[i] = static_cast<float>(i) + rank;
  Tensor s = upload(b, send, DType::kFloat32);
  Tensor out = b.alloc({count}, DType::kFloat32);
  ASSERT_TRUE(comm.reduce_scatter(s.f32(), out.f32(), count, CommDType::kFloat32, ReduceOp::kSum).ok());
  const std::vector<float> block = download<float>(b, out);
  const float rank_sum = world * (world - 1) / 2.0f;
  for (int i = 0; i < count; ++i) EXPECT_FLOAT_EQ(block[i], world * static_cast<float>(rank * count + i) + rank_sum);

  EXPECT_TRUE(comm.barrier().ok());
  const Status synced = b.synchronize();
  EXPECT_TRUE(synced.ok()) << synced.ToString();
}

// ---- -np 1: the NCCL communicator itself

class NcclSingleRankTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_UNLESS_EVERY_RANK_HAS_A_GPU();
    if (world_size() != 1) GTEST_SKIP() << "runs at mpirun -np 1 (NCCL needs one GPU per rank)";
    auto b = CudaBackend::create(0);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    backend = std::move(b).value();
    auto c = make_nccl_communicator(*backend, MPI_COMM_WORLD, std::make_shared<Watchdog>(/*timeout_s=*/60), "grad");
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    comm = std::move(c).value();
  }
  void TearDown() override {
    comm.reset();  // before the backend, whose stream it uses
    backend.reset();
  }
  std::unique_ptr<CudaBackend> backend;
  std::unique_ptr<Communicator> comm;
};

TEST_F(NcclSingleRankTest, EveryCollectiveOnDeviceBuffers) {
  EXPECT_EQ(comm->name(), "nccl");
  check_collectives(*comm, *backend);
}

TEST_F(NcclSingleRankTest, CollectivesAreOrderedAgainstCompute) {
  // Large enough that an unordered collective would read the buffer before the fill (or
  // the scale would run before the gather) and the sums would come out wrong.
  const int64_t n = int64_t{1} << 24;
  Tensor x = backend->alloc({n}, DType::kFloat32);
  Tensor y = backend->alloc({n}, DType::kFloat32);
  backend->fill(x, 2.0f);  // compute stream
  auto work = comm->all_gather_async(x.f32(), y.f32(), n, CommDType::kFloat32);
  ASSERT_TRUE(work.ok()) << work.status().ToString();
  ASSERT_TRUE((*work)->wait().ok());  // host does not block; compute now waits for it
  backend->scale(y.f32(), n, 3.0f);
  EXPECT_DOUBLE_EQ(backend->sum(y.f32(), n), 6.0 * n);
  ASSERT_TRUE(backend->synchronize().ok());
}

TEST_F(NcclSingleRankTest, SeveralWorksInFlightWaitedInReverseOrder) {
  std::vector<Tensor> bufs;
  std::vector<CommWorkPtr> works;
  for (int i = 0; i < 4; ++i) {
    bufs.push_back(backend->alloc({4096}, DType::kFloat32));
    backend->fill(bufs.back(), static_cast<float>(i + 1));
    auto w = comm->all_reduce_async(bufs.back().f32(), 4096, CommDType::kFloat32, ReduceOp::kSum);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    works.push_back(std::move(w).value());
  }
  for (auto it = works.rbegin(); it != works.rend(); ++it) ASSERT_TRUE((*it)->wait().ok());
  for (int i = 0; i < 4; ++i) EXPECT_DOUBLE_EQ(backend->sum(bufs[i].f32(), 4096), 4096.0 * (i + 1));
}

TEST_F(NcclSingleRankTest, BadArgumentsAreRejectedAndLeaveTheCommunicatorUsable) {
  Tensor x = backend->alloc({8}, DType::kFloat32);
  auto neg = comm->all_reduce_async(x.f32(), -1, CommDType::kFloat32, ReduceOp::kSum);
  ASSERT_FALSE(neg.ok());
  EXPECT_EQ(neg.status().code(), StatusCode::kInvalidArgument);
  auto root = comm->broadcast_async(x.f32(), 8, CommDType::kFloat32, 1);
  ASSERT_FALSE(root.ok());
  EXPECT_EQ(root.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(comm->barrier().ok());
}

// ---- -np 2 (one GPU): the choice and the host-staged fallback

class DeviceCommTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_UNLESS_EVERY_RANK_HAS_A_GPU();
    if (world_size() < 2) GTEST_SKIP() << "runs at mpirun -np 2 (needs two ranks)";
    auto t = discover_topology(MPI_COMM_WORLD);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    topo = *t;
    auto c = MpiCommunicator::create(MPI_COMM_WORLD);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    control = std::move(c).value();
    auto b = CudaBackend::create(topo.local_rank);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    backend = std::move(b).value();
    // Whether ranks share a GPU decides what AUTO must pick. The test runs on one node,
    // so equal ordinals mean one GPU; every rank computes the same answer.
    const int mine = backend->ordinal();
    std::vector<int> ordinals(world_size());
    MPI_Allgather(&mine, 1, MPI_INT, ordinals.data(), 1, MPI_INT, MPI_COMM_WORLD);
    std::sort(ordinals.begin(), ordinals.end());
    share_gpu = std::adjacent_find(ordinals.begin(), ordinals.end()) != ordinals.end();
  }
  StatusOr<std::unique_ptr<Communicator>> make(config::CommConfig::Backend requested) {
    config::CommConfig cfg;
    cfg.set_backend(requested);
    cfg.set_timeout_s(60);
    return make_device_communicator(cfg, *backend, *control, topo);
  }
  Topology topo;
  std::unique_ptr<MpiCommunicator> control;
  std::unique_ptr<CudaBackend> backend;
  bool share_gpu = false;
};

TEST_F(DeviceCommTest, AutoPicksHostStagedWhenRanksShareAGpu) {
  auto comm = make(config::CommConfig::BACKEND_AUTO);
  ASSERT_TRUE(comm.ok()) << comm.status().ToString();
  EXPECT_EQ((*comm)->name(), share_gpu ? "mpi (host-staged)" : "nccl");
  check_collectives(**comm, *backend);
}

TEST_F(DeviceCommTest, MpiIsHostStaged) {
  auto comm = make(config::CommConfig::BACKEND_MPI);
  ASSERT_TRUE(comm.ok()) << comm.status().ToString();
  EXPECT_EQ((*comm)->name(), "mpi (host-staged)");
  check_collectives(**comm, *backend);
}

TEST_F(DeviceCommTest, ExplicitNcclOnASharedGpuIsRefusedNamingBothRanks) {
  if (!share_gpu) GTEST_SKIP() << "every rank has its own GPU here";
  auto comm = make(config::CommConfig::BACKEND_NCCL);
  ASSERT_FALSE(comm.ok());
  EXPECT_EQ(comm.status().code(), StatusCode::kInvalidArgument);
  const std::string& msg = comm.status().message();
  EXPECT_NE(msg.find("ranks 0 and 1 share GPU"), std::string::npos) << msg;
  EXPECT_NE(msg.find("comm.backend=AUTO or MPI"), std::string::npos) << msg;
}

}  // namespace
}  // namespace shardtrain
