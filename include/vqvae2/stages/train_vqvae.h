// Stage 1: training the hierarchical VQ-VAE, evaluating it, and loading trained models.
#pragma once

#include "vqvae2/data/data.h"
#include "vqvae2/core/device.h"
#include "vqvae2/models/vqvae.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

namespace vqvae2 {

struct TrainSchedule {
  int64_t batch_size = 32;
  int64_t epochs = 10;
  int64_t steps = 0;               // total optimisation steps; 0 = epochs × batches per epoch
  double learning_rate = 3e-4;     // Adam
  uint64_t seed = 0;               // weights, data order, dropout: everything random
  int64_t log_every = 10;          // steps between metrics lines
  int64_t checkpoint_every = 500;  // steps between checkpoints (also at each epoch's end and the last step)
  int64_t grid_images = 16;        // images in each reconstruction / sample grid
  std::string on_nan = "stop";     // a NaN/infinite loss: "stop", or "skip" the batch (at most 10 in a row)

  void validate() const;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TrainSchedule, batch_size, epochs, steps, learning_rate, seed,
                                                log_every, checkpoint_every, grid_images, on_nan)

struct TrainVQVAEConfig {
  VQVAEOptions model;
  DataOptions data;
  TrainSchedule train;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TrainVQVAEConfig, model, data, train)

// Settings of one process that do not change what is computed: not stored as configuration.
struct RunSettings {
  std::string device = "cpu";
  bool quiet = false;  // no progress bar
  int64_t loader_prefetch = 4;
};

struct Evaluation {
  double mse = 0;                        // mean (x̂ - x)² in [-1, 1] units
  double psnr = 0;                       // dB
  std::vector<double> perplexity;        // per level, over the whole evaluated set
  std::vector<double> usage;             // per level: fraction of codes used at least once
  int64_t images = 0;
  nlohmann::json to_json() const;
};

struct TrainVQVAEResult {
  int64_t steps = 0;                     // steps done when the call returned
  bool interrupted = false;              // stopped early by SIGINT/SIGTERM (checkpoint written)
  Evaluation initial, final;             // validation before the first step of this run (step 0 only) and at the end
  std::string checkpoint;
};

// Trains in `run_dir` (created if needed). With `resume`, continues from <run_dir>/vqvae.ckpt,
// whose configuration must equal `config` except for the schedule; the continued run computes
// exactly what an uninterrupted one would.
TrainVQVAEResult train_vqvae(const TrainVQVAEConfig& config, const std::string& run_dir, bool resume,
                             const RunSettings& settings = {});

// Reconstruction error, PSNR and code usage of `model` over `loader` (one pass, no gradients).
Evaluation evaluate_vqvae(HierarchicalVQVAE& model, BatchLoader& loader, const torch::Device& device);

struct LoadedVQVAE {
  HierarchicalVQVAE model{nullptr};
  TrainVQVAEConfig config;
  int64_t step = 0;
};
// Loads a VQ-VAE checkpoint for inference (eval mode) on `device`.
LoadedVQVAE load_vqvae(const std::string& path, const torch::Device& device);

// Path of the VQ-VAE checkpoint in a run folder.
std::string vqvae_checkpoint_path(const std::string& run_dir);

}  // namespace vqvae2
