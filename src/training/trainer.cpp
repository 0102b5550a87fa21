#include "vqvae2/training/trainer.h"

#include "vqvae2/core/device.h"
#include "vqvae2/core/error.h"
#include "vqvae2/core/metrics.h"
#include "vqvae2/core/progress.h"
#include "vqvae2/core/report.h"
#include "vqvae2/training/run.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <filesystem>

namespace vqvae2 {

void TrainSchedule::validate() const {
  VQVAE2_CHECK(batch_size >= 1, "batch size must be positive, got {}", batch_size);
  VQVAE2_CHECK(epochs >= 1 || steps >= 1, "give a positive number of epochs or steps (got epochs {}, steps {})", epochs,
               steps);
  VQVAE2_CHECK(steps >= 0, "steps must be >= 0 (0 = count epochs), got {}", steps);
  VQVAE2_CHECK(learning_rate > 0 && std::isfinite(learning_rate), "learning rate must be positive, got {}",
               learning_rate);
  VQVAE2_CHECK(log_every >= 1, "steps between metrics lines must be positive, got {}", log_every);
  VQVAE2_CHECK(checkpoint_every >= 1, "steps between checkpoints must be positive, got {}", checkpoint_every);
  VQVAE2_CHECK(grid_images >= 0, "grid images must be >= 0, got {}", grid_images);
}

// ---- a module trained by Adam -------------------------------------------------------------------

ModelTask::ModelTask(std::string kind, nlohmann::json config, std::shared_ptr<torch::nn::Module> module,
                     double learning_rate)
    : kind_(std::move(kind)),
      config_(std::move(config)),
      module_(std::move(module)),
      optimizer_(module_->parameters(), torch::optim::AdamOptions(learning_rate)) {}

void ModelTask::step() {
  optimizer_.zero_grad();
  loss_.backward();
  optimizer_.step();
  loss_ = torch::Tensor();
}

void ModelTask::discard() { loss_ = torch::Tensor(); }

void ModelTask::save(const std::string& path, int64_t step) {
  write_model_checkpoint(path, kind_, config_, step, *module_, &optimizer_);
}

int64_t ModelTask::restore(const ModelCheckpoint& checkpoint) {
  load_module(*module_, checkpoint.tensors, "model", checkpoint.path);
  load_adam(optimizer_, checkpoint.tensors, "optimizer", checkpoint.path);
  return checkpoint.step;
}

// ---- start or resume ----------------------------------------------------------------------------

TrainingRun open_training_run(const std::string& run_dir, const std::string& kind, bool resume) {
  VQVAE2_CHECK(!run_dir.empty(), "no run folder given");
  TrainingRun run{RunFolder(run_dir), kind, "", std::nullopt};
  run.checkpoint = run.folder.file(kind + ".ckpt");
  const bool exists = std::filesystem::exists(run.checkpoint);
  if (resume) {
    VQVAE2_CHECK(exists, "'{}' holds no {} to resume: {} does not exist", run_dir, kind, run.checkpoint);
    run.resumed = read_model_checkpoint(run.checkpoint, kind);
  } else {
    VQVAE2_CHECK(!exists, "'{}' already holds a trained {}; resume it or choose another run folder", run_dir, kind);
  }
  return run;
}

int64_t start_training(ModelTask& task, const TrainingRun& run, const nlohmann::json& config) {
  int64_t step = 0;
  if (run.resumed) {
    // Everything but the schedule must be what the checkpoint was trained with.
    auto stored = run.resumed->config;
    auto requested = config;
    if (stored.is_object()) stored.erase("train");
    if (requested.is_object()) requested.erase("train");
    check_same_config(stored, requested, run.checkpoint);
    step = task.restore(*run.resumed);
  }
  run.folder.write_json("config.json", {{"kind", run.kind}, {"config", config}});
  return step;
}

LoopSettings loop_settings(const TrainingRun& run, const std::string& label, const RunSettings& settings) {
  return {label, run.checkpoint, run.folder.file("metrics.jsonl"), settings.quiet, settings.log, run.folder.root()};
}

// ---- the loop -----------------------------------------------------------------------------------

namespace {

nlohmann::json eval_record(const nlohmann::json& evaluation, int64_t step, int64_t epoch) {
  nlohmann::json record = {{"event", "eval"}, {"step", step}, {"epoch", epoch}};
  for (const auto& [key, value] : evaluation.items()) record["val_" + key] = value;
  return record;
}

}  // namespace

LoopResult run_training_loop(TrainingTask& task, const TrainSchedule& schedule, int64_t start_step,
                             const LoopSettings& settings) {
  const auto per_epoch = task.batches_per_epoch();
  VQVAE2_CHECK(per_epoch >= 1, "no complete batch per epoch: lower the batch size");
  const auto total = schedule.total_steps(per_epoch);
  VQVAE2_CHECK(start_step <= total,
               "the checkpoint is at step {}, past the {} steps asked for; ask for more steps or epochs", start_step,
               total);
  if (start_step > 0) {
    MetricsLog::truncate_after(settings.metrics, start_step);
  } else {
    std::filesystem::remove(settings.metrics);
  }
  MetricsLog log(settings.metrics);
  LoopResult result;
  int64_t step = start_step;
  if (step == 0) {
    result.initial = task.evaluate();
    log.write(eval_record(result.initial, 0, 0));
  }

  ProgressBar bar(settings.label, total, step, settings.log, !settings.quiet);
  std::string last_checkpoint = start_step > 0 ? settings.checkpoint : "";
  int64_t epoch = step / per_epoch;
  task.start_epoch(epoch, step % per_epoch);
  auto window_start = std::chrono::steady_clock::now();
  int64_t window_images = 0;
  int64_t skipped_in_a_row = 0;
  while (step < total) {
    torch::manual_seed(step_seed(schedule.seed, step));  // dropout, restarts: a function of the step
    nlohmann::json figures;
    int64_t images = 0;
    if (!task.forward(figures, images)) {
      task.start_epoch(++epoch, 0);
      continue;
    }
    const auto loss = figures.at("loss").is_number() ? figures.at("loss").get<double>() : std::nan("");
    const bool skip_mode = schedule.on_nan == NanPolicy::kSkip;
    if (!std::isfinite(loss) && skip_mode && skipped_in_a_row < kMaxSkippedInARow) {
      task.discard();
      ++step;
      ++skipped_in_a_row;
      ++result.skipped;
      log.write({{"event", "skipped"}, {"step", step}, {"epoch", epoch}, {"reason", "non-finite loss"}});
      bar.message(fmt::format("warning: step {}: the loss is not finite; batch skipped ({} in a row)", step,
                              skipped_in_a_row));
    } else {
      VQVAE2_CHECK(std::isfinite(loss) || !skip_mode,
                   "{} loss was not finite for {} batches in a row (step {}); stopping. The last good checkpoint is "
                   "{}. A lower learning rate usually helps.",
                   settings.label, skipped_in_a_row + 1, step + 1,
                   last_checkpoint.empty() ? std::string("(none yet)") : "'" + last_checkpoint + "'");
      check_finite(loss, settings.label + " loss", step + 1, last_checkpoint);
      task.step();
      ++step;
      skipped_in_a_row = 0;
      window_images += images;
    }

    if (skipped_in_a_row == 0 && (step % schedule.log_every == 0 || step == total)) {
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - window_start).count();
      figures["step"] = step;
      figures["epoch"] = epoch;
      figures["lr"] = schedule.learning_rate;
      figures["images_per_second"] = window_images / std::max(seconds, 1e-9);
      log.write(figures);
      window_start = std::chrono::steady_clock::now();
      window_images = 0;
    }
    bar.update(step, fmt::format("loss {:.4f}", loss));

    const bool epoch_end = step % per_epoch == 0;
    if (epoch_end || step == total) {
      result.final = task.evaluate();
      log.write(eval_record(result.final, step, (step + per_epoch - 1) / per_epoch));
      bar.message(fmt::format("step {}: {}", step, task.summarize(result.final)));
      task.after_evaluation(step);
      if (!settings.report.empty()) {
        try {
          write_report(settings.report);
        } catch (const std::exception& e) {  // a page to look at never stops training
          bar.message(fmt::format("warning: report.html not written: {}", describe(e)));
        }
      }
    }
    const bool stopping = stop_requested();
    if (step % schedule.checkpoint_every == 0 || epoch_end || step == total || stopping) {
      task.save(settings.checkpoint, step);
      last_checkpoint = settings.checkpoint;
    }
    if (stopping) {
      result.interrupted = true;
      bar.message(fmt::format("stopped by signal at step {}; checkpoint written, resume to continue", step));
      break;
    }
  }
  bar.finish();
  if (result.final.is_null()) result.final = task.evaluate();  // resumed at the end: nothing ran
  result.steps = step;
  return result;
}

}  // namespace vqvae2
