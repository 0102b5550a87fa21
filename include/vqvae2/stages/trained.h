// The kinds of model the library trains, each with the configuration it is trained from, and one
// typed loader for all of them.
//
// A kind names its checkpoint ("vqvae" -> <run>/vqvae.ckpt), its training configuration (the model's
// options, what it is trained on, the schedule: a checkpoint records it whole) and how the model is
// built from that configuration. `load<VQVAEKind>("runs/main/vqvae", device)` gives the model in eval
// mode with its configuration and step.
//
// Images: VQVAEKind (stage 1) and PriorKind (stage 2, PixelCNN/PixelSNAIL). Audio (MISSION.md §1.6):
// AudioVQVAEKind (stage 1, "audio-vqvae.ckpt") and WaveNetKind (stage 2, "wavenet.ckpt"). Commands
// that take a trained model tell the two apart by the checkpoint a run folder holds (stored_kind).
#pragma once

#include "vqvae2/core/checkpoint.h"
#include "vqvae2/data/audio.h"
#include "vqvae2/data/data.h"
#include "vqvae2/models/audio_vqvae.h"
#include "vqvae2/models/prior.h"
#include "vqvae2/models/vae.h"
#include "vqvae2/models/vqvae.h"
#include "vqvae2/models/wavenet.h"
#include "vqvae2/training/trainer.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <string>
#include <vector>

namespace vqvae2 {

// Stage 1: the hierarchical VQ-VAE, trained on images (their size and channels are the model's).
struct TrainVQVAEConfig {
  VQVAEOptions model;
  DataOptions data;
  TrainSchedule train;
  void validate() const;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TrainVQVAEConfig, model, data, train)

// Stage 2: a prior over one level's codes, trained on the code stores extract_codes wrote.
struct TrainPriorConfig {
  PriorOptions model;
  std::string codes;        // folder holding train.vq2 and val.vq2
  TrainSchedule train;
  int64_t image_dims = 0;   // S·S·C of the images the codes stand for (bits per image dimension)
  void validate() const;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TrainPriorConfig, model, codes, train, image_dims)

// The Gaussian VAE baseline of the lineage (MISSION.md §1.1), trained on images like stage 1.
struct TrainVAEConfig {
  VAEOptions model;
  DataOptions data;
  TrainSchedule train;
  void validate() const;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TrainVAEConfig, model, data, train)

// Stage 1 on audio: the 1-D hierarchical VQ-VAE, trained on clips of a folder of audio files. The
// model's sample rate and clip length are the data's (validate() checks that they agree).
struct TrainAudioVQVAEConfig {
  AudioVQVAEOptions model;
  AudioDataOptions data;
  TrainSchedule train;
  void validate() const;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TrainAudioVQVAEConfig, model, data, train)

// Stage 2 on audio: a WaveNet over one level's code sequences, trained on the code stores
// extract_codes wrote for an audio VQ-VAE.
struct TrainWaveNetConfig {
  WaveNetOptions model;
  std::string codes;               // folder holding train.vq2 and val.vq2
  TrainSchedule train;
  int64_t samples_per_code = 0;    // audio samples one code of this level stands for (bits per audio sample)
  void validate() const;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TrainWaveNetConfig, model, codes, train, samples_per_code)

struct VQVAEKind {
  using Config = TrainVQVAEConfig;
  using Model = HierarchicalVQVAE;
  static constexpr const char* name = "vqvae";
  static Model build(const Config& config) { return Model(config.model); }
};

struct PriorKind {
  using Config = TrainPriorConfig;
  using Model = Prior;
  static constexpr const char* name = "prior";
  static Model build(const Config& config) { return Model(config.model); }
};

struct VAEKind {
  using Config = TrainVAEConfig;
  using Model = GaussianVAE;
  static constexpr const char* name = "vae";
  static Model build(const Config& config) { return Model(config.model); }
};

struct AudioVQVAEKind {
  using Config = TrainAudioVQVAEConfig;
  using Model = AudioVQVAE;
  static constexpr const char* name = "audio-vqvae";
  static Model build(const Config& config) { return Model(config.model); }
};

struct WaveNetKind {
  using Config = TrainWaveNetConfig;
  using Model = WaveNet;
  static constexpr const char* name = "wavenet";
  static Model build(const Config& config) { return Model(config.model); }
};

template <typename Kind>
struct Trained {
  typename Kind::Model model{nullptr};
  typename Kind::Config config;
  int64_t step = 0;        // training steps behind the weights
  std::string checkpoint;  // the file they came from
};
using TrainedVQVAE = Trained<VQVAEKind>;
using TrainedPrior = Trained<PriorKind>;
using TrainedVAE = Trained<VAEKind>;
using TrainedAudioVQVAE = Trained<AudioVQVAEKind>;
using TrainedWaveNet = Trained<WaveNetKind>;

// What a model works on. Stage-1 kinds: vqvae (images), audio-vqvae (audio).
enum class Modality { kImage, kAudio };
NLOHMANN_JSON_SERIALIZE_ENUM(Modality, {{Modality::kImage, "image"}, {Modality::kAudio, "audio"}})
// "image" or "audio" (throws vqvae2::Error naming both otherwise).
Modality parse_modality(const std::string& name);
std::string modality_name(Modality modality);

// A run folder or a checkpoint file -> the checkpoint file of `kind` (<folder>/<kind>.ckpt).
std::string checkpoint_path(const std::string& run_or_file, const std::string& kind);

// What the files of a data folder are: audio when it holds more audio files than images (by their
// extensions, searched recursively), else images. An empty name (the embedded digits) is images.
Modality detect_modality(const std::string& data_folder);

// The kind of the model in a run folder (the <kind>.ckpt among `kinds` it holds: exactly one) or
// in a checkpoint file (from its header). Throws vqvae2::Error when it is none of `kinds`.
std::string stored_kind(const std::string& run_or_file, const std::vector<std::string>& kinds);
// What the stage-1 model in a run folder or checkpoint file works on: audio for an audio-vqvae
// checkpoint, else image (also for a missing or unreadable one: the image loader reports those).
Modality vqvae_modality(const std::string& run_or_file);

// A run folder holding one checkpoint (of any kind), or a checkpoint file -> the checkpoint file.
std::string any_checkpoint_path(const std::string& run_or_file);

// Builds the model a checkpoint describes and loads its weights, in eval mode on `device`.
template <typename Kind>
Trained<Kind> load(const ModelCheckpoint& checkpoint, const torch::Device& device) {
  Trained<Kind> trained;
  trained.config = checkpoint.config_as<typename Kind::Config>();
  trained.step = checkpoint.step;
  trained.checkpoint = checkpoint.path;
  trained.model = Kind::build(trained.config);
  load_module(*trained.model, checkpoint.tensors, "model", checkpoint.path);
  trained.model->to(device);
  trained.model->eval();
  return trained;
}

// The same from a run folder or a checkpoint file.
template <typename Kind>
Trained<Kind> load(const std::string& run_or_file, const torch::Device& device) {
  return load<Kind>(read_model_checkpoint(checkpoint_path(run_or_file, Kind::name), Kind::name), device);
}

}  // namespace vqvae2
