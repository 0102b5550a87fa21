// The stage-2 commands: train-prior and sample.
#include "cli.h"
#include "flags.h"

#include "vqvae2/stages/generate.h"
#include "vqvae2/stages/presets.h"
#include "vqvae2/stages/train_prior.h"

#include <cmath>
#include <iostream>
#include <memory>

namespace vqvae2::cli {
namespace {

// The model and schedule flags of train-prior, each a field of TrainPriorConfig.
void add_prior_flags(CLI::App* app, PresetFlags<TrainPriorConfig>& flags) {
  using P = TrainPriorConfig;
  flags.add<int64_t>(app, "--channels", "width C of the causal stack", [](P& c) -> int64_t& { return c.model.stack.channels; });
  flags.add<int64_t>(app, "--res-channels", "width inside each gated unit",
                     [](P& c) -> int64_t& { return c.model.stack.res_channels; });
  flags.add<int64_t>(app, "--kernel", "kernel size k (odd): vertical (k/2+1)xk, horizontal 1x(k/2+1)",
                     [](P& c) -> int64_t& { return c.model.stack.kernel; });
  flags.add<int64_t>(app, "--blocks", "groups of gated layers (attention closes each group in the top prior)",
                     [](P& c) -> int64_t& { return c.model.stack.blocks; });
  flags.add<int64_t>(app, "--res-blocks", "gated layers per group", [](P& c) -> int64_t& { return c.model.stack.res_blocks; });
  flags.add<bool>(app, "--attention", "causal self-attention after each group (default: on for the top prior only)",
                  [](P& c) -> bool& { return c.model.stack.attention; });
  flags.add<int64_t>(app, "--heads", "attention heads", [](P& c) -> int64_t& { return c.model.stack.heads; });
  flags.add<double>(app, "--dropout", "dropout in every gated unit and on attention weights",
                    [](P& c) -> double& { return c.model.stack.dropout; });
  flags.add<int64_t>(app, "--out-res-blocks", "1x1 gated units before the logits",
                     [](P& c) -> int64_t& { return c.model.stack.out_res_blocks; });
  flags.add<int64_t>(app, "--condition-channels", "width of the conditioning stack (lower levels)",
                     [](P& c) -> int64_t& { return c.model.condition.channels; });
  flags.add<int64_t>(app, "--condition-res-blocks", "residual blocks of the conditioning stack (lower levels)",
                     [](P& c) -> int64_t& { return c.model.condition.res_blocks; });
  add_schedule_flags(app, flags, "code maps");
}

std::vector<std::pair<std::string, TrainPriorConfig>> prior_presets() {
  std::vector<std::pair<std::string, TrainPriorConfig>> presets;
  for (const auto size : {PriorSize::kSmall, PriorSize::kReference}) {
    TrainPriorConfig c;
    c.model = conditional_prior_options(0, 16, 16, 512, 512, 2, size);  // widths do not depend on the map
    c.train = prior_schedule(size);
    presets.emplace_back(size == PriorSize::kSmall ? "small" : "reference", c);
  }
  return presets;
}

}  // namespace

Command add_train_prior(CLI::App& top, Common& common) {
  auto* app = top.add_subcommand("train-prior", "Stage 2: train the prior of one level on extracted codes");
  struct Flags {
    std::string codes, level = "top", size = "reference", out;
    bool resume = false;
    PresetFlags<TrainPriorConfig> config{prior_presets()};
  };
  auto f = std::make_shared<Flags>();
  app->add_option("--codes", f->codes, "folder holding train.vq2 and val.vq2 (extract-codes)");
  app->add_option("--level", f->level, "which level: top (PixelSNAIL), bottom (conditioned on the level above) or a number")
      ->capture_default_str();
  app->add_option("--size", f->size, "widths: reference (the paper's) or small (CPU-friendly)")
      ->capture_default_str()
      ->check(CLI::IsMember({"small", "reference"}));
  app->add_option("--out", f->out, "run folder (default: runs/prior-level<N>)");
  app->add_flag("--resume", f->resume, "continue the run in --out from its checkpoint");
  add_prior_flags(app, f->config);
  add_common(app, common);
  return {app, [f, &common] {
            install_stop_handlers();
            // A fresh run is configured from its codes; a resumed one from its checkpoint.
            TrainPriorConfig config;
            PriorCodes codes;
            auto out = f->out;
            if (f->resume) {
              VQVAE2_CHECK(!out.empty(), "--resume needs the --out of the run to continue");
            } else {
              codes = read_prior_codes(f->codes);
              const auto level = parse_level(f->level, static_cast<int64_t>(codes.train.levels.size()));
              config = prior_config_for(codes, level, parse_prior_size(f->size));
              if (out.empty()) out = fmt::format("runs/prior-level{}", level);
            }
            const auto run = open_training_run(out, PriorKind::name, f->resume);
            if (run.resumed) {
              config = run.resumed->config_as<TrainPriorConfig>();
              codes = read_prior_codes(config.codes);
            }
            f->config.apply(config);
            const auto result = train_prior(config, codes, run, common.settings());
            std::cout << fmt::format(
                "{} after {} steps: held-out NLL {:.3f} bits per code ({:.4f} bits per image dimension); uniform "
                "would be {:.3f}\n",
                result.interrupted ? "stopped" : "trained", result.steps, result.final_bits_per_code,
                result.final_bits_per_dim, std::log2(static_cast<double>(config.model.stack.codes)));
            std::cout << fmt::format("run folder: {} (checkpoint {}, metrics.jsonl)\n", out, result.checkpoint);
            return result.interrupted ? kInterruptedExit : 0;
          }};
}

Command add_sample(CLI::App& top, Common& common) {
  auto* app = top.add_subcommand("sample", "Ancestral sampling: top codes, then each level below, then decode");
  auto config = std::make_shared<SampleConfig>();
  app->add_option("--vqvae", config->vqvae, "VQ-VAE run folder or .ckpt file")->required();
  app->add_option("--priors", config->priors, "prior run folders or .ckpt files, one per level, any order")
      ->required()
      ->delimiter(',');
  app->add_option("--count", config->count, "images to sample")->capture_default_str();
  app->add_option("--batch-size", config->batch_size, "images sampled together")->capture_default_str();
  app->add_option("--temperature", config->sampling.temperature, "divides the logits; 0 = most likely code")
      ->capture_default_str();
  app->add_option("--top-k", config->sampling.top_k, "keep the k most likely codes (0 = all)")->capture_default_str();
  app->add_option("--top-p", config->sampling.top_p, "keep the most likely codes up to this probability")
      ->capture_default_str();
  app->add_option("--seed", config->seed, "same seed, same samples")->capture_default_str();
  app->add_flag("--naive", config->naive, "use the reference sampler (a full forward pass per code; slow, for comparison)");
  app->add_option("--out", config->out, "PNG grid to write")->capture_default_str();
  app->add_option("--codes-out", config->codes_out, "also write the sampled codes as a code store");
  add_common(app, common);
  return {app, [config, &common] {
            const auto result = sample_images(*config, common.settings());
            std::cout << fmt::format("{} samples in {:.1f} s ({:.2f} s per image, {} sampler): {}\n", config->count,
                                     result.seconds, result.seconds / config->count,
                                     config->naive ? "naive" : "cached", config->out);
            return 0;
          }};
}

}  // namespace vqvae2::cli
