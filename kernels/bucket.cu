// Gradient bucket pack / unpack: many tensors <-> one flat buffer, scaled.
//
// A bucket holds dozens of tensors of very different sizes (a bias of 10 floats beside a
// weight of millions); one launch per tensor would be launch-bound on the small ones. So
// this is the multi-tensor-apply pattern: up to kBucketSegmentsPerLaunch segments travel
// by value in the kernel's parameters (no device-side table to allocate, copy and keep in
// sync with the stream), each segment is cut into fixed chunks of kChunk elements, and the
// chunks of all segments are numbered consecutively. A block takes chunk numbers in a
// block-stride loop and finds its segment by a binary search over the chunk prefix sums,
// so big and small tensors are spread evenly over the grid. More segments take more
// launches, with the flat pointer advanced past the ones already done. Multiplying by
// 1.0f is exact, so scale = 1 is a plain copy, as on the CPU.
//
// bf16 buckets (comm.grad_dtype BF16) are the same kernel with a bf16 flat buffer: pack
// computes scale * g in fp32 and rounds it once to nearest-even, unpack widens exactly and
// then scales in fp32; the segments are fp32 gradients either way.
#include "kernels/bucket.h"

#include "kernels/kernel_util.cuh"

namespace shardtrain::kernels {

namespace {

// 16 elements per thread: enough work per block to amortize the segment search.
constexpr int64_t kChunk = 16 * kBlockSize;

struct SegmentTable {
  float* data[kBucketSegmentsPerLaunch];
  int64_t numel[kBucketSegmentsPerLaunch];
  int64_t flat_offset[kBucketSegmentsPerLaunch];       // segment start in the flat buffer
  int64_t chunk_start[kBucketSegmentsPerLaunch + 1];   // prefix sums of per-segment chunk counts
  int count;
};
// Kernel parameters are limited to 4 KiB on every architecture we build for.
static_assert(sizeof(SegmentTable) + 3 * sizeof(int64_t) <= 4096, "segment table exceeds kernel parameter space");

// kPack: flat[off + i] = data[i] * scale; else data[i] = flat[off + i] * scale. F is the
// element type of flat (float or __nv_bfloat16: rounded once on pack, widened on unpack).
template <bool kPack, typename F>
__global__ void grad_bucket_kernel(SegmentTable table, F* flat, float scale) {
  const int64_t chunks = table.chunk_start[table.count];
  for (int64_t chunk = blockIdx.x; chunk < chunks; chunk += gridDim.x) {
    // Last segment whose first chunk is <= chunk (empty segments have zero chunks and are
    // skipped over, since their start equals the next one's).
    int lo = 0, hi = table.count - 1;
    while (lo < hi) {
      const int mid = (lo + hi + 1) / 2;
      if (table.chunk_start[mid] <= chunk) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    const int s = lo;
    const int64_t begin = (chunk - table.chunk_start[s]) * kChunk;
    const int64_t end = table.numel[s] - begin < kChunk ? table.numel[s] : begin + kChunk;
    float* seg = table.data[s];
    F* f = flat + table.flat_offset[s];
    for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
      if (kPack) {
        store_f32(f + i, seg[i] * scale);
      } else {
        seg[i] = load_f32(f + i) * scale;
      }
    }
  }
}

template <bool kPack, typename F>
cudaError_t grad_bucket_apply(const GradSegment* segs, int count, float scale, F* flat, cudaStream_t stream) {
  for (int first = 0; first < count; first += kBucketSegmentsPerLaunch) {
    SegmentTable table{};
    table.count = count - first < kBucketSegmentsPerLaunch ? count - first : kBucketSegmentsPerLaunch;
    int64_t offset = 0, chunks = 0;
    for (int s = 0; s < table.count; ++s) {
      const int64_t numel = segs[first + s].numel > 0 ? segs[first + s].numel : 0;
      table.data[s] = segs[first + s].data;
      table.numel[s] = numel;
      table.flat_offset[s] = offset;
      table.chunk_start[s] = chunks;
      offset += numel;
      chunks += (numel + kChunk - 1) / kChunk;
    }
    table.chunk_start[table.count] = chunks;
    if (chunks > 0) {
      grad_bucket_kernel<kPack, F><<<grid_1d(chunks, 1), kBlockSize, 0, stream>>>(table, flat, scale);
      const cudaError_t err = cudaGetLastError();
      if (err != cudaSuccess) return err;
    }
    flat += offset;
  }
  return cudaSuccess;
}

}  // namespace

cudaError_t grad_bucket_pack(const GradSegment* segs, int count, float scale, float* flat, cudaStream_t stream) {
  return grad_bucket_apply<true>(segs, count, scale, flat, stream);
}

cudaError_t grad_bucket_pack(const GradSegment* segs, int count, float scale, bf16* flat, cudaStream_t stream) {
  return grad_bucket_apply<true>(segs, count, scale, device_ptr(flat), stream);
}

cudaError_t grad_bucket_unpack(const float* flat, float scale, const GradSegment* segs, int count,
                               cudaStream_t stream) {
  // Unpack only reads flat; the shared kernel takes a non-const pointer for both directions.
  return grad_bucket_apply<false>(segs, count, scale, const_cast<float*>(flat), stream);
}

cudaError_t grad_bucket_unpack(const bf16* flat, float scale, const GradSegment* segs, int count,
                               cudaStream_t stream) {
  return grad_bucket_apply<false>(segs, count, scale, const_cast<__nv_bfloat16*>(device_ptr(flat)), stream);
}

}  // namespace shardtrain::kernels
