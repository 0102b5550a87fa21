// Where the math runs: the compute device and the CPU thread pools.
//
// LibTorch in C++ starts with ONE intra-op thread, while the pthread build of OpenBLAS beside it
// starts one thread per core. Left alone, convolutions (oneDNN, on LibTorch's OpenMP pool) use one
// core, and BLAS calls made from inside LibTorch's parallel loops oversubscribe the machine. We set
// both pools deliberately; `vqvae2 bench threads` measures the alternatives (README, "Threads").
#pragma once

#include <torch/types.h>

#include <string>

namespace vqvae2 {

struct ThreadOptions {
  int threads = 0;       // LibTorch intra-op threads; 0 = every core this process may run on
  int blas_threads = 0;  // OpenBLAS threads; 0 = the recommended setting (see configure_threads)
};

// Cores this process may run on (the CPU affinity mask, not the host's core count).
int available_cores();

// Applies the options and returns what was set, with zeros resolved to concrete counts.
ThreadOptions configure_threads(const ThreadOptions& options);

// OpenBLAS's current thread count, or -1 when the BLAS in use is not OpenBLAS.
int blas_threads();
// Sets OpenBLAS's thread count; a no-op when the BLAS in use is not OpenBLAS.
void set_blas_threads(int threads);

// "cpu", "cuda", "cuda:N". Throws vqvae2::Error with a hint when CUDA is asked for but missing.
torch::Device parse_device(const std::string& name);

// Seeds every generator the library draws from (CPU and, when present, CUDA).
void seed_everything(uint64_t seed);

// A seed for step `step` of a run seeded with `seed`: training reseeds at every step from this, so
// a resumed run draws exactly the random numbers an uninterrupted one would.
uint64_t step_seed(uint64_t seed, int64_t step);

}  // namespace vqvae2
