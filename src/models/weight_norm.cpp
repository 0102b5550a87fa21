#include "vqvae2/models/weight_norm.h"

#include <cmath>

namespace vqvae2 {

torch::Tensor weight_norm(const torch::Tensor& v, const torch::Tensor& g) {
  std::vector<int64_t> shape(v.dim(), 1);
  shape[0] = v.size(0);
  const auto norm = v.flatten(1).norm(2, 1).clamp_min(1e-12);  // ‖v_o‖ per output unit o  [out]
  return v * (g / norm).view(shape);
}

namespace {

// LibTorch's default initialisation of Conv2d and Linear (Kaiming-uniform with a = √5): weights and
// biases uniform in ±1/√fan_in.
void initialise(torch::Tensor& weight, torch::Tensor& bias) {
  torch::NoGradGuard no_grad;
  const double bound = 1.0 / std::sqrt(static_cast<double>(weight.numel() / weight.size(0)));
  weight.uniform_(-bound, bound);
  if (bias.defined()) bias.uniform_(-bound, bound);
}

}  // namespace

WeightNormConv2dImpl::WeightNormConv2dImpl(int64_t in, int64_t out, int64_t kernel_height, int64_t kernel_width,
                                           bool weight_norm, bool bias) {
  weight_ = register_parameter("weight", torch::empty({out, in, kernel_height, kernel_width}));
  if (bias) bias_ = register_parameter("bias", torch::empty({out}));
  initialise(weight_, bias_);
  if (weight_norm) gain_ = register_parameter("gain", weight_.detach().flatten(1).norm(2, 1));
}

torch::Tensor WeightNormConv2dImpl::weight(const torch::Tensor& mask) const {
  const auto v = mask.defined() ? weight_ * mask : weight_;
  return gain_.defined() ? weight_norm(v, gain_) : v;
}

torch::Tensor WeightNormConv2dImpl::forward(const torch::Tensor& x) { return torch::conv2d(x, weight(), bias_); }

WeightNormLinearImpl::WeightNormLinearImpl(int64_t in, int64_t out, bool weight_norm, bool bias) {
  weight_ = register_parameter("weight", torch::empty({out, in}));
  if (bias) bias_ = register_parameter("bias", torch::empty({out}));
  initialise(weight_, bias_);
  if (weight_norm) gain_ = register_parameter("gain", weight_.detach().norm(2, 1));
}

torch::Tensor WeightNormLinearImpl::weight() const { return gain_.defined() ? weight_norm(weight_, gain_) : weight_; }

torch::Tensor WeightNormLinearImpl::forward(const torch::Tensor& x) { return torch::linear(x, weight(), bias_); }

}  // namespace vqvae2
