#include "vqvae2/models/digit_classifier.h"

#include "vqvae2/core/checkpoint.h"
#include "vqvae2/core/error.h"
#include "vqvae2/data/data.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <numeric>
#include <optional>
#include <ostream>
#include <random>

namespace vqvae2 {

namespace nn = torch::nn;

void DigitClassifierOptions::validate() const {
  VQVAE2_CHECK(channels >= 1 && channels <= 1024 && steps >= 0 && batch_size >= 1 && learning_rate > 0 && shift >= 0 &&
                   shift <= 8,
               "bad digit classifier options: channels {}, steps {}, batch {}, learning rate {}", channels, steps,
               batch_size, learning_rate);
}

DigitClassifierImpl::DigitClassifierImpl(const DigitClassifierOptions& o) : options_(o) {
  o.validate();
  const auto c = o.channels;
  conv1_ = register_module("conv1", nn::Conv2d(nn::Conv2dOptions(1, c, 5).stride(2).padding(2)));          // -> 16×16
  conv2_ = register_module("conv2", nn::Conv2d(nn::Conv2dOptions(c, 2 * c, 3).stride(2).padding(1)));      // -> 8×8
  conv3_ = register_module("conv3", nn::Conv2d(nn::Conv2dOptions(2 * c, 4 * c, 3).stride(2).padding(1)));  // -> 4×4
  out_ = register_module("out", nn::Linear(4 * c * 16, 10));
}

torch::Tensor DigitClassifierImpl::forward(const torch::Tensor& x) {
  VQVAE2_CHECK(x.dim() == 4 && x.size(1) == 1 && x.size(2) == 32 && x.size(3) == 32,
               "the digit classifier takes grey 32x32 images [B, 1, 32, 32], got {}", shape_of(x.sizes()));
  auto h = torch::relu(conv1_(x));
  h = torch::relu(conv2_(h));
  h = torch::relu(conv3_(h));
  return out_(h.flatten(1));
}

torch::Tensor DigitClassifierImpl::probabilities(const torch::Tensor& pixels) {
  VQVAE2_CHECK(pixels.dim() == 4 && (pixels.size(1) == 1 || pixels.size(1) == 3) && pixels.scalar_type() == torch::kUInt8,
               "the digit classifier scores uint8 images [N, 1 or 3, 32, 32], got {} {}",
               c10::toString(pixels.scalar_type()), shape_of(pixels.sizes()));
  torch::NoGradGuard no_grad;
  const bool was_training = is_training();
  eval();
  const auto device = out_->weight.device();
  std::vector<torch::Tensor> out;
  for (int64_t begin = 0; begin < pixels.size(0); begin += 256) {
    auto x = pixels.slice(0, begin, begin + 256).to(device, torch::kFloat).div(127.5).sub(1);
    if (x.size(1) == 3) x = x.mean(1, /*keepdim=*/true);
    out.push_back(torch::softmax(forward(x), 1));
  }
  train(was_training);
  return out.empty() ? torch::zeros({0, 10}) : torch::cat(out).to(torch::kCPU);
}

DigitSet embedded_digit_set() {
  const auto dataset = ImageDataset::open(DataOptions{}, ImageFormat{32, 1});
  const auto labels = embedded_mnist_labels();
  const auto [train, held_out] = dataset->split();
  const auto gather = [&](const std::vector<int64_t>& indices) {
    std::vector<torch::Tensor> images;
    for (const auto i : indices) images.push_back(dataset->get(i));
    const auto picks = torch::tensor(indices, torch::kLong);  // embedded index = dataset index
    return std::make_pair(torch::stack(images), labels.index_select(0, picks));
  };
  DigitSet set;
  std::tie(set.train_images, set.train_labels) = gather(train);
  std::tie(set.held_out_images, set.held_out_labels) = gather(held_out);
  return set;
}

DigitClassifier train_digit_classifier(const torch::Tensor& images, const torch::Tensor& labels,
                                       const DigitClassifierOptions& options) {
  options.validate();
  VQVAE2_CHECK(images.size(0) == labels.size(0) && images.size(0) >= options.batch_size,
               "digit classifier training needs at least one batch of labelled images, got {} images, {} labels",
               images.size(0), labels.size(0));
  torch::manual_seed(options.seed);
  DigitClassifier classifier(options);
  classifier->train();
  torch::optim::Adam optimizer(classifier->parameters(), torch::optim::AdamOptions(options.learning_rate));
  const auto x_all = images.to(torch::kFloat).div(127.5).sub(1);
  const auto n = images.size(0);
  auto order = torch::randperm(n);
  int64_t next = 0;
  for (int64_t step = 0; step < options.steps; ++step) {
    if (next + options.batch_size > n) {
      order = torch::randperm(n);
      next = 0;
    }
    const auto picks = order.slice(0, next, next + options.batch_size);
    next += options.batch_size;
    // A small shift: the samples are not centred as carefully as MNIST's digits are.
    const auto s = options.shift;
    const auto dy = torch::randint(-s, s + 1, {1}).item<int64_t>(), dx = torch::randint(-s, s + 1, {1}).item<int64_t>();
    const auto x = torch::roll(x_all.index_select(0, picks), {dy, dx}, {2, 3});
    for (auto& group : optimizer.param_groups()) {
      static_cast<torch::optim::AdamOptions&>(group.options())
          .lr(options.learning_rate * (1.0 - static_cast<double>(step) / static_cast<double>(options.steps)));
    }
    optimizer.zero_grad();
    nn::functional::cross_entropy(classifier->forward(x), labels.index_select(0, picks)).backward();
    optimizer.step();
  }
  classifier->eval();
  return classifier;
}

double classifier_accuracy(DigitClassifier& classifier, const torch::Tensor& images, const torch::Tensor& labels) {
  const auto predicted = classifier->probabilities(images).argmax(1);
  return predicted.eq(labels.to(torch::kCPU)).to(torch::kDouble).mean().item<double>();
}

double classifier_score(const torch::Tensor& probabilities) {
  VQVAE2_CHECK(probabilities.dim() == 2 && probabilities.size(0) > 0, "score needs probabilities [N, classes], got {}",
               shape_of(probabilities.sizes()));
  const auto p = probabilities.to(torch::kDouble).clamp_min(1e-12);
  const auto marginal = p.mean(0, /*keepdim=*/true);                   // p(y)
  const auto kl = (p * (p.log() - marginal.log())).sum(1);             // KL(p(y|x) ‖ p(y)) per image
  return std::exp(kl.mean().item<double>());
}

double confident_share(const torch::Tensor& probabilities, double threshold) {
  VQVAE2_CHECK(probabilities.dim() == 2 && probabilities.size(0) > 0, "needs probabilities [N, classes], got {}",
               shape_of(probabilities.sizes()));
  return std::get<0>(probabilities.max(1)).ge(threshold).to(torch::kDouble).mean().item<double>();
}

namespace {

// The classifier at `path` when it holds one trained with `options`; nothing when the file is missing,
// from other options, or unreadable (a cache is rebuilt, never trusted blindly).
std::optional<DigitClassifier> load_cached(const std::string& path, const DigitClassifierOptions& options) {
  if (!std::filesystem::exists(path)) return std::nullopt;
  try {
    const auto contents = read_checkpoint(path, "digit-classifier");
    if (contents.meta.at("config") != nlohmann::json(options)) return std::nullopt;
    DigitClassifier classifier(options);
    load_module(*classifier, contents.tensors, "model", path);
    classifier->eval();
    return classifier;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace

DigitClassifier cached_digit_classifier(const std::string& path, const DigitClassifierOptions& options,
                                        std::ostream* log) {
  if (auto cached = load_cached(path, options)) return *cached;
  if (log) *log << fmt::format("digit score: training the digit classifier (once, a few seconds) into {}\n", path);
  const auto digits = embedded_digit_set();
  auto classifier = train_digit_classifier(digits.train_images, digits.train_labels, options);
  const auto accuracy = classifier_accuracy(classifier, digits.held_out_images, digits.held_out_labels);
  NamedTensors tensors;
  save_module(*classifier, tensors, "model");
  const auto parent = std::filesystem::path(path).parent_path();
  std::error_code error;
  if (!parent.empty()) std::filesystem::create_directories(parent, error);
  VQVAE2_CHECK(!error, "cannot create '{}' for the digit classifier: {}; give another path", parent.string(),
               error.message());
  write_checkpoint(path,
                   {{"kind", "digit-classifier"},
                    {"config", options},
                    {"state", {{"step", options.steps}, {"held_out_accuracy", accuracy}}}},
                   tensors);
  return classifier;
}

std::string default_digit_classifier_path() {
  namespace fs = std::filesystem;
  const auto file = fs::path("vqvae2") / "digit-classifier.ckpt";
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  if (xdg && *xdg && fs::path(xdg).is_absolute()) return (fs::path(xdg) / file).string();
  const char* home = std::getenv("HOME");
  if (home && *home) return (fs::path(home) / ".cache" / file).string();
  return (fs::temp_directory_path() / file).string();
}

void check_digit_images(int64_t channels, int64_t size, const std::string& what) {
  VQVAE2_CHECK(channels == 1 && size == 32,
               "the digit score reads grey 32x32 images like the embedded MNIST digits (the mnist preset), but {} are "
               "{} {}x{}; score only models trained on those digits",
               what, channels == 1 ? "grey" : channels == 3 ? "RGB" : fmt::format("{}-channel", channels), size, size);
}

DigitScore score_digits(const torch::Tensor& pixels, DigitClassifier& classifier) {
  VQVAE2_CHECK(pixels.dim() == 4 && pixels.size(2) == pixels.size(3),
               "the digit score takes images [N, C, S, S], got {}", shape_of(pixels.sizes()));
  check_digit_images(pixels.size(1), pixels.size(2), "these images");
  VQVAE2_CHECK(pixels.size(0) > 0, "the digit score needs at least one image");
  const auto probabilities = classifier->probabilities(pixels);
  const auto counts = probabilities.argmax(1).bincount({}, probabilities.size(1)).to(torch::kLong).contiguous();
  return {classifier_score(probabilities), confident_share(probabilities, 0.9), pixels.size(0),
          std::vector<int64_t>(counts.data_ptr<int64_t>(), counts.data_ptr<int64_t>() + counts.numel())};
}

DigitScore real_digit_score(DigitClassifier& classifier, int64_t count) {
  VQVAE2_CHECK(count >= 1, "real digits are scored in groups of at least one, got {}", count);
  const auto images = embedded_digit_set().held_out_images;
  const auto n = images.size(0);
  const auto group = std::min(count, n);
  // The held-out digits come in label order: groups are drawn from a fixed shuffle, so each mixes the
  // digits as samples do.
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), std::mt19937_64(0));
  const auto probabilities = classifier->probabilities(images).index_select(0, torch::tensor(order, torch::kLong));
  DigitScore mean{0, 0, group};
  const auto groups = n / group;
  for (int64_t g = 0; g < groups; ++g) {
    const auto p = probabilities.slice(0, g * group, (g + 1) * group);
    mean.score += classifier_score(p) / static_cast<double>(groups);
    mean.confident += confident_share(p, 0.9) / static_cast<double>(groups);
  }
  return mean;
}

SampleDigitScore score_digit_samples(const torch::Tensor& pixels, DigitClassifier& classifier) {
  auto samples = score_digits(pixels, classifier);
  return {samples, real_digit_score(classifier, samples.images)};
}

std::string digit_score_line(const SampleDigitScore& s) {
  auto line = fmt::format(
      "digit score {:.1f} of 10, {:.0f}% confident ({} sample{}; real held-out digits, {} at a time: {:.1f}, {:.0f}%)",
      s.samples.score, 100 * s.samples.confident, s.samples.images, s.samples.images == 1 ? "" : "s", s.real.images,
      s.real.score, 100 * s.real.confident);
  if (!s.samples.read_as.empty()) line += fmt::format("; read as 0-9: {}", fmt::join(s.samples.read_as, " "));
  return line;
}

}  // namespace vqvae2
