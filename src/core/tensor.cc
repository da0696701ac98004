#include "core/tensor.h"

#include <cassert>

namespace shardtrain {

const char* dtype_name(DType d) {
  switch (d) {
    case DType::kFloat32: return "float32";
    case DType::kInt32: return "int32";
    case DType::kBFloat16: return "bfloat16";
  }
  return "unknown";
}
const char* device_name(Device d) { return d == Device::kCpu ? "cpu" : "cuda"; }
size_t dtype_size(DType d) {
  switch (d) {
    case DType::kFloat32: return 4;
    case DType::kInt32: return 4;
    case DType::kBFloat16: return 2;
  }
  return 0;
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(s[i]);
  }
  return out + "]";
}

Tensor::Tensor(Shape shape, DType dtype, Device device, std::shared_ptr<void> storage)
    : shape_(std::move(shape)), dtype_(dtype), device_(device), storage_(std::move(storage)) {}

Tensor Tensor::view(Shape s) const {
  assert(shape_numel(s) == numel());
  Tensor t = *this;
  t.shape_ = std::move(s);
  return t;
}

Tensor Tensor::slice(int64_t offset, Shape s) const {
  assert(offset >= 0 && offset + shape_numel(s) <= numel());
  Tensor t = *this;
  t.shape_ = std::move(s);
  t.byte_offset_ += offset * dtype_size(dtype_);
  return t;
}

Tensor Tensor::rows(int64_t begin, int64_t end) const {
  assert(rank() >= 1 && 0 <= begin && begin <= end && end <= shape_[0]);
  Shape s = shape_;
  s[0] = end - begin;
  return slice(begin * (numel() / (shape_[0] ? shape_[0] : 1)), s);
}

}  // namespace shardtrain
