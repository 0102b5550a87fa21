// vqvae2-ablate: the experiments behind the prior defaults (docs/ABLATIONS.md).
//
//   vqvae2-ablate prior --codes DIR --level top|bottom --variant pixelsnail+wn+every5 --steps 1400 --out DIR
//       trains one prior variant on extracted codes (the library's train_prior) and prints one JSON
//       line: parameters, held-out bits per code (and the learning curve), seconds per training step,
//       sampling seconds per map;
//   vqvae2-ablate time --codes DIR --level top --variant pixelsnail
//       parameters, seconds per training step and sampling seconds per map of an untrained variant;
//   vqvae2-ablate score --vqvae RUN --priors TOP BOTTOM --count 256
//       samples images ancestrally and scores them with the digit classifier (score_digits);
//       --given-top codes/val.vq2 samples only the bottom, under real top maps; --top-temperature T,
//       --top-top-p P and --exact-first N set the top prior's options, --candidates N reranks the
//       bottom (as `vqvae2 sample`, with its seeds; under --given-top with --select's criterion),
//       --guidance W guides it (priors trained with condition dropout). The JSON line counts the
//       samples read as each digit.
//
// A variant is '+'-separated tokens over a base width: the block (two-stream | pixelsnail), wn (weight
// norm everywhere), everyN (attention after every N gated layers, top prior), and for the bottom
// prior's conditioning transposed (learned stride-s upsampling) and position (background channels),
// both on by default now, or nearest and noposition (the old conditioning).
#include "bench.h"

#include "vqvae2/core/device.h"
#include "vqvae2/core/error.h"
#include "vqvae2/data/code_store.h"
#include "vqvae2/data/image.h"
#include "vqvae2/models/digit_classifier.h"
#include "vqvae2/models/sampler.h"
#include "vqvae2/stages/evaluate.h"
#include "vqvae2/stages/presets.h"
#include "vqvae2/stages/train_prior.h"
#include "vqvae2/stages/trained.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

namespace vqvae2 {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

struct Widths {
  int64_t channels = 64, res_channels = 64, layers = 10, kernel = 5, heads = 4;
  double dropout = 0.1;
  int64_t condition_channels = 64, condition_res_blocks = 3;
};

// The small prior configuration of `level` with the variant's options on the base widths.
TrainPriorConfig variant_config(const PriorCodes& codes, int64_t level, const std::string& variant, const Widths& w) {
  auto config = prior_config_for(codes, level, PriorSize::kSmall);
  auto& o = config.model;
  auto& s = o.stack;
  s.channels = w.channels;
  s.res_channels = w.res_channels;
  s.kernel = w.kernel;
  s.heads = w.heads;
  s.dropout = w.dropout;
  s.blocks = 1;
  s.res_blocks = w.layers;
  s.attention_every = 0;  // one attention block closing the stack; everyN sets N
  if (o.conditional) {
    o.condition.channels = w.condition_channels;
    o.condition.res_blocks = w.condition_res_blocks;
  }
  std::stringstream tokens(variant);
  std::string token;
  while (std::getline(tokens, token, '+')) {
    if (token == "two-stream") {
      s.block = "gated-two-stream";
    } else if (token == "pixelsnail") {
      s.block = "pixelsnail";
    } else if (token == "wn") {
      s.weight_norm = o.condition.weight_norm = true;
    } else if (token.rfind("every", 0) == 0) {
      s.attention_every = std::stoll(token.substr(5));
    } else if (token == "noattention") {
      s.attention = false;
    } else if (token == "transposed") {
      o.condition.upsample = "transposed";
    } else if (token == "position") {
      o.condition.position = true;
    } else if (token == "nearest") {  // the library's defaults are transposed + position: these undo them
      o.condition.upsample = "nearest";
    } else if (token == "noposition") {
      o.condition.position = false;
    } else {
      fail("unknown variant token '{}' in '{}'", token, variant);
    }
  }
  config.validate();
  return config;
}

int64_t parameter_count(torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

// Median seconds of one optimisation step on a training batch.
double step_seconds(Prior& prior, const LevelCodes& train, int64_t batch, double lr) {
  prior->train();
  torch::optim::Adam optimizer(prior->parameters(), torch::optim::AdamOptions(lr));
  const auto codes = train.codes.slice(0, 0, batch);
  const auto condition = train.condition.defined() ? train.condition.slice(0, 0, batch) : torch::Tensor();
  std::vector<double> seconds;
  for (int i = 0; i < 6; ++i) {
    const auto start = Clock::now();
    optimizer.zero_grad();
    prior->loss(codes, condition).backward();
    optimizer.step();
    if (i > 0) seconds.push_back(seconds_since(start));
  }
  std::sort(seconds.begin(), seconds.end());
  return seconds[seconds.size() / 2];
}

int run_prior(const std::string& codes_dir, const std::string& level_name, const std::string& variant,
              const Widths& widths, TrainSchedule schedule, const std::string& out, const std::string& results) {
  const auto codes = read_prior_codes(codes_dir);
  const auto& val_store = codes.validation;
  const int64_t level = parse_level(level_name, static_cast<int64_t>(codes.train.levels.size()));

  auto config = variant_config(codes, level, variant, widths);
  config.train = schedule;
  fs::remove_all(out);
  RunSettings settings;
  settings.quiet = true;
  const auto start = Clock::now();
  const auto result = train_prior(config, codes, open_training_run(out, PriorKind::name, false), settings);
  const double train_seconds = seconds_since(start);

  auto loaded = load<PriorKind>(result.checkpoint, torch::kCPU);
  nlohmann::json curve = nlohmann::json::array();
  std::ifstream metrics((fs::path(out) / "metrics.jsonl").string());
  for (std::string line; std::getline(metrics, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.value("event", "") == "eval") curve.push_back({j.at("step"), j.at("val_bits_per_code")});
  }
  // Sampling: 16 maps at once, the bottom prior under held-out top codes.
  const auto held_out = level_codes(val_store, level);
  const int64_t sample_batch = 16;
  const auto condition = held_out.condition.defined() ? held_out.condition.slice(0, 0, sample_batch) : torch::Tensor();
  const auto sample_start = Clock::now();
  sample_cached(loaded.model, sample_batch, condition, {}, 0);
  const double sample_seconds = seconds_since(sample_start) / sample_batch;

  const auto train = level_codes(codes.train, level);
  const double step = step_seconds(loaded.model, train, schedule.batch_size, schedule.learning_rate);
  const nlohmann::json line = {{"variant", variant},
                               {"level", level_name},
                               {"codes", codes_dir},
                               {"parameters", parameter_count(*loaded.model)},
                               {"steps", result.steps},
                               {"batch", schedule.batch_size},
                               {"bits_per_code", result.final_bits_per_code},
                               {"initial_bits_per_code", result.initial_bits_per_code},
                               {"seconds_per_step", step},
                               {"train_seconds", train_seconds},
                               {"sample_seconds_per_map", sample_seconds},
                               {"curve", curve},
                               {"model", config.model}};
  std::cout << line.dump() << std::endl;
  if (!results.empty()) std::ofstream(results, std::ios::app) << line.dump() << "\n";
  return 0;
}

// Parameters, seconds per training step and sampling seconds per map of a variant, untrained (the
// figures do not depend on the weights): the timing columns of docs/ABLATIONS.md.
int run_time(const std::string& codes_dir, const std::string& level_name, const std::string& variant,
             const Widths& widths, int64_t batch, bool time, const std::string& results) {
  const auto codes = read_prior_codes(codes_dir);
  const auto& store = codes.validation;
  const int64_t level = parse_level(level_name, static_cast<int64_t>(store.levels.size()));
  torch::manual_seed(0);
  Prior prior(variant_config(codes, level, variant, widths).model);
  nlohmann::json line = {{"variant", variant}, {"level", level_name}, {"parameters", parameter_count(*prior)}};
  if (time) {
    auto data = level_codes(store, level);
    while (data.codes.size(0) < batch) {
      data.codes = torch::cat({data.codes, data.codes});
      if (data.condition.defined()) data.condition = torch::cat({data.condition, data.condition});
    }
    line["seconds_per_step"] = step_seconds(prior, data, batch, 1e-3);
    const int64_t sample_batch = 16;
    const auto condition = data.condition.defined() ? data.condition.slice(0, 0, sample_batch) : torch::Tensor();
    const auto start = Clock::now();
    sample_cached(prior, sample_batch, condition, {}, 0);
    line["sample_seconds_per_map"] = seconds_since(start) / sample_batch;
  }
  std::cout << line.dump() << std::endl;
  if (!results.empty()) std::ofstream(results, std::ios::app) << line.dump() << "\n";
  return 0;
}

// What to change in the top level of a two-level sample (score --given-top / --top-temperature / ...).
struct TopLevel {
  std::string given;        // a code store: its top maps replace the top prior's samples
  double temperature = -1;  // >= 0: the top prior's temperature (the others keep --temperature)
  double top_p = -1;        // > 0: the top prior's nucleus threshold (the others keep --top-p)
  bool reconstruct = false; // with `given`: its bottom maps too (the VQ-VAE's reconstructions, no prior)
  int64_t candidates = 1;   // > 1: bottom maps drawn per top map; the one whose image re-encodes closest is kept
  std::string select = "both";  // with `given`, what "closest" counts: both (self_consistency) | top | bottom |
                                // roundtrip | binary; without, always self_consistency (sample_hierarchy)
  int64_t exact_first = 0;  // the top map's first codes untruncated (sample --exact-first)
  bool any() const { return !given.empty() || temperature >= 0 || top_p > 0 || candidates > 1 || exact_first > 0; }
  // The options of `sample` for these flags: the same seeds and candidates as `vqvae2 sample`.
  HierarchySampling hierarchy(const SamplingOptions& sampling) const {
    auto upper = sampling;
    if (temperature >= 0) upper.temperature = temperature;
    if (top_p > 0) upper.top_p = top_p;
    upper.exact_first = exact_first;
    upper.guidance = 0;  // --guidance is the lower levels': the top has no condition
    return {upper, sampling, candidates};
  }
};

int run_score(const std::string& vqvae_path, const std::vector<std::string>& prior_paths, int64_t count, int64_t batch,
              uint64_t seed, const SamplingOptions& sampling, const TopLevel& top, const std::string& classifier,
              const std::string& grid, const std::string& results, const std::string& label) {
  auto vqvae = load<VQVAEKind>(vqvae_path, torch::kCPU);
  std::vector<Prior> priors(vqvae.config.model.levels(), Prior(nullptr));
  for (const auto& path : prior_paths) {
    auto loaded = load<PriorKind>(path, torch::kCPU);
    priors.at(loaded.config.model.level) = loaded.model;
  }
  std::vector<torch::Tensor> images;
  std::vector<double> seconds(priors.size() + 1, 0.0);
  std::optional<CodeStore> given;
  if (!top.given.empty()) {
    given = read_code_store(top.given);
    VQVAE2_CHECK(given->size() >= count, "{} holds {} maps, fewer than --count {}", top.given, given->size(), count);
  }
  VQVAE2_CHECK(!top.reconstruct || given, "--reconstruct decodes the maps of --given-top: give that store too");
  VQVAE2_CHECK(!top.any() || priors.size() == 2,
               "--given-top, --top-temperature, --top-top-p, --candidates and --exact-first need a two-level model");
  for (int64_t begin = 0; begin < count; begin += batch) {
    const auto n = std::min(batch, count - begin);
    HierarchySample sample;
    if (!top.given.empty()) {
      // Real top maps from the store, spread evenly over it (stores may be ordered by class), then the
      // bottom: what the bottom prior alone costs.
      torch::NoGradGuard no_grad;
      const auto start = Clock::now();
      const auto picked = (torch::arange(begin, begin + n, torch::kDouble) * (static_cast<double>(given->size()) / count))
                              .floor()
                              .to(torch::kLong);
      const auto upper = given->codes.at(1).index_select(0, picked);
      const auto middle = Clock::now();
      auto lower = top.reconstruct ? given->codes.at(0).index_select(0, picked)
                                   : sample_cached(priors[0], n, upper, sampling, seed * 1000003 + begin);
      if (top.candidates > 1) {
        vqvae.model->eval();
        auto agreement = [&](const torch::Tensor& bottom) {
          const auto image = vqvae.model->decode_codes({bottom, upper}).clamp(-1, 1);
          if (top.select == "roundtrip")
            return -(vqvae.model->forward(image).reconstruction - image).pow(2).mean({1, 2, 3}).to(torch::kDouble);
          if (top.select == "binary") return -(1 - image.pow(2)).mean({1, 2, 3}).to(torch::kDouble);
          if (top.select == "both") return self_consistency(vqvae.model, {bottom, upper}, image);  // sample's --candidates
          const auto again = vqvae.model->encode(image);
          const auto t = again[1].eq(upper).to(torch::kDouble).mean({1, 2});
          const auto b = again[0].eq(bottom).to(torch::kDouble).mean({1, 2});
          return top.select == "top" ? t + 1e-3 * b : b + 1e-3 * t;
        };
        auto best = agreement(lower);
        for (int64_t c = 1; c < top.candidates; ++c) {
          const auto other = sample_cached(priors[0], n, upper, sampling, seed * 1000003 + begin + 7919 * c);
          const auto a = agreement(other);
          const auto better = a.gt(best);
          lower = torch::where(better.view({-1, 1, 1}), other, lower);
          best = torch::where(better, a, best);
        }
      }
      sample.seconds = {seconds_since(middle), std::chrono::duration<double>(middle - start).count(), 0.0};
      vqvae.model->eval();
      sample.images = vqvae.model->decode_codes({lower, upper});
    } else {
      sample = sample_hierarchy(vqvae.model, priors, n, top.hierarchy(sampling), seed + begin);
    }
    for (size_t l = 0; l < seconds.size(); ++l) seconds[l] += sample.seconds[l];
    images.push_back(to_pixels(sample.images));
  }
  const auto pixels = torch::cat(images);
  if (!grid.empty()) save_png(grid, make_grid(pixels.slice(0, 0, std::min<int64_t>(64, count)), 8));
  auto judge = cached_digit_classifier(classifier);
  const auto score = score_digits(pixels, judge);
  double total = 0;
  for (const auto s : seconds) total += s;
  const nlohmann::json line = {{"label", label},           {"score", score.score},
                               {"confident", score.confident}, {"images", score.images},
                               {"sampling_seconds", total},     {"seconds_per_level_bottom_first", seconds},
                               {"temperature", sampling.temperature}, {"top_k", sampling.top_k},
                               {"top_p", sampling.top_p}, {"given_top", top.given},
                               {"top_temperature", top.temperature}, {"top_top_p", top.top_p},
                               {"reconstruct", top.reconstruct}, {"candidates", top.candidates},
                               {"select", top.select}, {"exact_first", top.exact_first},
                               {"guidance", sampling.guidance}, {"digits", score.read_as}};
  std::cout << line.dump() << std::endl;
  if (!results.empty()) std::ofstream(results, std::ios::app) << line.dump() << "\n";
  return 0;
}

}  // namespace
}  // namespace vqvae2

int main(int argc, char** argv) {
  using namespace vqvae2;
  restart_with_better_blas_kernels(argv);  // OpenBLAS's kernels for this CPU (core/device.h)
  CLI::App app{"vqvae2-ablate: the prior experiments of docs/ABLATIONS.md"};
  app.require_subcommand(1);
  std::string results;
  app.add_option("--results", results, "append each JSON line to this file too");

  auto* prior = app.add_subcommand("prior", "train one prior variant and measure it");
  std::string codes, level = "top", variant = "two-stream", out;
  Widths widths;
  TrainSchedule schedule;
  schedule.batch_size = 64;
  schedule.learning_rate = 1e-3;
  schedule.steps = 1400;
  schedule.checkpoint_every = 1000000;
  prior->add_option("--codes", codes, "folder with train.vq2 and val.vq2")->required();
  prior->add_option("--level", level, "top, bottom or a number")->capture_default_str();
  prior->add_option("--variant", variant, "'+'-separated tokens (see the top of bench/ablate.cpp)")->capture_default_str();
  prior->add_option("--out", out, "run folder (replaced)")->required();
  prior->add_option("--channels", widths.channels)->capture_default_str();
  prior->add_option("--res-channels", widths.res_channels)->capture_default_str();
  prior->add_option("--layers", widths.layers, "gated layers")->capture_default_str();
  prior->add_option("--kernel", widths.kernel)->capture_default_str();
  prior->add_option("--heads", widths.heads)->capture_default_str();
  prior->add_option("--dropout", widths.dropout)->capture_default_str();
  prior->add_option("--condition-channels", widths.condition_channels)->capture_default_str();
  prior->add_option("--condition-res-blocks", widths.condition_res_blocks)->capture_default_str();
  prior->add_option("--steps", schedule.steps)->capture_default_str();
  prior->add_option("--batch-size", schedule.batch_size)->capture_default_str();
  prior->add_option("--lr", schedule.learning_rate)->capture_default_str();
  prior->add_option("--seed", schedule.seed)->capture_default_str();

  auto* time = app.add_subcommand("time", "parameters, step and sampling time of an untrained variant");
  bool count_only = false;
  time->add_option("--codes", codes, "folder with train.vq2 and val.vq2 (for the map sizes and K)")->required();
  time->add_option("--level", level)->capture_default_str();
  time->add_option("--variant", variant)->capture_default_str();
  time->add_option("--channels", widths.channels)->capture_default_str();
  time->add_option("--res-channels", widths.res_channels)->capture_default_str();
  time->add_option("--layers", widths.layers)->capture_default_str();
  time->add_option("--kernel", widths.kernel)->capture_default_str();
  time->add_option("--heads", widths.heads)->capture_default_str();
  time->add_option("--condition-channels", widths.condition_channels)->capture_default_str();
  time->add_option("--condition-res-blocks", widths.condition_res_blocks)->capture_default_str();
  time->add_option("--batch-size", schedule.batch_size)->capture_default_str();
  time->add_flag("--count-only", count_only, "parameters only");

  auto* score = app.add_subcommand("score", "sample digits and score them with the digit classifier");
  std::string vqvae_path, classifier = default_digit_classifier_path(), grid, label;
  std::vector<std::string> priors;
  int64_t count = 256, batch = 64;
  uint64_t seed = 0;
  SamplingOptions sampling;
  score->add_option("--vqvae", vqvae_path, "VQ-VAE checkpoint")->required();
  score->add_option("--priors", priors, "prior checkpoints, one per level")->required();
  score->add_option("--count", count)->capture_default_str();
  score->add_option("--batch-size", batch)->capture_default_str();
  score->add_option("--seed", seed)->capture_default_str();
  score->add_option("--temperature", sampling.temperature)->capture_default_str();
  score->add_option("--top-k", sampling.top_k)->capture_default_str();
  score->add_option("--top-p", sampling.top_p)->capture_default_str();
  score->add_option("--guidance", sampling.guidance, "the bottom's classifier-free guidance (as sample --guidance)")
      ->capture_default_str();
  score->add_option("--classifier", classifier, "digit classifier cache")->capture_default_str();
  score->add_option("--grid", grid, "also write the first 64 samples as a PNG grid");
  score->add_option("--label", label, "a name for the JSON line");
  TopLevel top;
  score->add_option("--given-top", top.given,
                    "two levels: take the top maps from this code store (e.g. codes/val.vq2) and sample only the "
                    "bottom: how much the bottom prior alone loses");
  score->add_flag("--reconstruct", top.reconstruct, "with --given-top: the store's bottom maps too (scores reconstructions)");
  score->add_option("--top-temperature", top.temperature, "two levels: the top prior's temperature (default --temperature)");
  score->add_option("--candidates", top.candidates, "two levels: bottom maps per top map, the most self-consistent kept");
  score->add_option("--exact-first", top.exact_first, "two levels: the top map's first codes untruncated (as sample's)");
  score->add_option("--select", top.select, "with --candidates: both (the library's self_consistency, as sample --candidates) | top | bottom | roundtrip (-MSE of x̂ reconstructed again) | binary (-mean 1 - x̂²)");
  score->add_option("--top-top-p", top.top_p, "two levels: the top prior's nucleus threshold (default --top-p)");
  CLI11_PARSE(app, argc, argv);
  try {
    configure_threads({});
    if (prior->parsed()) return run_prior(codes, level, variant, widths, schedule, out, results);
    if (time->parsed()) return run_time(codes, level, variant, widths, schedule.batch_size, !count_only, results);
    return run_score(vqvae_path, priors, count, batch, seed, sampling, top, classifier, grid, results, label);
  } catch (const std::exception& e) {
    std::cerr << "error: " << describe(e) << "\n";
    return 1;
  }
}
