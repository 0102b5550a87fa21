#include "vqvae2/stages/extract.h"

#include "vqvae2/core/error.h"
#include "vqvae2/data/image.h"
#include "vqvae2/core/progress.h"

#include <filesystem>
#include <iostream>

namespace vqvae2 {

std::vector<CodeLevel> code_levels(const VQVAEOptions& options) {
  std::vector<CodeLevel> levels;
  for (int64_t l = 0; l < options.levels(); ++l) {
    levels.push_back({options.latent_size(l), options.latent_size(l), options.codes_at(l)});
  }
  return levels;
}

int64_t encode_images(HierarchicalVQVAE& model, const std::shared_ptr<ImageDataset>& dataset,
                      const std::vector<int64_t>& indices, const std::string& path, const nlohmann::json& meta,
                      const torch::Device& device, int64_t batch_size, const std::string& label, bool quiet) {
  torch::NoGradGuard no_grad;
  model->eval();
  CodeStoreWriter writer(path, code_levels(model->options()), meta);
  BatchLoader loader(dataset, indices, {batch_size, /*shuffle=*/false, /*drop_last=*/false, 0, 4});
  ProgressBar bar(label, loader.batches_per_epoch(), 0, !quiet);
  loader.start(0);
  int64_t done = 0;
  while (auto batch = loader.next()) {
    writer.append(model->encode(to_model_range(batch->images).to(device)));
    bar.update(++done);
  }
  writer.close();
  bar.finish();
  return writer.count();
}

ExtractResult extract_codes(const std::string& vqvae_checkpoint, const std::string& out_dir, const std::string& device_name,
                            int64_t batch_size, bool quiet) {
  VQVAE2_CHECK(batch_size >= 1, "--batch-size must be positive, got {}", batch_size);
  const auto device = parse_device(device_name);
  auto loaded = load_vqvae(vqvae_checkpoint, device);
  const auto dataset = ImageDataset::open(loaded.config.data, &std::cerr);
  const auto [train, validation] = dataset->split();
  std::error_code error;
  std::filesystem::create_directories(out_dir, error);
  VQVAE2_CHECK(!error, "cannot create '{}': {}", out_dir, error.message());

  ExtractResult result;
  result.train_path = (std::filesystem::path(out_dir) / "train.vq2").string();
  result.validation_path = (std::filesystem::path(out_dir) / "val.vq2").string();
  const auto& model = loaded.config.model;
  for (const auto& [split, indices, path, count] :
       {std::tuple{"train", &train, &result.train_path, &result.train_count},
        std::tuple{"val", &validation, &result.validation_path, &result.validation_count}}) {
    const nlohmann::json meta = {{"split", split},
                                 {"vqvae_checkpoint", vqvae_checkpoint},
                                 {"vqvae_step", loaded.step},
                                 {"image_size", model.image_size},
                                 {"channels", model.channels}};
    *count = encode_images(loaded.model, dataset, *indices, *path, meta, device, batch_size,
                           std::string("extract ") + split, quiet);
  }
  return result;
}

}  // namespace vqvae2
