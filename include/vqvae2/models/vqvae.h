// The hierarchical VQ-VAE (MISSION.md §1.3): encoders, quantizers per level, decoders.
//
// Glossary: B = batch, C = image channels, S = image side, h = hidden width, D_l / K_l = code width
// and codebook size of level l. Levels are numbered from the bottom: level 0 is the finest map
// (S / s_0 on a side), level l is s_l times coarser than level l-1, level L-1 is the top.
//
// Reference two-level model (Razavi et al. 2019) for a 256×256 image, strides {4, 2}:
//   x ─enc_0 (×4 down)─▶ f_0 [h,64,64] ─enc_1 (×2 down)─▶ f_1 [h,32,32] ─1×1─▶ z_e1 ─VQ─▶ z_q1 (top)
//   z_q1 ─dec_cond_0 (×2 up)─▶ c_0 [D_1,64,64];  [f_0, c_0] ─1×1─▶ z_e0 ─VQ─▶ z_q0 (bottom)
//   [z_q0, up(z_q1)] ─decoder (×4 up)─▶ x̂
// so the bottom codes only need to model what the top codes miss.
#pragma once

#include "vqvae2/data/image.h"
#include "vqvae2/models/quantizer.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <memory>
#include <vector>

namespace vqvae2 {

struct VQVAEOptions {
  int64_t image_size = 256;               // S (square images)
  int64_t channels = 3;                   // C: 1 = grey, 3 = RGB
  int64_t hidden = 128;                   // h: width of encoders and decoders
  int64_t res_blocks = 2;                 // residual blocks per encoder/decoder
  int64_t res_channels = 32;              // bottleneck width inside a residual block
  std::vector<int64_t> strides = {4, 2};  // downsampling per level, bottom first; L = strides.size()
  std::vector<int64_t> codes = {512, 512};  // K_l per level (one value = the same for every level)
  std::vector<int64_t> code_dims = {64, 64};  // D_l per level (one value = the same for every level)
  QuantizerOptions quantizer;             // β, γ, ε, EMA or codebook loss, dead codes (K, D set per level)

  int64_t levels() const { return static_cast<int64_t>(strides.size()); }
  ImageFormat format() const { return {image_size, channels}; }
  int64_t codes_at(int64_t level) const;
  int64_t code_dim_at(int64_t level) const;
  // Side of level l's code map: S / (s_0 · … · s_l).
  int64_t latent_size(int64_t level) const;
  QuantizerOptions quantizer_at(int64_t level) const;
  void validate() const;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(VQVAEOptions, image_size, channels, hidden, res_blocks, res_channels,
                                                strides, codes, code_dims, quantizer)

// x + Conv1×1(ReLU(Conv3×3(ReLU(x))))
class ResidualBlockImpl : public torch::nn::Module {
 public:
  ResidualBlockImpl(int64_t channels, int64_t res_channels);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Conv2d conv3_{nullptr}, conv1_{nullptr};
};
TORCH_MODULE(ResidualBlock);

// Strided 4×4 convolutions down by `stride` (a power of two), a 3×3 conv, residual blocks, ReLU.
class EncoderImpl : public torch::nn::Module {
 public:
  EncoderImpl(int64_t in_channels, int64_t hidden, int64_t res_blocks, int64_t res_channels, int64_t stride);
  torch::Tensor forward(const torch::Tensor& x);  // [B, in, H, W] -> [B, hidden, H/stride, W/stride]
  int64_t macs(int64_t height, int64_t width) const;  // multiply-accumulates per image

 private:
  torch::nn::Sequential body_;
};
TORCH_MODULE(Encoder);

// A 3×3 conv, residual blocks, ReLU, then 4×4 transposed convolutions up by `stride`.
class DecoderImpl : public torch::nn::Module {
 public:
  DecoderImpl(int64_t in_channels, int64_t out_channels, int64_t hidden, int64_t res_blocks, int64_t res_channels,
              int64_t stride);
  torch::Tensor forward(const torch::Tensor& x);  // [B, in, H, W] -> [B, out, H*stride, W*stride]
  int64_t macs(int64_t height, int64_t width) const;  // multiply-accumulates per image

 private:
  torch::nn::Sequential body_;
};
TORCH_MODULE(Decoder);

struct VQVAEOutput {
  torch::Tensor reconstruction;         // x̂ [B, C, S, S]
  std::vector<QuantizerOutput> levels;  // bottom first
  torch::Tensor reconstruction_loss;    // mean (x̂ - x)²
  torch::Tensor codebook_loss;          // Σ over levels
  torch::Tensor commitment_loss;        // Σ over levels, β included
  torch::Tensor loss;                   // the training objective: the three terms above summed
};

class HierarchicalVQVAEImpl : public torch::nn::Module {
 public:
  explicit HierarchicalVQVAEImpl(const VQVAEOptions& options);

  // x [B, C, S, S] in [-1, 1] -> reconstruction and losses.
  VQVAEOutput forward(const torch::Tensor& x);
  // x -> code maps [B, S_l, S_l] (int64), bottom first.
  std::vector<torch::Tensor> encode(const torch::Tensor& x);
  // code maps (bottom first) -> x̂. Checks every map's shape and value range.
  torch::Tensor decode_codes(const std::vector<torch::Tensor>& codes);

  const VQVAEOptions& options() const { return options_; }
  QuantizerImpl& quantizer(int64_t level) { return *quantizers_.at(level); }
  // Every level's QuantizerImpl::snapshot(), bottom first, and back: what a skipped training batch
  // must undo (with the codebook-loss quantizer the codebooks are parameters the forward pass writes).
  std::vector<QuantizerImpl::State> snapshot_quantizers() const;
  void restore_quantizers(const std::vector<QuantizerImpl::State>& states);
  // Dead-code restarts on or off at every level (QuantizerImpl::set_restarts_enabled).
  void set_dead_code_restarts(bool enabled);
  // Multiply-accumulates of one forward pass of one image (convolutions only).
  int64_t forward_macs() const;

 private:
  // Quantises top-down: z_e of level l sees the encoder features of level l and the decoded codes
  // of level l+1. Returns the quantizer outputs, bottom first.
  std::vector<QuantizerOutput> quantize_all(const torch::Tensor& x);
  torch::Tensor decode_quantized(const std::vector<torch::Tensor>& z_q);

  VQVAEOptions options_;
  std::vector<Encoder> encoders_;                      // enc_l
  std::vector<torch::nn::Conv2d> pre_quantize_;         // 1×1 to D_l
  std::vector<std::shared_ptr<QuantizerImpl>> quantizers_;
  std::vector<Decoder> condition_decoders_;             // dec_cond_l: z_q(l+1) -> level l resolution (l < L-1)
  std::vector<torch::nn::Sequential> upsamplers_;       // z_q(l) -> level 0 resolution (l >= 1)
  Decoder decoder_{nullptr};                            // [z_q0, up(z_q1), …] -> x̂
};
TORCH_MODULE(HierarchicalVQVAE);

}  // namespace vqvae2
