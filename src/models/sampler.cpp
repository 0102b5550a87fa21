#include "vqvae2/models/sampler.h"

#include "vqvae2/core/device.h"
#include "vqvae2/core/error.h"

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>

namespace vqvae2 {

void SamplingOptions::validate() const {
  VQVAE2_CHECK(temperature >= 0 && std::isfinite(temperature), "temperature must be >= 0, got {}", temperature);
  VQVAE2_CHECK(top_k >= 0, "top-k must be >= 0 (0 = off), got {}", top_k);
  VQVAE2_CHECK(top_p > 0 && top_p <= 1, "top-p must be in (0, 1], got {}", top_p);
  VQVAE2_CHECK(exact_first >= 0, "the exact positions at the start must be >= 0, got {}", exact_first);
  VQVAE2_CHECK(guidance >= 0 && std::isfinite(guidance), "guidance must be >= 0 (0 = off), got {}", guidance);
}

SamplingOptions SamplingOptions::at(int64_t position) const {
  if (position >= exact_first) return *this;
  SamplingOptions exact;
  exact.guidance = guidance;
  return exact;
}

torch::Tensor guided_logits(const torch::Tensor& conditional, const torch::Tensor& unconditional, double guidance) {
  if (guidance == 0) return conditional;
  return (1 + guidance) * torch::log_softmax(conditional.to(torch::kFloat), 1) -
         guidance * torch::log_softmax(unconditional.to(torch::kFloat), 1);
}

void HierarchySampling::validate() const {
  top.validate();
  lower.validate();
  VQVAE2_CHECK(candidates >= 1, "the candidates per top map must be at least 1, got {}", candidates);
}

torch::Tensor pick_codes(const torch::Tensor& logits, const torch::Tensor& uniforms, const SamplingOptions& options) {
  const auto K = logits.size(1);
  if (options.temperature == 0) return logits.argmax(1);
  auto x = logits.to(torch::kFloat) / options.temperature;
  if (options.top_k > 0 && options.top_k < K) {
    const auto kth = std::get<0>(x.topk(options.top_k, 1)).slice(1, options.top_k - 1, options.top_k);
    x = x.masked_fill(x < kth, -std::numeric_limits<float>::infinity());
  }
  auto probabilities = torch::softmax(x, 1);
  if (options.top_p < 1) {
    // Keep the most likely codes until their mass reaches top_p (always at least one).
    const auto [sorted, order] = probabilities.sort(1, /*descending=*/true);
    const auto mass_before = sorted.cumsum(1) - sorted;
    const auto kept = sorted.masked_fill(mass_before >= options.top_p, 0);
    probabilities = torch::zeros_like(probabilities).scatter(1, order, kept);
  }
  // Inverse CDF: the first code whose cumulative probability exceeds u.
  auto cdf = probabilities.cumsum(1);
  cdf = cdf / cdf.slice(1, K - 1, K);
  const auto u = uniforms.to(cdf.device(), torch::kFloat).unsqueeze(1);
  return torch::searchsorted(cdf, u, /*out_int32=*/false, /*right=*/true).squeeze(1).clamp_max(K - 1);
}

torch::Tensor sampling_uniforms(int64_t positions, int64_t batch, uint64_t seed) {
  auto generator = at::detail::createCPUGenerator(seed);
  return torch::rand({positions, batch}, generator, torch::TensorOptions().dtype(torch::kFloat));
}

namespace {

// Puts a module in eval mode for as long as it lives, then back in the mode it found it in.
class EvalMode {
 public:
  explicit EvalMode(torch::nn::Module& module) : module_(module), was_training_(module.is_training()) { module.eval(); }
  ~EvalMode() { module_.train(was_training_); }
  EvalMode(const EvalMode&) = delete;
  EvalMode& operator=(const EvalMode&) = delete;

 private:
  torch::nn::Module& module_;
  bool was_training_;
};

// Guidance needs the unconditional model of a conditional prior trained with condition dropout.
void check_guidance(const PriorOptions& o, double guidance) {
  if (guidance == 0) return;
  VQVAE2_CHECK(o.conditional, "guidance is for conditional priors; the level-{} prior is unconditional (the top)",
               o.level);
  VQVAE2_CHECK(o.condition_dropout > 0,
               "the level-{} prior was trained without condition dropout (train-prior --condition-dropout), so it has "
               "no unconditional model to guide by: sample it with guidance 0",
               o.level);
}

// What both samplers start from: checked inputs, the uniforms, an all-zero code map and the
// condition codes on the prior's device.
struct Start {
  int64_t height, width;
  torch::Device device;
  torch::Tensor uniforms, codes, condition;
};

Start start(Prior& prior, int64_t batch, const torch::Tensor& condition_codes, const SamplingOptions& options,
            uint64_t seed) {
  options.validate();
  VQVAE2_CHECK(batch >= 1, "the sampling batch must be positive, got {}", batch);
  prior->check_condition(batch, condition_codes);
  check_guidance(prior->options(), options.guidance);
  const auto H = prior->options().height, W = prior->options().width;
  const auto device = prior->parameters().front().device();
  return {H, W, device, sampling_uniforms(H * W, batch, seed),
          torch::zeros({batch, H, W}, torch::TensorOptions().dtype(torch::kLong).device(device)),
          condition_codes.defined() ? condition_codes.to(device) : condition_codes};
}

}  // namespace

torch::Tensor sample_naive(Prior& prior, int64_t batch, const torch::Tensor& condition_codes,
                           const SamplingOptions& options, uint64_t seed, const StepObserver& observer) {
  torch::InferenceMode inference;
  EvalMode eval(*prior);
  auto [H, W, device, uniforms, codes, condition] = start(prior, batch, condition_codes, options, seed);
  for (int64_t i = 0; i < H; ++i) {
    for (int64_t j = 0; j < W; ++j) {
      // The whole map through the whole network, for one position's logits.
      auto logits = prior->forward(codes, condition).select(3, j).select(2, i);  // [B, K]
      if (options.guidance > 0)
        logits = guided_logits(logits, prior->forward_unconditional(codes).select(3, j).select(2, i), options.guidance);
      if (observer) observer(i, j, logits);
      codes.select(2, j).select(1, i).copy_(pick_codes(logits, uniforms[i * W + j], options.at(i * W + j)));
    }
  }
  return codes;
}

int step_threads(const torch::nn::Module& stack, int64_t batch) {
  // The average operation's work: a weight tensor's multiply-adds at one position, for the batch.
  double weights = 0;
  const auto tensors = per_position_weights(stack);
  for (const auto& weight : tensors) weights += static_cast<double>(weight.numel());
  return tensors.empty() ? 1 : threads_for_work(static_cast<double>(batch) * weights / static_cast<double>(tensors.size()));
}

torch::Tensor sample_cached(Prior& prior, int64_t batch, const torch::Tensor& condition_codes,
                            const SamplingOptions& options, uint64_t seed, const StepObserver& observer,
                            const RowProgress& progress) {
  torch::InferenceMode inference;
  EvalMode eval(*prior);
  auto [H, W, device, uniforms, codes, condition] = start(prior, batch, condition_codes, options, seed);
  auto& stack = prior->stack();
  // Guided: the conditional maps and, behind them, the same maps with zero conditioning features
  // (the unconditional model), stepped as one batch and given the same codes.
  const bool guided = options.guidance > 0;
  auto features = prior->condition_features(condition);
  if (guided) features = torch::cat({features, torch::zeros_like(features)});
  auto state = stack.begin(guided ? 2 * batch : batch, H, W, features);
  // One thread count for the whole map: changing it per row would make oneDNN rebuild its
  // primitives (their cache is keyed by the thread count), which costs more than it saves.
  const ThreadLimit limit(step_threads(stack, guided ? 2 * batch : batch));
  for (int64_t i = 0; i < H; ++i) {
    stack.begin_row(state, i);
    for (int64_t j = 0; j < W; ++j) {
      auto logits = stack.logits_at(state, i, j);
      if (guided)
        logits = guided_logits(logits.slice(0, 0, batch), logits.slice(0, batch, 2 * batch), options.guidance);
      if (observer) observer(i, j, logits);
      const auto picked = pick_codes(logits, uniforms[i * W + j], options.at(i * W + j));
      codes.select(2, j).select(1, i).copy_(picked);
      stack.commit(state, i, j, guided ? torch::cat({picked, picked}) : picked);
    }
    if (progress) progress(i + 1);
  }
  return codes;
}

HierarchySample sample_hierarchy(HierarchicalVQVAE& vqvae, std::vector<Prior>& priors, int64_t batch,
                                 const HierarchySampling& options, uint64_t seed, bool naive,
                                 const std::function<void(int64_t, int64_t, int64_t)>& progress) {
  options.validate();  // every level's, before the top is sampled (each sampler checks its own again)
  const auto& model = vqvae->options();
  const auto L = model.levels();
  VQVAE2_CHECK(static_cast<int64_t>(priors.size()) == L, "sampling needs one prior per level ({}), got {}", L,
               priors.size());
  for (int64_t l = 0; l < L; ++l) {
    const auto& o = priors[l]->options();
    VQVAE2_CHECK(o.level == l && o.height == model.latent_size(l) && o.width == model.latent_size(l) &&
                     o.stack.codes == model.codes_at(l),
                 "the prior given for level {} models {}x{} codes with K={} of level {}, but the VQ-VAE's level {} "
                 "is {}x{} with K={}",
                 l, o.height, o.width, o.stack.codes, o.level, l, model.latent_size(l), model.latent_size(l),
                 model.codes_at(l));
    VQVAE2_CHECK(o.conditional == (l + 1 < L), "the level-{} prior must {}be conditional", l, l + 1 < L ? "" : "not ");
    check_guidance(o, options.at(l, L).guidance);  // every level before any is sampled
  }
  HierarchySample result;
  result.codes.resize(L);
  result.seconds.assign(L + 1, 0.0);
  // Levels from `first` down to the bottom, each given the one above (result.codes[first + 1] when
  // first < L - 1); candidate c > 0 draws its own uniforms.
  const auto sample_levels = [&](std::vector<torch::Tensor>& codes, int64_t first, uint64_t candidate) {
    for (int64_t l = first; l >= 0; --l) {
      const auto start = std::chrono::steady_clock::now();
      const auto condition = l + 1 < L ? codes[l + 1] : torch::Tensor();
      const auto level_seed = seed * 1000003 + static_cast<uint64_t>(l) + candidate * 0x9E3779B97F4A7C15ULL;
      const auto rows = priors[l]->options().height;
      const auto& level_options = options.at(l, L);
      codes[l] = naive ? sample_naive(priors[l], batch, condition, level_options, level_seed)
                       : sample_cached(priors[l], batch, condition, level_options, level_seed, {}, [&](int64_t done) {
                           if (progress) progress(l, done, rows);
                         });
      result.seconds[l] += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
  };
  const auto decode = [&](const std::vector<torch::Tensor>& codes) {
    const auto start = std::chrono::steady_clock::now();
    torch::InferenceMode inference;
    EvalMode eval(*vqvae);
    auto images = vqvae->decode_codes(codes);
    result.seconds[L] += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return images;
  };
  sample_levels(result.codes, L - 1, 0);
  result.images = decode(result.codes);
  if (options.candidates > 1 && L > 1) {
    const auto consistency = [&](const std::vector<torch::Tensor>& codes, const torch::Tensor& images) {
      const auto start = std::chrono::steady_clock::now();
      auto agreement = self_consistency(vqvae, codes, images);
      result.seconds[L] += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      return agreement;
    };
    auto best = consistency(result.codes, result.images);
    for (int64_t c = 1; c < options.candidates; ++c) {
      auto codes = result.codes;  // the top map stays; every level below is drawn again
      sample_levels(codes, L - 2, static_cast<uint64_t>(c));
      const auto images = decode(codes);
      const auto agreement = consistency(codes, images);
      const auto better = agreement.gt(best);  // ties keep the earlier candidate
      for (int64_t l = 0; l + 1 < L; ++l) result.codes[l] = torch::where(better.view({-1, 1, 1}), codes[l], result.codes[l]);
      result.images = torch::where(better.view({-1, 1, 1, 1}), images, result.images);
      best = torch::where(better, agreement, best);
    }
  }
  return result;
}

torch::Tensor self_consistency(HierarchicalVQVAE& vqvae, const std::vector<torch::Tensor>& codes,
                               const torch::Tensor& images) {
  VQVAE2_CHECK(static_cast<int64_t>(codes.size()) == vqvae->options().levels(),
               "self-consistency needs one code map per level ({}), got {}", vqvae->options().levels(), codes.size());
  torch::InferenceMode inference;
  EvalMode eval(*vqvae);
  // The images as they will be kept: clamped to the data range [-1, 1].
  const auto again = vqvae->encode(images.to(torch::kFloat).clamp(-1, 1));
  auto agreement = torch::zeros({images.size(0)}, torch::TensorOptions().dtype(torch::kDouble).device(images.device()));
  for (size_t l = 0; l < codes.size(); ++l) agreement += again[l].eq(codes[l]).to(torch::kDouble).mean({1, 2});
  return agreement / static_cast<double>(codes.size());
}

}  // namespace vqvae2
