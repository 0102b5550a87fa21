// The stage-2 commands: extract-codes, train-prior, sample, and the whole pipeline.
#include "commands.h"

#include "vqvae2/core/checkpoint.h"
#include "vqvae2/core/error.h"
#include "vqvae2/stages/extract.h"
#include "vqvae2/data/image.h"
#include "vqvae2/stages/presets.h"
#include "vqvae2/core/progress.h"
#include "vqvae2/training/run.h"

#include <filesystem>
#include <iostream>

namespace vqvae2::cli {

namespace fs = std::filesystem;

TrainSchedule prior_schedule(PriorSize size) {
  TrainSchedule s;
  if (size == PriorSize::kSmall) {
    s.batch_size = 64;
    s.epochs = 5;
    s.learning_rate = 1e-3;
    s.checkpoint_every = 200;
  } else {
    s.batch_size = 32;
    s.epochs = 20;
    s.learning_rate = 3e-4;
  }
  return s;
}

int64_t parse_level(const std::string& level, int64_t levels) {
  if (level == "top") return levels - 1;
  if (level == "bottom") return 0;
  try {
    size_t used = 0;
    const auto value = std::stoll(level, &used);
    if (used == level.size() && value >= 0 && value < levels) return value;
  } catch (const std::exception&) {
  }
  fail("--level must be top, bottom or a level number in 0..{}, got '{}'", levels - 1, level);
}

int extract_codes(const ExtractCommand& command, const Common& common) {
  const auto checkpoint = checkpoint_file(command.checkpoint, "vqvae.ckpt");
  const auto out = command.out.empty() ? (fs::path(checkpoint).parent_path() / "codes").string() : command.out;
  const auto result = vqvae2::extract_codes(checkpoint, out, common.device, command.batch_size, common.quiet);
  std::cout << fmt::format("codes of {} training and {} held-out images: {}, {}\n", result.train_count,
                           result.validation_count, result.train_path, result.validation_path);
  return 0;
}

int train_prior(TrainPriorCommand command, const Common& common, const std::function<void(TrainPriorConfig&)>& flags) {
  install_stop_handlers();
  auto& config = command.config;
  if (command.resume) {
    VQVAE2_CHECK(!command.out.empty(), "--resume needs the --out of the run to continue");
    const auto stored = read_checkpoint(checkpoint_file(command.out, "prior.ckpt"), "prior");
    config = stored.meta.at("config").get<TrainPriorConfig>();
  } else {
    VQVAE2_CHECK(!config.codes.empty(), "--codes is required: the folder `vqvae2 extract-codes` wrote");
    const auto path = (fs::path(config.codes) / "train.vq2").string();
    VQVAE2_CHECK(fs::exists(path), "'{}' not found; run `vqvae2 extract-codes` first", path);
    const auto store = read_code_store(path);
    const auto level = parse_level(command.level, static_cast<int64_t>(store.levels.size()));
    const auto size = parse_prior_size(command.size);
    config.model = prior_options_for(store, level, size);
    config.train = prior_schedule(size);
    config.image_dims = store.meta.value("image_size", int64_t{0}) * store.meta.value("image_size", int64_t{0}) *
                        store.meta.value("channels", int64_t{0});
    if (command.out.empty()) command.out = fmt::format("runs/prior-level{}", level);
  }
  flags(config);
  config.model.stack.condition_channels = config.model.conditional ? config.model.condition.channels : 0;
  RunSettings settings;
  settings.device = common.device;
  settings.quiet = common.quiet;
  const auto result = vqvae2::train_prior(config, command.out, command.resume, settings);
  std::cout << fmt::format("{} after {} steps: held-out NLL {:.3f} bits per code ({:.4f} bits per image dimension); "
                           "uniform would be {:.3f}\n",
                           result.interrupted ? "stopped" : "trained", result.steps, result.final_bits_per_code,
                           result.final_bits_per_dim, std::log2(static_cast<double>(config.model.stack.codes)));
  std::cout << fmt::format("run folder: {} (checkpoint {}, metrics.jsonl)\n", command.out, result.checkpoint);
  return result.interrupted ? kInterruptedExit : 0;
}

int sample(const SampleCommand& command, const Common& common) {
  const auto device = parse_device(common.device);
  VQVAE2_CHECK(command.count >= 1 && command.batch_size >= 1, "--count and --batch-size must be positive");
  command.sampling.validate();
  auto vqvae = load_vqvae(checkpoint_file(command.vqvae, "vqvae.ckpt"), device);
  const auto levels = vqvae.config.model.levels();
  std::vector<Prior> priors(levels, Prior(nullptr));
  for (const auto& path : command.priors) {
    auto loaded = load_prior(checkpoint_file(path, "prior.ckpt"), device);
    const auto level = loaded.config.model.level;
    VQVAE2_CHECK(level < levels, "'{}' is a prior for level {}, but the VQ-VAE has {} levels", path, level, levels);
    VQVAE2_CHECK(!priors[level], "two priors given for level {}", level);
    priors[level] = loaded.model;
  }
  for (int64_t l = 0; l < levels; ++l) {
    VQVAE2_CHECK(priors[l], "no prior given for level {} ({}); pass one --priors run folder per level", l,
                 l == levels - 1 ? "top" : (l == 0 ? "bottom" : "middle"));
  }
  std::vector<torch::Tensor> images;
  std::vector<std::vector<torch::Tensor>> codes(levels);
  ProgressBar bar(command.naive ? "sample (naive)" : "sample", command.count, 0, !common.quiet);
  double seconds = 0;
  for (int64_t begin = 0; begin < command.count; begin += command.batch_size) {
    const auto batch = std::min(command.batch_size, command.count - begin);
    const auto result = sample_hierarchy(vqvae.model, priors, batch, command.sampling, command.seed + begin, command.naive,
                                         [&](int64_t level, int64_t done, int64_t rows) {
                                           bar.update(begin, fmt::format("level {} row {}/{}", level, done, rows));
                                         });
    for (const auto s : result.seconds) seconds += s;
    images.push_back(to_pixels(result.images));
    for (int64_t l = 0; l < levels; ++l) codes[l].push_back(result.codes[l].to(torch::kCPU));
    bar.update(begin + batch);
  }
  bar.finish();
  const auto all = torch::cat(images);
  save_png(command.out, make_grid(all, std::min<int64_t>(8, command.count)));
  if (!command.codes_out.empty()) {
    CodeStoreWriter writer(command.codes_out, code_levels(vqvae.config.model), {{"sampled", true}, {"seed", command.seed}});
    std::vector<torch::Tensor> per_level;
    for (auto& c : codes) per_level.push_back(torch::cat(c));
    writer.append(per_level);
    writer.close();
  }
  std::cout << fmt::format("{} samples in {:.1f} s ({:.2f} s per image, {} sampler): {}\n", command.count, seconds,
                           seconds / command.count, command.naive ? "naive" : "cached", command.out);
  return 0;
}

int pipeline(const PipelineCommand& command, const Common& common) {
  install_stop_handlers();
  const fs::path root(command.out);
  const auto vqvae_dir = (root / "vqvae").string();
  const auto codes_dir = (root / "codes").string();
  VQVAE2_CHECK(command.resume || !fs::exists(root / "vqvae" / "vqvae.ckpt"),
               "'{}' already holds a pipeline run; pass --resume to continue it or choose another --out", command.out);

  // 1. The VQ-VAE.
  const auto preset = command.preset == "auto" ? (command.data.empty() ? "mnist" : "reference") : command.preset;
  TrainVQVAECommand vqvae;
  vqvae.config = vqvae_preset(preset);
  vqvae.config.data.folder = command.data;
  vqvae.config.train.seed = command.seed;
  if (command.vqvae_epochs > 0) vqvae.config.train.epochs = command.vqvae_epochs;
  vqvae.config.train.steps = command.vqvae_steps;
  vqvae.out = vqvae_dir;
  vqvae.resume = command.resume && fs::exists(fs::path(vqvae_dir) / "vqvae.ckpt");
  std::cout << "== 1/4 train the VQ-VAE (preset " << preset << ") ==\n";
  if (train_vqvae(vqvae, common) != 0) return kInterruptedExit;

  // 2. Its codes.
  std::cout << "== 2/4 extract codes ==\n";
  extract_codes({vqvae_dir, codes_dir, 64}, common);

  // 3. One prior per level, top first.
  const auto size_name = command.prior_size == "auto" ? (preset == "mnist" ? "small" : "reference") : command.prior_size;
  const auto levels = vqvae.config.model.levels();
  std::vector<std::string> prior_dirs;
  for (int64_t level = levels - 1; level >= 0; --level) {
    TrainPriorCommand prior;
    prior.config.codes = codes_dir;
    prior.level = std::to_string(level);
    prior.size = size_name;
    prior.out = (root / fmt::format("prior-level{}", level)).string();
    prior.resume = command.resume && fs::exists(fs::path(prior.out) / "prior.ckpt");
    prior_dirs.push_back(prior.out);
    std::cout << fmt::format("== 3/4 train the priors: level {} ({} of {}; {}, {}) ==\n", level, levels - level,
                             levels, level == levels - 1 ? "top, PixelSNAIL" : "conditional", size_name);
    const int status = train_prior(prior, common, [&](TrainPriorConfig& c) {
      c.train.seed = command.seed;
      if (command.prior_epochs > 0) c.train.epochs = command.prior_epochs;
      c.train.steps = command.prior_steps;
    });
    if (status != 0) return kInterruptedExit;
  }

  // 4. Samples.
  std::cout << "== 4/4 sample ==\n";
  SampleCommand sampling;
  sampling.vqvae = vqvae_dir;
  sampling.priors = prior_dirs;
  sampling.count = command.samples;
  sampling.seed = command.seed;
  sampling.out = (root / "samples.png").string();
  sample(sampling, common);
  std::cout << fmt::format("done: {} holds the VQ-VAE, codes, priors, metrics, reconstruction grids and samples.png\n",
                           command.out);
  return 0;
}

}  // namespace vqvae2::cli
