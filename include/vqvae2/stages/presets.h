// Named starting configurations, all in one place. Every field can still be changed by its own flag.
//
// VQ-VAE presets:
//   mnist      32×32 grey (the embedded digits), a small model that trains in minutes on a CPU
//   small      64×64 RGB, the reference widths on a ×4/×2 hierarchy (bottom 16×16, top 8×8)
//   reference  256×256 RGB, the paper's model: bottom 64×64, top 32×32, h 128, K 512, D 64
// Prior sizes (the architectures themselves: top_prior_options / conditional_prior_options):
//   small      CPU-friendly widths and schedule
//   reference  the paper's widths (as reimplemented in PyTorch) and schedule
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

// The training schedule of a prior of this size.
TrainSchedule prior_schedule(PriorSize size);
// The prior size that goes with a VQ-VAE preset (small for mnist, else reference).
PriorSize prior_size_for_preset(const std::string& preset);

}  // namespace vqvae2
