#include "layers/layer.h"

namespace shardtrain {

Status Layer::declare_param(ParamStore& store, const std::string& local, const Shape& shape, ParamInit init) {
  store_ = &store;
  auto id = store.declare(name_ + "." + local, shape, init);
  if (!id.ok()) return id.status().WithContext(where_);
  param_ids_.push_back(id.value());
  return Status::Ok();
}

Status Layer::use_param(ParamStore& store, const std::string& full_name) {
  store_ = &store;
  auto id = store.find(full_name);
  if (!id.ok()) return error(id.status().message());
  param_ids_.push_back(id.value());
  return Status::Ok();
}

StatusOr<std::vector<ValueSpec>> UnaryLayer::configure(const std::vector<ValueSpec>& in, ParamStore& store) {
  store_ = &store;
  if (in.size() != 1) return error(std::string(type()) + " takes one input, got " + std::to_string(in.size()));
  const DType t = in[0].dtype;
  if (t == DType::kInt32)
    return error(std::string(type()) + " expects a floating-point input, got " + dtype_name(t) +
                 " (integer token ids go through an embedding first)");
  if (t == DType::kBFloat16 && !supports_bf16())
    return error(std::string(type()) + " computes in float32 only: train with train.precision FP32");
  ASSIGN_OR_RETURN(Shape out, configure_one(in[0].shape));
  return std::vector<ValueSpec>{{out, t}};
}

}  // namespace shardtrain
