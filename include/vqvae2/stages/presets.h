// Named starting configurations. Every field can still be changed by its own flag.
//   mnist      32×32 grey (the embedded digits), a small model that trains in minutes on a CPU
//   small      64×64 RGB, the reference widths on a ×4/×2 hierarchy (bottom 16×16, top 8×8)
//   reference  256×256 RGB, the paper's model: bottom 64×64, top 32×32, h 128, K 512, D 64
#pragma once

#include "vqvae2/stages/train_vqvae.h"

#include <string>
#include <vector>

namespace vqvae2 {

std::vector<std::string> preset_names();
// Throws vqvae2::Error listing the names when `name` is unknown.
TrainVQVAEConfig vqvae_preset(const std::string& name);

}  // namespace vqvae2
