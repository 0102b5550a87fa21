// The training loop both stages share: per-step reseeding (so --resume is exact), a progress bar
// with ETA, JSON-lines metrics, evaluation at every epoch's end, atomic checkpoints at intervals,
// a clean stop on SIGINT/SIGTERM, and a guard that stops on a non-finite loss before it is applied
// (or skips the batch, with on_nan = "skip", up to kMaxSkippedInARow times in a row).
#pragma once

#include "vqvae2/stages/train_vqvae.h"

#include <nlohmann/json.hpp>

#include <string>

namespace vqvae2 {

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

constexpr int64_t kMaxSkippedInARow = 10;

struct LoopSettings {
  std::string label;       // progress bar label, e.g. "train-vqvae"
  std::string checkpoint;  // checkpoint path
  std::string metrics;     // metrics log path
  bool quiet = false;
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

}  // namespace vqvae2
