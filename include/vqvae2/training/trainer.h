// Training any model of the library, done once for all of them: the schedule, the settings of one
// process, starting or resuming a run folder, checkpoints of a module and its Adam optimiser, and the
// loop every stage shares.
//
// The loop reseeds at every step (so a resumed run computes exactly what an uninterrupted one
// would), shows a progress bar with ETA, writes JSON-lines metrics, evaluates at every epoch's end
// (and then rewrites the run's report.html: curves and grids to look at, core/report.h),
// writes atomic checkpoints at intervals, stops cleanly on SIGINT/SIGTERM, and never applies a
// non-finite loss: it stops (NanPolicy::kStop) or skips the batch (kSkip, at most
// kMaxSkippedInARow times in a row).
#pragma once

#include "vqvae2/core/checkpoint.h"
#include "vqvae2/training/run.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <memory>
#include <optional>
#include <ostream>
#include <string>

namespace vqvae2 {

// What to do with a batch whose loss is NaN or infinite.
enum class NanPolicy { kStop, kSkip };
NLOHMANN_JSON_SERIALIZE_ENUM(NanPolicy, {{NanPolicy::kStop, "stop"}, {NanPolicy::kSkip, "skip"}})

constexpr int64_t kMaxSkippedInARow = 10;

struct TrainSchedule {
  int64_t batch_size = 32;
  int64_t epochs = 10;
  int64_t steps = 0;               // total optimisation steps; 0 = epochs × batches per epoch
  double learning_rate = 3e-4;     // Adam
  uint64_t seed = 0;               // weights, data order, dropout: everything random
  int64_t log_every = 10;          // steps between metrics lines
  int64_t checkpoint_every = 500;  // steps between checkpoints (also at each epoch's end and the last step)
  int64_t grid_images = 16;        // images in each reconstruction / sample grid
  NanPolicy on_nan = NanPolicy::kStop;

  // Total steps for `batches_per_epoch` batches an epoch.
  int64_t total_steps(int64_t batches_per_epoch) const { return steps > 0 ? steps : epochs * batches_per_epoch; }
  void validate() const;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TrainSchedule, batch_size, epochs, steps, learning_rate, seed,
                                                log_every, checkpoint_every, grid_images, on_nan)

// Settings of one process that do not change what is computed: not stored as configuration.
struct RunSettings {
  std::string device = "cpu";
  bool quiet = false;            // no progress bar
  int64_t loader_prefetch = 4;   // batches decoded ahead
  std::ostream* log = nullptr;   // progress, warnings and summaries (the CLI passes &std::cerr); nullptr = silent
};

// What a model brings to the loop.
class TrainingTask {
 public:
  virtual ~TrainingTask() = default;
  virtual int64_t batches_per_epoch() const = 0;
  // Positions the data at batch `first_batch` of epoch `epoch`.
  virtual void start_epoch(int64_t epoch, int64_t first_batch) = 0;
  // Forward pass on the next batch; false at the end of the epoch. Returns the batch's figures in
  // `figures` ("loss" required) and its size in `images`.
  virtual bool forward(nlohmann::json& figures, int64_t& images) = 0;
  // Backward pass and optimiser step for the batch of the last forward().
  virtual void step() = 0;
  // Forgets the last forward() (its loss was not finite and the schedule skips such batches),
  // undoing whatever it changed.
  virtual void discard() = 0;
  // Validation figures (keys become "val_<key>" in the metrics log).
  virtual nlohmann::json evaluate() = 0;
  // One console line for an evaluation.
  virtual std::string summarize(const nlohmann::json& evaluation) const = 0;
  // After an evaluation at training step `step` (grids and the like).
  virtual void after_evaluation(int64_t step) {}
  // Writes a checkpoint for training step `step` to `path` (atomically).
  virtual void save(const std::string& path, int64_t step) = 0;
};

// The part of a task that is the same for every model: one module trained by Adam on the loss its
// forward() leaves in `loss_`, checkpointed with its kind and configuration, and resumed from one.
class ModelTask : public TrainingTask {
 public:
  ModelTask(std::string kind, nlohmann::json config, std::shared_ptr<torch::nn::Module> module, double learning_rate);

  void step() override;     // ∇loss_, one Adam step
  void discard() override;  // drops loss_; tasks whose forward() changes state undo it too
  void save(const std::string& path, int64_t step) override;
  // Loads the module's and the optimiser's state; returns the checkpoint's step.
  int64_t restore(const ModelCheckpoint& checkpoint);

 protected:
  torch::Tensor loss_;  // set by forward()

 private:
  std::string kind_;
  nlohmann::json config_;
  std::shared_ptr<torch::nn::Module> module_;
  torch::optim::Adam optimizer_;
};

// A run folder opened for training: fresh, or resumed from its checkpoint, which is read once here
// (its configuration is what a resumed run continues with; see ModelCheckpoint::config_as).
struct TrainingRun {
  RunFolder folder;
  std::string kind;
  std::string checkpoint;                  // <folder>/<kind>.ckpt
  std::optional<ModelCheckpoint> resumed;  // set when resuming
};
// Opens `run_dir` for a model of `kind`. Fresh: refuses a folder that already holds such a
// checkpoint. Resumed: reads it, and refuses a folder without one.
TrainingRun open_training_run(const std::string& run_dir, const std::string& kind, bool resume);

// Starts `task` in `run`: when resuming, checks that `config` differs from the stored configuration
// only in its schedule ("train") and restores the task from the checkpoint. Writes config.json.
// Returns the step to continue from (0 for a fresh run).
int64_t start_training(ModelTask& task, const TrainingRun& run, const nlohmann::json& config);

struct LoopSettings {
  std::string label;       // progress bar label, e.g. "train-vqvae"
  std::string checkpoint;  // checkpoint path
  std::string metrics;     // metrics log path
  bool quiet = false;      // no progress bar
  std::ostream* log = nullptr;
  std::string report;      // run folder whose report.html is rewritten after every evaluation ("" = none)
};

struct LoopResult {
  int64_t steps = 0;
  bool interrupted = false;
  int64_t skipped = 0;     // batches skipped for a non-finite loss
  nlohmann::json initial;  // evaluation before the first step (when the loop started at step 0)
  nlohmann::json final;    // evaluation at the end
};

// Runs `task` from `start_step` to the schedule's total. When resuming (start_step > 0) the metrics
// log is cut back to `start_step` first, so it holds every step once.
LoopResult run_training_loop(TrainingTask& task, const TrainSchedule& schedule, int64_t start_step,
                             const LoopSettings& settings);

// The loop settings of `run` for a task labelled `label`.
LoopSettings loop_settings(const TrainingRun& run, const std::string& label, const RunSettings& settings);

}  // namespace vqvae2
