#include "vqvae2/stages/train_prior.h"

#include "test_util.h"
#include "vqvae2/core/error.h"
#include "vqvae2/stages/codes.h"
#include "vqvae2/stages/train_vqvae.h"
#include "vqvae2/data/image.h"
#include "vqvae2/stages/presets.h"
#include "vqvae2/models/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

namespace vqvae2 {
namespace {

using test::quiet;

// One VQ-VAE trained briefly on the embedded digits, its codes extracted: shared by the tests.
class Stage2 : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    auto config = vqvae_preset("mnist");
    config.data.limit = 3000;
    config.train.batch_size = 32;
    config.train.steps = 150;
    train_vqvae(config, dir_->file("vqvae"), false, quiet());
    extract_codes({dir_->file("vqvae"), dir_->file("codes"), 64}, quiet());
    codes_ = new PriorCodes(read_prior_codes(dir_->file("codes")));
  }
  static void TearDownTestSuite() {
    delete codes_;
    delete dir_;
    codes_ = nullptr;
    dir_ = nullptr;
  }

  static TrainPriorConfig config_for(const std::string& level_name, int64_t steps) {
    auto config = prior_config_for(*codes_, parse_level(level_name, 2), PriorSize::kSmall);
    // Narrower than the small preset, so the suite stays fast on two cores.
    config.model.stack.channels = config.model.stack.res_channels = 32;
    config.model.condition.channels = 32;
    config.train.batch_size = 16;
    config.train.steps = steps;
    config.train.learning_rate = 1e-3;
    config.train.log_every = 1;
    return config;
  }

  static test::TempDir* dir_;
  static PriorCodes* codes_;
};
test::TempDir* Stage2::dir_ = nullptr;
PriorCodes* Stage2::codes_ = nullptr;

TEST_F(Stage2, ExtractedCodesDecodeToTheVQVAEsOwnReconstructions) {
  const auto store = read_code_store(dir_->file("codes/val.vq2"));
  auto loaded = load<VQVAEKind>(dir_->file("vqvae"), torch::kCPU);
  ASSERT_EQ(store.levels.size(), 2u);
  EXPECT_EQ(store.levels[0].height, 8);  // the mnist preset: 32×32 digits, ×4 then ×2
  EXPECT_EQ(store.levels[1].height, 4);
  EXPECT_EQ(store.meta["split"], "val");
  EXPECT_EQ(store.meta["image_size"], 32);
  const auto dataset = ImageDataset::open(loaded.config.data, loaded.config.model.format());
  const auto validation = dataset->split().second;
  ASSERT_EQ(store.size(), static_cast<int64_t>(validation.size()));
  std::vector<torch::Tensor> images;
  for (int i = 0; i < 8; ++i) images.push_back(dataset->get(validation[i]));
  torch::NoGradGuard no_grad;
  const auto out = loaded.model->forward(to_model_range(torch::stack(images)));
  const auto decoded = loaded.model->decode_codes({store.codes[0].slice(0, 0, 8), store.codes[1].slice(0, 0, 8)});
  EXPECT_TRUE(torch::allclose(decoded, out.reconstruction, 1e-5, 1e-5));
  EXPECT_TRUE(torch::equal(store.codes[0].slice(0, 0, 8), out.levels[0].codes));
  // Real digits' codes come back from their decoded images far more than random codes do.
  const std::vector<torch::Tensor> real = {store.codes[0].slice(0, 0, 8), store.codes[1].slice(0, 0, 8)};
  const std::vector<torch::Tensor> random = {torch::randint(store.levels[0].codes, real[0].sizes(), torch::kLong),
                                             torch::randint(store.levels[1].codes, real[1].sizes(), torch::kLong)};
  const auto real_share = self_consistency(loaded.model, real, decoded).mean().item<double>();
  const auto random_share = self_consistency(loaded.model, random, loaded.model->decode_codes(random)).mean().item<double>();
  RecordProperty("self_consistency_real", std::to_string(real_share));
  RecordProperty("self_consistency_random", std::to_string(random_share));
  EXPECT_GT(real_share, 0.5);
  EXPECT_LT(random_share, 0.5 * real_share);
}

TEST_F(Stage2, BothPriorsLearnTheCodesOfRealDigitsAndSampleImages) {
  std::vector<Prior> priors(2, Prior(nullptr));
  for (const auto* level : {"top", "bottom"}) {
    const auto config = config_for(level, 120);
    const auto run = dir_->file(std::string("prior-") + level);
    const auto result = train_prior(config, run, false, quiet());
    const double uniform = std::log2(static_cast<double>(config.model.stack.codes));
    RecordProperty(std::string(level) + "_bits_per_code", std::to_string(result.final_bits_per_code));
    EXPECT_LT(result.final_bits_per_code, 0.5 * uniform) << level;
    EXPECT_LT(result.final_bits_per_code, result.initial_bits_per_code - 2.0) << level;
    EXPECT_GT(result.final_bits_per_dim, 0.0);
    priors[config.model.level] = load<PriorKind>(run, torch::kCPU).model;
  }
  auto vqvae = load<VQVAEKind>(dir_->file("vqvae"), torch::kCPU);
  const auto sampled = sample_hierarchy(vqvae.model, priors, 4, {}, 1);
  EXPECT_EQ(sampled.images.sizes(), (std::vector<int64_t>{4, 1, 32, 32}));
  EXPECT_EQ(sampled.codes[1].sizes(), (std::vector<int64_t>{4, 4, 4}));
  // Digits are mostly background: a sample from a trained prior is too, not noise.
  const auto pixels = to_pixels(sampled.images).to(torch::kFloat);
  EXPECT_LT(pixels.mean().item<double>(), 100.0);

  // Each level samples with its own options. The most likely codes at the top (temperature 0) give
  // every image one top map while the bottom still varies ...
  const auto all_alike = [](const torch::Tensor& codes) {
    for (int64_t i = 1; i < codes.size(0); ++i) {
      if (!torch::equal(codes[i], codes[0])) return false;
    }
    return true;
  };
  const auto argmax_top = sample_hierarchy(vqvae.model, priors, 4, {SamplingOptions{0, 0, 1}, SamplingOptions{}}, 1);
  EXPECT_TRUE(all_alike(argmax_top.codes[1]));
  EXPECT_FALSE(all_alike(argmax_top.codes[0]));
  // ... and the most likely codes below leave the top as the exact model drew it (same seed).
  const auto argmax_below = sample_hierarchy(vqvae.model, priors, 4, {SamplingOptions{}, SamplingOptions{0, 0, 1}}, 1);
  EXPECT_TRUE(torch::equal(argmax_below.codes[1], sampled.codes[1]));
  EXPECT_FALSE(torch::equal(argmax_below.codes[0], sampled.codes[0]));

  // Reranked by self-consistency: the top maps stay the plain draw's, which is candidate 0, so no image
  // gives back less of its codes than the plain draw's, some give back more, and the images are the
  // kept codes decoded.
  const auto plain = self_consistency(vqvae.model, sampled.codes, sampled.images);
  HierarchySampling reranked;
  reranked.candidates = 6;
  const auto best = sample_hierarchy(vqvae.model, priors, 4, reranked, 1);
  EXPECT_TRUE(torch::equal(best.codes[1], sampled.codes[1]));
  const auto kept = self_consistency(vqvae.model, best.codes, best.images);
  EXPECT_TRUE((kept >= plain).all().item<bool>()) << plain << kept;
  EXPECT_GT(kept.sum().item<double>(), plain.sum().item<double>()) << plain << kept;
  EXPECT_LE(kept.max().item<double>(), 1.0);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::allclose(best.images, vqvae.model->decode_codes(best.codes), 1e-5, 1e-5));
}

TEST_F(Stage2, ResumedPriorTrainingEqualsUninterrupted) {
  auto config = config_for("bottom", 6);
  config.model.stack.dropout = 0.3;  // dropout draws random numbers: resume must draw the same
  train_prior(config, dir_->file("straight"), false, quiet());
  auto first = config;
  first.train.steps = 3;
  train_prior(first, dir_->file("interrupted"), false, quiet());
  train_prior(config, dir_->file("interrupted"), true, quiet());
  const auto a = load<PriorKind>(dir_->file("straight"), torch::kCPU);
  const auto b = load<PriorKind>(dir_->file("interrupted"), torch::kCPU);
  EXPECT_EQ(b.step, 6);
  const auto pb = b.model->named_parameters();
  for (const auto& p : a.model->named_parameters()) EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << p.key();
}

TEST_F(Stage2, CodesThatDoNotMatchThePriorAreRefused) {
  auto config = config_for("top", 2);
  config.model.stack.codes = 64;  // the store's K is 128
  try {
    train_prior(config, dir_->file("mismatch"), false, quiet());
    FAIL() << "trained on codes of another K";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("do not match this prior"), std::string::npos) << e.what();
  }
  auto missing = config_for("top", 2);
  missing.codes = dir_->file("nowhere");
  EXPECT_THROW(train_prior(missing, dir_->file("missing"), false, quiet()), Error);
  auto nonsense = config_for("top", 2);
  nonsense.train.learning_rate = -1;
  EXPECT_THROW(train_prior(nonsense, *codes_, open_training_run(dir_->file("nonsense"), "prior", false), quiet()),
               Error);
  // A refused run leaves no folder behind (start_training makes it, after the checks).
  for (const auto* name : {"mismatch", "nonsense"}) EXPECT_FALSE(std::filesystem::exists(dir_->file(name))) << name;
}

TEST_F(Stage2, SamplingChecksThatThePriorsFitTheVQVAE) {
  auto vqvae = load<VQVAEKind>(dir_->file("vqvae"), torch::kCPU);
  const auto options = [](int64_t level) { return prior_config_for(*codes_, level, PriorSize::kSmall).model; };
  std::vector<Prior> swapped = {Prior(options(1)), Prior(options(0))};
  EXPECT_THROW(sample_hierarchy(vqvae.model, swapped, 1, {}, 0), Error);
  std::vector<Prior> one = {Prior(options(0))};
  EXPECT_THROW(sample_hierarchy(vqvae.model, one, 1, {}, 0), Error);
}

TEST_F(Stage2, Bf16PriorStepsLowerTheHeldOutNllAndKeepTheParametersFp32) {
  test::TempDir run;
  auto config = config_for("top", 12);
  config.train.precision = Precision::kBF16;
  const auto result = train_prior(config, *codes_, open_training_run(run.path(), "prior", false), quiet());
  EXPECT_LT(result.final_bits_per_code, result.initial_bits_per_code - 0.5);
  const auto loaded = load<PriorKind>(run.path(), torch::kCPU);
  EXPECT_EQ(loaded.config.train.precision, Precision::kBF16);
  for (const auto& p : loaded.model->parameters()) EXPECT_EQ(p.scalar_type(), torch::kFloat);
}

}  // namespace
}  // namespace vqvae2
