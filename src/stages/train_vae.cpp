#include "vqvae2/stages/train_vae.h"

#include "vqvae2/core/device.h"
#include "vqvae2/core/error.h"
#include "vqvae2/core/metrics.h"
#include "vqvae2/data/image.h"

#include <algorithm>

namespace vqvae2 {

nlohmann::json VAEEvaluation::to_json() const {
  return {{"bits_per_dim", bits_per_dim}, {"neg_elbo_nats", negative_elbo_nats},
          {"kl_nats", kl_nats},           {"nll_nats", nll_nats},
          {"mse", mse},                   {"psnr", psnr},
          {"kl_per_dim", kl_per_dim},     {"active_dims", active_dims},
          {"images", images}};
}

VAEEvaluation VAEEvaluation::from_json(const nlohmann::json& j) {
  VAEEvaluation e;
  if (j.is_null()) return e;
  e.bits_per_dim = j.at("bits_per_dim");
  e.negative_elbo_nats = j.at("neg_elbo_nats");
  e.kl_nats = j.at("kl_nats");
  e.nll_nats = j.at("nll_nats");
  e.mse = j.at("mse");
  e.psnr = j.at("psnr");
  e.kl_per_dim = j.at("kl_per_dim").get<std::vector<double>>();
  e.active_dims = j.at("active_dims");
  e.images = j.at("images");
  return e;
}

VAEEvaluation evaluate_vae(GaussianVAE& model, BatchLoader& loader, const torch::Device& device, uint64_t seed) {
  torch::NoGradGuard no_grad;
  const bool was_training = model->is_training();
  model->eval();
  torch::manual_seed(seed);
  const auto& o = model->options();
  double kl = 0, nll = 0, squared_error = 0;
  auto kl_per_dim = torch::zeros({o.latent_channels}, torch::kDouble);
  VAEEvaluation result;
  loader.start(0);
  while (auto batch = loader.next()) {
    const auto x = to_model_range(batch->images).to(device);
    const auto out = model->forward(x);
    const auto n = static_cast<double>(x.size(0));
    kl += out.kl.sum().item<double>();
    nll += out.nll.sum().item<double>();
    squared_error += (out.reconstruction - x).pow(2).mean().item<double>() * n;
    kl_per_dim += out.kl_per_dim.to(torch::kCPU, torch::kDouble) * n;
    result.images += x.size(0);
  }
  model->train(was_training);
  VQVAE2_CHECK(result.images > 0, "nothing to evaluate: the evaluation set is empty");
  const auto n = static_cast<double>(result.images);
  result.kl_nats = kl / n;
  result.nll_nats = nll / n;
  result.negative_elbo_nats = result.kl_nats + result.nll_nats;
  result.bits_per_dim = functional::bits_per_dim(result.negative_elbo_nats, o.image_dims());
  result.mse = squared_error / n;
  result.psnr = psnr_from_mse(result.mse);
  kl_per_dim /= n;
  result.active_dims = functional::active_dims(kl_per_dim);
  result.kl_per_dim.assign(kl_per_dim.data_ptr<double>(), kl_per_dim.data_ptr<double>() + kl_per_dim.numel());
  return result;
}

torch::Tensor vae_reconstruction_grid(GaussianVAE& model, const torch::Tensor& originals, const torch::Device& device,
                                      uint64_t seed) {
  torch::NoGradGuard no_grad;
  const bool was_training = model->is_training();
  model->eval();
  torch::manual_seed(seed);
  const auto out = model->forward(to_model_range(originals).to(device));
  model->train(was_training);
  const auto pairs = torch::stack({originals, to_pixels(out.reconstruction).to(torch::kCPU)}, 1).flatten(0, 1);
  return make_grid(pairs, /*columns=*/8);
}

torch::Tensor vae_samples(GaussianVAE& model, int64_t count, uint64_t seed) {
  const bool was_training = model->is_training();
  model->eval();
  const auto images = to_pixels(model->sample(count, seed)).to(torch::kCPU);
  model->train(was_training);
  return images;
}

namespace {

class VAETask : public ModelTask {
 public:
  VAETask(const TrainVAEConfig& config, GaussianVAE model, torch::Device device, std::shared_ptr<ImageDataset> dataset,
          const std::vector<int64_t>& train, const std::vector<int64_t>& validation, const RunSettings& settings,
          RunFolder run)
      : ModelTask(VAEKind::name, config, model.ptr(), config.train.learning_rate),
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
    grid_ = dataset->spread(validation, config.train.grid_images);
  }

  int64_t batches_per_epoch() const override { return train_loader_.batches_per_epoch(); }
  void start_epoch(int64_t epoch, int64_t first_batch) override {
    train_loader_.start(epoch, first_batch);
    step_ = epoch * batches_per_epoch() + first_batch;
  }

  bool forward(nlohmann::json& figures, int64_t& images) override {
    auto batch = train_loader_.next();
    if (!batch) return false;
    model_->train();
    const auto x = to_model_range(batch->images).to(device_);
    // β_KL of this step: the warm-up counts optimisation steps from 0.
    const auto out = model_->forward(x, step_);
    loss_ = out.loss;
    images = x.size(0);
    figures = {{"loss", out.loss.item<double>()},
               {"bits_per_dim", out.bits_per_dim.item<double>()},
               {"kl", out.kl.mean().item<double>()},
               {"nll", out.nll.mean().item<double>()},
               {"kl_weight", functional::kl_weight(step_, config_.model.kl_warmup_steps)},
               {"active_dims", functional::active_dims(out.kl_per_dim)}};
    ++step_;
    return true;
  }

  nlohmann::json evaluate() override { return evaluate_vae(model_, validation_loader_, device_).to_json(); }

  std::string summarize(const nlohmann::json& e) const override {
    return fmt::format("validation −ELBO {:.4f} bits/dim (KL {:.1f} + NLL {:.1f} nats per image), MSE {:.5f}, "
                       "{} of {} latent channels active",
                       e.at("bits_per_dim").get<double>(), e.at("kl_nats").get<double>(),
                       e.at("nll_nats").get<double>(), e.at("mse").get<double>(), e.at("active_dims").get<int64_t>(),
                       config_.model.latent_channels);
  }

  void after_evaluation(int64_t step) override {
    if (!grid_.defined()) return;
    save_png(run_.file(fmt::format("grids/reconstructions-{:06d}.png", step)),
             vae_reconstruction_grid(model_, grid_, device_));
    const auto count = grid_.size(0);
    save_png(run_.file(fmt::format("grids/samples-{:06d}.png", step)),
             make_grid(vae_samples(model_, count, config_.train.seed), std::min<int64_t>(8, count)));
  }

 private:
  TrainVAEConfig config_;
  GaussianVAE model_;
  torch::Device device_;
  BatchLoader train_loader_, validation_loader_;
  RunFolder run_;
  torch::Tensor grid_;
  int64_t step_ = 0;  // the step the next forward() is
};

}  // namespace

TrainVAEResult train_vae(const TrainVAEConfig& config, const TrainingRun& run, const RunSettings& settings) {
  config.validate();
  const auto device = parse_device(settings.device);
  seed_everything(config.train.seed);
  GaussianVAE model(config.model);
  model->to(device);

  const auto dataset =
      ImageDataset::open(config.data, ImageFormat{config.model.image_size, config.model.channels}, settings.log);
  const auto [train_indices, validation_indices] = dataset->training_split(settings.log);
  VAETask task(config, model, device, dataset, train_indices, validation_indices, settings, run.folder);
  const auto step = start_training(task, run, config);
  if (settings.log) {
    *settings.log << fmt::format("vqvae2 train-vae: {}; {} train / {} validation images; {} batches per epoch on {}{}\n",
                                 dataset->describe(), train_indices.size(), validation_indices.size(),
                                 task.batches_per_epoch(), device.str(),
                                 run.resumed ? fmt::format(", resuming at step {}", step) : "");
  }
  const auto loop = run_training_loop(task, config.train, step, loop_settings(run, "train-vae", settings));
  TrainVAEResult result;
  result.steps = loop.steps;
  result.interrupted = loop.interrupted;
  result.initial = VAEEvaluation::from_json(loop.initial);
  result.final = VAEEvaluation::from_json(loop.final);
  result.checkpoint = run.checkpoint;
  return result;
}

TrainVAEResult train_vae(const TrainVAEConfig& config, const std::string& run_dir, bool resume,
                         const RunSettings& settings) {
  return train_vae(config, open_training_run(run_dir, VAEKind::name, resume), settings);
}

}  // namespace vqvae2
