#include "vqvae2/models/attention.h"

#include "test_util.h"
#include "tiny_priors.h"
#include "vqvae2/models/prior.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace vqvae2
