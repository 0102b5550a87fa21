#include "vqvae2/stages/pipeline.h"

#include "test_util.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace vqvae2 {
namespace {

TEST(Pipeline, RunsEveryStageThenResumesWithoutRepeatingWork) {
  test::TempDir dir;
  PipelineConfig config;
  config.out = dir.file("main");
  config.limit = 300;
  config.vqvae_steps = 6;
  config.prior_steps = 2;
  config.samples = 3;
  const auto result = run_pipeline(config, test::quiet());
  EXPECT_FALSE(result.interrupted);
  EXPECT_EQ(result.vqvae.steps, 6);
  ASSERT_EQ(result.priors.size(), 2u);
  EXPECT_EQ(result.priors[0].checkpoint, dir.file("main/prior-level1/prior.ckpt"));  // top first
  EXPECT_EQ(result.samples.images.size(0), 3);
  EXPECT_TRUE(std::filesystem::exists(dir.file("main/samples.png")));
  EXPECT_GT(result.codes.train_count, 0);

  test::expect_error([&] { run_pipeline(config, test::quiet()); }, "already holds a pipeline run; resume it");
  config.resume = true;
  const auto again = run_pipeline(config, test::quiet());
  EXPECT_EQ(again.vqvae.steps, 6);
  EXPECT_EQ(again.priors[1].steps, 2);
  EXPECT_TRUE(torch::equal(again.samples.images, result.samples.images)) << "the same models sample the same images";
}

TEST(Pipeline, AResumedStageKeepsItsConfiguration) {
  test::TempDir dir;
  PipelineConfig config;
  config.out = dir.file("main");
  config.limit = 100;
  config.vqvae_steps = 2;
  config.prior_steps = 1;
  config.samples = 1;
  run_pipeline(config, test::quiet());
  config.resume = true;
  config.preset = "small";  // another model: the stored VQ-VAE must not be continued as one
  test::expect_error([&] { run_pipeline(config, test::quiet()); }, "was written for another configuration");
}

}  // namespace
}  // namespace vqvae2
