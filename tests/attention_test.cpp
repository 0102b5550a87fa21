#include "vqvae2/models/attention.h"

#include "test_util.h"
#include "tiny_priors.h"
#include "vqvae2/models/prior.h"

#include <gtest/gtest.h>

#include <cmath>

namespace vqvae2 {
namespace {

using test::kBlocks;
using test::tiny_top;

TEST(Attention, AttentionReachesTheFarPast) {
  // With attention the last position sees the first even though the convolutions' window does not
  // reach that far. Two-stream: the input convolution reaches 3 rows up and each of the 4 layers 4
  // more, 19 in all; PixelSNAIL: 2 rows for the input and 4 per layer, 18; the map has 24 rows.
  for (const auto& block : kBlocks) {
    SCOPED_TRACE(block);
    torch::manual_seed(0);
    auto options = tiny_top(24, 3, block);
    Prior prior(options);
    prior->eval();
    const auto codes = torch::randint(0, 11, {1, 24, 3}, torch::kLong);
    const auto embedded = prior->stack().embed(codes).detach().requires_grad_(true);
    prior->stack().forward_embedded(embedded).select(3, 2).select(2, 23).sum().backward();
    EXPECT_GT(embedded.grad().select(3, 0).select(2, 0).abs().sum().item<float>(), 0.0f);

    options.stack.attention = false;
    Prior convolutional(options);
    convolutional->eval();
    const auto e2 = convolutional->stack().embed(codes).detach().requires_grad_(true);
    convolutional->stack().forward_embedded(e2).select(3, 2).select(2, 23).sum().backward();
    EXPECT_EQ(e2.grad().select(3, 0).select(2, 0).abs().sum().item<float>(), 0.0f);
  }
}

TEST(Attention, BlockwiseAttentionEqualsTheWholeMaskedSoftmax) {
  // causal_attention makes the scores a block of queries at a time, in groups of maps. Here 2 maps
  // x 6 heads over N = 600 positions: query blocks of 256, 256 and 88 rows, and 12 maps in groups of
  // 6 (4 M scores a block), so every kind of block boundary is crossed. Values and gradients must
  // be those of the whole masked softmax.
  torch::manual_seed(0);
  const int64_t batch = 2, heads = 6, n = 600, d = 16;
  const auto q = torch::randn({batch, heads, n, d}).requires_grad_(true);
  const auto k = torch::randn({batch, heads, n, d}).requires_grad_(true);
  const auto v = torch::randn({batch, heads, n, d}).requires_grad_(true);
  const auto weights = torch::randn({batch, heads, n, d});
  Dropout none(0.0);
  const auto blockwise = causal_attention(q, k, v, none);
  const auto grads = torch::autograd::grad({(blockwise * weights).sum()}, {q, k, v});

  const auto future = torch::ones({n, n}, torch::kBool).triu(1);
  const auto scores = torch::matmul(q, k.transpose(2, 3)).div(std::sqrt(static_cast<double>(d)));
  const auto whole = torch::matmul(torch::softmax(scores.masked_fill(future, -INFINITY), -1), v);
  const auto expected = torch::autograd::grad({(whole * weights).sum()}, {q, k, v});

  EXPECT_TRUE(torch::allclose(blockwise, whole, 1e-5, 1e-5)) << (blockwise - whole).abs().max().item<float>();
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(torch::allclose(grads[i], expected[i], 1e-4, 1e-5))
        << "gradient " << i << ": " << (grads[i] - expected[i]).abs().max().item<float>();
  }

  // Dropout acts on the attention weights in training and not in evaluation.
  Dropout half(0.5);
  EXPECT_FALSE(torch::allclose(causal_attention(q, k, v, half), whole, 1e-3, 1e-3));
  half->eval();
  EXPECT_TRUE(torch::allclose(causal_attention(q, k, v, half), whole, 1e-5, 1e-5));
}

}  // namespace
}  // namespace vqvae2
