// The compare command: trained models of the lineage scored side by side.
#include "cli.h"

#include "vqvae2/stages/compare.h"

#include <iostream>
#include <memory>

namespace vqvae2::cli {

Command add_compare(CLI::App& top, Common& common) {
  auto* app = top.add_subcommand(
      "compare", "Score VAE and VQ-VAE runs on the same held-out images: one table (Markdown, JSON) and one picture");
  auto config = std::make_shared<CompareConfig>();
  app->add_option("runs", config->runs,
                  "[LABEL=]FOLDER...: a VAE run folder (train-vae), a pipeline folder (vqvae/ and prior-level<l>/ "
                  "for every level: the VQ-VAE and its priors), or a VQ-VAE run folder (train-vqvae: reconstruction "
                  "figures only). LABEL names the row (default: the folder's name). The held-out images are those "
                  "of the first run; the others must be trained on the same data, split and image format")
      ->required();
  app->add_option("--out", config->out, "folder for compare.md, compare.json and samples.png")->capture_default_str();
  app->add_option("--images", config->images, "held-out images scored (the first of the split; 0 = all)")
      ->capture_default_str();
  app->add_option("--samples", config->samples, "samples per model in samples.png (and timed; 0 = none)")
      ->capture_default_str();
  app->add_option("--batch-size", config->batch_size, "images per batch when scoring")->capture_default_str();
  app->add_option("--seed", config->seed, "seed of the samples")->capture_default_str();
  app->add_option("--digit-samples", config->digit_samples,
                  "runs on grey 32x32 digits: this many samples per model scored by a small digit classifier (a "
                  "'digit score' column; 0 = none)")
      ->capture_default_str();
  app->add_option("--digit-classifier", config->digit_classifier,
                  "with --digit-samples: the classifier's cache file, trained there once (seconds) when missing "
                  "(default " + default_digit_classifier_path() + ")");
  add_common(app, common);
  return {app, [config, &common] {
            const auto comparison = compare_runs(*config, common.settings());
            std::cout << comparison_markdown(comparison);
            std::cout << fmt::format("\nwritten: {}, {}{}\n", comparison.markdown_path, comparison.json_path,
                                     comparison.samples_path.empty() ? "" : ", " + comparison.samples_path);
            return 0;
          }};
}

}  // namespace vqvae2::cli
