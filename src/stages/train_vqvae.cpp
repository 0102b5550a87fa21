#include "vqvae2/stages/train_vqvae.h"

#include "vqvae2/core/device.h"
#include "vqvae2/core/error.h"
#include "vqvae2/core/metrics.h"
#include "vqvae2/data/image.h"

#include <algorithm>
#include <numeric>

namespace vqvae2 {

namespace {

class VQVAETask : public ModelTask {
 public:
  VQVAETask(const TrainVQVAEConfig& config, HierarchicalVQVAE model, torch::Device device,
            std::shared_ptr<ImageDataset> dataset, const std::vector<int64_t>& train, const std::vector<int64_t>& validation,
            const RunSettings& settings, RunFolder run)
      : ModelTask(VQVAEKind::name, config, model.ptr(), config.train.learning_rate),
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
    // Grid images spread evenly over the validation set (a folder sorted by class shows every class).
    std::vector<torch::Tensor> originals;
    const auto count = std::min<int64_t>(config.train.grid_images, validation.size());
    for (int64_t i = 0; i < count; ++i) originals.push_back(dataset->get(validation[i * validation.size() / count]));
    if (!originals.empty()) grid_ = torch::stack(originals);
  }

  int64_t batches_per_epoch() const override { return train_loader_.batches_per_epoch(); }
  void start_epoch(int64_t epoch, int64_t first_batch) override { train_loader_.start(epoch, first_batch); }

  bool forward(nlohmann::json& figures, int64_t& images) override {
    auto batch = train_loader_.next();
    if (!batch) return false;
    model_->train();
    if (config_.train.on_nan == NanPolicy::kSkip) snapshot_quantizers();
    const auto x = to_model_range(batch->images).to(device_);
    const auto out = model_->forward(x);
    loss_ = out.loss;
    images = x.size(0);
    figures = {{"loss", out.loss.item<double>()},
               {"reconstruction_mse", out.reconstruction_loss.item<double>()},
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
    torch::NoGradGuard no_grad;
    auto state = quantizer_state();
    for (size_t i = 0; i < snapshot_.size(); ++i) state[i].copy_(snapshot_[i]);
  }

  nlohmann::json evaluate() override { return evaluate_vqvae(model_, validation_loader_, device_).to_json(); }

  std::string summarize(const nlohmann::json& e) const override {
    return fmt::format("validation MSE {:.5f}, PSNR {:.2f} dB, code usage {}", e.at("mse").get<double>(),
                       e.at("psnr").get<double>(), fmt::join(e.at("usage").get<std::vector<double>>(), " / "));
  }

  void after_evaluation(int64_t step) override {
    if (!grid_.defined()) return;
    save_png(run_.file(fmt::format("grids/reconstructions-{:06d}.png", step)), reconstruct(model_, grid_, device_).grid);
  }

 private:
  // What a forward pass in training mode writes besides activations: the quantizers' statistics,
  // restart counters and codebooks (buffers of the EMA variant; a parameter of the codebook-loss
  // variant, which data initialisation and dead-code restarts overwrite).
  std::vector<torch::Tensor> quantizer_state() {
    std::vector<torch::Tensor> state;
    for (int64_t l = 0; l < model_->options().levels(); ++l) {
      for (const auto& p : model_->quantizer(l).parameters()) state.push_back(p);
      for (const auto& b : model_->quantizer(l).buffers()) state.push_back(b);
    }
    return state;
  }
  void snapshot_quantizers() {
    snapshot_.clear();
    for (const auto& t : quantizer_state()) snapshot_.push_back(t.detach().clone());
  }

  TrainVQVAEConfig config_;
  HierarchicalVQVAE model_;
  torch::Device device_;
  BatchLoader train_loader_, validation_loader_;
  RunFolder run_;
  torch::Tensor grid_;
  std::vector<torch::Tensor> snapshot_;  // quantizer state before the last forward pass (skip mode)
};

}  // namespace

TrainVQVAEResult train_vqvae(const TrainVQVAEConfig& config, const TrainingRun& run, const RunSettings& settings) {
  config.validate();
  const auto device = parse_device(settings.device);
  seed_everything(config.train.seed);
  HierarchicalVQVAE model(config.model);
  model->to(device);

  const auto dataset = ImageDataset::open(config.data, config.model.format(), settings.log);
  auto [train_indices, validation_indices] = dataset->split();
  if (validation_indices.empty()) {
    if (settings.log) *settings.log << "warning: no validation images (validation fraction 0): evaluating on the training images\n";
    validation_indices = train_indices;
  }
  VQVAETask task(config, model, device, dataset, train_indices, validation_indices, settings, run.folder);
  const auto step = start_training(task, run, config);
  if (settings.log) {
    *settings.log << fmt::format("vqvae2 train-vqvae: {}; {} train / {} validation images; {} batches per epoch on {}{}\n",
                                 dataset->describe(), train_indices.size(), validation_indices.size(),
                                 task.batches_per_epoch(), device.str(),
                                 run.resumed ? fmt::format(", resuming at step {}", step) : "");
  }
  const auto loop = run_training_loop(task, config.train, step, loop_settings(run, "train-vqvae", settings));
  TrainVQVAEResult result;
  result.steps = loop.steps;
  result.interrupted = loop.interrupted;
  result.initial = Evaluation::from_json(loop.initial);
  result.final = Evaluation::from_json(loop.final);
  result.checkpoint = run.checkpoint;
  return result;
}

TrainVQVAEResult train_vqvae(const TrainVQVAEConfig& config, const std::string& run_dir, bool resume,
                             const RunSettings& settings) {
  return train_vqvae(config, open_training_run(run_dir, VQVAEKind::name, resume), settings);
}

}  // namespace vqvae2
