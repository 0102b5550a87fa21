#include "vqvae2/stages/train_vqvae.h"

#include "vqvae2/core/checkpoint.h"
#include "vqvae2/core/error.h"
#include "vqvae2/data/image.h"
#include "vqvae2/core/metrics.h"
#include "vqvae2/training/run.h"
#include "vqvae2/training/train_loop.h"

#include <filesystem>
#include <iostream>

namespace vqvae2 {

void TrainSchedule::validate() const {
  VQVAE2_CHECK(batch_size >= 1, "--batch-size must be positive, got {}", batch_size);
  VQVAE2_CHECK(epochs >= 1 || steps >= 1, "give a positive --epochs or --steps (got epochs {}, steps {})", epochs, steps);
  VQVAE2_CHECK(steps >= 0, "--steps must be >= 0 (0 = use --epochs), got {}", steps);
  VQVAE2_CHECK(learning_rate > 0 && std::isfinite(learning_rate), "--lr must be positive, got {}", learning_rate);
  VQVAE2_CHECK(log_every >= 1, "--log-every must be positive, got {}", log_every);
  VQVAE2_CHECK(checkpoint_every >= 1, "--checkpoint-every must be positive, got {}", checkpoint_every);
  VQVAE2_CHECK(grid_images >= 0, "--grid-images must be >= 0, got {}", grid_images);
  VQVAE2_CHECK(on_nan == "stop" || on_nan == "skip", "--on-nan must be stop or skip, got '{}'", on_nan);
}

nlohmann::json Evaluation::to_json() const {
  return {{"mse", mse}, {"psnr", psnr}, {"perplexity", perplexity}, {"usage", usage}, {"images", images}};
}

std::string vqvae_checkpoint_path(const std::string& run_dir) { return RunFolder(run_dir).file("vqvae.ckpt"); }

Evaluation evaluate_vqvae(HierarchicalVQVAE& model, BatchLoader& loader, const torch::Device& device) {
  torch::NoGradGuard no_grad;
  const bool was_training = model->is_training();
  model->eval();
  const auto levels = model->options().levels();
  std::vector<torch::Tensor> counts;
  for (int64_t l = 0; l < levels; ++l) counts.push_back(torch::zeros({model->options().codes_at(l)}, torch::kFloat));
  double squared_error = 0;
  Evaluation result;
  loader.start(0);
  while (auto batch = loader.next()) {
    const auto x = to_model_range(batch->images).to(device);
    const auto out = model->forward(x);
    squared_error += out.reconstruction_loss.item<double>() * static_cast<double>(x.size(0));
    result.images += x.size(0);
    for (int64_t l = 0; l < levels; ++l) {
      counts[l] += functional::code_counts(out.levels[l].codes, model->options().codes_at(l)).to(torch::kCPU);
    }
  }
  model->train(was_training);
  VQVAE2_CHECK(result.images > 0, "nothing to evaluate: the evaluation set is empty");
  result.mse = squared_error / static_cast<double>(result.images);
  result.psnr = psnr_from_mse(result.mse);
  for (const auto& c : counts) {
    result.perplexity.push_back(functional::perplexity(c).item<double>());
    result.usage.push_back((c > 0).sum().item<double>() / static_cast<double>(c.numel()));
  }
  return result;
}

namespace {

// Originals and their reconstructions side by side, in pairs.
void save_reconstruction_grid(HierarchicalVQVAE& model, const torch::Tensor& originals, const torch::Device& device,
                              const std::string& path) {
  torch::NoGradGuard no_grad;
  const bool was_training = model->is_training();
  model->eval();
  const auto reconstruction = to_pixels(model->forward(to_model_range(originals).to(device)).reconstruction);
  model->train(was_training);
  const auto pairs = torch::stack({originals, reconstruction}, 1).flatten(0, 1);  // [2N, C, H, W]
  save_png(path, make_grid(pairs, /*columns=*/8));
}

Evaluation evaluation_from_json(const nlohmann::json& j) {
  Evaluation e;
  if (j.is_null()) return e;
  e.mse = j.at("mse");
  e.psnr = j.at("psnr");
  e.perplexity = j.at("perplexity").get<std::vector<double>>();
  e.usage = j.at("usage").get<std::vector<double>>();
  e.images = j.at("images");
  return e;
}

class VQVAETask : public TrainingTask {
 public:
  VQVAETask(const TrainVQVAEConfig& config, HierarchicalVQVAE model, torch::Device device,
            std::shared_ptr<ImageDataset> dataset, const std::vector<int64_t>& train, const std::vector<int64_t>& validation,
            const RunSettings& settings, RunFolder run)
      : config_(config),
        model_(std::move(model)),
        device_(device),
        optimizer_(model_->parameters(), torch::optim::AdamOptions(config.train.learning_rate)),
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

  torch::optim::Adam& optimizer() { return optimizer_; }
  int64_t batches_per_epoch() const override { return train_loader_.batches_per_epoch(); }
  void start_epoch(int64_t epoch, int64_t first_batch) override { train_loader_.start(epoch, first_batch); }

  bool forward(nlohmann::json& figures, int64_t& images) override {
    auto batch = train_loader_.next();
    if (!batch) return false;
    model_->train();
    if (config_.train.on_nan == "skip") {
      // The forward pass moves the EMA codebooks; keep a copy so a skipped batch leaves no trace.
      buffers_.clear();
      for (const auto& b : model_->buffers()) buffers_.push_back(b.clone());
    }
    const auto x = to_model_range(batch->images).to(device_);
    out_ = model_->forward(x);
    images = x.size(0);
    figures = {{"loss", out_.loss.item<double>()},
               {"reconstruction_mse", out_.reconstruction_loss.item<double>()},
               {"commitment_loss", out_.commitment_loss.item<double>()},
               {"codebook_loss", out_.codebook_loss.item<double>()}};
    for (const auto& level : out_.levels) {
      figures["perplexity"].push_back(level.perplexity.item<double>());
      figures["usage"].push_back(level.usage.item<double>());
    }
    return true;
  }

  void step() override {
    optimizer_.zero_grad();
    out_.loss.backward();
    optimizer_.step();
    out_ = {};
  }

  void discard() override {
    torch::NoGradGuard no_grad;
    auto buffers = model_->buffers();
    for (size_t i = 0; i < buffers_.size(); ++i) buffers[i].copy_(buffers_[i]);
    out_ = {};
  }

  nlohmann::json evaluate() override { return evaluate_vqvae(model_, validation_loader_, device_).to_json(); }

  std::string summarize(const nlohmann::json& e) const override {
    return fmt::format("validation MSE {:.5f}, PSNR {:.2f} dB, code usage {}", e.at("mse").get<double>(),
                       e.at("psnr").get<double>(), fmt::join(e.at("usage").get<std::vector<double>>(), " / "));
  }

  void after_evaluation(int64_t step) override {
    if (grid_.defined()) {
      save_reconstruction_grid(model_, grid_, device_, run_.file(fmt::format("grids/reconstructions-{:06d}.png", step)));
    }
  }

  void save(const std::string& path, int64_t step) override {
    NamedTensors tensors;
    save_module(*model_, tensors, "model");
    save_adam(optimizer_, tensors, "optimizer");
    write_checkpoint(path, {{"kind", "vqvae"}, {"config", config_}, {"state", {{"step", step}}}}, tensors);
  }

 private:
  TrainVQVAEConfig config_;
  HierarchicalVQVAE model_;
  torch::Device device_;
  torch::optim::Adam optimizer_;
  BatchLoader train_loader_, validation_loader_;
  RunFolder run_;
  torch::Tensor grid_;
  VQVAEOutput out_;
  std::vector<torch::Tensor> buffers_;  // before the last forward pass (skip mode)
};

}  // namespace

TrainVQVAEResult train_vqvae(const TrainVQVAEConfig& config, const std::string& run_dir, bool resume,
                             const RunSettings& settings) {
  config.model.validate();
  config.data.validate();
  config.train.validate();
  VQVAE2_CHECK(config.data.image_size == config.model.image_size && config.data.channels == config.model.channels,
               "data ({}x{}, {} channels) and model ({}x{}, {} channels) disagree", config.data.image_size,
               config.data.image_size, config.data.channels, config.model.image_size, config.model.image_size,
               config.model.channels);
  const auto device = parse_device(settings.device);
  RunFolder run(run_dir);
  const auto checkpoint_path = run.file("vqvae.ckpt");

  seed_everything(config.train.seed);
  HierarchicalVQVAE model(config.model);
  model->to(device);

  std::optional<CheckpointContents> contents;
  if (resume) {
    contents = read_checkpoint(checkpoint_path, "vqvae");
    const auto& stored = contents->meta.at("config");
    check_same_config(stored.at("model"), nlohmann::json(config.model), checkpoint_path);
    check_same_config(stored.at("data"), nlohmann::json(config.data), checkpoint_path);
  } else {
    VQVAE2_CHECK(!std::filesystem::exists(checkpoint_path),
                 "'{}' already holds a trained VQ-VAE; pass --resume to continue it or choose another --out", run_dir);
  }

  const auto dataset = ImageDataset::open(config.data, &std::cerr);
  auto [train_indices, validation_indices] = dataset->split();
  if (validation_indices.empty()) {
    std::cerr << "warning: no validation images (--val-fraction 0): evaluating on the training images\n";
    validation_indices = train_indices;
  }
  VQVAETask task(config, model, device, dataset, train_indices, validation_indices, settings, run);
  int64_t step = 0;
  if (contents) {
    load_module(*model, contents->tensors, "model", checkpoint_path);
    load_adam(task.optimizer(), contents->tensors, "optimizer", checkpoint_path);
    step = contents->meta.at("state").at("step").get<int64_t>();
  }
  run.write_json("config.json", {{"kind", "vqvae"}, {"config", config}});
  if (!settings.quiet) {
    std::cerr << fmt::format("vqvae2 train-vqvae: {}; {} train / {} validation images; {} batches per epoch on {}{}\n",
                             dataset->describe(), train_indices.size(), validation_indices.size(),
                             task.batches_per_epoch(), device.str(),
                             resume ? fmt::format(", resuming at step {}", step) : "");
  }
  const auto loop = run_training_loop(task, config.train, step,
                                      {"train-vqvae", checkpoint_path, run.file("metrics.jsonl"), settings.quiet});
  TrainVQVAEResult result;
  result.steps = loop.steps;
  result.interrupted = loop.interrupted;
  result.initial = evaluation_from_json(loop.initial);
  result.final = evaluation_from_json(loop.final);
  result.checkpoint = checkpoint_path;
  return result;
}

LoadedVQVAE load_vqvae(const std::string& path, const torch::Device& device) {
  const auto contents = read_checkpoint(path, "vqvae");
  LoadedVQVAE loaded;
  std::tie(loaded.config, loaded.step) = stored_config<TrainVQVAEConfig>(contents, path);
  loaded.model = HierarchicalVQVAE(loaded.config.model);
  load_module(*loaded.model, contents.tensors, "model", path);
  loaded.model->to(device);
  loaded.model->eval();
  return loaded;
}

}  // namespace vqvae2
