// Tiny priors for the tests of the stack (pixelcnn_test), attention, the sampler and the prior
// itself: a few thousand parameters, maps of a few codes, both blocks.
#pragma once

#include "vqvae2/models/pixelcnn.h"
#include "vqvae2/models/prior.h"

#include <torch/torch.h>

#include <string>
#include <vector>

namespace vqvae2::test {

// The two blocks every test of the stack runs on.
extern const std::vector<std::string> kBlocks;

// C 16, Cr 12, kernel 5, 2 groups of 2 gated layers, 2 heads, dropout 0.1.
GatedPixelCNNOptions tiny_stack(int64_t codes, bool attention, int64_t condition_channels = 0,
                                const std::string& block = "gated-two-stream");
// A top prior (level 1, K 11, attention) on an height × width map.
PriorOptions tiny_top(int64_t height = 6, int64_t width = 5, const std::string& block = "gated-two-stream");
// A conditional bottom prior (level 0, K 13, 8×6) under tiny_top's codes (K 11, scale 2).
PriorOptions tiny_bottom(const std::string& block = "gated-two-stream");

// For every output position p: the gradient of its logits with respect to the embedded input is
// exactly zero at every position q >= p (raster order), and not zero everywhere before p.
void expect_causal(Prior& prior, const torch::Tensor& condition_codes);

}  // namespace vqvae2::test
