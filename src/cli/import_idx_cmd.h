// `shardtrain import-idx`: converts one split of IDX files (gzipped or not) into the HDF5
// dataset layout of data/h5_dataset.h. Needs no MPI.
#pragma once

namespace shardtrain {

// argv[0] is "import-idx". Returns the process exit code: 0 on success (and for --help),
// 2 for a usage error, 1 for an I/O or data error. Errors are one "error: ..." line on
// stderr.
int cmd_import_idx(int argc, char** argv);

}  // namespace shardtrain
