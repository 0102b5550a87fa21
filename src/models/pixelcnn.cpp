#include "vqvae2/models/pixelcnn.h"

#include "vqvae2/models/activation.h"
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

torch::Tensor shift_raster(const torch::Tensor& x) {
  const auto flat = x.flatten(2);  // [B, C, H·W] in raster order
  return torch::constant_pad_nd(flat, {1, 0}).slice(2, 0, flat.size(2)).view_as(x);
}

torch::Tensor embedding_map(torch::nn::Embedding& embedding, const torch::Tensor& codes) {
  // The lookup gives [B, H, W, C]; its permuted view has channels-last strides, and a convolution
  // keeps the layout of its input. A stack that starts channels-last drifts into a mix (the attention
  // blocks, the upsampling and the head hand back plain [B, C, H, W] maps): every sum of the two
  // layouts then runs strided, and every backward convolution copies its incoming gradient into the
  // layout of its input first. One layout throughout: the reference-width training steps ran 9% (top
  // prior) and 10% (bottom prior) faster than with the permuted view (`vqvae2 bench prior`, 2 threads,
  // AMD Zen 5, means of three runs each, taken in turn). Channels-last throughout the top prior was
  // slower (15.0 s a step against 13.2 s, one run each): there oneDNN's backward 256->512 3x5
  // convolution is the slower one (262 against 276 GFLOP/s, forward and backward together).
  return embedding(codes).permute({0, 3, 1, 2}).contiguous();
}

// ---- causal convolutions --------------------------------------------------------------------------

VerticalConvImpl::VerticalConvImpl(int64_t in, int64_t out, int64_t rows, int64_t width, bool weight_norm)
    : rows_(rows), width_(width), conv_(register_module("conv", WeightNormConv2d(in, out, rows, width, weight_norm))) {
  VQVAE2_CHECK(width % 2 == 1, "vertical convolution width must be odd, got {}", width);
}

torch::Tensor VerticalConvImpl::forward(const torch::Tensor& x) {
  // Pad rows-1 above and width/2 at each side: output (i, j) covers rows i-rows+1..i.
  return conv_(torch::constant_pad_nd(x, {width_ / 2, width_ / 2, rows_ - 1, 0}));
}

torch::Tensor VerticalConvImpl::forward_window(const torch::Tensor& window) {
  return conv_(window).squeeze(2);  // [B, in, rows, W+width-1] -> [B, out, 1, W] -> [B, out, W]
}

HorizontalConvImpl::HorizontalConvImpl(int64_t in, int64_t out, int64_t cols, bool weight_norm)
    : cols_(cols), conv_(register_module("conv", WeightNormConv2d(in, out, 1, cols, weight_norm))) {}

torch::Tensor HorizontalConvImpl::forward(const torch::Tensor& x) {
  return conv_(torch::constant_pad_nd(x, {cols_ - 1, 0, 0, 0}));  // output j covers columns j-cols+1..j
}

torch::Tensor HorizontalConvImpl::forward_window(const torch::Tensor& window) {
  // The convolution at one position is a matrix product with the flattened kernel [out, in·cols].
  const auto batch = window.size(0);
  const auto weight = conv_->weight();
  return torch::linear(window.reshape({batch, -1}), weight.reshape({weight.size(0), -1}), conv_->bias());
}

CausalConvImpl::CausalConvImpl(int64_t in, int64_t out, int64_t kernel, bool centre, bool weight_norm)
    : kernel_(kernel),
      cols_(kernel / 2 + (centre ? 1 : 0)),
      conv_(register_module("conv", WeightNormConv2d(in, out, kernel / 2 + 1, kernel, weight_norm))) {
  VQVAE2_CHECK(kernel >= 3 && kernel % 2 == 1, "causal convolution kernel must be odd and >= 3, got {}", kernel);
}

torch::Tensor CausalConvImpl::mask() const {
  const auto half = kernel_ / 2;
  auto m = torch::ones({1, 1, half + 1, kernel_}, conv_->direction().options());
  m.select(2, half).slice(2, cols_).zero_();  // the output row: nothing right of the centre (mask A: nor the centre)
  return m;
}

torch::Tensor CausalConvImpl::forward(const torch::Tensor& x) {
  const auto half = kernel_ / 2;
  return torch::conv2d(torch::constant_pad_nd(x, {half, half, half, 0}), conv_->weight(mask()), conv_->bias());
}

CausalConvImpl::State CausalConvImpl::begin(int64_t batch, int64_t width, const torch::TensorOptions& options) const {
  const auto half = kernel_ / 2;
  const auto w = conv_->weight(mask());  // [out, in, k/2+1, k]
  State s;
  s.window = torch::zeros({batch, w.size(1), half + 1, width + kernel_ - 1}, options);
  s.above_taps = w.slice(2, 0, half).contiguous();
  s.current_taps = w.select(2, half).slice(2, 0, cols_).reshape({w.size(0), -1}).contiguous();
  return s;
}

void CausalConvImpl::next_row(State& s) const {
  const auto half = kernel_ / 2;
  if (s.row >= 0) {  // the finished row joins the rows above; the new row starts empty
    s.window.slice(2, 0, half).copy_(s.window.slice(2, 1, half + 1).clone());
    s.window.select(2, half).zero_();
  }
  ++s.row;
  s.above = torch::conv2d(s.window.slice(2, 0, half), s.above_taps, conv_->bias()).squeeze(2);  // [B, out, W]
}

void CausalConvImpl::write(State& s, const torch::Tensor& input, int64_t j) const {
  s.window.select(2, kernel_ / 2).select(2, j + kernel_ / 2).copy_(input);  // column j sits after k/2 of padding
}

torch::Tensor CausalConvImpl::at(const State& s, int64_t j) const {
  // Input columns j-k/2 … j-k/2+cols-1 of the current row: padded columns j … j+cols-1.
  const auto row = s.window.select(2, kernel_ / 2).slice(2, j, j + cols_);  // [B, in, cols]
  return s.above.select(2, j) + torch::mm(row.reshape({row.size(0), -1}), s.current_taps.t());
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
  VQVAE2_CHECK(block == "gated-two-stream" || block == "pixelsnail",
               "prior: block must be gated-two-stream or pixelsnail, got '{}'", block);
  VQVAE2_CHECK(attention_every >= 0 && attention_every <= layers(),
               "prior: attention every {} gated layers, but the stack has only {} ({} x {}); use 0..{}",
               attention_every, layers(), blocks, res_blocks, layers());
  VQVAE2_CHECK(!attention || (heads >= 1 && heads <= 256 && (channels / 2) % heads == 0),
               "prior: attention width {} (channels/2) must be divisible by the {} heads", channels / 2, heads);
  VQVAE2_CHECK(dropout >= 0 && dropout < 1, "prior: dropout must be in [0, 1), got {}", dropout);
  VQVAE2_CHECK(out_res_blocks >= 0 && out_res_blocks <= 64 && condition_channels >= 0 && condition_channels <= 8192,
               "prior: output blocks must be in [0, 64] and condition channels in [0, 8192] (got {}, {})",
               out_res_blocks, condition_channels);
}

// ---- two-stream gated layer ---------------------------------------------------------------------

GatedLayerImpl::GatedLayerImpl(const GatedPixelCNNOptions& o) : channels_(o.channels), res_channels_(o.res_channels) {
  const auto rows = o.kernel / 2 + 1, cols = o.kernel / 2 + 1;
  const bool wn = o.weight_norm;
  v_conv1_ = register_module("v_conv1", VerticalConv(o.channels, o.res_channels, rows, o.kernel, wn));
  v_conv2_ = register_module("v_conv2", VerticalConv(o.res_channels, 2 * o.channels, rows, o.kernel, wn));
  h_conv1_ = register_module("h_conv1", HorizontalConv(o.channels, o.res_channels, cols, wn));
  h_conv2_ = register_module("h_conv2", WeightNormConv2d(o.res_channels, 2 * o.channels, 1, 1, wn));
  link_ = register_module("link", WeightNormConv2d(o.channels, 2 * o.channels, 1, 1, wn));
  if (o.condition_channels > 0) {
    v_condition_ = register_module("v_condition",
                                   WeightNormConv2d(o.condition_channels, 2 * o.channels, 1, 1, wn, /*bias=*/false));
    h_condition_ = register_module("h_condition",
                                   WeightNormConv2d(o.condition_channels, 2 * o.channels, 1, 1, wn, /*bias=*/false));
  }
  dropout_ = register_module("dropout", Dropout(o.dropout));
}

std::pair<torch::Tensor, torch::Tensor> GatedLayerImpl::forward(const torch::Tensor& v, const torch::Tensor& h,
                                                                const torch::Tensor& condition) {
  // V' = V + gate(conv_v2(dropout(elu(conv_v1(elu(V))))) + cond_v(c))
  auto b = v_conv2_(dropout_(vqvae2::elu(v_conv1_(vqvae2::elu(v)))));
  if (v_condition_) b = b + v_condition_(condition);
  const auto v_next = v + gate(b);
  // H' = H + gate(conv_h2(dropout(elu(conv_h1(elu(H))))) + link(elu(V')) + cond_h(c))
  auto d = h_conv2_(dropout_(vqvae2::elu(h_conv1_(vqvae2::elu(h))))) + link_(vqvae2::elu(v_next));
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

torch::Tensor pointwise_conv(WeightNormConv2d& conv, const torch::Tensor& row) {
  return conv(row.unsqueeze(2)).squeeze(2);  // [B, C, W] -> [B, C', W]
}

}  // namespace

torch::Tensor GatedLayerImpl::row(State& s, const torch::Tensor& v_row, const torch::Tensor& condition_row) {
  push_row(s.v1_window, vqvae2::elu(v_row));
  push_row(s.v2_window, dropout_(vqvae2::elu(v_conv1_->forward_window(s.v1_window))));
  auto b = v_conv2_->forward_window(s.v2_window);
  if (v_condition_) b = b + pointwise_conv(v_condition_, condition_row);
  const auto v_next = v_row + gate(b);
  s.row_extra = pointwise_conv(link_, vqvae2::elu(v_next));
  if (h_condition_) s.row_extra = s.row_extra + pointwise_conv(h_condition_, condition_row);
  s.h1_row.zero_();
  return v_next;
}

torch::Tensor GatedLayerImpl::position(State& s, const torch::Tensor& h, int64_t j) {
  const auto cols = h_conv1_->cols();
  s.h1_row.select(2, j + cols - 1).copy_(vqvae2::elu(h));
  const auto a = dropout_(vqvae2::elu(h_conv1_->forward_window(s.h1_row.slice(2, j, j + cols))));  // [B, Cr]
  const auto d = torch::linear(a, h_conv2_->weight().flatten(1), h_conv2_->bias()) + s.row_extra.select(2, j);
  return h + gate(d);
}

// ---- PixelSNAIL gated residual block -----------------------------------------------------------

SnailLayerImpl::SnailLayerImpl(const GatedPixelCNNOptions& o) {
  const bool wn = o.weight_norm;
  conv1_ = register_module("conv1", CausalConv(o.channels, o.res_channels, o.kernel, /*centre=*/true, wn));
  conv2_ = register_module("conv2", CausalConv(o.res_channels, 2 * o.channels, o.kernel, /*centre=*/true, wn));
  if (o.condition_channels > 0) {
    condition_ = register_module("condition",
                                 WeightNormConv2d(o.condition_channels, 2 * o.channels, 1, 1, wn, /*bias=*/false));
  }
  dropout_ = register_module("dropout", Dropout(o.dropout));
}

torch::Tensor SnailLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& condition) {
  // X' = X + gate(conv2(dropout(elu(conv1(elu(X))))) + cond(c))
  auto b = conv2_(dropout_(vqvae2::elu(conv1_(vqvae2::elu(x)))));
  if (condition_) b = b + condition_(condition);
  return x + gate(b);
}

SnailLayerImpl::State SnailLayerImpl::begin(int64_t batch, int64_t width, const torch::TensorOptions& options) const {
  return {conv1_->begin(batch, width, options), conv2_->begin(batch, width, options), {}};
}

void SnailLayerImpl::next_row(State& s, const torch::Tensor& condition_row) {
  conv1_->next_row(s.conv1);
  conv2_->next_row(s.conv2);
  if (condition_) s.condition_row = pointwise_conv(condition_, condition_row);
}

torch::Tensor SnailLayerImpl::position(State& s, const torch::Tensor& x, int64_t j) {
  conv1_->write(s.conv1, vqvae2::elu(x), j);
  conv2_->write(s.conv2, dropout_(vqvae2::elu(conv1_->at(s.conv1, j))), j);
  auto b = conv2_->at(s.conv2, j);
  if (condition_) b = b + s.condition_row.select(2, j);
  return x + gate(b);
}

// ---- the stack ----------------------------------------------------------------------------------

GatedPixelCNNImpl::GatedPixelCNNImpl(const GatedPixelCNNOptions& options) : options_(options) {
  options_.validate();
  const auto& o = options_;
  const bool wn = o.weight_norm;
  embedding_ = register_module("embedding", nn::Embedding(o.codes, o.channels));
  if (o.pixelsnail()) {
    input_ = register_module("input", CausalConv(o.channels, o.channels, o.kernel, /*centre=*/false, wn));
    for (int64_t l = 0; l < o.layers(); ++l) {
      snail_layers_.push_back(register_module("layer" + std::to_string(l), SnailLayer(o)));
    }
  } else {
    v_input_ = register_module("v_input", VerticalConv(o.channels, o.channels, o.kernel / 2 + 1, o.kernel, wn));
    h_input_ = register_module("h_input", HorizontalConv(o.channels, o.channels, o.kernel / 2 + 1, wn));
    for (int64_t l = 0; l < o.layers(); ++l) {
      layers_.push_back(register_module("layer" + std::to_string(l), GatedLayer(o)));
    }
  }
  for (int64_t b = 0; b < o.attention_blocks(); ++b) {
    attention_.push_back(register_module(
        "attention" + std::to_string(b), std::make_shared<CausalAttentionBlockImpl>(o.channels, o.heads, o.dropout, wn)));
  }
  for (int64_t b = 0; b < o.out_res_blocks; ++b) {
    head_.push_back(
        register_module("head" + std::to_string(b), PointwiseGated(o.channels, o.channels, 0, o.dropout, wn)));
  }
  logits_ = register_module("logits", WeightNormLinear(o.channels, o.codes, wn));
}

torch::Tensor GatedPixelCNNImpl::embed(const torch::Tensor& codes) {
  VQVAE2_CHECK(codes.dim() == 3, "prior input must be codes [B, H, W], got {}", shape_of(codes.sizes()));
  return embedding_map(embedding_, codes);
}

torch::Tensor GatedPixelCNNImpl::forward(const torch::Tensor& codes, const torch::Tensor& condition) {
  return forward_embedded(embed(codes), condition);
}

torch::Tensor GatedPixelCNNImpl::head(const torch::Tensor& h) {
  auto x = h;
  for (auto& unit : head_) x = unit->forward(x);
  const auto logits = [&](const torch::Tensor& y) { return logits_(vqvae2::elu(y)); };
  return x.dim() == 4 ? over_channels(x, logits) : logits(x);
}

torch::Tensor GatedPixelCNNImpl::forward_embedded(const torch::Tensor& e, const torch::Tensor& condition) {
  VQVAE2_CHECK(condition.defined() == (options_.condition_channels > 0),
               "this prior {} a conditioning map", options_.condition_channels > 0 ? "needs" : "takes no");
  torch::Tensor h, v, block_input;
  if (options_.pixelsnail()) {
    h = input_(e);  // the input convolution stops short of (i, j): nothing after it sees its own code
    // Every attention block's keys see the codes themselves, each at the position after its own, so
    // (i, j) reads every code before it — the blind spot of the convolutions included.
    block_input = shift_raster(e);
  } else {
    // V sees rows < i, H sees rows < i and columns < j of row i: shift before the first convolution.
    v = v_input_(shift_down(e));
    h = h_input_(shift_right(e)) + v;
    block_input = h;  // the keys of each attention block see the features its group started from
  }
  for (int64_t l = 0; l < options_.layers(); ++l) {
    if (options_.pixelsnail()) {
      h = snail_layers_[l]->forward(h, condition);
    } else {
      std::tie(v, h) = layers_[l]->forward(v, h, condition);  // V's gradient comes from convolutions alone
    }
    h = with_contiguous_gradient(h);
    if (options_.attention_after(l)) {
      h = attention_[(l + 1) / options_.attention_period() - 1]->forward(h, block_input);
      if (!options_.pixelsnail()) block_input = h;
    }
  }
  return head(h);
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
  if (options_.pixelsnail()) {
    s.previous_embedding = torch::zeros({batch, options_.channels}, options);
    s.input = input_->begin(batch, width, options);
    for (const auto& layer : snail_layers_) s.snail_layers.push_back(layer->begin(batch, width, options));
  } else {
    s.embed_window = torch::zeros({batch, options_.channels, v_input_->rows(), width + v_input_->width() - 1}, options);
    s.embed_row = torch::zeros({batch, options_.channels, width + h_input_->cols()}, options);
    for (const auto& layer : layers_) s.layers.push_back(layer->begin(batch, width, options));
  }
  for (size_t b = 0; b < attention_.size(); ++b) {
    const auto d = options_.channels / 2 / options_.heads;
    s.keys.push_back(torch::zeros({batch, options_.heads, height * width, d}, options));
    s.values.push_back(torch::zeros({batch, options_.heads, height * width, d}, options));
  }
  return s;
}

void GatedPixelCNNImpl::begin_row(State& s, int64_t i) {
  const auto condition_row = s.condition.defined() ? s.condition.select(2, i) : torch::Tensor();
  if (options_.pixelsnail()) {
    input_->next_row(s.input);
    for (size_t l = 0; l < snail_layers_.size(); ++l) snail_layers_[l]->next_row(s.snail_layers[l], condition_row);
    return;
  }
  const auto cols = h_input_->cols();
  // The vertical input of row i is the embedding of row i-1 (shift_down): move it into the window.
  if (i > 0) push_row(s.embed_window, s.embed_row.slice(2, cols, cols + s.width));
  s.embed_row.zero_();
  s.v_input_row = v_input_->forward_window(s.embed_window);
  auto v = s.v_input_row;
  for (size_t l = 0; l < layers_.size(); ++l) v = layers_[l]->row(s.layers[l], v, condition_row);
}

torch::Tensor GatedPixelCNNImpl::logits_at(State& s, int64_t i, int64_t j) {
  torch::Tensor h, block_input;
  if (options_.pixelsnail()) {
    h = input_->at(s.input, j);
    block_input = s.previous_embedding;  // shift_raster: the code before (i, j)
  } else {
    const auto cols = h_input_->cols();
    // shift_right: H's input at column j is the embedding of columns j-cols … j-1.
    h = h_input_->forward_window(s.embed_row.slice(2, j, j + cols)) + s.v_input_row.select(2, j);
    block_input = h;
  }
  for (int64_t l = 0; l < options_.layers(); ++l) {
    h = options_.pixelsnail() ? snail_layers_[l]->position(s.snail_layers[l], h, j)
                              : layers_[l]->position(s.layers[l], h, j);
    if (options_.attention_after(l)) {
      const auto b = (l + 1) / options_.attention_period() - 1;
      h = attention_[b]->position(h, block_input, i, j, s.height, s.width, s.keys[b], s.values[b]);
      if (!options_.pixelsnail()) block_input = h;
    }
  }
  return head(h);
}

void GatedPixelCNNImpl::commit(State& s, int64_t, int64_t j, const torch::Tensor& codes) {
  if (options_.pixelsnail()) {
    s.previous_embedding = embedding_(codes);
    input_->write(s.input, s.previous_embedding, j);
  } else {
    s.embed_row.select(2, h_input_->cols() + j).copy_(embedding_(codes));
  }
}

}  // namespace vqvae2
