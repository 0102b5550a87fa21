#include "vqvae2/core/precision.h"

#include "vqvae2/core/error.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include <cmath>

// LibTorch 2.4 replaced the per-backend autocast functions (set_cpu_enabled, set_autocast_gpu_dtype,
// ...) by ones taking the device type, and deprecated the old ones.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define VQVAE2_AUTOCAST_BY_DEVICE_TYPE 1
#else
#define VQVAE2_AUTOCAST_BY_DEVICE_TYPE 0
#endif

namespace vqvae2 {

std::string to_string(Precision precision) {
  switch (precision) {
    case Precision::kFP32: return "fp32";
    case Precision::kBF16: return "bf16";
    case Precision::kFP16: return "fp16";
  }
  fail("unknown precision {}", static_cast<int>(precision));
}

Precision parse_precision(const std::string& name) {
  for (const auto p : {Precision::kFP32, Precision::kBF16, Precision::kFP16}) {
    if (name == to_string(p)) return p;
  }
  fail("unknown precision '{}': choose fp32, bf16 or fp16", name);
}

void to_json(nlohmann::json& json, const Precision& precision) { json = to_string(precision); }

void from_json(const nlohmann::json& json, Precision& precision) {
  VQVAE2_CHECK(json.is_string(), "precision must be a string (fp32, bf16 or fp16), got {}", json.dump());
  precision = parse_precision(json.get<std::string>());
}

torch::ScalarType scalar_type(Precision precision) {
  switch (precision) {
    case Precision::kFP32: return torch::kFloat;
    case Precision::kBF16: return torch::kBFloat16;
    case Precision::kFP16: return torch::kHalf;
  }
  fail("unknown precision {}", static_cast<int>(precision));
}

void check_precision(Precision precision, const torch::Device& device) {
  VQVAE2_CHECK(precision == Precision::kFP32 || device.is_cpu() || device.is_cuda(),
               "mixed precision runs on cpu or cuda, not on {}: use --precision fp32 there", device.str());
  VQVAE2_CHECK(!(precision == Precision::kFP16 && device.is_cpu()),
               "fp16 needs a CUDA device: LibTorch's CPU autocast runs bf16 only. Use --precision bf16 (fast on CPUs "
               "with AVX-512-BF16 or AMX) or fp32 on the CPU, or --device cuda for fp16");
}

bool autocast_enabled(torch::DeviceType device_type) {
#if VQVAE2_AUTOCAST_BY_DEVICE_TYPE
  return at::autocast::is_autocast_enabled(device_type);
#else
  return device_type == torch::kCUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

torch::ScalarType autocast_dtype(torch::DeviceType device_type) {
#if VQVAE2_AUTOCAST_BY_DEVICE_TYPE
  return at::autocast::get_autocast_dtype(device_type);
#else
  return device_type == torch::kCUDA ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
#endif
}

namespace {

void set_autocast(torch::DeviceType device_type, bool enabled, torch::ScalarType dtype) {
#if VQVAE2_AUTOCAST_BY_DEVICE_TYPE
  at::autocast::set_autocast_dtype(device_type, dtype);
  at::autocast::set_autocast_enabled(device_type, enabled);
#else
  if (device_type == torch::kCUDA) {
    at::autocast::set_autocast_gpu_dtype(dtype);
    at::autocast::set_enabled(enabled);
  } else {
    at::autocast::set_autocast_cpu_dtype(dtype);
    at::autocast::set_cpu_enabled(enabled);
  }
#endif
}

}  // namespace

AutocastGuard::AutocastGuard(Precision precision, const torch::Device& device)
    : active_(device.is_cpu() || device.is_cuda()),
      device_type_(device.type()),
      was_enabled_(false),
      previous_dtype_(torch::kFloat) {
  check_precision(precision, device);
  if (!active_) return;
  was_enabled_ = autocast_enabled(device_type_);
  previous_dtype_ = autocast_dtype(device_type_);
  // fp32 keeps the previous lower-precision type: it only switches autocast off.
  const auto dtype = precision == Precision::kFP32 ? previous_dtype_ : scalar_type(precision);
  set_autocast(device_type_, precision != Precision::kFP32, dtype);
  at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
  if (!active_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  set_autocast(device_type_, was_enabled_, previous_dtype_);
}

// ---- loss scaling ---------------------------------------------------------------------------------

void LossScalerOptions::validate() const {
  VQVAE2_CHECK(initial_scale > 0 && std::isfinite(initial_scale), "the initial loss scale must be positive, got {}",
               initial_scale);
  VQVAE2_CHECK(growth_factor > 1, "the loss scale's growth factor must be above 1, got {}", growth_factor);
  VQVAE2_CHECK(backoff_factor > 0 && backoff_factor < 1, "the loss scale's backoff factor must be in (0, 1), got {}",
               backoff_factor);
  VQVAE2_CHECK(growth_interval >= 1, "the loss scale's growth interval must be positive, got {}", growth_interval);
}

LossScaler::LossScaler(const LossScalerOptions& options) : options_(options), scale_(options.initial_scale) {
  options_.validate();
}

torch::Tensor LossScaler::scale(const torch::Tensor& loss) const { return loss * scale_; }

bool LossScaler::unscale(const std::vector<torch::Tensor>& parameters) const {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> bad;  // one 0/1 flag per gradient: one synchronisation, not one each
  for (const auto& p : parameters) {
    auto grad = p.grad();
    if (!grad.defined()) continue;
    grad.mul_(1.0 / scale_);
    bad.push_back(grad.isfinite().logical_not().any());
  }
  return bad.empty() || !torch::stack(bad).any().item<bool>();
}

void LossScaler::update(bool finite) {
  if (!finite) {
    scale_ *= options_.backoff_factor;
    good_steps_ = 0;
    return;
  }
  if (++good_steps_ >= options_.growth_interval) {
    scale_ *= options_.growth_factor;
    good_steps_ = 0;
  }
}

void LossScaler::save(NamedTensors& tensors, const std::string& prefix) const {
  // S is a power of two times the initial scale: exact in float32.
  tensors.add(prefix + "/scale", torch::tensor(static_cast<float>(scale_)));
  tensors.add(prefix + "/good_steps", torch::tensor(good_steps_, torch::kLong));
}

void LossScaler::load(const NamedTensors& tensors, const std::string& prefix) {
  const auto scale = static_cast<double>(tensors.at(prefix + "/scale").item<float>());
  const auto good = tensors.at(prefix + "/good_steps").item<int64_t>();
  VQVAE2_CHECK(scale > 0 && std::isfinite(scale) && good >= 0,
               "the checkpoint's loss scale is unusable (scale {}, good steps {}); it was damaged: resume from "
               "another checkpoint",
               scale, good);
  scale_ = scale;
  good_steps_ = good;
}

}  // namespace vqvae2
