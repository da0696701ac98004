// shardtrain train CONFIG [--run-dir DIR] [--resume auto|PATH] [--set a.b=v]...
#include <cstdio>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/runtime.h"
#include "comm/agree.h"
#include "core/log.h"
#include "config/config.h"
#include "config/signal_list.h"
#include "train/stop_signals.h"
#include "train/trainer.h"

namespace shardtrain {
namespace {

const CommandSpec kTrainSpec = {
    "train",
    {"CONFIG"},
    "Trains the model described by CONFIG (Protobuf text format). Run under mpirun or srun for\n"
    "data-parallel training: each rank reads its slice of every global batch.",
    {
        {"run-dir", "DIR", "where checkpoints, metrics.jsonl and config.pbtxt go (default runs/<config name>)"},
        {"resume", "auto|PATH", "auto: continue from the newest valid checkpoint in DIR (or start fresh); "
                                "PATH: from that checkpoint"},
        {"set", "FIELD=VALUE", "override a config field by its dotted path, e.g. train.steps=200", true},
    },
    "examples:\n"
    "  mpirun -np 2 build/shardtrain train configs/fashion_mlp.pbtxt --run-dir runs/mlp\n"
    "  mpirun -np 2 build/shardtrain train configs/fashion_mlp.pbtxt --run-dir runs/mlp --resume auto\n"
    "exit codes: 0 trained to the end; 75 stopped by a signal (train.stop_signals, SIGINT) after saving a\n"
    "checkpoint: run again with --resume auto; 76 a collective timed out (comm.timeout_s; the line names the\n"
    "rank); 3 training diverged (non-finite loss or gradient, train.on_nonfinite); 2 usage or config error;\n"
    "1 other failure; 130 a second SIGINT.\n",
};

// For the life of the process (see cmd_train).
std::unique_ptr<StopSignals> g_stop_signals;

Status catch_default_stop_signals() {
  ASSIGN_OR_RETURN(std::vector<int> signals,
                   parse_signal_list("train.stop_signals", config::TrainConfig().stop_signals()));
  ASSIGN_OR_RETURN(g_stop_signals, StopSignals::install(signals));
  return Status::Ok();
}

std::string default_run_dir(const std::string& config_path) {
  std::string base = config_path.substr(config_path.find_last_of('/') + 1);
  if (auto dot = base.rfind('.'); dot != std::string::npos) base = base.substr(0, dot);
  return "runs/" + base;
}

// Everything but the runtime lives in here, so it is destroyed (threads joined) before
// the runtime finalizes MPI.
int train(MpiRuntime& rt, int argc, char** argv) {
  auto args = Args::parse(kTrainSpec, argc, argv);
  if (!args.ok()) return rt.report_agreed(args.status(), kExitUsage);  // same argv on every rank
  if (args->help()) {
    if (rt.is_root()) std::printf("%s", kTrainSpec.usage().c_str());
    return 0;
  }
  const std::string config_path = args->positional(0);
  auto cfg = load_config(config_path, args->get_all("set"));
  Status st = agree_on_status(rt.comm(), cfg.status());
  if (!st.ok()) return rt.report_agreed(st, kExitUsage);

  // The default stop signals were caught before MPI started; now the configured ones.
  auto signals = parse_signal_list("train.stop_signals", cfg->train().stop_signals());  // validated: OK
  st = signals.ok() ? g_stop_signals->change_to(signals.value()) : signals.status();
  st = agree_on_status(rt.comm(), st);
  if (!st.ok()) return rt.report_agreed(st, exit_code_for(st));

  TrainerOptions opts;
  opts.stop_signals = g_stop_signals.get();
  opts.run_dir = args->get("run-dir", default_run_dir(config_path));
  opts.resume = args->get("resume");
  auto trainer = Trainer::create(cfg.value(), opts, rt.topology(), rt.comm());
  st = agree_on_status(rt.comm(), trainer.status());
  if (!st.ok()) return rt.report_agreed(st, exit_code_for(st));
  st = trainer.value()->restore();  // agreed on every rank
  if (!st.ok()) return rt.report_agreed(st, exit_code_for(st));

  bool all_ranks = false;
  st = trainer.value()->run(&all_ranks);
  if (st.ok()) return trainer.value()->stopped_by() != 0 ? kExitPreempted : 0;
  // A comm.check_sequence mismatch is found by every rank at once: then all may exit cleanly.
  if (!all_ranks && !rt.comm().watchdog().failure_agreed()) rt.exit_local(st, exit_code_for(st));
  return rt.report_agreed(st, exit_code_for(st));
}

}  // namespace

int cmd_train(int argc, char** argv) {
  // Stop signals are caught from the start (the default train.stop_signals until the config
  // is read), so one that arrives while the job starts is acted on after its first step
  // instead of killing it. Kept until the process exits: one that lands after training,
  // inside MPI_Finalize, must not turn a finished or stopped job into a failed one.
  if (Status st = catch_default_stop_signals(); !st.ok()) {
    log_error(st.message());
    return kExitFailure;
  }
  auto rt = MpiRuntime::init_or_exit(&argc, &argv);
  return rt->run(train, argc, argv);
}

}  // namespace shardtrain
