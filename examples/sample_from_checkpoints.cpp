// Loads a trained VQ-VAE and one prior per level (run folders or .ckpt files) and samples new
// images: the typed loader and the sampler, without any training code.
//
//   sample_from_checkpoints VQVAE PRIOR... OUT.png
#include "vqvae2/core/device.h"
#include "vqvae2/data/image.h"
#include "vqvae2/models/sampler.h"
#include "vqvae2/stages/generate.h"
#include "vqvae2/stages/trained.h"

#include <iostream>
#include <vector>

int main(int argc, char** argv) {
  vqvae2::restart_with_better_blas_kernels(argv);  // before anything: OpenBLAS picks kernels as it loads
  if (argc < 4) {
    std::cerr << "usage: sample_from_checkpoints VQVAE PRIOR... OUT.png\n";
    return 2;
  }
  try {
    vqvae2::configure_threads({});
    const torch::Device device(torch::kCPU);
    auto vqvae = vqvae2::load<vqvae2::VQVAEKind>(argv[1], device);
    std::vector<vqvae2::TrainedPrior> loaded;
    std::vector<std::string> paths(argv + 2, argv + argc - 1);
    for (const auto& path : paths) loaded.push_back(vqvae2::load<vqvae2::PriorKind>(path, device));
    auto priors = vqvae2::priors_by_level(loaded, paths, vqvae.config.model.levels());

    // `vqvae2 sample`'s defaults: nucleus sampling, looser at the top (which digit) than below (its
    // strokes), the top map's first code untruncated, and of 8 draws below each top map the one the
    // VQ-VAE encodes back most faithfully, drawn with classifier-free guidance 2 where the lower priors
    // learned an unconditional model too (trained with condition dropout, as the small ones are).
    // One SamplingOptions{} instead samples every level from the exact model, once.
    auto options = vqvae2::SampleConfig().sampling;
    if (vqvae2::first_unguidable_level(priors) >= 0) options.lower.guidance = 0;
    const auto sample = vqvae2::sample_hierarchy(vqvae.model, priors, /*batch=*/4, options, /*seed=*/0);
    // sample.images: [4, C, S, S] in [-1, 1]; sample.codes: the code maps, bottom first.
    vqvae2::save_png(argv[argc - 1], vqvae2::make_grid(vqvae2::to_pixels(sample.images), /*columns=*/4));
    std::cout << sample.images.size(0) << " samples of " << vqvae.config.model.image_size << "x"
              << vqvae.config.model.image_size << " from a VQ-VAE trained " << vqvae.step << " steps: " << argv[argc - 1]
              << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << vqvae2::describe(e) << "\n";
    return 1;
  }
}
