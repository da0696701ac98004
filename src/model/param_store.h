// ParamStore: owns every named parameter of a model and its gradient.
//
// Layers declare their parameters while the model is configured (name, shape, how to
// initialise it); a second use of an existing parameter (a tied input/output embedding)
// finds it by name instead. After allocate(), every parameter and gradient is a view into
// one flat fp32 buffer each, laid out in declaration order, i.e. in the forward order of
// each parameter's first use: those buffers are what the communicator reduces in buckets,
// what the optimizer steps over and what checkpoints split back into named tensors.
//
// Gradients accumulate: zero_grads() once per step, then every backward use of a parameter
// adds its contribution, so a parameter used twice gets the sum of both.
//
// Precision: the flat buffers are always fp32 (the master weights the optimizer steps and
// checkpoints store, and the gradients, which bf16 backward passes accumulate into in
// fp32). With a bf16 compute dtype the store also keeps a bf16 copy of the parameters,
// which is what layers compute with (compute_value()); refresh_compute_copy() rounds the
// master into it, and the model calls it before every forward, so the copy can never be
// older than the master (one elementwise pass over the parameters per step: a fraction of
// a percent of a step).
//
// acquire/release bracket a layer's use of its parameters in forward and in backward.
// Today every rank holds every parameter (data parallelism), so they only check the
// contract; a sharded store (ZeRO stage 3) gathers parameters in acquire and frees them in
// release without any change to the layers.
//
// Thread-safety: none; the trainer's thread.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/status.h"
#include "core/tensor.h"

namespace shardtrain {

using ParamId = int;

// How a parameter starts. Every kind draws from the counter-based RNG keyed by the
// parameter's index, so init is identical on every rank, thread count and device.
struct ParamInit {
  enum Kind {
    kUniformFanIn,  // U(-1/sqrt(value), 1/sqrt(value)), value = fan-in: PyTorch's Linear/Conv default
    kNormal,        // N(0, value^2): GPT-2's embeddings and projections (value = std)
    kOnes,          // LayerNorm weight
    kZeros,         // biases of GPT-2 layers, LayerNorm bias
  };
  Kind kind = kUniformFanIn;
  double value = 1.0;
  static ParamInit UniformFanIn(int64_t fan_in) { return {kUniformFanIn, static_cast<double>(fan_in)}; }
  static ParamInit Normal(double std) { return {kNormal, std}; }
  static ParamInit Ones() { return {kOnes, 0.0}; }
  static ParamInit Zeros() { return {kZeros, 0.0}; }
};

struct ParamInfo {
  std::string name;  // "fc1.weight", "h.0.attn.c_attn.weight"
  Shape shape;
  int64_t offset;    // into the flat buffers
  ParamInit init;
};

class ParamStore {
 public:
  explicit ParamStore(Backend& backend) : be_(backend) {}
  ParamStore(const ParamStore&) = delete;
  ParamStore& operator=(const ParamStore&) = delete;

  // A new parameter. InvalidArgument if the name is taken or the store is allocated.
  StatusOr<ParamId> declare(const std::string& name, const Shape& shape, ParamInit init);
  // An existing parameter by full name (for a second use). NotFound names it.
  StatusOr<ParamId> find(const std::string& name) const;
  // The dtype layers compute with: kFloat32 (default) or kBFloat16. Set before configure.
  void set_compute_dtype(DType d) { compute_dtype_ = d; }
  DType compute_dtype() const { return compute_dtype_; }
  // Allocates the flat buffers (and the bf16 copy); views become valid. Call once, after
  // every declare.
  void allocate();

  const std::vector<ParamInfo>& params() const { return params_; }
  int64_t num_params() const { return total_; }
  Backend& backend() { return be_; }
  Tensor& flat_params() { return flat_params_; }
  Tensor& flat_grads() { return flat_grads_; }

  // The value and gradient of `id`. REQUIRES: allocate() was called; between acquire()
  // and release() of a set holding `id`.
  const Tensor& value(ParamId id) const { return values_[id]; }
  Tensor& grad(ParamId id) { return grads_[id]; }
  // What layers compute with: value(id) itself, or its bf16 copy (compute_dtype()).
  const Tensor& compute_value(ParamId id) const {
    return compute_dtype_ == DType::kFloat32 ? values_[id] : compute_values_[id];
  }
  // Rounds the fp32 master into the bf16 copy (nothing for fp32). Issued on the backend.
  void refresh_compute_copy();

  void acquire(const std::vector<ParamId>& ids);
  void release(const std::vector<ParamId>& ids);

  void zero_grads();
  // Initialises every parameter from its ParamInit; element i of parameter k is drawn from
  // (seed, kCounterRngInit, k, i).
  void init(uint64_t seed);

 private:
  Backend& be_;
  std::vector<ParamInfo> params_;
  std::map<std::string, ParamId> by_name_;
  int64_t total_ = 0;
  DType compute_dtype_ = DType::kFloat32;
  Tensor flat_params_, flat_grads_, flat_compute_;
  std::vector<Tensor> values_, grads_, compute_values_;
  std::vector<int> acquired_;  // acquire depth per parameter (contract check)
};

// Fills `host` (num_params floats, laid out as the store's flat buffer) with each
// parameter's seeded initial values; what ParamStore::init uploads. For tests and tools.
void init_params_host(const std::vector<ParamInfo>& params, uint64_t seed, std::vector<float>& host);

}  // namespace shardtrain
