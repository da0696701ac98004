// gpt_step_dump CONFIG CHECKPOINT OUT.h5: one training step of a GPT config from a
// checkpoint, with everything PyTorch needs to redo it (test_gpt_reference.py).
//
// On one rank without MPI: loads CHECKPOINT (parameters, AdamW state, data position),
// reads the next training batch, runs forward + backward as the trainer does (gradients
// of the mean loss over every position of the batch), writes them, clips if the config
// says so, takes the optimizer step the trainer would take at the checkpoint's step and
// writes the updated parameters. The layout is documented in test_gpt_reference.py.
#include <hdf5.h>

#include <cstdio>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "checkpoint/h5_io.h"
#include "config/config.h"
#include "optim/schedule.h"
#include "train/setup.h"
#include "train/train_state.h"

namespace shardtrain {
namespace {

Status write_f64_attr(hid_t obj, const char* name, double v) {
  hid_t space = H5Screate(H5S_SCALAR);
  if (space < 0) return Status::Internal("H5Screate failed");
  hid_t attr = H5Acreate2(obj, name, H5T_NATIVE_DOUBLE, space, H5P_DEFAULT, H5P_DEFAULT);
  const bool ok = attr >= 0 && H5Awrite(attr, H5T_NATIVE_DOUBLE, &v) >= 0;
  if (attr >= 0) H5Aclose(attr);
  H5Sclose(space);
  return ok ? Status::Ok() : Status::Internal(std::string("cannot write attribute ") + name);
}

Status write_i32(hid_t parent, const std::string& name, const Shape& shape, const int32_t* data) {
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
  if (space < 0) return Status::Internal("H5Screate_simple failed");
  hid_t ds = H5Dcreate2(parent, name.c_str(), H5T_NATIVE_INT32, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  const bool ok = ds >= 0 && H5Dwrite(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
  if (ds >= 0) H5Dclose(ds);
  H5Sclose(space);
  return ok ? Status::Ok() : Status::Internal("cannot write " + name);
}

Status write_group(hid_t file, const std::string& group, Model& model, const Tensor& flat) {
  ASSIGN_OR_RETURN(H5Handle g, h5_group_create(file, group, group));
  std::vector<float> host(flat.numel());
  model.backend().copy_to_host(flat, host.data());
  for (const ParamInfo& p : model.params()) {
    std::vector<float> t(host.begin() + p.offset, host.begin() + p.offset + shape_numel(p.shape));
    RETURN_IF_ERROR(h5_tensor_write(g.get(), p.name, p.shape, t, p.name, group));
  }
  return Status::Ok();
}

const config::LayerConfig* find_layer(const config::ModelConfig& m, bool (config::LayerConfig::*has)() const) {
  for (const auto& l : m.layer())
    if ((l.*has)()) return &l;
  return nullptr;
}

Status run(const std::string& config_path, const std::string& ckpt_path, const std::string& out_path) {
  ASSIGN_OR_RETURN(config::JobConfig cfg, load_config(config_path, {}));
  const auto* block = find_layer(cfg.model(), &config::LayerConfig::has_transformer_block);
  const auto* emb = find_layer(cfg.model(), &config::LayerConfig::has_embedding);
  const auto* pos = find_layer(cfg.model(), &config::LayerConfig::has_position_embedding);
  if (!block || !emb || !pos) return Status::InvalidArgument(config_path + ": not a GPT config");

  Topology topo;  // one rank, no MPI
  cfg.mutable_train()->set_threads(1);
  ASSIGN_OR_RETURN(auto backend, backend_for_job(cfg, topo));
  ASSIGN_OR_RETURN(auto train, open_train_split(cfg, topo));
  ASSIGN_OR_RETURN(auto test, open_test_split(cfg, topo));
  ASSIGN_OR_RETURN(auto model, build_model(cfg, *train, *test, *backend));
  const int64_t total_steps = cfg.train().steps();
  ASSIGN_OR_RETURN(auto opt, make_optimizer(cfg, total_steps, *model));
  ASSIGN_OR_RETURN(CheckpointData ckpt, checkpoint_read(ckpt_path));
  ASSIGN_OR_RETURN(TrainProgress progress, checkpoint_restore(ckpt_path, ckpt, *model, opt.get()));
  RETURN_IF_ERROR(train->seek(progress.data));
  ASSIGN_OR_RETURN(Batch batch, train->next());

  ForwardContext ctx;
  ctx.training = true;
  ctx.seed = cfg.train().seed();
  ctx.step = progress.step;
  ctx.global_batch = batch.global_size;
  ctx.grad_scale = 1.0f / static_cast<float>(cfg.data().global_batch());
  BatchResult r = model->forward_backward(ctx, batch_inputs(*model, batch), batch.size);

  h5_quiet_errors();
  H5Handle file(H5Fcreate(out_path.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
  if (!file.valid()) return Status::Internal("cannot create " + out_path + " (does it exist?)");
  {
    ASSIGN_OR_RETURN(H5Handle g, h5_group_create(file.get(), "batch", "batch"));
    const Shape shape{batch.size, cfg.data().seq_len()};
    RETURN_IF_ERROR(write_i32(g.get(), "tokens", shape, batch.field("tokens")->data<int32_t>()));
    RETURN_IF_ERROR(write_i32(g.get(), "targets", shape, batch.field("targets")->data<int32_t>()));
  }
  RETURN_IF_ERROR(write_group(file.get(), "grads", *model, model->flat_grads()));
  const float clip = cfg.optimizer().clip_grad_norm();
  if (clip > 0) clip_grad_norm(*backend, model->flat_grads(), clip);
  const float lr = opt->step(progress.step);
  RETURN_IF_ERROR(write_group(file.get(), "params_after", *model, model->flat_params()));
  RETURN_IF_ERROR(backend->synchronize());

  const auto& o = cfg.optimizer();
  const hid_t root = file.get();
  RETURN_IF_ERROR(write_f64_attr(root, "loss", r.loss_sum / static_cast<double>(r.predictions)));
  RETURN_IF_ERROR(write_f64_attr(root, "lr", lr));
  RETURN_IF_ERROR(write_f64_attr(root, "beta1", o.beta1()));
  RETURN_IF_ERROR(write_f64_attr(root, "beta2", o.beta2()));
  RETURN_IF_ERROR(write_f64_attr(root, "eps", o.eps()));
  RETURN_IF_ERROR(write_f64_attr(root, "weight_decay", o.weight_decay()));
  RETURN_IF_ERROR(write_f64_attr(root, "clip_grad_norm", clip));
  const int64_t d_model = emb->embedding().dim();
  const int64_t pad = emb->embedding().pad_to(), vocab = cfg.data().num_classes();
  RETURN_IF_ERROR(h5_attr_write_i64(root, "n_layer", block->transformer_block().count(), out_path));
  RETURN_IF_ERROR(h5_attr_write_i64(root, "n_head", block->transformer_block().n_head(), out_path));
  RETURN_IF_ERROR(h5_attr_write_i64(root, "d_model", d_model, out_path));
  RETURN_IF_ERROR(h5_attr_write_i64(root, "vocab_size", vocab, out_path));
  RETURN_IF_ERROR(h5_attr_write_i64(root, "padded_vocab",
                                    (emb->embedding().num_embeddings() + pad - 1) / pad * pad, out_path));
  RETURN_IF_ERROR(h5_attr_write_i64(root, "max_seq", pos->position_embedding().max_seq(), out_path));
  if (file.close() < 0) return Status::Internal("cannot close " + out_path);
  return Status::Ok();
}

}  // namespace
}  // namespace shardtrain

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: gpt_step_dump CONFIG CHECKPOINT OUT.h5\n");
    return 2;
  }
  shardtrain::Status st = shardtrain::run(argv[1], argv[2], argv[3]);
  if (!st.ok()) {
    std::fprintf(stderr, "error: %s\n", st.message().c_str());
    return 1;
  }
  return 0;
}
