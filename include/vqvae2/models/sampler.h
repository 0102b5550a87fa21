// Ancestral sampling (MISSION.md §1.5): top codes from their prior, each lower level from its
// conditional prior given the level above, then the VQ-VAE decoder.
//
// Two samplers produce the same distribution, code by code:
//   sample_naive   the reference: one full forward pass of the prior per code (H·W passes);
//   sample_cached  each code costs only its new work: the vertical stream once per row from the
//                  rows above, the horizontal stream and attention once per position from caches.
// Both draw one uniform number per (image, position) from the seed and pick the code by inverse
// CDF, so with equal logits they pick equal codes; the tests hold the cached logits to the naive ones.
#pragma once

#include "vqvae2/models/prior.h"
#include "vqvae2/models/vqvae.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <functional>
#include <vector>

namespace vqvae2 {

struct SamplingOptions {
  double temperature = 1.0;  // logits / T; 0 = always the most likely code
  int64_t top_k = 0;         // keep only the k most likely codes (0 = all)
  double top_p = 1.0;        // keep the smallest set of codes with this much probability (1 = all)
  int64_t exact_first = 0;   // the first n positions (raster order) from the exact model: none of the three above
  // Classifier-free guidance w (conditional image priors trained with condition dropout): codes from
  // p(x | c)^(1+w) / p(x)^w, renormalised (guided_logits), before temperature, top-k and top-p. It
  // favours codes the condition makes likelier than they are anyway. 0 = the conditional model.
  double guidance = 0.0;
  void validate() const;
  // The options for position p (raster order: p = i·W + j, or t): for p < exact_first the model
  // untruncated (guidance kept: it chooses the model, not how it is truncated).
  SamplingOptions at(int64_t position) const;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(SamplingOptions, temperature, top_k, top_p, exact_first, guidance)

// The options of a hierarchy's samplers: one for the top prior, one for every level below it. The top
// map decides what is drawn (which digit), the levels below draw its strokes, and truncation does
// different things to the two: at the top it makes the commonest, simplest shapes commoner, below it
// removes broken strokes. One SamplingOptions converts to "the same for every level".
//
// `candidates` > 1 reranks the levels below the top by self-consistency (self_consistency below): for
// every top map it draws that many sets of lower maps, decodes each and keeps the set whose image the
// VQ-VAE encodes back to the most of its own codes. A lower map that contradicts the top map (a loop
// closed over the top of a 4, a broken stroke) decodes to an image whose codes come back different.
// Only the model judges: no classifier. 1 = plain ancestral sampling.
struct HierarchySampling {
  SamplingOptions top;
  SamplingOptions lower;
  int64_t candidates = 1;
  HierarchySampling() = default;
  HierarchySampling(const SamplingOptions& every_level) : top(every_level), lower(every_level) {}  // NOLINT: implicit
  HierarchySampling(const SamplingOptions& top_level, const SamplingOptions& lower_levels, int64_t lower_candidates = 1)
      : top(top_level), lower(lower_levels), candidates(lower_candidates) {}
  // The options for `level` of a `levels`-level hierarchy.
  const SamplingOptions& at(int64_t level, int64_t levels) const { return level + 1 == levels ? top : lower; }
  void validate() const;
};

// [positions, batch] uniforms in [0, 1) from their own CPU generator seeded with `seed`: the numbers
// every sampler (PixelCNN and WaveNet, naive and cached) draws, the same on any device.
torch::Tensor sampling_uniforms(int64_t positions, int64_t batch, uint64_t seed);

// Classifier-free guidance: (1 + w)·log p(x | c) − w·log p(x) from the conditional and the
// unconditional logits [B, K] (log-softmaxed first, so each is a proper log-probability), w =
// `guidance` > 0; w = 0 returns `conditional` itself.
torch::Tensor guided_logits(const torch::Tensor& conditional, const torch::Tensor& unconditional, double guidance);

// logits [B, K], uniforms [B] in [0, 1) -> codes [B] (int64).
torch::Tensor pick_codes(const torch::Tensor& logits, const torch::Tensor& uniforms, const SamplingOptions& options);

// Threads for the cached samplers' per-position steps through `stack`, a chain of small operations
// on [B, C] rows whose average multiply-adds (B × the mean size of the stack's weight tensors)
// decide it (core/device.h threads_for_work): tiny steps run on one thread, so that a busy machine
// slows sampling by its fair share and not by OpenMP barriers waiting for descheduled threads.
int step_threads(const torch::nn::Module& stack, int64_t batch);

// Called with every position's logits [B, K] (tests compare the samplers through it).
using StepObserver = std::function<void(int64_t i, int64_t j, const torch::Tensor& logits)>;
// Called after each finished row.
using RowProgress = std::function<void(int64_t rows_done)>;

// Codes [batch, H, W] of one level. `condition_codes` are the level above's codes [batch, H/s, W/s]
// (conditional priors only; anything else is a vqvae2::Error). The result depends only on the
// weights, the condition, the options and `seed`. The prior runs in eval mode and is left in the
// mode it was in. With options.guidance > 0 (priors trained with condition dropout only) every
// position's logits are guided_logits of the conditional and the unconditional model, which both
// samplers run side by side (the cached one as one batch of 2·batch maps): twice the work.
torch::Tensor sample_naive(Prior& prior, int64_t batch, const torch::Tensor& condition_codes,
                           const SamplingOptions& options, uint64_t seed, const StepObserver& observer = {});
torch::Tensor sample_cached(Prior& prior, int64_t batch, const torch::Tensor& condition_codes,
                            const SamplingOptions& options, uint64_t seed, const StepObserver& observer = {},
                            const RowProgress& progress = {});

// How much of its own code a decoded sample gives back: codes (per level, bottom first, [B, H_l, W_l])
// decode to `images` [B, C, S, S]; the VQ-VAE encodes the images again, and for every image the share
// of positions whose code comes back the same is averaged over the levels (each level counts alike,
// however many positions it has). -> [B] double in [0, 1].
torch::Tensor self_consistency(HierarchicalVQVAE& vqvae, const std::vector<torch::Tensor>& codes,
                               const torch::Tensor& images);

struct HierarchySample {
  std::vector<torch::Tensor> codes;  // per level, bottom first
  torch::Tensor images;              // x̂ [B, C, S, S] in [-1, 1]
  std::vector<double> seconds;       // per level, bottom first; then the decoder's (and re-encoder's) at the end
};

// Samples every level top-down with `priors` (index = level, bottom first), each with its options
// (options.at(level, levels)), and decodes; with options.candidates > 1 keeps, per image, the most
// self-consistent of that many draws of the lower levels under the same top map. Candidate 0 is the
// draw of candidates = 1, so more candidates never lower an image's self-consistency.
HierarchySample sample_hierarchy(HierarchicalVQVAE& vqvae, std::vector<Prior>& priors, int64_t batch,
                                 const HierarchySampling& options, uint64_t seed, bool naive = false,
                                 const std::function<void(int64_t level, int64_t rows_done, int64_t rows)>& progress = {});

}  // namespace vqvae2
