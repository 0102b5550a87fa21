// The whole system in one call: train the VQ-VAE, extract its codes, train one prior per level (top
// first), sample. Every stage writes its own run folder under one root; a resumed pipeline continues
// each stage where it stopped (a finished stage resumes at its end, doing nothing).
//
//   <out>/vqvae/           stage 1 run folder          <out>/codes/{train,val}.vq2
//   <out>/prior-level<l>/  one stage-2 run per level   <out>/samples.png
// On audio (a folder of audio files, or modality "audio"): the audio VQ-VAE, WaveNet priors, and
// <out>/samples/ with sample-<i>.wav and spectrograms.png instead of samples.png.
#pragma once

#include "vqvae2/stages/codes.h"
#include "vqvae2/stages/compare.h"
#include "vqvae2/stages/generate.h"
#include "vqvae2/stages/train_audio_vqvae.h"
#include "vqvae2/stages/train_prior.h"
#include "vqvae2/stages/train_vae.h"
#include "vqvae2/stages/train_vqvae.h"
#include "vqvae2/stages/train_wavenet.h"

#include <string>
#include <vector>

namespace vqvae2 {

struct PipelineConfig {
  std::string out = "runs/main";
  std::string data;                  // folder of images or audio files; empty = the embedded MNIST digits
  std::string modality = "auto";     // image, audio, or auto: what the data folder holds (detect_modality)
  int64_t limit = 0;                 // use at most this many images (0 = all)
  std::string preset = "auto";       // VQ-VAE preset (presets.h); auto = mnist without data, reference with;
                                     // audio: speech
  std::string prior_size = "auto";   // small, reference, or auto: the preset's (prior_size_for_preset)
  int64_t vqvae_epochs = 0;          // 0 = the preset's
  int64_t prior_epochs = 0;          // 0 = the prior size's
  int64_t vqvae_steps = 0;           // > 0: a fixed number of steps instead of epochs (quick runs)
  int64_t prior_steps = 0;
  int64_t samples = 16;
  uint64_t seed = 0;                 // of every stage
  bool resume = false;
  bool score_digits = true;          // on the embedded digits at 32×32 grey: score the samples as digits
  std::string digit_classifier;      // the digit classifier's cache file; empty = default_digit_classifier_path()
};

struct PipelineResult {
  bool interrupted = false;          // a stage was stopped by SIGINT/SIGTERM (its checkpoint written)
  TrainVQVAEResult vqvae;
  ExtractResult codes;
  std::vector<TrainPriorResult> priors;  // top first
  SampleResult samples;              // samples.digit_score: set when the pipeline scored them as digits
  std::string samples_path;
};

// The modality a pipeline runs on: config.modality, or for "auto" what its data folder holds.
Modality pipeline_modality(const PipelineConfig& config);

PipelineResult run_pipeline(const PipelineConfig& config, const RunSettings& settings);

// The lineage (MISSION.md §1.1–1.4) on one budget: a Gaussian VAE, VQ-VAE-1 (the vqvae1 preset, its
// gated PixelCNN prior) and VQ-VAE-2 (the mnist preset, PixelSNAIL + conditional prior), trained on
// the same images with the same number of steps for every autoencoder and the same for every prior
// (small prior widths), then compared on the same held-out images (compare.h).
//
//   <out>/vae/     train-vae run folder         <out>/vqvae1/, <out>/vqvae2/   pipeline folders
//   <out>/compare/ compare.md, compare.json, samples.png
// On the embedded digits the comparison has a digit score for each model's samples.
struct LineageConfig {
  std::string out = "runs/lineage";
  std::string data;                  // folder of images (made 32×32 grey); empty = the embedded MNIST digits
  int64_t limit = 0;                 // use at most this many images (0 = all)
  int64_t autoencoder_epochs = 0;    // 0 = the mnist preset's
  int64_t prior_epochs = 0;          // 0 = the small priors'
  int64_t autoencoder_steps = 0;     // > 0: a fixed number of steps instead of epochs
  int64_t prior_steps = 0;
  int64_t samples = 8;               // per model, in the comparison's picture (and each pipeline's samples.png)
  int64_t compare_images = 0;        // held-out images scored (0 = all)
  uint64_t seed = 0;                 // of every stage
  bool resume = false;
  int64_t digit_samples = 100;       // on the embedded digits: samples per model scored as digits (0 = none)
  std::string digit_classifier;      // the digit classifier's cache file; empty = default_digit_classifier_path()
};

struct LineageResult {
  bool interrupted = false;
  TrainVAEResult vae;
  PipelineResult vqvae1, vqvae2;
  Comparison comparison;
};

LineageResult run_lineage(const LineageConfig& config, const RunSettings& settings);
struct AudioPipelineResult {
  bool interrupted = false;
  TrainAudioVQVAEResult vqvae;
  ExtractResult codes;
  std::vector<TrainPriorResult> priors;  // top first
  AudioSampleResult samples;             // config.samples clips of the VQ-VAE's clip length in <out>/samples/
};

// The pipeline on a folder of audio files: audio VQ-VAE, codes, one WaveNet per level, sampled audio.
AudioPipelineResult run_audio_pipeline(const PipelineConfig& config, const RunSettings& settings);

}  // namespace vqvae2
