// Trains a small VQ-VAE on the digits embedded in the library for a few steps, then reconstructs
// held-out digits with it: the two calls a program needs for stage 1.
//
//   train_and_reconstruct RUN_FOLDER     writes RUN_FOLDER/{vqvae.ckpt, metrics.jsonl, reconstructions.png}
#include "vqvae2/core/device.h"
#include "vqvae2/stages/presets.h"
#include "vqvae2/stages/train_vqvae.h"

#include <iostream>

int main(int argc, char** argv) {
  vqvae2::restart_with_better_blas_kernels(argv);  // before anything: OpenBLAS picks kernels as it loads
  if (argc != 2) {
    std::cerr << "usage: train_and_reconstruct RUN_FOLDER\n";
    return 2;
  }
  const std::string run = argv[1];
  try {
    vqvae2::configure_threads({});  // every core for LibTorch, one for OpenBLAS
    vqvae2::RunSettings settings;
    settings.quiet = true;      // no progress bar
    settings.log = &std::cerr;  // but warnings and evaluations

    auto config = vqvae2::vqvae_preset("mnist");
    config.data.limit = 1024;
    config.train.steps = 40;
    const auto trained = vqvae2::train_vqvae(config, run, /*resume=*/false, settings);

    vqvae2::ReconstructConfig reconstruct;
    reconstruct.checkpoint = run;
    reconstruct.images = 8;
    reconstruct.out = run + "/reconstructions.png";
    const auto result = vqvae2::reconstruct(reconstruct, settings);
    std::cout << "validation MSE " << trained.initial.mse << " -> " << trained.final.mse << "; " << result.images
              << " held-out digits reconstructed at PSNR " << result.psnr << " dB: " << reconstruct.out << "\n";
    return trained.final.mse < trained.initial.mse ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << vqvae2::describe(e) << "\n";
    return 1;
  }
}
