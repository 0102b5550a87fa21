// A small convolutional digit classifier: the judge of how much samples of a model trained on the
// embedded MNIST digits look like digits.
//
// Two figures summarise its predictions p(y|x) over N images x (Salimans et al. 2016's Inception
// score, with this classifier in Inception's place):
//   classifier_score  = exp(E_x KL(p(y|x) ‖ p(y))),  p(y) = E_x p(y|x)
//                       1 when every image gets the same prediction; 10 when every image is one
//                       digit with certainty and the ten digits are equally common;
//   confident_share   = share of images whose most likely digit has p ≥ a threshold (0.9):
//                       scribbles get spread-out predictions.
// With the default options (about 6 s of training on two cores) the classifier is right on 98.5% of
// the held-out digits, which score 9.5 with 96% confident (digit_classifier_test).
//
// Glossary: B = batch, S = 32 (image side), digits padded 28 → 32 as the data pipeline does.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <iosfwd>
#include <string>

namespace vqvae2 {

struct DigitClassifierOptions {
  int64_t channels = 16;     // width of the first convolution; each stride-2 one after doubles it
  int64_t steps = 1500;      // training steps (about 11 passes over the 8,980 training digits)
  int64_t batch_size = 64;
  double learning_rate = 3e-3;  // Adam, decayed linearly to zero over the steps
  int64_t shift = 1;            // training images move by up to this many pixels each way
  uint64_t seed = 0;
  void validate() const;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(DigitClassifierOptions, channels, steps, batch_size, learning_rate, shift,
                                                seed)

// Three stride-2 convolutions (5×5, 3×3, 3×3; 32×32 -> 4×4) with ReLU, then a linear layer to 10.
class DigitClassifierImpl : public torch::nn::Module {
 public:
  explicit DigitClassifierImpl(const DigitClassifierOptions& options = {});
  // x [B, 1, 32, 32] in [-1, 1] (the VQ-VAE's range) -> logits [B, 10]
  torch::Tensor forward(const torch::Tensor& x);
  // pixels uint8 [B, 1, 32, 32] (grey; RGB is averaged) -> p(y|x) [B, 10], in eval mode, batched.
  torch::Tensor probabilities(const torch::Tensor& pixels);
  const DigitClassifierOptions& options() const { return options_; }

 private:
  DigitClassifierOptions options_;
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr}, conv3_{nullptr};
  torch::nn::Linear out_{nullptr};
};
TORCH_MODULE(DigitClassifier);

// The embedded digits as the VQ-VAE sees them (uint8 [N, 1, 32, 32]) with their labels [N], in the
// split the data pipeline makes with its default options (ImageDataset::split()).
struct DigitSet {
  torch::Tensor train_images, train_labels;
  torch::Tensor held_out_images, held_out_labels;
};
DigitSet embedded_digit_set();

// Trains a classifier on `images` uint8 [N, 1, 32, 32] with `labels` [N] (cross-entropy, Adam).
DigitClassifier train_digit_classifier(const torch::Tensor& images, const torch::Tensor& labels,
                                       const DigitClassifierOptions& options = {});

// Share of `images` whose most likely digit is the label.
double classifier_accuracy(DigitClassifier& classifier, const torch::Tensor& images, const torch::Tensor& labels);

// exp(E KL(p(y|x) ‖ p(y))) of probabilities [N, classes].
double classifier_score(const torch::Tensor& probabilities);
// Share of rows of `probabilities` [N, classes] whose largest entry is at least `threshold`.
double confident_share(const torch::Tensor& probabilities, double threshold = 0.9);

// The classifier stored at `path` (our checkpoint format, kind "digit-classifier"); when the file is
// missing, unreadable, or was trained with other options, one trained on embedded_digit_set()'s
// training digits, written there first (saying so on `log`, when given). Training takes seconds;
// loading, milliseconds.
DigitClassifier cached_digit_classifier(const std::string& path, const DigitClassifierOptions& options = {},
                                        std::ostream* log = nullptr);

// Where the classifier is cached unless a path is given: $XDG_CACHE_HOME/vqvae2/digit-classifier.ckpt,
// else ~/.cache/vqvae2/digit-classifier.ckpt, else the same under the system's temp folder.
std::string default_digit_classifier_path();

// ---- scoring samples ----------------------------------------------------------------------------

// The two figures above for one set of images.
struct DigitScore {
  double score = 0;      // classifier_score, in [1, 10]
  double confident = 0;  // confident_share at p ≥ 0.9, in [0, 1]
  int64_t images = 0;
  // How many images the classifier reads as 0, 1, …, 9 (its most likely digit): where an uneven
  // spread costs score. Empty for averages over groups (real_digit_score).
  std::vector<int64_t> read_as{};
};

// Throws unless images of `channels` × `size` × `size` are what the classifier reads: grey 32×32, like
// the embedded MNIST digits (the mnist preset). `what` names them in the message ("the samples of 'x'").
void check_digit_images(int64_t channels, int64_t size, const std::string& what);

// Scores `pixels` uint8 [N, 1, 32, 32] (N ≥ 1).
DigitScore score_digits(const torch::Tensor& pixels, DigitClassifier& classifier);

// The same figures for real digits, for scale: the held-out embedded digits (1,020) scored in groups
// of `count` images, averaged over the groups (one group of all of them when `count` is larger). The
// score depends on how many images are scored, since p(y) is their average: real digits score 7.1
// sixteen at a time, 9.2 a hundred at a time, 9.4 at 256 and 9.5 all together (96% confident each).
DigitScore real_digit_score(DigitClassifier& classifier, int64_t count);

// Samples scored beside real digits in groups of as many.
struct SampleDigitScore {
  DigitScore samples, real;
};
SampleDigitScore score_digit_samples(const torch::Tensor& pixels, DigitClassifier& classifier);

// "digit score 8.1 of 10, 83% confident (256 samples; real held-out digits, 256 at a time: 9.4, 96%)"
std::string digit_score_line(const SampleDigitScore& score);

}  // namespace vqvae2
