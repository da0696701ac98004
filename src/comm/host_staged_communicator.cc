#include "comm/host_staged_communicator.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace shardtrain {
namespace {

// One staged collective: the MPI work runs on host vectors owned here; wait() finishes it
// and uploads the result to `device_dst`. `send` is empty for in-place collectives
// (all_reduce, broadcast), whose data travels in `recv` both ways.
//
// The upload relies on Backend::memcpy_from_host having read `src` when it returns (the
// CPU backend copies at once; CudaBackend promises it in cuda_backend.h): the staging
// vectors die with the work, possibly right after wait().
class StagedWork final : public CommWork {
 public:
  StagedWork(Backend& backend, const char* what, void* device_dst, size_t send_bytes, size_t recv_bytes)
      : backend_(backend), what_(what), device_dst_(device_dst), send_(send_bytes), recv_(recv_bytes) {}
  // A work whose MPI collective never started has nothing to wait for.
  ~StagedWork() override {
    if (mpi_ && !waited_) (void)wait();
  }

  std::vector<uint8_t>& send() { return send_; }
  std::vector<uint8_t>& recv() { return recv_; }
  void set_mpi(CommWorkPtr mpi) { mpi_ = std::move(mpi); }

  Status wait() override {
    if (waited_) return Status::Ok();
    waited_ = true;
    if (Status st = mpi_->wait(); !st.ok()) {
      // The MPI collective may still be active and touch the staging areas: they stay
      // allocated for the short rest of the job, which is going down.
      (void)new std::vector<uint8_t>(std::move(send_));
      (void)new std::vector<uint8_t>(std::move(recv_));
      return st;
    }
    if (!recv_.empty()) backend_.memcpy_from_host(device_dst_, recv_.data(), recv_.size());
    return backend_.status().WithContext(std::string("host-staged ") + what_ + ": copying the result to the device");
  }

 private:
  Backend& backend_;
  const char* what_;
  void* device_dst_;
  std::vector<uint8_t> send_, recv_;
  CommWorkPtr mpi_;
  bool waited_ = false;
};

// Byte size of `count` elements (never negative: Communicator::enter rejects that).
size_t staged_bytes(int64_t count, CommDType dtype) { return static_cast<size_t>(count) * comm_dtype_size(dtype); }

// Makes the compute that produced `src` finish (and surfaces its error), then copies
// host.size() bytes of it into `host`.
Status download(Backend& backend, const char* what, std::vector<uint8_t>& host, const void* src) {
  RETURN_IF_ERROR(backend.synchronize().WithContext(std::string("host-staged ") + what +
                                                    ": device work before the collective failed"));
  if (!host.empty()) backend.memcpy_to_host(host.data(), src, host.size());
  return backend.status().WithContext(std::string("host-staged ") + what + ": copying the buffer to the host");
}

// Starts the MPI collective (which must use only the work's host vectors) and hands the
// work back; on failure the work is dropped (it has nothing in flight).
template <typename Start>
StatusOr<CommWorkPtr> start(std::unique_ptr<StagedWork> work, Start start_mpi) {
  StatusOr<CommWorkPtr> mpi = start_mpi(*work);
  if (!mpi.ok()) return mpi.status();
  work->set_mpi(std::move(mpi).value());
  return CommWorkPtr(std::move(work));
}

}  // namespace

HostStagedCommunicator::HostStagedCommunicator(std::unique_ptr<MpiCommunicator> host, Backend& backend)
    : Communicator(host->tracker_ptr()), host_(std::move(host)), backend_(backend) {}

StatusOr<CommWorkPtr> HostStagedCommunicator::start_all_reduce(const Collective& c, void* buf, int64_t count,
                                                               CommDType dtype, ReduceOp op) {
  auto work = std::make_unique<StagedWork>(backend_, "all_reduce", buf, 0, staged_bytes(count, dtype));
  RETURN_IF_ERROR(download(backend_, "all_reduce", work->recv(), buf));
  return start(std::move(work), [&](StagedWork& w) {
    return host_->start_all_reduce(c, w.recv().data(), count, dtype, op);
  });
}

StatusOr<CommWorkPtr> HostStagedCommunicator::start_broadcast(const Collective& c, void* buf, int64_t count,
                                                              CommDType dtype, int root) {
  auto work = std::make_unique<StagedWork>(backend_, "broadcast", buf, 0, staged_bytes(count, dtype));
  // Only the root's bytes matter; the others' device buffers are overwritten by the
  // upload in wait(), which the compute stream orders after their earlier work.
  if (rank() == root) RETURN_IF_ERROR(download(backend_, "broadcast", work->recv(), buf));
  return start(std::move(work), [&](StagedWork& w) {
    return host_->start_broadcast(c, w.recv().data(), count, dtype, root);
  });
}

StatusOr<CommWorkPtr> HostStagedCommunicator::start_all_gather(const Collective& c, const void* send, void* recv,
                                                               int64_t count, CommDType dtype) {
  const size_t bytes = staged_bytes(count, dtype);
  auto work = std::make_unique<StagedWork>(backend_, "all_gather", recv, bytes, bytes * world_size());
  RETURN_IF_ERROR(download(backend_, "all_gather", work->send(), send));
  return start(std::move(work), [&](StagedWork& w) {
    return host_->start_all_gather(c, w.send().data(), w.recv().data(), count, dtype);
  });
}

StatusOr<CommWorkPtr> HostStagedCommunicator::start_reduce_scatter(const Collective& c, const void* send, void* recv,
                                                                   int64_t count, CommDType dtype, ReduceOp op) {
  const size_t bytes = staged_bytes(count, dtype);
  auto work = std::make_unique<StagedWork>(backend_, "reduce_scatter", recv, bytes * world_size(), bytes);
  RETURN_IF_ERROR(download(backend_, "reduce_scatter", work->send(), send));
  return start(std::move(work), [&](StagedWork& w) {
    return host_->start_reduce_scatter(c, w.send().data(), w.recv().data(), count, dtype, op);
  });
}

StatusOr<CommWorkPtr> HostStagedCommunicator::start_barrier(const Collective& c) { return host_->start_barrier(c); }

}  // namespace shardtrain
