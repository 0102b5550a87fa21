#include "vqvae2/models/attention.h"

#include <cmath>

namespace vqvae2 {

namespace nn = torch::nn;

torch::Tensor position_features(int64_t height, int64_t width, const torch::TensorOptions& options) {
  const auto rows = torch::arange(height, options).div(static_cast<double>(height)).sub(0.5);
  const auto cols = torch::arange(width, options).div(static_cast<double>(width)).sub(0.5);
  return torch::stack({rows.view({height, 1}).expand({height, width}), cols.view({1, width}).expand({height, width})});
}

torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               nn::Dropout& dropout) {
  const auto n = q.size(2);
  const auto scores = torch::matmul(q, k.transpose(2, 3)) / std::sqrt(static_cast<double>(q.size(3)));  // [B, h, N, N]
  const auto future = torch::ones({n, n}, torch::TensorOptions().dtype(torch::kBool).device(q.device())).triu(1);
  const auto probabilities = torch::softmax(scores.masked_fill(future, -std::numeric_limits<float>::infinity()), -1);
  return torch::matmul(dropout(probabilities), v);  // [B, h, N, d]
}

CausalAttentionBlockImpl::CausalAttentionBlockImpl(int64_t channels, int64_t heads, double dropout, bool weight_norm)
    : heads_(heads) {
  const auto key_channels = 2 * channels + 2, query_channels = channels + 2, width = channels / 2;
  const bool wn = weight_norm;
  key_unit_ = register_module("key_unit", PointwiseGated(key_channels, channels, 0, dropout, wn));
  query_unit_ = register_module("query_unit", PointwiseGated(query_channels, channels, 0, dropout, wn));
  to_key_ = register_module("to_key", WeightNormLinear(key_channels, width, wn));
  to_value_ = register_module("to_value", WeightNormLinear(key_channels, width, wn));
  to_query_ = register_module("to_query", WeightNormLinear(query_channels, width, wn));
  out_unit_ = register_module("out_unit", PointwiseGated(channels, channels, width, dropout, wn));
  dropout_ = register_module("dropout", nn::Dropout(dropout));
}

std::pair<torch::Tensor, torch::Tensor> CausalAttentionBlockImpl::keys_values(const torch::Tensor& key_input) {
  auto shape = key_input.sizes().vec();
  shape.back() = heads_;
  shape.push_back(-1);
  const auto x = key_unit_(key_input);
  return {to_key_(x).view(shape), to_value_(x).view(shape)};
}

torch::Tensor CausalAttentionBlockImpl::queries(const torch::Tensor& query_input) {
  auto shape = query_input.sizes().vec();
  shape.back() = heads_;
  shape.push_back(-1);
  return to_query_(query_unit_(query_input)).view(shape);
}

torch::Tensor CausalAttentionBlockImpl::forward(const torch::Tensor& h, const torch::Tensor& block_input) {
  const auto batch = h.size(0), height = h.size(2), width = h.size(3), n = height * width;
  const auto position = position_features(height, width, h.options()).unsqueeze(0).expand({batch, 2, height, width});
  // Channels-last rows of positions: [B, C', H, W] -> [B, N, C'].
  const auto flat = [&](const torch::Tensor& map) { return map.flatten(2).transpose(1, 2); };
  const auto [k, v] = keys_values(flat(torch::cat({block_input, h, position}, 1)));  // [B, N, heads, d]
  const auto q = queries(flat(torch::cat({h, position}, 1)));
  const auto attended = causal_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), dropout_);
  // [B, heads, N, d] -> [B, N, heads·d] -> [B, C/2, H, W]
  const auto aux = attended.transpose(1, 2).reshape({batch, n, -1}).transpose(1, 2).reshape({batch, -1, height, width});
  return out_unit_(h, aux);
}

torch::Tensor CausalAttentionBlockImpl::position(const torch::Tensor& h, const torch::Tensor& block_input, int64_t i,
                                                 int64_t j, int64_t height, int64_t width, torch::Tensor& keys,
                                                 torch::Tensor& values) {
  const auto batch = h.size(0);
  const auto p = i * width + j;
  const auto position = position_features(height, width, h.options()).select(1, i).select(1, j).expand({batch, 2});
  const auto [k, v] = keys_values(torch::cat({block_input, h, position}, 1));  // [B, heads, d]
  keys.select(2, p).copy_(k);
  values.select(2, p).copy_(v);
  const auto q = queries(torch::cat({h, position}, 1)).unsqueeze(2);  // [B, heads, 1, d]
  // Attend to positions 0..p: the same as the masked row p of the full attention.
  const auto scores = torch::matmul(q, keys.slice(2, 0, p + 1).transpose(2, 3)) / std::sqrt(static_cast<double>(q.size(3)));
  const auto attended = torch::matmul(dropout_(torch::softmax(scores, -1)), values.slice(2, 0, p + 1));  // [B, heads, 1, d]
  return out_unit_(h, attended.reshape({batch, -1}));
}

}  // namespace vqvae2
