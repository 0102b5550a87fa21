#include "vqvae2/models/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace vqvae2 {

namespace nn = torch::nn;

torch::Tensor position_features(int64_t height, int64_t width, const torch::TensorOptions& options) {
  const auto rows = torch::arange(height, options).div(static_cast<double>(height)).sub(0.5);
  const auto cols = torch::arange(width, options).div(static_cast<double>(width)).sub(0.5);
  return torch::stack({rows.view({height, 1}).expand({height, width}), cols.view({1, width}).expand({height, width})});
}

torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               Dropout& dropout) {
  const auto batch = q.size(0), heads = q.size(1), n = q.size(2), d = q.size(3);
  const auto queries = q.reshape({-1, n, d}), keys = k.reshape({-1, n, d}), values = v.reshape({-1, n, d});
  const auto maps = queries.size(0);  // B·heads
  // The whole score tensor is [B·heads, N, N]: 256 MB at 32×32, 8 heads, batch 8, and every pass
  // over it (scaling, mask, softmax, dropout and their gradients) streams it through memory, while
  // its matrix products do only d = 16 multiply-adds per score. So the scores are made a block at a
  // time, about kBlockScores of them (4 MB), small enough to stay in cache from one pass to the
  // next: `rows` queries of `group` maps. A block of queries i0..i1-1 needs keys 0..i1-1 only, so the
  // blocks also skip most of the masked half above the diagonal. Each block's scores come from one
  // baddbmm, already scaled by 1/√d and masked (0 on and below the diagonal, -∞ above): neither the
  // scaling nor the mask costs a pass of its own, forward or backward.
  constexpr int64_t kBlockScores = int64_t{1} << 20;
  const auto rows = std::min<int64_t>(n, 256);
  const auto group = std::clamp<int64_t>(kBlockScores / (rows * n), 1, maps);
  const auto future = torch::full({n, n}, -std::numeric_limits<double>::infinity(), q.options()).triu(1);
  const double scale = 1 / std::sqrt(static_cast<double>(d));
  std::vector<torch::Tensor> groups;
  for (int64_t m0 = 0; m0 < maps; m0 += group) {
    const auto m = std::min(group, maps - m0);
    std::vector<torch::Tensor> blocks;
    for (int64_t i0 = 0; i0 < n; i0 += rows) {
      const auto i1 = std::min(n, i0 + rows);
      const auto past_values = values.narrow(0, m0, m).narrow(1, 0, i1);  // values 0..i1-1, [m, i1, d]
      const auto scores = torch::baddbmm(future.slice(0, i0, i1).slice(1, 0, i1),
                                         queries.narrow(0, m0, m).narrow(1, i0, i1 - i0),
                                         keys.narrow(0, m0, m).narrow(1, 0, i1).transpose(1, 2), /*beta=*/1, scale);
      blocks.push_back(torch::bmm(dropout(torch::softmax(scores, -1)), past_values));  // [m, i1-i0, d]
    }
    groups.push_back(torch::cat(blocks, 1));
  }
  return torch::cat(groups, 0).view({batch, heads, n, d});  // [B, h, N, d]
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
  dropout_ = register_module("dropout", Dropout(dropout));
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
