#include "vqvae2/models/sampler.h"

#include "test_util.h"
#include "tiny_priors.h"
#include "vqvae2/core/device.h"
#include "vqvae2/core/error.h"
#include "vqvae2/models/prior.h"

#include <gtest/gtest.h>

#include <set>

namespace vqvae2 {
namespace {

using test::kBlocks;
using test::tiny_bottom;
using test::tiny_top;

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

TEST(Sampler, TinyPerPositionStepsRunOnOneThreadAndThePoolIsRestored) {
  configure_threads({2, 0});
  torch::manual_seed(3);
  Prior prior(tiny_top());
  EXPECT_EQ(step_threads(prior->stack(), 1), 1);
  EXPECT_EQ(step_threads(prior->stack(), 1 << 20), 2);  // a huge batch is worth the whole pool
  std::set<int> threads_at_positions;
  sample_cached(prior, 2, {}, {}, 0,
                [&](int64_t, int64_t, const torch::Tensor&) { threads_at_positions.insert(at::get_num_threads()); });
  EXPECT_EQ(threads_at_positions, std::set<int>{1});
  EXPECT_EQ(at::get_num_threads(), 2);
  configure_threads({});
}

TEST(Sampler, CachedSamplingMatchesTheNaiveLoopForTheTopPrior) {
  for (const auto& block : kBlocks) {
    SCOPED_TRACE(block);
    torch::manual_seed(3);
    Prior prior(tiny_top(6, 5, block));
    expect_cached_equals_naive(prior, {}, {});
  }
}

TEST(Sampler, CachedSamplingMatchesTheNaiveLoopWithWeightNormAndAnyAttentionCadence) {
  for (const auto& block : kBlocks) {
    SCOPED_TRACE(block);
    torch::manual_seed(3);
    auto options = tiny_top(5, 5, block);
    options.stack.weight_norm = true;
    options.stack.kernel = 3;
    options.stack.attention_every = 3;  // after layer 3 of 4: not at the end of the stack
    Prior prior(options);
    expect_cached_equals_naive(prior, {}, {});
  }
}

TEST(Sampler, CachedSamplingMatchesTheNaiveLoopForTheConditionalPrior) {
  for (const auto& block : kBlocks) {
    SCOPED_TRACE(block);
    torch::manual_seed(4);
    Prior prior(tiny_bottom(block));
    expect_cached_equals_naive(prior, torch::randint(0, 11, {3, 4, 3}, torch::kLong), {});
  }
}

TEST(Sampler, CachedSamplingMatchesTheNaiveLoopWithPositionAwareConditioning) {
  for (const auto& block : kBlocks) {
    SCOPED_TRACE(block);
    torch::manual_seed(4);
    auto options = tiny_bottom(block);
    options.condition.upsample = "transposed";
    options.condition.position = true;
    options.condition.weight_norm = options.stack.weight_norm = true;
    Prior prior(options);
    expect_cached_equals_naive(prior, torch::randint(0, 11, {3, 4, 3}, torch::kLong), {});
  }
}

TEST(Sampler, CachedSamplingMatchesWithTemperatureTopKAndTopP) {
  for (const auto& block : kBlocks) {
    SCOPED_TRACE(block);
    torch::manual_seed(5);
    Prior prior(tiny_top(6, 5, block));
    SamplingOptions options;
    options.temperature = 0.7;
    options.top_k = 6;
    options.top_p = 0.9;
    expect_cached_equals_naive(prior, {}, options);
    options.exact_first = 4;  // the first row and a bit of the exact model, then the truncated one
    expect_cached_equals_naive(prior, {}, options);
  }
}

TEST(Sampler, ExactFirstPositionsAreDrawnFromTheExactModelAndOnlyThey) {
  torch::manual_seed(5);
  Prior prior(tiny_top());  // K 11
  SamplingOptions argmax{0, 0, 1};  // the most likely code everywhere: one map for the whole batch
  const auto alike = sample_cached(prior, 16, {}, argmax, 3);
  for (int64_t b = 1; b < 16; ++b) ASSERT_TRUE(torch::equal(alike[b], alike[0]));
  auto first = argmax;
  first.exact_first = 1;
  EXPECT_DOUBLE_EQ(first.at(0).temperature, 1.0);
  EXPECT_DOUBLE_EQ(first.at(1).temperature, 0.0);
  const auto codes = sample_cached(prior, 16, {}, first, 3);
  // The first codes are drawn: they vary over the batch ...
  const auto corner = codes.select(2, 0).select(1, 0);
  EXPECT_GT(std::get<0>(at::_unique(corner)).numel(), 1);
  // ... and everything after them is the argmax given them: equal first codes, equal maps (16 maps and
  // 11 codes: at least one pair shares its first code).
  int pairs = 0;
  for (int64_t a = 0; a < 16; ++a) {
    for (int64_t b = a + 1; b < 16; ++b) {
      if (corner[a].item<int64_t>() != corner[b].item<int64_t>()) continue;
      ++pairs;
      EXPECT_TRUE(torch::equal(codes[a], codes[b])) << a << " " << b;
    }
  }
  EXPECT_GT(pairs, 0);
  EXPECT_THROW(SamplingOptions({1, 0, 1, -1}).validate(), Error);
}

TEST(Sampler, GuidedSamplingFollowsTheGuidedLogitsInBothSamplers) {
  for (const auto& block : kBlocks) {
    SCOPED_TRACE(block);
    torch::manual_seed(8);
    auto options = tiny_bottom(block);
    options.condition_dropout = 0.2;
    options.condition.upsample = "transposed";
    options.condition.position = true;
    Prior prior(options);
    const auto condition = torch::randint(0, 11, {3, 4, 3}, torch::kLong);
    SamplingOptions guided;
    guided.guidance = 2;
    expect_cached_equals_naive(prior, condition, guided);  // both run the unconditional model beside
    guided.top_p = 0.8;
    expect_cached_equals_naive(prior, condition, guided);
    // The logits the naive sampler picked from at every position are (1 + w)·log p(x|c) − w·log p(x),
    // both models read from the codes it drew (causal: position p sees only what came before it).
    std::vector<torch::Tensor> seen;
    const auto codes = sample_naive(prior, 3, condition, guided, 9,
                                    [&](int64_t, int64_t, const torch::Tensor& l) { seen.push_back(l.clone()); });
    prior->eval();
    torch::NoGradGuard no_grad;
    const auto conditional = torch::log_softmax(prior->forward(codes, condition), 1);
    const auto unconditional = torch::log_softmax(prior->forward_unconditional(codes), 1);
    const auto W = options.width;
    double worst = 0;
    for (int64_t p = 0; p < static_cast<int64_t>(seen.size()); ++p) {
      const auto i = p / W, j = p % W;
      const auto expected = 3 * conditional.select(3, j).select(2, i) - 2 * unconditional.select(3, j).select(2, i);
      worst = std::max(worst, (seen[p] - expected).abs().max().item<double>());
    }
    EXPECT_LT(worst, 1e-4);
    // And guidance changes what is drawn: the same seed without it gives other codes.
    auto plain = guided;
    plain.guidance = 0;
    EXPECT_FALSE(torch::equal(sample_cached(prior, 3, condition, plain, 9), sample_cached(prior, 3, condition, guided, 9)));
  }
  EXPECT_DOUBLE_EQ(SamplingOptions({1, 0, 0.5, 2, 3}).at(0).guidance, 3);  // the exact model, still guided
  EXPECT_DOUBLE_EQ(SamplingOptions({1, 0, 0.5, 2, 3}).at(0).top_p, 1);
  EXPECT_THROW(SamplingOptions({1, 0, 1, 0, -1}).validate(), Error);
}

TEST(Sampler, GuidanceNeedsAPriorTrainedWithConditionDropout) {
  torch::manual_seed(6);
  SamplingOptions guided;
  guided.guidance = 1;
  Prior without(tiny_bottom());  // condition dropout 0: no unconditional model
  const auto condition = torch::randint(0, 11, {2, 4, 3}, torch::kLong);
  test::expect_error([&] { sample_cached(without, 2, condition, guided, 0); }, "trained without condition dropout");
  test::expect_error([&] { sample_naive(without, 2, condition, guided, 0); }, "trained without condition dropout");
  Prior top(tiny_top());
  test::expect_error([&] { sample_cached(top, 2, {}, guided, 0); }, "guidance is for conditional priors");
  test::expect_error([&] { without->forward_unconditional(torch::zeros({2, 8, 6}, torch::kLong)); },
                     "has no unconditional model");
}

TEST(Sampler, BothSamplersCheckTheConditionCodes) {
  torch::manual_seed(6);
  Prior prior(tiny_bottom());
  using Sampler = torch::Tensor (*)(Prior&, int64_t, const torch::Tensor&, const SamplingOptions&, uint64_t,
                                    const StepObserver&);
  const auto cached = [](Prior& p, int64_t b, const torch::Tensor& c, const SamplingOptions& o, uint64_t s,
                         const StepObserver& obs) { return sample_cached(p, b, c, o, s, obs); };
  for (const Sampler sampler : {static_cast<Sampler>(sample_naive), static_cast<Sampler>(cached)}) {
    // One condition map for three samples would broadcast silently: refused.
    test::expect_error([&] { sampler(prior, 3, torch::randint(0, 11, {1, 4, 3}, torch::kLong), {}, 0, {}); },
                       "codes [3, 4, 3] (one map per sample), got [1, 4, 3]");
    // No condition at all: our message, not LibTorch's.
    test::expect_error([&] { sampler(prior, 2, {}, {}, 0, {}); }, "(one map per sample), got none");
    // One of the wrong size, codes out of range, a condition for the top prior.
    EXPECT_THROW(sampler(prior, 2, torch::randint(0, 11, {2, 3, 3}, torch::kLong), {}, 0, {}), Error);
    EXPECT_THROW(sampler(prior, 2, torch::full({2, 4, 3}, 11, torch::kLong), {}, 0, {}), Error);
    Prior top(tiny_top());
    EXPECT_THROW(sampler(top, 2, torch::zeros({2, 3, 3}, torch::kLong), {}, 0, {}), Error);
  }
}

TEST(Sampler, SamplingLeavesThePriorInTheModeItFoundItIn) {
  torch::manual_seed(7);
  Prior prior(tiny_top(3, 3, "pixelsnail"));
  prior->train();
  sample_cached(prior, 1, {}, {}, 0);
  EXPECT_TRUE(prior->is_training());
  sample_naive(prior, 1, {}, {}, 0);
  EXPECT_TRUE(prior->is_training());
  prior->eval();
  sample_cached(prior, 1, {}, {}, 0);
  EXPECT_FALSE(prior->is_training());
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
