// New images from trained run folders: the priors (one per level) sample codes top-down, the VQ-VAE
// decodes them (models/sampler.h has the samplers themselves); or a Gaussian VAE decodes z ~ N(0, I).
// New audio the same way from an audio VQ-VAE and its WaveNets (models/audio_sampler.h).
#pragma once

#include "vqvae2/core/precision.h"
#include "vqvae2/models/audio_sampler.h"
#include "vqvae2/models/digit_classifier.h"
#include "vqvae2/models/sampler.h"
#include "vqvae2/stages/trained.h"
#include "vqvae2/training/trainer.h"

#include <torch/torch.h>

#include <optional>
#include <string>
#include <vector>

namespace vqvae2 {

struct SampleConfig {
  std::string vqvae;                 // VQ-VAE run folder or .ckpt file
  std::vector<std::string> priors;   // prior run folders or .ckpt files, one per level, any order
  std::string vae;                   // instead of vqvae and priors: a Gaussian VAE run folder or .ckpt file
  int64_t count = 16;
  int64_t batch_size = 16;           // images sampled together
  // Nucleus sampling, top-p 0.9 at the top and 0.7 below, by default: the lower priors' least likely
  // probability mass is where broken strokes come from, and a tight threshold at the top makes the
  // simplest digits (1s) commoner. The main job's digits, 1,024 samples, mean of 3 seeds, on the priors
  // of two trainings: 7.76 and 7.68 of 10, 81% confident on both, against 7.41 and 7.43, 81% with 0.8
  // at every level. The top map's first code untruncated, and the most self-consistent of 8 draws of
  // the bottom per top map: 7.94, 82% on the main job's priors, against 7.73, 81% without, for
  // about 6 times the sampling time (docs/ABLATIONS.md; candidates 1 for plain, fast ancestral
  // sampling). One SamplingOptions sets every level alike, with one candidate.
  // Below the top, classifier-free guidance 2 (SamplingOptions::guidance): the bottom prior then draws
  // strokes that its top map asks for rather than the commonest ones (fewer loops closed over 4s
  // and 5s: a sixth of the samples read as 9 unguided, an eighth guided). With the main job's top prior
  // and a bottom prior trained with condition dropout 0.2, 1,024 samples × 3 seeds: 8.27 of 10, 83%
  // confident, against 7.87, 82% unguided (guidance 1 on seed 0: 8.30; 3: 8.22 on three seeds).
  HierarchySampling sampling{SamplingOptions{1.0, 0, 0.9, 1}, SamplingOptions{1.0, 0, 0.7, 0, 2.0}, 8};
  // The lower levels' guidance applies to the priors trained with condition dropout (the ones with
  // an unconditional model); priors trained without it are sampled unguided, with a note in the log.
  // false: such a prior is an error (the CLI's choice when --guidance is given).
  bool guide_only_where_trained = true;
  uint64_t seed = 0;                 // same seed, same samples
  bool naive = false;                // the reference sampler: a full forward pass per code
  Precision precision = Precision::kFP32;  // forward passes of the priors and decoder (core/precision.h)
  std::string out = "samples.png";   // PNG grid
  std::string codes_out;             // optional: the sampled codes as a code store
  bool score_digits = false;         // score the samples with the digit classifier (models/digit_classifier.h)
  std::string digit_classifier;      // its cache file; empty = default_digit_classifier_path()
  void validate() const;
};

struct SampleResult {
  torch::Tensor images;              // uint8 [count, C, S, S]
  std::vector<torch::Tensor> codes;  // per level, bottom first: [count, H_l, W_l] (none for a VAE)
  double seconds = 0;                // sampling and decoding, all batches
  std::optional<SampleDigitScore> digit_score;  // with config.score_digits: the samples' beside real digits'
};

// `priors` ordered by level (index = level, bottom first), checked to be one per level of a
// `levels`-level VQ-VAE; `paths` name them in messages.
std::vector<Prior> priors_by_level(const std::vector<TrainedPrior>& priors, const std::vector<std::string>& paths,
                                   int64_t levels);

// The lowest level below the top whose prior was trained without condition dropout, so has no
// unconditional model for classifier-free guidance (the samplers refuse guidance there); -1 when
// every prior below the top has one. `priors` as priors_by_level gives them.
int64_t first_unguidable_level(const std::vector<Prior>& priors);

// Samples config.count images, writes the grid (and the codes when asked, and scores them as digits
// when asked: a model of grey 32×32 images is checked before sampling). Sampling options and the
// sampler apply to priors only.
SampleResult sample_images(const SampleConfig& config, const RunSettings& settings);

// ---- audio ----------------------------------------------------------------------------------------

struct AudioSampleConfig {
  std::string vqvae;                 // audio VQ-VAE run folder or .ckpt file
  std::vector<std::string> priors;   // WaveNet run folders or .ckpt files, one per level, any order
  int64_t count = 4;
  int64_t batch_size = 4;            // clips sampled together
  int64_t samples = 0;               // length of each clip in audio samples; 0 = the VQ-VAE's clip length
  // Nucleus sampling at top-p 0.8, one threshold for every level: the value images used before they got
  // one per level (not measured on audio). top_p 1 samples the exact model.
  SamplingOptions sampling{1.0, 0, 0.8};
  uint64_t seed = 0;                 // same seed, same audio
  bool naive = false;                // the reference sampler: a full WaveNet pass per code
  std::string out = "samples";       // folder: sample-<i>.wav and spectrograms.png
  std::string codes_out;             // optional: the sampled codes as a code store
  void validate() const;
};

struct AudioSampleResult {
  torch::Tensor waveforms;           // float [count, T] at sample_rate
  std::vector<torch::Tensor> codes;  // per level, bottom first: [count, T_l]
  int64_t sample_rate = 0;
  double seconds = 0;                // sampling and decoding, all batches
  double audio_seconds = 0;          // audio made: count · T / sample_rate
  std::vector<std::string> files;    // the WAVs written
  std::string spectrograms;          // the PNG of their spectrograms
};

// WaveNets ordered by level (index = level, bottom first), checked to be one per level of an
// `levels`-level VQ-VAE; `paths` name them in messages.
std::vector<WaveNet> wavenets_by_level(const std::vector<TrainedWaveNet>& priors, const std::vector<std::string>& paths,
                                       int64_t levels);

// Samples config.count clips, writes them as 16-bit WAVs at the VQ-VAE's sample rate with a sheet
// of their spectrograms (and the codes when asked).
AudioSampleResult sample_audio(const AudioSampleConfig& config, const RunSettings& settings);

}  // namespace vqvae2
