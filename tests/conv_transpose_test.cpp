#include "vqvae2/models/conv_transpose.h"

#include "vqvae2/core/precision.h"

#include <gtest/gtest.h>

namespace vqvae2 {
namespace {

namespace F = torch::nn::functional;

// The function it replaces: LibTorch's transposed convolution, 4×4, stride 2, padding 1.
torch::Tensor transposed(const torch::Tensor& x, const DoublingConvTranspose& layer) {
  return F::conv_transpose2d(x, layer->weight(), F::ConvTranspose2dFuncOptions().bias(layer->bias()).stride(2).padding(1));
}

TEST(DoublingConvTranspose, ComputesTheTransposedConvolution) {
  torch::manual_seed(0);
  for (const auto& [batch, in, out, h, w] : std::vector<std::array<int64_t, 5>>{{2, 5, 3, 6, 7}, {1, 1, 1, 1, 1}, {3, 16, 8, 4, 9}}) {
    DoublingConvTranspose layer(in, out);
    const auto x = torch::randn({batch, in, h, w});
    const auto y = layer(x);
    ASSERT_EQ(y.sizes(), (std::vector<int64_t>{batch, out, 2 * h, 2 * w}));
    EXPECT_TRUE(y.is_contiguous());
    EXPECT_TRUE(torch::allclose(y, transposed(x, layer), 1e-5, 1e-5)) << in << "->" << out << " at " << h << "x" << w;
  }
}

TEST(DoublingConvTranspose, GradientsMatchTheTransposedConvolution) {
  torch::manual_seed(1);
  DoublingConvTranspose layer(6, 4);
  const auto x = torch::randn({2, 6, 5, 3}, torch::requires_grad());
  const auto upstream = torch::randn({2, 4, 10, 6});
  (layer(x) * upstream).sum().backward();
  const auto dx = x.grad().clone(), dw = layer->weight().grad().clone(), db = layer->bias().grad().clone();
  x.grad().zero_();
  layer->zero_grad();
  (transposed(x, layer) * upstream).sum().backward();
  EXPECT_TRUE(torch::allclose(dx, x.grad(), 1e-4, 1e-5));
  EXPECT_TRUE(torch::allclose(dw, layer->weight().grad(), 1e-4, 1e-5));
  EXPECT_TRUE(torch::allclose(db, layer->bias().grad(), 1e-4, 1e-5));
}

TEST(DoublingConvTranspose, HasTheParametersAndInitialValuesOfLibTorchsLayer) {
  // Checkpoints written when the decoders used torch::nn::ConvTranspose2d load by name and shape,
  // and a seeded model starts where it used to.
  torch::manual_seed(2);
  torch::nn::ConvTranspose2d libtorch(torch::nn::ConvTranspose2dOptions(7, 5, 4).stride(2).padding(1));
  torch::manual_seed(2);
  DoublingConvTranspose ours(7, 5);
  const auto theirs = libtorch->named_parameters();
  const auto mine = ours->named_parameters();
  ASSERT_EQ(mine.size(), theirs.size());
  for (const auto& p : theirs) {
    ASSERT_TRUE(mine.contains(p.key())) << p.key();
    EXPECT_TRUE(torch::equal(mine[p.key()], p.value())) << p.key();
  }
}

TEST(DoublingConvTranspose, PhaseWeightPlacesEveryTapOnceAndZerosTheRest) {
  DoublingConvTranspose layer(1, 1);
  {
    torch::NoGradGuard no_grad;
    layer->weight().copy_(torch::arange(1, 17, torch::kFloat).view({1, 1, 4, 4}));  // taps numbered 1..16
  }
  const auto w3 = layer->phase_weight();  // [4, 1, 3, 3]
  ASSERT_EQ(w3.sizes(), (std::vector<int64_t>{4, 1, 3, 3}));
  // Each of the 16 taps appears exactly once over the four phases; the other 20 entries are 0.
  EXPECT_TRUE(torch::equal(std::get<0>(w3.flatten().sort()).slice(0, 20), torch::arange(1, 17, torch::kFloat)));
  EXPECT_EQ(w3.eq(0).sum().item<int64_t>(), 20);
  // Phase (0, 0) uses window rows/columns 0 and 1 through taps 3 and 1: W[3][3] at (0, 0), W[1][1] at (1, 1).
  EXPECT_EQ(w3[0][0][0][0].item<float>(), 16.0f);
  EXPECT_EQ(w3[0][0][1][1].item<float>(), 6.0f);
}

TEST(DoublingConvTranspose, RunsUnderBF16AutocastNearTheFp32Result) {
  torch::manual_seed(3);
  DoublingConvTranspose layer(8, 4);
  const auto x = torch::randn({2, 8, 6, 6});
  const auto exact = layer(x);
  torch::Tensor low;
  {
    const AutocastGuard autocast(Precision::kBF16, torch::kCPU);
    low = layer(x);
  }
  EXPECT_EQ(low.scalar_type(), torch::kBFloat16);
  // bf16 keeps 8 bits of mantissa: errors of a few parts in 10³ of the output's scale.
  EXPECT_LT((low.to(torch::kFloat) - exact).abs().max().item<float>(), 0.03f * exact.abs().max().item<float>());
}

TEST(DoublingConvTranspose, RejectsInputWithTheWrongChannels) {
  DoublingConvTranspose layer(3, 2);
  try {
    layer(torch::zeros({1, 4, 2, 2}));
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("expects [B, 3, H, W]"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace vqvae2
