// The lineage side by side (MISSION.md §1.1–1.4): trained Gaussian VAEs, VQ-VAEs and their priors
// scored on the SAME held-out images, as one table (Markdown and JSON) and one picture of samples.
//
// A run is given as "[LABEL=]FOLDER", where FOLDER is one of
//   a VAE run folder            (train-vae: vae.ckpt)
//   a pipeline folder           (pipeline: vqvae/vqvae.ckpt and prior-level<l>/prior.ckpt for every level)
//   a VQ-VAE run folder         (train-vqvae: vqvae.ckpt) — reconstruction figures only: no likelihood, no samples
// and LABEL defaults to the folder's name.
//
// Likelihoods are upper bounds on −log₂ p(x) per image dimension (D = C·S·S 8-bit values), each the
// sum of a latent term and a reconstruction term:
//   VAE     −ELBO = KL(q(z|x) ‖ N(0, I)) + (−log p(x|z)),  one z ~ q(z|x) per image
//   VQ-VAE  −log p(z_q) under its priors (summed over levels) + (−log p(x|z_q)), where p(x|z_q) is a
//           discretised logistic centred on the decoder's output with one scale s for all pixels,
//           the best of log s ∈ {−7, −6.75, …, 0} on the images scored. Since q(z|x) is one-hot,
//           KL(q ‖ p) = −log p(z_q) and p(x) ≥ p(z_q)·p(x|z_q): the same bound as the VAE's.
#pragma once

#include "vqvae2/models/digit_classifier.h"
#include "vqvae2/training/trainer.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <optional>
#include <string>
#include <vector>

namespace vqvae2 {

struct CompareConfig {
  std::vector<std::string> runs;    // "[LABEL=]FOLDER", at least one
  int64_t images = 0;               // held-out images scored (the first ones of the split; 0 = all)
  int64_t samples = 8;              // samples per model in the picture (and timed)
  int64_t batch_size = 64;
  uint64_t seed = 0;                // of the samples
  std::string out = "compare";      // folder: compare.md, compare.json, samples.png
  int64_t digit_samples = 0;        // > 0: this many samples per model scored as digits (grey 32×32 runs only)
  std::string digit_classifier;     // the digit classifier's cache file; empty = default_digit_classifier_path()
  void validate() const;
};

// The log-scales tried for a VQ-VAE's reconstruction likelihood (see above).
std::vector<double> reconstruction_log_scales();

struct ModelScore {
  std::string label, folder;
  std::string kind;                 // "vae" or "vqvae"
  std::string description;          // e.g. "VQ-VAE, 1 level 8x8, K 128, codebook loss; gated PixelCNN prior"
  int64_t steps = 0;                // of the autoencoder
  std::vector<int64_t> prior_steps; // of each prior, bottom first (VQ-VAE with priors)
  int64_t parameters = 0;           // trainable parameters of the autoencoder
  int64_t prior_parameters = 0;     // of all its priors together
  double mse = 0, psnr = 0;         // reconstructions of the held-out images
  std::optional<double> latent_bits_per_dim;          // VAE: KL; VQ-VAE: prior NLL of the codes
  std::optional<double> reconstruction_bits_per_dim;  // −log p(x|z)
  std::optional<double> bits_per_dim;                 // their sum: the bound on −log₂ p(x) per dimension
  double reconstruction_log_scale = 0;                // VQ-VAE: the log s chosen
  std::vector<double> usage;        // VQ-VAE: fraction of each level's codes used, bottom first
  int64_t active_dims = 0, latent_channels = 0;       // VAE
  std::optional<double> train_images_per_second;      // median over the autoencoder's metrics.jsonl
  std::vector<double> prior_maps_per_second;          // the same for each prior, bottom first
  std::optional<double> sample_seconds_per_image;
  std::optional<DigitScore> digit_score;              // with digit_samples, for a model that samples
  torch::Tensor samples;            // uint8 [samples, C, S, S], undefined without a way to sample
  nlohmann::json to_json() const;   // everything but the samples; missing figures are null
};

struct Comparison {
  std::vector<ModelScore> models;   // in the order given
  int64_t images = 0;               // held-out images every model was scored on
  std::string data;                 // where they came from, in words
  std::optional<DigitScore> real_digits;  // with digit_samples: held-out digits scored as many at a time
  std::string markdown_path, json_path, samples_path;
};

// Scores every run on the held-out images of the first run's data (the others must be trained on
// the same image format, folder and split), samples each (scoring the samples as digits when asked),
// and writes <out>/compare.md, <out>/compare.json and <out>/samples.png (one labelled row per model
// that can sample).
Comparison compare_runs(const CompareConfig& config, const RunSettings& settings = {});

// The table and its footnotes as Markdown, and all of it as JSON.
std::string comparison_markdown(const Comparison& comparison);
nlohmann::json comparison_json(const Comparison& comparison);

// One row per batch of images uint8 [N_r, C, S, S] (same C and S for all), each row preceded by its
// label drawn in a small built-in pixel font (letters, digits and - . _ ( ) / + = : ; others as ?).
// Returns uint8 [C, H, W] on white.
torch::Tensor labelled_rows(const std::vector<std::string>& labels, const std::vector<torch::Tensor>& rows);

}  // namespace vqvae2
