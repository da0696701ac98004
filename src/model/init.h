// Seeded parameter initialisation, separate from the model so tests and tools can
// reproduce it.
#pragma once

#include <cstdint>
#include <vector>

#include "model/model.h"

namespace shardtrain {

// Fills `host` (num_params floats, laid out as the model's flat buffer) with
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)) per parameter, element i of parameter k drawn from
// (seed, kCounterRngInit, k, i): identical on every rank, thread count and device.
void init_params_host(const std::vector<ParamInfo>& params, uint64_t seed, std::vector<float>& host);

}  // namespace shardtrain
