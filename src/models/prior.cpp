#include "vqvae2/models/prior.h"

#include "vqvae2/core/error.h"

namespace vqvae2 {

namespace nn = torch::nn;

// ---- conditioning stack -------------------------------------------------------------------------

void ConditioningStackOptions::validate() const {
  VQVAE2_CHECK(codes >= 1 && codes <= 65536 && channels >= 1 && channels <= 8192 && res_blocks >= 0 &&
                   res_blocks <= 256 && kernel >= 1 && kernel <= 63 && kernel % 2 == 1 && scale >= 1 && scale <= 64,
               "bad conditioning stack: K {}, channels {}, blocks {}, kernel {}, scale {}", codes, channels,
               res_blocks, kernel, scale);
}

ConditioningStackImpl::ConditioningStackImpl(const ConditioningStackOptions& o) : options_(o) {
  o.validate();
  embedding_ = register_module("embedding", nn::Embedding(o.codes, o.channels));
  const auto conv = [&] {
    return nn::Conv2d(nn::Conv2dOptions(o.channels, o.channels, o.kernel).padding(o.kernel / 2));
  };
  input_ = register_module("input", conv());
  for (int64_t b = 0; b < o.res_blocks; ++b) {
    const auto name = std::to_string(b);
    blocks_.emplace_back(register_module("block" + name + "_conv1", conv()),
                         register_module("block" + name + "_conv2", conv()));
  }
}

torch::Tensor ConditioningStackImpl::forward(const torch::Tensor& codes) {
  auto x = input_(embedding_(codes).permute({0, 3, 1, 2}));
  for (auto& [conv1, conv2] : blocks_) x = x + conv2(torch::elu(conv1(torch::elu(x))));  // residual, non-causal
  x = torch::elu(x);
  // Nearest-neighbour upsampling: every code of the upper level covers scale × scale positions.
  return x.repeat_interleave(options_.scale, 2).repeat_interleave(options_.scale, 3);
}

// ---- prior --------------------------------------------------------------------------------------

void PriorOptions::validate() const {
  VQVAE2_CHECK(level >= 0 && level < 8 && height >= 1 && width >= 1 && height <= 4096 && width <= 4096,
               "prior: bad level {} or map {}x{}", level, height, width);
  stack.validate();
  if (conditional) condition.validate();
  VQVAE2_CHECK(!conditional || (height % condition.scale == 0 && width % condition.scale == 0),
               "prior: map {}x{} is not a multiple of the conditioning scale {}", height, width, condition.scale);
}

PriorImpl::PriorImpl(const PriorOptions& options) : options_(options) {
  // The stack's conditioning input is the conditioning stack's output.
  options_.stack.condition_channels = options_.conditional ? options_.condition.channels : 0;
  options_.validate();
  stack_ = register_module("stack", GatedPixelCNN(options_.stack));
  if (options_.conditional) conditioning_ = register_module("conditioning", ConditioningStack(options_.condition));
}

void PriorImpl::check_inputs(const torch::Tensor& codes, const torch::Tensor& condition_codes) const {
  VQVAE2_CHECK(codes.dim() == 3 && codes.size(1) == options_.height && codes.size(2) == options_.width,
               "the level-{} prior expects codes [B, {}, {}], got {}", options_.level, options_.height,
               options_.width, shape_of(codes.sizes()));
  if (!options_.conditional) return;
  const auto s = options_.condition.scale;
  VQVAE2_CHECK(condition_codes.defined() && condition_codes.dim() == 3 && condition_codes.size(0) == codes.size(0) &&
                   condition_codes.size(1) * s == options_.height && condition_codes.size(2) * s == options_.width,
               "the level-{} prior is conditioned on level-{} codes [B, {}, {}]", options_.level, options_.level + 1,
               options_.height / s, options_.width / s);
}

torch::Tensor PriorImpl::condition_features(const torch::Tensor& condition_codes) {
  return options_.conditional ? conditioning_->forward(condition_codes) : torch::Tensor();
}

torch::Tensor PriorImpl::forward(const torch::Tensor& codes, const torch::Tensor& condition_codes) {
  check_inputs(codes, condition_codes);
  return stack_->forward(codes, condition_features(condition_codes));
}

torch::Tensor PriorImpl::loss(const torch::Tensor& codes, const torch::Tensor& condition_codes) {
  return torch::nn::functional::cross_entropy(forward(codes, condition_codes), codes);
}

int64_t PriorImpl::forward_macs() const {
  // Every weight of a convolution or linear layer meets every position of its map once (the
  // embeddings are lookups); attention adds N² · C/2 for scores and again for the weighted sum.
  const auto n = options_.height * options_.width;
  int64_t macs = 0;
  for (const auto& item : stack_->named_parameters()) {
    const auto& name = item.key();
    if (item.value().dim() >= 2 && name.find("embedding") == std::string::npos) macs += n * item.value().numel();
  }
  if (options_.stack.attention) macs += options_.stack.blocks * 2 * n * n * (options_.stack.channels / 2);
  if (options_.conditional) {
    const auto upper = n / (options_.condition.scale * options_.condition.scale);
    for (const auto& item : conditioning_->named_parameters()) {
      if (item.value().dim() == 4) macs += upper * item.value().numel();
    }
  }
  return macs;
}

// ---- presets ------------------------------------------------------------------------------------

namespace {

GatedPixelCNNOptions stack_options(int64_t codes, PriorSize size) {
  GatedPixelCNNOptions o;  // the struct defaults are the reference widths
  o.codes = codes;
  if (size == PriorSize::kSmall) {
    o.channels = 64;
    o.res_channels = 64;
    o.blocks = 2;
    o.res_blocks = 2;
    o.heads = 4;
  }
  return o;
}

}  // namespace

PriorSize parse_prior_size(const std::string& name) {
  if (name == "small") return PriorSize::kSmall;
  if (name == "reference") return PriorSize::kReference;
  fail("unknown prior size '{}': use small or reference", name);
}

PriorOptions top_prior_options(int64_t level, int64_t height, int64_t width, int64_t codes, PriorSize size) {
  PriorOptions o;
  o.level = level;
  o.height = height;
  o.width = width;
  o.stack = stack_options(codes, size);
  o.stack.attention = true;
  return o;
}

PriorOptions conditional_prior_options(int64_t level, int64_t height, int64_t width, int64_t codes,
                                       int64_t condition_codes, int64_t scale, PriorSize size) {
  auto o = top_prior_options(level, height, width, codes, size);
  o.stack.attention = false;
  o.conditional = true;
  o.condition.codes = condition_codes;
  o.condition.scale = scale;
  if (size == PriorSize::kSmall) {
    o.condition.channels = 64;
    o.condition.res_blocks = 3;
  }
  return o;
}

}  // namespace vqvae2
