#include "train/setup.h"

#include <algorithm>
#include <thread>

#include "backend/make_backend.h"
#include "data/image_source.h"
#include "data/token_source.h"

namespace shardtrain {
namespace {

LoaderOptions loader_options(const config::JobConfig& cfg, bool train, const Topology& topo) {
  const config::DataConfig& d = cfg.data();
  LoaderOptions o;
  o.path = d.path();
  o.split = train ? d.train_split() : d.test_split();
  o.global_batch = train ? d.global_batch() : d.eval_batch();
  o.batch_field = train ? "data.global_batch" : "data.eval_batch";
  o.rank = topo.rank;
  o.world_size = topo.world_size;
  o.seed = cfg.train().seed();
  o.shuffle = train && d.shuffle();
  o.drop_last = train;
  o.prefetch = d.prefetch();
  return o;
}

StatusOr<std::unique_ptr<SampleSource>> open_source(const config::DataConfig& d, const std::string& split) {
  if (d.kind() == config::DataConfig::KIND_TOKENS) {
    TokenSourceOptions t;
    t.path = d.path();
    t.split = split;
    t.dataset = d.tokens_dataset();
    t.seq_len = d.seq_len();
    t.vocab_size = d.num_classes();
    ASSIGN_OR_RETURN(auto src, TokenSource::open(t));
    return std::unique_ptr<SampleSource>(std::move(src));
  }
  H5SplitOptions h;
  h.path = d.path();
  h.split = split;
  h.images_dataset = d.images_dataset();
  h.labels_dataset = d.labels_dataset();
  h.mean = d.mean();
  h.std = d.std();
  h.num_classes = d.num_classes();
  ASSIGN_OR_RETURN(auto src, ImageSource::open(h));
  return std::unique_ptr<SampleSource>(std::move(src));
}

StatusOr<std::unique_ptr<ShardedLoader>> open_split(const config::JobConfig& cfg, bool train, const Topology& topo) {
  const LoaderOptions o = loader_options(cfg, train, topo);
  ASSIGN_OR_RETURN(auto src, open_source(cfg.data(), o.split));
  return ShardedLoader::open(o, std::move(src));
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
  return open_split(cfg, true, topo);
}

StatusOr<std::unique_ptr<ShardedLoader>> open_test_split(const config::JobConfig& cfg, const Topology& topo) {
  return open_split(cfg, false, topo);
}

std::vector<ModelInput> model_inputs(const ShardedLoader& data) {
  std::vector<ModelInput> in;
  for (const FieldSpec& f : data.fields()) in.push_back({f.name, {f.shape, f.dtype}});
  return in;
}

StatusOr<std::unique_ptr<Model>> build_model(const config::JobConfig& cfg, const ShardedLoader& train,
                                             const ShardedLoader& test, Backend& backend) {
  const auto& d = cfg.data();
  const auto &a = train.fields(), &b = test.fields();
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    if (a[i].shape != b[i].shape)
      return Status::InvalidArgument(d.path() + ": " + a[i].name + " of split " + d.test_split() + " are " +
                                     shape_str(b[i].shape) + " per sample but those of split " + d.train_split() +
                                     " are " + shape_str(a[i].shape));
  return Model::build(cfg.model(), model_inputs(train), d.num_classes(), backend, compute_dtype(cfg));
}

DType compute_dtype(const config::JobConfig& cfg) {
  return cfg.train().precision() == config::TrainConfig::PRECISION_BF16 ? DType::kBFloat16 : DType::kFloat32;
}

StatusOr<std::unique_ptr<Optimizer>> make_optimizer(const config::JobConfig& cfg, int64_t total_steps, Model& model) {
  std::vector<std::pair<int64_t, Shape>> layout;
  for (const ParamInfo& p : model.params()) layout.emplace_back(p.offset, p.shape);
  return Optimizer::create(cfg.optimizer(), total_steps, model.backend(), model.flat_params(), model.flat_grads(),
                           decay_spans(layout, model.num_params(), cfg.optimizer().decay_matrices_only()));
}

std::vector<const void*> batch_inputs(const Model& model, const Batch& batch) {
  std::vector<const void*> out;
  for (const ModelInput& in : model.inputs()) {
    const BatchTensor* f = batch.field(in.name);
    out.push_back(f ? static_cast<const void*>(f->bytes.data()) : nullptr);
  }
  return out;
}

}  // namespace shardtrain
