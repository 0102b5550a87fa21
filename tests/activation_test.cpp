#include "vqvae2/models/activation.h"

#include <gtest/gtest.h>

#include <ATen/Parallel.h>

#include <limits>

namespace vqvae2 {
namespace {

// Values over the whole range the priors see, and beyond: dense near 0 (where eˣ − 1 and tanh lose
// digits if done naively), the polynomial/exponential seams, and the clamps of the exponential.
torch::Tensor probe_values() {
  torch::manual_seed(0);
  const float inf = std::numeric_limits<float>::infinity();
  return torch::cat({torch::randn({20000}) * 3, torch::randn({5000}) * 1e-3, torch::linspace(-100, 100, 20001),
                     torch::tensor({0.0f, -0.0f, -0.25f, 0.625f, -0.625f, 87.0f, -87.0f, 88.0f, 89.0f, -90.0f, 1e-30f,
                                    -1e-30f, inf, -inf})});
}

TEST(Activation, EluMatchesLibTorchsInValueAndGradient) {
  const auto x = probe_values().requires_grad_(true);
  const auto y = vqvae2::elu(x);
  const auto upstream = torch::randn_like(y);
  y.backward(upstream);
  const auto x64 = x.detach().to(torch::kDouble).requires_grad_(true);
  const auto expected = torch::elu(x64);
  expected.backward(upstream.to(torch::kDouble));
  // Within 2 float ulps of the exact value (in double), absolutely for |y| < 1 and relatively beyond.
  const auto finite = expected.detach().isfinite();
  EXPECT_TRUE(torch::equal(y.detach().masked_select(finite.logical_not()).to(torch::kDouble),
                           expected.detach().masked_select(finite.logical_not())));  // +∞
  const auto error = (y.detach().to(torch::kDouble) - expected.detach()).abs().masked_select(finite);
  const auto tolerance = expected.detach().abs().clamp_min(1).masked_select(finite) * 2.4e-7;
  EXPECT_TRUE(error.le(tolerance).all().item<bool>()) << (error / tolerance).max().item<double>();
  const auto gradient_error = (x.grad().to(torch::kDouble) - x64.grad()).abs();
  const auto gradient_tolerance = x64.grad().abs().clamp_min(1) * 4.8e-7;
  EXPECT_TRUE(gradient_error.le(gradient_tolerance).all().item<bool>())
      << (gradient_error / gradient_tolerance).max().item<double>();
  // Near 0 the result keeps its relative precision (eˣ − 1 there would leave ~1e-7 absolute error).
  const auto tiny = torch::tensor({-1e-6f, -3e-5f, -1e-3f, -0.2f});
  const auto relative = (vqvae2::elu(tiny).to(torch::kDouble) / torch::expm1(tiny.to(torch::kDouble)) - 1).abs();
  EXPECT_LT(relative.max().item<double>(), 3e-7);
  EXPECT_EQ(vqvae2::elu(torch::tensor({-std::numeric_limits<float>::infinity()})).item<float>(), -1.0f);
  EXPECT_TRUE(vqvae2::elu(torch::tensor({std::numeric_limits<float>::quiet_NaN()})).isnan().item<bool>());
}

TEST(Activation, GateMatchesLibTorchsInValueAndGradient) {
  const auto values = probe_values();
  const auto n = values.numel() / 4 * 2;  // even
  // [2, n, 1]: halves along dimension 1 of a batch of 2, so that the blocks of [a | b] repeat.
  const auto x = values.slice(0, 0, 2 * n).view({2, n, 1}).clone().requires_grad_(true);
  const auto y = gate(x, 1);
  ASSERT_EQ(y.sizes(), (std::vector<int64_t>{2, n / 2, 1}));
  const auto upstream = torch::randn_like(y);
  y.backward(upstream);
  const auto x64 = x.detach().to(torch::kDouble).requires_grad_(true);
  const auto halves = x64.chunk(2, 1);
  const auto expected = torch::tanh(halves[0]) * torch::sigmoid(halves[1]);
  expected.backward(upstream.to(torch::kDouble));
  const auto error = (y.detach().to(torch::kDouble) - expected.detach()).abs().max().item<double>();
  EXPECT_LT(error, 2.4e-7);  // |y| ≤ 1
  const auto gradient_error = (x.grad().to(torch::kDouble) - x64.grad()).abs();
  const auto gradient_tolerance = upstream.abs().max().item<double>() * 4.8e-7;
  EXPECT_LT(gradient_error.max().item<double>(), gradient_tolerance);
  // Near 0, tanh keeps its relative precision (1 − 2/(e^{2x} + 1) there would not).
  const auto small = torch::tensor({1e-6f, -3e-4f, 0.3f, 20.0f, 20.0f, 20.0f, 20.0f, 20.0f}).view({1, 8});
  const auto t = gate(small, 1).to(torch::kDouble);
  const auto exact = torch::tanh(small.slice(1, 0, 4).to(torch::kDouble)) * torch::sigmoid(torch::tensor({20.0}));
  EXPECT_LT((t / exact - 1).abs().max().item<double>(), 3e-7);
}

TEST(Activation, TheSameBitsForAnyPositionThreadCountAndLayout) {
  // The cached samplers apply these to one row at a time and the full pass to whole maps: each
  // element's value must not depend on where it sits (vector body or remainder) or on the threads.
  const auto x = probe_values().slice(0, 0, 40000).view({4, 100, 10, 10});
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const auto elu_one = vqvae2::elu(x);
  const auto gate_one = gate(x, 1);
  at::set_num_threads(2);
  const auto elu_two = vqvae2::elu(x);
  const auto gate_two = gate(x, 1);
  at::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(elu_one, elu_two));
  EXPECT_TRUE(torch::equal(gate_one, gate_two));
  // Element by element: every position of a map against the same values at the start of a tensor.
  for (int64_t k : {0, 1, 7, 15, 17, 33, 999}) {
    const auto one = x.flatten().slice(0, k, k + 1);
    EXPECT_TRUE(torch::equal(vqvae2::elu(one), elu_one.flatten().slice(0, k, k + 1))) << k;
  }
  const auto row = x.select(3, 7).select(2, 3);  // [4, 100]: one position of every channel
  EXPECT_TRUE(torch::equal(gate(row.contiguous(), 1), gate_one.select(3, 7).select(2, 3)));
  // A channels-last map: the same values, the ELU's in the same layout.
  const auto channels_last = x.contiguous(at::MemoryFormat::ChannelsLast);
  const auto y = vqvae2::elu(channels_last);
  EXPECT_TRUE(y.is_contiguous(at::MemoryFormat::ChannelsLast));
  EXPECT_TRUE(torch::equal(y, elu_one));
  EXPECT_TRUE(torch::equal(gate(channels_last, 1), gate_one));
  // Other types go through LibTorch's operators, to the same values within rounding.
  EXPECT_TRUE(torch::allclose(vqvae2::elu(x.to(torch::kDouble)), elu_one.to(torch::kDouble), 0, 5e-7));
}

TEST(Activation, BFloat16IsTheFloatResultRounded) {
  const auto x = probe_values().slice(0, 0, 20000).to(torch::kBFloat16).view({2, 10000});
  const auto widened = x.to(torch::kFloat);
  // The float kernel on the widened values, rounded: the bfloat16 kernel computes in float too.
  EXPECT_TRUE(torch::equal(vqvae2::elu(x), vqvae2::elu(widened).to(torch::kBFloat16)));
  EXPECT_TRUE(torch::equal(gate(x, 1), gate(widened, 1).to(torch::kBFloat16)));
  // Gradients likewise, from a bfloat16 upstream.
  const auto input = x.clone().requires_grad_(true);
  const auto upstream = torch::randn({2, 5000}).to(torch::kBFloat16);
  gate(input, 1).backward(upstream);
  const auto input_float = widened.clone().requires_grad_(true);
  gate(input_float, 1).backward(upstream.to(torch::kFloat));
  EXPECT_EQ(input.grad().scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::equal(input.grad(), input_float.grad().to(torch::kBFloat16)));
}

TEST(Activation, TheGateSplitsAnyDimensionAndRefusesAnOddOne) {
  torch::manual_seed(1);
  const auto x = torch::randn({3, 4, 6});
  for (int64_t dim : {0, 1, 2, -1}) {
    if (x.size(dim) % 2 != 0) {
      EXPECT_THROW(gate(x, dim), std::exception) << dim;
      continue;
    }
    const auto halves = x.chunk(2, dim);
    EXPECT_TRUE(torch::allclose(gate(x, dim), torch::tanh(halves[0]) * torch::sigmoid(halves[1]), 0, 5e-7))
        << dim;
  }
  EXPECT_THROW(gate(torch::randn({2, 3}), 1), std::exception);
}

}  // namespace
}  // namespace vqvae2
