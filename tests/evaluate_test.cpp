#include "vqvae2/stages/evaluate.h"

#include "test_util.h"
#include "vqvae2/core/metrics.h"
#include "vqvae2/data/image.h"
#include "vqvae2/stages/codes.h"
#include "vqvae2/stages/train_prior.h"
#include "vqvae2/stages/train_vqvae.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <numeric>

namespace vqvae2 {
namespace {

TEST(Evaluate, VQVAEFiguresAreTheMeanOverEveryImage) {
  test::TempDir dir;
  test::untrained_vqvae(dir.file("vqvae"));
  auto vqvae = load<VQVAEKind>(dir.file("vqvae"), torch::kCPU);
  const auto dataset = open_images(vqvae, "", nullptr);
  std::vector<int64_t> indices(37);  // not a multiple of the batch: the last batch counts by its size
  std::iota(indices.begin(), indices.end(), 0);
  BatchLoader loader(dataset, indices, {16, false, false, 0, 2});
  const auto e = evaluate_vqvae(vqvae.model, loader, torch::kCPU);

  std::vector<torch::Tensor> images;
  for (const auto i : indices) images.push_back(dataset->get(i));
  torch::NoGradGuard no_grad;
  const auto out = vqvae.model->forward(to_model_range(torch::stack(images)));
  EXPECT_EQ(e.images, 37);
  EXPECT_NEAR(e.mse, out.reconstruction_loss.item<double>(), 1e-6);
  EXPECT_NEAR(e.psnr, psnr_from_mse(e.mse), 1e-9);
  ASSERT_EQ(e.usage.size(), 2u);
  const auto used = std::get<0>(torch::_unique(out.levels[1].codes)).numel();
  EXPECT_NEAR(e.usage[1], used / 32.0, 1e-9);
  EXPECT_EQ(Evaluation::from_json(e.to_json()).to_json(), e.to_json());
}

TEST(Evaluate, ReconstructWritesPairsOfTheHeldOutImages) {
  test::TempDir dir;
  test::untrained_vqvae(dir.file("vqvae"));
  ReconstructConfig config;
  config.checkpoint = dir.file("vqvae");
  config.images = 3;
  config.out = dir.file("r.png");
  const auto result = reconstruct(config, test::quiet());
  EXPECT_EQ(result.images, 3);
  EXPECT_EQ(result.grid.sizes(), (std::vector<int64_t>{1, 2 + 18, 2 + 6 * 18}));  // 6 tiles of 16 + gaps, one row
  EXPECT_NEAR(result.psnr, psnr_from_mse(result.mse), 1e-9);
  EXPECT_EQ(load_image(config.out, 20, 1).size(0), 1);
  config.images = 0;
  test::expect_error([&] { reconstruct(config, test::quiet()); }, "the number of images must be positive, got 0");
}

TEST(Evaluate, PriorNLLIsTheMeanCrossEntropyOfItsCodes) {
  test::TempDir dir;
  const auto folders = test::untrained_priors(dir.path());
  auto bottom = load<PriorKind>(folders[0], torch::kCPU);
  CodeStore store;
  store.levels = {{8, 8, 32}, {4, 4, 32}};
  store.codes = {torch::randint(0, 32, {7, 8, 8}, torch::kLong), torch::randint(0, 32, {7, 4, 4}, torch::kLong)};
  const auto data = level_codes(store, 0);
  EXPECT_TRUE(torch::equal(data.condition, store.codes[1]));
  EXPECT_FALSE(level_codes(store, 1).condition.defined());
  test::expect_error([&] { level_codes(store, 2); }, "level 2 does not exist: the code store has levels 0..1");
  const auto nats = evaluate_prior(bottom.model, data, /*batch_size=*/3, torch::kCPU);
  torch::NoGradGuard no_grad;
  EXPECT_NEAR(nats, bottom.model->loss(data.codes, data.condition).item<double>(), 1e-5);
  EXPECT_GT(nats, 0.5 * std::log(32.0));  // untrained: near uniform
}

TEST(Evaluate, ATrainedRunScoresItsOwnHeldOutImagesAsTrainingDid) {
  test::TempDir dir;
  auto config = test::tiny_config();
  config.train.steps = 4;
  const auto trained = train_vqvae(config, dir.file("vqvae"), false, test::quiet());
  EvaluateConfig evaluation;
  evaluation.checkpoint = dir.file("vqvae");
  evaluation.json = dir.file("figures.json");
  const auto result = evaluate(evaluation, test::quiet());
  EXPECT_EQ(result.kind, "vqvae");
  EXPECT_EQ(result.step, 4);
  EXPECT_NEAR(result.vqvae.mse, trained.final.mse, 1e-6);
  EXPECT_EQ(result.vqvae.usage, trained.final.usage);
  ASSERT_EQ(static_cast<int64_t>(result.images.size()), trained.final.images);
  double mean = 0;
  for (const auto& image : result.images) mean += image.mse / static_cast<double>(result.images.size());
  EXPECT_NEAR(mean, result.vqvae.mse, 1e-6) << "the per-image errors average to the figure";
  const auto json = nlohmann::json::parse(test::read_text(evaluation.json));
  EXPECT_NEAR(json["figures"]["mse"].get<double>(), result.vqvae.mse, 1e-12);
  EXPECT_EQ(json["images"].size(), result.images.size());
  EXPECT_NE(result.summary().find("MSE"), std::string::npos);

  // The prior trained on its codes scores them as its training did.
  extract_codes({dir.file("vqvae"), dir.file("codes"), 64}, test::quiet());
  const auto codes = read_prior_codes(dir.file("codes"));
  auto prior = prior_config_for(codes, 1, PriorSize::kSmall);
  prior.model.stack.channels = prior.model.stack.res_channels = 16;
  prior.model.stack.heads = 2;
  prior.train.steps = 3;
  prior.train.batch_size = 16;
  const auto prior_result = train_prior(prior, codes, open_training_run(dir.file("top"), "prior", false), test::quiet());
  EvaluateConfig prior_evaluation;
  prior_evaluation.checkpoint = dir.file("top");
  const auto scored = evaluate(prior_evaluation, test::quiet());
  EXPECT_EQ(scored.kind, "prior");
  EXPECT_NEAR(scored.bits_per_code, prior_result.final_bits_per_code, 1e-6);
  EXPECT_NEAR(scored.bits_per_dim, prior_result.final_bits_per_dim, 1e-7);
  EXPECT_EQ(scored.maps, codes.validation.size());
}

TEST(Evaluate, ReconstructionsOfAFolderKeepTheirSourceNames) {
  test::TempDir dir;
  test::untrained_vqvae(dir.file("vqvae"));
  std::filesystem::create_directories(dir.file("images/cats"));
  for (const auto* name : {"one.png", "cats/two.png", "three.jpg"}) {
    save_png(dir.file(std::string("images/") + name), torch::randint(0, 255, {1, 16, 16}, torch::kLong).to(torch::kUInt8));
  }
  EvaluateConfig config;
  config.checkpoint = dir.file("vqvae/vqvae.ckpt");
  config.data = dir.file("images");
  config.out_dir = dir.file("out");
  const auto result = evaluate(config, test::quiet());
  ASSERT_EQ(result.images.size(), 3u);
  EXPECT_EQ(result.images[0].name, "cats/two.png");
  for (const auto* name : {"one.png", "cats/two.png", "three.png"}) {
    EXPECT_TRUE(std::filesystem::exists(dir.file(std::string("out/") + name))) << name;
  }
  // Each written reconstruction is the model's output for its source, and its error is the score.
  auto vqvae = load<VQVAEKind>(config.checkpoint, torch::kCPU);
  const auto source = load_image(dir.file("images/one.png"), 16, 1);
  torch::NoGradGuard no_grad;
  const auto x = to_model_range(source.unsqueeze(0));
  const auto out = vqvae.model->forward(x);
  EXPECT_TRUE(torch::equal(load_image(dir.file("out/one.png"), 16, 1), to_pixels(out.reconstruction)[0]));
  EXPECT_NEAR(result.images[1].mse, out.reconstruction_loss.item<double>(), 1e-6);
}

TEST(Evaluate, WrongPairingsAreClearErrors) {
  test::TempDir dir;
  test::untrained_vqvae(dir.file("vqvae"));
  const auto priors = test::untrained_priors(dir.path());
  EvaluateConfig config;
  config.checkpoint = priors[1];
  config.data = dir.path();
  test::expect_error([&] { evaluate(config, test::quiet()); }, "images are evaluated with a VQ-VAE");
  config = {};
  config.checkpoint = dir.file("vqvae");
  config.codes = dir.file("codes.vq2");
  test::expect_error([&] { evaluate(config, test::quiet()); }, "a code store is evaluated with a prior");
  std::filesystem::copy(priors[1] + "/prior.ckpt", dir.file("vqvae/prior.ckpt"));
  config = {};
  config.checkpoint = dir.file("vqvae");
  test::expect_error([&] { evaluate(config, test::quiet()); }, "holds 2 checkpoints");
  config.checkpoint = priors[0];
  config.codes = dir.file("nowhere.vq2");
  test::expect_error([&] { evaluate(config, test::quiet()); }, "code store '" + dir.file("nowhere.vq2") + "' does not exist");
}

}  // namespace
}  // namespace vqvae2
