#include "cli/args.h"
#include "cli/commands.h"

#include <cstdio>
#include <string>

#include "core/tensor.h"
#include "data/h5_dataset.h"
#include "data/idx.h"

namespace shardtrain {

namespace {

const CommandSpec kImportSpec = {
    "import-idx",
    {},
    "Converts one split of IDX files (MNIST / Fashion-MNIST format, gzipped or not) into\n"
    "FILE.h5:/NAME/images (uint8 [N, 1, H, W]) and /NAME/labels (uint8 [N]). FILE.h5 is\n"
    "created if missing; a new split may be added to an existing file, but an existing split\n"
    "is never overwritten. Adding a split writes into the existing file in place: a crash\n"
    "mid-write can damage it, so import into a copy when it matters (prepare-data.sh\n"
    "builds a temporary file and links it into place).",
    {
        {"images", "F", "IDX image file (magic 0x0803), e.g. train-images-idx3-ubyte.gz"},
        {"labels", "F", "IDX label file (magic 0x0801)"},
        {"out", "F.h5", "HDF5 file to write"},
        {"split", "NAME", "split (group) name (default: train)"},
    },
    "example:\n  shardtrain import-idx --images train-images-idx3-ubyte.gz \\\n"
    "      --labels train-labels-idx1-ubyte.gz --out data/fashion_mnist.h5 --split train\n",
};

}  // namespace

int cmd_import_idx(int argc, char** argv) {
  Args args;
  if (int code = parse_plain_command(kImportSpec, argc, argv, &args); code >= 0) return code;
  const std::string images = args.get("images"), labels = args.get("labels"), out = args.get("out"),
                    split = args.get("split", "train");
  if (images.empty() || labels.empty() || out.empty()) {
    return plain_usage_error(kImportSpec, "--images, --labels and --out are required");
  }
  if (split.empty() || split.find('/') != std::string::npos) {
    return plain_usage_error(kImportSpec,
                             "--split must be a non-empty name without '/' (got '" + split + "')");
  }

  StatusOr<IdxSplit> data = idx_read_split(images, labels);
  if (!data.ok()) {
    std::fprintf(stderr, "error: %s\n", data.status().message().c_str());
    return 1;
  }
  const IdxImages& im = data->images;
  const Shape shape = {im.count, 1, im.rows, im.cols};
  Status st = h5_write_split(out, split, shape, im.pixels.data(), data->labels.data());
  if (!st.ok()) {
    std::fprintf(stderr, "error: %s\n", st.message().c_str());
    return 1;
  }
  std::printf("import-idx: wrote %s:/%s: images %s, labels [%lld]\n", out.c_str(),
              split.c_str(), shape_str(shape).c_str(), static_cast<long long>(im.count));
  return 0;
}

}  // namespace shardtrain
