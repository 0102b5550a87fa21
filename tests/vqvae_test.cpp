#include "vqvae2/models/vqvae.h"

#include "vqvae2/core/error.h"

#include <gtest/gtest.h>

namespace vqvae2 {
namespace {

VQVAEOptions narrow(int64_t size, std::vector<int64_t> strides, int64_t channels = 3) {
  VQVAEOptions o;
  o.image_size = size;
  o.channels = channels;
  o.hidden = 16;
  o.res_blocks = 1;
  o.res_channels = 8;
  o.strides = std::move(strides);
  o.codes = {16};
  o.code_dims = {4};
  return o;
}

struct ShapeCase {
  int64_t size;
  std::vector<int64_t> strides;
  std::vector<int64_t> latent_sides;
};

class VQVAEShapes : public ::testing::TestWithParam<ShapeCase> {};

TEST_P(VQVAEShapes, EncodeAndDecodeHaveTheRightShapes) {
  torch::manual_seed(0);
  const auto& c = GetParam();
  HierarchicalVQVAE model(narrow(c.size, c.strides));
  const auto x = torch::rand({2, 3, c.size, c.size}) * 2 - 1;
  const auto out = model->forward(x);
  EXPECT_EQ(out.reconstruction.sizes(), x.sizes());
  ASSERT_EQ(out.levels.size(), c.latent_sides.size());
  const auto codes = model->encode(x);
  for (size_t l = 0; l < c.latent_sides.size(); ++l) {
    EXPECT_EQ(codes[l].sizes(), (std::vector<int64_t>{2, c.latent_sides[l], c.latent_sides[l]}));
    EXPECT_EQ(codes[l].scalar_type(), torch::kLong);
    EXPECT_EQ(model->options().latent_size(l), c.latent_sides[l]);
  }
  EXPECT_EQ(model->decode_codes(codes).sizes(), x.sizes());
}

INSTANTIATE_TEST_SUITE_P(SizesAndLevels, VQVAEShapes,
                         ::testing::Values(ShapeCase{256, {4, 2}, {64, 32}},   // the paper's two levels
                                           ShapeCase{64, {4, 2}, {16, 8}},
                                           ShapeCase{32, {2, 2}, {16, 8}},
                                           ShapeCase{32, {4}, {8}},            // one level (VQ-VAE-1)
                                           ShapeCase{64, {2, 2, 2}, {32, 16, 8}},  // three levels
                                           ShapeCase{64, {8, 2}, {8, 4}}));

TEST(VQVAE, DecodingTheCodesReproducesTheReconstruction) {
  torch::manual_seed(0);
  HierarchicalVQVAE model(narrow(32, {2, 2}));
  model->eval();
  torch::NoGradGuard no_grad;
  const auto x = torch::rand({3, 3, 32, 32}) * 2 - 1;
  const auto out = model->forward(x);
  std::vector<torch::Tensor> codes;
  for (const auto& level : out.levels) codes.push_back(level.codes);
  EXPECT_TRUE(torch::allclose(model->decode_codes(codes), out.reconstruction, 1e-5, 1e-5));
}

TEST(VQVAE, TopCodesChangeTheBottomCodes) {
  // The bottom quantiser sees the decoded top codes: with the same encoder features, other top codes
  // must be able to change the bottom input. Check via the gradient of the bottom z_e w.r.t. the
  // top codebook path: the loss on the bottom commitment reaches the top encoder.
  torch::manual_seed(0);
  HierarchicalVQVAE model(narrow(32, {2, 2}));
  const auto x = torch::rand({2, 3, 32, 32}) * 2 - 1;
  const auto out = model->forward(x);
  out.levels[0].commitment_loss.backward();
  double top_grad = 0;
  for (const auto& p : model->named_parameters()) {
    if (p.key().rfind("condition_decoder0", 0) == 0 && p.value().grad().defined()) {
      top_grad += p.value().grad().abs().sum().item<double>();
    }
  }
  EXPECT_GT(top_grad, 0);
}

TEST(VQVAE, LossIsTheSumOfItsTerms) {
  torch::manual_seed(0);
  auto options = narrow(16, {2, 2});
  options.quantizer.ema = false;
  HierarchicalVQVAE model(options);
  const auto x = torch::rand({2, 3, 16, 16}) * 2 - 1;
  const auto out = model->forward(x);
  EXPECT_NEAR(out.reconstruction_loss.item<double>(), (out.reconstruction - x).pow(2).mean().item<double>(), 1e-6);
  EXPECT_NEAR(out.loss.item<double>(),
              (out.reconstruction_loss + out.codebook_loss + out.commitment_loss).item<double>(), 1e-6);
  EXPECT_GT(out.codebook_loss.item<double>(), 0);
}

TEST(VQVAE, CountsMultiplyAccumulatesOfTheReferenceModel) {
  VQVAEOptions reference;  // 256×256, h 128, 2 res blocks of 32, D 64, strides {4, 2}
  HierarchicalVQVAE model(reference);
  // By hand, output pixels × weights per conv (transposed: input pixels × weights):
  const int64_t res_block_64 = 4096 * (128 * 32 * 9 + 32 * 128), res_block_32 = 1024 * (128 * 32 * 9 + 32 * 128);
  const int64_t bottom_encoder = 16384 * 64 * 3 * 16 + 4096 * 128 * 64 * 16 + 4096 * 128 * 128 * 9 + 2 * res_block_64;
  const int64_t top_encoder = 1024 * 64 * 128 * 16 + 1024 * 128 * 64 * 9 + 2 * res_block_32;
  const int64_t pre_quantize = 1024 * 128 * 64 + 4096 * (128 + 64) * 64;
  const int64_t top_decoder = 1024 * 64 * 128 * 9 + 2 * res_block_32 + 1024 * 128 * 64 * 16;
  const int64_t upsample_top = 1024 * 64 * 64 * 16;
  const int64_t decoder = 4096 * 128 * 128 * 9 + 2 * res_block_64 + 4096 * 128 * 64 * 16 + 16384 * 64 * 3 * 16;
  EXPECT_EQ(model->forward_macs(), bottom_encoder + top_encoder + pre_quantize + top_decoder + upsample_top + decoder);
  EXPECT_EQ(model->forward_macs(), int64_t{3766484992});
}

TEST(VQVAE, RejectsBadOptionsWithAHint) {
  auto bad_size = narrow(30, {4, 2});
  try {
    HierarchicalVQVAE model(bad_size);
    FAIL() << "an image size not divisible by the downsampling was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("multiple of the total downsampling 8"), std::string::npos) << e.what();
  }
  auto bad_stride = narrow(32, {3});
  EXPECT_THROW(HierarchicalVQVAE{bad_stride}, Error);
  auto bad_codes = narrow(32, {2, 2});
  bad_codes.codes = {16, 16, 16};
  EXPECT_THROW(HierarchicalVQVAE{bad_codes}, Error);
  auto zero_codes = narrow(32, {2, 2});
  zero_codes.codes = {0};
  EXPECT_THROW(HierarchicalVQVAE{zero_codes}, Error);
}

TEST(VQVAE, RejectsImagesOfTheWrongShape) {
  HierarchicalVQVAE model(narrow(32, {2, 2}));
  EXPECT_THROW(model->forward(torch::rand({1, 3, 64, 64})), Error);
  EXPECT_THROW(model->forward(torch::rand({1, 1, 32, 32})), Error);
  EXPECT_THROW(model->decode_codes({torch::zeros({1, 16, 16}, torch::kLong)}), Error);
}

TEST(VQVAE, RestoringTheQuantizersUndoesATrainingForwardPass) {
  // What a training loop that skips a batch must call: with the codebook-loss quantizer the
  // codebooks are parameters, which restoring the buffers alone would leave as the batch left them.
  for (const bool ema : {true, false}) {
    torch::manual_seed(0);
    auto options = narrow(16, {2, 2}, 1);
    options.quantizer.ema = ema;
    options.quantizer.dead_code_threshold = 1.0;
    HierarchicalVQVAE model(options);
    model->train();
    std::vector<torch::Tensor> before;
    for (const auto& t : model->parameters()) before.push_back(t.detach().clone());
    for (const auto& t : model->buffers()) before.push_back(t.clone());
    const auto states = model->snapshot_quantizers();
    model->forward(torch::rand({2, 1, 16, 16}) * 2 - 1);
    model->restore_quantizers(states);
    std::vector<torch::Tensor> after;
    for (const auto& t : model->parameters()) after.push_back(t.detach());
    for (const auto& t : model->buffers()) after.push_back(t);
    ASSERT_EQ(before.size(), after.size());
    for (size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(torch::equal(before[i], after[i])) << (ema ? "EMA " : "loss ") << i;
  }
}

}  // namespace
}  // namespace vqvae2
