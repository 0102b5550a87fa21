// The pipeline command: every stage in one go.
#include "cli.h"

#include "vqvae2/core/error.h"
#include "vqvae2/stages/pipeline.h"

#include <fmt/ranges.h>

#include <iostream>
#include <memory>

namespace vqvae2::cli {
namespace {

int run_audio(const PipelineConfig& config, const Common& common) {
  require_single_process("the audio pipeline");
  VQVAE2_CHECK(config.preset == "auto" || config.preset == "speech" || config.preset == "reference",
               "preset '{}' is for images; the audio presets are speech (auto) and reference", config.preset);
  const auto result = run_audio_pipeline(config, common.settings());
  if (result.interrupted) {
    std::cout << fmt::format("stopped; continue with `vqvae2 pipeline --out {} --resume`\n", config.out);
    return kInterruptedExit;
  }
  const auto& e = result.vqvae.final;
  std::cout << fmt::format(
      "audio VQ-VAE: validation waveform MSE {:.6f} (SNR {:.2f} dB), STFT distance {:.3f}, code usage {}\n",
      e.waveform_mse, e.snr, e.stft, fmt::join(e.usage, " / "));
  for (const auto& prior : result.priors) {
    std::cout << fmt::format("WaveNet {}: held-out NLL {:.3f} bits per code ({:.4f} bits per audio sample)\n",
                             prior.checkpoint, prior.final_bits_per_code, prior.final_bits_per_dim);
  }
  const auto& s = result.samples;
  std::cout << fmt::format("{} clips ({:.1f} s of audio) sampled in {:.1f} s ({:.2f} s per second of audio): {}\n",
                           s.files.size(), s.audio_seconds, s.seconds, s.seconds / s.audio_seconds, s.spectrograms);
  std::cout << fmt::format(
      "done: {} holds the audio VQ-VAE, codes, WaveNets, metrics, spectrograms and samples/ (WAVs)\n", config.out);
  return 0;
}

}  // namespace

namespace {

// `pipeline --lineage`: the pipeline's budget flags apply to all three models.
int run_lineage_command(const PipelineConfig& pipeline, const CLI::App& app, const Common& common) {
  require_single_process("pipeline --lineage");
  for (const char* flag : {"--preset", "--prior-size"}) {
    VQVAE2_CHECK(app.get_option(flag)->count() == 0,
                 "{} does not go with --lineage: the lineage trains the presets mnist (VQ-VAE-2) and vqvae1 "
                 "(VQ-VAE-1) and a VAE of the same widths, with small priors",
                 flag);
  }
  LineageConfig config;
  if (app.get_option("--out")->count() > 0) config.out = pipeline.out;
  config.data = pipeline.data;
  config.limit = pipeline.limit;
  config.autoencoder_epochs = pipeline.vqvae_epochs;
  config.prior_epochs = pipeline.prior_epochs;
  config.autoencoder_steps = pipeline.vqvae_steps;
  config.prior_steps = pipeline.prior_steps;
  if (app.get_option("--samples")->count() > 0) config.samples = pipeline.samples;
  config.seed = pipeline.seed;
  config.resume = pipeline.resume;
  config.digit_classifier = pipeline.digit_classifier;
  const auto result = run_lineage(config, common.settings());
  if (result.interrupted) {
    std::cout << fmt::format("stopped; continue with `vqvae2 pipeline --lineage --out {} --resume`\n", config.out);
    return kInterruptedExit;
  }
  std::cout << comparison_markdown(result.comparison);
  std::cout << fmt::format("\ndone: {} holds the three runs; the table is {} (and {}), the samples {}\n", config.out,
                           result.comparison.markdown_path, result.comparison.json_path,
                           result.comparison.samples_path);
  return 0;
}

}  // namespace

Command add_pipeline(CLI::App& top, Common& common) {
  auto* app = top.add_subcommand("pipeline",
                                 "The whole system in one go: train the VQ-VAE, extract codes, train every prior, sample");
  auto config = std::make_shared<PipelineConfig>();
  app->add_option("--out", config->out, "run folder for every stage")->capture_default_str();
  app->add_option("--data", config->data, "folder of images or audio files (default: the embedded MNIST digits)");
  app->add_option("--modality", config->modality, "image, audio, or auto: audio when --data holds audio files")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "image", "audio"}));
  app->add_option("--limit", config->limit, "use at most this many images (0 = all; a quick first run)")
      ->capture_default_str();
  app->add_option("--preset", config->preset,
                  "VQ-VAE preset: auto, mnist, small, reference, vqvae1; audio: speech (auto), reference")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "mnist", "small", "reference", "vqvae1", "speech"}));
  app->add_option("--prior-size", config->prior_size, "prior widths: auto, small, reference")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "small", "reference"}));
  app->add_option("--vqvae-epochs", config->vqvae_epochs,
                  "VQ-VAE epochs (0 = the preset's; with --lineage: of every autoencoder)")
      ->capture_default_str();
  app->add_option("--prior-epochs", config->prior_epochs, "epochs of each prior (0 = the size's default)")
      ->capture_default_str();
  app->add_option("--vqvae-steps", config->vqvae_steps, "VQ-VAE steps instead of epochs (0 = epochs)")
      ->capture_default_str();
  app->add_option("--prior-steps", config->prior_steps, "steps of each prior instead of epochs (0 = epochs)")
      ->capture_default_str();
  app->add_option("--samples", config->samples, "images (audio: clips) to sample at the end")->capture_default_str();
  app->add_option("--seed", config->seed, "seed of every stage")->capture_default_str();
  app->add_flag("--resume", config->resume, "continue an interrupted pipeline run in --out");
  app->add_option("--digit-classifier", config->digit_classifier,
                  "on the embedded digits the samples are scored as digits by a small classifier, trained once "
                  "(seconds) into this cache file (default " + default_digit_classifier_path() + ")");
  auto lineage = std::make_shared<bool>(false);
  app->add_flag("--lineage", *lineage,
                "instead: the lineage on one budget (a Gaussian VAE, VQ-VAE-1 with a gated PixelCNN prior, VQ-VAE-2 "
                "with its two priors; the same steps for every autoencoder and for every prior), then `compare`; "
                "--out defaults to runs/lineage");
  add_common(app, common);
  add_distributed_flags(app, common);
  return {app, [config, lineage, app, &common] {
            install_stop_handlers();
            if (*lineage) return run_lineage_command(*config, *app, common);
            if (pipeline_modality(*config) == Modality::kAudio) return run_audio(*config, common);
            const auto result = run_pipeline(*config, training_settings(common));
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
            if (result.samples.digit_score) std::cout << digit_score_line(*result.samples.digit_score) << "\n";
            std::cout << fmt::format(
                "done: {} holds the VQ-VAE, codes, priors, metrics, reconstruction grids and samples.png\n",
                config->out);
            return 0;
          }};
}

}  // namespace vqvae2::cli
