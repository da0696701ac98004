#include "train/setup.h"

#include <algorithm>
#include <thread>

#include "backend/make_backend.h"

namespace shardtrain {
namespace {

LoaderOptions loader_options(const config::JobConfig& cfg, bool train, const Topology& topo) {
  const config::DataConfig& d = cfg.data();
  LoaderOptions o;
  o.path = d.path();
  o.split = train ? d.train_split() : d.test_split();
  o.images_dataset = d.images_dataset();
  o.labels_dataset = d.labels_dataset();
  o.global_batch = train ? d.global_batch() : d.eval_batch();
  o.batch_field = train ? "data.global_batch" : "data.eval_batch";
  o.rank = topo.rank;
  o.world_size = topo.world_size;
  o.seed = cfg.train().seed();
  o.shuffle = train && d.shuffle();
  o.drop_last = train;
  o.prefetch = d.prefetch();
  o.mean = d.mean();
  o.std = d.std();
  o.num_classes = d.num_classes();
  return o;
}

}  // namespace

int cpu_threads_per_rank(int configured, int local_size) {
  if (configured > 0) return configured;
  int hw = static_cast<int>(std::thread::hardware_concurrency());
  return std::max(1, hw / std::max(1, local_size));
}

StatusOr<std::unique_ptr<Backend>> backend_for_job(const config::JobConfig& cfg, const Topology& topo) {
  BackendOptions bo;
  bo.device = cfg.device() == config::JobConfig::DEVICE_CUDA ? Device::kCuda : Device::kCpu;
  bo.threads = cpu_threads_per_rank(cfg.train().threads(), topo.local_size);
  bo.local_rank = topo.local_rank;
  return make_backend(bo);
}

StatusOr<std::unique_ptr<ShardedLoader>> open_train_split(const config::JobConfig& cfg, const Topology& topo) {
  return ShardedLoader::open(loader_options(cfg, true, topo));
}

StatusOr<std::unique_ptr<ShardedLoader>> open_test_split(const config::JobConfig& cfg, const Topology& topo) {
  return ShardedLoader::open(loader_options(cfg, false, topo));
}

}  // namespace shardtrain
