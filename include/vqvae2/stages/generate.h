// New images from trained run folders: the priors (one per level) sample codes top-down, the VQ-VAE
// decodes them (models/sampler.h has the samplers themselves).
#pragma once

#include "vqvae2/models/sampler.h"
#include "vqvae2/stages/trained.h"
#include "vqvae2/training/trainer.h"

#include <torch/torch.h>

#include <string>
#include <vector>

namespace vqvae2 {

struct SampleConfig {
  std::string vqvae;                 // VQ-VAE run folder or .ckpt file
  std::vector<std::string> priors;   // prior run folders or .ckpt files, one per level, any order
  int64_t count = 16;
  int64_t batch_size = 16;           // images sampled together
  SamplingOptions sampling;
  uint64_t seed = 0;                 // same seed, same samples
  bool naive = false;                // the reference sampler: a full forward pass per code
  std::string out = "samples.png";   // PNG grid
  std::string codes_out;             // optional: the sampled codes as a code store
  void validate() const;
};

struct SampleResult {
  torch::Tensor images;              // uint8 [count, C, S, S]
  std::vector<torch::Tensor> codes;  // per level, bottom first: [count, H_l, W_l]
  double seconds = 0;                // sampling and decoding, all batches
};

// `priors` ordered by level (index = level, bottom first), checked to be one per level of a
// `levels`-level VQ-VAE; `paths` name them in messages.
std::vector<Prior> priors_by_level(const std::vector<TrainedPrior>& priors, const std::vector<std::string>& paths,
                                   int64_t levels);

// Samples config.count images, writes the grid (and the codes when asked).
SampleResult sample_images(const SampleConfig& config, const RunSettings& settings);

}  // namespace vqvae2
