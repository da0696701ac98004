// Helpers shared by the data tests: a temp dir under /tmp, IDX file writers, and a small
// synthetic split whose pixels encode their sample index (so tests can tell rows apart).
#pragma once

#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "data/h5_dataset.h"

namespace shardtrain::testing {

// A fresh directory under /tmp, removed with everything in it at the end of the test.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/st_data_test_XXXXXX";
    const char* d = mkdtemp(tmpl);
    EXPECT_NE(d, nullptr);
    path_ = d ? d : "/tmp";
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline std::vector<uint8_t> be32(uint32_t v) {
  return {uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)};
}

// Magic, big-endian dims, then the payload: a complete IDX file in memory.
inline std::vector<uint8_t> idx_bytes(uint32_t magic, const std::vector<uint32_t>& dims,
                                      const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> out = be32(magic);
  for (uint32_t d : dims) for (uint8_t b : be32(d)) out.push_back(b);
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

inline void write_file(const std::string& path, const std::vector<uint8_t>& bytes, bool gzip) {
  if (gzip) {
    gzFile f = gzopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())),
              static_cast<int>(bytes.size()));
    ASSERT_EQ(gzclose(f), Z_OK);
  } else {
    FILE* f = std::fopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(std::fwrite(bytes.data(), 1, bytes.size(), f), bytes.size());
    ASSERT_EQ(std::fclose(f), 0);
  }
}

// Sample i of a synthetic split: every pixel is (i * 7 + p) % 256, label i % classes.
inline uint8_t synthetic_pixel(int64_t i, int64_t p) { return uint8_t((i * 7 + p) % 256); }

// Writes split `split` of n samples of shape [c, h, w] with synthetic content to `path`.
inline void write_synthetic_split(const std::string& path, const std::string& split, int64_t n,
                                  int64_t c = 1, int64_t h = 4, int64_t w = 3,
                                  int64_t classes = 10) {
  const int64_t row = c * h * w;
  std::vector<uint8_t> images(static_cast<size_t>(n * row)), labels(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t p = 0; p < row; ++p) images[i * row + p] = synthetic_pixel(i, p);
    labels[i] = uint8_t(i % classes);
  }
  Status st = h5_write_split(path, split, {n, c, h, w}, images.data(), labels.data());
  ASSERT_TRUE(st.ok()) << st.ToString();
}

}  // namespace shardtrain::testing
