// Priors over the code maps (MISSION.md §1.4). Each level's codes get their own autoregressive
// model, trained separately on codes the VQ-VAE extracted:
//   top (level L-1): PixelSNAIL — the gated causal stack with attention, no condition;
//   lower levels:    a conditional gated PixelCNN — the same stack without attention, fed the
//                    codes of the level above through a deep ConditioningStack whose output
//                    enters every gated layer.
// The upper map is s times smaller (s = scale): each upper code stands over an s×s patch of the
// conditioned level. Upsampled by repetition (nearest neighbour), the s² positions of a patch would
// all receive the same conditioning; a learned upsampling and/or position channels (PixelSNAIL's
// "background") tell them apart.
#pragma once

#include "vqvae2/models/pixelcnn.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <string>
#include <vector>

namespace vqvae2 {

struct ConditioningStackOptions {
  int64_t codes = 512;      // K of the conditioning (upper) level
  int64_t channels = 256;   // width of the stack and of its output
  int64_t res_blocks = 8;   // residual blocks (3×3, non-causal: the condition is known in full)
  int64_t kernel = 3;
  int64_t scale = 2;        // s: upsampling to the conditioned level (its stride)
  std::string upsample = "nearest";  // "nearest" (repeat each feature s×s times) or "transposed" (a learned
                                     // stride-s transposed convolution: each of the s² children its own weights)
  bool position = false;    // add a learned projection of each conditioned position's row, column and
                            // parity (i mod s, j mod s) to its features
  bool weight_norm = false; // w = g·v/‖v‖ in every convolution
  void validate() const;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ConditioningStackOptions, codes, channels, res_blocks, kernel, scale,
                                                upsample, position, weight_norm)

// [2 + s², H, W]: PixelSNAIL's background for an H×W map under an s-times smaller one: the row and
// column scaled to [-0.5, 0.5) (attention.h's position_features), then the one-hot parity
// (i mod s)·s + (j mod s).
torch::Tensor background_features(int64_t height, int64_t width, int64_t scale, const torch::TensorOptions& options);

// Upper-level codes [B, h, w] -> conditioning features [B, channels, h·scale, w·scale].
class ConditioningStackImpl : public torch::nn::Module {
 public:
  explicit ConditioningStackImpl(const ConditioningStackOptions& options);
  torch::Tensor forward(const torch::Tensor& codes);

 private:
  torch::Tensor conv(WeightNormConv2d& layer, const torch::Tensor& x) const;  // "same" zero padding

  ConditioningStackOptions options_;
  torch::nn::Embedding embedding_{nullptr};
  WeightNormConv2d input_{nullptr};
  std::vector<std::pair<WeightNormConv2d, WeightNormConv2d>> blocks_;
  WeightNormConv2d upsample_{nullptr};  // transposed: 1×1 to channels·s², then depth-to-space
  WeightNormConv2d position_{nullptr};  // 1×1 from the background
};
TORCH_MODULE(ConditioningStack);

struct PriorOptions {
  int64_t level = 0;           // which VQ-VAE level these codes are (0 = bottom)
  int64_t height = 32, width = 32;
  GatedPixelCNNOptions stack;  // the causal stack (stack.codes = K of this level)
  bool conditional = false;    // conditioned on the codes of level + 1
  ConditioningStackOptions condition;
  // Training only (conditional priors; unused by the top's): the share of maps whose condition is withheld, their
  // conditioning features replaced by zeros, so that one network learns p(x | c) and, given zeros,
  // p(x) as well: what classifier-free guidance samples from (Ho & Salimans 2022;
  // SamplingOptions::guidance). 0 = off; a prior trained with 0 has no unconditional model.
  double condition_dropout = 0.0;

  void validate() const;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(PriorOptions, level, height, width, stack, conditional, condition,
                                                condition_dropout)

class PriorImpl : public torch::nn::Module {
 public:
  explicit PriorImpl(const PriorOptions& options);

  // codes [B, H, W] (and the upper level's codes [B, H/s, W/s] when conditional) -> logits [B, K, H, W].
  // In training mode with options().condition_dropout p > 0, each map's condition is withheld with
  // probability p (its conditioning features zeroed).
  torch::Tensor forward(const torch::Tensor& codes, const torch::Tensor& condition_codes = {});
  // The unconditional model of a conditional prior trained with condition dropout: the logits
  // [B, K, H, W] of `codes` given zero conditioning features, the input it saw for withheld conditions.
  torch::Tensor forward_unconditional(const torch::Tensor& codes);
  // Mean cross-entropy of the codes under the model, in nats per code.
  torch::Tensor loss(const torch::Tensor& codes, const torch::Tensor& condition_codes = {});
  // The conditioning features [B, Cc, H, W] for the stack, or an undefined tensor when unconditional.
  torch::Tensor condition_features(const torch::Tensor& condition_codes);
  // Throws vqvae2::Error unless `condition_codes` suit `batch` maps of this prior: undefined for an
  // unconditional prior, else int64 [batch, H/s, W/s] with values in [0, K of the level above).
  void check_condition(int64_t batch, const torch::Tensor& condition_codes) const;

  GatedPixelCNNImpl& stack() { return *stack_; }
  const PriorOptions& options() const { return options_; }
  // Multiply-accumulates of one forward pass over one map (convolutions, linear layers, attention).
  int64_t forward_macs() const;

 private:
  void check_inputs(const torch::Tensor& codes, const torch::Tensor& condition_codes) const;
  void check_codes(const torch::Tensor& codes) const;

  PriorOptions options_;
  GatedPixelCNN stack_{nullptr};
  ConditioningStack conditioning_{nullptr};
};
TORCH_MODULE(Prior);

// The weights of `stack` that meet every position of its map once each (convolution and linear
// kernels; not biases, gains or embedding tables, which are added or looked up): what a forward
// pass's work (PriorImpl::forward_macs) and a sampler step's (step_threads) are counted from.
std::vector<torch::Tensor> per_position_weights(const torch::nn::Module& stack);

}  // namespace vqvae2
