#include "vqvae2/stages/generate.h"

#include "speech.h"
#include "test_util.h"
#include "vqvae2/data/code_store.h"
#include "vqvae2/data/audio.h"
#include "vqvae2/data/image.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

namespace vqvae2 {
namespace {

SampleConfig config_in(const test::TempDir& dir) {
  test::untrained_vqvae(dir.file("vqvae"));
  SampleConfig config;
  config.vqvae = dir.file("vqvae");
  const auto priors = test::untrained_priors(dir.path());
  config.priors = {priors[1], priors[0]};  // any order
  config.count = 5;
  config.batch_size = 2;
  config.out = dir.file("samples.png");
  config.codes_out = dir.file("samples.vq2");
  return config;
}

TEST(Generate, SamplesEveryImageWritesTheGridAndTheCodes) {
  test::TempDir dir;
  const auto config = config_in(dir);
  const auto result = sample_images(config, test::quiet());
  EXPECT_EQ(result.images.sizes(), (std::vector<int64_t>{5, 1, 16, 16}));
  EXPECT_EQ(result.images.scalar_type(), torch::kUInt8);
  ASSERT_EQ(result.codes.size(), 2u);
  EXPECT_EQ(result.codes[0].sizes(), (std::vector<int64_t>{5, 8, 8}));
  EXPECT_EQ(result.codes[1].sizes(), (std::vector<int64_t>{5, 4, 4}));
  const auto store = read_code_store(config.codes_out);
  EXPECT_TRUE(torch::equal(store.codes[0], result.codes[0]));
  EXPECT_EQ(load_image(config.out, 8, 1).size(0), 1);
  // The same seed gives the same samples; another gives others.
  EXPECT_TRUE(torch::equal(sample_images(config, test::quiet()).codes[1], result.codes[1]));
  auto other = config;
  other.seed = 9;
  EXPECT_FALSE(torch::equal(sample_images(other, test::quiet()).codes[1], result.codes[1]));
  // Nucleus sampling unless asked otherwise, looser at the top than below (docs/ABLATIONS.md); top-p 1
  // samples the exact model.
  EXPECT_DOUBLE_EQ(SampleConfig().sampling.top.top_p, 0.9);
  EXPECT_DOUBLE_EQ(SampleConfig().sampling.lower.top_p, 0.7);
  // The top map's first code untruncated, and the best of 8 draws below by self-consistency; a
  // SamplingOptions alone means one draw, with every position truncated.
  EXPECT_EQ(SampleConfig().sampling.top.exact_first, 1);
  EXPECT_EQ(SampleConfig().sampling.lower.exact_first, 0);
  EXPECT_EQ(SampleConfig().sampling.candidates, 8);
  EXPECT_EQ(HierarchySampling(SamplingOptions{}).candidates, 1);
  // Guidance 2 below the top (an unconditional top has nothing to be guided by), where trained for.
  EXPECT_DOUBLE_EQ(SampleConfig().sampling.lower.guidance, 2);
  EXPECT_DOUBLE_EQ(SampleConfig().sampling.top.guidance, 0);
  EXPECT_TRUE(SampleConfig().guide_only_where_trained);
}

TEST(Generate, LowerLevelsAreGuidedWhereTheirPriorsWereTrainedForIt) {
  test::TempDir dir;
  auto config = config_in(dir);  // small priors: trained with condition dropout
  config.codes_out.clear();
  auto unguided = config;
  unguided.sampling.lower.guidance = 0;
  const auto guided = sample_images(config, test::quiet());
  const auto plain = sample_images(unguided, test::quiet());
  EXPECT_TRUE(torch::equal(guided.codes[1], plain.codes[1])) << "the top is never guided";
  EXPECT_FALSE(torch::equal(guided.codes[0], plain.codes[0])) << "the default guides the bottom";
  std::vector<TrainedPrior> trained;
  for (const auto& path : config.priors) trained.push_back(load<PriorKind>(path, torch::kCPU));
  EXPECT_EQ(first_unguidable_level(priors_by_level(trained, config.priors, 2)), -1);
  // Priors trained without condition dropout: sampled unguided by default, with a note ...
  test::TempDir old_dir;
  auto old = config_in(old_dir);
  old.codes_out.clear();
  const auto folders = test::untrained_priors(old_dir.path(), /*condition_dropout=*/false);
  old.priors = {folders[1], folders[0]};
  auto old_unguided = old;
  old_unguided.sampling.lower.guidance = 0;
  std::ostringstream log;
  auto settings = test::quiet();
  settings.log = &log;
  EXPECT_TRUE(torch::equal(sample_images(old, settings).codes[0], sample_images(old_unguided, test::quiet()).codes[0]));
  EXPECT_NE(log.str().find("trained without condition dropout, so the levels below the top are sampled unguided"),
            std::string::npos)
      << log.str();
  // ... and refused when guidance is asked for (the CLI's --guidance), before any level is sampled.
  old.guide_only_where_trained = false;
  test::expect_error([&] { sample_images(old, test::quiet()); }, "trained without condition dropout");
  auto vqvae = load<VQVAEKind>(old.vqvae, torch::kCPU);
  std::vector<TrainedPrior> loaded;
  for (const auto& path : old.priors) loaded.push_back(load<PriorKind>(path, torch::kCPU));
  auto priors = priors_by_level(loaded, old.priors, 2);
  EXPECT_EQ(first_unguidable_level(priors), 0);
  int64_t rows_sampled = 0;
  test::expect_error(
      [&] {
        sample_hierarchy(vqvae.model, priors, 2, old.sampling, 0, false, [&](int64_t, int64_t, int64_t) { ++rows_sampled; });
      },
      "trained without condition dropout");
  EXPECT_EQ(rows_sampled, 0) << "the top was sampled before the bottom's guidance was refused";
  old.sampling.lower.guidance = -1;
  test::expect_error([&] { sample_images(old, test::quiet()); }, "guidance must be >= 0");
}

TEST(Generate, PriorsMustBeOnePerLevel) {
  test::TempDir dir;
  auto config = config_in(dir);
  auto only_top = config;
  only_top.priors = {config.priors[0]};
  test::expect_error([&] { sample_images(only_top, test::quiet()); }, "no prior given for level 0 (bottom)");
  auto twice = config;
  twice.priors = {config.priors[0], config.priors[0]};
  test::expect_error([&] { sample_images(twice, test::quiet()); }, "two priors given for level 1");
  auto bad = config;
  bad.count = 0;
  test::expect_error([&] { sample_images(bad, test::quiet()); }, "the number of samples must be positive");
  bad = config;
  bad.sampling.top.top_p = 0;
  test::expect_error([&] { sample_images(bad, test::quiet()); }, "top-p must be in (0, 1]");
  bad = config;
  bad.sampling.lower.top_p = 1.5;
  test::expect_error([&] { sample_images(bad, test::quiet()); }, "top-p must be in (0, 1]");
  bad = config;
  bad.sampling.candidates = 0;
  test::expect_error([&] { sample_images(bad, test::quiet()); }, "the candidates per top map must be at least 1");
  bad = config;
  bad.sampling.top.exact_first = -1;
  test::expect_error([&] { sample_images(bad, test::quiet()); }, "the exact positions at the start must be >= 0");
}

TEST(Generate, AVaeSamplesFromItsRunFolderBySeed) {
  test::TempDir dir;
  test::untrained_vae(dir.file("vae"));
  SampleConfig config;
  config.vae = dir.file("vae");
  config.count = 5;
  config.batch_size = 2;
  config.out = dir.file("vae.png");
  const auto result = sample_images(config, test::quiet());
  EXPECT_EQ(result.images.sizes(), (std::vector<int64_t>{5, 1, 16, 16}));
  EXPECT_TRUE(result.codes.empty());
  EXPECT_EQ(load_image(config.out, 8, 1).size(0), 1);
  EXPECT_TRUE(torch::equal(sample_images(config, test::quiet()).images, result.images));
  auto other = config;
  other.seed = 3;
  EXPECT_FALSE(torch::equal(sample_images(other, test::quiet()).images, result.images));
}

TEST(Generate, AVaeOrAVqvaeWithPriorsButNotBoth) {
  test::TempDir dir;
  auto config = config_in(dir);
  auto both = config;
  both.vae = dir.file("vae");
  test::expect_error([&] { sample_images(both, test::quiet()); }, "give --vqvae (with --priors) or --vae, not both");
  SampleConfig none;
  test::expect_error([&] { sample_images(none, test::quiet()); }, "nothing to sample from");
  auto no_priors = config;
  no_priors.priors.clear();
  test::expect_error([&] { sample_images(no_priors, test::quiet()); }, "--vqvae needs --priors");
  SampleConfig vae_priors;
  vae_priors.vae = dir.file("vae");
  vae_priors.priors = config.priors;
  test::expect_error([&] { sample_images(vae_priors, test::quiet()); }, "--priors go with --vqvae");
}

TEST(Generate, Bf16SamplingGivesImagesAndCodesOfTheSameShapes) {
  test::TempDir dir;
  auto config = config_in(dir);
  config.precision = Precision::kBF16;
  const auto result = sample_images(config, test::quiet());
  EXPECT_EQ(result.images.sizes(), (std::vector<int64_t>{5, 1, 16, 16}));
  EXPECT_EQ(result.images.scalar_type(), torch::kUInt8);
  ASSERT_EQ(result.codes.size(), 2u);
  EXPECT_EQ(result.codes[0].sizes(), (std::vector<int64_t>{5, 8, 8}));
  EXPECT_LT(result.codes[0].max().item<int64_t>(), 32);
  EXPECT_FALSE(autocast_enabled(torch::kCPU));
  config.precision = Precision::kFP16;
  test::expect_error([&] { sample_images(config, test::quiet()); }, "fp16 needs a CUDA device");
}

TEST(Generate, SamplesOfDigitsAreScoredBesideRealDigitsWhenAsked) {
  test::TempDir dir;
  test::untrained_vae(dir.file("vae"), 32);
  SampleConfig config;
  config.vae = dir.file("vae");
  config.count = 12;
  config.batch_size = 5;
  config.out = dir.file("vae.png");
  EXPECT_FALSE(sample_images(config, test::quiet()).digit_score.has_value()) << "only when asked";
  config.score_digits = true;
  config.digit_classifier = test::digit_classifier_path();
  const auto result = sample_images(config, test::quiet());
  ASSERT_TRUE(result.digit_score.has_value());
  const auto& score = *result.digit_score;
  EXPECT_EQ(score.samples.images, 12);
  EXPECT_GE(score.samples.score, 1.0);
  EXPECT_LE(score.samples.score, 10.0);
  EXPECT_GE(score.samples.confident, 0.0);
  EXPECT_LE(score.samples.confident, 1.0);
  EXPECT_EQ(score.real.images, 12) << "real digits as many at a time";
  EXPECT_GT(score.real.score, score.samples.score) << "an untrained VAE draws no digits";
  EXPECT_GT(score.real.confident, 0.9);
}

TEST(Generate, ScoringDigitsNeedsAModelOfGrey32x32Images) {
  test::TempDir dir;
  auto config = config_in(dir);  // 16×16: checked before sampling
  config.score_digits = true;
  config.digit_classifier = dir.file("never-written.ckpt");
  test::expect_error([&] { sample_images(config, test::quiet()); },
                     "the digit score reads grey 32x32 images like the embedded MNIST digits (the mnist preset), but "
                     "the samples of '" + config.vqvae + "' are grey 16x16");
  test::untrained_vae(dir.file("vae"));
  SampleConfig vae;
  vae.vae = dir.file("vae");
  vae.out = dir.file("vae.png");
  vae.score_digits = true;
  test::expect_error([&] { sample_images(vae, test::quiet()); }, "the samples of '" + vae.vae + "' are grey 16x16");
  EXPECT_FALSE(std::filesystem::exists(config.digit_classifier)) << "refused before any work";
  vae.score_digits = false;
  vae.digit_classifier = dir.file("c.ckpt");
  test::expect_error([&] { sample_images(vae, test::quiet()); }, "--digit-classifier goes with --score-digits");
}

// ---- audio ----------------------------------------------------------------------------------------

AudioSampleConfig audio_config_in(const test::TempDir& dir) {
  const auto priors = test::untrained_audio_models(dir.path());
  AudioSampleConfig config;
  config.vqvae = dir.file("vqvae");
  config.priors = {priors[1], priors[0]};  // any order
  config.count = 3;
  config.batch_size = 2;
  config.out = dir.file("samples");
  config.codes_out = dir.file("samples.vq2");
  return config;
}

TEST(GenerateAudio, SamplesEveryClipWritesWavsSpectrogramsAndTheCodes) {
  test::TempDir dir;
  const auto config = audio_config_in(dir);
  const auto result = sample_audio(config, test::quiet());
  EXPECT_EQ(result.waveforms.sizes(), (std::vector<int64_t>{3, 2048}));
  EXPECT_EQ(result.sample_rate, 16000);
  EXPECT_DOUBLE_EQ(result.audio_seconds, 3 * 2048 / 16000.0);
  ASSERT_EQ(result.codes.size(), 2u);
  EXPECT_EQ(result.codes[0].sizes(), (std::vector<int64_t>{3, 128}));
  EXPECT_EQ(result.codes[1].sizes(), (std::vector<int64_t>{3, 32}));
  ASSERT_EQ(result.files.size(), 3u);
  for (const auto& file : result.files) {
    const auto wav = read_audio(file);
    EXPECT_EQ(wav.sample_rate, 16000);
    EXPECT_EQ(wav.samples.size(1), 2048);
  }
  EXPECT_EQ(probe_image(result.spectrograms).width, spectrogram_rows({result.waveforms}).size(2));
  const auto store = read_code_store(config.codes_out);
  EXPECT_TRUE(torch::equal(store.codes[0].squeeze(1), result.codes[0]));
  EXPECT_EQ(store.meta.at("modality"), "audio");
  // Nucleus sampling unless asked otherwise, in the library as in the command (top-p 1 = the exact model).
  EXPECT_DOUBLE_EQ(AudioSampleConfig().sampling.top_p, 0.8);
}

TEST(GenerateAudio, CachedAndNaiveSamplersGiveTheSameCodesAndLengthsFollowTheFlag) {
  test::TempDir dir;
  auto config = audio_config_in(dir);
  config.count = 2;
  config.codes_out.clear();
  const auto cached = sample_audio(config, test::quiet());
  auto naive = config;
  naive.naive = true;
  naive.out = dir.file("naive");
  const auto reference = sample_audio(naive, test::quiet());
  for (size_t l = 0; l < cached.codes.size(); ++l) EXPECT_TRUE(torch::equal(cached.codes[l], reference.codes[l])) << l;
  EXPECT_TRUE(torch::allclose(cached.waveforms, reference.waveforms, 1e-5, 1e-6));
  auto longer = config;
  longer.samples = 4096;
  longer.out = dir.file("longer");
  EXPECT_EQ(sample_audio(longer, test::quiet()).waveforms.size(1), 4096);
  auto other = config;
  other.seed = 9;
  other.out = dir.file("other");
  EXPECT_FALSE(torch::equal(sample_audio(other, test::quiet()).codes[1], cached.codes[1]));
}

TEST(GenerateAudio, WaveNetsMustBeOnePerLevel) {
  test::TempDir dir;
  const auto config = audio_config_in(dir);
  auto only_top = config;
  only_top.priors = {config.priors[0]};
  test::expect_error([&] { sample_audio(only_top, test::quiet()); }, "no WaveNet given for level 0 (bottom)");
  auto twice = config;
  twice.priors = {config.priors[0], config.priors[0]};
  test::expect_error([&] { sample_audio(twice, test::quiet()); }, "two WaveNets given for level 1");
  auto bad = config;
  bad.samples = -1;
  test::expect_error([&] { sample_audio(bad, test::quiet()); }, "the sample length must be >= 0");
}

}  // namespace
}  // namespace vqvae2
