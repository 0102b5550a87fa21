#include "vqvae2/models/audio_vqvae.h"

#include "speech.h"
#include "test_util.h"
#include "vqvae2/core/error.h"
#include "vqvae2/data/audio.h"

#include <gtest/gtest.h>

#include <cmath>

namespace vqvae2 {
namespace {

AudioVQVAEOptions tiny(int64_t clip_length = 256) {
  AudioVQVAEOptions o;
  o.clip_length = clip_length;
  o.hidden = 16;
  o.res_blocks = 2;
  o.res_channels = 8;
  o.strides = {4, 2};
  o.codes = {32, 24};
  o.code_dims = {8, 6};
  o.stft_ffts = {32, 64};
  return o;
}

torch::Tensor tone(double cycles_per_sample, int64_t samples, double phase = 0) {
  return 0.5 * torch::sin(2 * M_PI * cycles_per_sample * torch::arange(samples, torch::kFloat) + phase);
}

// ---- the STFT loss ----------------------------------------------------------------------------------

TEST(AudioVQVAE, StftLossIsZeroForEqualSignalsAndPositiveOtherwise) {
  torch::manual_seed(0);
  const auto x = torch::randn({3, 1000}) * 0.3;
  const auto same = functional::multi_resolution_stft_loss(x, x.clone());
  EXPECT_EQ(same.total.item<float>(), 0.0f);
  EXPECT_EQ(same.spectral_convergence.item<float>(), 0.0f);
  EXPECT_EQ(same.log_magnitude.item<float>(), 0.0f);
  const auto near = functional::multi_resolution_stft_loss(x + 0.01 * torch::randn_like(x), x);
  const auto far = functional::multi_resolution_stft_loss(x + 0.3 * torch::randn_like(x), x);
  EXPECT_GT(near.total.item<float>(), 0.0f);
  EXPECT_GT(near.spectral_convergence.item<float>(), 0.0f);
  EXPECT_GT(near.log_magnitude.item<float>(), 0.0f);
  EXPECT_GT(far.total.item<float>(), near.total.item<float>());
}

TEST(AudioVQVAE, StftLossFollowsItsFormulaAtOneResolution) {
  torch::manual_seed(1);
  const auto x = torch::randn({2, 512}), x_hat = torch::randn({2, 512});
  const auto loss = functional::multi_resolution_stft_loss(x_hat, x, {128});
  const auto s = stft_magnitude(x, 128, 32, std::sqrt(1e-7)), s_hat = stft_magnitude(x_hat, 128, 32, std::sqrt(1e-7));
  const auto sc = (s - s_hat).pow(2).sum().sqrt() / s.pow(2).sum().sqrt();
  const auto mag = (s.log() - s_hat.log()).abs().mean();
  EXPECT_NEAR(loss.spectral_convergence.item<double>(), sc.item<double>(), 1e-5);
  EXPECT_NEAR(loss.log_magnitude.item<double>(), mag.item<double>(), 1e-5);
}

TEST(AudioVQVAE, StftLossIgnoresPhaseButNotPitch) {
  // The same tone shifted in phase has (nearly) the same magnitudes; another pitch does not.
  const auto x = tone(0.05, 2048).unsqueeze(0);
  const auto shifted = functional::multi_resolution_stft_loss(tone(0.05, 2048, 1.0).unsqueeze(0), x, {256});
  const auto other = functional::multi_resolution_stft_loss(tone(0.07, 2048).unsqueeze(0), x, {256});
  const auto waveform_shifted = (tone(0.05, 2048, 1.0).unsqueeze(0) - x).abs().mean().item<double>();
  const auto waveform_other = (tone(0.07, 2048).unsqueeze(0) - x).abs().mean().item<double>();
  EXPECT_GT(waveform_shifted, 0.2);  // far apart sample by sample…
  EXPECT_LT(shifted.spectral_convergence.item<double>(), 0.1 * other.spectral_convergence.item<double>());  // …not in spectrum
  EXPECT_GT(waveform_other, 0.2);
}

TEST(AudioVQVAE, StftLossGradientReachesTheReconstruction) {
  torch::manual_seed(2);
  const auto x = torch::randn({1, 300});
  const auto x_hat = torch::randn({1, 300}, torch::requires_grad());
  functional::multi_resolution_stft_loss(x_hat, x, {64, 128}).total.backward();
  EXPECT_TRUE(torch::isfinite(x_hat.grad()).all().item<bool>());
  EXPECT_GT(x_hat.grad().abs().sum().item<float>(), 0.0f);
}

// ---- the model ------------------------------------------------------------------------------------

TEST(AudioVQVAE, ShapesAndLossesOfAForwardPass) {
  torch::manual_seed(0);
  AudioVQVAE model(tiny());
  const auto x = torch::rand({2, 1, 256}) - 0.5;
  const auto out = model->forward(x);
  EXPECT_EQ(out.reconstruction.sizes(), x.sizes());
  ASSERT_EQ(out.levels.size(), 2u);
  EXPECT_EQ(out.levels[0].codes.sizes(), (std::vector<int64_t>{2, 64}));
  EXPECT_EQ(out.levels[1].codes.sizes(), (std::vector<int64_t>{2, 32}));
  EXPECT_EQ(out.levels[0].z_q.sizes(), (std::vector<int64_t>{2, 8, 64}));
  EXPECT_EQ(out.levels[1].z_q.sizes(), (std::vector<int64_t>{2, 6, 32}));
  EXPECT_NEAR(out.waveform_loss.item<double>(), (out.reconstruction - x).abs().mean().item<double>(), 1e-6);
  EXPECT_NEAR(out.waveform_mse.item<double>(), (out.reconstruction - x).pow(2).mean().item<double>(), 1e-6);
  EXPECT_NEAR(out.reconstruction_loss.item<double>(), (out.waveform_loss + out.stft.total).item<double>(), 1e-5);
  EXPECT_NEAR(out.loss.item<double>(),
              (out.reconstruction_loss + out.codebook_loss + out.commitment_loss).item<double>(), 1e-5);
  EXPECT_GT(out.stft.total.item<double>(), 0);
  // Every parameter outside the EMA codebooks gets a gradient.
  out.loss.backward();
  for (const auto& p : model->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<float>(), 0.0f) << p.key();
  }
}

TEST(AudioVQVAE, DecodingTheCodesGivesTheReconstruction) {
  torch::manual_seed(1);
  AudioVQVAE model(tiny());
  model->eval();
  torch::NoGradGuard no_grad;
  const auto x = torch::rand({3, 1, 512}) - 0.5;  // any multiple of the total stride encodes
  const auto codes = model->encode(x);
  ASSERT_EQ(codes.size(), 2u);
  EXPECT_EQ(codes[0].sizes(), (std::vector<int64_t>{3, 128}));
  EXPECT_EQ(codes[1].sizes(), (std::vector<int64_t>{3, 64}));
  EXPECT_TRUE(torch::allclose(model->decode_codes(codes), model->forward(x).reconstruction, 1e-5, 1e-6));
  // The output depends on both levels.
  auto other_top = codes;
  other_top[1] = (codes[1] + 1) % 24;
  EXPECT_GT((model->decode_codes(other_top) - model->decode_codes(codes)).abs().max().item<float>(), 0.0f);
}

TEST(AudioVQVAE, BottomCodesAreConditionedOnTheTop) {
  // Top-down quantisation: the bottom quantizer's input sees the decoded top codes, so a gradient
  // flows from the bottom level's commitment loss into the top encoder.
  torch::manual_seed(2);
  AudioVQVAE model(tiny());
  const auto out = model->forward(torch::rand({2, 1, 256}) - 0.5);
  out.levels[0].commitment_loss.backward();
  bool top_encoder_reached = false;
  for (const auto& p : model->named_parameters()) {
    if (p.key().rfind("encoder1", 0) == 0 && p.value().grad().defined() && p.value().grad().abs().sum().item<float>() > 0) {
      top_encoder_reached = true;
    }
  }
  EXPECT_TRUE(top_encoder_reached);
}

TEST(AudioVQVAE, RejectsBadInputsAndOptions) {
  AudioVQVAE model(tiny());
  const std::string mono = "expects mono clips [B, 1, T] with T a positive multiple of 8";
  test::expect_error([&] { model->forward(torch::zeros({1, 1, 100})); }, mono);
  test::expect_error([&] { model->forward(torch::zeros({1, 2, 256})); }, mono);
  test::expect_error([&] { model->decode_codes({torch::zeros({1, 64}, torch::kLong)}); }, "expected 2 code sequences");
  test::expect_error(
      [&] { model->decode_codes({torch::zeros({1, 64}, torch::kLong), torch::zeros({1, 31}, torch::kLong)}); },
      "level 1 codes must have shape [1, 32]");
  test::expect_error(
      [&] { model->decode_codes({torch::zeros({1, 64}, torch::kLong), torch::full({1, 32}, 24, torch::kLong)}); },
      "level 1 codes must lie in [0, ");
  auto bad = tiny();
  bad.strides = {3, 2};
  test::expect_error([&] { AudioVQVAE{bad}; }, "every stride must be a power of two");
  bad = tiny();
  bad.clip_length = 100;
  test::expect_error([&] { AudioVQVAE{bad}; }, "must be a multiple of the total downsampling");
  bad = tiny();
  bad.waveform_loss = "l3";
  test::expect_error([&] { AudioVQVAE{bad}; }, "waveform loss must be 'l1' or 'mse'");
  bad = tiny();
  bad.stft_ffts = {30};
  test::expect_error([&] { AudioVQVAE{bad}; }, "STFT FFT sizes must be multiples of 4");
}

TEST(AudioVQVAE, OptionsRoundTripThroughJson) {
  auto o = tiny();
  o.waveform_loss = "mse";
  o.dilation_growth = 2;
  const nlohmann::json j = o;
  const auto back = j.get<AudioVQVAEOptions>();
  EXPECT_EQ(nlohmann::json(back), j);
}

// ---- a short run on speech ------------------------------------------------------------------------

TEST(AudioVQVAE, ShortTrainingOnSpeechLowersTheStftLoss) {
  if (!test::have_espeak()) GTEST_SKIP() << "espeak-ng is not installed (scripts/setup.sh installs it)";
  torch::manual_seed(0);
  test::TempDir dir;
  ASSERT_TRUE(test::write_speech(dir.path(), test::digit_words(), {"en+m3", "en+f2", "en+m7"}));
  AudioDataOptions data;
  data.folder = dir.path();
  data.clip_length = 2048;
  data.validation_fraction = 0.25;
  const auto dataset = AudioDataset::open(data);
  const auto [train, validation] = dataset->split();
  ASSERT_GE(validation.size(), 4u);
  const auto stack = [&](const std::vector<int64_t>& indices) {
    std::vector<torch::Tensor> clips;
    for (const auto i : indices) clips.push_back(dataset->get(i));
    return torch::stack(clips);  // [N, 1, 2048]
  };
  const auto train_clips = stack(train), validation_clips = stack(validation);

  auto options = tiny(2048);
  options.hidden = 32;
  options.res_blocks = 1;
  options.res_channels = 16;
  options.codes = {64};
  options.code_dims = {16};
  options.stft_ffts = {128, 256, 512};
  AudioVQVAE model(options);
  const auto validation_stft = [&] {
    model->eval();
    torch::NoGradGuard no_grad;
    const auto out = model->forward(validation_clips);
    model->train();
    return out.stft.total.item<double>();
  };
  const auto before = validation_stft();
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(2e-3));
  const int64_t batch = 16;
  for (int64_t step = 0; step < 80; ++step) {
    const auto picks = torch::randint(train_clips.size(0), {batch}, torch::kLong);
    optimizer.zero_grad();
    model->forward(train_clips.index_select(0, picks)).loss.backward();
    optimizer.step();
  }
  const auto after = validation_stft();
  RecordProperty("held_out_stft_before", std::to_string(before));
  RecordProperty("held_out_stft_after", std::to_string(after));
  EXPECT_LT(after, 0.7 * before) << "held-out STFT loss " << before << " -> " << after;
}

}  // namespace
}  // namespace vqvae2
