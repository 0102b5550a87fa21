// Ancestral sampling of audio (MISSION.md §1.5, §1.6): the top code sequence from its WaveNet, each
// lower level from its conditional WaveNet given the level above, then the audio VQ-VAE's decoder.
//
// Two samplers produce the same distribution, code by code:
//   sample_wavenet_naive   the reference: one full forward pass of the WaveNet per code (T passes of T);
//   sample_wavenet_cached  "fast WaveNet": per-layer queues of past activations, one step per layer per code.
// Both draw the uniforms of sampling_uniforms(T, B, seed) and pick each code with pick_codes (inverse
// CDF after temperature, top-k, top-p), so with equal logits they pick equal codes; the tests hold
// the cached logits to the naive ones.
#pragma once

#include "vqvae2/models/audio_vqvae.h"
#include "vqvae2/models/sampler.h"
#include "vqvae2/models/wavenet.h"

#include <torch/torch.h>

#include <functional>
#include <vector>

namespace vqvae2 {

// Called with every position's logits [B, K] (tests compare the samplers through it).
using SequenceObserver = std::function<void(int64_t t, const torch::Tensor& logits)>;

// Codes [batch, length] of one level. `condition_codes` [batch, length / s] are the level above's
// codes (conditional WaveNets only). The result depends only on the weights, the condition, the
// options and `seed`. `progress` is called with the number of codes done, every 64 codes and at the end.
torch::Tensor sample_wavenet_naive(WaveNet& prior, int64_t batch, int64_t length, const torch::Tensor& condition_codes,
                                   const SamplingOptions& options, uint64_t seed, const SequenceObserver& observer = {});
torch::Tensor sample_wavenet_cached(WaveNet& prior, int64_t batch, int64_t length, const torch::Tensor& condition_codes,
                                    const SamplingOptions& options, uint64_t seed, const SequenceObserver& observer = {},
                                    const std::function<void(int64_t done)>& progress = {});

struct AudioSample {
  std::vector<torch::Tensor> codes;  // per level [B, T_l], bottom first
  torch::Tensor waveforms;           // x̂ [B, 1, T]
  std::vector<double> seconds;       // per level, bottom first; then the decoder's at the end
};

// Samples every level top-down with `priors` (index = level, bottom first) and decodes `samples`
// samples per waveform (0 = the VQ-VAE's clip length; a positive multiple of its total stride).
AudioSample sample_audio_hierarchy(
    AudioVQVAE& vqvae, std::vector<WaveNet>& priors, int64_t batch, int64_t samples, const SamplingOptions& options,
    uint64_t seed, bool naive = false,
    const std::function<void(int64_t level, int64_t done, int64_t length)>& progress = {});

}  // namespace vqvae2
