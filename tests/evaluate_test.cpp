#include "vqvae2/stages/evaluate.h"

#include "test_util.h"
#include "vqvae2/core/metrics.h"
#include "vqvae2/data/image.h"

#include <gtest/gtest.h>

#include <cmath>
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

}  // namespace
}  // namespace vqvae2
