// The Gaussian VAE (MISSION.md §1.1): the continuous-latent baseline of the VAE → VQ-VAE →
// VQ-VAE-2 lineage, built from the VQ-VAE's own encoder and decoder so the two compare at one stride.
//
// Glossary: B = batch, C = image channels, S = image side, s = stride, S' = S / s (latent side),
// Z = latent channels, h = hidden width, D = C·S·S (image dimensions), k ∈ {0, …, 255} = a pixel.
//
//   x ─Encoder (×s down)─▶ f [h,S',S'] ─1×1─▶ (μ, log σ²) [Z,S',S'] each
//   z = μ + σ·ε,  ε ~ N(0, I)                                   (reparameterisation, Kingma & Welling 2014)
//   z ─Decoder (×s up)─▶ m [C,S,S]: the location of a discretised logistic per pixel, with one
//   learned log-scale per channel (Salimans et al. 2017, PixelCNN++; Kingma et al. 2016, IAF).
//
// −ELBO(x) = KL(q(z|x) ‖ N(0, I)) + E_q[−log p(x|z)]  (nats per image, one-sample estimate).
// p(x|z) is a distribution over the 256 values of every 8-bit pixel, so −ELBO is a true upper
// bound on −log p(x) and −ELBO / (ln 2 · D) is comparable with any other model's bits/dim.
#pragma once

#include "vqvae2/models/vqvae.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstdint>
#include <limits>

namespace vqvae2 {

struct VAEOptions {
  int64_t image_size = 256;      // S (square images)
  int64_t channels = 3;          // C: 1 = grey, 3 = RGB
  int64_t hidden = 128;          // h: width of the encoder and decoder
  int64_t res_blocks = 2;        // residual blocks in the encoder and in the decoder
  int64_t res_channels = 32;     // bottleneck width inside a residual block
  int64_t stride = 4;            // s: the latent map is S/s on a side (the VQ-VAE's bottom level at 4)
  int64_t latent_channels = 64;  // Z: as the VQ-VAE's code width D, so both bottlenecks have one shape
  int64_t kl_warmup_steps = 0;   // β_KL ramps linearly 0 → 1 over this many steps; 0 = β_KL = 1 throughout
  double free_bits = 0.0;        // λ: nats per latent unit below which a channel's KL is not pushed down; 0 = off

  int64_t latent_size() const { return image_size / stride; }  // S'
  int64_t image_dims() const { return channels * image_size * image_size; }  // D
  void validate() const;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(VAEOptions, image_size, channels, hidden, res_blocks, res_channels,
                                                stride, latent_channels, kl_warmup_steps, free_bits)

struct VAEOutput {
  torch::Tensor reconstruction;  // [B, C, S, S] in [-1, 1]: the logistic locations m clamped to the pixel range
  torch::Tensor mu;              // μ [B, Z, S', S']
  torch::Tensor log_var;         // log σ² [B, Z, S', S'], clamped to [−30, 20]
  torch::Tensor z;               // the sample μ + σ·ε [B, Z, S', S']
  torch::Tensor kl;              // [B] KL(q(z|x) ‖ N(0, I)) per image, nats
  torch::Tensor kl_per_dim;      // [Z] batch-mean KL of one latent unit of each channel, nats
  torch::Tensor nll;             // [B] −log p(x|z) per image, nats
  torch::Tensor loss;            // scalar: the training objective per dimension (β_KL and free bits applied), nats
  torch::Tensor elbo_nats;       // [B] −ELBO per image = kl + nll, nats (no β_KL, no free bits)
  torch::Tensor bits_per_dim;    // scalar: batch mean of elbo_nats / (ln 2 · D)
};

namespace functional {

// Elementwise KL(N(μ, σ²) ‖ N(0, 1)) = ½ (μ² + σ² − 1 − log σ²).
torch::Tensor gaussian_kl(const torch::Tensor& mu, const torch::Tensor& log_var);

// z = μ + exp(½ log σ²) · noise, with noise ~ N(0, I) drawn by the caller (same shape as μ).
torch::Tensor reparameterize(const torch::Tensor& mu, const torch::Tensor& log_var, const torch::Tensor& noise);

// Log-probability (nats) of 8-bit pixels under a logistic of location `mean` and log-scale
// `log_scale` (both in the model range [-1, 1], broadcast against `pixels`), discretised into 256
// bins of width 2/255 centred on x_k = k/127.5 − 1; bin 0 takes (−∞, x_0 + 1/255] and bin 255 takes
// [x_255 − 1/255, ∞), so the 256 probabilities of a pixel sum to 1. With a = (x_k + 1/255 − m)/s
// and b = (x_k − 1/255 − m)/s:
//   log P(k) = log σ(a)                                    k = 0
//            = log(1 − σ(b))                               k = 255
//            = log σ(a) + log σ(−b) + log(1 − e^{b−a})     otherwise (= log(σ(a) − σ(b)), exact)
// using σ(a) − σ(b) = σ(a) σ(−b) (1 − e^{b−a}), which has no cancellation in either tail.
// `pixels` holds integers in [0, 255] (uint8 or any other dtype); log-scales are clamped to
// [−7, 7]. Computed in fp32 (fp64 if `mean` is fp64).
torch::Tensor discretized_logistic_log_prob(const torch::Tensor& pixels, const torch::Tensor& mean,
                                            const torch::Tensor& log_scale);

// nats / (ln 2 · dims).
torch::Tensor bits_per_dim(const torch::Tensor& nats, int64_t dims);
double bits_per_dim(double nats, int64_t dims);

// β_KL at training step `step` (counted from 0): min(1, step / warmup_steps); 1 when warmup_steps = 0.
double kl_weight(int64_t step, int64_t warmup_steps);

// Free bits (Kingma et al. 2016, IAF, appendix "free bits"): Σ_j max(λ, KL_j) over groups j whose KL is already
// averaged over the batch. Below λ a group's KL gives no gradient, so the optimiser cannot buy
// likelihood by collapsing it onto the prior.
torch::Tensor free_bits_kl(const torch::Tensor& kl_per_group, double lambda);

// Latent channels carrying more than `threshold` nats per unit: the ones not collapsed onto the prior.
int64_t active_dims(const torch::Tensor& kl_per_dim, double threshold = 0.01);

}  // namespace functional

class GaussianVAEImpl : public torch::nn::Module {
 public:
  explicit GaussianVAEImpl(const VAEOptions& options);

  // x [B, C, S, S] in [-1, 1], on the 8-bit grid k/127.5 − 1 (to_model_range of uint8 pixels; other
  // values are rounded to the nearest pixel for the likelihood). `step` sets β_KL; the default is
  // past any warm-up. Always draws z from q(z|x), in eval mode too, so elbo_nats stays an unbiased
  // estimate of a true bound.
  VAEOutput forward(const torch::Tensor& x, int64_t step = std::numeric_limits<int64_t>::max());
  // z [B, Z, S', S'] -> images [B, C, S, S] in [-1, 1].
  torch::Tensor decode(const torch::Tensor& z);
  // n images decoded from z ~ N(0, I); z is drawn on the CPU from `seed`, so the result depends only on
  // the weights and the seed (not on the device).
  torch::Tensor sample(int64_t n, uint64_t seed);

  const VAEOptions& options() const { return options_; }
  const torch::Tensor& log_scale() const { return log_scale_; }  // [C]
  // Multiply-accumulates of one forward pass of one image (convolutions only).
  int64_t forward_macs() const;

  void pretty_print(std::ostream& stream) const override;

 private:
  torch::Tensor decode_location(const torch::Tensor& z);  // z -> m [B, C, S, S], unclamped

  VAEOptions options_;
  Encoder encoder_{nullptr};
  torch::nn::Conv2d to_posterior_{nullptr};  // 1×1: h -> 2Z (μ, log σ²)
  Decoder decoder_{nullptr};
  torch::Tensor log_scale_;  // log s per channel [C]
};
TORCH_MODULE(GaussianVAE);

}  // namespace vqvae2
