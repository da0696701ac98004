// Backend's typed entry points: the float32 path forwards to the float* primitives, which
// is all the CPU backend (the fp32 reference) implements. Backends with bf16 override them.
// Also the reference forms of fused primitives (add_layernorm_forward): the unfused ops.
#include "backend/backend.h"

namespace shardtrain {

bool Backend::require_f32(const char* primitive, std::initializer_list<const Tensor*> tensors) {
  std::string bad;
  for (const Tensor* t : tensors)
    if (t->dtype() != DType::kFloat32) bad += (bad.empty() ? "" : ", ") + std::string(dtype_name(t->dtype())) + " " + shape_str(t->shape());
  if (bad.empty()) return true;
  fail(primitive, "takes float32 tensors on " + name() + " (got " + bad +
                      "); bf16 activations need a CUDA device (train.precision)");
  return false;
}

void Backend::gemm(GemmOp op_a, GemmOp op_b, int64_t m, int64_t n, int64_t k, float alpha, const Tensor& a,
                   const Tensor& b, float beta, Tensor& c) {
  if (require_f32("gemm", {&a, &b, &c})) gemm(op_a, op_b, m, n, k, alpha, a.f32(), b.f32(), beta, c.f32());
}

void Backend::bias_add(Tensor& y, const Tensor& b, int64_t outer, int64_t channels, int64_t inner) {
  if (require_f32("bias_add", {&y, &b})) bias_add(y.f32(), b.f32(), outer, channels, inner);
}

void Backend::linear_act_forward(const Tensor& x, const Tensor& w, const Tensor& b, Activation act, int64_t n,
                                 int64_t in, int64_t out, Tensor& pre, Tensor& y) {
  gemm(GemmOp::kNoTrans, GemmOp::kTrans, n, out, in, 1.0f, x, w, 0.0f, pre);
  if (b.defined()) bias_add(pre, b, n, out, 1);
  activation_forward(act, pre, y);
}

void Backend::add_layernorm_forward(const Tensor& a, const Tensor& b, const Tensor& weight, const Tensor& bias,
                                    float eps, Tensor& sum, Tensor& y, Tensor& mean, Tensor& rstd) {
  add(a, b, sum);
  layernorm_forward(sum, weight, bias, eps, y, mean, rstd);
}

void Backend::bias_grad(const Tensor& dy, Tensor& db, int64_t outer, int64_t channels, int64_t inner) {
  if (require_f32("bias_grad", {&dy, &db})) bias_grad(dy.f32(), db.f32(), outer, channels, inner);
}

void Backend::activation_forward(Activation act, const Tensor& x, Tensor& y) {
  if (require_f32("activation_forward", {&x, &y})) activation_forward(act, x.f32(), y.f32(), x.numel());
}

void Backend::activation_backward(Activation act, const Tensor& x, const Tensor& dy, Tensor& dx) {
  if (require_f32("activation_backward", {&x, &dy, &dx}))
    activation_backward(act, x.f32(), dy.f32(), dx.f32(), x.numel());
}

void Backend::dropout(const Tensor& x, Tensor& y, float p, DropoutKey key) {
  if (require_f32("dropout", {&x, &y})) dropout(x.f32(), y.f32(), x.numel(), p, key);
}

void Backend::softmax_xent_forward(const Tensor& logits, int64_t ld, const Tensor& labels, int64_t n, int64_t c,
                                   Tensor& stats, Tensor& losses) {
  if (require_f32("softmax_xent_forward", {&logits, &stats, &losses}))
    softmax_xent_forward(logits.f32(), ld, labels.data<int32_t>(), n, c, stats.f32(), losses.f32());
}

void Backend::softmax_xent_backward(const Tensor& logits, int64_t ld, const Tensor& stats, const Tensor& labels,
                                    int64_t n, int64_t c, float scale, Tensor& dlogits) {
  if (require_f32("softmax_xent_backward", {&logits, &stats, &dlogits}))
    softmax_xent_backward(logits.f32(), ld, stats.f32(), labels.data<int32_t>(), n, c, scale, dlogits.f32());
}

int64_t Backend::count_correct(const Tensor& logits, int64_t ld, const Tensor& labels, int64_t n, int64_t c) {
  if (!require_f32("count_correct", {&logits})) return 0;
  return count_correct(logits.f32(), ld, labels.data<int32_t>(), n, c);
}

void Backend::grad_bucket_pack(const GradSegment* segs, int count, float scale, Tensor& flat) {
  if (require_f32("grad_bucket_pack", {&flat})) grad_bucket_pack(segs, count, scale, flat.f32());
}

void Backend::grad_bucket_unpack(const Tensor& flat, float scale, const GradSegment* segs, int count) {
  if (require_f32("grad_bucket_unpack", {&flat})) grad_bucket_unpack(flat.f32(), scale, segs, count);
}

void Backend::convert(const Tensor& src, Tensor& dst) {
  if (src.numel() != dst.numel()) {
    fail("convert", "source " + shape_str(src.shape()) + " and destination " + shape_str(dst.shape()) +
                        " differ in size");
    return;
  }
  if (require_f32("convert", {&src, &dst})) copy(src, dst);
}

}  // namespace shardtrain
