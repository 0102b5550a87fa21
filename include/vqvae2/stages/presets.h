// Named starting configurations, all in one place. Every field can still be changed by its own flag.
//
// VQ-VAE presets:
//   mnist      32×32 grey (the embedded digits), a small model that trains in minutes on a CPU
//   small      64×64 RGB, the reference widths on a ×4/×2 hierarchy (bottom 16×16, top 8×8)
//   reference  256×256 RGB, the paper's model: bottom 64×64, top 32×32, h 128, K 512, D 64
//   vqvae1     VQ-VAE-1 (van den Oord et al. 2017) on the digits: mnist's widths, one level (stride 4,
//              8×8 codes), the codebook-loss quantizer; its prior is a gated PixelCNN (no attention)
// VAE presets (the Gaussian baseline, MISSION.md §1.1), one per image size: mnist, small, reference,
// each with the VQ-VAE preset's widths, data and schedule, a stride-4 latent map of Z = D channels.
// Prior sizes (the architectures themselves: top_prior_options / conditional_prior_options):
//   small      CPU-friendly widths and schedule
//   reference  the paper's widths (as reimplemented in PyTorch) and schedule
// Audio VQ-VAE presets (MISSION.md §1.6; the WaveNet priors take the same two sizes):
//   speech     16 kHz spoken words (scripts/make-speech-corpus.sh), sized for a short CPU run
//   reference  16 kHz, 1.024 s clips, h 128, K 512, D 64, bottom ×16 (1 ms a code), top ×4 more
#pragma once

#include "vqvae2/models/prior.h"
#include "vqvae2/stages/trained.h"

#include <string>
#include <vector>

namespace vqvae2 {

std::vector<std::string> preset_names();
// Throws vqvae2::Error listing the names when `name` is unknown.
TrainVQVAEConfig vqvae_preset(const std::string& name);
// The preset `auto` means: mnist on the embedded digits, reference on a folder of images.
std::string resolve_preset(const std::string& name, bool has_data);

// The Gaussian VAE of an image-size preset (mnist, small, reference): the same widths, data and
// schedule as vqvae_preset(name), so the two train on one budget.
std::vector<std::string> vae_preset_names();
TrainVAEConfig vae_preset(const std::string& name);

// Whether the top prior over a preset's codes has attention: PixelSNAIL for VQ-VAE-2's presets, a
// plain gated PixelCNN for vqvae1 (VQ-VAE-1's prior).
bool top_prior_attention_for_preset(const std::string& preset);

// The prior architectures of each size. Reference widths (Razavi et al. 2019 as reimplemented in
// PyTorch): C 256, 4 blocks × 4 gated layers, 8 heads, dropout 0.1; "small" is a CPU-friendly preset.
enum class PriorSize { kSmall, kReference };
PriorOptions top_prior_options(int64_t level, int64_t height, int64_t width, int64_t codes, PriorSize size);
PriorOptions conditional_prior_options(int64_t level, int64_t height, int64_t width, int64_t codes,
                                       int64_t condition_codes, int64_t scale, PriorSize size);
PriorSize parse_prior_size(const std::string& name);

// The training schedule of a prior of this size: the top prior's, or (conditional) a lower level's.
TrainSchedule prior_schedule(PriorSize size, bool conditional);
// The prior size that goes with a VQ-VAE preset (small for mnist and vqvae1, else reference).
PriorSize prior_size_for_preset(const std::string& preset);

// ---- audio ----------------------------------------------------------------------------------------

std::vector<std::string> audio_preset_names();
// Throws vqvae2::Error listing the names when `name` is unknown.
TrainAudioVQVAEConfig audio_vqvae_preset(const std::string& name);
// `auto` means speech.
std::string resolve_audio_preset(const std::string& name);
// The WaveNet widths of a prior size, and their training schedule.
WaveNetSize wavenet_size(PriorSize size);
TrainSchedule wavenet_schedule(PriorSize size);

}  // namespace vqvae2
