#include "vqvae2/core/device.h"

#include "vqvae2/core/error.h"

#include <torch/torch.h>

#include <dlfcn.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cmath>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

namespace vqvae2 {

int available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    return std::max(1, CPU_COUNT(&set));
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

namespace {
// OpenBLAS is reached through libblas.so.3, so its extensions are looked up at run time: with
// another BLAS (MKL inside an official LibTorch, reference BLAS) these symbols are simply absent.
using SetThreads = void (*)(int);
using GetThreads = int (*)();
SetThreads openblas_set() { return reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")); }
GetThreads openblas_get() { return reinterpret_cast<GetThreads>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads")); }
using GetCoreName = char* (*)();
}  // namespace

std::string blas_kernels() {
  const auto get = reinterpret_cast<GetCoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  const char* name = get ? get() : nullptr;
  return name ? name : "";
}

CpuVectorFeatures cpu_vector_features() {
  CpuVectorFeatures cpu;
#if defined(__x86_64__) || defined(__i386__)
  // libgcc's checks include the operating system's support (XCR0) for the wider registers.
  cpu.avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  cpu.avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512vl");
#endif
  return cpu;
}

std::string better_blas_kernels(const std::string& detected, const CpuVectorFeatures& cpu) {
  // OpenBLAS's Intel kernel sets, oldest first; rank 1 = AVX2 with FMA, rank 2 = AVX-512. Sets newer
  // than SkylakeX (Cooperlake, SapphireRapids) add bf16 kernels, not faster fp32 ones.
  static const std::vector<std::pair<std::string, int>> intel = {
      {"Katmai", 0}, {"Coppermine", 0}, {"Northwood", 0}, {"Prescott", 0}, {"Banias", 0},
      {"Core2", 0},  {"Penryn", 0},     {"Dunnington", 0}, {"Nehalem", 0},  {"Atom", 0},
      {"Sandybridge", 0}, {"Haswell", 1}, {"SkylakeX", 2}, {"Cooperlake", 2}, {"SapphireRapids", 2}};
  const auto found = std::find_if(intel.begin(), intel.end(), [&](const auto& set) { return set.first == detected; });
  if (found == intel.end()) return "";
  const int best = cpu.avx512 ? 2 : cpu.avx2_fma ? 1 : 0;
  if (best <= found->second) return "";
  return best == 2 ? "SkylakeX" : "Haswell";
}

void restart_with_better_blas_kernels(char** argv) {
  if (argv == nullptr || argv[0] == nullptr || std::getenv("OPENBLAS_CORETYPE") != nullptr) return;
  const auto better = better_blas_kernels(blas_kernels(), cpu_vector_features());
  if (better.empty()) return;
  // Set even if the restart fails: the variable also says that this process has been through here.
  ::setenv("OPENBLAS_CORETYPE", better.c_str(), 1);
  ::execv("/proc/self/exe", argv);  // returns only on failure
}

int blas_threads() {
  auto get = openblas_get();
  return get ? get() : -1;
}

void set_blas_threads(int threads) {
  if (auto set = openblas_set()) set(std::max(1, threads));
}

ThreadOptions configure_threads(const ThreadOptions& options) {
  VQVAE2_CHECK(options.threads >= 0, "the LibTorch thread count must be 0 (all cores) or positive, got {}", options.threads);
  VQVAE2_CHECK(options.blas_threads >= 0, "the OpenBLAS thread count must be 0 (recommended) or positive, got {}",
               options.blas_threads);
  ThreadOptions resolved;
  resolved.threads = options.threads > 0 ? options.threads : available_cores();
  // One BLAS thread: our heavy work is convolutions on LibTorch's pool; BLAS is called from inside
  // LibTorch's parallel loops, where extra BLAS threads only fight the pool for the same cores.
  resolved.blas_threads = options.blas_threads > 0 ? options.blas_threads : 1;
  // Flush denormal floats (|x| < 1.2e-38) to zero. Trained priors carry such values, and x86 cores
  // take microcode assists on each one: a trained bottom prior's step ran at half the speed of an
  // untrained one's (139–148 against 255–299 images/s, 2 threads). Set before the pool's threads
  // exist, so they inherit the mode; values that small change no result that matters.
  at::globalContext().setFlushDenormal(true);
  at::set_num_threads(resolved.threads);
  set_blas_threads(resolved.blas_threads);
  return resolved;
}

ThreadLimit::ThreadLimit(int threads) : before_(at::get_num_threads()) {
  const int limited = std::max(1, std::min(threads, before_));
  if (limited != before_) at::set_num_threads(limited);
}

ThreadLimit::~ThreadLimit() {
  if (at::get_num_threads() != before_) at::set_num_threads(before_);
}

int threads_for_work(double macs) {
  const double wanted = std::floor(macs / kMacsPerThread);
  return static_cast<int>(std::max(1.0, std::min(wanted, static_cast<double>(at::get_num_threads()))));
}

torch::Device parse_device(const std::string& name) {
  std::optional<torch::Device> device;
  try {
    device = torch::Device(name);
  } catch (const std::exception&) {
    fail("unknown device '{}': use cpu, cuda or cuda:N", name);
  }
  if (device->is_cuda()) {
    VQVAE2_CHECK(torch::cuda::is_available(),
                 "device '{}' asks for CUDA, but this LibTorch has no CUDA support or sees no GPU; "
                 "use the CPU, or build against a CUDA-enabled LibTorch",
                 name);
    const auto count = static_cast<int64_t>(torch::cuda::device_count());
    VQVAE2_CHECK(!device->has_index() || device->index() < count, "device '{}': only {} CUDA device(s) visible",
                 name, count);
  } else {
    VQVAE2_CHECK(device->is_cpu(), "unsupported device '{}': use cpu, cuda or cuda:N", name);
  }
  return *device;
}

void seed_everything(uint64_t seed) {
  torch::manual_seed(seed);
  if (torch::cuda::is_available()) torch::cuda::manual_seed_all(seed);
}

uint64_t step_seed(uint64_t seed, int64_t step) {
  // splitmix64 of (seed, step): neighbouring steps get unrelated streams.
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (static_cast<uint64_t>(step) + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return (z ^ (z >> 31)) >> 1;  // LibTorch seeds are taken as signed 64-bit in places
}

}  // namespace vqvae2
