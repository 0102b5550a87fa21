#include "vqvae2/models/audio_sampler.h"

#include "vqvae2/core/device.h"
#include "vqvae2/core/error.h"

#include <chrono>

namespace vqvae2 {

namespace {

// What both samplers start from: eval mode, the uniforms [T, B], all-zero codes on the prior's device.
struct Start {
  torch::Device device;
  torch::Tensor uniforms, codes, condition_codes;
};

Start start(WaveNet& prior, int64_t batch, int64_t length, const torch::Tensor& condition_codes,
            const SamplingOptions& options, uint64_t seed) {
  options.validate();
  VQVAE2_CHECK(options.guidance == 0, "guidance is for the image priors: a WaveNet prior has no unconditional model");
  VQVAE2_CHECK(batch >= 1 && length >= 1, "sampling needs a positive batch and length, got {} and {}", batch, length);
  prior->eval();
  const auto device = prior->parameters().front().device();
  auto codes = torch::zeros({batch, length}, torch::TensorOptions().dtype(torch::kLong).device(device));
  const auto condition = condition_codes.defined() ? condition_codes.to(device, torch::kLong) : condition_codes;
  if (prior->options().conditional) {
    VQVAE2_CHECK(condition.defined() && condition.dim() == 2 && condition.size(0) == batch &&
                     condition.size(1) * prior->options().condition_scale == length,
                 "the level-{} WaveNet needs the level-{} codes [{}, {}] to sample {} codes, got {}",
                 prior->options().level, prior->options().level + 1, batch, length / prior->options().condition_scale,
                 length, condition.defined() ? shape_of(condition.sizes()) : "none");
  }
  return {device, sampling_uniforms(length, batch, seed), codes, condition};
}

}  // namespace

torch::Tensor sample_wavenet_naive(WaveNet& prior, int64_t batch, int64_t length, const torch::Tensor& condition_codes,
                                   const SamplingOptions& options, uint64_t seed, const SequenceObserver& observer) {
  torch::InferenceMode inference;
  auto [device, uniforms, codes, condition] = start(prior, batch, length, condition_codes, options, seed);
  for (int64_t t = 0; t < length; ++t) {
    // The whole sequence through the whole network, for one position's logits.
    const auto logits = prior->forward(codes, condition).select(2, t);  // [B, K]
    if (observer) observer(t, logits);
    codes.select(1, t).copy_(pick_codes(logits, uniforms[t], options.at(t)));
  }
  return codes;
}

torch::Tensor sample_wavenet_cached(WaveNet& prior, int64_t batch, int64_t length, const torch::Tensor& condition_codes,
                                    const SamplingOptions& options, uint64_t seed, const SequenceObserver& observer,
                                    const std::function<void(int64_t)>& progress) {
  torch::InferenceMode inference;
  auto [device, uniforms, codes, condition] = start(prior, batch, length, condition_codes, options, seed);
  auto state = prior->begin(batch, length, prior->condition_features(condition));
  const ThreadLimit limit(step_threads(*prior, batch));
  for (int64_t t = 0; t < length; ++t) {
    const auto logits = prior->logits_step(state);
    if (observer) observer(t, logits);
    const auto picked = pick_codes(logits, uniforms[t], options.at(t));
    codes.select(1, t).copy_(picked);
    prior->commit(state, picked);
    if (progress && ((t + 1) % 64 == 0 || t + 1 == length)) progress(t + 1);
  }
  return codes;
}

AudioSample sample_audio_hierarchy(AudioVQVAE& vqvae, std::vector<WaveNet>& priors, int64_t batch, int64_t samples,
                                   const SamplingOptions& options, uint64_t seed, bool naive,
                                   const std::function<void(int64_t, int64_t, int64_t)>& progress) {
  const auto& model = vqvae->options();
  const auto L = model.levels();
  if (samples == 0) samples = model.clip_length;
  VQVAE2_CHECK(samples >= model.total_stride() && samples % model.total_stride() == 0,
               "the sampled audio must be a positive multiple of {} samples (strides {}), got {}", model.total_stride(),
               fmt::join(model.strides, ","), samples);
  VQVAE2_CHECK(static_cast<int64_t>(priors.size()) == L, "sampling needs one WaveNet per level ({}), got {}", L,
               priors.size());
  for (int64_t l = 0; l < L; ++l) {
    const auto& o = priors[l]->options();
    VQVAE2_CHECK(o.level == l && o.codes == model.codes_at(l),
                 "the WaveNet given for level {} models level {} with K={}, but the VQ-VAE's level {} has K={}", l,
                 o.level, o.codes, l, model.codes_at(l));
    VQVAE2_CHECK(o.conditional == (l + 1 < L), "the level-{} WaveNet must {}be conditional", l, l + 1 < L ? "" : "not ");
    VQVAE2_CHECK(!o.conditional || (o.condition_codes == model.codes_at(l + 1) && o.condition_scale == model.strides[l + 1]),
                 "the level-{} WaveNet is conditioned on K={} codes {} times coarser, but the VQ-VAE's level {} has K={} "
                 "and stride {}",
                 l, o.condition_codes, o.condition_scale, l + 1, model.codes_at(l + 1), model.strides[l + 1]);
  }
  AudioSample result;
  result.codes.resize(L);
  result.seconds.assign(L + 1, 0.0);
  for (int64_t l = L - 1; l >= 0; --l) {
    const auto begin = std::chrono::steady_clock::now();
    const auto condition = l + 1 < L ? result.codes[l + 1] : torch::Tensor();
    const auto level_seed = seed * 1000003 + static_cast<uint64_t>(l);
    const auto length = model.latent_length(l, samples);
    result.codes[l] = naive ? sample_wavenet_naive(priors[l], batch, length, condition, options, level_seed)
                            : sample_wavenet_cached(priors[l], batch, length, condition, options, level_seed, {},
                                                    [&](int64_t done) {
                                                      if (progress) progress(l, done, length);
                                                    });
    result.seconds[l] = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  }
  const auto begin = std::chrono::steady_clock::now();
  {
    torch::InferenceMode inference;
    vqvae->eval();
    result.waveforms = vqvae->decode_codes(result.codes);
  }
  result.seconds[L] = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  return result;
}

}  // namespace vqvae2
