#include "vqvae2/stages/train_audio_vqvae.h"

#include "vqvae2/core/device.h"
#include "vqvae2/core/error.h"
#include "vqvae2/core/metrics.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>

namespace vqvae2 {

const std::vector<int64_t>& evaluation_stft_ffts() {
  static const std::vector<int64_t> ffts = {512, 1024, 2048};
  return ffts;
}

nlohmann::json AudioEvaluation::to_json() const {
  return {{"waveform_mse", waveform_mse},
          {"snr", snr},
          {"stft", stft},
          {"spectral_convergence", spectral_convergence},
          {"log_magnitude", log_magnitude},
          {"perplexity", perplexity},
          {"usage", usage},
          {"clips", clips}};
}

AudioEvaluation AudioEvaluation::from_json(const nlohmann::json& j) {
  AudioEvaluation e;
  if (j.is_null()) return e;
  e.waveform_mse = j.at("waveform_mse");
  e.snr = j.at("snr");
  e.stft = j.at("stft");
  e.spectral_convergence = j.at("spectral_convergence");
  e.log_magnitude = j.at("log_magnitude");
  e.perplexity = j.at("perplexity").get<std::vector<double>>();
  e.usage = j.at("usage").get<std::vector<double>>();
  e.clips = j.at("clips");
  return e;
}

AudioEvaluation evaluate_audio_vqvae(AudioVQVAE& model, BatchLoader& loader, const torch::Device& device) {
  torch::NoGradGuard no_grad;
  const bool was_training = model->is_training();
  model->eval();
  const auto& options = model->options();
  std::vector<torch::Tensor> counts;
  for (int64_t l = 0; l < options.levels(); ++l) counts.push_back(torch::zeros({options.codes_at(l)}, torch::kFloat));
  double squared_error = 0, energy = 0, convergence = 0, log_magnitude = 0;
  AudioEvaluation result;
  loader.start(0);
  while (auto batch = loader.next()) {
    const auto x = batch->images.to(device);  // [B, 1, T]
    const auto out = model->forward(x);
    const auto n = static_cast<double>(x.size(0));
    squared_error += (out.reconstruction - x).pow(2).sum().item<double>();
    energy += x.pow(2).sum().item<double>();
    const auto stft =
        functional::multi_resolution_stft_loss(out.reconstruction.squeeze(1), x.squeeze(1), evaluation_stft_ffts());
    convergence += stft.spectral_convergence.item<double>() * n;
    log_magnitude += stft.log_magnitude.item<double>() * n;
    result.clips += x.size(0);
    for (int64_t l = 0; l < options.levels(); ++l) {
      counts[l] += functional::code_counts(out.levels[l].codes, options.codes_at(l)).to(torch::kCPU);
    }
  }
  model->train(was_training);
  VQVAE2_CHECK(result.clips > 0, "nothing to evaluate: the evaluation set is empty");
  const auto clips = static_cast<double>(result.clips);
  result.waveform_mse = squared_error / (clips * static_cast<double>(options.clip_length));
  result.snr = squared_error > 0 ? 10 * std::log10(energy / squared_error) : std::numeric_limits<double>::infinity();
  result.spectral_convergence = convergence / clips;
  result.log_magnitude = log_magnitude / clips;
  result.stft = result.spectral_convergence + result.log_magnitude;
  for (const auto& c : counts) {
    result.perplexity.push_back(functional::perplexity(c).item<double>());
    result.usage.push_back((c > 0).sum().item<double>() / static_cast<double>(c.numel()));
  }
  return result;
}

torch::Tensor reconstruct_audio(AudioVQVAE& model, const torch::Tensor& originals, const torch::Device& device) {
  torch::NoGradGuard no_grad;
  const bool was_training = model->is_training();
  model->eval();
  auto out = model->forward(originals.to(device)).reconstruction.to(torch::kCPU);
  model->train(was_training);
  return out;
}

namespace {

class AudioVQVAETask : public ModelTask {
 public:
  AudioVQVAETask(const TrainAudioVQVAEConfig& config, AudioVQVAE model, torch::Device device,
                 std::shared_ptr<AudioDataset> dataset, const std::vector<int64_t>& train,
                 const std::vector<int64_t>& validation, const RunSettings& settings, RunFolder run)
      : ModelTask(AudioVQVAEKind::name, config, model.ptr(), config.train.learning_rate),
        config_(config),
        model_(std::move(model)),
        device_(device),
        train_loader_(dataset, train,
                      {config.train.batch_size, /*shuffle=*/true, /*drop_last=*/true, config.train.seed,
                       settings.loader_prefetch}),
        validation_loader_(dataset, validation,
                           {config.train.batch_size, /*shuffle=*/false, /*drop_last=*/false, config.train.seed,
                            settings.loader_prefetch}),
        run_(std::move(run)) {
    // Clips to listen to, spread evenly over the held-out set.
    std::vector<torch::Tensor> clips;
    const auto count = std::min<int64_t>(config.train.grid_images, validation.size());
    for (int64_t i = 0; i < count; ++i) clips.push_back(dataset->get(validation[i * validation.size() / count]));
    if (!clips.empty()) examples_ = torch::stack(clips);  // [N, 1, T]
  }

  int64_t batches_per_epoch() const override { return train_loader_.batches_per_epoch(); }
  void start_epoch(int64_t epoch, int64_t first_batch) override { train_loader_.start(epoch, first_batch); }

  bool forward(nlohmann::json& figures, int64_t& items) override {
    auto batch = train_loader_.next();
    if (!batch) return false;
    model_->train();
    if (config_.train.on_nan == NanPolicy::kSkip) snapshot_quantizers();
    const auto x = batch->images.to(device_);  // float [B, 1, T] already
    const auto out = model_->forward(x);
    loss_ = out.loss;
    items = x.size(0);
    figures = {{"loss", out.loss.item<double>()},
               {"waveform_mse", out.waveform_mse.item<double>()},
               {"stft", out.stft.total.item<double>()},
               {"commitment_loss", out.commitment_loss.item<double>()},
               {"codebook_loss", out.codebook_loss.item<double>()}};
    for (const auto& level : out.levels) {
      figures["perplexity"].push_back(level.perplexity.item<double>());
      figures["usage"].push_back(level.usage.item<double>());
    }
    return true;
  }

  void discard() override {
    ModelTask::discard();
    for (size_t l = 0; l < snapshot_.size(); ++l) model_->quantizer(static_cast<int64_t>(l)).restore(snapshot_[l]);
  }

  nlohmann::json evaluate() override {
    return evaluate_audio_vqvae(model_, validation_loader_, device_).to_json();
  }

  std::string summarize(const nlohmann::json& e) const override {
    return fmt::format("validation waveform MSE {:.6f} (SNR {:.2f} dB), STFT distance {:.3f}, code usage {}",
                       e.at("waveform_mse").get<double>(), e.at("snr").get<double>(), e.at("stft").get<double>(),
                       fmt::join(e.at("usage").get<std::vector<double>>(), " / "));
  }

  void after_evaluation(int64_t step) override {
    if (!examples_.defined()) return;
    for (const auto* folder : {"spectrograms", "audio"}) {
      std::error_code error;
      std::filesystem::create_directories(run_.file(folder), error);
      VQVAE2_CHECK(!error, "cannot create '{}': {}", run_.file(folder), error.message());
    }
    const auto reconstructions = reconstruct_audio(model_, examples_, device_);
    const auto rate = config_.model.sample_rate;
    save_spectrograms(run_.file(fmt::format("spectrograms/reconstructions-{:06d}.png", step)), examples_.squeeze(1),
                      reconstructions.squeeze(1));
    for (int64_t i = 0; i < examples_.size(0); ++i) {
      save_wav(run_.file(fmt::format("audio/original-{:02d}.wav", i)), examples_[i], rate);
      save_wav(run_.file(fmt::format("audio/reconstruction-{:02d}.wav", i)), reconstructions[i], rate);
    }
  }

 private:
  // The quantizers' state (codebooks, statistics, restart counters) before a forward pass that skip
  // mode may undo (QuantizerImpl::snapshot).
  void snapshot_quantizers() {
    snapshot_.clear();
    for (int64_t l = 0; l < model_->options().levels(); ++l) snapshot_.push_back(model_->quantizer(l).snapshot());
  }

  TrainAudioVQVAEConfig config_;
  AudioVQVAE model_;
  torch::Device device_;
  BatchLoader train_loader_, validation_loader_;
  RunFolder run_;
  torch::Tensor examples_;               // held-out clips [N, 1, T] written with their reconstructions
  std::vector<QuantizerImpl::State> snapshot_;  // quantizers before the last forward pass (skip mode)
};

}  // namespace

TrainAudioVQVAEResult train_audio_vqvae(const TrainAudioVQVAEConfig& config, const TrainingRun& run,
                                        const RunSettings& settings) {
  config.validate();
  const auto device = parse_device(settings.device);
  seed_everything(config.train.seed);
  AudioVQVAE model(config.model);
  model->to(device);

  const auto dataset = AudioDataset::open(config.data, settings.log);
  auto [train_indices, validation_indices] = dataset->split();
  if (validation_indices.empty()) {
    if (settings.log) *settings.log << "warning: no held-out clips (validation fraction 0): evaluating on the training clips\n";
    validation_indices = train_indices;
  }
  AudioVQVAETask task(config, model, device, dataset, train_indices, validation_indices, settings, run.folder);
  const auto step = start_training(task, run, config);
  if (settings.log) {
    *settings.log << fmt::format(
        "vqvae2 train-vqvae (audio): {}; {} train / {} validation clips of {} samples; {} batches per epoch on {}{}\n",
        dataset->describe(), train_indices.size(), validation_indices.size(), config.model.clip_length,
        task.batches_per_epoch(), device.str(), run.resumed ? fmt::format(", resuming at step {}", step) : "");
  }
  const auto loop = run_training_loop(task, config.train, step, loop_settings(run, "train-vqvae", settings));
  TrainAudioVQVAEResult result;
  result.steps = loop.steps;
  result.interrupted = loop.interrupted;
  result.initial = AudioEvaluation::from_json(loop.initial);
  result.final = AudioEvaluation::from_json(loop.final);
  result.checkpoint = run.checkpoint;
  return result;
}

TrainAudioVQVAEResult train_audio_vqvae(const TrainAudioVQVAEConfig& config, const std::string& run_dir, bool resume,
                                        const RunSettings& settings) {
  return train_audio_vqvae(config, open_training_run(run_dir, AudioVQVAEKind::name, resume), settings);
}

}  // namespace vqvae2
