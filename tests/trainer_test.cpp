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
  void step() override {
    ++steps_;
    rates_.push_back(rate_);
  }
  void set_learning_rate(double learning_rate) override { rate_ = learning_rate; }
  void discard() override { ++discarded_; }
  nlohmann::json evaluate() override { return {{"figure", steps_}}; }
  std::string summarize(const nlohmann::json&) const override { return "ok"; }
  void save(const std::string& path, int64_t step) override { saved_.push_back(step); }

  std::set<int64_t> bad_;
  int64_t batch_ = 0, forwards_ = 0, steps_ = 0, discarded_ = 0;
  double rate_ = -1;
  std::vector<double> rates_;  // the learning rate of each step taken
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

TEST(TrainLoop, ACosineScheduleFallsFromThePeakToNearlyZeroAndResumesOnTheSameCurve) {
  test::TempDir dir;
  auto cosine = schedule(8, NanPolicy::kStop);
  cosine.learning_rate = 0.01;
  cosine.lr_schedule = LearningRateSchedule::kCosine;
  FakeTask whole({});
  run_training_loop(whole, cosine, 0, {"t", dir.file("c"), dir.file("m.jsonl"), true});
  ASSERT_EQ(whole.rates_.size(), 8u);
  EXPECT_DOUBLE_EQ(whole.rates_.front(), 0.01);                    // step 0: the peak
  EXPECT_NEAR(whole.rates_[4], 0.005, 1e-12);                       // half way: half of it
  EXPECT_NEAR(whole.rates_.back(), 0.01 * (1 + std::cos(M_PI * 7 / 8)) / 2, 1e-12);  // last: nearly 0
  for (size_t i = 1; i < whole.rates_.size(); ++i) EXPECT_LT(whole.rates_[i], whole.rates_[i - 1]);
  // The log shows the rate each logged step used.
  std::ifstream log(dir.file("m.jsonl"));
  std::vector<double> logged;
  for (std::string line; std::getline(log, line);) {
    const auto record = nlohmann::json::parse(line);
    if (!record.contains("event")) logged.push_back(record["lr"]);
  }
  EXPECT_EQ(logged, whole.rates_);
  // A run resumed at step 5 takes the rates an uninterrupted one would.
  FakeTask resumed({});
  run_training_loop(resumed, cosine, 5, {"t", dir.file("c"), dir.file("m.jsonl"), true});
  EXPECT_EQ(resumed.rates_, std::vector<double>(whole.rates_.begin() + 5, whole.rates_.end()));
  // Constant: the same rate throughout.
  FakeTask constant({});
  run_training_loop(constant, schedule(8, NanPolicy::kStop), 0, {"t", dir.file("c"), dir.file("m.jsonl"), true});
  EXPECT_EQ(constant.rates_, std::vector<double>(8, TrainSchedule().learning_rate));
}

TEST(TrainSchedule, TheLearningRateScheduleRoundTripsAndOldSchedulesReadAsConstant) {
  TrainSchedule s;
  EXPECT_EQ(s.lr_schedule, LearningRateSchedule::kConstant);
  s.lr_schedule = LearningRateSchedule::kCosine;
  const nlohmann::json json = s;
  EXPECT_EQ(json.at("lr_schedule"), "cosine");
  EXPECT_EQ(json.get<TrainSchedule>().lr_schedule, LearningRateSchedule::kCosine);
  auto old = json;  // written before learning rate schedules existed
  old.erase("lr_schedule");
  EXPECT_EQ(old.get<TrainSchedule>().lr_schedule, LearningRateSchedule::kConstant);
  auto bad = json;
  bad["lr_schedule"] = "linear";
  test::expect_error([&] { bad.get<TrainSchedule>(); }, "unknown learning rate schedule 'linear': choose constant or cosine");
}

TEST(TrainSchedule, PrecisionRoundTripsThroughJsonAndOldSchedulesReadAsFp32) {
  TrainSchedule s;
  EXPECT_EQ(s.precision, Precision::kFP32);
  s.precision = Precision::kBF16;
  const nlohmann::json json = s;
  EXPECT_EQ(json.at("precision"), "bf16");
  EXPECT_EQ(json.get<TrainSchedule>().precision, Precision::kBF16);
  auto old = json;  // written before mixed precision existed
  old.erase("precision");
  EXPECT_EQ(old.get<TrainSchedule>().precision, Precision::kFP32);
  auto bad = json;
  bad["precision"] = "fp64";
  test::expect_error([&] { bad.get<TrainSchedule>(); }, "unknown precision 'fp64': choose fp32, bf16 or fp16");
}

}  // namespace
}  // namespace vqvae2
