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

// OpenBLAS's kernels. Debian's OpenBLAS carries kernels for every x86 CPU and picks one set once, as
// it loads, from the CPU's model number; a CPU newer than its tables gets the oldest set. Bookworm's
// 0.3.21 runs Prescott's SSE3 kernels on an Emerald Rapids Xeon (family 6, model 207): matrix
// products at a quarter of the vector width, and VQ-VAE and top-prior training steps 1.4× slower
// than with its SkylakeX (AVX-512) kernels (README, "Threads"). OPENBLAS_CORETYPE overrides the
// choice, but only as the library loads, before main().

// The kernel set OpenBLAS runs ("Prescott", "Haswell", "SkylakeX", ...), or "" when the BLAS in use is
// not OpenBLAS.
std::string blas_kernels();

// What the CPU's vector units can run (the features OpenBLAS's kernel sets need).
struct CpuVectorFeatures {
  bool avx2_fma = false;  // Haswell's kernels
  bool avx512 = false;    // SkylakeX's kernels: AVX-512 F, CD, BW, DQ and VL
};
CpuVectorFeatures cpu_vector_features();

// The kernel set to run instead of `detected` on a CPU with `cpu`'s features, or "" to keep
// `detected`: SkylakeX or Haswell when `detected` is an older Intel set than the CPU runs. Other
// sets (AMD's, ARM's, names this list does not know) are kept.
std::string better_blas_kernels(const std::string& detected, const CpuVectorFeatures& cpu);

// For a program's main(), first thing: when OpenBLAS picked older kernels than this CPU runs and
// OPENBLAS_CORETYPE is unset, sets it and runs the program again with the same arguments
// (/proc/self/exe), so that OpenBLAS loads with the better kernels. Returns when there is nothing to
// do, or when the restart failed (the program then runs as it is). OPENBLAS_CORETYPE set by the
// user, to anything, is left alone.
void restart_with_better_blas_kernels(char** argv);

// LibTorch's intra-op pool held to at most `threads` for a scope (never raised), restored after.
// For loops of tiny operations, such as the cached sampler's per-position steps: every parallel
// region costs a fork and a barrier, microseconds on an idle machine, but when another process holds
// one of the cores the barrier waits for a thread that is not running (milliseconds). One thread
// then loses only its fair share of the machine.
class ThreadLimit {
 public:
  explicit ThreadLimit(int threads);
  ~ThreadLimit();
  ThreadLimit(const ThreadLimit&) = delete;
  ThreadLimit& operator=(const ThreadLimit&) = delete;

 private:
  int before_;
};

// Threads worth spending on an operation of `macs` multiply-adds: one per kMacsPerThread, at least
// one, at most the pool's size.
constexpr double kMacsPerThread = 4e6;
int threads_for_work(double macs);

// "cpu", "cuda", "cuda:N". Throws vqvae2::Error with a hint when CUDA is asked for but missing.
torch::Device parse_device(const std::string& name);

// Seeds every generator the library draws from (CPU and, when present, CUDA).
void seed_everything(uint64_t seed);

// A seed for step `step` of a run seeded with `seed`: training reseeds at every step from this, so
// a resumed run draws exactly the random numbers an uninterrupted one would.
uint64_t step_seed(uint64_t seed, int64_t step);

}  // namespace vqvae2
