// Helpers shared by the token-data tests (unit/data and unit/cli): raw HDF5 datasets of any
// type and shape, and llm.c token shards built in memory.
#pragma once

#include <hdf5.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/hdf5_lock.h"
#include "data/token_dataset.h"
#include "data/token_writer.h"

namespace shardtrain::testing {

// Writes dataset `name` (intermediate groups created) of file type `type` and shape
// `dims` from int64 `values` (HDF5 converts), chunked by `chunk` elements along dim 0.
// Creates the file if missing.
inline void write_h5_ints(const std::string& path, const std::string& name, hid_t type,
                          std::vector<hsize_t> dims, const std::vector<int64_t>& values,
                          hsize_t chunk = 64) {
  std::lock_guard<std::mutex> lock(hdf5_mutex());
  hid_t f = std::filesystem::exists(path) ? H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT)
                                          : H5Fcreate(path.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  ASSERT_GE(H5Pset_create_intermediate_group(lcpl, 1), 0);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  std::vector<hsize_t> chunks(dims);
  chunks[0] = std::min(chunk, dims[0]);
  ASSERT_GE(H5Pset_chunk(dcpl, int(chunks.size()), chunks.data()), 0);
  hid_t space = H5Screate_simple(int(dims.size()), dims.data(), nullptr);
  hid_t ds = H5Dcreate2(f, name.c_str(), type, space, lcpl, dcpl, H5P_DEFAULT);
  ASSERT_GE(ds, 0);
  ASSERT_GE(H5Dwrite(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), 0);
  H5Dclose(ds);
  H5Sclose(space);
  H5Pclose(dcpl);
  H5Pclose(lcpl);
  H5Fclose(f);
}

inline void put_le32(std::vector<uint8_t>* out, size_t at, int32_t v) {
  for (int b = 0; b < 4; ++b) (*out)[at + b] = uint8_t(uint32_t(v) >> (8 * b));
}

// A complete llm.c shard: 256-int32 header (magic, version, count) then uint16 tokens,
// all little-endian. The header's count is tokens.size() unless `count` says otherwise.
inline std::vector<uint8_t> llmc_shard_bytes(const std::vector<uint16_t>& tokens,
                                             int32_t magic = 20240520, int32_t version = 1,
                                             std::optional<int32_t> count = std::nullopt) {
  std::vector<uint8_t> out(1024 + 2 * tokens.size(), 0);
  put_le32(&out, 0, magic);
  put_le32(&out, 4, version);
  put_le32(&out, 8, count.value_or(int32_t(tokens.size())));
  for (size_t i = 0; i < tokens.size(); ++i) {
    out[1024 + 2 * i] = uint8_t(tokens[i]);
    out[1024 + 2 * i + 1] = uint8_t(tokens[i] >> 8);
  }
  return out;
}

// n GPT-2-range token ids that differ from shard to shard (seed) and position to position.
inline std::vector<uint16_t> gpt2_ids(size_t n, uint32_t seed) {
  std::vector<uint16_t> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = uint16_t((seed * 7919u + i * 104729u) % 50257u);
  return ids;
}

// Every token of `split` in `path`, read in one call; checks the file's vocab_size
// attribute when `vocab_size` > 0.
inline std::vector<int32_t> read_all_tokens(const std::string& path, const std::string& split,
                                            int64_t vocab_size = 0) {
  auto r = TokenSplitReader::open(path, split);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (!r.ok()) return {};
  if (vocab_size > 0) {
    EXPECT_EQ((*r)->vocab_size(), vocab_size);
  }
  std::vector<int32_t> ids(static_cast<size_t>((*r)->num_tokens()));
  Status st = (*r)->read(0, (*r)->num_tokens(), ids.data());
  EXPECT_TRUE(st.ok()) << st.ToString();
  return ids;
}

// Writes `split` holding `ids` through `w`, in two appends.
inline void write_token_split(TokenFileWriter* w, const std::string& split,
                              const std::vector<uint16_t>& ids) {
  ASSERT_TRUE(w->begin_split(split, int64_t(ids.size())).ok());
  const int64_t half = int64_t(ids.size()) / 2;
  ASSERT_TRUE(w->append(ids.data(), half).ok());
  ASSERT_TRUE(w->append(ids.data() + half, int64_t(ids.size()) - half).ok());
  ASSERT_TRUE(w->end_split().ok());
}

}  // namespace shardtrain::testing
