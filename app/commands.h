// The vqvae2 subcommands: each takes its parsed settings and calls the library; no model math here.
#pragma once

#include "vqvae2/core/device.h"
#include "vqvae2/models/sampler.h"
#include "vqvae2/stages/train_prior.h"
#include "vqvae2/stages/train_vqvae.h"

#include <string>

namespace vqvae2::cli {

// Exit status of a run stopped by SIGINT/SIGTERM after writing its checkpoint (128 + SIGINT, as shells do).
constexpr int kInterruptedExit = 130;

struct Common {
  std::string device = "cpu";
  ThreadOptions threads;
  bool quiet = false;
};

struct TrainVQVAECommand {
  TrainVQVAEConfig config;
  std::string out = "runs/vqvae";
  bool resume = false;
};
int train_vqvae(const TrainVQVAECommand& command, const Common& common);

struct ReconstructCommand {
  std::string checkpoint;  // a run folder or a .ckpt file
  std::string data;        // a folder of images; empty = the model's own validation images
  int64_t images = 16;
  std::string out = "reconstructions.png";
};
int reconstruct(const ReconstructCommand& command, const Common& common);

struct EncodeCommand {
  std::string checkpoint;
  std::string data;  // empty = the data set the model was trained on
  std::string out = "codes.vq2";
  int64_t batch_size = 32;
};
int encode(const EncodeCommand& command, const Common& common);

struct DecodeCommand {
  std::string checkpoint;
  std::string codes;
  std::string out = "decoded";  // folder of PNGs (one per image) plus grid.png
  int64_t limit = 64;           // decode at most this many images (0 = all)
  int64_t batch_size = 32;
};
int decode(const DecodeCommand& command, const Common& common);

struct BenchCommand {
  std::string what = "vqvae";
  int64_t warmup = 1;
  int64_t iterations = 3;
  std::vector<int64_t> batches = {1, 16};  // bench sample
};
int bench(const BenchCommand& command, const Common& common);

struct ExtractCommand {
  std::string checkpoint;       // the VQ-VAE
  std::string out;              // default: <VQ-VAE run>/codes
  int64_t batch_size = 64;
};
int extract_codes(const ExtractCommand& command, const Common& common);

struct TrainPriorCommand {
  TrainPriorConfig config;
  std::string level = "top";    // top, bottom or a level number
  std::string size = "reference";
  std::string out;              // default: runs/prior-<level>
  bool resume = false;
};
// Fills in what the code store decides (level, map size, K, conditioning) and trains.
int train_prior(TrainPriorCommand command, const Common& common, const std::function<void(TrainPriorConfig&)>& flags);

struct SampleCommand {
  std::string vqvae;                 // run folder or checkpoint
  std::vector<std::string> priors;   // one per level, any order
  int64_t count = 16;
  int64_t batch_size = 16;
  SamplingOptions sampling;
  uint64_t seed = 0;
  bool naive = false;
  std::string out = "samples.png";
  std::string codes_out;             // optional: the sampled codes as a code store
};
int sample(const SampleCommand& command, const Common& common);

struct PipelineCommand {
  std::string out = "runs/main";
  std::string data;                  // empty = embedded MNIST
  std::string preset = "auto";
  std::string prior_size = "auto";   // small with the mnist preset, else reference
  int64_t vqvae_epochs = 0;          // 0 = the preset's
  int64_t prior_epochs = 0;          // 0 = the prior size's default
  int64_t vqvae_steps = 0;           // > 0: a fixed number of steps instead of epochs (quick runs)
  int64_t prior_steps = 0;
  int64_t samples = 16;
  uint64_t seed = 0;
  bool resume = false;
};
int pipeline(const PipelineCommand& command, const Common& common);

// Default prior training schedule for a size.
TrainSchedule prior_schedule(PriorSize size);
// "top", "bottom" or a number -> a level index of a store with `levels` levels.
int64_t parse_level(const std::string& level, int64_t levels);

// A run folder or a checkpoint file -> the checkpoint file (`name` inside a folder).
std::string checkpoint_file(const std::string& path, const std::string& name);

}  // namespace vqvae2::cli
