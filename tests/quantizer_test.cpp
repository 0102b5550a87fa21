#include "vqvae2/models/quantizer.h"

#include "vqvae2/core/precision.h"

#include <gtest/gtest.h>

namespace vqvae2 {
namespace {

class Quantizer : public ::testing::Test {
 protected:
  void SetUp() override { torch::manual_seed(1234); }

  static QuantizerOptions options(int64_t codes, int64_t dim, bool ema) {
    QuantizerOptions o;
    o.codes = codes;
    o.dim = dim;
    o.ema = ema;
    o.init_from_data = false;
    o.dead_code_threshold = 0;
    return o;
  }
};

TEST_F(Quantizer, PicksNearestCodeLikeBruteForce) {
  const auto z = torch::randn({300, 16});
  const auto codebook = torch::randn({50, 16});
  const auto codes = functional::nearest_codes(z, codebook);
  // Brute force: the full [N, K] table of squared distances.
  const auto distances = (z.unsqueeze(1) - codebook.unsqueeze(0)).pow(2).sum(2);
  const auto brute = distances.argmin(1);
  const auto chosen = distances.gather(1, codes.unsqueeze(1)).squeeze(1);
  const auto best = distances.gather(1, brute.unsqueeze(1)).squeeze(1);
  // Same code, or (only on a float tie) one exactly as near.
  EXPECT_TRUE(torch::allclose(chosen, best, /*rtol=*/1e-5, /*atol=*/1e-5));
  EXPECT_GE(codes.eq(brute).sum().item<int64_t>(), 299);
}

TEST_F(Quantizer, StraightThroughCopiesTheGradientUnchanged) {
  const auto z_e = torch::randn({4, 8}, torch::requires_grad());
  const auto z_q = torch::randn({4, 8});
  const auto out = functional::straight_through(z_e, z_q);
  EXPECT_TRUE(torch::allclose(out, z_q, /*rtol=*/0, /*atol=*/1e-6));  // z_e + (z_q - z_e): z_q up to rounding
  const auto upstream = torch::randn({4, 8});
  (out * upstream).sum().backward();
  EXPECT_TRUE(torch::equal(z_e.grad(), upstream));
}

TEST_F(Quantizer, DecoderGradientReachesEncoderOutputThroughTheQuantizer) {
  VectorQuantizerEMA quantizer(options(8, 4, true));
  quantizer->eval();
  const auto z_e = torch::randn({2, 4, 3, 3}, torch::requires_grad());
  const auto out = quantizer->forward(z_e);
  const auto upstream = torch::randn_like(out.z_q);
  (out.z_q * upstream).sum().backward();
  EXPECT_TRUE(torch::allclose(z_e.grad(), upstream));
}

TEST_F(Quantizer, CodebookLossReachesOnlyTheCodebook) {
  VectorQuantizer quantizer(options(8, 4, false));
  const auto z_e = torch::randn({2, 4, 3, 3}, torch::requires_grad());
  const auto out = quantizer->forward(z_e);
  out.codebook_loss.backward();
  ASSERT_TRUE(quantizer->codebook().grad().defined());
  EXPECT_GT(quantizer->codebook().grad().abs().sum().item<double>(), 0);
  EXPECT_FALSE(z_e.grad().defined() && z_e.grad().abs().sum().item<double>() > 0);
}

TEST_F(Quantizer, CommitmentLossReachesOnlyTheEncoderOutput) {
  VectorQuantizer quantizer(options(8, 4, false));
  const auto z_e = torch::randn({2, 4, 3, 3}, torch::requires_grad());
  const auto out = quantizer->forward(z_e);
  out.commitment_loss.backward();
  ASSERT_TRUE(z_e.grad().defined());
  EXPECT_GT(z_e.grad().abs().sum().item<double>(), 0);
  EXPECT_FALSE(quantizer->codebook().grad().defined() && quantizer->codebook().grad().abs().sum().item<double>() > 0);
}

TEST_F(Quantizer, LossesHaveTheirFormulas) {
  auto o = options(8, 4, false);
  o.beta = 0.25;
  VectorQuantizer quantizer(o);
  const auto z_e = torch::randn({2, 4, 3, 3});
  const auto out = quantizer->forward(z_e);
  const auto e = quantizer->embed(out.codes);  // [B, D, H, W]
  const double mse = (z_e - e).pow(2).mean().item<double>();
  EXPECT_NEAR(out.codebook_loss.item<double>(), mse, 1e-6);
  EXPECT_NEAR(out.commitment_loss.item<double>(), 0.25 * mse, 1e-6);
}

TEST_F(Quantizer, EmaStepEqualsTheFormulasComputedByHand) {
  const int64_t K = 3, D = 2;
  auto o = options(K, D, true);
  o.decay = 0.9;
  o.epsilon = 1e-3;
  VectorQuantizerEMA quantizer(o);
  // Codebook e: three well-separated points; N and m chosen by hand.
  torch::NoGradGuard no_grad;
  auto e = const_cast<torch::Tensor&>(quantizer->codebook());
  auto m = const_cast<torch::Tensor&>(quantizer->embed_sum());
  auto N = const_cast<torch::Tensor&>(quantizer->cluster_size());
  e.copy_(torch::tensor({0.0f, 0.0f, 10.0f, 0.0f, 0.0f, 10.0f}).reshape({K, D}));
  N.copy_(torch::tensor({2.0f, 1.0f, 0.5f}));
  m.copy_(torch::tensor({0.0f, 0.0f, 10.0f, 0.0f, 0.0f, 5.0f}).reshape({K, D}));
  // Four vectors: three near e_0, one near e_1, none near e_2. Layout [B=1, D, H=1, W=4].
  const std::vector<std::array<double, 2>> z = {{1, 0}, {0, 1}, {-1, 1}, {9, 1}};
  auto z_e = torch::empty({1, D, 1, 4});
  for (int64_t i = 0; i < 4; ++i) {
    z_e[0][0][0][i] = z[i][0];
    z_e[0][1][0][i] = z[i][1];
  }
  quantizer->train();
  const auto out = quantizer->forward(z_e);
  EXPECT_TRUE(torch::equal(out.codes.reshape(-1), torch::tensor({0, 0, 0, 1}, torch::kLong)));

  // By hand, in double: n = (3, 1, 0); Σz_0 = (0, 2), Σz_1 = (9, 1), Σz_2 = 0.
  const double g = 0.9, eps = 1e-3;
  const double n[3] = {3, 1, 0};
  const double sum[3][2] = {{0, 2}, {9, 1}, {0, 0}};
  const double N0[3] = {2, 1, 0.5};
  const double m0[3][2] = {{0, 0}, {10, 0}, {0, 5}};
  double Nn[3], mn[3][2], total = 0;
  for (int k = 0; k < 3; ++k) {
    Nn[k] = g * N0[k] + (1 - g) * n[k];
    total += Nn[k];
    for (int d = 0; d < 2; ++d) mn[k][d] = g * m0[k][d] + (1 - g) * sum[k][d];
  }
  for (int k = 0; k < 3; ++k) {
    const double smoothed = (Nn[k] + eps) / (total + K * eps) * total;
    EXPECT_NEAR(quantizer->cluster_size()[k].item<double>(), Nn[k], 1e-6);
    for (int d = 0; d < 2; ++d) {
      EXPECT_NEAR(quantizer->embed_sum()[k][d].item<double>(), mn[k][d], 1e-5);
      EXPECT_NEAR(quantizer->codebook()[k][d].item<double>(), mn[k][d] / smoothed, 1e-5);
    }
  }
  EXPECT_EQ(out.codebook_loss.item<double>(), 0.0);
}

TEST_F(Quantizer, EvalModeLeavesTheCodebookAlone) {
  VectorQuantizerEMA quantizer(options(16, 4, true));
  quantizer->eval();
  const auto before = quantizer->codebook().clone();
  quantizer->forward(torch::randn({2, 4, 5, 5}));
  EXPECT_TRUE(torch::equal(before, quantizer->codebook()));
}

TEST_F(Quantizer, ReportsPerplexityAndUsage) {
  // Counts 2, 2, 0, 0 out of K = 4: p = (1/2, 1/2), perplexity 2, usage 1/2.
  EXPECT_NEAR(functional::perplexity(torch::tensor({2.0f, 2.0f, 0.0f, 0.0f})).item<double>(), 2.0, 1e-6);
  EXPECT_NEAR(functional::perplexity(torch::tensor({5.0f, 0.0f, 0.0f})).item<double>(), 1.0, 1e-6);
  const auto counts = functional::code_counts(torch::tensor({0, 3, 3, 1}, torch::kLong), 5);
  EXPECT_TRUE(torch::equal(counts, torch::tensor({1.0f, 1.0f, 0.0f, 2.0f, 0.0f})));
  VectorQuantizerEMA quantizer(options(4, 2, true));
  quantizer->eval();
  const auto out = quantizer->forward(torch::randn({1, 2, 1, 1}));
  EXPECT_NEAR(out.usage.item<double>(), 0.25, 1e-6);  // one vector uses one of four codes
  EXPECT_NEAR(out.perplexity.item<double>(), 1.0, 1e-6);
}

TEST_F(Quantizer, RestartsDeadCodesOnEncoderOutputs) {
  auto o = options(8, 3, true);
  o.dead_code_threshold = 1.0;
  VectorQuantizerEMA quantizer(o);
  torch::NoGradGuard no_grad;
  // Every code far away except code 0: all vectors go to code 0, codes 1..7 are dead.
  auto e = const_cast<torch::Tensor&>(quantizer->codebook());
  e.fill_(100);
  e[0].zero_();
  const auto z_e = torch::randn({1, 3, 4, 4}) * 0.1;
  quantizer->train();
  quantizer->forward(z_e);
  EXPECT_EQ(quantizer->restarted_codes(), 7);
  const auto z = functional::flatten_channels_last(z_e);  // [16, 3]
  for (int64_t k = 1; k < 8; ++k) {
    const auto distance = (z - quantizer->codebook()[k]).pow(2).sum(1).min().item<double>();
    EXPECT_LT(distance, 1e-10) << "code " << k << " was not moved onto an encoder output";
  }
}

TEST_F(Quantizer, InitialisesTheCodebookFromTheFirstBatch) {
  auto o = options(6, 2, false);
  o.init_from_data = true;
  VectorQuantizer quantizer(o);
  const auto z_e = torch::randn({1, 2, 3, 3}) + 50;  // far from the initial codebook
  quantizer->train();
  const auto out = quantizer->forward(z_e);
  const auto z = functional::flatten_channels_last(z_e);
  for (int64_t k = 0; k < 6; ++k) {
    EXPECT_LT((z - quantizer->codebook()[k].detach()).pow(2).sum(1).min().item<double>(), 1e-10);
  }
  EXPECT_LT(out.commitment_loss.item<double>(), 10.0);
}

TEST_F(Quantizer, ARestartedCodeHasTimeToWinBeforeItCountsAsDeadAgain) {
  // Codes 1..7 are dead and restarted onto encoder outputs; then every batch lies exactly on code 0.
  // A restart that left N_i at the threshold would be undone by the first empty batch and repeated
  // at every step; at the mean count N_i takes hundreds of empty batches to fall below it.
  auto o = options(8, 3, true);
  o.dead_code_threshold = 1.0;
  VectorQuantizerEMA quantizer(o);
  torch::NoGradGuard no_grad;
  auto e = const_cast<torch::Tensor&>(quantizer->codebook());
  auto N = const_cast<torch::Tensor&>(quantizer->cluster_size());
  e.fill_(100);
  e[0].zero_();
  N.fill_(0.5);
  N[0] = 20.5;  // mean count 3
  quantizer->train();
  quantizer->forward(torch::randn({1, 3, 4, 4}) + 5);  // far from code 0: they pick restarted codes
  ASSERT_EQ(quantizer->restarted_codes(), 7);
  const auto restarted_at = quantizer->cluster_size().slice(0, 1).clone();
  EXPECT_GT(restarted_at.min().item<float>(), 2.0f) << "restarted codes start near the threshold";
  for (int step = 0; step < 50; ++step) {
    const auto on_code_0 = quantizer->codebook()[0].clone().view({1, 3, 1, 1}).expand({1, 3, 4, 4}).contiguous();
    quantizer->forward(on_code_0);
  }
  EXPECT_EQ(quantizer->restarted_codes(), 7) << "codes were restarted again after a few empty batches";
}

TEST_F(Quantizer, RestartsGoToTheVectorsTheCodebookServesWorst) {
  // 14 vectors lie exactly on code 0; two lie far from every code. The three dead codes must go to
  // those two (a uniform pick would land on the 14 well-served ones nearly every time).
  auto o = options(4, 3, true);
  o.dead_code_threshold = 1.0;
  VectorQuantizerEMA quantizer(o);
  torch::NoGradGuard no_grad;
  auto e = const_cast<torch::Tensor&>(quantizer->codebook());
  auto m = const_cast<torch::Tensor&>(quantizer->embed_sum());
  auto N = const_cast<torch::Tensor&>(quantizer->cluster_size());
  e.fill_(100);
  e[0].zero_();
  m.copy_(e);
  N.fill_(0.5);
  N[0] = 1000;  // code 0 barely moves
  auto z_e = torch::zeros({1, 3, 4, 4});
  z_e[0].select(1, 3).select(1, 2).fill_(5);
  z_e[0].select(1, 3).select(1, 3).fill_(-5);
  quantizer->train();
  quantizer->forward(z_e);
  ASSERT_EQ(quantizer->restarted_codes(), 3);
  for (int64_t k = 1; k < 4; ++k) {
    EXPECT_NEAR(quantizer->codebook()[k].abs().min().item<double>(), 5.0, 1e-4) << "code " << k;
  }
}

TEST_F(Quantizer, InitialisationPicksDistinctEncoderOutputs) {
  // 16 codes from 20 vectors: drawn with replacement, two codes would almost surely coincide (and one
  // of them could never win a vector).
  for (const bool ema : {true, false}) {
    auto o = options(16, 2, ema);
    o.init_from_data = true;
    auto quantizer = make_quantizer(o);
    quantizer->train();
    quantizer->forward(torch::randn({1, 2, 4, 5}));
    const auto codebook = quantizer->codebook().detach();
    const auto distances = (codebook.unsqueeze(1) - codebook.unsqueeze(0)).pow(2).sum(2) + torch::eye(16) * 1e9;
    EXPECT_GT(distances.min().item<double>(), 1e-12) << (ema ? "EMA" : "codebook loss");
  }
}

TEST_F(Quantizer, RestartsCanBeTurnedOffForTheLastSteps) {
  auto o = options(8, 3, false);
  o.dead_code_threshold = 1.0;
  VectorQuantizer quantizer(o);
  quantizer->set_restarts_enabled(false);
  {
    torch::NoGradGuard no_grad;
    quantizer->codebook().fill_(100);
  }
  quantizer->train();
  quantizer->forward(torch::randn({1, 3, 4, 4}));
  EXPECT_EQ(quantizer->restarted_codes(), 0);
  quantizer->set_restarts_enabled(true);
  quantizer->forward(torch::randn({1, 3, 4, 4}));
  EXPECT_GT(quantizer->restarted_codes(), 0);
}

TEST_F(Quantizer, ABatchWithANaNLeavesEveryCodebookAlone) {
  // The codebook-loss variant's codebook is a parameter, which a skipped batch's restore of the
  // buffers would not put back: the forward pass itself must not write NaNs into it.
  for (const bool ema : {true, false}) {
    auto o = options(8, 3, ema);
    o.init_from_data = true;
    o.dead_code_threshold = 1.0;
    auto quantizer = make_quantizer(o);
    quantizer->train();
    const auto before = quantizer->snapshot();
    auto z_e = torch::randn({2, 3, 4, 4});
    z_e[1][2][3][0] = std::numeric_limits<float>::quiet_NaN();
    quantizer->forward(z_e);
    const auto after = quantizer->snapshot();
    ASSERT_EQ(before.tensors.size(), after.tensors.size());
    for (size_t i = 0; i < before.tensors.size(); ++i) {
      EXPECT_TRUE(torch::equal(before.tensors[i], after.tensors[i])) << (ema ? "EMA" : "codebook loss") << " tensor " << i;
    }
    // The next finite batch initialises the codebook as the first batch would have.
    quantizer->forward(torch::randn({2, 3, 4, 4}) + 50);
    EXPECT_GT(quantizer->codebook().min().item<float>(), 40.0f);
  }
}

TEST_F(Quantizer, RestoreUndoesEverythingAForwardPassWrote) {
  for (const bool ema : {true, false}) {
    auto o = options(8, 3, ema);
    o.init_from_data = true;
    o.dead_code_threshold = 1.0;
    auto quantizer = make_quantizer(o);
    quantizer->train();
    const auto codebook = quantizer->codebook().detach().clone();
    const auto state = quantizer->snapshot();
    quantizer->forward(torch::randn({2, 3, 4, 4}) + 10);  // initialises, updates, restarts
    ASSERT_FALSE(torch::equal(codebook, quantizer->codebook().detach()));
    quantizer->restore(state);
    EXPECT_TRUE(torch::equal(codebook, quantizer->codebook().detach())) << (ema ? "EMA" : "codebook loss");
    const auto again = quantizer->snapshot();
    for (size_t i = 0; i < state.tensors.size(); ++i) EXPECT_TRUE(torch::equal(state.tensors[i], again.tensors[i]));
  }
}

TEST_F(Quantizer, EmbedInvertsQuantisation) {
  VectorQuantizerEMA quantizer(options(32, 4, true));
  quantizer->eval();
  const auto z_e = torch::randn({3, 4, 5, 6});
  const auto out = quantizer->forward(z_e);
  EXPECT_EQ(out.codes.sizes(), (std::vector<int64_t>{3, 5, 6}));
  EXPECT_TRUE(torch::allclose(quantizer->embed(out.codes), out.z_q));
}

TEST_F(Quantizer, RejectsBadShapesAndCodes) {
  VectorQuantizerEMA quantizer(options(8, 4, true));
  EXPECT_THROW(quantizer->forward(torch::randn({2, 5, 3, 3})), std::exception);
  EXPECT_THROW(quantizer->embed(torch::full({1, 2, 2}, 8, torch::kLong)), std::exception);
  auto bad = options(0, 4, true);
  EXPECT_THROW(VectorQuantizerEMA{bad}, std::exception);
}

TEST_F(Quantizer, StaysFp32UnderBf16AutocastAndPicksTheCodesOfFp32) {
  // An encoder under bf16 autocast hands over bf16 z_e; the same values in fp32 must give the same
  // codes, losses and EMA step, all in fp32.
  auto o = options(64, 16, true);
  o.init_from_data = true;
  VectorQuantizerEMA fp32(o), bf16(o);
  {
    torch::NoGradGuard no_grad;
    bf16->codebook().copy_(fp32->codebook());
    bf16->embed_sum().copy_(fp32->embed_sum());
  }
  const auto z_e = (torch::randn({4, 16, 6, 6}) * 3).to(torch::kBFloat16);
  torch::manual_seed(7);  // data initialisation draws from the batch: the same draw for both
  const auto expected = fp32->forward(z_e.to(torch::kFloat));
  torch::manual_seed(7);
  QuantizerOutput out;
  {
    const AutocastGuard autocast(Precision::kBF16, torch::kCPU);
    out = bf16->forward(z_e);
    EXPECT_TRUE(autocast_enabled(torch::kCPU));  // the quantizer's own fp32 scope has ended
  }
  EXPECT_TRUE(torch::equal(out.codes, expected.codes));
  for (const auto& t : {out.z_q, out.commitment_loss, out.codebook_loss, out.perplexity, bf16->codebook(),
                        bf16->embed_sum(), bf16->cluster_size()}) {
    EXPECT_EQ(t.scalar_type(), torch::kFloat);
  }
  EXPECT_TRUE(torch::equal(out.z_q, expected.z_q));
  EXPECT_TRUE(torch::equal(out.commitment_loss, expected.commitment_loss));
  EXPECT_TRUE(torch::equal(bf16->codebook(), fp32->codebook()));
  EXPECT_TRUE(torch::equal(bf16->cluster_size(), fp32->cluster_size()));

  // Left to autocast, the distance product itself would run in bf16.
  const AutocastGuard autocast(Precision::kBF16, torch::kCPU);
  const auto z = functional::flatten_channels_last(z_e.to(torch::kFloat));
  EXPECT_EQ(torch::addmm(fp32->codebook().pow(2).sum(1).unsqueeze(0), z, fp32->codebook().t()).scalar_type(),
            torch::kBFloat16);
}

}  // namespace
}  // namespace vqvae2
