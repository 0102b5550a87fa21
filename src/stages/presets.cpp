#include "vqvae2/stages/presets.h"

#include "vqvae2/core/error.h"

namespace vqvae2 {

std::vector<std::string> preset_names() { return {"mnist", "small", "reference"}; }

std::string resolve_preset(const std::string& name, bool has_data) {
  if (name != "auto") return name;
  return has_data ? "reference" : "mnist";
}

TrainVQVAEConfig vqvae_preset(const std::string& name) {
  TrainVQVAEConfig config;  // the struct defaults are the reference model
  if (name == "reference") {
    config.model.image_size = 256;
    config.model.channels = 3;
    config.train.batch_size = 32;
    config.train.epochs = 100;
  } else if (name == "small") {
    config.model.image_size = 64;
    config.model.channels = 3;
    config.train.batch_size = 32;
    config.train.epochs = 20;
  } else if (name == "mnist") {
    config.model.image_size = 32;
    config.model.channels = 1;
    config.model.hidden = 64;
    config.model.res_channels = 32;
    config.model.strides = {2, 2};  // bottom 16×16, top 8×8
    config.model.codes = {128};
    config.model.code_dims = {32};
    config.train.batch_size = 64;
    config.train.epochs = 3;
    config.train.learning_rate = 1e-3;
    config.train.checkpoint_every = 200;
  } else {
    fail("unknown preset '{}'; choose one of {}", name, fmt::join(preset_names(), ", "));
  }
  // Restart a code once it receives less than one vector per batch on average: without this most of
  // the codebook never wins a nearest-neighbour contest (measured on MNIST: 26% / 2% of the codes
  // used per level after 3 epochs without restarts, 87% / 89% with them).
  config.model.quantizer.dead_code_threshold = 1.0;
  return config;
}

TrainSchedule prior_schedule(PriorSize size) {
  TrainSchedule s;
  if (size == PriorSize::kSmall) {
    s.batch_size = 64;
    s.epochs = 5;
    s.learning_rate = 1e-3;
    s.checkpoint_every = 200;
  } else {
    s.batch_size = 32;
    s.epochs = 20;
    s.learning_rate = 3e-4;
  }
  return s;
}

PriorSize prior_size_for_preset(const std::string& preset) {
  return preset == "mnist" ? PriorSize::kSmall : PriorSize::kReference;
}

// ---- audio ----------------------------------------------------------------------------------------

std::vector<std::string> audio_preset_names() { return {"speech", "reference"}; }

std::string resolve_audio_preset(const std::string& name) { return name == "auto" ? "speech" : name; }

TrainAudioVQVAEConfig audio_vqvae_preset(const std::string& name) {
  TrainAudioVQVAEConfig config;  // the struct defaults are the reference model
  if (name == "reference") {
    config.train.batch_size = 16;
    config.train.epochs = 50;
  } else if (name == "speech") {
    config.model.clip_length = 8192;  // 0.512 s: one clip per spoken word
    config.model.hidden = 64;
    config.model.res_channels = 32;
    config.model.codes = {256};
    config.model.code_dims = {32};
    config.train.batch_size = 16;
    config.train.epochs = 3;
    config.train.learning_rate = 1e-3;
    config.train.checkpoint_every = 200;
    config.train.grid_images = 8;
  } else {
    fail("unknown audio preset '{}'; choose one of {}", name, fmt::join(audio_preset_names(), ", "));
  }
  config.data.sample_rate = config.model.sample_rate;
  config.data.clip_length = config.model.clip_length;
  return config;
}

WaveNetSize wavenet_size(PriorSize size) { return size == PriorSize::kSmall ? WaveNetSize::kSmall : WaveNetSize::kReference; }

TrainSchedule wavenet_schedule(PriorSize size) {
  TrainSchedule s;
  s.grid_images = 4;
  if (size == PriorSize::kSmall) {
    s.batch_size = 16;
    s.epochs = 3;
    s.learning_rate = 1e-3;
    s.checkpoint_every = 200;
  } else {
    s.batch_size = 16;
    s.epochs = 20;
    s.learning_rate = 3e-4;
  }
  return s;
}

}  // namespace vqvae2
