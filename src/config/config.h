// Loading a job config: read a *.pbtxt file, parse it as config::JobConfig text format,
// apply `--set path=value` overrides in order, then validate (config/validate.h).
//
// Every error is InvalidArgument (NotFound for a missing file) with a message that names
// the file and the 1-based line:column, the overriding assignment, or the dotted field path:
//   configs/x.pbtxt:12:5: Message type "shardtrain.config.TrainConfig" has no field named "stepz".
#pragma once

#include <string>
#include <vector>

#include "config/shardtrain.pb.h"
#include "core/status.h"

namespace shardtrain {

// Reads `path`, parses it, applies `overrides` ("a.b.c=value", in order) and validates.
StatusOr<config::JobConfig> load_config(const std::string& path,
                                        const std::vector<std::string>& overrides);

// Parses and validates text-format `text` (e.g. the config stored in a checkpoint).
// `origin` names the text in error messages in place of a file name.
StatusOr<config::JobConfig> parse_config_text(const std::string& text, const std::string& origin);

// The config in text format, deterministic for a given message (field-number order), so
// the effective config saved next to a run diffs cleanly. parse_config_text() reads it back
// to an equal message.
std::string config_to_text(const config::JobConfig& cfg);

}  // namespace shardtrain
