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
#include "vqvae2/core/precision.h"
#include "vqvae2/training/run.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace vqvae2 {

class DistributedGroup;  // training/distributed.h
class GradientAverager;

// What to do with a batch whose loss is NaN or infinite.
enum class NanPolicy { kStop, kSkip };
NLOHMANN_JSON_SERIALIZE_ENUM(NanPolicy, {{NanPolicy::kStop, "stop"}, {NanPolicy::kSkip, "skip"}})

constexpr int64_t kMaxSkippedInARow = 10;

// How the learning rate moves over a run of T steps. constant: η at every step. cosine: step t
// (0-based) uses η_t = η·(1 + cos(π·t/T))/2, from η down to nearly 0 at the last step (Loshchilov &
// Hutter's SGDR without restarts): the last steps, taken with small learning rates, settle where a
// constant η keeps jumping around. Not a preset: on the digits' 8×8 top prior (700 steps) it ended
// at 1.990 held-out bits per code against 1.952 with a constant η (docs/ABLATIONS.md).
enum class LearningRateSchedule { kConstant, kCosine };
void to_json(nlohmann::json& json, LearningRateSchedule schedule);
void from_json(const nlohmann::json& json, LearningRateSchedule& schedule);  // throws Error on an unknown name

// The schedule is global: with several processes (training/distributed.h) the batch size counts the
// images of one step over all of them, so steps, epochs and results do not depend on their number.
struct TrainSchedule {
  int64_t batch_size = 32;
  int64_t epochs = 10;
  int64_t steps = 0;               // total optimisation steps; 0 = epochs × batches per epoch
  double learning_rate = 3e-4;     // Adam's η (the peak one under a schedule)
  // Constant by default, so configurations written before the schedule existed read as what they
  // trained; the presets choose.
  LearningRateSchedule lr_schedule = LearningRateSchedule::kConstant;
  uint64_t seed = 0;               // weights, data order, dropout: everything random
  int64_t log_every = 10;          // steps between metrics lines
  int64_t checkpoint_every = 500;  // steps between checkpoints (also at each epoch's end and the last step)
  int64_t grid_images = 16;        // images in each reconstruction / sample grid
  NanPolicy on_nan = NanPolicy::kStop;
  // Number format of the forward passes (core/precision.h); parameters and checkpoints stay fp32.
  // Part of the schedule: a resumed run may change it.
  Precision precision = Precision::kFP32;
  // Polyak averaging: the decay d of an exponential moving average of the weights, θ̄ ← d·θ̄ + (1−d)·θ
  // after every step (0 = off; early steps use less than d, see ModelTask::average_weights).
  // Evaluations, checkpoints' models and everything loaded from them use θ̄: a constant learning
  // rate leaves θ jumping around the minimum, and the average sits nearer its centre. d's horizon
  // 1/(1−d) steps should be well under the run's length. Off by default, so configurations written
  // before it existed read as what they trained; the presets choose.
  double weight_average = 0.0;

  // Total steps for `batches_per_epoch` batches an epoch.
  int64_t total_steps(int64_t batches_per_epoch) const { return steps > 0 ? steps : epochs * batches_per_epoch; }
  // The learning rate of step `step` (0-based) of `total`. A resumed run gets the same rates as an
  // uninterrupted one (a function of the step), unless it changes the total.
  double learning_rate_at(int64_t step, int64_t total) const;
  void validate() const;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TrainSchedule, batch_size, epochs, steps, learning_rate, lr_schedule,
                                                seed, log_every, checkpoint_every, grid_images, on_nan, precision,
                                                weight_average)

// Settings of one process that do not change what is computed: not stored as configuration.
struct RunSettings {
  std::string device = "cpu";
  bool quiet = false;            // no progress bar
  int64_t loader_prefetch = 4;   // batches decoded ahead
  std::ostream* log = nullptr;   // progress, warnings and summaries (the CLI passes &std::cerr); nullptr = silent
  // The processes training together (nullptr: this one alone). Tasks take their shard of each batch
  // and reduce their evaluations over it; the loop averages gradients and lets rank 0 write.
  std::shared_ptr<DistributedGroup> group;

  int64_t rank() const;   // 0 without a group
  int64_t ranks() const;  // 1 without a group
  // This process's share of a global batch of `batch_size`; throws unless it splits evenly.
  int64_t share_of(int64_t batch_size) const;
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
  // The learning rate of the steps from now on (the loop sets it before each step).
  virtual void set_learning_rate(double learning_rate) = 0;
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
  // Polyak averaging with decay `decay` (TrainSchedule::weight_average) from now on; 0 = none. The
  // loop calls it once, before the first step. Tasks that cannot average refuse a decay above 0.
  virtual void average_weights(double decay);
  // Exchanges the trained weights θ and their average θ̄ in the model (nothing without averaging):
  // the loop evaluates the average between two calls.
  virtual void swap_averaged_weights() {}
  // Joins the processes of `group` before the first step (the loop calls it when there are several).
  virtual void distribute(std::shared_ptr<DistributedGroup> group) {}
};

// The part of a task that is the same for every model: one module trained by Adam on the loss its
// forward() leaves in `loss_`, checkpointed with its kind and configuration, and resumed from one.
class ModelTask : public TrainingTask {
 public:
  ModelTask(std::string kind, nlohmann::json config, std::shared_ptr<torch::nn::Module> module, double learning_rate);
  ~ModelTask() override;

  // Forward passes run in `precision` on `device` (see autocast()); fp16 also scales the loss
  // (LossScaler, its state checkpointed). Tasks call it once, before training; fp32 until then.
  void set_precision(Precision precision, const torch::Device& device);

  // ∇loss_ (averaged over the group's processes), one Adam step. fp16: ∇(S·loss_) unscaled, and no
  // step when a gradient is not finite (the scaler backs off instead).
  void step() override;
  void set_learning_rate(double learning_rate) override;
  void discard() override;  // drops loss_; tasks whose forward() changes state undo it too
  // With averaging the checkpoint's model ("model/") is the average θ̄ (what loaders read); the
  // trained θ goes to "trained/", for resuming.
  void save(const std::string& path, int64_t step) override;
  // Loads the module's and the optimiser's state (and the average, when the checkpoint has one);
  // returns the checkpoint's step.
  int64_t restore(const ModelCheckpoint& checkpoint);
  // θ̄ starts from the weights now (or continues the restored average); d_t = min(d, (1+t)/(10+t))
  // at the t-th averaged step, so the first steps' random weights fade fast.
  void average_weights(double decay) override;
  void swap_averaged_weights() override;
  // Takes rank 0's parameters and buffers, and averages gradients over `group` from now on.
  void distribute(std::shared_ptr<DistributedGroup> group) override;
  // fp16 steps skipped for non-finite gradients so far (this process's run).
  int64_t overflow_steps() const { return overflow_steps_; }
  const LossScaler* loss_scaler() const { return scaler_.get(); }  // nullptr unless fp16

 protected:
  // The scope of a forward pass and its loss: autocast in the task's precision. Evaluation runs
  // outside it, in fp32, so validation figures measure the fp32 model a checkpoint holds.
  AutocastGuard autocast() const { return AutocastGuard(precision_, device_); }

  torch::Tensor loss_;  // set by forward()

 private:
  std::string kind_;
  nlohmann::json config_;
  std::shared_ptr<torch::nn::Module> module_;
  torch::optim::Adam optimizer_;
  std::unique_ptr<GradientAverager> averager_;
  Precision precision_ = Precision::kFP32;
  torch::Device device_ = torch::kCPU;
  std::unique_ptr<LossScaler> scaler_;  // fp16 only
  int64_t overflow_steps_ = 0;
  // Polyak averaging: d, θ̄ (one per parameter; empty when off) and the steps averaged so far.
  double average_decay_ = 0.0;
  std::vector<torch::Tensor> average_;
  int64_t averaged_steps_ = 0;
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
// checkpoint; the folder itself is made by start_training. Resumed: reads it, and refuses a folder
// without one.
TrainingRun open_training_run(const std::string& run_dir, const std::string& kind, bool resume);

// Starts `task` in `run`: makes the run folder (RunFolder::create), and when resuming checks that
// `config` differs from the stored configuration only in its schedule ("train") and restores the
// task from the checkpoint. Writes config.json. Trainers call it after checking their
// configuration and data, so a refused run leaves nothing on disk.
// Returns the step to continue from (0 for a fresh run).
int64_t start_training(ModelTask& task, const TrainingRun& run, const nlohmann::json& config);

struct LoopSettings {
  std::string label;       // progress bar label, e.g. "train-vqvae"
  std::string checkpoint;  // checkpoint path
  std::string metrics;     // metrics log path
  bool quiet = false;      // no progress bar
  std::ostream* log = nullptr;
  std::string report;      // run folder whose report.html is rewritten after every evaluation ("" = none)
  std::shared_ptr<DistributedGroup> group;  // several processes: only rank 0 logs and writes
};

struct LoopResult {
  int64_t steps = 0;
  bool interrupted = false;
  int64_t skipped = 0;     // batches skipped for a non-finite loss
  nlohmann::json initial;  // evaluation before the first step (when the loop started at step 0)
  nlohmann::json final;    // evaluation at the end
};

// Runs `task` from `start_step` to the schedule's total. When resuming (start_step > 0) the metrics
// log is cut back to `start_step` first, so it holds every step once. With a group, every process
// runs the loop: they agree each step on the loss and on stopping, and only rank 0 writes.
LoopResult run_training_loop(TrainingTask& task, const TrainSchedule& schedule, int64_t start_step,
                             const LoopSettings& settings);

// The loop settings of `run` for a task labelled `label`.
LoopSettings loop_settings(const TrainingRun& run, const std::string& label, const RunSettings& settings);

}  // namespace vqvae2
