#include "model/init.h"

#include <cmath>

#include "core/counter_rng.h"

namespace shardtrain {

void init_params_host(const std::vector<ParamInfo>& params, uint64_t seed, std::vector<float>& host) {
  int64_t total = 0;
  for (const ParamInfo& p : params) total += shape_numel(p.shape);
  host.assign(total, 0.0f);
  for (size_t k = 0; k < params.size(); ++k) {
    const ParamInfo& p = params[k];
    const float bound = 1.0f / std::sqrt(static_cast<float>(p.fan_in > 0 ? p.fan_in : 1));
    const uint64_t base = counter_rng_base(seed, counter_rng_hash2(kCounterRngInit, k));
    const int64_t n = shape_numel(p.shape);
    for (int64_t i = 0; i < n; ++i)
      host[p.offset + i] = (2.0f * counter_rng_uniform(base, i) - 1.0f) * bound;
  }
}

void Model::init_params(uint64_t seed) {
  std::vector<float> host;
  init_params_host(params_, seed, host);
  be_.copy_from_host(flat_params_, host.data());
}

}  // namespace shardtrain
