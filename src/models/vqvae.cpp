#include "vqvae2/models/vqvae.h"

#include "vqvae2/core/error.h"
#include "vqvae2/models/conv_transpose.h"

#include <numeric>

namespace vqvae2 {

namespace nn = torch::nn;

namespace {

bool is_power_of_two(int64_t v) { return v >= 2 && (v & (v - 1)) == 0; }

int64_t log2_exact(int64_t v) {
  int64_t n = 0;
  while (v > 1) v >>= 1, ++n;
  return n;
}

nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1, int64_t padding = 0) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding));
}

// Multiply-accumulates of a chain of modules applied in order to an [*, *, h, w] input; h and w
// are updated to the output's size. Knows the layer types this file builds, all of which scale the
// side exactly by their stride (padded 'same' convolutions, 4×4/2 down, 4×4/2 transposed up).
int64_t chain_macs(const nn::Sequential& chain, int64_t& h, int64_t& w) {
  int64_t macs = 0;
  for (const auto& child : chain->children()) {
    if (const auto* c = child->as<nn::Conv2d>()) {
      const auto stride = (*c->options.stride())[0];
      h /= stride, w /= stride;
      macs += h * w * c->weight.numel();
    } else if (const auto* t = child->as<DoublingConvTransposeImpl>()) {
      // Every input pixel meets every weight once: the transposed convolution's own work, not the
      // 9/4 of it that its zero-padded phase kernel runs.
      macs += h * w * t->weight().numel();
      h *= 2, w *= 2;
    } else if (child->as<ResidualBlockImpl>()) {
      for (const auto& p : child->parameters()) {
        if (p.dim() == 4) macs += h * w * p.numel();
      }
    }
  }
  return macs;
}

}  // namespace

// ---- options ----------------------------------------------------------------------------------

int64_t VQVAEOptions::codes_at(int64_t level) const {
  return codes.size() == 1 ? codes[0] : codes.at(level);
}

int64_t VQVAEOptions::code_dim_at(int64_t level) const {
  return code_dims.size() == 1 ? code_dims[0] : code_dims.at(level);
}

int64_t VQVAEOptions::latent_size(int64_t level) const {
  int64_t side = image_size;
  for (int64_t l = 0; l <= level; ++l) side /= strides.at(l);
  return side;
}

QuantizerOptions VQVAEOptions::quantizer_at(int64_t level) const {
  QuantizerOptions q = quantizer;
  q.codes = codes_at(level);
  q.dim = code_dim_at(level);
  return q;
}

void VQVAEOptions::validate() const {
  // Upper bounds far beyond any real model keep a damaged or hostile configuration from asking for
  // absurd amounts of memory.
  format().validate();
  VQVAE2_CHECK(hidden >= 2 && hidden <= 8192 && hidden % 2 == 0, "hidden width must be an even number in [2, 8192], got {}",
               hidden);
  VQVAE2_CHECK(res_blocks >= 0 && res_blocks <= 256, "residual blocks must be in [0, 256], got {}", res_blocks);
  VQVAE2_CHECK(res_channels >= 1 && res_channels <= 8192, "residual channels must be in [1, 8192], got {}", res_channels);
  VQVAE2_CHECK(!strides.empty() && strides.size() <= 8, "give 1 to 8 levels (strides), got {}", strides.size());
  int64_t total = 1;
  for (const auto s : strides) {
    VQVAE2_CHECK(is_power_of_two(s) && s <= 1024, "every stride must be a power of two in [2, 1024], got {}",
                 fmt::join(strides, ","));
    total *= s;
  }
  VQVAE2_CHECK(image_size >= total && image_size % total == 0,
               "image size {} must be a multiple of the total downsampling {} (strides {}); try {}",
               image_size, total, fmt::join(strides, ","), std::max<int64_t>(total, image_size / total * total));
  VQVAE2_CHECK(codes.size() == 1 || static_cast<int64_t>(codes.size()) == levels(),
               "give one codebook size or one per level ({} levels), got {}", levels(), fmt::join(codes, ","));
  VQVAE2_CHECK(code_dims.size() == 1 || static_cast<int64_t>(code_dims.size()) == levels(),
               "give one code width or one per level ({} levels), got {}", levels(), fmt::join(code_dims, ","));
  for (int64_t l = 0; l < levels(); ++l) quantizer_at(l).validate();
}

// ---- building blocks ----------------------------------------------------------------------------

ResidualBlockImpl::ResidualBlockImpl(int64_t channels, int64_t res_channels)
    : conv3_(register_module("conv3", conv(channels, res_channels, /*kernel=*/3, /*stride=*/1, /*padding=*/1))),
      conv1_(register_module("conv1", conv(res_channels, channels, /*kernel=*/1))) {}

torch::Tensor ResidualBlockImpl::forward(const torch::Tensor& x) {
  return x + conv1_(torch::relu(conv3_(torch::relu(x))));
}

EncoderImpl::EncoderImpl(int64_t in_channels, int64_t hidden, int64_t res_blocks, int64_t res_channels,
                         int64_t stride) {
  VQVAE2_CHECK(is_power_of_two(stride), "encoder stride must be a power of two >= 2, got {}", stride);
  // log2(stride) halvings: the first to h/2 channels, the rest to h (the reference's ×4 and ×2
  // encoders are the cases log2 = 2 and 1), then a 3×3 conv to h.
  const auto halvings = log2_exact(stride);
  int64_t channels = in_channels;
  for (int64_t i = 0; i < halvings; ++i) {
    const int64_t out = i == 0 ? hidden / 2 : hidden;
    body_->push_back(conv(channels, out, /*kernel=*/4, /*stride=*/2, /*padding=*/1));
    body_->push_back(nn::ReLU());
    channels = out;
  }
  body_->push_back(conv(channels, hidden, /*kernel=*/3, /*stride=*/1, /*padding=*/1));
  for (int64_t i = 0; i < res_blocks; ++i) body_->push_back(ResidualBlock(hidden, res_channels));
  body_->push_back(nn::ReLU());
  register_module("body", body_);
}

torch::Tensor EncoderImpl::forward(const torch::Tensor& x) { return body_->forward(x); }

int64_t EncoderImpl::macs(int64_t height, int64_t width) const { return chain_macs(body_, height, width); }

DecoderImpl::DecoderImpl(int64_t in_channels, int64_t out_channels, int64_t hidden, int64_t res_blocks,
                         int64_t res_channels, int64_t stride) {
  VQVAE2_CHECK(is_power_of_two(stride), "decoder stride must be a power of two >= 2, got {}", stride);
  body_->push_back(conv(in_channels, hidden, /*kernel=*/3, /*stride=*/1, /*padding=*/1));
  for (int64_t i = 0; i < res_blocks; ++i) body_->push_back(ResidualBlock(hidden, res_channels));
  body_->push_back(nn::ReLU());
  // Mirror of the encoder: doublings at width h, the last two through h/2.
  const auto doublings = log2_exact(stride);
  int64_t channels = hidden;
  for (int64_t i = 0; i < doublings; ++i) {
    const bool last = i == doublings - 1;
    const int64_t out = last ? out_channels : (i == doublings - 2 ? hidden / 2 : hidden);
    body_->push_back(DoublingConvTranspose(channels, out));  // 4×4/2 transposed: side ×2
    if (!last) body_->push_back(nn::ReLU());
    channels = out;
  }
  register_module("body", body_);
}

torch::Tensor DecoderImpl::forward(const torch::Tensor& x) { return body_->forward(x); }

int64_t DecoderImpl::macs(int64_t height, int64_t width) const { return chain_macs(body_, height, width); }

// ---- the hierarchy ------------------------------------------------------------------------------

HierarchicalVQVAEImpl::HierarchicalVQVAEImpl(const VQVAEOptions& options) : options_(options) {
  options_.validate();
  const auto L = options_.levels();
  const auto h = options_.hidden;
  for (int64_t l = 0; l < L; ++l) {
    const auto name = std::to_string(l);
    encoders_.push_back(register_module(
        "encoder" + name, Encoder(l == 0 ? options_.channels : h, h, options_.res_blocks, options_.res_channels,
                                  options_.strides[l])));
    const int64_t condition_channels = l + 1 < L ? options_.code_dim_at(l + 1) : 0;
    pre_quantize_.push_back(
        register_module("pre_quantize" + name, conv(h + condition_channels, options_.code_dim_at(l), /*kernel=*/1)));
    quantizers_.push_back(register_module("quantizer" + name, make_quantizer(options_.quantizer_at(l))));
    if (l + 1 < L) {
      const auto d_above = options_.code_dim_at(l + 1);
      condition_decoders_.push_back(register_module(
          "condition_decoder" + name,
          Decoder(d_above, d_above, h, options_.res_blocks, options_.res_channels, options_.strides[l + 1])));
    }
    if (l >= 1) {
      // Level l is s_1·…·s_l times coarser than level 0: that many doublings, ReLU between.
      int64_t factor = 1;
      for (int64_t j = 1; j <= l; ++j) factor *= options_.strides[j];
      nn::Sequential up;
      const auto d = options_.code_dim_at(l);
      for (int64_t i = 0, n = log2_exact(factor); i < n; ++i) {
        if (i > 0) up->push_back(nn::ReLU());
        up->push_back(DoublingConvTranspose(d, d));
      }
      upsamplers_.push_back(register_module("upsample" + name, up));
    }
  }
  int64_t all_dims = 0;
  for (int64_t l = 0; l < L; ++l) all_dims += options_.code_dim_at(l);
  decoder_ = register_module("decoder", Decoder(all_dims, options_.channels, h, options_.res_blocks,
                                                options_.res_channels, options_.strides[0]));
}

std::vector<QuantizerOutput> HierarchicalVQVAEImpl::quantize_all(const torch::Tensor& x) {
  const auto L = options_.levels();
  VQVAE2_CHECK(x.dim() == 4 && x.size(1) == options_.channels && x.size(2) == options_.image_size &&
                   x.size(3) == options_.image_size,
               "the VQ-VAE expects images of shape [B, {}, {}, {}], got {}", options_.channels, options_.image_size,
               options_.image_size, shape_of(x.sizes()));
  std::vector<torch::Tensor> features(L);  // f_l: encoder features of level l
  features[0] = encoders_[0]->forward(x);
  for (int64_t l = 1; l < L; ++l) features[l] = encoders_[l]->forward(features[l - 1]);

  std::vector<QuantizerOutput> out(L);
  for (int64_t l = L - 1; l >= 0; --l) {
    auto input = features[l];
    if (l + 1 < L) input = torch::cat({input, condition_decoders_[l]->forward(out[l + 1].z_q)}, 1);
    out[l] = quantizers_[l]->forward(pre_quantize_[l]->forward(input));
  }
  return out;
}

torch::Tensor HierarchicalVQVAEImpl::decode_quantized(const std::vector<torch::Tensor>& z_q) {
  std::vector<torch::Tensor> parts{z_q[0]};
  for (size_t l = 1; l < z_q.size(); ++l) parts.push_back(upsamplers_[l - 1]->forward(z_q[l]));
  return decoder_->forward(torch::cat(parts, 1));
}

VQVAEOutput HierarchicalVQVAEImpl::forward(const torch::Tensor& x) {
  VQVAEOutput out;
  out.levels = quantize_all(x);
  std::vector<torch::Tensor> z_q;
  for (const auto& level : out.levels) z_q.push_back(level.z_q);
  out.reconstruction = decode_quantized(z_q);
  out.reconstruction_loss = torch::mse_loss(out.reconstruction, x);
  out.codebook_loss = torch::zeros({}, x.options());
  out.commitment_loss = torch::zeros({}, x.options());
  for (const auto& level : out.levels) {
    out.codebook_loss = out.codebook_loss + level.codebook_loss;
    out.commitment_loss = out.commitment_loss + level.commitment_loss;
  }
  out.loss = out.reconstruction_loss + out.codebook_loss + out.commitment_loss;
  return out;
}

std::vector<torch::Tensor> HierarchicalVQVAEImpl::encode(const torch::Tensor& x) {
  std::vector<torch::Tensor> codes;
  for (const auto& level : quantize_all(x)) codes.push_back(level.codes);
  return codes;
}

torch::Tensor HierarchicalVQVAEImpl::decode_codes(const std::vector<torch::Tensor>& codes) {
  const auto L = options_.levels();
  VQVAE2_CHECK(static_cast<int64_t>(codes.size()) == L, "expected {} code maps (one per level), got {}", L,
               codes.size());
  std::vector<torch::Tensor> z_q;
  for (int64_t l = 0; l < L; ++l) {
    const auto side = options_.latent_size(l);
    VQVAE2_CHECK(codes[l].dim() == 3 && codes[l].size(1) == side && codes[l].size(2) == side &&
                     codes[l].size(0) == codes[0].size(0),
                 "level {} codes must have shape [B, {}, {}], got {}", l, side, side, shape_of(codes[l].sizes()));
    z_q.push_back(quantizers_[l]->embed(codes[l].to(torch::kLong)));
  }
  return decode_quantized(z_q);
}

int64_t HierarchicalVQVAEImpl::forward_macs() const {
  const auto L = options_.levels();
  int64_t macs = 0;
  for (int64_t l = 0; l < L; ++l) {
    const auto in_side = l == 0 ? options_.image_size : options_.latent_size(l - 1);
    const auto side = options_.latent_size(l);
    macs += encoders_[l]->macs(in_side, in_side);
    const auto w = pre_quantize_[l]->weight;
    macs += side * side * w.numel();
    if (l + 1 < L) macs += condition_decoders_[l]->macs(options_.latent_size(l + 1), options_.latent_size(l + 1));
    if (l >= 1) {
      int64_t s = side, s2 = side;
      macs += chain_macs(upsamplers_[l - 1], s, s2);
    }
  }
  return macs + decoder_->macs(options_.latent_size(0), options_.latent_size(0));
}

std::vector<QuantizerImpl::State> HierarchicalVQVAEImpl::snapshot_quantizers() const {
  std::vector<QuantizerImpl::State> states;
  for (const auto& q : quantizers_) states.push_back(q->snapshot());
  return states;
}

void HierarchicalVQVAEImpl::restore_quantizers(const std::vector<QuantizerImpl::State>& states) {
  VQVAE2_CHECK(states.size() == quantizers_.size(), "{} quantizer snapshots for {} levels", states.size(),
               quantizers_.size());
  for (size_t l = 0; l < states.size(); ++l) quantizers_[l]->restore(states[l]);
}

void HierarchicalVQVAEImpl::set_dead_code_restarts(bool enabled) {
  for (auto& q : quantizers_) q->set_restarts_enabled(enabled);
}

}  // namespace vqvae2
