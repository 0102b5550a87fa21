// The pipeline command: every stage in one go.
#include "cli.h"

#include "vqvae2/stages/pipeline.h"

#include <iostream>
#include <memory>

namespace vqvae2::cli {

Command add_pipeline(CLI::App& top, Common& common) {
  auto* app = top.add_subcommand("pipeline",
                                 "The whole system in one go: train the VQ-VAE, extract codes, train every prior, sample");
  auto config = std::make_shared<PipelineConfig>();
  app->add_option("--out", config->out, "run folder for every stage")->capture_default_str();
  app->add_option("--data", config->data, "folder of images (default: the embedded MNIST digits)");
  app->add_option("--limit", config->limit, "use at most this many images (0 = all; a quick first run)")
      ->capture_default_str();
  app->add_option("--preset", config->preset, "VQ-VAE preset: auto, mnist, small, reference")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "mnist", "small", "reference"}));
  app->add_option("--prior-size", config->prior_size, "prior widths: auto, small, reference")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "small", "reference"}));
  app->add_option("--vqvae-epochs", config->vqvae_epochs, "VQ-VAE epochs (0 = the preset's)")->capture_default_str();
  app->add_option("--prior-epochs", config->prior_epochs, "epochs of each prior (0 = the size's default)")
      ->capture_default_str();
  app->add_option("--vqvae-steps", config->vqvae_steps, "VQ-VAE steps instead of epochs (0 = epochs)")
      ->capture_default_str();
  app->add_option("--prior-steps", config->prior_steps, "steps of each prior instead of epochs (0 = epochs)")
      ->capture_default_str();
  app->add_option("--samples", config->samples, "images to sample at the end")->capture_default_str();
  app->add_option("--seed", config->seed, "seed of every stage")->capture_default_str();
  app->add_flag("--resume", config->resume, "continue an interrupted pipeline run in --out");
  add_common(app, common);
  return {app, [config, &common] {
            install_stop_handlers();
            const auto result = run_pipeline(*config, common.settings());
            if (result.interrupted) {
              std::cout << fmt::format("stopped; continue with `vqvae2 pipeline --out {} --resume`\n", config->out);
              return kInterruptedExit;
            }
            const auto& e = result.vqvae.final;
            std::cout << fmt::format("VQ-VAE: validation MSE {:.5f} (PSNR {:.2f} dB), code usage {}\n", e.mse, e.psnr,
                                     fmt::join(e.usage, " / "));
            for (const auto& prior : result.priors) {
              std::cout << fmt::format("prior {}: held-out NLL {:.3f} bits per code\n", prior.checkpoint,
                                       prior.final_bits_per_code);
            }
            std::cout << fmt::format("{} samples in {:.1f} s: {}\n", config->samples, result.samples.seconds,
                                     result.samples_path);
            std::cout << fmt::format(
                "done: {} holds the VQ-VAE, codes, priors, metrics, reconstruction grids and samples.png\n",
                config->out);
            return 0;
          }};
}

}  // namespace vqvae2::cli
