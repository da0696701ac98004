#include "layers/residual_layer_norm.h"

#include "layers/add.h"

namespace shardtrain {

StatusOr<std::vector<ValueSpec>> ResidualLayerNormLayer::configure(const std::vector<ValueSpec>& in,
                                                                   ParamStore& store) {
  auto spec = residual_input_spec(type(), in);
  if (!spec.ok()) return error(spec.status().message());
  if (spec->shape.empty()) return error("residual_layer_norm needs at least one dimension");
  dim_ = spec->shape.back();
  RETURN_IF_ERROR(declare_param(store, "weight", {dim_}, ParamInit::Ones()));
  RETURN_IF_ERROR(declare_param(store, "bias", {dim_}, ParamInit::Zeros()));
  return std::vector<ValueSpec>{*spec, *spec};
}

void ResidualLayerNormLayer::forward(const ForwardContext&, const ConstTensors& in, const MutTensors& out) {
  const int64_t rows = in[0]->numel() / dim_;
  Tensor mean = mean_.get(be_, rows).slice(0, {rows}), rstd = rstd_.get(be_, rows).slice(0, {rows});
  be_.add_layernorm_forward(*in[0], *in[1], param(0), param(1), eps_, *out[0], *out[1], mean, rstd);
}

void ResidualLayerNormLayer::backward(const ForwardContext&, const ConstTensors&, const ConstTensors& out,
                                      const ConstTensors& dout, const MutTensors& din) {
  const Tensor& sum = *out[0];
  const int64_t rows = sum.numel() / dim_;
  Tensor mean = mean_.get(be_, rows).slice(0, {rows}), rstd = rstd_.get(be_, rows).slice(0, {rows});
  // dsum is the first wanted input gradient, or scratch when only the parameters want one.
  Tensor scratch;
  Tensor* dsum = din[0] ? din[0] : din[1];
  if (!dsum) {
    if (!dout[1]) return;  // neither parameter nor input gradients
    scratch = dsum_.get(be_, sum.numel(), sum.dtype()).slice(0, sum.shape());
    dsum = &scratch;
  }
  if (dout[1]) be_.layernorm_backward(*dout[1], sum, param(0), mean, rstd, *dsum, grad(0), grad(1));
  if (!din[0] && !din[1]) return;
  // The unfused graph adds the LayerNorm's input gradient to the sum's other gradient:
  // the same addition here (float addition is commutative, so the bits agree).
  if (dout[1] && dout[0]) be_.add(*dout[0], *dsum, *dsum);
  else if (dout[0]) be_.copy(*dout[0], *dsum);
  else if (!dout[1]) be_.fill(*dsum, 0.0f);
  if (din[0] && din[1]) be_.copy(*din[0], *din[1]);
}

}  // namespace shardtrain
