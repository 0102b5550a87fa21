#include "tiny_priors.h"

#include <gtest/gtest.h>

namespace vqvae2::test {

const std::vector<std::string> kBlocks = {"gated-two-stream", "pixelsnail"};

GatedPixelCNNOptions tiny_stack(int64_t codes, bool attention, int64_t condition_channels, const std::string& block) {
  GatedPixelCNNOptions o;
  o.block = block;
  o.codes = codes;
  o.channels = 16;
  o.res_channels = 12;
  o.kernel = 5;
  o.blocks = 2;
  o.res_blocks = 2;
  o.attention = attention;
  o.heads = 2;
  o.dropout = 0.1;
  o.condition_channels = condition_channels;
  return o;
}

PriorOptions tiny_top(int64_t height, int64_t width, const std::string& block) {
  PriorOptions o;
  o.level = 1;
  o.height = height;
  o.width = width;
  o.stack = tiny_stack(11, /*attention=*/true, 0, block);
  return o;
}

PriorOptions tiny_bottom(const std::string& block) {
  PriorOptions o;
  o.level = 0;
  o.height = 8;
  o.width = 6;
  o.stack = tiny_stack(13, /*attention=*/false, /*condition_channels=*/8, block);
  o.conditional = true;
  o.condition.codes = 11;
  o.condition.channels = 8;
  o.condition.res_blocks = 2;
  o.condition.scale = 2;
  return o;
}

void expect_causal(Prior& prior, const torch::Tensor& condition_codes) {
  prior->eval();
  const auto H = prior->options().height, W = prior->options().width;
  // PixelSNAIL's convolutions alone have a blind spot: (i, 0) cannot see the end of row i-1.
  const auto& stack = prior->options().stack;
  const bool blind_spot = stack.pixelsnail() && !stack.attention;
  const auto codes = torch::randint(0, prior->options().stack.codes, {2, H, W}, torch::kLong);
  const auto condition = prior->condition_features(condition_codes);
  for (int64_t p = 0; p < H * W; ++p) {
    const auto embedded = prior->stack().embed(codes).detach().requires_grad_(true);
    const auto logits = prior->stack().forward_embedded(embedded, condition.defined() ? condition.detach() : condition);
    logits.select(3, p % W).select(2, p / W).sum().backward();
    const auto influence = embedded.grad().abs().sum(std::vector<int64_t>{0, 1}).flatten();  // [H·W]
    for (int64_t q = p; q < H * W; ++q) {
      ASSERT_EQ(influence[q].item<float>(), 0.0f) << "output " << p << " depends on input " << q;
    }
    if (p > 0 && !(blind_spot && p % W == 0)) {
      EXPECT_GT(influence[p - 1].item<float>(), 0.0f) << "output " << p << " ignores the code just before it";
    }
    if (p >= W) {
      EXPECT_GT(influence[p - W].item<float>(), 0.0f) << "output " << p << " ignores the code above it";
    }
  }
}

}  // namespace vqvae2::test
