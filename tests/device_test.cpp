#include "vqvae2/core/device.h"

#include "test_util.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>

namespace vqvae2 {
namespace {

TEST(Device, ConfiguringThreadsFlushesDenormalsToZero) {
  // Trained priors carry denormal floats, which x86 cores compute slowly (half the speed measured).
  if (!at::globalContext().setFlushDenormal(false)) GTEST_SKIP() << "no flush-to-zero on this CPU";
  const auto tiny = torch::full({4}, 1e-39f);  // below float's smallest normal, 1.18e-38
  EXPECT_GT((tiny * 2).max().item<float>(), 0.0f);
  configure_threads({});
  EXPECT_EQ((tiny * 2).max().item<float>(), 0.0f);
}

TEST(Device, OlderIntelBlasKernelsAreReplacedByTheWidestTheCpuRuns) {
  const CpuVectorFeatures sse{false, false}, avx2{true, false}, avx512{true, true};
  // Bookworm's OpenBLAS on an Emerald Rapids Xeon (model 207, unknown to it) picks Prescott's.
  EXPECT_EQ(better_blas_kernels("Prescott", avx512), "SkylakeX");
  EXPECT_EQ(better_blas_kernels("Prescott", avx2), "Haswell");
  EXPECT_EQ(better_blas_kernels("Sandybridge", avx2), "Haswell");
  EXPECT_EQ(better_blas_kernels("Haswell", avx512), "SkylakeX");
  EXPECT_EQ(better_blas_kernels("Prescott", sse), "");  // nothing wider to run
  EXPECT_EQ(better_blas_kernels("Haswell", avx2), "");
  EXPECT_EQ(better_blas_kernels("SkylakeX", avx512), "");
  EXPECT_EQ(better_blas_kernels("Cooperlake", avx512), "");  // newer than SkylakeX: kept
  EXPECT_EQ(better_blas_kernels("Zen", avx512), "");         // not Intel's: kept
  EXPECT_EQ(better_blas_kernels("", avx512), "");            // not OpenBLAS
}

TEST(Device, ThreadsDefaultToEveryCoreForLibTorchAndOneForBlas) {
  const auto resolved = configure_threads({});
  EXPECT_EQ(resolved.threads, available_cores());
  EXPECT_EQ(resolved.blas_threads, 1);
  EXPECT_EQ(at::get_num_threads(), available_cores());
  if (blas_threads() >= 0) {  // -1: the BLAS in use is not OpenBLAS
    EXPECT_EQ(blas_threads(), 1);
  }
  const auto asked = configure_threads({1, 2});
  EXPECT_EQ(asked.threads, 1);
  EXPECT_EQ(at::get_num_threads(), 1);
  if (blas_threads() >= 0) {
    EXPECT_EQ(blas_threads(), 2);
  }
  configure_threads({});
  test::expect_error([] { configure_threads({-1, 0}); }, "thread count must be 0 (all cores) or positive, got -1");
}

TEST(Device, AThreadLimitLowersThePoolForItsScopeAndNeverRaisesIt) {
  configure_threads({2, 0});
  {
    const ThreadLimit one(1);
    EXPECT_EQ(at::get_num_threads(), 1);
    {
      const ThreadLimit more(8);  // a limit, not a request: the pool stays at 1
      EXPECT_EQ(at::get_num_threads(), 1);
    }
    EXPECT_EQ(at::get_num_threads(), 1);
  }
  EXPECT_EQ(at::get_num_threads(), 2);
  {
    const ThreadLimit none(0);  // at least one thread
    EXPECT_EQ(at::get_num_threads(), 1);
  }
  EXPECT_EQ(at::get_num_threads(), 2);
  configure_threads({});
}

TEST(Device, OperationsGetOneThreadPerMillionsOfMultiplyAdds) {
  configure_threads({2, 0});
  EXPECT_EQ(threads_for_work(0), 1);
  EXPECT_EQ(threads_for_work(kMacsPerThread - 1), 1);
  EXPECT_EQ(threads_for_work(2 * kMacsPerThread), 2);
  EXPECT_EQ(threads_for_work(100 * kMacsPerThread), 2);  // never more than the pool
  configure_threads({});
}

TEST(Device, DevicesAreParsedWithHelpfulErrors) {
  EXPECT_TRUE(parse_device("cpu").is_cpu());
  test::expect_error([] { parse_device("tpu"); }, "unknown device 'tpu': use cpu, cuda or cuda:N");
  if (!torch::cuda::is_available()) test::expect_error([] { parse_device("cuda"); }, "no CUDA support");
}

TEST(Device, StepSeedsAreStableAndDistinct) {
  EXPECT_EQ(step_seed(7, 3), step_seed(7, 3));
  std::set<uint64_t> seen;
  for (int64_t step = 0; step < 1000; ++step) seen.insert(step_seed(7, step));
  EXPECT_EQ(seen.size(), 1000u);
  EXPECT_NE(step_seed(7, 0), step_seed(8, 0));
  EXPECT_LT(step_seed(~0ull, 5), uint64_t{1} << 63);  // LibTorch takes seeds as signed 64-bit in places
}

TEST(Device, SeedingMakesDrawsRepeatable) {
  seed_everything(11);
  const auto a = torch::rand({4});
  seed_everything(11);
  EXPECT_TRUE(torch::equal(a, torch::rand({4})));
}

}  // namespace
}  // namespace vqvae2
