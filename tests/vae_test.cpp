#include "vqvae2/models/vae.h"

#include "vqvae2/core/error.h"
#include "vqvae2/data/data.h"
#include "vqvae2/data/image.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>

namespace vqvae2 {
namespace {

using ::testing::HasSubstr;

VAEOptions tiny(int64_t size = 16, int64_t stride = 4, int64_t channels = 1) {
  VAEOptions o;
  o.image_size = size;
  o.channels = channels;
  o.hidden = 16;
  o.res_blocks = 1;
  o.res_channels = 8;
  o.stride = stride;
  o.latent_channels = 4;
  return o;
}

// Images on the 8-bit grid, as to_model_range gives them.
torch::Tensor random_images(int64_t batch, int64_t channels, int64_t size) {
  return to_model_range(torch::randint(0, 256, {batch, channels, size, size}).to(torch::kUInt8));
}

// The message of the vqvae2::Error `f` throws ("" if it throws none).
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

double sigmoid(double v) { return 1.0 / (1.0 + std::exp(-v)); }

// ---- functional ---------------------------------------------------------------------------------

TEST(VAEFunctional, KLHasTheClosedForm) {
  const auto mu = torch::tensor({0.0, 0.5, -1.0, 2.0}, torch::kDouble);
  const auto sigma = torch::tensor({1.0, 2.0, 0.1, 1.0}, torch::kDouble);
  const auto kl = functional::gaussian_kl(mu, (sigma * sigma).log());
  // ½(μ² + σ² − 1 − log σ²) by hand.
  const double expected[] = {0.0, 0.5 * (0.25 + 4.0 - 1.0 - std::log(4.0)), 0.5 * (1.0 + 0.01 - 1.0 - std::log(0.01)),
                             2.0};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(kl[i].item<double>(), expected[i], 1e-12) << "element " << i;
}

TEST(VAEFunctional, KLMatchesAMonteCarloEstimate) {
  torch::manual_seed(7);
  const auto mu = torch::tensor({0.0, 0.7, -1.5, 0.3}, torch::kDouble);
  const auto log_var = torch::tensor({0.0, -1.0, 0.8, -3.0}, torch::kDouble);
  const int64_t n = 400000;
  const auto eps = torch::randn({n, 4}, torch::kDouble);
  const auto z = functional::reparameterize(mu.expand({n, 4}), log_var.expand({n, 4}), eps);
  // log q(z) − log p(z) = −½ε² − ½ log σ² + ½ z²  (the −½ log 2π terms cancel).
  const auto log_ratio = -0.5 * eps.pow(2) - 0.5 * log_var + 0.5 * z.pow(2);
  const auto estimate = log_ratio.mean(0);
  const auto standard_error = log_ratio.std(0) / std::sqrt(static_cast<double>(n));
  const auto closed = functional::gaussian_kl(mu, log_var);
  for (int i = 0; i < 4; ++i) {
    EXPECT_NEAR(estimate[i].item<double>(), closed[i].item<double>(), 5 * standard_error[i].item<double>() + 1e-9)
        << "dimension " << i;
  }
}

TEST(VAEFunctional, GradientsReachMuAndLogVarThroughTheSample) {
  const auto mu = torch::tensor({0.3, -0.2}, torch::requires_grad());
  const auto log_var = torch::tensor({-0.5, 0.4}, torch::requires_grad());
  const auto noise = torch::tensor({1.5, -0.7});
  const auto weights = torch::tensor({2.0, -3.0});
  (functional::reparameterize(mu, log_var, noise) * weights).sum().backward();
  // L = Σ w (μ + e^{½ log σ²} ε):  ∂L/∂μ = w,  ∂L/∂log σ² = w ε ½ e^{½ log σ²}.
  EXPECT_TRUE(torch::allclose(mu.grad(), weights));
  const auto expected = weights * noise * 0.5 * (0.5 * log_var.detach()).exp();
  EXPECT_TRUE(torch::allclose(log_var.grad(), expected, 1e-6, 1e-7));
  EXPECT_GT(log_var.grad().abs().min().item<float>(), 0);

  // The KL's own gradients: ∂KL/∂μ = μ, ∂KL/∂log σ² = ½(σ² − 1).
  mu.mutable_grad().zero_();
  log_var.mutable_grad().zero_();
  functional::gaussian_kl(mu, log_var).sum().backward();
  EXPECT_TRUE(torch::allclose(mu.grad(), mu.detach()));
  EXPECT_TRUE(torch::allclose(log_var.grad(), 0.5 * (log_var.detach().exp() - 1)));
}

TEST(VAEFunctional, ReparameterizeRejectsMismatchedShapes) {
  const auto message = error_of([] {
    functional::reparameterize(torch::zeros({2, 3}), torch::zeros({2, 3}), torch::zeros({3}));
  });
  EXPECT_THAT(message, HasSubstr("mu, log_var and noise of one shape"));
  EXPECT_THAT(message, HasSubstr("[3]"));
}

struct LogisticCase {
  double mean, log_scale;
};

class DiscretisedLogistic : public ::testing::TestWithParam<LogisticCase> {};

TEST_P(DiscretisedLogistic, The256ProbabilitiesOfAPixelSumToOne) {
  const auto [mean, log_scale] = GetParam();
  const auto pixels = torch::arange(256).to(torch::kUInt8);
  for (const auto dtype : {torch::kFloat, torch::kDouble}) {
    const auto log_p = functional::discretized_logistic_log_prob(pixels, torch::full({256}, mean, dtype),
                                                                 torch::full({256}, log_scale, dtype));
    ASSERT_EQ(log_p.sizes(), (std::vector<int64_t>{256}));
    EXPECT_TRUE(torch::isfinite(log_p).all().item<bool>()) << "mean " << mean << " log-scale " << log_scale;
    EXPECT_LE(log_p.max().item<double>(), 1e-6);
    const double total = log_p.to(torch::kDouble).exp().sum().item<double>();
    EXPECT_NEAR(total, 1.0, dtype == torch::kFloat ? 2e-5 : 1e-10) << "mean " << mean << " log-scale " << log_scale;
  }
}

INSTANTIATE_TEST_SUITE_P(MeansAndScales, DiscretisedLogistic,
                         ::testing::Values(LogisticCase{0.0, 0.0}, LogisticCase{0.0, -7.0}, LogisticCase{0.3, -4.0},
                                           LogisticCase{-1.0, -3.0}, LogisticCase{1.0, -7.0}, LogisticCase{0.999, -5.0},
                                           LogisticCase{-5.0, -1.0}, LogisticCase{5.0, -2.0}, LogisticCase{40.0, -7.0},
                                           LogisticCase{0.2, 3.0}, LogisticCase{0.0, 7.0},
                                           LogisticCase{0.1, -30.0},   // clamped to −7
                                           LogisticCase{0.1, 30.0}));  // clamped to 7

TEST(VAEFunctional, DiscretisedLogisticIsTheDifferenceOfSigmoids) {
  const double m = 0.1, s = 0.05;
  for (const int k : {0, 1, 100, 140, 200, 254, 255}) {
    const double x = k / 127.5 - 1.0;
    const double a = (x + 1.0 / 255 - m) / s, b = (x - 1.0 / 255 - m) / s;
    // σ(a) − σ(b), taken on the side of the mean where both terms are small so the reference itself
    // loses nothing to cancellation: above the mean it is σ(−b) − σ(−a).
    const double p = k == 0     ? sigmoid(a)
                     : k == 255 ? sigmoid(-b)
                     : x > m    ? sigmoid(-b) - sigmoid(-a)
                                : sigmoid(a) - sigmoid(b);
    const auto log_p = functional::discretized_logistic_log_prob(torch::tensor({k}), torch::tensor({m}, torch::kDouble),
                                                                 torch::tensor({std::log(s)}, torch::kDouble));
    EXPECT_NEAR(log_p.item<double>(), std::log(p), 1e-9) << "pixel " << k;
  }
}

TEST(VAEFunctional, DiscretisedLogisticStaysFiniteFarInTheTails) {
  // Mass 1e-900 or so: σ(a) − σ(b) is 0 in any float, the log-space form is not.
  const auto mean = torch::tensor({1.0f, 1.0f, -1.0f}, torch::requires_grad());
  const auto log_scale = torch::full({3}, -7.0f, torch::requires_grad());
  const auto log_p = functional::discretized_logistic_log_prob(torch::tensor({0, 10, 250}), mean, log_scale);
  EXPECT_TRUE(torch::isfinite(log_p).all().item<bool>());
  EXPECT_LT(log_p.max().item<float>(), -1000);
  log_p.sum().backward();
  EXPECT_TRUE(torch::isfinite(mean.grad()).all().item<bool>());
  EXPECT_TRUE(torch::isfinite(log_scale.grad()).all().item<bool>());
}

TEST(VAEFunctional, DiscretisedLogisticRejectsValuesThatAreNotPixels) {
  const auto mean = torch::zeros({2});
  const auto log_scale = torch::zeros({2});
  for (const auto& bad : {torch::tensor({0.5, 3.0}), torch::tensor({-1.0, 3.0}), torch::tensor({256.0, 3.0})}) {
    EXPECT_THAT(error_of([&] { functional::discretized_logistic_log_prob(bad, mean, log_scale); }),
                HasSubstr("pixels must be integers in [0, 255]"));
  }
}

TEST(VAEFunctional, BitsPerDimOnAHandComputedCase) {
  // 8 bits for each of 3·32·32 dimensions: 8 · 3072 · ln 2 nats.
  const double nats = 8.0 * 3072 * std::log(2.0);
  EXPECT_NEAR(functional::bits_per_dim(nats, 3072), 8.0, 1e-12);
  const auto t = functional::bits_per_dim(torch::tensor({nats, nats / 4}, torch::kDouble), 3072);
  EXPECT_NEAR(t[0].item<double>(), 8.0, 1e-12);
  EXPECT_NEAR(t[1].item<double>(), 2.0, 1e-12);
  // One grey 2×2 image, every pixel with probability 1/16: 4 bits/dim.
  EXPECT_NEAR(functional::bits_per_dim(4 * std::log(16.0), 4), 4.0, 1e-12);
}

TEST(VAEFunctional, KLWeightRampsLinearlyOverTheWarmUp) {
  EXPECT_EQ(functional::kl_weight(0, 100), 0.0);
  EXPECT_EQ(functional::kl_weight(25, 100), 0.25);
  EXPECT_EQ(functional::kl_weight(100, 100), 1.0);
  EXPECT_EQ(functional::kl_weight(5000, 100), 1.0);
  EXPECT_EQ(functional::kl_weight(-3, 100), 0.0);
  EXPECT_EQ(functional::kl_weight(0, 0), 1.0);  // no warm-up
}

TEST(VAEFunctional, FreeBitsClampEachGroupFromBelowAndStopItsGradient) {
  const auto kl = torch::tensor({0.001, 0.5, 2.0}, torch::requires_grad());
  const auto term = functional::free_bits_kl(kl, 0.1);
  EXPECT_NEAR(term.item<float>(), 0.1 + 0.5 + 2.0, 1e-6);
  term.backward();
  EXPECT_TRUE(torch::equal(kl.grad(), torch::tensor({0.0f, 1.0f, 1.0f})));
  EXPECT_EQ(functional::active_dims(kl.detach()), 2);
  EXPECT_EQ(functional::active_dims(kl.detach(), 1.0), 1);
}

// ---- the model ----------------------------------------------------------------------------------

struct ShapeCase {
  int64_t size, stride, channels;
};

class VAEShapes : public ::testing::TestWithParam<ShapeCase> {};

TEST_P(VAEShapes, OutputsHaveTheirShapes) {
  torch::manual_seed(0);
  const auto& c = GetParam();
  GaussianVAE model(tiny(c.size, c.stride, c.channels));
  const int64_t B = 3, Z = 4, side = c.size / c.stride;
  const auto x = random_images(B, c.channels, c.size);
  const auto out = model->forward(x);
  const std::vector<int64_t> latent{B, Z, side, side};
  EXPECT_EQ(out.reconstruction.sizes(), x.sizes());
  EXPECT_EQ(out.mu.sizes(), latent);
  EXPECT_EQ(out.log_var.sizes(), latent);
  EXPECT_EQ(out.z.sizes(), latent);
  EXPECT_EQ(out.kl.sizes(), (std::vector<int64_t>{B}));
  EXPECT_EQ(out.nll.sizes(), (std::vector<int64_t>{B}));
  EXPECT_EQ(out.elbo_nats.sizes(), (std::vector<int64_t>{B}));
  EXPECT_EQ(out.kl_per_dim.sizes(), (std::vector<int64_t>{Z}));
  EXPECT_EQ(out.loss.dim(), 0);
  EXPECT_EQ(out.bits_per_dim.dim(), 0);
  EXPECT_LE(out.reconstruction.abs().max().item<float>(), 1.0f);
  EXPECT_EQ(model->decode(out.z).sizes(), x.sizes());
  EXPECT_EQ(model->options().latent_size(), side);
  EXPECT_EQ(model->log_scale().sizes(), (std::vector<int64_t>{c.channels}));
}

INSTANTIATE_TEST_SUITE_P(SizesAndStrides, VAEShapes,
                         ::testing::Values(ShapeCase{16, 4, 1}, ShapeCase{32, 4, 3}, ShapeCase{16, 2, 3},
                                           ShapeCase{32, 8, 1}, ShapeCase{8, 8, 1}));

TEST(VAE, ELBOIsKLPlusNLLAndBitsPerDimIsItsScaledMean) {
  torch::manual_seed(1);
  GaussianVAE model(tiny());
  const auto out = model->forward(random_images(4, 1, 16));
  EXPECT_TRUE(torch::allclose(out.elbo_nats, out.kl + out.nll));
  EXPECT_GT(out.kl.min().item<float>(), 0);
  EXPECT_GT(out.nll.min().item<float>(), 0);
  const double dims = 1 * 16 * 16;
  EXPECT_NEAR(out.bits_per_dim.item<double>(), out.elbo_nats.mean().item<double>() / (std::log(2.0) * dims), 1e-5);
  // kl_per_dim is per latent unit: times the 4×4 units of a channel, summed over channels, it is the mean KL.
  EXPECT_NEAR(out.kl_per_dim.sum().item<double>() * 16, out.kl.mean().item<double>(), 1e-3);
  // Without warm-up or free bits the objective is −ELBO per dimension.
  EXPECT_NEAR(out.loss.item<double>(), out.elbo_nats.mean().item<double>() / dims, 1e-6);
}

TEST(VAE, NLLIsTheDiscretisedLikelihoodOfThePixels) {
  torch::manual_seed(2);
  GaussianVAE model(tiny());
  const auto pixels = torch::randint(0, 256, {2, 1, 16, 16}).to(torch::kUInt8);
  const auto out = model->forward(to_model_range(pixels));
  // A fresh decoder's locations lie inside (-1, 1), where the reconstruction is the location itself.
  ASSERT_TRUE(out.reconstruction.abs().lt(1).all().item<bool>());
  const auto log_p =
      functional::discretized_logistic_log_prob(pixels, out.reconstruction, model->log_scale().view({1, 1, 1, 1}));
  EXPECT_TRUE(torch::allclose(out.nll, -log_p.flatten(1).sum(1), 1e-5, 1e-3));
}

TEST(VAE, AnnealingAndFreeBitsChangeTheLossButNotTheELBO) {
  torch::manual_seed(4);
  const auto x = random_images(4, 1, 16);
  auto plain_options = tiny();
  GaussianVAE plain(plain_options);
  auto run = [&](const VAEOptions& o, int64_t step) {
    GaussianVAE model(o);
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < model->parameters().size(); ++i) model->parameters()[i].copy_(plain->parameters()[i]);
    torch::manual_seed(5);
    return model->forward(x, step);
  };
  const auto base = run(plain_options, 0);
  const double dims = 16 * 16;

  auto annealed = plain_options;
  annealed.kl_warmup_steps = 100;
  const auto at_start = run(annealed, 0);
  const auto halfway = run(annealed, 50);
  const auto after = run(annealed, 100);

  auto free = plain_options;
  free.free_bits = 5.0;  // far above what any channel of a fresh model carries
  const auto clamped = run(free, 0);

  for (const auto* out : {&at_start, &halfway, &after, &clamped}) {
    EXPECT_TRUE(torch::equal(out->elbo_nats, base.elbo_nats));
    EXPECT_TRUE(torch::equal(out->kl, base.kl));
    EXPECT_TRUE(torch::equal(out->bits_per_dim, base.bits_per_dim));
  }
  const double nll = base.nll.mean().item<double>(), kl = base.kl.mean().item<double>();
  EXPECT_NEAR(at_start.loss.item<double>(), nll / dims, 1e-6);              // β_KL = 0
  EXPECT_NEAR(halfway.loss.item<double>(), (nll + 0.5 * kl) / dims, 1e-6);  // β_KL = ½
  EXPECT_NEAR(after.loss.item<double>(), (nll + kl) / dims, 1e-6);          // β_KL = 1
  EXPECT_NE(at_start.loss.item<double>(), after.loss.item<double>());
  // Every channel below λ = 5: its KL term is 4·4 units · 5 nats, whatever the encoder does.
  ASSERT_LT(base.kl_per_dim.max().item<double>(), 5.0);
  EXPECT_NEAR(clamped.loss.item<double>(), (nll + 4 * 16 * 5.0) / dims, 1e-5);
}

TEST(VAE, GradientsReachEveryParameterAndTheNLLReachesTheEncoderThroughTheSample) {
  torch::manual_seed(6);
  GaussianVAE model(tiny());
  const auto x = random_images(2, 1, 16);
  model->forward(x).loss.backward();
  for (const auto& p : model->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0) << p.key();
  }
  // The reconstruction term alone reaches μ and log σ², hence the encoder, only through z = μ + σ·ε.
  model->zero_grad();
  model->forward(x).nll.sum().backward();
  for (const auto& p : model->named_parameters()) {
    if (p.key().rfind("encoder", 0) == 0 || p.key().rfind("to_posterior", 0) == 0) {
      EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0) << p.key();
    }
  }
}

TEST(VAE, SamplesAreImagesThatDependOnlyOnTheSeed) {
  torch::manual_seed(8);
  GaussianVAE model(tiny(16, 4, 3));
  model->eval();
  const auto a = model->sample(3, 42);
  const auto b = model->sample(3, 42);
  const auto c = model->sample(3, 43);
  EXPECT_EQ(a.sizes(), (std::vector<int64_t>{3, 3, 16, 16}));
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_FALSE(torch::equal(a, c));
  EXPECT_LE(a.abs().max().item<float>(), 1.0f);
  EXPECT_FALSE(a.requires_grad());
  EXPECT_THAT(error_of([&] { model->sample(0, 1); }), HasSubstr("at least 1"));
}

TEST(VAE, ForwardMacsScaleWithTheImageArea) {
  GaussianVAE small(tiny(16, 4, 3));
  GaussianVAE large(tiny(32, 4, 3));
  EXPECT_GT(small->forward_macs(), 0);
  EXPECT_EQ(large->forward_macs(), 4 * small->forward_macs());
  // The 1×1 posterior head alone: 4·4 positions × 16·(2·4) weights.
  auto no_blocks = tiny(16, 4, 1);
  no_blocks.res_blocks = 0;
  GaussianVAE plain(no_blocks);
  // Encoder 1→8 (4×4/2) at 8×8, 8→16 (4×4/2) at 4×4, 16→16 (3×3) at 4×4; head 16→8 at 4×4;
  // decoder 4→16 (3×3) at 4×4, up 16→8 from 4×4, up 8→1 from 8×8.
  const int64_t expected = 64 * 1 * 8 * 16 + 16 * 8 * 16 * 16 + 16 * 16 * 16 * 9 + 16 * 16 * 8 + 16 * 4 * 16 * 9 +
                           16 * 16 * 8 * 16 + 64 * 8 * 1 * 16;
  EXPECT_EQ(plain->forward_macs(), expected);
}

TEST(VAE, OptionsRoundTripThroughJSON) {
  auto o = tiny(32, 8, 3);
  o.kl_warmup_steps = 500;
  o.free_bits = 0.25;
  const nlohmann::json j = o;
  const auto back = j.get<VAEOptions>();
  EXPECT_EQ(nlohmann::json(back), j);
  // Missing fields take their defaults.
  const auto partial = nlohmann::json{{"image_size", 64}}.get<VAEOptions>();
  EXPECT_EQ(partial.image_size, 64);
  EXPECT_EQ(partial.latent_channels, VAEOptions{}.latent_channels);
}

TEST(VAE, BadOptionsGiveClearErrors) {
  auto with = [](const std::function<void(VAEOptions&)>& change) {
    auto o = tiny();
    change(o);
    return error_of([&] { GaussianVAE model(o); });
  };
  EXPECT_THAT(with([](VAEOptions& o) { o.stride = 3; }),
              HasSubstr("stride must be a power of two in [2, 1024], got 3"));
  EXPECT_THAT(with([](VAEOptions& o) { o.stride = 1; }), HasSubstr("stride must be a power of two"));
  EXPECT_THAT(with([](VAEOptions& o) {
                o.image_size = 20;
                o.stride = 8;
              }),
              HasSubstr("image size 20 must be a multiple of the VAE stride 8; try --image-size 16"));
  EXPECT_THAT(with([](VAEOptions& o) { o.latent_channels = 0; }),
              HasSubstr("latent channels Z must be in [1, 8192], got 0"));
  EXPECT_THAT(with([](VAEOptions& o) { o.channels = 2; }), HasSubstr("must be 1 (grey) or 3 (RGB), got 2"));
  EXPECT_THAT(with([](VAEOptions& o) { o.hidden = 15; }), HasSubstr("hidden width must be an even number"));
  EXPECT_THAT(with([](VAEOptions& o) { o.kl_warmup_steps = -1; }),
              HasSubstr("KL warm-up steps must be 0 (off) or positive, got -1"));
  EXPECT_THAT(with([](VAEOptions& o) { o.free_bits = -0.5; }), HasSubstr("free bits must be a non-negative number"));
  EXPECT_THAT(with([](VAEOptions& o) { o.free_bits = std::nan(""); }),
              HasSubstr("free bits must be a non-negative number"));
  EXPECT_EQ(with([](VAEOptions&) {}), "");
}

TEST(VAE, WrongShapesGiveClearErrors) {
  GaussianVAE model(tiny());
  EXPECT_THAT(error_of([&] {
                model->forward(torch::zeros({2, 3, 16, 16}));
              }),
              HasSubstr("the VAE expects images of shape [B, 1, 16, 16], got [2, 3, 16, 16]"));
  EXPECT_THAT(error_of([&] {
                model->decode(torch::zeros({2, 4, 8, 8}));
              }),
              HasSubstr("the VAE decodes latents of shape [B, 4, 4, 4], got [2, 4, 8, 8]"));
}

// A short run on real digits: −ELBO in bits/dim falls well below where it starts.
TEST(VAE, ShortTrainingOnDigitsLowersBitsPerDim) {
  torch::manual_seed(9);
  auto o = tiny(32, 4, 1);
  o.hidden = 32;
  o.res_channels = 16;
  o.latent_channels = 8;
  GaussianVAE model(o);
  // MNIST's 28×28 digits padded to 32×32, as the data set does.
  const auto digits = torch::constant_pad_nd(embedded_mnist_images(), {2, 2, 2, 2}, 0);
  const auto train = to_model_range(digits.slice(0, 0, 1280));
  const auto held_out = to_model_range(digits.slice(0, 9000, 9256));
  auto evaluate = [&] {
    torch::NoGradGuard no_grad;
    model->eval();
    torch::manual_seed(10);
    const auto out = model->forward(held_out);
    model->train();
    return out;
  };
  const auto start = evaluate();
  const double before = start.bits_per_dim.item<double>();
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(3e-3));
  const int64_t batch = 32;
  for (int64_t step = 0; step < 40; ++step) {
    const auto x = train.slice(0, (step * batch) % train.size(0), (step * batch) % train.size(0) + batch);
    optimizer.zero_grad();
    const auto out = model->forward(x, step);
    out.loss.backward();
    optimizer.step();
  }
  const auto end = evaluate();
  const double after = end.bits_per_dim.item<double>();
  std::printf(
      "held-out -ELBO %.3f -> %.3f bits/dim after 40 steps (KL %.1f, NLL %.1f nats/image, %lld of %lld "
      "latent channels active)\n",
      before, after, end.kl.mean().item<double>(), end.nll.mean().item<double>(),
      static_cast<long long>(functional::active_dims(end.kl_per_dim)), static_cast<long long>(o.latent_channels));
  EXPECT_LT(after, 0.6 * before);
  EXPECT_LT(after, 2.0);
  EXPECT_TRUE(torch::isfinite(end.elbo_nats).all().item<bool>());
}

}  // namespace
}  // namespace vqvae2
