// CudaBackend: the transformer primitives (residual add, LayerNorm, the two fused, causal
// attention, KV-cached attention, embeddings). Each checks its tensors (dtype, device, sizes: a
// mismatch is a caller's bug and becomes the sticky error, naming the primitive and the
// tensor), finds scratch in the shared workspace where the kernel needs some, and issues
// one launcher from kernels/. How each kernel is deterministic is in its .cu file.
#include <string>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_launch.h"
#include "kernels/attention.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/norm.h"

namespace shardtrain {

namespace {

std::string numel_str(const char* name, const Tensor& t) { return std::string(name) + " " + shape_str(t.shape()); }

// "" when the kernels support g, else why not.
std::string attention_geometry_error(const AttentionGeometry& g) {
  const std::string dims = "batch " + std::to_string(g.batch) + ", seq " + std::to_string(g.seq) + ", heads " +
                           std::to_string(g.heads) + ", head_dim " + std::to_string(g.head_dim);
  if (g.batch < 0 || g.seq < 0 || g.heads < 1 || g.head_dim < 1) return "invalid geometry (" + dims + ")";
  if (g.head_dim > kernels::kAttentionMaxHeadDim)
    return "head_dim " + std::to_string(g.head_dim) + " exceeds the kernels' " +
           std::to_string(kernels::kAttentionMaxHeadDim);
  if (g.seq > kernels::kAttentionMaxSeq) return "seq " + std::to_string(g.seq) + " exceeds the kernels' limit";
  return "";
}

bf16* bf(Tensor& t) { return t.data<bf16>(); }
const bf16* bf(const Tensor& t) { return t.data<bf16>(); }

}  // namespace

bool CudaBackend::check_activation_dtype(const char* primitive, const Tensor& x) {
  return check(primitive, x.dtype() == DType::kFloat32 || x.dtype() == DType::kBFloat16,
               std::string("activations must be float32 or bf16, got ") + dtype_name(x.dtype()));
}

bool CudaBackend::check_tensors(const char* primitive, std::initializer_list<TensorArg> args) {
  for (const TensorArg& a : args) {
    const Tensor& t = *a.tensor;
    if (!t.defined()) return check(primitive, false, std::string(a.name) + " is not allocated");
    if (t.device() != Device::kCuda || t.dtype() != a.dtype) {
      return check(primitive, false,
                   std::string(a.name) + " is " + dtype_name(t.dtype()) + " on " + device_name(t.device()) +
                       ", expected " + dtype_name(a.dtype) + " on " + device_name(Device::kCuda));
    }
  }
  return !failed();
}

void CudaBackend::add(const Tensor& a, const Tensor& b, Tensor& y) {
  const DType t = a.dtype();
  if (!check_activation_dtype("add", a) || !check_tensors("add", {{"a", &a, t}, {"b", &b, t}, {"y", &y, t}})) return;
  if (!check("add", a.numel() == b.numel() && a.numel() == y.numel(),
             numel_str("a", a) + ", " + numel_str("b", b) + " and " + numel_str("y", y) + " differ in size"))
    return;
  if (t == DType::kBFloat16) {
    ST_LAUNCH("add", kernels::add(bf(a), bf(b), bf(y), y.numel(), stream_));
  } else {
    ST_LAUNCH("add", kernels::add(a.f32(), b.f32(), y.f32(), y.numel(), stream_));
  }
}

// ---------------------------------------------------------------------------- LayerNorm

void CudaBackend::layernorm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps, Tensor& y,
                                    Tensor& mean, Tensor& rstd) {
  const char* kName = "layernorm_forward";
  const DType t = x.dtype();
  if (!check_activation_dtype(kName, x) ||
      !check_tensors(kName, {{"x", &x, t}, {"weight", &weight, t}, {"bias", &bias, t}, {"y", &y, t}, {"mean", &mean},
                             {"rstd", &rstd}}))
    return;
  const int64_t c = weight.numel(), rows = c > 0 ? x.numel() / c : 0;
  if (!check(kName,
             c > 0 && rows * c == x.numel() && y.numel() == x.numel() && bias.numel() == c && mean.numel() == rows &&
                 rstd.numel() == rows,
             "shapes do not match: " + numel_str("x", x) + ", " + numel_str("weight", weight) + ", " +
                 numel_str("bias", bias) + ", " + numel_str("y", y) + ", " + numel_str("mean", mean) + ", " +
                 numel_str("rstd", rstd)))
    return;
  if (t == DType::kBFloat16) {
    ST_LAUNCH(kName, kernels::layernorm_forward(bf(x), bf(weight), bf(bias), eps, rows, c, bf(y), mean.f32(),
                                                rstd.f32(), stream_));
  } else {
    ST_LAUNCH(kName, kernels::layernorm_forward(x.f32(), weight.f32(), bias.f32(), eps, rows, c, y.f32(), mean.f32(),
                                                rstd.f32(), stream_));
  }
}

// add then layernorm_forward in one kernel (kernels/norm.cu); the same checks as the two.
void CudaBackend::add_layernorm_forward(const Tensor& a, const Tensor& b, const Tensor& weight, const Tensor& bias,
                                        float eps, Tensor& sum, Tensor& y, Tensor& mean, Tensor& rstd) {
  const char* kName = "add_layernorm_forward";
  const DType t = a.dtype();
  if (!check_activation_dtype(kName, a) ||
      !check_tensors(kName, {{"a", &a, t}, {"b", &b, t}, {"weight", &weight, t}, {"bias", &bias, t}, {"sum", &sum, t},
                             {"y", &y, t}, {"mean", &mean}, {"rstd", &rstd}}))
    return;
  const int64_t c = weight.numel(), rows = c > 0 ? a.numel() / c : 0;
  if (!check(kName,
             c > 0 && rows * c == a.numel() && b.numel() == a.numel() && sum.numel() == a.numel() &&
                 y.numel() == a.numel() && bias.numel() == c && mean.numel() == rows && rstd.numel() == rows,
             "shapes do not match: " + numel_str("a", a) + ", " + numel_str("b", b) + ", " +
                 numel_str("weight", weight) + ", " + numel_str("bias", bias) + ", " + numel_str("sum", sum) + ", " +
                 numel_str("y", y) + ", " + numel_str("mean", mean) + ", " + numel_str("rstd", rstd)))
    return;
  if (t == DType::kBFloat16) {
    ST_LAUNCH(kName, kernels::add_layernorm_forward(bf(a), bf(b), bf(weight), bf(bias), eps, rows, c, bf(sum), bf(y),
                                                    mean.f32(), rstd.f32(), stream_));
  } else {
    ST_LAUNCH(kName, kernels::add_layernorm_forward(a.f32(), b.f32(), weight.f32(), bias.f32(), eps, rows, c,
                                                    sum.f32(), y.f32(), mean.f32(), rstd.f32(), stream_));
  }
}

void CudaBackend::layernorm_backward(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& mean,
                                     const Tensor& rstd, Tensor& dx, Tensor& dweight, Tensor& dbias) {
  const char* kName = "layernorm_backward";
  const DType t = x.dtype();
  if (!check_activation_dtype(kName, x) ||
      !check_tensors(kName, {{"dy", &dy, t}, {"x", &x, t}, {"weight", &weight, t}, {"mean", &mean}, {"rstd", &rstd},
                             {"dx", &dx, t}, {"dweight", &dweight}, {"dbias", &dbias}}))
    return;
  const int64_t c = weight.numel(), rows = c > 0 ? x.numel() / c : 0;
  if (!check(kName,
             c > 0 && rows * c == x.numel() && dy.numel() == x.numel() && dx.numel() == x.numel() &&
                 dweight.numel() == c && dbias.numel() == c && mean.numel() == rows && rstd.numel() == rows,
             "shapes do not match: " + numel_str("dy", dy) + ", " + numel_str("x", x) + ", " +
                 numel_str("weight", weight) + ", " + numel_str("mean", mean) + ", " + numel_str("rstd", rstd) +
                 ", " + numel_str("dx", dx) + ", " + numel_str("dweight", dweight) + ", " +
                 numel_str("dbias", dbias)))
    return;
  if (!ensure_workspace(kName, kernels::layernorm_backward_workspace_bytes(rows, c))) return;
  if (t == DType::kBFloat16) {
    ST_LAUNCH(kName, kernels::layernorm_backward(bf(dy), bf(x), bf(weight), mean.f32(), rstd.f32(), rows, c,
                                                 workspace_, bf(dx), dweight.f32(), dbias.f32(), stream_));
  } else {
    ST_LAUNCH(kName, kernels::layernorm_backward(dy.f32(), x.f32(), weight.f32(), mean.f32(), rstd.f32(), rows, c,
                                                 workspace_, dx.f32(), dweight.f32(), dbias.f32(), stream_));
  }
}

// ---------------------------------------------------------------------------- attention

void CudaBackend::attention_forward(const Tensor& qkv, const AttentionGeometry& g, Tensor& out, Tensor& lse) {
  const char* kName = "attention_forward";
  const DType t = qkv.dtype();
  if (!check_activation_dtype(kName, qkv) || !check_tensors(kName, {{"qkv", &qkv, t}, {"out", &out, t}, {"lse", &lse}}))
    return;
  const std::string bad = attention_geometry_error(g);
  if (!check(kName, bad.empty(), bad)) return;
  const int64_t B = g.batch, T = g.seq, H = g.heads, C = g.channels();
  if (!check(kName, qkv.numel() == B * T * 3 * C && out.numel() == B * T * C && lse.numel() == B * H * T,
             "shapes do not match the geometry: " + numel_str("qkv", qkv) + ", " + numel_str("out", out) + ", " +
                 numel_str("lse", lse)))
    return;
  if (t == DType::kBFloat16) {
    ST_LAUNCH(kName, kernels::attention_forward(bf(qkv), g, bf(out), lse.f32(), stream_));
  } else {
    ST_LAUNCH(kName, kernels::attention_forward(qkv.f32(), g, out.f32(), lse.f32(), stream_));
  }
}

void CudaBackend::attention_backward(const Tensor& dout, const Tensor& qkv, const Tensor& out, const Tensor& lse,
                                     const AttentionGeometry& g, Tensor& dqkv) {
  const char* kName = "attention_backward";
  const DType t = qkv.dtype();
  if (!check_activation_dtype(kName, qkv) ||
      !check_tensors(kName, {{"dout", &dout, t}, {"qkv", &qkv, t}, {"out", &out, t}, {"lse", &lse}, {"dqkv", &dqkv, t}}))
    return;
  const std::string bad = attention_geometry_error(g);
  if (!check(kName, bad.empty(), bad)) return;
  const int64_t B = g.batch, T = g.seq, H = g.heads, C = g.channels();
  if (!check(kName,
             qkv.numel() == B * T * 3 * C && dqkv.numel() == qkv.numel() && out.numel() == B * T * C &&
                 dout.numel() == out.numel() && lse.numel() == B * H * T,
             "shapes do not match the geometry: " + numel_str("dout", dout) + ", " + numel_str("qkv", qkv) + ", " +
                 numel_str("out", out) + ", " + numel_str("lse", lse) + ", " + numel_str("dqkv", dqkv)))
    return;
  if (!ensure_workspace(kName, kernels::attention_backward_workspace_bytes(g))) return;
  if (t == DType::kBFloat16) {
    ST_LAUNCH(kName, kernels::attention_backward(bf(dout), bf(qkv), bf(out), lse.f32(), g, workspace_, bf(dqkv),
                                                 stream_));
  } else {
    ST_LAUNCH(kName, kernels::attention_backward(dout.f32(), qkv.f32(), out.f32(), lse.f32(), g, workspace_,
                                                 dqkv.f32(), stream_));
  }
}

void CudaBackend::attention_decode(const Tensor& qkv, int64_t pos, const AttentionGeometry& g, Tensor& cache,
                                   Tensor& out) {
  const char* kName = "attention_decode";
  const DType t = qkv.dtype();
  if (!check_activation_dtype(kName, qkv) ||
      !check_tensors(kName, {{"qkv", &qkv, t}, {"cache", &cache, t}, {"out", &out, t}}))
    return;
  const std::string bad = attention_geometry_error(g);
  if (!check(kName, bad.empty(), bad)) return;
  const int64_t B = g.batch, n = g.seq, C = g.channels();
  const int64_t max_seq = B > 0 ? cache.numel() / (B * 2 * C) : 0;
  if (!check(kName,
             qkv.numel() == B * n * 3 * C && out.numel() == B * n * C && cache.numel() == B * max_seq * 2 * C &&
                 pos >= 0 && pos + n <= max_seq && n <= 65535,
             "shapes do not match the geometry or the cache is full: " + numel_str("qkv", qkv) + ", " +
                 numel_str("cache", cache) + ", " + numel_str("out", out) + ", pos " + std::to_string(pos) +
                 ", " + std::to_string(n) + " new positions"))
    return;
  if (t == DType::kBFloat16) {
    ST_LAUNCH(kName, kernels::attention_decode(bf(qkv), pos, max_seq, g, bf(cache), bf(out), stream_));
  } else {
    ST_LAUNCH(kName, kernels::attention_decode(qkv.f32(), pos, max_seq, g, cache.f32(), out.f32(), stream_));
  }
}

// --------------------------------------------------------------------------- embeddings

void CudaBackend::embedding_forward(const Tensor& ids, const Tensor& table, Tensor& y) {
  const char* kName = "embedding_forward";
  const DType t = table.dtype();
  if (!check_activation_dtype(kName, table) ||
      !check_tensors(kName, {{"ids", &ids, DType::kInt32}, {"table", &table, t}, {"y", &y, t}}))
    return;
  const int64_t n = ids.numel(), d = table.rank() > 0 ? table.dim(-1) : 0, v = d > 0 ? table.numel() / d : 0;
  if (!check(kName, d > 0 && y.numel() == n * d,
             "output size is not ids x dim: " + numel_str("ids", ids) + ", " + numel_str("table", table) + ", " +
                 numel_str("y", y)))
    return;
  if (t == DType::kBFloat16) {
    ST_LAUNCH(kName, kernels::embedding_forward(ids.data<int32_t>(), n, bf(table), v, d, bf(y), stream_));
  } else {
    ST_LAUNCH(kName, kernels::embedding_forward(ids.data<int32_t>(), n, table.f32(), v, d, y.f32(), stream_));
  }
}

void CudaBackend::embedding_backward(const Tensor& ids, const Tensor& dy, Tensor& dtable) {
  const char* kName = "embedding_backward";
  const DType t = dy.dtype();
  if (!check_activation_dtype(kName, dy) ||
      !check_tensors(kName, {{"ids", &ids, DType::kInt32}, {"dy", &dy, t}, {"dtable", &dtable}}))
    return;
  const int64_t n = ids.numel(), d = dtable.rank() > 0 ? dtable.dim(-1) : 0, v = d > 0 ? dtable.numel() / d : 0;
  if (!check(kName, d > 0 && dy.numel() == n * d,
             "gradient size is not ids x dim: " + numel_str("ids", ids) + ", " + numel_str("dy", dy) + ", " +
                 numel_str("dtable", dtable)))
    return;
  size_t bytes = 0;
  if (!record(kName, CUDA_STATUS(kernels::embedding_backward_workspace_bytes(n, v, &bytes))) ||
      !ensure_workspace(kName, bytes))
    return;
  if (t == DType::kBFloat16) {
    ST_LAUNCH(kName, kernels::embedding_backward(ids.data<int32_t>(), n, bf(dy), v, d, workspace_, workspace_bytes_,
                                                 dtable.f32(), stream_));
  } else {
    ST_LAUNCH(kName, kernels::embedding_backward(ids.data<int32_t>(), n, dy.f32(), v, d, workspace_,
                                                 workspace_bytes_, dtable.f32(), stream_));
  }
}

}  // namespace shardtrain
