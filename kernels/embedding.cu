// Embedding forward (a gather) and backward (a scatter-add) without float atomics.
//
// Forward is a row copy: a block per token row, threads over the columns.
//
// Backward adds dy[i] into dtable[ids[i]], and a frequent token (a space, "the", padding)
// occurs hundreds of times per batch. Float atomics would add those rows in a
// scheduling-dependent order. Owning column slices and walking all n tokens in order (the
// CPU's scheme) is deterministic but leaves only dim / 32 warps of work, each n steps
// long. So the tokens are grouped by id first: a stable radix sort of (id, position)
// pairs by id (CUB's, an LSD radix sort, hence stable: equal ids keep increasing
// positions) gives each id's positions as one contiguous, ordered run. Then one warp per
// (run, 32-column slice) reads the table row once, adds the run's dy rows in increasing
// position in fp32 registers, and writes the row once. That is the CPU's sequence of fp32
// additions for every element, so the result is the CPU's bit for bit, and parallelism is
// (distinct ids x dim / 32) warps. Warps whose sorted position does not start a run exit
// at once. Out-of-range ids are given the key `vocab` before the sort (so they cannot
// fall into a real id's run) and their run is skipped.
//
// Mixed precision: both kernels are templates over the element type of the table / y /
// dy (float or __nv_bfloat16). The bf16 forward copies bf16 rows (widening and narrowing
// an exact value is the identity); the bf16 backward widens each dy element and adds it
// into the fp32 master gradient in the same run order as the fp32 kernel, so it is as
// deterministic.
#include "kernels/embedding.h"

#include <cub/device/device_radix_sort.cuh>

#include <cmath>

#include "kernels/kernel_util.cuh"

namespace shardtrain::kernels {

namespace {

constexpr size_t kAlign = 256;  // sub-buffer alignment within the workspace
size_t align_up(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

// Key bits the sort must look at: enough for 0..vocab (vocab is the out-of-range key).
int key_bits(int64_t vocab) {
  int bits = 1;
  while (bits < 32 && (uint64_t{1} << bits) <= static_cast<uint64_t>(vocab)) ++bits;
  return bits;
}

// The workspace: keys and positions in, keys and positions out, then CUB's scratch.
struct Workspace {
  uint32_t *keys_in, *keys_out;
  int32_t *pos_in, *pos_out;
  void* sort_scratch;
  size_t sort_scratch_bytes;
};
Workspace carve(void* base, int64_t n, size_t sort_scratch_bytes) {
  const size_t ints = align_up(static_cast<size_t>(n) * sizeof(int32_t));
  char* p = static_cast<char*>(base);
  return Workspace{reinterpret_cast<uint32_t*>(p), reinterpret_cast<uint32_t*>(p + ints),
                   reinterpret_cast<int32_t*>(p + 2 * ints), reinterpret_cast<int32_t*>(p + 3 * ints), p + 4 * ints,
                   sort_scratch_bytes};
}

template <typename T>
__global__ void embedding_forward_kernel(const int32_t* __restrict__ ids, int64_t n, const T* __restrict__ table,
                                         int64_t vocab, int64_t dim, T* __restrict__ y) {
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    const int32_t id = ids[i];
    const bool valid = id >= 0 && id < vocab;
    const T* src = table + static_cast<int64_t>(valid ? id : 0) * dim;
    T* dst = y + i * dim;
    for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) store_f32(dst + d, valid ? load_f32(src + d) : NAN);
  }
}

// keys_in[i] = ids[i] (vocab when out of range), pos_in[i] = i.
__global__ void embedding_sort_input_kernel(const int32_t* __restrict__ ids, int64_t n, int64_t vocab,
                                            uint32_t* __restrict__ keys, int32_t* __restrict__ pos) {
  for (int64_t i = grid_thread_index(); i < n; i += grid_thread_count()) {
    const int32_t id = ids[i];
    keys[i] = id >= 0 && id < vocab ? static_cast<uint32_t>(id) : static_cast<uint32_t>(vocab);
    pos[i] = static_cast<int32_t>(i);
  }
}

// grid (ceil(n / warps per block), ceil(dim / 32)): warp w of block x looks at sorted
// position k = x * warps + w; if k starts a run of equal keys, it adds the run's dy rows
// (in sorted = increasing position order) to columns [32 y, 32 y + 32) of that table row.
template <typename T>
__global__ void embedding_backward_runs_kernel(const uint32_t* __restrict__ keys, const int32_t* __restrict__ pos,
                                               int64_t n, const T* __restrict__ dy, int64_t vocab, int64_t dim,
                                               float* __restrict__ dtable) {
  const int64_t k = static_cast<int64_t>(blockIdx.x) * (kBlockSize / kWarpSize) + threadIdx.x / kWarpSize;
  const int64_t col = static_cast<int64_t>(blockIdx.y) * kWarpSize + threadIdx.x % kWarpSize;
  if (k >= n || col >= dim) return;  // no shuffles or barriers below
  const uint32_t id = keys[k];
  if ((k > 0 && keys[k - 1] == id) || id >= vocab) return;  // not a run start, or invalid ids
  float* row = dtable + static_cast<int64_t>(id) * dim + col;
  float acc = *row;
  for (int64_t s = k; s < n && keys[s] == id; ++s) acc += load_f32(dy + static_cast<int64_t>(pos[s]) * dim + col);
  *row = acc;
}

cudaError_t sort_scratch_bytes(int64_t n, int64_t vocab, size_t* bytes) {
  *bytes = 0;
  return cub::DeviceRadixSort::SortPairs(nullptr, *bytes, static_cast<const uint32_t*>(nullptr),
                                         static_cast<uint32_t*>(nullptr), static_cast<const int32_t*>(nullptr),
                                         static_cast<int32_t*>(nullptr), static_cast<int>(n), 0, key_bits(vocab));
}

template <typename T>
cudaError_t embedding_forward_impl(const int32_t* ids, int64_t n, const T* table, int64_t vocab, int64_t dim, T* y,
                                   cudaStream_t stream) {
  if (n <= 0 || dim <= 0) return cudaSuccess;
  embedding_forward_kernel<T><<<grid_1d(n, 1), kBlockSize, 0, stream>>>(ids, n, table, vocab, dim, y);
  return cudaGetLastError();
}

template <typename T>
cudaError_t embedding_backward_impl(const int32_t* ids, int64_t n, const T* dy, int64_t vocab, int64_t dim,
                                    void* workspace, size_t workspace_bytes, float* dtable, cudaStream_t stream) {
  if (n <= 0 || dim <= 0 || vocab <= 0) return cudaSuccess;
  size_t needed = 0;
  cudaError_t err = embedding_backward_workspace_bytes(n, vocab, &needed);
  if (err != cudaSuccess) return err;
  if (workspace_bytes < needed || dim > int64_t{65535} * kWarpSize) return cudaErrorInvalidValue;
  const Workspace ws = carve(workspace, n, needed - 4 * align_up(static_cast<size_t>(n) * sizeof(int32_t)));
  embedding_sort_input_kernel<<<grid_1d(n), kBlockSize, 0, stream>>>(ids, n, vocab, ws.keys_in, ws.pos_in);
  err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  size_t scratch = ws.sort_scratch_bytes;
  err = cub::DeviceRadixSort::SortPairs(ws.sort_scratch, scratch, ws.keys_in, ws.keys_out, ws.pos_in, ws.pos_out,
                                        static_cast<int>(n), 0, key_bits(vocab), stream);
  if (err != cudaSuccess) return err;
  constexpr int kWarps = kBlockSize / kWarpSize;
  const dim3 grid(static_cast<unsigned int>((n + kWarps - 1) / kWarps),
                  static_cast<unsigned int>((dim + kWarpSize - 1) / kWarpSize));
  embedding_backward_runs_kernel<T>
      <<<grid, kBlockSize, 0, stream>>>(ws.keys_out, ws.pos_out, n, dy, vocab, dim, dtable);
  return cudaGetLastError();
}

}  // namespace

cudaError_t embedding_backward_workspace_bytes(int64_t n, int64_t vocab, size_t* bytes) {
  *bytes = 0;
  if (n <= 0) return cudaSuccess;
  if (n > INT32_MAX || vocab < 0 || vocab >= INT32_MAX) return cudaErrorInvalidValue;
  size_t scratch = 0;
  const cudaError_t err = sort_scratch_bytes(n, vocab, &scratch);
  if (err != cudaSuccess) return err;
  *bytes = 4 * align_up(static_cast<size_t>(n) * sizeof(int32_t)) + scratch;
  return cudaSuccess;
}

cudaError_t embedding_forward(const int32_t* ids, int64_t n, const float* table, int64_t vocab, int64_t dim,
                              float* y, cudaStream_t stream) {
  return embedding_forward_impl(ids, n, table, vocab, dim, y, stream);
}

cudaError_t embedding_backward(const int32_t* ids, int64_t n, const float* dy, int64_t vocab, int64_t dim,
                               void* workspace, size_t workspace_bytes, float* dtable, cudaStream_t stream) {
  return embedding_backward_impl(ids, n, dy, vocab, dim, workspace, workspace_bytes, dtable, stream);
}

cudaError_t embedding_forward(const int32_t* ids, int64_t n, const bf16* table, int64_t vocab, int64_t dim,
                              bf16* y, cudaStream_t stream) {
  return embedding_forward_impl(ids, n, device_ptr(table), vocab, dim, device_ptr(y), stream);
}

cudaError_t embedding_backward(const int32_t* ids, int64_t n, const bf16* dy, int64_t vocab, int64_t dim,
                               void* workspace, size_t workspace_bytes, float* dtable, cudaStream_t stream) {
  return embedding_backward_impl(ids, n, device_ptr(dy), vocab, dim, workspace, workspace_bytes, dtable, stream);
}

}  // namespace shardtrain::kernels
