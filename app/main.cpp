// vqvae2: the command-line program. Parses flags into each subcommand's settings and calls
// commands.cpp; every error becomes one clear message and a non-zero exit status.
#include "commands.h"
#include "flags.h"

#include "vqvae2/core/checkpoint.h"
#include "vqvae2/core/error.h"
#include "vqvae2/stages/presets.h"

#include <CLI/CLI.hpp>

#include <iostream>

namespace vqvae2::cli {
namespace {

using Config = TrainVQVAEConfig;

void add_common(CLI::App* app, Common& common) {
  app->add_option("--device", common.device, "where the math runs: cpu, cuda or cuda:N")->capture_default_str();
  app->add_option("--threads", common.threads.threads,
                  "LibTorch threads (0 = every core this process may use)")
      ->capture_default_str();
  app->add_option("--blas-threads", common.threads.blas_threads,
                  "OpenBLAS threads (0 = recommended: 1, so BLAS calls inside LibTorch's parallel loops do not "
                  "oversubscribe the cores; see `vqvae2 bench threads`)")
      ->capture_default_str();
  app->add_flag("--quiet", common.quiet, "no progress bar");
}

// The model, data and schedule flags of train-vqvae, each a field of TrainVQVAEConfig.
void add_vqvae_flags(CLI::App* app, PresetFlags<Config>& flags) {
  using V = std::vector<int64_t>;
  // Data.
  flags.add<std::string>(app, "--data", "folder of training images (PNG/JPEG/..., any size, searched recursively); "
                                        "empty = the embedded MNIST digits",
                         [](Config& c) -> std::string& { return c.data.folder; });
  flags.add<int64_t>(app, "--image-size", "side S the images are cropped and resized to",
                     [](const Config& c) { return c.model.image_size; },
                     [](Config& c, const int64_t& v) { c.model.image_size = c.data.image_size = v; });
  flags.add<int64_t>(app, "--channels", "1 = grey, 3 = RGB (images are converted)",
                     [](const Config& c) { return c.model.channels; },
                     [](Config& c, const int64_t& v) { c.model.channels = c.data.channels = v; });
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
  flags.add<int64_t>(app, "--batch-size", "images per step", [](Config& c) -> int64_t& { return c.train.batch_size; });
  flags.add<int64_t>(app, "--epochs", "passes over the training images",
                     [](Config& c) -> int64_t& { return c.train.epochs; });
  flags.add<int64_t>(app, "--steps", "optimisation steps; overrides --epochs when > 0",
                     [](Config& c) -> int64_t& { return c.train.steps; });
  flags.add<double>(app, "--lr", "Adam learning rate", [](Config& c) -> double& { return c.train.learning_rate; });
  flags.add<uint64_t>(app, "--seed", "seed of everything random (weights, data order, restarts)",
                      [](Config& c) -> uint64_t& { return c.train.seed; });
  flags.add<int64_t>(app, "--log-every", "steps between metrics lines", [](Config& c) -> int64_t& { return c.train.log_every; });
  flags.add<int64_t>(app, "--checkpoint-every", "steps between checkpoints (also written at each epoch's end)",
                     [](Config& c) -> int64_t& { return c.train.checkpoint_every; });
  flags.add<int64_t>(app, "--grid-images", "images in each reconstruction grid",
                     [](Config& c) -> int64_t& { return c.train.grid_images; });
  flags.add<std::string>(app, "--on-nan", "a NaN or infinite loss: stop, or skip the batch (at most 10 in a row)",
                         [](Config& c) -> std::string& { return c.train.on_nan; })
      ->check(CLI::IsMember({"stop", "skip"}));
}

// The model and schedule flags of train-prior, each a field of TrainPriorConfig.
void add_prior_flags(CLI::App* app, PresetFlags<TrainPriorConfig>& flags) {
  using P = TrainPriorConfig;
  flags.add<int64_t>(app, "--channels", "width C of the causal stack", [](P& c) -> int64_t& { return c.model.stack.channels; });
  flags.add<int64_t>(app, "--res-channels", "width inside each gated unit",
                     [](P& c) -> int64_t& { return c.model.stack.res_channels; });
  flags.add<int64_t>(app, "--kernel", "kernel size k (odd): vertical (k/2+1)xk, horizontal 1x(k/2+1)",
                     [](P& c) -> int64_t& { return c.model.stack.kernel; });
  flags.add<int64_t>(app, "--blocks", "groups of gated layers (attention closes each group in the top prior)",
                     [](P& c) -> int64_t& { return c.model.stack.blocks; });
  flags.add<int64_t>(app, "--res-blocks", "gated layers per group", [](P& c) -> int64_t& { return c.model.stack.res_blocks; });
  flags.add<bool>(app, "--attention", "causal self-attention after each group (default: on for the top prior only)",
                  [](P& c) -> bool& { return c.model.stack.attention; });
  flags.add<int64_t>(app, "--heads", "attention heads", [](P& c) -> int64_t& { return c.model.stack.heads; });
  flags.add<double>(app, "--dropout", "dropout in every gated unit and on attention weights",
                    [](P& c) -> double& { return c.model.stack.dropout; });
  flags.add<int64_t>(app, "--out-res-blocks", "1x1 gated units before the logits",
                     [](P& c) -> int64_t& { return c.model.stack.out_res_blocks; });
  flags.add<int64_t>(app, "--condition-channels", "width of the conditioning stack (lower levels)",
                     [](P& c) -> int64_t& { return c.model.condition.channels; });
  flags.add<int64_t>(app, "--condition-res-blocks", "residual blocks of the conditioning stack (lower levels)",
                     [](P& c) -> int64_t& { return c.model.condition.res_blocks; });
  flags.add<int64_t>(app, "--batch-size", "code maps per step", [](P& c) -> int64_t& { return c.train.batch_size; });
  flags.add<int64_t>(app, "--epochs", "passes over the training codes", [](P& c) -> int64_t& { return c.train.epochs; });
  flags.add<int64_t>(app, "--steps", "optimisation steps; overrides --epochs when > 0",
                     [](P& c) -> int64_t& { return c.train.steps; });
  flags.add<double>(app, "--lr", "Adam learning rate", [](P& c) -> double& { return c.train.learning_rate; });
  flags.add<uint64_t>(app, "--seed", "seed of everything random (weights, order, dropout)",
                      [](P& c) -> uint64_t& { return c.train.seed; });
  flags.add<int64_t>(app, "--log-every", "steps between metrics lines", [](P& c) -> int64_t& { return c.train.log_every; });
  flags.add<int64_t>(app, "--checkpoint-every", "steps between checkpoints (also written at each epoch's end)",
                     [](P& c) -> int64_t& { return c.train.checkpoint_every; });
  flags.add<std::string>(app, "--on-nan", "a NaN or infinite loss: stop, or skip the batch (at most 10 in a row)",
                         [](P& c) -> std::string& { return c.train.on_nan; })
      ->check(CLI::IsMember({"stop", "skip"}));
}

std::vector<std::pair<std::string, TrainPriorConfig>> prior_presets() {
  std::vector<std::pair<std::string, TrainPriorConfig>> presets;
  for (const auto size : {PriorSize::kSmall, PriorSize::kReference}) {
    TrainPriorConfig c;
    c.model = conditional_prior_options(0, 16, 16, 512, 512, 2, size);  // widths do not depend on the map
    c.train = prior_schedule(size);
    presets.emplace_back(size == PriorSize::kSmall ? "small" : "reference", c);
  }
  return presets;
}

std::vector<std::pair<std::string, Config>> all_presets() {
  std::vector<std::pair<std::string, Config>> presets;
  for (const auto& name : preset_names()) presets.emplace_back(name, vqvae_preset(name));
  return presets;
}

int run(int argc, char** argv) {
  CLI::App app{"vqvae2: VQ-VAE-2 (Razavi et al. 2019) in C++ on LibTorch.\n"
               "Train a hierarchical VQ-VAE on your images, priors over its codes, and sample new images.\n"
               "Start with `vqvae2 pipeline`: it runs every stage on the embedded MNIST digits."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "vqvae2 0.1.0");
  app.footer("Run `vqvae2 <command> --help` for a command's flags.");
  Common common;

  // train-vqvae
  auto* train = app.add_subcommand("train-vqvae", "Stage 1: train the hierarchical VQ-VAE, writing a run folder");
  TrainVQVAECommand train_command;
  std::string preset = "auto";
  PresetFlags<Config> flags(all_presets());
  train->add_option("--preset", preset,
                    "starting configuration: mnist, small, reference, or auto (mnist without --data, reference with "
                    "it); the flags below override it")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "mnist", "small", "reference"}));
  train->add_option("--out", train_command.out, "run folder (config.json, metrics.jsonl, vqvae.ckpt, grids/)")
      ->capture_default_str();
  train->add_flag("--resume", train_command.resume,
                  "continue the run in --out from its checkpoint (its configuration; schedule flags may be changed)");
  add_vqvae_flags(train, flags);
  add_common(train, common);

  // reconstruct
  auto* reconstruct_app = app.add_subcommand("reconstruct", "Write originals next to their reconstructions as a PNG grid");
  ReconstructCommand reconstruct_command;
  reconstruct_app->add_option("--checkpoint", reconstruct_command.checkpoint, "VQ-VAE run folder or .ckpt file")->required();
  reconstruct_app->add_option("--data", reconstruct_command.data, "folder of images (default: the held-out training images)");
  reconstruct_app->add_option("--images", reconstruct_command.images, "how many images")->capture_default_str();
  reconstruct_app->add_option("--out", reconstruct_command.out, "PNG file to write")->capture_default_str();
  add_common(reconstruct_app, common);

  // encode
  auto* encode_app = app.add_subcommand("encode", "Encode images into a code store (docs/FORMATS.md)");
  EncodeCommand encode_command;
  encode_app->add_option("--checkpoint", encode_command.checkpoint, "VQ-VAE run folder or .ckpt file")->required();
  encode_app->add_option("--data", encode_command.data, "folder of images (default: the training data set)");
  encode_app->add_option("--out", encode_command.out, "code store to write")->capture_default_str();
  encode_app->add_option("--batch-size", encode_command.batch_size, "images per batch")->capture_default_str();
  add_common(encode_app, common);

  // decode
  auto* decode_app = app.add_subcommand("decode", "Decode a code store back into images");
  DecodeCommand decode_command;
  decode_app->add_option("--checkpoint", decode_command.checkpoint, "VQ-VAE run folder or .ckpt file")->required();
  decode_app->add_option("--codes", decode_command.codes, "code store to read")->required();
  decode_app->add_option("--out", decode_command.out, "folder for the PNGs and grid.png")->capture_default_str();
  decode_app->add_option("--limit", decode_command.limit, "decode at most this many images (0 = all)")->capture_default_str();
  decode_app->add_option("--batch-size", decode_command.batch_size, "images per batch")->capture_default_str();
  add_common(decode_app, common);

  // extract-codes
  auto* extract_app = app.add_subcommand("extract-codes", "Encode the VQ-VAE's training and held-out images into code stores");
  ExtractCommand extract_command;
  extract_app->add_option("--checkpoint", extract_command.checkpoint, "VQ-VAE run folder or .ckpt file")->required();
  extract_app->add_option("--out", extract_command.out, "folder for train.vq2 and val.vq2 (default: <VQ-VAE run>/codes)");
  extract_app->add_option("--batch-size", extract_command.batch_size, "images per batch")->capture_default_str();
  add_common(extract_app, common);

  // train-prior
  auto* prior_app = app.add_subcommand("train-prior", "Stage 2: train the prior of one level on extracted codes");
  TrainPriorCommand prior_command;
  PresetFlags<TrainPriorConfig> prior_flags(prior_presets());
  prior_app->add_option("--codes", prior_command.config.codes, "folder holding train.vq2 and val.vq2 (extract-codes)");
  prior_app->add_option("--level", prior_command.level,
                        "which level: top (PixelSNAIL), bottom (conditioned on the level above) or a number")
      ->capture_default_str();
  prior_app->add_option("--size", prior_command.size, "widths: reference (the paper's) or small (CPU-friendly)")
      ->capture_default_str()
      ->check(CLI::IsMember({"small", "reference"}));
  prior_app->add_option("--out", prior_command.out, "run folder (default: runs/prior-level<N>)");
  prior_app->add_flag("--resume", prior_command.resume, "continue the run in --out from its checkpoint");
  add_prior_flags(prior_app, prior_flags);
  add_common(prior_app, common);

  // sample
  auto* sample_app = app.add_subcommand("sample", "Ancestral sampling: top codes, then each level below, then decode");
  SampleCommand sample_command;
  sample_app->add_option("--vqvae", sample_command.vqvae, "VQ-VAE run folder or .ckpt file")->required();
  sample_app->add_option("--priors", sample_command.priors, "prior run folders or .ckpt files, one per level, any order")
      ->required()
      ->delimiter(',');
  sample_app->add_option("--count", sample_command.count, "images to sample")->capture_default_str();
  sample_app->add_option("--batch-size", sample_command.batch_size, "images sampled together")->capture_default_str();
  sample_app->add_option("--temperature", sample_command.sampling.temperature, "divides the logits; 0 = most likely code")
      ->capture_default_str();
  sample_app->add_option("--top-k", sample_command.sampling.top_k, "keep the k most likely codes (0 = all)")
      ->capture_default_str();
  sample_app->add_option("--top-p", sample_command.sampling.top_p, "keep the most likely codes up to this probability")
      ->capture_default_str();
  sample_app->add_option("--seed", sample_command.seed, "same seed, same samples")->capture_default_str();
  sample_app->add_flag("--naive", sample_command.naive,
                       "use the reference sampler (a full forward pass per code; slow, for comparison)");
  sample_app->add_option("--out", sample_command.out, "PNG grid to write")->capture_default_str();
  sample_app->add_option("--codes-out", sample_command.codes_out, "also write the sampled codes as a code store");
  add_common(sample_app, common);

  // pipeline
  auto* pipeline_app = app.add_subcommand(
      "pipeline", "The whole system in one go: train the VQ-VAE, extract codes, train every prior, sample");
  PipelineCommand pipeline_command;
  pipeline_app->add_option("--out", pipeline_command.out, "run folder for every stage")->capture_default_str();
  pipeline_app->add_option("--data", pipeline_command.data, "folder of images (default: the embedded MNIST digits)");
  pipeline_app->add_option("--preset", pipeline_command.preset, "VQ-VAE preset: auto, mnist, small, reference")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "mnist", "small", "reference"}));
  pipeline_app->add_option("--prior-size", pipeline_command.prior_size, "prior widths: auto, small, reference")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "small", "reference"}));
  pipeline_app->add_option("--vqvae-epochs", pipeline_command.vqvae_epochs, "VQ-VAE epochs (0 = the preset's)")
      ->capture_default_str();
  pipeline_app->add_option("--prior-epochs", pipeline_command.prior_epochs, "epochs of each prior (0 = the size's default)")
      ->capture_default_str();
  pipeline_app->add_option("--vqvae-steps", pipeline_command.vqvae_steps, "VQ-VAE steps instead of epochs (0 = epochs)")
      ->capture_default_str();
  pipeline_app->add_option("--prior-steps", pipeline_command.prior_steps, "steps of each prior instead of epochs (0 = epochs)")
      ->capture_default_str();
  pipeline_app->add_option("--samples", pipeline_command.samples, "images to sample at the end")->capture_default_str();
  pipeline_app->add_option("--seed", pipeline_command.seed, "seed of every stage")->capture_default_str();
  pipeline_app->add_flag("--resume", pipeline_command.resume, "continue an interrupted pipeline run in --out");
  add_common(pipeline_app, common);

  // bench
  auto* bench_app = app.add_subcommand("bench", "Benchmarks: print speed figures (vqvae, prior, sample, threads)");
  BenchCommand bench_command;
  bench_app->add_option("what", bench_command.what,
                        "vqvae: VQ-VAE training images/s; prior: prior training step times; sample: seconds per "
                        "256x256 sample (all at reference widths); threads: thread settings compared")
      ->capture_default_str()
      ->check(CLI::IsMember({"vqvae", "prior", "sample", "threads"}));
  bench_app->add_option("--batches", bench_command.batches, "batch sizes for `bench sample`")
      ->delimiter(',')
      ->capture_default_str();
  bench_app->add_option("--warmup", bench_command.warmup, "untimed iterations")->capture_default_str();
  bench_app->add_option("--iterations", bench_command.iterations, "timed iterations (median reported)")->capture_default_str();
  add_common(bench_app, common);

  if (argc > 1 && argv[1][0] != '-') {
    std::vector<std::string> names;
    for (const auto* sub : app.get_subcommands([](const CLI::App*) { return true; })) names.push_back(sub->get_name());
    VQVAE2_CHECK(std::find(names.begin(), names.end(), argv[1]) != names.end(), "unknown command '{}'; the commands are: {}",
                 argv[1], fmt::join(names, ", "));
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  const auto resolved = configure_threads(common.threads);
  (void)resolved;
  if (train->parsed()) {
    if (train_command.resume) {
      const auto stored = read_checkpoint(checkpoint_file(train_command.out, "vqvae.ckpt"), "vqvae");
      train_command.config = stored.meta.at("config").get<Config>();
    } else {
      const bool has_data = train->get_option("--data")->count() > 0;
      train_command.config = vqvae_preset(preset == "auto" ? (has_data ? "reference" : "mnist") : preset);
    }
    flags.apply(train_command.config);
    return train_vqvae(train_command, common);
  }
  if (prior_app->parsed()) {
    return train_prior(prior_command, common, [&](TrainPriorConfig& c) { prior_flags.apply(c); });
  }
  if (extract_app->parsed()) return extract_codes(extract_command, common);
  if (sample_app->parsed()) return sample(sample_command, common);
  if (pipeline_app->parsed()) return pipeline(pipeline_command, common);
  if (reconstruct_app->parsed()) return reconstruct(reconstruct_command, common);
  if (encode_app->parsed()) return encode(encode_command, common);
  if (decode_app->parsed()) return decode(decode_command, common);
  if (bench_app->parsed()) return bench(bench_command, common);
  return 1;
}

}  // namespace
}  // namespace vqvae2::cli

int main(int argc, char** argv) {
  try {
    return vqvae2::cli::run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "error: " << vqvae2::describe(e) << "\n";
    return 1;
  }
}
