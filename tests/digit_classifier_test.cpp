#include "vqvae2/models/digit_classifier.h"

#include "test_util.h"
#include "vqvae2/core/error.h"

#include <gtest/gtest.h>

namespace vqvae2 {
namespace {

TEST(DigitClassifier, ScoreIsOneForOnePredictionAndTenForTenCertainClasses) {
  const auto same = torch::full({20, 10}, 0.1);
  EXPECT_NEAR(classifier_score(same), 1.0, 1e-9);
  EXPECT_NEAR(classifier_score(torch::eye(10).repeat({3, 1})), 10.0, 1e-6);
  // Five classes, each certain: 5; confident share counts rows with max >= 0.9.
  EXPECT_NEAR(classifier_score(torch::eye(10).slice(0, 0, 5)), 5.0, 1e-6);
  auto mixed = torch::eye(10).slice(0, 0, 4).clone();
  mixed[3] = torch::full({10}, 0.1);
  EXPECT_DOUBLE_EQ(confident_share(mixed, 0.9), 0.75);
  EXPECT_THROW(classifier_score(torch::zeros({0, 10})), Error);
}

TEST(DigitClassifier, LearnsTheEmbeddedDigitsAndScoresRealOnesHigh) {
  const auto digits = embedded_digit_set();
  ASSERT_EQ(digits.train_images.sizes().slice(1), (std::vector<int64_t>{1, 32, 32}));
  ASSERT_GT(digits.held_out_images.size(0), 500);
  auto classifier = train_digit_classifier(digits.train_images, digits.train_labels);
  EXPECT_GE(classifier_accuracy(classifier, digits.held_out_images, digits.held_out_labels), 0.97);
  const auto probabilities = classifier->probabilities(digits.held_out_images);
  EXPECT_GT(classifier_score(probabilities), 9.0);
  EXPECT_GT(confident_share(probabilities, 0.9), 0.9);
  // Noise is no digit: the score of uniform noise images is far lower.
  const auto noise = torch::randint(0, 256, {200, 1, 32, 32}, torch::kLong).to(torch::kUInt8);
  EXPECT_LT(classifier_score(classifier->probabilities(noise)), 4.0);
}

TEST(DigitClassifier, CachedWeightsLoadInsteadOfTraining) {
  test::TempDir dir;
  DigitClassifierOptions options;
  options.steps = 20;
  options.channels = 4;
  const auto path = dir.file("classifier.ckpt");
  auto trained = cached_digit_classifier(path, options);
  auto loaded = cached_digit_classifier(path, options);
  const auto x = torch::randint(0, 256, {3, 1, 32, 32}, torch::kLong).to(torch::kUInt8);
  EXPECT_TRUE(torch::equal(trained->probabilities(x), loaded->probabilities(x)));
  options.steps = 0;  // other options: retrained (here: not trained at all), not loaded
  auto other = cached_digit_classifier(path, options);
  EXPECT_FALSE(torch::equal(trained->probabilities(x), other->probabilities(x)));
}

}  // namespace
}  // namespace vqvae2
