// im2col / col2im for a cuBLAS-GEMM convolution, and 2-D max pooling.
//
// im2col gives one thread an output position (c, n, oh, ow) and lets it write that
// position's k*k column entries: the index decomposition (all division) is paid once per
// k*k writes, and neighbouring threads write neighbouring columns, so stores coalesce.
// The two backward passes are adjoints of a gather-free forward, which the CPU computes by
// scattering with +=; a GPU scatter would need float atomics, whose order (and so whose
// rounding) changes from run to run. Instead each thread owns one input pixel and gathers
// the few entries that map onto it, in the order the CPU adds them ((kh, kw) for col2im,
// ascending output index for pooling), starting from 0.0f: the result is deterministic
// and, because float addition is then done in the same order, equal to the CPU's bits.
// All of this is integer index math, so each kernel is instantiated for int32_t and
// int64_t and the launcher takes the 32-bit one whenever every index fits.
#include "kernels/conv.h"

#include <algorithm>

#include "kernels/kernel_util.cuh"

namespace shardtrain::kernels {

namespace {

template <typename Index>
__global__ void im2col_kernel(const float* __restrict__ x, ConvGeometry g64, Index batch, float* __restrict__ cols) {
  const Index C = g64.channels, H = g64.height, W = g64.width, k = g64.kernel, stride = g64.stride,
              pad = g64.padding, ho = g64.out_height, wo = g64.out_width;
  const Index hw = ho * wo, ld = batch * hw, total = C * batch * hw;
  for (Index t = grid_thread_index<Index>(); t < total; t += grid_thread_count<Index>()) {
    // t = ((c * batch + n) * ho + oh) * wo + ow
    const Index ow = t % wo, t1 = t / wo;
    const Index oh = t1 % ho, t2 = t1 / ho;
    const Index n = t2 % batch, c = t2 / batch;
    const float* plane = x + (n * C + c) * H * W;
    float* out = cols + c * k * k * ld + n * hw + oh * wo + ow;  // row (c, 0, 0)
    const Index ih0 = oh * stride - pad, iw0 = ow * stride - pad;
    for (Index kh = 0; kh < k; ++kh) {
      const Index ih = ih0 + kh;
      const bool row_in = ih >= 0 && ih < H;
      for (Index kw = 0; kw < k; ++kw) {
        const Index iw = iw0 + kw;
        out[(kh * k + kw) * ld] = row_in && iw >= 0 && iw < W ? plane[ih * W + iw] : 0.0f;
      }
    }
  }
}

// One thread per dx element (n, c, ih, iw). Entry (kh, kw, oh, ow) of cols lands on it iff
// oh*stride - pad + kh == ih (and likewise for w), so kh runs over one residue class mod
// stride, ascending, and oh = (ih + pad - kh) / stride shrinks as kh grows.
template <typename Index>
__global__ void col2im_kernel(const float* __restrict__ cols, ConvGeometry g64, Index batch, float* __restrict__ dx) {
  const Index C = g64.channels, H = g64.height, W = g64.width, k = g64.kernel, stride = g64.stride,
              pad = g64.padding, ho = g64.out_height, wo = g64.out_width;
  const Index hw = ho * wo, ld = batch * hw, total = batch * C * H * W;
  for (Index t = grid_thread_index<Index>(); t < total; t += grid_thread_count<Index>()) {
    const Index iw = t % W, t1 = t / W;
    const Index ih = t1 % H, nc = t1 / H;
    const Index c = nc % C, n = nc / C;
    const float* src = cols + c * k * k * ld + n * hw;  // row (c, 0, 0), sample n
    float acc = 0.0f;
    for (Index kh = (ih + pad) % stride; kh < k; kh += stride) {
      const Index th = ih + pad - kh;
      if (th < 0) break;
      const Index oh = th / stride;
      if (oh >= ho) continue;
      for (Index kw = (iw + pad) % stride; kw < k; kw += stride) {
        const Index tw = iw + pad - kw;
        if (tw < 0) break;
        const Index ow = tw / stride;
        if (ow >= wo) continue;
        acc += src[(kh * k + kw) * ld + oh * wo + ow];
      }
    }
    dx[t] = acc;
  }
}

// One thread per output; the CPU's loop verbatim (strict >: the first maximum wins ties).
template <typename Index>
__global__ void maxpool2d_forward_kernel(const float* __restrict__ x, PoolGeometry g64, float* __restrict__ y,
                                         int32_t* __restrict__ argmax) {
  const Index H = g64.height, W = g64.width, k = g64.kernel, stride = g64.stride, ho = g64.out_height,
              wo = g64.out_width;
  const Index total = static_cast<Index>(g64.batch * g64.channels) * ho * wo;
  for (Index t = grid_thread_index<Index>(); t < total; t += grid_thread_count<Index>()) {
    const Index ow = t % wo, t1 = t / wo;
    const Index oh = t1 % ho, p = t1 / ho;
    const float* in = x + p * H * W;
    const Index h0 = oh * stride, w0 = ow * stride;
    Index best = h0 * W + w0;
    float best_v = in[best];
    for (Index kh = 0; kh < k; ++kh) {
      for (Index kw = 0; kw < k; ++kw) {
        const Index idx = (h0 + kh) * W + w0 + kw;
        const float v = in[idx];
        if (v > best_v) {
          best_v = v;
          best = idx;
        }
      }
    }
    y[t] = best_v;
    argmax[t] = static_cast<int32_t>(best);
  }
}

// One thread per input pixel: visits every window that covers it, in ascending output
// index (the CPU's scatter order), and adds dy where that window's argmax is this pixel.
// Windows covering ih: oh*stride <= ih <= oh*stride + k - 1, clipped to [0, ho).
template <typename Index>
__global__ void maxpool2d_backward_kernel(const float* __restrict__ dy, const int32_t* __restrict__ argmax,
                                          PoolGeometry g64, float* __restrict__ dx) {
  const Index H = g64.height, W = g64.width, k = g64.kernel, stride = g64.stride, ho = g64.out_height,
              wo = g64.out_width;
  const Index total = static_cast<Index>(g64.batch * g64.channels) * H * W;
  for (Index t = grid_thread_index<Index>(); t < total; t += grid_thread_count<Index>()) {
    const Index iw = t % W, t1 = t / W;
    const Index ih = t1 % H, p = t1 / H;
    const Index oh_lo = ih < k ? 0 : (ih - k + stride) / stride;  // ceil((ih - k + 1) / stride)
    const Index ow_lo = iw < k ? 0 : (iw - k + stride) / stride;
    const Index oh_hi = ih / stride < ho ? ih / stride : ho - 1;  // inclusive
    const Index ow_hi = iw / stride < wo ? iw / stride : wo - 1;
    const Index self = ih * W + iw;
    const Index out_base = p * ho * wo;
    float acc = 0.0f;
    for (Index oh = oh_lo; oh <= oh_hi; ++oh) {
      for (Index ow = ow_lo; ow <= ow_hi; ++ow) {
        const Index o = out_base + oh * wo + ow;
        if (argmax[o] == self) acc += dy[o];
      }
    }
    dx[t] = acc;
  }
}

// The largest index or intermediate the conv kernels form: the cols and image sizes, and
// the padded extent (ih + pad, oh * stride).
int64_t conv_max_index(const ConvGeometry& g, int64_t batch) {
  return std::max({g.col_rows() * batch * g.col_cols(), batch * g.channels * g.height * g.width,
                   g.height + 2 * g.padding, g.width + 2 * g.padding});
}

// The largest index the pooling kernels form: the input or the output size.
int64_t pool_max_index(const PoolGeometry& g) {
  const int64_t planes = g.batch * g.channels;
  return std::max(planes * g.height * g.width, planes * g.out_height * g.out_width);
}

// Calls launch(Index{}) with Index = int32_t when indices up to max_index fit (see
// fits_int32), else int64_t, and returns the launch's error.
template <typename Launch>
cudaError_t launch_with_index_type(int64_t max_index, Launch&& launch) {
  if (fits_int32(max_index)) {
    launch(int32_t{});
  } else {
    launch(int64_t{});
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t im2col(const float* x, const ConvGeometry& g, int64_t batch, float* cols, cudaStream_t stream) {
  const int64_t threads = g.channels * batch * g.col_cols();
  if (threads <= 0 || g.kernel <= 0) return cudaSuccess;
  return launch_with_index_type(conv_max_index(g, batch), [&](auto index) {
    using Index = decltype(index);
    im2col_kernel<Index><<<grid_1d(threads), kBlockSize, 0, stream>>>(x, g, static_cast<Index>(batch), cols);
  });
}

cudaError_t col2im(const float* cols, const ConvGeometry& g, int64_t batch, float* dx, cudaStream_t stream) {
  const int64_t threads = batch * g.channels * g.height * g.width;
  if (threads <= 0) return cudaSuccess;
  return launch_with_index_type(conv_max_index(g, batch), [&](auto index) {
    using Index = decltype(index);
    col2im_kernel<Index><<<grid_1d(threads), kBlockSize, 0, stream>>>(cols, g, static_cast<Index>(batch), dx);
  });
}

cudaError_t maxpool2d_forward(const float* x, const PoolGeometry& g, float* y, int32_t* argmax,
                              cudaStream_t stream) {
  const int64_t threads = g.batch * g.channels * g.out_height * g.out_width;
  if (threads <= 0) return cudaSuccess;
  return launch_with_index_type(pool_max_index(g), [&](auto index) {
    using Index = decltype(index);
    maxpool2d_forward_kernel<Index><<<grid_1d(threads), kBlockSize, 0, stream>>>(x, g, y, argmax);
  });
}

cudaError_t maxpool2d_backward(const float* dy, const int32_t* argmax, const PoolGeometry& g, float* dx,
                               cudaStream_t stream) {
  const int64_t threads = g.batch * g.channels * g.height * g.width;
  if (threads <= 0) return cudaSuccess;
  return launch_with_index_type(pool_max_index(g), [&](auto index) {
    using Index = decltype(index);
    maxpool2d_backward_kernel<Index><<<grid_1d(threads), kBlockSize, 0, stream>>>(dy, argmax, g, dx);
  });
}

}  // namespace shardtrain::kernels
