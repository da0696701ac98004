#include "data/h5_dataset.h"

#include <gtest/gtest.h>

#include <mutex>

#include "core/hdf5_lock.h"
#include "data_test_util.h"

namespace shardtrain {
namespace {

using testing::synthetic_pixel;
using testing::TempDir;
using testing::write_synthetic_split;

// Writes dataset `name` (intermediate groups created) of `dims` and file type `type`,
// filled from `data` (native uint8) or left unwritten (nullptr; chunked so nothing is
// allocated). Creates the file if missing.
void write_raw(const std::string& path, const std::string& name, std::vector<hsize_t> dims,
               hid_t type, const uint8_t* data, std::vector<hsize_t> chunk = {}) {
  std::lock_guard<std::mutex> lock(hdf5_mutex());
  hid_t f = std::filesystem::exists(path) ? H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT)
                                          : H5Fcreate(path.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  ASSERT_GE(H5Pset_create_intermediate_group(lcpl, 1), 0);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  if (!chunk.empty()) {
    ASSERT_GE(H5Pset_chunk(dcpl, int(chunk.size()), chunk.data()), 0);
  }
  hid_t space = H5Screate_simple(int(dims.size()), dims.data(), nullptr);
  hid_t ds = H5Dcreate2(f, name.c_str(), type, space, lcpl, dcpl, H5P_DEFAULT);
  ASSERT_GE(ds, 0);
  if (data) {
    ASSERT_GE(H5Dwrite(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), 0);
  }
  H5Dclose(ds);
  H5Sclose(space);
  H5Pclose(dcpl);
  H5Pclose(lcpl);
  H5Fclose(f);
}

H5SplitOptions opts(const std::string& path, const std::string& split = "train") {
  H5SplitOptions o;
  o.path = path;
  o.split = split;
  return o;
}

TEST(DataH5, RoundTripReadsRequestedRowsNormalised) {
  TempDir dir;
  const std::string path = dir.file("d.h5");
  write_synthetic_split(path, "train", 100, 2, 4, 3);
  write_synthetic_split(path, "test", 10, 2, 4, 3);  // a second split in the same file
  H5SplitOptions o = opts(path);
  o.mean = 0.5f;
  o.std = 0.25f;
  auto r = H5SplitReader::open(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->num_samples(), 100);
  EXPECT_EQ((*r)->sample_shape(), (Shape{2, 4, 3}));
  const std::vector<int64_t> rows = {0, 2, 3, 4, 41, 99};
  std::vector<float> images(rows.size() * 24);
  std::vector<int32_t> labels(rows.size());
  Status st = (*r)->read(rows, images.data(), labels.data());
  ASSERT_TRUE(st.ok()) << st.ToString();
  for (size_t k = 0; k < rows.size(); ++k) {
    EXPECT_EQ(labels[k], rows[k] % 10);
    for (int p = 0; p < 24; ++p) {
      ASSERT_EQ(images[k * 24 + p], (synthetic_pixel(rows[k], p) / 255.0f - 0.5f) / 0.25f)
          << "row " << rows[k] << " pixel " << p;
    }
  }
  EXPECT_EQ((*r)->rows_read(), 6);
  auto t = H5SplitReader::open(opts(path, "test"));
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ((*t)->num_samples(), 10);
}

TEST(DataH5, WriterRefusesToOverwriteASplit) {
  TempDir dir;
  const std::string path = dir.file("d.h5");
  write_synthetic_split(path, "train", 5);
  uint8_t px[12] = {}, lb[1] = {};
  Status st = h5_write_split(path, "train", {1, 1, 4, 3}, px, lb);
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(st.message(), path + ": split /train already exists; refusing to overwrite it");
  auto r = H5SplitReader::open(opts(path));  // the original is intact
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)->num_samples(), 5);
}

TEST(DataH5, MissingFileSaysHowToCreateIt) {
  auto r = H5SplitReader::open(opts("/tmp/st_no_such_dir/fashion_mnist.h5"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(r.status().message(), "data file /tmp/st_no_such_dir/fashion_mnist.h5 not found: "
                                  "run ./launch/prepare-data.sh to create it");
}

TEST(DataH5, NotHdf5IsDataLossNamingFile) {
  TempDir dir;
  const std::string path = dir.file("d.h5");
  testing::write_file(path, std::vector<uint8_t>(4096, 'x'), false);
  auto r = H5SplitReader::open(opts(path));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find(path), std::string::npos);
}

TEST(DataH5, MissingSplitNamesIt) {
  TempDir dir;
  const std::string path = dir.file("d.h5");
  write_synthetic_split(path, "train", 5);
  auto r = H5SplitReader::open(opts(path, "validation"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find(path + ": no split /validation"), std::string::npos)
      << r.status().message();
}

TEST(DataH5, WrongRankNamesDatasetAndShapes) {
  TempDir dir;
  const std::string path = dir.file("d.h5");
  std::vector<uint8_t> px(5 * 28 * 28), lb(5);
  write_raw(path, "/train/images", {5, 28, 28}, H5T_STD_U8LE, px.data());
  write_raw(path, "/train/labels", {5}, H5T_STD_U8LE, lb.data());
  auto r = H5SplitReader::open(opts(path));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), path + ": dataset /train/images has shape [5, 28, 28], "
                                         "expected [N, C, H, W] with every dimension > 0");
}

TEST(DataH5, LabelCountMismatchNamesBothDatasets) {
  TempDir dir;
  const std::string path = dir.file("d.h5");
  std::vector<uint8_t> px(5 * 12), lb(4);
  write_raw(path, "/train/images", {5, 1, 4, 3}, H5T_STD_U8LE, px.data());
  write_raw(path, "/train/labels", {4}, H5T_STD_U8LE, lb.data());
  auto r = H5SplitReader::open(opts(path));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), path + ": dataset /train/labels has shape [4], expected [5] "
                                         "(one label per image in /train/images)");
}

TEST(DataH5, FloatImagesAreRejected) {
  TempDir dir;
  const std::string path = dir.file("d.h5");
  std::vector<uint8_t> px(5 * 12), lb(5);
  write_raw(path, "/train/images", {5, 1, 4, 3}, H5T_IEEE_F32LE, px.data());
  write_raw(path, "/train/labels", {5}, H5T_STD_U8LE, lb.data());
  auto r = H5SplitReader::open(opts(path));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("/train/images must have an integer type"),
            std::string::npos) << r.status().message();
}

TEST(DataH5, MissingLabelsDatasetNamed) {
  TempDir dir;
  const std::string path = dir.file("d.h5");
  std::vector<uint8_t> px(5 * 12);
  write_raw(path, "/train/images", {5, 1, 4, 3}, H5T_STD_U8LE, px.data());
  H5SplitOptions o = opts(path);
  o.labels_dataset = "targets";
  auto r = H5SplitReader::open(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), path + ": dataset /train/targets not found (expected [5])");
}

TEST(DataH5, LabelOutOfRangeNamesSampleIndex) {
  TempDir dir;
  const std::string path = dir.file("d.h5");
  std::vector<uint8_t> px(6 * 12), lb = {0, 1, 2, 3, 12, 5};
  write_raw(path, "/train/images", {6, 1, 4, 3}, H5T_STD_U8LE, px.data());
  write_raw(path, "/train/labels", {6}, H5T_STD_U8LE, lb.data());
  auto r = H5SplitReader::open(opts(path));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::vector<float> images(2 * 12);
  std::vector<int32_t> labels(2);
  EXPECT_TRUE((*r)->read({1, 3}, images.data(), labels.data()).ok());
  Status st = (*r)->read({2, 4}, images.data(), labels.data());
  EXPECT_EQ(st.code(), StatusCode::kDataLoss);
  EXPECT_EQ(st.message(), path + ": /train/labels[4] = 12 is outside [0, 10) (data.num_classes)");
}

// 10^8 samples of 28x28 is 78 GB: only a reader that selects just the requested rows can
// serve a batch from it. The file stays tiny because unwritten chunks are never allocated.
TEST(DataH5, ReadsOnlyTheRequestedRowsOfAHugeDataset) {
  TempDir dir;
  const std::string path = dir.file("huge.h5");
  const hsize_t n = 100000000;
  write_raw(path, "/train/images", {n, 1, 28, 28}, H5T_STD_U8LE, nullptr, {64, 1, 28, 28});
  write_raw(path, "/train/labels", {n}, H5T_STD_U8LE, nullptr, {4096});
  auto r = H5SplitReader::open(opts(path));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->num_samples(), int64_t(n));
  const std::vector<int64_t> rows = {3, 4, 5, 77777777, int64_t(n) - 1};
  std::vector<float> images(rows.size() * 784, -1.0f);
  std::vector<int32_t> labels(rows.size(), -1);
  Status st = (*r)->read(rows, images.data(), labels.data());
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ((*r)->rows_read(), 5);
  for (float v : images) ASSERT_EQ(v, 0.0f);  // the fill value, normalised
  for (int32_t l : labels) ASSERT_EQ(l, 0);
}

TEST(DataH5, UnsortedIndicesAreAnInternalError) {
  TempDir dir;
  const std::string path = dir.file("d.h5");
  write_synthetic_split(path, "train", 5);
  auto r = H5SplitReader::open(opts(path));
  ASSERT_TRUE(r.ok());
  std::vector<float> images(2 * 12);
  std::vector<int32_t> labels(2);
  EXPECT_EQ((*r)->read({3, 1}, images.data(), labels.data()).code(), StatusCode::kInternal);
  EXPECT_EQ((*r)->read({1, 5}, images.data(), labels.data()).code(), StatusCode::kInternal);
}

}  // namespace
}  // namespace shardtrain
