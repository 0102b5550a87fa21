// Stage 2: training a prior over one level's codes with cross-entropy, on code stores written by
// extract_codes. Reports held-out negative log-likelihood in bits per code and per image dimension.
#pragma once

#include "vqvae2/data/code_store.h"
#include "vqvae2/models/prior.h"
#include "vqvae2/stages/train_vqvae.h"

#include <nlohmann/json.hpp>

#include <string>

namespace vqvae2 {

struct TrainPriorConfig {
  PriorOptions model;
  std::string codes;        // folder holding train.vq2 and val.vq2
  TrainSchedule train;
  int64_t image_dims = 0;   // S·S·C of the images the codes stand for (bits per image dimension)
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TrainPriorConfig, model, codes, train, image_dims)

struct TrainPriorResult {
  int64_t steps = 0;
  bool interrupted = false;
  double initial_bits_per_code = 0, final_bits_per_code = 0;  // held out
  double final_bits_per_dim = 0;
  std::string checkpoint;
};

// The codes of `level` and of the level above (undefined for the top), as stored.
struct LevelCodes {
  torch::Tensor codes;      // [N, H, W] int64
  torch::Tensor condition;  // [N, H/s, W/s] int64, or undefined
};
LevelCodes level_codes(const CodeStore& store, int64_t level);

// A prior configuration matching `level` of the code store (top: PixelSNAIL; lower levels:
// conditional on the level above), at the given size.
PriorOptions prior_options_for(const CodeStore& store, int64_t level, PriorSize size);

TrainPriorResult train_prior(const TrainPriorConfig& config, const std::string& run_dir, bool resume,
                             const RunSettings& settings = {});

// Held-out NLL in nats per code of `prior` on `data` (eval mode, no gradients).
double evaluate_prior(Prior& prior, const LevelCodes& data, int64_t batch_size, const torch::Device& device);

struct LoadedPrior {
  Prior model{nullptr};
  TrainPriorConfig config;
  int64_t step = 0;
};
LoadedPrior load_prior(const std::string& path, const torch::Device& device);

std::string prior_checkpoint_path(const std::string& run_dir);

}  // namespace vqvae2
