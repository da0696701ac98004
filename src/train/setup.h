// Job setup shared by `train` and `eval`: the backend and the data splits a config asks for.
#pragma once

#include <memory>

#include "backend/backend.h"
#include "comm/mpi/topology.h"
#include "config/shardtrain.pb.h"
#include "data/loader.h"
#include "model/model.h"
#include "optim/optimizer.h"

namespace shardtrain {

// CPU threads: train.threads, or this node's cores divided among its ranks.
int cpu_threads_per_rank(int configured, int local_size);

StatusOr<std::unique_ptr<Backend>> backend_for_job(const config::JobConfig& cfg, const Topology& topo);

// The training split (shuffled, global_batch, drop_last) or the test split (in order,
// eval_batch, every sample once), sharded over topo's ranks.
StatusOr<std::unique_ptr<ShardedLoader>> open_train_split(const config::JobConfig& cfg, const Topology& topo);
StatusOr<std::unique_ptr<ShardedLoader>> open_test_split(const config::JobConfig& cfg, const Topology& topo);

// The model of cfg over the train split's fields; InvalidArgument when the test split's
// samples have other shapes (the error names the file, field and both splits).
StatusOr<std::unique_ptr<Model>> build_model(const config::JobConfig& cfg, const ShardedLoader& train,
                                             const ShardedLoader& test, Backend& backend);

// The job's optimizer over the model's flat buffers (with nanoGPT's no-decay group when
// optimizer.decay_matrices_only), for `total_steps` steps of schedule.
StatusOr<std::unique_ptr<Optimizer>> make_optimizer(const config::JobConfig& cfg, int64_t total_steps, Model& model);
// What train.precision makes layers compute in: kFloat32 or kBFloat16.
DType compute_dtype(const config::JobConfig& cfg);

// The host arrays of `batch` in the order of model.inputs() (the loader and the model
// were built from the same fields, so every one is there).
std::vector<const void*> batch_inputs(const Model& model, const Batch& batch);

}  // namespace shardtrain
