#include "vqvae2/models/prior.h"

#include "test_util.h"
#include "vqvae2/core/error.h"
#include "vqvae2/models/sampler.h"

#include <gtest/gtest.h>

#include <set>

namespace vqvae2 {
namespace {

// The two blocks every test of the stack runs on.
const std::vector<std::string> kBlocks = {"gated-two-stream", "pixelsnail"};

GatedPixelCNNOptions tiny_stack(int64_t codes, bool attention, int64_t condition_channels = 0,
                                const std::string& block = "gated-two-stream") {
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

PriorOptions tiny_top(int64_t height = 6, int64_t width = 5, const std::string& block = "gated-two-stream") {
  PriorOptions o;
  o.level = 1;
  o.height = height;
  o.width = width;
  o.stack = tiny_stack(11, /*attention=*/true, 0, block);
  return o;
}

PriorOptions tiny_bottom(const std::string& block = "gated-two-stream") {
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

// For every output position p: the gradient of its logits with respect to the embedded input is
// exactly zero at every position q >= p (raster order), and not zero everywhere before p.
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

TEST(Prior, TopPriorWithAttentionIsCausalWithEitherBlock) {
  for (const auto& block : kBlocks) {
    SCOPED_TRACE(block);
    torch::manual_seed(0);
    Prior prior(tiny_top(6, 5, block));
    expect_causal(prior, {});
  }
}

TEST(Prior, WeightNormalisedStacksAreCausal) {
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

TEST(Prior, AttentionReachesTheFarPast) {
  // With attention the last position sees the first even though the convolutions' window does not
  // reach that far. Two-stream: the input convolution reaches 3 rows up and each of the 4 layers 4
  // more, 19 in all; PixelSNAIL: 2 rows for the input and 4 per layer, 18; the map has 24 rows.
  for (const auto& block : kBlocks) {
    SCOPED_TRACE(block);
    torch::manual_seed(0);
    auto options = tiny_top(24, 3, block);
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
}

TEST(Prior, PixelSnailConvolutionsHaveABlindSpotThatAttentionCovers) {
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

TEST(Prior, PixelSnailBlockReachesTwiceAsFarLeftPerLayer) {
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

TEST(Prior, GatedPixelCNNWithoutAttentionIsCausal) {
  for (const auto& block : kBlocks) {
    SCOPED_TRACE(block);
    torch::manual_seed(0);
    auto options = tiny_top(6, 5, block);
    options.stack.attention = false;
    Prior prior(options);
    expect_causal(prior, {});
  }
}

TEST(Prior, AttentionFollowsEveryNLayers) {
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

TEST(Prior, OldConfigurationsMeanTheTwoStreamStack) {
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

TEST(Prior, WeightNormAddsOneGainPerOutputUnitToEveryLayer) {
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
  }
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
