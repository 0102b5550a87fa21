#include "vqvae2/stages/pipeline.h"

#include "vqvae2/core/error.h"
#include "vqvae2/stages/presets.h"
#include "vqvae2/training/distributed.h"

#include <algorithm>
#include <filesystem>
#include <functional>
#include <tuple>

namespace vqvae2 {

namespace fs = std::filesystem;

namespace {

// Opens a stage's run folder: resumed when the pipeline resumes and the stage has a checkpoint.
TrainingRun stage_run(const std::string& dir, const std::string& kind, bool resume) {
  return open_training_run(dir, kind, resume && fs::exists(fs::path(dir) / (kind + ".ckpt")));
}

void headline(const RunSettings& settings, const std::string& text) {
  if (settings.log) *settings.log << "== " << text << " ==\n";
}

}  // namespace

PipelineResult run_pipeline(const PipelineConfig& config, const RunSettings& settings) {
  const fs::path root(config.out);
  VQVAE2_CHECK(config.resume || !fs::exists(root / "vqvae" / "vqvae.ckpt"),
               "'{}' already holds a pipeline run; resume it or choose another folder", config.out);
  PipelineResult result;

  // 1. The VQ-VAE.
  const auto preset = resolve_preset(config.preset, !config.data.empty());
  auto vqvae = vqvae_preset(preset);
  vqvae.data.folder = config.data;
  vqvae.data.limit = config.limit;
  vqvae.train.seed = config.seed;
  if (config.vqvae_epochs > 0) vqvae.train.epochs = config.vqvae_epochs;
  vqvae.train.steps = config.vqvae_steps;
  const auto vqvae_dir = (root / "vqvae").string();
  headline(settings, fmt::format("1/4 train the VQ-VAE (preset {})", preset));
  result.vqvae = train_vqvae(vqvae, stage_run(vqvae_dir, VQVAEKind::name, config.resume), settings);
  if ((result.interrupted = result.vqvae.interrupted)) return result;

  // 2. Its codes.
  headline(settings, "2/4 extract codes");
  const auto codes_dir = (root / "codes").string();
  // Several processes: rank 0 extracts, the others wait for it (and then read the same codes).
  const auto on_main = [&](const std::function<void()>& work) { settings.group ? settings.group->on_main(work) : work(); };
  on_main([&] { result.codes = extract_codes({vqvae_dir, codes_dir, 64}, settings); });
  const auto codes = read_prior_codes(codes_dir);

  // 3. One prior per level, top first.
  const auto size = config.prior_size == "auto" ? prior_size_for_preset(preset) : parse_prior_size(config.prior_size);
  const auto levels = vqvae.model.levels();
  std::vector<std::string> prior_dirs;
  for (int64_t level = levels - 1; level >= 0; --level) {
    auto prior = prior_config_for(codes, level, size);
    if (level == levels - 1) prior.model.stack.attention = top_prior_attention_for_preset(preset);
    prior.train.seed = config.seed;
    if (config.prior_epochs > 0) prior.train.epochs = config.prior_epochs;
    prior.train.steps = config.prior_steps;
    const auto dir = (root / fmt::format("prior-level{}", level)).string();
    prior_dirs.push_back(dir);
    headline(settings, fmt::format("3/4 train the priors: level {} ({} of {}; {})", level, levels - level, levels,
                                   level < levels - 1           ? "conditional"
                                   : prior.model.stack.attention ? "top, PixelSNAIL"
                                                                 : "top, gated PixelCNN"));
    result.priors.push_back(train_prior(prior, codes, stage_run(dir, PriorKind::name, config.resume), settings));
    if ((result.interrupted = result.priors.back().interrupted)) return result;
  }

  // 4. Samples.
  headline(settings, "4/4 sample");
  SampleConfig sampling;
  sampling.vqvae = vqvae_dir;
  sampling.priors = prior_dirs;
  sampling.count = config.samples;
  sampling.seed = config.seed;
  sampling.out = result.samples_path = (root / "samples.png").string();
  const auto format = vqvae.model.format();
  sampling.score_digits = config.score_digits && config.data.empty() && format.channels == 1 && format.size == 32;
  sampling.digit_classifier = config.digit_classifier;
  on_main([&] { result.samples = sample_images(sampling, settings); });
  return result;
}

LineageResult run_lineage(const LineageConfig& config, const RunSettings& settings) {
  const fs::path root(config.out);
  VQVAE2_CHECK(config.resume || !fs::exists(root / "vae" / "vae.ckpt"),
               "'{}' already holds a lineage run; resume it or choose another folder", config.out);
  LineageResult result;

  // The Gaussian VAE: the mnist preset's widths, data and schedule (vae_preset), so its budget is the
  // VQ-VAEs'.
  auto vae = vae_preset("mnist");
  vae.data.folder = config.data;
  vae.data.limit = config.limit;
  vae.train.seed = config.seed;
  if (config.autoencoder_epochs > 0) vae.train.epochs = config.autoencoder_epochs;
  vae.train.steps = config.autoencoder_steps;
  headline(settings, "lineage 1/4: the Gaussian VAE");
  result.vae = train_vae(vae, stage_run((root / "vae").string(), VAEKind::name, config.resume), settings);
  if ((result.interrupted = result.vae.interrupted)) return result;

  // VQ-VAE-1 and VQ-VAE-2, each a whole pipeline with the same schedules.
  PipelineConfig pipeline;
  pipeline.data = config.data;
  pipeline.limit = config.limit;
  pipeline.prior_size = "small";
  pipeline.vqvae_epochs = config.autoencoder_epochs;
  pipeline.prior_epochs = config.prior_epochs;
  pipeline.vqvae_steps = config.autoencoder_steps;
  pipeline.prior_steps = config.prior_steps;
  pipeline.samples = std::max<int64_t>(1, config.samples);
  pipeline.seed = config.seed;
  pipeline.score_digits = false;  // the comparison scores more samples of each
  for (const auto& [name, preset, folder, out, number] :
       {std::tuple{"VQ-VAE-1", "vqvae1", "vqvae1", &result.vqvae1, 2},
        std::tuple{"VQ-VAE-2", "mnist", "vqvae2", &result.vqvae2, 3}}) {
    headline(settings, fmt::format("lineage {}/4: {} (pipeline preset {})", number, name, preset));
    pipeline.preset = preset;
    pipeline.out = (root / folder).string();
    pipeline.resume = config.resume && fs::exists(fs::path(pipeline.out) / "vqvae" / "vqvae.ckpt");
    *out = run_pipeline(pipeline, settings);
    if ((result.interrupted = out->interrupted)) return result;
  }

  headline(settings, "lineage 4/4: compare");
  CompareConfig compare;
  compare.runs = {"VAE=" + (root / "vae").string(), "VQ-VAE-1=" + (root / "vqvae1").string(),
                  "VQ-VAE-2=" + (root / "vqvae2").string()};
  compare.images = config.compare_images;
  compare.samples = config.samples;
  compare.seed = config.seed;
  compare.out = (root / "compare").string();
  if (config.data.empty()) compare.digit_samples = config.digit_samples;
  if (compare.digit_samples > 0) compare.digit_classifier = config.digit_classifier;
  result.comparison = compare_runs(compare, settings);
  return result;
}

Modality pipeline_modality(const PipelineConfig& config) {
  if (config.modality != "auto") return parse_modality(config.modality);
  return detect_modality(config.data);
}

AudioPipelineResult run_audio_pipeline(const PipelineConfig& config, const RunSettings& settings) {
  const fs::path root(config.out);
  VQVAE2_CHECK(!config.data.empty(), "the audio pipeline needs --data: a folder of audio files (for example the one "
                                     "scripts/make-speech-corpus.sh writes)");
  VQVAE2_CHECK(config.resume || !fs::exists(root / "vqvae" / "audio-vqvae.ckpt"),
               "'{}' already holds a pipeline run; resume it or choose another folder", config.out);
  AudioPipelineResult result;

  // 1. The audio VQ-VAE.
  const auto preset = resolve_audio_preset(config.preset);
  auto vqvae = audio_vqvae_preset(preset);
  vqvae.data.folder = config.data;
  vqvae.data.limit = config.limit;
  vqvae.train.seed = config.seed;
  if (config.vqvae_epochs > 0) vqvae.train.epochs = config.vqvae_epochs;
  vqvae.train.steps = config.vqvae_steps;
  const auto vqvae_dir = (root / "vqvae").string();
  headline(settings, fmt::format("1/4 train the audio VQ-VAE (preset {})", preset));
  result.vqvae = train_audio_vqvae(vqvae, stage_run(vqvae_dir, AudioVQVAEKind::name, config.resume), settings);
  if ((result.interrupted = result.vqvae.interrupted)) return result;

  // 2. Its codes.
  headline(settings, "2/4 extract codes");
  const auto codes_dir = (root / "codes").string();
  result.codes = extract_audio_codes({vqvae_dir, codes_dir, 64}, settings);
  const auto codes = read_prior_codes(codes_dir);

  // 3. One WaveNet per level, top first.
  const auto size = config.prior_size == "auto" ? (preset == "speech" ? PriorSize::kSmall : PriorSize::kReference)
                                                : parse_prior_size(config.prior_size);
  const auto levels = vqvae.model.levels();
  std::vector<std::string> prior_dirs;
  for (int64_t level = levels - 1; level >= 0; --level) {
    auto prior = wavenet_config_for(codes, level, size);
    prior.train.seed = config.seed;
    if (config.prior_epochs > 0) prior.train.epochs = config.prior_epochs;
    prior.train.steps = config.prior_steps;
    const auto dir = (root / fmt::format("prior-level{}", level)).string();
    prior_dirs.push_back(dir);
    headline(settings, fmt::format("3/4 train the WaveNet priors: level {} ({} of {}; {})", level, levels - level,
                                   levels, level == levels - 1 ? "top" : "conditioned on the level above"));
    result.priors.push_back(train_wavenet(prior, codes, stage_run(dir, WaveNetKind::name, config.resume), settings));
    if ((result.interrupted = result.priors.back().interrupted)) return result;
  }

  // 4. Samples.
  headline(settings, "4/4 sample");
  AudioSampleConfig sampling;
  sampling.vqvae = vqvae_dir;
  sampling.priors = prior_dirs;
  sampling.count = config.samples;
  sampling.batch_size = config.samples;
  sampling.seed = config.seed;
  sampling.out = (root / "samples").string();
  result.samples = sample_audio(sampling, settings);
  return result;
}

}  // namespace vqvae2
