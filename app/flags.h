// Flags whose defaults come from a preset: each flag maps 1:1 to one config field; --help shows
// the value every preset gives it; after parsing, only the flags actually given override the
// preset (or, on --resume, the checkpoint's configuration).
#pragma once

#include "vqvae2/training/trainer.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace vqvae2::cli {

template <typename T>
std::string show(const T& value) {
  if constexpr (std::is_same_v<T, bool>) {
    return value ? "true" : "false";
  } else if constexpr (std::is_same_v<T, std::string>) {
    return value.empty() ? "\"\"" : value;
  } else if constexpr (std::is_arithmetic_v<T>) {
    return fmt::format("{}", value);
  } else {
    return fmt::format("{}", fmt::join(value, ","));
  }
}

template <typename Config>
class PresetFlags {
 public:
  // presets: (name, config) pairs shown in --help.
  explicit PresetFlags(std::vector<std::pair<std::string, Config>> presets) : presets_(std::move(presets)) {}

  // A flag for a field read by `get` and written by `set`.
  template <typename T>
  CLI::Option* add(CLI::App* app, const std::string& name, const std::string& help,
                   std::function<T(const Config&)> get, std::function<void(Config&, const T&)> set) {
    auto value = std::make_shared<T>();
    std::vector<std::string> defaults;
    for (const auto& [preset, config] : presets_) defaults.push_back(preset + " " + show(get(config)));
    bool same = true;
    for (const auto& [preset, config] : presets_) same = same && show(get(config)) == show(get(presets_[0].second));
    const auto text = same ? fmt::format("{} [default: {}]", help, show(get(presets_[0].second)))
                           : fmt::format("{} [{}]", help, fmt::join(defaults, "; "));
    CLI::Option* option = app->add_option(name, *value, text);
    if constexpr (!std::is_same_v<T, std::string> && !std::is_arithmetic_v<T>) option->delimiter(',');
    appliers_.push_back([option, value, set](Config& config) {
      if (option->count() > 0) set(config, *value);
    });
    options_.push_back(option);
    return option;
  }

  // A flag for a plain field, reached through `field`.
  template <typename T>
  CLI::Option* add(CLI::App* app, const std::string& name, const std::string& help, std::function<T&(Config&)> field) {
    return add<T>(
        app, name, help, [field](const Config& c) { return field(const_cast<Config&>(c)); },
        [field](Config& c, const T& v) { field(c) = v; });
  }

  void apply(Config& config) const {
    for (const auto& a : appliers_) a(config);
  }
  bool any_given() const {
    for (const auto* o : options_) {
      if (o->count() > 0) return true;
    }
    return false;
  }
  // The names of the flags given on the command line ("--image-size").
  std::vector<std::string> given() const {
    std::vector<std::string> names;
    for (const auto* o : options_) {
      if (o->count() > 0) names.push_back(o->get_name());
    }
    return names;
  }

 private:
  std::vector<std::pair<std::string, Config>> presets_;
  std::vector<std::function<void(Config&)>> appliers_;
  std::vector<CLI::Option*> options_;
};

// The image and data flags of every command that trains on images: the image format (fields of
// `Config::model`) and the data set (`Config::data`, a DataOptions).
template <typename Config>
void add_image_data_flags(CLI::App* app, PresetFlags<Config>& flags) {
  using C = Config;
  flags.template add<std::string>(app, "--data",
                                  "folder of training images (PNG/JPEG/..., any size, searched recursively); "
                                  "empty = the embedded MNIST digits",
                                  [](C& c) -> std::string& { return c.data.folder; });
  flags.template add<int64_t>(app, "--image-size", "side S the images are cropped and resized to",
                              [](C& c) -> int64_t& { return c.model.image_size; });
  flags.template add<int64_t>(app, "--channels", "1 = grey, 3 = RGB (images are converted)",
                              [](C& c) -> int64_t& { return c.model.channels; });
  flags.template add<double>(app, "--val-fraction", "share of images held out for validation",
                             [](C& c) -> double& { return c.data.validation_fraction; });
  flags.template add<uint64_t>(app, "--split-seed", "changes which images are held out",
                               [](C& c) -> uint64_t& { return c.data.split_seed; });
  flags.template add<std::string>(
           app, "--on-bad-image", "what to do with unreadable image files: skip (with a warning) or fail",
           [](const C& c) { return std::string(c.data.skip_bad_images ? "skip" : "fail"); },
           [](C& c, const std::string& v) { c.data.skip_bad_images = v == "skip"; })
      ->check(CLI::IsMember({"skip", "fail"}));
  flags.template add<int64_t>(app, "--limit", "use at most this many images (0 = all)",
                              [](C& c) -> int64_t& { return c.data.limit; });
  flags.template add<int64_t>(app, "--cache-mb", "MiB of decoded images kept in memory between epochs",
                              [](C& c) -> int64_t& { return c.data.cache_mb; });
}

// The schedule flags every training command shares, each a field of `Config::train` (a
// TrainSchedule); `items` names what a batch holds ("images", "code maps").
template <typename Config>
void add_schedule_flags(CLI::App* app, PresetFlags<Config>& flags, const std::string& items) {
  using C = Config;
  flags.template add<int64_t>(app, "--batch-size", items + " per step",
                              [](C& c) -> int64_t& { return c.train.batch_size; });
  flags.template add<int64_t>(app, "--epochs", "passes over the training " + items,
                              [](C& c) -> int64_t& { return c.train.epochs; });
  flags.template add<int64_t>(app, "--steps", "optimisation steps; overrides --epochs when > 0",
                              [](C& c) -> int64_t& { return c.train.steps; });
  flags.template add<double>(app, "--lr", "Adam learning rate (the peak one with --lr-schedule cosine)",
                             [](C& c) -> double& { return c.train.learning_rate; });
  flags.template add<std::string>(
           app, "--lr-schedule",
           "learning rate over the run: constant, or cosine (from --lr down to nearly 0 at the last step; the run's "
           "total steps fix its shape, so resume with the same --steps/--epochs)",
           [](const C& c) { return nlohmann::json(c.train.lr_schedule).template get<std::string>(); },
           [](C& c, const std::string& v) {
             c.train.lr_schedule = nlohmann::json(v).template get<LearningRateSchedule>();
           })
      ->check(CLI::IsMember({"constant", "cosine"}));
  flags.template add<uint64_t>(app, "--seed", "seed of everything random (weights, data order, dropout, restarts)",
                               [](C& c) -> uint64_t& { return c.train.seed; });
  flags.template add<int64_t>(app, "--log-every", "steps between metrics lines",
                              [](C& c) -> int64_t& { return c.train.log_every; });
  flags.template add<int64_t>(app, "--checkpoint-every", "steps between checkpoints (also written at each epoch's end)",
                              [](C& c) -> int64_t& { return c.train.checkpoint_every; });
  flags.template add<double>(app, "--weight-average",
                             "Polyak averaging: decay d of a moving average of the weights, updated after every step "
                             "(0 = off; 0.995 averages about the last 200 steps). Evaluations, checkpoints and "
                             "samples use the average; resuming continues both",
                             [](C& c) -> double& { return c.train.weight_average; });
  flags.template add<std::string>(
           app, "--on-nan", "a NaN or infinite loss: stop, or skip the batch (at most 10 in a row)",
           [](const C& c) { return nlohmann::json(c.train.on_nan).template get<std::string>(); },
           [](C& c, const std::string& v) { c.train.on_nan = nlohmann::json(v).template get<NanPolicy>(); })
      ->check(CLI::IsMember({"stop", "skip"}));
}

// --precision, a field of `Config::train` (a TrainSchedule), for the training commands whose
// forward passes run under autocast (train-vqvae, train-prior).
template <typename Config>
void add_precision_flag(CLI::App* app, PresetFlags<Config>& flags) {
  flags.template add<std::string>(
           app, "--precision",
           "number format of the forward passes: fp32; bf16 (CPU with AVX-512-BF16 or AMX, or CUDA); fp16 (CUDA "
           "only, with dynamic loss scaling). Parameters, the quantizer and checkpoints stay fp32",
           [](const Config& c) { return to_string(c.train.precision); },
           [](Config& c, const std::string& v) { c.train.precision = parse_precision(v); })
      ->check(CLI::IsMember({"fp32", "bf16", "fp16"}));
}

}  // namespace vqvae2::cli
