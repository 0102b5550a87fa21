// Causal multi-head self-attention over a code map (PixelSNAIL, Chen et al. 2018): gives every
// position a view of all earlier positions, however far, where convolutions see only a window.
//
// Glossary: B = batch, C = channels, N = H·W positions in raster order, heads × d = C/2.
// Keys and values come from [block input, H, position]; queries from [H, position]; position p
// attends to positions q ≤ p. Including p itself is safe: H[p] already excludes the code at p.
#pragma once

#include "vqvae2/models/dropout.h"
#include "vqvae2/models/gated.h"

#include <torch/torch.h>

namespace vqvae2 {

// [2, H, W]: the row and column of each position, scaled to [-0.5, 0.5).
torch::Tensor position_features(int64_t height, int64_t width, const torch::TensorOptions& options);

// softmax(q kᵀ / √d + mask) v with mask = -∞ above the diagonal. q, k, v: [B, heads, N, d].
torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               Dropout& dropout);

class CausalAttentionBlockImpl : public torch::nn::Module {
 public:
  CausalAttentionBlockImpl(int64_t channels, int64_t heads, double dropout, bool weight_norm = false);

  // h, block_input [B, C, H, W] -> h' [B, C, H, W]
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& block_input);

  // Incremental form at position p = (i, j) of an H×W map: h, block_input [B, C] -> h' [B, C].
  // Writes this position's key and value into the caches keys, values [B, heads, N, d].
  torch::Tensor position(const torch::Tensor& h, const torch::Tensor& block_input, int64_t i, int64_t j,
                         int64_t height, int64_t width, torch::Tensor& keys, torch::Tensor& values);

 private:
  // [..., 2C+2] -> (k, v) and [..., C+2] -> q, each [..., heads, d]
  std::pair<torch::Tensor, torch::Tensor> keys_values(const torch::Tensor& key_input);
  torch::Tensor queries(const torch::Tensor& query_input);

  int64_t heads_;
  PointwiseGated key_unit_{nullptr}, query_unit_{nullptr}, out_unit_{nullptr};
  WeightNormLinear to_query_{nullptr}, to_key_{nullptr}, to_value_{nullptr};
  Dropout dropout_{nullptr};
};
TORCH_MODULE(CausalAttentionBlock);

}  // namespace vqvae2
