#include "vqvae2/training/trainer.h"

#include "test_util.h"
#include "vqvae2/core/error.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <set>

namespace vqvae2 {
namespace {

// A task whose loss is NaN on the forward passes listed in `bad`.
class FakeTask : public TrainingTask {
 public:
  explicit FakeTask(std::set<int64_t> bad) : bad_(std::move(bad)) {}
  int64_t batches_per_epoch() const override { return 4; }
  void start_epoch(int64_t, int64_t first_batch) override { batch_ = first_batch; }
  bool forward(nlohmann::json& figures, int64_t& images) override {
    if (batch_ == 4) return false;
    ++batch_;
    ++forwards_;
    figures = {{"loss", bad_.count(forwards_) ? std::nan("") : 1.0 / forwards_}};
    images = 2;
    return true;
  }
  void step() override { ++steps_; }
  void discard() override { ++discarded_; }
  nlohmann::json evaluate() override { return {{"figure", steps_}}; }
  std::string summarize(const nlohmann::json&) const override { return "ok"; }
  void save(const std::string& path, int64_t step) override { saved_.push_back(step); }

  std::set<int64_t> bad_;
  int64_t batch_ = 0, forwards_ = 0, steps_ = 0, discarded_ = 0;
  std::vector<int64_t> saved_;
};

TrainSchedule schedule(int64_t steps, NanPolicy on_nan) {
  TrainSchedule s;
  s.steps = steps;
  s.log_every = 1;
  s.checkpoint_every = 3;
  s.on_nan = on_nan;
  return s;
}

TEST(TrainLoop, RunsEpochsEvaluatesAndCheckpointsOnSchedule) {
  test::TempDir dir;
  FakeTask task({});
  const auto result = run_training_loop(task, schedule(10, NanPolicy::kStop), 0, {"t", dir.file("c"), dir.file("m.jsonl"), true});
  EXPECT_EQ(result.steps, 10);
  EXPECT_EQ(task.steps_, 10);
  // Every 3 steps, at each epoch's end (4, 8) and at the last step.
  EXPECT_EQ(task.saved_, (std::vector<int64_t>{3, 4, 6, 8, 9, 10}));
  EXPECT_EQ(result.final["figure"], 10);
  EXPECT_EQ(result.initial["figure"], 0);
}

TEST(TrainLoop, StopsOnANonFiniteLossBeforeApplyingIt) {
  test::TempDir dir;
  FakeTask task({5});
  try {
    run_training_loop(task, schedule(10, NanPolicy::kStop), 0, {"t", dir.file("c"), dir.file("m.jsonl"), true});
    FAIL() << "a NaN loss was not noticed";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("NaN at step 5"), std::string::npos) << message;
    EXPECT_NE(message.find(dir.file("c")), std::string::npos) << "names the last good checkpoint: " << message;
  }
  EXPECT_EQ(task.steps_, 4);  // the NaN batch was never applied
}

TEST(TrainLoop, SkipModeDiscardsTheBatchAndContinues) {
  test::TempDir dir;
  FakeTask task({2, 6, 7});
  const auto result = run_training_loop(task, schedule(10, NanPolicy::kSkip), 0, {"t", dir.file("c"), dir.file("m.jsonl"), true});
  EXPECT_EQ(result.steps, 10);
  EXPECT_EQ(result.skipped, 3);
  EXPECT_EQ(task.discarded_, 3);
  EXPECT_EQ(task.steps_, 7);
  std::ifstream log(dir.file("m.jsonl"));
  int skipped_events = 0;
  for (std::string line; std::getline(log, line);) {
    const auto record = nlohmann::json::parse(line);  // every line is valid JSON
    skipped_events += record.value("event", "") == "skipped";
  }
  EXPECT_EQ(skipped_events, 3);
}

TEST(TrainLoop, SkipModeGivesUpAfterTooManyInARow) {
  test::TempDir dir;
  std::set<int64_t> bad;
  for (int64_t i = 3; i < 40; ++i) bad.insert(i);
  FakeTask task(bad);
  try {
    run_training_loop(task, schedule(40, NanPolicy::kSkip), 0, {"t", dir.file("c"), dir.file("m.jsonl"), true});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not finite for 11 batches in a row"), std::string::npos) << e.what();
  }
  EXPECT_EQ(task.discarded_, kMaxSkippedInARow);
}

TEST(TrainLoop, ResumingCutsTheMetricsLogBackToTheCheckpoint) {
  test::TempDir dir;
  FakeTask first({});
  run_training_loop(first, schedule(6, NanPolicy::kStop), 0, {"t", dir.file("c"), dir.file("m.jsonl"), true});
  FakeTask second({});
  run_training_loop(second, schedule(8, NanPolicy::kStop), 3, {"t", dir.file("c"), dir.file("m.jsonl"), true});
  std::ifstream log(dir.file("m.jsonl"));
  std::vector<int64_t> steps;
  for (std::string line; std::getline(log, line);) {
    const auto record = nlohmann::json::parse(line);
    if (!record.contains("event")) steps.push_back(record["step"]);
  }
  EXPECT_EQ(steps, (std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8}));
}

}  // namespace
}  // namespace vqvae2
