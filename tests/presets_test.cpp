#include "vqvae2/stages/presets.h"

#include "test_util.h"

#include <gtest/gtest.h>

namespace vqvae2 {
namespace {

TEST(Presets, EveryPresetIsAValidConfigurationOfItsImageSize) {
  for (const auto& [name, size, channels] : {std::tuple{"mnist", 32, 1}, std::tuple{"small", 64, 3},
                                             std::tuple{"reference", 256, 3}}) {
    const auto config = vqvae_preset(name);
    EXPECT_NO_THROW(config.validate()) << name;
    EXPECT_EQ(config.model.image_size, size) << name;
    EXPECT_EQ(config.model.channels, channels) << name;
    EXPECT_GT(config.model.quantizer.dead_code_threshold, 0) << name << ": dead-code restarts are on";
  }
  EXPECT_EQ(preset_names(), (std::vector<std::string>{"mnist", "small", "reference", "vqvae1"}));
}

TEST(Presets, TheDigitsModelHasThePapersHierarchyAndVqvae1IsItsBottomLevel) {
  // ×4 to the bottom, ×2 more to the top (the paper's 256 -> 64 -> 32): 32×32 digits -> 8×8, 4×4.
  const auto m = vqvae_preset("mnist").model;
  EXPECT_EQ(m.strides, (std::vector<int64_t>{4, 2}));
  EXPECT_EQ(m.latent_size(0), 8);
  EXPECT_EQ(m.latent_size(1), 4);
  EXPECT_EQ(vqvae_preset("vqvae1").model.latent_size(0), m.latent_size(0));
}

TEST(Presets, Vqvae1IsOneLevelOfCodebookLossCodesWithAPlainPixelCnnPrior) {
  const auto v1 = vqvae_preset("vqvae1");
  const auto v2 = vqvae_preset("mnist");
  EXPECT_NO_THROW(v1.validate());
  EXPECT_EQ(v1.model.levels(), 1);
  EXPECT_EQ(v1.model.latent_size(0), 8);  // 32×32 digits -> 8×8 codes
  EXPECT_FALSE(v1.model.quantizer.ema);
  EXPECT_GT(v1.model.quantizer.dead_code_threshold, 0);
  // Otherwise VQ-VAE-2's digits model: the same widths, data and schedule, so the two share a budget.
  EXPECT_EQ(v1.model.hidden, v2.model.hidden);
  EXPECT_EQ(v1.model.codes_at(0), v2.model.codes_at(0));
  EXPECT_EQ(v1.model.code_dim_at(0), v2.model.code_dim_at(0));
  EXPECT_EQ(nlohmann::json(v1.train), nlohmann::json(v2.train));
  EXPECT_EQ(nlohmann::json(v1.data), nlohmann::json(v2.data));
  EXPECT_FALSE(top_prior_attention_for_preset("vqvae1"));
  EXPECT_TRUE(top_prior_attention_for_preset("mnist"));
  EXPECT_EQ(prior_size_for_preset("vqvae1"), PriorSize::kSmall);
}

TEST(Presets, VaePresetsShareTheVqvaePresetsImagesWidthsAndSchedule) {
  EXPECT_EQ(vae_preset_names(), (std::vector<std::string>{"mnist", "small", "reference"}));
  for (const auto& name : vae_preset_names()) {
    const auto vae = vae_preset(name);
    const auto vq = vqvae_preset(name);
    EXPECT_NO_THROW(vae.validate()) << name;
    EXPECT_EQ(vae.model.image_size, vq.model.image_size) << name;
    EXPECT_EQ(vae.model.channels, vq.model.channels) << name;
    EXPECT_EQ(vae.model.hidden, vq.model.hidden) << name;
    EXPECT_EQ(vae.model.latent_channels, vq.model.code_dim_at(0)) << name;
    EXPECT_EQ(vae.model.stride, 4) << name;
    EXPECT_EQ(nlohmann::json(vae.train), nlohmann::json(vq.train)) << name;
  }
  EXPECT_EQ(vae_preset("mnist").model.latent_size(), vqvae_preset("vqvae1").model.latent_size(0));
  test::expect_error([] { vae_preset("vqvae1"); }, "unknown VAE preset 'vqvae1'; choose one of mnist, small, reference");
}

TEST(Presets, ReferenceIsThePapersModel) {
  const auto m = vqvae_preset("reference").model;
  EXPECT_EQ(m.strides, (std::vector<int64_t>{4, 2}));
  EXPECT_EQ(m.latent_size(0), 64);
  EXPECT_EQ(m.latent_size(1), 32);
  EXPECT_EQ(m.hidden, 128);
  EXPECT_EQ(m.codes_at(0), 512);
  EXPECT_EQ(m.code_dim_at(1), 64);
  EXPECT_DOUBLE_EQ(m.quantizer.beta, 0.25);
  EXPECT_DOUBLE_EQ(m.quantizer.decay, 0.99);
}

TEST(Presets, AutoMeansDigitsWithoutDataAndTheReferenceWithIt) {
  EXPECT_EQ(resolve_preset("auto", false), "mnist");
  EXPECT_EQ(resolve_preset("auto", true), "reference");
  EXPECT_EQ(resolve_preset("small", true), "small");
  EXPECT_EQ(prior_size_for_preset("mnist"), PriorSize::kSmall);
  EXPECT_EQ(prior_size_for_preset("reference"), PriorSize::kReference);
}

TEST(Presets, UnknownNamesListTheKnownOnes) {
  test::expect_error([] { vqvae_preset("huge"); }, "unknown preset 'huge'; choose one of mnist, small, reference, vqvae1");
}

TEST(Presets, PriorSchedulesAreValid) {
  for (const auto size : {PriorSize::kSmall, PriorSize::kReference}) {
    for (const bool conditional : {false, true}) EXPECT_NO_THROW(prior_schedule(size, conditional).validate());
  }
  const auto top = prior_schedule(PriorSize::kSmall, false), lower = prior_schedule(PriorSize::kSmall, true);
  EXPECT_GT(top.learning_rate, prior_schedule(PriorSize::kReference, false).learning_rate);
  // Measured on the main job's codes (docs/ABLATIONS.md): at lr 2e-3 the top prior's held-out NLL is
  // lowest after 6 passes and the bottom's after 8, both as low as 10 passes at 1e-3.
  EXPECT_EQ(top.learning_rate, 2e-3);
  EXPECT_EQ(top.epochs, 6);
  EXPECT_EQ(lower.epochs, 8);
  EXPECT_EQ(lower.learning_rate, top.learning_rate);
  // Averaged weights held out 0.05-0.06 bits per code better.
  EXPECT_EQ(top.weight_average, 0.995);
  EXPECT_EQ(lower.weight_average, 0.995);
}

TEST(Presets, LowerLevelPriorsTellTheChildrenOfOneUpperCodeApart) {
  // docs/ABLATIONS.md: learned upsampling + position features measured 4% fewer bits per code.
  for (const auto size : {PriorSize::kSmall, PriorSize::kReference}) {
    const auto o = conditional_prior_options(0, 16, 16, 128, 128, 2, size);
    EXPECT_EQ(o.condition.upsample, "transposed");
    EXPECT_TRUE(o.condition.position);
    EXPECT_NO_THROW(o.validate());
  }
  // A configuration written before the change (no such fields) still reads as what it trained.
  const auto old = nlohmann::json::parse(R"({"codes": 128, "scale": 2})").get<ConditioningStackOptions>();
  EXPECT_EQ(old.upsample, "nearest");
  EXPECT_FALSE(old.position);
}

TEST(Presets, SmallLowerPriorsLearnAnUnconditionalModelForGuidance) {
  // docs/ABLATIONS.md: condition dropout 0.2 and guidance 2 measured +0.39 in digit score.
  EXPECT_DOUBLE_EQ(conditional_prior_options(0, 16, 16, 128, 128, 2, PriorSize::kSmall).condition_dropout, 0.2);
  EXPECT_DOUBLE_EQ(conditional_prior_options(0, 16, 16, 128, 128, 2, PriorSize::kReference).condition_dropout, 0);
  EXPECT_DOUBLE_EQ(top_prior_options(1, 8, 8, 128, PriorSize::kSmall).condition_dropout, 0);
}

}  // namespace
}  // namespace vqvae2
