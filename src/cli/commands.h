// The subcommands. Each takes argv starting at its own name and returns the process exit
// code (the MPI ones may also end the process themselves, see runtime.h).
#pragma once

namespace shardtrain {

int cmd_train(int argc, char** argv);       // train_cmd.cc
int cmd_eval(int argc, char** argv);        // eval_cmd.cc
int cmd_sample(int argc, char** argv);      // sample_cmd.cc
int cmd_inspect(int argc, char** argv);     // inspect_cmd.cc
int cmd_import_idx(int argc, char** argv);  // import_idx_cmd.cc
int cmd_import_text(int argc, char** argv);    // import_text_cmd.cc
int cmd_import_tokens(int argc, char** argv);  // import_tokens_cmd.cc

}  // namespace shardtrain
