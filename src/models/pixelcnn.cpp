#include "vqvae2/models/pixelcnn.h"

#include "vqvae2/models/attention.h"
#include "vqvae2/models/gated.h"
#include "vqvae2/core/error.h"

namespace vqvae2 {

namespace nn = torch::nn;
namespace F = torch::nn::functional;

torch::Tensor shift_down(const torch::Tensor& x) {
  return torch::constant_pad_nd(x, {0, 0, 1, 0}).slice(2, 0, x.size(2));
}

torch::Tensor shift_right(const torch::Tensor& x) {
  return torch::constant_pad_nd(x, {1, 0, 0, 0}).slice(3, 0, x.size(3));
}

// ---- causal convolutions --------------------------------------------------------------------------

VerticalConvImpl::VerticalConvImpl(int64_t in, int64_t out, int64_t rows, int64_t width)
    : rows_(rows),
      width_(width),
      conv_(register_module("conv", nn::Conv2d(nn::Conv2dOptions(in, out, {rows, width})))) {
  VQVAE2_CHECK(width % 2 == 1, "vertical convolution width must be odd, got {}", width);
}

torch::Tensor VerticalConvImpl::forward(const torch::Tensor& x) {
  // Pad rows-1 above and width/2 at each side: output (i, j) covers rows i-rows+1..i.
  return conv_(torch::constant_pad_nd(x, {width_ / 2, width_ / 2, rows_ - 1, 0}));
}

torch::Tensor VerticalConvImpl::forward_window(const torch::Tensor& window) {
  return conv_(window).squeeze(2);  // [B, in, rows, W+width-1] -> [B, out, 1, W] -> [B, out, W]
}

HorizontalConvImpl::HorizontalConvImpl(int64_t in, int64_t out, int64_t cols)
    : cols_(cols), conv_(register_module("conv", nn::Conv2d(nn::Conv2dOptions(in, out, {1, cols})))) {}

torch::Tensor HorizontalConvImpl::forward(const torch::Tensor& x) {
  return conv_(torch::constant_pad_nd(x, {cols_ - 1, 0, 0, 0}));  // output j covers columns j-cols+1..j
}

torch::Tensor HorizontalConvImpl::forward_window(const torch::Tensor& window) {
  // The convolution at one position is a matrix product with the flattened kernel [out, in·cols].
  const auto batch = window.size(0);
  return torch::linear(window.reshape({batch, -1}), conv_->weight.reshape({conv_->weight.size(0), -1}), conv_->bias);
}

// ---- options ------------------------------------------------------------------------------------

void GatedPixelCNNOptions::validate() const {
  VQVAE2_CHECK(codes >= 2 && codes <= 65536, "prior: K must be in [2, 65536], got {}", codes);
  VQVAE2_CHECK(channels >= 2 && channels <= 8192 && channels % 2 == 0,
               "prior: channels must be an even number in [2, 8192], got {}", channels);
  VQVAE2_CHECK(res_channels >= 1 && res_channels <= 8192, "prior: residual channels must be in [1, 8192], got {}",
               res_channels);
  VQVAE2_CHECK(kernel >= 3 && kernel <= 63 && kernel % 2 == 1, "prior: kernel must be odd, in [3, 63], got {}", kernel);
  VQVAE2_CHECK(blocks >= 1 && res_blocks >= 1 && blocks * res_blocks <= 1024,
               "prior: blocks and residual blocks must be positive, at most 1024 layers (got {} x {})", blocks,
               res_blocks);
  VQVAE2_CHECK(!attention || (heads >= 1 && heads <= 256 && (channels / 2) % heads == 0),
               "prior: attention width {} (channels/2) must be divisible by the {} heads", channels / 2, heads);
  VQVAE2_CHECK(dropout >= 0 && dropout < 1, "prior: dropout must be in [0, 1), got {}", dropout);
  VQVAE2_CHECK(out_res_blocks >= 0 && out_res_blocks <= 64 && condition_channels >= 0 && condition_channels <= 8192,
               "prior: output blocks must be in [0, 64] and condition channels in [0, 8192] (got {}, {})",
               out_res_blocks, condition_channels);
}

// ---- gated layer --------------------------------------------------------------------------------

GatedLayerImpl::GatedLayerImpl(const GatedPixelCNNOptions& o) : channels_(o.channels), res_channels_(o.res_channels) {
  const auto rows = o.kernel / 2 + 1, cols = o.kernel / 2 + 1;
  v_conv1_ = register_module("v_conv1", VerticalConv(o.channels, o.res_channels, rows, o.kernel));
  v_conv2_ = register_module("v_conv2", VerticalConv(o.res_channels, 2 * o.channels, rows, o.kernel));
  h_conv1_ = register_module("h_conv1", HorizontalConv(o.channels, o.res_channels, cols));
  h_conv2_ = register_module("h_conv2", nn::Conv2d(nn::Conv2dOptions(o.res_channels, 2 * o.channels, 1)));
  link_ = register_module("link", nn::Conv2d(nn::Conv2dOptions(o.channels, 2 * o.channels, 1)));
  if (o.condition_channels > 0) {
    v_condition_ = register_module(
        "v_condition", nn::Conv2d(nn::Conv2dOptions(o.condition_channels, 2 * o.channels, 1).bias(false)));
    h_condition_ = register_module(
        "h_condition", nn::Conv2d(nn::Conv2dOptions(o.condition_channels, 2 * o.channels, 1).bias(false)));
  }
  dropout_ = register_module("dropout", nn::Dropout(o.dropout));
}

std::pair<torch::Tensor, torch::Tensor> GatedLayerImpl::forward(const torch::Tensor& v, const torch::Tensor& h,
                                                                const torch::Tensor& condition) {
  // V' = V + gate(conv_v2(dropout(elu(conv_v1(elu(V))))) + cond_v(c))
  auto b = v_conv2_(dropout_(torch::elu(v_conv1_(torch::elu(v)))));
  if (v_condition_) b = b + v_condition_(condition);
  const auto v_next = v + gate(b);
  // H' = H + gate(conv_h2(dropout(elu(conv_h1(elu(H))))) + link(elu(V')) + cond_h(c))
  auto d = h_conv2_(dropout_(torch::elu(h_conv1_(torch::elu(h))))) + link_(torch::elu(v_next));
  if (h_condition_) d = d + h_condition_(condition);
  return {v_next, h + gate(d)};
}

GatedLayerImpl::State GatedLayerImpl::begin(int64_t batch, int64_t width, const torch::TensorOptions& options) const {
  State s;
  const auto rows = v_conv1_->rows(), pad = v_conv1_->width() - 1, cols = h_conv1_->cols();
  s.v1_window = torch::zeros({batch, channels_, rows, width + pad}, options);
  s.v2_window = torch::zeros({batch, res_channels_, rows, width + pad}, options);
  s.h1_row = torch::zeros({batch, channels_, width + cols - 1}, options);
  return s;
}

namespace {

// Moves a row window up by one row and writes `row` [B, C, W] as its last row, between the side padding.
void push_row(torch::Tensor& window, const torch::Tensor& row) {
  const auto rows = window.size(2);
  if (rows > 1) window.slice(2, 0, rows - 1).copy_(window.slice(2, 1, rows).clone());
  const auto pad = (window.size(3) - row.size(2)) / 2;
  window.select(2, rows - 1).slice(2, pad, pad + row.size(2)).copy_(row);
}

torch::Tensor pointwise_conv(nn::Conv2d& conv, const torch::Tensor& row) {
  return conv(row.unsqueeze(2)).squeeze(2);  // [B, C, W] -> [B, C', W]
}

}  // namespace

torch::Tensor GatedLayerImpl::row(State& s, const torch::Tensor& v_row, const torch::Tensor& condition_row) {
  push_row(s.v1_window, torch::elu(v_row));
  push_row(s.v2_window, dropout_(torch::elu(v_conv1_->forward_window(s.v1_window))));
  auto b = v_conv2_->forward_window(s.v2_window);
  if (v_condition_) b = b + pointwise_conv(v_condition_, condition_row);
  const auto v_next = v_row + gate(b);
  s.row_extra = pointwise_conv(link_, torch::elu(v_next));
  if (h_condition_) s.row_extra = s.row_extra + pointwise_conv(h_condition_, condition_row);
  s.h1_row.zero_();
  return v_next;
}

torch::Tensor GatedLayerImpl::position(State& s, const torch::Tensor& h, int64_t j) {
  const auto cols = h_conv1_->cols();
  s.h1_row.select(2, j + cols - 1).copy_(torch::elu(h));
  const auto a = dropout_(torch::elu(h_conv1_->forward_window(s.h1_row.slice(2, j, j + cols))));  // [B, Cr]
  const auto d = torch::linear(a, h_conv2_->weight.flatten(1), h_conv2_->bias) + s.row_extra.select(2, j);
  return h + gate(d);
}

// ---- the stack ----------------------------------------------------------------------------------

GatedPixelCNNImpl::GatedPixelCNNImpl(const GatedPixelCNNOptions& options) : options_(options) {
  options_.validate();
  const auto& o = options_;
  embedding_ = register_module("embedding", nn::Embedding(o.codes, o.channels));
  v_input_ = register_module("v_input", VerticalConv(o.channels, o.channels, o.kernel / 2 + 1, o.kernel));
  h_input_ = register_module("h_input", HorizontalConv(o.channels, o.channels, o.kernel / 2 + 1));
  for (int64_t l = 0; l < o.layers(); ++l) {
    layers_.push_back(register_module("layer" + std::to_string(l), GatedLayer(o)));
  }
  if (o.attention) {
    for (int64_t b = 0; b < o.blocks; ++b) {
      attention_.push_back(register_module("attention" + std::to_string(b),
                                           std::make_shared<CausalAttentionBlockImpl>(o.channels, o.heads, o.dropout)));
    }
  }
  for (int64_t b = 0; b < o.out_res_blocks; ++b) {
    head_.push_back(register_module("head" + std::to_string(b), PointwiseGated(o.channels, o.channels, 0, o.dropout)));
  }
  logits_ = register_module("logits", nn::Linear(o.channels, o.codes));
}

torch::Tensor GatedPixelCNNImpl::embed(const torch::Tensor& codes) {
  VQVAE2_CHECK(codes.dim() == 3, "prior input must be codes [B, H, W], got {}", shape_of(codes.sizes()));
  return embedding_(codes).permute({0, 3, 1, 2});  // [B, H, W, C] -> [B, C, H, W]
}

torch::Tensor GatedPixelCNNImpl::forward(const torch::Tensor& codes, const torch::Tensor& condition) {
  return forward_embedded(embed(codes), condition);
}

torch::Tensor GatedPixelCNNImpl::forward_embedded(const torch::Tensor& e, const torch::Tensor& condition) {
  VQVAE2_CHECK(condition.defined() == (options_.condition_channels > 0),
               "this prior {} a conditioning map", options_.condition_channels > 0 ? "needs" : "takes no");
  // V sees rows < i, H sees rows < i and columns < j of row i: shift before the first convolution.
  auto v = v_input_(shift_down(e));
  auto h = h_input_(shift_right(e)) + v;
  auto block_input = h;
  for (size_t l = 0; l < layers_.size(); ++l) {
    std::tie(v, h) = layers_[l]->forward(v, h, condition);
    if (!attention_.empty() && (l + 1) % options_.res_blocks == 0) {
      h = attention_[l / options_.res_blocks]->forward(h, block_input);
      block_input = h;
    }
  }
  for (auto& unit : head_) h = unit->forward(h);
  return over_channels(h, [&](const torch::Tensor& x) { return logits_(torch::elu(x)); });
}

GatedPixelCNNImpl::State GatedPixelCNNImpl::begin(int64_t batch, int64_t height, int64_t width,
                                                  const torch::Tensor& condition) const {
  VQVAE2_CHECK(condition.defined() == (options_.condition_channels > 0),
               "this prior {} a conditioning map", options_.condition_channels > 0 ? "needs" : "takes no");
  const auto options = embedding_->weight.options();
  State s;
  s.batch = batch;
  s.height = height;
  s.width = width;
  s.condition = condition;
  s.embed_window = torch::zeros({batch, options_.channels, v_input_->rows(), width + v_input_->width() - 1}, options);
  s.embed_row = torch::zeros({batch, options_.channels, width + h_input_->cols()}, options);
  for (const auto& layer : layers_) s.layers.push_back(layer->begin(batch, width, options));
  for (size_t b = 0; b < attention_.size(); ++b) {
    const auto d = options_.channels / 2 / options_.heads;
    s.keys.push_back(torch::zeros({batch, options_.heads, height * width, d}, options));
    s.values.push_back(torch::zeros({batch, options_.heads, height * width, d}, options));
  }
  return s;
}

void GatedPixelCNNImpl::begin_row(State& s, int64_t i) {
  const auto cols = h_input_->cols();
  // The vertical input of row i is the embedding of row i-1 (shift_down): move it into the window.
  if (i > 0) push_row(s.embed_window, s.embed_row.slice(2, cols, cols + s.width));
  s.embed_row.zero_();
  s.v_input_row = v_input_->forward_window(s.embed_window);
  const auto condition_row = s.condition.defined() ? s.condition.select(2, i) : torch::Tensor();
  auto v = s.v_input_row;
  for (size_t l = 0; l < layers_.size(); ++l) v = layers_[l]->row(s.layers[l], v, condition_row);
}

torch::Tensor GatedPixelCNNImpl::logits_at(State& s, int64_t i, int64_t j) {
  const auto cols = h_input_->cols();
  // shift_right: H's input at column j is the embedding of columns j-cols … j-1.
  auto h = h_input_->forward_window(s.embed_row.slice(2, j, j + cols)) + s.v_input_row.select(2, j);
  auto block_input = h;
  for (size_t l = 0; l < layers_.size(); ++l) {
    h = layers_[l]->position(s.layers[l], h, j);
    if (!attention_.empty() && (l + 1) % options_.res_blocks == 0) {
      const auto b = l / options_.res_blocks;
      h = attention_[b]->position(h, block_input, i, j, s.height, s.width, s.keys[b], s.values[b]);
      block_input = h;
    }
  }
  for (auto& unit : head_) h = unit->forward(h);
  return logits_(torch::elu(h));
}

void GatedPixelCNNImpl::commit(State& s, int64_t, int64_t j, const torch::Tensor& codes) {
  s.embed_row.select(2, h_input_->cols() + j).copy_(embedding_(codes));
}

}  // namespace vqvae2
