// The causal stack every prior uses, in two forms:
//   "gated-two-stream"  the gated PixelCNN of van den Oord et al. 2016;
//   "pixelsnail"        PixelSNAIL's single-stream gated residual blocks (Chen et al. 2018).
// Either may interleave causal self-attention (attention.h) and weight-normalise every layer.
//
// Glossary: B = batch, K = codes, C = channels of the stack, Cr = width inside a gated unit,
// Cc = channels of the conditioning map, H, W = map height and width, (i, j) = row and column,
// k = kernel size (odd), k/2 = integer half.
//
// Causality (MISSION.md §1.4): the logits at (i, j) may depend only on codes before (i, j) in
// raster order.
//
// Two streams guarantee it without a blind spot:
//   vertical   V[i]    sees the codes of rows < i           ((k/2+1)×k convolutions over rows ≤ i of V)
//   horizontal H[i, j] sees rows < i and row i, columns < j (a 1×(k/2+1) convolution over columns ≤ j of H,
//                                                          plus V[i, j] through a 1×1 link)
// Gated residual unit: y = x + tanh(a) ⊙ σ(b), [a, b] = conv2(dropout(elu(conv1(elu(x))))) + extra.
// In the vertical unit both convolutions are (k/2+1)×k; in the horizontal unit conv1 is 1×(k/2+1) and
// conv2 is 1×1, as in van den Oord et al.'s horizontal stack. The horizontal unit is the part the
// cached sampler runs once per code, so its weights are kept small enough to stay in cache.
//
// PixelSNAIL keeps one stream X and makes a k×k convolution causal by cutting its kernel at the
// current position (CausalConv): output (i, j) sees rows i-k/2 … i-1 over columns j-k/2 … j+k/2,
// and row i over columns j-k/2 … j (the input convolution stops at j-1, so no output sees its own
// code). Its gated residual block
//   X' = X + gate(conv2(dropout(elu(conv1(elu(X))))) + cond(c)),  conv1, conv2 causal k×k,
// reaches 2·(k/2) rows further up and 2·(k/2) columns further left per layer (the two-stream layer:
// as far up, but only k/2 columns left). It has the classic blind spot above and to the right of
// (i, j). As in PixelSNAIL, the attention blocks cover it: their keys and values see the code
// embeddings themselves (each one position late in raster order, so (i, j) reads codes before it only).
//
// Every layer also has an incremental form used by the cached sampler (sampler.h), which computes the
// same function as forward() one position at a time: what the rows above contribute is computed once
// per row from a window of them, what the current row contributes once per position from the row so far.
#pragma once

#include "vqvae2/models/dropout.h"
#include "vqvae2/models/gated.h"
#include "vqvae2/models/weight_norm.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <string>
#include <vector>

namespace vqvae2 {

// A convolution over rows i-rows+1 … i and columns j-width/2 … j+width/2 (zero padding above and
// at the sides): output row i never sees input rows below i.
class VerticalConvImpl : public torch::nn::Module {
 public:
  VerticalConvImpl(int64_t in, int64_t out, int64_t rows, int64_t width, bool weight_norm = false);
  torch::Tensor forward(const torch::Tensor& x);  // [B, in, H, W] -> [B, out, H, W]
  // One output row from `window` [B, in, rows, W + width-1]: the last `rows` input rows, padded.
  torch::Tensor forward_window(const torch::Tensor& window);  // -> [B, out, W]
  int64_t rows() const { return rows_; }
  int64_t width() const { return width_; }

 private:
  int64_t rows_, width_;
  WeightNormConv2d conv_{nullptr};
};
TORCH_MODULE(VerticalConv);

// A convolution over columns j-cols+1 … j of the same row: output column j never sees input
// columns right of j.
class HorizontalConvImpl : public torch::nn::Module {
 public:
  HorizontalConvImpl(int64_t in, int64_t out, int64_t cols, bool weight_norm = false);
  torch::Tensor forward(const torch::Tensor& x);  // [B, in, H, W] -> [B, out, H, W]
  // One output position from `window` [B, in, cols]: input columns j-cols+1 … j.
  torch::Tensor forward_window(const torch::Tensor& window);  // -> [B, out]
  int64_t cols() const { return cols_; }

 private:
  int64_t cols_;
  WeightNormConv2d conv_{nullptr};
};
TORCH_MODULE(HorizontalConv);

// A k×k convolution made causal: its kernel is the (k/2+1)×k block above and at the output row,
// with the taps right of the centre (and the centre itself unless `centre`) cut away:
//   y(i, j) = b + Σ_{r<k/2, c<k} w[r, c] x(i-k/2+r, j-k/2+c) + Σ_{c<cols} w[k/2, c] x(i, j-k/2+c),
// cols = k/2+1 with the centre (PixelCNN's mask B), k/2 without (mask A, for the first layer).
class CausalConvImpl : public torch::nn::Module {
 public:
  CausalConvImpl(int64_t in, int64_t out, int64_t kernel, bool centre, bool weight_norm = false);
  torch::Tensor forward(const torch::Tensor& x);  // [B, in, H, W] -> [B, out, H, W]

  // Incremental form, for one B×W row after another.
  struct State {
    int64_t row = -1;            // the row being computed
    torch::Tensor window;        // [B, in, k/2+1, W + k-1]: rows i-k/2 … i-1, then row i so far (zero padded)
    torch::Tensor above;         // [B, out, W]: b + what rows i-k/2 … i-1 contribute to row i
    torch::Tensor above_taps;    // [out, in, k/2, k]
    torch::Tensor current_taps;  // [out, in·cols]: the output row's own taps, flattened
  };
  State begin(int64_t batch, int64_t width, const torch::TensorOptions& options) const;
  // Moves on to the next row (the first call: row 0) and computes its `above`.
  void next_row(State& state) const;
  // Records input column j [B, in] of the current row.
  void write(State& state, const torch::Tensor& input, int64_t j) const;
  // Output column j [B, out] of the current row from the inputs recorded so far.
  torch::Tensor at(const State& state, int64_t j) const;

  int64_t kernel() const { return kernel_; }
  int64_t cols() const { return cols_; }

 private:
  torch::Tensor mask() const;  // [1, 1, k/2+1, k] 0/1

  int64_t kernel_, cols_;
  WeightNormConv2d conv_{nullptr};
};
TORCH_MODULE(CausalConv);

// [B, C, H, W] -> the same map moved down one row (row 0 zero) / right one column (column 0 zero) /
// on by one position in raster order (position (0, 0) zero, (i, 0) gets (i-1, W-1)).
torch::Tensor shift_down(const torch::Tensor& x);
torch::Tensor shift_right(const torch::Tensor& x);
torch::Tensor shift_raster(const torch::Tensor& x);

// codes [B, H, W] -> their embeddings as a contiguous [B, C, H, W] map, the layout every convolution
// of the priors works in.
torch::Tensor embedding_map(torch::nn::Embedding& embedding, const torch::Tensor& codes);

struct GatedPixelCNNOptions {
  int64_t codes = 512;               // K: input and output classes
  int64_t channels = 256;            // C
  int64_t res_channels = 256;        // Cr
  int64_t kernel = 5;                // k (odd)
  int64_t blocks = 4;                // groups of gated layers
  int64_t res_blocks = 4;            // gated layers per group: blocks × res_blocks layers in all
  bool attention = true;             // PixelSNAIL: causal multi-head self-attention within the stack
  int64_t attention_every = 0;       // gated layers before each attention block (0 = res_blocks: one closes each group)
  int64_t heads = 8;                 // attention heads
  double dropout = 0.1;
  int64_t out_res_blocks = 1;        // 1×1 gated units between the stack and the logits
  int64_t condition_channels = 0;    // Cc: channels of the conditioning map entering every layer (0 = none);
                                     // a Prior sets it from its conditioning stack, so it is not stored
  std::string block = "gated-two-stream";  // or "pixelsnail" (absent from old checkpoints: two-stream)
  bool weight_norm = false;          // w = g·v/‖v‖ in every convolution and linear layer

  int64_t layers() const { return blocks * res_blocks; }
  int64_t attention_period() const { return attention_every > 0 ? attention_every : res_blocks; }
  // Attention blocks in the stack, and whether one follows gated layer `layer` (0-based).
  int64_t attention_blocks() const { return attention ? layers() / attention_period() : 0; }
  bool attention_after(int64_t layer) const { return attention && (layer + 1) % attention_period() == 0; }
  bool pixelsnail() const { return block == "pixelsnail"; }
  void validate() const;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(GatedPixelCNNOptions, codes, channels, res_channels, kernel, blocks,
                                                res_blocks, attention, attention_every, heads, dropout, out_res_blocks,
                                                block, weight_norm)

class CausalAttentionBlockImpl;

// One two-stream gated layer: a vertical unit, then a horizontal unit that also sees the new vertical
// features through a 1×1 link; both receive the conditioning map through 1×1 convolutions.
class GatedLayerImpl : public torch::nn::Module {
 public:
  GatedLayerImpl(const GatedPixelCNNOptions& options);
  // (V, H, condition or undefined) -> (V', H')
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& v, const torch::Tensor& h,
                                                  const torch::Tensor& condition);

  // Incremental form. Per-sample-batch state of one layer.
  struct State {
    torch::Tensor v1_window, v2_window;  // [B, C|Cr, rows, W + k - 1]: inputs of the two vertical convs
    torch::Tensor h1_row;                // [B, C, W + cols - 1]: input of the horizontal conv
    torch::Tensor row_extra;             // [B, 2C, W]: link(elu(V')) + condition term of the current row
  };
  State begin(int64_t batch, int64_t width, const torch::TensorOptions& options) const;
  // Vertical unit for row i: V row [B, C, W] (and the row's condition [B, Cc, W] or undefined) ->
  // V' row; also prepares the horizontal unit's extra input for the row.
  torch::Tensor row(State& state, const torch::Tensor& v_row, const torch::Tensor& condition_row);
  // Horizontal unit at column j: H [B, C] -> H' [B, C].
  torch::Tensor position(State& state, const torch::Tensor& h, int64_t j);

 private:
  int64_t channels_, res_channels_;
  VerticalConv v_conv1_{nullptr}, v_conv2_{nullptr};
  HorizontalConv h_conv1_{nullptr};
  WeightNormConv2d h_conv2_{nullptr}, link_{nullptr}, v_condition_{nullptr}, h_condition_{nullptr};
  Dropout dropout_{nullptr};
};
TORCH_MODULE(GatedLayer);

// One PixelSNAIL gated residual block over the single stream X (see the top of this file).
class SnailLayerImpl : public torch::nn::Module {
 public:
  SnailLayerImpl(const GatedPixelCNNOptions& options);
  // (X [B, C, H, W], condition [B, Cc, H, W] or undefined) -> X'
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& condition);

  struct State {
    CausalConvImpl::State conv1, conv2;
    torch::Tensor condition_row;  // [B, 2C, W]: cond(c) of the current row, or undefined
  };
  State begin(int64_t batch, int64_t width, const torch::TensorOptions& options) const;
  // Starts row i (condition_row [B, Cc, W] or undefined).
  void next_row(State& state, const torch::Tensor& condition_row);
  // X [B, C] at column j of the current row -> X' [B, C].
  torch::Tensor position(State& state, const torch::Tensor& x, int64_t j);

 private:
  CausalConv conv1_{nullptr}, conv2_{nullptr};
  WeightNormConv2d condition_{nullptr};
  Dropout dropout_{nullptr};
};
TORCH_MODULE(SnailLayer);

// The causal stack: embedding, causal input convolution(s), gated layers with optional attention,
// 1×1 output head.
class GatedPixelCNNImpl : public torch::nn::Module {
 public:
  explicit GatedPixelCNNImpl(const GatedPixelCNNOptions& options);

  // codes [B, H, W] int64, condition [B, Cc, H, W] (or undefined) -> logits [B, K, H, W].
  torch::Tensor forward(const torch::Tensor& codes, const torch::Tensor& condition = {});
  // The same from the code embeddings [B, C, H, W] (differentiable: the causality tests use it).
  torch::Tensor forward_embedded(const torch::Tensor& embedded, const torch::Tensor& condition = {});
  // codes [B, H, W] -> embeddings [B, C, H, W]
  torch::Tensor embed(const torch::Tensor& codes);

  // ---- incremental form (the cached sampler) -----------------------------------------------------
  struct State {
    int64_t batch = 0, height = 0, width = 0;
    torch::Tensor condition;       // [B, Cc, H, W] or undefined
    // two-stream
    torch::Tensor embed_window;    // [B, C, rows, W + k - 1]: embeddings of the rows above
    torch::Tensor embed_row;       // [B, C, W + cols]: embeddings of the current row (left padded)
    torch::Tensor v_input_row;     // [B, C, W]: the shifted vertical input of the current row
    std::vector<GatedLayerImpl::State> layers;
    // pixelsnail
    torch::Tensor previous_embedding;  // [B, C]: the embedding of the code last committed
    CausalConvImpl::State input;
    std::vector<SnailLayerImpl::State> snail_layers;
    // attention
    std::vector<torch::Tensor> keys, values;  // per attention block: [B, heads, H·W, d]
  };
  State begin(int64_t batch, int64_t height, int64_t width, const torch::Tensor& condition) const;
  // Call at the start of row i (after the codes of row i-1 were committed): whatever the rows above decide.
  void begin_row(State& state, int64_t i);
  // Logits [B, K] at (i, j) from the codes committed so far.
  torch::Tensor logits_at(State& state, int64_t i, int64_t j);
  // Records the codes [B] chosen at (i, j).
  void commit(State& state, int64_t i, int64_t j, const torch::Tensor& codes);

  const GatedPixelCNNOptions& options() const { return options_; }

 private:
  torch::Tensor head(const torch::Tensor& h);  // [B, C, H, W] -> [B, K, H, W], or [B, C] -> [B, K]

  GatedPixelCNNOptions options_;
  torch::nn::Embedding embedding_{nullptr};
  VerticalConv v_input_{nullptr};
  HorizontalConv h_input_{nullptr};
  std::vector<GatedLayer> layers_;
  CausalConv input_{nullptr};
  std::vector<SnailLayer> snail_layers_;
  std::vector<std::shared_ptr<CausalAttentionBlockImpl>> attention_;
  std::vector<PointwiseGated> head_;
  WeightNormLinear logits_{nullptr};
};
TORCH_MODULE(GatedPixelCNN);

}  // namespace vqvae2
