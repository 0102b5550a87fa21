#include "vqvae2/stages/trained.h"

#include "vqvae2/core/error.h"

#include <filesystem>

namespace vqvae2 {

void TrainVQVAEConfig::validate() const {
  model.validate();
  data.validate();
  train.validate();
}

void TrainPriorConfig::validate() const {
  model.validate();
  train.validate();
  VQVAE2_CHECK(image_dims >= 0, "image dimensions must be >= 0, got {}", image_dims);
}

std::string checkpoint_path(const std::string& run_or_file, const std::string& kind) {
  namespace fs = std::filesystem;
  VQVAE2_CHECK(!run_or_file.empty(), "no {} given: a run folder or a .ckpt file", kind);
  if (fs::is_directory(run_or_file)) {
    const auto file = (fs::path(run_or_file) / (kind + ".ckpt")).string();
    VQVAE2_CHECK(fs::exists(file), "run folder '{}' has no {}.ckpt; is it the right run, and did training finish a step?",
                 run_or_file, kind);
    return file;
  }
  VQVAE2_CHECK(fs::exists(run_or_file), "checkpoint '{}' does not exist", run_or_file);
  return run_or_file;
}

std::string any_checkpoint_path(const std::string& run_or_file) {
  namespace fs = std::filesystem;
  VQVAE2_CHECK(!run_or_file.empty(), "no checkpoint given: a run folder or a .ckpt file");
  if (!fs::is_directory(run_or_file)) return checkpoint_path(run_or_file, "model");
  std::vector<std::string> found;
  for (const auto& entry : fs::directory_iterator(run_or_file)) {
    if (entry.path().extension() == ".ckpt") found.push_back(entry.path().string());
  }
  VQVAE2_CHECK(found.size() == 1, "run folder '{}' holds {} checkpoints ({}); name the .ckpt file", run_or_file,
               found.size(), fmt::join(found, ", "));
  return found.front();
}

}  // namespace vqvae2
