#include "vqvae2/train_vqvae.h"

#include "vqvae2/checkpoint.h"
#include "vqvae2/error.h"
#include "vqvae2/image.h"
#include "vqvae2/metrics.h"
#include "vqvae2/progress.h"
#include "vqvae2/run.h"

#include <chrono>
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

nlohmann::json checkpoint_meta(const TrainVQVAEConfig& config, int64_t step) {
  return {{"kind", "vqvae"}, {"config", config}, {"state", {{"step", step}}}};
}

void save_training_checkpoint(const std::string& path, const TrainVQVAEConfig& config, HierarchicalVQVAE& model,
                              torch::optim::Adam& optimizer, int64_t step) {
  torch::serialize::OutputArchive archive;
  save_module(*model, archive, "model");
  torch::serialize::OutputArchive optimizer_archive;
  optimizer.save(optimizer_archive);
  archive.write("optimizer", optimizer_archive);
  write_checkpoint(path, checkpoint_meta(config, step), archive);
}

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

nlohmann::json eval_record(const Evaluation& e, int64_t step, int64_t epoch) {
  return {{"event", "eval"},   {"step", step},           {"epoch", epoch},           {"val_mse", e.mse},
          {"val_psnr", e.psnr}, {"val_perplexity", e.perplexity}, {"val_usage", e.usage}, {"val_images", e.images}};
}

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
  const auto metrics_path = run.file("metrics.jsonl");
  const auto& schedule = config.train;

  seed_everything(schedule.seed);
  HierarchicalVQVAE model(config.model);
  model->to(device);
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(schedule.learning_rate));

  int64_t step = 0;
  if (resume) {
    const auto contents = read_checkpoint(checkpoint_path, "vqvae");
    const auto& stored = contents.meta.at("config");
    check_same_config(stored.at("model"), nlohmann::json(config.model), checkpoint_path);
    check_same_config(stored.at("data"), nlohmann::json(config.data), checkpoint_path);
    auto archive = open_archive(contents, checkpoint_path, device);
    load_module(*model, archive, "model", checkpoint_path);
    torch::serialize::InputArchive optimizer_archive;
    archive.read("optimizer", optimizer_archive);
    optimizer.load(optimizer_archive);
    step = contents.meta.at("state").at("step").get<int64_t>();
    MetricsLog::truncate_after(metrics_path, step);
  } else {
    VQVAE2_CHECK(!std::filesystem::exists(checkpoint_path),
                 "'{}' already holds a trained VQ-VAE; pass --resume to continue it or choose another --out",
                 run_dir);
    std::filesystem::remove(metrics_path);
  }
  run.write_json("config.json", {{"kind", "vqvae"}, {"config", config}});

  const auto dataset = ImageDataset::open(config.data, &std::cerr);
  auto [train_indices, validation_indices] = dataset->split();
  if (validation_indices.empty()) {
    std::cerr << "warning: no validation images (--val-fraction 0): evaluating on the training images\n";
    validation_indices = train_indices;
  }
  BatchLoader train_loader(dataset, train_indices,
                           {schedule.batch_size, /*shuffle=*/true, /*drop_last=*/true, schedule.seed,
                            settings.loader_prefetch},
                           &std::cerr);
  BatchLoader validation_loader(dataset, validation_indices,
                                {schedule.batch_size, /*shuffle=*/false, /*drop_last=*/false, schedule.seed,
                                 settings.loader_prefetch},
                                &std::cerr);
  const auto per_epoch = train_loader.batches_per_epoch();
  const auto total = schedule.steps > 0 ? schedule.steps : schedule.epochs * per_epoch;
  VQVAE2_CHECK(step <= total, "the checkpoint is at step {}, past the {} steps asked for; raise --steps or --epochs",
               step, total);

  // Grid images spread evenly over the validation set (a folder sorted by class shows every class).
  std::vector<torch::Tensor> grid_originals;
  const auto grid_count = std::min<int64_t>(schedule.grid_images, validation_indices.size());
  for (int64_t i = 0; i < grid_count; ++i) {
    grid_originals.push_back(dataset->get(validation_indices[i * validation_indices.size() / grid_count]));
  }
  const auto grid_batch = grid_originals.empty() ? torch::Tensor() : torch::stack(grid_originals);

  if (!settings.quiet) {
    std::cerr << fmt::format("vqvae2 train-vqvae: {}; {} train / {} validation; {} steps ({} per epoch) on {}{}\n",
                             dataset->describe(), train_indices.size(), validation_indices.size(), total, per_epoch,
                             device.str(), resume ? fmt::format(", resuming at step {}", step) : "");
  }

  MetricsLog log(metrics_path);
  TrainVQVAEResult result;
  if (step == 0) {
    result.initial = evaluate_vqvae(model, validation_loader, device);
    log.write(eval_record(result.initial, 0, 0));
  }

  ProgressBar bar("train-vqvae", total, step, !settings.quiet);
  std::string last_checkpoint = resume ? checkpoint_path : "";
  int64_t epoch = step / per_epoch;
  train_loader.start(epoch, step % per_epoch);
  auto window_start = std::chrono::steady_clock::now();
  int64_t window_images = 0;
  model->train();
  while (step < total) {
    auto batch = train_loader.next();
    if (!batch) {
      train_loader.start(++epoch);
      continue;
    }
    torch::manual_seed(step_seed(schedule.seed, step));
    const auto x = to_model_range(batch->images).to(device);
    const auto out = model->forward(x);
    const auto loss = out.loss.item<double>();
    check_finite(loss, "the VQ-VAE loss", step + 1, last_checkpoint);
    optimizer.zero_grad();
    out.loss.backward();
    optimizer.step();
    ++step;
    window_images += x.size(0);

    if (step % schedule.log_every == 0 || step == total) {
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - window_start).count();
      nlohmann::json record = {{"step", step},
                               {"epoch", epoch},
                               {"loss", loss},
                               {"reconstruction_mse", out.reconstruction_loss.item<double>()},
                               {"commitment_loss", out.commitment_loss.item<double>()},
                               {"codebook_loss", out.codebook_loss.item<double>()},
                               {"lr", schedule.learning_rate},
                               {"images_per_second", window_images / std::max(seconds, 1e-9)}};
      for (const auto& level : out.levels) {
        record["perplexity"].push_back(level.perplexity.item<double>());
        record["usage"].push_back(level.usage.item<double>());
      }
      log.write(record);
      window_start = std::chrono::steady_clock::now();
      window_images = 0;
    }
    bar.update(step, fmt::format("loss {:.4f}", loss));

    const bool epoch_end = step % per_epoch == 0;
    if (epoch_end || step == total) {
      result.final = evaluate_vqvae(model, validation_loader, device);
      log.write(eval_record(result.final, step, (step + per_epoch - 1) / per_epoch));
      bar.message(fmt::format("step {}: validation MSE {:.5f}, PSNR {:.2f} dB, code usage {}", step, result.final.mse,
                              result.final.psnr, fmt::join(result.final.usage, " / ")));
      if (grid_batch.defined()) {
        save_reconstruction_grid(model, grid_batch, device, run.file(fmt::format("grids/reconstructions-{:06d}.png", step)));
      }
    }
    const bool stopping = stop_requested();
    if (step % schedule.checkpoint_every == 0 || epoch_end || step == total || stopping) {
      save_training_checkpoint(checkpoint_path, config, model, optimizer, step);
      last_checkpoint = checkpoint_path;
    }
    if (stopping) {
      result.interrupted = true;
      bar.message(fmt::format("stopped by signal at step {}; checkpoint written, continue with --resume", step));
      break;
    }
  }
  bar.finish();
  result.steps = step;
  result.checkpoint = checkpoint_path;
  return result;
}

LoadedVQVAE load_vqvae(const std::string& path, const torch::Device& device) {
  const auto contents = read_checkpoint(path, "vqvae");
  LoadedVQVAE loaded;
  try {
    loaded.config = contents.meta.at("config").get<TrainVQVAEConfig>();
    loaded.step = contents.meta.at("state").at("step").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    fail("'{}' has an unreadable configuration: {}", path, e.what());
  }
  loaded.model = HierarchicalVQVAE(loaded.config.model);
  auto archive = open_archive(contents, path);
  load_module(*loaded.model, archive, "model", path);
  loaded.model->to(device);
  loaded.model->eval();
  return loaded;
}

}  // namespace vqvae2
