#include "vqvae2/stages/train_vae.h"

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

// A VAE small enough to train in a second or two: 16×16 grey digits, a 4×4×8 latent map.
TrainVAEConfig tiny_vae() {
  TrainVAEConfig config;
  const auto vq = test::tiny_config();
  config.data = vq.data;
  config.train = vq.train;
  config.model.image_size = 16;
  config.model.channels = 1;
  config.model.hidden = 16;
  config.model.res_blocks = 1;
  config.model.res_channels = 8;
  config.model.stride = 4;
  config.model.latent_channels = 8;
  return config;
}

std::vector<nlohmann::json> records(const std::string& path) {
  std::ifstream log(path);
  std::vector<nlohmann::json> out;
  for (std::string line; std::getline(log, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

TEST(TrainVAE, ShortRunOnRealDigitsLowersTheNegativeElboByAQuarter) {
  test::TempDir dir;
  auto config = tiny_vae();
  config.data.limit = 2000;
  config.train.batch_size = 32;
  config.train.steps = 150;
  config.train.log_every = 50;
  const auto result = train_vae(config, dir.path(), false, quiet());
  EXPECT_EQ(result.steps, 150);
  // From about 3.5 bits/dim untrained to about 2.4 after 150 steps.
  EXPECT_LT(result.final.bits_per_dim, 0.75 * result.initial.bits_per_dim);
  EXPECT_LT(result.final.mse, result.initial.mse);
  EXPECT_NEAR(result.final.negative_elbo_nats, result.final.kl_nats + result.final.nll_nats, 1e-6);
  EXPECT_NEAR(result.final.bits_per_dim, functional::bits_per_dim(result.final.negative_elbo_nats, 256), 1e-9);
  ASSERT_EQ(result.final.kl_per_dim.size(), 8u);
  EXPECT_GT(result.final.active_dims, 0);
  RecordProperty("final_bits_per_dim", std::to_string(result.final.bits_per_dim));
}

TEST(TrainVAE, ResumedRunEqualsUninterruptedRun) {
  test::TempDir straight, interrupted;
  auto config = tiny_vae();
  config.data.limit = 128;  // 7 steps an epoch: the runs cross an epoch
  config.model.kl_warmup_steps = 6;  // β_KL must follow the step across the resume
  config.train.steps = 10;
  config.train.checkpoint_every = 100;
  train_vae(config, straight.path(), false, quiet());
  auto first_part = config;
  first_part.train.steps = 4;
  train_vae(first_part, interrupted.path(), false, quiet());
  const auto resumed = train_vae(config, interrupted.path(), true, quiet());
  EXPECT_EQ(resumed.steps, 10);

  const auto a = load<VAEKind>(straight.path(), torch::kCPU);
  const auto b = load<VAEKind>(interrupted.path(), torch::kCPU);
  const auto pa = a.model->named_parameters(), pb = b.model->named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (const auto& p : pa) EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << p.key();

  // The metrics log holds each step once, with β_KL = step / 6 counted from 0.
  std::vector<int64_t> steps;
  std::vector<double> weights;
  for (const auto& r : records(interrupted.file("metrics.jsonl"))) {
    if (r.contains("event")) continue;
    steps.push_back(r["step"]);
    weights.push_back(r["kl_weight"]);
  }
  EXPECT_EQ(steps, (std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
  for (size_t i = 0; i < weights.size(); ++i) EXPECT_DOUBLE_EQ(weights[i], std::min(1.0, i / 6.0)) << i;
}

TEST(TrainVAE, ConfigurationRoundTripsThroughJsonAndTheCheckpoint) {
  auto config = tiny_vae();
  config.model.kl_warmup_steps = 7;
  config.model.free_bits = 0.25;
  config.data.split_seed = 5;
  const nlohmann::json j = config;
  EXPECT_EQ(j.get<TrainVAEConfig>().model.free_bits, 0.25);
  EXPECT_EQ(nlohmann::json(j.get<TrainVAEConfig>()), j);

  test::TempDir dir;
  config.train.steps = 2;
  train_vae(config, dir.path(), false, quiet());
  const auto loaded = load<VAEKind>(dir.path(), torch::kCPU);
  EXPECT_EQ(nlohmann::json(loaded.config), nlohmann::json(config));
  EXPECT_EQ(loaded.step, 2);
  EXPECT_FALSE(loaded.model->is_training());
  const auto stored = nlohmann::json::parse(test::read_text(dir.file("config.json")));
  EXPECT_EQ(stored["kind"], "vae");
  EXPECT_EQ(stored["config"]["model"]["kl_warmup_steps"], 7);
  test::expect_error([&] { load<VQVAEKind>(dir.file("vae.ckpt"), torch::kCPU); }, "vae");
}

TEST(TrainVAE, WritesMetricsWithTheKlOfEveryLatentChannelAndGrids) {
  test::TempDir dir;
  auto config = tiny_vae();
  config.data.limit = 64;
  config.train.epochs = 2;
  const auto result = train_vae(config, dir.path(), false, quiet());
  int steps = 0, evals = 0;
  for (const auto& r : records(dir.file("metrics.jsonl"))) {
    if (r.value("event", "") == "eval") {
      ++evals;
      EXPECT_EQ(r["val_kl_per_dim"].size(), 8u);
      for (const char* key : {"val_bits_per_dim", "val_kl_nats", "val_nll_nats", "val_active_dims", "val_psnr"}) {
        EXPECT_TRUE(r.contains(key)) << key;
      }
    } else {
      ++steps;
      for (const char* key : {"loss", "bits_per_dim", "kl", "nll", "kl_weight", "active_dims", "images_per_second"}) {
        EXPECT_TRUE(r.contains(key)) << key;
      }
    }
  }
  EXPECT_EQ(steps, result.steps);
  EXPECT_EQ(evals, 3);  // before training and after each epoch
  int reconstructions = 0, samples = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.file("grids"))) {
    const auto name = entry.path().filename().string();
    reconstructions += name.rfind("reconstructions-", 0) == 0;
    samples += name.rfind("samples-", 0) == 0;
  }
  EXPECT_EQ(reconstructions, 2);  // after each epoch
  EXPECT_EQ(samples, 2);
  EXPECT_NE(test::read_text(dir.file("report.html")).find("<svg"), std::string::npos);
}

TEST(TrainVAE, EvaluationIsRepeatableAndReproducedByTheLoadedModel) {
  test::TempDir dir;
  auto config = tiny_vae();
  config.train.steps = 5;
  const auto result = train_vae(config, dir.path(), false, quiet());
  auto loaded = load<VAEKind>(dir.path(), torch::kCPU);
  const auto dataset = ImageDataset::open(loaded.config.data, {16, 1});
  BatchLoader loader(dataset, dataset->split().second, {config.train.batch_size, false, false, 0, 2});
  const auto again = evaluate_vae(loaded.model, loader, torch::kCPU);
  EXPECT_NEAR(again.bits_per_dim, result.final.bits_per_dim, 1e-9);
  EXPECT_EQ(again.kl_per_dim, evaluate_vae(loaded.model, loader, torch::kCPU).kl_per_dim);
}

TEST(TrainVAE, RefusesToResumeWithAnotherModelOrToOverwriteARun) {
  test::TempDir dir;
  auto config = tiny_vae();
  config.train.steps = 2;
  train_vae(config, dir.path(), false, quiet());
  EXPECT_THROW(train_vae(config, dir.path(), false, quiet()), Error);
  auto other = config;
  other.model.latent_channels = 4;
  other.train.steps = 4;
  test::expect_error([&] { train_vae(other, dir.path(), true, quiet()); }, "latent_channels: checkpoint 8, requested 4");
}

TEST(TrainVAE, AStopRequestWritesACheckpointAndResumeContinues) {
  test::TempDir dir;
  auto config = tiny_vae();
  config.train.steps = 5;
  request_stop();
  const auto stopped = train_vae(config, dir.path(), false, quiet());
  clear_stop_request();
  EXPECT_TRUE(stopped.interrupted);
  EXPECT_EQ(stopped.steps, 1);
  const auto resumed = train_vae(config, dir.path(), true, quiet());
  EXPECT_FALSE(resumed.interrupted);
  EXPECT_EQ(resumed.steps, 5);
}

TEST(TrainVAE, SamplesDependOnlyOnTheSeed) {
  auto model = GaussianVAE(tiny_vae().model);
  const auto a = vae_samples(model, 3, 11), b = vae_samples(model, 3, 11), c = vae_samples(model, 3, 12);
  EXPECT_EQ(a.sizes(), (std::vector<int64_t>{3, 1, 16, 16}));
  EXPECT_EQ(a.scalar_type(), torch::kUInt8);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_FALSE(torch::equal(a, c));
}

}  // namespace
}  // namespace vqvae2
