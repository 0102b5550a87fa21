// Spoken words for the audio tests, synthesised by espeak-ng (scripts/setup.sh installs it).
#pragma once

#include "vqvae2/stages/trained.h"

#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace vqvae2::test {

inline bool have_espeak() { return std::system("command -v espeak-ng >/dev/null 2>&1") == 0; }

// Writes one 22,050 Hz WAV per (word, voice) into `folder` ("<voice>-<word>.wav"); true on success.
// Deterministic: espeak-ng's output depends only on the text, voice, speed and pitch.
inline bool write_speech(const std::string& folder, const std::vector<std::string>& words,
                         const std::vector<std::string>& voices) {
  std::string script;
  for (const auto& voice : voices) {
    for (const auto& word : words) {
      script += fmt::format("espeak-ng -v {} -s 170 -w '{}/{}-{}.wav' '{}' && ", voice, folder, voice, word, word);
    }
  }
  return std::system((script + "true").c_str()) == 0;
}

inline const std::vector<std::string>& digit_words() {
  static const std::vector<std::string> words = {"zero", "one", "two",   "three", "four",
                                                 "five", "six", "seven", "eight", "nine"};
  return words;
}

// An audio VQ-VAE configuration small enough for a test to train in a few seconds on `folder`:
// 16 kHz clips of 2048 samples, two levels (128 and 32 codes), narrow widths.
inline TrainAudioVQVAEConfig tiny_audio_config(const std::string& folder) {
  TrainAudioVQVAEConfig config;
  config.model.clip_length = config.data.clip_length = 2048;
  config.model.hidden = 32;
  config.model.res_blocks = 1;
  config.model.res_channels = 16;
  config.model.codes = {64};
  config.model.code_dims = {16};
  config.model.stft_ffts = {128, 256, 512};
  config.data.folder = folder;
  config.data.validation_fraction = 0.25;
  config.train.batch_size = 16;
  config.train.learning_rate = 2e-3;
  config.train.grid_images = 2;
  return config;
}

// Untrained audio models as checkpoints, for code that only needs trained ones (sampling): an audio
// VQ-VAE of tiny_audio_config() in <dir>/vqvae and a narrow WaveNet per level in <dir>/prior-level<l>.
// Returns the WaveNet folders, bottom first.
inline std::vector<std::string> untrained_audio_models(const std::string& dir) {
  const auto config = tiny_audio_config(dir + "/data");
  std::filesystem::create_directories(dir + "/vqvae");
  torch::manual_seed(3);
  AudioVQVAE vqvae(config.model);
  write_model_checkpoint(dir + "/vqvae/audio-vqvae.ckpt", AudioVQVAEKind::name, config, 0, *vqvae);
  std::vector<std::string> folders;
  const auto& m = config.model;
  for (int64_t level = 0; level < m.levels(); ++level) {
    TrainWaveNetConfig prior;
    prior.model = level + 1 == m.levels()
                      ? wavenet_options(level, m.latent_length(level), m.codes_at(level), WaveNetSize::kSmall)
                      : conditional_wavenet_options(level, m.latent_length(level), m.codes_at(level),
                                                    m.codes_at(level + 1), m.strides[level + 1], WaveNetSize::kSmall);
    prior.model.channels = prior.model.gate_channels = prior.model.skip_channels = 16;
    prior.model.condition_channels = 8;
    prior.model.layers_per_cycle = 4;
    torch::manual_seed(4 + level);
    WaveNet wavenet(prior.model);
    folders.push_back(dir + "/prior-level" + std::to_string(level));
    std::filesystem::create_directories(folders.back());
    write_model_checkpoint(folders.back() + "/wavenet.ckpt", WaveNetKind::name, prior, 0, *wavenet);
  }
  return folders;
}

}  // namespace vqvae2::test
