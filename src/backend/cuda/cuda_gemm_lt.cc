#include "backend/cuda/cuda_gemm_lt.h"

#include <string>

#include "backend/cuda/cuda_check.h"

namespace shardtrain {

namespace {

// The largest power of two (up to 256) dividing the address: the alignment cuBLASLt may
// assume for an operand.
int alignment_of(const void* p) {
  const auto addr = reinterpret_cast<uintptr_t>(p);
  int align = 256;
  while (align > 1 && addr % align != 0) align /= 2;
  return align;
}

}  // namespace

// One GEMM shape's descriptors and the algorithm the heuristic picked for it.
struct GemmLt::Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  ~Plan() {
    // Destroy calls only free host memory; nothing to report them to.
    if (c) (void)cublasLtMatrixLayoutDestroy(c);
    if (b) (void)cublasLtMatrixLayoutDestroy(b);
    if (a) (void)cublasLtMatrixLayoutDestroy(a);
    if (desc) (void)cublasLtMatmulDescDestroy(desc);
  }
};

StatusOr<std::unique_ptr<GemmLt>> GemmLt::create(size_t workspace_bytes) {
  std::unique_ptr<GemmLt> g(new GemmLt());
  CUBLAS_CHECK(cublasLtCreate(&g->handle_));
  CUDA_CHECK(cudaMalloc(&g->workspace_, workspace_bytes));
  g->workspace_bytes_ = workspace_bytes;
  return g;
}

GemmLt::~GemmLt() {
  plans_.clear();
  // The owning backend synchronized its stream before destroying this.
  if (workspace_) (void)cudaFree(workspace_);
  if (handle_) (void)cublasLtDestroy(handle_);
}

// Key: (op_a, op_b, m, n, k, c is fp32, alignment of a, b, c).
StatusOr<GemmLt::Plan*> GemmLt::plan(const PlanKey& key) {
  auto it = plans_.find(key);
  if (it != plans_.end()) return it->second.get();
  const auto [ta, tb, m, n, k, c_f32, align_a, align_b, align_c] = key;
  auto p = std::make_unique<Plan>();
  // Column-major view of the row-major product (see CudaBackend::gemm): cuBLASLt's "A" is
  // our B and its "B" is our A; each matrix is described as stored, with its own op.
  CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t op_x = tb ? CUBLAS_OP_T : CUBLAS_OP_N, op_y = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_x, sizeof(op_x)));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_y, sizeof(op_y)));
  // X = our B: row-major [k, n] (or [n, k] transposed) is column-major [n, k] (or [k, n]).
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->a, CUDA_R_16BF, tb ? k : n, tb ? n : k, tb ? k : n));
  // Y = our A: row-major [m, k] (or [k, m]) is column-major [k, m] (or [m, k]).
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->b, CUDA_R_16BF, ta ? m : k, ta ? k : m, ta ? m : k));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->c, c_f32 ? CUDA_R_32F : CUDA_R_16BF, n, m, n));

  cublasLtMatmulPreference_t pref = nullptr;
  CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  struct PrefGuard {
    cublasLtMatmulPreference_t p;
    ~PrefGuard() { (void)cublasLtMatmulPreferenceDestroy(p); }
  } guard{pref};
  const uint64_t ws = workspace_bytes_;
  const uint32_t a_align = align_b, b_align = align_a, c_align = align_c;  // X is our B, Y our A
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &a_align,
                                                    sizeof(a_align)));
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &b_align,
                                                    sizeof(b_align)));
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &c_align,
                                                    sizeof(c_align)));
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &c_align,
                                                    sizeof(c_align)));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(handle_, p->desc, p->a, p->b, p->c, p->c, pref, 1, &result, &found));
  if (found < 1)
    return Status::Internal("cuBLASLt has no bf16 algorithm for m=" + std::to_string(m) + " n=" + std::to_string(n) +
                            " k=" + std::to_string(k) + (c_f32 ? " (fp32 output)" : " (bf16 output)"));
  p->algo = result.algo;
  Plan* raw = p.get();
  plans_.emplace(key, std::move(p));
  return raw;
}

Status GemmLt::gemm(GemmOp op_a, GemmOp op_b, int64_t m, int64_t n, int64_t k, float alpha, const void* a,
                    const void* b, float beta, void* c, DType c_dtype, cudaStream_t stream) {
  const PlanKey key{op_a == GemmOp::kTrans, op_b == GemmOp::kTrans, m, n, k, c_dtype == DType::kFloat32,
                    alignment_of(a), alignment_of(b), alignment_of(c)};
  ASSIGN_OR_RETURN(Plan * p, plan(key));
  // cuBLASLt's A is our b, its B our a; C and D are the same buffer (in place, beta * C).
  return CUBLAS_STATUS(cublasLtMatmul(handle_, p->desc, &alpha, b, p->a, a, p->b, &beta, c, p->c, c, p->c, &p->algo,
                                      workspace_, workspace_bytes_, stream));
}

}  // namespace shardtrain
