// Causal self-attention backward, flash-attention style (FlashAttention-2's algorithm) and
// deterministic. (Forward and the tile layout: attention.cu, attention_tile.cuh.)
//
// Nothing of size [T, T] was kept: for a query row i and key j, backward recomputes
// P_ij = exp(scale q_i.k_j - lse_i) from the forward's log-sum-exp, and uses
// dS_ij = P_ij (dP_ij - D_i) with dP_ij = dout_i.v_j and D_i = sum_j P_ij dP_ij =
// dout_i.out_i, a per-row dot product computed once up front into the workspace.
//
// The gradients have two reduction directions: dk_j and dv_j sum over queries i, dq_i sums
// over keys j. FlashAttention-2 computes all three in one pass over key tiles and adds dq
// with float atomics, whose order (and so whose bits) varies run to run. Here there are
// two passes instead, each owning its outputs outright:
//   1. one block per (sequence x head, key tile) keeps that tile's k, v in shared memory
//      and dk, dv in registers, and walks the query tiles that can see it (its own
//      diagonal tile onwards, in order);
//   2. one block per (sequence x head, query tile) keeps q, dout, lse, D and dq and walks
//      the key tiles it can see (up to its diagonal, in order).
// Each recomputes the score and dP tiles (the price of no atomics: the QK^T and dO V^T
// products are done twice), every output element has one writer and one fixed summation
// order, so dqkv is bitwise reproducible. Pass 1 starts with the key tiles that see the
// most query tiles, pass 2 with the query tiles that see the most key tiles.
//
// Mixed precision (T = __nv_bfloat16) is the same kernels with bf16 head tiles in shared
// memory (exact copies of the bf16 inputs); P, dP, dS, D_i, lse and the dq / dk / dv
// accumulators are fp32 as in the fp32 kernels, and dqkv is rounded once on the store.
#include <cmath>

#include "kernels/attention.h"
#include "kernels/attention_tile.cuh"

namespace shardtrain::kernels {

namespace {

using namespace attention_tile;

// Both passes: four head tiles (q, dout, k, v) of the activations' type T, then in fp32 a
// score-shaped tile shared by P and dS, and lse and D for the query tile. fp32: 49.75 /
// 81.75 / 145.75 KiB for head-dim buckets 32 / 64 / 128; bf16: 33.75 / 49.75 / 81.75 KiB.
template <int kMaxD, typename T>
constexpr size_t backward_smem_bytes() {
  return 4 * Dims<kMaxD, T>::kTileBytes + (kTile * kPStride + 2 * kTile) * sizeof(float);
}
static_assert(backward_smem_bytes<64, float>() == 83712 && backward_smem_bytes<128, float>() == 149248,
              "fp32 backward: the shared memory it always used");
static_assert(backward_smem_bytes<128, __nv_bfloat16>() <= backward_smem_bytes<128, float>(),
              "bf16 backward: no more shared memory than fp32");

// What both passes set up: the shared-memory tiles (k, v, q, dout, one score-shaped tile
// for P and then dS, lse and D of the query tile), this block's sequence b and head h
// (blockIdx.x = b * H + h), the head's slices of the fused layout, and the thread's
// (ty, tx).
template <int kMaxD, typename T>
struct BackwardBlock {
  T *Ks, *Vs, *Qs, *dOs;       // head tiles
  float *Ps, *lse_s, *delta_s;
  int bh, b, h, ty, tx;
  int64_t C, ld;            // channels; qkv's row stride 3C (dout's is C)
  const T *q, *k, *v, *dout;  // row 0 of this head in sequence b
  T* dq;                      // dqkv's q columns of this head in sequence b (k: + C, v: + 2C)

  __device__ BackwardBlock(float* smem, const T* qkv, const T* dout_all, T* dqkv, int seq, int heads,
                           int head_dim) {
    constexpr int kElems = Dims<kMaxD, T>::kTileElems;
    Ks = reinterpret_cast<T*>(smem);
    Vs = Ks + kElems;
    Qs = Vs + kElems;
    dOs = Qs + kElems;
    Ps = reinterpret_cast<float*>(dOs + kElems);  // kTileBytes is a multiple of 4
    lse_s = Ps + kTile * kPStride;
    delta_s = lse_s + kTile;
    bh = blockIdx.x;
    b = bh / heads;
    h = bh % heads;
    ty = threadIdx.x / 16;
    tx = threadIdx.x % 16;
    C = static_cast<int64_t>(heads) * head_dim;
    ld = 3 * C;
    const int64_t head = static_cast<int64_t>(h) * head_dim;
    q = qkv + static_cast<int64_t>(b) * seq * ld + head;
    k = q + C;
    v = q + 2 * C;
    dout = dout_all + static_cast<int64_t>(b) * seq * C + head;
    dq = dqkv + static_cast<int64_t>(b) * seq * ld + head;
  }
};

// lse and D of query rows [q0, q0 + kTile) into shared memory (0 past the sequence end).
__device__ __forceinline__ void load_row_stats(const float* lse, const float* delta, int64_t bh, int q0, int seq,
                                               float* lse_s, float* delta_s) {
  if (threadIdx.x < kTile) {
    const int i = q0 + threadIdx.x;
    lse_s[threadIdx.x] = i < seq ? lse[bh * seq + i] : 0.0f;
    delta_s[threadIdx.x] = i < seq ? delta[bh * seq + i] : 0.0f;
  }
}

// For query rows i = q0 + ty + 16a and keys j = k0 + tx + 16b of a (query tile, key tile)
// pair: p = exp(scale q_i.k_j - lse_i), 0 where j > i or i is past the sequence end;
// ds = p (dout_i.v_j - D_i).
template <int kMaxD, typename T>
__device__ __forceinline__ void probs_and_dscores(const BackwardBlock<kMaxD, T>& blk, int q0, int k0, int seq,
                                                  float scale, float (&p)[kPerThread][kPerThread],
                                                  float (&ds)[kPerThread][kPerThread]) {
  const int ty = blk.ty, tx = blk.tx;
  float dp[kPerThread][kPerThread] = {};
#pragma unroll
  for (int a = 0; a < kPerThread; ++a)
#pragma unroll
    for (int b = 0; b < kPerThread; ++b) p[a][b] = 0.0f;
  tile_dot<kMaxD>(blk.Qs, blk.Ks, ty, tx, p);    // scores
  tile_dot<kMaxD>(blk.dOs, blk.Vs, ty, tx, dp);  // dP
#pragma unroll
  for (int a = 0; a < kPerThread; ++a) {
    const int r = ty + 16 * a, i = q0 + r;
    const float row_lse = blk.lse_s[r], row_delta = blk.delta_s[r];
#pragma unroll
    for (int b = 0; b < kPerThread; ++b) {
      const int j = k0 + tx + 16 * b;
      p[a][b] = j <= i && i < seq ? expf(p[a][b] * scale - row_lse) : 0.0f;  // j <= i < seq: j is a real key
      ds[a][b] = p[a][b] * (dp[a][b] - row_delta);
    }
  }
}

// delta[b, h, t] = dout[b, t, h, :] . out[b, t, h, :]; a warp per (b, t, h) row, which is
// row r = (b * T + t) * H + h of both [B, T, C] tensors viewed as [B*T*H, D].
template <typename T>
__global__ void attention_row_dot_kernel(const T* __restrict__ dout, const T* __restrict__ out, int64_t rows,
                                         int seq, int heads, int head_dim, float* __restrict__ delta) {
  const int lane = threadIdx.x % kWarpSize;
  for (int64_t r = global_warp(); r < rows; r += warp_count()) {
    const T *g = dout + r * head_dim, *o = out + r * head_dim;
    float s = 0.0f;
    for (int d = lane; d < head_dim; d += kWarpSize) s = fmaf(load_f32(g + d), load_f32(o + d), s);
    s = warp_allreduce(s, SumOp{});
    if (lane == 0) {
      const int64_t bt = r / heads, b = bt / seq, t = bt - b * seq;
      const int64_t h = r - bt * heads;
      delta[(b * heads + h) * seq + t] = s;
    }
  }
}

// Pass 1: grid (B*H, tiles), key tile kt = blockIdx.y. dk, dv of its keys into dqkv.
template <int kMaxD, typename T>
__global__ void __launch_bounds__(kThreads)
    attention_backward_dkdv_kernel(const T* __restrict__ dout, const T* __restrict__ qkv,
                                   const float* __restrict__ lse, const float* __restrict__ delta, int seq,
                                   int heads, int head_dim, float scale, T* __restrict__ dqkv) {
  using Dm = Dims<kMaxD>;
  extern __shared__ float smem[];
  const BackwardBlock<kMaxD, T> blk(smem, qkv, dout, dqkv, seq, heads, head_dim);
  const int kt = blockIdx.y, tiles = gridDim.y;  // low key tiles see the most queries: first
  const int k0 = kt * kTile, ty = blk.ty, tx = blk.tx;

  load_tile<kMaxD>(blk.k, blk.ld, k0, seq, head_dim, blk.Ks);
  load_tile<kMaxD>(blk.v, blk.ld, k0, seq, head_dim, blk.Vs);
  float dk[kPerThread][Dm::kCols] = {}, dv[kPerThread][Dm::kCols] = {};
  for (int qt = kt; qt < tiles; ++qt) {  // query tiles before kt see none of these keys
    const int q0 = qt * kTile;
    load_tile<kMaxD>(blk.q, blk.ld, q0, seq, head_dim, blk.Qs);
    load_tile<kMaxD>(blk.dout, blk.C, q0, seq, head_dim, blk.dOs);
    load_row_stats(lse, delta, blk.bh, q0, seq, blk.lse_s, blk.delta_s);
    __syncthreads();  // q, dout, stats (and k, v on the first pass) loaded

    float p[kPerThread][kPerThread], ds[kPerThread][kPerThread];
    probs_and_dscores<kMaxD>(blk, q0, k0, seq, scale, p, ds);
    store_score_tile(p, ty, tx, blk.Ps);
    __syncthreads();
    tile_accumulate<kMaxD, true>(blk.Ps, blk.dOs, ty, tx, dv);  // dv += P^T dout
    __syncthreads();  // everyone is done reading P
    store_score_tile(ds, ty, tx, blk.Ps);
    __syncthreads();
    tile_accumulate<kMaxD, true>(blk.Ps, blk.Qs, ty, tx, dk);  // dk += dS^T q (times scale below)
    __syncthreads();  // done with Qs, dOs, Ps before the next query tile
  }
  store_rows<kMaxD>(dk, scale, ty, tx, k0, seq, head_dim, blk.ld, blk.dq + blk.C);
  store_rows<kMaxD>(dv, 1.0f, ty, tx, k0, seq, head_dim, blk.ld, blk.dq + 2 * blk.C);
}

// Pass 2: grid (B*H, tiles), query tile qt = tiles - 1 - blockIdx.y. dq of its queries.
template <int kMaxD, typename T>
__global__ void __launch_bounds__(kThreads)
    attention_backward_dq_kernel(const T* __restrict__ dout, const T* __restrict__ qkv,
                                 const float* __restrict__ lse, const float* __restrict__ delta, int seq, int heads,
                                 int head_dim, float scale, T* __restrict__ dqkv) {
  using Dm = Dims<kMaxD>;
  extern __shared__ float smem[];
  const BackwardBlock<kMaxD, T> blk(smem, qkv, dout, dqkv, seq, heads, head_dim);
  const int qt = gridDim.y - 1 - blockIdx.y;  // high query tiles see the most keys: first
  const int q0 = qt * kTile, ty = blk.ty, tx = blk.tx;

  load_tile<kMaxD>(blk.q, blk.ld, q0, seq, head_dim, blk.Qs);
  load_tile<kMaxD>(blk.dout, blk.C, q0, seq, head_dim, blk.dOs);
  load_row_stats(lse, delta, blk.bh, q0, seq, blk.lse_s, blk.delta_s);
  float dq[kPerThread][Dm::kCols] = {};
  for (int kt = 0; kt <= qt; ++kt) {  // key tiles past qt are all masked
    const int k0 = kt * kTile;
    load_tile<kMaxD>(blk.k, blk.ld, k0, seq, head_dim, blk.Ks);
    load_tile<kMaxD>(blk.v, blk.ld, k0, seq, head_dim, blk.Vs);
    __syncthreads();  // k, v (and q, dout, stats on the first pass) loaded

    float p[kPerThread][kPerThread], ds[kPerThread][kPerThread];
    probs_and_dscores<kMaxD>(blk, q0, k0, seq, scale, p, ds);
    store_score_tile(ds, ty, tx, blk.Ps);
    __syncthreads();
    tile_accumulate<kMaxD, false>(blk.Ps, blk.Ks, ty, tx, dq);  // dq += dS k (times scale below)
    __syncthreads();  // done with Ks, Vs, Ps before the next key tile
  }
  store_rows<kMaxD>(dq, scale, ty, tx, q0, seq, head_dim, blk.ld, blk.dq);
}

template <int kMaxD, typename T>
cudaError_t attention_backward_bucket(const T* dout, const T* qkv, const float* lse, const float* delta,
                                      const AttentionGeometry& g, T* dqkv, cudaStream_t stream) {
  constexpr size_t smem = backward_smem_bytes<kMaxD, T>();
  auto dkdv = attention_backward_dkdv_kernel<kMaxD, T>;
  auto dq = attention_backward_dq_kernel<kMaxD, T>;
  cudaError_t err = allow_shared_memory(dkdv, smem);
  if (err == cudaSuccess) err = allow_shared_memory(dq, smem);
  if (err != cudaSuccess) return err;
  const dim3 grid(static_cast<unsigned int>(g.batch * g.heads), static_cast<unsigned int>(tile_count(g.seq)));
  const int seq = static_cast<int>(g.seq), heads = static_cast<int>(g.heads), d = static_cast<int>(g.head_dim);
  const float scale = 1.0f / sqrtf(static_cast<float>(g.head_dim));
  dkdv<<<grid, kThreads, smem, stream>>>(dout, qkv, lse, delta, seq, heads, d, scale, dqkv);
  err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  dq<<<grid, kThreads, smem, stream>>>(dout, qkv, lse, delta, seq, heads, d, scale, dqkv);
  return cudaGetLastError();
}

// The launcher's body, shared by the fp32 and bf16 entry points (T: float or
// __nv_bfloat16). D_i is fp32 either way.
template <typename T>
cudaError_t attention_backward_impl(const T* dout, const T* qkv, const T* out, const float* lse,
                                    const AttentionGeometry& g, void* workspace, T* dqkv, cudaStream_t stream) {
  if (g.batch <= 0 || g.seq <= 0 || g.heads <= 0) return cudaSuccess;
  const int bucket = head_dim_bucket(g.head_dim);
  if (bucket == 0 || !attention_grid_fits(g.batch * g.heads, tile_count(g.seq)) || g.seq > INT32_MAX)
    return cudaErrorInvalidValue;
  float* delta = static_cast<float*>(workspace);
  const int64_t rows = g.batch * g.seq * g.heads;
  attention_row_dot_kernel<T><<<grid_1d(rows, kBlockSize / kWarpSize), kBlockSize, 0, stream>>>(
      dout, out, rows, static_cast<int>(g.seq), static_cast<int>(g.heads), static_cast<int>(g.head_dim), delta);
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  switch (bucket) {
    case 32: return attention_backward_bucket<32>(dout, qkv, lse, delta, g, dqkv, stream);
    case 64: return attention_backward_bucket<64>(dout, qkv, lse, delta, g, dqkv, stream);
    default: return attention_backward_bucket<128>(dout, qkv, lse, delta, g, dqkv, stream);
  }
}

}  // namespace

size_t attention_backward_workspace_bytes(const AttentionGeometry& g) {
  if (g.batch <= 0 || g.seq <= 0 || g.heads <= 0) return 0;
  return static_cast<size_t>(g.batch * g.heads * g.seq) * sizeof(float);
}

cudaError_t attention_backward(const float* dout, const float* qkv, const float* out, const float* lse,
                               const AttentionGeometry& g, void* workspace, float* dqkv, cudaStream_t stream) {
  return attention_backward_impl(dout, qkv, out, lse, g, workspace, dqkv, stream);
}

cudaError_t attention_backward(const bf16* dout, const bf16* qkv, const bf16* out, const float* lse,
                               const AttentionGeometry& g, void* workspace, bf16* dqkv, cudaStream_t stream) {
  return attention_backward_impl(device_ptr(dout), device_ptr(qkv), device_ptr(out), lse, g, workspace,
                                 device_ptr(dqkv), stream);
}

}  // namespace shardtrain::kernels
