// The vqvae2 subcommands: each takes its parsed settings and calls the library; no model math here.
#pragma once

#include "vqvae2/device.h"
#include "vqvae2/train_vqvae.h"

#include <string>

namespace vqvae2::cli {

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

// A run folder or a checkpoint file -> the checkpoint file (`name` inside a folder).
std::string checkpoint_file(const std::string& path, const std::string& name);

}  // namespace vqvae2::cli
