// Evaluation on the test split, sharded across ranks and reduced.
#pragma once

#include "comm/communicator.h"
#include "data/loader.h"
#include "model/model.h"

namespace shardtrain {

struct EvalResult {
  double loss = 0;      // mean over every predicted position (one per image, one per token)
  double accuracy = 0;  // fraction in [0, 1]
  int64_t samples = 0;
};

// One full pass over `test` (opened with shuffle=false, drop_last=false), from its start.
// Every rank must call it; the result is identical on every rank.
StatusOr<EvalResult> evaluate(Model& model, ShardedLoader& test, Communicator& comm);

}  // namespace shardtrain
