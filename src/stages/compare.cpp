#include "vqvae2/stages/compare.h"

#include "vqvae2/core/device.h"
#include "vqvae2/core/error.h"
#include "vqvae2/core/files.h"
#include "vqvae2/core/metrics.h"
#include "vqvae2/core/report.h"
#include "vqvae2/data/image.h"
#include "vqvae2/models/sampler.h"
#include "vqvae2/stages/evaluate.h"
#include "vqvae2/stages/generate.h"
#include "vqvae2/stages/train_vae.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

namespace vqvae2 {

namespace fs = std::filesystem;

void CompareConfig::validate() const {
  VQVAE2_CHECK(!runs.empty(), "nothing to compare: give one or more run folders");
  VQVAE2_CHECK(images >= 0, "the number of held-out images must be 0 (all) or positive, got {}", images);
  VQVAE2_CHECK(samples >= 0, "the number of samples must be 0 or positive, got {}", samples);
  VQVAE2_CHECK(batch_size >= 1, "the batch size must be positive, got {}", batch_size);
  VQVAE2_CHECK(!out.empty(), "no output folder given");
  VQVAE2_CHECK(digit_samples >= 0, "the number of samples scored as digits must be 0 (none) or positive, got {}",
               digit_samples);
  VQVAE2_CHECK(digit_samples > 0 || digit_classifier.empty(), "a digit classifier goes with samples scored as digits");
}

std::vector<double> reconstruction_log_scales() {
  std::vector<double> scales;
  for (int i = 0; i <= 28; ++i) scales.push_back(-7.0 + 0.25 * i);
  return scales;
}

namespace {

// ---- JSON and numbers -----------------------------------------------------------------------------

nlohmann::json optional_json(const std::optional<double>& value) {
  return value ? nlohmann::json(*value) : nlohmann::json(nullptr);
}

int64_t count_parameters(const torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

std::optional<double> median(std::vector<double> values) {
  if (values.empty()) return std::nullopt;
  std::sort(values.begin(), values.end());
  const auto n = values.size();
  return n % 2 == 1 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

// Median images (or code maps) per second over the training lines of <folder>/metrics.jsonl.
std::optional<double> training_speed(const std::string& folder) {
  const auto path = (fs::path(folder) / "metrics.jsonl").string();
  if (!fs::exists(path)) return std::nullopt;
  const auto history = read_metrics(path);
  if (!history.has("images_per_second")) return std::nullopt;
  return median(history.series.at("images_per_second").values);
}

std::string side(int64_t s) { return fmt::format("{}x{}", s, s); }

// ---- which run is which ---------------------------------------------------------------------------

struct RunSpec {
  std::string label, folder;
};

RunSpec parse_run(const std::string& text) {
  RunSpec spec{"", text};
  const auto eq = text.find('=');
  if (eq != std::string::npos && text.substr(0, eq).find('/') == std::string::npos) {
    spec.label = text.substr(0, eq);
    spec.folder = text.substr(eq + 1);
  }
  VQVAE2_CHECK(!spec.folder.empty(), "run '{}' names no folder; give [LABEL=]FOLDER", text);
  if (spec.label.empty()) spec.label = fs::path(spec.folder).lexically_normal().filename().string();
  if (spec.label.empty() || spec.label == ".") spec.label = spec.folder;
  return spec;
}

bool has(const fs::path& folder, const std::string& file) { return fs::exists(folder / file); }

// What one run folder holds, loaded.
struct LoadedRun {
  RunSpec spec;
  std::optional<TrainedVAE> vae;
  std::optional<TrainedVQVAE> vqvae;
  std::vector<TrainedPrior> priors;  // bottom first; empty = reconstruction only
  std::string autoencoder_folder;
  std::vector<std::string> prior_folders;
};

LoadedRun load_run(const RunSpec& spec, const torch::Device& device) {
  const fs::path folder(spec.folder);
  VQVAE2_CHECK(fs::is_directory(folder), "run folder '{}' does not exist", spec.folder);
  LoadedRun run;
  run.spec = spec;
  if (has(folder, "vae.ckpt")) {
    run.vae = load<VAEKind>(spec.folder, device);
    run.autoencoder_folder = spec.folder;
    return run;
  }
  const bool pipeline = has(folder, "vqvae/vqvae.ckpt");
  VQVAE2_CHECK(pipeline || has(folder, "vqvae.ckpt"),
               "'{}' is neither a VAE run (vae.ckpt), a pipeline folder (vqvae/vqvae.ckpt and prior-level<l>/) nor a "
               "VQ-VAE run (vqvae.ckpt)",
               spec.folder);
  run.autoencoder_folder = pipeline ? (folder / "vqvae").string() : spec.folder;
  run.vqvae = load<VQVAEKind>(run.autoencoder_folder, device);
  if (!pipeline) return run;
  const auto levels = run.vqvae->config.model.levels();
  std::vector<std::string> missing;
  for (int64_t l = 0; l < levels; ++l) {
    const auto prior = folder / fmt::format("prior-level{}", l);
    if (has(prior, "prior.ckpt")) {
      run.prior_folders.push_back(prior.string());
    } else {
      missing.push_back(prior.string());
    }
  }
  if (run.prior_folders.empty()) return run;
  VQVAE2_CHECK(missing.empty(), "pipeline folder '{}' has priors for some levels but not for {}; finish its training "
               "(`vqvae2 pipeline --resume`)",
               spec.folder, fmt::join(missing, ", "));
  for (const auto& p : run.prior_folders) run.priors.push_back(load<PriorKind>(p, device));
  priors_by_level(run.priors, run.prior_folders, levels);  // checks one per level
  std::sort(run.priors.begin(), run.priors.end(),
            [](const TrainedPrior& a, const TrainedPrior& b) { return a.config.model.level < b.config.model.level; });
  return run;
}

const DataOptions& data_of(const LoadedRun& run) { return run.vae ? run.vae->config.data : run.vqvae->config.data; }
ImageFormat format_of(const LoadedRun& run) {
  if (run.vae) return {run.vae->config.model.image_size, run.vae->config.model.channels};
  return run.vqvae->config.model.format();
}

std::string describe_format(const ImageFormat& f) {
  return fmt::format("{} {}", side(f.size), f.channels == 1 ? "grey" : "RGB");
}

// The runs must have seen the same held-out images: same format, folder and split.
void check_same_data(const LoadedRun& first, const LoadedRun& run) {
  const auto a = format_of(first), b = format_of(run);
  VQVAE2_CHECK(a.size == b.size && a.channels == b.channels,
               "cannot compare '{}' ({} images) with '{}' ({} images): the runs must work on one image format",
               run.spec.label, describe_format(b), first.spec.label, describe_format(a));
  const auto &d = data_of(first), &e = data_of(run);
  VQVAE2_CHECK(d.folder == e.folder && d.validation_fraction == e.validation_fraction && d.split_seed == e.split_seed,
               "'{}' was trained on other images or another split than '{}' (data '{}', held out {} with split seed {}; "
               "'{}' has '{}', {}, {}); compare runs trained on one data set and split",
               run.spec.label, first.spec.label, e.folder.empty() ? "embedded MNIST" : e.folder,
               e.validation_fraction, e.split_seed, first.spec.label, d.folder.empty() ? "embedded MNIST" : d.folder,
               d.validation_fraction, d.split_seed);
}

// ---- scoring --------------------------------------------------------------------------------------

void score_vae(LoadedRun& run, const std::shared_ptr<ImageDataset>& dataset, const std::vector<int64_t>& held_out,
               const CompareConfig& config, const torch::Device& device, ModelScore& score) {
  auto& model = run.vae->model;
  const auto& o = model->options();
  score.kind = "vae";
  score.description = fmt::format("Gaussian VAE, z {}x{}x{}", o.latent_channels, o.latent_size(), o.latent_size());
  score.steps = run.vae->step;
  score.parameters = count_parameters(*model);
  score.latent_channels = o.latent_channels;
  BatchLoader loader(dataset, held_out, {config.batch_size, /*shuffle=*/false, /*drop_last=*/false, 0, 4});
  const auto e = evaluate_vae(model, loader, device);
  score.mse = e.mse;
  score.psnr = e.psnr;
  score.latent_bits_per_dim = functional::bits_per_dim(e.kl_nats, o.image_dims());
  score.reconstruction_bits_per_dim = functional::bits_per_dim(e.nll_nats, o.image_dims());
  score.bits_per_dim = e.bits_per_dim;
  score.active_dims = e.active_dims;
  if (config.samples > 0) {
    const auto start = std::chrono::steady_clock::now();
    score.samples = vae_samples(model, config.samples, config.seed);
    score.sample_seconds_per_image =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / config.samples;
  }
}

void score_vqvae(LoadedRun& run, const std::shared_ptr<ImageDataset>& dataset, const std::vector<int64_t>& held_out,
                 const CompareConfig& config, const torch::Device& device, ModelScore& score) {
  auto& model = run.vqvae->model;
  const auto& o = model->options();
  const auto levels = o.levels();
  score.kind = "vqvae";
  std::vector<std::string> maps, ks;
  for (int64_t l = 0; l < levels; ++l) {
    maps.push_back(side(o.latent_size(l)));
    ks.push_back(std::to_string(o.codes_at(l)));
  }
  score.description = fmt::format("VQ-VAE, {} level{} {}, K {}, {}", levels, levels == 1 ? "" : "s",
                                  fmt::join(maps, "+"), fmt::join(ks, "/"), o.quantizer.ema ? "EMA" : "codebook loss");
  if (!run.priors.empty()) {
    const auto& top = run.priors.back().config.model;
    score.description += levels == 1 ? (top.stack.attention ? "; PixelSNAIL prior" : "; gated PixelCNN prior")
                                     : (top.stack.attention ? "; PixelSNAIL + conditional PixelCNN priors"
                                                            : "; gated PixelCNN + conditional PixelCNN priors");
  }
  score.steps = run.vqvae->step;
  score.parameters = count_parameters(*model);

  // One pass: squared error, code counts and codes per level, and the reconstruction likelihood
  // for every candidate scale.
  torch::NoGradGuard no_grad;
  const auto scales = reconstruction_log_scales();
  std::vector<double> reconstruction_nats(scales.size(), 0.0);
  std::vector<torch::Tensor> counts;
  std::vector<std::vector<torch::Tensor>> codes(levels);
  for (int64_t l = 0; l < levels; ++l) counts.push_back(torch::zeros({o.codes_at(l)}, torch::kFloat));
  double squared_error = 0;
  int64_t images = 0;
  BatchLoader loader(dataset, held_out, {config.batch_size, /*shuffle=*/false, /*drop_last=*/false, 0, 4});
  loader.start(0);
  while (auto batch = loader.next()) {
    const auto x = to_model_range(batch->images).to(device);
    const auto out = model->forward(x);
    squared_error += out.reconstruction_loss.item<double>() * static_cast<double>(x.size(0));
    images += x.size(0);
    for (int64_t l = 0; l < levels; ++l) {
      counts[l] += functional::code_counts(out.levels[l].codes, o.codes_at(l)).to(torch::kCPU);
      codes[l].push_back(out.levels[l].codes.to(torch::kCPU));
    }
    const auto pixels = batch->images.to(device);
    for (size_t i = 0; i < scales.size(); ++i) {
      const auto log_scale = torch::full({1}, scales[i], out.reconstruction.options().dtype(torch::kFloat));
      reconstruction_nats[i] -=
          functional::discretized_logistic_log_prob(pixels, out.reconstruction, log_scale).sum().item<double>();
    }
  }
  VQVAE2_CHECK(images > 0, "nothing to evaluate: no held-out images");
  const auto n = static_cast<double>(images);
  score.mse = squared_error / n;
  score.psnr = psnr_from_mse(score.mse);
  for (const auto& c : counts) score.usage.push_back((c > 0).sum().item<double>() / static_cast<double>(c.numel()));
  if (run.priors.empty()) return;

  // −log p(x|z_q) with the best scale; −log p(z_q) under the priors, top level given nothing, each
  // level below given the one above.
  const auto best = std::min_element(reconstruction_nats.begin(), reconstruction_nats.end()) - reconstruction_nats.begin();
  score.reconstruction_log_scale = scales[best];
  const auto dims = o.channels * o.image_size * o.image_size;
  score.reconstruction_bits_per_dim = functional::bits_per_dim(reconstruction_nats[best] / n, dims);
  std::vector<torch::Tensor> all_codes;
  for (auto& c : codes) all_codes.push_back(torch::cat(c));
  double prior_nats = 0;
  for (int64_t l = 0; l < levels; ++l) {
    auto& prior = run.priors[l];
    LevelCodes data{all_codes[l], l + 1 < levels ? all_codes[l + 1] : torch::Tensor()};
    const auto per_code = evaluate_prior(prior.model, data, config.batch_size, device);
    prior_nats += per_code * static_cast<double>(all_codes[l].size(1) * all_codes[l].size(2));  // per image
    score.prior_steps.push_back(prior.step);
    score.prior_parameters += count_parameters(*prior.model);
    if (const auto speed = training_speed(run.prior_folders[l])) score.prior_maps_per_second.push_back(*speed);
  }
  score.latent_bits_per_dim = functional::bits_per_dim(prior_nats, dims);  // already per image
  score.bits_per_dim = *score.latent_bits_per_dim + *score.reconstruction_bits_per_dim;

  if (config.samples > 0) {
    std::vector<Prior> priors;
    for (auto& p : run.priors) priors.push_back(p.model);
    const auto start = std::chrono::steady_clock::now();
    const auto sample = sample_hierarchy(model, priors, config.samples, SamplingOptions{}, config.seed);
    score.samples = to_pixels(sample.images).to(torch::kCPU);
    score.sample_seconds_per_image =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / config.samples;
  }
}

// `count` samples of a run that can sample (a VAE, or a VQ-VAE with priors), in batches: uint8 [count, C, S, S].
torch::Tensor draw_samples(LoadedRun& run, int64_t count, const CompareConfig& config) {
  torch::NoGradGuard no_grad;
  std::vector<Prior> priors;
  for (auto& p : run.priors) priors.push_back(p.model);
  std::vector<torch::Tensor> images;
  for (int64_t begin = 0; begin < count; begin += config.batch_size) {
    const auto batch = std::min(config.batch_size, count - begin);
    const auto seed = config.seed + static_cast<uint64_t>(begin);
    if (run.vae) {
      images.push_back(vae_samples(run.vae->model, batch, seed));
    } else {
      const auto sample = sample_hierarchy(run.vqvae->model, priors, batch, SamplingOptions{}, seed);
      images.push_back(to_pixels(sample.images).to(torch::kCPU));
    }
  }
  return torch::cat(images);
}

// ---- the picture ----------------------------------------------------------------------------------

// A 5×7 pixel font: 7 rows of 5 columns per glyph, '#' = ink.
const std::map<char, std::array<const char*, 7>>& font() {
  static const std::map<char, std::array<const char*, 7>> glyphs = {
      {'A', {".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"}},
      {'B', {"####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."}},
      {'C', {".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."}},
      {'D', {"####.", "#...#", "#...#", "#...#", "#...#", "#...#", "####."}},
      {'E', {"#####", "#....", "#....", "####.", "#....", "#....", "#####"}},
      {'F', {"#####", "#....", "#....", "####.", "#....", "#....", "#...."}},
      {'G', {".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"}},
      {'H', {"#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"}},
      {'I', {".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."}},
      {'J', {"..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."}},
      {'K', {"#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"}},
      {'L', {"#....", "#....", "#....", "#....", "#....", "#....", "#####"}},
      {'M', {"#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"}},
      {'N', {"#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"}},
      {'O', {".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."}},
      {'P', {"####.", "#...#", "#...#", "####.", "#....", "#....", "#...."}},
      {'Q', {".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"}},
      {'R', {"####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"}},
      {'S', {".####", "#....", "#....", ".###.", "....#", "....#", "####."}},
      {'T', {"#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."}},
      {'U', {"#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."}},
      {'V', {"#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."}},
      {'W', {"#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."}},
      {'X', {"#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"}},
      {'Y', {"#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."}},
      {'Z', {"#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"}},
      {'0', {".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."}},
      {'1', {"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."}},
      {'2', {".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"}},
      {'3', {"#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."}},
      {'4', {"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."}},
      {'5', {"#####", "#....", "####.", "....#", "....#", "#...#", ".###."}},
      {'6', {"..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."}},
      {'7', {"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."}},
      {'8', {".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."}},
      {'9', {".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."}},
      {'-', {".....", ".....", ".....", "#####", ".....", ".....", "....."}},
      {'.', {".....", ".....", ".....", ".....", ".....", ".##..", ".##.."}},
      {'_', {".....", ".....", ".....", ".....", ".....", ".....", "#####"}},
      {' ', {".....", ".....", ".....", ".....", ".....", ".....", "....."}},
      {'(', {"...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."}},
      {')', {".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."}},
      {'/', {".....", "....#", "...#.", "..#..", ".#...", "#....", "....."}},
      {'+', {".....", "..#..", "..#..", "#####", "..#..", "..#..", "....."}},
      {'=', {".....", ".....", "#####", ".....", "#####", ".....", "....."}},
      {':', {".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."}},
      {'?', {".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#.."}},
  };
  return glyphs;
}

constexpr int64_t kGlyphWidth = 5, kGlyphHeight = 7, kGlyphAdvance = 6;

// Draws `text` in black into `canvas` uint8 [C, H, W] with its top-left corner at (y, x), each font
// pixel `scale` × `scale`.
void draw_text(torch::Tensor& canvas, const std::string& text, int64_t y, int64_t x, int64_t scale) {
  const auto& glyphs = font();
  for (size_t i = 0; i < text.size(); ++i) {
    auto c = static_cast<char>(std::toupper(static_cast<unsigned char>(text[i])));
    const auto found = glyphs.count(c) ? glyphs.find(c) : glyphs.find('?');
    const auto left = x + static_cast<int64_t>(i) * kGlyphAdvance * scale;
    for (int64_t r = 0; r < kGlyphHeight; ++r) {
      for (int64_t col = 0; col < kGlyphWidth; ++col) {
        if (found->second[r][col] != '#') continue;
        canvas.slice(1, y + r * scale, y + (r + 1) * scale).slice(2, left + col * scale, left + (col + 1) * scale).fill_(0);
      }
    }
  }
}

}  // namespace

torch::Tensor labelled_rows(const std::vector<std::string>& labels, const std::vector<torch::Tensor>& rows) {
  VQVAE2_CHECK(!rows.empty() && labels.size() == rows.size(), "labelled_rows needs one label per row, got {} and {}",
               labels.size(), rows.size());
  const auto channels = rows[0].size(1);
  const auto size = rows[0].size(2);
  int64_t columns = 0;
  size_t longest = 0;
  for (size_t r = 0; r < rows.size(); ++r) {
    VQVAE2_CHECK(rows[r].dim() == 4 && rows[r].size(1) == channels && rows[r].size(2) == size && rows[r].size(3) == size &&
                     rows[r].scalar_type() == torch::kUInt8,
                 "every row must be uint8 [N, {}, {}, {}], got {}", channels, size, size, shape_of(rows[r].sizes()));
    columns = std::max(columns, rows[r].size(0));
    longest = std::max(longest, labels[r].size());
  }
  constexpr int64_t padding = 2;
  const auto scale = std::max<int64_t>(1, size / 16);  // text about half an image high
  const auto label_width = static_cast<int64_t>(longest) * kGlyphAdvance * scale + 4 * scale;
  const auto row_height = size + padding;
  const auto width = label_width + columns * (size + padding) + padding;
  auto canvas = torch::full({channels, static_cast<int64_t>(rows.size()) * row_height + padding, width}, 255, torch::kUInt8);
  for (size_t r = 0; r < rows.size(); ++r) {
    const auto top = static_cast<int64_t>(r) * row_height + padding;
    draw_text(canvas, labels[r], top + (size - kGlyphHeight * scale) / 2, 2 * scale, scale);
    for (int64_t i = 0; i < rows[r].size(0); ++i) {
      const auto left = label_width + padding + i * (size + padding);
      canvas.slice(1, top, top + size).slice(2, left, left + size).copy_(rows[r][i]);
    }
  }
  return canvas;
}

nlohmann::json ModelScore::to_json() const {
  nlohmann::json prior_speeds = prior_maps_per_second;
  return {{"label", label},
          {"folder", folder},
          {"kind", kind},
          {"description", description},
          {"steps", steps},
          {"prior_steps", prior_steps},
          {"parameters", parameters},
          {"prior_parameters", prior_parameters},
          {"mse", mse},
          {"psnr", psnr},
          {"latent_bits_per_dim", optional_json(latent_bits_per_dim)},
          {"reconstruction_bits_per_dim", optional_json(reconstruction_bits_per_dim)},
          {"bits_per_dim", optional_json(bits_per_dim)},
          {"reconstruction_log_scale", kind == "vqvae" && bits_per_dim ? nlohmann::json(reconstruction_log_scale)
                                                                       : nlohmann::json(nullptr)},
          {"usage", usage},
          {"active_dims", kind == "vae" ? nlohmann::json(active_dims) : nlohmann::json(nullptr)},
          {"latent_channels", kind == "vae" ? nlohmann::json(latent_channels) : nlohmann::json(nullptr)},
          {"train_images_per_second", optional_json(train_images_per_second)},
          {"prior_maps_per_second", prior_speeds},
          {"sample_seconds_per_image", optional_json(sample_seconds_per_image)},
          {"digit_score", digit_score ? nlohmann::json(digit_score->score) : nlohmann::json(nullptr)},
          {"digit_confident", digit_score ? nlohmann::json(digit_score->confident) : nlohmann::json(nullptr)},
          {"digit_samples", digit_score ? nlohmann::json(digit_score->images) : nlohmann::json(nullptr)},
          {"digit_read_as", digit_score ? nlohmann::json(digit_score->read_as) : nlohmann::json(nullptr)}};
}

namespace {

std::string cell(const std::optional<double>& value, const char* format) {
  return value ? fmt::format(fmt::runtime(format), *value) : "—";
}

std::string millions(int64_t n) { return fmt::format("{:.2f} M", static_cast<double>(n) / 1e6); }

const std::vector<std::string>& footnotes() {
  static const std::vector<std::string> notes = {
      "MSE: mean (x̂ − x)² with pixels in [−1, 1]; PSNR = 10 log₁₀(4 / MSE) dB. A VAE's x̂ is decoded from one "
      "z ~ q(z|x) (seed 0), as in its bound.",
      "Bits/dim are upper bounds on −log₂ p(x) per image dimension (D = C·S·S 8-bit values), nats / (D ln 2), "
      "latent term + reconstruction term. VAE: −ELBO = KL(q(z|x) ‖ N(0, I)) + (−log p(x|z)) under its discretised "
      "logistic, one z per image. VQ-VAE: the latent term is −log p(z_q), the held-out NLL of the image's codes under "
      "its priors (all levels); the reconstruction term is −log p(x|z_q) under a discretised logistic centred on the "
      "decoder's output with one scale for all pixels, the best log s in {−7, −6.75, …, 0} for these images (the "
      "VQ-VAE was trained on MSE, not on this likelihood). With q(z|x) one-hot, KL(q ‖ p) = −log p(z_q), so both are "
      "the same bound. — = not available (a VQ-VAE run without priors).",
      "Codes used: the fraction of each level's codebook used on these images, bottom level first. VAE: latent "
      "channels whose KL exceeds 0.01 nats per unit (the others have collapsed onto the prior).",
      "Parameters: trainable; EMA codebooks are running averages (buffers) and not counted. Steps: optimisation "
      "steps of the autoencoder / of each prior.",
      "Training images/s: the median over the autoencoder's metrics.jsonl; wall-clock, so noisy on a shared machine.",
      "Sampling: wall-clock seconds per image for one batch of samples (VQ-VAE: cached ancestral sampling through "
      "every prior, then the decoder; VAE: z ~ N(0, I) through the decoder)."};
  return notes;
}

// The seventh footnote, with the digit score's column.
std::string digit_footnote(const DigitScore& real) {
  return fmt::format("Digit score: {} samples per model read by a small digit classifier trained on the embedded "
                     "training digits: exp(E KL(p(y|x) ‖ p(y))), 10 when every sample is one digit with certainty and "
                     "the ten are equally common, and (in brackets) the share classified with p ≥ 0.9. Real held-out "
                     "digits, {} at a time: {:.1f} ({:.0f}%).",
                     real.images, real.images, real.score, 100 * real.confident);
}

}  // namespace

std::string comparison_markdown(const Comparison& comparison) {
  std::string md = fmt::format("Held-out images: {} ({}).\n\n", comparison.images, comparison.data);
  const bool digits = comparison.real_digits.has_value();
  md += "| model | what | steps⁴ | parameters⁴ | MSE¹ | PSNR¹ (dB) | latent term² (bits/dim) | reconstruction term² "
        "(bits/dim) | NLL bound² (bits/dim) | codes used / active latents³ | training images/s⁵ | sampling s/image⁶ |";
  md += digits ? " digit score⁷ |\n" : "\n";
  md += std::string("|---|---|---|---|---|---|---|---|---|---|---|---|") + (digits ? "---|\n" : "\n");
  for (const auto& m : comparison.models) {
    const auto steps = m.prior_steps.empty() ? std::to_string(m.steps)
                                             : fmt::format("{} / {}", m.steps, fmt::join(m.prior_steps, " + "));
    const auto parameters =
        m.prior_parameters > 0 ? fmt::format("{} + {}", millions(m.parameters), millions(m.prior_parameters))
                               : millions(m.parameters);
    std::vector<std::string> usage;
    for (const auto u : m.usage) usage.push_back(fmt::format("{:.0f}%", 100 * u));
    const auto used = m.kind == "vae" ? fmt::format("{} / {} channels", m.active_dims, m.latent_channels)
                                      : fmt::format("{}", fmt::join(usage, " / "));
    md += fmt::format("| {} | {} | {} | {} | {:.5f} | {:.2f} | {} | {} | {} | {} | {} | {} |", m.label,
                      m.description, steps, parameters, m.mse, m.psnr, cell(m.latent_bits_per_dim, "{:.4f}"),
                      cell(m.reconstruction_bits_per_dim, "{:.4f}"), cell(m.bits_per_dim, "**{:.4f}**"), used,
                      cell(m.train_images_per_second, "{:.0f}"), cell(m.sample_seconds_per_image, "{:.4f}"));
    if (digits) {
      md += m.digit_score ? fmt::format(" {:.1f} ({:.0f}%) |", m.digit_score->score, 100 * m.digit_score->confident)
                          : std::string(" — |");
    }
    md += "\n";
  }
  md += "\n";
  auto notes = footnotes();
  if (digits) notes.push_back(digit_footnote(*comparison.real_digits));
  const char* marks[] = {"¹", "²", "³", "⁴", "⁵", "⁶", "⁷"};
  for (size_t i = 0; i < notes.size(); ++i) md += fmt::format("{}{} {}\n", i > 0 ? "\n" : "", marks[i], notes[i]);
  if (!comparison.samples_path.empty()) md += fmt::format("\nSamples, one row per model: `{}`\n", comparison.samples_path);
  return md;
}

nlohmann::json comparison_json(const Comparison& comparison) {
  nlohmann::json models = nlohmann::json::array();
  for (const auto& m : comparison.models) models.push_back(m.to_json());
  auto notes = footnotes();
  nlohmann::json real = nullptr;
  if (const auto& r = comparison.real_digits) {
    notes.push_back(digit_footnote(*r));
    real = {{"score", r->score}, {"confident", r->confident}, {"images", r->images}};
  }
  return {{"images", comparison.images}, {"data", comparison.data}, {"models", models}, {"footnotes", notes},
          {"samples", comparison.samples_path}, {"real_digits", real}};
}

Comparison compare_runs(const CompareConfig& config, const RunSettings& settings) {
  config.validate();
  const auto device = parse_device(settings.device);
  std::vector<LoadedRun> runs;
  for (const auto& text : config.runs) runs.push_back(load_run(parse_run(text), device));
  for (const auto& run : runs) check_same_data(runs[0], run);

  const auto& data = data_of(runs[0]);
  const auto dataset = ImageDataset::open(data, format_of(runs[0]), settings.log);
  auto held_out = dataset->split().second;
  VQVAE2_CHECK(!held_out.empty(), "'{}' holds no images out (validation fraction {}): nothing to compare on",
               runs[0].spec.folder, data.validation_fraction);
  if (config.images > 0 && static_cast<int64_t>(held_out.size()) > config.images) held_out.resize(config.images);
  std::optional<DigitClassifier> classifier;
  if (config.digit_samples > 0) {
    const auto format = format_of(runs[0]);
    check_digit_images(format.channels, format.size, "the samples of these runs");
    classifier = cached_digit_classifier(
        config.digit_classifier.empty() ? default_digit_classifier_path() : config.digit_classifier, {}, settings.log);
  }

  Comparison comparison;
  comparison.images = static_cast<int64_t>(held_out.size());
  comparison.data = fmt::format("{}, {} images, the held-out split (fraction {}, split seed {})",
                                data.folder.empty() ? "the embedded MNIST digits" : "'" + data.folder + "'",
                                describe_format(format_of(runs[0])), data.validation_fraction, data.split_seed);
  for (auto& run : runs) {
    if (settings.log) *settings.log << fmt::format("compare: scoring {} ({})\n", run.spec.label, run.spec.folder);
    ModelScore score;
    score.label = run.spec.label;
    score.folder = run.spec.folder;
    if (run.vae) {
      score_vae(run, dataset, held_out, config, device, score);
    } else {
      score_vqvae(run, dataset, held_out, config, device, score);
    }
    score.train_images_per_second = training_speed(run.autoencoder_folder);
    if (classifier && (run.vae || !run.priors.empty())) {
      score.digit_score = score_digits(draw_samples(run, config.digit_samples, config), *classifier);
    }
    comparison.models.push_back(std::move(score));
  }
  if (classifier) comparison.real_digits = real_digit_score(*classifier, config.digit_samples);

  const fs::path out(config.out);
  std::error_code error;
  fs::create_directories(out, error);
  VQVAE2_CHECK(!error, "cannot create '{}': {}", config.out, error.message());
  std::vector<std::string> labels;
  std::vector<torch::Tensor> rows;
  for (const auto& m : comparison.models) {
    if (!m.samples.defined()) continue;
    labels.push_back(m.label);
    rows.push_back(m.samples);
  }
  if (!rows.empty()) {
    comparison.samples_path = (out / "samples.png").string();
    save_png(comparison.samples_path, labelled_rows(labels, rows));
  }
  comparison.markdown_path = (out / "compare.md").string();
  comparison.json_path = (out / "compare.json").string();
  write_file_atomically(comparison.markdown_path, comparison_markdown(comparison));
  write_file_atomically(comparison.json_path, comparison_json(comparison).dump(2) + "\n");
  return comparison;
}

}  // namespace vqvae2
