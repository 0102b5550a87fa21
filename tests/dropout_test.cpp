#include "vqvae2/models/dropout.h"

#include <gtest/gtest.h>

#include <ATen/Parallel.h>

#include <limits>

namespace vqvae2 {
namespace {

TEST(Dropout, KeepsAFractionOneMinusPScaledByOneOverOneMinusP) {
  torch::manual_seed(0);
  const int64_t n = 1 << 20;
  const double p = 0.3;
  const auto y = vqvae2::dropout(torch::ones({n}), p, /*training=*/true);
  const auto kept = y.ne(0);
  // Every element is 0 or 1 / (1 − p).
  EXPECT_TRUE(torch::allclose(y.masked_select(kept), torch::full({1}, 1 / (1 - p)), 1e-6, 1e-6));
  // P(keep) = 0.7; the standard deviation of the fraction over 2²⁰ elements is 4.5e-4.
  const double fraction = kept.to(torch::kDouble).mean().item<double>();
  EXPECT_NEAR(fraction, 1 - p, 0.003);
  // Neighbouring indices are independent: P(both kept) = 0.49 for elements i, i+1 and i, i+2.
  const auto even = kept.slice(0, 0, n, 2), odd = kept.slice(0, 1, n, 2);
  EXPECT_NEAR(even.logical_and(odd).to(torch::kDouble).mean().item<double>(), 0.49, 0.004);
  EXPECT_NEAR(even.slice(0, 0, n / 2 - 1).logical_and(even.slice(0, 1)).to(torch::kDouble).mean().item<double>(),
              0.49, 0.004);
}

TEST(Dropout, TheMaskDependsOnTheSeedAndIndexNotOnTheThreadCount) {
  const auto like = torch::empty({3, 50000});
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const auto one = dropout_mask(like, 0.5, 42);
  at::set_num_threads(2);
  const auto two = dropout_mask(like, 0.5, 42);
  at::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(one, two));
  EXPECT_FALSE(torch::equal(one, dropout_mask(like, 0.5, 43)));
  // Element i's mask is the same in any tensor with at least i + 1 elements.
  const auto seven = dropout_mask(torch::empty({7}), 0.5, 42);
  EXPECT_TRUE(torch::equal(seven, one.flatten().slice(0, 0, 7)));
}

TEST(Dropout, ManualSeedFixesEveryMask) {
  const auto x = torch::randn({64, 64});
  torch::manual_seed(7);
  const auto first = vqvae2::dropout(x, 0.5, true);
  const auto second = vqvae2::dropout(x, 0.5, true);
  torch::manual_seed(7);
  EXPECT_TRUE(torch::equal(vqvae2::dropout(x, 0.5, true), first));
  EXPECT_FALSE(torch::equal(first, second));  // each call draws a fresh seed
}

TEST(Dropout, TheGradientIsTheSameScaledMask) {
  torch::manual_seed(1);
  const auto x = (torch::rand({8, 16, 5, 5}) + 0.5).requires_grad_(true);
  const auto y = vqvae2::dropout(x, 0.25, true);
  const auto upstream = torch::randn_like(y);
  y.backward(upstream);
  // y / x is the mask the forward pass used; the backward pass rebuilds it from the seed.
  const auto mask = y.detach() / x.detach();
  EXPECT_TRUE(torch::allclose(x.grad(), upstream * mask, 1e-5, 1e-6));
  EXPECT_GT(x.grad().eq(0).sum().item<int64_t>(), 0);
  EXPECT_TRUE(torch::allclose(dropout_with_seed(x.detach(), 0.25, 9), x.detach() * dropout_mask(x, 0.25, 9)));
}

TEST(Dropout, InputsOfAnyLayoutAndFloatingType) {
  torch::manual_seed(2);
  // A permuted (non-contiguous) map is masked element by element like its contiguous copy.
  const auto x = torch::randn({2, 3, 4, 5}).permute({0, 2, 3, 1});
  torch::manual_seed(3);
  const auto y = vqvae2::dropout(x, 0.5, true);
  torch::manual_seed(3);
  EXPECT_TRUE(torch::equal(y, vqvae2::dropout(x.contiguous(), 0.5, true)));
  for (const auto dtype : {torch::kDouble, torch::kBFloat16, torch::kHalf}) {
    const auto z = vqvae2::dropout(torch::ones({1000}, dtype), 0.5, true);
    EXPECT_EQ(z.scalar_type(), dtype);
    EXPECT_TRUE(z.eq(0).logical_or(z.eq(2)).all().item<bool>()) << c10::toString(dtype);
  }
}

TEST(Dropout, BFloat16IsTheFloatProductRoundedToNearestEven) {
  // Scaling by 1 / (1 − p) = 1/0.7 makes most kept products fall between two bfloat16 values, so
  // this checks the rounding of the bfloat16 kernel against torch's own conversion, bit for bit.
  torch::manual_seed(4);
  auto x = torch::randn({70001}).mul(100).to(torch::kBFloat16);
  x[5] = std::numeric_limits<float>::quiet_NaN();
  x[6] = std::numeric_limits<float>::infinity();
  x[7] = -0.0;
  const auto y = dropout_with_seed(x, 0.3, 11);
  const auto expected = (x.to(torch::kFloat) * dropout_mask(x.to(torch::kFloat), 0.3, 11)).to(torch::kBFloat16);
  ASSERT_EQ(y.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::equal(y.isnan(), expected.isnan()));
  EXPECT_TRUE(y[5].isnan().item<bool>());
  const auto finite = expected.isnan().logical_not();
  EXPECT_TRUE(torch::equal(y.masked_select(finite), expected.masked_select(finite)));
  EXPECT_GT(y.eq(0).sum().item<int64_t>(), 20000);
  // The products that needed rounding: kept elements whose float product is not a bfloat16.
  const auto product = x.to(torch::kFloat) * dropout_mask(x.to(torch::kFloat), 0.3, 11);
  EXPECT_GT(product.ne(product.to(torch::kBFloat16).to(torch::kFloat)).sum().item<int64_t>(), 10000);
}

TEST(Dropout, EvaluationAndZeroProbabilityLeaveTheInputAlone) {
  const auto x = torch::randn({100});
  Dropout module(0.5);
  EXPECT_FALSE(torch::equal(module(x), x));
  module->eval();
  EXPECT_TRUE(torch::equal(module(x), x));
  EXPECT_TRUE(torch::equal(vqvae2::dropout(x, 0.0, true), x));
  EXPECT_EQ(module->named_parameters().size() + module->named_buffers().size(), 0u);
}

TEST(Dropout, RefusesAProbabilityOutsideZeroToOne) {
  EXPECT_THROW(Dropout(1.0), std::exception);
  EXPECT_THROW(Dropout(-0.1), std::exception);
  try {
    vqvae2::dropout(torch::ones({2}), 1.5, true);
    FAIL() << "no error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("dropout probability must be in [0, 1), got 1.5"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace vqvae2
