// The Gaussian VAE baseline (MISSION.md §1.1) as a stage: trained on images like the VQ-VAE (same
// data, run folder, checkpoint, resume, NaN guard, metrics and grids), and scored by its −ELBO in
// bits per image dimension, with the KL of every latent channel so a posterior collapse shows.
#pragma once

#include "vqvae2/data/data.h"
#include "vqvae2/models/vae.h"
#include "vqvae2/stages/trained.h"
#include "vqvae2/training/trainer.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <string>
#include <vector>

namespace vqvae2 {

// The seed of the one z drawn from q(z|x) per image when a VAE is scored: fixed, so two evaluations
// of the same weights on the same images agree exactly.
constexpr uint64_t kVAEEvaluationSeed = 0;

struct VAEEvaluation {
  double bits_per_dim = 0;         // −ELBO / (ln 2 · D): an upper bound on −log₂ p(x) per image dimension
  double negative_elbo_nats = 0;   // −ELBO per image = kl_nats + nll_nats
  double kl_nats = 0;              // KL(q(z|x) ‖ N(0, I)) per image
  double nll_nats = 0;             // −log p(x|z) per image (one z per image)
  double mse = 0;                  // mean (x̂ − x)² in [-1, 1] units, x̂ decoded from that z
  double psnr = 0;                 // dB
  std::vector<double> kl_per_dim;  // [Z] mean KL of one latent unit of each channel, nats
  int64_t active_dims = 0;         // channels with more than 0.01 nats per unit (functional::active_dims)
  int64_t images = 0;
  nlohmann::json to_json() const;
  static VAEEvaluation from_json(const nlohmann::json& j);  // null -> all zero
};

// Scores `model` over `loader` (one pass, no gradients, eval mode). z is drawn with torch's global
// generator seeded with `seed`, which the call leaves changed.
VAEEvaluation evaluate_vae(GaussianVAE& model, BatchLoader& loader, const torch::Device& device,
                           uint64_t seed = kVAEEvaluationSeed);

// uint8 [N, C, S, S] originals and their reconstructions side by side in pairs, as one grid.
torch::Tensor vae_reconstruction_grid(GaussianVAE& model, const torch::Tensor& originals, const torch::Device& device,
                                      uint64_t seed = kVAEEvaluationSeed);
// `count` images decoded from z ~ N(0, I) drawn from `seed`, uint8 [count, C, S, S].
torch::Tensor vae_samples(GaussianVAE& model, int64_t count, uint64_t seed);

struct TrainVAEResult {
  int64_t steps = 0;              // steps done when the call returned
  bool interrupted = false;       // stopped early by SIGINT/SIGTERM (checkpoint written)
  VAEEvaluation initial, final;   // validation before the first step (fresh runs only) and at the end
  std::string checkpoint;
};

// Trains in `run` (see open_training_run, kind VAEKind::name): from scratch, or continuing its
// checkpoint, whose configuration must equal `config` except for the schedule. A continued run
// computes exactly what an uninterrupted one would. Writes grids/reconstructions-<step>.png and
// grids/samples-<step>.png at every evaluation.
TrainVAEResult train_vae(const TrainVAEConfig& config, const TrainingRun& run, const RunSettings& settings = {});
// The same, opening `run_dir` (created if needed).
TrainVAEResult train_vae(const TrainVAEConfig& config, const std::string& run_dir, bool resume,
                         const RunSettings& settings = {});

}  // namespace vqvae2
