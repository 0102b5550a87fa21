// The Gaussian VAE baseline's command: train-vae (its samples come from `vqvae2 sample --vae`).
#include "cli.h"
#include "flags.h"

#include "vqvae2/stages/presets.h"
#include "vqvae2/stages/train_vae.h"

#include <iostream>
#include <memory>

namespace vqvae2::cli {
namespace {

using Config = TrainVAEConfig;

// The model, data and schedule flags of train-vae, each a field of TrainVAEConfig.
void add_vae_flags(CLI::App* app, PresetFlags<Config>& flags) {
  add_image_data_flags(app, flags);
  flags.add<int64_t>(app, "--hidden", "width h of the encoder and decoder",
                     [](Config& c) -> int64_t& { return c.model.hidden; });
  flags.add<int64_t>(app, "--res-blocks", "residual blocks in the encoder and in the decoder",
                     [](Config& c) -> int64_t& { return c.model.res_blocks; });
  flags.add<int64_t>(app, "--res-channels", "bottleneck width of a residual block",
                     [](Config& c) -> int64_t& { return c.model.res_channels; });
  flags.add<int64_t>(app, "--stride", "downsampling s (a power of two): the latent map is S/s on a side",
                     [](Config& c) -> int64_t& { return c.model.stride; });
  flags.add<int64_t>(app, "--latent-channels", "latent channels Z of q(z|x) = N(mu, sigma^2)",
                     [](Config& c) -> int64_t& { return c.model.latent_channels; });
  flags.add<int64_t>(app, "--kl-warmup-steps", "the KL weight ramps linearly 0 -> 1 over this many steps (0 = 1 "
                                               "throughout); the reported ELBO always has weight 1",
                     [](Config& c) -> int64_t& { return c.model.kl_warmup_steps; });
  flags.add<double>(app, "--free-bits", "nats per latent unit below which a channel's KL is not pushed down "
                                        "(0 = off); the reported ELBO is unchanged",
                    [](Config& c) -> double& { return c.model.free_bits; });
  add_schedule_flags(app, flags, "images");
  flags.add<int64_t>(app, "--grid-images", "images in each reconstruction and sample grid",
                     [](Config& c) -> int64_t& { return c.train.grid_images; });
}

std::vector<std::pair<std::string, Config>> all_presets() {
  std::vector<std::pair<std::string, Config>> presets;
  for (const auto& name : vae_preset_names()) presets.emplace_back(name, vae_preset(name));
  return presets;
}

}  // namespace

Command add_train_vae(CLI::App& top, Common& common) {
  auto* app = top.add_subcommand(
      "train-vae", "The Gaussian VAE baseline (continuous latents, -ELBO in bits/dim), writing a run folder");
  struct Flags {
    std::string out = "runs/vae", preset = "auto";
    bool resume = false;
    PresetFlags<Config> config{all_presets()};
  };
  auto f = std::make_shared<Flags>();
  app->add_option("--preset", f->preset,
                  "starting configuration: mnist, small, reference (the VQ-VAE preset's widths, data and schedule), "
                  "or auto (mnist without --data, reference with it); the flags below override it")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "mnist", "small", "reference"}));
  app->add_option("--out", f->out, "run folder (config.json, metrics.jsonl, vae.ckpt, grids/)")->capture_default_str();
  app->add_flag("--resume", f->resume,
                "continue the run in --out from its checkpoint (its configuration; schedule flags may be changed)");
  add_vae_flags(app, f->config);
  add_common(app, common);
  return {app, [f, app, &common] {
            install_stop_handlers();
            require_single_process("train-vae");
            // A fresh run's configuration is checked before its folder is made: a bad flag leaves nothing behind.
            Config config;
            if (!f->resume) {
              config = vae_preset(resolve_preset(f->preset, app->get_option("--data")->count() > 0));
              f->config.apply(config);
              config.validate();
            }
            const auto run = open_training_run(f->out, VAEKind::name, f->resume);
            if (run.resumed) {
              config = run.resumed->config_as<Config>();
              f->config.apply(config);
            }
            const auto result = train_vae(config, run, common.settings());
            const auto& e = result.final;
            std::cout << fmt::format(
                "{} after {} steps: validation -ELBO {:.4f} bits/dim (KL {:.1f} + NLL {:.1f} nats per image), MSE "
                "{:.5f} (PSNR {:.2f} dB), {} of {} latent channels active\n",
                result.interrupted ? "stopped" : "trained", result.steps, e.bits_per_dim, e.kl_nats, e.nll_nats, e.mse,
                e.psnr, e.active_dims, config.model.latent_channels);
            std::cout << fmt::format("run folder: {} (checkpoint {}, metrics.jsonl, grids/)\n", f->out,
                                     result.checkpoint);
            return result.interrupted ? kInterruptedExit : 0;
          }};
}

}  // namespace vqvae2::cli
