#include "vqvae2/stages/compare.h"

#include "test_util.h"
#include "vqvae2/data/image.h"
#include "vqvae2/stages/evaluate.h"
#include "vqvae2/stages/train_vae.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <sstream>

namespace vqvae2 {
namespace {

// An untrained VAE run and an untrained pipeline folder (VQ-VAE + one prior per level) on the same
// 16×16 digits.
struct TwoRuns {
  test::TempDir dir;
  std::string vae, pipeline;
  TwoRuns() : vae(dir.file("vae")), pipeline(dir.file("pipe")) {
    test::untrained_vae(vae);
    test::untrained_vqvae(pipeline + "/vqvae");
    test::untrained_priors(pipeline);
  }
  CompareConfig config() const {
    CompareConfig c;
    c.runs = {"A VAE=" + vae, pipeline};
    c.images = 24;
    c.samples = 3;
    c.batch_size = 16;
    c.out = dir.file("out");
    return c;
  }
};

TEST(Compare, WritesOneRowPerModelAsMarkdownJsonAndAPicture) {
  TwoRuns runs;
  const auto comparison = compare_runs(runs.config(), test::quiet());
  EXPECT_EQ(comparison.images, 24);
  ASSERT_EQ(comparison.models.size(), 2u);
  EXPECT_EQ(comparison.models[0].label, "A VAE");
  EXPECT_EQ(comparison.models[1].label, "pipe");  // the folder's name

  const auto json = nlohmann::json::parse(test::read_text(comparison.json_path));
  ASSERT_EQ(json["models"].size(), 2u);
  for (const auto& m : json["models"]) {
    for (const char* key : {"mse", "psnr", "latent_bits_per_dim", "reconstruction_bits_per_dim", "bits_per_dim",
                            "parameters", "steps", "sample_seconds_per_image", "train_images_per_second"}) {
      EXPECT_TRUE(m.contains(key)) << key;
    }
    EXPECT_NEAR(m["bits_per_dim"].get<double>(),
                m["latent_bits_per_dim"].get<double>() + m["reconstruction_bits_per_dim"].get<double>(), 1e-9);
  }
  EXPECT_EQ(json["models"][0]["kind"], "vae");
  EXPECT_EQ(json["models"][1]["usage"].size(), 2u);
  EXPECT_EQ(json["models"][1]["prior_steps"].size(), 2u);
  EXPECT_GT(json["models"][1]["prior_parameters"].get<int64_t>(), 0);
  EXPECT_TRUE(json["models"][0]["train_images_per_second"].is_null()) << "untrained: no metrics.jsonl";

  // The table: a header, a rule, one row per model, each with all 12 columns; then the footnotes.
  const auto md = test::read_text(comparison.markdown_path);
  std::vector<std::string> rows;
  std::istringstream lines(md);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("|", 0) == 0) rows.push_back(line);
  }
  ASSERT_EQ(rows.size(), 4u) << md;
  for (const auto& row : rows) EXPECT_EQ(std::count(row.begin(), row.end(), '|'), 13) << row;
  EXPECT_NE(rows[2].find("| A VAE | Gaussian VAE"), std::string::npos) << rows[2];
  EXPECT_NE(rows[3].find("| pipe | VQ-VAE, 2 levels 8x8+4x4, K 32/32, EMA; PixelSNAIL + conditional"), std::string::npos)
      << rows[3];
  EXPECT_NE(md.find("held-out NLL of the image's codes under its priors"), std::string::npos);

  // Two labelled rows of 3 samples.
  EXPECT_EQ(probe_image(comparison.samples_path).height, 2 * (16 + 2) + 2);
}

TEST(Compare, ScoresAreThoseOfTheModelsOnTheSameHeldOutImages) {
  TwoRuns runs;
  const auto comparison = compare_runs(runs.config(), test::quiet());
  // The VAE's bound is its own evaluation on the first 24 held-out images.
  auto vae = load<VAEKind>(runs.vae, torch::kCPU);
  const auto dataset = ImageDataset::open(vae.config.data, {16, 1});
  auto held_out = dataset->split().second;
  held_out.resize(24);
  BatchLoader loader(dataset, held_out, {16, false, false, 0, 2});
  const auto e = evaluate_vae(vae.model, loader, torch::kCPU);
  EXPECT_NEAR(*comparison.models[0].bits_per_dim, e.bits_per_dim, 1e-9);
  EXPECT_NEAR(comparison.models[0].mse, e.mse, 1e-9);
  // The VQ-VAE's latent term is its priors' NLL of the codes of the same images: nats per code ×
  // codes per image, summed over both levels, over ln 2 · 16·16 dimensions.
  auto vqvae = load<VQVAEKind>(runs.pipeline + "/vqvae", torch::kCPU);
  std::vector<torch::Tensor> images;
  for (const auto i : held_out) images.push_back(dataset->get(i));
  torch::NoGradGuard no_grad;
  const auto out = vqvae.model->forward(to_model_range(torch::stack(images)));
  double nats = 0;
  for (int64_t level = 0; level < 2; ++level) {
    auto prior = load<PriorKind>(runs.pipeline + "/prior-level" + std::to_string(level), torch::kCPU);
    const auto& codes = out.levels[level].codes;
    const LevelCodes data{codes, level == 0 ? out.levels[1].codes : torch::Tensor()};
    nats += evaluate_prior(prior.model, data, 16, torch::kCPU) * static_cast<double>(codes.size(1) * codes.size(2));
  }
  EXPECT_NEAR(*comparison.models[1].latent_bits_per_dim, nats / (std::log(2.0) * 256), 1e-4);
  EXPECT_GT(*comparison.models[1].reconstruction_bits_per_dim, 0);
  // The chosen log-scale is one of the grid.
  const auto scales = reconstruction_log_scales();
  EXPECT_NE(std::find(scales.begin(), scales.end(), comparison.models[1].reconstruction_log_scale), scales.end());
}

TEST(Compare, AVqvaeRunWithoutPriorsHasReconstructionFiguresOnly) {
  TwoRuns runs;
  auto config = runs.config();
  config.runs = {runs.pipeline + "/vqvae", runs.vae};
  const auto comparison = compare_runs(config, test::quiet());
  const auto& vq = comparison.models[0];
  EXPECT_FALSE(vq.bits_per_dim.has_value());
  EXPECT_FALSE(vq.samples.defined());
  EXPECT_GT(vq.psnr, 0);
  EXPECT_TRUE(comparison_json(comparison)["models"][0]["bits_per_dim"].is_null());
  EXPECT_NE(comparison_markdown(comparison).find("| vqvae | VQ-VAE, 2 levels 8x8+4x4, K 32/32, EMA | 0 |"),
            std::string::npos);
  EXPECT_EQ(probe_image(comparison.samples_path).height, 16 + 2 + 2) << "one row: the VAE's";
}

TEST(Compare, RefusesWhatCannotBeComparedWithAClearMessage) {
  TwoRuns runs;
  auto config = runs.config();
  config.runs = {runs.dir.file("nowhere")};
  test::expect_error([&] { compare_runs(config, test::quiet()); }, "run folder '" + runs.dir.file("nowhere") + "' does not exist");
  std::filesystem::create_directories(runs.dir.file("empty"));
  config.runs = {runs.dir.file("empty")};
  test::expect_error([&] { compare_runs(config, test::quiet()); }, "is neither a VAE run (vae.ckpt), a pipeline folder");
  config.runs = {};
  test::expect_error([&] { compare_runs(config, test::quiet()); }, "nothing to compare");

  // Priors for one level only.
  std::filesystem::remove_all(runs.pipeline + "/prior-level0");
  config.runs = {runs.pipeline};
  test::expect_error([&] { compare_runs(config, test::quiet()); }, "has priors for some levels but not for");

  // Another split.
  auto other = load<VAEKind>(runs.vae, torch::kCPU);
  other.config.data.split_seed = 9;
  std::filesystem::create_directories(runs.dir.file("other"));
  write_model_checkpoint(runs.dir.file("other/vae.ckpt"), VAEKind::name, other.config, 0, *other.model);
  config.runs = {runs.vae, runs.dir.file("other")};
  test::expect_error([&] { compare_runs(config, test::quiet()); }, "was trained on other images or another split");

  // Another image format.
  other.config.data.split_seed = 0;
  other.config.model.image_size = 32;
  write_model_checkpoint(runs.dir.file("other/vae.ckpt"), VAEKind::name, other.config, 0,
                         *GaussianVAE(other.config.model));
  test::expect_error([&] { compare_runs(config, test::quiet()); }, "(32x32 grey images) with 'vae' (16x16 grey images)");
}

TEST(Compare, LabelledRowsPutEachLabelBeforeItsImages) {
  const auto row = torch::full({2, 3, 16, 16}, 128, torch::kUInt8);
  const auto canvas = labelled_rows({"VAE", "VQ-VAE-2"}, {row, row.slice(0, 0, 1)});
  EXPECT_EQ(canvas.size(0), 3);
  EXPECT_EQ(canvas.size(1), 2 * 18 + 2);
  const auto label_width = canvas.size(2) - 2 * 18 - 2;
  EXPECT_EQ(label_width, 8 * 6 + 4);  // the longer label, 6 pixels a letter
  // Ink in the label area of both rows, grey images after it, white where the second row has no image.
  const auto labels = canvas.slice(2, 0, label_width);
  EXPECT_EQ(labels.slice(1, 0, 18).min().item<int>(), 0);
  EXPECT_EQ(labels.slice(1, 18, 36).min().item<int>(), 0);
  EXPECT_EQ(canvas[0][10][label_width + 2 + 5].item<int>(), 128);
  EXPECT_EQ(canvas[0][20 + 5][label_width + 2 + 18 + 5].item<int>(), 255);
  test::expect_error([&] { labelled_rows({"a"}, {}); }, "one label per row");
}

}  // namespace
}  // namespace vqvae2
