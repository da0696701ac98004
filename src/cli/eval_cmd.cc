// shardtrain eval CONFIG --checkpoint PATH [--set a.b=v]...
#include <cstdio>

#include "checkpoint/checkpoint.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/runtime.h"
#include "comm/agree.h"
#include "comm/make_communicator.h"
#include "config/config.h"
#include "train/evaluate.h"
#include "train/setup.h"
#include "train/train_state.h"

namespace shardtrain {
namespace {

const CommandSpec kEvalSpec = {
    "eval",
    {"CONFIG"},
    "Evaluates a checkpoint on the test split of CONFIG's data and prints the test loss and\n"
    "accuracy. Runs on one rank or, sharded, under mpirun.",
    {
        {"checkpoint", "PATH", "checkpoint file, or RUN_DIR/checkpoints/latest (required)"},
        {"set", "FIELD=VALUE", "override a config field by its dotted path", true},
    },
    "example:\n  build/shardtrain eval configs/fashion_cnn.pbtxt --checkpoint runs/cnn/checkpoints/latest\n",
};

struct Loaded {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<ShardedLoader> test;
  std::unique_ptr<Model> model;
};

StatusOr<Loaded> load(const config::JobConfig& cfg, const std::string& ckpt_path, const Topology& topo) {
  Loaded l;
  ASSIGN_OR_RETURN(l.backend, backend_for_job(cfg, topo));
  ASSIGN_OR_RETURN(l.test, open_test_split(cfg, topo));
  ASSIGN_OR_RETURN(l.model, build_model(cfg, *l.test, *l.test, *l.backend));
  ASSIGN_OR_RETURN(CheckpointData ckpt, checkpoint_read(ckpt_path));
  RETURN_IF_ERROR(checkpoint_restore(ckpt_path, ckpt, *l.model, nullptr).status());
  return l;
}

int eval(MpiRuntime& rt, int argc, char** argv) {
  auto args = Args::parse(kEvalSpec, argc, argv);
  if (!args.ok()) return rt.report_agreed(args.status(), kExitUsage);
  if (args->help()) {
    if (rt.is_root()) std::printf("%s", kEvalSpec.usage().c_str());
    return 0;
  }
  if (!args->has("checkpoint"))
    return rt.report_agreed(Status::InvalidArgument("--checkpoint PATH is required (see shardtrain eval --help)"),
                            kExitUsage);
  auto cfg = load_config(args->positional(0), checkpoint_overrides(*args));
  Status st = agree_on_status(rt.comm(), cfg.status());
  if (!st.ok()) return rt.report_agreed(st, kExitUsage);
  st = configure_watchdog(rt.comm().watchdog(), cfg->comm(), rt.comm().mpi_comm());  // comm.timeout_s
  if (!st.ok()) return rt.report_agreed(st, exit_code_for(st));

  const std::string ckpt_path = args->get("checkpoint");
  auto loaded = load(cfg.value(), ckpt_path, rt.topology());
  st = agree_on_status(rt.comm(), loaded.status());
  if (!st.ok()) return rt.report_agreed(st, exit_code_for(st));

  auto result = evaluate(*loaded->model, *loaded->test, rt.comm());
  if (!result.ok()) rt.exit_local(result.status(), kExitFailure);
  if (rt.is_root())
    std::printf("%s: test loss %.4f, test accuracy %.2f%% (%lld samples)\n", ckpt_path.c_str(), result->loss,
                100 * result->accuracy, static_cast<long long>(result->samples));
  return 0;
}

}  // namespace

int cmd_eval(int argc, char** argv) {
  auto rt = MpiRuntime::init_or_exit(&argc, &argv);  // outlives everything eval() makes
  return rt->run(eval, argc, argv);
}

}  // namespace shardtrain
