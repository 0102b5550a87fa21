#include "vqvae2/training/trainer.h"

#include "test_util.h"
#include "vqvae2/core/checkpoint.h"
#include "vqvae2/core/error.h"

#include <gtest/gtest.h>

#include <algorithm>
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

// Loop settings labelled "t", without a progress bar.
LoopSettings quiet_loop(const std::string& checkpoint, const std::string& metrics) {
  LoopSettings settings;
  settings.label = "t";
  settings.checkpoint = checkpoint;
  settings.metrics = metrics;
  settings.quiet = true;
  return settings;
}

TEST(TrainLoop, RunsEpochsEvaluatesAndCheckpointsOnSchedule) {
  test::TempDir dir;
  FakeTask task({});
  const auto result = run_training_loop(task, schedule(10, NanPolicy::kStop), 0, quiet_loop(dir.file("c"), dir.file("m.jsonl")));
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
    run_training_loop(task, schedule(10, NanPolicy::kStop), 0, quiet_loop(dir.file("c"), dir.file("m.jsonl")));
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
  const auto result = run_training_loop(task, schedule(10, NanPolicy::kSkip), 0, quiet_loop(dir.file("c"), dir.file("m.jsonl")));
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
    run_training_loop(task, schedule(40, NanPolicy::kSkip), 0, quiet_loop(dir.file("c"), dir.file("m.jsonl")));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not finite for 11 batches in a row"), std::string::npos) << e.what();
  }
  EXPECT_EQ(task.discarded_, kMaxSkippedInARow);
}

TEST(TrainLoop, ResumingCutsTheMetricsLogBackToTheCheckpoint) {
  test::TempDir dir;
  FakeTask first({});
  run_training_loop(first, schedule(6, NanPolicy::kStop), 0, quiet_loop(dir.file("c"), dir.file("m.jsonl")));
  FakeTask second({});
  run_training_loop(second, schedule(8, NanPolicy::kStop), 3, quiet_loop(dir.file("c"), dir.file("m.jsonl")));
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
  run_training_loop(whole, cosine, 0, quiet_loop(dir.file("c"), dir.file("m.jsonl")));
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
  run_training_loop(resumed, cosine, 5, quiet_loop(dir.file("c"), dir.file("m.jsonl")));
  EXPECT_EQ(resumed.rates_, std::vector<double>(whole.rates_.begin() + 5, whole.rates_.end()));
  // Constant: the same rate throughout.
  FakeTask constant({});
  run_training_loop(constant, schedule(8, NanPolicy::kStop), 0, quiet_loop(dir.file("c"), dir.file("m.jsonl")));
  EXPECT_EQ(constant.rates_, std::vector<double>(8, TrainSchedule().learning_rate));
}

// A linear model y = w·x + b fitted to 1 by Adam on batches x = (k, k) for the k-th batch of an epoch;
// its evaluation is its parameters (w, b).
class LinearTask : public ModelTask {
 public:
  explicit LinearTask(torch::nn::Linear linear)
      : ModelTask("linear", nlohmann::json::object(), linear.ptr(), 0.1), linear_(std::move(linear)) {}
  int64_t batches_per_epoch() const override { return 4; }
  void start_epoch(int64_t, int64_t first_batch) override { batch_ = first_batch; }
  bool forward(nlohmann::json& figures, int64_t& images) override {
    if (batch_ == 4) return false;
    const auto x = torch::full({2, 2}, static_cast<double>(++batch_));
    loss_ = (linear_(x) - 1).pow(2).mean();
    figures = {{"loss", loss_.item<double>()}};
    images = 2;
    return true;
  }
  void step() override {
    ModelTask::step();
    trained_.push_back(parameters());
  }
  nlohmann::json evaluate() override {
    const auto p = parameters();
    return {{"parameters", std::vector<float>(p.data_ptr<float>(), p.data_ptr<float>() + p.numel())}};
  }
  std::string summarize(const nlohmann::json&) const override { return "ok"; }
  torch::Tensor parameters() const { return torch::cat({linear_->weight.detach().flatten(), linear_->bias.detach()}); }

  torch::nn::Linear linear_;
  int64_t batch_ = 0;
  std::vector<torch::Tensor> trained_;  // the parameters after each step
};

torch::Tensor stored_parameters(const std::string& path, const std::string& prefix) {
  const auto checkpoint = read_model_checkpoint(path, "linear");
  return torch::cat({checkpoint.tensors.at(prefix + "/weight").flatten(), checkpoint.tensors.at(prefix + "/bias")});
}

TEST(ModelTask, PolyakAveragingEvaluatesAndCheckpointsTheAverageAndResumesOnTheSameCurve) {
  test::TempDir dir;
  auto s = schedule(6, NanPolicy::kStop);
  s.learning_rate = 0.1;
  s.weight_average = 0.5;
  torch::manual_seed(0);
  LinearTask whole{torch::nn::Linear(2, 1)};
  const auto initial = whole.parameters();
  const auto result = run_training_loop(whole, s, 0, quiet_loop(dir.file("whole.ckpt"), dir.file("m.jsonl")));
  ASSERT_EQ(whole.trained_.size(), 6u);
  // θ̄ ← d_t·θ̄ + (1 − d_t)·θ_t with d_t = min(d, (1 + t)/(10 + t)), from θ̄ = θ_0.
  auto average = initial.clone();
  for (size_t t = 0; t < whole.trained_.size(); ++t) {
    const double d = std::min(0.5, (1.0 + t) / (10.0 + t));
    average = d * average + (1 - d) * whole.trained_[t];
  }
  EXPECT_FALSE(torch::allclose(average, whole.trained_.back(), 1e-3, 1e-3));  // the test can tell them apart
  // The evaluations measured θ̄; the model holds θ again afterwards.
  const auto evaluated = torch::tensor(result.final.at("parameters").get<std::vector<float>>());
  EXPECT_TRUE(torch::allclose(evaluated, average, 1e-5, 1e-6));
  EXPECT_TRUE(torch::equal(whole.parameters(), whole.trained_.back()));
  // The checkpoint's model, which loaders read, is θ̄; θ is kept for resuming.
  EXPECT_TRUE(torch::allclose(stored_parameters(dir.file("whole.ckpt"), "model"), average, 1e-5, 1e-6));
  EXPECT_TRUE(torch::equal(stored_parameters(dir.file("whole.ckpt"), "trained"), whole.trained_.back()));

  // Stopped after 3 steps and resumed from the checkpoint: the same θ and θ̄ as the uninterrupted run.
  auto half = s;
  half.steps = 3;
  torch::manual_seed(0);
  LinearTask started{torch::nn::Linear(2, 1)};
  run_training_loop(started, half, 0, quiet_loop(dir.file("half.ckpt"), dir.file("h.jsonl")));
  torch::manual_seed(1);
  LinearTask resumed{torch::nn::Linear(2, 1)};
  EXPECT_EQ(resumed.restore(read_model_checkpoint(dir.file("half.ckpt"), "linear")), 3);
  EXPECT_TRUE(torch::equal(resumed.parameters(), whole.trained_[2]));
  run_training_loop(resumed, s, 3, quiet_loop(dir.file("half.ckpt"), dir.file("h.jsonl")));
  EXPECT_TRUE(torch::allclose(stored_parameters(dir.file("half.ckpt"), "model"), average, 1e-6, 1e-7));
  EXPECT_TRUE(torch::allclose(stored_parameters(dir.file("half.ckpt"), "trained"), whole.trained_.back(), 1e-6, 1e-7));
}

TEST(ModelTask, WithoutAveragingTheCheckpointHoldsTheTrainedWeightsOnly) {
  test::TempDir dir;
  torch::manual_seed(0);
  LinearTask task{torch::nn::Linear(2, 1)};
  const auto result = run_training_loop(task, schedule(4, NanPolicy::kStop), 0, quiet_loop(dir.file("c"), dir.file("m")));
  const auto evaluated = torch::tensor(result.final.at("parameters").get<std::vector<float>>());
  EXPECT_TRUE(torch::equal(evaluated, task.trained_.back()));
  EXPECT_TRUE(torch::equal(stored_parameters(dir.file("c"), "model"), task.trained_.back()));
  EXPECT_TRUE(read_model_checkpoint(dir.file("c"), "linear").tensors.names("trained/").empty());
}

TEST(TrainLoop, ATaskThatCannotAverageItsWeightsRefusesAWeightAverage) {
  test::TempDir dir;
  FakeTask task({});
  auto s = schedule(4, NanPolicy::kStop);
  s.weight_average = 0.9;
  test::expect_error([&] { run_training_loop(task, s, 0, quiet_loop(dir.file("c"), dir.file("m.jsonl"))); },
                     "this training does not average its weights; give a weight average of 0, not 0.9");
  EXPECT_EQ(task.steps_, 0);
}

TEST(TrainSchedule, TheWeightAverageRoundTripsOldSchedulesReadAsOffAndADecayOfOneIsRefused) {
  TrainSchedule s;
  EXPECT_EQ(s.weight_average, 0.0);
  s.weight_average = 0.995;
  const nlohmann::json json = s;
  EXPECT_EQ(json.get<TrainSchedule>().weight_average, 0.995);
  auto old = json;  // written before weight averaging existed
  old.erase("weight_average");
  EXPECT_EQ(old.get<TrainSchedule>().weight_average, 0.0);
  s.weight_average = 1.0;  // θ̄ would never move from the initial weights
  test::expect_error([&] { s.validate(); }, "the weight average's decay must be in [0, 1)");
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
