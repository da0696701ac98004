#include "checkpoint/checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <set>

#include "checkpoint/h5_io.h"
#include "core/check.h"
#include "core/hdf5_lock.h"

namespace shardtrain {
namespace {

// Stored in /rng so a reader of the file learns what "RNG state" means here.
constexpr const char* kRngScheme =
    "counter-based: every random stream is derived from (seed, purpose, step or epoch); "
    "seed + /meta step + /data epoch is the complete RNG state";

struct FileImage {
  std::unique_ptr<char[]> bytes;
  size_t size = 0;
};

bool valid_component(const std::string& s) {
  return !s.empty() && s != "." && s != ".." && s.find('/') == std::string::npos;
}

std::string now_iso8601_utc() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Everything checkpoint_write refuses is caught here, before a file is created.
Status validate_for_write(const CheckpointData& d) {
  if (d.step < 0 || d.optimizer_step < 0 || d.world_size < 1 || d.data_epoch < 0 || d.data_batch < 0 ||
      d.samples_seen < 0)
    return Status::InvalidArgument("checkpoint: step, counters and positions must be >= 0, world_size >= 1");
  std::set<std::string> names;
  for (const HostTensor& t : d.params) {
    if (!valid_component(t.name))
      return Status::InvalidArgument("checkpoint: bad parameter name '" + t.name + "' (empty or contains '/')");
    if (!names.insert("params/" + t.name).second)
      return Status::InvalidArgument("checkpoint: parameter " + t.name + " appears twice");
  }
  for (const HostTensor& t : d.optimizer) {
    size_t slash = t.name.find('/');
    if (slash == std::string::npos || !valid_component(t.name.substr(0, slash)) ||
        !valid_component(t.name.substr(slash + 1)))
      return Status::InvalidArgument("checkpoint: bad optimizer tensor name '" + t.name + "' (want STATE/NAME)");
    if (!names.insert("optimizer/" + t.name).second)
      return Status::InvalidArgument("checkpoint: optimizer tensor " + t.name + " appears twice");
  }
  for (const auto* list : {&d.params, &d.optimizer})
    for (const HostTensor& t : *list) {
      bool bad_dim = false;
      for (int64_t dim : t.shape) bad_dim |= dim < 0;
      if (bad_dim || static_cast<int64_t>(t.data.size()) != shape_numel(t.shape))
        return Status::InvalidArgument("checkpoint: tensor " + t.name + " has " + std::to_string(t.data.size()) +
                                       " values but shape " + shape_str(t.shape));
    }
  // A diverged model is never saved: it would replace a good checkpoint under keep_last
  // and --resume auto would pick it. (Optimizer state is not checked: it only ever
  // matters together with parameters, and those are.)
  for (const HostTensor& t : d.params)
    for (size_t i = 0; i < t.data.size(); ++i)
      if (!std::isfinite(t.data[i]))
        return Status::NonFinite("checkpoint: parameter " + t.name + " holds a non-finite value (" +
                                 std::to_string(t.data[i]) + " at element " + std::to_string(i) +
                                 "); refusing to save a diverged model");
  return Status::Ok();
}

Status write_contents(hid_t file, const std::string& path, const CheckpointData& d) {
  const std::string w_meta = path + ": /meta";
  ASSIGN_OR_RETURN(H5Handle meta, h5_group_create(file, "meta", path));
  RETURN_IF_ERROR(h5_attr_write_i64(meta.get(), "format_version", kCheckpointFormatVersion, w_meta));
  RETURN_IF_ERROR(h5_attr_write_i64(meta.get(), "step", d.step, w_meta));
  RETURN_IF_ERROR(h5_attr_write_i64(meta.get(), "world_size", d.world_size, w_meta));
  RETURN_IF_ERROR(h5_attr_write_str(meta.get(), "config", d.config_text, w_meta));
  RETURN_IF_ERROR(h5_attr_write_str(meta.get(), "optimizer_kind", d.optimizer_kind, w_meta));
  RETURN_IF_ERROR(h5_attr_write_i64(meta.get(), "optimizer_step", d.optimizer_step, w_meta));
  RETURN_IF_ERROR(h5_attr_write_str(meta.get(), "created", now_iso8601_utc(), w_meta));

  ASSIGN_OR_RETURN(H5Handle params, h5_group_create(file, "params", path));
  for (const HostTensor& t : d.params)
    RETURN_IF_ERROR(h5_tensor_write(params.get(), t.name, t.shape, t.data, t.name, path));

  ASSIGN_OR_RETURN(H5Handle optimizer, h5_group_create(file, "optimizer", path));
  std::map<std::string, H5Handle> states;  // one subgroup per state, created on first use
  for (const HostTensor& t : d.optimizer) {
    const size_t slash = t.name.find('/');
    const std::string state = t.name.substr(0, slash);
    auto it = states.find(state);
    if (it == states.end()) {
      ASSIGN_OR_RETURN(H5Handle g, h5_group_create(optimizer.get(), state, path));
      it = states.emplace(state, std::move(g)).first;
    }
    RETURN_IF_ERROR(h5_tensor_write(it->second.get(), t.name.substr(slash + 1), t.shape, t.data, t.name, path));
  }

  const std::string w_rng = path + ": /rng";
  ASSIGN_OR_RETURN(H5Handle rng, h5_group_create(file, "rng", path));
  RETURN_IF_ERROR(h5_attr_write_u64(rng.get(), "seed", d.seed, w_rng));
  RETURN_IF_ERROR(h5_attr_write_str(rng.get(), "scheme", kRngScheme, w_rng));

  const std::string w_data = path + ": /data";
  ASSIGN_OR_RETURN(H5Handle data, h5_group_create(file, "data", path));
  RETURN_IF_ERROR(h5_attr_write_i64(data.get(), "epoch", d.data_epoch, w_data));
  RETURN_IF_ERROR(h5_attr_write_i64(data.get(), "batch", d.data_batch, w_data));
  return h5_attr_write_i64(data.get(), "samples_seen", d.samples_seen, w_data);
}

// Reads an int64 attribute that must lie in [lo, hi]; out of range means a damaged file.
Status read_ranged(hid_t obj, const std::string& name, int64_t lo, int64_t hi, const std::string& where,
                   int64_t* out) {
  ASSIGN_OR_RETURN(*out, h5_attr_read_i64(obj, name, where));
  if (*out < lo || *out > hi)
    return Status::DataLoss(where + ": attribute " + name + " = " + std::to_string(*out) + " is out of range");
  return Status::Ok();
}

Status read_meta(hid_t file, const std::string& path, CheckpointData* d) {
  const std::string w = path + ": /meta";
  ASSIGN_OR_RETURN(H5Handle meta, h5_group_open(file, "meta", path));
  int64_t version = 0, world = 0;
  RETURN_IF_ERROR(read_ranged(meta.get(), "format_version", 1, INT64_MAX, w, &version));
  if (version > kCheckpointFormatVersion)
    return Status::FailedPrecondition(path + ": checkpoint format version " + std::to_string(version) +
                                      " is newer than this shardtrain supports (" +
                                      std::to_string(kCheckpointFormatVersion) + "); use a newer shardtrain");
  d->format_version = static_cast<int>(version);
  RETURN_IF_ERROR(read_ranged(meta.get(), "step", 0, INT64_MAX, w, &d->step));
  RETURN_IF_ERROR(read_ranged(meta.get(), "world_size", 1, INT_MAX, w, &world));
  d->world_size = static_cast<int>(world);
  ASSIGN_OR_RETURN(d->config_text, h5_attr_read_str(meta.get(), "config", w));
  ASSIGN_OR_RETURN(d->optimizer_kind, h5_attr_read_str(meta.get(), "optimizer_kind", w));
  RETURN_IF_ERROR(read_ranged(meta.get(), "optimizer_step", 0, INT64_MAX, w, &d->optimizer_step));
  ASSIGN_OR_RETURN(d->created, h5_attr_read_str(meta.get(), "created", w));
  return Status::Ok();
}

// Reads every dataset directly under `group` (object path `group_path`, e.g.
// "/optimizer/exp_avg"), naming each tensor `prefix + child`.
Status read_tensors(hid_t group, const std::string& group_path, const std::string& prefix,
                    const std::string& path, std::vector<HostTensor>* out) {
  ASSIGN_OR_RETURN(std::vector<std::string> names, h5_group_children(group, path + ": " + group_path));
  for (const std::string& name : names) {
    ASSIGN_OR_RETURN(bool is_group, h5_child_is_group(group, name, path + ": " + group_path));
    if (is_group) return Status::DataLoss(path + ": unexpected group " + group_path + "/" + name);
    HostTensor t;
    t.name = prefix + name;
    RETURN_IF_ERROR(h5_tensor_read(group, name, t.name, path, &t.shape, &t.data));
    out->push_back(std::move(t));
  }
  return Status::Ok();
}

Status read_body(hid_t file, const std::string& path, CheckpointData* d) {
  RETURN_IF_ERROR(read_meta(file, path, d));

  ASSIGN_OR_RETURN(H5Handle params, h5_group_open(file, "params", path));
  RETURN_IF_ERROR(read_tensors(params.get(), "/params", "", path, &d->params));

  ASSIGN_OR_RETURN(H5Handle optimizer, h5_group_open(file, "optimizer", path));
  ASSIGN_OR_RETURN(std::vector<std::string> states, h5_group_children(optimizer.get(), path + ": /optimizer"));
  for (const std::string& state : states) {
    ASSIGN_OR_RETURN(H5Handle g, h5_group_open(optimizer.get(), state, path + ": /optimizer"));
    RETURN_IF_ERROR(read_tensors(g.get(), "/optimizer/" + state, state + "/", path, &d->optimizer));
  }

  ASSIGN_OR_RETURN(H5Handle rng, h5_group_open(file, "rng", path));
  ASSIGN_OR_RETURN(d->seed, h5_attr_read_u64(rng.get(), "seed", path + ": /rng"));

  const std::string w_data = path + ": /data";
  ASSIGN_OR_RETURN(H5Handle data, h5_group_open(file, "data", path));
  RETURN_IF_ERROR(read_ranged(data.get(), "epoch", 0, INT64_MAX, w_data, &d->data_epoch));
  RETURN_IF_ERROR(read_ranged(data.get(), "batch", 0, INT64_MAX, w_data, &d->data_batch));
  return read_ranged(data.get(), "samples_seen", 0, INT64_MAX, w_data, &d->samples_seen);
}

// The whole file, built in memory by HDF5's core driver (no backing store).
//
// Why not let HDF5 write to disk: in HDF5 1.10 a failed H5Fclose (any write error while
// flushing, e.g. a full disk) frees the file's internal state but leaves its id
// registered; the library's shutdown, which parallel HDF5 runs from MPI_Finalize, then
// closes that id again and dereferences the freed state (the exit-139 crash after
// "cannot write tensor ..."; fixed upstream only in 1.14.1). An in-memory file never
// fails to close, and write_image() reports the disk's errno precisely.
// Cost: host memory for the image, twice while H5Fget_file_image copies it out of the
// driver (closed right after), so up to 2x the file on top of `d` during a save.
StatusOr<FileImage> build_image(const std::string& path, const CheckpointData& d) {
  size_t payload = 0;
  for (const auto* list : {&d.params, &d.optimizer})
    for (const HostTensor& t : *list) payload += t.data.size() * sizeof(float);
  std::lock_guard<std::mutex> lock(hdf5_mutex());
  h5_quiet_errors();
  const std::string what = path + ": cannot build the checkpoint in memory (out of host memory?)";
  H5Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  // One allocation for tensors plus metadata, instead of growing by small steps.
  if (!fapl.valid() || H5Pset_fapl_core(fapl.get(), payload + (1 << 20), /*backing_store=*/0) < 0)
    return Status::Internal(what);
  H5Handle file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), H5Fclose);
  if (!file.valid()) return Status::Internal(what);
  RETURN_IF_ERROR(write_contents(file.get(), path, d));
  if (H5Fflush(file.get(), H5F_SCOPE_LOCAL) < 0) return Status::Internal(what);
  const ssize_t size = H5Fget_file_image(file.get(), nullptr, 0);
  if (size <= 0) return Status::Internal(what);
  FileImage image{std::unique_ptr<char[]>(new char[size]), static_cast<size_t>(size)};
  if (H5Fget_file_image(file.get(), image.bytes.get(), image.size) != size) return Status::Internal(what);
  if (file.close() < 0) return Status::Internal(what);
  return image;
}

// Writes the image to fd, reserving its space first so a full disk is found before any
// byte is written where the file system supports that.
Status write_image(int fd, const FileImage& image, const std::string& path) {
  auto failed = [&](const char* doing) {
    return Status::Internal(path + ": cannot " + doing + " checkpoint (" + std::to_string(image.size) +
                            " bytes): " + std::strerror(errno));
  };
  if (::fallocate(fd, 0, 0, static_cast<off_t>(image.size)) != 0 && errno != EOPNOTSUPP && errno != ENOSYS)
    return failed("reserve space for the");
  for (size_t done = 0; done < image.size;) {
    const size_t chunk = std::min<size_t>(image.size - done, size_t{1} << 30);
    const ssize_t n = ::write(fd, image.bytes.get() + done, chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return failed("write the");
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

}  // namespace

Status checkpoint_write(const std::string& path, const CheckpointData& data) {
  RETURN_IF_ERROR(validate_for_write(data).WithContext(path));
  // Create the file first: an existing name is refused before any work is done.
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    if (errno == EEXIST)
      return Status::FailedPrecondition(path + ": already exists; refusing to overwrite a checkpoint");
    return Status::Internal(path + ": cannot create checkpoint file: " + std::strerror(errno));
  }
  Status s;
  {
    auto image = build_image(path, data);
    s = image.ok() ? write_image(fd, image.value(), path) : image.status();
  }  // the image is freed before the (possibly slow) close
  if (::close(fd) != 0 && s.ok())  // NFS reports deferred write errors here
    s = Status::Internal(path + ": cannot write checkpoint: " + std::strerror(errno));
  if (!s.ok()) ::unlink(path.c_str());  // we created it: never leave a half-written checkpoint behind
  return s;
}

StatusOr<CheckpointData> checkpoint_read(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return Status::NotFound(path + ": no such checkpoint file");
  std::lock_guard<std::mutex> lock(hdf5_mutex());
  h5_quiet_errors();
  H5Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!file.valid()) return Status::DataLoss(path + ": not a readable HDF5 checkpoint (truncated or corrupt?)");
  CheckpointData d;
  RETURN_IF_ERROR(read_body(file.get(), path, &d));
  return d;
}

Status checkpoint_match(const std::string& path, const std::vector<HostTensor>& got,
                        const std::vector<std::pair<std::string, Shape>>& expected) {
  std::vector<std::string> problems;
  std::map<std::string, const Shape*> have;
  for (const HostTensor& t : got)
    if (!have.emplace(t.name, &t.shape).second) problems.push_back("tensor " + t.name + " appears twice");
  std::set<std::string> wanted;
  for (const auto& [name, shape] : expected) {
    wanted.insert(name);
    auto it = have.find(name);
    if (it == have.end())
      problems.push_back("tensor " + name + " is in the model but not in the checkpoint");
    else if (*it->second != shape)
      problems.push_back("tensor " + name + " has shape " + shape_str(*it->second) + " in the checkpoint but " +
                         shape_str(shape) + " in the model");
  }
  for (const HostTensor& t : got)
    if (!wanted.count(t.name)) problems.push_back("tensor " + t.name + " is in the checkpoint but not in the model");
  if (problems.empty()) return Status::Ok();

  // The first few problems are enough to see what changed between config and checkpoint.
  constexpr size_t kShown = 5;
  std::string msg = path + ": ";
  for (size_t i = 0; i < problems.size() && i < kShown; ++i) msg += (i ? "; " : "") + problems[i];
  if (problems.size() > kShown) msg += "; and " + std::to_string(problems.size() - kShown) + " more";
  return Status::InvalidArgument(msg);
}

}  // namespace shardtrain
