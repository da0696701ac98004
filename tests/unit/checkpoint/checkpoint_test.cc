// checkpoint_write / checkpoint_read / checkpoint_match: the file a user keeps must come
// back bit for bit, be readable by h5py, and any damage must be reported, not loaded.
#include "checkpoint/checkpoint.h"

#include <gtest/gtest.h>
#include <hdf5.h>
#include <sys/resource.h>

#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>

#include "ckpt_test_util.h"
#include "core/hdf5_lock.h"

namespace shardtrain {
namespace {

using CheckpointFile = TempDirTest;

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

void expect_same_tensors(const std::vector<HostTensor>& want, const std::vector<HostTensor>& got) {
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(want[i].name, got[i].name);
    EXPECT_EQ(want[i].shape, got[i].shape) << want[i].name;
    EXPECT_TRUE(same_bits(want[i].data, got[i].data)) << want[i].name;
  }
}

// Applies `edit` to the open file with HDF5 directly (simulating damage or a future
// writer), holding the HDF5 lock like every call site must.
template <typename F>
void edit_file(const std::string& path, F edit) {
  std::lock_guard<std::mutex> lock(hdf5_mutex());
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  edit(f);
  ASSERT_GE(H5Fclose(f), 0);
}

TEST_F(CheckpointFile, RoundTripIsBitwise) {
  CheckpointData d = sample_checkpoint();
  d.optimizer[2].data[0] = std::numeric_limits<float>::quiet_NaN();
  d.optimizer[2].data[1] = std::numeric_limits<float>::denorm_min();
  const std::string path = file("ckpt.h5");
  ASSERT_TRUE(checkpoint_write(path, d).ok());

  StatusOr<CheckpointData> r = checkpoint_read(path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->step, d.step);
  EXPECT_EQ(r->world_size, d.world_size);
  EXPECT_EQ(r->config_text, d.config_text);
  EXPECT_EQ(r->optimizer_kind, d.optimizer_kind);
  EXPECT_EQ(r->optimizer_step, d.optimizer_step);
  EXPECT_EQ(r->seed, d.seed);
  EXPECT_EQ(r->data_epoch, d.data_epoch);
  EXPECT_EQ(r->data_batch, d.data_batch);
  EXPECT_EQ(r->samples_seen, d.samples_seen);
  EXPECT_EQ(r->format_version, kCheckpointFormatVersion);
  EXPECT_EQ(r->created.size(), 20u) << r->created;  // 2024-05-01T12:00:00Z
  EXPECT_EQ(r->created.back(), 'Z');
  expect_same_tensors(d.params, r->params);  // order preserved, too
  expect_same_tensors(d.optimizer, r->optimizer);
}

TEST_F(CheckpointFile, EmptyOptimizerAndConfigRoundTrip) {
  CheckpointData d = sample_checkpoint();
  d.optimizer.clear();
  d.optimizer_kind = "sgd";
  d.config_text.clear();
  ASSERT_TRUE(checkpoint_write(file("c.h5"), d).ok());
  StatusOr<CheckpointData> r = checkpoint_read(file("c.h5"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->optimizer.empty());
  EXPECT_EQ(r->config_text, "");
  EXPECT_EQ(r->optimizer_kind, "sgd");
}

TEST_F(CheckpointFile, WriteNeverOverwrites) {
  const std::string path = file("ckpt.h5");
  { std::ofstream(path) << "precious"; }
  Status s = checkpoint_write(path, sample_checkpoint());
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  std::ifstream in(path);
  std::string content;
  in >> content;
  EXPECT_EQ(content, "precious");
}

TEST_F(CheckpointFile, WriteRejectsBadTensorsAndLeavesNoFile) {
  CheckpointData d = sample_checkpoint();
  d.params[0].data.pop_back();  // 5 values for shape [2, 3]
  Status s = checkpoint_write(file("a.h5"), d);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("fc1.weight"), std::string::npos) << s.message();
  EXPECT_FALSE(std::filesystem::exists(file("a.h5")));

  d = sample_checkpoint();
  d.optimizer[0].name = "fc1.weight";  // no STATE/ prefix
  EXPECT_EQ(checkpoint_write(file("b.h5"), d).code(), StatusCode::kInvalidArgument);
  d = sample_checkpoint();
  d.params[1].name = d.params[0].name;
  EXPECT_EQ(checkpoint_write(file("c.h5"), d).code(), StatusCode::kInvalidArgument);
}

TEST_F(CheckpointFile, NonFiniteParameterIsRefusedNamingTheTensor) {
  CheckpointData d = sample_checkpoint();
  d.params[1].data[0] = std::numeric_limits<float>::quiet_NaN();
  Status s = checkpoint_write(file("nan.h5"), d);
  EXPECT_EQ(s.code(), StatusCode::kNonFinite) << s.ToString();
  EXPECT_NE(s.message().find(d.params[1].name), std::string::npos) << s.message();
  EXPECT_FALSE(std::filesystem::exists(file("nan.h5")));
}

// A disk that refuses bytes (here a file size limit, EFBIG; a full disk is ENOSPC) is
// reported with the errno, leaves no file, and leaves HDF5 able to shut down: before the
// checkpoint was built in memory, HDF5 1.10 kept a half-closed file id that crashed the
// process at exit (this test binary would then die after the test "passed").
TEST_F(CheckpointFile, DiskErrorNamesErrnoAndLeavesNoFile) {
  struct rlimit old;
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);  // get EFBIG instead of the signal
  struct rlimit small = old;
  small.rlim_cur = 4096;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  CheckpointData big = sample_checkpoint();
  big.params.push_back({"big", {10000}, std::vector<float>(10000, 1.0f)});
  Status s = checkpoint_write(file("big.h5"), big);
  setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);
  EXPECT_EQ(s.code(), StatusCode::kInternal) << s.ToString();
  EXPECT_NE(s.message().find(std::strerror(EFBIG)), std::string::npos) << s.message();
  EXPECT_FALSE(std::filesystem::exists(file("big.h5")));
  // The library is still usable, and closes cleanly.
  ASSERT_TRUE(checkpoint_write(file("ok.h5"), sample_checkpoint()).ok());
  ASSERT_TRUE(checkpoint_read(file("ok.h5")).ok());
  std::lock_guard<std::mutex> lock(hdf5_mutex());
  EXPECT_GE(H5close(), 0);
}

TEST_F(CheckpointFile, H5pyReadsTheLayout) {
  if (std::system("/usr/bin/python3 -c 'import h5py, numpy' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "/usr/bin/python3 with h5py is not installed";
  const std::string path = file("ckpt-00000100.h5");
  ASSERT_TRUE(checkpoint_write(path, sample_checkpoint(100)).ok());
  const std::string script = file("read.py");
  std::ofstream(script) << R"PY(
import sys, h5py, numpy as np
def fnv1a64(b):
    h = 0xcbf29ce484222325
    for c in b:
        h = ((h ^ c) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h
f = h5py.File(sys.argv[1], 'r')
w = f['/params/fc1.weight']
assert w.dtype == np.float32 and w.shape == (2, 3), (w.dtype, w.shape)
want = np.array([[1.5, -2.25, 3.0], [0.1, -0.0, 100.0]], dtype=np.float32)
assert np.array_equal(w[()], want), w[()]
assert int(w.attrs['fnv1a64']) == fnv1a64(w[()].astype('<f4').tobytes())
assert f['/params/scale'][()] == np.float32(7.0)
assert f['/optimizer/exp_avg/fc1.bias'][()].tolist() == [6.0, 7.0, 8.0]
assert set(f['/optimizer'].keys()) == {'exp_avg', 'exp_avg_sq'}
m = f['/meta'].attrs
assert (m['step'], m['world_size'], m['format_version'], m['optimizer_step']) == (100, 4, 1, 100)
assert isinstance(m['config'], str), type(m['config'])
assert m['config'] == 'model {\n  layer { linear { out: 3 } }\n}\nseed: 42\n', repr(m['config'])
assert m['optimizer_kind'] == 'adamw' and isinstance(m['created'], str)
assert f['/rng'].attrs['seed'] == 0xFEDCBA9876543210 and f['/rng'].attrs['seed'].dtype == np.uint64
d = f['/data'].attrs
assert (d['epoch'], d['batch'], d['samples_seen']) == (2, 17, 123456789012)
print('h5py-ok')
)PY";
  FILE* p = ::popen(("/usr/bin/python3 " + script + " " + path + " 2>&1").c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  EXPECT_EQ(::pclose(p), 0) << out;
  EXPECT_NE(out.find("h5py-ok"), std::string::npos) << out;
}

TEST_F(CheckpointFile, TruncatedFileIsDataLoss) {
  const std::string path = file("ckpt.h5");
  ASSERT_TRUE(checkpoint_write(path, sample_checkpoint()).ok());
  std::filesystem::resize_file(path, std::filesystem::file_size(path) / 2);
  StatusOr<CheckpointData> r = checkpoint_read(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(r.status().message(), path + ": not a readable HDF5 checkpoint (truncated or corrupt?)");
}

TEST_F(CheckpointFile, NotHdf5IsDataLossAndMissingIsNotFound) {
  { std::ofstream(file("junk.h5")) << "this is not HDF5\n"; }
  StatusOr<CheckpointData> r = checkpoint_read(file("junk.h5"));
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find("not a readable HDF5 checkpoint"), std::string::npos);
  EXPECT_EQ(checkpoint_read(file("nope.h5")).status().code(), StatusCode::kNotFound);
}

TEST_F(CheckpointFile, FlippedByteFailsChecksum) {
  const std::string path = file("ckpt.h5");
  ASSERT_TRUE(checkpoint_write(path, sample_checkpoint()).ok());
  haddr_t offset = HADDR_UNDEF;
  edit_file(path, [&](hid_t f) {
    hid_t ds = H5Dopen2(f, "/params/fc1.weight", H5P_DEFAULT);
    ASSERT_GE(ds, 0);
    offset = H5Dget_offset(ds);  // contiguous: the tensor's bytes start here
    H5Dclose(ds);
  });
  ASSERT_NE(offset, HADDR_UNDEF);
  {
    std::fstream io(path, std::ios::in | std::ios::out | std::ios::binary);
    io.seekg(static_cast<std::streamoff>(offset + 5));
    char c = 0;
    io.read(&c, 1);
    c ^= 0x10;
    io.seekp(static_cast<std::streamoff>(offset + 5));
    io.write(&c, 1);
  }
  StatusOr<CheckpointData> r = checkpoint_read(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(r.status().message(), path + ": tensor fc1.weight fails its checksum (corrupt checkpoint)");
}

TEST_F(CheckpointFile, MissingPiecesAreDataLossNamingTheObject) {
  const std::string a = file("a.h5"), b = file("b.h5"), c = file("c.h5");
  for (const auto& p : {a, b, c}) ASSERT_TRUE(checkpoint_write(p, sample_checkpoint()).ok());
  edit_file(a, [](hid_t f) { ASSERT_GE(H5Adelete_by_name(f, "/meta", "step", H5P_DEFAULT), 0); });
  edit_file(b, [](hid_t f) { ASSERT_GE(H5Ldelete(f, "/rng", H5P_DEFAULT), 0); });
  edit_file(c, [](hid_t f) {
    ASSERT_GE(H5Adelete_by_name(f, "/optimizer/exp_avg/fc1.bias", "fnv1a64", H5P_DEFAULT), 0);
  });
  StatusOr<CheckpointData> ra = checkpoint_read(a), rb = checkpoint_read(b), rc = checkpoint_read(c);
  EXPECT_EQ(ra.status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(ra.status().message(), a + ": /meta: missing attribute step");
  EXPECT_EQ(rb.status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(rb.status().message(), b + ": missing group rng");
  EXPECT_EQ(rc.status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(rc.status().message(), c + ": tensor exp_avg/fc1.bias: missing attribute fnv1a64");
}

TEST_F(CheckpointFile, NewerFormatVersionIsRefusedClearly) {
  const std::string path = file("ckpt.h5");
  ASSERT_TRUE(checkpoint_write(path, sample_checkpoint()).ok());
  edit_file(path, [](hid_t f) {
    // Through the group: HDF5 1.10's H5Awrite fails on an H5Aopen_by_name handle here.
    hid_t meta = H5Gopen2(f, "/meta", H5P_DEFAULT);
    hid_t attr = H5Aopen(meta, "format_version", H5P_DEFAULT);
    ASSERT_GE(attr, 0);
    int64_t v = kCheckpointFormatVersion + 1;
    EXPECT_GE(H5Awrite(attr, H5T_NATIVE_INT64, &v), 0);
    H5Aclose(attr);
    H5Gclose(meta);
  });
  StatusOr<CheckpointData> r = checkpoint_read(path);
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("format version 2 is newer than this shardtrain supports (1)"),
            std::string::npos)
      << r.status().message();
}

TEST(CheckpointMatch, AcceptsExactSetInAnyOrder) {
  CheckpointData d = sample_checkpoint();
  EXPECT_TRUE(checkpoint_match("x.h5", d.params, {{"scale", {}}, {"fc1.bias", {3}}, {"fc1.weight", {2, 3}}}).ok());
}

TEST(CheckpointMatch, ShapeMismatchNamesTensorAndBothShapes) {
  std::vector<HostTensor> got = {{"fc1.weight", {128, 784}, {}}};
  Status s = checkpoint_match("ckpt-00000100.h5", got, {{"fc1.weight", {256, 784}}});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "ckpt-00000100.h5: tensor fc1.weight has shape [128, 784] in the checkpoint but [256, 784] in the model");
}

TEST(CheckpointMatch, MissingAndExtraTensorsAreNamed) {
  std::vector<HostTensor> got = {{"fc1.weight", {2, 3}, {}}, {"fc9.bias", {3}, {}}};
  Status s = checkpoint_match("c.h5", got, {{"fc1.weight", {2, 3}}, {"fc2.bias", {4}}});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "c.h5: tensor fc2.bias is in the model but not in the checkpoint; "
            "tensor fc9.bias is in the checkpoint but not in the model");
}

}  // namespace
}  // namespace shardtrain
