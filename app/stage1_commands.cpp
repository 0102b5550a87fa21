// The stage-1 commands: train-vqvae, reconstruct, encode, decode, extract-codes.
#include "cli.h"
#include "flags.h"

#include "vqvae2/stages/codes.h"
#include "vqvae2/stages/evaluate.h"
#include "vqvae2/stages/presets.h"
#include "vqvae2/stages/train_vqvae.h"

#include <iostream>
#include <memory>

namespace vqvae2::cli {
namespace {

using Config = TrainVQVAEConfig;

// The model, data and schedule flags of train-vqvae, each a field of TrainVQVAEConfig.
void add_vqvae_flags(CLI::App* app, PresetFlags<Config>& flags) {
  using V = std::vector<int64_t>;
  // Data.
  flags.add<std::string>(app, "--data", "folder of training images (PNG/JPEG/..., any size, searched recursively); "
                                        "empty = the embedded MNIST digits",
                         [](Config& c) -> std::string& { return c.data.folder; });
  flags.add<int64_t>(app, "--image-size", "side S the images are cropped and resized to",
                     [](Config& c) -> int64_t& { return c.model.image_size; });
  flags.add<int64_t>(app, "--channels", "1 = grey, 3 = RGB (images are converted)",
                     [](Config& c) -> int64_t& { return c.model.channels; });
  flags.add<double>(app, "--val-fraction", "share of images held out for validation",
                    [](Config& c) -> double& { return c.data.validation_fraction; });
  flags.add<uint64_t>(app, "--split-seed", "changes which images are held out",
                      [](Config& c) -> uint64_t& { return c.data.split_seed; });
  flags.add<std::string>(
      app, "--on-bad-image", "what to do with unreadable image files: skip (with a warning) or fail",
      [](const Config& c) { return std::string(c.data.skip_bad_images ? "skip" : "fail"); },
      [](Config& c, const std::string& v) { c.data.skip_bad_images = v == "skip"; })
      ->check(CLI::IsMember({"skip", "fail"}));
  flags.add<int64_t>(app, "--limit", "use at most this many images (0 = all)",
                     [](Config& c) -> int64_t& { return c.data.limit; });
  flags.add<int64_t>(app, "--cache-mb", "MiB of decoded images kept in memory between epochs",
                     [](Config& c) -> int64_t& { return c.data.cache_mb; });
  // Model.
  flags.add<int64_t>(app, "--hidden", "width h of encoders and decoders", [](Config& c) -> int64_t& { return c.model.hidden; });
  flags.add<int64_t>(app, "--res-blocks", "residual blocks per encoder/decoder",
                     [](Config& c) -> int64_t& { return c.model.res_blocks; });
  flags.add<int64_t>(app, "--res-channels", "bottleneck width of a residual block",
                     [](Config& c) -> int64_t& { return c.model.res_channels; });
  flags.add<V>(app, "--strides", "downsampling of each level, bottom first (powers of two); the count is the number "
                                 "of levels, e.g. 4,2 = bottom S/4, top S/8",
               [](Config& c) -> V& { return c.model.strides; });
  flags.add<V>(app, "--codes", "codebook size K, one for all levels or one per level",
               [](Config& c) -> V& { return c.model.codes; });
  flags.add<V>(app, "--code-dims", "code width D, one for all levels or one per level",
               [](Config& c) -> V& { return c.model.code_dims; });
  flags.add<std::string>(
      app, "--quantizer", "codebook learning: ema (VQ-VAE-2) or codebook-loss (VQ-VAE-1)",
      [](const Config& c) { return std::string(c.model.quantizer.ema ? "ema" : "codebook-loss"); },
      [](Config& c, const std::string& v) { c.model.quantizer.ema = v == "ema"; })
      ->check(CLI::IsMember({"ema", "codebook-loss"}));
  flags.add<double>(app, "--beta", "commitment cost beta", [](Config& c) -> double& { return c.model.quantizer.beta; });
  flags.add<double>(app, "--decay", "EMA decay gamma", [](Config& c) -> double& { return c.model.quantizer.decay; });
  flags.add<double>(app, "--epsilon", "Laplace smoothing of the EMA counts",
                    [](Config& c) -> double& { return c.model.quantizer.epsilon; });
  flags.add<double>(app, "--dead-code-threshold",
                    "restart a code on a recent encoder output when its EMA count per batch falls below this (0 = off)",
                    [](Config& c) -> double& { return c.model.quantizer.dead_code_threshold; });
  flags.add<bool>(app, "--init-from-data", "set the codebook from encoder outputs of the first batch",
                  [](Config& c) -> bool& { return c.model.quantizer.init_from_data; });
  // Schedule.
  add_schedule_flags(app, flags, "images");
  flags.add<int64_t>(app, "--grid-images", "images in each reconstruction grid",
                     [](Config& c) -> int64_t& { return c.train.grid_images; });
}

std::vector<std::pair<std::string, Config>> all_presets() {
  std::vector<std::pair<std::string, Config>> presets;
  for (const auto& name : preset_names()) presets.emplace_back(name, vqvae_preset(name));
  return presets;
}

}  // namespace

Command add_train_vqvae(CLI::App& top, Common& common) {
  auto* app = top.add_subcommand("train-vqvae", "Stage 1: train the hierarchical VQ-VAE, writing a run folder");
  struct Flags {
    std::string out = "runs/vqvae", preset = "auto";
    bool resume = false;
    PresetFlags<Config> config{all_presets()};
  };
  auto f = std::make_shared<Flags>();
  app->add_option("--preset", f->preset,
                  "starting configuration: mnist, small, reference, or auto (mnist without --data, reference with "
                  "it); the flags below override it")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "mnist", "small", "reference"}));
  app->add_option("--out", f->out, "run folder (config.json, metrics.jsonl, vqvae.ckpt, grids/)")->capture_default_str();
  app->add_flag("--resume", f->resume,
                "continue the run in --out from its checkpoint (its configuration; schedule flags may be changed)");
  add_vqvae_flags(app, f->config);
  add_common(app, common);
  return {app, [f, app, &common] {
            install_stop_handlers();
            const auto run = open_training_run(f->out, VQVAEKind::name, f->resume);
            auto config = run.resumed ? run.resumed->config_as<Config>()
                                      : vqvae_preset(resolve_preset(f->preset, app->get_option("--data")->count() > 0));
            f->config.apply(config);
            const auto result = train_vqvae(config, run, common.settings());
            const auto& e = result.final;
            std::cout << fmt::format(
                "{} after {} steps: validation MSE {:.5f} (PSNR {:.2f} dB), code usage {}, perplexity {}\n",
                result.interrupted ? "stopped" : "trained", result.steps, e.mse, e.psnr, fmt::join(e.usage, " / "),
                fmt::join(e.perplexity, " / "));
            std::cout << fmt::format("run folder: {} (checkpoint {}, metrics.jsonl, grids/)\n", f->out,
                                     result.checkpoint);
            return result.interrupted ? kInterruptedExit : 0;
          }};
}

Command add_reconstruct(CLI::App& top, Common& common) {
  auto* app = top.add_subcommand("reconstruct", "Write originals next to their reconstructions as a PNG grid");
  auto config = std::make_shared<ReconstructConfig>();
  app->add_option("--checkpoint", config->checkpoint, "VQ-VAE run folder or .ckpt file")->required();
  app->add_option("--data", config->data, "folder of images (default: the held-out training images)");
  app->add_option("--images", config->images, "how many images")->capture_default_str();
  app->add_option("--out", config->out, "PNG file to write")->capture_default_str();
  add_common(app, common);
  return {app, [config, &common] {
            const auto result = reconstruct(*config, common.settings());
            std::cout << fmt::format("{} images: MSE {:.5f}, PSNR {:.2f} dB; originals and reconstructions in pairs: {}\n",
                                     result.images, result.mse, result.psnr, config->out);
            return 0;
          }};
}

Command add_encode(CLI::App& top, Common& common) {
  auto* app = top.add_subcommand("encode", "Encode images into a code store (docs/FORMATS.md)");
  auto config = std::make_shared<EncodeConfig>();
  app->add_option("--checkpoint", config->checkpoint, "VQ-VAE run folder or .ckpt file")->required();
  app->add_option("--data", config->data, "folder of images (default: the training data set)");
  app->add_option("--out", config->out, "code store to write")->capture_default_str();
  app->add_option("--batch-size", config->batch_size, "images per batch")->capture_default_str();
  add_common(app, common);
  return {app, [config, &common] {
            const auto count = encode(*config, common.settings());
            std::cout << fmt::format("encoded {} images into {}\n", count, config->out);
            return 0;
          }};
}

Command add_decode(CLI::App& top, Common& common) {
  auto* app = top.add_subcommand("decode", "Decode a code store back into images");
  auto config = std::make_shared<DecodeConfig>();
  app->add_option("--checkpoint", config->checkpoint, "VQ-VAE run folder or .ckpt file")->required();
  app->add_option("--codes", config->codes, "code store to read")->required();
  app->add_option("--out", config->out, "folder for the PNGs (named after the images the codes came from) and grid.png")
      ->capture_default_str();
  app->add_option("--limit", config->limit, "decode at most this many images (0 = all)")->capture_default_str();
  app->add_option("--batch-size", config->batch_size, "images per batch")->capture_default_str();
  add_common(app, common);
  return {app, [config, &common] {
            const auto count = decode(*config, common.settings());
            std::cout << fmt::format("decoded {} images into {}/ (one PNG each, named after their source, and grid.png)\n",
                                     count, config->out);
            return 0;
          }};
}

Command add_extract_codes(CLI::App& top, Common& common) {
  auto* app = top.add_subcommand("extract-codes", "Encode the VQ-VAE's training and held-out images into code stores");
  auto config = std::make_shared<ExtractConfig>();
  app->add_option("--checkpoint", config->checkpoint, "VQ-VAE run folder or .ckpt file")->required();
  app->add_option("--out", config->out, "folder for train.vq2 and val.vq2 (default: <VQ-VAE run>/codes)");
  app->add_option("--batch-size", config->batch_size, "images per batch")->capture_default_str();
  add_common(app, common);
  return {app, [config, &common] {
            const auto result = extract_codes(*config, common.settings());
            std::cout << fmt::format("codes of {} training and {} held-out images: {}, {}\n", result.train_count,
                                     result.validation_count, result.train_path, result.validation_path);
            return 0;
          }};
}

}  // namespace vqvae2::cli
