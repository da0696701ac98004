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
    RETURN_IF_ERROR(mpi_->wait());
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

// Byte size of `count` elements; InvalidArgument for a negative count (which would
// otherwise turn into a huge staging allocation).
StatusOr<size_t> staged_bytes(const char* what, int64_t count, CommDType dtype) {
  if (count < 0)
    return Status::InvalidArgument(std::string("host-staged ") + what + ": negative count " + std::to_string(count));
  return static_cast<size_t>(count) * comm_dtype_size(dtype);
}

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
    : host_(std::move(host)), backend_(backend) {}

StatusOr<CommWorkPtr> HostStagedCommunicator::all_reduce_async(void* buf, int64_t count, CommDType dtype,
                                                               ReduceOp op) {
  ASSIGN_OR_RETURN(const size_t bytes, staged_bytes("all_reduce", count, dtype));
  auto work = std::make_unique<StagedWork>(backend_, "all_reduce", buf, 0, bytes);
  RETURN_IF_ERROR(download(backend_, "all_reduce", work->recv(), buf));
  return start(std::move(work), [&](StagedWork& w) {
    return host_->all_reduce_async(w.recv().data(), count, dtype, op);
  });
}

StatusOr<CommWorkPtr> HostStagedCommunicator::broadcast_async(void* buf, int64_t count, CommDType dtype, int root) {
  ASSIGN_OR_RETURN(const size_t bytes, staged_bytes("broadcast", count, dtype));
  auto work = std::make_unique<StagedWork>(backend_, "broadcast", buf, 0, bytes);
  // Only the root's bytes matter; the others' device buffers are overwritten by the
  // upload in wait(), which the compute stream orders after their earlier work.
  if (rank() == root) RETURN_IF_ERROR(download(backend_, "broadcast", work->recv(), buf));
  return start(std::move(work), [&](StagedWork& w) {
    return host_->broadcast_async(w.recv().data(), count, dtype, root);
  });
}

StatusOr<CommWorkPtr> HostStagedCommunicator::all_gather_async(const void* send, void* recv, int64_t count,
                                                               CommDType dtype) {
  ASSIGN_OR_RETURN(const size_t bytes, staged_bytes("all_gather", count, dtype));
  auto work = std::make_unique<StagedWork>(backend_, "all_gather", recv, bytes, bytes * world_size());
  RETURN_IF_ERROR(download(backend_, "all_gather", work->send(), send));
  return start(std::move(work), [&](StagedWork& w) {
    return host_->all_gather_async(w.send().data(), w.recv().data(), count, dtype);
  });
}

StatusOr<CommWorkPtr> HostStagedCommunicator::reduce_scatter_async(const void* send, void* recv, int64_t count,
                                                                   CommDType dtype, ReduceOp op) {
  ASSIGN_OR_RETURN(const size_t bytes, staged_bytes("reduce_scatter", count, dtype));
  auto work = std::make_unique<StagedWork>(backend_, "reduce_scatter", recv, bytes * world_size(), bytes);
  RETURN_IF_ERROR(download(backend_, "reduce_scatter", work->send(), send));
  return start(std::move(work), [&](StagedWork& w) {
    return host_->reduce_scatter_async(w.send().data(), w.recv().data(), count, dtype, op);
  });
}

}  // namespace shardtrain
