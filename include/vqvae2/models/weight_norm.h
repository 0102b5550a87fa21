// Weight normalisation (Salimans & Kingma 2016), which PixelSNAIL (Chen et al. 2018) applies to
// every convolution and linear layer: each output unit's weights are a direction v and a gain g,
//   w = g · v / ‖v‖     (‖·‖ over everything but the output dimension),
// so the optimiser moves the scale and the direction separately.
//
// The layers here are drop-in replacements for torch::nn::Conv2d and torch::nn::Linear that store
// their parameters under the same names ("weight" holds v, "bias"), so a model saved with those
// modules loads into these; with weight norm on they add one parameter, "gain" g [out], which starts
// at ‖v‖: a freshly built layer computes the same function with weight norm on or off.
//
// Glossary: B = batch, in / out = input / output channels, kh × kw = kernel.
#pragma once

#include <torch/torch.h>

namespace vqvae2 {

// g · v / ‖v‖ with one gain per row of dim 0: v [out, ...], g [out] -> w [out, ...].
torch::Tensor weight_norm(const torch::Tensor& v, const torch::Tensor& g);

// A 2-D convolution (stride 1, no padding: callers pad for causality) with optional weight norm.
class WeightNormConv2dImpl : public torch::nn::Module {
 public:
  WeightNormConv2dImpl(int64_t in, int64_t out, int64_t kernel_height, int64_t kernel_width, bool weight_norm,
                       bool bias = true);
  // [B, in, H, W] -> [B, out, H - kh + 1, W - kw + 1]
  torch::Tensor forward(const torch::Tensor& x);
  // w [out, in, kh, kw]: v itself, or g · v / ‖v‖. `mask` (broadcast over v, 0/1) zeroes taps before
  // normalising, so a masked convolution's gain is the norm of the taps it really uses.
  torch::Tensor weight(const torch::Tensor& mask = {}) const;
  const torch::Tensor& bias() const { return bias_; }  // [out] or undefined
  const torch::Tensor& direction() const { return weight_; }  // v
  bool normalised() const { return gain_.defined(); }

 private:
  torch::Tensor weight_, bias_, gain_;
};
TORCH_MODULE(WeightNormConv2d);

// y = x wᵀ + b over the last dimension, with optional weight norm.
class WeightNormLinearImpl : public torch::nn::Module {
 public:
  WeightNormLinearImpl(int64_t in, int64_t out, bool weight_norm, bool bias = true);
  torch::Tensor forward(const torch::Tensor& x);  // [..., in] -> [..., out]
  torch::Tensor weight() const;                   // w [out, in]
  const torch::Tensor& bias() const { return bias_; }

 private:
  torch::Tensor weight_, bias_, gain_;
};
TORCH_MODULE(WeightNormLinear);

}  // namespace vqvae2
