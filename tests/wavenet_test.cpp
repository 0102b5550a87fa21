#include "vqvae2/models/wavenet.h"

#include "speech.h"
#include "test_util.h"
#include "vqvae2/core/error.h"
#include "vqvae2/data/audio.h"
#include "vqvae2/models/audio_sampler.h"

#include <gtest/gtest.h>

#include <cmath>

namespace vqvae2 {
namespace {

WaveNetOptions tiny(int64_t kernel = 2, int64_t length = 40) {
  WaveNetOptions o;
  o.length = length;
  o.codes = 11;
  o.channels = 8;
  o.gate_channels = 6;
  o.skip_channels = 10;
  o.kernel = kernel;
  o.layers_per_cycle = 3;
  o.cycles = 2;
  return o;
}

WaveNetOptions tiny_conditional(int64_t length = 24) {
  auto o = tiny(2, length);
  o.conditional = true;
  o.condition_codes = 7;
  o.condition_channels = 5;
  o.condition_blocks = 2;
  o.condition_scale = 4;
  return o;
}

// influence[t][q] = Σ |∂ logits[t] / ∂ e(c_q)|: the gradient of each output position's logits with
// respect to each input position's embedding. [T, T]
torch::Tensor influence(WaveNet& model, const torch::Tensor& codes, const torch::Tensor& condition_codes) {
  model->eval();
  const auto T = codes.size(1);
  const auto condition = model->condition_features(condition_codes);
  std::vector<torch::Tensor> rows;
  for (int64_t t = 0; t < T; ++t) {
    const auto embedded = model->embed(codes).detach().requires_grad_(true);
    model->forward_embedded(embedded, condition.defined() ? condition.detach() : condition).select(2, t).sum().backward();
    rows.push_back(embedded.grad().abs().sum(std::vector<int64_t>{0, 1}));  // [T]
  }
  return torch::stack(rows);
}

TEST(WaveNet, IsCausal) {
  torch::manual_seed(0);
  WaveNet model(tiny());
  const auto codes = torch::randint(0, 11, {2, 40}, torch::kLong);
  const auto grid = influence(model, codes, {});
  for (int64_t t = 0; t < 40; ++t) {
    for (int64_t q = t; q < 40; ++q) ASSERT_EQ(grid[t][q].item<float>(), 0.0f) << "output " << t << " sees code " << q;
    if (t > 0) {
      EXPECT_GT(grid[t][t - 1].item<float>(), 0.0f) << "output " << t << " ignores the code before it";
    }
  }
}

TEST(WaveNet, ReceptiveFieldIsTheFormulaAndTheGradientSupport) {
  for (const int64_t kernel : {2, 3}) {
    torch::manual_seed(kernel);
    const auto options = tiny(kernel, 48);
    // 1 + (k − 1) · cycles · (2^n − 1) with n = 3 layers per cycle, 2 cycles.
    EXPECT_EQ(options.receptive_field(), 1 + (kernel - 1) * 2 * 7);
    WaveNet model(options);
    const auto R = model->receptive_field();
    const auto grid = influence(model, torch::randint(0, 11, {2, 48}, torch::kLong), {});
    for (int64_t t = 0; t < 48; ++t) {
      for (int64_t q = 0; q < 48; ++q) {
        const bool inside = q < t && q >= t - R;
        EXPECT_EQ(grid[t][q].item<float>() > 0, inside) << "kernel " << kernel << ", output " << t << ", code " << q;
      }
    }
  }
}

TEST(WaveNet, ConditionalWaveNetIsCausalAndUsesTheCondition) {
  torch::manual_seed(1);
  WaveNet model(tiny_conditional());
  const auto codes = torch::randint(0, 11, {2, 24}, torch::kLong);
  const auto upper = torch::randint(0, 7, {2, 6}, torch::kLong);
  const auto grid = influence(model, codes, upper);
  for (int64_t t = 0; t < 24; ++t) {
    for (int64_t q = t; q < 24; ++q) ASSERT_EQ(grid[t][q].item<float>(), 0.0f) << "output " << t << " sees code " << q;
  }
  torch::NoGradGuard no_grad;
  const auto difference = (model->forward(codes, upper) - model->forward(codes, (upper + 1) % 7)).abs();
  // Every position, the very first included, depends on the condition.
  EXPECT_GT(difference.amax({1}).min().item<float>(), 0.0f);
  // The last upper code (5) reaches, through the two 3-tap blocks, upper positions 3 … 5, which the
  // ×4 upsampling spreads over positions 12 … 23; the causal stack carries nothing back in time.
  auto changed = upper.clone();
  changed[0][5] = (upper[0][5] + 3) % 7;
  const auto change = (model->forward(codes, changed) - model->forward(codes, upper)).abs().amax({1})[0];  // [T]
  EXPECT_GT(change.slice(0, 20, 24).min().item<float>(), 0.0f);
  EXPECT_EQ(change.slice(0, 0, 12).max().item<float>(), 0.0f);
}

TEST(WaveNet, LossIsTheCrossEntropyOfTheCodes) {
  torch::manual_seed(2);
  WaveNet model(tiny());
  model->eval();
  torch::NoGradGuard no_grad;
  const auto codes = torch::randint(0, 11, {3, 40}, torch::kLong);
  const auto log_probabilities = torch::log_softmax(model->forward(codes), 1);  // [B, K, T]
  const auto expected = -log_probabilities.gather(1, codes.unsqueeze(1)).mean();
  EXPECT_NEAR(model->loss(codes).item<double>(), expected.item<double>(), 1e-5);
}

TEST(WaveNet, RejectsMismatchedInputs) {
  WaveNet plain(tiny());
  test::expect_error([&] { plain->forward(torch::zeros({1, 5, 5}, torch::kLong)); }, "expects codes [B, T]");
  test::expect_error([&] { plain->forward(torch::zeros({1, 8}, torch::kLong), torch::zeros({1, 2}, torch::kLong)); },
                     "is not conditional but was given condition codes");
  WaveNet conditional(tiny_conditional());
  const auto codes = torch::zeros({1, 24}, torch::kLong);
  test::expect_error([&] { conditional->forward(codes); }, "is conditional: give the level-1 codes too");
  test::expect_error([&] { conditional->forward(codes, torch::zeros({1, 5}, torch::kLong)); }, "expects condition codes [1, 6]");
  test::expect_error([&] { conditional->forward(codes, torch::full({1, 6}, 7, torch::kLong)); },
                     "condition codes must lie in [0, ");
  auto bad = tiny();
  bad.kernel = 1;
  test::expect_error([&] { WaveNet{bad}; }, "WaveNet kernel must be in [2, 16]");
  bad = tiny_conditional();
  bad.length = 25;  // not a multiple of the scale
  test::expect_error([&] { WaveNet{bad}; }, "divide the length 25");
}

// ---- sampling ---------------------------------------------------------------------------------------

void expect_cached_equals_naive(WaveNet& model, int64_t length, const torch::Tensor& condition,
                                const SamplingOptions& options) {
  std::vector<torch::Tensor> naive_logits, cached_logits;
  const auto a = sample_wavenet_naive(model, 3, length, condition, options, 42,
                                      [&](int64_t, const torch::Tensor& l) { naive_logits.push_back(l.clone()); });
  const auto b = sample_wavenet_cached(model, 3, length, condition, options, 42,
                                       [&](int64_t, const torch::Tensor& l) { cached_logits.push_back(l.clone()); });
  ASSERT_EQ(naive_logits.size(), static_cast<size_t>(length));
  ASSERT_EQ(cached_logits.size(), naive_logits.size());
  double worst = 0;
  for (size_t t = 0; t < naive_logits.size(); ++t) {
    worst = std::max(worst, (naive_logits[t] - cached_logits[t]).abs().max().item<double>());
  }
  EXPECT_LT(worst, 1e-4) << "cached logits drift from the full recompute";
  EXPECT_TRUE(torch::equal(a, b)) << "the samplers picked different codes";
  EXPECT_GT(std::get<0>(at::_unique(a)).numel(), 3);  // and the codes are not trivial
}

TEST(WaveNetSampler, CachedSamplingMatchesTheNaiveLoop) {
  torch::manual_seed(3);
  WaveNet model(tiny(2, 40));
  expect_cached_equals_naive(model, 40, {}, {});
  // Longer than the receptive field (15) many times over, and with kernel 3.
  torch::manual_seed(4);
  WaveNet wide(tiny(3, 64));
  expect_cached_equals_naive(wide, 64, {}, {});
}

TEST(WaveNetSampler, CachedSamplingMatchesTheNaiveLoopWhenConditional) {
  torch::manual_seed(5);
  WaveNet model(tiny_conditional());
  expect_cached_equals_naive(model, 24, torch::randint(0, 7, {3, 6}, torch::kLong), {});
}

TEST(WaveNetSampler, CachedSamplingMatchesWithTemperatureTopKAndTopP) {
  torch::manual_seed(6);
  WaveNet model(tiny());
  SamplingOptions options;
  options.temperature = 0.8;
  options.top_k = 7;
  options.top_p = 0.95;
  expect_cached_equals_naive(model, 40, {}, options);
}

TEST(WaveNetSampler, SamplesTheHierarchyAndDecodesAudio) {
  torch::manual_seed(7);
  AudioVQVAEOptions vqvae_options;
  vqvae_options.clip_length = 64;
  vqvae_options.hidden = 8;
  vqvae_options.res_blocks = 1;
  vqvae_options.res_channels = 4;
  vqvae_options.strides = {4, 2};
  vqvae_options.codes = {11, 7};
  vqvae_options.code_dims = {4};
  AudioVQVAE vqvae(vqvae_options);
  auto top = tiny(2, 8);
  top.level = 1;
  top.codes = 7;
  auto bottom = tiny_conditional(16);
  bottom.condition_scale = 2;
  std::vector<WaveNet> priors{WaveNet(bottom), WaveNet(top)};
  const auto cached = sample_audio_hierarchy(vqvae, priors, 2, 0, {}, 9);
  ASSERT_EQ(cached.codes.size(), 2u);
  EXPECT_EQ(cached.codes[0].sizes(), (std::vector<int64_t>{2, 16}));
  EXPECT_EQ(cached.codes[1].sizes(), (std::vector<int64_t>{2, 8}));
  EXPECT_EQ(cached.waveforms.sizes(), (std::vector<int64_t>{2, 1, 64}));
  EXPECT_EQ(cached.seconds.size(), 3u);
  const auto naive = sample_audio_hierarchy(vqvae, priors, 2, 0, {}, 9, /*naive=*/true);
  EXPECT_TRUE(torch::equal(naive.codes[0], cached.codes[0]));
  EXPECT_TRUE(torch::equal(naive.codes[1], cached.codes[1]));
  // Longer audio than the training clips: WaveNets are convolutional.
  EXPECT_EQ(sample_audio_hierarchy(vqvae, priors, 1, 128, {}, 9).waveforms.size(2), 128);
  // Priors that do not fit the VQ-VAE are refused.
  std::vector<WaveNet> swapped{priors[1], priors[0]};
  test::expect_error([&] { sample_audio_hierarchy(vqvae, swapped, 1, 0, {}, 9); }, "the WaveNet given for level 0 models level 1");
}

// ---- a short run on speech ------------------------------------------------------------------------

// μ-law companding to K levels (the classic WaveNet input): x in [-1, 1] -> codes [0, K).
torch::Tensor mu_law(const torch::Tensor& x, int64_t levels) {
  const double mu = static_cast<double>(levels - 1);
  const auto y = torch::sign(x) * torch::log1p(mu * x.abs()) / std::log1p(mu);
  return ((y + 1) / 2 * mu + 0.5).floor().clamp(0, mu).to(torch::kLong);
}

TEST(WaveNet, ShortTrainingOnSpeechLowersHeldOutBitsPerCode) {
  if (!test::have_espeak()) GTEST_SKIP() << "espeak-ng is not installed (scripts/setup.sh installs it)";
  torch::manual_seed(0);
  test::TempDir dir;
  ASSERT_TRUE(test::write_speech(dir.path(), test::digit_words(), {"en+m3", "en+f2"}));
  // Speech at 4 kHz, μ-law coded to 32 levels: a real, strongly correlated code sequence.
  AudioDataOptions data;
  data.folder = dir.path();
  data.sample_rate = 4000;
  data.clip_length = 256;
  data.validation_fraction = 0.25;
  const auto dataset = AudioDataset::open(data);
  const auto [train, validation] = dataset->split();
  const auto codes_of = [&](const std::vector<int64_t>& indices) {
    std::vector<torch::Tensor> clips;
    for (const auto i : indices) clips.push_back(mu_law(dataset->get(i)[0] * 4, 32));  // speech is quiet: gain 4
    return torch::stack(clips);  // [N, 256]
  };
  const auto train_codes = codes_of(train), validation_codes = codes_of(validation);
  ASSERT_GE(validation_codes.size(0), 4);

  auto options = tiny(2, 256);
  options.codes = 32;
  options.channels = 32;
  options.gate_channels = 32;
  options.skip_channels = 32;
  options.layers_per_cycle = 5;
  WaveNet model(options);
  const auto bits = [&] {
    model->eval();
    torch::NoGradGuard no_grad;
    const auto nats = model->loss(validation_codes).item<double>();
    model->train();
    return nats / std::log(2.0);
  };
  const auto before = bits();
  EXPECT_NEAR(before, 5.0, 0.5);  // about log2 K = 5 bits untrained
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(3e-3));
  for (int64_t step = 0; step < 120; ++step) {
    const auto picks = torch::randint(train_codes.size(0), {16}, torch::kLong);
    optimizer.zero_grad();
    model->loss(train_codes.index_select(0, picks)).backward();
    optimizer.step();
  }
  const auto after = bits();
  RecordProperty("held_out_bits_before", std::to_string(before));
  RecordProperty("held_out_bits_after", std::to_string(after));
  EXPECT_LT(after, before - 1.0) << "held-out bits per code " << before << " -> " << after;
}

}  // namespace
}  // namespace vqvae2
