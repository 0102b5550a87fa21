// Stage 1 -> stage 2: the trained VQ-VAE encodes its data set into code stores, one for the
// training split and one for the validation split (the same split the VQ-VAE used).
#pragma once

#include "vqvae2/data/code_store.h"
#include "vqvae2/stages/train_vqvae.h"

#include <string>

namespace vqvae2 {

struct ExtractResult {
  std::string train_path, validation_path;
  int64_t train_count = 0, validation_count = 0;
};

// Writes <out_dir>/train.vq2 and <out_dir>/val.vq2. Their headers record the VQ-VAE checkpoint,
// the image size and channels (for bits per image dimension) and the split.
ExtractResult extract_codes(const std::string& vqvae_checkpoint, const std::string& out_dir, const std::string& device,
                            int64_t batch_size, bool quiet);

// The code levels (map sizes and K) of a VQ-VAE configuration, bottom first.
std::vector<CodeLevel> code_levels(const VQVAEOptions& options);

// Encodes the images `indices` of `dataset` with `model` into a code store at `path` (header
// extras in `meta`), with a progress bar labelled `label`. Returns how many images were written.
int64_t encode_images(HierarchicalVQVAE& model, const std::shared_ptr<ImageDataset>& dataset,
                      const std::vector<int64_t>& indices, const std::string& path, const nlohmann::json& meta,
                      const torch::Device& device, int64_t batch_size, const std::string& label, bool quiet);

}  // namespace vqvae2
