// Looking at trained runs: evaluate (a model on any data), report (a run's curves as one HTML page)
// and plot (several runs' curves in one SVG).
#include "cli.h"

#include "vqvae2/core/report.h"
#include "vqvae2/stages/evaluate.h"

#include <iostream>
#include <memory>

namespace vqvae2::cli {

Command add_evaluate(CLI::App& top, Common& common) {
  auto* app = top.add_subcommand(
      "evaluate", "Score a trained model: a VQ-VAE on a folder of images, or a prior on a code store");
  auto config = std::make_shared<EvaluateConfig>();
  app->add_option("--checkpoint", config->checkpoint, "a VQ-VAE or prior run folder, or a .ckpt file")->required();
  app->add_option("--data", config->data,
                  "VQ-VAE: folder of images to reconstruct (default: the run's own held-out images)");
  app->add_option("--codes", config->codes,
                  "prior: a code store, or a folder holding val.vq2 (default: the codes it was trained on)");
  app->add_option("--out-dir", config->out_dir,
                  "VQ-VAE: write every reconstruction here, under the name of its source image");
  app->add_option("--json", config->json, "write the figures (and, for a VQ-VAE, each image's) as JSON to this file");
  app->add_option("--batch-size", config->batch_size, "images or code maps per batch")->capture_default_str();
  add_common(app, common);
  return {app, [config, &common] {
            const auto result = evaluate(*config, common.settings());
            std::cout << result.summary() << "\n";
            if (!config->json.empty()) std::cout << "figures: " << config->json << "\n";
            if (!config->out_dir.empty()) std::cout << "reconstructions: " << config->out_dir << "/\n";
            return 0;
          }};
}

Command add_report(CLI::App& top, Common& common) {
  auto* app = top.add_subcommand("report",
                                 "Write a run's report.html (training runs keep it up to date at every evaluation)");
  auto run = std::make_shared<std::string>();
  app->add_option("run", *run, "the run folder")->required();
  add_common(app, common);
  return {app, [run] {
            std::cout << "report: " << write_report(*run) << "\n";
            return 0;
          }};
}

Command add_plot(CLI::App& top, Common& common) {
  auto* app = top.add_subcommand("plot", "Overlay the curves of several runs in one SVG");
  struct Flags {
    std::vector<std::string> runs, keys;
    std::string out = "curves.svg";
  };
  auto f = std::make_shared<Flags>();
  app->add_option("runs", f->runs, "run folders (each with its metrics.jsonl)")->required();
  app->add_option("--keys", f->keys,
                  "what to draw, one panel each: a series (val_mse, usage[0]) or an array figure (usage: every "
                  "level); default: each run's headline figure (held-out MSE for a VQ-VAE, bits per code for a prior)")
      ->delimiter(',');
  app->add_option("--out", f->out, "SVG file to write")->capture_default_str();
  add_common(app, common);
  return {app, [f] {
            write_plot(f->runs, f->keys, f->out);
            std::cout << f->runs.size() << " runs plotted: " << f->out << "\n";
            return 0;
          }};
}

}  // namespace vqvae2::cli
