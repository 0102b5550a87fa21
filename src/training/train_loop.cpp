#include "vqvae2/training/train_loop.h"

#include "vqvae2/core/device.h"
#include "vqvae2/core/error.h"
#include "vqvae2/core/metrics.h"
#include "vqvae2/core/progress.h"
#include "vqvae2/training/run.h"

#include <torch/torch.h>

#include <chrono>
#include <filesystem>

namespace vqvae2 {

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
  VQVAE2_CHECK(per_epoch >= 1, "no complete batch per epoch: lower --batch-size");
  const auto total = schedule.steps > 0 ? schedule.steps : schedule.epochs * per_epoch;
  VQVAE2_CHECK(start_step <= total, "the checkpoint is at step {}, past the {} steps asked for; raise --steps or --epochs",
               start_step, total);
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

  ProgressBar bar(settings.label, total, step, !settings.quiet);
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
    if (!std::isfinite(loss) && schedule.on_nan == "skip" && skipped_in_a_row < kMaxSkippedInARow) {
      task.discard();
      ++step;
      ++skipped_in_a_row;
      ++result.skipped;
      log.write({{"event", "skipped"}, {"step", step}, {"epoch", epoch}, {"reason", "non-finite loss"}});
      bar.message(fmt::format("warning: step {}: the loss is not finite; batch skipped ({} in a row)", step,
                              skipped_in_a_row));
    } else {
      VQVAE2_CHECK(std::isfinite(loss) || schedule.on_nan != "skip",
                   "{} loss was not finite for {} batches in a row (step {}); stopping. The last good checkpoint is "
                   "{}. A lower --lr usually helps.",
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
    }
    const bool stopping = stop_requested();
    if (step % schedule.checkpoint_every == 0 || epoch_end || step == total || stopping) {
      task.save(settings.checkpoint, step);
      last_checkpoint = settings.checkpoint;
    }
    if (stopping) {
      result.interrupted = true;
      bar.message(fmt::format("stopped by signal at step {}; checkpoint written, continue with --resume", step));
      break;
    }
  }
  bar.finish();
  if (result.final.is_null()) result.final = task.evaluate();  // resumed at the end: nothing ran
  result.steps = step;
  return result;
}

}  // namespace vqvae2
