// Stage 2: training a prior over one level's codes with cross-entropy, on the code stores
// extract_codes wrote. Reports held-out negative log-likelihood in bits per code and per image
// dimension.
#pragma once

#include "vqvae2/data/code_store.h"
#include "vqvae2/models/prior.h"
#include "vqvae2/stages/evaluate.h"
#include "vqvae2/stages/presets.h"
#include "vqvae2/stages/trained.h"
#include "vqvae2/training/trainer.h"

#include <nlohmann/json.hpp>

#include <string>

namespace vqvae2 {

// The code stores of one VQ-VAE: <folder>/train.vq2 and <folder>/val.vq2, each read once.
struct PriorCodes {
  std::string folder;
  CodeStore train, validation;
};
PriorCodes read_prior_codes(const std::string& folder);

// "top", "bottom" or a number -> a level index of a store with `levels` levels.
int64_t parse_level(const std::string& level, int64_t levels);

// A complete, valid configuration for a prior of `level` of `codes`: the architecture (top:
// PixelSNAIL; lower levels: conditional on the level above), widths and schedule of `size`, and the
// image dimensions the codes stand for.
TrainPriorConfig prior_config_for(const PriorCodes& codes, int64_t level, PriorSize size);

struct TrainPriorResult {
  int64_t steps = 0;
  bool interrupted = false;
  double initial_bits_per_code = 0, final_bits_per_code = 0;  // held out
  double final_bits_per_dim = 0;
  std::string checkpoint;
};

// Trains in `run` (see open_training_run) on `codes`, which must be the codes `config` was made for.
TrainPriorResult train_prior(const TrainPriorConfig& config, const PriorCodes& codes, const TrainingRun& run,
                             const RunSettings& settings = {});
// The same, reading config.codes and opening `run_dir`.
TrainPriorResult train_prior(const TrainPriorConfig& config, const std::string& run_dir, bool resume,
                             const RunSettings& settings = {});

}  // namespace vqvae2
