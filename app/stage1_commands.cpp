// The stage-1 commands: train-vqvae, reconstruct, encode, decode, extract-codes.
#include "cli.h"
#include "flags.h"

#include "vqvae2/stages/codes.h"
#include "vqvae2/stages/evaluate.h"
#include "vqvae2/stages/presets.h"
#include "vqvae2/stages/train_audio_vqvae.h"
#include "vqvae2/stages/train_vqvae.h"

#include <filesystem>
#include <iostream>
#include <memory>

namespace vqvae2::cli {
namespace {

using Config = TrainVQVAEConfig;
using AudioConfig = TrainAudioVQVAEConfig;

// The fields an audio configuration shares with an image one (data folder and split, widths,
// hierarchy, quantizer, schedule), copied into an image configuration and back: the flags of those
// fields fill either.
Config shared_view(const AudioConfig& audio) {
  Config c;
  c.data.folder = audio.data.folder;
  c.data.validation_fraction = audio.data.validation_fraction;
  c.data.split_seed = audio.data.split_seed;
  c.data.limit = audio.data.limit;
  c.data.cache_mb = audio.data.cache_mb;
  c.model.hidden = audio.model.hidden;
  c.model.res_blocks = audio.model.res_blocks;
  c.model.res_channels = audio.model.res_channels;
  c.model.strides = audio.model.strides;
  c.model.codes = audio.model.codes;
  c.model.code_dims = audio.model.code_dims;
  c.model.quantizer = audio.model.quantizer;
  c.train = audio.train;
  return c;
}
void copy_shared(const Config& c, AudioConfig& audio) {
  audio.data.folder = c.data.folder;
  audio.data.validation_fraction = c.data.validation_fraction;
  audio.data.split_seed = c.data.split_seed;
  audio.data.limit = c.data.limit;
  audio.data.cache_mb = c.data.cache_mb;
  audio.model.hidden = c.model.hidden;
  audio.model.res_blocks = c.model.res_blocks;
  audio.model.res_channels = c.model.res_channels;
  audio.model.strides = c.model.strides;
  audio.model.codes = c.model.codes;
  audio.model.code_dims = c.model.code_dims;
  audio.model.quantizer = c.model.quantizer;
  audio.train = c.train;
}

// train-vqvae's flags, each a field of TrainVQVAEConfig or TrainAudioVQVAEConfig: those both have
// (`shared`, shown with every image and audio preset), the image-only ones and the audio-only ones.
struct VQVAEFlags {
  PresetFlags<Config> shared, image;
  PresetFlags<AudioConfig> audio;
};

void add_vqvae_flags(CLI::App* app, VQVAEFlags& flags) {
  using V = std::vector<int64_t>;
  auto& shared = flags.shared;
  auto& image = flags.image;
  auto& audio = flags.audio;
  // Data.
  shared.add<std::string>(app, "--data", "folder of training images (PNG/JPEG/..., any size, searched recursively) or "
                                         "audio files (WAV/FLAC/OGG/MP3, any rate); empty = the embedded MNIST digits",
                          [](Config& c) -> std::string& { return c.data.folder; });
  image.add<int64_t>(app, "--image-size", "side S the images are cropped and resized to",
                     [](Config& c) -> int64_t& { return c.model.image_size; });
  image.add<int64_t>(app, "--channels", "1 = grey, 3 = RGB (images are converted)",
                     [](Config& c) -> int64_t& { return c.model.channels; });
  audio.add<int64_t>(
      app, "--sample-rate", "audio: sample rate every file is resampled to (Hz)",
      [](const AudioConfig& c) { return c.model.sample_rate; },
      [](AudioConfig& c, const int64_t& v) { c.model.sample_rate = c.data.sample_rate = v; });
  audio.add<int64_t>(
      app, "--clip-length", "audio: samples per training clip (a multiple of the product of --strides)",
      [](const AudioConfig& c) { return c.model.clip_length; },
      [](AudioConfig& c, const int64_t& v) { c.model.clip_length = c.data.clip_length = v; });
  shared.add<double>(app, "--val-fraction", "share of images (audio: files) held out for validation",
                     [](Config& c) -> double& { return c.data.validation_fraction; });
  shared.add<uint64_t>(app, "--split-seed", "changes which images (audio: files) are held out",
                       [](Config& c) -> uint64_t& { return c.data.split_seed; });
  image.add<std::string>(
      app, "--on-bad-image", "what to do with unreadable image files: skip (with a warning) or fail",
      [](const Config& c) { return std::string(c.data.skip_bad_images ? "skip" : "fail"); },
      [](Config& c, const std::string& v) { c.data.skip_bad_images = v == "skip"; })
      ->check(CLI::IsMember({"skip", "fail"}));
  audio.add<std::string>(
      app, "--on-bad-file", "audio: what to do with unreadable audio files: skip (with a warning) or fail",
      [](const AudioConfig& c) { return std::string(c.data.skip_bad_files ? "skip" : "fail"); },
      [](AudioConfig& c, const std::string& v) { c.data.skip_bad_files = v == "skip"; })
      ->check(CLI::IsMember({"skip", "fail"}));
  shared.add<int64_t>(app, "--limit", "use at most this many images (audio: files) (0 = all)",
                      [](Config& c) -> int64_t& { return c.data.limit; });
  shared.add<int64_t>(app, "--cache-mb", "MiB of decoded images (audio: files) kept in memory between epochs",
                      [](Config& c) -> int64_t& { return c.data.cache_mb; });
  // Model.
  shared.add<int64_t>(app, "--hidden", "width h of encoders and decoders",
                      [](Config& c) -> int64_t& { return c.model.hidden; });
  shared.add<int64_t>(app, "--res-blocks", "residual blocks per encoder/decoder",
                      [](Config& c) -> int64_t& { return c.model.res_blocks; });
  shared.add<int64_t>(app, "--res-channels", "bottleneck width of a residual block",
                      [](Config& c) -> int64_t& { return c.model.res_channels; });
  audio.add<int64_t>(app, "--dilation-growth", "audio: residual block i's 3-tap convolution is dilated growth^i",
                     [](AudioConfig& c) -> int64_t& { return c.model.dilation_growth; });
  shared.add<V>(app, "--strides", "downsampling of each level, bottom first (powers of two); the count is the number "
                                  "of levels, e.g. 4,2 = bottom S/4, top S/8",
                [](Config& c) -> V& { return c.model.strides; });
  shared.add<V>(app, "--codes", "codebook size K, one for all levels or one per level",
                [](Config& c) -> V& { return c.model.codes; });
  shared.add<V>(app, "--code-dims", "code width D, one for all levels or one per level",
                [](Config& c) -> V& { return c.model.code_dims; });
  shared.add<std::string>(
      app, "--quantizer", "codebook learning: ema (VQ-VAE-2) or codebook-loss (VQ-VAE-1)",
      [](const Config& c) { return std::string(c.model.quantizer.ema ? "ema" : "codebook-loss"); },
      [](Config& c, const std::string& v) { c.model.quantizer.ema = v == "ema"; })
      ->check(CLI::IsMember({"ema", "codebook-loss"}));
  shared.add<double>(app, "--beta", "commitment cost beta", [](Config& c) -> double& { return c.model.quantizer.beta; });
  shared.add<double>(app, "--decay", "EMA decay gamma", [](Config& c) -> double& { return c.model.quantizer.decay; });
  shared.add<double>(app, "--epsilon", "Laplace smoothing of the EMA counts",
                     [](Config& c) -> double& { return c.model.quantizer.epsilon; });
  shared.add<double>(app, "--dead-code-threshold",
                     "restart a code on a recent encoder output when its EMA count per batch falls below this (0 = off)",
                     [](Config& c) -> double& { return c.model.quantizer.dead_code_threshold; });
  shared.add<bool>(app, "--init-from-data", "set the codebook from encoder outputs of the first batch",
                   [](Config& c) -> bool& { return c.model.quantizer.init_from_data; });
  audio.add<std::string>(app, "--waveform-loss", "audio: l1 (mean |x^ - x|) or mse (mean (x^ - x)^2)",
                         [](AudioConfig& c) -> std::string& { return c.model.waveform_loss; })
      ->check(CLI::IsMember({"l1", "mse"}));
  audio.add<double>(app, "--stft-weight", "audio: weight of the multi-resolution STFT loss (0 = off)",
                    [](AudioConfig& c) -> double& { return c.model.stft_weight; });
  audio.add<V>(app, "--stft-ffts", "audio: the STFT loss's FFT sizes (window = FFT, hop = FFT/4)",
               [](AudioConfig& c) -> V& { return c.model.stft_ffts; });
  audio.add<std::string>(app, "--upsampling",
                         "audio: how the decoders double their length: transposed (4-tap transposed convolutions) or "
                         "nearest (repeat each sample, then a 3-tap convolution)",
                         [](AudioConfig& c) -> std::string& { return c.model.upsampling; })
      ->check(CLI::IsMember({"transposed", "nearest"}));
  // Schedule.
  add_schedule_flags(app, shared, "images (audio: clips)");
  add_precision_flag(app, image);
  shared.add<int64_t>(app, "--grid-images", "images in each reconstruction grid (audio: clips written as WAVs and spectrograms)",
                      [](Config& c) -> int64_t& { return c.train.grid_images; });
}

std::vector<std::pair<std::string, Config>> image_presets() {
  std::vector<std::pair<std::string, Config>> presets;
  for (const auto& name : preset_names()) presets.emplace_back(name, vqvae_preset(name));
  return presets;
}

std::vector<std::pair<std::string, AudioConfig>> audio_presets() {
  std::vector<std::pair<std::string, AudioConfig>> presets;
  for (const auto& name : audio_preset_names()) presets.emplace_back(name, audio_vqvae_preset(name));
  return presets;
}

// The shared flags show every preset: the image ones, then the audio ones as "audio <name>".
std::vector<std::pair<std::string, Config>> all_presets() {
  auto presets = image_presets();
  for (const auto& [name, audio] : audio_presets()) presets.emplace_back("audio " + name, shared_view(audio));
  return presets;
}

struct TrainVQVAEFlags {
  std::string out = "runs/vqvae", preset = "auto", modality = "auto";
  bool resume = false;
  VQVAEFlags config{PresetFlags<Config>(all_presets()), PresetFlags<Config>(image_presets()),
                    PresetFlags<AudioConfig>(audio_presets())};
};

// train-vqvae on audio: the audio preset (or the resumed run's configuration), the shared and the
// audio flags over it, one call to train_audio_vqvae.
int run_train_audio_vqvae(const TrainVQVAEFlags& f, const Common& common) {
  require_single_process("train-vqvae on audio");
  const auto image_only = f.config.image.given();
  VQVAE2_CHECK(image_only.empty(), "{} {} for images, not audio; audio clips are set by --sample-rate and --clip-length",
               fmt::join(image_only, ", "), image_only.size() == 1 ? "is" : "are");
  const auto preset = resolve_audio_preset(f.preset);
  VQVAE2_CHECK(f.resume || preset == "speech" || preset == "reference",
               "preset '{}' is for images; the audio presets are {} (or auto = speech)", f.preset,
               fmt::join(audio_preset_names(), ", "));
  const auto apply_flags = [&](AudioConfig& config) {
    auto view = shared_view(config);
    f.config.shared.apply(view);
    copy_shared(view, config);
    f.config.audio.apply(config);
  };
  // A fresh run's configuration is checked before its folder is made: a bad flag leaves nothing behind.
  AudioConfig config;
  if (!f.resume) {
    config = audio_vqvae_preset(preset);
    apply_flags(config);
    config.validate();
  }
  const auto run = open_training_run(f.out, AudioVQVAEKind::name, f.resume);
  if (run.resumed) {
    config = run.resumed->config_as<AudioConfig>();
    apply_flags(config);
  }
  const auto result = train_audio_vqvae(config, run, common.settings());
  const auto& e = result.final;
  std::cout << fmt::format(
      "{} after {} steps: validation waveform MSE {:.6f} (SNR {:.2f} dB), STFT distance {:.3f} (spectral convergence "
      "{:.3f}, log magnitude {:.3f}), code usage {}, perplexity {}\n",
      result.interrupted ? "stopped" : "trained", result.steps, e.waveform_mse, e.snr, e.stft, e.spectral_convergence,
      e.log_magnitude, fmt::join(e.usage, " / "), fmt::join(e.perplexity, " / "));
  std::cout << fmt::format("run folder: {} (checkpoint {}, metrics.jsonl, spectrograms/, audio/)\n", f.out,
                           result.checkpoint);
  return result.interrupted ? kInterruptedExit : 0;
}

}  // namespace

Command add_train_vqvae(CLI::App& top, Common& common) {
  auto* app = top.add_subcommand("train-vqvae", "Stage 1: train the hierarchical VQ-VAE, writing a run folder");
  auto f = std::make_shared<TrainVQVAEFlags>();
  app->add_option("--preset", f->preset,
                  "starting configuration: mnist, small, reference, vqvae1 (VQ-VAE-1: mnist's widths, one level of "
                  "8x8 codes, codebook loss; train its prior with `train-prior --attention false`), or auto (mnist "
                  "without --data, reference with it); audio: speech or reference (auto = speech); the flags below "
                  "override it")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "mnist", "small", "reference", "vqvae1", "speech"}));
  app->add_option("--modality", f->modality,
                  "image, audio, or auto: audio when --data holds audio files (on --resume: what the run in --out is)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "image", "audio"}));
  app->add_option("--out", f->out, "run folder (config.json, metrics.jsonl, vqvae.ckpt, grids/)")->capture_default_str();
  app->add_flag("--resume", f->resume,
                "continue the run in --out from its checkpoint (its configuration; schedule flags may be changed)");
  add_vqvae_flags(app, f->config);
  add_common(app, common);
  add_distributed_flags(app, common);
  return {app, [f, app, &common] {
            install_stop_handlers();
            const auto data_given = app->get_option("--data")->count() > 0;
            Modality modality;
            if (f->resume) {
              namespace fs = std::filesystem;
              modality = fs::exists(fs::path(f->out) / (std::string(AudioVQVAEKind::name) + ".ckpt")) ? Modality::kAudio
                                                                                                        : Modality::kImage;
            } else if (f->modality != "auto") {
              modality = parse_modality(f->modality);
            } else {
              std::string folder;
              if (data_given) {
                Config probe;
                f->config.shared.apply(probe);
                folder = probe.data.folder;
              }
              modality = detect_modality(folder);
            }
            if (modality == Modality::kAudio) return run_train_audio_vqvae(*f, common);
            const auto audio_only = f->config.audio.given();
            VQVAE2_CHECK(audio_only.empty(), "{} {} for audio (--modality audio), not images",
                         fmt::join(audio_only, ", "), audio_only.size() == 1 ? "is" : "are");
            const auto apply_flags = [&](Config& config) {
              f->config.shared.apply(config);
              f->config.image.apply(config);
            };
            // A fresh run's configuration is checked before its folder is made: a bad flag leaves nothing behind.
            Config config;
            if (!f->resume) {
              config = vqvae_preset(resolve_preset(f->preset, data_given));
              apply_flags(config);
              config.validate();
            }
            const auto run = open_training_run(f->out, VQVAEKind::name, f->resume);
            if (run.resumed) {
              config = run.resumed->config_as<Config>();
              apply_flags(config);
            }
            const auto result = train_vqvae(config, run, training_settings(common));
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
  auto* app = top.add_subcommand("extract-codes",
                                 "Encode the VQ-VAE's training and held-out images (or audio clips) into code stores");
  auto config = std::make_shared<ExtractConfig>();
  app->add_option("--checkpoint", config->checkpoint, "VQ-VAE run folder or .ckpt file")->required();
  app->add_option("--out", config->out, "folder for train.vq2 and val.vq2 (default: <VQ-VAE run>/codes)");
  app->add_option("--batch-size", config->batch_size, "images per batch")->capture_default_str();
  app->add_option("--augment", config->augment,
                  "extra copies of every training image, each slightly rotated, scaled and shifted, whose codes "
                  "follow the images' own in train.vq2: more code maps for the priors (held-out codes are never "
                  "augmented; images only)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app->add_option("--augment-rotation", config->jitter.max_rotation, "with --augment: largest rotation, degrees either way")
      ->capture_default_str();
  app->add_option("--augment-scale", config->jitter.max_scale, "with --augment: largest zoom in or out, as a fraction")
      ->capture_default_str();
  app->add_option("--augment-shift", config->jitter.max_shift, "with --augment: largest shift, pixels on each axis")
      ->capture_default_str();
  app->add_option("--seed", config->seed, "with --augment: seed of the jitter's draws")->capture_default_str();
  add_common(app, common);
  return {app, [config, &common] {
            const auto audio = vqvae_modality(config->checkpoint) == Modality::kAudio;
            const auto result = extract_codes(*config, common.settings());
            std::cout << fmt::format("codes of {} training and {} held-out {}: {}, {}\n", result.train_count,
                                     result.validation_count, audio ? "clips" : "images", result.train_path,
                                     result.validation_path);
            return 0;
          }};
}

}  // namespace vqvae2::cli
