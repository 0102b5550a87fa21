#include "vqvae2/training/trainer.h"

#include "vqvae2/core/device.h"
#include "vqvae2/core/error.h"
#include "vqvae2/core/metrics.h"
#include "vqvae2/core/progress.h"
#include "vqvae2/core/report.h"
#include "vqvae2/training/distributed.h"
#include "vqvae2/training/run.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <optional>

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
  VQVAE2_CHECK(weight_average >= 0 && weight_average < 1,
               "the weight average's decay must be in [0, 1) (0 = off; 0.995 averages over about 200 steps), got {}",
               weight_average);
}

void to_json(nlohmann::json& json, LearningRateSchedule schedule) {
  json = schedule == LearningRateSchedule::kCosine ? "cosine" : "constant";
}

void from_json(const nlohmann::json& json, LearningRateSchedule& schedule) {
  const auto name = json.get<std::string>();
  VQVAE2_CHECK(name == "constant" || name == "cosine", "unknown learning rate schedule '{}': choose constant or cosine",
               name);
  schedule = name == "cosine" ? LearningRateSchedule::kCosine : LearningRateSchedule::kConstant;
}

double TrainSchedule::learning_rate_at(int64_t step, int64_t total) const {
  if (lr_schedule == LearningRateSchedule::kConstant || total <= 0) return learning_rate;
  const double progress = std::clamp(static_cast<double>(step) / static_cast<double>(total), 0.0, 1.0);
  constexpr double kPi = 3.14159265358979323846;
  return learning_rate * 0.5 * (1.0 + std::cos(kPi * progress));
}

int64_t RunSettings::rank() const { return group ? group->rank() : 0; }
int64_t RunSettings::ranks() const { return group ? group->size() : 1; }
int64_t RunSettings::share_of(int64_t batch_size) const {
  VQVAE2_CHECK(batch_size % ranks() == 0,
               "the batch size {} (images per step over all processes) does not split evenly over {} processes; give a "
               "multiple of {}",
               batch_size, ranks(), ranks());
  return batch_size / ranks();
}

void TrainingTask::average_weights(double decay) {
  VQVAE2_CHECK(decay == 0, "this training does not average its weights; give a weight average of 0, not {}", decay);
}

// ---- a module trained by Adam -------------------------------------------------------------------

namespace {

// The scope in which the task's model holds its averaged weights θ̄ (TrainSchedule::weight_average):
// what evaluations measure, pictures show and checkpoints' models hold.
class AveragedWeights {
 public:
  explicit AveragedWeights(TrainingTask& task) : task_(task) { task_.swap_averaged_weights(); }
  ~AveragedWeights() { task_.swap_averaged_weights(); }
  AveragedWeights(const AveragedWeights&) = delete;
  AveragedWeights& operator=(const AveragedWeights&) = delete;

 private:
  TrainingTask& task_;
};

}  // namespace

ModelTask::ModelTask(std::string kind, nlohmann::json config, std::shared_ptr<torch::nn::Module> module,
                     double learning_rate)
    : kind_(std::move(kind)),
      config_(std::move(config)),
      module_(std::move(module)),
      optimizer_(module_->parameters(), torch::optim::AdamOptions(learning_rate)) {}

ModelTask::~ModelTask() = default;

void ModelTask::set_learning_rate(double learning_rate) {
  for (auto& group : optimizer_.param_groups()) {
    static_cast<torch::optim::AdamOptions&>(group.options()).lr(learning_rate);
  }
}

void ModelTask::set_precision(Precision precision, const torch::Device& device) {
  check_precision(precision, device);
  precision_ = precision;
  device_ = device;
  if (precision == Precision::kFP16) {
    if (!scaler_) scaler_ = std::make_unique<LossScaler>();
  } else {
    scaler_.reset();
  }
}

void ModelTask::step() {
  optimizer_.zero_grad();
  if (averager_) averager_->prepare();
  (scaler_ ? scaler_->scale(loss_) : loss_).backward();
  if (averager_) averager_->finish();
  // Averaged gradients are the same on every process, so all of them skip or step together.
  const bool finite = !scaler_ || scaler_->unscale(module_->parameters());
  if (finite) {
    optimizer_.step();
    if (!average_.empty()) {
      torch::NoGradGuard no_grad;
      const auto t = static_cast<double>(averaged_steps_);
      const double decay = std::min(average_decay_, (1.0 + t) / (10.0 + t));
      const auto parameters = module_->parameters();
      for (size_t i = 0; i < parameters.size(); ++i) average_[i].mul_(decay).add_(parameters[i].detach(), 1.0 - decay);
      ++averaged_steps_;
    }
  } else {
    ++overflow_steps_;
  }
  if (scaler_) scaler_->update(finite);
  loss_ = torch::Tensor();
}

void ModelTask::distribute(std::shared_ptr<DistributedGroup> group) {
  // Every rank built and restored the same model; taking rank 0's copy makes that a certainty.
  std::vector<torch::Tensor> floats;
  for (const auto& p : module_->parameters()) floats.push_back(p);
  for (const auto& b : module_->buffers()) {
    if (b.scalar_type() == torch::kFloat) {
      floats.push_back(b);
    } else {
      group->broadcast({b});
    }
  }
  if (!floats.empty()) group->broadcast(floats);
  averager_ = std::make_unique<GradientAverager>(group, module_->parameters());
}

void ModelTask::discard() { loss_ = torch::Tensor(); }

void ModelTask::save(const std::string& path, int64_t step) {
  NamedTensors extra;  // fp16: the loss scaler's state beside the model's and Adam's
  if (scaler_) scaler_->save(extra, "scaler");
  if (!average_.empty()) {  // θ and the steps averaged, for resuming
    save_module(*module_, extra, "trained");
    extra.add("average/steps", torch::tensor(averaged_steps_, torch::kLong));
  }
  const AveragedWeights averaged(*this);  // the model written is θ̄ (θ without averaging)
  write_model_checkpoint(path, kind_, config_, step, *module_, &optimizer_, extra);
}

int64_t ModelTask::restore(const ModelCheckpoint& checkpoint) {
  const auto& tensors = checkpoint.tensors;
  load_module(*module_, tensors, "model", checkpoint.path);
  load_adam(optimizer_, tensors, "optimizer", checkpoint.path);
  // A run trained in another precision until now starts scaling afresh.
  if (scaler_ && tensors.contains("scaler/scale")) scaler_->load(tensors, "scaler");
  average_.clear();
  averaged_steps_ = 0;
  if (tensors.contains("average/steps")) {
    // "model/" held the average θ̄; training goes on from the trained θ.
    for (const auto& parameter : module_->parameters()) average_.push_back(parameter.detach().clone());
    load_module(*module_, tensors, "trained", checkpoint.path);
    averaged_steps_ = tensors.at("average/steps").item<int64_t>();
  }
  return checkpoint.step;
}

void ModelTask::average_weights(double decay) {
  VQVAE2_CHECK(decay >= 0 && decay < 1, "the weight average's decay must be in [0, 1), got {}", decay);
  average_decay_ = decay;
  if (decay == 0) {  // a run resumed without averaging goes on from θ and forgets θ̄
    average_.clear();
    averaged_steps_ = 0;
    return;
  }
  if (!average_.empty()) return;  // restored from the checkpoint
  for (const auto& parameter : module_->parameters()) average_.push_back(parameter.detach().clone());
}

void ModelTask::swap_averaged_weights() {
  if (average_.empty()) return;
  torch::NoGradGuard no_grad;
  const auto parameters = module_->parameters();
  for (size_t i = 0; i < parameters.size(); ++i) {
    auto trained = parameters[i].detach().clone();
    parameters[i].detach().copy_(average_[i]);
    average_[i].copy_(trained);
  }
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
  run.folder.create();
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
  return {label,         run.checkpoint,      run.folder.file("metrics.jsonl"), settings.quiet, settings.log,
          run.folder.root(), settings.group};
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
  const auto& group = settings.group;
  const bool main = !group || group->is_main();  // the process that logs and writes
  const auto ranks = group ? group->size() : 1;
  std::ostream* console = main ? settings.log : nullptr;
  const auto per_epoch = task.batches_per_epoch();
  VQVAE2_CHECK(per_epoch >= 1, "no complete batch per epoch: lower the batch size");
  const auto total = schedule.total_steps(per_epoch);
  VQVAE2_CHECK(start_step <= total,
               "the checkpoint is at step {}, past the {} steps asked for; ask for more steps or epochs", start_step,
               total);
  std::optional<MetricsLog> log;
  if (main) {
    if (start_step > 0) {
      MetricsLog::truncate_after(settings.metrics, start_step);
    } else {
      std::filesystem::remove(settings.metrics);
    }
    log.emplace(settings.metrics);
  }
  const auto record = [&](const nlohmann::json& line) {
    if (log) log->write(line);
  };
  if (group) task.distribute(group);
  task.average_weights(schedule.weight_average);
  LoopResult result;
  int64_t step = start_step;
  if (step == 0) {
    const AveragedWeights averaged(task);
    result.initial = task.evaluate();
    record(eval_record(result.initial, 0, 0));
  }

  ProgressBar bar(settings.label, total, step, console, !settings.quiet && main);
  std::string last_checkpoint = start_step > 0 ? settings.checkpoint : "";
  int64_t epoch = step / per_epoch;
  task.start_epoch(epoch, step % per_epoch);
  auto window_start = std::chrono::steady_clock::now();
  int64_t window_images = 0, window_steps = 0, window_bytes = group ? group->bytes_reduced() : 0;
  int64_t skipped_in_a_row = 0;
  double learning_rate = schedule.learning_rate_at(step, total);  // of the last step taken, for the log
  const auto seed = rank_seed(schedule.seed, group ? group->rank() : 0);
  while (step < total) {
    torch::manual_seed(step_seed(seed, step));  // dropout, restarts: a function of the step (and rank)
    nlohmann::json figures;
    int64_t images = 0;
    if (!task.forward(figures, images)) {
      task.start_epoch(++epoch, 0);
      continue;
    }
    // Several processes: the batch's figures are the means over ranks, and a signal to any rank
    // stops them all after this step.
    bool stop_agreed = false;
    if (group) stop_agreed = average_figures(*group, figures, stop_requested());
    const auto loss = figures.at("loss").is_number() ? figures.at("loss").get<double>() : std::nan("");
    const bool skip_mode = schedule.on_nan == NanPolicy::kSkip;
    if (!std::isfinite(loss) && skip_mode && skipped_in_a_row < kMaxSkippedInARow) {
      task.discard();
      ++step;
      ++skipped_in_a_row;
      ++result.skipped;
      record({{"event", "skipped"}, {"step", step}, {"epoch", epoch}, {"reason", "non-finite loss"}});
      bar.message(fmt::format("warning: step {}: the loss is not finite; batch skipped ({} in a row)", step,
                              skipped_in_a_row));
    } else {
      VQVAE2_CHECK(std::isfinite(loss) || !skip_mode,
                   "{} loss was not finite for {} batches in a row (step {}); stopping. The last good checkpoint is "
                   "{}. A lower learning rate usually helps.",
                   settings.label, skipped_in_a_row + 1, step + 1,
                   last_checkpoint.empty() ? std::string("(none yet)") : "'" + last_checkpoint + "'");
      check_finite(loss, settings.label + " loss", step + 1, last_checkpoint);
      learning_rate = schedule.learning_rate_at(step, total);
      task.set_learning_rate(learning_rate);
      task.step();
      ++step;
      skipped_in_a_row = 0;
      window_images += images * ranks;
      ++window_steps;
    }

    if (skipped_in_a_row == 0 && (step % schedule.log_every == 0 || step == total)) {
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - window_start).count();
      figures["step"] = step;
      figures["epoch"] = epoch;
      figures["lr"] = learning_rate;
      figures["images_per_second"] = window_images / std::max(seconds, 1e-9);
      if (group) {
        figures["ranks"] = ranks;
        figures["reduced_bytes_per_step"] = (group->bytes_reduced() - window_bytes) / std::max<int64_t>(1, window_steps);
        window_bytes = group->bytes_reduced();
      }
      record(figures);
      window_start = std::chrono::steady_clock::now();
      window_images = 0;
      window_steps = 0;
    }
    bar.update(step, fmt::format("loss {:.4f}", loss));

    const bool epoch_end = step % per_epoch == 0;
    if (epoch_end || step == total) {
      const AveragedWeights averaged(task);
      result.final = task.evaluate();
      record(eval_record(result.final, step, (step + per_epoch - 1) / per_epoch));
      bar.message(fmt::format("step {}: {}", step, task.summarize(result.final)));
      if (main) {
        task.after_evaluation(step);
        if (!settings.report.empty()) {
          try {
            write_report(settings.report);
          } catch (const std::exception& e) {  // a page to look at never stops training
            bar.message(fmt::format("warning: report.html not written: {}", describe(e)));
          }
        }
      }
    }
    const bool stopping = group ? stop_agreed : stop_requested();
    if (step % schedule.checkpoint_every == 0 || epoch_end || step == total || stopping) {
      if (main) task.save(settings.checkpoint, step);
      last_checkpoint = settings.checkpoint;
    }
    if (stopping) {
      result.interrupted = true;
      bar.message(fmt::format("stopped by signal at step {}; checkpoint written, resume to continue", step));
      break;
    }
  }
  bar.finish();
  if (result.final.is_null()) {  // resumed at the end: nothing ran
    const AveragedWeights averaged(task);
    result.final = task.evaluate();
  }
  result.steps = step;
  return result;
}

}  // namespace vqvae2
