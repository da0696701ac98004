// CudaBackend: the typed entry points of backend.h. float32 tensors go to the float*
// primitives (the fp32 path, matched against the CPU backend); bf16 activations go to the
// kernels' bf16 launchers and, for GEMMs, to cuBLASLt. Each entry point checks the dtype
// combination first: anything else is a caller's bug, kept as the sticky error.
#include <limits>
#include <string>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_launch.h"
#include "kernels/bucket.h"
#include "kernels/elementwise.h"
#include "kernels/loss.h"

namespace shardtrain {

namespace {

bool all_f32(std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts)
    if (t->dtype() != DType::kFloat32) return false;
  return true;
}

bool all_bf16(std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts)
    if (t->dtype() != DType::kBFloat16) return false;
  return true;
}

std::string dtypes(std::initializer_list<std::pair<const char*, const Tensor*>> ts) {
  std::string out;
  for (const auto& [name, t] : ts) out += (out.empty() ? "" : ", ") + std::string(name) + " " + dtype_name(t->dtype());
  return out;
}

bf16* bf(Tensor& t) { return t.data<bf16>(); }
const bf16* bf(const Tensor& t) { return t.data<bf16>(); }

}  // namespace

void CudaBackend::gemm(GemmOp op_a, GemmOp op_b, int64_t m, int64_t n, int64_t k, float alpha, const Tensor& a,
                       const Tensor& b, float beta, Tensor& c) {
  if (all_f32({&a, &b, &c})) return Backend::gemm(op_a, op_b, m, n, k, alpha, a, b, beta, c);
  const char* kName = "gemm";
  if (!check(kName, all_bf16({&a, &b}) && (c.dtype() == DType::kBFloat16 || c.dtype() == DType::kFloat32),
             "takes bf16 a and b with a bf16 or float32 c, or all float32; got " +
                 dtypes({{"a", &a}, {"b", &b}, {"c", &c}})))
    return;
  constexpr int64_t kIntMax = std::numeric_limits<int>::max();
  if (!check(kName, m >= 0 && n >= 0 && k > 0 && m <= kIntMax && n <= kIntMax && k <= kIntMax,
             "dimensions m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k) +
                 " are not in [1, 2^31) (cuBLASLt takes int; k = 0 is not a bf16 case)"))
    return;
  if (!check(kName, a.numel() >= m * k && b.numel() >= k * n && c.numel() >= m * n,
             "tensors are smaller than the product: a " + shape_str(a.shape()) + ", b " + shape_str(b.shape()) +
                 ", c " + shape_str(c.shape()) + " for m=" + std::to_string(m) + " n=" + std::to_string(n) +
                 " k=" + std::to_string(k)))
    return;
  if (m == 0 || n == 0) return;
  record(kName, gemm_lt_->gemm(op_a, op_b, m, n, k, alpha, a.data<char>(), b.data<char>(), beta, c.data<char>(),
                               c.dtype(), stream_));
}

void CudaBackend::bias_add(Tensor& y, const Tensor& b, int64_t outer, int64_t channels, int64_t inner) {
  if (all_f32({&y, &b})) return Backend::bias_add(y, b, outer, channels, inner);
  if (!check("bias_add", all_bf16({&y, &b}), "takes y and b of one dtype, got " + dtypes({{"y", &y}, {"b", &b}})))
    return;
  ST_LAUNCH("bias_add", kernels::bias_add(bf(y), bf(b), outer, channels, inner, stream_));
}

void CudaBackend::linear_act_forward(const Tensor& x, const Tensor& w, const Tensor& b, Activation act, int64_t n,
                                     int64_t in, int64_t out, Tensor& pre, Tensor& y) {
  const bool fusable = act == Activation::kGeluTanh && b.defined() && all_bf16({&x, &w, &b, &pre, &y}) && n > 0 &&
                       in > 0 && x.numel() >= n * in && w.numel() >= out * in && b.numel() >= out &&
                       pre.numel() >= n * out && y.numel() >= n * out &&
                       GemmLt::fused_bias_gelu_ok(out, b.data<char>(), pre.data<char>());
  if (!fusable) return Backend::linear_act_forward(x, w, b, act, n, in, out, pre, y);
  if (failed()) return;
  record("linear_act_forward", gemm_lt_->gemm_bias_gelu(n, out, in, x.data<char>(), w.data<char>(), b.data<char>(),
                                                        pre.data<char>(), y.data<char>(), stream_));
}

void CudaBackend::bias_grad(const Tensor& dy, Tensor& db, int64_t outer, int64_t channels, int64_t inner) {
  if (all_f32({&dy, &db})) return Backend::bias_grad(dy, db, outer, channels, inner);
  if (!check("bias_grad", dy.dtype() == DType::kBFloat16 && db.dtype() == DType::kFloat32,
             "takes float32 or bf16 dy and a float32 db, got " + dtypes({{"dy", &dy}, {"db", &db}})))
    return;
  ST_LAUNCH("bias_grad", kernels::bias_grad(bf(dy), db.f32(), outer, channels, inner, stream_));
}

void CudaBackend::activation_forward(Activation act, const Tensor& x, Tensor& y) {
  if (all_f32({&x, &y})) return Backend::activation_forward(act, x, y);
  if (!check("activation_forward", all_bf16({&x, &y}) && x.numel() == y.numel(),
             "takes x and y of one dtype and size, got " + dtypes({{"x", &x}, {"y", &y}})))
    return;
  ST_LAUNCH("activation_forward", kernels::activation_forward(act, bf(x), bf(y), x.numel(), stream_));
}

void CudaBackend::activation_backward(Activation act, const Tensor& x, const Tensor& dy, Tensor& dx) {
  if (all_f32({&x, &dy, &dx})) return Backend::activation_backward(act, x, dy, dx);
  if (!check("activation_backward", all_bf16({&x, &dy, &dx}) && x.numel() == dy.numel() && x.numel() == dx.numel(),
             "takes x, dy and dx of one dtype and size, got " + dtypes({{"x", &x}, {"dy", &dy}, {"dx", &dx}})))
    return;
  ST_LAUNCH("activation_backward", kernels::activation_backward(act, bf(x), bf(dy), bf(dx), x.numel(), stream_));
}

void CudaBackend::dropout(const Tensor& x, Tensor& y, float p, DropoutKey key) {
  if (all_f32({&x, &y})) return Backend::dropout(x, y, p, key);
  if (!check("dropout", all_bf16({&x, &y}) && x.numel() == y.numel(),
             "takes x and y of one dtype and size, got " + dtypes({{"x", &x}, {"y", &y}})))
    return;
  ST_LAUNCH("dropout", kernels::dropout(bf(x), bf(y), x.numel(), p, key, stream_));
}

void CudaBackend::softmax_xent_forward(const Tensor& logits, int64_t ld, const Tensor& labels, int64_t n, int64_t c,
                                       Tensor& stats, Tensor& losses) {
  if (logits.dtype() == DType::kFloat32) return Backend::softmax_xent_forward(logits, ld, labels, n, c, stats, losses);
  const char* kName = "softmax_xent_forward";
  if (!check_tensors(kName, {{"logits", &logits, DType::kBFloat16}, {"labels", &labels, DType::kInt32},
                             {"stats", &stats}, {"losses", &losses}}) ||
      !check_row_stride(kName, ld, c))
    return;
  ST_LAUNCH(kName, kernels::softmax_xent_forward(bf(logits), ld, labels.data<int32_t>(), n, c, stats.f32(),
                                                 losses.f32(), stream_));
}

void CudaBackend::softmax_xent_backward(const Tensor& logits, int64_t ld, const Tensor& stats, const Tensor& labels,
                                        int64_t n, int64_t c, float scale, Tensor& dlogits) {
  if (all_f32({&logits, &dlogits}))
    return Backend::softmax_xent_backward(logits, ld, stats, labels, n, c, scale, dlogits);
  const char* kName = "softmax_xent_backward";
  if (!check_tensors(kName, {{"logits", &logits, DType::kBFloat16}, {"stats", &stats},
                             {"labels", &labels, DType::kInt32}, {"dlogits", &dlogits, DType::kBFloat16}}) ||
      !check_row_stride(kName, ld, c))
    return;
  ST_LAUNCH(kName, kernels::softmax_xent_backward(bf(logits), ld, stats.f32(), labels.data<int32_t>(), n, c, scale,
                                                  bf(dlogits), stream_));
}

int64_t CudaBackend::count_correct(const Tensor& logits, int64_t ld, const Tensor& labels, int64_t n, int64_t c) {
  if (logits.dtype() == DType::kFloat32) return Backend::count_correct(logits, ld, labels, n, c);
  const char* kName = "count_correct";
  if (failed() || n <= 0) return 0;
  if (!check_tensors(kName, {{"logits", &logits, DType::kBFloat16}, {"labels", &labels, DType::kInt32}}) ||
      !check_row_stride(kName, ld, c))
    return 0;
  ST_LAUNCH(kName, kernels::count_correct(bf(logits), ld, labels.data<int32_t>(), n, c, &scalars_dev_->count,
                                          stream_));
  if (!fetch_scalars(kName)) return 0;
  return static_cast<int64_t>(scalars_host_->count);
}

void CudaBackend::convert(const Tensor& src, Tensor& dst) {
  const char* kName = "convert";
  if (!check(kName, src.numel() == dst.numel(),
             "source " + shape_str(src.shape()) + " and destination " + shape_str(dst.shape()) + " differ in size"))
    return;
  if (src.dtype() == dst.dtype()) return copy(src, dst);
  if (src.dtype() == DType::kFloat32 && dst.dtype() == DType::kBFloat16) {
    ST_LAUNCH(kName, kernels::convert(src.f32(), bf(dst), src.numel(), stream_));
  } else if (src.dtype() == DType::kBFloat16 && dst.dtype() == DType::kFloat32) {
    ST_LAUNCH(kName, kernels::convert(bf(src), dst.f32(), src.numel(), stream_));
  } else {
    check(kName, false, "converts between float32 and bf16 only, got " + dtypes({{"src", &src}, {"dst", &dst}}));
  }
}

void CudaBackend::grad_bucket_pack(const GradSegment* segs, int count, float scale, Tensor& flat) {
  if (flat.dtype() == DType::kFloat32) return Backend::grad_bucket_pack(segs, count, scale, flat);
  if (!check_tensors("grad_bucket_pack", {{"flat", &flat, DType::kBFloat16}})) return;
  ST_LAUNCH("grad_bucket_pack", kernels::grad_bucket_pack(segs, count, scale, bf(flat), stream_));
}

void CudaBackend::grad_bucket_unpack(const Tensor& flat, float scale, const GradSegment* segs, int count) {
  if (flat.dtype() == DType::kFloat32) return Backend::grad_bucket_unpack(flat, scale, segs, count);
  if (!check_tensors("grad_bucket_unpack", {{"flat", &flat, DType::kBFloat16}})) return;
  ST_LAUNCH("grad_bucket_unpack", kernels::grad_bucket_unpack(bf(flat), scale, segs, count, stream_));
}

}  // namespace shardtrain
