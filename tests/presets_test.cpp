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
  EXPECT_EQ(preset_names(), (std::vector<std::string>{"mnist", "small", "reference"}));
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
  test::expect_error([] { vqvae_preset("huge"); }, "unknown preset 'huge'; choose one of mnist, small, reference");
}

TEST(Presets, PriorSchedulesAreValid) {
  for (const auto size : {PriorSize::kSmall, PriorSize::kReference}) EXPECT_NO_THROW(prior_schedule(size).validate());
  EXPECT_GT(prior_schedule(PriorSize::kSmall).learning_rate, prior_schedule(PriorSize::kReference).learning_rate);
}

}  // namespace
}  // namespace vqvae2
