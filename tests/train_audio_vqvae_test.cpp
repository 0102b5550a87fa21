#include "vqvae2/stages/train_audio_vqvae.h"

#include "speech.h"
#include "test_util.h"
#include "vqvae2/core/error.h"
#include "vqvae2/data/image.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace vqvae2 {
namespace {

namespace fs = std::filesystem;
using test::quiet;

TEST(TrainAudioVQVAE, ShortRunOnSpokenDigitsLowersTheStftDistanceAndWritesWavsAndSpectrograms) {
  if (!test::have_espeak()) GTEST_SKIP() << "espeak-ng is not installed (scripts/setup.sh installs it)";
  test::TempDir data, run;
  ASSERT_TRUE(test::write_speech(data.path(), test::digit_words(), {"en+m3", "en+f2", "en+m7"}));
  auto config = test::tiny_audio_config(data.path());
  config.train.steps = 60;
  const auto result = train_audio_vqvae(config, run.path(), false, quiet());
  EXPECT_EQ(result.steps, 60);
  EXPECT_GT(result.initial.clips, 0);
  EXPECT_LT(result.final.stft, 0.8 * result.initial.stft)
      << "held-out STFT distance " << result.initial.stft << " -> " << result.final.stft;
  EXPECT_LT(result.final.waveform_mse, result.initial.waveform_mse);
  ASSERT_EQ(result.final.usage.size(), 2u);
  RecordProperty("held_out_stft_before", std::to_string(result.initial.stft));
  RecordProperty("held_out_stft_after", std::to_string(result.final.stft));
  RecordProperty("held_out_snr_after", std::to_string(result.final.snr));

  // Reconstructions to listen to and look at.
  for (const auto* name : {"audio/original-00.wav", "audio/reconstruction-00.wav", "audio/reconstruction-01.wav"}) {
    const auto wav = read_audio(run.file(name));
    EXPECT_EQ(wav.sample_rate, 16000) << name;
    EXPECT_EQ(wav.samples.sizes(), (std::vector<int64_t>{1, 2048})) << name;
  }
  EXPECT_GT(probe_image(run.file("spectrograms/reconstructions-000060.png")).width, 0);

  const auto loaded = load<AudioVQVAEKind>(run.path(), torch::kCPU);
  EXPECT_EQ(loaded.step, 60);
  EXPECT_EQ(loaded.config.model.clip_length, 2048);
  EXPECT_EQ(vqvae_modality(run.path()), Modality::kAudio);
}

TEST(TrainAudioVQVAE, ModelAndDataMustAgreeOnRateAndClipLength) {
  test::TempDir run;
  auto config = test::tiny_audio_config(run.file("nowhere"));
  config.data.clip_length = 4096;
  test::expect_error([&] { train_audio_vqvae(config, run.path(), false, quiet()); },
                     "set both with --sample-rate and --clip-length");
  config = test::tiny_audio_config(run.file("nowhere"));
  test::expect_error([&] { train_audio_vqvae(config, run.file("r"), false, quiet()); }, "does not exist");
}

}  // namespace
}  // namespace vqvae2
