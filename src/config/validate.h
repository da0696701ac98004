// validate_config: the ONE place config values are checked. Everything downstream may
// assume a validated config (positive batch sizes, lr > 0, exactly one of steps/epochs...).
//
// Layer-internal values (out_features, kernel_size, ...) are checked by the layer registry,
// which knows the inferred shapes; here only what needs the whole model (unique names) and
// what is shape-independent (dropout p).
#pragma once

#include "config/shardtrain.pb.h"
#include "core/status.h"

namespace shardtrain {

// Returns the first violation as InvalidArgument naming the dotted field path and the
// offending value, e.g. "optimizer.lr must be > 0 (got -1)". NaN fails every range check.
Status validate_config(const config::JobConfig& cfg);

}  // namespace shardtrain
