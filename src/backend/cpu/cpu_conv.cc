// CpuBackend: im2col / col2im for convolution and 2-D max pooling.
//
// im2col lays a batch out as cols[(c, kh, kw), (n, oh, ow)] so the whole batch convolves
// in one GEMM W[K, C*k*k] x cols: per-sample GEMMs are too thin (n = Ho*Wo ~ 200) for
// OpenBLAS to reach its full rate. For each (c, kh, kw) row the range of output columns
// whose input pixel is inside the image is computed up front, so the inner loop has no
// bounds checks (and is a plain copy for stride 1). col2im is the exact adjoint: it
// scatters with +=. Every output element is written by exactly one thread ((row, sample)
// segments for im2col, (sample, channel) planes for col2im and pooling), so there are no
// races and no order-dependent sums.
#include <algorithm>
#include <cstring>

#include "backend/cpu/cpu_backend.h"

namespace shardtrain {

namespace {

// First and one-past-last output index o with 0 <= o*stride - pad + k_off < size.
inline void valid_range(int64_t size, int64_t out, int64_t stride, int64_t pad, int64_t k_off, int64_t* lo,
                        int64_t* hi) {
  const int64_t shift = pad - k_off;  // input = o*stride - shift
  *lo = shift <= 0 ? 0 : (shift + stride - 1) / stride;
  const int64_t last = size - 1 + shift;  // o*stride <= last
  *hi = last < 0 ? 0 : std::min(out, last / stride + 1);
  if (*lo > *hi) *lo = *hi;
}

}  // namespace

void CpuBackend::im2col(const float* x, const ConvGeometry& g, int64_t batch, float* cols) {
  const int64_t k = g.kernel, ho = g.out_height, wo = g.out_width, hw = ho * wo, rows = g.col_rows();
  const int64_t in_sz = g.channels * g.height * g.width, ld = batch * hw;
  // One work item per (row, sample): a contiguous hw-long segment of one cols row.
#pragma omp parallel for schedule(static)
  for (int64_t item = 0; item < rows * batch; ++item) {
    const int64_t row = item / batch, n = item % batch;
    const int64_t c = row / (k * k), kh = (row / k) % k, kw = row % k;
    const float* plane = x + n * in_sz + c * g.height * g.width;
    float* out = cols + row * ld + n * hw;
    int64_t oh_lo, oh_hi, ow_lo, ow_hi;
    valid_range(g.height, ho, g.stride, g.padding, kh, &oh_lo, &oh_hi);
    valid_range(g.width, wo, g.stride, g.padding, kw, &ow_lo, &ow_hi);
    std::memset(out, 0, oh_lo * wo * sizeof(float));
    for (int64_t oh = oh_lo; oh < oh_hi; ++oh) {
      float* o = out + oh * wo;
      const float* in = plane + (oh * g.stride - g.padding + kh) * g.width;
      const int64_t iw0 = ow_lo * g.stride - g.padding + kw;
      std::fill(o, o + ow_lo, 0.0f);
      if (g.stride == 1) {  // rows are short (Wo ~ 14-28): an inlined loop beats memcpy
        const float* src = in + iw0 - ow_lo;
        for (int64_t ow = ow_lo; ow < ow_hi; ++ow) o[ow] = src[ow];
      } else {
        for (int64_t ow = ow_lo; ow < ow_hi; ++ow) o[ow] = in[iw0 + (ow - ow_lo) * g.stride];
      }
      std::fill(o + ow_hi, o + wo, 0.0f);
    }
    std::memset(out + oh_hi * wo, 0, (ho - oh_hi) * wo * sizeof(float));
  }
}

void CpuBackend::col2im(const float* cols, const ConvGeometry& g, int64_t batch, float* dx) {
  const int64_t k = g.kernel, ho = g.out_height, wo = g.out_width, hw = ho * wo;
  const int64_t ld = batch * hw;
  // One thread per (sample, channel) plane: the k*k rows of a channel all scatter into it,
  // always in (kh, kw, oh, ow) order.
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < batch * g.channels; ++nc) {
    const int64_t n = nc / g.channels, c = nc % g.channels;
    float* plane = dx + nc * g.height * g.width;
    std::memset(plane, 0, g.height * g.width * sizeof(float));
    for (int64_t kh = 0; kh < k; ++kh) {
      int64_t oh_lo, oh_hi;
      valid_range(g.height, ho, g.stride, g.padding, kh, &oh_lo, &oh_hi);
      for (int64_t kw = 0; kw < k; ++kw) {
        int64_t ow_lo, ow_hi;
        valid_range(g.width, wo, g.stride, g.padding, kw, &ow_lo, &ow_hi);
        const float* src = cols + ((c * k + kh) * k + kw) * ld + n * hw;
        for (int64_t oh = oh_lo; oh < oh_hi; ++oh) {
          float* in = plane + (oh * g.stride - g.padding + kh) * g.width;
          const float* s = src + oh * wo;
          if (g.stride == 1) {  // contiguous: vectorizes
            float* d = in - g.padding + kw;
            for (int64_t ow = ow_lo; ow < ow_hi; ++ow) d[ow] += s[ow];
          } else {
            for (int64_t ow = ow_lo; ow < ow_hi; ++ow) in[ow * g.stride - g.padding + kw] += s[ow];
          }
        }
      }
    }
  }
}

void CpuBackend::maxpool2d_forward(const float* x, const PoolGeometry& g, float* y, int32_t* argmax) {
  const int64_t planes = g.batch * g.channels, in_sz = g.height * g.width, out_sz = g.out_height * g.out_width;
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < planes; ++p) {
    const float* in = x + p * in_sz;
    for (int64_t oh = 0; oh < g.out_height; ++oh) {
      for (int64_t ow = 0; ow < g.out_width; ++ow) {
        const int64_t h0 = oh * g.stride, w0 = ow * g.stride;
        int64_t best = h0 * g.width + w0;
        float best_v = in[best];
        for (int64_t kh = 0; kh < g.kernel; ++kh) {
          for (int64_t kw = 0; kw < g.kernel; ++kw) {
            const int64_t idx = (h0 + kh) * g.width + w0 + kw;
            if (in[idx] > best_v) {  // strict: the first maximum wins ties
              best_v = in[idx];
              best = idx;
            }
          }
        }
        const int64_t o = p * out_sz + oh * g.out_width + ow;
        y[o] = best_v;
        argmax[o] = static_cast<int32_t>(best);
      }
    }
  }
}

void CpuBackend::maxpool2d_backward(const float* dy, const int32_t* argmax, const PoolGeometry& g, float* dx) {
  const int64_t planes = g.batch * g.channels, in_sz = g.height * g.width, out_sz = g.out_height * g.out_width;
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < planes; ++p) {
    float* d = dx + p * in_sz;
    std::memset(d, 0, in_sz * sizeof(float));
    // += because overlapping windows (stride < kernel) can share a maximum.
    for (int64_t o = 0; o < out_sz; ++o) d[argmax[p * out_sz + o]] += dy[p * out_sz + o];
  }
}

}  // namespace shardtrain
