#include "vqvae2/stages/codes.h"

#include "vqvae2/core/device.h"
#include "vqvae2/core/error.h"
#include "vqvae2/core/files.h"
#include "vqvae2/core/progress.h"
#include "vqvae2/data/image.h"

#include <filesystem>
#include <numeric>
#include <set>

namespace vqvae2 {

namespace fs = std::filesystem;

std::vector<CodeLevel> code_levels(const VQVAEOptions& options) {
  std::vector<CodeLevel> levels;
  for (int64_t l = 0; l < options.levels(); ++l) {
    levels.push_back({options.latent_size(l), options.latent_size(l), options.codes_at(l)});
  }
  return levels;
}

std::vector<CodeLevel> code_levels(const AudioVQVAEOptions& options) {
  std::vector<CodeLevel> levels;
  for (int64_t l = 0; l < options.levels(); ++l) levels.push_back({1, options.latent_length(l), options.codes_at(l)});
  return levels;
}

int64_t encode_images(HierarchicalVQVAE& model, const std::shared_ptr<ImageDataset>& dataset,
                      const std::vector<int64_t>& indices, const std::string& path, const nlohmann::json& meta,
                      int64_t batch_size, const std::string& label, const RunSettings& settings,
                      int64_t jittered_copies, const ImageJitter& jitter, uint64_t seed) {
  VQVAE2_CHECK(batch_size >= 1, "batch size must be positive, got {}", batch_size);
  VQVAE2_CHECK(jittered_copies >= 0, "the number of augmented copies must be >= 0, got {}", jittered_copies);
  if (jittered_copies > 0) jitter.validate();
  const auto device = parse_device(settings.device);
  torch::NoGradGuard no_grad;
  model->eval();
  CodeStoreWriter writer(path, code_levels(model->options()), meta);
  BatchLoader loader(dataset, indices, {batch_size, /*shuffle=*/false, /*drop_last=*/false, 0, settings.loader_prefetch});
  const auto batches = loader.batches_per_epoch();
  ProgressBar bar(label, batches * (1 + jittered_copies), 0, settings.log, !settings.quiet);
  int64_t done = 0;
  for (int64_t copy = 0; copy <= jittered_copies; ++copy) {  // copy 0: the images as they are
    loader.start(copy);
    for (int64_t b = 0; auto batch = loader.next(); ++b) {
      auto images = to_model_range(batch->images);
      // Every batch of every copy its own draws, the same on every run.
      if (copy > 0) images = jitter_images(images, jitter, seed + 1000003 * static_cast<uint64_t>(copy) + b);
      writer.append(model->encode(images.to(device)));
      bar.update(++done);
    }
  }
  writer.close();
  bar.finish();
  return writer.count();
}

ExtractResult extract_codes(const ExtractConfig& config, const RunSettings& settings) {
  if (vqvae_modality(config.checkpoint) == Modality::kAudio) return extract_audio_codes(config, settings);
  const auto device = parse_device(settings.device);
  auto vqvae = load<VQVAEKind>(config.checkpoint, device);
  const auto out = config.out.empty() ? (fs::path(vqvae.checkpoint).parent_path() / "codes").string() : config.out;
  const auto dataset = ImageDataset::open(vqvae.config.data, vqvae.config.model.format(), settings.log);
  const auto [train, validation] = dataset->split();
  std::error_code error;
  fs::create_directories(out, error);
  VQVAE2_CHECK(!error, "cannot create '{}': {}", out, error.message());
  remove_stale_temporaries(out);  // of an earlier extraction killed mid-write

  ExtractResult result;
  result.train_path = (fs::path(out) / "train.vq2").string();
  result.validation_path = (fs::path(out) / "val.vq2").string();
  const auto& model = vqvae.config.model;
  for (const auto& [split, indices, path, count] :
       {std::tuple{"train", &train, &result.train_path, &result.train_count},
        std::tuple{"val", &validation, &result.validation_path, &result.validation_count}}) {
    const auto copies = indices == &train ? config.augment : 0;
    nlohmann::json meta = {{"split", split},
                           {"vqvae_checkpoint", vqvae.checkpoint},
                           {"vqvae_step", vqvae.step},
                           {"image_size", model.image_size},
                           {"channels", model.channels}};
    if (copies > 0) {
      meta["augment"] = {{"copies", copies},
                         {"max_rotation", config.jitter.max_rotation},
                         {"max_scale", config.jitter.max_scale},
                         {"max_shift", config.jitter.max_shift},
                         {"seed", config.seed}};
    }
    *count = encode_images(vqvae.model, dataset, *indices, *path, meta, config.batch_size,
                           std::string("extract ") + split, settings, copies, config.jitter, config.seed);
  }
  return result;
}

ExtractResult extract_audio_codes(const ExtractConfig& config, const RunSettings& settings) {
  VQVAE2_CHECK(config.batch_size >= 1, "batch size must be positive, got {}", config.batch_size);
  VQVAE2_CHECK(config.augment == 0, "--augment jitters images; an audio VQ-VAE's clips are not augmented");
  const auto device = parse_device(settings.device);
  auto vqvae = load<AudioVQVAEKind>(config.checkpoint, device);
  const auto out = config.out.empty() ? (fs::path(vqvae.checkpoint).parent_path() / "codes").string() : config.out;
  const auto dataset = AudioDataset::open(vqvae.config.data, settings.log);
  const auto [train, validation] = dataset->split();
  std::error_code error;
  fs::create_directories(out, error);
  VQVAE2_CHECK(!error, "cannot create '{}': {}", out, error.message());
  remove_stale_temporaries(out);  // of an earlier extraction killed mid-write

  ExtractResult result;
  result.train_path = (fs::path(out) / "train.vq2").string();
  result.validation_path = (fs::path(out) / "val.vq2").string();
  const auto& model = vqvae.config.model;
  torch::NoGradGuard no_grad;
  for (const auto& [split, indices, path, count] :
       {std::tuple{"train", &train, &result.train_path, &result.train_count},
        std::tuple{"val", &validation, &result.validation_path, &result.validation_count}}) {
    const nlohmann::json meta = {{"split", split},
                                 {"modality", "audio"},
                                 {"vqvae_checkpoint", vqvae.checkpoint},
                                 {"vqvae_step", vqvae.step},
                                 {"sample_rate", model.sample_rate},
                                 {"clip_length", model.clip_length}};
    CodeStoreWriter writer(*path, code_levels(model), meta);
    BatchLoader loader(dataset, *indices,
                       {config.batch_size, /*shuffle=*/false, /*drop_last=*/false, 0, settings.loader_prefetch});
    ProgressBar bar(std::string("extract ") + split, loader.batches_per_epoch(), 0, settings.log, !settings.quiet);
    loader.start(0);
    int64_t done = 0;
    while (auto batch = loader.next()) {
      auto codes = vqvae.model->encode(batch->images.to(device));  // per level [B, T_l]
      for (auto& c : codes) c = c.unsqueeze(1);                    // one-row maps [B, 1, T_l]
      writer.append(codes);
      bar.update(++done);
    }
    writer.close();
    bar.finish();
    *count = writer.count();
  }
  return result;
}

int64_t encode(const EncodeConfig& config, const RunSettings& settings) {
  auto vqvae = load<VQVAEKind>(config.checkpoint, parse_device(settings.device));
  auto data = vqvae.config.data;
  if (!config.data.empty()) data.folder = config.data;
  const auto dataset = ImageDataset::open(data, vqvae.config.model.format(), settings.log);
  std::vector<int64_t> all(dataset->size());
  std::iota(all.begin(), all.end(), 0);
  nlohmann::json names = nlohmann::json::array();
  for (const auto i : all) names.push_back(dataset->source(i).name);
  return encode_images(vqvae.model, dataset, all, config.out, {{"vqvae_checkpoint", vqvae.checkpoint}, {"images", names}},
                       config.batch_size, "encode", settings);
}

namespace {

// Where image `index` of a store goes: under the name its header gives (see png_name_for), else its
// number.
fs::path decoded_name(const CodeStore& store, int64_t index, std::set<std::string>& taken) {
  const auto& names = store.meta.contains("images") ? store.meta["images"] : nlohmann::json();
  std::string name;
  if (names.is_array() && static_cast<int64_t>(names.size()) == store.size() && names[index].is_string()) {
    name = png_name_for(names[index].get<std::string>(), taken);
  }
  return name.empty() || name == "grid.png" ? fs::path(fmt::format("{:06d}.png", index)) : fs::path(name);
}

}  // namespace

int64_t decode(const DecodeConfig& config, const RunSettings& settings) {
  VQVAE2_CHECK(config.limit >= 0, "the image limit must be >= 0 (0 = all), got {}", config.limit);
  VQVAE2_CHECK(config.batch_size >= 1, "batch size must be positive, got {}", config.batch_size);
  const auto device = parse_device(settings.device);
  auto vqvae = load<VQVAEKind>(config.checkpoint, device);
  const auto store = read_code_store(config.codes);
  check_code_levels(store, code_levels(vqvae.config.model), config.codes);
  const auto count = config.limit > 0 ? std::min(config.limit, store.size()) : store.size();
  fs::create_directories(config.out);
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> images;
  std::set<std::string> taken;
  ProgressBar bar("decode", count, 0, settings.log, !settings.quiet);
  for (int64_t begin = 0; begin < count; begin += config.batch_size) {
    const auto end = std::min(count, begin + config.batch_size);
    std::vector<torch::Tensor> codes;
    for (const auto& level : store.codes) codes.push_back(level.slice(0, begin, end).to(device));
    const auto pixels = to_pixels(vqvae.model->decode_codes(codes)).to(torch::kCPU);
    for (int64_t i = 0; i < pixels.size(0); ++i) {
      const auto path = fs::path(config.out) / decoded_name(store, begin + i, taken);
      fs::create_directories(path.parent_path());
      save_png(path.string(), pixels[i]);
      images.push_back(pixels[i]);
    }
    bar.update(end);
  }
  bar.finish();
  if (!images.empty()) save_png((fs::path(config.out) / "grid.png").string(), make_grid(torch::stack(images), 8));
  return count;
}

}  // namespace vqvae2
