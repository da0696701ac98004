#include "cli/import_idx_cmd.h"

#include <cstdio>
#include <cstring>
#include <string>

#include "core/tensor.h"
#include "data/h5_dataset.h"
#include "data/idx.h"

namespace shardtrain {

namespace {

constexpr const char* kUsage =
    "usage: shardtrain import-idx --images IMAGES.idx[.gz] --labels LABELS.idx[.gz]\n"
    "                             --out FILE.h5 [--split NAME]\n"
    "\n"
    "Converts one split of IDX files (MNIST / Fashion-MNIST format, gzipped or not) into\n"
    "FILE.h5:/NAME/images (uint8 [N, 1, H, W]) and /NAME/labels (uint8 [N]).\n"
    "FILE.h5 is created if missing; a new split may be added to an existing file, but an\n"
    "existing split is never overwritten.\n"
    "\n"
    "  --images F   IDX image file (magic 0x0803)\n"
    "  --labels F   IDX label file (magic 0x0801)\n"
    "  --out F      HDF5 file to write\n"
    "  --split S    split name (default: train)\n"
    "  --help       this text\n";

int usage_error(const std::string& msg) {
  std::fprintf(stderr, "error: %s (see shardtrain import-idx --help)\n", msg.c_str());
  return 2;
}

}  // namespace

int cmd_import_idx(int argc, char** argv) {
  std::string images, labels, out, split = "train";
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    // Accept both "--flag value" and "--flag=value".
    std::string value;
    const size_t eq = arg.find('=');
    if (arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else if (arg == "--images" || arg == "--labels" || arg == "--out" || arg == "--split") {
      return usage_error(arg + " needs a value");
    }
    if (arg == "--images") images = value;
    else if (arg == "--labels") labels = value;
    else if (arg == "--out") out = value;
    else if (arg == "--split") split = value;
    else return usage_error("unknown argument '" + arg + "'");
  }
  if (images.empty() || labels.empty() || out.empty()) {
    return usage_error("--images, --labels and --out are required");
  }
  if (split.empty() || split.find('/') != std::string::npos) {
    return usage_error("--split must be a non-empty name without '/' (got '" + split + "')");
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
