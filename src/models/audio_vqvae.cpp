#include "vqvae2/models/audio_vqvae.h"

#include "vqvae2/core/error.h"
#include "vqvae2/data/audio.h"

#include <cmath>

namespace vqvae2 {

namespace nn = torch::nn;

namespace {

bool is_power_of_two(int64_t v) { return v >= 2 && (v & (v - 1)) == 0; }

int64_t log2_exact(int64_t v) {
  int64_t n = 0;
  while (v > 1) v >>= 1, ++n;
  return n;
}

nn::Conv1d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1, int64_t padding = 0, int64_t dilation = 1) {
  return nn::Conv1d(nn::Conv1dOptions(in, out, kernel).stride(stride).padding(padding).dilation(dilation));
}

// Doubles T, appending to `body`:
//   "transposed"  a 4-tap transposed convolution, stride 2, padding 1: each output sample sees two
//                 input samples through one of two 2-tap kernels (odd and even outputs differ), so
//                 after n doublings any mismatch between those kernels repeats every 2^n samples: a
//                 comb of tones at multiples of fs / 2^n (1 kHz at 16 kHz after 4 doublings);
//   "nearest"     each sample repeated twice, then a 3-tap convolution: one kernel for every output
//                 ("resize-convolution", Odena et al. 2016, "Deconvolution and Checkerboard Artifacts").
void add_up2(nn::Sequential& body, int64_t in, int64_t out, const std::string& upsampling) {
  if (upsampling == "nearest") {
    body->push_back(nn::Upsample(nn::UpsampleOptions().scale_factor(std::vector<double>{2}).mode(torch::kNearest)));
    body->push_back(conv(in, out, /*kernel=*/3, /*stride=*/1, /*padding=*/1));
  } else {
    body->push_back(nn::ConvTranspose1d(nn::ConvTranspose1dOptions(in, out, /*kernel_size=*/4).stride(2).padding(1)));
  }
}

void add_residual_blocks(nn::Sequential& body, int64_t channels, int64_t res_channels, int64_t blocks, int64_t growth) {
  int64_t dilation = 1;
  for (int64_t i = 0; i < blocks; ++i, dilation *= growth) body->push_back(ResidualBlock1d(channels, res_channels, dilation));
}

// Magnitudes are floored as in Parallel WaveGAN: sqrt(max(|X|², 1e-7)).
const double kMagnitudeFloor = std::sqrt(1e-7);

}  // namespace

// ---- options ----------------------------------------------------------------------------------

int64_t AudioVQVAEOptions::codes_at(int64_t level) const { return codes.size() == 1 ? codes[0] : codes.at(level); }

int64_t AudioVQVAEOptions::code_dim_at(int64_t level) const {
  return code_dims.size() == 1 ? code_dims[0] : code_dims.at(level);
}

int64_t AudioVQVAEOptions::total_stride() const {
  int64_t total = 1;
  for (const auto s : strides) total *= s;
  return total;
}

int64_t AudioVQVAEOptions::latent_length(int64_t level, int64_t samples) const {
  int64_t length = samples > 0 ? samples : clip_length;
  for (int64_t l = 0; l <= level; ++l) length /= strides.at(l);
  return length;
}

QuantizerOptions AudioVQVAEOptions::quantizer_at(int64_t level) const {
  QuantizerOptions q = quantizer;
  q.codes = codes_at(level);
  q.dim = code_dim_at(level);
  return q;
}

void AudioVQVAEOptions::validate() const {
  VQVAE2_CHECK(hidden >= 2 && hidden <= 8192 && hidden % 2 == 0, "hidden width must be an even number in [2, 8192], got {}",
               hidden);
  VQVAE2_CHECK(res_blocks >= 0 && res_blocks <= 64, "residual blocks must be in [0, 64], got {}", res_blocks);
  VQVAE2_CHECK(res_channels >= 1 && res_channels <= 8192, "residual channels must be in [1, 8192], got {}", res_channels);
  VQVAE2_CHECK(dilation_growth >= 1 && dilation_growth <= 16, "dilation growth must be in [1, 16], got {}", dilation_growth);
  VQVAE2_CHECK(std::pow(static_cast<double>(dilation_growth), std::max<int64_t>(0, res_blocks - 1)) <= (1 << 20),
               "dilation growth {} over {} residual blocks makes dilations beyond 2^20; use fewer blocks",
               dilation_growth, res_blocks);
  VQVAE2_CHECK(sample_rate >= 1000 && sample_rate <= 1'000'000, "sample rate must be in [1000, 1000000] Hz, got {}",
               sample_rate);
  VQVAE2_CHECK(!strides.empty() && strides.size() <= 8, "give 1 to 8 levels (strides), got {}", strides.size());
  for (const auto s : strides) {
    VQVAE2_CHECK(is_power_of_two(s) && s <= 4096, "every stride must be a power of two in [2, 4096], got {}",
                 fmt::join(strides, ","));
  }
  const auto total = total_stride();
  VQVAE2_CHECK(total <= (int64_t{1} << 24), "the strides {} downsample by {}, more than 2^24", fmt::join(strides, ","),
               total);
  VQVAE2_CHECK(clip_length >= total && clip_length % total == 0 && clip_length <= (int64_t{1} << 24),
               "clip length {} must be a multiple of the total downsampling {} (strides {}) up to 2^24; try --clip-length {}",
               clip_length, total, fmt::join(strides, ","), std::max<int64_t>(total, clip_length / total * total));
  VQVAE2_CHECK(codes.size() == 1 || static_cast<int64_t>(codes.size()) == levels(),
               "give one codebook size or one per level ({} levels), got {}", levels(), fmt::join(codes, ","));
  VQVAE2_CHECK(code_dims.size() == 1 || static_cast<int64_t>(code_dims.size()) == levels(),
               "give one code width or one per level ({} levels), got {}", levels(), fmt::join(code_dims, ","));
  VQVAE2_CHECK(upsampling == "transposed" || upsampling == "nearest",
               "upsampling must be 'transposed' or 'nearest', got '{}'", upsampling);
  VQVAE2_CHECK(waveform_loss == "l1" || waveform_loss == "mse", "waveform loss must be 'l1' or 'mse', got '{}'",
               waveform_loss);
  VQVAE2_CHECK(stft_weight >= 0 && std::isfinite(stft_weight), "STFT loss weight must be >= 0, got {}", stft_weight);
  VQVAE2_CHECK(stft_weight == 0 || !stft_ffts.empty(), "the STFT loss needs at least one FFT size");
  for (const auto n : stft_ffts) {
    VQVAE2_CHECK(n >= 8 && n <= 65536 && n % 4 == 0, "STFT FFT sizes must be multiples of 4 in [8, 65536], got {}",
                 fmt::join(stft_ffts, ","));
  }
  for (int64_t l = 0; l < levels(); ++l) quantizer_at(l).validate();
}

// ---- the STFT loss ------------------------------------------------------------------------------

namespace functional {

STFTLoss multi_resolution_stft_loss(const torch::Tensor& x_hat, const torch::Tensor& x, const std::vector<int64_t>& ffts) {
  VQVAE2_CHECK(x_hat.sizes() == x.sizes() && x.dim() >= 1, "the STFT loss compares signals of one shape, got {} and {}",
               shape_of(x_hat.sizes()), shape_of(x.sizes()));
  VQVAE2_CHECK(!ffts.empty(), "the STFT loss needs at least one FFT size");
  auto convergence = torch::zeros({}, x.options());
  auto log_magnitude = torch::zeros({}, x.options());
  for (const auto n : ffts) {
    const auto s = stft_magnitude(x, n, n / 4, kMagnitudeFloor);          // |S_r x|
    const auto s_hat = stft_magnitude(x_hat, n, n / 4, kMagnitudeFloor);  // |S_r x̂|
    convergence = convergence + torch::frobenius_norm(s - s_hat) / torch::frobenius_norm(s);
    log_magnitude = log_magnitude + (torch::log(s) - torch::log(s_hat)).abs().mean();
  }
  const auto r = static_cast<double>(ffts.size());
  STFTLoss loss{convergence / r, log_magnitude / r, {}};
  loss.total = loss.spectral_convergence + loss.log_magnitude;
  return loss;
}

}  // namespace functional

// ---- building blocks ----------------------------------------------------------------------------

ResidualBlock1dImpl::ResidualBlock1dImpl(int64_t channels, int64_t res_channels, int64_t dilation)
    : conv3_(register_module("conv3", conv(channels, res_channels, /*kernel=*/3, /*stride=*/1, /*padding=*/dilation,
                                           dilation))),
      conv1_(register_module("conv1", conv(res_channels, channels, /*kernel=*/1))) {}

torch::Tensor ResidualBlock1dImpl::forward(const torch::Tensor& x) {
  return x + conv1_(torch::relu(conv3_(torch::relu(x))));
}

Encoder1dImpl::Encoder1dImpl(int64_t in_channels, int64_t hidden, int64_t res_blocks, int64_t res_channels,
                             int64_t dilation_growth, int64_t stride) {
  VQVAE2_CHECK(is_power_of_two(stride), "encoder stride must be a power of two >= 2, got {}", stride);
  int64_t channels = in_channels;
  for (int64_t i = 0, n = log2_exact(stride); i < n; ++i) {
    const int64_t out = i == 0 ? hidden / 2 : hidden;
    body_->push_back(conv(channels, out, /*kernel=*/4, /*stride=*/2, /*padding=*/1));
    body_->push_back(nn::ReLU());
    channels = out;
  }
  body_->push_back(conv(channels, hidden, /*kernel=*/3, /*stride=*/1, /*padding=*/1));
  add_residual_blocks(body_, hidden, res_channels, res_blocks, dilation_growth);
  body_->push_back(nn::ReLU());
  register_module("body", body_);
}

torch::Tensor Encoder1dImpl::forward(const torch::Tensor& x) { return body_->forward(x); }

Decoder1dImpl::Decoder1dImpl(int64_t in_channels, int64_t out_channels, int64_t hidden, int64_t res_blocks,
                             int64_t res_channels, int64_t dilation_growth, int64_t stride,
                             const std::string& upsampling) {
  VQVAE2_CHECK(is_power_of_two(stride), "decoder stride must be a power of two >= 2, got {}", stride);
  body_->push_back(conv(in_channels, hidden, /*kernel=*/3, /*stride=*/1, /*padding=*/1));
  add_residual_blocks(body_, hidden, res_channels, res_blocks, dilation_growth);
  body_->push_back(nn::ReLU());
  const auto doublings = log2_exact(stride);
  int64_t channels = hidden;
  for (int64_t i = 0; i < doublings; ++i) {
    const bool last = i == doublings - 1;
    const int64_t out = last ? out_channels : (i == doublings - 2 ? hidden / 2 : hidden);
    add_up2(body_, channels, out, upsampling);
    if (!last) body_->push_back(nn::ReLU());
    channels = out;
  }
  register_module("body", body_);
}

torch::Tensor Decoder1dImpl::forward(const torch::Tensor& x) { return body_->forward(x); }

// ---- the hierarchy ------------------------------------------------------------------------------

AudioVQVAEImpl::AudioVQVAEImpl(const AudioVQVAEOptions& options) : options_(options) {
  options_.validate();
  const auto L = options_.levels();
  const auto h = options_.hidden;
  const auto g = options_.dilation_growth;
  for (int64_t l = 0; l < L; ++l) {
    const auto name = std::to_string(l);
    encoders_.push_back(register_module(
        "encoder" + name,
        Encoder1d(l == 0 ? 1 : h, h, options_.res_blocks, options_.res_channels, g, options_.strides[l])));
    const int64_t condition_channels = l + 1 < L ? options_.code_dim_at(l + 1) : 0;
    pre_quantize_.push_back(
        register_module("pre_quantize" + name, conv(h + condition_channels, options_.code_dim_at(l), /*kernel=*/1)));
    quantizers_.push_back(register_module("quantizer" + name, make_quantizer(options_.quantizer_at(l))));
    if (l + 1 < L) {
      const auto d_above = options_.code_dim_at(l + 1);
      condition_decoders_.push_back(register_module(
          "condition_decoder" + name,
          Decoder1d(d_above, d_above, h, options_.res_blocks, options_.res_channels, g, options_.strides[l + 1],
                    options_.upsampling)));
    }
    if (l >= 1) {
      // Level l is s_1·…·s_l times coarser than level 0: that many doublings, ReLU between.
      int64_t factor = 1;
      for (int64_t j = 1; j <= l; ++j) factor *= options_.strides[j];
      nn::Sequential up;
      const auto d = options_.code_dim_at(l);
      for (int64_t i = 0, n = log2_exact(factor); i < n; ++i) {
        if (i > 0) up->push_back(nn::ReLU());
        add_up2(up, d, d, options_.upsampling);
      }
      upsamplers_.push_back(register_module("upsample" + name, up));
    }
  }
  int64_t all_dims = 0;
  for (int64_t l = 0; l < L; ++l) all_dims += options_.code_dim_at(l);
  decoder_ = register_module("decoder", Decoder1d(all_dims, 1, h, options_.res_blocks, options_.res_channels, g,
                                                  options_.strides[0], options_.upsampling));
}

void AudioVQVAEImpl::check_input(const torch::Tensor& x) const {
  const auto total = options_.total_stride();
  VQVAE2_CHECK(x.dim() == 3 && x.size(1) == 1 && x.size(2) >= total && x.size(2) % total == 0,
               "the audio VQ-VAE expects mono clips [B, 1, T] with T a positive multiple of {} (strides {}), got {}",
               total, fmt::join(options_.strides, ","), shape_of(x.sizes()));
}

std::vector<QuantizerOutput> AudioVQVAEImpl::quantize_all(const torch::Tensor& x) {
  check_input(x);
  const auto L = options_.levels();
  std::vector<torch::Tensor> features(L);  // f_l: encoder features of level l, [B, h, T_l]
  features[0] = encoders_[0]->forward(x);
  for (int64_t l = 1; l < L; ++l) features[l] = encoders_[l]->forward(features[l - 1]);

  std::vector<QuantizerOutput> out(L);
  for (int64_t l = L - 1; l >= 0; --l) {
    auto input = features[l];
    if (l + 1 < L) input = torch::cat({input, condition_decoders_[l]->forward(out[l + 1].z_q)}, 1);
    // [B, D, T_l] quantised as a one-row map [B, D, 1, T_l].
    out[l] = quantizers_[l]->forward(pre_quantize_[l]->forward(input).unsqueeze(2));
    out[l].z_q = out[l].z_q.squeeze(2);      // [B, D, T_l]
    out[l].codes = out[l].codes.squeeze(1);  // [B, T_l]
  }
  return out;
}

torch::Tensor AudioVQVAEImpl::decode_quantized(const std::vector<torch::Tensor>& z_q) {
  std::vector<torch::Tensor> parts{z_q[0]};
  for (size_t l = 1; l < z_q.size(); ++l) parts.push_back(upsamplers_[l - 1]->forward(z_q[l]));
  return decoder_->forward(torch::cat(parts, 1));
}

AudioVQVAEOutput AudioVQVAEImpl::forward(const torch::Tensor& x) {
  AudioVQVAEOutput out;
  out.levels = quantize_all(x);
  std::vector<torch::Tensor> z_q;
  for (const auto& level : out.levels) z_q.push_back(level.z_q);
  out.reconstruction = decode_quantized(z_q);
  out.waveform_mse = torch::mse_loss(out.reconstruction, x);
  out.waveform_loss = options_.waveform_loss == "mse" ? out.waveform_mse : torch::l1_loss(out.reconstruction, x);
  out.reconstruction_loss = out.waveform_loss;
  if (options_.stft_weight > 0) {
    out.stft = functional::multi_resolution_stft_loss(out.reconstruction.squeeze(1), x.squeeze(1), options_.stft_ffts);
    out.reconstruction_loss = out.reconstruction_loss + options_.stft_weight * out.stft.total;
  } else {
    const auto zero = torch::zeros({}, x.options());
    out.stft = {zero, zero, zero};
  }
  out.codebook_loss = torch::zeros({}, x.options());
  out.commitment_loss = torch::zeros({}, x.options());
  for (const auto& level : out.levels) {
    out.codebook_loss = out.codebook_loss + level.codebook_loss;
    out.commitment_loss = out.commitment_loss + level.commitment_loss;
  }
  out.loss = out.reconstruction_loss + out.codebook_loss + out.commitment_loss;
  return out;
}

std::vector<torch::Tensor> AudioVQVAEImpl::encode(const torch::Tensor& x) {
  std::vector<torch::Tensor> codes;
  for (const auto& level : quantize_all(x)) codes.push_back(level.codes);
  return codes;
}

torch::Tensor AudioVQVAEImpl::decode_codes(const std::vector<torch::Tensor>& codes) {
  const auto L = options_.levels();
  VQVAE2_CHECK(static_cast<int64_t>(codes.size()) == L, "expected {} code sequences (one per level), got {}", L,
               codes.size());
  VQVAE2_CHECK(codes[0].dim() == 2 && codes[0].size(0) >= 1 && codes[0].size(1) >= 1,
               "level 0 codes must have shape [B, T_0], got {}", shape_of(codes[0].sizes()));
  const auto samples = codes[0].size(1) * options_.strides[0];
  std::vector<torch::Tensor> z_q;
  for (int64_t l = 0; l < L; ++l) {
    const auto length = options_.latent_length(l, samples);
    VQVAE2_CHECK(samples % options_.total_stride() == 0 && codes[l].dim() == 2 && codes[l].size(0) == codes[0].size(0) &&
                     codes[l].size(1) == length,
                 "level {} codes must have shape [{}, {}] to go with {} level-0 codes (strides {}), got {}", l,
                 codes[0].size(0), length, codes[0].size(1), fmt::join(options_.strides, ","),
                 shape_of(codes[l].sizes()));
    const auto K = options_.codes_at(l);
    VQVAE2_CHECK(codes[l].numel() == 0 || (codes[l].min().item<int64_t>() >= 0 && codes[l].max().item<int64_t>() < K),
                 "level {} codes must lie in [0, {})", l, K);
    z_q.push_back(quantizers_[l]->embed(codes[l].to(torch::kLong).unsqueeze(1)).squeeze(2));  // [B, D, T_l]
  }
  return decode_quantized(z_q);
}

}  // namespace vqvae2
