// Stage 1: training the hierarchical VQ-VAE on images.
#pragma once

#include "vqvae2/stages/evaluate.h"
#include "vqvae2/stages/trained.h"
#include "vqvae2/training/trainer.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <string>

namespace vqvae2 {

struct TrainVQVAEResult {
  int64_t steps = 0;                     // steps done when the call returned
  bool interrupted = false;              // stopped early by SIGINT/SIGTERM (checkpoint written)
  Evaluation initial, final;             // validation before the first step (fresh runs only) and at the end
  std::string checkpoint;
};

// Trains in `run` (see open_training_run): from scratch, or continuing its checkpoint, whose
// configuration must equal `config` except for the schedule. A continued run computes exactly what
// an uninterrupted one would.
TrainVQVAEResult train_vqvae(const TrainVQVAEConfig& config, const TrainingRun& run, const RunSettings& settings = {});
// The same, opening `run_dir` (created if needed).
TrainVQVAEResult train_vqvae(const TrainVQVAEConfig& config, const std::string& run_dir, bool resume,
                             const RunSettings& settings = {});

}  // namespace vqvae2
