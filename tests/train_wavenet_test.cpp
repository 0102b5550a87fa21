#include "vqvae2/stages/train_wavenet.h"

#include "speech.h"
#include "test_util.h"
#include "vqvae2/core/error.h"
#include "vqvae2/stages/codes.h"
#include "vqvae2/stages/train_audio_vqvae.h"

#include <gtest/gtest.h>

#include <cmath>
#include <memory>

namespace vqvae2 {
namespace {

using test::quiet;

// One short audio VQ-VAE run on spoken digits and its codes, shared by the tests of this file.
class TrainWaveNet : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!test::have_espeak()) return;
    dir_ = std::make_unique<test::TempDir>();
    ASSERT_TRUE(test::write_speech(dir_->path(), test::digit_words(), {"en+m3", "en+f2", "en+m7"}));
    auto config = test::tiny_audio_config(dir_->path());
    config.train.steps = 40;
    train_audio_vqvae(config, dir_->file("vqvae"), false, quiet());
    extract_codes({dir_->file("vqvae"), dir_->file("codes"), 64}, quiet());
  }
  static void TearDownTestSuite() { dir_.reset(); }
  void SetUp() override {
    if (!dir_) GTEST_SKIP() << "espeak-ng is not installed (scripts/setup.sh installs it)";
  }
  static PriorCodes codes() { return read_prior_codes(dir_->file("codes")); }
  static std::unique_ptr<test::TempDir> dir_;
};
std::unique_ptr<test::TempDir> TrainWaveNet::dir_;

TEST_F(TrainWaveNet, ExtractedCodesAreOneRowSequencesWithAudioHeaders) {
  const auto c = codes();
  EXPECT_TRUE(is_audio_codes(c.train));
  EXPECT_EQ(c.train.meta.at("clip_length"), 2048);
  EXPECT_EQ(c.train.meta.at("sample_rate"), 16000);
  ASSERT_EQ(c.train.levels.size(), 2u);
  EXPECT_EQ(c.train.levels[0].height, 1);
  EXPECT_EQ(c.train.levels[0].width, 128);
  EXPECT_EQ(c.train.levels[1].width, 32);
  EXPECT_GT(c.validation.size(), 0);
  const auto bottom = sequence_codes(c.train, 0);
  EXPECT_EQ(bottom.codes.sizes(), (std::vector<int64_t>{c.train.size(), 128}));
  EXPECT_EQ(bottom.condition.sizes(), (std::vector<int64_t>{c.train.size(), 32}));
  EXPECT_FALSE(sequence_codes(c.train, 1).condition.defined());
}

TEST_F(TrainWaveNet, ConfigurationFollowsTheLevel) {
  const auto c = codes();
  const auto top = wavenet_config_for(c, 1, PriorSize::kSmall);
  EXPECT_FALSE(top.model.conditional);
  EXPECT_EQ(top.model.length, 32);
  EXPECT_EQ(top.model.codes, 64);
  EXPECT_EQ(top.samples_per_code, 64);
  const auto bottom = wavenet_config_for(c, 0, PriorSize::kSmall);
  EXPECT_TRUE(bottom.model.conditional);
  EXPECT_EQ(bottom.model.condition_scale, 4);
  EXPECT_EQ(bottom.samples_per_code, 16);
  test::expect_error([&] { wavenet_config_for(c, 2, PriorSize::kSmall); }, "level 2 does not exist");
  test::expect_error([&] { prior_config_for(c, 0, PriorSize::kSmall); }, "their priors are WaveNets");
}

TEST_F(TrainWaveNet, ShortRunLowersHeldOutBitsPerCodeAtBothLevels) {
  const auto c = codes();
  for (const int64_t level : {1, 0}) {
    auto config = wavenet_config_for(c, level, PriorSize::kSmall);
    config.model.channels = config.model.gate_channels = 32;
    config.model.skip_channels = 32;
    config.model.condition_channels = 16;
    config.train.steps = 60;
    config.train.learning_rate = 3e-3;
    test::TempDir run;
    const auto result = train_wavenet(config, c, open_training_run(run.path(), WaveNetKind::name, false), quiet());
    EXPECT_EQ(result.steps, 60);
    EXPECT_NEAR(result.initial_bits_per_code, std::log2(64.0), 1.0) << "level " << level;
    EXPECT_LT(result.final_bits_per_code, result.initial_bits_per_code - 1.0)
        << "level " << level << ": held-out bits per code " << result.initial_bits_per_code << " -> "
        << result.final_bits_per_code;
    EXPECT_NEAR(result.final_bits_per_dim, result.final_bits_per_code / config.samples_per_code, 1e-9);
    RecordProperty(fmt::format("level{}_bits_before", level), std::to_string(result.initial_bits_per_code));
    RecordProperty(fmt::format("level{}_bits_after", level), std::to_string(result.final_bits_per_code));
    const auto loaded = load<WaveNetKind>(run.path(), torch::kCPU);
    EXPECT_EQ(loaded.step, 60);
    EXPECT_EQ(stored_kind(run.path(), {PriorKind::name, WaveNetKind::name}), WaveNetKind::name);
  }
}

TEST_F(TrainWaveNet, CodesOfAnotherShapeAreRefused) {
  const auto c = codes();
  auto config = wavenet_config_for(c, 1, PriorSize::kSmall);
  config.model.length = 64;
  test::TempDir run;
  test::expect_error(
      [&] { train_wavenet(config, c, open_training_run(run.path(), WaveNetKind::name, false), quiet()); },
      "do not match this WaveNet");
}

}  // namespace
}  // namespace vqvae2
