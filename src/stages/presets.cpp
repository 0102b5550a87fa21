#include "vqvae2/stages/presets.h"

#include "vqvae2/core/error.h"

#include <algorithm>

namespace vqvae2 {

std::vector<std::string> preset_names() { return {"mnist", "small", "reference", "vqvae1"}; }

std::vector<std::string> vae_preset_names() { return {"mnist", "small", "reference"}; }

std::string resolve_preset(const std::string& name, bool has_data) {
  if (name != "auto") return name;
  return has_data ? "reference" : "mnist";
}

TrainVQVAEConfig vqvae_preset(const std::string& name) {
  TrainVQVAEConfig config;  // the struct defaults are the reference model
  if (name == "reference") {
    config.model.image_size = 256;
    config.model.channels = 3;
    config.train.batch_size = 32;
    config.train.epochs = 100;
  } else if (name == "small") {
    config.model.image_size = 64;
    config.model.channels = 3;
    config.train.batch_size = 32;
    config.train.epochs = 20;
  } else if (name == "mnist" || name == "vqvae1") {
    config.model.image_size = 32;
    config.model.channels = 1;
    config.model.hidden = 64;
    config.model.res_channels = 32;
    // The paper's hierarchy (×4 to the bottom, ×2 more to the top): bottom 8×8, top 4×4. Measured on
    // the main job's samples (docs/ABLATIONS.md, 1,024 samples, digit classifier): 7.2 of 10, 72%
    // confident against 5.8, 50% with (2, 2) (bottom 16×16, top 8×8), in less time (K 128 both). An 8×8 top carries
    // the digit's shape in 64 codes, and its prior ruled out most samples (real top maps with sampled
    // bottoms: 75% confident); a 4×4 top prior's samples are as good as real top maps.
    config.model.strides = {4, 2};
    // K 128 at the bottom, 512 at the top: a richer top map leaves less to the bottom prior, whose
    // sampling errors are what is left of the scribbles (1,024 samples: 7.5 of 10, 75% confident
    // against 7.2, 72% with K 128 at the top; the 4×4 top prior stays cheap).
    config.model.codes = {128, 512};
    config.model.code_dims = {32};
    config.train.batch_size = 64;
    config.train.epochs = 3;
    config.train.learning_rate = 1e-3;
    config.train.checkpoint_every = 200;
    if (name == "vqvae1") {
      // VQ-VAE-1: one level, ×4 down to 8×8 codes (VQ-VAE-2's bottom level alone), and codebook
      // learning by the codebook loss ‖sg[z_e] − e‖² instead of VQ-VAE-2's EMA.
      config.model.strides = {4};
      config.model.codes = {128};
      config.model.quantizer.ema = false;
    }
  } else {
    fail("unknown preset '{}'; choose one of {}", name, fmt::join(preset_names(), ", "));
  }
  // Restart a code once it receives less than one vector per batch on average: without this most of
  // the codebook never wins a nearest-neighbour contest (measured on MNIST: 26% / 2% of the codes
  // used per level after 3 epochs without restarts, 87% / 89% with them).
  config.model.quantizer.dead_code_threshold = 1.0;
  return config;
}

TrainVAEConfig vae_preset(const std::string& name) {
  const auto names = vae_preset_names();
  VQVAE2_CHECK(std::find(names.begin(), names.end(), name) != names.end(), "unknown VAE preset '{}'; choose one of {}", name, fmt::join(names, ", "));
  const auto vqvae = vqvae_preset(name);
  TrainVAEConfig config;
  config.data = vqvae.data;
  config.train = vqvae.train;
  config.model.image_size = vqvae.model.image_size;
  config.model.channels = vqvae.model.channels;
  config.model.hidden = vqvae.model.hidden;
  config.model.res_blocks = vqvae.model.res_blocks;
  config.model.res_channels = vqvae.model.res_channels;
  // The bottleneck of VQ-VAE-1 at the same widths: S/4 on a side, Z = the code width D.
  config.model.stride = 4;
  config.model.latent_channels = vqvae.model.code_dim_at(0);
  return config;
}

bool top_prior_attention_for_preset(const std::string& preset) { return preset != "vqvae1"; }

// ---- priors ----------------------------------------------------------------------------------------

namespace {

GatedPixelCNNOptions stack_options(int64_t codes, PriorSize size) {
  GatedPixelCNNOptions o;  // the struct defaults are the reference widths
  o.codes = codes;
  if (size == PriorSize::kSmall) {
    o.channels = 64;
    o.res_channels = 64;
    o.blocks = 2;
    o.res_blocks = 2;
    o.heads = 4;
  }
  return o;
}

}  // namespace

PriorSize parse_prior_size(const std::string& name) {
  if (name == "small") return PriorSize::kSmall;
  if (name == "reference") return PriorSize::kReference;
  fail("unknown prior size '{}': use small or reference", name);
}

PriorOptions top_prior_options(int64_t level, int64_t height, int64_t width, int64_t codes, PriorSize size) {
  PriorOptions o;
  o.level = level;
  o.height = height;
  o.width = width;
  o.stack = stack_options(codes, size);
  o.stack.attention = true;
  return o;
}

PriorOptions conditional_prior_options(int64_t level, int64_t height, int64_t width, int64_t codes,
                                       int64_t condition_codes, int64_t scale, PriorSize size) {
  auto o = top_prior_options(level, height, width, codes, size);
  o.stack.attention = false;
  o.conditional = true;
  o.condition.codes = condition_codes;
  o.condition.scale = scale;
  // Each of the s×s codes under one upper code gets its own conditioning: a learned upsampling and
  // position features. Measured (docs/ABLATIONS.md, MNIST bottom codes, 300 steps, two seeds):
  // 1.073 / 1.072 held-out bits per code against 1.119 / 1.116 with nearest-neighbour repetition,
  // for 1.3% more parameters. (The struct's defaults stay nearest/off: older configurations read so.)
  o.condition.upsample = "transposed";
  o.condition.position = true;
  if (size == PriorSize::kSmall) {
    o.condition.channels = 64;
    o.condition.res_blocks = 3;
    // Condition dropout, so that `sample` can guide the prior by its own unconditional model
    // (SampleConfig's guidance). On the main job's codes (docs/ABLATIONS.md) 0.2 and 0.1 gave held-out
    // 2.141 and 2.145 bits per code against 2.159 without, and guided samples scoring 8.27 and 8.16 of
    // 10 against 7.94 for the prior without (unguided). The reference widths were not measured: off there.
    o.condition_dropout = 0.2;
  }
  return o;
}

TrainSchedule prior_schedule(PriorSize size, bool conditional) {
  TrainSchedule s;
  if (size == PriorSize::kSmall) {
    s.batch_size = 64;
    // lr 2e-3 for 6 passes at the top and 8 below. Measured on the main job's codes
    // (docs/ABLATIONS.md): at lr 1e-3 the priors need 10 passes (the bottom gains 0.09 bits per code
    // from 5 to 10); at 2e-3 the top reaches the same held-out NLL after 6 (2.048 against 2.062 after
    // 10 at 1e-3, then it overfits) and the bottom after 8 (2.150 against 2.159), and their samples
    // score the same (1,024 × 3 seeds, top-p 0.8: 7.60, 82% confident against 7.62, 83%) in 60% and
    // 80% of the steps.
    s.epochs = conditional ? 8 : 6;
    s.learning_rate = 2e-3;
    s.checkpoint_every = 200;
    // Polyak averaging of the weights. On the main job's codes (10 passes at lr 1e-3, 1,400 steps,
    // where the warm-up (1+t)/(10+t) stays below 0.995, so θ̄ averages about the last ninth of the
    // steps taken; 0.999 measured the same): held-out 2.062 bits per code against 2.125 at the top,
    // 2.160 against 2.214 at the bottom, at no cost in time. Its samples are more often clear digits
    // and a little less even over the classes (1,024 × 3 seeds at top-p 0.8: 81% confident against
    // 79%, score 7.56 of 10 against 7.74; docs/ABLATIONS.md). The reference widths were not
    // measured: off there.
    s.weight_average = 0.995;
  } else {
    s.batch_size = 32;
    s.epochs = 20;
    s.learning_rate = 3e-4;
  }
  return s;
}

PriorSize prior_size_for_preset(const std::string& preset) {
  return preset == "mnist" || preset == "vqvae1" ? PriorSize::kSmall : PriorSize::kReference;
}

// ---- audio ----------------------------------------------------------------------------------------

std::vector<std::string> audio_preset_names() { return {"speech", "reference"}; }

std::string resolve_audio_preset(const std::string& name) { return name == "auto" ? "speech" : name; }

TrainAudioVQVAEConfig audio_vqvae_preset(const std::string& name) {
  TrainAudioVQVAEConfig config;  // the struct defaults are the reference model
  if (name == "reference") {
    config.train.batch_size = 16;
    config.train.epochs = 50;
  } else if (name == "speech") {
    config.model.clip_length = 8192;  // 0.512 s: one clip per spoken word
    config.model.hidden = 64;
    config.model.res_channels = 32;
    config.model.codes = {256};
    config.model.code_dims = {32};
    config.train.batch_size = 16;
    config.train.epochs = 3;
    config.train.learning_rate = 1e-3;
    config.train.checkpoint_every = 200;
    config.train.grid_images = 8;
  } else {
    fail("unknown audio preset '{}'; choose one of {}", name, fmt::join(audio_preset_names(), ", "));
  }
  config.data.sample_rate = config.model.sample_rate;
  config.data.clip_length = config.model.clip_length;
  return config;
}

WaveNetSize wavenet_size(PriorSize size) { return size == PriorSize::kSmall ? WaveNetSize::kSmall : WaveNetSize::kReference; }

TrainSchedule wavenet_schedule(PriorSize size) {
  TrainSchedule s;
  s.grid_images = 4;
  if (size == PriorSize::kSmall) {
    s.batch_size = 16;
    s.epochs = 3;
    s.learning_rate = 1e-3;
    s.checkpoint_every = 200;
  } else {
    s.batch_size = 16;
    s.epochs = 20;
    s.learning_rate = 3e-4;
  }
  return s;
}

}  // namespace vqvae2
