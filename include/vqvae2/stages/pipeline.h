// The whole system in one call: train the VQ-VAE, extract its codes, train one prior per level (top
// first), sample. Every stage writes its own run folder under one root; a resumed pipeline continues
// each stage where it stopped (a finished stage resumes at its end, doing nothing).
//
//   <out>/vqvae/           stage 1 run folder          <out>/codes/{train,val}.vq2
//   <out>/prior-level<l>/  one stage-2 run per level   <out>/samples.png
#pragma once

#include "vqvae2/stages/codes.h"
#include "vqvae2/stages/generate.h"
#include "vqvae2/stages/train_prior.h"
#include "vqvae2/stages/train_vqvae.h"

#include <string>
#include <vector>

namespace vqvae2 {

struct PipelineConfig {
  std::string out = "runs/main";
  std::string data;                  // folder of images; empty = the embedded MNIST digits
  int64_t limit = 0;                 // use at most this many images (0 = all)
  std::string preset = "auto";       // VQ-VAE preset (presets.h); auto = mnist without data, reference with
  std::string prior_size = "auto";   // small, reference, or auto: the preset's (prior_size_for_preset)
  int64_t vqvae_epochs = 0;          // 0 = the preset's
  int64_t prior_epochs = 0;          // 0 = the prior size's
  int64_t vqvae_steps = 0;           // > 0: a fixed number of steps instead of epochs (quick runs)
  int64_t prior_steps = 0;
  int64_t samples = 16;
  uint64_t seed = 0;                 // of every stage
  bool resume = false;
};

struct PipelineResult {
  bool interrupted = false;          // a stage was stopped by SIGINT/SIGTERM (its checkpoint written)
  TrainVQVAEResult vqvae;
  ExtractResult codes;
  std::vector<TrainPriorResult> priors;  // top first
  SampleResult samples;
  std::string samples_path;
};

PipelineResult run_pipeline(const PipelineConfig& config, const RunSettings& settings);

}  // namespace vqvae2
