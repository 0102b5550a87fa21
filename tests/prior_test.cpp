#include "vqvae2/models/prior.h"

#include "test_util.h"
#include "tiny_priors.h"
#include "vqvae2/core/error.h"

#include <gtest/gtest.h>

namespace vqvae2 {
namespace {

using test::expect_causal;
using test::kBlocks;
using test::tiny_bottom;
using test::tiny_top;

TEST(Prior, ConditionalPriorIsCausalAndUsesTheCondition) {
  for (const auto& block : kBlocks) {
    SCOPED_TRACE(block);
    torch::manual_seed(0);
    Prior prior(tiny_bottom(block));
    const auto top = torch::randint(0, 11, {2, 4, 3}, torch::kLong);
    expect_causal(prior, top);
    prior->eval();
    torch::NoGradGuard no_grad;
    const auto codes = torch::randint(0, 13, {2, 8, 6}, torch::kLong);
    const auto other_top = (top + 1) % 11;
    const auto difference = (prior->forward(codes, top) - prior->forward(codes, other_top)).abs();
    // Every position, the very first included, depends on the condition.
    EXPECT_GT(difference.amin({1}).min().item<float>(), 0.0f);
  }
}

// ---- conditioning ---------------------------------------------------------------------------------

ConditioningStackOptions tiny_condition(const std::string& upsample, bool position) {
  ConditioningStackOptions o;
  o.codes = 7;
  o.channels = 6;
  o.res_blocks = 1;
  o.scale = 2;
  o.upsample = upsample;
  o.position = position;
  return o;
}

// The features of the s×s children of every upper position, as [B, C, h, w, s·s].
torch::Tensor children(const torch::Tensor& features, int64_t s) {
  const auto B = features.size(0), C = features.size(1), h = features.size(2) / s, w = features.size(3) / s;
  return features.reshape({B, C, h, s, w, s}).permute({0, 1, 2, 4, 3, 5}).reshape({B, C, h, w, s * s});
}

TEST(Conditioning, NearestNeighbourGivesTheChildrenOfACodeOneFeature) {
  torch::manual_seed(0);
  ConditioningStack stack(tiny_condition("nearest", false));
  torch::NoGradGuard no_grad;
  const auto c = children(stack->forward(torch::randint(0, 7, {2, 3, 4}, torch::kLong)), 2);
  EXPECT_TRUE(torch::equal(c, c.select(4, 0).unsqueeze(4).expand_as(c)));
}

TEST(Conditioning, LearnedUpsamplingAndPositionTellTheChildrenApart) {
  for (const auto& [upsample, position] : std::vector<std::pair<std::string, bool>>{
           {"transposed", false}, {"nearest", true}, {"transposed", true}}) {
    SCOPED_TRACE(upsample + (position ? " + position" : ""));
    torch::manual_seed(0);
    ConditioningStack stack(tiny_condition(upsample, position));
    torch::NoGradGuard no_grad;
    // Even under a map of one code repeated, the four children of every upper code differ pairwise.
    const auto c = children(stack->forward(torch::full({1, 3, 4}, 5, torch::kLong)), 2);
    for (int64_t a = 0; a < 4; ++a) {
      for (int64_t b = a + 1; b < 4; ++b) {
        const auto distance = (c.select(4, a) - c.select(4, b)).abs().sum(1);  // [B, h, w]
        EXPECT_GT(distance.min().item<float>(), 1e-4) << "children " << a << " and " << b << " get one feature";
      }
    }
  }
}

TEST(Conditioning, EachUpperCodeConditionsExactlyItsOwnChildren) {
  // With 1×1 convolutions the stack is local: changing upper code (a, b) must change the features of
  // the s×s positions under it and nothing else (tiling the map instead of upsampling it would not).
  for (const auto& upsample : {"nearest", "transposed"}) {
    SCOPED_TRACE(upsample);
    torch::manual_seed(0);
    auto options = tiny_condition(upsample, true);
    options.kernel = 1;
    ConditioningStack stack(options);
    torch::NoGradGuard no_grad;
    const auto upper = torch::randint(0, 7, {1, 3, 4}, torch::kLong);
    auto changed = upper.clone();
    changed[0][1][2] = (upper[0][1][2].item<int64_t>() + 1) % 7;
    const auto moved = (stack->forward(upper) - stack->forward(changed)).abs().sum(1)[0] > 0;  // [6, 8]
    auto expected = torch::zeros({6, 8}, torch::kBool);
    expected.slice(0, 2, 4).slice(1, 4, 6).fill_(true);
    EXPECT_TRUE(torch::equal(moved, expected)) << moved;
  }
}

TEST(Conditioning, BackgroundHoldsPositionAndParity) {
  const auto background = background_features(4, 6, 2, torch::TensorOptions());
  ASSERT_EQ(background.sizes(), (std::vector<int64_t>{6, 4, 6}));
  EXPECT_FLOAT_EQ(background[0][3][0].item<float>(), 0.25f);   // row 3 of 4: 3/4 - 0.5
  EXPECT_FLOAT_EQ(background[1][0][1].item<float>(), -1.0f / 3);  // column 1 of 6: 1/6 - 0.5
  EXPECT_EQ(background[2 + 3][3][5].item<float>(), 1.0f);    // (odd, odd): parity 1·2 + 1
  EXPECT_TRUE(torch::equal(background.slice(0, 2).sum(0), torch::ones({4, 6})));
}

TEST(Prior, LossIsTheCrossEntropyOfTheCodes) {
  torch::manual_seed(0);
  Prior prior(tiny_top());
  prior->eval();
  torch::NoGradGuard no_grad;
  const auto codes = torch::randint(0, 11, {3, 6, 5}, torch::kLong);
  const auto log_probabilities = torch::log_softmax(prior->forward(codes), 1);  // [B, K, H, W]
  const auto expected = -log_probabilities.gather(1, codes.unsqueeze(1)).mean();
  EXPECT_NEAR(prior->loss(codes).item<double>(), expected.item<double>(), 1e-5);
}

TEST(Prior, ConditionDropoutWithholdsWholeConditionsInTrainingOnly) {
  torch::manual_seed(2);
  auto options = tiny_bottom();
  options.stack.dropout = 0;  // only the condition is dropped: every map is one model or the other
  options.condition_dropout = 0.5;
  Prior prior(options);
  torch::NoGradGuard no_grad;
  const int64_t B = 64;
  const auto codes = torch::randint(0, 13, {B, 8, 6}, torch::kLong);
  const auto condition = torch::randint(0, 11, {B, 4, 3}, torch::kLong);
  prior->eval();
  const auto conditional = prior->forward(codes, condition);
  const auto unconditional = prior->forward_unconditional(codes);
  EXPECT_TRUE(torch::allclose(prior->forward(codes, condition), conditional));  // evaluation never drops
  prior->train();
  const auto trained = prior->forward(codes, condition);
  int64_t withheld = 0;
  for (int64_t b = 0; b < B; ++b) {
    const bool as_conditional = torch::allclose(trained[b], conditional[b], 1e-5, 1e-5);
    const bool as_unconditional = torch::allclose(trained[b], unconditional[b], 1e-5, 1e-5);
    EXPECT_NE(as_conditional, as_unconditional) << "map " << b << ": all of its condition or none of it";
    withheld += as_unconditional;
  }
  EXPECT_GT(withheld, 16);  // about half of 64 (binomial: 32 ± 4)
  EXPECT_LT(withheld, 48);
  auto bad = tiny_bottom();
  for (const double share : {-0.1, 1.0}) {
    bad.condition_dropout = share;
    EXPECT_THROW(Prior{bad}, Error);
  }
  // Options written before the field existed read as 0.
  auto json = nlohmann::json(tiny_bottom());
  json.erase("condition_dropout");
  EXPECT_EQ(json.get<PriorOptions>().condition_dropout, 0);
}

TEST(Prior, RejectsMismatchedInputs) {
  Prior top(tiny_top());
  EXPECT_THROW(top->forward(torch::zeros({1, 5, 5}, torch::kLong)), Error);
  Prior bottom(tiny_bottom());
  EXPECT_THROW(bottom->forward(torch::zeros({1, 8, 6}, torch::kLong)), Error);
  EXPECT_THROW(bottom->forward(torch::zeros({1, 8, 6}, torch::kLong), torch::zeros({1, 3, 3}, torch::kLong)), Error);
  auto bad = tiny_top();
  bad.stack.kernel = 4;
  EXPECT_THROW(Prior{bad}, Error);
}

}  // namespace
}  // namespace vqvae2
