// Scoring trained models: a VQ-VAE's reconstructions (MSE, PSNR, code usage per level) and a
// prior's likelihood of held-out codes. Training evaluates with these, and so can anyone holding a
// trained model.
#pragma once

#include "vqvae2/data/code_store.h"
#include "vqvae2/data/data.h"
#include "vqvae2/models/prior.h"
#include "vqvae2/models/vqvae.h"
#include "vqvae2/stages/trained.h"
#include "vqvae2/training/trainer.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

namespace vqvae2 {

struct Evaluation {
  double mse = 0;                        // mean (x̂ - x)² in [-1, 1] units
  double psnr = 0;                       // dB
  std::vector<double> perplexity;        // per level, over the whole evaluated set
  std::vector<double> usage;             // per level: fraction of codes used at least once
  int64_t images = 0;
  nlohmann::json to_json() const;
  static Evaluation from_json(const nlohmann::json& j);  // null -> all zero
};

// Called with each evaluated batch: its images, their reconstructions (uint8 [B, C, S, S], on the CPU)
// and each image's squared error (mean over its pixels, [-1, 1] units) [B].
using EvaluatedBatch = std::function<void(const Batch& batch, const torch::Tensor& reconstructions,
                                          const torch::Tensor& squared_errors)>;

// Reconstruction error, PSNR and code usage of `model` over `loader` (one pass, no gradients).
Evaluation evaluate_vqvae(HierarchicalVQVAE& model, BatchLoader& loader, const torch::Device& device,
                          const EvaluatedBatch& each_batch = {});

// The images a trained VQ-VAE works on, in its format: the folder given, else the data it was
// trained on.
std::shared_ptr<ImageDataset> open_images(const TrainedVQVAE& vqvae, const std::string& folder, std::ostream* warnings);

struct Reconstruction {
  torch::Tensor grid;  // uint8 [C, H, W]: originals and reconstructions side by side, in pairs
  double mse = 0;      // over the images shown
  double psnr = 0;     // dB
  int64_t images = 0;
};
// `originals` uint8 [N, C, S, S] through `model` (eval mode, no gradients).
Reconstruction reconstruct(HierarchicalVQVAE& model, const torch::Tensor& originals, const torch::Device& device);

struct ReconstructConfig {
  std::string checkpoint;  // VQ-VAE run folder or .ckpt file
  std::string data;        // a folder of images; empty = the model's own held-out images
  int64_t images = 16;
  std::string out = "reconstructions.png";
};
// The first `images` images of the folder (or of the held-out split) and their reconstructions,
// written as one PNG grid.
Reconstruction reconstruct(const ReconstructConfig& config, const RunSettings& settings);

// The codes of `level` and of the level above (undefined for the top), as stored.
struct LevelCodes {
  torch::Tensor codes;      // [N, H, W] int64
  torch::Tensor condition;  // [N, H/s, W/s] int64, or undefined
};
LevelCodes level_codes(const CodeStore& store, int64_t level);

// Throws vqvae2::Error unless `store` holds the codes `prior` models (its level's size and K, and the
// level above for a conditional prior); `name` names the store in the message.
void check_codes_fit(const PriorOptions& prior, const CodeStore& store, const std::string& name);

// Held-out NLL in nats per code of `prior` on `data` (eval mode, no gradients).
double evaluate_prior(Prior& prior, const LevelCodes& data, int64_t batch_size, const torch::Device& device);

// ---- `vqvae2 evaluate`: a trained model of any kind on data it may never have seen -------------------

struct EvaluateConfig {
  std::string checkpoint;  // a VQ-VAE or prior run folder, or a .ckpt file: its kind decides what is evaluated
  std::string data;        // VQ-VAE: a folder of images (default: its own held-out images)
  std::string codes;       // prior: a code store, or a folder holding val.vq2 (default: its own held-out codes)
  std::string out_dir;     // VQ-VAE: write every reconstruction here, under its source's name (default: none)
  std::string json;        // write the figures here as JSON (default: none)
  int64_t batch_size = 32;
};

struct ImageScore {
  std::string name;  // the source image, relative to the folder
  double mse = 0, psnr = 0;
};

struct EvaluateResult {
  std::string kind;                // "vqvae" or "prior"
  std::string checkpoint;
  int64_t step = 0;                // training steps behind the weights
  Evaluation vqvae;                // a VQ-VAE's figures
  std::vector<ImageScore> images;  // a VQ-VAE's, per image, in the data set's order
  double bits_per_code = 0;        // a prior's held-out NLL
  double bits_per_dim = 0;         // the same per dimension of the images the codes stand for (0: unknown)
  int64_t maps = 0;                // code maps the prior was evaluated on
  std::string summary() const;     // one line
  nlohmann::json to_json() const;
};

EvaluateResult evaluate(const EvaluateConfig& config, const RunSettings& settings);

}  // namespace vqvae2
