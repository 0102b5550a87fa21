#include "vqvae2/models/prior.h"

#include "vqvae2/core/error.h"
#include "vqvae2/models/sampler.h"

#include <gtest/gtest.h>

namespace vqvae2 {
namespace {

GatedPixelCNNOptions tiny_stack(int64_t codes, bool attention, int64_t condition_channels = 0) {
  GatedPixelCNNOptions o;
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

PriorOptions tiny_top(int64_t height = 6, int64_t width = 5) {
  PriorOptions o;
  o.level = 1;
  o.height = height;
  o.width = width;
  o.stack = tiny_stack(11, /*attention=*/true);
  return o;
}

PriorOptions tiny_bottom() {
  PriorOptions o;
  o.level = 0;
  o.height = 8;
  o.width = 6;
  o.stack = tiny_stack(13, /*attention=*/false, /*condition_channels=*/8);
  o.conditional = true;
  o.condition.codes = 11;
  o.condition.channels = 8;
  o.condition.res_blocks = 2;
  o.condition.scale = 2;
  return o;
}

// For every output position p: the gradient of its logits with respect to the embedded input is
// exactly zero at every position q >= p (raster order), and not zero everywhere before p.
void expect_causal(Prior& prior, const torch::Tensor& condition_codes) {
  prior->eval();
  const auto H = prior->options().height, W = prior->options().width;
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
    if (p > 0) {
      EXPECT_GT(influence[p - 1].item<float>(), 0.0f) << "output " << p << " ignores the code just before it";
    }
    if (p >= W) {
      EXPECT_GT(influence[p - W].item<float>(), 0.0f) << "output " << p << " ignores the code above it";
    }
  }
}

TEST(Prior, PixelSnailWithAttentionIsCausal) {
  torch::manual_seed(0);
  Prior prior(tiny_top());
  expect_causal(prior, {});
}

TEST(Prior, AttentionReachesTheFarPast) {
  // With attention the last position sees the first even though the convolutions' window does not
  // reach that far: the input convolution reaches 3 rows up and each of the 4 layers 4 more, 19 in
  // all, on a map of 24 rows.
  torch::manual_seed(0);
  auto options = tiny_top(24, 3);
  Prior prior(options);
  prior->eval();
  const auto codes = torch::randint(0, 11, {1, 24, 3}, torch::kLong);
  const auto embedded = prior->stack().embed(codes).detach().requires_grad_(true);
  prior->stack().forward_embedded(embedded).select(3, 2).select(2, 23).sum().backward();
  EXPECT_GT(embedded.grad().select(3, 0).select(2, 0).abs().sum().item<float>(), 0.0f);

  options.stack.attention = false;
  Prior convolutional(options);
  convolutional->eval();
  const auto e2 = convolutional->stack().embed(codes).detach().requires_grad_(true);
  convolutional->stack().forward_embedded(e2).select(3, 2).select(2, 23).sum().backward();
  EXPECT_EQ(e2.grad().select(3, 0).select(2, 0).abs().sum().item<float>(), 0.0f);
}

TEST(Prior, ConditionalPriorIsCausalAndUsesTheCondition) {
  torch::manual_seed(0);
  Prior prior(tiny_bottom());
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

TEST(Prior, GatedPixelCNNWithoutAttentionIsCausal) {
  torch::manual_seed(0);
  auto options = tiny_top();
  options.stack.attention = false;
  Prior prior(options);
  expect_causal(prior, {});
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

// ---- sampling ---------------------------------------------------------------------------------------

struct Recorded {
  std::vector<torch::Tensor> logits;
};

void expect_cached_equals_naive(Prior& prior, const torch::Tensor& condition, const SamplingOptions& options) {
  Recorded naive, cached;
  const auto a = sample_naive(prior, 3, condition, options, 42,
                              [&](int64_t, int64_t, const torch::Tensor& l) { naive.logits.push_back(l.clone()); });
  const auto b = sample_cached(prior, 3, condition, options, 42,
                               [&](int64_t, int64_t, const torch::Tensor& l) { cached.logits.push_back(l.clone()); });
  ASSERT_EQ(naive.logits.size(), cached.logits.size());
  double worst = 0;
  for (size_t p = 0; p < naive.logits.size(); ++p) {
    worst = std::max(worst, (naive.logits[p] - cached.logits[p]).abs().max().item<double>());
  }
  EXPECT_LT(worst, 1e-4) << "cached logits drift from the full recompute";
  EXPECT_TRUE(torch::equal(a, b)) << "the samplers picked different codes";
  // And the codes are not trivial: several distinct codes were drawn.
  EXPECT_GT(std::get<0>(at::_unique(a)).numel(), 3);
}

TEST(Sampler, CachedSamplingMatchesTheNaiveLoopForPixelSnail) {
  torch::manual_seed(3);
  Prior prior(tiny_top());
  expect_cached_equals_naive(prior, {}, {});
}

TEST(Sampler, CachedSamplingMatchesTheNaiveLoopForTheConditionalPrior) {
  torch::manual_seed(4);
  Prior prior(tiny_bottom());
  expect_cached_equals_naive(prior, torch::randint(0, 11, {3, 4, 3}, torch::kLong), {});
}

TEST(Sampler, CachedSamplingMatchesWithTemperatureTopKAndTopP) {
  torch::manual_seed(5);
  Prior prior(tiny_top());
  SamplingOptions options;
  options.temperature = 0.7;
  options.top_k = 6;
  options.top_p = 0.9;
  expect_cached_equals_naive(prior, {}, options);
}

TEST(Sampler, PickCodesFollowsTheDistribution) {
  // Logits of probabilities (0.5, 0.25, 0.25, 0): 20,000 inverse-CDF draws land in proportion.
  const auto logits = torch::log(torch::tensor({0.5f, 0.25f, 0.25f, 1e-20f})).unsqueeze(0).expand({20000, 4});
  const auto codes = pick_codes(logits, torch::rand({20000}), {});
  const auto counts = torch::bincount(codes, {}, 4).to(torch::kFloat) / 20000;
  EXPECT_NEAR(counts[0].item<float>(), 0.5, 0.02);
  EXPECT_NEAR(counts[1].item<float>(), 0.25, 0.02);
  EXPECT_EQ(counts[3].item<float>(), 0.0f);
  SamplingOptions greedy;
  greedy.temperature = 0;
  EXPECT_EQ(pick_codes(logits.slice(0, 0, 1), torch::tensor({0.99f}), greedy).item<int64_t>(), 0);
  SamplingOptions top1;
  top1.top_k = 1;
  EXPECT_EQ(pick_codes(logits.slice(0, 0, 1), torch::tensor({0.99f}), top1).item<int64_t>(), 0);
  SamplingOptions nucleus;
  nucleus.top_p = 0.6;  // keeps code 0 (0.5) and one of the 0.25s
  const auto limited = pick_codes(logits, torch::rand({20000}), nucleus);
  EXPECT_EQ(torch::bincount(limited, {}, 4)[3].item<int64_t>(), 0);
  EXPECT_LE(std::get<0>(at::_unique(limited)).numel(), 2);
}

TEST(Sampler, SameSeedSameSamplesOtherSeedOtherSamples) {
  torch::manual_seed(6);
  Prior prior(tiny_top());
  const auto a = sample_cached(prior, 2, {}, {}, 7);
  const auto b = sample_cached(prior, 2, {}, {}, 7);
  const auto c = sample_cached(prior, 2, {}, {}, 8);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_FALSE(torch::equal(a, c));
}

}  // namespace
}  // namespace vqvae2
