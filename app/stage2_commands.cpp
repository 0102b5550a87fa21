// The stage-2 commands: train-prior and sample.
#include "cli.h"
#include "flags.h"

#include "vqvae2/stages/generate.h"
#include "vqvae2/stages/presets.h"
#include "vqvae2/stages/train_prior.h"
#include "vqvae2/stages/train_wavenet.h"

#include <cmath>
#include <filesystem>
#include <iostream>
#include <memory>

namespace vqvae2::cli {
namespace {

using PriorConfig = TrainPriorConfig;
using WaveNetConfig = TrainWaveNetConfig;

// The fields a WaveNet configuration shares with a PixelCNN one (the stack's width, the kernel, the
// conditioning width, the schedule), copied into a PixelCNN configuration and back: the flags of
// those fields fill either.
PriorConfig shared_view(const WaveNetConfig& wavenet) {
  PriorConfig c;
  c.model.stack.channels = wavenet.model.channels;
  c.model.stack.kernel = wavenet.model.kernel;
  c.model.condition.channels = wavenet.model.condition_channels;
  c.train = wavenet.train;
  return c;
}
void copy_shared(const PriorConfig& c, WaveNetConfig& wavenet) {
  wavenet.model.channels = c.model.stack.channels;
  wavenet.model.kernel = c.model.stack.kernel;
  wavenet.model.condition_channels = c.model.condition.channels;
  wavenet.train = c.train;
}

// train-prior's flags: those of fields both prior kinds have, the PixelCNN-only and the WaveNet-only ones.
struct PriorFlags {
  PresetFlags<PriorConfig> shared, pixelcnn;
  PresetFlags<WaveNetConfig> wavenet;
};

void add_prior_flags(CLI::App* app, PriorFlags& flags) {
  using P = PriorConfig;
  using W = WaveNetConfig;
  auto& shared = flags.shared;
  auto& pixelcnn = flags.pixelcnn;
  auto& wavenet = flags.wavenet;
  shared.add<int64_t>(app, "--channels", "width C of the causal stack (WaveNet: residual channels R)",
                      [](P& c) -> int64_t& { return c.model.stack.channels; });
  pixelcnn.add<int64_t>(app, "--res-channels", "width inside each gated unit",
                        [](P& c) -> int64_t& { return c.model.stack.res_channels; });
  shared.add<int64_t>(app, "--kernel",
                      "kernel size k (odd): vertical (k/2+1)xk, horizontal 1x(k/2+1) (WaveNet: taps of each dilated "
                      "convolution)",
                      [](P& c) -> int64_t& { return c.model.stack.kernel; });
  pixelcnn.add<int64_t>(app, "--blocks", "groups of gated layers (attention closes each group in the top prior)",
                        [](P& c) -> int64_t& { return c.model.stack.blocks; });
  pixelcnn.add<int64_t>(app, "--res-blocks", "gated layers per group",
                        [](P& c) -> int64_t& { return c.model.stack.res_blocks; });
  pixelcnn.add<bool>(app, "--attention", "causal self-attention after each group (default: on for the top prior only)",
                     [](P& c) -> bool& { return c.model.stack.attention; });
  pixelcnn.add<int64_t>(app, "--heads", "attention heads", [](P& c) -> int64_t& { return c.model.stack.heads; });
  pixelcnn.add<double>(app, "--dropout", "dropout in every gated unit and on attention weights",
                       [](P& c) -> double& { return c.model.stack.dropout; });
  pixelcnn.add<int64_t>(app, "--out-res-blocks", "1x1 gated units before the logits",
                        [](P& c) -> int64_t& { return c.model.stack.out_res_blocks; });
  pixelcnn
      .add<std::string>(app, "--block",
                        "gated layer of the causal stack: gated-two-stream (PixelCNN's vertical and horizontal "
                        "stacks) or pixelsnail (one stream of causal convolutions, PixelSNAIL's residual block)",
                        [](P& c) -> std::string& { return c.model.stack.block; })
      ->check(CLI::IsMember({"gated-two-stream", "pixelsnail"}));
  pixelcnn.add<int64_t>(app, "--attention-every",
                        "gated layers before each attention block (0 = --res-blocks: one closes each group)",
                        [](P& c) -> int64_t& { return c.model.stack.attention_every; });
  pixelcnn.add<bool>(
      app, "--weight-norm", "weight normalisation w = g*v/|v| in every layer of the prior (stack and conditioning)",
      [](const P& c) { return c.model.stack.weight_norm; },
      [](P& c, const bool& on) { c.model.stack.weight_norm = c.model.condition.weight_norm = on; });
  shared.add<int64_t>(app, "--condition-channels", "width of the conditioning stack (lower levels)",
                      [](P& c) -> int64_t& { return c.model.condition.channels; });
  pixelcnn.add<int64_t>(app, "--condition-res-blocks", "residual blocks of the conditioning stack (lower levels)",
                        [](P& c) -> int64_t& { return c.model.condition.res_blocks; });
  pixelcnn
      .add<std::string>(app, "--condition-upsample",
                        "how a feature of the level above reaches its s*s children (lower levels): nearest "
                        "(repeated, all children alike) or transposed (learned, each child its own weights)",
                        [](P& c) -> std::string& { return c.model.condition.upsample; })
      ->check(CLI::IsMember({"nearest", "transposed"}));
  pixelcnn.add<double>(app, "--condition-dropout",
                       "lower levels: the share of training maps whose condition is withheld, so that the prior also "
                       "learns its codes without it, as sample --guidance needs (0 = off)",
                       [](P& c) -> double& { return c.model.condition_dropout; });
  pixelcnn.add<bool>(app, "--condition-position",
                     "add learned features of each position's row, column and place under its parent (lower levels)",
                     [](P& c) -> bool& { return c.model.condition.position; });
  wavenet.add<int64_t>(app, "--gate-channels", "WaveNet: gate channels G of each layer",
                       [](W& c) -> int64_t& { return c.model.gate_channels; });
  wavenet.add<int64_t>(app, "--skip-channels", "WaveNet: skip channels S", [](W& c) -> int64_t& { return c.model.skip_channels; });
  wavenet.add<int64_t>(app, "--layers-per-cycle", "WaveNet: layers of one dilation cycle (dilations 1, 2, ..., 2^(n-1))",
                       [](W& c) -> int64_t& { return c.model.layers_per_cycle; });
  wavenet.add<int64_t>(app, "--cycles", "WaveNet: repetitions of the dilation cycle",
                       [](W& c) -> int64_t& { return c.model.cycles; });
  wavenet.add<int64_t>(app, "--condition-blocks", "WaveNet: residual blocks over the level above's codes",
                       [](W& c) -> int64_t& { return c.model.condition_blocks; });
  add_schedule_flags(app, shared, "code maps (audio: code sequences)");
  add_precision_flag(app, pixelcnn);
}

std::vector<std::pair<std::string, PriorConfig>> prior_presets() {
  std::vector<std::pair<std::string, PriorConfig>> presets;
  // --help shows what each size gives the top prior and the lower levels (whose conditioning flags the
  // top shows too: it ignores them).
  for (const auto size : {PriorSize::kSmall, PriorSize::kReference}) {
    const std::string name = size == PriorSize::kSmall ? "small" : "reference";
    PriorConfig lower;
    lower.model = conditional_prior_options(0, 16, 16, 512, 512, 2, size);  // widths do not depend on the map
    lower.train = prior_schedule(size, /*conditional=*/true);
    auto top = lower;
    top.model.stack = top_prior_options(1, 8, 8, 512, size).stack;
    top.train = prior_schedule(size, /*conditional=*/false);
    presets.emplace_back(name + " top", top);
    presets.emplace_back(name + " lower", lower);
  }
  return presets;
}

std::vector<std::pair<std::string, WaveNetConfig>> wavenet_presets() {
  std::vector<std::pair<std::string, WaveNetConfig>> presets;
  for (const auto size : {PriorSize::kSmall, PriorSize::kReference}) {
    WaveNetConfig c;
    c.model = conditional_wavenet_options(0, 1024, 512, 512, 4, wavenet_size(size));  // widths do not depend on T
    c.train = wavenet_schedule(size);
    presets.emplace_back(size == PriorSize::kSmall ? "small" : "reference", c);
  }
  return presets;
}

// The shared flags show both kinds' sizes: the PixelCNN ones, then the WaveNet ones as "wavenet <size>".
std::vector<std::pair<std::string, PriorConfig>> all_prior_presets() {
  auto presets = prior_presets();
  for (const auto& [name, wavenet] : wavenet_presets()) presets.emplace_back("wavenet " + name, shared_view(wavenet));
  return presets;
}

struct TrainPriorFlags {
  std::string codes, level = "top", size = "reference", out;
  bool resume = false;
  PriorFlags config{PresetFlags<PriorConfig>(all_prior_presets()), PresetFlags<PriorConfig>(prior_presets()),
                    PresetFlags<WaveNetConfig>(wavenet_presets())};
};

// train-prior on the codes of an audio VQ-VAE: a WaveNet, configured from its codes (or its
// checkpoint, resumed), with the shared and the WaveNet flags over it.
int run_train_wavenet(const TrainPriorFlags& f, PriorCodes codes, const Common& common) {
  require_single_process("train-prior of a WaveNet (audio codes)");
  const auto pixelcnn_only = f.config.pixelcnn.given();
  VQVAE2_CHECK(pixelcnn_only.empty(), "{} {} for the image priors, not a WaveNet (audio codes)",
               fmt::join(pixelcnn_only, ", "), pixelcnn_only.size() == 1 ? "is" : "are");
  WaveNetConfig config;
  auto out = f.out;
  if (!f.resume) {
    const auto level = parse_level(f.level, static_cast<int64_t>(codes.train.levels.size()));
    config = wavenet_config_for(codes, level, parse_prior_size(f.size));
    if (out.empty()) out = fmt::format("runs/prior-level{}", level);
  }
  const auto apply_flags = [&](WaveNetConfig& config) {
    auto view = shared_view(config);
    f.config.shared.apply(view);
    copy_shared(view, config);
    f.config.wavenet.apply(config);
  };
  // A fresh run's configuration is checked before its folder is made: a bad flag leaves nothing behind.
  if (!f.resume) {
    apply_flags(config);
    config.validate();
  }
  const auto run = open_training_run(out, WaveNetKind::name, f.resume);
  if (run.resumed) {
    config = run.resumed->config_as<WaveNetConfig>();
    codes = read_prior_codes(config.codes);
    apply_flags(config);
  }
  const auto result = train_wavenet(config, codes, run, common.settings());
  std::cout << fmt::format(
      "{} after {} steps: held-out NLL {:.3f} bits per code ({:.4f} bits per audio sample); uniform would be {:.3f}\n",
      result.interrupted ? "stopped" : "trained", result.steps, result.final_bits_per_code, result.final_bits_per_dim,
      std::log2(static_cast<double>(config.model.codes)));
  std::cout << fmt::format("run folder: {} (checkpoint {}, metrics.jsonl)\n", out, result.checkpoint);
  return result.interrupted ? kInterruptedExit : 0;
}

}  // namespace

Command add_train_prior(CLI::App& top, Common& common) {
  auto* app = top.add_subcommand("train-prior", "Stage 2: train the prior of one level on extracted codes");
  auto f = std::make_shared<TrainPriorFlags>();
  app->add_option("--codes", f->codes, "folder holding train.vq2 and val.vq2 (extract-codes)");
  app->add_option("--level", f->level,
                  "which level: top (PixelSNAIL), bottom (conditioned on the level above) or a number; audio codes "
                  "get WaveNets")
      ->capture_default_str();
  app->add_option("--size", f->size, "widths: reference (the paper's) or small (CPU-friendly)")
      ->capture_default_str()
      ->check(CLI::IsMember({"small", "reference"}));
  app->add_option("--out", f->out, "run folder (default: runs/prior-level<N>)");
  app->add_flag("--resume", f->resume, "continue the run in --out from its checkpoint");
  add_prior_flags(app, f->config);
  add_common(app, common);
  add_distributed_flags(app, common);
  return {app, [f, &common] {
            install_stop_handlers();
            const auto settings = training_settings(common);
            // A fresh run is configured from its codes; a resumed one from its checkpoint.
            PriorConfig config;
            PriorCodes codes;
            auto out = f->out;
            if (f->resume) {
              VQVAE2_CHECK(!out.empty(), "--resume needs the --out of the run to continue");
              if (std::filesystem::exists(std::filesystem::path(out) / (std::string(WaveNetKind::name) + ".ckpt"))) {
                return run_train_wavenet(*f, codes, common);
              }
            } else {
              codes = read_prior_codes(f->codes);
              if (is_audio_codes(codes.train)) return run_train_wavenet(*f, codes, common);
              const auto level = parse_level(f->level, static_cast<int64_t>(codes.train.levels.size()));
              config = prior_config_for(codes, level, parse_prior_size(f->size));
              if (out.empty()) out = fmt::format("runs/prior-level{}", level);
            }
            const auto wavenet_only = f->config.wavenet.given();
            VQVAE2_CHECK(wavenet_only.empty(), "{} {} for WaveNet priors (audio codes), not the image priors",
                         fmt::join(wavenet_only, ", "), wavenet_only.size() == 1 ? "is" : "are");
            const auto apply_flags = [&](PriorConfig& config) {
              f->config.shared.apply(config);
              f->config.pixelcnn.apply(config);
            };
            // A fresh run's configuration is checked before its folder is made: a bad flag leaves nothing behind.
            if (!f->resume) {
              apply_flags(config);
              config.validate();
            }
            const auto run = open_training_run(out, PriorKind::name, f->resume);
            if (run.resumed) {
              config = run.resumed->config_as<PriorConfig>();
              codes = read_prior_codes(config.codes);
              apply_flags(config);
            }
            const auto result = train_prior(config, codes, run, settings);
            std::cout << fmt::format(
                "{} after {} steps: held-out NLL {:.3f} bits per code ({:.4f} bits per image dimension); uniform "
                "would be {:.3f}\n",
                result.interrupted ? "stopped" : "trained", result.steps, result.final_bits_per_code,
                result.final_bits_per_dim, std::log2(static_cast<double>(config.model.stack.codes)));
            std::cout << fmt::format("run folder: {} (checkpoint {}, metrics.jsonl)\n", out, result.checkpoint);
            return result.interrupted ? kInterruptedExit : 0;
          }};
}

Command add_sample(CLI::App& top, Common& common) {
  auto* app = top.add_subcommand(
      "sample", "Ancestral sampling: top codes, then each level below, then decode (or a VAE's z ~ N(0, I), decoded)");
  auto config = std::make_shared<SampleConfig>();
  auto length = std::make_shared<int64_t>(0);
  app->add_option("--vqvae", config->vqvae, "VQ-VAE run folder or .ckpt file, image or audio (with --priors)");
  app->add_option("--priors", config->priors, "prior run folders or .ckpt files, one per level, any order")
      ->delimiter(',');
  app->add_option("--vae", config->vae,
                  "instead of --vqvae and --priors: a Gaussian VAE run folder (train-vae) or .ckpt file");
  app->add_option("--count", config->count, "images (audio: clips) to sample")->capture_default_str();
  app->add_option("--batch-size", config->batch_size, "images (audio: clips) sampled together")->capture_default_str();
  // One temperature and top-k for every level; top-p for every level, or the top's and the lower levels'.
  auto sampling = std::make_shared<SamplingOptions>();
  auto top_p = std::make_shared<std::vector<double>>();
  app->add_option("--temperature", sampling->temperature, "divides the logits; 0 = most likely code")
      ->capture_default_str();
  app->add_option("--top-k", sampling->top_k, "keep the k most likely codes (0 = all)")->capture_default_str();
  app->add_option("--top-p", *top_p,
                  fmt::format("keep the most likely codes up to this probability: one value for every level, or "
                              "two, the top prior's and the lower levels' (1 = the exact model) [default: {},{}; "
                              "audio {}]",
                              config->sampling.top.top_p, config->sampling.lower.top_p,
                              AudioSampleConfig().sampling.top_p))
      ->delimiter(',')
      ->expected(1, 2);
  app->add_option("--exact-first", config->sampling.top.exact_first,
                  "images: the top map's first codes (raster order) drawn from the exact model, with no temperature, "
                  "top-k or top-p; they decide most of what is drawn, and truncating them makes the commonest shapes "
                  "commoner")
      ->capture_default_str();
  app->add_option("--candidates", config->sampling.candidates,
                  "images: draws of the levels below the top per top map; each is decoded and encoded again, and the "
                  "one that gives back most of its own codes is kept (1 = plain ancestral sampling; costs about this "
                  "many times the lower levels' sampling time)")
      ->capture_default_str();
  app->add_option("--guidance", config->sampling.lower.guidance,
                  "images: classifier-free guidance w of the levels below the top: codes from p(x|c)^(1+w) / p(x)^w, "
                  "favouring what the level above asks for over what is common anyway (0 = the conditional model; "
                  "priors trained with --condition-dropout only: without the flag, priors trained without it are "
                  "sampled unguided; costs about twice the lower levels' sampling time)")
      ->capture_default_str();
  app->add_option("--seed", config->seed, "same seed, same samples")->capture_default_str();
  app->add_flag("--naive", config->naive, "use the reference sampler (a full forward pass per code; slow, for comparison)");
  app->add_flag("--score-digits", config->score_digits,
                "score the samples as digits: the classifier score exp(E KL(p(y|x) || p(y))) of a small digit "
                "classifier (10 at best; real held-out digits: 9.5) and the share it is >= 90% sure of; models of "
                "grey 32x32 images (the mnist preset) only");
  app->add_option("--digit-classifier", config->digit_classifier,
                  "with --score-digits: the classifier's cache file, trained there once (seconds) when missing "
                  "(default " + default_digit_classifier_path() + ")");
  app->add_option("--length", *length,
                  "audio: samples per clip (a multiple of the VQ-VAE's total stride; 0 = its training clip length)")
      ->capture_default_str();
  app->add_option("--out", config->out, "PNG grid to write (audio: folder for sample-<i>.wav and spectrograms.png, "
                                        "default samples)")
      ->capture_default_str();
  app->add_option("--codes-out", config->codes_out, "also write the sampled codes as a code store");
  auto precision = std::make_shared<std::string>("fp32");
  app->add_option("--precision", *precision,
                  "number format of the priors' and decoder's forward passes: fp32, bf16 (CPU or CUDA) or fp16 (CUDA); "
                  "the quantizer and the stored weights stay fp32")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "bf16", "fp16"}));
  add_common(app, common);
  return {app, [config, length, precision, sampling, top_p, app, &common] {
            config->precision = parse_precision(*precision);
            for (auto* level : {&config->sampling.top, &config->sampling.lower}) {
              level->temperature = sampling->temperature;
              level->top_k = sampling->top_k;
            }
            if (!top_p->empty()) {
              config->sampling.top.top_p = top_p->front();
              config->sampling.lower.top_p = top_p->back();
            }
            if (!config->vqvae.empty() && vqvae_modality(config->vqvae) == Modality::kAudio) {
              VQVAE2_CHECK(config->precision == Precision::kFP32, "--precision is for images; audio samples in fp32");
              AudioSampleConfig audio;
              audio.vqvae = config->vqvae;
              audio.priors = config->priors;
              audio.count = config->count;
              audio.batch_size = config->batch_size;
              audio.samples = *length;
              VQVAE2_CHECK(top_p->size() <= 1, "audio takes one --top-p for every level");
              for (const auto* flag : {"--candidates", "--exact-first", "--guidance"}) {
                VQVAE2_CHECK(app->get_option(flag)->count() == 0, "{} is for images, not audio", flag);
              }
              audio.sampling = *sampling;
              audio.sampling.top_p = top_p->empty() ? AudioSampleConfig().sampling.top_p : top_p->front();
              audio.seed = config->seed;
              audio.naive = config->naive;
              if (app->get_option("--out")->count() > 0) audio.out = config->out;
              audio.codes_out = config->codes_out;
              VQVAE2_CHECK(!config->score_digits, "--score-digits is for images of digits, not audio");
              const auto result = sample_audio(audio, common.settings());
              std::cout << fmt::format(
                  "{} clips of {:.3f} s in {:.1f} s: {:.2f} s per second of audio ({} sampler): {} (sample-NN.wav, "
                  "spectrograms.png)\n",
                  audio.count, result.audio_seconds / audio.count, result.seconds, result.seconds / result.audio_seconds,
                  audio.naive ? "naive" : "cached", audio.out);
              return 0;
            }
            VQVAE2_CHECK(app->get_option("--length")->count() == 0, "--length is for audio, not images");
            config->guide_only_where_trained = app->get_option("--guidance")->count() == 0;
            const auto result = sample_images(*config, common.settings());
            std::cout << fmt::format("{} samples in {:.1f} s ({:.2f} s per image, {}): {}\n", config->count,
                                     result.seconds, result.seconds / config->count,
                                     !config->vae.empty() ? "VAE decoder" : config->naive ? "naive sampler" : "cached sampler",
                                     config->out);
            if (result.digit_score) std::cout << digit_score_line(*result.digit_score) << "\n";
            return 0;
          }};
}

}  // namespace vqvae2::cli
