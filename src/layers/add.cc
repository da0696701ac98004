#include "layers/add.h"

namespace shardtrain {

StatusOr<ValueSpec> residual_input_spec(const char* type, const std::vector<ValueSpec>& in) {
  const std::string t = type;
  if (in.size() != 2) return Status::InvalidArgument(t + " takes two inputs, got " + std::to_string(in.size()));
  if (in[0].shape != in[1].shape || in[0].dtype != in[1].dtype || in[0].dtype == DType::kInt32)
    return Status::InvalidArgument(t + " needs two floating-point inputs of one shape and dtype, got " +
                                   shape_str(in[0].shape) + " " + dtype_name(in[0].dtype) + " and " +
                                   shape_str(in[1].shape) + " " + dtype_name(in[1].dtype));
  return in[0];
}

StatusOr<std::vector<ValueSpec>> AddLayer::configure(const std::vector<ValueSpec>& in, ParamStore&) {
  auto spec = residual_input_spec(type(), in);
  if (!spec.ok()) return error(spec.status().message());
  return std::vector<ValueSpec>{*spec};
}

void AddLayer::forward(const ForwardContext&, const ConstTensors& in, const MutTensors& out) {
  be_.add(*in[0], *in[1], *out[0]);
}

void AddLayer::backward(const ForwardContext&, const ConstTensors&, const ConstTensors&, const ConstTensors& dout,
                        const MutTensors& din) {
  for (Tensor* d : din)
    if (d) be_.copy(*dout[0], *d);
}

}  // namespace shardtrain
