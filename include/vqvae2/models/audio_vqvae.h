// The hierarchical VQ-VAE on raw waveforms (MISSION.md §1.6): the image model's design in one
// dimension — strided 1-D convolutional encoders, the same quantizers, top-down conditioning,
// transposed-convolution decoders — trained with a waveform loss plus a multi-resolution STFT loss.
//
// Glossary: B = batch, T = samples of a clip, h = hidden width, D_l / K_l = code width and codebook
// size of level l, T_l = T / (s_0 · … · s_l) = code sequence length of level l, S_r = the STFT at
// resolution r. Levels are numbered from the bottom (level 0 = the finest codes).
//
// Reference two-level model for 16 kHz audio, strides {16, 4}:
//   x [1,T] ─enc_0 (×16 down)─▶ f_0 [h,T/16] ─enc_1 (×4 down)─▶ f_1 [h,T/64] ─1×1─▶ z_e1 ─VQ─▶ z_q1 (top)
//   z_q1 ─dec_cond_0 (×4 up)─▶ c_0 [D_1,T/16];  [f_0, c_0] ─1×1─▶ z_e0 ─VQ─▶ z_q0 (bottom)
//   [z_q0, up(z_q1)] ─decoder (×16 up)─▶ x̂ [1,T]
// so at 16 kHz one bottom code stands for 16 samples (1 ms) and one top code for 64 (4 ms).
// The quantizers see a code sequence as a one-row map: z_e [B, D, T_l] is quantised as [B, D, 1, T_l].
#pragma once

#include "vqvae2/models/quantizer.h"
#include "vqvae2/models/vqvae.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

namespace vqvae2 {

struct AudioVQVAEOptions {
  int64_t clip_length = 16384;               // T of a training clip (any multiple of the total stride encodes)
  int64_t sample_rate = 16000;               // fs of the audio the model is trained on (for writing its output)
  int64_t hidden = 128;                      // h: width of encoders and decoders
  int64_t res_blocks = 2;                    // residual blocks per encoder/decoder
  int64_t res_channels = 32;                 // bottleneck width inside a residual block
  int64_t dilation_growth = 3;               // residual block i's 3-tap convolution is dilated growth^i
  std::vector<int64_t> strides = {16, 4};    // downsampling per level, bottom first; L = strides.size()
  std::vector<int64_t> codes = {512, 512};   // K_l per level (one value = the same for every level)
  std::vector<int64_t> code_dims = {64, 64}; // D_l per level (one value = the same for every level)
  // β, γ, ε, EMA or codebook loss, dead codes (K, D set per level). Dead-code restarts are on by
  // default (threshold 1, as in the image presets): without them a short run on speech collapsed to
  // one code per level (perplexity 1/1 after 50 steps).
  QuantizerOptions quantizer = [] {
    QuantizerOptions q;
    q.dead_code_threshold = 1.0;
    return q;
  }();
  std::string upsampling = "transposed";     // decoders double T by "transposed" convolutions or "nearest" + conv
  std::string waveform_loss = "l1";          // "l1": mean |x̂ − x|, or "mse": mean (x̂ − x)²
  double stft_weight = 1.0;                  // weight of the multi-resolution STFT loss
  std::vector<int64_t> stft_ffts = {512, 1024, 2048};  // its resolutions: FFT = window size, hop FFT/4

  int64_t levels() const { return static_cast<int64_t>(strides.size()); }
  int64_t codes_at(int64_t level) const;
  int64_t code_dim_at(int64_t level) const;
  int64_t total_stride() const;  // s_0 · … · s_{L-1}
  // T_l of level l for a waveform of `samples` samples (the clip length by default).
  int64_t latent_length(int64_t level, int64_t samples = 0) const;
  QuantizerOptions quantizer_at(int64_t level) const;
  void validate() const;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(AudioVQVAEOptions, clip_length, sample_rate, hidden, res_blocks,
                                                res_channels, dilation_growth, strides, codes, code_dims, quantizer,
                                                upsampling, waveform_loss, stft_weight, stft_ffts)

namespace functional {

struct STFTLoss {
  torch::Tensor spectral_convergence;  // mean over resolutions of ‖|S_r x| − |S_r x̂|‖_F / ‖|S_r x|‖_F
  torch::Tensor log_magnitude;         // mean over resolutions of mean |log|S_r x| − log|S_r x̂||
  torch::Tensor total;                 // the sum of the two
};
// Multi-resolution STFT loss (Yamamoto et al. 2020, Parallel WaveGAN, eq. 4-6): for each FFT size
// N_r in `ffts`, a periodic Hann window of N_r samples hopping N_r/4, magnitudes floored at
// sqrt(1e-7) as there. x̂ and x: [..., T] of one shape. Zero for equal signals, positive otherwise.
STFTLoss multi_resolution_stft_loss(const torch::Tensor& x_hat, const torch::Tensor& x,
                                    const std::vector<int64_t>& ffts = {512, 1024, 2048});

}  // namespace functional

// x + Conv1×1(ReLU(Conv3,dilated(ReLU(x)))): the 3-tap convolution dilated by `dilation`.
class ResidualBlock1dImpl : public torch::nn::Module {
 public:
  ResidualBlock1dImpl(int64_t channels, int64_t res_channels, int64_t dilation);
  torch::Tensor forward(const torch::Tensor& x);  // [B, C, T] -> [B, C, T]

 private:
  torch::nn::Conv1d conv3_{nullptr}, conv1_{nullptr};
};
TORCH_MODULE(ResidualBlock1d);

// log2(stride) strided 4-tap convolutions (each halves T), a 3-tap conv to h, residual blocks with
// growing dilation, ReLU.
class Encoder1dImpl : public torch::nn::Module {
 public:
  Encoder1dImpl(int64_t in_channels, int64_t hidden, int64_t res_blocks, int64_t res_channels, int64_t dilation_growth,
                int64_t stride);
  torch::Tensor forward(const torch::Tensor& x);  // [B, in, T] -> [B, hidden, T/stride]

 private:
  torch::nn::Sequential body_;
};
TORCH_MODULE(Encoder1d);

// A 3-tap conv, residual blocks, ReLU, then log2(stride) doublings of T: transposed 4-tap
// convolutions, or (upsampling "nearest") sample repetition followed by a 3-tap convolution.
class Decoder1dImpl : public torch::nn::Module {
 public:
  Decoder1dImpl(int64_t in_channels, int64_t out_channels, int64_t hidden, int64_t res_blocks, int64_t res_channels,
                int64_t dilation_growth, int64_t stride, const std::string& upsampling = "transposed");
  torch::Tensor forward(const torch::Tensor& x);  // [B, in, T] -> [B, out, T·stride]

 private:
  torch::nn::Sequential body_;
};
TORCH_MODULE(Decoder1d);

// VQVAEOutput's fields (reconstruction x̂ [B, 1, T]; per level z_q [B, D_l, T_l], codes [B, T_l]), with
//   reconstruction_loss = waveform_loss + stft_weight · stft_loss,
//   loss                = reconstruction_loss + codebook_loss + commitment_loss.
struct AudioVQVAEOutput : VQVAEOutput {
  torch::Tensor waveform_loss;  // mean |x̂ − x| or mean (x̂ − x)², as options.waveform_loss says
  torch::Tensor waveform_mse;   // mean (x̂ − x)², reported whichever loss trains
  functional::STFTLoss stft;    // the multi-resolution STFT loss and its two parts
};

class AudioVQVAEImpl : public torch::nn::Module {
 public:
  explicit AudioVQVAEImpl(const AudioVQVAEOptions& options);

  // x [B, 1, T] in [-1, 1], T a positive multiple of the total stride -> reconstruction and losses.
  AudioVQVAEOutput forward(const torch::Tensor& x);
  // x -> code sequences [B, T_l] (int64), bottom first.
  std::vector<torch::Tensor> encode(const torch::Tensor& x);
  // Code sequences (bottom first) -> x̂ [B, 1, T_0 · s_0]. Checks the lengths agree and the value ranges.
  torch::Tensor decode_codes(const std::vector<torch::Tensor>& codes);

  const AudioVQVAEOptions& options() const { return options_; }
  QuantizerImpl& quantizer(int64_t level) { return *quantizers_.at(level); }

 private:
  void check_input(const torch::Tensor& x) const;
  // Quantises top-down, as HierarchicalVQVAE does. Returns the quantizer outputs, bottom first,
  // with z_q [B, D_l, T_l] and codes [B, T_l].
  std::vector<QuantizerOutput> quantize_all(const torch::Tensor& x);
  torch::Tensor decode_quantized(const std::vector<torch::Tensor>& z_q);

  AudioVQVAEOptions options_;
  std::vector<Encoder1d> encoders_;                    // enc_l
  std::vector<torch::nn::Conv1d> pre_quantize_;        // 1×1 to D_l
  std::vector<std::shared_ptr<QuantizerImpl>> quantizers_;
  std::vector<Decoder1d> condition_decoders_;          // dec_cond_l: z_q(l+1) -> level l length (l < L-1)
  std::vector<torch::nn::Sequential> upsamplers_;      // z_q(l) -> level 0 length (l >= 1)
  Decoder1d decoder_{nullptr};                         // [z_q0, up(z_q1), …] -> x̂
};
TORCH_MODULE(AudioVQVAE);

}  // namespace vqvae2
