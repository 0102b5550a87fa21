#include "vqvae2/stages/train_vqvae.h"

#include "test_util.h"
#include "vqvae2/core/checkpoint.h"
#include "vqvae2/core/error.h"
#include "vqvae2/stages/presets.h"
#include "vqvae2/training/run.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace vqvae2 {
namespace {

using test::quiet;

// Every parameter and buffer of the model in a checkpoint file.
std::map<std::string, torch::Tensor> tensors_of(const std::string& path) {
  const auto loaded = load<VQVAEKind>(path, torch::kCPU);
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : loaded.model->named_parameters()) out[p.key()] = p.value();
  for (const auto& b : loaded.model->named_buffers()) out[b.key()] = b.value();
  return out;
}

TEST(TrainVQVAE, ShortRunOnRealDigitsHalvesValidationErrorAndUsesMostOfTheCodebook) {
  test::TempDir dir;
  auto config = vqvae_preset("mnist");
  config.data.limit = 4000;
  config.train.batch_size = 32;
  config.train.steps = 250;
  const auto result = train_vqvae(config, dir.path(), false, quiet());
  EXPECT_EQ(result.steps, 250);
  EXPECT_LT(result.final.mse, 0.5 * result.initial.mse);
  EXPECT_LT(result.final.mse, 0.03);  // PSNR above 21 dB on held-out digits
  ASSERT_EQ(result.final.usage.size(), 2u);
  for (const auto usage : result.final.usage) EXPECT_GT(usage, 0.5);
  RecordProperty("final_mse", std::to_string(result.final.mse));
}

TEST(TrainVQVAE, ResumedRunEqualsUninterruptedRun) {
  test::TempDir straight, interrupted;
  auto config = test::tiny_config();
  config.data.limit = 128;  // ~115 training images: 7 steps an epoch, so the runs cross an epoch
  config.train.steps = 10;
  config.train.checkpoint_every = 100;
  train_vqvae(config, straight.path(), false, quiet());

  auto first_part = config;
  first_part.train.steps = 4;
  train_vqvae(first_part, interrupted.path(), false, quiet());
  const auto resumed = train_vqvae(config, interrupted.path(), true, quiet());
  EXPECT_EQ(resumed.steps, 10);

  const auto a = tensors_of(checkpoint_path(straight.path(), "vqvae"));
  const auto b = tensors_of(checkpoint_path(interrupted.path(), "vqvae"));
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, tensor] : a) EXPECT_TRUE(torch::equal(tensor, b.at(name))) << name;

  // The metrics log holds each step once, as if the run had not stopped.
  std::ifstream log(interrupted.file("metrics.jsonl"));
  std::string line;
  std::vector<int64_t> steps;
  while (std::getline(log, line)) {
    const auto record = nlohmann::json::parse(line);
    if (!record.contains("event")) steps.push_back(record["step"]);
  }
  EXPECT_EQ(steps, (std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
}

TEST(TrainVQVAE, RefusesToResumeWithAnotherModelOrToOverwriteARun) {
  test::TempDir dir;
  auto config = test::tiny_config();
  config.train.steps = 2;
  train_vqvae(config, dir.path(), false, quiet());
  EXPECT_THROW(train_vqvae(config, dir.path(), false, quiet()), Error);
  auto other = config;
  other.model.hidden = 32;
  other.train.steps = 4;
  try {
    train_vqvae(other, dir.path(), true, quiet());
    FAIL() << "resumed into another model";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("hidden: checkpoint 16, requested 32"), std::string::npos) << e.what();
  }
}

TEST(TrainVQVAE, AStopRequestWritesACheckpointAndResumeContinues) {
  test::TempDir dir;
  auto config = test::tiny_config();
  config.train.steps = 6;
  request_stop();
  const auto stopped = train_vqvae(config, dir.path(), false, quiet());
  clear_stop_request();
  EXPECT_TRUE(stopped.interrupted);
  EXPECT_EQ(stopped.steps, 1);
  EXPECT_EQ(read_checkpoint(checkpoint_path(dir.path(), "vqvae"), "vqvae").meta["state"]["step"], 1);
  const auto resumed = train_vqvae(config, dir.path(), true, quiet());
  EXPECT_FALSE(resumed.interrupted);
  EXPECT_EQ(resumed.steps, 6);
}

TEST(TrainVQVAE, WritesConfigMetricsGridsAndACheckpoint) {
  test::TempDir dir;
  auto config = test::tiny_config();
  config.data.limit = 64;
  config.train.epochs = 2;
  const auto result = train_vqvae(config, dir.path(), false, quiet());
  const auto stored = nlohmann::json::parse(test::read_text(dir.file("config.json")));
  EXPECT_EQ(stored["config"]["model"]["hidden"], 16);
  int steps = 0, evals = 0;
  std::ifstream log(dir.file("metrics.jsonl"));
  std::string line;
  while (std::getline(log, line)) {
    const auto record = nlohmann::json::parse(line);
    if (record.value("event", "") == "eval") {
      ++evals;
      EXPECT_TRUE(record.contains("val_psnr"));
      EXPECT_EQ(record["val_usage"].size(), 2u);
    } else {
      ++steps;
      for (const char* key : {"loss", "reconstruction_mse", "commitment_loss", "images_per_second"}) {
        EXPECT_TRUE(record.contains(key)) << key;
      }
      EXPECT_EQ(record["perplexity"].size(), 2u);
    }
  }
  EXPECT_EQ(steps, result.steps);
  EXPECT_EQ(evals, 3);  // before training and after each epoch
  int grids = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.file("grids"))) grids += entry.path().extension() == ".png";
  EXPECT_EQ(grids, 2);
  EXPECT_TRUE(std::filesystem::exists(checkpoint_path(dir.path(), "vqvae")));
  // The curves and the latest grid, to look at in a browser.
  const auto report = test::read_text(dir.file("report.html"));
  EXPECT_NE(report.find("<svg"), std::string::npos);
  EXPECT_NE(report.find("data:image/png;base64,"), std::string::npos);
}

TEST(TrainVQVAE, LoadedModelReproducesTheEvaluation) {
  test::TempDir dir;
  auto config = test::tiny_config();
  config.train.steps = 5;
  const auto result = train_vqvae(config, dir.path(), false, quiet());
  auto loaded = load<VQVAEKind>(dir.path(), torch::kCPU);
  EXPECT_EQ(loaded.step, 5);
  EXPECT_FALSE(loaded.model->is_training());
  const auto dataset = ImageDataset::open(loaded.config.data, loaded.config.model.format());
  BatchLoader loader(dataset, dataset->split().second, {16, false, false, 0, 2});
  const auto again = evaluate_vqvae(loaded.model, loader, torch::kCPU);
  EXPECT_NEAR(again.mse, result.final.mse, 1e-6);
}

TEST(TrainVQVAE, Bf16StepsLowerTheErrorAndLeaveAnFp32Checkpoint) {
  test::TempDir dir;
  auto config = test::tiny_config();
  config.data.limit = 128;
  config.train.steps = 14;
  config.train.precision = Precision::kBF16;
  const auto result = train_vqvae(config, dir.path(), false, quiet());
  EXPECT_EQ(result.steps, 14);
  EXPECT_LT(result.final.mse, 0.8 * result.initial.mse);
  EXPECT_FALSE(autocast_enabled(torch::kCPU));  // no autocast left behind

  // Autocast, not .to(bf16): every stored parameter and float buffer is fp32, and the model loads
  // and reconstructs in fp32.
  auto loaded = load<VQVAEKind>(dir.path(), torch::kCPU);
  EXPECT_EQ(loaded.config.train.precision, Precision::kBF16);
  for (const auto& [name, tensor] : tensors_of(result.checkpoint)) {
    if (tensor.is_floating_point()) {
      EXPECT_EQ(tensor.scalar_type(), torch::kFloat) << name;
    }
  }
  loaded.model->eval();
  torch::NoGradGuard no_grad;
  const auto out = loaded.model->forward(torch::rand({2, 1, 16, 16}) * 2 - 1);
  EXPECT_EQ(out.reconstruction.scalar_type(), torch::kFloat);
  EXPECT_TRUE(torch::isfinite(out.reconstruction).all().item<bool>());
}

TEST(TrainVQVAE, Fp16IsRefusedOnTheCpuBeforeAnythingIsWritten) {
  test::TempDir dir;
  auto config = test::tiny_config();
  config.train.precision = Precision::kFP16;
  test::expect_error([&] { train_vqvae(config, dir.file("run"), false, quiet()); },
                     "fp16 needs a CUDA device: LibTorch's CPU autocast runs bf16 only");
  EXPECT_FALSE(std::filesystem::exists(dir.file("run/vqvae.ckpt")));
}

}  // namespace
}  // namespace vqvae2
