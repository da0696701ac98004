#include "train/evaluate.h"

#include "train/setup.h"

namespace shardtrain {

StatusOr<EvalResult> evaluate(Model& model, ShardedLoader& test, Communicator& comm) {
  RETURN_IF_ERROR(test.seek(LoaderPosition{0, 0}));
  // loss sum, correct, samples, predictions, and whether this rank's device failed: a GPU
  // fault makes the sums read back as 0, and every rank must learn of it, not report 0.
  double sums[5] = {0, 0, 0, 0, 0};
  for (int64_t b = 0; b < test.batches_per_epoch(); ++b) {
    ASSIGN_OR_RETURN(Batch batch, test.next());
    BatchResult r = model.evaluate(batch_inputs(model, batch), batch.size);
    sums[0] += r.loss_sum;
    sums[1] += static_cast<double>(r.correct);
    sums[2] += static_cast<double>(r.samples);
    sums[3] += static_cast<double>(r.predictions);
  }
  const Status device = model.backend().synchronize();
  sums[4] = device.ok() ? 0 : 1;
  RETURN_IF_ERROR(comm.all_reduce(sums, 5, CommDType::kFloat64, ReduceOp::kSum));
  RETURN_IF_ERROR(device);
  if (sums[4] > 0) return Status::Internal("evaluation failed on another rank's device (see its error)");
  EvalResult e;
  e.samples = static_cast<int64_t>(sums[2]);
  if (sums[3] > 0) {
    e.loss = sums[0] / sums[3];
    e.accuracy = sums[1] / sums[3];
  }
  return e;
}

}  // namespace shardtrain
