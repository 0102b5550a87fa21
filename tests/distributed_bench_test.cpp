// `vqvae2 bench distributed` (bench/distributed_bench.h): its processes run the real training step,
// and its figures add up (bytes all-reduced per step = the formula, efficiency in range).
#include "distributed_bench.h"
#include "test_util.h"

#include "vqvae2/stages/presets.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>

namespace vqvae2 {
namespace {

TEST(DistributedBench, OneProcessTimesTheTrainingStepAndSendsNothing) {
  bench::BenchOptions options;
  options.warmup = 1;
  options.iterations = 1;
  bench::DistributedBenchOptions tiny;
  tiny.tiny = true;
  tiny.global_batch = 2;
  const auto row = bench::distributed_rank(options, tiny, nullptr);
  EXPECT_EQ(row["ranks"], 1);
  EXPECT_GT(row["images_per_second"].get<double>(), 0);
  EXPECT_GT(row["parameters"].get<int64_t>(), 0);
  EXPECT_EQ(row["bytes_per_step"], 0);
  tiny.model = "mlp";
  test::expect_error([&] { bench::distributed_rank(options, tiny, nullptr); }, "unknown model 'mlp'");
}

TEST(DistributedBench, OneAndTwoProcessesReportImagesPerSecondEfficiencyAndTheBytesOfTheFormula) {
  test::TempDir dir;
  const auto json = dir.path() + "/bench.json";
  const auto result = test::run_vqvae2("bench distributed --tiny --nproc-list 1,2 --global-batch 4 --warmup 1 "
                                       "--iterations 2 --dist-timeout 60 --json " + json);
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("share the same"), std::string::npos) << result.output;
  std::ifstream in(json);
  const auto rows = nlohmann::json::parse(in);
  ASSERT_EQ(rows.size(), 4u);  // vqvae and prior, at 1 and 2 processes

  // The tiny VQ-VAE's quantizers (EMA, K 16, D 4): per level a not-finite flag, counts [K], sums [K, D].
  const auto levels = vqvae_preset("mnist").model.levels();
  const int64_t quantizer_bytes = levels * 4 * (1 + 16 + 16 * 4);
  for (const auto& row : rows) {
    SCOPED_TRACE(row.dump());
    EXPECT_GT(row["images_per_second"].get<double>(), 0);
    const auto efficiency = row["scaling_efficiency"].get<double>();
    // No upper bound: efficiency is a ratio of two timings, and a busy machine can slow the one-process
    // row more than the two-process one (the old bound, < 2, failed once under ctest -j2 and passed
    // alone). Speed lives in benchmarks.
    EXPECT_GT(efficiency, 0);
    EXPECT_TRUE(std::isfinite(efficiency));
    const auto parameters = row["parameters"].get<int64_t>();
    if (row["ranks"] == 1) {
      EXPECT_EQ(row["bytes_per_step"], 0);
      EXPECT_DOUBLE_EQ(efficiency, 1.0);
    } else {
      EXPECT_EQ(row["ranks"], 2);
      const int64_t expected = 4 * parameters + (row["model"] == "vqvae" ? quantizer_bytes : 0);
      EXPECT_EQ(row["bytes_per_step"].get<int64_t>(), expected);
      EXPECT_EQ(row["expected_bytes_per_step"].get<int64_t>(), expected);
    }
  }
}

}  // namespace
}  // namespace vqvae2
