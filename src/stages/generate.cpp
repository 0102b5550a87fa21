#include "vqvae2/stages/generate.h"

#include "vqvae2/core/device.h"
#include "vqvae2/core/error.h"
#include "vqvae2/core/progress.h"
#include "vqvae2/data/audio.h"
#include "vqvae2/data/code_store.h"
#include "vqvae2/data/image.h"
#include "vqvae2/stages/codes.h"

#include <chrono>
#include <filesystem>

namespace vqvae2 {

void SampleConfig::validate() const {
  VQVAE2_CHECK(count >= 1, "the number of samples must be positive, got {}", count);
  VQVAE2_CHECK(batch_size >= 1, "the sampling batch size must be positive, got {}", batch_size);
  VQVAE2_CHECK(vqvae.empty() || vae.empty(), "give --vqvae (with --priors) or --vae, not both");
  VQVAE2_CHECK(!vqvae.empty() || !vae.empty(), "nothing to sample from: give --vqvae with --priors, or --vae");
  VQVAE2_CHECK(vae.empty() || priors.empty(), "--priors go with --vqvae; a VAE decodes z drawn from N(0, I)");
  VQVAE2_CHECK(vae.empty() || codes_out.empty(), "--codes-out needs a VQ-VAE: a VAE has no codes");
  VQVAE2_CHECK(!vqvae.empty() == !priors.empty() || !vae.empty(),
               "--vqvae needs --priors: one prior run folder per level");
  VQVAE2_CHECK(score_digits || digit_classifier.empty(), "--digit-classifier goes with --score-digits");
  sampling.validate();
}

namespace {

// With config.score_digits: the samples scored by the digit classifier (trained once into its cache).
void score_if_asked(const SampleConfig& config, const RunSettings& settings, SampleResult& result) {
  if (!config.score_digits) return;
  auto classifier = cached_digit_classifier(
      config.digit_classifier.empty() ? default_digit_classifier_path() : config.digit_classifier, {}, settings.log);
  result.digit_score = score_digit_samples(result.images, classifier);
}

// A Gaussian VAE's samples: batch b decodes z drawn from seed + (its first index).
SampleResult sample_vae(const SampleConfig& config, const RunSettings& settings) {
  const auto device = parse_device(settings.device);
  auto vae = load<VAEKind>(config.vae, device);
  const AutocastGuard autocast(config.precision, device);
  SampleResult result;
  std::vector<torch::Tensor> images;
  if (config.score_digits) {
    check_digit_images(vae.config.model.channels, vae.config.model.image_size,
                       fmt::format("the samples of '{}'", config.vae));
  }
  const auto start = std::chrono::steady_clock::now();
  for (int64_t begin = 0; begin < config.count; begin += config.batch_size) {
    const auto batch = std::min(config.batch_size, config.count - begin);
    images.push_back(to_pixels(vae.model->sample(batch, config.seed + begin).to(torch::kFloat)).to(torch::kCPU));
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.images = torch::cat(images);
  save_png(config.out, make_grid(result.images, std::min<int64_t>(8, config.count)));
  score_if_asked(config, settings, result);
  return result;
}

}  // namespace

std::vector<Prior> priors_by_level(const std::vector<TrainedPrior>& priors, const std::vector<std::string>& paths,
                                   int64_t levels) {
  std::vector<Prior> by_level(levels, Prior(nullptr));
  for (size_t i = 0; i < priors.size(); ++i) {
    const auto level = priors[i].config.model.level;
    VQVAE2_CHECK(level < levels, "'{}' is a prior for level {}, but the VQ-VAE has {} levels", paths[i], level, levels);
    VQVAE2_CHECK(!by_level[level], "two priors given for level {}", level);
    by_level[level] = priors[i].model;
  }
  for (int64_t l = 0; l < levels; ++l) {
    VQVAE2_CHECK(by_level[l], "no prior given for level {} ({}); give one prior run folder per level", l,
                 l == levels - 1 ? "top" : (l == 0 ? "bottom" : "middle"));
  }
  return by_level;
}

int64_t first_unguidable_level(const std::vector<Prior>& priors) {
  for (size_t l = 0; l + 1 < priors.size(); ++l) {
    if (priors[l]->options().condition_dropout == 0) return static_cast<int64_t>(l);
  }
  return -1;
}

SampleResult sample_images(const SampleConfig& config, const RunSettings& settings) {
  config.validate();
  if (!config.vae.empty()) return sample_vae(config, settings);
  const auto device = parse_device(settings.device);
  check_precision(config.precision, device);
  auto vqvae = load<VQVAEKind>(config.vqvae, device);
  const auto levels = vqvae.config.model.levels();
  std::vector<TrainedPrior> loaded;
  for (const auto& path : config.priors) loaded.push_back(load<PriorKind>(path, device));
  auto priors = priors_by_level(loaded, config.priors, levels);
  if (config.score_digits) {
    const auto format = vqvae.config.model.format();
    check_digit_images(format.channels, format.size, fmt::format("the samples of '{}'", config.vqvae));
  }
  auto sampling = config.sampling;
  const auto unguidable = first_unguidable_level(priors);
  if (sampling.lower.guidance > 0 && config.guide_only_where_trained && unguidable >= 0) {
    sampling.lower.guidance = 0;  // the samplers would refuse it
    if (settings.log)
      *settings.log << fmt::format("sample: the level-{} prior was trained without condition dropout, so the levels "
                                   "below the top are sampled unguided (guidance 0)\n",
                                   unguidable);
  }

  std::vector<torch::Tensor> images;
  std::vector<std::vector<torch::Tensor>> codes(levels);
  SampleResult result;
  ProgressBar bar(config.naive ? "sample (naive)" : "sample", config.count, 0, settings.log, !settings.quiet);
  for (int64_t begin = 0; begin < config.count; begin += config.batch_size) {
    const auto batch = std::min(config.batch_size, config.count - begin);
    const AutocastGuard autocast(config.precision, device);
    const auto sample = sample_hierarchy(vqvae.model, priors, batch, sampling, config.seed + begin, config.naive,
                                         [&](int64_t level, int64_t done, int64_t rows) {
                                           bar.update(begin, fmt::format("level {} row {}/{}", level, done, rows));
                                         });
    for (const auto s : sample.seconds) result.seconds += s;
    images.push_back(to_pixels(sample.images.to(torch::kFloat)).to(torch::kCPU));
    for (int64_t l = 0; l < levels; ++l) codes[l].push_back(sample.codes[l].to(torch::kCPU));
    bar.update(begin + batch);
  }
  bar.finish();
  result.images = torch::cat(images);
  for (auto& c : codes) result.codes.push_back(torch::cat(c));
  save_png(config.out, make_grid(result.images, std::min<int64_t>(8, config.count)));
  if (!config.codes_out.empty()) {
    CodeStoreWriter writer(config.codes_out, code_levels(vqvae.config.model), {{"sampled", true}, {"seed", config.seed}});
    writer.append(result.codes);
    writer.close();
  }
  score_if_asked(config, settings, result);
  return result;
}

// ---- audio ----------------------------------------------------------------------------------------

void AudioSampleConfig::validate() const {
  VQVAE2_CHECK(count >= 1, "the number of samples must be positive, got {}", count);
  VQVAE2_CHECK(batch_size >= 1, "the sampling batch size must be positive, got {}", batch_size);
  VQVAE2_CHECK(samples >= 0, "the sample length must be >= 0 audio samples (0 = the clip length), got {}", samples);
  sampling.validate();
}

std::vector<WaveNet> wavenets_by_level(const std::vector<TrainedWaveNet>& priors, const std::vector<std::string>& paths,
                                       int64_t levels) {
  std::vector<WaveNet> by_level(levels, WaveNet(nullptr));
  for (size_t i = 0; i < priors.size(); ++i) {
    const auto level = priors[i].config.model.level;
    VQVAE2_CHECK(level < levels, "'{}' is a WaveNet for level {}, but the audio VQ-VAE has {} levels", paths[i], level,
                 levels);
    VQVAE2_CHECK(!by_level[level], "two WaveNets given for level {}", level);
    by_level[level] = priors[i].model;
  }
  for (int64_t l = 0; l < levels; ++l) {
    VQVAE2_CHECK(by_level[l], "no WaveNet given for level {} ({}); give one prior run folder per level", l,
                 l == levels - 1 ? "top" : (l == 0 ? "bottom" : "middle"));
  }
  return by_level;
}

AudioSampleResult sample_audio(const AudioSampleConfig& config, const RunSettings& settings) {
  namespace fs = std::filesystem;
  config.validate();
  const auto device = parse_device(settings.device);
  auto vqvae = load<AudioVQVAEKind>(config.vqvae, device);
  const auto& model = vqvae.config.model;
  const auto levels = model.levels();
  std::vector<TrainedWaveNet> loaded;
  for (const auto& path : config.priors) loaded.push_back(load<WaveNetKind>(path, device));
  auto priors = wavenets_by_level(loaded, config.priors, levels);
  const auto samples = config.samples > 0 ? config.samples : model.clip_length;

  std::vector<torch::Tensor> waveforms;
  std::vector<std::vector<torch::Tensor>> codes(levels);
  AudioSampleResult result;
  result.sample_rate = model.sample_rate;
  ProgressBar bar(config.naive ? "sample (naive)" : "sample", config.count, 0, settings.log, !settings.quiet);
  for (int64_t begin = 0; begin < config.count; begin += config.batch_size) {
    const auto batch = std::min(config.batch_size, config.count - begin);
    const auto sample = sample_audio_hierarchy(vqvae.model, priors, batch, samples, config.sampling, config.seed + begin,
                                               config.naive, [&](int64_t level, int64_t done, int64_t length) {
                                                 bar.update(begin, fmt::format("level {} code {}/{}", level, done, length));
                                               });
    for (const auto s : sample.seconds) result.seconds += s;
    waveforms.push_back(sample.waveforms.squeeze(1).to(torch::kCPU));
    for (int64_t l = 0; l < levels; ++l) codes[l].push_back(sample.codes[l].to(torch::kCPU));
    bar.update(begin + batch);
  }
  bar.finish();
  result.waveforms = torch::cat(waveforms);
  for (auto& c : codes) result.codes.push_back(torch::cat(c));
  result.audio_seconds =
      static_cast<double>(config.count * result.waveforms.size(1)) / static_cast<double>(model.sample_rate);

  std::error_code error;
  fs::create_directories(config.out, error);
  VQVAE2_CHECK(!error, "cannot create '{}': {}", config.out, error.message());
  for (int64_t i = 0; i < config.count; ++i) {
    result.files.push_back((fs::path(config.out) / fmt::format("sample-{:02d}.wav", i)).string());
    save_wav(result.files.back(), result.waveforms[i], model.sample_rate);
  }
  result.spectrograms = (fs::path(config.out) / "spectrograms.png").string();
  save_png(result.spectrograms, spectrogram_rows({result.waveforms}));
  if (!config.codes_out.empty()) {
    std::vector<torch::Tensor> rows;
    for (const auto& c : result.codes) rows.push_back(c.unsqueeze(1));  // one-row maps [count, 1, T_l]
    auto levels_stored = code_levels(model);
    for (int64_t l = 0; l < levels; ++l) levels_stored[l].width = result.codes[l].size(1);
    CodeStoreWriter writer(config.codes_out, levels_stored,
                           {{"sampled", true}, {"seed", config.seed}, {"modality", "audio"},
                            {"sample_rate", model.sample_rate}, {"clip_length", samples}});
    writer.append(rows);
    writer.close();
  }
  return result;
}

}  // namespace vqvae2
