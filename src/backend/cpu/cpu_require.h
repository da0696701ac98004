// Argument checks of the CPU backend's tensor primitives. A dtype or shape that does not
// fit a primitive is a bug in the caller (layers check their configuration up front), and
// the CPU backend has no sticky error to keep it in: it stops with the primitive's name.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <initializer_list>

#include "core/tensor.h"

namespace shardtrain {

inline void cpu_require(bool ok, const char* primitive, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "fatal: cpu backend: %s: %s\n", primitive, what);
  std::abort();
}

inline void cpu_require_f32(const char* primitive, std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts) cpu_require(t->dtype() == DType::kFloat32, primitive, "expects float32 tensors");
}

}  // namespace shardtrain
