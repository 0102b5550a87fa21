#include "vqvae2/stages/pipeline.h"

#include "vqvae2/core/error.h"
#include "vqvae2/stages/presets.h"

#include <filesystem>

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
  result.codes = extract_codes({vqvae_dir, codes_dir, 64}, settings);
  const auto codes = read_prior_codes(codes_dir);

  // 3. One prior per level, top first.
  const auto size = config.prior_size == "auto" ? prior_size_for_preset(preset) : parse_prior_size(config.prior_size);
  const auto levels = vqvae.model.levels();
  std::vector<std::string> prior_dirs;
  for (int64_t level = levels - 1; level >= 0; --level) {
    auto prior = prior_config_for(codes, level, size);
    prior.train.seed = config.seed;
    if (config.prior_epochs > 0) prior.train.epochs = config.prior_epochs;
    prior.train.steps = config.prior_steps;
    const auto dir = (root / fmt::format("prior-level{}", level)).string();
    prior_dirs.push_back(dir);
    headline(settings, fmt::format("3/4 train the priors: level {} ({} of {}; {})", level, levels - level, levels,
                                   level == levels - 1 ? "top, PixelSNAIL" : "conditional"));
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
  result.samples = sample_images(sampling, settings);
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
