#include "vqvae2/core/precision.h"

#include "test_util.h"
#include "vqvae2/core/error.h"

#include <gtest/gtest.h>

#include <limits>
#include <stdexcept>

namespace vqvae2 {
namespace {

TEST(Precision, NamesRoundTripThroughStringsAndJson) {
  for (const auto p : {Precision::kFP32, Precision::kBF16, Precision::kFP16}) {
    EXPECT_EQ(parse_precision(to_string(p)), p);
    EXPECT_EQ(nlohmann::json(p).get<Precision>(), p);
  }
  EXPECT_EQ(nlohmann::json(Precision::kBF16).get<std::string>(), "bf16");
  EXPECT_EQ(scalar_type(Precision::kBF16), torch::kBFloat16);
  EXPECT_EQ(scalar_type(Precision::kFP16), torch::kHalf);
  EXPECT_EQ(scalar_type(Precision::kFP32), torch::kFloat);
}

TEST(Precision, UnknownNamesAreRefusedNotReadAsFp32) {
  test::expect_error([] { parse_precision("half"); }, "unknown precision 'half': choose fp32, bf16 or fp16");
  test::expect_error([] { nlohmann::json("fp8").get<Precision>(); }, "unknown precision 'fp8'");
  test::expect_error([] { nlohmann::json(16).get<Precision>(); }, "precision must be a string");
}

TEST(Precision, Fp16IsRefusedOnTheCpuWithWhatToUseInstead) {
  test::expect_error([] { check_precision(Precision::kFP16, torch::kCPU); },
                     "fp16 needs a CUDA device: LibTorch's CPU autocast runs bf16 only. Use --precision bf16");
  test::expect_error([] { AutocastGuard guard(Precision::kFP16, torch::kCPU); }, "fp16 needs a CUDA device");
  EXPECT_FALSE(autocast_enabled(torch::kCPU));  // a refused guard changes nothing
  check_precision(Precision::kBF16, torch::kCPU);
  check_precision(Precision::kFP32, torch::kCPU);
}

TEST(Precision, Bf16GuardRunsMatrixProductsInBf16AndRestoresTheStateOnExit) {
  const auto a = torch::randn({8, 8});
  ASSERT_FALSE(autocast_enabled(torch::kCPU));
  const auto before_dtype = autocast_dtype(torch::kCPU);
  {
    const AutocastGuard guard(Precision::kBF16, torch::kCPU);
    EXPECT_TRUE(autocast_enabled(torch::kCPU));
    EXPECT_EQ(autocast_dtype(torch::kCPU), torch::kBFloat16);
    EXPECT_EQ(torch::mm(a, a).scalar_type(), torch::kBFloat16);
    {
      const AutocastGuard off(Precision::kFP32, torch::kCPU);  // nested: autocast off inside
      EXPECT_FALSE(autocast_enabled(torch::kCPU));
      EXPECT_EQ(torch::mm(a, a).scalar_type(), torch::kFloat);
    }
    EXPECT_TRUE(autocast_enabled(torch::kCPU));
    EXPECT_EQ(autocast_dtype(torch::kCPU), torch::kBFloat16);
  }
  EXPECT_FALSE(autocast_enabled(torch::kCPU));
  EXPECT_EQ(autocast_dtype(torch::kCPU), before_dtype);
  EXPECT_EQ(torch::mm(a, a).scalar_type(), torch::kFloat);
}

TEST(Precision, GuardRestoresTheStateWhenAnExceptionLeavesItsScope) {
  ASSERT_FALSE(autocast_enabled(torch::kCPU));
  EXPECT_THROW(
      {
        const AutocastGuard guard(Precision::kBF16, torch::kCPU);
        ASSERT_TRUE(autocast_enabled(torch::kCPU));
        throw std::runtime_error("failed mid-step");
      },
      std::runtime_error);
  EXPECT_FALSE(autocast_enabled(torch::kCPU));
}

// A parameter whose gradient is `grad` after backward of the loss the scaler scaled.
torch::Tensor parameter_with_gradient(const LossScaler& scaler, double grad) {
  auto p = torch::zeros({3}, torch::requires_grad());
  (scaler.scale(p.sum()) * grad).backward();
  return p;
}

TEST(LossScaler, UnscalesFiniteGradientsToTheirTrueValue) {
  LossScaler scaler;
  EXPECT_EQ(scaler.current_scale(), 65536.0);
  const auto p = parameter_with_gradient(scaler, 0.25);
  EXPECT_TRUE(torch::allclose(p.grad(), torch::full({3}, 65536.0 * 0.25)));
  EXPECT_TRUE(scaler.unscale({p}));
  EXPECT_TRUE(torch::allclose(p.grad(), torch::full({3}, 0.25)));
}

TEST(LossScaler, AnInfiniteGradientSkipsTheStepAndHalvesTheScale) {
  LossScaler scaler;
  const auto finite = parameter_with_gradient(scaler, 1.0);
  const auto infinite = parameter_with_gradient(scaler, std::numeric_limits<double>::infinity());
  EXPECT_FALSE(scaler.unscale({finite, infinite}));
  scaler.update(false);
  EXPECT_EQ(scaler.current_scale(), 32768.0);
  const auto nan = parameter_with_gradient(scaler, std::nan(""));
  EXPECT_FALSE(scaler.unscale({nan}));
  scaler.update(false);
  EXPECT_EQ(scaler.current_scale(), 16384.0);
  EXPECT_EQ(scaler.good_steps(), 0);
}

TEST(LossScaler, GrowsAfterGrowthIntervalGoodStepsAndAnOverflowRestartsTheCount) {
  LossScalerOptions options;
  options.initial_scale = 1024;
  options.growth_interval = 3;
  LossScaler scaler(options);
  scaler.update(true);
  scaler.update(true);
  EXPECT_EQ(scaler.current_scale(), 1024.0);
  scaler.update(false);  // the count starts again
  EXPECT_EQ(scaler.current_scale(), 512.0);
  scaler.update(true);
  scaler.update(true);
  EXPECT_EQ(scaler.current_scale(), 512.0);
  scaler.update(true);
  EXPECT_EQ(scaler.current_scale(), 1024.0);
  EXPECT_EQ(scaler.good_steps(), 0);
}

TEST(LossScaler, StateRoundTripsThroughCheckpointTensors) {
  LossScaler scaler;
  scaler.update(false);
  scaler.update(true);
  NamedTensors tensors;
  scaler.save(tensors, "scaler");
  LossScaler restored;
  restored.load(tensors, "scaler");
  EXPECT_EQ(restored.current_scale(), 32768.0);
  EXPECT_EQ(restored.good_steps(), 1);
  test::expect_error([&] { restored.load(NamedTensors(), "scaler"); }, "scaler/scale");
}

TEST(LossScaler, RefusesOptionsThatCannotWork) {
  LossScalerOptions options;
  options.backoff_factor = 1.5;
  test::expect_error([&] { LossScaler scaler(options); }, "backoff factor must be in (0, 1)");
}

}  // namespace
}  // namespace vqvae2
