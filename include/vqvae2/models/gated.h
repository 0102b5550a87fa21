// Gated units (van den Oord et al. 2016): a gated residual unit over channels alone (1×1), which the
// priors' output heads and PixelSNAIL's attention blocks are built from, and the helpers that run
// such units over maps. The gate itself, y = tanh(a) ⊙ σ(b), is vqvae2::gate (models/activation.h).
//
// Glossary: B = batch, C = channels, H, W = map height and width.
#pragma once

#include "vqvae2/models/dropout.h"
#include "vqvae2/models/weight_norm.h"

#include <torch/torch.h>

#include <functional>

namespace vqvae2 {

// Applies a module over channels (Linear-based) to a map: [B, C, H, W] -> [B, C', H, W].
torch::Tensor over_channels(const torch::Tensor& map, const std::function<torch::Tensor(const torch::Tensor&)>& fn);

// Returns `map` [B, C, H, W] itself, with its gradient made a contiguous [B, C, H, W] tensor before it
// flows on into the layers that made `map` (a gradient from a channels-last consumer, such as
// over_channels, has channels-last strides). No effect where `map` needs no gradient.
torch::Tensor with_contiguous_gradient(const torch::Tensor& map);

// A gated residual unit of 1×1 convolutions (Linear layers over channels), optionally fed an
// auxiliary input: y = x + gate(W2 · dropout(elu(W1·elu(x) + Wa·elu(aux)))), every W optionally
// weight-normalised. Works on maps [B, C, H, W] and on single positions [B, C] alike.
class PointwiseGatedImpl : public torch::nn::Module {
 public:
  PointwiseGatedImpl(int64_t channels, int64_t hidden, int64_t aux_channels, double dropout, bool weight_norm = false);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& aux = {});

 private:
  torch::Tensor channels_last(const torch::Tensor& x, const torch::Tensor& aux);  // [..., C]

  WeightNormLinear first_{nullptr}, second_{nullptr}, aux_{nullptr};
  Dropout dropout_{nullptr};
};
TORCH_MODULE(PointwiseGated);

}  // namespace vqvae2
