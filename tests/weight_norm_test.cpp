#include "vqvae2/models/weight_norm.h"

#include <gtest/gtest.h>

#include <set>

namespace vqvae2 {
namespace {

std::set<std::string> names(const torch::nn::Module& module) {
  std::set<std::string> out;
  for (const auto& p : module.named_parameters()) out.insert(p.key());
  return out;
}

TEST(WeightNorm, EachOutputUnitHasNormGAndTheDirectionOfV) {
  torch::manual_seed(0);
  const auto v = torch::randn({4, 3, 2, 2});
  const auto g = torch::tensor({0.5f, 1.0f, 2.0f, 3.0f});
  const auto w = weight_norm(v, g);
  EXPECT_TRUE(torch::allclose(w.flatten(1).norm(2, 1), g, 1e-5, 1e-6));
  // Same direction: w_o = (g_o / ‖v_o‖) v_o.
  const auto ratio = w.flatten(1) / v.flatten(1);
  EXPECT_TRUE(torch::allclose(ratio, ratio.select(1, 0).unsqueeze(1).expand_as(ratio), 1e-4, 1e-6));
}

TEST(WeightNorm, AFreshLayerComputesTheSameWithOrWithoutIt) {
  const auto x = torch::randn({2, 3, 5, 5});
  torch::manual_seed(1);
  WeightNormConv2d plain(3, 4, 3, 2, /*weight_norm=*/false);
  torch::manual_seed(1);
  WeightNormConv2d normed(3, 4, 3, 2, /*weight_norm=*/true);
  EXPECT_TRUE(torch::allclose(plain(x), normed(x), 1e-5, 1e-6));
  const auto y = torch::randn({7, 6});
  torch::manual_seed(2);
  WeightNormLinear linear(6, 5, false);
  torch::manual_seed(2);
  WeightNormLinear normed_linear(6, 5, true);
  EXPECT_TRUE(torch::allclose(linear(y), normed_linear(y), 1e-5, 1e-6));
}

TEST(WeightNorm, OnlyTheGainSetsTheScale) {
  torch::manual_seed(3);
  WeightNormLinear layer(6, 5, /*weight_norm=*/true);
  const auto x = torch::randn({4, 6});
  const auto before = layer(x);
  {
    torch::NoGradGuard no_grad;
    layer->named_parameters()["weight"].mul_(7.0);  // v scaled: w unchanged
  }
  EXPECT_TRUE(torch::allclose(layer(x), before, 1e-5, 1e-6));
  layer(x).pow(2).sum().backward();
  for (const auto* name : {"weight", "gain", "bias"}) {
    const auto grad = layer->named_parameters()[name].grad();
    ASSERT_TRUE(grad.defined()) << name;
    EXPECT_GT(grad.abs().sum().item<float>(), 0.0f) << name;
  }
}

TEST(WeightNorm, ParametersKeepLibTorchsNamesAndShapes) {
  // So a model saved with torch::nn::Conv2d / Linear layers loads into these.
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(3, 4, {3, 2}));
  WeightNormConv2d ours(3, 4, 3, 2, false);
  EXPECT_EQ(names(*conv), names(*ours));
  EXPECT_EQ(conv->weight.sizes(), ours->named_parameters()["weight"].sizes());
  torch::nn::Linear linear(6, 5);
  WeightNormLinear our_linear(6, 5, false);
  EXPECT_EQ(names(*linear), names(*our_linear));
  WeightNormLinear normed(6, 5, true);
  EXPECT_EQ(names(*normed), (std::set<std::string>{"weight", "bias", "gain"}));
}

TEST(WeightNorm, AMaskIsAppliedBeforeNormalising) {
  torch::manual_seed(4);
  WeightNormConv2d conv(2, 3, 2, 3, /*weight_norm=*/true);
  auto mask = torch::ones({1, 1, 2, 3});
  mask[0][0][1][2] = 0;
  const auto w = conv->weight(mask);
  EXPECT_EQ(w.select(2, 1).select(2, 2).abs().sum().item<float>(), 0.0f);
  EXPECT_TRUE(torch::allclose(w.flatten(1).norm(2, 1), conv->named_parameters()["gain"], 1e-5, 1e-6));
}

}  // namespace
}  // namespace vqvae2
