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
  const auto [ta, tb, m, n, k, c_f32, align_a, align_b, align_c, epilogue] = key;
  auto p = std::make_unique<Plan>();
  // Column-major view of the row-major product (see CudaBackend::gemm): cuBLASLt's "A" is
  // our B and its "B" is our A; each matrix is described as stored, with its own op.
  CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t op_x = tb ? CUBLAS_OP_T : CUBLAS_OP_N, op_y = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_x, sizeof(op_x)));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_y, sizeof(op_y)));
  const auto epi = static_cast<cublasLtEpilogue_t>(epilogue);
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
  if (epi == CUBLASLT_EPILOGUE_GELU_AUX_BIAS) {
    // The auxiliary output (the pre-activation) is laid out as D: leading dimension n.
    const int64_t aux_ld = n;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld,
                                                sizeof(aux_ld)));
  }
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
  const PlanKey key{op_a == GemmOp::kTrans, op_b == GemmOp::kTrans, m,
                    n,  k, c_dtype == DType::kFloat32,
                    alignment_of(a), alignment_of(b), alignment_of(c),
                    static_cast<int>(CUBLASLT_EPILOGUE_DEFAULT)};
  ASSIGN_OR_RETURN(Plan * p, plan(key));
  // cuBLASLt's A is our b, its B our a; C and D are the same buffer (in place, beta * C).
  return CUBLAS_STATUS(cublasLtMatmul(handle_, p->desc, &alpha, b, p->a, a, p->b, &beta, c, p->c, c, p->c, &p->algo,
                                      workspace_, workspace_bytes_, stream));
}

bool GemmLt::fused_bias_gelu_ok(int64_t n, const void* bias, const void* pre) {
  return n % 8 == 0 && alignment_of(bias) >= 16 && alignment_of(pre) >= 16;
}

Status GemmLt::gemm_bias_gelu(int64_t m, int64_t n, int64_t k, const void* a, const void* b, const void* bias,
                              void* pre, void* y, cudaStream_t stream) {
  const PlanKey key{false, true, m, n, k, 0, alignment_of(a), alignment_of(b), alignment_of(y),
                    static_cast<int>(CUBLASLT_EPILOGUE_GELU_AUX_BIAS)};
  ASSIGN_OR_RETURN(Plan * p, plan(key));
  // Pointers are per call; the plan (and its algorithm) was chosen with the epilogue set.
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &pre, sizeof(pre)));
  const float alpha = 1.0f, beta = 0.0f;
  return CUBLAS_STATUS(cublasLtMatmul(handle_, p->desc, &alpha, b, p->a, a, p->b, &beta, y, p->c, y, p->c, &p->algo,
                                      workspace_, workspace_bytes_, stream));
}

}  // namespace shardtrain
