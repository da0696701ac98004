// Tensor: a shape, a dtype, a device and a (shared) owning buffer.
//
// Storage is allocated by a Backend (which knows how to free device memory) and shared by
// views: `view()` and `slice()` alias the same storage, so parameter and gradient tensors
// of every layer can be views into one flat, bucketable buffer owned by the Model.
// A Tensor is always contiguous (row-major). Not thread-safe; copies are shallow.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace shardtrain {

// kBFloat16: bfloat16 (the top half of an fp32), for mixed-precision activations on GPUs.
enum class DType { kFloat32, kInt32, kBFloat16 };
enum class Device { kCpu, kCuda };

const char* dtype_name(DType d);
const char* device_name(Device d);
size_t dtype_size(DType d);

using Shape = std::vector<int64_t>;
int64_t shape_numel(const Shape& s);
std::string shape_str(const Shape& s);  // "[64, 1, 28, 28]"

class Tensor {
 public:
  Tensor() = default;
  // Wraps `storage` (already allocated, at least numel * dtype_size bytes).
  Tensor(Shape shape, DType dtype, Device device, std::shared_ptr<void> storage);

  const Shape& shape() const { return shape_; }
  int64_t dim(int i) const { return shape_[i < 0 ? shape_.size() + i : i]; }
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return numel() * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  bool defined() const { return storage_ != nullptr; }

  template <typename T> T* data() { return reinterpret_cast<T*>(ptr()); }
  template <typename T> const T* data() const { return reinterpret_cast<const T*>(ptr()); }
  float* f32() { return data<float>(); }
  const float* f32() const { return data<float>(); }

  // Same storage, new shape with the same numel. REQUIRES: shape_numel(s) == numel().
  Tensor view(Shape s) const;
  // Elements [offset, offset + numel(s)) of the flat storage, as a tensor of shape s.
  Tensor slice(int64_t offset, Shape s) const;
  // Rows [begin, end) along dim 0.
  Tensor rows(int64_t begin, int64_t end) const;

 private:
  char* ptr() const { return static_cast<char*>(storage_.get()) + byte_offset_; }
  Shape shape_;
  DType dtype_ = DType::kFloat32;
  Device device_ = Device::kCpu;
  std::shared_ptr<void> storage_;
  size_t byte_offset_ = 0;
};

}  // namespace shardtrain
