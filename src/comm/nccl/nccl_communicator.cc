// NcclCommunicator: collectives on device buffers with NCCL, one GPU per rank.
//
// Streams: collectives run on a dedicated non-blocking stream of the highest priority,
// so gradient all-reduces overlap backward compute on the backend's stream. Each
// collective records `ready_` on the compute stream and makes the comm stream wait for it
// (the buffer is complete), enqueues the NCCL call, and records a per-collective `done`
// event; wait() makes the compute stream wait for `done` without blocking the host.
//
// Failure (Horovod's rule: never leave a rank hanging): the communicator is non-blocking
// (config.blocking = 0), so no NCCL call blocks the host; calls answering ncclInProgress
// are polled, bounded by the watchdog's timeout. Every collective is registered with the
// job's watchdog (comm/watchdog.h) like an MPI one. A watchdog thread checks every
// in-flight collective's done event and NCCL's asynchronous error every 100 ms; on an
// error, or a collective older than the timeout (expired by the watchdog, which names it
// in one line and stops new work on every communicator of the job), it aborts the
// communicator (ncclCommAbort, which also ends NCCL's kernels so streams waiting on them
// drain) and records the error, which every later call returns. The caller then ends the
// job with abort().
//
// The handle's locking and its abort-once rule live in nccl_comm_state.h.
#include "comm/nccl/nccl_communicator.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "comm/agree.h"
#include "comm/mpi/mpi_communicator.h"
#include "comm/nccl/nccl_check.h"
#include "comm/nccl/nccl_comm_state.h"
#include "comm/progress_board.h"
#include "comm/watchdog.h"
#include "core/log.h"

namespace shardtrain {

bool nccl_built() { return true; }

namespace {

using nccl_internal::Clock;
using nccl_internal::CommState;
using nccl_internal::EventPtr;
using nccl_internal::kPollPeriod;
using nccl_internal::seconds_text;

constexpr auto kWatchdogPeriod = std::chrono::milliseconds(100);

ncclDataType_t nccl_dtype(CommDType t) {
  switch (t) {
    case CommDType::kFloat32: return ncclFloat32;
    case CommDType::kFloat64: return ncclFloat64;
    case CommDType::kInt64: return ncclInt64;
    case CommDType::kInt32: return ncclInt32;
    case CommDType::kUint8: return ncclUint8;
    case CommDType::kBFloat16: return ncclBfloat16;
  }
  return ncclFloat32;  // unreachable: every CommDType is listed
}

ncclRedOp_t nccl_op(ReduceOp op) { return op == ReduceOp::kSum ? ncclSum : ncclMax; }

StatusOr<EventPtr> make_event() {
  cudaEvent_t e = nullptr;
  CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  return EventPtr(e, [](cudaEvent_t ev) { (void)cudaEventDestroy(ev); });
}

// One collective: wait() orders the compute stream after it (the host does not block)
// and reports the communicator's health.
// block_host (barrier): wait() also blocks the host until the collective has finished
// (or the watchdog thread aborted it, which ends its kernel).
class NcclWork final : public CommWork {
 public:
  NcclWork(std::shared_ptr<CommState> state, cudaStream_t compute, EventPtr done, const char* what, bool block_host)
      : state_(std::move(state)), compute_(compute), done_(std::move(done)), what_(what), block_host_(block_host) {}
  ~NcclWork() override { (void)wait(); }

  Status wait() override {
    if (done_ != nullptr) {
      Status s = CUDA_STATUS(cudaStreamWaitEvent(compute_, done_.get(), 0));
      if (s.ok() && block_host_) s = CUDA_STATUS(cudaEventSynchronize(done_.get()));
      done_.reset();
      if (!s.ok()) state_->fail(s.WithContext(std::string("NCCL ") + what_ + ": ordering compute after it"));
    }
    return state_->health();
  }

 private:
  std::shared_ptr<CommState> state_;
  cudaStream_t compute_;
  EventPtr done_;  // null once waited
  const char* what_;
  bool block_host_;
};

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(std::shared_ptr<CollectiveTracker> tracker, std::shared_ptr<CommState> state,
                   CudaBackend& backend)
      : Communicator(std::move(tracker)), state_(std::move(state)), compute_(backend.stream()),
        ordinal_(backend.ordinal()), rank_(tracker_ptr()->rank()), size_(tracker_ptr()->world_size()) {}

  ~NcclCommunicator() override {
    if (watch_thread_.joinable()) {
      {
        std::lock_guard<std::mutex> lock(stop_mu_);
        stopping_ = true;
      }
      stop_cv_.notify_all();
      watch_thread_.join();
    }
    state_->destroy();
    // Nothing can report failures from here; these only release resources.
    if (barrier_buf_ != nullptr) (void)cudaFree(barrier_buf_);
    if (ready_ != nullptr) (void)cudaEventDestroy(ready_);
    if (comm_stream_ != nullptr) (void)cudaStreamDestroy(comm_stream_);
  }

  // The comm stream (highest priority, so communication is not starved by compute), the
  // ready event and the barrier's one-element buffer.
  Status init_resources() {
    int least = 0, greatest = 0;
    CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
    CUDA_CHECK(cudaStreamCreateWithPriority(&comm_stream_, cudaStreamNonBlocking, greatest));
    CUDA_CHECK(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
    CUDA_CHECK(cudaMalloc(&barrier_buf_, sizeof(int32_t)));
    CUDA_CHECK(cudaMemsetAsync(barrier_buf_, 0, sizeof(int32_t), comm_stream_));
    return Status::Ok();
  }

  void start_watchdog() { watch_thread_ = std::thread([this] { watchdog_loop(); }); }
  // For setup that failed on another rank: abort the NCCL communicator, since the
  // destructor's finalize would wait on peers that are not there.
  void abandon(const Status& why) { state_->fail(why); }

  int rank() const override { return rank_; }
  int world_size() const override { return size_; }
  std::string name() const override { return "nccl"; }
  Device buffer_device() const override { return Device::kCuda; }
  bool supports_bf16() const override { return true; }

  Status health() override { return state_->health(); }

  [[noreturn]] void abort(int exit_code) override {
    state_->fail(Status::Internal("abort(" + std::to_string(exit_code) + ") called"));
    MPI_Abort(MPI_COMM_WORLD, exit_code);
    std::_Exit(exit_code);  // MPI_Abort should not return; make sure of it.
  }

 protected:
  StatusOr<CommWorkPtr> start_all_reduce(const Collective& c, void* buf, int64_t count, CommDType dtype,
                                         ReduceOp op) override {
    return issue(c, [&](ncclComm_t comm, cudaStream_t s) {
      return ncclAllReduce(buf, buf, static_cast<size_t>(count), nccl_dtype(dtype), nccl_op(op), comm, s);
    });
  }
  StatusOr<CommWorkPtr> start_broadcast(const Collective& c, void* buf, int64_t count, CommDType dtype,
                                        int root) override {
    return issue(c, [&](ncclComm_t comm, cudaStream_t s) {
      return ncclBroadcast(buf, buf, static_cast<size_t>(count), nccl_dtype(dtype), root, comm, s);
    });
  }
  StatusOr<CommWorkPtr> start_all_gather(const Collective& c, const void* send, void* recv, int64_t count,
                                         CommDType dtype) override {
    return issue(c, [&](ncclComm_t comm, cudaStream_t s) {
      return ncclAllGather(send, recv, static_cast<size_t>(count), nccl_dtype(dtype), comm, s);
    });
  }
  StatusOr<CommWorkPtr> start_reduce_scatter(const Collective& c, const void* send, void* recv, int64_t count,
                                             CommDType dtype, ReduceOp op) override {
    return issue(c, [&](ncclComm_t comm, cudaStream_t s) {
      return ncclReduceScatter(send, recv, static_cast<size_t>(count), nccl_dtype(dtype), nccl_op(op), comm, s);
    });
  }
  // Every rank has arrived once a one-element all-reduce has completed on this rank's GPU;
  // the work's wait() blocks the host until then.
  StatusOr<CommWorkPtr> start_barrier(const Collective& c) override {
    return issue(
        c,
        [&](ncclComm_t comm, cudaStream_t s) {
          return ncclAllReduce(barrier_buf_, barrier_buf_, 1, ncclInt32, ncclSum, comm, s);
        },
        /*block_host=*/true);
  }

 private:
  // The NCCL side of every collective (see the file comment for the ordering); `c` is
  // already registered with the watchdog by Communicator::enter.
  template <typename Enqueue>
  StatusOr<CommWorkPtr> issue(const Collective& c, Enqueue enqueue, bool block_host = false) {
    const char* what = collective_op_name(c.desc.op);
    RETURN_IF_ERROR(state_->health());
    StatusOr<EventPtr> done = make_event();  // before the enqueue: little can fail after it
    if (!done.ok()) return fail(what, done.status());
    const Status ordered = [&]() -> Status {
      CUDA_CHECK(cudaEventRecord(ready_, compute_));
      CUDA_CHECK(cudaStreamWaitEvent(comm_stream_, ready_, 0));
      return Status::Ok();
    }();
    if (!ordered.ok()) return fail(what, ordered);
    const std::string text = collective_text(c, label());
    RETURN_IF_ERROR(state_->call(text.c_str(), [&](ncclComm_t comm) { return enqueue(comm, comm_stream_); }));
    const Status recorded = CUDA_STATUS(cudaEventRecord(done->get(), comm_stream_));
    if (!recorded.ok()) return fail(what, recorded);
    state_->track(*done, c);
    return CommWorkPtr(new NcclWork(state_, compute_, std::move(done).value(), what, block_host));
  }

  // A CUDA failure while issuing leaves this rank out of step with the others: it is
  // recorded (aborting the communicator) and returned.
  Status fail(const char* what, const Status& s) {
    state_->fail(s.WithContext(std::string("NCCL ") + what + " on rank " + std::to_string(rank_)));
    return state_->health();
  }

  void watchdog_loop() {
    // cudaEventQuery needs the comm's device current on this thread too.
    const Status dev = CUDA_STATUS(cudaSetDevice(ordinal_));
    if (!dev.ok()) {
      state_->fail(dev.WithContext("NCCL watchdog on rank " + std::to_string(rank_)));
      return;
    }
    std::unique_lock<std::mutex> lock(stop_mu_);
    while (!stop_cv_.wait_for(lock, kWatchdogPeriod, [this] { return stopping_; })) {
      // An NCCL error is said here as well as returned later, since the main thread may be
      // waiting elsewhere; a timeout is recorded on the job's watchdog, which ends every
      // wait at once, and the CLI prints its one line.
      if (state_->watch() && !watchdog().failed()) log_error(state_->health().message());
    }
  }

  std::shared_ptr<CommState> state_;
  cudaStream_t compute_;  // the backend's
  int ordinal_, rank_, size_;
  cudaStream_t comm_stream_ = nullptr;
  cudaEvent_t ready_ = nullptr;
  void* barrier_buf_ = nullptr;
  std::thread watch_thread_;  // runs watchdog_loop()
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
};

// Non-blocking init, polled until done; bounded by timeout_s, or by kInitBoundS when
// timeout_s is 0 ("collectives may wait forever" must not extend to init: a rank whose own
// init failed is already waiting in the MPI agreement that follows, and the others would
// poll forever). After the bound the half-made communicator is aborted.
Status init_comm(ncclComm_t* out, int size, const ncclUniqueId& id, int rank, double timeout_s) {
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  ncclComm_t comm = nullptr;
  const auto start = Clock::now();
  ncclResult_t r = ncclCommInitRankConfig(&comm, size, id, rank, &config);
  const double bound = timeout_s > 0 ? timeout_s : nccl_internal::kInitBoundS;
  while (r == ncclInProgress) {
    if (std::chrono::duration<double>(Clock::now() - start).count() > bound) {
      (void)ncclCommAbort(comm);
      return Status::Internal("NCCL init on rank " + std::to_string(rank) + " did not finish within " +
                              seconds_text(bound) + ": aborted it (did every rank reach it?)");
    }
    std::this_thread::sleep_for(kPollPeriod);
    const ncclResult_t q = ncclCommGetAsyncError(comm, &r);
    if (q != ncclSuccess) r = q;
  }
  if (r != ncclSuccess) {
    if (comm != nullptr) (void)ncclCommAbort(comm);
    return Status::Internal("ncclCommInitRankConfig on rank " + std::to_string(rank) + " failed: " +
                            nccl_error_text(r));
  }
  *out = comm;
  return Status::Ok();
}

// What a rank checks before taking part in NCCL's init; rank 0 also makes the id.
Status prepare(CudaBackend* cuda, int rank, ncclUniqueId* id) {
  if (cuda == nullptr)
    return Status::InvalidArgument("the NCCL communicator needs the CUDA backend (rank " + std::to_string(rank) +
                                   " has another)");
  CUDA_CHECK(cudaSetDevice(cuda->ordinal()));
  if (rank == 0) NCCL_CHECK(ncclGetUniqueId(id));
  return Status::Ok();
}

}  // namespace

StatusOr<std::unique_ptr<Communicator>> make_nccl_communicator(Backend& backend, MPI_Comm comm,
                                                               std::shared_ptr<Watchdog> watchdog,
                                                               const std::string& label) {
  // A private duplicate carries the setup traffic, and agreement at each step keeps one
  // failing rank from leaving the others inside NCCL's init.
  ASSIGN_OR_RETURN(auto ctl, MpiCommunicator::create_dup(comm, watchdog, label + " setup"));
  const int rank = ctl->rank(), size = ctl->world_size();
  // The NCCL communicator's own progress board, over the same ranks (collective).
  ASSIGN_OR_RETURN(auto board, ProgressBoard::create(ctl->mpi_comm()));
  auto tracker = std::make_shared<CollectiveTracker>(watchdog, label, rank, size, std::move(board));
  auto* cuda = dynamic_cast<CudaBackend*>(&backend);
  ncclUniqueId id{};
  RETURN_IF_ERROR(agree_on_status(*ctl, prepare(cuda, rank, &id)));
  RETURN_IF_ERROR(ctl->broadcast(&id, sizeof(id), CommDType::kUint8, 0).WithContext("NCCL init: broadcasting the id"));

  ncclComm_t nccl = nullptr;
  Status local = init_comm(&nccl, size, id, rank, watchdog->timeout_s());
  std::unique_ptr<NcclCommunicator> made;
  if (local.ok()) {
    made = std::make_unique<NcclCommunicator>(tracker, std::make_shared<CommState>(nccl, tracker), *cuda);
    local = made->init_resources();
  }
  const Status agreed = agree_on_status(*ctl, local);
  if (!agreed.ok()) {
    if (made != nullptr) made->abandon(agreed);
    return agreed;
  }
  made->start_watchdog();
  return std::unique_ptr<Communicator>(std::move(made));
}

}  // namespace shardtrain
