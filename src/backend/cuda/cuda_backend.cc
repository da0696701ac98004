// CudaBackend: creation, memory, host transfers, the sticky error and the reductions that
// return a value to the host. The compute primitives are in cuda_ops.cc.
//
// Memory: plain cudaMalloc / cudaFree per tensor. Tensors are long-lived (the model's flat
// buffers, activations reallocated only when the batch size changes, grow-only scratch),
// so a caching allocator would buy little. cudaFree synchronizes the device (the reason
// frameworks cache allocations), so freeing a tensor that queued kernels still use is
// safe without any per-stream bookkeeping.
#include "backend/cuda/cuda_backend.h"

#include <cstdio>
#include <new>

#include "backend/cuda/cuda_check.h"
#include "backend/device_select.h"
#include "core/log.h"
#include "kernels/loss.h"
#include "kernels/reduce.h"

namespace shardtrain {

namespace {

// Dense peaks of the GPUs we know, from NVIDIA's datasheets (SXM parts unless named):
// fp32 without tensor cores (the fp32 path's GEMMs run without TF32) and bf16 on tensor
// cores without sparsity. 0 = unknown, and progress shows GFLOP/s.
struct PeakFlops {
  double fp32, bf16;
};
PeakFlops known_peak_flops(const std::string& device_name) {
  struct Known {
    const char* name;
    PeakFlops peak;
  };
  // More specific names first: an H100 PCIe has fewer SMs than the SXM part.
  static const Known kKnown[] = {{"H100 PCIe", {51e12, 756e12}},
                                 {"H200", {67e12, 989e12}},
                                 {"H100", {67e12, 989e12}},
                                 {"A100", {19.5e12, 312e12}}};
  for (const Known& k : kKnown)
    if (device_name.find(k.name) != std::string::npos) return k.peak;
  return {0, 0};
}

// cuBLASLt workspace: what NVIDIA recommends for Hopper's fastest GEMM kernels.
constexpr size_t kGemmLtWorkspaceBytes = size_t{32} << 20;

// Workspace made at creation: enough for sums of up to this many elements (the gradient
// norm of models up to 16M parameters) without growing during training.
constexpr int64_t kInitialReduceElements = int64_t{1} << 24;

std::string ordinal_name(int ordinal) { return "cuda:" + std::to_string(ordinal); }

// Runs `fn` (returning cudaError_t) with `ordinal` as the calling thread's current device,
// then restores the previous one. A tensor can be released on a thread whose current
// device is another GPU (or unset, i.e. device 0); freeing there must neither fail nor
// create a context on GPU 0. Nothing here can report, so a failure is only cleared from
// the last-error slot, where a later kernel launch would otherwise report it as its own.
template <typename F>
void with_device(int ordinal, F fn) {
  int current = -1;
  cudaError_t err = cudaGetDevice(&current);
  const bool switch_device = err == cudaSuccess && current != ordinal;
  if (switch_device) err = cudaSetDevice(ordinal);
  const cudaError_t fn_err = fn();
  if (switch_device && cudaSetDevice(current) != cudaSuccess) err = cudaErrorUnknown;
  if (err != cudaSuccess || fn_err != cudaSuccess) (void)cudaGetLastError();
}

}  // namespace

std::string gpu_uuid_string(const cudaUUID_t& uuid) {
  // 16 bytes as 8-4-4-4-12 hex digits, byte order as stored (what nvidia-smi -L prints).
  std::string out = "GPU-";
  char hex[3];
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    std::snprintf(hex, sizeof(hex), "%02x", static_cast<unsigned char>(uuid.bytes[i]));
    out += hex;
  }
  return out;
}

// --------------------------------------------------------------------------- lifetime

StatusOr<std::unique_ptr<CudaBackend>> CudaBackend::create(int local_rank) {
  int count = 0;
  std::string probe_error;
  const cudaError_t probe = cudaGetDeviceCount(&count);
  if (probe != cudaSuccess) {
    probe_error = "cudaGetDeviceCount failed: " + cuda_error_text(probe);
    count = 0;
  }
  ASSIGN_OR_RETURN(const int ordinal, select_cuda_device(local_rank, count, probe_error));
  std::unique_ptr<CudaBackend> be(new CudaBackend(ordinal));
  RETURN_IF_ERROR(be->init().WithContext(ordinal_name(ordinal)));
  return be;
}

Status CudaBackend::init() {
  CUDA_CHECK(cudaSetDevice(ordinal_));
  cudaDeviceProp prop;
  CUDA_CHECK(cudaGetDeviceProperties(&prop, ordinal_));
  name_ = ordinal_name(ordinal_) + " (" + prop.name + ", sm_" + std::to_string(prop.major) +
          std::to_string(prop.minor) + ")";
  identity_ = gpu_uuid_string(prop.uuid);
  const PeakFlops peak = known_peak_flops(prop.name);
  peak_fp32_ = peak.fp32;
  peak_bf16_ = peak.bf16;

  // Non-blocking: no implicit synchronization with the legacy default stream, which
  // libraries (and cudaMemcpy without a stream) use.
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  CUBLAS_CHECK(cublasCreate(&cublas_));
  CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
  // Default math: true fp32 FMA (no TF32 / BF16x9 emulation), so GEMMs match the CPU
  // backend to fp32 rounding. Atomics off: cuBLAS then picks no split-K-with-atomics
  // kernels, so results are bitwise reproducible run to run.
  CUBLAS_CHECK(cublasSetMathMode(cublas_, CUBLAS_DEFAULT_MATH));
  CUBLAS_CHECK(cublasSetAtomicsMode(cublas_, CUBLAS_ATOMICS_NOT_ALLOWED));

  void* dev = nullptr;
  CUDA_CHECK(cudaMalloc(&dev, sizeof(Scalars)));
  scalars_dev_ = static_cast<Scalars*>(dev);
  void* host = nullptr;
  CUDA_CHECK(cudaMallocHost(&host, sizeof(Scalars)));
  scalars_host_ = static_cast<Scalars*>(host);
  const size_t workspace_bytes = kernels::reduce_sum_workspace_bytes(kInitialReduceElements);
  CUDA_CHECK(cudaMalloc(&workspace_, workspace_bytes));
  workspace_bytes_ = workspace_bytes;
  ASSIGN_OR_RETURN(gemm_lt_, GemmLt::create(kGemmLtWorkspaceBytes));
  return Status::Ok();
}

CudaBackend::~CudaBackend() {
  // Queued work may still use the scratch buffers: wait for it first. Errors have nowhere
  // to go in a destructor (a failed backend has already reported through status()).
  with_device(ordinal_, [this] {
    cudaError_t err = cudaSuccess;
    auto keep = [&err](cudaError_t e) { err = err != cudaSuccess ? err : e; };
    if (stream_) keep(cudaStreamSynchronize(stream_));
    gemm_lt_.reset();
    if (cublas_ && cublasDestroy(cublas_) != CUBLAS_STATUS_SUCCESS) err = cudaErrorUnknown;
    keep(cudaFree(workspace_));
    keep(cudaFree(scalars_dev_));
    keep(cudaFreeHost(scalars_host_));
    if (stream_) keep(cudaStreamDestroy(stream_));
    return err;
  });
}

// ----------------------------------------------------------------------------- errors

bool CudaBackend::record(const char* primitive, const Status& s) {
  if (s.ok()) return !failed();
  if (!failed()) sticky_ = s.WithContext(ordinal_name(ordinal_) + ": " + primitive);
  return false;
}

Status CudaBackend::synchronize() {
  // Waits even when already failed, so the caller may free buffers that queued work uses.
  record("synchronize", CUDA_STATUS(cudaStreamSynchronize(stream_)));
  return sticky_;
}

// ----------------------------------------------------------------------------- memory

Tensor CudaBackend::alloc(const Shape& shape, DType dtype) {
  const size_t bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  // cudaMalloc(0) returns no pointer, but an empty tensor still needs storage (defined()).
  const size_t request = bytes == 0 ? 256 : bytes;
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, request);
  if (err != cudaSuccess) {
    // Out of memory is the caller's to handle (the contract is bad_alloc, and a caller may
    // retry smaller), so it does not fail the backend; any other error means the device
    // is broken and is kept. Either way say why: the bad_alloc itself cannot.
    size_t free_bytes = 0, total_bytes = 0;
    const std::string why = cuda_error_text(err);
    if (err == cudaErrorMemoryAllocation) {
      if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) (void)cudaGetLastError();
      log_error(ordinal_name(ordinal_) + ": alloc of " + shape_str(shape) + " " + dtype_name(dtype) + " (" +
                std::to_string(bytes >> 20) + " MiB) failed: " + why + "; " + std::to_string(free_bytes >> 20) +
                " of " + std::to_string(total_bytes >> 20) + " MiB free");
    } else {
      record("alloc", Status::Internal("cudaMalloc of " + std::to_string(request) + " bytes failed: " + why));
      log_error(sticky_.message());
    }
    throw std::bad_alloc();
  }
  // The deleter needs only the ordinal, so tensors may outlive the backend. It cannot
  // report: a failing cudaFree (possible only once the device has faulted, which the
  // backend has already recorded) is ignored.
  const int ordinal = ordinal_;
  std::shared_ptr<void> storage(p, [ordinal](void* q) { with_device(ordinal, [q] { return cudaFree(q); }); });
  // Zeroed on the stream: every later primitive, copy included, sees the zeros.
  record("alloc", CUDA_STATUS(cudaMemsetAsync(p, 0, request, stream_)));
  return Tensor(shape, dtype, Device::kCuda, std::move(storage));
}

void CudaBackend::memcpy_from_host(void* dst, const void* src, size_t bytes) {
  if (failed() || bytes == 0) return;
  if (!record("memcpy_from_host", CUDA_STATUS(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_))))
    return;
  // From pageable memory, cudaMemcpyAsync returns only once the bytes are staged, so the
  // caller may reuse `src`. From pinned (or managed) memory the DMA reads `src` later:
  // wait for it, to give the same guarantee.
  cudaPointerAttributes attr;
  const cudaError_t err = cudaPointerGetAttributes(&attr, src);
  if (err != cudaSuccess) (void)cudaGetLastError();  // unknown: wait, to be safe
  if (err != cudaSuccess || attr.type != cudaMemoryTypeUnregistered)
    record("memcpy_from_host", CUDA_STATUS(cudaStreamSynchronize(stream_)));
}

void CudaBackend::memcpy_to_host(void* dst, const void* src, size_t bytes) {
  if (failed() || bytes == 0) return;
  if (!record("memcpy_to_host", CUDA_STATUS(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_))))
    return;
  record("memcpy_to_host", CUDA_STATUS(cudaStreamSynchronize(stream_)));
}

void CudaBackend::copy(const Tensor& src, Tensor& dst) {
  if (failed()) return;
  if (src.nbytes() != dst.nbytes() || src.dtype() != dst.dtype() || src.device() != Device::kCuda ||
      dst.device() != Device::kCuda) {
    record("copy", Status::InvalidArgument("source " + shape_str(src.shape()) + " " + dtype_name(src.dtype()) +
                                           " on " + device_name(src.device()) + " does not match destination " +
                                           shape_str(dst.shape()) + " " + dtype_name(dst.dtype()) + " on " +
                                           device_name(dst.device())));
    return;
  }
  if (dst.nbytes() == 0 || src.data<char>() == dst.data<char>()) return;
  record("copy", CUDA_STATUS(cudaMemcpyAsync(dst.data<char>(), src.data<char>(), dst.nbytes(),
                                             cudaMemcpyDeviceToDevice, stream_)));
}

// ------------------------------------------------------------- values for the host

bool CudaBackend::ensure_workspace(const char* primitive, size_t bytes) {
  if (bytes <= workspace_bytes_) return !failed();
  // cudaFree synchronizes the device, so a queued reduction never loses its workspace.
  const Status freed = CUDA_STATUS(cudaFree(workspace_));
  workspace_ = nullptr;
  workspace_bytes_ = 0;
  if (!record(primitive, freed) || !record(primitive, CUDA_STATUS(cudaMalloc(&workspace_, bytes)))) return false;
  workspace_bytes_ = bytes;
  return true;
}

bool CudaBackend::check(const char* primitive, bool ok, const std::string& what) {
  return ok ? !failed() : record(primitive, Status::InvalidArgument(what));
}

bool CudaBackend::check_row_stride(const char* primitive, int64_t ld, int64_t c) {
  return check(primitive, ld >= c, "row stride ld " + std::to_string(ld) + " is below the class count " +
                                       std::to_string(c));
}

bool CudaBackend::fetch_scalars(const char* primitive) {
  if (!record(primitive, CUDA_STATUS(cudaMemcpyAsync(scalars_host_, scalars_dev_, sizeof(Scalars),
                                                     cudaMemcpyDeviceToHost, stream_))))
    return false;
  return record(primitive, CUDA_STATUS(cudaStreamSynchronize(stream_)));
}

double CudaBackend::reduce(const char* primitive, const float* x, int64_t n, bool squares) {
  if (failed() || n <= 0) return 0.0;
  if (!ensure_workspace(primitive, kernels::reduce_sum_workspace_bytes(n))) return 0.0;
  const kernels::ReduceKind kind = squares ? kernels::ReduceKind::kSumSquares : kernels::ReduceKind::kSum;
  if (!record(primitive, CUDA_STATUS(kernels::reduce_sum(x, n, kind, workspace_, &scalars_dev_->sum, stream_))))
    return 0.0;
  return fetch_scalars(primitive) ? scalars_host_->sum : 0.0;
}

double CudaBackend::sum(const float* x, int64_t n) { return reduce("sum", x, n, false); }
double CudaBackend::sum_squares(const float* x, int64_t n) { return reduce("sum_squares", x, n, true); }

int64_t CudaBackend::count_correct(const float* logits, int64_t ld, const int32_t* labels, int64_t n, int64_t c) {
  if (failed() || n <= 0) return 0;
  if (!check_row_stride("count_correct", ld, c)) return 0;
  if (!record("count_correct",
              CUDA_STATUS(kernels::count_correct(logits, ld, labels, n, c, &scalars_dev_->count, stream_))))
    return 0;
  return fetch_scalars("count_correct") ? static_cast<int64_t>(scalars_host_->count) : 0;
}

}  // namespace shardtrain
