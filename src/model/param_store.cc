#include "model/param_store.h"

#include <cassert>
#include <cmath>

#include "core/counter_rng.h"

namespace shardtrain {

StatusOr<ParamId> ParamStore::declare(const std::string& name, const Shape& shape, ParamInit init) {
  if (flat_params_.defined()) return Status::Internal("parameter " + name + " declared after allocation");
  if (by_name_.count(name)) return Status::InvalidArgument("model: two parameters named " + name + " (rename a layer)");
  const ParamId id = static_cast<ParamId>(params_.size());
  params_.push_back(ParamInfo{name, shape, total_, init});
  by_name_[name] = id;
  total_ += shape_numel(shape);
  return id;
}

StatusOr<ParamId> ParamStore::find(const std::string& name) const {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) return Status::NotFound("no parameter named " + name);
  return it->second;
}

void ParamStore::allocate() {
  flat_params_ = be_.alloc({total_});
  flat_grads_ = be_.alloc({total_});
  for (const ParamInfo& p : params_) {
    values_.push_back(flat_params_.slice(p.offset, p.shape));
    grads_.push_back(flat_grads_.slice(p.offset, p.shape));
  }
  if (compute_dtype_ != DType::kFloat32) {
    flat_compute_ = be_.alloc({total_}, compute_dtype_);
    for (const ParamInfo& p : params_) compute_values_.push_back(flat_compute_.slice(p.offset, p.shape));
  }
  acquired_.assign(params_.size(), 0);
}

void ParamStore::refresh_compute_copy() {
  if (compute_dtype_ != DType::kFloat32) be_.convert(flat_params_, flat_compute_);
}

void ParamStore::acquire(const std::vector<ParamId>& ids) {
  for (ParamId id : ids) ++acquired_[id];
}

void ParamStore::release(const std::vector<ParamId>& ids) {
  for (ParamId id : ids) {
    assert(acquired_[id] > 0 && "release without acquire");
    --acquired_[id];
  }
}

void ParamStore::zero_grads() { be_.fill(flat_grads_, 0.0f); }

void init_params_host(const std::vector<ParamInfo>& params, uint64_t seed, std::vector<float>& host) {
  int64_t total = 0;
  for (const ParamInfo& p : params) total += shape_numel(p.shape);
  host.assign(total, 0.0f);
  for (size_t k = 0; k < params.size(); ++k) {
    const ParamInfo& p = params[k];
    const uint64_t base = counter_rng_base(seed, counter_rng_hash2(kCounterRngInit, k));
    const int64_t n = shape_numel(p.shape);
    float* out = host.data() + p.offset;
    switch (p.init.kind) {
      case ParamInit::kUniformFanIn: {
        const float bound = 1.0f / std::sqrt(static_cast<float>(p.init.value > 0 ? p.init.value : 1));
        for (int64_t i = 0; i < n; ++i) out[i] = (2.0f * counter_rng_uniform(base, i) - 1.0f) * bound;
        break;
      }
      case ParamInit::kNormal:
        // Box-Muller on draws 2i and 2i+1; the first uniform is moved off 0 for the log.
        for (int64_t i = 0; i < n; ++i) {
          const double u1 = 1.0 - static_cast<double>(counter_rng_uniform(base, 2 * i));
          const double u2 = counter_rng_uniform(base, 2 * i + 1);
          const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
          out[i] = static_cast<float>(p.init.value * z);
        }
        break;
      case ParamInit::kOnes:
        for (int64_t i = 0; i < n; ++i) out[i] = 1.0f;
        break;
      case ParamInit::kZeros:
        break;
    }
  }
}

void ParamStore::init(uint64_t seed) {
  std::vector<float> host;
  init_params_host(params_, seed, host);
  be_.copy_from_host(flat_params_, host.data());
}

}  // namespace shardtrain
