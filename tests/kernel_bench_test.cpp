// `vqvae2 bench kernels` (bench/kernel_bench.cpp): it times every kernel in both types and prints
// one row each. The figures themselves are not judged here (no timed tests).
#include "bench.h"
#include "test_util.h"

#include <gtest/gtest.h>

#include <sstream>
#include <string>

namespace vqvae2 {
namespace {

TEST(KernelBench, PrintsARowPerKernelAndTypeWithPositiveTimes) {
  bench::BenchOptions options;
  options.warmup = 0;
  options.iterations = 1;
  std::ostringstream out;
  bench::kernels(options, out);
  std::istringstream lines(out.str());
  int rows = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("| dropout", 0) != 0 && line.rfind("| ELU", 0) != 0 && line.rfind("| gate", 0) != 0) continue;
    ++rows;
    // | op | shape | dtype | ours | LibTorch | ratio |: the two times are positive numbers.
    std::istringstream cells(line);
    std::string cell;
    std::vector<std::string> fields;
    while (std::getline(cells, cell, '|')) fields.push_back(cell);
    ASSERT_EQ(fields.size(), 7u) << line;
    EXPECT_GT(std::stod(fields[4]), 0) << line;
    EXPECT_GT(std::stod(fields[5]), 0) << line;
  }
  EXPECT_EQ(rows, 6) << out.str();  // dropout, ELU, gate × fp32, bf16
}

TEST(KernelBench, RefusesADeviceOtherThanTheCpu) {
  bench::BenchOptions options;
  options.device = "cuda";
  std::ostringstream out;
  test::expect_error([&] { bench::kernels(options, out); }, "cuda");
}

}  // namespace
}  // namespace vqvae2
