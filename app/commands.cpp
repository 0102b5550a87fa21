#include "commands.h"

#include "bench.h"
#include "vqvae2/data/code_store.h"
#include "vqvae2/stages/extract.h"
#include "vqvae2/core/error.h"
#include "vqvae2/data/image.h"
#include "vqvae2/core/metrics.h"
#include "vqvae2/core/progress.h"
#include "vqvae2/training/run.h"

#include <filesystem>
#include <numeric>
#include <iostream>

namespace vqvae2::cli {

namespace fs = std::filesystem;

std::string checkpoint_file(const std::string& path, const std::string& name) {
  VQVAE2_CHECK(!path.empty(), "--checkpoint is required: a run folder or a .ckpt file");
  if (fs::is_directory(path)) {
    const auto file = (fs::path(path) / name).string();
    VQVAE2_CHECK(fs::exists(file), "run folder '{}' has no {}; is it the right run, and did training finish a step?",
                 path, name);
    return file;
  }
  VQVAE2_CHECK(fs::exists(path), "checkpoint '{}' does not exist", path);
  return path;
}

int train_vqvae(const TrainVQVAECommand& command, const Common& common) {
  install_stop_handlers();
  RunSettings settings;
  settings.device = common.device;
  settings.quiet = common.quiet;
  const auto result = train_vqvae(command.config, command.out, command.resume, settings);
  const auto& e = result.final;
  std::cout << fmt::format("{} after {} steps: validation MSE {:.5f} (PSNR {:.2f} dB), code usage {}, perplexity {}\n",
                           result.interrupted ? "stopped" : "trained", result.steps, e.mse, e.psnr,
                           fmt::join(e.usage, " / "), fmt::join(e.perplexity, " / "));
  std::cout << fmt::format("run folder: {} (checkpoint {}, metrics.jsonl, grids/)\n", command.out, result.checkpoint);
  return result.interrupted ? kInterruptedExit : 0;
}

namespace {

// The images a command works on: the folder given, else the data set the model was trained on.
std::shared_ptr<ImageDataset> open_images(const LoadedVQVAE& loaded, const std::string& folder) {
  auto data = loaded.config.data;
  if (!folder.empty()) data.folder = folder;
  return ImageDataset::open(data, &std::cerr);
}

}  // namespace

int reconstruct(const ReconstructCommand& command, const Common& common) {
  const auto device = parse_device(common.device);
  const auto path = checkpoint_file(command.checkpoint, "vqvae.ckpt");
  auto loaded = load_vqvae(path, device);
  const auto dataset = open_images(loaded, command.data);
  // Without --data: the held-out images of the training set; with --data: the folder's images.
  std::vector<int64_t> chosen;
  if (command.data.empty()) {
    auto [train, validation] = dataset->split();
    chosen = validation.empty() ? train : validation;
  } else {
    chosen.resize(dataset->size());
    std::iota(chosen.begin(), chosen.end(), 0);
  }
  VQVAE2_CHECK(command.images >= 1, "--images must be positive, got {}", command.images);
  chosen.resize(std::min<size_t>(chosen.size(), command.images));
  std::vector<torch::Tensor> originals;
  for (const auto i : chosen) originals.push_back(dataset->get(i));
  const auto batch = torch::stack(originals);
  torch::NoGradGuard no_grad;
  const auto out = loaded.model->forward(to_model_range(batch).to(device));
  const auto pairs = torch::stack({batch, to_pixels(out.reconstruction)}, 1).flatten(0, 1);
  save_png(command.out, make_grid(pairs, 8));
  const auto mse = out.reconstruction_loss.item<double>();
  std::cout << fmt::format("{} images: MSE {:.5f}, PSNR {:.2f} dB; originals and reconstructions in pairs: {}\n",
                           chosen.size(), mse, psnr_from_mse(mse), command.out);
  return 0;
}

int encode(const EncodeCommand& command, const Common& common) {
  const auto device = parse_device(common.device);
  const auto path = checkpoint_file(command.checkpoint, "vqvae.ckpt");
  auto loaded = load_vqvae(path, device);
  const auto dataset = open_images(loaded, command.data);
  std::vector<int64_t> all(dataset->size());
  std::iota(all.begin(), all.end(), 0);
  nlohmann::json names = nlohmann::json::array();
  for (const auto i : all) names.push_back(dataset->source(i).name);
  const auto count = encode_images(loaded.model, dataset, all, command.out, {{"vqvae_checkpoint", path}, {"images", names}},
                                   device, command.batch_size, "encode", common.quiet);
  std::cout << fmt::format("encoded {} images into {} ({} levels)\n", count, command.out,
                           loaded.config.model.levels());
  return 0;
}

int decode(const DecodeCommand& command, const Common& common) {
  const auto device = parse_device(common.device);
  const auto path = checkpoint_file(command.checkpoint, "vqvae.ckpt");
  auto loaded = load_vqvae(path, device);
  const auto store = read_code_store(command.codes);
  check_code_levels(store, code_levels(loaded.config.model), command.codes);
  VQVAE2_CHECK(command.limit >= 0 && command.batch_size >= 1, "--limit must be >= 0 and --batch-size positive");
  const auto count = command.limit > 0 ? std::min(command.limit, store.size()) : store.size();
  fs::create_directories(command.out);
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> images;
  for (int64_t begin = 0; begin < count; begin += command.batch_size) {
    const auto end = std::min(count, begin + command.batch_size);
    std::vector<torch::Tensor> codes;
    for (const auto& level : store.codes) codes.push_back(level.slice(0, begin, end).to(device));
    const auto pixels = to_pixels(loaded.model->decode_codes(codes));
    for (int64_t i = 0; i < pixels.size(0); ++i) {
      save_png((fs::path(command.out) / fmt::format("{:06d}.png", begin + i)).string(), pixels[i]);
      images.push_back(pixels[i]);
    }
  }
  if (!images.empty()) save_png((fs::path(command.out) / "grid.png").string(), make_grid(torch::stack(images), 8));
  std::cout << fmt::format("decoded {} images into {}/ (one PNG each, and grid.png)\n", count, command.out);
  return 0;
}

int bench(const BenchCommand& command, const Common& common) {
  bench::BenchOptions options{common.device, command.warmup, command.iterations};
  if (command.what == "vqvae") {
    bench::vqvae(options, std::cout);
  } else if (command.what == "threads") {
    bench::threads(options, std::cout);
  } else if (command.what == "prior") {
    bench::prior(options, std::cout);
  } else if (command.what == "sample") {
    bench::sample(options, command.batches, std::cout);
  } else {
    fail("unknown benchmark '{}'", command.what);
  }
  return 0;
}

}  // namespace vqvae2::cli
