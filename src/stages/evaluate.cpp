#include "vqvae2/stages/evaluate.h"

#include "vqvae2/core/device.h"
#include "vqvae2/core/error.h"
#include "vqvae2/core/metrics.h"
#include "vqvae2/core/files.h"
#include "vqvae2/data/image.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <set>

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
                          const EvaluatedBatch& each_batch) {
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
    if (each_batch) {
      const auto errors = (out.reconstruction - x).pow(2).mean({1, 2, 3}).to(torch::kCPU);
      each_batch(*batch, to_pixels(out.reconstruction).to(torch::kCPU), errors);
    }
    for (int64_t l = 0; l < levels; ++l) {
      counts[l] += functional::code_counts(out.levels[l].codes, model->options().codes_at(l)).to(torch::kCPU);
    }
  }
  model->train(was_training);
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

double evaluate_prior(Prior& prior, const LevelCodes& data, int64_t batch_size, const torch::Device& device) {
  torch::NoGradGuard no_grad;
  const bool was_training = prior->is_training();
  prior->eval();
  const auto n = data.codes.size(0);
  VQVAE2_CHECK(n > 0, "nothing to evaluate: no codes");
  double total = 0;
  for (int64_t begin = 0; begin < n; begin += batch_size) {
    const auto end = std::min(n, begin + batch_size);
    const auto codes = data.codes.slice(0, begin, end).to(device);
    const auto condition = data.condition.defined() ? data.condition.slice(0, begin, end).to(device) : torch::Tensor();
    total += prior->loss(codes, condition).item<double>() * static_cast<double>(end - begin);
  }
  prior->train(was_training);
  return total / static_cast<double>(n);
}

void check_codes_fit(const PriorOptions& o, const CodeStore& store, const std::string& name) {
  const auto levels = static_cast<int64_t>(store.levels.size());
  VQVAE2_CHECK(o.level < levels && store.levels[o.level].height == o.height && store.levels[o.level].width == o.width &&
                   store.levels[o.level].codes == o.stack.codes && o.conditional == (o.level + 1 < levels) &&
                   (!o.conditional || store.levels[o.level + 1].codes == o.condition.codes),
               "the codes in '{}' do not match this prior (level {}, {}x{}, K={}); use the codes of the VQ-VAE it was "
               "trained for",
               name, o.level, o.height, o.width, o.stack.codes);
}

// ---- vqvae2 evaluate ----------------------------------------------------------------------------

namespace fs = std::filesystem;

namespace {

EvaluateResult evaluate_vqvae_run(const ModelCheckpoint& checkpoint, const EvaluateConfig& config,
                                  const RunSettings& settings) {
  const auto device = parse_device(settings.device);
  auto vqvae = load<VQVAEKind>(checkpoint, device);
  const auto dataset = open_images(vqvae, config.data, settings.log);
  // Without a folder: the held-out images the run validated on; with one: all of its images.
  std::vector<int64_t> indices;
  if (config.data.empty()) {
    auto [train, validation] = dataset->split();
    indices = validation.empty() ? train : validation;
  } else {
    indices.resize(dataset->size());
    std::iota(indices.begin(), indices.end(), 0);
  }
  EvaluateResult result;
  if (!config.out_dir.empty()) fs::create_directories(config.out_dir);
  std::set<std::string> taken;
  BatchLoader loader(dataset, indices, {config.batch_size, /*shuffle=*/false, /*drop_last=*/false, 0,
                                        settings.loader_prefetch});
  auto model = vqvae.model;
  result.vqvae = evaluate_vqvae(model, loader, device, [&](const Batch& batch, const torch::Tensor& reconstructions,
                                                           const torch::Tensor& errors) {
    for (size_t i = 0; i < batch.indices.size(); ++i) {
      const auto& source = dataset->source(batch.indices[i]).name;
      const auto mse = errors[static_cast<int64_t>(i)].item<double>();
      result.images.push_back({source, mse, psnr_from_mse(mse)});
      if (config.out_dir.empty()) continue;
      auto name = png_name_for(source, taken);
      if (name.empty()) name = fmt::format("{:06d}.png", result.images.size() - 1);
      const auto path = fs::path(config.out_dir) / name;
      fs::create_directories(path.parent_path());
      save_png(path.string(), reconstructions[static_cast<int64_t>(i)]);
    }
  });
  return result;
}

EvaluateResult evaluate_prior_run(const ModelCheckpoint& checkpoint, const EvaluateConfig& config,
                                  const RunSettings& settings) {
  const auto device = parse_device(settings.device);
  auto prior = load<PriorKind>(checkpoint, device);
  auto path = config.codes.empty() ? prior.config.codes : config.codes;
  if (fs::is_directory(path)) path = (fs::path(path) / "val.vq2").string();
  VQVAE2_CHECK(fs::exists(path), "code store '{}' does not exist", path);
  const auto store = read_code_store(path);
  check_codes_fit(prior.config.model, store, path);
  EvaluateResult result;
  const auto data = level_codes(store, prior.config.model.level);
  result.maps = data.codes.size(0);
  result.bits_per_code = bits_from_nats(evaluate_prior(prior.model, data, config.batch_size, device));
  // Per dimension of the images the codes stand for: the store says which, else the training run did.
  const auto side = store.meta.value("image_size", int64_t{0});
  auto dims = side * side * store.meta.value("channels", int64_t{0});
  if (dims == 0) dims = prior.config.image_dims;
  const auto& o = prior.config.model;
  if (dims > 0) result.bits_per_dim = result.bits_per_code * static_cast<double>(o.height * o.width) / dims;
  return result;
}

}  // namespace

EvaluateResult evaluate(const EvaluateConfig& config, const RunSettings& settings) {
  VQVAE2_CHECK(config.batch_size >= 1, "batch size must be positive, got {}", config.batch_size);
  const auto checkpoint = read_model_checkpoint(any_checkpoint_path(config.checkpoint), "");
  EvaluateResult result;
  if (checkpoint.kind == VQVAEKind::name) {
    VQVAE2_CHECK(config.codes.empty(), "a code store is evaluated with a prior; '{}' is a VQ-VAE", checkpoint.path);
    result = evaluate_vqvae_run(checkpoint, config, settings);
  } else if (checkpoint.kind == PriorKind::name) {
    VQVAE2_CHECK(config.data.empty() && config.out_dir.empty(),
                 "images are evaluated with a VQ-VAE; '{}' is a prior (give it a code store)", checkpoint.path);
    result = evaluate_prior_run(checkpoint, config, settings);
  } else {
    fail("'{}' holds a {} checkpoint; evaluate takes a VQ-VAE or a prior", checkpoint.path, checkpoint.kind);
  }
  result.kind = checkpoint.kind;
  result.checkpoint = checkpoint.path;
  result.step = checkpoint.step;
  if (!config.json.empty()) write_file_atomically(config.json, result.to_json().dump(2) + "\n");
  return result;
}

std::string EvaluateResult::summary() const {
  if (kind == PriorKind::name) {
    return fmt::format("prior {} (step {}): {:.4f} bits per code{} on {} held-out code maps", checkpoint, step,
                       bits_per_code, bits_per_dim > 0 ? fmt::format(", {:.5f} bits per image dimension", bits_per_dim) : "",
                       maps);
  }
  return fmt::format("VQ-VAE {} (step {}): {} images, MSE {:.5f}, PSNR {:.2f} dB, codes used {}, perplexity {}",
                     checkpoint, step, vqvae.images, vqvae.mse, vqvae.psnr, fmt::join(vqvae.usage, " / "),
                     fmt::join(vqvae.perplexity, " / "));
}

nlohmann::json EvaluateResult::to_json() const {
  nlohmann::json j = {{"kind", kind}, {"checkpoint", checkpoint}, {"step", step}};
  if (kind == PriorKind::name) {
    j["bits_per_code"] = bits_per_code;
    j["bits_per_dim"] = bits_per_dim;
    j["maps"] = maps;
  } else {
    j["figures"] = vqvae.to_json();
    nlohmann::json per_image = nlohmann::json::array();
    for (const auto& image : images) per_image.push_back({{"name", image.name}, {"mse", image.mse}, {"psnr", image.psnr}});
    j["images"] = per_image;
  }
  return j;
}

}  // namespace vqvae2
