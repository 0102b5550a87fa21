#include "vqvae2/models/digit_classifier.h"

#include "test_util.h"
#include "vqvae2/core/checkpoint.h"
#include "vqvae2/core/error.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <numeric>
#include <optional>
#include <sstream>

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
  const auto real = score_digits(digits.held_out_images, classifier);
  EXPECT_GT(real.score, 9.0);
  EXPECT_GT(real.confident, 0.9);
  EXPECT_EQ(real.images, digits.held_out_images.size(0));
  // The digits it reads: as many of each as there are (≥ 97% are read right).
  ASSERT_EQ(real.read_as.size(), 10u);
  const auto truth = digits.held_out_labels.bincount({}, 10);
  for (int64_t d = 0; d < 10; ++d) EXPECT_NEAR(real.read_as[d], truth[d].item<int64_t>(), 10) << d;
  // Real digits for scale: all of them at once are the figures above; 16 at a time score lower, as p(y)
  // over 16 images cannot spread evenly over ten digits.
  const auto all = real_digit_score(classifier, 1000000);
  EXPECT_NEAR(all.score, real.score, 1e-9);
  EXPECT_EQ(all.images, real.images);
  const auto sixteen = real_digit_score(classifier, 16);
  EXPECT_EQ(sixteen.images, 16);
  EXPECT_LT(sixteen.score, real.score - 1.0);
  EXPECT_GT(sixteen.score, 6.0);
  EXPECT_NEAR(sixteen.confident, real.confident, 0.03);
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
  // A broken cache file is replaced, not an error.
  test::write_bytes(path, "not a checkpoint");
  std::ostringstream log;
  auto rebuilt = cached_digit_classifier(path, options, &log);
  EXPECT_TRUE(torch::equal(rebuilt->probabilities(x), other->probabilities(x)));
  EXPECT_NE(log.str().find("training the digit classifier"), std::string::npos) << log.str();
  EXPECT_NO_THROW(read_checkpoint(path, "digit-classifier"));
}

TEST(DigitClassifier, ScoresOnlyGrey32x32ImagesSayingWhatItReads) {
  DigitClassifierOptions options;
  options.channels = 2;
  DigitClassifier classifier(options);
  const auto grey = torch::zeros({4, 1, 32, 32}, torch::kUInt8);
  const auto score = score_digits(grey, classifier);
  EXPECT_EQ(score.images, 4);
  EXPECT_NEAR(score.score, 1.0, 1e-9) << "four identical images get one prediction";
  EXPECT_EQ(std::accumulate(score.read_as.begin(), score.read_as.end(), int64_t{0}), 4);
  EXPECT_EQ(*std::max_element(score.read_as.begin(), score.read_as.end()), 4) << "all read as one digit";
  test::expect_error([&] { score_digits(torch::zeros({4, 3, 32, 32}, torch::kUInt8), classifier); },
                     "the digit score reads grey 32x32 images like the embedded MNIST digits (the mnist preset), but "
                     "these images are RGB 32x32");
  test::expect_error([&] { score_digits(torch::zeros({4, 1, 64, 64}, torch::kUInt8), classifier); },
                     "these images are grey 64x64");
  test::expect_error([&] { check_digit_images(3, 64, "the samples of 'runs/x'"); },
                     "the samples of 'runs/x' are RGB 64x64; score only models trained on those digits");
  test::expect_error([&] { score_digits(torch::zeros({0, 1, 32, 32}, torch::kUInt8), classifier); },
                     "needs at least one image");
}

TEST(DigitClassifier, TheScoreLineShowsSamplesBesideRealDigits) {
  SampleDigitScore score{{8.07, 0.832, 256}, {9.43, 0.961, 256}};
  EXPECT_EQ(digit_score_line(score),
            "digit score 8.1 of 10, 83% confident (256 samples; real held-out digits, 256 at a time: 9.4, 96%)");
  score.samples.read_as = {20, 40, 25, 25, 26, 20, 25, 25, 25, 25};
  EXPECT_EQ(digit_score_line(score),
            "digit score 8.1 of 10, 83% confident (256 samples; real held-out digits, 256 at a time: 9.4, 96%); read "
            "as 0-9: 20 40 25 25 26 20 25 25 25 25");
}

TEST(DigitClassifier, TheDefaultCacheFollowsXdgThenHome) {
  const auto keep = [](const char* name) {
    const char* value = std::getenv(name);
    return value ? std::optional<std::string>(value) : std::nullopt;
  };
  const auto xdg = keep("XDG_CACHE_HOME"), home = keep("HOME");
  setenv("XDG_CACHE_HOME", "/somewhere/cache", 1);
  EXPECT_EQ(default_digit_classifier_path(), "/somewhere/cache/vqvae2/digit-classifier.ckpt");
  unsetenv("XDG_CACHE_HOME");
  setenv("HOME", "/home/someone", 1);
  EXPECT_EQ(default_digit_classifier_path(), "/home/someone/.cache/vqvae2/digit-classifier.ckpt");
  unsetenv("HOME");
  EXPECT_EQ(std::filesystem::path(default_digit_classifier_path()).filename(), "digit-classifier.ckpt");
  for (const auto& [name, value] : {std::pair{"XDG_CACHE_HOME", xdg}, std::pair{"HOME", home}}) {
    if (value) setenv(name, value->c_str(), 1);
  }
}

}  // namespace
}  // namespace vqvae2
