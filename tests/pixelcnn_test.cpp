#include "vqvae2/models/pixelcnn.h"

#include "test_util.h"
#include "tiny_priors.h"
#include "vqvae2/models/gated.h"
#include "vqvae2/models/prior.h"

#include <gtest/gtest.h>

namespace vqvae2 {
namespace {

using test::expect_causal;
using test::kBlocks;
using test::tiny_bottom;
using test::tiny_stack;
using test::tiny_top;

TEST(PixelCNN, TopPriorWithAttentionIsCausalWithEitherBlock) {
  for (const auto& block : kBlocks) {
    SCOPED_TRACE(block);
    torch::manual_seed(0);
    Prior prior(tiny_top(6, 5, block));
    expect_causal(prior, {});
  }
}

TEST(PixelCNN, GradientsFromChannelsLastLayersReachTheLayersBelowContiguous) {
  torch::manual_seed(0);
  const auto leaf = torch::randn({2, 6, 4, 5}, torch::requires_grad());
  const auto weight = torch::randn({6, 6}), target = torch::randn({2, 6, 4, 5});
  // The gradient arriving at a layer's output `below` when the map made from it is read by a 1x1
  // layer over channels, with and without with_contiguous_gradient between the two.
  const auto arriving = [&](bool made_contiguous) {
    const auto below = leaf * 2;
    torch::Tensor seen;
    below.register_hook([&](const torch::Tensor& gradient) { seen = gradient; });
    auto map = below + 1;
    if (made_contiguous) map = with_contiguous_gradient(map);
    const auto y = over_channels(map, [&](const torch::Tensor& x) { return torch::linear(x, weight); });
    (y * target).sum().backward();
    return seen;
  };
  const auto plain = arriving(false), made = arriving(true);
  EXPECT_FALSE(plain.is_contiguous());  // what over_channels hands back: channels-last strides
  EXPECT_TRUE(made.is_contiguous());
  EXPECT_TRUE(torch::equal(plain, made));  // the same gradient, only laid out plainly
}

TEST(PixelCNN, WeightNormalisedStacksAreCausal) {
  for (const auto& block : kBlocks) {
    SCOPED_TRACE(block);
    torch::manual_seed(0);
    auto options = tiny_top(5, 5, block);
    options.stack.weight_norm = true;
    options.stack.attention_every = 3;
    Prior prior(options);
    expect_causal(prior, {});
  }
}

TEST(PixelCNN, PixelSnailConvolutionsHaveABlindSpotThatAttentionCovers) {
  // (1, 0) of a 2×5 map: the code at (0, 4), just before it, lies above and to the right.
  for (const bool attention : {false, true}) {
    SCOPED_TRACE(attention ? "with attention" : "without attention");
    torch::manual_seed(0);
    auto options = tiny_top(2, 5, "pixelsnail");
    options.stack.attention = attention;
    Prior prior(options);
    prior->eval();
    const auto codes = torch::randint(0, 11, {1, 2, 5}, torch::kLong);
    const auto embedded = prior->stack().embed(codes).detach().requires_grad_(true);
    prior->stack().forward_embedded(embedded).select(3, 0).select(2, 1).sum().backward();
    const auto seen = embedded.grad().select(3, 4).select(2, 0).abs().sum().item<float>();
    if (attention) {
      EXPECT_GT(seen, 0.0f);
    } else {
      EXPECT_EQ(seen, 0.0f);
    }
  }
}

TEST(PixelCNN, PixelSnailBlockReachesTwiceAsFarLeftPerLayer) {
  // Along a row (k = 5): the two-stream input sees 3 columns back and each horizontal unit 2 more,
  // 3 + 2·2 = 7 for two layers; PixelSNAIL's input 2 and each block's two causal 5×5 convolutions
  // 2 + 2, so 2 + 2·4 = 10.
  torch::manual_seed(0);
  const auto reach_left = [](const std::string& block) {
    auto options = tiny_top(1, 16, block);
    options.stack.attention = false;
    options.stack.blocks = 1;
    options.stack.res_blocks = 2;
    Prior prior(options);
    prior->eval();
    const auto codes = torch::randint(0, 11, {1, 1, 16}, torch::kLong);
    const auto embedded = prior->stack().embed(codes).detach().requires_grad_(true);
    prior->stack().forward_embedded(embedded).select(3, 15).select(2, 0).sum().backward();
    const auto influence = embedded.grad().abs().sum(std::vector<int64_t>{0, 1}).flatten();  // [16]
    int64_t reach = 0;
    for (int64_t q = 0; q < 15; ++q) {
      if (influence[q].item<float>() > 0) reach = std::max(reach, 15 - q);
    }
    return reach;
  };
  EXPECT_EQ(reach_left("gated-two-stream"), 7);
  EXPECT_EQ(reach_left("pixelsnail"), 10);
}

TEST(PixelCNN, GatedPixelCNNWithoutAttentionIsCausal) {
  for (const auto& block : kBlocks) {
    SCOPED_TRACE(block);
    torch::manual_seed(0);
    auto options = tiny_top(6, 5, block);
    options.stack.attention = false;
    Prior prior(options);
    expect_causal(prior, {});
  }
}

TEST(PixelCNN, AttentionFollowsEveryNLayers) {
  auto options = tiny_top();
  options.stack.blocks = 2;
  options.stack.res_blocks = 5;  // 10 layers
  options.stack.attention_every = 4;
  EXPECT_EQ(options.stack.attention_blocks(), 2);
  EXPECT_TRUE(options.stack.attention_after(3));
  EXPECT_TRUE(options.stack.attention_after(7));
  EXPECT_FALSE(options.stack.attention_after(4));
  EXPECT_FALSE(options.stack.attention_after(9));
  options.stack.attention_every = 0;  // one closing each group of res_blocks
  EXPECT_EQ(options.stack.attention_blocks(), 2);
  EXPECT_TRUE(options.stack.attention_after(4));
  EXPECT_TRUE(options.stack.attention_after(9));
  options.stack.attention_every = 5;
  Prior prior(options);
  int64_t blocks = 0;
  for (const auto& child : prior->stack().named_children()) blocks += child.key().rfind("attention", 0) == 0;
  EXPECT_EQ(blocks, 2);
  options.stack.attention_every = 11;
  EXPECT_THROW(Prior{options}, Error);
}

TEST(PixelCNN, OldConfigurationsMeanTheTwoStreamStack) {
  // A checkpoint written before the block, weight-norm and cadence options holds none of their keys:
  // it must still describe (and load into) the two-stream stack it was trained as, under its old names.
  auto old = nlohmann::json(tiny_stack(11, true));
  for (const auto* key : {"block", "weight_norm", "attention_every"}) old.erase(key);
  const auto parsed = old.get<GatedPixelCNNOptions>();
  EXPECT_EQ(parsed.block, "gated-two-stream");
  EXPECT_FALSE(parsed.weight_norm);
  EXPECT_EQ(parsed.attention_period(), parsed.res_blocks);
  GatedPixelCNN stack(parsed);
  std::set<std::string> names;
  for (const auto& p : stack->named_parameters()) names.insert(p.key());
  for (const auto* name : {"layer0.v_conv1.conv.weight", "layer0.h_conv2.weight", "layer0.link.bias",
                           "attention1.to_key.weight", "head0.first.weight", "logits.weight", "v_input.conv.bias"}) {
    EXPECT_EQ(names.count(name), 1u) << name;
  }
  for (const auto& name : names) EXPECT_EQ(name.find("gain"), std::string::npos) << name;
}

TEST(PixelCNN, WeightNormAddsOneGainPerOutputUnitToEveryLayer) {
  for (const auto& block : kBlocks) {
    SCOPED_TRACE(block);
    auto options = tiny_bottom(block);
    options.stack.weight_norm = options.condition.weight_norm = true;
    Prior prior(options);
    for (const auto& p : prior->named_parameters()) {
      const auto& name = p.key();
      if (p.value().dim() < 2 || name.find("embedding") != std::string::npos) continue;
      // Every weight matrix or kernel v has its gain g beside it, one per output unit.
      const auto gain = name.substr(0, name.size() - std::string("weight").size()) + "gain";
      const auto* g = prior->named_parameters().find(gain);
      ASSERT_NE(g, nullptr) << name << " has no gain";
      EXPECT_EQ(g->numel(), p.value().size(0)) << name;
    }
  }
}

}  // namespace
}  // namespace vqvae2
