#include "vqvae2/stages/trained.h"

#include "vqvae2/core/error.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <filesystem>

namespace vqvae2 {

void TrainVQVAEConfig::validate() const {
  model.validate();
  data.validate();
  train.validate();
}

void TrainVAEConfig::validate() const {
  model.validate();
  data.validate();
  train.validate();
}

void TrainPriorConfig::validate() const {
  model.validate();
  train.validate();
  VQVAE2_CHECK(image_dims >= 0, "image dimensions must be >= 0, got {}", image_dims);
}

void TrainAudioVQVAEConfig::validate() const {
  model.validate();
  data.validate();
  train.validate();
  VQVAE2_CHECK(model.sample_rate == data.sample_rate && model.clip_length == data.clip_length,
               "the audio VQ-VAE is configured for {} Hz clips of {} samples but the data for {} Hz clips of {}; "
               "set both with --sample-rate and --clip-length",
               model.sample_rate, model.clip_length, data.sample_rate, data.clip_length);
}

void TrainWaveNetConfig::validate() const {
  model.validate();
  train.validate();
  VQVAE2_CHECK(samples_per_code >= 0, "audio samples per code must be >= 0, got {}", samples_per_code);
}

Modality parse_modality(const std::string& name) {
  VQVAE2_CHECK(name == "image" || name == "audio", "the modality must be image or audio, got '{}'", name);
  return name == "audio" ? Modality::kAudio : Modality::kImage;
}

std::string modality_name(Modality modality) { return modality == Modality::kAudio ? "audio" : "image"; }

Modality detect_modality(const std::string& data_folder) {
  namespace fs = std::filesystem;
  if (data_folder.empty()) return Modality::kImage;
  std::error_code error;
  int64_t audio = 0, images = 0;
  const auto has = [](const std::vector<std::string>& extensions, std::string extension) {
    std::transform(extension.begin(), extension.end(), extension.begin(), [](unsigned char c) { return std::tolower(c); });
    return std::find(extensions.begin(), extensions.end(), extension) != extensions.end();
  };
  for (auto it = fs::recursive_directory_iterator(data_folder, fs::directory_options::skip_permission_denied, error);
       !error && it != fs::recursive_directory_iterator(); it.increment(error)) {
    const auto extension = it->path().extension().string();
    audio += has(audio_extensions(), extension);
    images += has(image_extensions(), extension);
  }
  return audio > images ? Modality::kAudio : Modality::kImage;
}

std::string stored_kind(const std::string& run_or_file, const std::vector<std::string>& kinds) {
  namespace fs = std::filesystem;
  VQVAE2_CHECK(!run_or_file.empty(), "no run folder or checkpoint given");
  if (fs::is_directory(run_or_file)) {
    std::vector<std::string> found;
    for (const auto& kind : kinds) {
      if (fs::exists(fs::path(run_or_file) / (kind + ".ckpt"))) found.push_back(kind);
    }
    VQVAE2_CHECK(found.size() == 1,
                 "run folder '{}' holds {} of {}; give the run folder of one trained model (or its .ckpt file)",
                 run_or_file, found.empty() ? std::string("none") : fmt::format("{}", fmt::join(found, ".ckpt and ")) + ".ckpt",
                 fmt::format("{}.ckpt", fmt::join(kinds, ".ckpt, ")));
    return found[0];
  }
  VQVAE2_CHECK(fs::exists(run_or_file), "checkpoint '{}' does not exist", run_or_file);
  const auto kind = checkpoint_kind(run_or_file);
  VQVAE2_CHECK(std::find(kinds.begin(), kinds.end(), kind) != kinds.end(),
               "'{}' holds a {} checkpoint, but one of {} is needed here", run_or_file, kind, fmt::join(kinds, ", "));
  return kind;
}

Modality vqvae_modality(const std::string& run_or_file) {
  namespace fs = std::filesystem;
  // Anything that is not plainly an audio VQ-VAE is left to the image loader, whose messages say
  // what is wrong with it.
  std::error_code error;
  if (fs::is_directory(run_or_file, error)) {
    return fs::exists(fs::path(run_or_file) / (std::string(AudioVQVAEKind::name) + ".ckpt"), error) &&
                   !fs::exists(fs::path(run_or_file) / (std::string(VQVAEKind::name) + ".ckpt"), error)
               ? Modality::kAudio
               : Modality::kImage;
  }
  try {
    return fs::is_regular_file(run_or_file, error) && checkpoint_kind(run_or_file) == AudioVQVAEKind::name
               ? Modality::kAudio
               : Modality::kImage;
  } catch (const Error&) {
    return Modality::kImage;
  }
}

std::string checkpoint_path(const std::string& run_or_file, const std::string& kind) {
  namespace fs = std::filesystem;
  VQVAE2_CHECK(!run_or_file.empty(), "no {} given: a run folder or a .ckpt file", kind);
  if (fs::is_directory(run_or_file)) {
    const auto file = (fs::path(run_or_file) / (kind + ".ckpt")).string();
    VQVAE2_CHECK(fs::exists(file), "run folder '{}' has no {}.ckpt; is it the right run, and did training finish a step?",
                 run_or_file, kind);
    return file;
  }
  VQVAE2_CHECK(fs::exists(run_or_file), "checkpoint '{}' does not exist", run_or_file);
  return run_or_file;
}

std::string any_checkpoint_path(const std::string& run_or_file) {
  namespace fs = std::filesystem;
  VQVAE2_CHECK(!run_or_file.empty(), "no checkpoint given: a run folder or a .ckpt file");
  if (!fs::is_directory(run_or_file)) return checkpoint_path(run_or_file, "model");
  std::vector<std::string> found;
  for (const auto& entry : fs::directory_iterator(run_or_file)) {
    if (entry.path().extension() == ".ckpt") found.push_back(entry.path().string());
  }
  VQVAE2_CHECK(found.size() == 1, "run folder '{}' holds {} checkpoints ({}); name the .ckpt file", run_or_file,
               found.size(), fmt::join(found, ", "));
  return found.front();
}

}  // namespace vqvae2
