// Causal self-attention, forward and KV-cached decoding. (Backward: attention_backward.cu;
// the tile machinery both share: attention_tile.cuh.)
//
// Forward is flash attention (Dao et al.) on CUDA cores in fp32. Materialising the
// [T, T] score matrix per head would cost B*H*T^2 floats of memory traffic (400 MB per
// layer at GPT-2's B=8, H=12, T=1024) for values used once, so a block owns one 64-query
// tile of one (sequence, head) and streams the key/value tiles it can see (causally, the
// tiles up to and including its own diagonal tile) through shared memory, keeping an
// online softmax per query row: the running max m, the running sum l of exp(s - m) and
// the unnormalised output, all rescaled by exp(m_old - m_new) when the max grows. Only
// out and lse = m + log l (what backward needs to recompute any probability) reach global
// memory. Blocks are issued diagonal-last-first (the tiles with the most keys start
// first), so the causal triangle's uneven work does not leave a long tail.
//
// fp32 throughout, matching the CPU reference to ~1e-6 relative; tensor-core (TF32/bf16)
// variants would not meet the 1e-4 the tests ask of fp32. Dot products use explicit FMAs.
// Kernels are templates over the element type T of q/k/v/out and over the head-dim bucket
// kMaxD (32/64/128): q/k/v tiles are zero-padded to kMaxD, which adds exact zeros, so any
// head dim up to 128 works. Within a block the reduction order is fixed, and every output
// element is written by exactly one thread: results are deterministic.
//
// T = __nv_bfloat16 is mixed precision: the q/k/v tiles stay bf16 in shared memory (exact
// copies of the inputs, in half the bytes), while the scores, the online softmax (m, l),
// the output accumulators and lse are fp32 in registers exactly as in the fp32 kernel, and
// out is rounded once. The KV cache of decoding has qkv's element type.
//
// Decoding is latency-bound (one or a few new queries per sequence), so it is simple: the
// new keys and values are copied into the cache by one kernel, then one block per (b, h,
// new query) with 8 warps; each warp walks every 8th cache row with its own online
// softmax (lanes split the head dim, a shuffle sum per key), and the 8 partial results
// are merged in warp order through shared memory.
#include "kernels/attention.h"

#include <cmath>

#include "kernels/attention_tile.cuh"

namespace shardtrain::kernels {

namespace {

using namespace attention_tile;

// Three head tiles (q, k, v) of the activations' type T, then the fp32 probability tile.
// fp32: 41 / 65 / 113 KiB for head-dim buckets 32 / 64 / 128; bf16: 29 / 41 / 65 KiB.
template <int kMaxD, typename T>
constexpr size_t forward_smem_bytes() {
  return 3 * Dims<kMaxD, T>::kTileBytes + kTile * kPStride * sizeof(float);
}
static_assert(forward_smem_bytes<64, float>() == 66560 && forward_smem_bytes<128, float>() == 115712,
              "fp32 forward: the shared memory it always used");
static_assert(forward_smem_bytes<128, __nv_bfloat16>() <= forward_smem_bytes<128, float>(),
              "bf16 forward: no more shared memory than fp32");

// grid (B*H, tiles); block kThreads. Dynamic shared memory: forward_smem_bytes<kMaxD, T>().
template <int kMaxD, typename T>
__global__ void __launch_bounds__(kThreads)
    attention_forward_kernel(const T* __restrict__ qkv, int seq, int heads, int head_dim, float scale,
                             T* __restrict__ out, float* __restrict__ lse) {
  using Dm = Dims<kMaxD, T>;
  extern __shared__ float smem[];
  T* Qs = reinterpret_cast<T*>(smem);
  T* Ks = Qs + Dm::kTileElems;
  T* Vs = Ks + Dm::kTileElems;
  float* Ps = reinterpret_cast<float*>(Vs + Dm::kTileElems);  // kTileBytes is a multiple of 4

  const int qt = gridDim.y - 1 - blockIdx.y;  // the tiles with the most keys first
  const int bh = blockIdx.x, b = bh / heads, h = bh % heads;
  const int64_t C = static_cast<int64_t>(heads) * head_dim, ld = 3 * C;
  const T* q = qkv + static_cast<int64_t>(b) * seq * ld + static_cast<int64_t>(h) * head_dim;
  const T* k = q + C;
  const T* v = q + 2 * C;
  const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
  const int q0 = qt * kTile;

  load_tile<kMaxD>(q, ld, q0, seq, head_dim, Qs);
  float o[kPerThread][Dm::kCols] = {};
  float m[kPerThread], l[kPerThread];
#pragma unroll
  for (int a = 0; a < kPerThread; ++a) {
    m[a] = -INFINITY;
    l[a] = 0.0f;
  }

  for (int kt = 0; kt <= qt; ++kt) {
    const int k0 = kt * kTile;
    load_tile<kMaxD>(k, ld, k0, seq, head_dim, Ks);
    load_tile<kMaxD>(v, ld, k0, seq, head_dim, Vs);
    __syncthreads();  // tiles loaded (and Qs, on the first pass)

    float s[kPerThread][kPerThread] = {};
    tile_dot<kMaxD>(Qs, Ks, ty, tx, s);
#pragma unroll
    for (int a = 0; a < kPerThread; ++a) {
      const int i = q0 + ty + 16 * a;
      float mx = -INFINITY;
#pragma unroll
      for (int b2 = 0; b2 < kPerThread; ++b2) {
        const int j = k0 + tx + 16 * b2;
        // Causal mask; j < seq also drops the zero-padded keys of the last tile. Key 0 is
        // visible to every row (padding rows past seq included), so after the first tile
        // m is finite and exp(-inf - m) = 0 for masked entries.
        s[a][b2] = j <= i && j < seq ? s[a][b2] * scale : -INFINITY;
        mx = fmaxf(mx, s[a][b2]);
      }
      mx = row_allreduce(mx, MaxOp{});
      const float m_new = fmaxf(m[a], mx);
      const float alpha = expf(m[a] - m_new);  // 0 on the first tile (m = -inf)
      float row_sum = 0.0f;
#pragma unroll
      for (int b2 = 0; b2 < kPerThread; ++b2) {
        s[a][b2] = expf(s[a][b2] - m_new);
        row_sum += s[a][b2];
      }
      l[a] = l[a] * alpha + row_allreduce(row_sum, SumOp{});
      m[a] = m_new;
#pragma unroll
      for (int c = 0; c < Dm::kCols; ++c) o[a][c] *= alpha;
    }
    store_score_tile(s, ty, tx, Ps);
    __syncthreads();  // P visible to the whole block
    tile_accumulate<kMaxD, false>(Ps, Vs, ty, tx, o);  // o += P V
    __syncthreads();  // done with Ks, Vs, Ps before the next tile overwrites them
  }

  // out = o / l; lse = m + log l, by one lane per row.
#pragma unroll
  for (int a = 0; a < kPerThread; ++a) {
    const int i = q0 + ty + 16 * a;
    if (i >= seq) continue;
    const float inv = 1.0f / l[a];
#pragma unroll
    for (int c = 0; c < Dm::kCols; ++c) o[a][c] *= inv;
    if (tx == 0) lse[static_cast<int64_t>(bh) * seq + i] = m[a] + logf(l[a]);
  }
  store_rows<kMaxD>(o, 1.0f, ty, tx, q0, seq, head_dim, C, out + static_cast<int64_t>(b) * seq * C + h * head_dim);
}

// cache[b, pos + r, :] = qkv[b, r, C:3C] for the n new rows (a copy: the cache has qkv's
// element type); block-stride over (b, r).
template <typename T>
__global__ void kv_cache_write_kernel(const T* __restrict__ qkv, int64_t rows, int64_t n, int64_t C, int64_t pos,
                                      int64_t max_seq, T* __restrict__ cache) {
  for (int64_t br = blockIdx.x; br < rows; br += gridDim.x) {
    const int64_t b = br / n, r = br - b * n;
    const T* src = qkv + br * 3 * C + C;
    T* dst = cache + (b * max_seq + pos + r) * 2 * C;
    for (int64_t col = threadIdx.x; col < 2 * C; col += blockDim.x) store_f32(dst + col, load_f32(src + col));
  }
}

constexpr int kDecodeWarps = 8;

// grid (B*H, n); block kDecodeWarps warps. Query r of sequence b, head h attends to cache
// rows [0, pos + r].
template <int kMaxD, typename T>
__global__ void __launch_bounds__(kDecodeWarps* kWarpSize)
    attention_decode_kernel(const T* __restrict__ qkv, const T* __restrict__ cache, int64_t pos,
                            int64_t max_seq, int n, int heads, int head_dim, float scale, T* __restrict__ out) {
  constexpr int kPerLane = kMaxD / kWarpSize > 0 ? kMaxD / kWarpSize : 1;
  __shared__ float warp_m[kDecodeWarps], warp_l[kDecodeWarps], warp_o[kDecodeWarps][kPerLane * kWarpSize];
  const int bh = blockIdx.x, r = blockIdx.y, b = bh / heads, h = bh % heads;
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int64_t C = static_cast<int64_t>(heads) * head_dim;
  const T* qrow = qkv + (static_cast<int64_t>(b) * n + r) * 3 * C + static_cast<int64_t>(h) * head_dim;
  float qv[kPerLane];
#pragma unroll
  for (int c = 0; c < kPerLane; ++c) {
    const int d = lane + kWarpSize * c;
    qv[c] = d < head_dim ? load_f32(qrow + d) : 0.0f;
  }
  const T* kc = cache + static_cast<int64_t>(b) * max_seq * 2 * C + static_cast<int64_t>(h) * head_dim;
  const int64_t keys = pos + r + 1;
  float m = -INFINITY, l = 0.0f, o[kPerLane] = {};
  for (int64_t j = warp; j < keys; j += kDecodeWarps) {  // warp-uniform trip count
    const T* kr = kc + j * 2 * C;
    const T* vr = kr + C;
    float s = 0.0f;
#pragma unroll
    for (int c = 0; c < kPerLane; ++c) {
      const int d = lane + kWarpSize * c;
      if (d < head_dim) s = fmaf(qv[c], load_f32(kr + d), s);
    }
    s = warp_allreduce(s, SumOp{}) * scale;
    const float m_new = fmaxf(m, s);
    const float alpha = expf(m - m_new), p = expf(s - m_new);
    l = l * alpha + p;
#pragma unroll
    for (int c = 0; c < kPerLane; ++c) {
      const int d = lane + kWarpSize * c;
      o[c] = fmaf(p, d < head_dim ? load_f32(vr + d) : 0.0f, o[c] * alpha);
    }
    m = m_new;
  }
  if (lane == 0) {
    warp_m[warp] = m;
    warp_l[warp] = l;
  }
#pragma unroll
  for (int c = 0; c < kPerLane; ++c) warp_o[warp][lane + kWarpSize * c] = o[c];
  __syncthreads();
  // Merge in warp order. A warp that saw no key (keys < kDecodeWarps) has m = -inf, l = 0,
  // o = 0 and weight exp(-inf - M) = 0; warp 0 always has key 0, so M is finite.
  const int d = threadIdx.x;
  if (d >= head_dim) return;
  float M = -INFINITY;
  for (int w = 0; w < kDecodeWarps; ++w) M = fmaxf(M, warp_m[w]);
  float L = 0.0f, O = 0.0f;
  for (int w = 0; w < kDecodeWarps; ++w) {
    const float f = expf(warp_m[w] - M);
    L += warp_l[w] * f;
    O += warp_o[w][d] * f;
  }
  store_f32(out + (static_cast<int64_t>(b) * n + r) * C + static_cast<int64_t>(h) * head_dim + d, O / L);
}

template <int kMaxD, typename T>
cudaError_t attention_forward_bucket(const T* qkv, const AttentionGeometry& g, T* out, float* lse,
                                     cudaStream_t stream) {
  constexpr size_t smem = forward_smem_bytes<kMaxD, T>();
  auto kernel = attention_forward_kernel<kMaxD, T>;
  const cudaError_t err = allow_shared_memory(kernel, smem);
  if (err != cudaSuccess) return err;
  const dim3 grid(static_cast<unsigned int>(g.batch * g.heads), static_cast<unsigned int>(tile_count(g.seq)));
  kernel<<<grid, kThreads, smem, stream>>>(qkv, static_cast<int>(g.seq), static_cast<int>(g.heads),
                                           static_cast<int>(g.head_dim),
                                           1.0f / sqrtf(static_cast<float>(g.head_dim)), out, lse);
  return cudaGetLastError();
}

template <int kMaxD, typename T>
cudaError_t attention_decode_bucket(const T* qkv, int64_t pos, int64_t max_seq, const AttentionGeometry& g,
                                    const T* cache, T* out, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned int>(g.batch * g.heads), static_cast<unsigned int>(g.seq));
  attention_decode_kernel<kMaxD, T><<<grid, kDecodeWarps * kWarpSize, 0, stream>>>(
      qkv, cache, pos, max_seq, static_cast<int>(g.seq), static_cast<int>(g.heads), static_cast<int>(g.head_dim),
      1.0f / sqrtf(static_cast<float>(g.head_dim)), out);
  return cudaGetLastError();
}

bool empty(const AttentionGeometry& g) { return g.batch <= 0 || g.seq <= 0 || g.heads <= 0; }

// The launchers' bodies, shared by the fp32 and bf16 entry points (T: float or
// __nv_bfloat16).
template <typename T>
cudaError_t attention_forward_impl(const T* qkv, const AttentionGeometry& g, T* out, float* lse,
                                   cudaStream_t stream) {
  if (empty(g)) return cudaSuccess;
  if (!attention_grid_fits(g.batch * g.heads, tile_count(g.seq)) || g.seq > INT32_MAX) return cudaErrorInvalidValue;
  switch (head_dim_bucket(g.head_dim)) {
    case 32: return attention_forward_bucket<32>(qkv, g, out, lse, stream);
    case 64: return attention_forward_bucket<64>(qkv, g, out, lse, stream);
    case 128: return attention_forward_bucket<128>(qkv, g, out, lse, stream);
    default: return cudaErrorInvalidValue;
  }
}

template <typename T>
cudaError_t attention_decode_impl(const T* qkv, int64_t pos, int64_t max_seq, const AttentionGeometry& g, T* cache,
                                  T* out, cudaStream_t stream) {
  if (empty(g)) return cudaSuccess;
  if (pos < 0 || pos + g.seq > max_seq || g.seq > 65535 || g.batch * g.heads > INT32_MAX ||
      head_dim_bucket(g.head_dim) == 0)
    return cudaErrorInvalidValue;  // checked before the cache is touched
  const int64_t rows = g.batch * g.seq, C = g.channels();
  kv_cache_write_kernel<T><<<grid_1d(rows, 1), kBlockSize, 0, stream>>>(qkv, rows, g.seq, C, pos, max_seq, cache);
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  switch (head_dim_bucket(g.head_dim)) {
    case 32: return attention_decode_bucket<32>(qkv, pos, max_seq, g, cache, out, stream);
    case 64: return attention_decode_bucket<64>(qkv, pos, max_seq, g, cache, out, stream);
    case 128: return attention_decode_bucket<128>(qkv, pos, max_seq, g, cache, out, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace

cudaError_t attention_forward(const float* qkv, const AttentionGeometry& g, float* out, float* lse,
                              cudaStream_t stream) {
  return attention_forward_impl(qkv, g, out, lse, stream);
}

cudaError_t attention_decode(const float* qkv, int64_t pos, int64_t max_seq, const AttentionGeometry& g,
                             float* cache, float* out, cudaStream_t stream) {
  return attention_decode_impl(qkv, pos, max_seq, g, cache, out, stream);
}

cudaError_t attention_forward(const bf16* qkv, const AttentionGeometry& g, bf16* out, float* lse,
                              cudaStream_t stream) {
  return attention_forward_impl(device_ptr(qkv), g, device_ptr(out), lse, stream);
}

cudaError_t attention_decode(const bf16* qkv, int64_t pos, int64_t max_seq, const AttentionGeometry& g,
                             bf16* cache, bf16* out, cudaStream_t stream) {
  return attention_decode_impl(device_ptr(qkv), pos, max_seq, g, device_ptr(cache), device_ptr(out), stream);
}

}  // namespace shardtrain::kernels
