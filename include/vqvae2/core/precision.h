// Mixed precision: the number format the heavy operations run in, and the loss scaling fp16 needs.
//
// Parameters, optimiser state and checkpoints are always fp32. A precision other than fp32 runs the
// forward pass under LibTorch's autocast (AutocastGuard): convolutions and matrix products take
// bf16 or fp16 copies of their inputs, while the operations autocast keeps in fp32 (losses,
// reductions) and everything that opts out with AutocastGuard(Precision::kFP32, ...) stay in fp32;
// the vector quantizer does, so nearest codes, distances and EMA statistics never leave fp32.
//
//   fp32  no autocast.
//   bf16  CPU (oneDNN: fast with AVX-512-BF16 or AMX, emulated and slower without) and CUDA. bf16
//         has fp32's exponent range: gradients neither overflow nor underflow, no loss scaling.
//   fp16  CUDA only (LibTorch 1.13's CPU autocast knows bf16 alone). fp16's largest value is 65504
//         and its smallest normal 6e-5: small gradients vanish unless the loss is scaled up before
//         backward (LossScaler), and large activations overflow to inf.
#pragma once

#include "vqvae2/core/checkpoint.h"

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <string>
#include <vector>

namespace vqvae2 {

enum class Precision { kFP32, kBF16, kFP16 };

// "fp32" | "bf16" | "fp16"; parse_precision throws vqvae2::Error naming the choices otherwise.
std::string to_string(Precision precision);
Precision parse_precision(const std::string& name);
// As a JSON string; an unknown string is refused (not silently read as fp32).
void to_json(nlohmann::json& json, const Precision& precision);
void from_json(const nlohmann::json& json, Precision& precision);

// The lower-precision scalar type autocast uses (kFloat for fp32).
torch::ScalarType scalar_type(Precision precision);

// Throws vqvae2::Error when `device` cannot run `precision` (fp16 on a CPU), saying what to use.
void check_precision(Precision precision, const torch::Device& device);

// For its scope, autocast on `device`'s type runs in `precision` (fp32: autocast off, as
// `torch.autocast(enabled=False)` does), and the previous state comes back on exit, also when an
// exception leaves the scope. Nests. The outermost guard drops autocast's cache of cast weights on
// exit, as torch.autocast does, so a step's bf16 copies never outlive it. An fp32 guard on a device
// without autocast (neither CPU nor CUDA) does nothing; any other precision there is refused.
class AutocastGuard {
 public:
  AutocastGuard(Precision precision, const torch::Device& device);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool active_;  // false: a no-op (fp32 on a device without autocast)
  torch::DeviceType device_type_;
  bool was_enabled_;
  torch::ScalarType previous_dtype_;
};

// Whether autocast is on for `device_type`, and in which scalar type.
bool autocast_enabled(torch::DeviceType device_type);
torch::ScalarType autocast_dtype(torch::DeviceType device_type);

// Dynamic loss scaling for fp16, as torch.cuda.amp.GradScaler does it: backward runs on loss × S;
// the gradients are divided by S before the optimiser sees them. When any of them is inf or NaN,
// S was too large: the step is skipped and S halves. After `growth_interval` good steps in a row,
// S doubles, so it stays near the largest scale that does not overflow.
struct LossScalerOptions {
  double initial_scale = 65536.0;   // 2^16
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  int64_t growth_interval = 2000;   // good steps before S grows
  void validate() const;
};

class LossScaler {
 public:
  explicit LossScaler(const LossScalerOptions& options = {});

  // loss × S, to call backward() on.
  torch::Tensor scale(const torch::Tensor& loss) const;
  // Divides the gradients of `parameters` by S in place. True when every gradient is finite (the
  // optimiser may step); false when the step must be skipped.
  bool unscale(const std::vector<torch::Tensor>& parameters) const;
  // After a step (finite) or a skipped one (!finite): grows or backs off S.
  void update(bool finite);

  double current_scale() const { return scale_; }
  int64_t good_steps() const { return good_steps_; }  // in a row, since S last changed

  // S and the good-step count as "<prefix>/scale" and "<prefix>/good_steps", and back, so a
  // resumed run scales exactly as an uninterrupted one would.
  void save(NamedTensors& tensors, const std::string& prefix) const;
  void load(const NamedTensors& tensors, const std::string& prefix);

 private:
  LossScalerOptions options_;
  double scale_;
  int64_t good_steps_ = 0;
};

}  // namespace vqvae2
