#include "vqvae2/models/vae.h"

#include "vqvae2/core/error.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>

namespace vqvae2 {

namespace {

// Log-scales of the pixel logistic are clamped here: below e^-7 a bin (2/255 wide) already holds all
// but ~1e-4 of the mass when the location sits on its centre, and no useful model needs s > e^7.
constexpr double kMinLogScale = -7.0;
constexpr double kMaxLogScale = 7.0;
// log σ² of the posterior: σ² in [e^-30, e^20] keeps exp() and the KL finite in fp32.
constexpr double kMinLogVar = -30.0;
constexpr double kMaxLogVar = 20.0;

bool is_power_of_two(int64_t v) { return v >= 2 && (v & (v - 1)) == 0; }

}  // namespace

// ---- options ----------------------------------------------------------------------------------

void VAEOptions::validate() const {
  VQVAE2_CHECK(channels == 1 || channels == 3, "image channels must be 1 (grey) or 3 (RGB), got {}", channels);
  VQVAE2_CHECK(image_size >= 1 && image_size <= 16384, "image size must be in [1, 16384], got {}", image_size);
  VQVAE2_CHECK(hidden >= 2 && hidden <= 8192 && hidden % 2 == 0,
               "hidden width must be an even number in [2, 8192], got {}", hidden);
  VQVAE2_CHECK(res_blocks >= 0 && res_blocks <= 256, "residual blocks must be in [0, 256], got {}", res_blocks);
  VQVAE2_CHECK(res_channels >= 1 && res_channels <= 8192, "residual channels must be in [1, 8192], got {}",
               res_channels);
  VQVAE2_CHECK(is_power_of_two(stride) && stride <= 1024, "the VAE stride must be a power of two in [2, 1024], got {}",
               stride);
  VQVAE2_CHECK(image_size >= stride && image_size % stride == 0,
               "image size {} must be a multiple of the VAE stride {}; try --image-size {}", image_size, stride,
               std::max<int64_t>(stride, image_size / stride * stride));
  VQVAE2_CHECK(latent_channels >= 1 && latent_channels <= 8192, "latent channels Z must be in [1, 8192], got {}",
               latent_channels);
  VQVAE2_CHECK(kl_warmup_steps >= 0, "KL warm-up steps must be 0 (off) or positive, got {}", kl_warmup_steps);
  VQVAE2_CHECK(std::isfinite(free_bits) && free_bits >= 0,
               "free bits must be a non-negative number of nats per latent unit (0 = off), got {}", free_bits);
}

// ---- functional -------------------------------------------------------------------------------

namespace functional {

torch::Tensor gaussian_kl(const torch::Tensor& mu, const torch::Tensor& log_var) {
  return 0.5 * (mu.pow(2) + log_var.exp() - 1.0 - log_var);
}

torch::Tensor reparameterize(const torch::Tensor& mu, const torch::Tensor& log_var, const torch::Tensor& noise) {
  VQVAE2_CHECK(mu.sizes() == log_var.sizes() && mu.sizes() == noise.sizes(),
               "reparameterize expects mu, log_var and noise of one shape, got {}, {} and {}", shape_of(mu.sizes()),
               shape_of(log_var.sizes()), shape_of(noise.sizes()));
  return mu + (0.5 * log_var).exp() * noise;
}

torch::Tensor discretized_logistic_log_prob(const torch::Tensor& pixels, const torch::Tensor& mean,
                                            const torch::Tensor& log_scale) {
  VQVAE2_CHECK(mean.is_floating_point() && log_scale.is_floating_point(),
               "the logistic's mean and log-scale must be floating point, got {} and {}",
               c10::toString(mean.scalar_type()), c10::toString(log_scale.scalar_type()));
  const auto dtype = mean.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
  const auto k = pixels.to(mean.device(), dtype);
  VQVAE2_CHECK(k.numel() == 0 || !((k < 0) | (k > 255) | (k != k.round())).any().item<bool>(),
               "pixels must be integers in [0, 255] (8-bit values, not the model range [-1, 1])");
  const auto m = mean.to(dtype);
  const auto inv_s = (-log_scale.to(dtype).clamp(kMinLogScale, kMaxLogScale)).exp();  // 1/s
  const auto centred = k / 127.5 - 1.0 - m;                                           // x_k − m
  const auto a = (centred + 1.0 / 255) * inv_s;                                       // upper bin edge, standardised
  const auto b = (centred - 1.0 / 255) * inv_s;                                       // lower bin edge, standardised
  const auto log_cdf_upper = -torch::softplus(-a);                                    // log σ(a)
  const auto log_sf_lower = -torch::softplus(b);                                      // log(1 − σ(b)) = log σ(−b)
  // a − b = (2/255)/s exactly, taken from inv_s rather than from the difference of two rounded numbers.
  const auto log_width = torch::log(-torch::expm1(-(2.0 / 255) * inv_s));  // log(1 − e^{b−a})
  const auto interior = log_cdf_upper + log_sf_lower + log_width;
  return torch::where(k == 0, log_cdf_upper, torch::where(k == 255, log_sf_lower, interior));
}

torch::Tensor bits_per_dim(const torch::Tensor& nats, int64_t dims) {
  return nats / (std::log(2.0) * static_cast<double>(dims));
}

double bits_per_dim(double nats, int64_t dims) { return nats / (std::log(2.0) * static_cast<double>(dims)); }

double kl_weight(int64_t step, int64_t warmup_steps) {
  if (warmup_steps <= 0) return 1.0;
  return std::clamp(static_cast<double>(step) / static_cast<double>(warmup_steps), 0.0, 1.0);
}

torch::Tensor free_bits_kl(const torch::Tensor& kl_per_group, double lambda) {
  return kl_per_group.clamp_min(lambda).sum();
}

int64_t active_dims(const torch::Tensor& kl_per_dim, double threshold) {
  return kl_per_dim.gt(threshold).sum().item<int64_t>();
}

}  // namespace functional

// ---- the model --------------------------------------------------------------------------------

GaussianVAEImpl::GaussianVAEImpl(const VAEOptions& options) : options_(options) {
  options_.validate();
  const auto& o = options_;
  encoder_ = register_module("encoder", Encoder(o.channels, o.hidden, o.res_blocks, o.res_channels, o.stride));
  to_posterior_ = register_module(
      "to_posterior", torch::nn::Conv2d(torch::nn::Conv2dOptions(o.hidden, 2 * o.latent_channels, /*kernel_size=*/1)));
  decoder_ = register_module("decoder",
                             Decoder(o.latent_channels, o.channels, o.hidden, o.res_blocks, o.res_channels, o.stride));
  log_scale_ = register_parameter("log_scale", torch::zeros({o.channels}));
}

torch::Tensor GaussianVAEImpl::decode_location(const torch::Tensor& z) {
  const auto side = options_.latent_size();
  VQVAE2_CHECK(z.dim() == 4 && z.size(1) == options_.latent_channels && z.size(2) == side && z.size(3) == side,
               "the VAE decodes latents of shape [B, {}, {}, {}], got {}", options_.latent_channels, side, side,
               shape_of(z.sizes()));
  return decoder_->forward(z);
}

VAEOutput GaussianVAEImpl::forward(const torch::Tensor& x, int64_t step) {
  const auto& o = options_;
  VQVAE2_CHECK(x.dim() == 4 && x.size(1) == o.channels && x.size(2) == o.image_size && x.size(3) == o.image_size,
               "the VAE expects images of shape [B, {}, {}, {}], got {}", o.channels, o.image_size, o.image_size,
               shape_of(x.sizes()));
  VAEOutput out;
  const auto posterior = to_posterior_->forward(encoder_->forward(x));  // [B, 2Z, S', S']
  const auto halves = posterior.chunk(2, /*dim=*/1);
  out.mu = halves[0];
  out.log_var = halves[1].clamp(kMinLogVar, kMaxLogVar);
  out.z = functional::reparameterize(out.mu, out.log_var, torch::randn_like(out.mu));
  const auto location = decode_location(out.z);  // m [B, C, S, S]
  out.reconstruction = location.clamp(-1, 1);

  // p(x|z): the pixels k = round((x + 1)·127.5) under the per-channel discretised logistic.
  const auto pixels = ((x.detach().to(torch::kFloat) + 1) * 127.5).round().clamp(0, 255);
  const auto log_prob =
      functional::discretized_logistic_log_prob(pixels, location, log_scale_.view({1, o.channels, 1, 1}));
  out.nll = -log_prob.flatten(1).sum(1);  // [B]

  const auto kl_map = functional::gaussian_kl(out.mu.to(torch::kFloat), out.log_var.to(torch::kFloat));
  out.kl = kl_map.flatten(1).sum(1);        // [B]
  out.kl_per_dim = kl_map.mean({0, 2, 3});  // [Z]: per latent unit, averaged over batch and positions
  out.elbo_nats = out.kl + out.nll;
  out.bits_per_dim = functional::bits_per_dim(out.elbo_nats.mean(), o.image_dims());

  // Objective per image: nll + β_KL · KL, with free bits applied per latent channel: the channel's
  // batch-mean KL over its S'·S' units is kept at least S'·S'·λ (Σ_z S'² max(λ, kl_per_dim_z)).
  const auto units = static_cast<double>(o.latent_size() * o.latent_size());
  const auto kl_term = o.free_bits > 0 ? units * functional::free_bits_kl(out.kl_per_dim, o.free_bits) : out.kl.mean();
  const auto beta = functional::kl_weight(step, o.kl_warmup_steps);
  // Per dimension, so the loss and its gradients have one scale for every image size.
  out.loss = (out.nll.mean() + beta * kl_term) / static_cast<double>(o.image_dims());
  return out;
}

torch::Tensor GaussianVAEImpl::decode(const torch::Tensor& z) { return decode_location(z).clamp(-1, 1); }

torch::Tensor GaussianVAEImpl::sample(int64_t n, uint64_t seed) {
  VQVAE2_CHECK(n >= 1, "the number of samples must be at least 1, got {}", n);
  torch::NoGradGuard no_grad;
  const auto side = options_.latent_size();
  auto generator = at::detail::createCPUGenerator(seed);
  const auto z =
      torch::randn({n, options_.latent_channels, side, side}, generator, torch::TensorOptions().dtype(torch::kFloat));
  return decode(z.to(log_scale_.device()));
}

int64_t GaussianVAEImpl::forward_macs() const {
  const auto side = options_.latent_size();
  return encoder_->macs(options_.image_size, options_.image_size) + side * side * to_posterior_->weight.numel() +
         decoder_->macs(side, side);
}

void GaussianVAEImpl::pretty_print(std::ostream& stream) const {
  stream << "GaussianVAE(S=" << options_.image_size << ", C=" << options_.channels << ", stride=" << options_.stride
         << ", Z=" << options_.latent_channels;
  if (options_.kl_warmup_steps > 0) stream << ", kl_warmup_steps=" << options_.kl_warmup_steps;
  if (options_.free_bits > 0) stream << ", free_bits=" << options_.free_bits;
  stream << ")";
}

}  // namespace vqvae2
