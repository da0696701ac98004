// `--set a.b.c=value`: overrides one scalar field of a JobConfig by its dotted path.
#pragma once

#include <string>

#include "config/shardtrain.pb.h"
#include "core/status.h"

namespace shardtrain {

// Applies one "a.b.c=value" assignment. Sub-messages on the path are created as needed.
// Supported: any non-repeated int32/int64/uint32/uint64/float/double/bool/string/enum field.
// Enums take the full value name (DEVICE_CUDA) or, case-insensitively, the name without
// the enum-type prefix (`device=cuda`, `optimizer.kind=adamw`).
// train.steps and train.epochs are "exactly one of": setting either clears the other.
// Does not validate the value's range (validate_config() does, once, after all overrides).
// Errors are InvalidArgument and start with "--set <assignment>: ".
// REQUIRES: cfg != nullptr. On error *cfg is unchanged.
Status apply_override(config::JobConfig* cfg, const std::string& assignment);

}  // namespace shardtrain
