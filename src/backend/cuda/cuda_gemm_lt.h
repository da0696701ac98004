// GemmLt: bf16 GEMMs through cuBLASLt, for CudaBackend's mixed-precision path.
//
// Why cuBLASLt and not cublasGemmEx: cuBLASLt exposes the heuristics, lets us state the
// real alignment of every operand (slices of the flat bf16 parameter copy are only 2-byte
// aligned in general, and an algorithm chosen for 256-byte alignment would fail on them),
// and takes a workspace, which the fastest Hopper kernels need. Plans (descriptors plus
// the chosen algorithm) are cached per (ops, sizes, dtypes, alignments), so the heuristic
// runs once per distinct GEMM of a model, not once per call.
//
// Numerics: bf16 A and B, fp32 accumulation (CUBLAS_COMPUTE_32F) and fp32 alpha/beta;
// C/D bf16 (activations) or fp32 (parameter gradients accumulated with beta = 1). Results
// are bitwise reproducible run to run on one GPU model and toolkit version (cuBLAS's
// documented guarantee; its split-K reduction schemes are sequential, not atomics): the
// plan, hence the algorithm, is fixed for the life of the backend.
//
// Thread-safety: none (one backend, one thread). Everything is issued on the given stream.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <map>
#include <memory>
#include <tuple>

#include "core/primitive_params.h"
#include "core/status.h"
#include "core/tensor.h"

namespace shardtrain {

class GemmLt {
 public:
  // Creates the cuBLASLt handle and a workspace of `workspace_bytes` on the current device.
  static StatusOr<std::unique_ptr<GemmLt>> create(size_t workspace_bytes);
  ~GemmLt();
  GemmLt(const GemmLt&) = delete;
  GemmLt& operator=(const GemmLt&) = delete;

  // Row-major C[m, n] = alpha * op(A)[m, k] * op(B)[k, n] + beta * C, as Backend::gemm.
  // a and b are bf16, c is bf16 or float32 (device pointers). REQUIRES m, n, k in
  // [1, 2^31).
  Status gemm(GemmOp op_a, GemmOp op_b, int64_t m, int64_t n, int64_t k, float alpha, const void* a,
              const void* b, float beta, void* c, DType c_dtype, cudaStream_t stream);
  // Row-major pre[m, n] = A[m, k] B[n, k]^T + bias[n] and y = gelu_tanh(pre), all bf16, in
  // one GEMM (cuBLASLt's GELU_AUX_BIAS epilogue writes y, and pre as its auxiliary output).
  // REQUIRES n % 8 == 0 and 16-byte aligned bias and pre (fused_bias_gelu_ok()).
  Status gemm_bias_gelu(int64_t m, int64_t n, int64_t k, const void* a, const void* b, const void* bias, void* pre,
                        void* y, cudaStream_t stream);
  static bool fused_bias_gelu_ok(int64_t n, const void* bias, const void* pre);

 private:
  struct Plan;
  // (op_a, op_b, m, n, k, c is fp32, alignment of a, b, c, epilogue)
  using PlanKey = std::tuple<bool, bool, int64_t, int64_t, int64_t, int, int, int, int, int>;
  GemmLt() = default;
  StatusOr<Plan*> plan(const PlanKey& key);

  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  std::map<PlanKey, std::unique_ptr<Plan>> plans_;
};

}  // namespace shardtrain
