#include "vqvae2/stages/trained.h"

#include "test_util.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace vqvae2 {
namespace {

TEST(Trained, LoadsTheModelItsCheckpointDescribesInEvalMode) {
  test::TempDir dir;
  test::untrained_vqvae(dir.file("vqvae"));
  const auto stored = read_model_checkpoint(dir.file("vqvae/vqvae.ckpt"), "vqvae");
  for (const auto& source : {dir.file("vqvae"), dir.file("vqvae/vqvae.ckpt")}) {
    const auto trained = load<VQVAEKind>(source, torch::kCPU);
    EXPECT_FALSE(trained.model->is_training());
    EXPECT_EQ(trained.checkpoint, dir.file("vqvae/vqvae.ckpt"));
    EXPECT_EQ(trained.step, 0);
    EXPECT_EQ(nlohmann::json(trained.config), stored.config);
    for (const auto& p : trained.model->named_parameters()) {
      EXPECT_TRUE(torch::equal(p.value(), stored.tensors.at("model/" + p.key()))) << p.key();
    }
  }
}

TEST(Trained, PriorsLoadToo) {
  test::TempDir dir;
  const auto folders = test::untrained_priors(dir.path());
  ASSERT_EQ(folders.size(), 2u);
  const auto bottom = load<PriorKind>(folders[0], torch::kCPU);
  EXPECT_TRUE(bottom.model->options().conditional);
  EXPECT_EQ(bottom.model->options().stack.condition_channels, bottom.config.model.condition.channels)
      << "the stack's conditioning width follows the conditioning stack";
  EXPECT_FALSE(load<PriorKind>(folders[1], torch::kCPU).model->options().conditional);
}

TEST(Trained, MissingWrongAndForeignCheckpointsAreClearErrors) {
  test::TempDir dir;
  test::untrained_vqvae(dir.file("vqvae"));
  const auto priors = test::untrained_priors(dir.path());
  test::expect_error([&] { load<VQVAEKind>(dir.file("nowhere"), torch::kCPU); },
                     "checkpoint '" + dir.file("nowhere") + "' does not exist");
  test::expect_error([&] { load<VQVAEKind>(priors[0], torch::kCPU); }, "has no vqvae.ckpt");
  test::expect_error([&] { load<VQVAEKind>(priors[0] + "/prior.ckpt", torch::kCPU); },
                     "holds a prior checkpoint, but a vqvae checkpoint is needed here");
  test::expect_error([&] { checkpoint_path("", "prior"); }, "no prior given");
}

TEST(Trained, ConfigurationsValidateEveryPart) {
  auto config = test::tiny_config();
  EXPECT_NO_THROW(config.validate());
  config.data.validation_fraction = 2;
  test::expect_error([&] { config.validate(); }, "validation fraction must be in [0, 1)");
  config = test::tiny_config();
  config.train.batch_size = 0;
  test::expect_error([&] { config.validate(); }, "batch size must be positive, got 0");
  TrainPriorConfig prior;
  prior.image_dims = -1;
  test::expect_error([&] { prior.validate(); }, "image dimensions must be >= 0");
}

}  // namespace
}  // namespace vqvae2
