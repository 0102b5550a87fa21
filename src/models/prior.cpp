#include "vqvae2/models/prior.h"

#include "vqvae2/core/error.h"
#include "vqvae2/models/activation.h"
#include "vqvae2/models/attention.h"

namespace vqvae2 {

namespace nn = torch::nn;

// ---- conditioning stack -------------------------------------------------------------------------

void ConditioningStackOptions::validate() const {
  VQVAE2_CHECK(codes >= 1 && codes <= 65536 && channels >= 1 && channels <= 8192 && res_blocks >= 0 &&
                   res_blocks <= 256 && kernel >= 1 && kernel <= 63 && kernel % 2 == 1 && scale >= 1 && scale <= 64,
               "bad conditioning stack: K {}, channels {}, blocks {}, kernel {}, scale {}", codes, channels,
               res_blocks, kernel, scale);
  VQVAE2_CHECK(upsample == "nearest" || upsample == "transposed",
               "conditioning upsampling must be nearest or transposed, got '{}'", upsample);
}

torch::Tensor background_features(int64_t height, int64_t width, int64_t scale, const torch::TensorOptions& options) {
  const auto rows = torch::arange(height, options.dtype(torch::kLong)).remainder(scale).view({height, 1});
  const auto cols = torch::arange(width, options.dtype(torch::kLong)).remainder(scale).view({1, width});
  const auto parity = torch::one_hot(rows * scale + cols, scale * scale).permute({2, 0, 1}).to(options.dtype());
  return torch::cat({position_features(height, width, options), parity});  // [2 + s², H, W]
}

ConditioningStackImpl::ConditioningStackImpl(const ConditioningStackOptions& o) : options_(o) {
  o.validate();
  const bool wn = o.weight_norm;
  embedding_ = register_module("embedding", nn::Embedding(o.codes, o.channels));
  const auto square = [&] { return WeightNormConv2d(o.channels, o.channels, o.kernel, o.kernel, wn); };
  input_ = register_module("input", square());
  for (int64_t b = 0; b < o.res_blocks; ++b) {
    const auto name = std::to_string(b);
    blocks_.emplace_back(register_module("block" + name + "_conv1", square()),
                         register_module("block" + name + "_conv2", square()));
  }
  if (o.upsample == "transposed") {
    upsample_ = register_module("upsample", WeightNormConv2d(o.channels, o.channels * o.scale * o.scale, 1, 1, wn));
  }
  if (o.position) {
    position_ = register_module(
        "position", WeightNormConv2d(2 + o.scale * o.scale, o.channels, 1, 1, wn, /*bias=*/false));
  }
}

torch::Tensor ConditioningStackImpl::conv(WeightNormConv2d& layer, const torch::Tensor& x) const {
  const auto p = options_.kernel / 2;
  return layer(torch::constant_pad_nd(x, {p, p, p, p}));
}

torch::Tensor ConditioningStackImpl::forward(const torch::Tensor& codes) {
  const auto s = options_.scale;
  auto x = conv(input_, embedding_map(embedding_, codes));
  for (auto& [conv1, conv2] : blocks_) x = x + conv(conv2, vqvae2::elu(conv(conv1, vqvae2::elu(x))));  // residual, non-causal
  x = vqvae2::elu(x);
  if (upsample_) {
    // Stride-s transposed convolution with an s×s kernel: child (a, b) of every upper position gets
    // W_ab · x + b_ab — a 1×1 convolution to C·s² channels rearranged depth-to-space.
    x = torch::pixel_shuffle(upsample_(x), s);
  } else {
    // Nearest neighbour: every code of the upper level covers s × s positions alike.
    x = x.repeat_interleave(s, 2).repeat_interleave(s, 3);
  }
  if (position_) {
    const auto background = background_features(x.size(2), x.size(3), s, x.options());
    x = x + position_(background.unsqueeze(0));  // [1, C, H, W], the same for every map of the batch
  }
  return x;
}

// ---- prior --------------------------------------------------------------------------------------

void PriorOptions::validate() const {
  VQVAE2_CHECK(level >= 0 && level < 8 && height >= 1 && width >= 1 && height <= 4096 && width <= 4096,
               "prior: bad level {} or map {}x{}", level, height, width);
  stack.validate();
  if (conditional) condition.validate();
  VQVAE2_CHECK(!conditional || (height % condition.scale == 0 && width % condition.scale == 0),
               "prior: map {}x{} is not a multiple of the conditioning scale {}", height, width, condition.scale);
  VQVAE2_CHECK(condition_dropout >= 0 && condition_dropout < 1, "prior: condition dropout must be in [0, 1), got {}",
               condition_dropout);
}

PriorImpl::PriorImpl(const PriorOptions& options) : options_(options) {
  // The stack's conditioning input is the conditioning stack's output.
  options_.stack.condition_channels = options_.conditional ? options_.condition.channels : 0;
  options_.validate();
  stack_ = register_module("stack", GatedPixelCNN(options_.stack));
  if (options_.conditional) conditioning_ = register_module("conditioning", ConditioningStack(options_.condition));
}

namespace {

// Throws unless every value of `codes` is in [0, K).
void check_code_range(const torch::Tensor& codes, int64_t K, const char* what, int64_t level) {
  VQVAE2_CHECK(codes.scalar_type() == torch::kLong, "the level-{} prior takes {} as int64, got {}", level, what,
               c10::toString(codes.scalar_type()));
  if (codes.numel() == 0) return;
  const auto low = codes.min().item<int64_t>(), high = codes.max().item<int64_t>();
  VQVAE2_CHECK(low >= 0 && high < K, "the level-{} prior takes {} in [0, {}), got values in [{}, {}]", level, what, K,
               low, high);
}

}  // namespace

void PriorImpl::check_condition(int64_t batch, const torch::Tensor& condition_codes) const {
  if (!options_.conditional) {
    VQVAE2_CHECK(!condition_codes.defined(), "the level-{} prior is unconditional: it takes no condition codes",
                 options_.level);
    return;
  }
  const auto s = options_.condition.scale;
  VQVAE2_CHECK(condition_codes.defined() && condition_codes.dim() == 3 && condition_codes.size(0) == batch &&
                   condition_codes.size(1) * s == options_.height && condition_codes.size(2) * s == options_.width,
               "the level-{} prior is conditioned on level-{} codes [{}, {}, {}] (one map per sample), got {}",
               options_.level, options_.level + 1, batch, options_.height / s, options_.width / s,
               condition_codes.defined() ? shape_of(condition_codes.sizes()) : std::string("none"));
  check_code_range(condition_codes, options_.condition.codes, "condition codes", options_.level);
}

void PriorImpl::check_inputs(const torch::Tensor& codes, const torch::Tensor& condition_codes) const {
  check_codes(codes);
  check_condition(codes.size(0), condition_codes);
}

void PriorImpl::check_codes(const torch::Tensor& codes) const {
  VQVAE2_CHECK(codes.dim() == 3 && codes.size(1) == options_.height && codes.size(2) == options_.width,
               "the level-{} prior expects codes [B, {}, {}], got {}", options_.level, options_.height,
               options_.width, shape_of(codes.sizes()));
  check_code_range(codes, options_.stack.codes, "codes", options_.level);
}

torch::Tensor PriorImpl::condition_features(const torch::Tensor& condition_codes) {
  return options_.conditional ? conditioning_->forward(condition_codes) : torch::Tensor();
}

torch::Tensor PriorImpl::forward(const torch::Tensor& codes, const torch::Tensor& condition_codes) {
  check_inputs(codes, condition_codes);
  auto features = condition_features(condition_codes);
  if (features.defined() && is_training() && options_.condition_dropout > 0) {
    // Withheld conditions look like zeros: forward_unconditional's input.
    const auto kept = torch::rand({features.size(0), 1, 1, 1}, features.options()).ge(options_.condition_dropout);
    features = features * kept.to(features.scalar_type());
  }
  return stack_->forward(codes, features);
}

torch::Tensor PriorImpl::forward_unconditional(const torch::Tensor& codes) {
  VQVAE2_CHECK(options_.conditional && options_.condition_dropout > 0,
               "the level-{} prior has no unconditional model: it {}", options_.level,
               options_.conditional ? "was trained without condition dropout (train-prior --condition-dropout)"
                                    : "is unconditional already");
  check_codes(codes);
  const auto features = torch::zeros({codes.size(0), options_.condition.channels, options_.height, options_.width},
                                     torch::TensorOptions().dtype(parameters().front().scalar_type()).device(codes.device()));
  return stack_->forward(codes, features);
}

torch::Tensor PriorImpl::loss(const torch::Tensor& codes, const torch::Tensor& condition_codes) {
  return torch::nn::functional::cross_entropy(forward(codes, condition_codes), codes);
}

int64_t PriorImpl::forward_macs() const {
  // Every weight of a convolution or linear layer meets every position of its map once (the
  // embeddings are lookups); attention adds N² · C/2 for scores and again for the weighted sum.
  const auto n = options_.height * options_.width;
  int64_t macs = 0;
  for (const auto& weight : per_position_weights(*stack_)) macs += n * weight.numel();
  macs += options_.stack.attention_blocks() * 2 * n * n * (options_.stack.channels / 2);
  if (options_.conditional) {
    const auto upper = n / (options_.condition.scale * options_.condition.scale);
    for (const auto& item : conditioning_->named_parameters()) {
      // Every layer runs on the upper map, but the position projection on the conditioned one.
      const bool fine = item.key().rfind("position", 0) == 0;
      if (item.value().dim() == 4) macs += (fine ? n : upper) * item.value().numel();
    }
  }
  return macs;
}

std::vector<torch::Tensor> per_position_weights(const torch::nn::Module& stack) {
  std::vector<torch::Tensor> weights;
  for (const auto& item : stack.named_parameters()) {
    if (item.value().dim() >= 2 && item.key().find("embedding") == std::string::npos) weights.push_back(item.value());
  }
  return weights;
}

}  // namespace vqvae2
