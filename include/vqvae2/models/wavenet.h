// WaveNet (van den Oord et al. 2016, "WaveNet: A Generative Model for Raw Audio") as the prior over
// one level's code sequence of the audio VQ-VAE (MISSION.md §1.6).
//
// Glossary: B = batch, T = code sequence length, t = position, K = codes of this level,
// R = residual channels, G = gate channels, S = skip channels, k = kernel of the dilated
// convolutions, d_i = dilation of layer i, Cc = conditioning channels, s = upsampling factor from
// the level above (its stride), K' = codes of the level above.
//
//   x_0[t]  = e(c_{t-1})  (x_0[0] = 0)                 codes embedded, shifted one step right
//   a_i     = W_i ⋆_{d_i} x_i  + V_i · h             causal dilated convolution, k taps at t, t−d_i, …, t−(k−1)d_i,
//                                                    plus the condition h [B, Cc, T] through a 1×1 (conditional only)
//   z_i     = tanh(a_i^f) ⊙ σ(a_i^g)                 gated unit, [a^f, a^g] = the two halves of a_i (2G channels)
//   x_{i+1} = x_i + Res_i · z_i ;  skip += Skip_i · z_i       1×1 residual (R) and skip (S) connections
//   logits  = Out_2 · ReLU(Out_1 · ReLU(skip))         two 1×1 convolutions to K logits
// with d_i = 2^(i mod n) for i = 0 … cycles·n − 1 (dilations 1, 2, 4, …, 2^(n−1), repeated in cycles).
// Causality: the logits at t see x_0 up to t, that is codes up to t−1, and the receptive field is
//   receptive_field = 1 + (k − 1) · Σ_i d_i = 1 + (k − 1) · cycles · (2^n − 1)  codes.
//
// Conditioning of a lower level on the level above (van den Oord et al. 2016 §2.5, local
// conditioning): the upper codes [B, T/s] are embedded (K' → Cc), pass through residual 3-tap
// convolutions (non-causal: the upper level is known in full before this one is sampled), and are
// upsampled by a learned transposed convolution with kernel = stride = s, so each upper code gives
// s positions their own learned linear map of it. The result h [B, Cc, T] enters every layer.
//
// Fast ("cached") generation (Paine et al. 2016, "Fast Wavenet Generation Algorithm"): each layer
// keeps a queue of its last (k−1)·d_i + 1 inputs, so a new position costs one k-tap step per layer
// instead of a pass over the whole sequence; it computes the same function as forward().
#pragma once

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <vector>

namespace vqvae2 {

struct WaveNetOptions {
  int64_t level = 0;                // which VQ-VAE level these codes are (0 = bottom)
  int64_t length = 1024;            // T: the sequence length trained on and sampled by default
  int64_t codes = 512;              // K
  int64_t channels = 64;            // R
  int64_t gate_channels = 64;       // G
  int64_t skip_channels = 128;      // S
  int64_t kernel = 2;               // k
  int64_t layers_per_cycle = 8;     // n: dilations 1 … 2^(n−1)
  int64_t cycles = 2;               // repetitions of the dilation cycle
  bool conditional = false;         // conditioned on the codes of level + 1
  int64_t condition_codes = 512;    // K'
  int64_t condition_channels = 64;  // Cc
  int64_t condition_blocks = 2;     // residual 3-tap blocks over the upper codes
  int64_t condition_scale = 4;      // s = T / T_above

  int64_t layers() const { return layers_per_cycle * cycles; }
  int64_t dilation(int64_t layer) const { return int64_t{1} << (layer % layers_per_cycle); }
  // 1 + (k − 1) · Σ d_i: how many past codes the logits at t can see.
  int64_t receptive_field() const;
  void validate() const;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(WaveNetOptions, level, length, codes, channels, gate_channels,
                                                skip_channels, kernel, layers_per_cycle, cycles, conditional,
                                                condition_codes, condition_channels, condition_blocks, condition_scale)

class WaveNetImpl : public torch::nn::Module {
 public:
  explicit WaveNetImpl(const WaveNetOptions& options);

  // codes [B, T] int64 (and the upper codes [B, T/s] when conditional) -> logits [B, K, T].
  torch::Tensor forward(const torch::Tensor& codes, const torch::Tensor& condition_codes = {});
  // The same from the code embeddings e(c) [B, R, T], unshifted (differentiable: the causality and
  // receptive-field tests take gradients through it), and the condition h [B, Cc, T] or undefined.
  torch::Tensor forward_embedded(const torch::Tensor& embedded, const torch::Tensor& condition = {});
  torch::Tensor embed(const torch::Tensor& codes);  // [B, T] -> [B, R, T]
  // Upper codes [B, T/s] -> h [B, Cc, T]; undefined when not conditional.
  torch::Tensor condition_features(const torch::Tensor& condition_codes);
  // Mean cross-entropy of the codes under the model, in nats per code.
  torch::Tensor loss(const torch::Tensor& codes, const torch::Tensor& condition_codes = {});

  // ---- incremental form (the cached sampler) ---------------------------------------------------
  struct State {
    int64_t batch = 0, length = 0, t = 0;  // t: the next position to predict
    torch::Tensor input;                   // [B, R]: x_0[t] = e(c_{t−1}), zero at t = 0
    std::vector<torch::Tensor> queues;     // per layer: ring [B, R, (k−1)·d_i + 1] of x_i, slot = t mod size
    std::vector<torch::Tensor> condition;  // per layer: V_i · h [B, 2G, T], or undefined
  };
  // `condition` = condition_features(upper codes), [B, Cc, length] (undefined when not conditional).
  State begin(int64_t batch, int64_t length, const torch::Tensor& condition);
  // Logits [B, K] at position state.t from the codes committed so far.
  torch::Tensor logits_step(State& state);
  // Records the codes [B] chosen at position state.t and moves to t + 1.
  void commit(State& state, const torch::Tensor& codes);

  const WaveNetOptions& options() const { return options_; }
  int64_t receptive_field() const { return options_.receptive_field(); }

 private:
  void check_inputs(const torch::Tensor& codes, const torch::Tensor& condition_codes) const;
  torch::Tensor head(const torch::Tensor& skip);  // [B, S, …] -> [B, K, …]

  WaveNetOptions options_;
  torch::nn::Embedding embedding_{nullptr};
  std::vector<torch::nn::Conv1d> dilated_;    // W_i: R -> 2G, k taps, dilation d_i (applied causally)
  std::vector<torch::nn::Conv1d> condition_;  // V_i: Cc -> 2G, 1×1
  std::vector<torch::nn::Conv1d> residual_;   // Res_i: G -> R, 1×1 (not in the last layer, whose x is unused)
  std::vector<torch::nn::Conv1d> skip_;       // Skip_i: G -> S, 1×1
  torch::nn::Conv1d out1_{nullptr}, out2_{nullptr};
  // Conditioning stack: embedding, residual 3-tap blocks (pairs of convolutions), upsampling.
  torch::nn::Embedding condition_embedding_{nullptr};
  std::vector<std::pair<torch::nn::Conv1d, torch::nn::Conv1d>> condition_blocks_;
  torch::nn::ConvTranspose1d condition_upsample_{nullptr};
};
TORCH_MODULE(WaveNet);

// A CPU-friendly default (k 2, 2 cycles of 8 layers: receptive field 511 codes) and a wider one.
enum class WaveNetSize { kSmall, kReference };
WaveNetOptions wavenet_options(int64_t level, int64_t length, int64_t codes, WaveNetSize size);
WaveNetOptions conditional_wavenet_options(int64_t level, int64_t length, int64_t codes, int64_t condition_codes,
                                           int64_t scale, WaveNetSize size);

}  // namespace vqvae2
