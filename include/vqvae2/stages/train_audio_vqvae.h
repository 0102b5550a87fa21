// Stage 1 on audio (MISSION.md §1.6): training the 1-D hierarchical VQ-VAE on clips of a folder of
// audio files, and scoring its reconstructions.
//
// Besides metrics.jsonl and audio-vqvae.ckpt, the run folder gets at every evaluation a spectrogram
// sheet spectrograms/reconstructions-<step>.png (held-out clips on top, their reconstructions below)
// and, overwritten each time, the same clips as audio/original-<i>.wav and audio/reconstruction-<i>.wav.
#pragma once

#include "vqvae2/data/audio.h"
#include "vqvae2/models/audio_vqvae.h"
#include "vqvae2/stages/trained.h"
#include "vqvae2/training/trainer.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <string>
#include <vector>

namespace vqvae2 {

// The STFT resolutions every audio evaluation reports its STFT distance at (whatever the model
// trains with), so that figures of differently trained models compare.
const std::vector<int64_t>& evaluation_stft_ffts();

struct AudioEvaluation {
  double waveform_mse = 0;                // mean (x̂ − x)², samples in [-1, 1]
  double snr = 0;                         // dB: 10 log10(Σ x² / Σ (x̂ − x)²) over the whole set
  double stft = 0;                        // multi-resolution STFT distance (evaluation_stft_ffts): the two below summed
  double spectral_convergence = 0;        // mean ‖|S x| − |S x̂|‖_F / ‖|S x|‖_F
  double log_magnitude = 0;               // mean |log |S x| − log |S x̂||
  std::vector<double> perplexity, usage;  // per level, over the whole set
  int64_t clips = 0;
  nlohmann::json to_json() const;
  static AudioEvaluation from_json(const nlohmann::json& j);  // null -> all zero
};

// Reconstruction figures and code usage of `model` over `loader` (one pass, no gradients).
AudioEvaluation evaluate_audio_vqvae(AudioVQVAE& model, BatchLoader& loader, const torch::Device& device);

// `originals` float [N, 1, T] through `model` (eval mode, no gradients) -> reconstructions [N, 1, T] on the CPU.
torch::Tensor reconstruct_audio(AudioVQVAE& model, const torch::Tensor& originals, const torch::Device& device);

struct TrainAudioVQVAEResult {
  int64_t steps = 0;
  bool interrupted = false;              // stopped early by SIGINT/SIGTERM (checkpoint written)
  AudioEvaluation initial, final;        // held-out clips before the first step (fresh runs only) and at the end
  std::string checkpoint;
};

// Trains in `run` (see open_training_run; kind AudioVQVAEKind::name): from scratch, or continuing
// its checkpoint, whose configuration must equal `config` except for the schedule.
TrainAudioVQVAEResult train_audio_vqvae(const TrainAudioVQVAEConfig& config, const TrainingRun& run,
                                        const RunSettings& settings = {});
// The same, opening `run_dir` (created if needed).
TrainAudioVQVAEResult train_audio_vqvae(const TrainAudioVQVAEConfig& config, const std::string& run_dir, bool resume,
                                        const RunSettings& settings = {});

}  // namespace vqvae2
