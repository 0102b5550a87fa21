// The kinds of model the library trains, each with the configuration it is trained from, and one
// typed loader for all of them.
//
// A kind names its checkpoint ("vqvae" -> <run>/vqvae.ckpt), its training configuration (the model's
// options, what it is trained on, the schedule: a checkpoint records it whole) and how the model is
// built from that configuration. `load<VQVAEKind>("runs/main/vqvae", device)` gives the model in eval
// mode with its configuration and step.
#pragma once

#include "vqvae2/core/checkpoint.h"
#include "vqvae2/data/data.h"
#include "vqvae2/models/prior.h"
#include "vqvae2/models/vqvae.h"
#include "vqvae2/training/trainer.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <string>

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

template <typename Kind>
struct Trained {
  typename Kind::Model model{nullptr};
  typename Kind::Config config;
  int64_t step = 0;        // training steps behind the weights
  std::string checkpoint;  // the file they came from
};
using TrainedVQVAE = Trained<VQVAEKind>;
using TrainedPrior = Trained<PriorKind>;

// A run folder or a checkpoint file -> the checkpoint file of `kind` (<folder>/<kind>.ckpt).
std::string checkpoint_path(const std::string& run_or_file, const std::string& kind);

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
