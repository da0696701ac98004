// train.stop_signals: the text form ("USR1,USR2,TERM") and the signal numbers it names.
// Kept in config/ so validation and the trainer read the field the same way.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"

namespace shardtrain {

// Signal numbers named by a comma-separated list of USR1, USR2, TERM (an optional "SIG"
// prefix, surrounding spaces ignored; "" names none). Duplicates are kept once. Errors name
// `field` and the offending item. SIGINT is not listed: it always requests a stop.
StatusOr<std::vector<int>> parse_signal_list(const std::string& field, const std::string& text);

// "SIGUSR1" for SIGUSR1, ..., "signal N" for numbers without a name here.
std::string signal_name(int signo);

}  // namespace shardtrain
