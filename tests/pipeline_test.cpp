#include "vqvae2/stages/pipeline.h"

#include "test_util.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <numeric>

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
  config.digit_classifier = test::digit_classifier_path();
  const auto result = run_pipeline(config, test::quiet());
  EXPECT_FALSE(result.interrupted);
  EXPECT_EQ(result.vqvae.steps, 6);
  ASSERT_EQ(result.priors.size(), 2u);
  EXPECT_EQ(result.priors[0].checkpoint, dir.file("main/prior-level1/prior.ckpt"));  // top first
  EXPECT_EQ(result.samples.images.size(0), 3);
  EXPECT_TRUE(std::filesystem::exists(dir.file("main/samples.png")));
  EXPECT_GT(result.codes.train_count, 0);
  // On the embedded digits the samples are scored as digits.
  ASSERT_TRUE(result.samples.digit_score.has_value());
  EXPECT_EQ(result.samples.digit_score->samples.images, 3);
  EXPECT_EQ(result.samples.digit_score->real.images, 3);

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
  config.score_digits = false;
  run_pipeline(config, test::quiet());
  config.resume = true;
  config.preset = "small";  // another model: the stored VQ-VAE must not be continued as one
  test::expect_error([&] { run_pipeline(config, test::quiet()); }, "was written for another configuration");
}

TEST(Pipeline, Vqvae1IsOneLevelOfCodesWithAGatedPixelCnnPriorAndBothLearn) {
  test::TempDir dir;
  PipelineConfig config;
  config.out = dir.file("v1");
  config.preset = "vqvae1";
  config.limit = 400;
  config.vqvae_steps = 30;
  config.prior_steps = 20;
  config.samples = 2;
  config.score_digits = false;
  const auto result = run_pipeline(config, test::quiet());
  EXPECT_FALSE(result.samples.digit_score.has_value());
  EXPECT_LT(result.vqvae.final.mse, 0.7 * result.vqvae.initial.mse);
  ASSERT_EQ(result.vqvae.final.usage.size(), 1u);
  ASSERT_EQ(result.priors.size(), 1u);
  EXPECT_LT(result.priors[0].final_bits_per_code, result.priors[0].initial_bits_per_code - 1.0);
  const auto prior = load<PriorKind>(dir.file("v1/prior-level0"), torch::kCPU);
  EXPECT_FALSE(prior.config.model.stack.attention) << "VQ-VAE-1's prior is a plain gated PixelCNN";
  EXPECT_FALSE(prior.config.model.conditional);
  ASSERT_EQ(result.samples.codes.size(), 1u);
  EXPECT_EQ(result.samples.codes[0].sizes(), (std::vector<int64_t>{2, 8, 8}));
  EXPECT_EQ(result.samples.images.sizes(), (std::vector<int64_t>{2, 1, 32, 32}));
}

TEST(Pipeline, TheLineageTrainsAVaeVqvae1AndVqvae2OnOneBudgetAndComparesThem) {
  test::TempDir dir;
  LineageConfig config;
  config.out = dir.file("lineage");
  config.limit = 300;
  config.autoencoder_steps = 4;
  config.prior_steps = 2;
  config.samples = 2;
  config.compare_images = 16;
  config.digit_samples = 5;
  config.digit_classifier = test::digit_classifier_path();
  const auto result = run_lineage(config, test::quiet());
  EXPECT_FALSE(result.interrupted);
  EXPECT_EQ(result.vae.steps, 4);
  EXPECT_EQ(result.vqvae1.vqvae.steps, 4);
  EXPECT_EQ(result.vqvae2.vqvae.steps, 4);
  ASSERT_EQ(result.vqvae1.priors.size(), 1u);
  ASSERT_EQ(result.vqvae2.priors.size(), 2u);
  for (const auto& p : result.vqvae1.priors) EXPECT_EQ(p.steps, 2);
  for (const auto& p : result.vqvae2.priors) EXPECT_EQ(p.steps, 2);
  const auto& models = result.comparison.models;
  ASSERT_EQ(models.size(), 3u);
  EXPECT_EQ(models[0].label, "VAE");
  EXPECT_EQ(models[1].label, "VQ-VAE-1");
  EXPECT_EQ(models[2].label, "VQ-VAE-2");
  EXPECT_EQ(models[1].usage.size(), 1u);
  EXPECT_EQ(models[2].usage.size(), 2u);
  for (const auto& m : models) EXPECT_TRUE(m.bits_per_dim.has_value()) << m.label;
  // The embedded digits: every model's samples get a digit score, beside real digits as many at a time.
  for (const auto& m : models) {
    ASSERT_TRUE(m.digit_score.has_value()) << m.label;
    EXPECT_EQ(m.digit_score->images, 5) << m.label;
    EXPECT_EQ(std::accumulate(m.digit_score->read_as.begin(), m.digit_score->read_as.end(), int64_t{0}), 5) << m.label;
  }
  ASSERT_TRUE(result.comparison.real_digits.has_value());
  EXPECT_EQ(result.comparison.real_digits->images, 5);
  EXPECT_FALSE(result.vqvae2.samples.digit_score.has_value()) << "the comparison scores, not each pipeline";
  const auto markdown = test::read_text(dir.file("lineage/compare/compare.md"));
  EXPECT_NE(markdown.find("| digit score⁷ |"), std::string::npos) << markdown;
  EXPECT_NE(markdown.find("Real held-out digits, 5 at a time"), std::string::npos) << markdown;
  EXPECT_EQ(result.comparison.images, 16);
  for (const char* file : {"compare/compare.md", "compare/compare.json", "compare/samples.png"}) {
    EXPECT_TRUE(std::filesystem::exists(dir.file("lineage/" + std::string(file)))) << file;
  }
  test::expect_error([&] { run_lineage(config, test::quiet()); }, "already holds a lineage run; resume it");
}

}  // namespace
}  // namespace vqvae2
