// `shardtrain inspect PATH [--values] [--config]`: prints what a checkpoint holds.
//
// Reads the file with checkpoint_read (so it also verifies every checksum) and prints a
// human summary: metadata, then one line per parameter and optimizer tensor (shape,
// numel, min, max, mean |x|), then the total parameter count. --values adds the first
// few values of each tensor; --config prints only the stored config text (so it can be
// redirected into a .pbtxt and rerun). No MPI: runs on a login node.
#pragma once

namespace shardtrain {

// argv[0] is "inspect". Returns the process exit code: 0 ok (also --help), 1 the
// checkpoint cannot be read, 2 usage error. Errors are one line "error: ..." on stderr.
int cmd_inspect(int argc, char** argv);

}  // namespace shardtrain
