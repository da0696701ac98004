#include "train/train_state.h"

namespace shardtrain {
namespace {

HostTensor to_host(Backend& be, const Tensor& flat, const ParamInfo& p, const std::string& name) {
  HostTensor h{name, p.shape, std::vector<float>(shape_numel(p.shape))};
  be.copy_to_host(flat.slice(p.offset, p.shape), h.data.data());
  return h;
}

}  // namespace

CheckpointData checkpoint_capture(Model& model, Optimizer& opt, const TrainProgress& progress, uint64_t seed,
                                  int world_size, const std::string& config_text) {
  Backend& be = model.backend();
  CheckpointData c;
  c.step = progress.step;
  c.world_size = world_size;
  c.config_text = config_text;
  c.seed = seed;
  c.data_epoch = progress.data.epoch;
  c.data_batch = progress.data.batch;
  c.samples_seen = progress.samples_seen;
  for (const ParamInfo& p : model.params()) c.params.push_back(to_host(be, model.flat_params(), p, p.name));
  c.optimizer_kind = opt.kind();
  c.optimizer_step = opt.steps_taken();
  for (auto& [state_name, flat] : opt.state())
    for (const ParamInfo& p : model.params())
      c.optimizer.push_back(to_host(be, flat, p, state_name + "/" + p.name));
  return c;
}

StatusOr<TrainProgress> checkpoint_restore(const std::string& path, const CheckpointData& ckpt, Model& model,
                                           Optimizer* opt) {
  std::vector<std::pair<std::string, Shape>> expected;
  for (const ParamInfo& p : model.params()) expected.emplace_back(p.name, p.shape);
  RETURN_IF_ERROR(checkpoint_match(path, ckpt.params, expected));
  if (opt) {
    if (ckpt.optimizer_kind != opt->kind())
      return Status::InvalidArgument(path + ": checkpoint was written with optimizer '" + ckpt.optimizer_kind +
                                     "' but optimizer.kind is '" + opt->kind() + "'");
    expected.clear();
    for (auto& [state_name, flat] : opt->state())
      for (const ParamInfo& p : model.params()) expected.emplace_back(state_name + "/" + p.name, p.shape);
    RETURN_IF_ERROR(checkpoint_match(path, ckpt.optimizer, expected));
  }

  // Everything matched: load. checkpoint_match guarantees names are present and unique.
  Backend& be = model.backend();
  auto load = [&](const std::vector<HostTensor>& tensors, Tensor& flat, const std::string& prefix) {
    for (const ParamInfo& p : model.params())
      for (const HostTensor& h : tensors)
        if (h.name == prefix + p.name) {
          Tensor dst = flat.slice(p.offset, p.shape);
          be.copy_from_host(dst, h.data.data());
        }
  };
  load(ckpt.params, model.flat_params(), "");
  if (opt) {
    for (auto& [state_name, flat] : opt->state()) load(ckpt.optimizer, flat, state_name + "/");
    opt->set_steps_taken(ckpt.optimizer_step);
  }
  TrainProgress pr;
  pr.step = ckpt.step;
  pr.samples_seen = ckpt.samples_seen;
  pr.data.epoch = ckpt.data_epoch;
  pr.data.batch = ckpt.data_batch;
  return pr;
}

}  // namespace shardtrain
