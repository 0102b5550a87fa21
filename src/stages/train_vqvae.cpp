#include "vqvae2/stages/train_vqvae.h"

#include "vqvae2/core/device.h"
#include "vqvae2/core/error.h"
#include "vqvae2/core/metrics.h"
#include "vqvae2/data/image.h"
#include "vqvae2/training/distributed.h"

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
                       settings.loader_prefetch, settings.rank(), settings.ranks()}),
        validation_loader_(dataset, validation,
                           {config.train.batch_size, /*shuffle=*/false, /*drop_last=*/false, config.train.seed,
                            settings.loader_prefetch, settings.rank(), settings.ranks()}),
        run_(std::move(run)),
        group_(settings.group) {
    grid_ = dataset->spread(validation, config.train.grid_images);
    set_precision(config.train.precision, device);
  }

  int64_t batches_per_epoch() const override { return train_loader_.batches_per_epoch(); }
  void start_epoch(int64_t epoch, int64_t first_batch) override { train_loader_.start(epoch, first_batch); }

  bool forward(nlohmann::json& figures, int64_t& images) override {
    auto batch = train_loader_.next();
    if (!batch) return false;
    model_->train();
    if (config_.train.on_nan == NanPolicy::kSkip) snapshot_ = model_->snapshot_quantizers();
    const auto x = to_model_range(batch->images).to(device_);
    const auto autocast = this->autocast();
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
    if (!snapshot_.empty()) model_->restore_quantizers(snapshot_);
  }

  nlohmann::json evaluate() override {
    return evaluate_vqvae(model_, validation_loader_, device_, {}, group_.get()).to_json();
  }

  std::string summarize(const nlohmann::json& e) const override {
    return fmt::format("validation MSE {:.5f}, PSNR {:.2f} dB, code usage {}", e.at("mse").get<double>(),
                       e.at("psnr").get<double>(), fmt::join(e.at("usage").get<std::vector<double>>(), " / "));
  }

  void after_evaluation(int64_t step) override {
    if (!grid_.defined()) return;
    save_png(run_.file(fmt::format("grids/reconstructions-{:06d}.png", step)), reconstruct(model_, grid_, device_).grid);
  }

 private:
  TrainVQVAEConfig config_;
  HierarchicalVQVAE model_;
  torch::Device device_;
  BatchLoader train_loader_, validation_loader_;
  RunFolder run_;
  std::shared_ptr<DistributedGroup> group_;
  torch::Tensor grid_;
  std::vector<QuantizerImpl::State> snapshot_;  // quantizers before the last forward pass (skip mode)
};

}  // namespace

TrainVQVAEResult train_vqvae(const TrainVQVAEConfig& config, const TrainingRun& run, const RunSettings& settings) {
  config.validate();
  const auto device = parse_device(settings.device);
  seed_everything(config.train.seed);
  HierarchicalVQVAE model(config.model);
  model->to(device);
  settings.share_of(config.train.batch_size);
  if (settings.group) {
    for (int64_t l = 0; l < config.model.levels(); ++l) model->quantizer(l).set_replicas(quantizer_sync(settings.group));
  }

  const auto dataset = ImageDataset::open(config.data, config.model.format(), settings.log);
  const auto [train_indices, validation_indices] = dataset->training_split(settings.log);
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
