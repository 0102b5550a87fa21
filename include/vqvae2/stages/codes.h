// Between the stages: a trained VQ-VAE turns images into code stores (extract-codes for the priors'
// training, encode for any folder) and code stores back into images (decode). An audio VQ-VAE's
// codes go into the same stores, each level as one-row maps (height 1, width T_l).
#pragma once

#include "vqvae2/data/code_store.h"
#include "vqvae2/data/data.h"
#include "vqvae2/data/image.h"
#include "vqvae2/stages/trained.h"
#include "vqvae2/training/trainer.h"

#include <memory>
#include <string>
#include <vector>

namespace vqvae2 {

// The code levels (map sizes and K) of a VQ-VAE configuration, bottom first.
std::vector<CodeLevel> code_levels(const VQVAEOptions& options);
// The same for an audio VQ-VAE: {height 1, width T_l, K_l} per level for its clip length.
std::vector<CodeLevel> code_levels(const AudioVQVAEOptions& options);

// Encodes the images `indices` of `dataset` with `model` into a code store at `path` (header extras
// in `meta`), with a progress bar labelled `label`. With `jittered_copies` > 0 the store then holds
// that many more passes over the images, each image jittered (jitter_images) with draws fixed by
// `seed`. Returns how many code maps were written.
int64_t encode_images(HierarchicalVQVAE& model, const std::shared_ptr<ImageDataset>& dataset,
                      const std::vector<int64_t>& indices, const std::string& path, const nlohmann::json& meta,
                      int64_t batch_size, const std::string& label, const RunSettings& settings,
                      int64_t jittered_copies = 0, const ImageJitter& jitter = {}, uint64_t seed = 0);

struct ExtractConfig {
  std::string checkpoint;   // VQ-VAE run folder or .ckpt file
  std::string out;          // default: <the checkpoint's folder>/codes
  int64_t batch_size = 64;
  // More code maps for the priors than there are training images: this many extra copies of each
  // training image, each slightly rotated, scaled and shifted (`jitter`), are encoded into
  // train.vq2 after the images themselves. The held-out store is never augmented. Images only.
  int64_t augment = 0;
  ImageJitter jitter{};
  uint64_t seed = 0;
};
struct ExtractResult {
  std::string train_path, validation_path;
  int64_t train_count = 0, validation_count = 0;
};
// Writes <out>/train.vq2 and <out>/val.vq2: the codes of the VQ-VAE's training and held-out images
// (the split it was trained with; train.vq2 also the augmented copies). Their headers record the checkpoint, its step, and the image size
// and channels (for bits per image dimension). An audio VQ-VAE's checkpoint goes to
// extract_audio_codes.
ExtractResult extract_codes(const ExtractConfig& config, const RunSettings& settings);
// The same for an audio VQ-VAE and its training and held-out clips; the headers say "modality":
// "audio" and record the sample rate and clip length (for bits per audio sample).
ExtractResult extract_audio_codes(const ExtractConfig& config, const RunSettings& settings);

struct EncodeConfig {
  std::string checkpoint;  // VQ-VAE run folder or .ckpt file
  std::string data;        // folder of images; empty = the data set the model was trained on
  std::string out = "codes.vq2";
  int64_t batch_size = 32;
};
// Every image of the folder into one code store; its header lists the images' names in order.
// Returns how many were written.
int64_t encode(const EncodeConfig& config, const RunSettings& settings);

struct DecodeConfig {
  std::string checkpoint;       // VQ-VAE run folder or .ckpt file
  std::string codes;            // code store to read
  std::string out = "decoded";  // folder: one PNG per image, named as the store's header names them, plus grid.png
  int64_t limit = 64;           // decode at most this many images (0 = all)
  int64_t batch_size = 32;
};
// Returns how many images were written.
int64_t decode(const DecodeConfig& config, const RunSettings& settings);

}  // namespace vqvae2
