#include "vqvae2/stages/evaluate.h"

#include "vqvae2/core/device.h"
#include "vqvae2/core/error.h"
#include "vqvae2/core/metrics.h"
#include "vqvae2/data/image.h"
#include "vqvae2/training/distributed.h"

#include <algorithm>
#include <numeric>

namespace vqvae2 {

nlohmann::json Evaluation::to_json() const {
  return {{"mse", mse}, {"psnr", psnr}, {"perplexity", perplexity}, {"usage", usage}, {"images", images}};
}

Evaluation Evaluation::from_json(const nlohmann::json& j) {
  Evaluation e;
  if (j.is_null()) return e;
  e.mse = j.at("mse");
  e.psnr = j.at("psnr");
  e.perplexity = j.at("perplexity").get<std::vector<double>>();
  e.usage = j.at("usage").get<std::vector<double>>();
  e.images = j.at("images");
  return e;
}

Evaluation evaluate_vqvae(HierarchicalVQVAE& model, BatchLoader& loader, const torch::Device& device,
                          DistributedGroup* group) {
  torch::NoGradGuard no_grad;
  const bool was_training = model->is_training();
  model->eval();
  const auto levels = model->options().levels();
  std::vector<torch::Tensor> counts;
  for (int64_t l = 0; l < levels; ++l) counts.push_back(torch::zeros({model->options().codes_at(l)}, torch::kFloat));
  double squared_error = 0;
  Evaluation result;
  loader.start(0);
  while (auto batch = loader.next()) {
    const auto x = to_model_range(batch->images).to(device);
    const auto out = model->forward(x);
    squared_error += out.reconstruction_loss.item<double>() * static_cast<double>(x.size(0));
    result.images += x.size(0);
    for (int64_t l = 0; l < levels; ++l) {
      counts[l] += functional::code_counts(out.levels[l].codes, model->options().codes_at(l)).to(torch::kCPU);
    }
  }
  model->train(was_training);
  if (group) {
    group->sum(counts);
    const auto sums = group->sum(std::vector<double>{squared_error, static_cast<double>(result.images)});
    squared_error = sums[0];
    result.images = static_cast<int64_t>(sums[1]);
  }
  VQVAE2_CHECK(result.images > 0, "nothing to evaluate: the evaluation set is empty");
  result.mse = squared_error / static_cast<double>(result.images);
  result.psnr = psnr_from_mse(result.mse);
  for (const auto& c : counts) {
    result.perplexity.push_back(functional::perplexity(c).item<double>());
    result.usage.push_back((c > 0).sum().item<double>() / static_cast<double>(c.numel()));
  }
  return result;
}

Reconstruction reconstruct(HierarchicalVQVAE& model, const torch::Tensor& originals, const torch::Device& device) {
  torch::NoGradGuard no_grad;
  const bool was_training = model->is_training();
  model->eval();
  const auto out = model->forward(to_model_range(originals).to(device));
  model->train(was_training);
  const auto pairs = torch::stack({originals, to_pixels(out.reconstruction)}, 1).flatten(0, 1);  // [2N, C, H, W]
  const auto mse = out.reconstruction_loss.item<double>();
  return {make_grid(pairs, /*columns=*/8), mse, psnr_from_mse(mse), originals.size(0)};
}

std::shared_ptr<ImageDataset> open_images(const TrainedVQVAE& vqvae, const std::string& folder, std::ostream* warnings) {
  auto data = vqvae.config.data;
  if (!folder.empty()) data.folder = folder;
  return ImageDataset::open(data, vqvae.config.model.format(), warnings);
}

Reconstruction reconstruct(const ReconstructConfig& config, const RunSettings& settings) {
  VQVAE2_CHECK(config.images >= 1, "the number of images must be positive, got {}", config.images);
  const auto device = parse_device(settings.device);
  const auto vqvae = load<VQVAEKind>(config.checkpoint, device);
  const auto dataset = open_images(vqvae, config.data, settings.log);
  // Without a folder: the held-out images of the training set; with one: the folder's images.
  std::vector<int64_t> chosen;
  if (config.data.empty()) {
    auto [train, validation] = dataset->split();
    chosen = validation.empty() ? train : validation;
  } else {
    chosen.resize(dataset->size());
    std::iota(chosen.begin(), chosen.end(), 0);
  }
  chosen.resize(std::min<size_t>(chosen.size(), config.images));
  std::vector<torch::Tensor> originals;
  for (const auto i : chosen) originals.push_back(dataset->get(i));
  auto model = vqvae.model;
  auto result = reconstruct(model, torch::stack(originals), device);
  save_png(config.out, result.grid);
  return result;
}

LevelCodes level_codes(const CodeStore& store, int64_t level) {
  const auto levels = static_cast<int64_t>(store.levels.size());
  VQVAE2_CHECK(level >= 0 && level < levels, "level {} does not exist: the code store has levels 0..{}", level,
               levels - 1);
  LevelCodes out;
  out.codes = store.codes[level];
  if (level + 1 < levels) out.condition = store.codes[level + 1];
  return out;
}

double evaluate_prior(Prior& prior, const LevelCodes& data, int64_t batch_size, const torch::Device& device,
                      DistributedGroup* group) {
  torch::NoGradGuard no_grad;
  const bool was_training = prior->is_training();
  prior->eval();
  const auto n = data.codes.size(0);
  VQVAE2_CHECK(n > 0, "nothing to evaluate: no codes");
  // This process's share: rows [r·n/R, (r+1)·n/R).
  const auto rank = group ? group->rank() : 0, ranks = group ? group->size() : 1;
  const auto first = rank * n / ranks, last = (rank + 1) * n / ranks;
  double total = 0;
  for (int64_t begin = first; begin < last; begin += batch_size) {
    const auto end = std::min(last, begin + batch_size);
    const auto codes = data.codes.slice(0, begin, end).to(device);
    const auto condition = data.condition.defined() ? data.condition.slice(0, begin, end).to(device) : torch::Tensor();
    total += prior->loss(codes, condition).item<double>() * static_cast<double>(end - begin);
  }
  prior->train(was_training);
  if (group) total = group->sum(std::vector<double>{total})[0];
  return total / static_cast<double>(n);
}

}  // namespace vqvae2
