// Gated PixelCNN over a code map (van den Oord et al. 2016), the causal stack every prior uses.
//
// Glossary: B = batch, K = codes, C = channels of the stack, Cr = width inside a gated unit,
// H, W = map height and width, (i, j) = row and column, k = kernel size.
//
// Causality (MISSION.md §1.4): the logits at (i, j) may depend only on codes before (i, j) in
// raster order. Two streams guarantee it without a blind spot:
//   vertical   V[i]    sees the codes of rows < i           ((k/2+1)×k convolutions over rows ≤ i of V)
//   horizontal H[i, j] sees rows < i and row i, columns < j (a 1×(k/2+1) convolution over columns ≤ j of H,
//                                                          plus V[i, j] through a 1×1 link)
// Gated residual unit: y = x + tanh(a) ⊙ σ(b), [a, b] = conv2(dropout(elu(conv1(elu(x))))) + extra.
// In the vertical unit both convolutions are (k/2+1)×k; in the horizontal unit conv1 is 1×(k/2+1) and
// conv2 is 1×1, as in van den Oord et al.'s horizontal stack. The horizontal unit is the part the
// cached sampler runs once per code, so its weights are kept small enough to stay in cache.
//
// Every layer also has an incremental form used by the cached sampler (sampler.h): the vertical
// stream is computed one row at a time from a window of the rows above, the horizontal stream one
// position at a time from a window of the row so far. Both compute the same function as forward().
#pragma once

#include "vqvae2/models/gated.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <vector>

namespace vqvae2 {

// A convolution over rows i-rows+1 … i and columns j-width/2 … j+width/2 (zero padding above and
// at the sides): output row i never sees input rows below i.
class VerticalConvImpl : public torch::nn::Module {
 public:
  VerticalConvImpl(int64_t in, int64_t out, int64_t rows, int64_t width);
  torch::Tensor forward(const torch::Tensor& x);  // [B, in, H, W] -> [B, out, H, W]
  // One output row from `window` [B, in, rows, W + width-1]: the last `rows` input rows, padded.
  torch::Tensor forward_window(const torch::Tensor& window);  // -> [B, out, W]
  int64_t rows() const { return rows_; }
  int64_t width() const { return width_; }

 private:
  int64_t rows_, width_;
  torch::nn::Conv2d conv_{nullptr};
};
TORCH_MODULE(VerticalConv);

// A convolution over columns j-cols+1 … j of the same row: output column j never sees input
// columns right of j.
class HorizontalConvImpl : public torch::nn::Module {
 public:
  HorizontalConvImpl(int64_t in, int64_t out, int64_t cols);
  torch::Tensor forward(const torch::Tensor& x);  // [B, in, H, W] -> [B, out, H, W]
  // One output position from `window` [B, in, cols]: input columns j-cols+1 … j.
  torch::Tensor forward_window(const torch::Tensor& window);  // -> [B, out]
  int64_t cols() const { return cols_; }

 private:
  int64_t cols_;
  torch::nn::Conv2d conv_{nullptr};
};
TORCH_MODULE(HorizontalConv);

// [B, C, H, W] -> the same map moved down one row (row 0 zero) / right one column (column 0 zero).
torch::Tensor shift_down(const torch::Tensor& x);
torch::Tensor shift_right(const torch::Tensor& x);

struct GatedPixelCNNOptions {
  int64_t codes = 512;               // K: input and output classes
  int64_t channels = 256;            // C
  int64_t res_channels = 256;        // Cr
  int64_t kernel = 5;                // k (odd): vertical (k/2+1)×k, horizontal 1×(k/2+1)
  int64_t blocks = 4;                // groups of gated layers; attention (if on) closes each group
  int64_t res_blocks = 4;            // gated layers per group
  bool attention = true;             // PixelSNAIL: causal multi-head self-attention after each group
  int64_t heads = 8;                 // attention heads
  double dropout = 0.1;
  int64_t out_res_blocks = 1;        // 1×1 gated units between the stack and the logits
  int64_t condition_channels = 0;    // channels of the conditioning map entering every layer (0 = none);
                                     // a Prior sets it from its conditioning stack, so it is not stored

  int64_t layers() const { return blocks * res_blocks; }
  void validate() const;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(GatedPixelCNNOptions, codes, channels, res_channels, kernel, blocks,
                                                res_blocks, attention, heads, dropout, out_res_blocks)

class CausalAttentionBlockImpl;

// One gated layer: a vertical unit, then a horizontal unit that also sees the new vertical
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
  torch::nn::Conv2d h_conv2_{nullptr}, link_{nullptr}, v_condition_{nullptr}, h_condition_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
};
TORCH_MODULE(GatedLayer);

// The causal stack: embedding, shifted input convolutions, gated layers with optional attention,
// 1×1 output head. With attention on this is PixelSNAIL (Chen et al. 2018); off, a gated PixelCNN.
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
    torch::Tensor embed_window;    // [B, C, rows, W + k - 1]: embeddings of the rows above
    torch::Tensor embed_row;       // [B, C, W + cols]: embeddings of the current row (left padded)
    torch::Tensor v_input_row;     // [B, C, W]: the shifted vertical input of the current row
    std::vector<GatedLayerImpl::State> layers;
    std::vector<torch::Tensor> keys, values;  // per attention block: [B, heads, H·W, d]
  };
  State begin(int64_t batch, int64_t height, int64_t width, const torch::Tensor& condition) const;
  // Call at the start of row i (after the codes of row i-1 were committed): the vertical stream.
  void begin_row(State& state, int64_t i);
  // Logits [B, K] at (i, j) from the codes committed so far.
  torch::Tensor logits_at(State& state, int64_t i, int64_t j);
  // Records the codes [B] chosen at (i, j).
  void commit(State& state, int64_t i, int64_t j, const torch::Tensor& codes);

  const GatedPixelCNNOptions& options() const { return options_; }

 private:
  GatedPixelCNNOptions options_;
  torch::nn::Embedding embedding_{nullptr};
  VerticalConv v_input_{nullptr};
  HorizontalConv h_input_{nullptr};
  std::vector<GatedLayer> layers_;
  std::vector<std::shared_ptr<CausalAttentionBlockImpl>> attention_;
  std::vector<PointwiseGated> head_;
  torch::nn::Linear logits_{nullptr};
};
TORCH_MODULE(GatedPixelCNN);

}  // namespace vqvae2
